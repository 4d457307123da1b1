package builtin

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/opsconductor/opsconductor/plugins/sdk"
)

// sshdPath is where Debian's openssh-server puts the daemon; .ci/run
// installs it.
const sshdPath = "/usr/sbin/sshd"

// sshd is a real OpenSSH server started for one test on a loopback port,
// with a temporary host key, authorized_keys and config.
type sshd struct {
	port     int
	hostKey  ssh.PublicKey
	user     string
	key      string // the client's private key, PEM
	password string // "" when password auth could not be set up
	noPass   string // why password auth is unavailable
}

func (s *sshd) hostKeyLine() string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.hostKey)))
}

// startSSHD starts sshd -D -e -f cfg. As root it runs in a private mount
// namespace (unshare -m) with a tmpfs on /run, for the privilege
// separation directory, and a copy of /etc/shadow bind-mounted over the
// real one that gives the user a known password: password auth is tested
// for real without creating a user or touching the host's files. As
// another user, sshd can only authenticate that user by key, so the
// password cases skip and say so.
func startSSHD(t *testing.T) *sshd {
	t.Helper()
	if _, err := os.Stat(sshdPath); err != nil {
		t.Skipf("sshd is not installed (%v); install Debian's openssh-server, as .ci/run does", err)
	}
	dir := t.TempDir()
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	s := &sshd{user: u.Username}

	hostPub, hostPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if s.hostKey, err = ssh.NewPublicKey(hostPub); err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(dir, "host_ed25519"), hostPriv)
	clientPub, clientPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s.key = string(writePEM(t, filepath.Join(dir, "client"), clientPriv))
	sshPub, err := ssh.NewPublicKey(clientPub)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), ssh.MarshalAuthorizedKey(sshPub), 0o600); err != nil {
		t.Fatal(err)
	}

	var argv []string
	shadow := filepath.Join(dir, "shadow")
	switch {
	case os.Geteuid() != 0:
		s.noPass = fmt.Sprintf("sshd running as uid %d cannot check passwords (it cannot read /etc/shadow)", os.Geteuid())
	case exec.Command("unshare", "-m", "true").Run() != nil:
		s.noPass = "unshare -m is not permitted here, so the user cannot be given a known password without changing /etc/shadow"
	default:
		s.password = "correct horse " + strconv.Itoa(os.Getpid())
		if err := writeShadow(shadow, s.user, s.password); err != nil {
			s.noPass = err.Error()
			s.password = ""
		}
	}
	if os.Geteuid() == 0 && s.noPass == "" {
		argv = []string{"unshare", "-m", "--", "sh", "-c",
			`mount -t tmpfs tmpfs /run && mkdir -m 0755 /run/sshd && mount --bind "$1" /etc/shadow && exec "$2" -D -e -f "$3"`,
			"sh", shadow, sshdPath}
	} else if os.Geteuid() == 0 {
		// Root without unshare: sshd needs its privilege separation
		// directory; create it as its own package would.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			t.Skipf("sshd needs /run/sshd: %v", err)
		}
		argv = []string{sshdPath, "-D", "-e", "-f"}
	} else {
		argv = []string{sshdPath, "-D", "-e", "-f"}
	}

	// sshd cannot take a listener from us, so the kernel picks a free
	// port, we close it and sshd binds it; another process taking it in
	// between fails the bind, and we try again with a new one.
	for attempt := 1; ; attempt++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s.port = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		cfg := filepath.Join(dir, "sshd_config")
		conf := fmt.Sprintf(`ListenAddress 127.0.0.1:%d
HostKey %s
PidFile %s
AuthorizedKeysFile %s
StrictModes no
UsePAM no
PubkeyAuthentication yes
PasswordAuthentication %s
KbdInteractiveAuthentication no
PermitRootLogin yes
LogLevel VERBOSE
`, s.port, filepath.Join(dir, "host_ed25519"), filepath.Join(dir, "sshd.pid"), filepath.Join(dir, "authorized_keys"),
			map[bool]string{true: "yes", false: "no"}[s.password != ""])
		if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(argv[0], append(argv[1:], cfg)...)
		logs, ready, exited := startLogged(t, cmd)
		select {
		case <-ready:
			return s
		case <-exited:
			if strings.Contains(logs.String(), "Address already in use") && attempt < 3 {
				continue
			}
			t.Fatalf("sshd exited before listening:\n%s", logs.String())
		case <-time.After(20 * time.Second):
			t.Fatalf("sshd did not listen within 20s:\n%s", logs.String())
		}
	}
}

// lockedBuffer collects sshd's log for failure messages.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// startLogged starts cmd and reads its stderr (sshd -e logs there): ready
// closes when sshd says it listens, exited when it has exited. The test's
// cleanup kills it and waits for it.
func startLogged(t *testing.T, cmd *exec.Cmd) (*lockedBuffer, <-chan struct{}, <-chan struct{}) {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sshd: %v", err)
	}
	logs := &lockedBuffer{}
	ready, exited := make(chan struct{}), make(chan struct{})
	var readyOnce sync.Once
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logs.mu.Lock()
			logs.b.WriteString(sc.Text() + "\n")
			logs.mu.Unlock()
			if strings.Contains(sc.Text(), "Server listening on") {
				readyOnce.Do(func() { close(ready) })
			}
		}
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("sshd log:\n%s", logs.String())
		}
	})
	return logs, ready, exited
}

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

// writeShadow writes a copy of /etc/shadow in which name's password is pw,
// hashed with SHA-512 crypt by openssl.
func writeShadow(path, name, pw string) error {
	cmd := exec.Command("openssl", "passwd", "-6", "-stdin")
	cmd.Stdin = strings.NewReader(pw)
	hash, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("cannot hash a password without openssl: %v", err)
	}
	orig, err := os.ReadFile("/etc/shadow")
	if err != nil {
		return fmt.Errorf("read /etc/shadow: %v", err)
	}
	var out []string
	found := false
	for _, line := range strings.Split(strings.TrimRight(string(orig), "\n"), "\n") {
		f := strings.Split(line, ":")
		if len(f) > 2 && f[0] == name {
			f[1] = strings.TrimSpace(string(hash))
			f[2] = "" // no last-change date: no ageing to trip over
			line, found = strings.Join(f, ":"), true
		}
		out = append(out, line)
	}
	if !found {
		return fmt.Errorf("user %s has no /etc/shadow entry", name)
	}
	return os.WriteFile(path, []byte(strings.Join(out, "\n")+"\n"), 0o600)
}

func TestSSH(t *testing.T) {
	s := startSSHD(t)
	otherPub, _, _ := ed25519.GenerateKey(rand.Reader)
	otherKey, _ := ssh.NewPublicKey(otherPub)
	marker := filepath.Join(t.TempDir(), "ran")
	_, strangerPriv, _ := ed25519.GenerateKey(rand.Reader)
	strangerKey := string(writePEM(t, filepath.Join(t.TempDir(), "stranger"), strangerPriv))
	keyAuth := map[string]string{"private_key": s.key}
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
			params:  obj{"host": "127.0.0.1", "port": s.port, "user": s.user, "command": "echo hello; echo oops >&2", "host_key": s.hostKeyLine()},
			secrets: keyAuth, wantOut: "hello\n", wantErrOut: "oops\n"},
		{name: "a non-zero exit fails with the remote exit code",
			params:  obj{"host": "127.0.0.1", "port": s.port, "user": s.user, "command": "exit 3", "host_key": s.hostKeyLine()},
			secrets: keyAuth, wantStatus: sdk.StatusFailed, wantCode: 3},
		{name: "a host key pinned by SHA256 fingerprint is accepted",
			params:  obj{"host": "127.0.0.1", "port": s.port, "user": s.user, "command": "echo fp", "host_key": ssh.FingerprintSHA256(s.hostKey)},
			secrets: keyAuth, wantOut: "fp\n"},
		{name: "the target's address and host key fact are used when the parameters omit them",
			params:  obj{"port": s.port, "user": s.user, "command": "echo target"},
			target:  sdk.Target{Address: "127.0.0.1", Facts: map[string]string{hostKeyFact: s.hostKeyLine()}},
			secrets: keyAuth, wantOut: "target\n"},
		{name: "password auth runs the command",
			params:   obj{"host": "127.0.0.1", "port": s.port, "user": s.user, "command": "id -un", "host_key": s.hostKeyLine()},
			secrets:  map[string]string{"password": s.password},
			needPass: true, wantOut: s.user + "\n"},
		{name: "a wrong password is refused",
			params:   obj{"host": "127.0.0.1", "port": s.port, "user": s.user, "command": "touch " + marker, "host_key": s.hostKeyLine()},
			secrets:  map[string]string{"password": "wrong password"},
			needPass: true, wantErrMsg: "unable to authenticate"},
		{name: "a host key that does not match the pin is refused before authenticating",
			params:  obj{"host": "127.0.0.1", "port": s.port, "user": s.user, "command": "touch " + marker, "host_key": strings.TrimSpace(string(ssh.MarshalAuthorizedKey(otherKey)))},
			secrets: keyAuth, wantErr: ErrHostKeyMismatch, wantErrMsg: "refusing to connect"},
		{name: "a fingerprint that does not match is refused",
			params:  obj{"host": "127.0.0.1", "port": s.port, "user": s.user, "command": "touch " + marker, "host_key": ssh.FingerprintSHA256(otherKey)},
			secrets: keyAuth, wantErr: ErrHostKeyMismatch},
		{name: "no pinned host key is refused",
			params:  obj{"host": "127.0.0.1", "port": s.port, "user": s.user, "command": "true"},
			secrets: keyAuth, wantParam: "params.host_key"},
		{name: "a host key that is not a key is refused",
			params:  obj{"host": "127.0.0.1", "port": s.port, "user": s.user, "command": "true", "host_key": "ssh-ed25519 notbase64"},
			secrets: keyAuth, wantParam: "params.host_key"},
		{name: "no credential is refused",
			params:    obj{"host": "127.0.0.1", "port": s.port, "user": s.user, "command": "true", "host_key": s.hostKeyLine()},
			wantParam: "secrets.private_key"},
		{name: "tofu without a host key learns the host's key and reports it",
			params:  obj{"host": "127.0.0.1", "port": s.port, "user": s.user, "command": "echo learned", "host_key_policy": "tofu"},
			secrets: keyAuth, wantOut: "learned\n", wantHostKey: s.hostKeyLine()},
		{name: "tofu reports the learned key even when the command fails",
			params:  obj{"host": "127.0.0.1", "port": s.port, "user": s.user, "command": "exit 4", "host_key_policy": "tofu"},
			secrets: keyAuth, wantStatus: sdk.StatusFailed, wantCode: 4, wantHostKey: s.hostKeyLine()},
		{name: "tofu reports the learned key even when the login is refused",
			params:  obj{"host": "127.0.0.1", "port": s.port, "user": s.user, "command": "touch " + marker, "host_key_policy": "tofu"},
			secrets: map[string]string{"private_key": strangerKey}, wantErrMsg: "unable to authenticate", wantHostKey: s.hostKeyLine()},
		{name: "tofu with a matching host key connects and learns nothing",
			params:  obj{"host": "127.0.0.1", "port": s.port, "user": s.user, "command": "echo pinned", "host_key_policy": "tofu", "host_key": s.hostKeyLine()},
			secrets: keyAuth, wantOut: "pinned\n"},
		{name: "tofu with a host key that does not match is refused before authenticating",
			params:  obj{"host": "127.0.0.1", "port": s.port, "user": s.user, "command": "touch " + marker, "host_key_policy": "tofu", "host_key": strings.TrimSpace(string(ssh.MarshalAuthorizedKey(otherKey)))},
			secrets: keyAuth, wantErr: ErrHostKeyMismatch, wantErrMsg: "refusing to connect"},
		{name: "an unknown host key policy is refused",
			params:  obj{"host": "127.0.0.1", "port": s.port, "user": s.user, "command": "true", "host_key_policy": "trust-me"},
			secrets: keyAuth, wantParam: "params.host_key_policy"},
		{name: "the user comes from the credential's username when the parameters omit it",
			params:  obj{"host": "127.0.0.1", "port": s.port, "command": "echo by-secret", "host_key": s.hostKeyLine()},
			secrets: map[string]string{"private_key": s.key, "username": s.user}, wantOut: "by-secret\n"},
		{name: "the ssh alias's secrets win over another credential's unprefixed ones",
			params:  obj{"host": "127.0.0.1", "port": s.port, "command": "echo aliased", "host_key": s.hostKeyLine()},
			secrets: map[string]string{"ssh.private_key": s.key, "ssh.username": s.user, "private_key": "-----BEGIN NONSENSE-----", "username": "nobody-here"},
			wantOut: "aliased\n"},
		{name: "no user and no username secret is refused",
			params:  obj{"host": "127.0.0.1", "port": s.port, "command": "true", "host_key": s.hostKeyLine()},
			secrets: keyAuth, wantParam: "params.user"},
		{name: "a private key that does not parse is refused",
			params:  obj{"host": "127.0.0.1", "port": s.port, "user": s.user, "command": "true", "host_key": s.hostKeyLine()},
			secrets: map[string]string{"private_key": "-----BEGIN NONSENSE-----"}, wantParam: "secrets.private_key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.needPass && s.password == "" {
				t.Skip("password auth: " + s.noPass)
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
			if s.password != "" && strings.Contains(rec.stdout()+rec.stderr()+fmt.Sprint(err), s.password) {
				t.Errorf("the password appears in the step's output or error")
			}
		})
	}
}

// Cancel ends a running remote command and returns promptly.
func TestSSHCancel(t *testing.T) {
	s := startSSHD(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rec := &recorder{}
	go func() { <-rec.seen("started"); cancel() }()
	req := reqWith(t, obj{"host": "127.0.0.1", "port": s.port, "user": s.user, "command": "echo started; sleep 300",
		"host_key": s.hostKeyLine(), "connect_timeout": "2m"})
	req.Secrets = map[string]string{"private_key": s.key}
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
