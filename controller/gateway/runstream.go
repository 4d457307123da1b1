package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"github.com/opsconductor/opsconductor/controller/automation/live"
	"github.com/opsconductor/opsconductor/controller/cluster"
	"github.com/opsconductor/opsconductor/controller/identity"
	"github.com/opsconductor/opsconductor/controller/problem"
)

// The live stream's protocol. A browser cannot set Authorization on a
// websocket, and a token in the URL ends up in access logs and browser
// history, so it offers its token as a second subprotocol beside ours;
// the server answers with ours alone, so the token is never echoed.
const (
	streamSubprotocol   = "opsconductor.v1"
	streamBearerPrefix  = "bearer."
	headerWSProtocol    = "Sec-WebSocket-Protocol"
	headerForwardedBy   = "X-OpsConductor-Forwarded-By"
	streamMaxClientMsg  = 1024 // clients have nothing to say; this bounds what a reader buffers
	streamCloseWait     = 2 * time.Second
	defaultPingInterval = 20 * time.Second
	defaultWriteTimeout = 10 * time.Second
)

// RunAccess decides whether p may watch a run. It returns nil, or a
// not-found problem both for a run that does not exist and for one p may
// not see (the two must look alike), or any other error.
type RunAccess func(ctx context.Context, p *identity.Principal, runID string) error

// RunStream wires GET /api/v1/runs/{id}/stream. The hub is fed on the Raft
// leader only, so a follower proxies the websocket to the leader's API
// address.
type RunStream struct {
	Hub    *live.Hub
	Access RunAccess
	// Leader returns the leader's ID and advertised API address
	// (cluster.Node.Leader); the zero LeaderInfo means there is none.
	Leader func(ctx context.Context) (cluster.LeaderInfo, error)
	// PingInterval is how often the server pings (default 20s);
	// PongWait how long it waits for any pong before it drops the client
	// (default two pings plus the write timeout); WriteTimeout bounds each
	// write (default 10s). Tests shorten them.
	PingInterval time.Duration
	PongWait     time.Duration
	WriteTimeout time.Duration
}

func (rs *RunStream) validate() error {
	if rs == nil {
		return nil
	}
	var errs []error
	if rs.Hub == nil {
		errs = append(errs, fieldErrorf("Deps.RunStream.Hub", "required"))
	}
	if rs.Access == nil {
		errs = append(errs, fieldErrorf("Deps.RunStream.Access", "required"))
	}
	if rs.Leader == nil {
		errs = append(errs, fieldErrorf("Deps.RunStream.Leader", "required"))
	}
	return errors.Join(errs...)
}

func (rs *RunStream) timings() (ping, pong, write time.Duration) {
	ping, pong, write = rs.PingInterval, rs.PongWait, rs.WriteTimeout
	if ping <= 0 {
		ping = defaultPingInterval
	}
	if write <= 0 {
		write = defaultWriteTimeout
	}
	if pong <= 0 {
		pong = 2*ping + write
	}
	return ping, pong, write
}

// runStreamRoutes is the live output route.
func (s *Server) runStreamRoutes() []route {
	rt := s.newRoute(http.MethodGet, "/api/v1/runs/{id}/stream", ClassRead, perm(identity.PermJobsRead), s.needRunStream(s.streamRun))
	rt.WebSocket = true
	return []route{rt}
}

// needRunStream answers 503 while no hub is wired.
func (s *Server) needRunStream(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if s.runStream == nil {
			return problem.Unavailable("runs_unavailable", "this controller does not serve live run output: it is not wired")
		}
		return h(w, r)
	}
}

// authenticateSubprotocol takes the bearer token a browser offers as the
// subprotocol "bearer.<token>" beside "opsconductor.v1". Only websocket
// routes call it, and only when the request has no Authorization header.
func (s *Server) authenticateSubprotocol(r *http.Request) (*identity.Principal, error) {
	var token string
	ours := false
	for _, p := range requestedSubprotocols(r) {
		switch {
		case p == streamSubprotocol:
			ours = true
		case strings.HasPrefix(p, streamBearerPrefix):
			if token != "" {
				return nil, problem.New(problem.KindUnauthenticated, "invalid_authorization", "offer one %s<token> subprotocol, not several", streamBearerPrefix)
			}
			token = strings.TrimPrefix(p, streamBearerPrefix)
		}
	}
	if token == "" {
		return nil, nil
	}
	if !ours {
		return nil, problem.New(problem.KindUnauthenticated, "invalid_authorization", "a %s<token> subprotocol needs %q beside it", streamBearerPrefix, streamSubprotocol)
	}
	p, err := s.identity.Authenticate(r.Context(), token)
	if err != nil {
		return nil, err
	}
	if st := stateFrom(r.Context()); st != nil {
		st.principal = p
	}
	return p, nil
}

func requestedSubprotocols(r *http.Request) []string {
	var out []string
	for _, v := range r.Header.Values(headerWSProtocol) {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// streamPosition reads ?after= and ?epoch=, reporting both problems at once.
func streamPosition(q url.Values) (live.Position, error) {
	var (
		pos  live.Position
		errs problem.List
	)
	if v := q.Get("after"); v != "" {
		after, err := parseAfter(v)
		if err != nil {
			errs.Add("after", "%v", err)
		}
		pos.After = after
	}
	if v := q.Get("epoch"); v != "" {
		if !validEpoch(v) {
			errs.Add("epoch", "must be the epoch a hello event named (up to 32 hex digits), got %q", truncate(v, 40))
		}
		pos.Epoch = v
	}
	return pos, errs.Err()
}

// parseAfter reads a sequence number: decimal digits only, no sign, no
// spaces, at most a uint64.
func parseAfter(v string) (uint64, error) {
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, fmt.Errorf("must be a sequence number (decimal digits), got %q", truncate(v, 40))
		}
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("must be a sequence number below 2^64, got %q", truncate(v, 40))
	}
	return n, nil
}

func validEpoch(v string) bool {
	if len(v) > 32 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// streamRun serves one client's websocket: it checks the request, proxies
// it to the leader from a follower, and otherwise subscribes to the hub and
// writes the run's events until the run ends, the client leaves or the
// server stops.
func (s *Server) streamRun(w http.ResponseWriter, r *http.Request) error {
	rs := s.runStream
	runID := r.PathValue("id")
	pos, err := streamPosition(r.URL.Query())
	if err != nil {
		return err
	}
	if !websocket.IsWebSocketUpgrade(r) {
		return problem.New(problem.KindInvalid, "websocket_required", "this route is a websocket: send an Upgrade: websocket request")
	}
	leader, err := rs.Leader(r.Context())
	switch {
	case err != nil:
		// The cause names addresses; it goes to the log, not the client.
		loggerFrom(r.Context()).Warn("live stream: leader lookup failed", "error", err)
		return problem.Unavailable("leader_unreachable", "cannot reach the leader, which serves live run output")
	case leader.ID == "":
		return problem.Unavailable("no_leader", "no leader is known; live run output is served by the leader")
	case leader.ID != s.nodeID:
		if r.Header.Get(headerForwardedBy) != "" {
			// Leadership moved while the request was forwarded; proxying
			// again could loop, and the client simply retries.
			return problem.Unavailable("not_leader", "this node is no longer the leader; retry")
		}
		if leader.HTTPAddr == "" {
			return problem.Unavailable("leader_unreachable", "the leader %s advertises no API address", leader.ID)
		}
		s.proxyToLeader(w, r, leader)
		return nil
	}
	if err := rs.Access(r.Context(), principal(r), runID); err != nil {
		return fmt.Errorf("watch run %s: %w", runID, err)
	}
	sub, err := rs.Hub.SubscribeAt(r.Context(), runID, pos)
	if err != nil {
		return fmt.Errorf("watch run %s: %w", runID, err)
	}
	defer sub.Close()
	up := websocket.Upgrader{
		HandshakeTimeout: defaultWriteTimeout,
		ReadBufferSize:   streamMaxClientMsg,
		WriteBufferSize:  16 << 10,
		Subprotocols:     []string{streamSubprotocol},
		CheckOrigin:      s.sameOrAllowedOrigin,
		Error: func(w http.ResponseWriter, r *http.Request, status int, reason error) {
			switch {
			case status >= http.StatusInternalServerError: // no hijackable connection
				writeError(w, r, fmt.Errorf("websocket upgrade: %w", reason))
			case status == http.StatusForbidden:
				writeError(w, r, problem.New(problem.KindForbidden, "websocket_origin", "%v", reason))
			default:
				writeError(w, r, problem.New(problem.KindInvalid, "websocket_handshake", "%v", reason))
			}
		},
	}
	conn, err := up.Upgrade(hijacker{w}, r, nil)
	if err != nil {
		return nil // the upgrader has answered
	}
	log := loggerFrom(r.Context()).With("run_id", runID)
	log.Debug("live stream opened", "after", pos.After)
	s.writeStream(r.Context(), conn, sub, log)
	return nil
}

// sameOrAllowedOrigin lets through clients that send no Origin (the CLI),
// browsers on the page the controller serves (Origin's host is the Host
// they asked for, gorilla's default) and origins CORS allows.
func (s *Server) sameOrAllowedOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err == nil && strings.EqualFold(u.Host, r.Host) {
		return true
	}
	return s.cors != nil && (s.cors.any || s.cors.origins[strings.ToLower(origin)])
}

// writeStream is the connection's one writer: events, pings, pongs and the
// close frame all go out from this goroutine. The reader goroutine it
// starts only discards what the client sends and hands control frames over.
func (s *Server) writeStream(ctx context.Context, conn *websocket.Conn, sub *live.Subscription, log *slog.Logger) {
	pingEvery, pongWait, writeWait := s.runStream.timings()
	pings := make(chan string, 1)
	conn.SetReadLimit(streamMaxClientMsg)
	_ = conn.SetReadDeadline(time.Now().Add(pongWait))
	conn.SetPongHandler(func(string) error { return conn.SetReadDeadline(time.Now().Add(pongWait)) })
	conn.SetPingHandler(func(data string) error {
		select {
		case pings <- data:
		default: // a pong is already owed; one answers both
		}
		return nil
	})
	// Returning nil leaves the close frame to the writer: NextReader then
	// fails with the client's *websocket.CloseError.
	conn.SetCloseHandler(func(int, string) error { return nil })
	readErr := make(chan error, 1)
	go func() {
		for {
			if _, _, err := conn.NextReader(); err != nil {
				readErr <- err
				return
			}
		}
	}()
	defer func() {
		_ = conn.Close() // ends the reader, if it is still reading
		<-readErr
	}()

	write := func(kind int, data []byte) error {
		if kind == websocket.PingMessage || kind == websocket.PongMessage || kind == websocket.CloseMessage {
			return conn.WriteControl(kind, data, time.Now().Add(writeWait))
		}
		_ = conn.SetWriteDeadline(time.Now().Add(writeWait))
		return conn.WriteMessage(kind, data)
	}
	closeWith := func(code int, reason string) {
		_ = write(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason))
	}
	ticker := time.NewTicker(pingEvery)
	defer ticker.Stop()
	for {
		select {
		case ev, ok := <-sub.C():
			if !ok {
				if errors.Is(sub.Err(), live.ErrReset) {
					// 1012: reconnect; a follower now proxies to the new leader.
					closeWith(websocket.CloseServiceRestart, "leadership moved: reconnect")
				} else {
					closeWith(websocket.CloseGoingAway, "server shutting down")
				}
				return
			}
			b, err := json.Marshal(ev)
			if err != nil {
				log.Error("live event does not marshal", "error", err, "seq", ev.Seq)
				closeWith(websocket.CloseInternalServerErr, "internal error")
				return
			}
			if err := write(websocket.TextMessage, b); err != nil {
				log.Debug("live stream write failed", "error", err)
				return
			}
			if ev.Type == live.TypeEnd {
				closeWith(websocket.CloseNormalClosure, "run ended")
				// Give the client a moment to answer the close, so that
				// it sees a clean close rather than a reset.
				select {
				case <-readErr:
					readErr <- nil // for the deferred wait
				case <-time.After(streamCloseWait):
				}
				return
			}
		case data := <-pings:
			if err := write(websocket.PongMessage, []byte(data)); err != nil {
				return
			}
		case <-ticker.C:
			if err := write(websocket.PingMessage, nil); err != nil {
				log.Debug("live stream ping failed", "error", err)
				return
			}
		case err := <-readErr:
			readErr <- err // for the deferred wait
			var ce *websocket.CloseError
			switch {
			case errors.As(err, &ce):
				closeWith(websocket.CloseNormalClosure, "")
			case errors.Is(err, websocket.ErrReadLimit):
				closeWith(websocket.CloseMessageTooBig, fmt.Sprintf("client messages are limited to %d bytes", streamMaxClientMsg))
			default: // a missed pong (read deadline) or a broken connection
				log.Debug("live stream client gone", "error", err)
			}
			return
		case <-ctx.Done():
			closeWith(websocket.CloseGoingAway, "server shutting down")
			return
		}
	}
}

// proxyToLeader hands the whole websocket to the leader, which holds the
// hub. The gateway has no other leader forwarding over HTTP (writes go
// through cluster.Apply), so this is httputil.ReverseProxy, which
// switches protocols and copies both ways. The leader authenticates and
// checks access again; the Host header is kept so that its Origin check
// sees the host the browser used.
func (s *Server) proxyToLeader(w http.ResponseWriter, r *http.Request, leader cluster.LeaderInfo) {
	target := &url.URL{Scheme: "http", Host: leader.HTTPAddr}
	log := loggerFrom(r.Context())
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
			pr.Out.Header.Set(headerForwardedBy, s.nodeID)
			if id := RequestID(r.Context()); id != "" {
				pr.Out.Header.Set(HeaderRequestID, id)
			}
		},
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			log.Warn("live stream proxy to the leader failed", "leader_id", leader.ID, "error", err)
			writeError(w, r, problem.Unavailable("leader_unreachable", "cannot reach the leader %s, which serves live run output", leader.ID))
		},
	}
	log.Debug("live stream proxied to the leader", "leader_id", leader.ID)
	proxy.ServeHTTP(hijacker{w}, r)
}

// hijacker gives gorilla/websocket, which type-asserts http.Hijacker, the
// connection under the gateway's wrapping writers; they expose it through
// Unwrap, which http.ResponseController follows.
type hijacker struct{ http.ResponseWriter }

func (h hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err == nil {
		markSwitched(h.ResponseWriter)
	}
	return conn, brw, err
}

// markSwitched records 101 in the access log and HTTP metrics: the
// response goes out on the hijacked connection, past the recorder.
func markSwitched(w http.ResponseWriter) {
	for {
		if rec, ok := w.(*recorder); ok {
			rec.status, rec.wroteHeader = http.StatusSwitchingProtocols, true
			return
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return
		}
		w = u.Unwrap()
	}
}
