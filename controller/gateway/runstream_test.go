package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/opsconductor/opsconductor/controller/automation/live"
	"github.com/opsconductor/opsconductor/controller/cluster"
	"github.com/opsconductor/opsconductor/controller/identity"
	"github.com/opsconductor/opsconductor/controller/problem"
)

// streamWait bounds every wait in these tests; a working stream answers in
// milliseconds.
const streamWait = 10 * time.Second

// testRunAccess lets any principal see the runs r1 and r2 and nothing else.
func testRunAccess(_ context.Context, p *identity.Principal, runID string) error {
	if p == nil {
		return errors.New("no principal")
	}
	if runID == "r1" || runID == "r2" {
		return nil
	}
	return problem.NotFound("run", runID)
}

func leaderIs(id, addr string) func(context.Context) (cluster.LeaderInfo, error) {
	return func(context.Context) (cluster.LeaderInfo, error) {
		return cluster.LeaderInfo{ID: id, HTTPAddr: addr}, nil
	}
}

// wsUpgradeHeader makes an in-process request a websocket handshake.
var wsUpgradeHeader = map[string]string{
	"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
	"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
}

func withHeaders(hs ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, h := range hs {
		for k, v := range h {
			out[k] = v
		}
	}
	return out
}

// runStreamCases are the stream's answers that are plain HTTP; the 101
// needs a real connection and is in TestRunStream*.
func runStreamCases() []routeCase {
	wire := func(leader func(context.Context) (cluster.LeaderInfo, error)) func(*fixture) {
		return func(f *fixture) {
			f.srv.runStream = &RunStream{Hub: live.NewHub(live.Config{}), Access: testRunAccess, Leader: leaderIs("n1", "")}
			if leader != nil {
				f.srv.runStream.Leader = leader
			}
		}
	}
	target := "/api/v1/runs/r1/stream"
	return []routeCase{
		{name: "the live stream answers 503 until it is wired", method: "GET", target: target, header: wsUpgradeHeader, want: 503},
		{name: "the live stream names every bad query parameter", method: "GET", target: target + "?after=-1&epoch=XYZ",
			header: wsUpgradeHeader, setup: wire(nil), want: 400, check: func(t *testing.T, rec *responseUnderTest) {
				var env envelope
				if err := json.Unmarshal(rec.body, &env); err != nil {
					t.Fatal(err)
				}
				var fields []string
				for _, d := range env.Error.Details {
					fields = append(fields, d.Field)
				}
				if !slices.Equal(fields, []string{"after", "epoch"}) {
					t.Fatalf("problem fields = %v, want [after epoch]: %s", fields, rec.body)
				}
			}},
		{name: "the live stream needs a websocket handshake", method: "GET", target: target, setup: wire(nil), want: 400},
		{name: "the live stream hides a run the caller may not see", method: "GET", target: "/api/v1/runs/hidden/stream",
			header: wsUpgradeHeader, setup: wire(nil), want: 404},
		{name: "the live stream refuses a page from another origin", method: "GET", target: target,
			header: withHeaders(wsUpgradeHeader, map[string]string{"Origin": "https://evil.example"}), setup: wire(nil), want: 403},
		{name: "the live stream answers 503 without a leader", method: "GET", target: target, header: wsUpgradeHeader,
			setup: wire(leaderIs("", "")), want: 503},
		{name: "the live stream does not forward a forwarded request again", method: "GET", target: target,
			header: withHeaders(wsUpgradeHeader, map[string]string{headerForwardedBy: "n3"}),
			setup:  wire(leaderIs("n2", "10.0.0.2:8080")), want: 503},
		{name: "the live stream answers 503 when the leader cannot be asked", method: "GET", target: target, header: wsUpgradeHeader,
			setup: wire(func(context.Context) (cluster.LeaderInfo, error) {
				return cluster.LeaderInfo{}, errors.New("rpc timeout")
			}), want: 503},
	}
}

// streamServer is a gateway serving the live stream over a real listener.
type streamServer struct {
	f   *fixture
	hub *live.Hub
	srv *httptest.Server
}

func newStreamServer(t *testing.T, hubCfg live.Config, tune func(*RunStream), opts ...func(*Deps)) *streamServer {
	t.Helper()
	return newStreamServerWith(t, Config{}, hubCfg, tune, opts...)
}

func newStreamServerWith(t *testing.T, cfg Config, hubCfg live.Config, tune func(*RunStream), opts ...func(*Deps)) *streamServer {
	t.Helper()
	ss := &streamServer{hub: live.NewHub(hubCfg)}
	rs := &RunStream{Hub: ss.hub, Access: testRunAccess, Leader: leaderIs("n1", "")}
	if tune != nil {
		tune(rs)
	}
	opts = append([]func(*Deps){func(d *Deps) { d.RunStream = rs }}, opts...)
	ss.f = newFixture(t, cfg, opts...)
	ss.srv = httptest.NewServer(ss.f.srv.Handler())
	t.Cleanup(ss.srv.Close)
	return ss
}

func (ss *streamServer) url(path string) string {
	return "ws" + strings.TrimPrefix(ss.srv.URL, "http") + path
}

func (ss *streamServer) bearer() http.Header {
	return http.Header{"Authorization": {"Bearer " + ss.f.ident.adminToken}}
}

// dial opens a stream; the connection is closed when the test ends.
func dial(t *testing.T, d *websocket.Dialer, url string, h http.Header) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	if d == nil {
		d = &websocket.Dialer{HandshakeTimeout: streamWait}
	}
	conn, resp, err := d.Dial(url, h)
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if conn != nil {
		t.Cleanup(func() { _ = conn.Close() })
	}
	return conn, resp, err
}

func mustDial(t *testing.T, ss *streamServer, path string) *websocket.Conn {
	t.Helper()
	conn, resp, err := dial(t, nil, ss.url(path), ss.bearer())
	if err != nil {
		t.Fatalf("dial %s: %v (%s)", path, err, status(resp))
	}
	return conn
}

func status(resp *http.Response) string {
	if resp == nil {
		return "no response"
	}
	return resp.Status
}

func readEvent(t *testing.T, conn *websocket.Conn) live.Event {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(streamWait))
	kind, b, err := conn.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if kind != websocket.TextMessage {
		t.Fatalf("message kind %d, want text", kind)
	}
	var ev live.Event
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatalf("event %s: %v", b, err)
	}
	return ev
}

func expectEvents(t *testing.T, conn *websocket.Conn, types []string, seqs []uint64) {
	t.Helper()
	for i := range types {
		ev := readEvent(t, conn)
		if ev.Type != types[i] || ev.Seq != seqs[i] {
			t.Fatalf("event %d = {%s %d}, want {%s %d}", i, ev.Type, ev.Seq, types[i], seqs[i])
		}
	}
}

func expectClose(t *testing.T, conn *websocket.Conn, code int, text string) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(streamWait))
	_, _, err := conn.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != code || (text != "" && ce.Text != text) {
		t.Fatalf("read = %v, want close %d %q", err, code, text)
	}
}

// logText is everything logged so far.
func logText(b *syncBuffer) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor polls cond until it holds or streamWait passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(streamWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRunStreamAuthentication(t *testing.T) {
	ss := newStreamServer(t, live.Config{}, nil)
	token := ss.f.ident.adminToken
	cases := []struct {
		name         string
		path         string
		header       http.Header
		subprotocols []string
		wantStatus   int
		wantProtocol string
	}{
		{name: "a bearer header authenticates the CLI", path: "/api/v1/runs/r1/stream", header: ss.bearer(), wantStatus: 101},
		{name: "a browser authenticates with the subprotocol pair and gets ours back", path: "/api/v1/runs/r1/stream",
			subprotocols: []string{streamSubprotocol, streamBearerPrefix + token}, wantStatus: 101, wantProtocol: streamSubprotocol},
		{name: "no token is a 401", path: "/api/v1/runs/r1/stream", wantStatus: 401},
		{name: "a bad token in the subprotocol is a 401", path: "/api/v1/runs/r1/stream",
			subprotocols: []string{streamSubprotocol, streamBearerPrefix + "forged"}, wantStatus: 401},
		{name: "a bearer subprotocol without ours is a 401", path: "/api/v1/runs/r1/stream",
			subprotocols: []string{streamBearerPrefix + token}, wantStatus: 401},
		{name: "two bearer subprotocols are a 401", path: "/api/v1/runs/r1/stream",
			subprotocols: []string{streamSubprotocol, streamBearerPrefix + token, streamBearerPrefix + token}, wantStatus: 401},
		{name: "a client that accepts gzip still gets a websocket", path: "/api/v1/runs/r1/stream",
			header: http.Header{"Authorization": {"Bearer " + token}, "Accept-Encoding": {"gzip, deflate"}}, wantStatus: 101},
		{name: "a run the caller may not see is a 404", path: "/api/v1/runs/hidden/stream", header: ss.bearer(), wantStatus: 404},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := &websocket.Dialer{HandshakeTimeout: streamWait, Subprotocols: tc.subprotocols}
			conn, resp, err := dial(t, d, ss.url(tc.path), tc.header)
			if resp == nil {
				t.Fatalf("dial: %v", err)
			}
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status = %d, want %d (%v)", resp.StatusCode, tc.wantStatus, err)
			}
			if tc.wantStatus == 401 && resp.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			if conn == nil {
				return
			}
			if got := conn.Subprotocol(); got != tc.wantProtocol {
				t.Errorf("subprotocol = %q, want %q", got, tc.wantProtocol)
			}
			if ev := readEvent(t, conn); ev.Type != live.TypeHello {
				t.Fatalf("first event %s, want hello", ev.Type)
			}
		})
	}
	t.Run("only websocket routes read a token from the subprotocol header", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, ss.srv.URL+"/api/v1/me", nil)
		req.Header.Set(headerWSProtocol, streamSubprotocol+", "+streamBearerPrefix+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("GET /api/v1/me with a subprotocol token = %d, want 401", resp.StatusCode)
		}
	})
	t.Run("the token is never logged", func(t *testing.T) {
		if strings.Contains(logText(ss.f.logs), strings.Split(token, ".")[2]) {
			t.Fatal("a log line holds the token's signature")
		}
	})
}

func TestRunStreamOrigin(t *testing.T) {
	ss := newStreamServerWith(t, Config{CORSAllowedOrigins: []string{"https://ui.example"}}, live.Config{}, nil)
	cases := []struct {
		name   string
		origin func(ss *streamServer) string
		want   int
	}{
		{name: "a page served by the controller itself may connect", origin: func(ss *streamServer) string { return ss.srv.URL }, want: 101},
		{name: "an origin CORS allows may connect", origin: func(*streamServer) string { return "https://ui.example" }, want: 101},
		{name: "a page from another origin may not", origin: func(*streamServer) string { return "https://evil.example" }, want: 403},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := ss.bearer()
			h.Set("Origin", tc.origin(ss))
			_, resp, err := dial(t, nil, ss.url("/api/v1/runs/r1/stream"), h)
			if resp == nil || resp.StatusCode != tc.want {
				t.Fatalf("status %s, want %d (%v)", status(resp), tc.want, err)
			}
		})
	}
}

func TestRunStreamEvents(t *testing.T) {
	t.Run("events arrive in order and the end closes the stream normally", func(t *testing.T) {
		ss := newStreamServer(t, live.Config{}, nil)
		conn := mustDial(t, ss, "/api/v1/runs/r1/stream")
		expectEvents(t, conn, []string{live.TypeHello}, []uint64{0})
		ss.hub.Publish("r1", live.TypeRun, map[string]string{"status": "running"})
		ss.hub.Publish("r1", live.TypeLog, map[string]string{"data": "hello\n"})
		ss.hub.End("r1")
		expectEvents(t, conn, []string{live.TypeRun, live.TypeLog, live.TypeEnd}, []uint64{1, 2, 3})
		expectClose(t, conn, websocket.CloseNormalClosure, "run ended")
		waitFor(t, "the stream's access log line, with status 101", func() bool {
			for _, l := range ss.f.logs.lines(t) {
				if l["msg"] == "http request" && l["route"] == "/api/v1/runs/{id}/stream" {
					return l["status"] == float64(http.StatusSwitchingProtocols)
				}
			}
			return false
		})
	})
	t.Run("a client resumes after the last seq it handled", func(t *testing.T) {
		ss := newStreamServer(t, live.Config{}, nil)
		for i := range 5 {
			ss.hub.Publish("r1", live.TypeLog, map[string]int{"n": i})
		}
		first := mustDial(t, ss, "/api/v1/runs/r1/stream?after=2")
		hello := readEvent(t, first)
		var h live.Hello
		if err := json.Unmarshal(hello.Data, &h); err != nil || hello.Seq != 2 || h.Head != 5 {
			t.Fatalf("hello = %+v %s", hello, hello.Data)
		}
		expectEvents(t, first, []string{live.TypeLog, live.TypeLog, live.TypeLog}, []uint64{3, 4, 5})
		again := mustDial(t, ss, "/api/v1/runs/r1/stream?after=4&epoch="+h.Epoch)
		expectEvents(t, again, []string{live.TypeHello, live.TypeLog}, []uint64{4, 5})
	})
	t.Run("a client message over 1 KiB closes the stream", func(t *testing.T) {
		ss := newStreamServer(t, live.Config{}, nil)
		conn := mustDial(t, ss, "/api/v1/runs/r1/stream")
		readEvent(t, conn)
		if err := conn.WriteMessage(websocket.TextMessage, []byte(strings.Repeat("x", 2048))); err != nil {
			t.Fatal(err)
		}
		expectClose(t, conn, websocket.CloseMessageTooBig, "")
	})
	t.Run("small client messages are ignored", func(t *testing.T) {
		ss := newStreamServer(t, live.Config{}, nil)
		conn := mustDial(t, ss, "/api/v1/runs/r1/stream")
		readEvent(t, conn)
		if err := conn.WriteMessage(websocket.TextMessage, []byte(`{"hi":1}`)); err != nil {
			t.Fatal(err)
		}
		ss.hub.Publish("r1", live.TypeLog, "after the client spoke")
		expectEvents(t, conn, []string{live.TypeLog}, []uint64{1})
	})
}

func TestRunStreamKeepAlive(t *testing.T) {
	fast := func(rs *RunStream) {
		rs.PingInterval, rs.PongWait, rs.WriteTimeout = 20*time.Millisecond, 150*time.Millisecond, time.Second
	}
	t.Run("a client that answers pings stays connected past the pong wait", func(t *testing.T) {
		ss := newStreamServer(t, live.Config{}, fast)
		conn := mustDial(t, ss, "/api/v1/runs/r1/stream")
		pings := make(chan struct{}, 64)
		conn.SetPingHandler(func(data string) error {
			select {
			case pings <- struct{}{}:
			default:
			}
			return conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
		})
		events := readLoop(t, conn)
		// 20 pings at 20 ms span well over the 150 ms pong wait.
		for i := range 20 {
			select {
			case <-pings:
			case <-time.After(streamWait):
				t.Fatalf("ping %d did not come", i)
			}
		}
		ss.hub.Publish("r1", live.TypeLog, "still here")
		for ev := range events {
			if ev.err != nil {
				t.Fatalf("the connection dropped: %v", ev.err)
			}
			if ev.ev.Type == live.TypeLog {
				return
			}
		}
	})
	t.Run("a client that never answers is dropped", func(t *testing.T) {
		ss := newStreamServer(t, live.Config{}, fast)
		conn := mustDial(t, ss, "/api/v1/runs/r1/stream")
		conn.SetPingHandler(func(string) error { return nil })
		start := time.Now()
		for ev := range readLoop(t, conn) {
			if ev.err != nil {
				if d := time.Since(start); d < 100*time.Millisecond {
					t.Fatalf("dropped after %v, before the pong wait", d)
				}
				return
			}
		}
	})
}

type readResult struct {
	ev  live.Event
	err error
}

// readLoop reads the connection until it fails; the channel closes then.
// The test's cleanup closes the connection, which ends the loop.
func readLoop(t *testing.T, conn *websocket.Conn) <-chan readResult {
	t.Helper()
	out := make(chan readResult, 1024)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(out)
		for {
			_ = conn.SetReadDeadline(time.Now().Add(streamWait))
			_, b, err := conn.ReadMessage()
			if err != nil {
				out <- readResult{err: err}
				return
			}
			var ev live.Event
			if err := json.Unmarshal(b, &ev); err != nil {
				out <- readResult{err: err}
				return
			}
			out <- readResult{ev: ev}
		}
	}()
	t.Cleanup(func() { _ = conn.Close(); <-done })
	return out
}

func TestRunStreamSlowClient(t *testing.T) {
	const (
		events    = 400
		chunk     = 32 << 10
		ringBytes = 1 << 20
	)
	// The writer blocks while the client does not read; the publishing
	// (slow under the race detector) must not outlast its write timeout.
	ss := newStreamServer(t, live.Config{QueueSize: 16, RingBytes: ringBytes}, func(rs *RunStream) { rs.WriteTimeout = time.Minute })
	// A fixed 256 KiB receive buffer (no autotuning) bounds what the
	// kernels can hold to a few MiB, well under the 12.5 MiB published,
	// so the server's writer must block while the client is not reading.
	// (Far smaller, under the loopback MSS, and TCP stalls on its persist
	// timer.)
	d := &websocket.Dialer{HandshakeTimeout: streamWait, NetDialContext: (&net.Dialer{
		Control: func(_, _ string, c syscall.RawConn) error {
			var err error
			if cerr := c.Control(func(fd uintptr) {
				err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 256<<10)
			}); cerr != nil {
				return cerr
			}
			return err
		}}).DialContext}
	conn, resp, err := dial(t, d, ss.url("/api/v1/runs/r1/stream"), ss.bearer())
	if err != nil {
		t.Fatalf("dial: %v (%s)", err, status(resp))
	}
	readEvent(t, conn) // hello

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	body := strings.Repeat("x", chunk)
	for i := range events {
		ss.hub.Publish("r1", live.TypeLog, map[string]any{"n": i, "data": body})
	}
	ss.hub.End("r1")
	runtime.GC()
	runtime.ReadMemStats(&after)
	// 12.5 MiB went through the hub; what it keeps is its ring (1 MiB)
	// plus the message in flight, whatever the client does.
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 4*ringBytes {
		t.Errorf("the heap grew by %d KiB while a client did not read, want under %d", grown>>10, 4*ringBytes>>10)
	}
	t.Logf("published %d KiB; the heap grew by %d KiB", events*chunk>>10, (int64(after.HeapAlloc)-int64(before.HeapAlloc))>>10)

	// Read everything now: every seq is either delivered or inside a gap,
	// exactly once and in order, then the end.
	next := uint64(1)
	gaps := 0
	for {
		ev := readEvent(t, conn)
		switch ev.Type {
		case live.TypeGap:
			if ev.From != next || ev.To < ev.From {
				t.Fatalf("gap %d..%d, want one starting at %d", ev.From, ev.To, next)
			}
			gaps++
			next = ev.To + 1
		case live.TypeLog:
			if ev.Seq != next {
				t.Fatalf("seq %d, want %d", ev.Seq, next)
			}
			next++
		case live.TypeEnd:
			if ev.Seq != events+1 || next != events+1 {
				t.Fatalf("end at seq %d after %d, want %d", ev.Seq, next-1, events+1)
			}
			if gaps == 0 {
				t.Fatal("a client that did not read got every event: the server buffered without bound")
			}
			expectClose(t, conn, websocket.CloseNormalClosure, "run ended")
			return
		default:
			t.Fatalf("unexpected %s", ev.Type)
		}
	}
}

func TestRunStreamFollowerProxiesToLeader(t *testing.T) {
	leader := newStreamServer(t, live.Config{}, nil)
	leaderAddr := strings.TrimPrefix(leader.srv.URL, "http://")
	follower := newStreamServer(t, live.Config{}, func(rs *RunStream) { rs.Leader = leaderIs("n1", leaderAddr) },
		func(d *Deps) { d.NodeID = "n2" })
	t.Run("by header", func(t *testing.T) {
		conn := mustDial(t, follower, "/api/v1/runs/r1/stream")
		expectEvents(t, conn, []string{live.TypeHello}, []uint64{0})
		leader.hub.Publish("r1", live.TypeLog, "from the leader")
		expectEvents(t, conn, []string{live.TypeLog}, []uint64{1})
	})
	t.Run("by subprotocol, with the page's origin", func(t *testing.T) {
		d := &websocket.Dialer{HandshakeTimeout: streamWait,
			Subprotocols: []string{streamSubprotocol, streamBearerPrefix + follower.f.ident.adminToken}}
		conn, resp, err := dial(t, d, follower.url("/api/v1/runs/r1/stream?after=1"), http.Header{"Origin": {follower.srv.URL}})
		if err != nil {
			t.Fatalf("dial: %v (%s)", err, status(resp))
		}
		if conn.Subprotocol() != streamSubprotocol {
			t.Fatalf("subprotocol %q", conn.Subprotocol())
		}
		expectEvents(t, conn, []string{live.TypeHello}, []uint64{1})
		leader.hub.End("r1")
		expectEvents(t, conn, []string{live.TypeEnd}, []uint64{2})
		expectClose(t, conn, websocket.CloseNormalClosure, "run ended")
	})
	t.Run("the leader still checks access", func(t *testing.T) {
		_, resp, _ := dial(t, nil, follower.url("/api/v1/runs/hidden/stream"), follower.bearer())
		if resp == nil || resp.StatusCode != http.StatusNotFound {
			t.Fatalf("status %s, want 404", status(resp))
		}
	})
	t.Run("neither node logs the token", func(t *testing.T) {
		sig := strings.Split(follower.f.ident.adminToken, ".")[2]
		for name, logs := range map[string]*syncBuffer{"leader": leader.f.logs, "follower": follower.f.logs} {
			if strings.Contains(logText(logs), sig) {
				t.Errorf("the %s logged the token", name)
			}
		}
	})
	t.Run("an unreachable leader is a 503", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		dead := ln.Addr().String()
		_ = ln.Close()
		orphan := newStreamServer(t, live.Config{}, func(rs *RunStream) { rs.Leader = leaderIs("n1", dead) },
			func(d *Deps) { d.NodeID = "n3" })
		_, resp, _ := dial(t, nil, orphan.url("/api/v1/runs/r1/stream"), orphan.bearer())
		if resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("status %s, want 503", status(resp))
		}
	})
}

func TestRunStreamLeadershipChange(t *testing.T) {
	ss := newStreamServer(t, live.Config{}, nil)
	conn := mustDial(t, ss, "/api/v1/runs/r1/stream")
	readEvent(t, conn)
	ss.hub.Reset()
	expectClose(t, conn, websocket.CloseServiceRestart, "leadership moved: reconnect")
}

func TestRunStreamServerShutdown(t *testing.T) {
	hub := live.NewHub(live.Config{})
	f := newFixture(t, Config{ShutdownTimeout: time.Second}, func(d *Deps) {
		d.RunStream = &RunStream{Hub: hub, Access: testRunAccess, Leader: leaderIs("n1", "")}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- f.srv.Serve(ctx, ln) }()
	h := http.Header{"Authorization": {"Bearer " + f.ident.adminToken}}
	conn, resp, err := dial(t, nil, "ws://"+ln.Addr().String()+"/api/v1/runs/r1/stream", h)
	if err != nil {
		t.Fatalf("dial: %v (%s)", err, status(resp))
	}
	readEvent(t, conn)
	cancel()
	expectClose(t, conn, websocket.CloseGoingAway, "server shutting down")
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
}

func TestParseAfter(t *testing.T) {
	cases := []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"0", 0, true}, {"42", 42, true}, {"18446744073709551615", 1<<64 - 1, true},
		{"18446744073709551616", 0, false}, {"-1", 0, false}, {"+1", 0, false}, {" 1", 0, false},
		{"1e3", 0, false}, {"0x10", 0, false}, {"", 0, false},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%q", tc.in), func(t *testing.T) {
			got, err := parseAfter(tc.in)
			if (err == nil) != tc.ok || got != tc.want {
				t.Fatalf("parseAfter(%q) = %d, %v; want %d, ok %v", tc.in, got, err, tc.want, tc.ok)
			}
		})
	}
}

func FuzzStreamPosition(f *testing.F) {
	for _, s := range []string{"", "0", "17", "18446744073709551615", "18446744073709551616", "-1", "٣", "1 ", "abc"} {
		f.Add(s, "")
	}
	f.Add("5", "0123456789abcdef")
	f.Add("5", "XYZ")
	f.Fuzz(func(t *testing.T, after, epoch string) {
		q := map[string][]string{"after": {after}, "epoch": {epoch}}
		pos, err := streamPosition(q)
		if err != nil {
			p, ok := problem.As(err)
			if !ok || p.Kind != problem.KindInvalid {
				t.Fatalf("error %v is not an invalid-input problem", err)
			}
			return
		}
		if after != "" && fmt.Sprint(pos.After) != strings.TrimLeft(after, "0") && !(pos.After == 0 && strings.Trim(after, "0") == "") {
			t.Fatalf("after %q parsed as %d", after, pos.After)
		}
		if pos.Epoch != epoch {
			t.Fatalf("epoch %q became %q", epoch, pos.Epoch)
		}
	})
}

// BenchmarkRunStreamFanout publishes to 100 subscribers over real
// websockets and reports the delivery latency, from the hub stamping the
// event to each client decoding it.
func BenchmarkRunStreamFanout(b *testing.B) {
	const clients = 100
	hub := live.NewHub(live.Config{QueueSize: 1 << 20})
	f := newFixture(b, Config{}, func(d *Deps) {
		d.RunStream = &RunStream{Hub: hub, Access: testRunAccess, Leader: leaderIs("n1", "")}
	})
	srv := httptest.NewServer(f.srv.Handler())
	defer srv.Close()
	url := "ws" + strings.TrimPrefix(srv.URL, "http") + "/api/v1/runs/r1/stream"
	h := http.Header{"Authorization": {"Bearer " + f.ident.adminToken}}
	var (
		mu        sync.Mutex
		latencies []time.Duration
		wg        sync.WaitGroup
	)
	received := make(chan struct{}, clients*64)
	conns := make([]*websocket.Conn, 0, clients)
	for range clients {
		conn, _, err := websocket.DefaultDialer.Dial(url, h)
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, conn)
		if _, _, err := conn.ReadMessage(); err != nil { // hello
			b.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local []time.Duration
			defer func() { mu.Lock(); latencies = append(latencies, local...); mu.Unlock() }()
			for {
				_, msg, err := conn.ReadMessage()
				if err != nil {
					return
				}
				var ev live.Event
				if json.Unmarshal(msg, &ev) != nil || ev.Type != live.TypeLog {
					continue
				}
				local = append(local, time.Since(ev.Time))
				received <- struct{}{}
			}
		}()
	}
	line := map[string]any{"target": "web-1", "step": "restart", "stream": "stdout", "seq": 1, "data": "restarted nginx\n"}
	b.ResetTimer()
	for range b.N {
		hub.Publish("r1", live.TypeLog, line)
		for range clients {
			<-received
		}
	}
	b.StopTimer()
	for _, c := range conns {
		_ = c.Close()
	}
	wg.Wait()
	slices.Sort(latencies)
	if n := len(latencies); n > 0 {
		b.ReportMetric(float64(latencies[n/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(latencies[n*99/100].Microseconds()), "p99-µs")
	}
}
