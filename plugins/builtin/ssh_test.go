package builtin

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/opsconductor/opsconductor/internal/sshdtest"
	"github.com/opsconductor/opsconductor/plugins/sdk"
)

// writePEM writes key as an OpenSSH PEM file and returns its contents.
func writePEM(t *testing.T, path string, key ed25519.PrivateKey) []byte {
	t.Helper()
	block, err := ssh.MarshalPrivateKey(key, "")
	if err != nil {
		t.Fatal(err)
	}
	b := pem.EncodeToMemory(block)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSSH(t *testing.T) {
	s := sshdtest.StartT(t, sshdtest.Options{Password: true})
	otherPub, _, _ := ed25519.GenerateKey(rand.Reader)
	otherKey, _ := ssh.NewPublicKey(otherPub)
	marker := filepath.Join(t.TempDir(), "ran")
	_, strangerPriv, _ := ed25519.GenerateKey(rand.Reader)
	strangerKey := string(writePEM(t, filepath.Join(t.TempDir(), "stranger"), strangerPriv))
	keyAuth := map[string]string{"private_key": s.Key}
	tests := []struct {
		name        string
		params      obj
		secrets     map[string]string
		target      sdk.Target
		needPass    bool
		wantStatus  sdk.Status
		wantCode    int
		wantOut     string
		wantErrOut  string
		wantErr     error  // errors.Is
		wantErrMsg  string // substring
		wantParam   string
		wantHostKey string // the learned host_key output; none when empty
	}{
		{name: "key auth runs the command and streams its output",
			params:  obj{"host": "127.0.0.1", "port": s.Port, "user": s.User, "command": "echo hello; echo oops >&2", "host_key": s.HostKeyLine()},
			secrets: keyAuth, wantOut: "hello\n", wantErrOut: "oops\n"},
		{name: "a non-zero exit fails with the remote exit code",
			params:  obj{"host": "127.0.0.1", "port": s.Port, "user": s.User, "command": "exit 3", "host_key": s.HostKeyLine()},
			secrets: keyAuth, wantStatus: sdk.StatusFailed, wantCode: 3},
		{name: "a host key pinned by SHA256 fingerprint is accepted",
			params:  obj{"host": "127.0.0.1", "port": s.Port, "user": s.User, "command": "echo fp", "host_key": ssh.FingerprintSHA256(s.HostKey())},
			secrets: keyAuth, wantOut: "fp\n"},
		{name: "the target's address and host key fact are used when the parameters omit them",
			params:  obj{"port": s.Port, "user": s.User, "command": "echo target"},
			target:  sdk.Target{Address: "127.0.0.1", Facts: map[string]string{hostKeyFact: s.HostKeyLine()}},
			secrets: keyAuth, wantOut: "target\n"},
		{name: "password auth runs the command",
			params:   obj{"host": "127.0.0.1", "port": s.Port, "user": s.User, "command": "id -un", "host_key": s.HostKeyLine()},
			secrets:  map[string]string{"password": s.Password},
			needPass: true, wantOut: s.User + "\n"},
		{name: "a wrong password is refused",
			params:   obj{"host": "127.0.0.1", "port": s.Port, "user": s.User, "command": "touch " + marker, "host_key": s.HostKeyLine()},
			secrets:  map[string]string{"password": "wrong password"},
			needPass: true, wantErrMsg: "unable to authenticate"},
		{name: "a host key that does not match the pin is refused before authenticating",
			params:  obj{"host": "127.0.0.1", "port": s.Port, "user": s.User, "command": "touch " + marker, "host_key": strings.TrimSpace(string(ssh.MarshalAuthorizedKey(otherKey)))},
			secrets: keyAuth, wantErr: ErrHostKeyMismatch, wantErrMsg: "refusing to connect"},
		{name: "a fingerprint that does not match is refused",
			params:  obj{"host": "127.0.0.1", "port": s.Port, "user": s.User, "command": "touch " + marker, "host_key": ssh.FingerprintSHA256(otherKey)},
			secrets: keyAuth, wantErr: ErrHostKeyMismatch},
		{name: "no pinned host key is refused",
			params:  obj{"host": "127.0.0.1", "port": s.Port, "user": s.User, "command": "true"},
			secrets: keyAuth, wantParam: "params.host_key"},
		{name: "a host key that is not a key is refused",
			params:  obj{"host": "127.0.0.1", "port": s.Port, "user": s.User, "command": "true", "host_key": "ssh-ed25519 notbase64"},
			secrets: keyAuth, wantParam: "params.host_key"},
		{name: "no credential is refused",
			params:    obj{"host": "127.0.0.1", "port": s.Port, "user": s.User, "command": "true", "host_key": s.HostKeyLine()},
			wantParam: "secrets.private_key"},
		{name: "tofu without a host key learns the host's key and reports it",
			params:  obj{"host": "127.0.0.1", "port": s.Port, "user": s.User, "command": "echo learned", "host_key_policy": "tofu"},
			secrets: keyAuth, wantOut: "learned\n", wantHostKey: s.HostKeyLine()},
		{name: "tofu reports the learned key even when the command fails",
			params:  obj{"host": "127.0.0.1", "port": s.Port, "user": s.User, "command": "exit 4", "host_key_policy": "tofu"},
			secrets: keyAuth, wantStatus: sdk.StatusFailed, wantCode: 4, wantHostKey: s.HostKeyLine()},
		{name: "tofu reports the learned key even when the login is refused",
			params:  obj{"host": "127.0.0.1", "port": s.Port, "user": s.User, "command": "touch " + marker, "host_key_policy": "tofu"},
			secrets: map[string]string{"private_key": strangerKey}, wantErrMsg: "unable to authenticate", wantHostKey: s.HostKeyLine()},
		{name: "tofu with a matching host key connects and learns nothing",
			params:  obj{"host": "127.0.0.1", "port": s.Port, "user": s.User, "command": "echo pinned", "host_key_policy": "tofu", "host_key": s.HostKeyLine()},
			secrets: keyAuth, wantOut: "pinned\n"},
		{name: "tofu with a host key that does not match is refused before authenticating",
			params:  obj{"host": "127.0.0.1", "port": s.Port, "user": s.User, "command": "touch " + marker, "host_key_policy": "tofu", "host_key": strings.TrimSpace(string(ssh.MarshalAuthorizedKey(otherKey)))},
			secrets: keyAuth, wantErr: ErrHostKeyMismatch, wantErrMsg: "refusing to connect"},
		{name: "an unknown host key policy is refused",
			params:  obj{"host": "127.0.0.1", "port": s.Port, "user": s.User, "command": "true", "host_key_policy": "trust-me"},
			secrets: keyAuth, wantParam: "params.host_key_policy"},
		{name: "the user comes from the credential's username when the parameters omit it",
			params:  obj{"host": "127.0.0.1", "port": s.Port, "command": "echo by-secret", "host_key": s.HostKeyLine()},
			secrets: map[string]string{"private_key": s.Key, "username": s.User}, wantOut: "by-secret\n"},
		{name: "the ssh alias's secrets win over another credential's unprefixed ones",
			params:  obj{"host": "127.0.0.1", "port": s.Port, "command": "echo aliased", "host_key": s.HostKeyLine()},
			secrets: map[string]string{"ssh.private_key": s.Key, "ssh.username": s.User, "private_key": "-----BEGIN NONSENSE-----", "username": "nobody-here"},
			wantOut: "aliased\n"},
		{name: "no user and no username secret is refused",
			params:  obj{"host": "127.0.0.1", "port": s.Port, "command": "true", "host_key": s.HostKeyLine()},
			secrets: keyAuth, wantParam: "params.user"},
		{name: "a private key that does not parse is refused",
			params:  obj{"host": "127.0.0.1", "port": s.Port, "user": s.User, "command": "true", "host_key": s.HostKeyLine()},
			secrets: map[string]string{"private_key": "-----BEGIN NONSENSE-----"}, wantParam: "secrets.private_key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.needPass && s.Password == "" {
				t.Skip("password auth: " + s.NoPassword)
			}
			// The machine running the tests may be loaded: give the
			// handshake more than the default 15s, so that a slow
			// connection is never mistaken for a failure.
			if _, ok := tt.params["connect_timeout"]; !ok {
				tt.params["connect_timeout"] = "2m"
			}
			res, rec, err := run(t, context.Background(), SSH{}, tt.params, func(r *sdk.Request) {
				r.Secrets, r.Target = tt.secrets, tt.target
			})
			switch {
			case tt.wantParam != "":
				wantParamError(t, err, tt.wantParam)
			case tt.wantErr != nil || tt.wantErrMsg != "":
				if err == nil || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) || !strings.Contains(err.Error(), tt.wantErrMsg) {
					t.Fatalf("err = %v, want %v containing %q", err, tt.wantErr, tt.wantErrMsg)
				}
				if _, err := os.Stat(marker); err == nil {
					t.Fatalf("the command ran although the connection was refused")
				}
				if got := res.Outputs["host_key"]; got != tt.wantHostKey {
					t.Errorf("host_key output = %q, want %q", got, tt.wantHostKey)
				}
			case err != nil:
				t.Fatalf("Run: %v", err)
			default:
				if res.Status != tt.wantStatus || res.ExitCode != tt.wantCode || res.Outputs["exit_code"] != strconv.Itoa(tt.wantCode) {
					t.Errorf("result = %+v, want status %v exit %d", res, tt.wantStatus, tt.wantCode)
				}
				if rec.stdout() != tt.wantOut || rec.stderr() != tt.wantErrOut {
					t.Errorf("stdout %q stderr %q, want %q and %q", rec.stdout(), rec.stderr(), tt.wantOut, tt.wantErrOut)
				}
				if got := res.Outputs["host_key"]; got != tt.wantHostKey {
					t.Errorf("host_key output = %q, want %q", got, tt.wantHostKey)
				}
			}
			if s.Password != "" && strings.Contains(rec.stdout()+rec.stderr()+fmt.Sprint(err), s.Password) {
				t.Errorf("the password appears in the step's output or error")
			}
		})
	}
}

// Cancel ends a running remote command and returns promptly.
func TestSSHCancel(t *testing.T) {
	s := sshdtest.StartT(t, sshdtest.Options{Password: true})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rec := &recorder{}
	go func() { <-rec.seen("started"); cancel() }()
	req := reqWith(t, obj{"host": "127.0.0.1", "port": s.Port, "user": s.User, "command": "echo started; sleep 300",
		"host_key": s.HostKeyLine(), "connect_timeout": "2m"})
	req.Secrets = map[string]string{"private_key": s.Key}
	start := time.Now()
	_, err := SSH{}.Run(ctx, req, rec)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("Run returned %s after the cancel", d)
	}
}

// FuzzPinHostKey feeds host_key values of any shape: each is either
// refused as a params.host_key problem or pins a key that refuses a host
// presenting another one.
func FuzzPinHostKey(f *testing.F) {
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	key, _ := ssh.NewPublicKey(pub)
	f.Add(strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key))))
	f.Add("host.example,10.0.0.1 " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key))))
	f.Add(ssh.FingerprintSHA256(key))
	f.Add("ssh-ed25519 notbase64")
	f.Add("ecdsa-")
	f.Add("")
	// The host presents a fixed key no input can be expected to match.
	stranger, _ := ssh.NewPublicKey(ed25519.PublicKey(bytes.Repeat([]byte{9}, ed25519.PublicKeySize)))
	strangerLine := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(stranger)))
	f.Fuzz(func(t *testing.T, pin string) {
		check, _, err := pinHostKey(pin)
		if err != nil {
			wantParamError(t, err, "params.host_key")
			return
		}
		if strings.Contains(pin, strings.Fields(strangerLine)[1]) || strings.Contains(pin, ssh.FingerprintSHA256(stranger)) {
			return
		}
		if err := check("h:22", nil, stranger); !errors.Is(err, ErrHostKeyMismatch) {
			t.Fatalf("pin %q accepted another host's key (err %v)", pin, err)
		}
	})
}
