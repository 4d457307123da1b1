package session

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"log/slog"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/opsconductor/opsconductor/agent/enroll"
	agentv1 "github.com/opsconductor/opsconductor/proto/agent/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newCA(t *testing.T) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test agent CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key}
}

func (ca *testCA) issue(t *testing.T, uri string, usage x509.ExtKeyUsage) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	u, _ := url.Parse(uri)
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		URIs: []*url.URL{u}, ExtKeyUsage: []x509.ExtKeyUsage{usage}, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

func (ca *testCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// identity is what enroll.LoadIdentity would return after a join.
func (ca *testCA) identity(t *testing.T) *enroll.Identity {
	return &enroll.Identity{AgentID: "a-1", Name: "web-1", Certificate: ca.issue(t, enroll.AgentURI("a-1"), x509.ExtKeyUsageClientAuth),
		CA: ca.cert, CAPool: ca.pool()}
}

// fakeController serves Connect over real mutual TLS on loopback. A
// leader welcomes, records heartbeats and sends what the test pushes; a
// follower redirects to whatever redirect holds.
type fakeController struct {
	nodeID   string
	addr     string
	leader   bool
	interval time.Duration
	redirect atomic.Pointer[string]

	hellos     chan *agentv1.Hello
	heartbeats chan time.Time
	push       chan *agentv1.ControllerMessage
	streams    atomic.Int32
	srv        *grpc.Server
	// csrs receives each CertificateRequest, peers each stream's client
	// certificate; a send on kick ends the current stream.
	csrs  chan []byte
	peers chan *x509.Certificate
	kick  chan struct{}

	agentv1.UnimplementedAgentServiceServer
}

func startController(t *testing.T, ca *testCA, nodeID string, leader bool) *fakeController {
	t.Helper()
	f := &fakeController{nodeID: nodeID, leader: leader, interval: time.Hour,
		hellos: make(chan *agentv1.Hello, 100), heartbeats: make(chan time.Time, 10000), push: make(chan *agentv1.ControllerMessage, 10),
		csrs: make(chan []byte, 10), peers: make(chan *x509.Certificate, 100), kick: make(chan struct{}, 1)}
	empty := ""
	f.redirect.Store(&empty)
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{ca.issue(t, "opsconductor://server/"+nodeID, x509.ExtKeyUsageServerAuth)},
		ClientAuth:   tls.RequireAndVerifyClientCert, ClientCAs: ca.pool(),
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.srv = grpc.NewServer(grpc.Creds(credentials.NewTLS(cfg)))
	agentv1.RegisterAgentServiceServer(f.srv, f)
	go f.srv.Serve(lis)
	t.Cleanup(f.srv.Stop)
	f.addr = lis.Addr().String()
	return f
}

func (f *fakeController) Connect(stream grpc.BidiStreamingServer[agentv1.AgentMessage, agentv1.ControllerMessage]) error {
	f.streams.Add(1)
	if p, ok := peer.FromContext(stream.Context()); ok {
		if info, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(info.State.PeerCertificates) > 0 {
			f.peers <- info.State.PeerCertificates[0]
		}
	}
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	f.hellos <- first.GetHello()
	if !f.leader {
		return stream.Send(&agentv1.ControllerMessage{Msg: &agentv1.ControllerMessage_Redirect{Redirect: &agentv1.Redirect{
			LeaderNodeId: "leader", LeaderAddress: *f.redirect.Load()}}})
	}
	if err := stream.Send(welcome(f.nodeID, f.interval)); err != nil {
		return err
	}
	recvErr := make(chan error, 1)
	go func() {
		for {
			m, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			if m.GetHeartbeat() != nil {
				f.heartbeats <- time.Now()
			}
			if r := m.GetCertificateRequest(); r != nil {
				f.csrs <- r.GetCsrDer()
			}
		}
	}()
	for {
		select {
		case err := <-recvErr:
			return err
		case <-f.kick:
			return status.Error(codes.Unavailable, "kicked by the test")
		case m := <-f.push:
			if err := stream.Send(m); err != nil {
				return err
			}
		}
	}
}

func welcome(nodeID string, interval time.Duration) *agentv1.ControllerMessage {
	return &agentv1.ControllerMessage{Msg: &agentv1.ControllerMessage_Welcome{Welcome: &agentv1.Welcome{
		NodeId: nodeID, HeartbeatInterval: durationpb.New(interval), Lease: durationpb.New(3 * interval)}}}
}

// syncBuffer collects log output from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type harness struct {
	s    *Session
	logs *syncBuffer
	done chan error
}

// run starts a session against addrs and stops it when the test ends.
func run(t *testing.T, ca *testCA, addrs ...string) *harness {
	t.Helper()
	return runAs(t, ca.identity(t), addrs...)
}

// runAs is run with a given identity.
func runAs(t *testing.T, id *enroll.Identity, addrs ...string) *harness {
	t.Helper()
	logs := &syncBuffer{}
	seed := uint64(time.Now().UnixNano())
	t.Logf("backoff jitter seed %d", seed)
	s, err := New(Config{
		Identity: id, Controllers: addrs, Version: "v-test",
		Facts:   func() *agentv1.Facts { return &agentv1.Facts{Hostname: "web-1", Cpus: 4} },
		Logger:  slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Backoff: Backoff{Initial: 20 * time.Millisecond, Max: 100 * time.Millisecond, ResetAfter: time.Minute},
		Rand:    mrand.New(mrand.NewPCG(seed, seed)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{s: s, logs: logs, done: make(chan error, 1)}
	go func() { h.done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-h.done:
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	return h
}

// waitFor blocks until cond holds for the session's status, or fails the
// test at the deadline. It watches Changed rather than polling.
func (h *harness) waitFor(t *testing.T, what string, cond func(Status) bool) Status {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		ch := h.s.Changed()
		if st := h.s.Status(); cond(st) {
			return st
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s; status %+v", what, h.s.Status())
		}
	}
}

func connectedTo(nodeID string) func(Status) bool {
	return func(st Status) bool { return st.Connected && st.NodeID == nodeID }
}

func recvWithin[T any](t *testing.T, ch <-chan T, d time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		t.Fatalf("no %s within %s", what, d)
		panic("unreachable")
	}
}

func TestHelloComesFirstAndCarriesFacts(t *testing.T) {
	ca := newCA(t)
	leader := startController(t, ca, "n1", true)
	h := run(t, ca, leader.addr)
	hello := recvWithin(t, leader.hellos, 10*time.Second, "hello")
	if hello == nil {
		t.Fatal("the first message was not a Hello")
	}
	if hello.AgentId != "a-1" || hello.Version != "v-test" || hello.GetFacts().GetHostname() != "web-1" || hello.GetFacts().GetCpus() != 4 {
		t.Fatalf("hello = %v", hello)
	}
	st := h.waitFor(t, "the welcome", connectedTo("n1"))
	if st.Connects != 1 || st.Address != leader.addr {
		t.Fatalf("status %+v", st)
	}
}

func TestHeartbeatsFollowTheLatestAnnouncedInterval(t *testing.T) {
	ca := newCA(t)
	leader := startController(t, ca, "n1", true)
	leader.interval = 25 * time.Millisecond
	h := run(t, ca, leader.addr)
	h.waitFor(t, "the welcome", connectedTo("n1"))

	// measure counts n heartbeats and checks they took about n-1 intervals:
	// never faster than announced, and not grossly slower.
	measure := func(n int, interval time.Duration) {
		t.Helper()
		first := recvWithin(t, leader.heartbeats, 10*time.Second, "heartbeat")
		var last time.Time
		for range n - 1 {
			last = recvWithin(t, leader.heartbeats, 10*time.Second, "heartbeat")
		}
		got, want := last.Sub(first), time.Duration(n-1)*interval
		if got < want*8/10 || got > want*4 {
			t.Fatalf("%d heartbeats took %s, want about %s", n, got, want)
		}
	}
	measure(12, 25*time.Millisecond)

	leader.push <- welcome("n1", 100*time.Millisecond)
	h.waitFor(t, "the new interval", func(st Status) bool { return st.HeartbeatInterval == 100*time.Millisecond })
	// Beats sent before the new Welcome took effect may still be queued.
	for len(leader.heartbeats) > 0 {
		<-leader.heartbeats
	}
	recvWithin(t, leader.heartbeats, 10*time.Second, "heartbeat")
	measure(6, 100*time.Millisecond)
	if st := h.s.Status(); st.Connects != 1 {
		t.Fatalf("a second Welcome counted as a new connection: %+v", st)
	}
}

func TestFollowerRedirectLeadsToTheLeader(t *testing.T) {
	ca := newCA(t)
	leader := startController(t, ca, "n2", true)
	follower := startController(t, ca, "n1", false)
	follower.redirect.Store(&leader.addr)
	h := run(t, ca, follower.addr)
	st := h.waitFor(t, "the leader's welcome", connectedTo("n2"))
	if st.Redirects != 1 || st.Address != leader.addr {
		t.Fatalf("status %+v", st)
	}
	if !strings.Contains(h.logs.String(), "leader_address="+leader.addr) {
		t.Fatalf("the redirect was not logged:\n%s", h.logs)
	}
}

func TestAnEmptyRedirectBacksOffAndRetries(t *testing.T) {
	ca := newCA(t)
	follower := startController(t, ca, "n1", false)
	start := time.Now()
	h := run(t, ca, follower.addr)
	h.waitFor(t, "three redirects", func(st Status) bool { return st.Redirects >= 3 })
	if st := h.s.Status(); st.Connected || st.LastError == "" {
		t.Fatalf("status %+v", st)
	}
	// The backoff keeps the agent from hammering the follower: three
	// redirects take at least the first two (jittered) delays, 10+20 ms.
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Fatalf("three redirects within %s: no backoff", d)
	}
	leader := startController(t, ca, "n2", true)
	follower.redirect.Store(&leader.addr)
	h.waitFor(t, "the leader once it exists", connectedTo("n2"))
}

func TestBackoffGrowsWithJitterUpToTheCap(t *testing.T) {
	b := Backoff{Initial: 200 * time.Millisecond, Max: 10 * time.Second}
	r := mrand.New(mrand.NewPCG(1, 2))
	cases := []struct {
		failures int
		max      time.Duration
	}{{1, 200 * time.Millisecond}, {2, 400 * time.Millisecond}, {3, 800 * time.Millisecond}, {6, 6400 * time.Millisecond}, {7, 10 * time.Second}, {60, 10 * time.Second}}
	for _, c := range cases {
		for range 100 {
			if d := b.delay(c.failures, r); d < c.max/2 || d > c.max {
				t.Fatalf("delay after %d failures = %s, want in [%s, %s]", c.failures, d, c.max/2, c.max)
			}
		}
	}
}

func TestABrokenStreamReconnectsToAnotherController(t *testing.T) {
	ca := newCA(t)
	a := startController(t, ca, "n1", true)
	b := startController(t, ca, "n2", true)
	h := run(t, ca, a.addr, b.addr)
	h.waitFor(t, "the first leader", connectedTo("n1"))
	a.srv.Stop() // the leader dies
	st := h.waitFor(t, "the other controller", connectedTo("n2"))
	if st.Connects != 2 || st.Attempts < 2 {
		t.Fatalf("status %+v", st)
	}
	if hello := recvWithin(t, b.hellos, time.Second, "hello"); hello.GetAgentId() != "a-1" {
		t.Fatalf("the reconnect did not start with Hello: %v", hello)
	}
}

func TestDrainAndMessagesNotYetHandled(t *testing.T) {
	ca := newCA(t)
	leader := startController(t, ca, "n1", true)
	h := run(t, ca, leader.addr)
	h.waitFor(t, "the welcome", connectedTo("n1"))

	var unknown agentv1.ControllerMessage // a kind from a newer controller
	raw := protowire.AppendBytes(protowire.AppendTag(nil, 99, protowire.BytesType), []byte("future"))
	if err := proto.Unmarshal(raw, &unknown); err != nil {
		t.Fatal(err)
	}
	const secret = "hunter2-very-secret"
	for _, m := range []*agentv1.ControllerMessage{
		&unknown,
		{Msg: &agentv1.ControllerMessage_Assignment{Assignment: &agentv1.Assignment{AttemptId: "at-1", Kind: "command",
			ParamsJson: []byte(`{"argv":["echo","` + secret + `"]}`), Secrets: map[string]string{"pw": secret}}}},
		{Msg: &agentv1.ControllerMessage_Cancel{Cancel: &agentv1.Cancel{AttemptId: "at-1"}}},
		{Msg: &agentv1.ControllerMessage_Ack{Ack: &agentv1.Ack{AttemptId: "at-1", ThroughSeq: 3}}},
		{Msg: &agentv1.ControllerMessage_Drain{Drain: &agentv1.Drain{Draining: true}}},
	} {
		leader.push <- m
	}
	h.waitFor(t, "draining", func(st Status) bool { return st.Draining })
	leader.push <- &agentv1.ControllerMessage{Msg: &agentv1.ControllerMessage_Drain{Drain: &agentv1.Drain{}}}
	st := h.waitFor(t, "the drain lifted", func(st Status) bool { return !st.Draining })
	if !st.Connected || st.Connects != 1 {
		t.Fatalf("a message the agent does not handle broke the stream: %+v", st)
	}
	logs := h.logs.String()
	if !strings.Contains(logs, "rejecting assignment") || !strings.Contains(logs, "attempt_id=at-1") {
		t.Fatalf("the rejected assignment was not logged:\n%s", logs)
	}
	if strings.Contains(logs, secret) {
		t.Fatalf("a secret reached the log:\n%s", logs)
	}
	if !strings.Contains(logs, "agent_id=a-1") || !strings.Contains(logs, "node_id=n1") {
		t.Fatalf("logs lack agent_id/node_id:\n%s", logs)
	}
}

func TestCancelEndsRunPromptly(t *testing.T) {
	ca := newCA(t)
	leader := startController(t, ca, "n1", true)
	cases := []struct {
		name  string
		addrs []string
		ready func(Status) bool
	}{
		{"while connected", []string{leader.addr}, connectedTo("n1")},
		{"while backing off from an unreachable controller", []string{"127.0.0.1:1"}, func(st Status) bool { return st.Attempts >= 2 }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := New(Config{Identity: ca.identity(t), Controllers: c.addrs,
				Backoff: Backoff{Initial: 10 * time.Millisecond, Max: 10 * time.Second}})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- s.Run(ctx) }()
			(&harness{s: s}).waitFor(t, "readiness", c.ready)
			start := time.Now()
			cancel()
			if err := recvWithin(t, done, 2*time.Second, "return from Run"); err != nil {
				t.Fatal(err)
			}
			if d := time.Since(start); d > time.Second {
				t.Fatalf("Run took %s to return", d)
			}
			if s.Status().Connected {
				t.Fatal("still connected after Run returned")
			}
		})
	}
}

func TestNewRefusesAnIncompleteConfig(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Fatal("no identity accepted")
	}
	if _, err := New(Config{Identity: &enroll.Identity{AgentID: "a-1"}}); err == nil {
		t.Fatal("no controller accepted")
	}
}

func TestRedirectLoopsBackOff(t *testing.T) {
	ca := newCA(t)
	a := startController(t, ca, "n1", false)
	b := startController(t, ca, "n2", false)
	a.redirect.Store(&b.addr)
	b.redirect.Store(&a.addr)
	start := time.Now()
	h := run(t, ca, a.addr)
	h.waitFor(t, "six redirects", func(st Status) bool { return st.Redirects >= 6 })
	// Only the first redirect is followed at once; the next four wait at
	// least 10, 20, 40 and 50 ms (half of 20·2ⁿ, capped at 100 ms).
	if d := time.Since(start); d < 120*time.Millisecond {
		t.Fatalf("six redirects within %s: the loop is not backing off", d)
	}
	if st := h.s.Status(); st.Connected || st.Connects != 0 {
		t.Fatalf("status %+v", st)
	}
}
