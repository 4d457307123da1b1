package live

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// recvTimeout bounds every wait for an event; a correct hub answers in
// microseconds, so hitting it means an event was lost.
const recvTimeout = 5 * time.Second

func recv(t *testing.T, s *Subscription) Event {
	t.Helper()
	select {
	case ev, ok := <-s.C():
		if !ok {
			t.Fatal("subscription closed, want an event")
		}
		return ev
	case <-time.After(recvTimeout):
		t.Fatal("no event within the timeout")
	}
	return Event{}
}

func expectClosed(t *testing.T, s *Subscription) {
	t.Helper()
	select {
	case ev, ok := <-s.C():
		if ok {
			t.Fatalf("got %+v, want the channel closed", ev)
		}
	case <-time.After(recvTimeout):
		t.Fatal("the channel did not close")
	}
}

func hello(t *testing.T, ev Event) Hello {
	t.Helper()
	if ev.Type != TypeHello {
		t.Fatalf("first event is %q, want hello", ev.Type)
	}
	var h Hello
	if err := json.Unmarshal(ev.Data, &h); err != nil {
		t.Fatalf("hello data: %v", err)
	}
	return h
}

type payload struct {
	N int `json:"n"`
}

func publishN(h *Hub, runID string, from, to int) {
	for i := from; i <= to; i++ {
		h.Publish(runID, TypeLog, payload{N: i})
	}
}

func subscribe(t *testing.T, h *Hub, runID string, pos Position) *Subscription {
	t.Helper()
	s, err := h.SubscribeAt(context.Background(), runID, pos)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// want describes an expected event: a seq of a published event, or a gap.
type want struct {
	typ      string
	seq      uint64
	from, to uint64
}

func ev(seq uint64) want       { return want{typ: TypeLog, seq: seq} }
func gap(from, to uint64) want { return want{typ: TypeGap, seq: to, from: from, to: to} }
func end(seq uint64) want      { return want{typ: TypeEnd, seq: seq} }
func evs(from, to uint64) []want {
	var out []want
	for i := from; i <= to; i++ {
		out = append(out, ev(i))
	}
	return out
}

func expect(t *testing.T, s *Subscription, wants ...want) {
	t.Helper()
	for i, w := range wants {
		got := recv(t, s)
		if got.Type != w.typ || got.Seq != w.seq || got.From != w.from || got.To != w.to {
			t.Fatalf("event %d = {type %s seq %d from %d to %d}, want {type %s seq %d from %d to %d}",
				i, got.Type, got.Seq, got.From, got.To, w.typ, w.seq, w.from, w.to)
		}
		if w.typ == TypeLog {
			var p payload
			if err := json.Unmarshal(got.Data, &p); err != nil || uint64(p.N) != w.seq {
				t.Fatalf("event %d data = %s, want n=%d", i, got.Data, w.seq)
			}
		}
	}
}

func TestHubDelivery(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		// before are published before subscribing, after while subscribed
		before, after int
		pos           Position
		want          []want
		wantHello     Hello
	}{
		{name: "a subscriber from the start sees every event in order",
			before: 0, after: 5, want: evs(1, 5), wantHello: Hello{Head: 0, Oldest: 1}},
		{name: "a subscriber from the start replays the ring, then goes live",
			before: 3, after: 2, want: evs(1, 5), wantHello: Hello{Head: 3, Oldest: 1}},
		{name: "resuming after N skips what the client has",
			before: 10, after: 1, pos: Position{After: 4}, want: evs(5, 11), wantHello: Hello{Head: 10, Oldest: 1}},
		{name: "resuming at the head waits for new events",
			before: 10, after: 2, pos: Position{After: 10}, want: evs(11, 12), wantHello: Hello{Head: 10, Oldest: 1}},
		{name: "a replay longer than the queue is not lag",
			cfg: Config{QueueSize: 4}, before: 10, after: 0, want: evs(1, 10), wantHello: Hello{Head: 10, Oldest: 1}},
		{name: "resuming before the oldest event in the ring starts with a gap",
			cfg: Config{RingSize: 8}, before: 20, after: 0, pos: Position{After: 3},
			want: append([]want{gap(4, 12)}, evs(13, 20)...), wantHello: Hello{Head: 20, Oldest: 13}},
		{name: "the ring also drops the oldest events to stay within its bytes",
			cfg: Config{RingBytes: 30}, before: 10, after: 0, // each payload is {"n":k}: 7 or 8 bytes
			want: append([]want{gap(1, 6)}, evs(7, 10)...), wantHello: Hello{Head: 10, Oldest: 7}},
		{name: "a position from another epoch restarts from the ring's start",
			before: 5, after: 1, pos: Position{After: 3, Epoch: "elsewhere"}, want: evs(1, 6),
			wantHello: Hello{Head: 5, Oldest: 1, Restarted: true}},
		{name: "a position beyond the head restarts from the ring's start",
			before: 5, after: 0, pos: Position{After: 99}, want: evs(1, 5),
			wantHello: Hello{Head: 5, Oldest: 1, Restarted: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := NewHub(tc.cfg)
			publishN(h, "r1", 1, tc.before)
			s := subscribe(t, h, "r1", tc.pos)
			got := hello(t, recv(t, s))
			tc.wantHello.RunID = "r1"
			tc.wantHello.Epoch = got.Epoch
			if got != tc.wantHello {
				t.Fatalf("hello = %+v, want %+v", got, tc.wantHello)
			}
			publishN(h, "r1", tc.before+1, tc.before+tc.after)
			expect(t, s, tc.want...)
		})
	}
}

func TestHubBoundsAllRingsTogether(t *testing.T) {
	// Each payload {"n":k} is 7 or 8 bytes; the hub holds at most 40.
	h := NewHub(Config{HubBytes: 40})
	publishN(h, "quiet", 1, 3) // 21 bytes
	publishN(h, "busy", 1, 10) // only what fits beside quiet stays
	quiet := subscribe(t, h, "quiet", Position{})
	if got := hello(t, recv(t, quiet)); got.Oldest != 1 {
		t.Fatalf("the quiet run lost events to the busy one: oldest %d", got.Oldest)
	}
	busy := subscribe(t, h, "busy", Position{})
	got := hello(t, recv(t, busy))
	if got.Head != 10 || got.Oldest < 8 {
		t.Fatalf("busy run hello %+v, want head 10 and only its newest events kept", got)
	}
	if total := h.bytes.Load(); total > 40 {
		t.Fatalf("the hub holds %d bytes, want at most 40", total)
	}
}

func TestHubHelloStartsAtThePosition(t *testing.T) {
	h := NewHub(Config{})
	publishN(h, "r1", 1, 5)
	s := subscribe(t, h, "r1", Position{After: 2})
	first := recv(t, s)
	if first.Seq != 2 {
		t.Fatalf("hello seq = %d, want the position 2", first.Seq)
	}
	epoch := hello(t, first).Epoch
	// The epoch the hello names is the one to resume with.
	again := subscribe(t, h, "r1", Position{After: 5, Epoch: epoch})
	if got := hello(t, recv(t, again)); got.Restarted || got.Epoch != epoch {
		t.Fatalf("resuming with the hub's own epoch: hello %+v", got)
	}
}

func TestHubSlowSubscriber(t *testing.T) {
	t.Run("a subscriber that does not read gets one gap and continues from the live head", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		h := NewHub(Config{QueueSize: 4, Registerer: reg})
		s := subscribe(t, h, "r1", Position{})
		// The subscription's goroutine holds the hello until it is read,
		// so everything published now is queued behind it.
		publishN(h, "r1", 1, 10)
		hello(t, recv(t, s))
		expect(t, s, gap(1, 10))
		publishN(h, "r1", 11, 12)
		expect(t, s, evs(11, 12)...)
		if got := metricValue(t, h, "opsconductor_live_gaps_total", "slow"); got != 1 {
			t.Fatalf("slow gaps = %v, want 1", got)
		}
	})
	t.Run("a subscriber within its queue misses nothing", func(t *testing.T) {
		h := NewHub(Config{QueueSize: 4})
		s := subscribe(t, h, "r1", Position{})
		publishN(h, "r1", 1, 4)
		hello(t, recv(t, s))
		expect(t, s, evs(1, 4)...)
	})
	t.Run("a gap never swallows the end", func(t *testing.T) {
		h := NewHub(Config{QueueSize: 2})
		s := subscribe(t, h, "r1", Position{})
		publishN(h, "r1", 1, 10)
		h.End("r1")
		hello(t, recv(t, s))
		expect(t, s, gap(1, 10), end(11))
		expectClosed(t, s)
	})
	t.Run("a lagging subscriber does not slow the publisher or others", func(t *testing.T) {
		h := NewHub(Config{QueueSize: 8, RingSize: 16})
		stuck := subscribe(t, h, "r1", Position{})
		reader := subscribe(t, h, "r1", Position{})
		hello(t, recv(t, reader))
		for i := 1; i <= 1000; i++ {
			h.Publish("r1", TypeLog, payload{N: i})
			expect(t, reader, ev(uint64(i)))
		}
		hello(t, recv(t, stuck))
		expect(t, stuck, gap(1, 1000))
	})
}

func TestHubEnd(t *testing.T) {
	t.Run("subscribers get end after the pending events, then the channel closes", func(t *testing.T) {
		h := NewHub(Config{})
		s := subscribe(t, h, "r1", Position{})
		hello(t, recv(t, s))
		publishN(h, "r1", 1, 3)
		h.End("r1")
		expect(t, s, append(evs(1, 3), end(4))...)
		expectClosed(t, s)
	})
	t.Run("a late joiner replays the tail and the end", func(t *testing.T) {
		h := NewHub(Config{})
		publishN(h, "r1", 1, 3)
		h.End("r1")
		s := subscribe(t, h, "r1", Position{After: 1})
		hello(t, recv(t, s))
		expect(t, s, ev(2), ev(3), end(4))
		expectClosed(t, s)
	})
	t.Run("publishing after the end is dropped and counted; a second End is a no-op", func(t *testing.T) {
		h := NewHub(Config{})
		h.End("r1")
		h.End("r1")
		h.Publish("r1", TypeLog, payload{N: 9})
		s := subscribe(t, h, "r1", Position{})
		if got := hello(t, recv(t, s)); got.Head != 1 {
			t.Fatalf("head = %d, want 1 (the end only)", got.Head)
		}
		expect(t, s, end(1))
		if got := metricValue(t, h, "opsconductor_live_events_dropped_total", "ended"); got != 1 {
			t.Fatalf("dropped after end = %v, want 1", got)
		}
	})
}

func TestHubRefusesBadEvents(t *testing.T) {
	cases := []struct {
		name, typ string
		data      any
		reason    string
	}{
		{name: "a publisher cannot send a gap", typ: TypeGap, reason: "bad_type"},
		{name: "a publisher cannot send an end", typ: TypeEnd, reason: "bad_type"},
		{name: "a publisher cannot send a hello", typ: TypeHello, reason: "bad_type"},
		{name: "data that does not marshal is dropped", typ: TypeLog, data: math.Inf(1), reason: "marshal"},
		{name: "raw data that is not JSON is dropped", typ: TypeLog, data: json.RawMessage("{"), reason: "marshal"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := NewHub(Config{})
			h.Publish("r1", tc.typ, tc.data)
			if got := metricValue(t, h, "opsconductor_live_events_dropped_total", tc.reason); got != 1 {
				t.Fatalf("dropped[%s] = %v, want 1", tc.reason, got)
			}
			s := subscribe(t, h, "r1", Position{})
			if got := hello(t, recv(t, s)); got.Head != 0 {
				t.Fatalf("head = %d, want 0", got.Head)
			}
		})
	}
	t.Run("raw JSON data is sent as is", func(t *testing.T) {
		h := NewHub(Config{})
		h.Publish("r1", TypeRun, json.RawMessage(`{"status":"running"}`))
		s := subscribe(t, h, "r1", Position{})
		hello(t, recv(t, s))
		if got := recv(t, s); string(got.Data) != `{"status":"running"}` || got.Type != TypeRun {
			t.Fatalf("event = %+v", got)
		}
	})
	t.Run("an empty run ID is refused", func(t *testing.T) {
		if _, err := NewHub(Config{}).Subscribe(context.Background(), "", 0); err == nil {
			t.Fatal("Subscribe with an empty run ID succeeded")
		}
	})
}

func TestHubSubscriptionLifetime(t *testing.T) {
	t.Run("Close releases the subscription and closes its channel", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		h := NewHub(Config{Registerer: reg})
		s, err := h.Subscribe(context.Background(), "r1", 0)
		if err != nil {
			t.Fatal(err)
		}
		if got := metricValue(t, h, "opsconductor_live_subscribers", ""); got != 1 {
			t.Fatalf("subscribers = %v, want 1", got)
		}
		s.Close()
		s.Close()
		expectClosed(t, s)
		if got := metricValue(t, h, "opsconductor_live_subscribers", ""); got != 0 {
			t.Fatalf("subscribers after Close = %v, want 0", got)
		}
	})
	t.Run("the context ends the subscription", func(t *testing.T) {
		h := NewHub(Config{})
		ctx, cancel := context.WithCancel(context.Background())
		s, err := h.Subscribe(ctx, "r1", 0)
		if err != nil {
			t.Fatal(err)
		}
		cancel()
		<-s.Done()
		expectClosed(t, s)
	})
	t.Run("a cancelled context is refused", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := NewHub(Config{}).Subscribe(ctx, "r1", 0); err == nil {
			t.Fatal("Subscribe with a cancelled context succeeded")
		}
	})
}

func TestHubReset(t *testing.T) {
	h := NewHub(Config{})
	publishN(h, "r1", 1, 3)
	s := subscribe(t, h, "r1", Position{})
	first := hello(t, recv(t, s))
	ended := subscribe(t, h, "r2", Position{})
	hello(t, recv(t, ended))
	h.End("r2")
	expect(t, ended, end(1))
	expectClosed(t, ended)

	h.Reset()
	// What was already queued may still arrive; then the channel closes.
	for range s.C() {
	}
	if err := s.Err(); !errors.Is(err, ErrReset) {
		t.Fatalf("Err after Reset = %v, want ErrReset", err)
	}
	if err := ended.Err(); err != nil {
		t.Fatalf("Err after the end = %v, want nil", err)
	}
	again := subscribe(t, h, "r1", Position{After: 3, Epoch: first.Epoch})
	if got := hello(t, recv(t, again)); got.Epoch == first.Epoch || got.Head != 0 || !got.Restarted {
		t.Fatalf("after Reset: hello %+v, want a new, empty epoch", got)
	}
	if got := h.bytes.Load(); got != 0 {
		t.Fatalf("the hub still counts %d bytes", got)
	}
	closed := subscribe(t, h, "r3", Position{})
	closed.Close()
	if err := closed.Err(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Err after Close = %v, want context.Canceled", err)
	}
}

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestHubForgetsIdleRuns(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	h := NewHub(Config{IdleExpiry: time.Minute, Now: clock.Now})
	publishN(h, "quiet", 1, 3)
	h.End("ended")
	watched := subscribe(t, h, "watched", Position{})
	hello(t, recv(t, watched))
	first := subscribe(t, h, "quiet", Position{})
	epoch := hello(t, recv(t, first)).Epoch
	first.Close()

	clock.advance(time.Minute)
	h.Publish("other", TypeLog, payload{N: 1}) // sweeps on the way through
	h.mu.Lock()
	_, quiet := h.runs["quiet"]
	_, ended := h.runs["ended"]
	_, kept := h.runs["watched"]
	h.mu.Unlock()
	if quiet || ended || !kept {
		t.Fatalf("after the expiry: quiet kept %v, ended kept %v, watched kept %v; want only watched", quiet, ended, kept)
	}
	s := subscribe(t, h, "quiet", Position{After: 3, Epoch: epoch})
	if got := hello(t, recv(t, s)); got.Epoch == epoch || !got.Restarted || got.Head != 0 {
		t.Fatalf("a forgotten run comes back as a new epoch: hello %+v (old epoch %s)", got, epoch)
	}
}

func TestHubManySubscribersConcurrently(t *testing.T) {
	const (
		runs        = 3
		publishers  = 4
		perPub      = 250
		subscribers = 40
	)
	h := NewHub(Config{QueueSize: runs * publishers * perPub})
	var wg sync.WaitGroup
	errs := make(chan error, runs*subscribers)
	ready := make(chan struct{}, runs*subscribers)
	for r := 0; r < runs; r++ {
		runID := fmt.Sprintf("run-%d", r)
		for i := 0; i < subscribers; i++ {
			s, err := h.Subscribe(context.Background(), runID, 0)
			if err != nil {
				t.Fatal(err)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer s.Close()
				errs <- checkStream(s, publishers*perPub, ready)
			}()
		}
	}
	for range runs * subscribers {
		<-ready
	}
	var pubWG sync.WaitGroup
	for r := 0; r < runs; r++ {
		runID := fmt.Sprintf("run-%d", r)
		var done sync.WaitGroup
		for p := 0; p < publishers; p++ {
			done.Add(1)
			pubWG.Add(1)
			go func() {
				defer pubWG.Done()
				defer done.Done()
				for i := 0; i < perPub; i++ {
					h.Publish(runID, TypeLog, payload{N: p*perPub + i})
				}
			}()
		}
		pubWG.Add(1)
		go func() {
			defer pubWG.Done()
			done.Wait()
			h.End(runID)
		}()
	}
	pubWG.Wait()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// checkStream reads a whole run: a hello, want events with seqs 1..want
// and no gap, each publisher's events in its own order, then the end.
func checkStream(s *Subscription, want int, ready chan<- struct{}) error {
	first, ok := <-s.C()
	ready <- struct{}{}
	if !ok || first.Type != TypeHello {
		return fmt.Errorf("first event %+v, want hello", first)
	}
	lastByPub := map[int]int{}
	for seq := uint64(1); seq <= uint64(want); seq++ {
		ev, ok := <-s.C()
		if !ok {
			return fmt.Errorf("closed at seq %d", seq)
		}
		if ev.Type != TypeLog || ev.Seq != seq {
			return fmt.Errorf("got {%s %d}, want log %d", ev.Type, ev.Seq, seq)
		}
		var p payload
		if err := json.Unmarshal(ev.Data, &p); err != nil {
			return err
		}
		pub := p.N / 250
		if last, seen := lastByPub[pub]; seen && p.N <= last {
			return fmt.Errorf("publisher %d's events out of order: %d after %d", pub, p.N, last)
		}
		lastByPub[pub] = p.N
	}
	if ev := <-s.C(); ev.Type != TypeEnd || ev.Seq != uint64(want)+1 {
		return fmt.Errorf("got %+v, want the end", ev)
	}
	if _, ok := <-s.C(); ok {
		return fmt.Errorf("channel open after the end")
	}
	return nil
}

func BenchmarkPublish(b *testing.B) {
	for _, subs := range []int{0, 1, 100} {
		b.Run(fmt.Sprintf("subscribers=%d", subs), func(b *testing.B) {
			h := NewHub(Config{QueueSize: 1 << 30})
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			for range subs {
				s, err := h.Subscribe(ctx, "r1", 0)
				if err != nil {
					b.Fatal(err)
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range s.C() {
					}
				}()
			}
			data := json.RawMessage(`{"target":"web-1","step":"restart","stream":"stdout","seq":1,"data":"ok\n"}`)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				h.Publish("r1", TypeLog, data)
			}
			b.StopTimer()
			cancel()
			wg.Wait()
		})
	}
}

// metricValue reads one of the hub's metrics: the series whose only label
// has the value label ("" for an unlabelled metric), 0 when absent.
func metricValue(t *testing.T, h *Hub, name, label string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(h.m)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if l := m.GetLabel(); (len(l) == 0 && label == "") || (len(l) == 1 && l[0].GetValue() == label) {
				return m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return 0
}
