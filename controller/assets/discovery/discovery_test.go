package discovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opsconductor/opsconductor/controller/assets"
	"github.com/opsconductor/opsconductor/controller/history"
	"github.com/opsconductor/opsconductor/controller/history/embedded"
	"github.com/opsconductor/opsconductor/controller/identity"
	"github.com/opsconductor/opsconductor/controller/problem"
	"github.com/opsconductor/opsconductor/controller/state/statetest"
	"github.com/opsconductor/opsconductor/plugins/builtin"
	"github.com/opsconductor/opsconductor/plugins/sdk"
)

// inProcessAgents runs steps in this process, the way an agent's executor
// runs a built-in: the real discover step, its stdout kept as the
// attempt's log. It stands in for the agent transport only; the end-to-end
// test in controller/server goes through a real agent.
type inProcessAgents struct {
	mu       sync.Mutex
	attempts map[string]*attempt
	n        int
	agents   map[string]string // name → ID
}

type attempt struct {
	mu     sync.Mutex
	lines  []LogLine
	state  AttemptState
	cancel context.CancelFunc
}

func (a *attempt) Stdout() io.Writer { return writerFunc(a.write) }
func (a *attempt) Stderr() io.Writer { return io.Discard }

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func (a *attempt) write(p []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	// Chunks split anywhere, as the agent's runner may split them.
	s := string(p)
	for len(s) > 0 {
		n := min(len(s), 37)
		a.lines = append(a.lines, LogLine{Seq: uint64(len(a.lines) + 1), Stream: "stdout", Data: s[:n]})
		s = s[n:]
	}
	return len(p), nil
}

func newAgents() *inProcessAgents {
	return &inProcessAgents{attempts: map[string]*attempt{}, agents: map[string]string{"scanner": "ag-1", "other": "ag-2"}}
}

func (g *inProcessAgents) ResolveAgent(_ context.Context, ref string) (string, string, error) {
	for name, id := range g.agents {
		if ref == name || ref == id {
			return id, name, nil
		}
	}
	return "", "", problem.NotFound("agent", ref)
}

func (g *inProcessAgents) RunStep(_ context.Context, agentID, uses string, params json.RawMessage, _ time.Duration, _ string) (string, error) {
	step, ok := builtin.Lookup(uses)
	if !ok {
		return "", fmt.Errorf("no step %s", uses)
	}
	g.mu.Lock()
	g.n++
	id := "att-" + strconv.Itoa(g.n)
	ctx, cancel := context.WithCancel(context.Background())
	a := &attempt{state: AttemptState{Status: "running"}, cancel: cancel}
	g.attempts[id] = a
	g.mu.Unlock()
	go func() {
		res, err := step.Run(ctx, sdk.Request{AttemptID: id, Params: params}, a)
		a.mu.Lock()
		defer a.mu.Unlock()
		st := AttemptState{Status: "succeeded", Finished: true, LastSeq: uint64(len(a.lines))}
		switch {
		case errors.Is(err, context.Canceled):
			st.Status = "canceled"
		case err != nil:
			st.Status, st.Error = "failed", err.Error()
		case res.Status != sdk.StatusSucceeded:
			st.Status, st.Error = "failed", res.Message
		}
		a.state = st
	}()
	return id, nil
}

func (g *inProcessAgents) get(id string) (*attempt, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	a, ok := g.attempts[id]
	if !ok {
		return nil, problem.NotFound("attempt", id)
	}
	return a, nil
}

func (g *inProcessAgents) Attempt(_ context.Context, id string) (AttemptState, error) {
	a, err := g.get(id)
	if err != nil {
		return AttemptState{}, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.state, nil
}

func (g *inProcessAgents) AttemptLog(_ context.Context, id string, after uint64, limit int) ([]LogLine, uint64, error) {
	a, err := g.get(id)
	if err != nil {
		return nil, 0, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []LogLine
	for _, l := range a.lines {
		if l.Seq > after && len(out) < limit {
			out = append(out, l)
			after = l.Seq
		}
	}
	return out, after, nil
}

func (g *inProcessAgents) CancelAttempt(_ context.Context, id string) error {
	a, err := g.get(id)
	if err != nil {
		return err
	}
	a.cancel()
	return nil
}

// inventory is a small in-memory inventory: the discovery tests check
// what discovery hands it, the inventory's own rules are tested in
// controller/assets.
type inventory struct {
	mu      sync.Mutex
	targets []assets.Target
	imports [][]assets.TargetInput
}

func (v *inventory) Each(_ context.Context, _ *identity.Principal, _ assets.Query, fn func(assets.Target) error) error {
	v.mu.Lock()
	ts := append([]assets.Target(nil), v.targets...)
	v.mu.Unlock()
	for _, t := range ts {
		if err := fn(t); err != nil {
			return err
		}
	}
	return nil
}

func (v *inventory) Import(_ context.Context, _ *identity.Principal, rows []assets.TargetInput, _ assets.ImportOptions) (assets.ImportReport, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.imports = append(v.imports, rows)
	for _, r := range rows {
		v.targets = append(v.targets, assets.Target{Name: r.Name, Addresses: r.Addresses})
	}
	return assets.ImportReport{Mode: assets.ImportCreate, Rows: len(rows), Valid: len(rows), Created: len(rows), Written: true}, nil
}

type env struct {
	svc    *Service
	agents *inProcessAgents
	inv    *inventory
	who    *identity.Principal
}

func newEnv(t *testing.T, loopbackOK bool) *env {
	t.Helper()
	store := statetest.NewStore(t, Domain())
	hist, err := embedded.Open(filepath.Join(t.TempDir(), "history"), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	w := history.NewWriter(hist, history.WriterConfig{Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(func() {
		w.Close(context.Background())
		hist.Close()
	})
	e := &env{agents: newAgents(), inv: &inventory{}, who: &identity.Principal{Username: "alice"}}
	e.svc, err = New(Deps{Applier: &statetest.Applier{Store: store}, Store: store, Agents: e.agents, Inventory: e.inv,
		History: w, HistoryReader: hist, Logger: slog.New(slog.DiscardHandler), IsLeader: func() bool { return true }, NodeID: "n1",
		LoopbackAgent: func(id string) bool { return loopbackOK && id == "ag-1" }, PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.svc.Run(ctx, time.Hour) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, "the service to start", e.svc.Running)
	return e
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// runAndWait runs the profile and waits for its scan to finish.
func (e *env) runAndWait(t *testing.T, profile string) ScanDetail {
	t.Helper()
	sc, err := e.svc.RunProfile(context.Background(), e.who, profile)
	if err != nil {
		t.Fatal(err)
	}
	var d ScanDetail
	waitFor(t, "scan "+sc.ID+" to finish", func() bool {
		d, err = e.svc.GetScan(context.Background(), sc.ID)
		return err == nil && d.Finished()
	})
	if d.Status != ScanSucceeded {
		t.Fatalf("scan %s ended %s: %s", d.ID, d.Status, d.Error)
	}
	return d
}

func wantProblem(t *testing.T, err error, kind problem.Kind, field, text string) {
	t.Helper()
	p, ok := problem.As(err)
	if !ok || p.Kind != kind || p.Field != field || !strings.Contains(p.Message, text) {
		t.Fatalf("err = %v (%+v), want a %s problem on %q saying %q", err, p, kind, field, text)
	}
}

func TestScansAreRefusedOutsideTheAgentsRanges(t *testing.T) {
	e := newEnv(t, true)
	ctx := context.Background()
	in := ProfileInput{Name: "lan", CIDRs: []string{"127.0.0.0/30", "10.1.2.0/24"}, Agent: "scanner"}
	t.Run("a range not allowed is refused, naming it", func(t *testing.T) {
		_, err := e.svc.CreateProfile(ctx, e.who, in)
		wantProblem(t, err, problem.KindForbidden, "cidrs[1]", "10.1.2.0/24 is outside the ranges agent scanner may scan (allowed: 127.0.0.0/8, ::1/128)")
	})
	t.Run("an agent with no ranges may scan nothing, not even loopback", func(t *testing.T) {
		_, err := e.svc.CreateProfile(ctx, e.who, ProfileInput{Name: "lo", CIDRs: []string{"127.0.0.1"}, Agent: "other"})
		wantProblem(t, err, problem.KindForbidden, "cidrs[0]", "allowed: none")
	})
	t.Run("once an admin allows the range the profile is stored", func(t *testing.T) {
		if _, err := e.svc.SetRanges(ctx, e.who, "scanner", []string{"10.1.0.0/16"}); err != nil {
			t.Fatal(err)
		}
		p, err := e.svc.CreateProfile(ctx, e.who, in)
		if err != nil {
			t.Fatal(err)
		}
		if p.Agent != "ag-1" {
			t.Errorf("agent = %q, want the ID ag-1", p.Agent)
		}
	})
	t.Run("a range withdrawn later stops the profile from running", func(t *testing.T) {
		if _, err := e.svc.SetRanges(ctx, e.who, "ag-1", nil); err != nil {
			t.Fatal(err)
		}
		_, err := e.svc.RunProfile(ctx, e.who, "lan")
		wantProblem(t, err, problem.KindForbidden, "cidrs[1]", "10.1.2.0/24 is outside")
	})
	t.Run("a rate over the ceiling is refused", func(t *testing.T) {
		_, err := e.svc.CreateProfile(ctx, e.who, ProfileInput{Name: "fast", CIDRs: []string{"127.0.0.1"}, Agent: "scanner", Rate: 5000})
		wantProblem(t, err, problem.KindInvalid, "rate", "ceiling")
	})
	t.Run("bad ranges name the field", func(t *testing.T) {
		_, err := e.svc.CreateProfile(ctx, e.who, ProfileInput{Name: "bad", CIDRs: []string{"127.0.0.1", "nope"}, Agent: "scanner"})
		wantProblem(t, err, problem.KindInvalid, "cidrs[1]", "nope")
		_, err = e.svc.SetRanges(ctx, e.who, "scanner", []string{"10.0.0.0/8", "10.0.0.0/33"})
		wantProblem(t, err, problem.KindInvalid, "cidrs[1]", "CIDR")
	})
}

// service is an HTTP server on loopback whose Server header can change
// and which can be stopped, for the diff between scans.
type service struct {
	srv    *httptest.Server
	mu     sync.Mutex
	banner string
}

func startService(t *testing.T) *service {
	t.Helper()
	s := &service{banner: "web/1.0"}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		w.Header().Set("Server", s.banner)
		s.mu.Unlock()
		io.WriteString(w, "<html><title>Home</title></html>")
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *service) port() string {
	return s.srv.Listener.Addr().(*net.TCPAddr).AddrPort().String()[len("127.0.0.1:"):]
}

func TestScansCompareWithThePreviousScan(t *testing.T) {
	e := newEnv(t, true)
	ctx := context.Background()
	web, other := startService(t), startService(t)
	_, err := e.svc.CreateProfile(ctx, e.who, ProfileInput{Name: "lo", CIDRs: []string{"127.0.0.1/32"}, Agent: "scanner",
		Ports: []string{web.port(), other.port()}, BannerTimeout: "500ms", Resolve: new(bool)})
	if err != nil {
		t.Fatal(err)
	}
	first := e.runAndWait(t, "lo")
	t.Run("the first scan finds the host and everything appeared", func(t *testing.T) {
		if first.Summary == nil || first.Summary.HostsUp != 1 || first.Summary.OpenPorts != 2 || first.Summary.Appeared != 1 || first.Summary.Proposed != 1 {
			t.Fatalf("summary = %+v", first.Summary)
		}
		if len(first.Diff.Appeared) != 1 || first.Diff.Appeared[0].Address != "127.0.0.1" {
			t.Errorf("diff = %+v", first.Diff)
		}
	})
	web.mu.Lock()
	web.banner = "web/2.0"
	web.mu.Unlock()
	other.srv.Close()
	second := e.runAndWait(t, "lo")
	t.Run("a changed banner and a stopped service show as a change", func(t *testing.T) {
		if second.Previous != first.ID {
			t.Errorf("previous = %q, want %q", second.Previous, first.ID)
		}
		if second.Summary.Changed != 1 || len(second.Diff.Changed) != 1 {
			t.Fatalf("summary %+v diff %+v", second.Summary, second.Diff)
		}
		c := second.Diff.Changed[0]
		wp, _ := strconv.Atoi(web.port())
		op, _ := strconv.Atoi(other.port())
		if len(c.Closed) != 1 || c.Closed[0] != op || len(c.Changed) != 1 || c.Changed[0].Port != wp ||
			c.Changed[0].Before.HTTP.Server != "web/1.0" || c.Changed[0].After.HTTP.Server != "web/2.0" {
			t.Errorf("change = %+v", c)
		}
	})
	web.srv.Close()
	third := e.runAndWait(t, "lo")
	t.Run("a host with nothing open any more disappeared", func(t *testing.T) {
		if third.Summary.Disappeared != 1 || len(third.Diff.Disappeared) != 1 || third.Diff.Disappeared[0].Address != "127.0.0.1" {
			t.Errorf("summary %+v diff %+v", third.Summary, third.Diff)
		}
	})
	t.Run("scans list newest first", func(t *testing.T) {
		page, err := e.svc.ListScans(ctx, "lo", "", 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Items) != 2 || page.Items[0].ID != third.ID || page.Items[1].ID != second.ID || page.Next != second.ID {
			t.Errorf("page = %+v", page)
		}
	})
}

func TestFoundHostsAreProposedAndImported(t *testing.T) {
	e := newEnv(t, true)
	ctx := context.Background()
	web := startService(t)
	_, err := e.svc.CreateProfile(ctx, e.who, ProfileInput{Name: "lo", CIDRs: []string{"127.0.0.1", "127.0.0.2"}, Agent: "scanner",
		Ports: []string{web.port()}, BannerTimeout: "500ms", Resolve: new(bool)})
	if err != nil {
		t.Fatal(err)
	}
	e.inv.targets = []assets.Target{{Name: "already", Addresses: []string{"127.0.0.2"}}}
	sc := e.runAndWait(t, "lo")
	t.Run("a host the inventory holds is not proposed", func(t *testing.T) {
		page, err := e.svc.Hosts(ctx, e.who, sc.ID, "", 10, false)
		if err != nil {
			t.Fatal(err)
		}
		// httptest listens on 127.0.0.1 only, so only .1 is up; .2 is
		// the inventory's and would be skipped anyway.
		if len(page.Items) != 1 || page.Items[0].Address != "127.0.0.1" || page.Items[0].Target != "" {
			t.Fatalf("hosts = %+v", page.Items)
		}
	})
	t.Run("an address the scan did not find is refused by field", func(t *testing.T) {
		_, err := e.svc.Import(ctx, e.who, sc.ID, ImportRequest{Hosts: []string{"127.0.0.1", "127.0.0.9"}})
		wantProblem(t, err, problem.KindInvalid, "hosts[1]", "127.0.0.9")
	})
	t.Run("import makes an SSH target relayed by the scanning agent", func(t *testing.T) {
		res, err := e.svc.Import(ctx, e.who, sc.ID, ImportRequest{Hosts: []string{"127.0.0.1"}, Tags: map[string]string{"env": "lab"}})
		if err != nil {
			t.Fatal(err)
		}
		if res.Report.Created != 1 || len(e.inv.imports) != 1 {
			t.Fatalf("result %+v imports %+v", res, e.inv.imports)
		}
		row := e.inv.imports[0][0]
		if row.Name != "127.0.0.1" || row.Connection.Via != "ag-1" || row.Tags["env"] != "lab" || row.Tags["discovered-by"] != "lo" {
			t.Errorf("row = %+v (connection %+v)", row, row.Connection)
		}
	})
	t.Run("a second import skips what the inventory now holds", func(t *testing.T) {
		res, err := e.svc.Import(ctx, e.who, sc.ID, ImportRequest{All: true})
		if err != nil {
			t.Fatal(err)
		}
		if res.Skipped["127.0.0.1"] != "127.0.0.1" || len(e.inv.imports) != 1 {
			t.Errorf("result %+v", res)
		}
	})
}

func TestAutoImportRuleImportsMatchingHosts(t *testing.T) {
	e := newEnv(t, true)
	ctx := context.Background()
	web := startService(t)
	wp, _ := strconv.Atoi(web.port())
	_, err := e.svc.CreateProfile(ctx, e.who, ProfileInput{Name: "lo", CIDRs: []string{"127.0.0.1"}, Agent: "scanner",
		Ports: []string{web.port()}, BannerTimeout: "500ms", Resolve: new(bool),
		AutoImport: &AutoImport{Ports: []int{wp}, Tags: map[string]string{"role": "web"}}})
	if err != nil {
		t.Fatal(err)
	}
	sc := e.runAndWait(t, "lo")
	if sc.Summary.AutoImported != 1 || len(e.inv.imports) != 1 || e.inv.imports[0][0].Tags["role"] != "web" {
		t.Errorf("summary %+v imports %+v", sc.Summary, e.inv.imports)
	}
}

func TestCancelStopsARunningScan(t *testing.T) {
	e := newEnv(t, true)
	ctx := context.Background()
	// A /16 of loopback at 20 connections/s takes an hour: only cancel
	// ends it.
	_, err := e.svc.CreateProfile(ctx, e.who, ProfileInput{Name: "slow", CIDRs: []string{"127.9.0.0/16"}, Agent: "scanner",
		Ports: []string{"9"}, Rate: 20, Resolve: new(bool)})
	if err != nil {
		t.Fatal(err)
	}
	sc, err := e.svc.RunProfile(ctx, e.who, "slow")
	if err != nil {
		t.Fatal(err)
	}
	t.Run("a second scan of the profile is refused while one runs", func(t *testing.T) {
		_, err := e.svc.RunProfile(ctx, e.who, "slow")
		wantProblem(t, err, problem.KindConflict, "", "already has scan")
	})
	t.Run("progress streams from the step while it runs", func(t *testing.T) {
		waitFor(t, "progress", func() bool {
			d, _ := e.svc.GetScan(ctx, sc.ID)
			return d.Status == ScanRunning && d.Progress.Total == 65534
		})
	})
	if _, err := e.svc.Cancel(ctx, e.who, sc.ID); err != nil {
		t.Fatal(err)
	}
	var d ScanDetail
	waitFor(t, "the scan to end", func() bool {
		d, _ = e.svc.GetScan(ctx, sc.ID)
		return d.Finished()
	})
	if d.Status != ScanCanceled {
		t.Errorf("status = %s (%s), want canceled", d.Status, d.Error)
	}
	a, _ := e.agents.Attempt(ctx, d.AttemptID)
	waitFor(t, "the attempt to stop", func() bool { a, _ = e.agents.Attempt(ctx, d.AttemptID); return a.Finished })
	if a.Status != "canceled" {
		t.Errorf("attempt = %+v, want canceled", a)
	}
}

func TestCompare(t *testing.T) {
	h := func(addr string, ports ...builtin.DiscoveredPort) Host { return Host{Address: addr, Ports: ports} }
	p := func(n int, banner string) builtin.DiscoveredPort {
		return builtin.DiscoveredPort{Port: n, Banner: banner}
	}
	old := []Host{h("10.0.0.2", p(22, "SSH-2.0-a")), h("10.0.0.10", p(80, "")), h("10.0.0.3", p(22, "x"))}
	cur := []Host{h("10.0.0.2", p(22, "SSH-2.0-b"), p(443, "")), h("10.0.0.3", p(22, "x")), h("10.0.0.4", p(22, ""))}
	d := Compare(old, cur)
	if len(d.Appeared) != 1 || d.Appeared[0].Address != "10.0.0.4" {
		t.Errorf("appeared = %+v", d.Appeared)
	}
	if len(d.Disappeared) != 1 || d.Disappeared[0].Address != "10.0.0.10" {
		t.Errorf("disappeared = %+v", d.Disappeared)
	}
	if len(d.Changed) != 1 || d.Changed[0].Address != "10.0.0.2" || len(d.Changed[0].Opened) != 1 || len(d.Changed[0].Changed) != 1 {
		t.Errorf("changed = %+v", d.Changed)
	}
}

func TestSchedulesFireEachSlotOnce(t *testing.T) {
	e := newEnv(t, true)
	ctx := context.Background()
	web := startService(t)
	t.Run("a bad schedule or time zone is refused by field", func(t *testing.T) {
		_, err := e.svc.CreateProfile(ctx, e.who, ProfileInput{Name: "x", CIDRs: []string{"127.0.0.1"}, Agent: "scanner", Schedule: "every day"})
		wantProblem(t, err, problem.KindInvalid, "schedule", "cron spec")
		_, err = e.svc.CreateProfile(ctx, e.who, ProfileInput{Name: "x", CIDRs: []string{"127.0.0.1"}, Agent: "scanner",
			Schedule: "0 * * * *", TimeZone: "Mars/Olympus"})
		wantProblem(t, err, problem.KindInvalid, "time_zone", "IANA")
	})
	pr, err := e.svc.CreateProfile(ctx, e.who, ProfileInput{Name: "lo", CIDRs: []string{"127.0.0.1"}, Agent: "scanner",
		Ports: []string{web.port()}, BannerTimeout: "500ms", Resolve: new(bool), Schedule: "30 2 * * *", TimeZone: "Asia/Kolkata"})
	if err != nil {
		t.Fatal(err)
	}
	// 02:30 in Kolkata (UTC+5:30) is 21:00 UTC the day before.
	slot := time.Date(pr.UpdatedAt.Year(), pr.UpdatedAt.Month(), pr.UpdatedAt.Day(), 21, 0, 0, 0, time.UTC)
	if !slot.After(pr.UpdatedAt) {
		slot = slot.AddDate(0, 0, 1)
	}
	scans := func() []Scan {
		page, err := e.svc.ListScans(ctx, "lo", "", 100)
		if err != nil {
			t.Fatal(err)
		}
		return page.Items
	}
	waitDone := func() {
		waitFor(t, "the scheduled scans to end", func() bool {
			for _, sc := range scans() {
				if !sc.Finished() {
					return false
				}
			}
			return true
		})
	}
	t.Run("nothing fires before the slot", func(t *testing.T) {
		e.svc.fireDue(ctx, slot.Add(-time.Second))
		if n := len(scans()); n != 0 {
			t.Fatalf("%d scans before the slot", n)
		}
	})
	t.Run("the slot fires once, however often it is checked", func(t *testing.T) {
		e.svc.fireDue(ctx, slot.Add(time.Second))
		e.svc.fireDue(ctx, slot.Add(2*time.Second))
		waitDone()
		got := scans()
		if len(got) != 1 || got[0].CreatedBy != "schedule" || got[0].Status != ScanSucceeded {
			t.Fatalf("scans = %+v", got)
		}
		p, _ := e.svc.GetProfile(ctx, "lo")
		if p.LastFire == nil || !p.LastFire.Equal(slot) {
			t.Fatalf("last fire = %v, want %v", p.LastFire, slot)
		}
	})
	t.Run("a new leader over the same state does not fire the slot again", func(t *testing.T) {
		other, err := New(Deps{Applier: e.svc.d.Applier, Store: e.svc.d.Store, Agents: e.agents, Inventory: e.inv, History: e.svc.d.History,
			HistoryReader: e.svc.d.HistoryReader, Logger: slog.New(slog.DiscardHandler), IsLeader: func() bool { return true }, NodeID: "n2"})
		if err != nil {
			t.Fatal(err)
		}
		other.bg = context.Background()
		other.fireDue(ctx, slot.Add(3*time.Second))
		if n := len(scans()); n != 1 {
			t.Fatalf("%d scans after the failover, want 1", n)
		}
	})
	t.Run("slots missed while no one led fire once, for the latest", func(t *testing.T) {
		later := slot.AddDate(0, 0, 3).Add(time.Hour)
		e.svc.fireDue(ctx, later)
		waitDone()
		if n := len(scans()); n != 2 {
			t.Fatalf("%d scans, want 2", n)
		}
		p, _ := e.svc.GetProfile(ctx, "lo")
		if want := slot.AddDate(0, 0, 3); !p.LastFire.Equal(want) {
			t.Fatalf("last fire = %v, want %v", p.LastFire, want)
		}
	})
}

func TestAQueuedScanLeftByAnotherControllerIsRunHere(t *testing.T) {
	e := newEnv(t, true)
	ctx := context.Background()
	web := startService(t)
	pr, err := e.svc.CreateProfile(ctx, e.who, ProfileInput{Name: "lo", CIDRs: []string{"127.0.0.1"}, Agent: "scanner",
		Ports: []string{web.port()}, BannerTimeout: "500ms", Resolve: new(bool)})
	if err != nil {
		t.Fatal(err)
	}
	sc, err := e.svc.newScan(&pr, "alice")
	if err != nil {
		t.Fatal(err)
	}
	sc.Controller = "n0" // committed by a leader that stopped before dispatching it
	var queued Scan
	if err := e.svc.apply(ctx, cmdScanCreate, scanCreatePayload{Scan: sc}, &queued); err != nil {
		t.Fatal(err)
	}
	e.svc.sweep(ctx)
	var d ScanDetail
	waitFor(t, "the adopted scan to end", func() bool {
		d, _ = e.svc.GetScan(ctx, sc.ID)
		return d.Finished()
	})
	if d.Status != ScanSucceeded || d.Summary.HostsUp != 1 {
		t.Fatalf("scan = %+v", d.Scan)
	}
}

func TestHostsArePagedByAddress(t *testing.T) {
	e := newEnv(t, true)
	ctx := context.Background()
	// A listener on every address of 127.0.0.0/8 answers on each of them.
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	if _, err := e.svc.CreateProfile(ctx, e.who, ProfileInput{Name: "lo", CIDRs: []string{"127.0.7.0/29"}, Agent: "scanner",
		Ports: []string{port}, BannerTimeout: "200ms", Resolve: new(bool)}); err != nil {
		t.Fatal(err)
	}
	sc := e.runAndWait(t, "lo")
	var got []string
	after := ""
	for pages := 0; ; pages++ {
		page, err := e.svc.Hosts(ctx, e.who, sc.ID, after, 4, false)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range page.Items {
			got = append(got, h.Address)
		}
		if page.Next == "" {
			break
		}
		if pages > 3 {
			t.Fatal("paging does not end")
		}
		after = page.Next
	}
	want := "127.0.7.1 127.0.7.2 127.0.7.3 127.0.7.4 127.0.7.5 127.0.7.6"
	if strings.Join(got, " ") != want {
		t.Errorf("hosts = %v, want %s", got, want)
	}
}

func TestAScanWhoseStepFailsIsFailed(t *testing.T) {
	e := newEnv(t, true)
	ctx := context.Background()
	// The step refuses a banner timeout above its ceiling; the controller
	// let it through only because this test writes the profile's scan
	// parameters itself.
	pr, err := e.svc.CreateProfile(ctx, e.who, ProfileInput{Name: "lo", CIDRs: []string{"127.0.0.1"}, Agent: "scanner", Ports: []string{"9"}})
	if err != nil {
		t.Fatal(err)
	}
	pr.BannerTimeout = "1h"
	if err := e.svc.apply(ctx, cmdProfilePut, profilePutPayload{Profile: pr, Revision: pr.Revision, Actor: "test"}, &pr); err != nil {
		t.Fatal(err)
	}
	sc, err := e.svc.RunProfile(ctx, e.who, "lo")
	if err != nil {
		t.Fatal(err)
	}
	var d ScanDetail
	waitFor(t, "the scan to end", func() bool { d, _ = e.svc.GetScan(ctx, sc.ID); return d.Finished() })
	if d.Status != ScanFailed || !strings.Contains(d.Error, "banner_timeout") {
		t.Errorf("scan = %s: %q, want failed naming banner_timeout", d.Status, d.Error)
	}
}

// owners is identity's Acting for the tests: alice can act, anyone else
// is gone.
type owners struct{}

func (owners) Acting(_ context.Context, userID string, _ []identity.Binding) (*identity.Principal, error) {
	if userID != "usr_alice" {
		return nil, problem.New(problem.KindForbidden, "user_gone", "user %s is disabled or deleted", userID)
	}
	return &identity.Principal{UserID: userID, Username: "alice"}, nil
}

// A scheduled scan acts for the user who last saved its profile: its
// auto-import rule imports as them, and only proposes once they are gone.
func TestScheduledScansAutoImportAsTheProfilesOwner(t *testing.T) {
	tests := []struct {
		name     string
		owner    string
		imported int
	}{
		{"the owner can act", "usr_alice", 1},
		{"the owner is gone", "usr_bob", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, true)
			e.svc.d.Principals = owners{}
			ctx := context.Background()
			web := startService(t)
			wp, _ := strconv.Atoi(web.port())
			who := &identity.Principal{UserID: tt.owner, Username: "owner"}
			pr, err := e.svc.CreateProfile(ctx, who, ProfileInput{Name: "lo", CIDRs: []string{"127.0.0.1"}, Agent: "scanner",
				Ports: []string{web.port()}, BannerTimeout: "500ms", Resolve: new(bool), Schedule: "0 * * * *",
				AutoImport: &AutoImport{Ports: []int{wp}}})
			if err != nil {
				t.Fatal(err)
			}
			if pr.OwnerID != tt.owner {
				t.Fatalf("owner %q, want %q", pr.OwnerID, tt.owner)
			}
			e.svc.fireDue(ctx, pr.UpdatedAt.Truncate(time.Hour).Add(time.Hour+time.Second))
			var sc Scan
			waitFor(t, "the scheduled scan to end", func() bool {
				page, err := e.svc.ListScans(ctx, "lo", "", 10)
				if err != nil || len(page.Items) != 1 {
					return false
				}
				sc = page.Items[0]
				return sc.Finished()
			})
			d, err := e.svc.GetScan(ctx, sc.ID)
			if err != nil {
				t.Fatal(err)
			}
			if d.Status != ScanSucceeded || d.Summary.AutoImported != tt.imported || d.Summary.Proposed != 1 {
				t.Fatalf("scan %s: summary %+v, want %d imported", d.Status, d.Summary, tt.imported)
			}
		})
	}
}
