package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/opsconductor/opsconductor/controller/cluster"
	"github.com/opsconductor/opsconductor/controller/communication/audit"
	"github.com/opsconductor/opsconductor/controller/history"
	"github.com/opsconductor/opsconductor/controller/history/embedded"
	"github.com/opsconductor/opsconductor/controller/probe"
	"github.com/opsconductor/opsconductor/controller/problem"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeCluster is a Cluster whose answers the test sets. Fields are guarded
// because handlers run on server goroutines in the httptest.Server tests.
type fakeCluster struct {
	mu              sync.Mutex
	status          cluster.Status
	statusAfter     *cluster.Status // what Status says once TransferLeadership returns
	readyErr        error
	consistentErr   error
	consistentCalls int
	removeErr       error
	removed         []string
	transferErr     error
	snapshot        []byte
	saveErr         error
	localSaves      int
	// saveHook runs inside SnapshotSave before it writes, for tests that
	// need to hold a request in flight.
	saveHook   func(ctx context.Context) error
	restored   []byte
	restoreErr error
}

func newFakeCluster() *fakeCluster {
	return &fakeCluster{
		status: cluster.Status{
			State: "leader", LeaderID: "n1", LeaderAddr: "10.0.0.1:3002",
			Term: 3, LastIndex: 42, CommitIndex: 42, AppliedIndex: 41, LastContactMillis: 0,
			Peers: []cluster.Peer{
				{ID: "n1", Address: "10.0.0.1:3002", Suffrage: "voter", Leader: true},
				{ID: "n2", Address: "10.0.0.2:3002", Suffrage: "voter"},
				{ID: "n3", Address: "10.0.0.3:3002", Suffrage: "nonvoter"},
			},
		},
		snapshot: []byte("snapshot-bytes"),
	}
}

func (c *fakeCluster) Status() cluster.Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status
}

func (c *fakeCluster) Ready() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.readyErr
}

func (c *fakeCluster) ConsistentRead(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.consistentCalls++
	return c.consistentErr
}

func (c *fakeCluster) calls() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.consistentCalls
}

func (c *fakeCluster) PeerProgress(context.Context) []cluster.PeerProgress {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []cluster.PeerProgress
	for _, p := range c.status.Peers {
		out = append(out, cluster.PeerProgress{Peer: p, Reachable: true, Term: c.status.Term, LastIndex: c.status.LastIndex, AppliedIndex: c.status.AppliedIndex})
	}
	return out
}

func (c *fakeCluster) RemovePeer(_ context.Context, id string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.removeErr != nil {
		return c.removeErr
	}
	for _, p := range c.status.Peers {
		if p.ID == id {
			c.removed = append(c.removed, id)
			return nil
		}
	}
	return problem.NotFound("peer", id)
}

func (c *fakeCluster) TransferLeadership(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.transferErr != nil {
		return c.transferErr
	}
	if c.statusAfter != nil {
		c.status = *c.statusAfter
	}
	return nil
}

func (c *fakeCluster) SnapshotSaveLocal(w io.Writer) error {
	c.mu.Lock()
	data := c.snapshot
	c.localSaves++
	c.mu.Unlock()
	_, err := w.Write(data)
	return err
}

func (c *fakeCluster) SnapshotSave(ctx context.Context, w io.Writer) error {
	c.mu.Lock()
	hook, data, err := c.saveHook, c.snapshot, c.saveErr
	c.mu.Unlock()
	if hook != nil {
		if err := hook(ctx); err != nil {
			return err
		}
	}
	if err != nil && len(data) == 0 {
		return err
	}
	if _, werr := w.Write(data); werr != nil {
		return werr
	}
	return err
}

func (c *fakeCluster) SnapshotRestore(_ context.Context, r io.Reader) error {
	b, err := io.ReadAll(r)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		return fmt.Errorf("read snapshot: %w", err)
	}
	if c.restoreErr != nil {
		return c.restoreErr
	}
	c.restored = b
	return nil
}

// fakeProbes keeps records in commit order.
type fakeProbes struct {
	mu       sync.Mutex
	records  []probe.Record
	err      error // returned by every call when set
	panicGet bool
}

func (p *fakeProbes) Write(_ context.Context, payload string) (probe.Record, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return probe.Record{}, p.err
	}
	rec := probe.Record{ID: fmt.Sprintf("p%d", len(p.records)+1), Node: "n1", Payload: payload,
		CreatedAt: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Index: uint64(100 + len(p.records))}
	p.records = append(p.records, rec)
	return rec, nil
}

func (p *fakeProbes) Get(_ context.Context, id string) (probe.Record, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.panicGet {
		panic("fake probe store exploded")
	}
	if p.err != nil {
		return probe.Record{}, p.err
	}
	for _, r := range p.records {
		if r.ID == id {
			return r, nil
		}
	}
	return probe.Record{}, problem.NotFound("probe", id)
}

func (p *fakeProbes) List(_ context.Context, after string, limit int) ([]probe.Record, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return nil, p.err
	}
	start := 0
	if after != "" {
		start = len(p.records)
		for i, r := range p.records {
			if r.ID == after {
				start = i + 1
			}
		}
	}
	end := min(len(p.records), start+limit)
	return append([]probe.Record(nil), p.records[start:end]...), nil
}

func (p *fakeProbes) add(n int) {
	for i := 0; i < n; i++ {
		_, _ = p.Write(context.Background(), fmt.Sprintf("payload-%d", i))
	}
}

// syncBuffer is a log sink that the test reads while servers write to it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines returns the JSON log records written so far.
func (b *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.buf.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line is not JSON: %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

type fixture struct {
	srv     *Server
	ident   *testIdentity
	cluster *fakeCluster
	probes  *fakeProbes
	logs    *syncBuffer
	reg     *prometheus.Registry
	// auditStore holds the server's audit chain (node n1).
	auditStore history.Store
}

// newFixture builds a server over fakes. Rate limits are off unless cfg sets
// them, so that tests about other things never trip them.
func newFixture(t testing.TB, cfg Config, opts ...func(*Deps)) *fixture {
	t.Helper()
	f := &fixture{cluster: newFakeCluster(), probes: &fakeProbes{}, logs: &syncBuffer{}, reg: prometheus.NewRegistry(), ident: sharedIdentity(t)}
	if cfg.RateLimits == nil {
		cfg.RateLimits = unlimited()
	}
	deps := Deps{
		Logger:   slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Cluster:  f.cluster,
		Probes:   f.probes,
		Identity: f.ident.svc,
		Agents:   sharedAgents(t).svc,
		Plugins:  newTestPlugins(t),
		Registry: f.reg,
		Version:  "1.2.3",
		NodeID:   "n1",
	}
	deps.Relationships = newTestRelationships(t)
	deps.Credentials, deps.Keyring = newTestCredentials(t)
	deps.Assets = newTestAssets(t)
	deps.Discovery = newTestDiscovery(t, deps.Assets)
	deps.Schedules = newTestSchedules(t)
	deps.Automation = newTestAutomation(t, deps.Assets, f.ident.svc, deps.Plugins)
	deps.Notify = newTestNotify(t)
	deps.Triggers = newTestTriggers(t, deps.Automation, deps.Keyring)
	f.auditStore, deps.Audit = newTestAudit(t)
	deps.AuditStore = f.auditStore
	deps.Install = newTestInstall(t)
	for _, o := range opts {
		o(&deps)
	}
	srv, err := New(cfg, deps)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	f.srv = srv
	return f
}

// newTestAudit is node n1's audit log on an embedded history store of its
// own, closed when the test ends.
func newTestAudit(t testing.TB) (history.Store, *audit.Log) {
	t.Helper()
	store, err := embedded.Open(filepath.Join(t.TempDir(), "history.db"), embedded.Options{})
	if err != nil {
		t.Fatalf("open audit store: %v", err)
	}
	t.Cleanup(func() { _ = store.Close() })
	l, err := audit.Open(context.Background(), audit.Config{Store: store, Node: "n1"})
	if err != nil {
		t.Fatalf("open audit log: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(context.Background()); err != nil {
			t.Errorf("close audit log: %v", err)
		}
	})
	return store, l
}

func unlimited() map[RouteClass]Limit {
	inf := Limit{RPS: math.Inf(1)}
	return map[RouteClass]Limit{ClassRead: inf, ClassWrite: inf, ClassOperator: inf}
}

// do serves one request in process and returns the recorded response.
func (f *fixture) do(t *testing.T, req *http.Request) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	f.ident.authorize(req)
	f.srv.Handler().ServeHTTP(rec, req)
	return rec
}

func newRequest(method, target, contentType, body string) *http.Request {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, r)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return req
}

// decodeEnvelope checks that rec is an error envelope and returns it.
func decodeEnvelope(t *testing.T, rec *httptest.ResponseRecorder) envelopeError {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("error Content-Type = %q, want application/json; body %s", ct, rec.Body)
	}
	var env envelope
	dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil {
		t.Fatalf("body is not an error envelope: %v: %s", err, rec.Body)
	}
	if env.Error.Code == "" || env.Error.Message == "" {
		t.Fatalf("envelope lacks code or message: %s", rec.Body)
	}
	return env.Error
}
