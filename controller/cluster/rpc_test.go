package cluster

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"sync/atomic"
	"testing"
)

// rpcPeer is a plain-TCP stand-in for a peer's RPC side; behave decides
// what happens to each request on each connection.
type rpcPeer struct {
	ln       net.Listener
	accepted atomic.Int32
}

func newRPCPeer(t *testing.T, behave func(conn net.Conn, req rpcRequest) bool) *rpcPeer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &rpcPeer{ln: ln}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			p.accepted.Add(1)
			go func() {
				defer conn.Close()
				br := bufio.NewReader(conn)
				for {
					var req rpcRequest
					if readFrame(br, &req) != nil || !behave(conn, req) {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return p
}

func plainClient() *rpcClient {
	return newRPCClient(func(ctx context.Context, addr string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	})
}

func echo(conn net.Conn, req rpcRequest) bool {
	return writeFrame(conn, rpcResponse{Body: req.Body}) == nil
}

func TestRPCClient(t *testing.T) {
	t.Run("a request the peer took but never answered is reported as unanswered, not retried", func(t *testing.T) {
		var seen atomic.Int32
		p := newRPCPeer(t, func(net.Conn, rpcRequest) bool { seen.Add(1); return false })
		c := plainClient()
		defer c.close()
		err := c.call(context.Background(), p.ln.Addr().String(), "apply", "x", nil)
		if !errors.Is(err, errRPCNoAnswer) || errors.Is(err, errRPCUnsent) {
			t.Fatalf("got %v, want errRPCNoAnswer", err)
		}
		if retryable(err) {
			t.Fatal("an unanswered request must not be retryable")
		}
		if seen.Load() != 1 {
			t.Fatalf("peer saw %d requests, want exactly 1", seen.Load())
		}
	})

	t.Run("a refused dial is unsent and retryable", func(t *testing.T) {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		addr := ln.Addr().String()
		ln.Close()
		c := plainClient()
		err := c.call(context.Background(), addr, "apply", "x", nil)
		if !errors.Is(err, errRPCUnsent) || !retryable(err) {
			t.Fatalf("got %v, want a retryable unsent error", err)
		}
	})

	t.Run("a pooled connection the peer closed while idle is replaced before use", func(t *testing.T) {
		p := newRPCPeer(t, func(conn net.Conn, req rpcRequest) bool {
			echo(conn, req)
			return false // answer, then close the connection while it idles in the pool
		})
		c := plainClient()
		defer c.close()
		var out string
		for i := range 3 {
			if err := c.call(context.Background(), p.ln.Addr().String(), "status", "hello", &out); err != nil {
				t.Fatalf("call %d: %v", i, err)
			}
		}
		if out != "hello" || p.accepted.Load() != 3 {
			t.Fatalf("out %q, %d connections; want each call on a fresh one", out, p.accepted.Load())
		}
	})

	t.Run("a live pooled connection is reused", func(t *testing.T) {
		p := newRPCPeer(t, echo)
		c := plainClient()
		defer c.close()
		for range 5 {
			var out json.RawMessage
			if err := c.call(context.Background(), p.ln.Addr().String(), "status", 1, &out); err != nil {
				t.Fatal(err)
			}
		}
		if p.accepted.Load() != 1 {
			t.Fatalf("%d connections for 5 sequential calls, want 1", p.accepted.Load())
		}
	})
}
