// Package session keeps an agent's one Connect stream to the controller
// leader open: it says Hello, beats at the interval the leader announces,
// follows a follower's Redirect, and reconnects with jittered exponential
// backoff over the last leader and every configured controller when the
// stream breaks.
//
// It owns the stream and nothing else. Assignments, cancels and acks go to
// the Executor (agent/executor), and the session is the stream's one
// writer of what the executor's outbox holds: after every Welcome it
// sends each attempt's unacknowledged chunks in seq order and then its
// Result, and from then on whatever the outbox commits. Without an
// Executor it refuses assignments. It never logs what a controller sends
// as secrets.
package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/opsconductor/opsconductor/agent/enroll"
	agentv1 "github.com/opsconductor/opsconductor/proto/agent/v1"
)

// Defaults for Config fields left zero.
const (
	DefaultInitialBackoff   = 200 * time.Millisecond
	DefaultMaxBackoff       = 10 * time.Second
	DefaultResetAfter       = 30 * time.Second
	DefaultHandshakeTimeout = 10 * time.Second
	// DefaultHeartbeatInterval applies until a Welcome names one (and when
	// a Welcome names none).
	DefaultHeartbeatInterval = 10 * time.Second
	// DefaultKeepaliveTime is how long a silent connection waits before
	// gRPC pings it. Heartbeats only go up: a leader whose host vanished
	// without closing TCP is noticed by these pings, not by Send failing.
	// The controller's keepalive.EnforcementPolicy must allow it
	// (MinTime ≤ this), or it answers with GOAWAY too_many_pings.
	DefaultKeepaliveTime    = 30 * time.Second
	DefaultKeepaliveTimeout = 10 * time.Second
	// DefaultRenewCheck is how often a live stream looks at the
	// certificate's age (each Welcome looks too), and so how long a
	// failed renewal waits before it is tried again.
	DefaultRenewCheck = 10 * time.Minute
)

// Bounds on what a Welcome may ask for: a zero or hostile interval must
// not turn the agent into a busy loop, nor silence it for hours.
const (
	minHeartbeatInterval = 10 * time.Millisecond
	maxHeartbeatInterval = 5 * time.Minute
)

// Backoff configures the delay between connection attempts: Initial
// doubling up to Max, each delay drawn uniformly from [d/2, d] so that
// agents that lost the same leader do not return in step. A stream that
// stayed up for ResetAfter starts the sequence over.
type Backoff struct {
	Initial    time.Duration
	Max        time.Duration
	ResetAfter time.Duration
}

// delay is the wait before attempt n (n ≥ 1 failures so far).
func (b Backoff) delay(n int, r *rand.Rand) time.Duration {
	d := b.Initial
	for i := 1; i < n && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	half := d / 2
	return half + time.Duration(r.Int64N(int64(d-half)+1))
}

// Config configures a Session.
type Config struct {
	Identity *enroll.Identity
	// Controllers are agent listener addresses (host:port), tried in turn;
	// empty means Identity.Controllers.
	Controllers []string
	Version     string
	// Facts is called for every Hello, so a reconnect reports fresh facts.
	Facts  func() *agentv1.Facts
	Logger *slog.Logger
	// Dial makes the client connection for one address; it is called once
	// per address and the connection reused. Nil means grpc.NewClient with
	// the identity's mutual-TLS configuration and keepalive.
	Dial    func(addr string) (*grpc.ClientConn, error)
	Backoff Backoff
	// HandshakeTimeout bounds the wait for the first reply to Hello.
	HandshakeTimeout time.Duration
	// Progress, when set, receives one line per connection event for the
	// operator ("connecting to …", "connected to leader …").
	Progress func(msg string)
	// Rand seeds the backoff jitter (tests); nil means a random seed.
	Rand *rand.Rand
	// Executor runs assignments; nil refuses them (and reports nothing
	// running in Hello).
	Executor Executor
	// Plugins lists the external plugins installed, for Hello (nil:
	// none).
	Plugins func() []*agentv1.PluginInfo
	// RenewCheck is DefaultRenewCheck if zero.
	RenewCheck time.Duration
}

// Executor is what the session needs of agent/executor.
type Executor interface {
	// Assign starts (or refuses with an error Result) an assignment and
	// returns the AssignmentAck to send, or nil.
	Assign(a *agentv1.Assignment, draining bool) *agentv1.AssignmentAck
	Cancel(attemptID string)
	Ack(a *agentv1.Ack)
	// Running lists the attempts for Hello.running.
	Running() []*agentv1.RunningAttempt
	// Pending returns up to limit durable chunks of an attempt after
	// afterSeq, and its Result once every chunk fitted.
	Pending(attemptID string, afterSeq uint64, limit int) ([]*agentv1.LogChunk, *agentv1.Result)
	// Changed fires when new events become durable.
	Changed() <-chan struct{}
}

// sendBatch bounds the events sent between two looks at the rest of the
// stream (heartbeats, incoming acks and cancels).
const sendBatch = 512

// Status is what the session knows now.
type Status struct {
	// Connected is true between a Welcome and the stream's end.
	Connected bool
	// Address and NodeID name the leader of the current (or last) stream.
	Address  string
	NodeID   string
	Draining bool
	// HeartbeatInterval and Lease are the latest Welcome's.
	HeartbeatInterval time.Duration
	Lease             time.Duration
	// Attempts counts streams opened, Connects those that were welcomed,
	// Redirects the Redirects received.
	Attempts  int
	Connects  int
	Redirects int
	// LastError is why the last attempt or stream ended ("" if none did).
	LastError string
	// Renewals counts certificates renewed and stored.
	Renewals int
}

// Session keeps the Connect stream up. Create it with New; Run it once.
type Session struct {
	cfg   Config
	log   *slog.Logger
	conns map[string]*grpc.ClientConn // owned by Run's goroutine
	renew renewal                     // owned by Run's goroutine

	mu      sync.Mutex
	status  Status
	changed chan struct{} // closed and replaced on every status change
}

// New checks cfg and fills its defaults.
func New(cfg Config) (*Session, error) {
	if cfg.Identity == nil {
		return nil, errors.New("session: no identity")
	}
	if len(cfg.Controllers) == 0 {
		cfg.Controllers = cfg.Identity.Controllers
	}
	cfg.Controllers = dedupe(cfg.Controllers)
	if len(cfg.Controllers) == 0 {
		return nil, errors.New("session: no controller address configured")
	}
	if cfg.Facts == nil {
		cfg.Facts = func() *agentv1.Facts { return nil }
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Backoff.Initial <= 0 {
		cfg.Backoff.Initial = DefaultInitialBackoff
	}
	if cfg.Backoff.Max < cfg.Backoff.Initial {
		cfg.Backoff.Max = max(DefaultMaxBackoff, cfg.Backoff.Initial)
	}
	if cfg.Backoff.ResetAfter <= 0 {
		cfg.Backoff.ResetAfter = DefaultResetAfter
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if cfg.Progress == nil {
		cfg.Progress = func(string) {}
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	if cfg.RenewCheck <= 0 {
		cfg.RenewCheck = DefaultRenewCheck
	}
	if cfg.Dial == nil {
		cfg.Dial = DialFunc(cfg.Identity)
	}
	return &Session{
		cfg: cfg, log: cfg.Logger.With("agent_id", cfg.Identity.AgentID),
		conns: map[string]*grpc.ClientConn{}, changed: make(chan struct{}),
		status: Status{HeartbeatInterval: DefaultHeartbeatInterval},
	}, nil
}

// Run keeps the stream up until ctx ends (shorthand for New and Run).
func Run(ctx context.Context, cfg Config) error {
	s, err := New(cfg)
	if err != nil {
		return err
	}
	return s.Run(ctx)
}

// DialFunc is the default Config.Dial: mutual TLS with the identity, and
// gRPC's own reconnect backoff capped like ours so that a controller that
// comes back is not ignored for two minutes.
func DialFunc(id *enroll.Identity) func(addr string) (*grpc.ClientConn, error) {
	return func(addr string) (*grpc.ClientConn, error) {
		return grpc.NewClient(addr, DialOptions(id)...)
	}
}

// DialOptions are DialFunc's options. A caller that needs to wrap one (a
// load driver bounding the TLS handshakes of thousands of simulated
// agents in one process) appends its own: gRPC applies them in order, so
// a later option of the same kind wins.
func DialOptions(id *enroll.Identity) []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithTransportCredentials(credentials.NewTLS(enroll.ClientTLSConfig(id))),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: DefaultKeepaliveTime, Timeout: DefaultKeepaliveTimeout}),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: DefaultInitialBackoff, Multiplier: 2, Jitter: 0.2, MaxDelay: DefaultMaxBackoff},
			MinConnectTimeout: DefaultHandshakeTimeout,
		}),
	}
}

// Status returns a copy of the current status.
func (s *Session) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

// Changed returns a channel closed at the next status change (a watch, so
// that callers need not poll).
func (s *Session) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

func (s *Session) update(f func(*Status)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(&s.status)
	close(s.changed)
	s.changed = make(chan struct{})
}

// outcome is how one stream ended.
type outcome struct {
	welcomed bool
	healthy  bool   // welcomed and up for Backoff.ResetAfter
	redirect string // leader address from a Redirect ("" = none known)
	err      error
}

// Run keeps the stream up until ctx ends, then closes every connection
// and returns nil. It never gives up on its own: controllers come back.
func (s *Session) Run(ctx context.Context) error {
	defer s.closeConns()
	var (
		failures  int
		preferred string // tried next: a redirect target or the last leader
		next      int    // index into Controllers for the next turn
		followed  bool   // the last attempt followed a redirect
	)
	for ctx.Err() == nil {
		addr := preferred
		viaRedirect := preferred != "" && followed
		preferred = ""
		if addr == "" {
			addr = s.cfg.Controllers[next%len(s.cfg.Controllers)]
			next++
		}
		out := s.attempt(ctx, addr)
		if ctx.Err() != nil {
			break
		}
		followed = false
		switch {
		case out.redirect != "" && (!viaRedirect || out.welcomed):
			// Follow a follower's pointer (or a leader's that stepped
			// down) at once; a second redirect in a row without a Welcome
			// between them (a stale or looping pointer) waits like any
			// failure.
			preferred, followed = out.redirect, true
			failures = 0
			continue
		case out.redirect != "":
			preferred, followed = out.redirect, true
		case out.welcomed:
			preferred = addr // the leader is likely still there
		}
		if out.healthy {
			failures = 0
		}
		failures++
		d := s.cfg.Backoff.delay(failures, s.cfg.Rand)
		s.log.Info("reconnecting", "after", d, "error", errString(out.err))
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
	s.update(func(st *Status) { st.Connected = false })
	return nil
}

func (s *Session) closeConns() {
	for addr, cc := range s.conns {
		cc.Close()
		delete(s.conns, addr)
	}
}

func (s *Session) conn(addr string) (*grpc.ClientConn, error) {
	if s.renew.redial {
		// A connection keeps the certificate of its handshake: only new
		// ones present the renewed certificate.
		s.closeConns()
		s.renew.redial = false
	}
	if cc, ok := s.conns[addr]; ok {
		// Our backoff already waited; do not let gRPC's own keep a
		// controller that came back unreachable.
		cc.ResetConnectBackoff()
		return cc, nil
	}
	cc, err := s.cfg.Dial(addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	s.conns[addr] = cc
	return cc, nil
}

// attempt opens one stream to addr and serves it until it ends.
func (s *Session) attempt(ctx context.Context, addr string) (out outcome) {
	s.update(func(st *Status) { st.Attempts++; st.Address = addr })
	s.cfg.Progress("connecting to " + addr + "…")
	s.log.Info("connecting", "address", addr)
	defer func() {
		s.update(func(st *Status) {
			st.Connected = false
			if out.err != nil && ctx.Err() == nil {
				st.LastError = out.err.Error()
			}
		})
		if out.err != nil && ctx.Err() == nil {
			s.log.Warn("stream ended", "address", addr, "error", out.err)
			if !out.welcomed {
				s.cfg.Progress(fmt.Sprintf("could not connect to %s: %v", addr, out.err))
			} else {
				s.cfg.Progress(fmt.Sprintf("lost the stream to %s: %v", addr, out.err))
			}
		}
	}()
	cc, err := s.conn(addr)
	if err != nil {
		return outcome{err: err}
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := agentv1.NewAgentServiceClient(cc).Connect(sctx)
	if err != nil {
		return outcome{err: fmt.Errorf("connect %s: %w", addr, err)}
	}
	hello := &agentv1.Hello{AgentId: s.cfg.Identity.AgentID, Version: s.cfg.Version, Facts: s.cfg.Facts()}
	if s.cfg.Plugins != nil {
		hello.Plugins = s.cfg.Plugins()
	}
	if s.cfg.Executor != nil {
		hello.Running = s.cfg.Executor.Running()
	}
	if err := stream.Send(&agentv1.AgentMessage{Msg: &agentv1.AgentMessage_Hello{Hello: hello}}); err != nil {
		if errors.Is(err, io.EOF) {
			// gRPC reports why the stream ended only through Recv; no
			// reader runs yet, so this cannot race.
			if _, rerr := stream.Recv(); rerr != nil && !errors.Is(rerr, io.EOF) {
				err = rerr
			}
		}
		return outcome{err: fmt.Errorf("send hello to %s: %w", addr, err)}
	}

	// One reader goroutine; this goroutine is the only writer, as gRPC
	// requires. Cancelling sctx ends Recv, and wg makes attempt wait for it.
	msgs := make(chan *agentv1.ControllerMessage)
	recvErrc := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			m, err := stream.Recv()
			if err != nil {
				recvErrc <- err
				return
			}
			select {
			case msgs <- m:
			case <-sctx.Done():
				return
			}
		}
	}()
	defer wg.Wait()
	defer cancel()

	handshake := time.NewTimer(s.cfg.HandshakeTimeout)
	defer handshake.Stop()
	renewCheck := time.NewTicker(s.cfg.RenewCheck)
	defer renewCheck.Stop()
	var (
		beat      *time.Ticker
		beatC     <-chan time.Time
		welcomeAt time.Time
		outboxC   <-chan struct{} // after a Welcome: the executor's outbox has news
		cur       = cursor{chunks: map[string]uint64{}, results: map[string]bool{}}
	)
	defer func() {
		if beat != nil {
			beat.Stop()
		}
		out.healthy = out.welcomed && time.Since(welcomeAt) >= s.cfg.Backoff.ResetAfter
	}()
	for {
		select {
		case <-ctx.Done():
			return out
		case <-handshake.C:
			if !out.welcomed {
				out.err = fmt.Errorf("no reply from %s within %s", addr, s.cfg.HandshakeTimeout)
				return out
			}
		case err := <-recvErrc:
			if errors.Is(err, io.EOF) {
				err = errors.New("the controller closed the stream")
			}
			out.err = fmt.Errorf("stream to %s: %w", addr, err)
			return out
		case <-beatC:
			hb := &agentv1.Heartbeat{SentAt: timestamppb.Now()}
			if err := stream.Send(&agentv1.AgentMessage{Msg: &agentv1.AgentMessage_Heartbeat{Heartbeat: hb}}); err != nil {
				out.err = fmt.Errorf("heartbeat to %s: %w", addr, s.sendErr(ctx, err, msgs, recvErrc))
				return out
			}
		case <-renewCheck.C:
			if !out.welcomed {
				continue
			}
			if err := s.requestRenewal(stream); err != nil {
				out.err = fmt.Errorf("send to %s: %w", addr, s.sendErr(ctx, err, msgs, recvErrc))
				return out
			}
		case <-outboxC:
			next, err := s.sendPending(stream, &cur)
			if err != nil {
				out.err = fmt.Errorf("send to %s: %w", addr, s.sendErr(ctx, err, msgs, recvErrc))
				return out
			}
			outboxC = next
		case m := <-msgs:
			act := s.handle(m)
			if act.send != nil && out.welcomed {
				if err := stream.Send(act.send); err != nil {
					out.err = fmt.Errorf("send to %s: %w", addr, s.sendErr(ctx, err, msgs, recvErrc))
					return out
				}
			}
			switch {
			case act.redirect:
				out.redirect = act.leaderAddress
				if out.redirect == "" {
					out.err = errors.New("redirected, but there is no leader yet")
				}
				return out
			case act.welcome:
				if !out.welcomed {
					out.welcomed, welcomeAt = true, time.Now()
					s.cfg.Progress(fmt.Sprintf("connected to leader %s at %s", act.nodeID, addr))
				}
				if s.cfg.Executor != nil && outboxC == nil {
					outboxC = closedChan // replay what the outbox holds at once
				}
				if beat == nil {
					beat = time.NewTicker(act.interval)
					beatC = beat.C
				} else {
					beat.Reset(act.interval)
				}
				if err := s.requestRenewal(stream); err != nil {
					out.err = fmt.Errorf("send to %s: %w", addr, s.sendErr(ctx, err, msgs, recvErrc))
					return out
				}
			case act.issued != nil && out.welcomed:
				s.installRenewed(act.issued)
			case !out.welcomed:
				out.err = fmt.Errorf("the controller at %s answered Hello with %T, not Welcome or Redirect", addr, m.GetMsg())
				return out
			}
		}
	}
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// cursor is what this stream has sent of the outbox: each attempt's
// chunks through a seq, and its Result. A new stream starts from
// nothing, so it replays everything not yet acknowledged.
type cursor struct {
	chunks  map[string]uint64
	results map[string]bool
}

// sendPending sends up to sendBatch durable events the stream has not
// carried yet, each attempt's chunks in seq order before its Result. It
// returns the channel to wait on next: the outbox's watch, or a closed
// channel when more remains.
func (s *Session) sendPending(stream grpc.BidiStreamingClient[agentv1.AgentMessage, agentv1.ControllerMessage], cur *cursor) (<-chan struct{}, error) {
	ex := s.cfg.Executor
	watch := ex.Changed() // before reading, so that no commit is missed
	budget := sendBatch
	for _, ra := range ex.Running() {
		id := ra.GetAttemptId()
		if budget == 0 {
			return closedChan, nil
		}
		if cur.results[id] {
			continue
		}
		chunks, res := ex.Pending(id, cur.chunks[id], budget)
		for _, c := range chunks {
			if err := stream.Send(&agentv1.AgentMessage{Msg: &agentv1.AgentMessage_Log{Log: c}}); err != nil {
				return nil, err
			}
			cur.chunks[id] = c.GetSeq()
		}
		budget -= len(chunks)
		if res != nil {
			if err := stream.Send(&agentv1.AgentMessage{Msg: &agentv1.AgentMessage_Result{Result: res}}); err != nil {
				return nil, err
			}
			cur.results[id] = true
		}
	}
	if budget == 0 {
		return closedChan, nil
	}
	return watch, nil
}

// sendErr turns Send's io.EOF into the stream's real status, which gRPC
// reports only through Recv: the reader goroutine is about to see it.
func (s *Session) sendErr(ctx context.Context, err error, msgs <-chan *agentv1.ControllerMessage, recvErrc <-chan error) error {
	if !errors.Is(err, io.EOF) {
		return err
	}
	for {
		select {
		case rerr := <-recvErrc:
			if errors.Is(rerr, io.EOF) {
				return err
			}
			return rerr
		case <-msgs: // the stream is over; what it still held is moot
		case <-ctx.Done():
			return err
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func dedupe(addrs []string) []string {
	var out []string
	for _, a := range addrs {
		if a != "" && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}
