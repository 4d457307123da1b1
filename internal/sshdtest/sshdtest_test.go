package sshdtest

import (
	"bytes"
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// login runs `echo ok` on s with auth, pinning want as the host key.
func login(t *testing.T, s *Server, auth ssh.AuthMethod, want ssh.PublicKey) error {
	t.Helper()
	c, err := ssh.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)), &ssh.ClientConfig{
		User: s.User, Auth: []ssh.AuthMethod{auth}, HostKeyCallback: ssh.FixedHostKey(want), Timeout: 10 * time.Second,
	})
	if err != nil {
		return err
	}
	defer c.Close()
	sess, err := c.NewSession()
	if err != nil {
		return err
	}
	defer sess.Close()
	out, err := sess.Output("echo ok")
	if err == nil && !bytes.Equal(out, []byte("ok\n")) {
		t.Fatalf("echo ok printed %q", out)
	}
	return err
}

func TestServer(t *testing.T) {
	s := StartT(t, Options{Password: true})
	signer, err := ssh.ParsePrivateKey([]byte(s.Key))
	if err != nil {
		t.Fatal(err)
	}
	first := s.HostKey()
	if err := login(t, s, ssh.PublicKeys(signer), first); err != nil {
		t.Fatalf("key login: %v", err)
	}
	if s.Password == "" {
		t.Logf("password login not tested: %s", s.NoPassword)
	} else if err := login(t, s, ssh.Password(s.Password), first); err != nil {
		t.Fatalf("password login: %v", err)
	}

	if err := s.Rekey(context.Background()); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(s.HostKey().Marshal(), first.Marshal()) {
		t.Fatal("rekey kept the host key")
	}
	if err := login(t, s, ssh.PublicKeys(signer), first); err == nil {
		t.Fatal("the old host key still matched after a rekey")
	}
	if err := login(t, s, ssh.PublicKeys(signer), s.HostKey()); err != nil {
		t.Fatalf("key login after rekey: %v", err)
	}
	s.Stop()
	s.Stop() // a second stop does nothing
}
