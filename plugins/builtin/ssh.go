package builtin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/opsconductor/opsconductor/plugins/schema"
	"github.com/opsconductor/opsconductor/plugins/sdk"
)

// SSH runs a command on another host over SSH, for hosts without an agent.
// Credentials come from Request.Secrets (password, private_key, passphrase),
// never from parameters, so they are masked and never stored with the job.
// The remote host key must be pinned: a key that does not match the pin is
// refused before any credential is sent.
type SSH struct{}

var sshDesc = sdk.Description{
	Name:    "ssh",
	Version: Version,
	Summary: "Run a command on a host without an agent over SSH, with its host key pinned.",
	Params: mustSchema(`{
  "type": "object",
  "additionalProperties": false,
  "required": ["user", "command"],
  "properties": {
    "host":     {"type": "string", "minLength": 1, "description": "Host name or address; default the target's address."},
    "port":     {"type": "integer", "minimum": 1, "maximum": 65535, "description": "Default 22."},
    "user":     {"type": "string", "minLength": 1},
    "command":  {"type": "string", "minLength": 1, "description": "Command line, run by the remote user's shell."},
    "host_key": {"type": "string", "minLength": 1, "description": "The host's public key as in known_hosts (\"ssh-ed25519 AAAA…\") or its fingerprint (\"SHA256:…\"); default the target's ssh_host_key fact."},
    "connect_timeout": {"type": "string", "pattern": "` + durationPattern + `", "description": "Default 15s."}
  }
}`),
	Outputs: []sdk.OutputSpec{{Name: "exit_code", Description: "The remote command's exit status."}},
}

// Describe implements sdk.Step.
func (SSH) Describe() sdk.Description { return sshDesc }

type sshParams struct {
	Host           string `json:"host"`
	Port           int    `json:"port"`
	User           string `json:"user"`
	Command        string `json:"command"`
	HostKey        string `json:"host_key"`
	ConnectTimeout string `json:"connect_timeout"`
}

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
	if p.HostKey == "" {
		return sdk.Result{}, paramError("host_key", "required", "required: the remote host key must be pinned (or set the target's %s fact)", hostKeyFact)
	}
	timeout, err := duration("connect_timeout", p.ConnectTimeout, 15*time.Second)
	if err != nil {
		return sdk.Result{}, err
	}
	addr := net.JoinHostPort(p.Host, strconv.Itoa(p.Port))
	cfg, err := sshConfig(p, addr, req.Secrets, timeout)
	if err != nil {
		return sdk.Result{}, err
	}

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
	if err := sess.Start(p.Command); err != nil {
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
// allow and a host key callback that accepts only the pinned key.
func sshConfig(p sshParams, addr string, secrets map[string]string, timeout time.Duration) (*ssh.ClientConfig, error) {
	check, algos, err := pinHostKey(p.HostKey)
	if err != nil {
		return nil, err
	}
	var auth []ssh.AuthMethod
	if key := secrets["private_key"]; key != "" {
		var signer ssh.Signer
		if pass := secrets["passphrase"]; pass != "" {
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
	if pw := secrets["password"]; pw != "" {
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
		User:              p.User,
		Auth:              auth,
		HostKeyCallback:   check,
		HostKeyAlgorithms: algos,
		Timeout:           timeout,
	}, nil
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
