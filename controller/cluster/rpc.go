package cluster

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/opsconductor/opsconductor/controller/problem"
)

// Controller-to-controller RPC: after the protocol byte, each side sends
// length-prefixed JSON frames, one request then one response, repeated. The
// methods are few and small (forwarded writes, read index, discovery, join),
// so a plain framed protocol keeps the dependency surface to what Raft
// already needs.
const (
	rpcMaxFrame = 256 << 20 // a forwarded snapshot restore is the largest frame
	rpcIdle     = 2         // idle connections kept per peer
)

type rpcRequest struct {
	Method string          `json:"method"`
	Body   json.RawMessage `json:"body,omitempty"`
}

type rpcResponse struct {
	Body    json.RawMessage `json:"body,omitempty"`
	Problem *problem.Error  `json:"problem,omitempty"`
	Error   string          `json:"error,omitempty"`
}

// errRPCUnsent marks a call that failed before the peer could have acted on
// it (dial or write failure), so it is safe to retry elsewhere.
var errRPCUnsent = errors.New("request not delivered")

// errRPCNoAnswer marks a call whose request was sent but whose answer never
// came: the peer may or may not have acted on it.
var errRPCNoAnswer = errors.New("no answer")

func writeFrame(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode frame: %w", err)
	}
	if len(b) > rpcMaxFrame {
		return fmt.Errorf("frame of %d bytes exceeds %d", len(b), rpcMaxFrame)
	}
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(b)))
	if _, err := w.Write(append(hdr[:], b...)); err != nil {
		return fmt.Errorf("write frame: %w", err)
	}
	return nil
}

func readFrame(r io.Reader, v any) error {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > rpcMaxFrame {
		return fmt.Errorf("frame of %d bytes exceeds %d", n, rpcMaxFrame)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return fmt.Errorf("read frame: %w", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode frame: %w", err)
	}
	return nil
}

// rpcHandler serves one method; peerID is the verified caller.
type rpcHandler func(ctx context.Context, peerID string, body json.RawMessage) (any, error)

// serveRPC answers requests on conn until it closes or ctx ends.
func serveRPC(ctx context.Context, conn net.Conn, peerID string, handlers map[string]rpcHandler) {
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	br := bufio.NewReader(conn)
	for {
		var req rpcRequest
		if err := readFrame(br, &req); err != nil {
			return
		}
		var resp rpcResponse
		h, ok := handlers[req.Method]
		if !ok {
			resp.Error = fmt.Sprintf("unknown rpc method %q", req.Method)
		} else {
			out, err := h(ctx, peerID, req.Body)
			switch p, isProblem := problem.As(err); {
			case err == nil:
				if resp.Body, err = json.Marshal(out); err != nil {
					resp.Error = fmt.Sprintf("encode %s response: %v", req.Method, err)
				}
			case isProblem:
				resp.Problem = p
			default:
				resp.Error = err.Error()
			}
		}
		if err := writeFrame(conn, resp); err != nil {
			return
		}
	}
}

// rpcClient keeps a few idle connections per peer.
type rpcClient struct {
	dial func(ctx context.Context, addr string) (net.Conn, error)

	mu   sync.Mutex
	idle map[string][]net.Conn
}

func newRPCClient(dial func(ctx context.Context, addr string) (net.Conn, error)) *rpcClient {
	return &rpcClient{dial: dial, idle: map[string][]net.Conn{}}
}

// call sends one request and decodes the response into out. Errors wrap
// errRPCUnsent when the request never reached the peer.
func (c *rpcClient) call(ctx context.Context, addr, method string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("rpc %s: encode: %w", method, err)
	}
	conn, err := c.get(ctx, addr)
	if err != nil {
		return fmt.Errorf("rpc %s to %s: %w: %w", method, addr, errRPCUnsent, err)
	}
	resp, sent, err := roundTrip(ctx, conn, rpcRequest{Method: method, Body: body})
	if err != nil {
		conn.Close()
		switch {
		case !sent:
			return fmt.Errorf("rpc %s to %s: %w: %w", method, addr, errRPCUnsent, err)
		case ctx.Err() != nil:
			return fmt.Errorf("rpc %s to %s: %w: %w", method, addr, errRPCNoAnswer, ctx.Err())
		}
		// The request went out and no answer came back: the peer may
		// have acted on it. Only the caller knows whether a retry is safe.
		return fmt.Errorf("rpc %s to %s: %w: %w", method, addr, errRPCNoAnswer, err)
	}
	c.put(addr, conn)
	switch {
	case resp.Problem != nil:
		return resp.Problem
	case resp.Error != "":
		return fmt.Errorf("rpc %s to %s: %s", method, addr, resp.Error)
	case out != nil:
		if err := json.Unmarshal(resp.Body, out); err != nil {
			return fmt.Errorf("rpc %s to %s: decode: %w", method, addr, err)
		}
	}
	return nil
}

// roundTrip sends req and reads the answer; sent reports whether the
// request may have reached the peer.
func roundTrip(ctx context.Context, conn net.Conn, req rpcRequest) (resp rpcResponse, sent bool, err error) {
	// Unblock I/O when ctx ends; the connection is discarded then.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := writeFrame(conn, req); err != nil {
		return resp, false, err
	}
	err = readFrame(conn, &resp)
	return resp, true, err
}

// get returns a live pooled connection or dials a new one. A pooled
// connection whose peer has gone (it restarted, or was killed) shows EOF at
// once; it is discarded here, before a request is written to it, because
// once written a request's fate is unknown.
func (c *rpcClient) get(ctx context.Context, addr string) (net.Conn, error) {
	for {
		c.mu.Lock()
		conns := c.idle[addr]
		if len(conns) == 0 {
			c.mu.Unlock()
			return c.dial(ctx, addr)
		}
		conn := conns[len(conns)-1]
		c.idle[addr] = conns[:len(conns)-1]
		c.mu.Unlock()
		if alive(conn) {
			return conn, nil
		}
		conn.Close()
	}
}

// alive peeks at an idle connection: an idle peer sends nothing, so a read
// that times out at once means it is still there. crypto/tls keeps a
// connection usable after a read deadline passes.
func alive(conn net.Conn) bool {
	if err := conn.SetReadDeadline(time.Now().Add(time.Millisecond)); err != nil {
		return false
	}
	var b [1]byte
	_, err := conn.Read(b[:])
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		return false
	}
	return conn.SetReadDeadline(time.Time{}) == nil
}

func (c *rpcClient) put(addr string, conn net.Conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.idle[addr]) >= rpcIdle {
		conn.Close()
		return
	}
	c.idle[addr] = append(c.idle[addr], conn)
}

func (c *rpcClient) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, conns := range c.idle {
		for _, conn := range conns {
			conn.Close()
		}
	}
	c.idle = map[string][]net.Conn{}
}
