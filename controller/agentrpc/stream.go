package agentrpc

import (
	"context"
	"errors"
	"io"
	"reflect"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/opsconductor/opsconductor/controller/state"
	agentv1 "github.com/opsconductor/opsconductor/proto/agent/v1"
)

// Stream defaults. The heartbeat interval grows with the number of agents
// connected to the leader so that it handles at most HeartbeatRate
// heartbeats a second, as Nomad sizes its heartbeat TTLs:
//
//	interval = max(HeartbeatInterval, connected / HeartbeatRate seconds)
//	lease    = max(MinLease, 3 × interval)
//
// With the defaults that is a 5 s interval and a 15 s lease up to 2,500
// agents, and 20 s / 60 s at 10,000. A stream is told its interval in
// the Welcome, and again in a new Welcome once the count has moved it
// by more than a quarter (registry.seen).
const (
	DefaultHeartbeatInterval = 5 * time.Second
	DefaultHeartbeatRate     = 500.0
	DefaultMinLease          = 15 * time.Second
	DefaultHelloTimeout      = 10 * time.Second
)

// Leadership is what the stream needs to know of the cluster
// (cluster.Node through a small adapter in production).
type Leadership interface {
	IsLeader() bool
	// LeaderChanged is closed at the next change of leader.
	LeaderChanged() <-chan struct{}
	// Barrier returns once this node has applied every entry committed
	// before the call (a consistent read).
	Barrier(ctx context.Context) error
	// LeaderAgent returns the leader's node ID and agent address; both
	// empty when there is no leader.
	LeaderAgent(ctx context.Context) (nodeID, addr string, err error)
}

// Reasons a live stream is closed by the controller.
var (
	errReplaced     = status.Error(codes.Aborted, "a newer stream from this agent replaced this one")
	errNotLeader    = status.Error(codes.Unavailable, "this controller is no longer the leader: reconnect to find the new one")
	errLeaseExpired = status.Error(codes.Unavailable, "no heartbeat within the lease: the agent was marked down; reconnect")
	errRevoked      = status.Error(codes.PermissionDenied, "this agent was revoked: enrol it again")
	errShutdown     = status.Error(codes.Unavailable, "the controller is shutting down: reconnect to another")
)

// sendQueue bounds the messages waiting for one stream's writer. An agent
// that reads so slowly that it fills is cut off (it reconnects and its
// outbox replays what was not acknowledged).
const sendQueue = 4096

var errSlowAgent = status.Error(codes.ResourceExhausted, "the agent does not read its stream fast enough: reconnect")

// liveStream is one agent's Connect stream on the leader. gRPC allows one
// sender per stream, so every message to the agent goes through queue to
// the stream's writer goroutine.
type liveStream struct {
	agentID string
	closed  chan struct{}
	once    sync.Once
	cause   error // set before closed is closed
	// queue holds what waits for the writer, at most sendQueue messages.
	// It is a slice that grows on demand rather than a channel of
	// sendQueue slots: a buffered channel allocates all of them up front
	// (32 KiB a stream), and a leader holds thousands of idle streams
	// whose queue is empty nearly always.
	queueMu sync.Mutex
	queue   []*agentv1.ControllerMessage
	wake    chan struct{} // capacity 1: the queue gained a message
	// welcomed is set, with Welcome queued, under welcomeMu: only then
	// may work be sent. An agent that has read its Welcome therefore
	// always finds its stream ready.
	welcomeMu sync.Mutex
	welcomed  bool
	// interval is the heartbeat interval last announced; registry.mu.
	interval time.Duration
}

// keptBatch bounds the capacity of a queue array the writer keeps for
// reuse after a burst.
const keptBatch = 64

func newLiveStream(agentID string) *liveStream {
	return &liveStream{agentID: agentID, closed: make(chan struct{}), wake: make(chan struct{}, 1)}
}

// welcome queues the Welcome and opens the stream to work.
func (ls *liveStream) welcome(m *agentv1.ControllerMessage) {
	ls.welcomeMu.Lock()
	defer ls.welcomeMu.Unlock()
	ls.enqueue(m)
	ls.welcomed = true
}

func (ls *liveStream) ready() bool {
	ls.welcomeMu.Lock()
	defer ls.welcomeMu.Unlock()
	return ls.welcomed
}

// enqueue queues m for the writer without blocking; it reports false when
// the stream is closed or its queue is full (which closes it).
func (ls *liveStream) enqueue(m *agentv1.ControllerMessage) bool {
	select {
	case <-ls.closed:
		return false
	default:
	}
	ls.queueMu.Lock()
	if len(ls.queue) >= sendQueue {
		ls.queueMu.Unlock()
		ls.close(errSlowAgent)
		return false
	}
	ls.queue = append(ls.queue, m)
	ls.queueMu.Unlock()
	select {
	case ls.wake <- struct{}{}:
	default: // the writer is already due to look
	}
	return true
}

// write is the stream's only sender: it runs until the stream is closed
// or stop is closed, and closes the stream when a send fails. It sends
// in the order enqueue accepted.
func (ls *liveStream) write(stream agentv1.AgentService_ConnectServer, stop <-chan struct{}) {
	var batch []*agentv1.ControllerMessage
	for {
		select {
		case <-ls.wake:
		case <-ls.closed:
			return
		case <-stop:
			return
		}
		if cap(batch) > keptBatch {
			batch = nil // a burst's array goes back to the heap
		}
		ls.queueMu.Lock()
		// Swap the slices so that the queue's backing array is reused.
		batch, ls.queue = ls.queue, batch[:0]
		ls.queueMu.Unlock()
		for i, m := range batch {
			batch[i] = nil // the writer holds no message once sent
			select {
			case <-ls.closed:
				return
			case <-stop:
				return
			default:
			}
			if err := stream.Send(m); err != nil {
				ls.close(err)
				return
			}
		}
	}
}

func (ls *liveStream) close(cause error) {
	ls.once.Do(func() { ls.cause = cause; close(ls.closed) })
}

// lease is the leader's in-memory liveness record of one agent. It lives
// for the leader's term: heartbeats only move lastSeen and the timer.
type lease struct {
	stream   *liveStream // nil while disconnected
	lastSeen time.Time
	ttl      time.Duration
	timer    *time.Timer
	// commitMu orders this agent's up and down commits, so that a hello
	// racing a lease expiry can never leave a connected agent marked down.
	commitMu sync.Mutex
}

// registry is the leader-local table of agents and their streams.
type registry struct {
	minInterval time.Duration
	rate        float64
	minLease    time.Duration

	mu        sync.Mutex
	leader    bool
	agents    map[string]*lease
	connected int
	expired   map[string]struct{}
	expiredCh chan struct{} // signalled when expired gains an entry
}

func newRegistry(cfg Config, leader bool) *registry {
	return &registry{minInterval: cfg.HeartbeatInterval, rate: cfg.HeartbeatRate, minLease: cfg.MinLease, leader: leader,
		agents: map[string]*lease{}, expired: map[string]struct{}{}, expiredCh: make(chan struct{}, 1)}
}

// timing returns the heartbeat interval and lease for n connected agents.
func (r *registry) timing(n int) (interval, ttl time.Duration) {
	interval = max(r.minInterval, time.Duration(float64(n)/r.rate*float64(time.Second)))
	return interval, max(r.minLease, 3*interval)
}

// arm (re)starts l's lease timer; r.mu is held.
func (r *registry) arm(id string, l *lease) {
	if l.timer != nil {
		l.timer.Stop()
	}
	l.timer = time.AfterFunc(l.ttl, func() {
		r.mu.Lock()
		r.expired[id] = struct{}{}
		r.mu.Unlock()
		select {
		case r.expiredCh <- struct{}{}:
		default:
		}
	})
}

// attach registers a new stream for an agent, closing the one it
// replaces. ok is false when this node is not (or no longer) leading.
func (r *registry) attach(id string) (ls *liveStream, l *lease, interval, ttl time.Duration, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.leader {
		return nil, nil, 0, 0, false
	}
	l = r.agents[id]
	if l == nil {
		l = &lease{}
		r.agents[id] = l
	}
	if l.stream != nil {
		l.stream.close(errReplaced)
		r.connected--
	}
	ls = newLiveStream(id)
	l.stream = ls
	r.connected++
	interval, ttl = r.timing(r.connected)
	ls.interval = interval
	l.lastSeen, l.ttl = time.Now(), ttl
	r.arm(id, l)
	return ls, l, interval, ttl, true
}

// seen records a message from ls if it is still the agent's stream. The
// interval a Welcome names is sized for the agents connected at that
// moment, so the agents that came first would keep the shortest one: at
// 10,000 agents that was 1,200 heartbeats a second, not the 500 the
// sizing allows (bench/agentidle). When the interval for the agents
// connected now has moved more than a quarter from the one ls was told,
// seen adopts it for the lease and returns it with retune set, to be
// announced in a new Welcome (the agent resets its ticker on each).
func (r *registry) seen(ls *liveStream) (interval, ttl time.Duration, retune bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.agents[ls.agentID]
	if l == nil || l.stream != ls {
		return 0, 0, false
	}
	l.lastSeen = time.Now()
	interval, ttl = r.timing(r.connected)
	if 4*interval > 5*ls.interval || 4*interval < 3*ls.interval {
		ls.interval, l.ttl, retune = interval, ttl, true
	}
	l.timer.Reset(l.ttl)
	return interval, ttl, retune
}

// detach forgets ls when its handler returns. The lease timer keeps
// running: an agent not back within the lease is marked down.
func (r *registry) detach(ls *liveStream) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if l := r.agents[ls.agentID]; l != nil && l.stream == ls {
		l.stream = nil
		r.connected--
	}
}

func (r *registry) takeExpired() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := make([]string, 0, len(r.expired))
	for id := range r.expired {
		ids = append(ids, id)
	}
	clear(r.expired)
	slices.Sort(ids)
	return ids
}

// becomeLeader starts a lease for every agent the table says is up, from
// now: those that do not reconnect within it are marked down.
func (r *registry) becomeLeader(up []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.leader = true
	_, ttl := r.timing(len(up))
	now := time.Now()
	for _, id := range up {
		if r.agents[id] != nil {
			continue
		}
		l := &lease{lastSeen: now, ttl: ttl}
		r.agents[id] = l
		r.arm(id, l)
	}
}

// stopLeading closes every stream and forgets every lease.
func (r *registry) stopLeading(cause error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.leader = false
	for _, l := range r.agents {
		l.timer.Stop()
		if l.stream != nil {
			l.stream.close(cause)
		}
	}
	clear(r.agents)
	clear(r.expired)
	r.connected = 0
}

// stream returns the agent's welcomed live stream, or nil.
func (r *registry) stream(id string) *liveStream {
	r.mu.Lock()
	var ls *liveStream
	if l := r.agents[id]; l != nil {
		ls = l.stream
	}
	r.mu.Unlock()
	if ls == nil || !ls.ready() {
		return nil
	}
	return ls
}

func (r *registry) connectedCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.connected
}

// Run owns the leader-side agent bookkeeping until ctx ends: it follows
// leadership (closing every stream when it is lost, starting leases when
// it is gained) and marks agents down when their lease expires.
func (s *Service) Run(ctx context.Context) {
	defer s.reg.stopLeading(errShutdown)
	leading := s.reg.isLeader()
	for {
		var changed <-chan struct{}
		var retry <-chan time.Time
		if s.lead != nil {
			changed = s.lead.LeaderChanged()
			now := s.lead.IsLeader()
			switch {
			case now && !leading:
				// The table must hold every earlier term's entries
				// before it says which agents are up.
				bctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				err := s.lead.Barrier(bctx)
				cancel()
				if err != nil {
					s.log.Warn("new leader's barrier failed; retrying", "error", err)
					retry = time.After(time.Second)
					break
				}
				s.reg.becomeLeader(s.upAgents())
				leading = true
				s.log.Info("leading agent streams")
			case !now && leading:
				s.reg.stopLeading(errNotLeader)
				s.forgetAll()
				leading = false
				s.log.Info("no longer leading: closed every agent stream")
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-retry:
		case <-s.reg.expiredCh:
			s.expire(ctx, s.reg.takeExpired())
		}
	}
}

func (r *registry) isLeader() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.leader
}

func (s *Service) upAgents() []string {
	it, err := s.txn().Get(tableAgents, "id")
	if err != nil {
		return nil
	}
	var ids []string
	for obj := it.Next(); obj != nil; obj = it.Next() {
		if a := obj.(*Agent); a.Status == StatusUp {
			ids = append(ids, a.ID)
		}
	}
	return ids
}

// maxDownBatch bounds the down commands in one Raft entry.
const maxDownBatch = 256

// expire marks down, in batches, the agents whose lease has run out
// since their timer fired, closing any stream they still hold.
func (s *Service) expire(ctx context.Context, ids []string) {
	for chunk := range slices.Chunk(ids, maxDownBatch) {
		var cmds []state.Command
		var held []*lease
		var ids []string
		for _, id := range chunk {
			s.reg.mu.Lock()
			l := s.reg.agents[id]
			s.reg.mu.Unlock()
			if l == nil {
				continue
			}
			l.commitMu.Lock()
			s.reg.mu.Lock()
			due := s.reg.agents[id] == l && time.Since(l.lastSeen) >= l.ttl
			seen := l.lastSeen
			if due {
				l.timer.Stop()
				if l.stream != nil {
					l.stream.close(errLeaseExpired)
				}
			}
			s.reg.mu.Unlock()
			if a, err := getAgent(s.txn(), id); !due || err != nil || a.Status != StatusUp {
				l.commitMu.Unlock()
				continue
			}
			cmd, err := state.NewCommand(cmdAgentDown, 1, agentDownPayload{ID: id, LastSeen: seen.UTC()})
			if err != nil {
				l.commitMu.Unlock()
				continue
			}
			cmds, held, ids = append(cmds, cmd), append(held, l), append(ids, id)
		}
		if len(cmds) > 0 {
			// The same entry marks their unfinished attempts lost, so no
			// agent is ever down with an attempt still running.
			lost, err := state.NewCommand(cmdAttemptsLost, 1, attemptsLostPayload{AgentIDs: ids, Reason: "the agent went down (no heartbeat within its lease)"})
			if err == nil {
				cmds = append(cmds, lost)
			}
			res, err := s.applier.Apply(ctx, cmds...)
			if err != nil {
				s.log.Warn("mark agents down", "agents", len(ids), "error", err)
			} else {
				var l attemptsLostResult
				_ = res[len(res)-1].Decode(&l)
				s.log.Info("marked agents down: no heartbeat within the lease", "agents", len(ids), "first_agent_id", chunk[0], "attempts_lost", len(l.Lost))
			}
		}
		for _, l := range held {
			l.commitMu.Unlock()
		}
	}
}

// peerAgentID is the agent the verified client certificate names; the
// auth interceptor has already checked it.
func peerAgentID(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return ""
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 || len(info.State.VerifiedChains[0]) == 0 {
		return ""
	}
	id, _ := agentIDFromCert(info.State.VerifiedChains[0][0])
	return id
}

// connect serves one agent's stream: a redirect on a follower; on the
// leader hello, welcome, then heartbeats until the stream ends, is
// replaced, the agent is revoked or leadership is lost.
func (s *Service) connect(stream agentv1.AgentService_ConnectServer) error {
	ctx := stream.Context()
	id := peerAgentID(ctx)
	if id == "" {
		return status.Error(codes.Unauthenticated, "the client certificate names no agent")
	}
	if !s.reg.isLeader() {
		return s.redirect(stream)
	}

	// The reader ends when Recv fails, which gRPC guarantees once this
	// handler returns (the stream's context is cancelled then).
	msgs := make(chan *agentv1.AgentMessage)
	recvErr := make(chan error, 1)
	go func() {
		for {
			m, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			select {
			case msgs <- m:
			case <-ctx.Done():
				return
			}
		}
	}()

	helloWait := time.NewTimer(s.cfg.HelloTimeout)
	defer helloWait.Stop()
	var hello *agentv1.Hello
	select {
	case m := <-msgs:
		hello = m.GetHello()
	case err := <-recvErr:
		return streamEnd(err)
	case <-helloWait.C:
		return status.Error(codes.DeadlineExceeded, "no hello in time")
	case <-ctx.Done():
		return ctx.Err()
	}
	if hello == nil || hello.GetAgentId() != id {
		return status.Errorf(codes.InvalidArgument, "the first message must be a hello naming this agent (%s)", id)
	}

	ls, l, interval, ttl, ok := s.reg.attach(id)
	if !ok {
		return s.redirect(stream)
	}
	defer s.reg.detach(ls)
	stopWriter := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); ls.write(stream, stopWriter) }()
	// gRPC forbids Send once the handler has returned.
	defer func() { close(stopWriter); wg.Wait() }()
	log := s.log.With("agent_id", id)
	up := agentUpPayload{ID: id, NodeID: s.cfg.NodeID, Version: hello.GetVersion(), Facts: factsFromProto(hello.GetFacts()),
		Plugins: pluginsFromProto(hello.GetPlugins())}
	if hello.GetFacts() == nil {
		// A hello without facts keeps what the agent reported before (at
		// enrolment or on an earlier stream) rather than erasing it.
		if a, err := getAgent(s.txn(), id); err == nil {
			up.Facts = a.Facts
		}
	}
	if err := s.commitUp(ctx, l, up); err != nil {
		if _, ok := status.FromError(err); ok {
			return err // revoked since the interceptor let it in
		}
		log.Warn("agent up not committed", "error", err)
		return grpcError(err)
	}
	ls.welcome(s.welcomeMessage(interval, ttl))
	log.Info("agent connected", "version", up.Version, "heartbeat_interval", interval, "lease", ttl)
	// The ingest (a queue of ingestQueue slots and two goroutines) starts
	// with the first chunk or result: most streams are idle agents that
	// never send one, and a leader holds thousands of them.
	var ing *ingest
	ingestor := func() *ingest {
		if ing == nil {
			ing = s.startIngest(ls, log)
		}
		return ing
	}
	defer func() {
		if ing != nil {
			ing.stop()
		}
	}()
	var starts sync.WaitGroup
	defer starts.Wait()
	s.resumeAttempts(ctx, ls, hello.GetRunning(), log)

	draining := false
	for {
		// The agent's row: a change may be a revocation or a drain.
		rowCh, raw, err := s.txn().FirstWatch(tableAgents, "id", id)
		if err != nil {
			return grpcError(err)
		}
		if raw == nil || raw.(*Agent).Revoked {
			log.Info("closed a revoked agent's stream")
			return errRevoked
		}
		if a := raw.(*Agent); a.Draining != draining {
			draining = a.Draining
			ls.enqueue(&agentv1.ControllerMessage{Msg: &agentv1.ControllerMessage_Drain{Drain: &agentv1.Drain{Draining: draining}}})
		}
	wait:
		for {
			select {
			case <-rowCh:
				break wait
			case <-s.store.AbandonCh():
				break wait
			case m := <-msgs:
				if interval, ttl, retune := s.reg.seen(ls); retune {
					ls.enqueue(s.welcomeMessage(interval, ttl))
				}
				switch {
				case m.GetFacts() != nil:
					up.Facts = factsFromProto(m.GetFacts())
					if err := s.commitUp(ctx, l, up); err != nil {
						log.Warn("agent facts not committed", "error", err)
					}
				case m.GetAssignmentAck() != nil:
					// Committed off the receive path: the result may
					// follow at once and must not wait behind it (the FSM
					// ignores a start that lands after the result).
					starts.Add(1)
					go func(attemptID string) {
						defer starts.Done()
						s.attemptStarted(ctx, id, attemptID, log)
					}(m.GetAssignmentAck().GetAttemptId())
				case m.GetLog() != nil:
					if err := ingestor().chunk(ctx, m.GetLog()); err != nil {
						log.Warn("log chunk not stored; the agent will replay it", "attempt_id", m.GetLog().GetAttemptId(), "error", err)
						return errHistoryDown
					}
				case m.GetResult() != nil:
					ingestor().result(ctx, m.GetResult())
				case m.GetCertificateRequest() != nil:
					s.renewCert(ctx, ls, m.GetCertificateRequest(), log)
				}
			case err := <-recvErr:
				return streamEnd(err)
			case <-ls.closed:
				return ls.cause
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
}

// welcomeMessage names this leader and the heartbeat interval and lease
// for a stream: first as the answer to Hello, later to retune them.
func (s *Service) welcomeMessage(interval, ttl time.Duration) *agentv1.ControllerMessage {
	return &agentv1.ControllerMessage{Msg: &agentv1.ControllerMessage_Welcome{Welcome: &agentv1.Welcome{
		NodeId: s.cfg.NodeID, HeartbeatInterval: durationpb.New(interval), Lease: durationpb.New(ttl)}}}
}

// commitUp commits the agent up on this node unless the table already
// says exactly that.
func (s *Service) commitUp(ctx context.Context, l *lease, up agentUpPayload) error {
	l.commitMu.Lock()
	defer l.commitMu.Unlock()
	a, err := getAgent(s.txn(), up.ID)
	if err != nil {
		return err
	}
	if a.Revoked {
		return errRevoked
	}
	if a.Status == StatusUp && a.ConnectedTo == up.NodeID && a.Version == up.Version &&
		reflect.DeepEqual(normFacts(a.Facts), normFacts(up.Facts)) && slices.Equal(a.Plugins, up.Plugins) {
		return nil
	}
	var out Agent
	return s.apply(ctx, cmdAgentUp, up, &out)
}

func normFacts(f Facts) Facts {
	if len(f.Addresses) == 0 {
		f.Addresses = nil
	}
	if len(f.Extra) == 0 {
		f.Extra = nil
	}
	return f
}

// redirect answers a stream on a follower with the leader's agent
// address (empty when there is no leader: the agent backs off and
// retries) and ends it cleanly. It is the only message such a stream
// gets, sent by its handler, so it needs no writer goroutine.
func (s *Service) redirect(stream agentv1.AgentService_ConnectServer) error {
	var nodeID, addr string
	if s.lead != nil {
		ctx, cancel := context.WithTimeout(stream.Context(), 2*time.Second)
		var err error
		nodeID, addr, err = s.lead.LeaderAgent(ctx)
		cancel()
		if err != nil {
			s.log.Warn("leader's agent address unknown", "leader_id", nodeID, "error", err)
			addr = ""
		}
	}
	if nodeID == s.cfg.NodeID {
		return status.Error(codes.Unavailable, "this controller is becoming the leader: retry in a moment")
	}
	return stream.Send(&agentv1.ControllerMessage{Msg: &agentv1.ControllerMessage_Redirect{Redirect: &agentv1.Redirect{
		LeaderNodeId: nodeID, LeaderAddress: addr}}})
}

// streamEnd maps the end of the agent's side onto the handler's return.
func streamEnd(err error) error {
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

func factsFromProto(f *agentv1.Facts) Facts {
	return Facts{Hostname: f.GetHostname(), OS: f.GetOs(), OSVersion: f.GetOsVersion(), Kernel: f.GetKernel(), Arch: f.GetArch(),
		CPUs: int(f.GetCpus()), MemoryBytes: f.GetMemoryBytes(), Addresses: f.GetAddresses(), Extra: f.GetExtra()}
}

func pluginsFromProto(ps []*agentv1.PluginInfo) []Plugin {
	var out []Plugin
	for _, p := range ps {
		out = append(out, Plugin{Name: p.GetName(), Version: p.GetVersion(), SHA256: p.GetSha256()})
	}
	return out
}
