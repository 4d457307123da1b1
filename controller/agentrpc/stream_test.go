package agentrpc

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	agentv1 "github.com/opsconductor/opsconductor/proto/agent/v1"
)

// fakeLeadership is the cluster as the stream sees it, switched by the test.
type fakeLeadership struct {
	mu             sync.Mutex
	leader         bool
	changed        chan struct{}
	leaderID, addr string
	err            error
}

func newFakeLeadership(leader bool) *fakeLeadership {
	return &fakeLeadership{leader: leader, changed: make(chan struct{})}
}

func (f *fakeLeadership) IsLeader() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.leader }

func (f *fakeLeadership) LeaderChanged() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.changed
}

func (f *fakeLeadership) Barrier(context.Context) error { return nil }

func (f *fakeLeadership) LeaderAgent(context.Context) (string, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.leaderID, f.addr, f.err
}

func (f *fakeLeadership) set(leader bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.leader = leader
	close(f.changed)
	f.changed = make(chan struct{})
}

// fastStreams makes heartbeats and leases short enough for tests.
func fastStreams(c *Config) {
	c.HeartbeatInterval, c.MinLease, c.HelloTimeout = 20*time.Millisecond, 300*time.Millisecond, 2*time.Second
}

// testAgent is a minimal agent: one Connect stream, driven by the test.
type testAgent struct {
	id     string
	stream agentv1.AgentService_ConnectClient
	cancel context.CancelFunc
}

// enrolled enrols a new agent and returns its ID and TLS identity.
func (e *env) enrolled(t *testing.T, name string) (string, *tls.Certificate) {
	t.Helper()
	res, cert, err := e.enroll(t, e.token(t, CreateJoinToken{}).Token, name)
	if err != nil {
		t.Fatal(err)
	}
	return res.AgentId, cert
}

// open starts a stream for agent id without saying anything.
func (e *env) open(t *testing.T, id string, cert *tls.Certificate) *testAgent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	stream, err := e.dial(t, cert).Connect(ctx)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	a := &testAgent{id: id, stream: stream, cancel: cancel}
	t.Cleanup(cancel)
	return a
}

func (a *testAgent) send(t *testing.T, m *agentv1.AgentMessage) {
	t.Helper()
	if err := a.stream.Send(m); err != nil {
		t.Fatalf("send: %v", err)
	}
}

func helloFrom(id string) *agentv1.AgentMessage {
	return &agentv1.AgentMessage{Msg: &agentv1.AgentMessage_Hello{Hello: &agentv1.Hello{AgentId: id, Version: "1.2.3",
		Facts:   &agentv1.Facts{Hostname: "web01", Os: "linux", Cpus: 4},
		Plugins: []*agentv1.PluginInfo{{Name: "http", Version: "1.0.0"}}}}}
}

func heartbeat() *agentv1.AgentMessage {
	return &agentv1.AgentMessage{Msg: &agentv1.AgentMessage_Heartbeat{Heartbeat: &agentv1.Heartbeat{}}}
}

// hello says hello and returns the welcome.
func (a *testAgent) hello(t *testing.T) *agentv1.Welcome {
	t.Helper()
	a.send(t, helloFrom(a.id))
	m, err := a.stream.Recv()
	if err != nil || m.GetWelcome() == nil {
		t.Fatalf("after hello got %v, %v; want a welcome", m, err)
	}
	return m.GetWelcome()
}

// connectAgent enrols an agent and brings it up over a stream.
func (e *env) connectAgent(t *testing.T, name string) (*testAgent, *tls.Certificate) {
	t.Helper()
	id, cert := e.enrolled(t, name)
	a := e.open(t, id, cert)
	a.hello(t)
	return a, cert
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (e *env) agent(t *testing.T, id string) Agent {
	t.Helper()
	a, err := e.svc.GetAgent(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func (e *env) applied(typ string) int {
	return e.applier.Applied(typ)
}

func TestHelloIsWelcomedAndMarksTheAgentUp(t *testing.T) {
	e := newEnvWith(t, nil, nil)
	id, cert := e.enrolled(t, "web01")
	a := e.open(t, id, cert)
	w := a.hello(t)
	if w.GetNodeId() != "n1" || w.GetHeartbeatInterval().AsDuration() != DefaultHeartbeatInterval || w.GetLease().AsDuration() != DefaultMinLease {
		t.Fatalf("welcome = %v", w)
	}
	got := e.agent(t, id)
	if got.Status != StatusUp || got.ConnectedTo != "n1" || got.Version != "1.2.3" || got.Facts.CPUs != 4 ||
		len(got.Plugins) != 1 || got.Plugins[0].Name != "http" || got.LastSeen == nil {
		t.Fatalf("agent after hello = %+v", got)
	}
	if h := e.svc.HealthSection(context.Background()).(agentCounts); h.Connected != 1 || h.Down != 0 {
		t.Fatalf("health = %+v", h)
	}
	// New facts on the stream are committed.
	a.send(t, &agentv1.AgentMessage{Msg: &agentv1.AgentMessage_Facts{Facts: &agentv1.Facts{Hostname: "web01", Os: "linux", Cpus: 8}}})
	waitFor(t, "the new facts committed", func() bool { return e.agent(t, id).Facts.CPUs == 8 })
	// A reconnect with nothing changed since the first hello commits the
	// first hello's facts once, and a second identical one nothing.
	e.open(t, id, cert).hello(t)
	ups := e.applied(cmdAgentUp)
	e.open(t, id, cert).hello(t)
	if n := e.applied(cmdAgentUp); n != ups {
		t.Fatalf("an unchanged hello committed %d more up commands", n-ups)
	}
}

func TestTheFirstMessageMustBeAHelloFromThisAgent(t *testing.T) {
	e := newEnvWith(t, nil, nil)
	id, cert := e.enrolled(t, "web01")
	other, _ := e.enrolled(t, "web02")
	for _, tc := range []struct {
		name  string
		first *agentv1.AgentMessage
	}{
		{"a heartbeat before the hello is refused", heartbeat()},
		{"a hello naming another agent is refused", helloFrom(other)},
		{"a hello with no agent ID is refused", helloFrom("")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := e.open(t, id, cert)
			a.send(t, tc.first)
			_, err := a.stream.Recv()
			wantCode(t, err, codes.InvalidArgument)
		})
	}
	if got := e.agent(t, id); got.Status != StatusEnrolled {
		t.Fatalf("a refused stream changed the status to %s", got.Status)
	}
}

func TestHeartbeatsKeepTheAgentUpWithoutRaftWrites(t *testing.T) {
	e := newEnvWith(t, fastStreams, nil)
	a, _ := e.connectAgent(t, "web01")
	before := e.applier.Index()
	// Heartbeat for four leases; the agent must stay up and nothing be
	// written. The ticker is the agent's heartbeat, not a synchronisation.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for end := time.Now().Add(4 * 300 * time.Millisecond); time.Now().Before(end); <-tick.C {
		a.send(t, heartbeat())
	}
	after := e.applier.Index()
	if after != before {
		t.Fatalf("heartbeats made %d Raft writes", after-before)
	}
	if got := e.agent(t, a.id); got.Status != StatusUp {
		t.Fatalf("status = %s after heartbeats", got.Status)
	}
}

func TestSilencePastTheLeaseMarksTheAgentDown(t *testing.T) {
	e := newEnvWith(t, fastStreams, nil)
	t.Run("a silent stream is closed and the agent marked down", func(t *testing.T) {
		a, _ := e.connectAgent(t, "silent")
		_, err := a.stream.Recv()
		wantCode(t, err, codes.Unavailable)
		waitFor(t, "the agent marked down", func() bool { return e.agent(t, a.id).Status == StatusDown })
		if got := e.agent(t, a.id); got.ConnectedTo != "" || got.LastSeen == nil {
			t.Fatalf("down agent = %+v", got)
		}
	})
	t.Run("a stream that ends and is not back within the lease is down", func(t *testing.T) {
		a, _ := e.connectAgent(t, "gone")
		if err := a.stream.CloseSend(); err != nil {
			t.Fatal(err)
		}
		if _, err := a.stream.Recv(); err != io.EOF {
			t.Fatalf("after close-send: %v", err)
		}
		waitFor(t, "the agent marked down", func() bool { return e.agent(t, a.id).Status == StatusDown })
		if h := e.svc.HealthSection(context.Background()).(agentCounts); h.Down != 2 || h.Connected != 0 {
			t.Fatalf("health = %+v", h)
		}
	})
}

func TestASecondStreamReplacesTheFirst(t *testing.T) {
	e := newEnvWith(t, nil, nil)
	first, cert := e.connectAgent(t, "web01")
	second := e.open(t, first.id, cert)
	second.hello(t)
	_, err := first.stream.Recv()
	wantCode(t, err, codes.Aborted)
	second.send(t, heartbeat())
	if h := e.svc.HealthSection(context.Background()).(agentCounts); h.Connected != 1 {
		t.Fatalf("health = %+v", h)
	}
	if got := e.agent(t, first.id); got.Status != StatusUp {
		t.Fatalf("status = %s", got.Status)
	}
}

func TestRevokingAnAgentCutsItsLiveStream(t *testing.T) {
	e := newEnvWith(t, nil, nil)
	a, _ := e.connectAgent(t, "doomed")
	if _, err := e.svc.RevokeAgent(context.Background(), a.id); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := a.stream.Recv()
	wantCode(t, err, codes.PermissionDenied)
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("the stream was cut after %s", d)
	}
	if got := e.agent(t, a.id); got.Status != StatusRevoked || got.ConnectedTo != "" {
		t.Fatalf("revoked agent = %+v", got)
	}
}

func TestDrainIsSentOnTheLiveStream(t *testing.T) {
	e := newEnvWith(t, nil, nil)
	a, cert := e.connectAgent(t, "web01")
	for _, draining := range []bool{true, false, true} {
		got, err := e.svc.DrainAgent(context.Background(), a.id, draining)
		if err != nil || got.Draining != draining {
			t.Fatalf("DrainAgent(%v) = %+v, %v", draining, got, err)
		}
		m, err := a.stream.Recv()
		if err != nil || m.GetDrain() == nil || m.GetDrain().GetDraining() != draining {
			t.Fatalf("after drain=%v got %v, %v", draining, m, err)
		}
	}
	// A draining agent hears so right after the welcome when it reconnects.
	b := e.open(t, a.id, cert)
	b.hello(t)
	if m, err := b.stream.Recv(); err != nil || !m.GetDrain().GetDraining() {
		t.Fatalf("after reconnecting while draining got %v, %v", m, err)
	}
	if _, err := e.svc.DrainAgent(context.Background(), "agt_0000000000000000", true); err == nil {
		t.Fatal("draining an unknown agent succeeded")
	}
}

func TestAFollowerRedirectsToTheLeader(t *testing.T) {
	lead := newFakeLeadership(false)
	e := newEnvWith(t, nil, lead)
	id, cert := e.enrolled(t, "web01")
	for _, tc := range []struct {
		name, leaderID, addr string
	}{
		{"the leader's agent address is given", "n2", "10.0.0.2:3001"},
		{"with no leader the address is empty and the agent retries", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lead.mu.Lock()
			lead.leaderID, lead.addr = tc.leaderID, tc.addr
			lead.mu.Unlock()
			a := e.open(t, id, cert)
			m, err := a.stream.Recv()
			if err != nil || m.GetRedirect() == nil || m.GetRedirect().GetLeaderNodeId() != tc.leaderID || m.GetRedirect().GetLeaderAddress() != tc.addr {
				t.Fatalf("got %v, %v; want a redirect to %s at %q", m, err, tc.leaderID, tc.addr)
			}
			if _, err := a.stream.Recv(); err != io.EOF {
				t.Fatalf("after the redirect: %v, want a clean end", err)
			}
		})
	}
	if got := e.agent(t, id); got.Status != StatusEnrolled {
		t.Fatalf("a follower changed the status to %s", got.Status)
	}
}

func TestLosingLeadershipClosesStreamsAndANewLeaderStartsLeases(t *testing.T) {
	lead := newFakeLeadership(true)
	e := newEnvWith(t, fastStreams, lead)
	// Run observes leadership asynchronously; wait until it leads.
	waitFor(t, "the service to lead", e.svc.reg.isLeader)
	a, cert := e.connectAgent(t, "web01")
	lead.mu.Lock()
	lead.leaderID, lead.addr = "n2", "10.0.0.2:3001"
	lead.mu.Unlock()
	lead.set(false)
	_, err := a.stream.Recv()
	wantCode(t, err, codes.Unavailable)
	// Redirected now.
	if m, err := e.open(t, a.id, cert).stream.Recv(); err != nil || m.GetRedirect().GetLeaderAddress() != "10.0.0.2:3001" {
		t.Fatalf("after losing leadership got %v, %v", m, err)
	}
	if got := e.agent(t, a.id); got.Status != StatusUp {
		t.Fatalf("an old leader marked the agent %s", got.Status)
	}
	// Leading again, the node starts a lease for every agent up in the
	// table; this one does not reconnect and is marked down.
	lead.set(true)
	waitFor(t, "the agent marked down by the new term's lease", func() bool { return e.agent(t, a.id).Status == StatusDown })
}

func TestTheHeartbeatIntervalIsRetunedAsAgentsConnectAndLeave(t *testing.T) {
	// One heartbeat a second in all: n agents beat every n seconds.
	r := newRegistry(Config{HeartbeatInterval: time.Second, HeartbeatRate: 1, MinLease: 3 * time.Second}, true)
	defer r.stopLeading(errShutdown)
	first, _, interval, _, ok := r.attach("agt_0")
	if !ok || interval != time.Second {
		t.Fatalf("attach: interval %s, ok %v; want 1s, true", interval, ok)
	}
	var others []*liveStream
	for _, id := range []string{"agt_1", "agt_2", "agt_3"} {
		ls, _, _, _, _ := r.attach(id)
		others = append(others, ls)
	}
	steps := []struct {
		name         string
		interval     time.Duration
		ttl          time.Duration
		retune       bool
		beforeChange func()
	}{
		{name: "the first agent is told the interval for four agents", interval: 4 * time.Second, ttl: 12 * time.Second, retune: true},
		{name: "and is not told again while the count holds", interval: 4 * time.Second, ttl: 12 * time.Second},
		{name: "a quarter less is within the hysteresis", interval: 3 * time.Second, ttl: 9 * time.Second,
			beforeChange: func() { r.detach(others[0]) }},
		{name: "half is retuned down", interval: 2 * time.Second, ttl: 6 * time.Second, retune: true,
			beforeChange: func() { r.detach(others[1]) }},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if st.beforeChange != nil {
				st.beforeChange()
			}
			interval, ttl, retune := r.seen(first)
			if interval != st.interval || ttl != st.ttl || retune != st.retune {
				t.Fatalf("seen = %s, %s, %v; want %s, %s, %v", interval, ttl, retune, st.interval, st.ttl, st.retune)
			}
		})
	}
}

// A restarted controller replays its state before it can tell a known
// agent from a revoked one: until then agents are told to retry
// (UNAVAILABLE), never that they are revoked.
func TestAControllerNotYetReadyAsksAgentsToRetry(t *testing.T) {
	var notReady atomic.Bool
	e := newEnvDeps(t, nil, nil, func(d *Deps) {
		d.Ready = func() error {
			if notReady.Load() {
				return errors.New("applied index 0 is behind commit index 2645")
			}
			return nil
		}
	})
	id, cert := e.enrolled(t, "web01")
	notReady.Store(true)
	a := e.open(t, id, cert)
	_ = a.stream.Send(helloFrom(id))
	if _, err := a.stream.Recv(); status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "not ready") {
		t.Fatalf("while not ready: %v, want UNAVAILABLE", err)
	}
	notReady.Store(false)
	e.open(t, id, cert).hello(t)
}
