package sshd

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// TestManyLoginsAtOnce is what the Ansible comparison relies on: many
// clients log in by key at the same moment, each pinned to the host key,
// and none is dropped (the default MaxStartups would drop some).
func TestManyLoginsAtOnce(t *testing.T) {
	if _, err := os.Stat(Path); err != nil {
		t.Skipf("sshd is not installed (%v); install Debian's openssh-server", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := Start(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	signer, err := ssh.ParsePrivateKey([]byte(s.Key))
	if err != nil {
		t.Fatal(err)
	}
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	pinned, _, _, _, err := ssh.ParseAuthorizedKey([]byte(s.HostKeyLine()))
	if err != nil {
		t.Fatal(err)
	}
	const clients = 40
	errs := make(chan error, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			errs <- login(s, signer, pinned, host, i)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("%v\nsshd log:\n%s", err, s.Log())
		}
	}
	kh, err := os.ReadFile(s.KnownHosts)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("[127.0.0.1]:%d %s\n", s.Port, s.HostKeyLine()); string(kh) != want {
		t.Errorf("known_hosts = %q, want %q", kh, want)
	}
}

func login(s *Server, signer ssh.Signer, pinned ssh.PublicKey, host string, i int) error {
	c, err := ssh.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", s.Port), &ssh.ClientConfig{
		User: s.User, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, Timeout: 20 * time.Second,
		HostKeyCallback: func(_ string, _ net.Addr, k ssh.PublicKey) error {
			if string(k.Marshal()) != string(pinned.Marshal()) {
				return fmt.Errorf("host key %s is not the pinned one", ssh.FingerprintSHA256(k))
			}
			return nil
		},
	})
	if err != nil {
		return fmt.Errorf("client %d: %w", i, err)
	}
	defer c.Close()
	sess, err := c.NewSession()
	if err != nil {
		return fmt.Errorf("client %d: session: %w", i, err)
	}
	defer sess.Close()
	out, err := sess.Output("hostname")
	if err != nil {
		return fmt.Errorf("client %d: hostname: %w", i, err)
	}
	if got := strings.TrimSpace(string(out)); got != host {
		return fmt.Errorf("client %d: hostname printed %q, want %q", i, got, host)
	}
	return nil
}
