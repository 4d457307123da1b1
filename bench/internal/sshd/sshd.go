// Package sshd runs Debian's OpenSSH server on a loopback port for the
// load drivers under bench/: a host key and an authorized client key of
// its own in a temporary directory, logging in the user running the
// driver by key only.
//
// It follows the harness in controller/server's and plugins/builtin's
// ssh tests (those take a *testing.T; this one returns errors), and it
// raises sshd's limits on concurrent unauthenticated connections, which
// a fan-out over many targets on one port would otherwise hit: the
// default MaxStartups 10:30:100 drops connections beyond ten at random.
//
// It never touches an sshd it did not start: as root it runs sshd in a
// private mount namespace with a tmpfs on /run, so the host's /run stays
// as it is.
package sshd

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
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// Path is where Debian's openssh-server puts the daemon.
const Path = "/usr/sbin/sshd"

// Server is one running sshd.
type Server struct {
	Port int
	User string
	// KeyPath is the client's private key (OpenSSH PEM, mode 0600) and
	// Key its contents.
	KeyPath string
	Key     string
	// KnownHosts is a known_hosts file naming this server's host key at
	// [127.0.0.1]:Port.
	KnownHosts string
	hostKey    ssh.PublicKey
	cmd        *exec.Cmd
	exited     chan struct{}
	mu         sync.Mutex
	log        strings.Builder
}

// HostKeyLine is the host key as an authorized_keys line.
func (s *Server) HostKeyLine() string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.hostKey)))
}

// Log is what sshd wrote so far (sshd -e logs to stderr).
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// Start writes keys and a config into dir and starts sshd on a free
// loopback port, waiting until it listens.
func Start(ctx context.Context, dir string) (*Server, error) {
	if _, err := os.Stat(Path); err != nil {
		return nil, fmt.Errorf("sshd is not installed (%w): install Debian's openssh-server", err)
	}
	u, err := user.Current()
	if err != nil {
		return nil, fmt.Errorf("current user: %w", err)
	}
	s := &Server{User: u.Username, KeyPath: filepath.Join(dir, "client_ed25519"), KnownHosts: filepath.Join(dir, "known_hosts")}
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
	hostPub, hostPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	if s.hostKey, err = ssh.NewPublicKey(hostPub); err != nil {
		return nil, err
	}
	if _, err := writeKeyPEM(filepath.Join(dir, "host_ed25519"), hostPriv); err != nil {
		return nil, err
	}
	// sshd cannot take a listener from us: the kernel picks a free port,
	// we close it and sshd binds it. Another process taking it in between
	// shows as "Address already in use", and a new port is tried.
	for attempt := 1; ; attempt++ {
		err := s.launch(ctx, dir)
		if err == nil {
			break
		}
		if attempt == 3 || !strings.Contains(s.Log(), "Address already in use") {
			return nil, err
		}
	}
	line := fmt.Sprintf("[127.0.0.1]:%d %s\n", s.Port, s.HostKeyLine())
	if err := os.WriteFile(s.KnownHosts, []byte(line), 0o600); err != nil {
		return nil, fmt.Errorf("write known_hosts: %w", err)
	}
	return s, nil
}

func (s *Server) launch(ctx context.Context, dir string) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("find a free port: %w", err)
	}
	s.Port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cfg := filepath.Join(dir, "sshd_config")
	conf := fmt.Sprintf(`ListenAddress 127.0.0.1:%d
HostKey %s
PidFile %s
AuthorizedKeysFile %s
StrictModes no
UsePAM no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
MaxStartups 1000
MaxSessions 1000
LogLevel INFO
`, s.Port, filepath.Join(dir, "host_ed25519"), filepath.Join(dir, "sshd.pid"), filepath.Join(dir, "authorized_keys"))
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		return fmt.Errorf("write sshd_config: %w", err)
	}
	argv := []string{Path, "-D", "-e", "-f", cfg}
	if os.Geteuid() == 0 {
		if exec.Command("unshare", "-m", "true").Run() == nil {
			argv = append([]string{"unshare", "-m", "--", "sh", "-c",
				`mount -t tmpfs tmpfs /run && mkdir -m 0755 /run/sshd && exec "$@"`, "sh"}, argv...)
		} else if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			// What the openssh-server package itself creates.
			return fmt.Errorf("sshd needs /run/sshd: %w", err)
		}
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start sshd: %w", err)
	}
	s.mu.Lock()
	s.log.Reset()
	s.mu.Unlock()
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
	s.cmd, s.exited = cmd, exited
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

// Stop kills sshd and waits for it to exit.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	if err := s.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return
	}
	<-s.exited
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
