package faultproxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// echoServer answers every line with the same line, on a real loopback
// socket, until the test ends.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	conns := make(chan net.Conn, 64)
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns <- c
			go func() { _, _ = io.Copy(c, c); c.Close() }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		close(conns)
		for c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

func startProxy(t *testing.T, target string) *Proxy {
	t.Helper()
	p, err := Listen("127.0.0.1:0", target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// roundTrip sends one line and reads the answer.
func roundTrip(c net.Conn, r *bufio.Reader, msg string) (string, error) {
	if _, err := fmt.Fprintf(c, "%s\n", msg); err != nil {
		return "", err
	}
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	return line[:len(line)-1], nil
}

func dial(t *testing.T, p *Proxy) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	// A bound on every read, so that a regression fails the test rather
	// than hanging it; no assertion depends on this timing out.
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	return c, bufio.NewReader(c)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond) // a poll interval, not synchronisation
	}
}

// isClosed reports whether the connection ends (EOF or reset) on the next
// read, before any data.
func isClosed(r *bufio.Reader) error {
	_, err := r.ReadByte()
	switch {
	case err == nil:
		return errors.New("read data from a connection that should be closed")
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		return nil
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("connection still open: %w", err)
	}
	return nil // a reset is a close too
}

func TestProxyForwardsBothWays(t *testing.T) {
	p := startProxy(t, echoServer(t))
	c, r := dial(t, p)
	for i := range 3 {
		msg := fmt.Sprintf("hello %d", i)
		got, err := roundTrip(c, r, msg)
		if err != nil || got != msg {
			t.Fatalf("round trip %d: %q, %v", i, got, err)
		}
	}
	if st := p.Stats(); st.Accepted != 1 || st.Forwarded == 0 || st.Dropped != 0 || st.Live != 1 {
		t.Fatalf("stats after three round trips: %+v", st)
	}
}

func TestCutAndHeal(t *testing.T) {
	tests := []struct {
		name string
		mode Mode
	}{
		{"a refused link resets live and new connections", Refuse},
		{"a blackholed link drops bytes and closes what it dropped on heal", Blackhole},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := startProxy(t, echoServer(t))
			live, liveR := dial(t, p)
			if got, err := roundTrip(live, liveR, "before"); err != nil || got != "before" {
				t.Fatalf("before the cut: %q, %v", got, err)
			}
			p.Cut(tt.mode)
			if !p.IsCut() {
				t.Fatal("IsCut is false after Cut")
			}
			fresh, freshR := dial(t, p)
			switch tt.mode {
			case Refuse:
				if err := isClosed(liveR); err != nil {
					t.Fatalf("the live connection: %v", err)
				}
				if err := isClosed(freshR); err != nil {
					t.Fatalf("a connection made while cut: %v", err)
				}
				waitFor(t, "the refusal to be counted", func() bool { return p.Stats().Refused == 1 })
			case Blackhole:
				before := p.Stats().Dropped
				if _, err := fmt.Fprintf(live, "lost\n"); err != nil {
					t.Fatal(err)
				}
				if _, err := fmt.Fprintf(fresh, "lost too\n"); err != nil {
					t.Fatal(err)
				}
				// Both writes were read by the proxy and thrown away, so
				// the echo server never saw them and nothing can come back.
				want := before + int64(len("lost\n")+len("lost too\n"))
				waitFor(t, "the bytes to be dropped", func() bool { return p.Stats().Dropped == want })
				if st := p.Stats(); st.Live != 2 {
					t.Fatalf("blackholed connections should stay open: %+v", st)
				}
			}
			p.Heal()
			if p.IsCut() {
				t.Fatal("IsCut is true after Heal")
			}
			if tt.mode == Blackhole {
				// Heal closes the links that lost bytes rather than
				// resuming a stream with a hole in it.
				if err := isClosed(liveR); err != nil {
					t.Fatalf("the blackholed live connection after heal: %v", err)
				}
				if err := isClosed(freshR); err != nil {
					t.Fatalf("the connection made while blackholed, after heal: %v", err)
				}
			}
			after, afterR := dial(t, p)
			if got, err := roundTrip(after, afterR, "after"); err != nil || got != "after" {
				t.Fatalf("after heal: %q, %v", got, err)
			}
		})
	}
}

func TestBlackholeClosesEveryLinkItCaught(t *testing.T) {
	p := startProxy(t, echoServer(t))
	c, r := dial(t, p)
	if got, err := roundTrip(c, r, "one"); err != nil || got != "one" {
		t.Fatalf("before: %q, %v", got, err)
	}
	p.Cut(Blackhole)
	p.Heal()
	// Cut marks the links it catches as lost: their in-flight bytes may
	// already be gone. This one had none, but the proxy cannot know, so it
	// is closed. The rule errs on the side of a reset, never a hole.
	if err := isClosed(r); err != nil {
		t.Fatalf("a link caught by a blackhole cut: %v", err)
	}
}

func TestRefusedTargetClosesTheClient(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	p := startProxy(t, dead)
	_, r := dial(t, p)
	if err := isClosed(r); err != nil {
		t.Fatalf("a connection to a dead target: %v", err)
	}
}

func TestHalfCloseIsPassedOn(t *testing.T) {
	p := startProxy(t, echoServer(t))
	c, r := dial(t, p)
	if _, err := io.WriteString(c, "last words\n"); err != nil {
		t.Fatal(err)
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	// The echo server's copy ends at our EOF and it closes, so the answer
	// arrives in full and then the stream ends.
	got, err := io.ReadAll(r)
	if err != nil || string(got) != "last words\n" {
		t.Fatalf("after a half-close: %q, %v", got, err)
	}
}

func TestCloseEndsEverything(t *testing.T) {
	p, err := Listen("127.0.0.1:0", echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	_, r := dial(t, p)
	waitFor(t, "the connection to be live", func() bool { return p.Stats().Live == 1 })
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := isClosed(r); err != nil {
		t.Fatalf("a connection after Close: %v", err)
	}
	if _, err := net.Dial("tcp", p.Addr()); err == nil {
		t.Fatal("the listener still accepts after Close")
	}
}

func TestListenRejectsBadInput(t *testing.T) {
	tests := []struct{ name, listen, target, want string }{
		{"an empty target", "127.0.0.1:0", "", "target address is empty"},
		{"an address that cannot be listened on", "127.0.0.1:99999", "127.0.0.1:1", "listen on 127.0.0.1:99999"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Listen(tt.listen, tt.target)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Listen(%q, %q) = %v; want an error with %q", tt.listen, tt.target, err, tt.want)
			}
		})
	}
}
