package agentrpc

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"

	agentv1 "github.com/opsconductor/opsconductor/proto/agent/v1"
)

// handshake dials the agent listener with cert and cache and reports
// whether the session was resumed. It reads until the first bytes of the
// server's HTTP/2 preface, so that the session ticket the server sends
// after the handshake has been taken into the cache.
func (e *env) handshake(t *testing.T, cert *tls.Certificate, cache tls.ClientSessionCache) bool {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(mustParse(e.caDER))
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: &tls.Config{
		RootCAs: pool, MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{*cert},
		ClientSessionCache: cache, NextProtos: []string{"h2"}, ServerName: "localhost",
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	conn := c.(*tls.Conn)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); err != nil {
		t.Fatalf("read the server preface: %v", err)
	}
	return conn.ConnectionState().DidResume
}

func TestReconnectingAgentsResumeTheirTLSSession(t *testing.T) {
	e := newEnv(t)
	_, cert := e.enrolled(t, "web-1")
	cache := tls.NewLRUClientSessionCache(4)

	if e.handshake(t, cert, cache) {
		t.Fatal("the first connection resumed a session it never had")
	}
	t.Run("a reconnect resumes", func(t *testing.T) {
		if !e.handshake(t, cert, cache) {
			t.Fatal("the second connection did a full handshake")
		}
	})
	t.Run("a restarted controller still resumes tickets it issued before", func(t *testing.T) {
		// Forget the opened CA, as a new process would: the ticket keys
		// must come from the CA key again, not from this process.
		e.svc.mu.Lock()
		e.svc.ca = nil
		e.svc.mu.Unlock()
		if !e.handshake(t, cert, cache) {
			t.Fatal("a ticket from before the restart was not accepted")
		}
	})
	t.Run("without a ticket the handshake is full", func(t *testing.T) {
		if e.handshake(t, cert, tls.NewLRUClientSessionCache(4)) {
			t.Fatal("resumed without a cached session")
		}
	})
}

func TestAResumedSessionOfARevokedAgentIsRefused(t *testing.T) {
	e := newEnv(t)
	id, cert := e.enrolled(t, "soon-gone")
	cache := tls.NewLRUClientSessionCache(4)
	e.handshake(t, cert, cache)
	if !e.handshake(t, cert, cache) {
		t.Fatal("no resumable session")
	}
	if _, err := e.svc.RevokeAgent(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(mustParse(e.caDER))
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{*cert},
		ClientSessionCache: cache, ServerName: "localhost"}
	conn, err := grpc.NewClient("passthrough:///"+e.addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	wantCode(t, connect(t, agentv1.NewAgentServiceClient(conn)), codes.PermissionDenied)
}

func TestTicketKeysTurnOverDaily(t *testing.T) {
	tk := newTicketKeys([]byte("a secret of the cluster"))
	day := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	today, err := tk.at(day)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := newTicketKeys([]byte("a secret of the cluster")).at(day.Add(time.Hour))
	if today[0] != again[0] || today[1] != again[1] {
		t.Fatal("two controllers with the same secret derived different keys")
	}
	tomorrow, _ := tk.at(day.Add(ticketEpoch))
	if tomorrow[0] == today[0] || tomorrow[1] != today[0] {
		t.Fatal("the next day must seal with a new key and still open yesterday's tickets")
	}
	other, _ := newTicketKeys([]byte("another cluster")).at(day)
	if other[0] == today[0] {
		t.Fatal("keys do not depend on the secret")
	}
}
