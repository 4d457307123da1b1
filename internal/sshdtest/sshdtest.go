// Package sshdtest runs Debian's OpenSSH server on a loopback port for
// tests and load drivers: a host key and an authorized client key of its
// own in a directory, logging in the user running the process.
//
// It never touches an sshd it did not start or the host's files: as root
// it runs sshd in a private mount namespace with a tmpfs on /run (for the
// privilege separation directory) and, when a password is asked for, a
// copy of /etc/shadow bind-mounted over the real one that gives the user
// a known password, so password logins are tested for real without
// creating a user.
package sshdtest

import (
	"bufio"
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
)

// Path is where Debian's openssh-server puts the daemon; .ci/run installs it.
const Path = "/usr/sbin/sshd"

// Options choose what the server allows.
type Options struct {
	// Password sets up a known password for the user (root with unshare
	// only); otherwise, or when that is impossible, logins are by key
	// only and Server.NoPassword says why.
	Password bool
	// Fanout raises sshd's limits on concurrent unauthenticated
	// connections and sessions, which a fan-out over many targets on one
	// port would otherwise hit: the default MaxStartups 10:30:100 drops
	// connections beyond ten at random.
	Fanout bool
}

// Server is one running sshd.
type Server struct {
	Port int
	User string
	// KeyPath is the client's private key (OpenSSH PEM, mode 0600) and
	// Key its contents.
	KeyPath string
	Key     string
	// KnownHosts is a known_hosts file naming the current host key at
	// [127.0.0.1]:Port.
	KnownHosts string
	// Password is the user's password for this server ("" when password
	// logins are off), NoPassword why it is off when it was asked for.
	Password   string
	NoPassword string

	dir    string
	opts   Options
	argv   []string // the command before the config file's path
	mu     sync.Mutex
	log    strings.Builder
	key    ssh.PublicKey
	cmd    *exec.Cmd
	exited chan struct{}
}

// HostKey is the server's current host key.
func (s *Server) HostKey() ssh.PublicKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.key
}

// HostKeyLine is the host key as an authorized_keys line.
func (s *Server) HostKeyLine() string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.HostKey())))
}

// Log is what the current sshd wrote so far (sshd -e logs to stderr).
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// StartT starts a server for one test: it skips the test when sshd is
// not installed, fails it on any other error, stops the server when the
// test ends and prints its log when the test failed.
func StartT(t testing.TB, opts Options) *Server {
	t.Helper()
	if _, err := os.Stat(Path); err != nil {
		t.Skipf("sshd is not installed (%v); install Debian's openssh-server, as .ci/run does", err)
	}
	s, err := Start(context.Background(), t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("sshd log:\n%s", s.Log())
		}
	})
	return s
}

// Start writes keys and a config into dir and starts sshd on a free
// loopback port, returning once it listens.
func Start(ctx context.Context, dir string, opts Options) (*Server, error) {
	if _, err := os.Stat(Path); err != nil {
		return nil, fmt.Errorf("sshd is not installed (%w): install Debian's openssh-server", err)
	}
	u, err := user.Current()
	if err != nil {
		return nil, fmt.Errorf("current user: %w", err)
	}
	s := &Server{User: u.Username, dir: dir, opts: opts,
		KeyPath: filepath.Join(dir, "client_ed25519"), KnownHosts: filepath.Join(dir, "known_hosts")}
	_, clientPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	key, err := writeKeyPEM(s.KeyPath, clientPriv)
	if err != nil {
		return nil, err
	}
	s.Key = string(key)
	clientPub, err := ssh.NewPublicKey(clientPriv.Public())
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), ssh.MarshalAuthorizedKey(clientPub), 0o600); err != nil {
		return nil, fmt.Errorf("write authorized_keys: %w", err)
	}
	if err := s.chooseArgv(); err != nil {
		return nil, err
	}
	// sshd cannot take a listener from us: the kernel picks a free port,
	// we close it and sshd binds it. Another process taking it in between
	// shows as "Address already in use", and a new port is tried.
	for attempt := 1; ; attempt++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		s.Port = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		err = s.launch(ctx)
		if err == nil {
			return s, nil
		}
		if attempt == 3 || !strings.Contains(s.Log(), "Address already in use") {
			return nil, err
		}
	}
}

// Rekey restarts sshd on the same port with a new host key, as a rebuilt
// host (or a machine in the middle) would present.
func (s *Server) Rekey(ctx context.Context) error {
	s.Stop()
	return s.launch(ctx)
}

// chooseArgv decides how sshd runs: in a private mount namespace as root
// (with the shadow copy when a password is wanted), directly otherwise.
func (s *Server) chooseArgv() error {
	root := os.Geteuid() == 0
	unshare := root && exec.Command("unshare", "-m", "true").Run() == nil
	if s.opts.Password {
		switch {
		case !root:
			s.NoPassword = fmt.Sprintf("sshd running as uid %d cannot check passwords (it cannot read /etc/shadow)", os.Geteuid())
		case !unshare:
			s.NoPassword = "unshare -m is not permitted here, so the user cannot be given a known password without changing /etc/shadow"
		default:
			pw := "correct horse " + strconv.Itoa(os.Getpid())
			if err := writeShadow(filepath.Join(s.dir, "shadow"), s.User, pw); err != nil {
				s.NoPassword = err.Error()
			} else {
				s.Password = pw
			}
		}
	}
	switch {
	case unshare && s.Password != "":
		s.argv = []string{"unshare", "-m", "--", "sh", "-c",
			`mount -t tmpfs tmpfs /run && mkdir -m 0755 /run/sshd && mount --bind "$1" /etc/shadow && shift && exec "$@"`,
			"sh", filepath.Join(s.dir, "shadow"), Path, "-D", "-e", "-f"}
	case unshare:
		s.argv = []string{"unshare", "-m", "--", "sh", "-c",
			`mount -t tmpfs tmpfs /run && mkdir -m 0755 /run/sshd && exec "$@"`, "sh", Path, "-D", "-e", "-f"}
	case root:
		// What the openssh-server package itself creates.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			return fmt.Errorf("sshd needs /run/sshd: %w", err)
		}
		s.argv = []string{Path, "-D", "-e", "-f"}
	default:
		s.argv = []string{Path, "-D", "-e", "-f"}
	}
	return nil
}

// launch writes a fresh host key, known_hosts and config and starts sshd
// on s.Port, returning once it listens.
func (s *Server) launch(ctx context.Context) error {
	hostPub, hostPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	hostKey, err := ssh.NewPublicKey(hostPub)
	if err != nil {
		return err
	}
	if _, err := writeKeyPEM(filepath.Join(s.dir, "host_ed25519"), hostPriv); err != nil {
		return err
	}
	s.mu.Lock()
	s.key = hostKey
	s.log.Reset()
	s.mu.Unlock()
	line := fmt.Sprintf("[127.0.0.1]:%d %s\n", s.Port, s.HostKeyLine())
	if err := os.WriteFile(s.KnownHosts, []byte(line), 0o600); err != nil {
		return fmt.Errorf("write known_hosts: %w", err)
	}
	permitRoot, password, limits, level := "prohibit-password", "no", "", "VERBOSE"
	if s.Password != "" {
		permitRoot, password = "yes", "yes"
	}
	if s.opts.Fanout {
		// A line per connection at VERBOSE would flood the log.
		limits, level = "MaxStartups 1000\nMaxSessions 1000\n", "INFO"
	}
	cfg := filepath.Join(s.dir, "sshd_config")
	conf := fmt.Sprintf(`ListenAddress 127.0.0.1:%d
HostKey %s
PidFile %s
AuthorizedKeysFile %s
StrictModes no
UsePAM no
PubkeyAuthentication yes
PasswordAuthentication %s
KbdInteractiveAuthentication no
PermitRootLogin %s
%sLogLevel %s
`, s.Port, filepath.Join(s.dir, "host_ed25519"), filepath.Join(s.dir, "sshd.pid"), filepath.Join(s.dir, "authorized_keys"),
		password, permitRoot, limits, level)
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		return fmt.Errorf("write sshd_config: %w", err)
	}
	argv := append(append([]string(nil), s.argv...), cfg)
	cmd := exec.Command(argv[0], argv[1:]...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start sshd: %w", err)
	}
	ready, exited := make(chan struct{}), make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		seen := false
		for sc.Scan() {
			s.mu.Lock()
			// Keep the start of the log: a fan-out logs a line per
			// connection, and the first lines say why sshd failed.
			if s.log.Len() < 1<<20 {
				s.log.WriteString(sc.Text() + "\n")
			}
			s.mu.Unlock()
			if !seen && strings.Contains(sc.Text(), "Server listening on") {
				seen = true
				close(ready)
			}
		}
		_ = cmd.Wait()
		close(exited)
	}()
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()
	t := time.NewTimer(30 * time.Second)
	defer t.Stop()
	select {
	case <-ready:
		return nil
	case <-exited:
		return fmt.Errorf("sshd exited before listening:\n%s", s.Log())
	case <-t.C:
		s.Stop()
		return fmt.Errorf("sshd did not listen within 30 s:\n%s", s.Log())
	case <-ctx.Done():
		s.Stop()
		return ctx.Err()
	}
}

// Stop kills sshd and waits for it to exit; stopping a stopped server
// does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	if err := cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return
	}
	<-exited
}

func writeKeyPEM(path string, key ed25519.PrivateKey) ([]byte, error) {
	block, err := ssh.MarshalPrivateKey(key, "")
	if err != nil {
		return nil, fmt.Errorf("encode a key: %w", err)
	}
	b := pem.EncodeToMemory(block)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	return b, nil
}

// writeShadow writes a copy of /etc/shadow in which name's password is pw,
// hashed with SHA-512 crypt by openssl.
func writeShadow(path, name, pw string) error {
	cmd := exec.Command("openssl", "passwd", "-6", "-stdin")
	cmd.Stdin = strings.NewReader(pw)
	hash, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("cannot hash a password without openssl: %w", err)
	}
	orig, err := os.ReadFile("/etc/shadow")
	if err != nil {
		return fmt.Errorf("read /etc/shadow: %w", err)
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
