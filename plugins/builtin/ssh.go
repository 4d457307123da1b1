package builtin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/opsconductor/opsconductor/plugins/schema"
	"github.com/opsconductor/opsconductor/plugins/sdk"
)

// SSH runs a command on another host over SSH, for hosts without an agent.
// Credentials come from Request.Secrets (password, private_key, passphrase,
// and username when the user parameter is absent), never from parameters,
// so they are masked and never stored with the job. A secret under the
// "ssh." alias (ssh.private_key, the form a step with several credentials
// receives) wins over the unprefixed one.
//
// The remote host key is checked before any credential is sent. Under the
// default host_key_policy "pinned" the key must be given (host_key or the
// target's ssh_host_key fact); under "tofu" a given key is checked the same
// way, and without one the key the host presents is accepted on this first
// contact and reported as the output host_key, for the controller to record
// (trust on first use) and pin from then on.
type SSH struct{}

var sshDesc = sdk.Description{
	Name:    "ssh",
	Version: Version,
	Summary: "Run a command on a host without an agent over SSH, its host key pinned or learned on first use.",
	Params: mustSchema(`{
  "type": "object",
  "additionalProperties": false,
  "required": ["command"],
  "properties": {
    "host":     {"type": "string", "minLength": 1, "description": "Host name or address; default the target's address."},
    "port":     {"type": "integer", "minimum": 1, "maximum": 65535, "description": "Default 22."},
    "user":     {"type": "string", "minLength": 1, "description": "Remote user; default the username secret (the credential's username)."},
    "command":  {"type": "string", "minLength": 1, "description": "Command line, run by the remote user's shell."},
    "host_key": {"type": "string", "minLength": 1, "description": "The host's public key as in known_hosts (\"ssh-ed25519 AAAA…\") or its fingerprint (\"SHA256:…\"); default the target's ssh_host_key fact."},
    "host_key_policy": {"type": "string", "enum": ["pinned", "tofu"], "description": "pinned (default): host_key is required. tofu: without host_key, accept the key the host presents on this first contact and report it as the output host_key; with host_key, it must match as under pinned."},
    "connect_timeout": {"type": "string", "pattern": "` + durationPattern + `", "description": "Default 15s."}
  }
}`),
	Outputs: []sdk.OutputSpec{{Name: "exit_code", Description: "The remote command's exit status."},
		{Name: "host_key", Description: "With host_key_policy tofu and no host_key: the key the host presented, in authorized_keys form (\"ssh-ed25519 AAAA…\"), reported even when authentication or the command then fails."}},
}

// Describe implements sdk.Step.
func (SSH) Describe() sdk.Description { return sshDesc }

type sshParams struct {
	Host           string `json:"host"`
	Port           int    `json:"port"`
	User           string `json:"user"`
	Command        string `json:"command"`
	HostKey        string `json:"host_key"`
	HostKeyPolicy  string `json:"host_key_policy"`
	ConnectTimeout string `json:"connect_timeout"`
}

// hostKeyTOFU is the host_key_policy that learns an unknown key; the
// other, "pinned", is the default.
const hostKeyTOFU = "tofu"

// ErrHostKeyMismatch is returned when the remote host presents a key other
// than the pinned one.
var ErrHostKeyMismatch = errors.New("host key mismatch")

// hostKeyFact is the target fact that pins a host's key when the step's
// parameters do not.
const hostKeyFact = "ssh_host_key"

// Run implements sdk.Step.
func (SSH) Run(ctx context.Context, req sdk.Request, out sdk.Output) (sdk.Result, error) {
	var p sshParams
	if err := decodeParams(sshDesc, req, &p); err != nil {
		return sdk.Result{}, err
	}
	if p.Host == "" {
		p.Host = req.Target.Address
	}
	if p.Host == "" {
		return sdk.Result{}, paramError("host", "required", "required (the target has no address)")
	}
	if p.Port == 0 {
		p.Port = 22
	}
	if p.HostKey == "" {
		p.HostKey = req.Target.Facts[hostKeyFact]
	}
	learn := p.HostKey == "" && p.HostKeyPolicy == hostKeyTOFU
	if p.HostKey == "" && !learn {
		return sdk.Result{}, paramError("host_key", "required", "required: the remote host key must be pinned (or set the target's %s fact, or host_key_policy tofu to learn it)", hostKeyFact)
	}
	if p.User == "" {
		p.User = secret(req.Secrets, "username")
	}
	if p.User == "" {
		return sdk.Result{}, paramError("user", "required", "required (or a credential with a username)")
	}
	timeout, err := duration("connect_timeout", p.ConnectTimeout, 15*time.Second)
	if err != nil {
		return sdk.Result{}, err
	}
	addr := net.JoinHostPort(p.Host, strconv.Itoa(p.Port))
	var (
		check ssh.HostKeyCallback
		algos []string
		first firstKey
	)
	if learn {
		check = first.check
	} else if check, algos, err = pinHostKey(p.HostKey); err != nil {
		return sdk.Result{}, err
	}
	cfg, err := sshConfig(p.User, req.Secrets, check, algos, timeout)
	if err != nil {
		return sdk.Result{}, err
	}
	res, err := runSSH(ctx, addr, cfg, timeout, p.Command, out)
	// The learned key goes out with every result, failed ones included:
	// the host showed it whether or not the login or the command worked.
	if learned := first.get(); learned != "" {
		if res.Outputs == nil {
			res.Outputs = map[string]string{}
		}
		res.Outputs["host_key"] = learned
	}
	return res, err
}

// firstKey accepts the first host key it is shown (trust on first use)
// and, should a key exchange repeat within the connection, only that key
// again. Key exchanges run on the ssh transport's goroutine, hence the
// lock.
type firstKey struct {
	mu  sync.Mutex
	key string // authorized_keys form
}

func (f *firstKey) check(addr string, _ net.Addr, key ssh.PublicKey) error {
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key)))
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.key == "" {
		f.key = line
		return nil
	}
	if f.key != line {
		return fmt.Errorf("%w: %s presented %s %s after another key in the same connection; refusing", ErrHostKeyMismatch, addr, key.Type(), ssh.FingerprintSHA256(key))
	}
	return nil
}

func (f *firstKey) get() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.key
}

// runSSH connects, runs command and returns its outcome.
func runSSH(ctx context.Context, addr string, cfg *ssh.ClientConfig, timeout time.Duration, command string, out sdk.Output) (sdk.Result, error) {
	var d net.Dialer
	dctx, cancel := context.WithTimeout(ctx, timeout)
	conn, err := d.DialContext(dctx, "tcp", addr)
	cancel()
	if err != nil {
		return sdk.Result{}, fmt.Errorf("ssh %s: %w", addr, err)
	}
	// The handshake has no context; a deadline on the connection bounds
	// it, and closing the connection on cancel ends it early.
	_ = conn.SetDeadline(time.Now().Add(timeout))
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	if err != nil {
		conn.Close()
		if ctx.Err() != nil {
			return sdk.Result{}, fmt.Errorf("ssh %s: %w", addr, context.Cause(ctx))
		}
		return sdk.Result{}, fmt.Errorf("ssh %s: %w", addr, err)
	}
	_ = conn.SetDeadline(time.Time{})
	client := ssh.NewClient(c, chans, reqs)
	defer client.Close()

	sess, err := client.NewSession()
	if err != nil {
		return sdk.Result{}, fmt.Errorf("ssh %s: open session: %w", addr, err)
	}
	defer sess.Close()
	sess.Stdout, sess.Stderr = out.Stdout(), out.Stderr()
	if err := sess.Start(command); err != nil {
		return sdk.Result{}, fmt.Errorf("ssh %s: start command: %w", addr, err)
	}
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		// Ask the remote side to kill the command (OpenSSH honours
		// signals since 7.9), then drop the connection regardless.
		_ = sess.Signal(ssh.SIGKILL)
		client.Close()
		<-done
		return sdk.Result{}, fmt.Errorf("ssh %s: %w", addr, context.Cause(ctx))
	}
	var exitErr *ssh.ExitError
	switch {
	case err == nil:
		return sdk.Result{Outputs: map[string]string{"exit_code": "0"}}, nil
	case errors.As(err, &exitErr):
		code := exitErr.ExitStatus()
		msg := fmt.Sprintf("remote command exited with status %d", code)
		if sig := exitErr.Signal(); sig != "" {
			msg = "remote command killed by signal " + sig
		}
		return sdk.Result{Status: sdk.StatusFailed, ExitCode: code, Message: msg,
			Outputs: map[string]string{"exit_code": strconv.Itoa(code)}}, nil
	}
	return sdk.Result{}, fmt.Errorf("ssh %s: %w", addr, err)
}

// sshConfig builds the client configuration: the auth methods the secrets
// allow and the host key check.
func sshConfig(user string, secrets map[string]string, check ssh.HostKeyCallback, algos []string, timeout time.Duration) (*ssh.ClientConfig, error) {
	var auth []ssh.AuthMethod
	var err error
	if key := secret(secrets, "private_key"); key != "" {
		var signer ssh.Signer
		if pass := secret(secrets, "passphrase"); pass != "" {
			signer, err = ssh.ParsePrivateKeyWithPassphrase([]byte(key), []byte(pass))
		} else {
			signer, err = ssh.ParsePrivateKey([]byte(key))
		}
		if err != nil {
			// The parse error never quotes the key; still, say only
			// which secret is wrong.
			var missing *ssh.PassphraseMissingError
			if errors.As(err, &missing) {
				return nil, secretError("passphrase", "required: the private key is encrypted")
			}
			return nil, secretError("private_key", "not a usable private key: %v", err)
		}
		auth = append(auth, ssh.PublicKeys(signer))
	}
	if pw := secret(secrets, "password"); pw != "" {
		auth = append(auth, ssh.Password(pw), ssh.KeyboardInteractive(
			func(_, _ string, questions []string, echos []bool) ([]string, error) {
				// Answer the password to every hidden prompt; a
				// prompt that echoes is not asking for a password.
				answers := make([]string, len(questions))
				for i := range questions {
					if !echos[i] {
						answers[i] = pw
					}
				}
				return answers, nil
			}))
	}
	if len(auth) == 0 {
		return nil, secretError("private_key", "required: give a private_key or a password secret")
	}
	return &ssh.ClientConfig{
		User:              user,
		Auth:              auth,
		HostKeyCallback:   check,
		HostKeyAlgorithms: algos,
		Timeout:           timeout,
	}, nil
}

// sshAlias is the credential alias the run engine gives an SSH target's
// login when it relays a step (the target's credential in role ssh).
const sshAlias = "ssh"

// secret reads one credential field: under the ssh alias first, which is
// there even when the step has other credentials too, else unprefixed,
// which is how a step's only credential arrives.
func secret(secrets map[string]string, field string) string {
	if v := secrets[sshAlias+"."+field]; v != "" {
		return v
	}
	return secrets[field]
}

func secretError(name, format string, args ...any) error {
	return &schema.ValidationError{Fields: []schema.FieldError{{
		Path: "secrets." + name, Rule: "secret", Message: fmt.Sprintf(format, args...)}}}
}

// pinHostKey turns the host_key parameter into a callback that accepts
// exactly that key. A full key also restricts the algorithms offered to its
// type, so that a server with several host keys presents the pinned one
// instead of failing the check with another.
func pinHostKey(pin string) (ssh.HostKeyCallback, []string, error) {
	pin = strings.TrimSpace(pin)
	mismatch := func(addr string, key ssh.PublicKey, want string) error {
		return fmt.Errorf("%w: %s presented %s %s, but %s is pinned; refusing to connect",
			ErrHostKeyMismatch, addr, key.Type(), ssh.FingerprintSHA256(key), want)
	}
	if strings.HasPrefix(pin, "SHA256:") {
		return func(addr string, _ net.Addr, key ssh.PublicKey) error {
			if ssh.FingerprintSHA256(key) != pin {
				return mismatch(addr, key, pin)
			}
			return nil
		}, nil, nil
	}
	// known_hosts lines start with the host names; authorized_keys-style
	// lines with the key type. Accept both by parsing from the key type.
	fields := strings.Fields(pin)
	for i, f := range fields {
		if strings.HasPrefix(f, "ssh-") || strings.HasPrefix(f, "ecdsa-") || strings.HasPrefix(f, "sk-") {
			pin = strings.Join(fields[i:], " ")
			break
		}
	}
	want, _, _, _, err := ssh.ParseAuthorizedKey([]byte(pin))
	if err != nil {
		return nil, nil, paramError("host_key", "host_key", "not a public key or SHA256 fingerprint: %v", err)
	}
	wantBytes := want.Marshal()
	algos := []string{want.Type()}
	if want.Type() == ssh.KeyAlgoRSA {
		algos = []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	}
	return func(addr string, _ net.Addr, key ssh.PublicKey) error {
		if !bytes.Equal(key.Marshal(), wantBytes) {
			return mismatch(addr, key, ssh.FingerprintSHA256(want))
		}
		return nil
	}, algos, nil
}
