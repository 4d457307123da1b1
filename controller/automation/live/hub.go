// Package live fans the events of a run out to the clients watching it:
// run and attempt state changes and log lines, in order, numbered per run
// and resumable from a sequence number.
//
// It owns memory only: a bounded ring of recent events per run and a cursor
// per subscriber. It must never block a publisher (the run engine calls it
// on the dispatch path), never buffer without bound for a slow subscriber
// (one that falls behind gets a "gap" event naming what it missed and
// fetches that over REST), and never write replicated state: the hub lives
// on the Raft leader and a new leader starts with an empty one, which a
// client notices from the run's epoch in the "hello" event.
package live

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Event types. Publishers send the first three; the hub makes the rest.
const (
	// TypeRun: the run's state changed; Data is the run as the REST API
	// shows it.
	TypeRun = "run"
	// TypeAttempt: a target's step changed state.
	TypeAttempt = "attempt"
	// TypeLog: output of a step; Data is {target, step, attempt_id,
	// stream, seq, data}.
	TypeLog = "log"
	// TypeGap: the subscriber missed the events From..To (inclusive); it
	// can read them over REST (GET /api/v1/runs/{id} and .../logs).
	TypeGap = "gap"
	// TypeEnd: the run is final; nothing follows and the stream closes.
	TypeEnd = "end"
	// TypeHello: the first event of every subscription (see Hello).
	TypeHello = "hello"
)

// Event is one thing that happened in a run, as clients receive it (JSON).
type Event struct {
	// Seq numbers the run's events from 1 with no holes within one hub's
	// life (one epoch). A gap carries its To here and a hello the position
	// the stream starts after, so a client can always resume from the Seq
	// of the last event it handled.
	Seq  uint64          `json:"seq"`
	Type string          `json:"type"`
	Time time.Time       `json:"time"`
	Data json.RawMessage `json:"data,omitempty"`
	// For "gap": the range of seqs the client missed.
	From uint64 `json:"from,omitempty"`
	To   uint64 `json:"to,omitempty"`
}

// Hello is the Data of the "hello" event.
type Hello struct {
	RunID string `json:"run_id"`
	// Epoch names this hub's sequence for the run. Seqs from another epoch
	// (another leader, or a run the hub had forgotten while idle) mean
	// nothing here; a client resumes with both ?after= and ?epoch=.
	Epoch string `json:"epoch"`
	// Head is the last seq published when the subscription began, Oldest
	// the first seq still in the ring (Head+1 when it is empty).
	Head   uint64 `json:"head"`
	Oldest uint64 `json:"oldest"`
	// Restarted is true when the client asked to resume from a position
	// of another epoch (or beyond the head): the stream starts from the
	// beginning of what the hub holds, and the client should reload the
	// run over REST.
	Restarted bool `json:"restarted,omitempty"`
}

// Position is where a subscription starts: after the seq After of the
// epoch Epoch ("" = whatever epoch the hub has).
type Position struct {
	After uint64
	Epoch string
}

// Config tunes a Hub. Zero values take the defaults.
type Config struct {
	// RingSize is how many recent events each run keeps for resuming
	// clients (default 4096).
	RingSize int
	// RingBytes bounds the Data bytes each run's ring holds (default
	// 8 MiB), so a run of large log chunks cannot pin RingSize of them.
	RingBytes int
	// HubBytes bounds the Data bytes all rings hold together (default
	// 256 MiB): past it, a run that publishes gives up its own oldest
	// events, so many busy runs cannot add up to unbounded memory while
	// quiet runs keep their tails.
	HubBytes int
	// QueueSize is how many events a subscriber may trail the live head
	// by before it is skipped to the head with a gap (default 1024).
	QueueSize int
	// IdleExpiry is how long a run with no subscribers and no new events
	// (an ended one included) keeps its ring (default 15 minutes).
	IdleExpiry time.Duration
	Logger     *slog.Logger
	// Registerer receives the hub's metrics; nil registers none.
	Registerer prometheus.Registerer
	// Now stamps events; tests set it. Default time.Now.
	Now func() time.Time
}

// Defaults.
const (
	DefaultRingSize   = 4096
	DefaultRingBytes  = 8 << 20
	DefaultHubBytes   = 256 << 20
	DefaultQueueSize  = 1024
	DefaultIdleExpiry = 15 * time.Minute
)

func (c Config) withDefaults() Config {
	if c.RingSize <= 0 {
		c.RingSize = DefaultRingSize
	}
	if c.RingBytes <= 0 {
		c.RingBytes = DefaultRingBytes
	}
	if c.HubBytes <= 0 {
		c.HubBytes = DefaultHubBytes
	}
	if c.QueueSize <= 0 {
		c.QueueSize = DefaultQueueSize
	}
	if c.IdleExpiry <= 0 {
		c.IdleExpiry = DefaultIdleExpiry
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Hub holds the live runs. Its methods are safe for concurrent use. It
// starts no goroutine of its own: idle runs are swept on the way through
// Publish and Subscribe, and each Subscription owns its one goroutine.
type Hub struct {
	cfg Config
	log *slog.Logger
	m   *metrics

	// bytes is the Data held by all rings (atomic: each run updates it
	// under its own lock).
	bytes atomic.Int64

	mu        sync.Mutex
	runs      map[string]*run
	lastSweep time.Time
}

// NewHub builds a hub. A metrics registration failure (a second hub on one
// registry) is logged, not fatal: the hub works without its metrics.
func NewHub(cfg Config) *Hub {
	cfg = cfg.withDefaults()
	h := &Hub{cfg: cfg, log: cfg.Logger, runs: map[string]*run{}, lastSweep: cfg.Now()}
	h.m = newMetrics(func() float64 { return float64(h.bytes.Load()) })
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(h.m); err != nil {
			h.log.Warn("live hub metrics not registered", "error", err)
		}
	}
	return h
}

// Publish appends an event to the run's stream. It never blocks on a
// subscriber: it takes the run's lock for an append and a wake-up per
// subscriber. typ must be TypeRun, TypeAttempt or TypeLog; data is
// marshalled to JSON (a json.RawMessage is used as is). An event that
// cannot be published (bad type, unmarshallable data, run already ended)
// is dropped, logged and counted.
func (h *Hub) Publish(runID string, typ string, data any) {
	switch typ {
	case TypeRun, TypeAttempt, TypeLog:
	default:
		h.drop(runID, typ, "bad_type", errors.New("publishers may send only run, attempt and log events"))
		return
	}
	raw, err := marshal(data)
	if err != nil {
		h.drop(runID, typ, "marshal", err)
		return
	}
	h.append(runID, Event{Type: typ, Data: raw})
}

// End marks the run final: subscribers receive "end" after every event
// before it, then their channel closes. The ring stays for IdleExpiry so
// that a client joining late still sees the run's tail and its end.
// Calling End again, or Publish after it, is a no-op.
func (h *Hub) End(runID string) {
	h.append(runID, Event{Type: TypeEnd})
}

// ErrReset is why a subscription closed when its hub was reset: the node
// stopped (or started) leading, so the client must reconnect, which takes
// it to the hub that is fed now.
var ErrReset = errors.New("live hub reset: leadership changed")

// Reset forgets every run and closes every subscription without an end
// (Err says ErrReset). The run engine calls it whenever this node gains or
// loses leadership: a hub that is no longer fed would otherwise keep its
// clients waiting forever, and one that starts being fed must not mix its
// numbering with a stale ring's.
func (h *Hub) Reset() {
	h.mu.Lock()
	runs := h.runs
	h.runs = map[string]*run{}
	h.m.runs.Set(0)
	h.mu.Unlock()
	for _, r := range runs {
		r.mu.Lock()
		r.removed = true
		h.bytes.Add(-int64(r.bytes))
		for s := range r.subs {
			s.reset.Store(true)
			s.once.Do(s.cancel)
		}
		r.mu.Unlock()
	}
}

// Subscribe streams the run's events after seq after, whatever the epoch;
// see SubscribeAt.
func (h *Hub) Subscribe(ctx context.Context, runID string, after uint64) (*Subscription, error) {
	return h.SubscribeAt(ctx, runID, Position{After: after})
}

// SubscribeAt streams the run's events after pos. The first event is a
// hello; then the events after pos still in the ring (preceded by a gap for
// those that are not), then live events, then "end". The subscription lasts
// until ctx ends, Close is called or the run ends. A run the hub has not
// heard of yet is created empty: the caller checks that the run exists.
func (h *Hub) SubscribeAt(ctx context.Context, runID string, pos Position) (*Subscription, error) {
	if runID == "" {
		return nil, errors.New("subscribe: empty run ID")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("subscribe to run %s: %w", runID, err)
	}
	r := h.lockRun(runID)
	after := pos.After
	restarted := false
	if (pos.Epoch != "" && pos.Epoch != r.epoch) || after > r.head {
		restarted = after > 0
		after = 0
	}
	sctx, cancel := context.WithCancel(ctx)
	s := &Subscription{
		hub: h, run: r, out: make(chan Event), wake: make(chan struct{}, 1), done: make(chan struct{}),
		ctx: sctx, cancel: cancel, cursor: after, floor: r.head,
	}
	hello, _ := json.Marshal(Hello{RunID: r.id, Epoch: r.epoch, Head: r.head, Oldest: r.oldest(), Restarted: restarted})
	s.hello = Event{Seq: after, Type: TypeHello, Time: h.cfg.Now(), Data: hello}
	r.subs[s] = struct{}{}
	r.touched = h.cfg.Now()
	r.mu.Unlock()
	h.m.subscribers.Inc()
	go s.pump()
	return s, nil
}

// append numbers ev and adds it to the run's ring, then wakes the run's
// subscribers.
func (h *Hub) append(runID string, ev Event) {
	if runID == "" {
		h.drop(runID, ev.Type, "no_run", errors.New("empty run ID"))
		return
	}
	r := h.lockRun(runID)
	defer r.mu.Unlock()
	if r.ended {
		if ev.Type != TypeEnd {
			h.drop(runID, ev.Type, "ended", errors.New("the run has ended"))
		}
		return
	}
	r.head++
	ev.Seq = r.head
	ev.Time = h.cfg.Now()
	if ev.Type == TypeEnd {
		r.ended = true
	}
	h.bytes.Add(int64(r.push(ev, h.cfg.RingSize, h.cfg.RingBytes)))
	for h.bytes.Load() > int64(h.cfg.HubBytes) && r.n > 1 {
		h.bytes.Add(-int64(r.evict()))
	}
	r.touched = ev.Time
	h.m.events.WithLabelValues(ev.Type).Inc()
	for s := range r.subs {
		select {
		case s.wake <- struct{}{}:
		default: // already woken; it reads everything new when it runs
		}
	}
}

// lockRun returns the run, created if needed, with its lock held. A run
// swept between the map lookup and its lock is marked removed, and the
// lookup is retried, so that no event lands in a forgotten ring.
func (h *Hub) lockRun(runID string) *run {
	for {
		h.mu.Lock()
		now := h.cfg.Now()
		if now.Sub(h.lastSweep) >= h.sweepEvery() {
			h.sweepLocked(now)
		}
		r, ok := h.runs[runID]
		if !ok {
			r = &run{id: runID, epoch: newEpoch(), subs: map[*Subscription]struct{}{}, touched: now}
			h.runs[runID] = r
			h.m.runs.Set(float64(len(h.runs)))
		}
		h.mu.Unlock()
		r.mu.Lock()
		if !r.removed {
			return r
		}
		r.mu.Unlock()
	}
}

func (h *Hub) sweepEvery() time.Duration { return max(h.cfg.IdleExpiry/4, time.Second) }

// sweepLocked forgets runs nobody watches that have been quiet for
// IdleExpiry. Called with h.mu held.
func (h *Hub) sweepLocked(now time.Time) {
	h.lastSweep = now
	for id, r := range h.runs {
		r.mu.Lock()
		if len(r.subs) == 0 && now.Sub(r.touched) >= h.cfg.IdleExpiry {
			r.removed = true
			h.bytes.Add(-int64(r.bytes))
			delete(h.runs, id)
		}
		r.mu.Unlock()
	}
	h.m.runs.Set(float64(len(h.runs)))
}

func (h *Hub) drop(runID, typ, reason string, err error) {
	h.m.dropped.WithLabelValues(reason).Inc()
	h.log.Warn("live event dropped", "run_id", runID, "type", typ, "reason", reason, "error", err)
}

// marshal turns data into JSON; nil stays empty.
func marshal(data any) (json.RawMessage, error) {
	switch d := data.(type) {
	case nil:
		return nil, nil
	case json.RawMessage:
		if !json.Valid(d) {
			return nil, errors.New("data is not valid JSON")
		}
		return d, nil
	}
	b, err := json.Marshal(data)
	if err != nil {
		return nil, fmt.Errorf("marshal event data: %w", err)
	}
	return b, nil
}

func newEpoch() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

// run is one run's stream. Its ring is a circular buffer of the newest
// events, with contiguous seqs oldest()..head.
type run struct {
	id    string
	epoch string

	mu      sync.RWMutex
	buf     []Event // circular; grows by doubling up to the ring size
	start   int     // index of the oldest event in buf
	n       int     // events in buf
	bytes   int     // Data bytes in buf
	head    uint64  // last seq assigned
	ended   bool
	removed bool // swept: the hub's map no longer holds it
	subs    map[*Subscription]struct{}
	touched time.Time
}

// oldest is the first seq in the ring, head+1 when it is empty.
func (r *run) oldest() uint64 {
	if r.n == 0 {
		return r.head + 1
	}
	return r.buf[r.start].Seq
}

// at returns the event with seq, which must be in the ring.
func (r *run) at(seq uint64) Event {
	return r.buf[(r.start+int(seq-r.buf[r.start].Seq))%len(r.buf)]
}

// push appends ev, evicting the oldest events to stay within size events
// and maxBytes of Data, and returns by how much its Data bytes changed.
// The newest event is always kept.
func (r *run) push(ev Event, size, maxBytes int) int {
	before := r.bytes
	for r.n > 0 && (r.n >= size || r.bytes+len(ev.Data) > maxBytes) {
		r.evict()
	}
	if r.n == len(r.buf) {
		grown := make([]Event, min(max(2*len(r.buf), 16), size))
		for i := 0; i < r.n; i++ {
			grown[i] = r.buf[(r.start+i)%len(r.buf)]
		}
		r.buf, r.start = grown, 0
	}
	r.buf[(r.start+r.n)%len(r.buf)] = ev
	r.n++
	r.bytes += len(ev.Data)
	return r.bytes - before
}

// evict drops the oldest event and returns its Data bytes.
func (r *run) evict() int {
	n := len(r.buf[r.start].Data)
	r.bytes -= n
	r.buf[r.start] = Event{} // release Data
	r.start = (r.start + 1) % len(r.buf)
	r.n--
	return n
}

// Subscription is one client's view of a run. Its goroutine moves a cursor
// through the run's ring and hands events to C one at a time, so it holds
// no events of its own: what a slow subscriber costs is a cursor.
type Subscription struct {
	hub    *Hub
	run    *run
	out    chan Event
	wake   chan struct{}
	done   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	once   sync.Once
	hello  Event
	reset  atomic.Bool
	ended  atomic.Bool

	// Only the pump goroutine touches these after Subscribe returns.
	cursor uint64 // last seq handed out (or skipped by a gap)
	floor  uint64 // head when the subscription began: replay up to here is not lag
}

// C delivers the events in order. It is closed after "end", or when the
// subscription's context ends or Close is called.
func (s *Subscription) C() <-chan Event { return s.out }

// Close releases the subscription and waits for its goroutine to stop.
// It is safe to call more than once and from any goroutine.
func (s *Subscription) Close() {
	s.once.Do(s.cancel)
	<-s.done
}

// Done is closed once the subscription's goroutine has stopped.
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Err says why C closed, once it has: nil after the run's end, ErrReset
// when the hub was reset, else the context's error (Close included).
func (s *Subscription) Err() error {
	select {
	case <-s.done:
	default:
		return nil
	}
	switch {
	case s.ended.Load():
		return nil
	case s.reset.Load():
		return ErrReset
	}
	return s.ctx.Err()
}

func (s *Subscription) pump() {
	defer close(s.done)
	defer close(s.out)
	defer s.unsubscribe()
	if !s.send(s.hello) {
		return
	}
	for {
		ev, ok := s.next()
		if !ok {
			select {
			case <-s.wake:
				continue
			case <-s.ctx.Done():
				return
			}
		}
		if !s.send(ev) {
			return
		}
		if ev.Type == TypeEnd {
			s.ended.Store(true)
			return
		}
	}
}

func (s *Subscription) send(ev Event) bool {
	select {
	case s.out <- ev:
		return true
	case <-s.ctx.Done():
		return false
	}
}

// next returns the event after the cursor, or a gap when the subscriber
// has fallen more than QueueSize events behind the head (it skips to the
// head) or the ring has dropped what it has not read yet. A gap never
// covers the end event: a subscriber always learns that the run ended.
func (s *Subscription) next() (Event, bool) {
	r := s.run
	r.mu.RLock()
	defer r.mu.RUnlock()
	head := r.head
	if s.cursor >= head {
		return Event{}, false
	}
	last := head
	if r.ended {
		last = head - 1
	}
	if s.cursor < last && head-max(s.cursor, s.floor) > uint64(s.hub.cfg.QueueSize) {
		return s.gap(last, "slow"), true
	}
	if oldest := r.oldest(); s.cursor+1 < oldest {
		return s.gap(oldest-1, "ring"), true
	}
	s.cursor++
	return r.at(s.cursor), true
}

func (s *Subscription) gap(to uint64, reason string) Event {
	ev := Event{Seq: to, Type: TypeGap, Time: s.hub.cfg.Now(), From: s.cursor + 1, To: to}
	s.cursor = to
	s.hub.m.gaps.WithLabelValues(reason).Inc()
	return ev
}

func (s *Subscription) unsubscribe() {
	r := s.run
	r.mu.Lock()
	delete(r.subs, s)
	r.touched = s.hub.cfg.Now()
	r.mu.Unlock()
	s.hub.m.subscribers.Dec()
	s.once.Do(s.cancel) // release the context's resources
}
