package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opsconductor/opsconductor/controller/assets"
	"github.com/opsconductor/opsconductor/controller/assets/discovery"
	"github.com/opsconductor/opsconductor/controller/history"
	"github.com/opsconductor/opsconductor/controller/history/embedded"
	"github.com/opsconductor/opsconductor/controller/problem"
	"github.com/opsconductor/opsconductor/controller/state"
	"github.com/opsconductor/opsconductor/controller/state/statetest"
	"github.com/opsconductor/opsconductor/plugins/builtin"
	"github.com/opsconductor/opsconductor/plugins/sdk"
)

// caseScanner stands in for the agent transport of discovery: it knows
// the assets cases' relay agent and runs the real discover step in this
// process, its stdout kept as the attempt's log. Scans and their results
// are real; controller/server's tests go through a real agent.
type caseScanner struct {
	mu       sync.Mutex
	attempts map[string]*caseScan
	wg       sync.WaitGroup
}

type caseScan struct {
	mu     sync.Mutex
	log    strings.Builder
	state  discovery.AttemptState
	cancel context.CancelFunc
}

func (c *caseScan) Stdout() io.Writer { return caseScanWriter{c} }
func (c *caseScan) Stderr() io.Writer { return io.Discard }

type caseScanWriter struct{ c *caseScan }

func (w caseScanWriter) Write(p []byte) (int, error) {
	w.c.mu.Lock()
	defer w.c.mu.Unlock()
	return w.c.log.Write(p)
}

func (s *caseScanner) ResolveAgent(_ context.Context, ref string) (string, string, error) {
	if ref == caseRelay.ID || ref == caseRelay.Name {
		return caseRelay.ID, caseRelay.Name, nil
	}
	return "", "", problem.NotFound("agent", ref)
}

func (s *caseScanner) RunStep(_ context.Context, _, uses string, params json.RawMessage, _ time.Duration, _ string) (string, error) {
	step, ok := builtin.Lookup(uses)
	if !ok {
		return "", fmt.Errorf("no step %s", uses)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &caseScan{state: discovery.AttemptState{Status: "running"}, cancel: cancel}
	s.mu.Lock()
	if s.attempts == nil {
		s.attempts = map[string]*caseScan{}
	}
	id := "att-" + strconv.Itoa(len(s.attempts)+1)
	s.attempts[id] = a
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		res, err := step.Run(ctx, sdk.Request{AttemptID: id, Params: params}, a)
		a.mu.Lock()
		defer a.mu.Unlock()
		st := discovery.AttemptState{Status: "succeeded", Finished: true, LastSeq: 1}
		switch {
		case errors.Is(err, context.Canceled):
			st.Status = "canceled"
		case err != nil || res.Status != sdk.StatusSucceeded:
			st.Status = "failed"
		}
		a.state = st
	}()
	return id, nil
}

func (s *caseScanner) get(id string) (*caseScan, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := s.attempts[id]; ok {
		return a, nil
	}
	return nil, problem.NotFound("attempt", id)
}

func (s *caseScanner) Attempt(_ context.Context, id string) (discovery.AttemptState, error) {
	a, err := s.get(id)
	if err != nil {
		return discovery.AttemptState{}, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.state, nil
}

// AttemptLog hands the whole output as one chunk, seq 1, once the step
// ended: the cases read finished scans.
func (s *caseScanner) AttemptLog(_ context.Context, id string, after uint64, _ int) ([]discovery.LogLine, uint64, error) {
	a, err := s.get(id)
	if err != nil {
		return nil, after, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if after >= 1 || !a.state.Finished {
		return nil, after, nil
	}
	return []discovery.LogLine{{Seq: 1, Stream: "stdout", Data: a.log.String()}}, 1, nil
}

func (s *caseScanner) CancelAttempt(_ context.Context, id string) error {
	a, err := s.get(id)
	if err != nil {
		return err
	}
	a.cancel()
	return nil
}

// newTestDiscovery is a real discovery service over its own store and
// history, importing into inv. The relay agent may scan loopback.
func newTestDiscovery(t testing.TB, inv *assets.Service) *discovery.Service {
	t.Helper()
	reg := state.NewRegistry()
	reg.MustRegister(discovery.Domain())
	store, err := state.NewStore(reg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	hist, err := embedded.Open(filepath.Join(t.TempDir(), "history"), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	w := history.NewWriter(hist, history.WriterConfig{Logger: slog.New(slog.DiscardHandler)})
	scanner := &caseScanner{}
	svc, err := discovery.New(discovery.Deps{Applier: &statetest.Applier{Store: store}, Store: store, Agents: scanner, Inventory: inv,
		History: w, HistoryReader: hist, Logger: slog.New(slog.DiscardHandler), IsLeader: func() bool { return true }, NodeID: "n1",
		LoopbackAgent: func(id string) bool { return id == caseRelay.ID }, PollInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); svc.Run(ctx, time.Hour) }()
	t.Cleanup(func() {
		cancel()
		<-done
		for _, a := range scanner.attempts {
			a.cancel()
		}
		scanner.wg.Wait()
		w.Close(context.Background())
		hist.Close()
	})
	deadline := time.Now().Add(10 * time.Second)
	for !svc.Running() {
		if time.Now().After(deadline) {
			t.Fatal("the discovery service did not start")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return svc
}

// caseListener accepts on a loopback port and closes each connection: an
// open port with nothing to say.
func caseListener(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().(*net.TCPAddr).Port
}

// discoveryProfile creates profile "lo" scanning 127.0.0.1 on an open
// loopback port; with scan, it also runs it to the end. $id is the
// scan's ID.
func discoveryProfile(scan bool) func(t *testing.T, f *fixture) prepared {
	return func(t *testing.T, f *fixture) prepared {
		t.Helper()
		return prepared{vars: map[string]string{"id": caseDiscovery(t, f, "lo", scan)}}
	}
}

// caseDiscovery creates the profile name (127.0.0.1 on an open loopback
// port, scanned by the relay agent) as the fixture's admin and, with
// scan, runs it to success and returns the scan's ID.
func caseDiscovery(t *testing.T, f *fixture, name string, scan bool) string {
	t.Helper()
	ctx := context.Background()
	p := casePrincipal(t, f.ident, f.ident.adminToken)
	port := caseListener(t)
	no := false
	if _, err := f.srv.discovery.CreateProfile(ctx, p, discovery.ProfileInput{Name: name, CIDRs: []string{"127.0.0.1"},
		Ports: []string{strconv.Itoa(port)}, Agent: caseRelay.Name, BannerTimeout: "200ms", Resolve: &no}); err != nil {
		t.Fatal(err)
	}
	if !scan {
		return ""
	}
	sc, err := f.srv.discovery.RunProfile(ctx, p, name)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		d, err := f.srv.discovery.GetScan(ctx, sc.ID)
		if err == nil && d.Finished() {
			if d.Status != discovery.ScanSucceeded {
				t.Fatalf("scan %s ended %s: %s", sc.ID, d.Status, d.Error)
			}
			return sc.ID
		}
		if time.Now().After(deadline) {
			t.Fatal("the scan did not finish")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// slowScan starts a scan that only cancel ends: a /16 of loopback at 20
// connections a second.
func slowScan(t *testing.T, f *fixture) prepared {
	t.Helper()
	ctx := context.Background()
	p := casePrincipal(t, f.ident, f.ident.adminToken)
	if _, err := f.srv.discovery.CreateProfile(ctx, p, discovery.ProfileInput{Name: "slow", CIDRs: []string{"127.9.0.0/16"},
		Ports: []string{"9"}, Agent: caseRelay.Name, Rate: 20}); err != nil {
		t.Fatal(err)
	}
	sc, err := f.srv.discovery.RunProfile(ctx, p, "slow")
	if err != nil {
		t.Fatal(err)
	}
	return prepared{vars: map[string]string{"id": sc.ID}}
}

func discoveryCases() []routeCase {
	json := "application/json"
	return []routeCase{
		{name: "a discovery profile is created for loopback", method: "POST", target: "/api/v1/discovery/profiles", contentType: json,
			body: `{"name":"lo","cidrs":["127.0.0.0/30"],"ports":["22","8000-8010"],"agent":"relay-1","rate":500}`, want: 201,
			check: func(t *testing.T, rec *responseUnderTest) {
				if p := decodeInto[discovery.Profile](t, rec); p.Agent != caseRelay.ID || p.CreatedBy != "admin" {
					t.Fatalf("created %s", rec.body)
				}
			}},
		{name: "a profile outside the agent's ranges is a 403 naming the range", method: "POST", target: "/api/v1/discovery/profiles",
			contentType: json, body: `{"name":"lan","cidrs":["127.0.0.1","10.0.0.0/24"],"agent":"relay-1"}`, want: 403,
			check: func(t *testing.T, rec *responseUnderTest) {
				wantError("range_not_allowed", "cidrs[1]")(t, rec)
				if !strings.Contains(string(rec.body), "10.0.0.0/24 is outside the ranges agent relay-1 may scan") {
					t.Fatalf("body %s", rec.body)
				}
			}},
		{name: "a scheduled profile keeps its schedule and time zone", method: "POST", target: "/api/v1/discovery/profiles", contentType: json,
			body: `{"name":"nightly","cidrs":["127.0.0.1"],"agent":"relay-1","schedule":"0 3 * * *","time_zone":"Europe/Paris"}`, want: 201,
			check: func(t *testing.T, rec *responseUnderTest) {
				if p := decodeInto[discovery.Profile](t, rec); p.Schedule != "0 3 * * *" || p.TimeZone != "Europe/Paris" || p.LastFire != nil {
					t.Fatalf("created %s", rec.body)
				}
			}},
		{name: "a profile with a bad schedule is a 400 naming schedule", method: "POST", target: "/api/v1/discovery/profiles",
			contentType: json, body: `{"name":"p","cidrs":["127.0.0.1"],"agent":"relay-1","schedule":"61 * * * *"}`, want: 400,
			check: wantError("invalid_input", "schedule")},
		{name: "a profile faster than the ceiling is a 400 naming rate", method: "POST", target: "/api/v1/discovery/profiles",
			contentType: json, body: `{"name":"fast","cidrs":["127.0.0.1"],"agent":"relay-1","rate":2001}`, want: 400,
			check: wantError("invalid_input", "rate")},
		{name: "a profile with a bad port range is a 400 naming it", method: "POST", target: "/api/v1/discovery/profiles",
			contentType: json, body: `{"name":"p","cidrs":["127.0.0.1"],"agent":"relay-1","ports":["22","90-80"]}`, want: 400,
			check: wantError("invalid_input", "ports[1]")},
		{name: "a profile for an unknown agent is a 400 naming agent", method: "POST", target: "/api/v1/discovery/profiles",
			contentType: json, body: `{"name":"p","cidrs":["127.0.0.1"],"agent":"nobody"}`, want: 400,
			check: wantError("invalid_input", "agent")},
		{name: "a second profile of the same name is a 409", method: "POST", target: "/api/v1/discovery/profiles", contentType: json,
			body: `{"name":"lo","cidrs":["127.0.0.1"],"agent":"relay-1"}`, want: 409, prepare: discoveryProfile(false)},
		{name: "discovery profiles are listed", method: "GET", target: "/api/v1/discovery/profiles", want: 200, prepare: discoveryProfile(false)},
		{name: "a discovery profile is read", method: "GET", target: "/api/v1/discovery/profiles/lo", want: 200, prepare: discoveryProfile(false)},
		{name: "an unknown discovery profile is a 404", method: "GET", target: "/api/v1/discovery/profiles/nope", want: 404},
		{name: "a discovery profile is replaced", method: "PUT", target: "/api/v1/discovery/profiles/lo", contentType: json,
			body: `{"cidrs":["127.0.0.0/29"],"agent":"agt_relay1"}`, want: 200, prepare: discoveryProfile(false),
			check: func(t *testing.T, rec *responseUnderTest) {
				if p := decodeInto[discovery.Profile](t, rec); len(p.CIDRs) != 1 || p.CIDRs[0] != "127.0.0.0/29" {
					t.Fatalf("replaced %s", rec.body)
				}
			}},
		{name: "replacing an unknown profile is a 404", method: "PUT", target: "/api/v1/discovery/profiles/nope", contentType: json,
			body: `{"cidrs":["127.0.0.1"],"agent":"relay-1"}`, want: 404},
		{name: "a discovery profile is deleted", method: "DELETE", target: "/api/v1/discovery/profiles/lo", want: 200, prepare: discoveryProfile(false)},
		{name: "a profile is run", method: "POST", target: "/api/v1/discovery/profiles/lo/run", want: 202, prepare: discoveryProfile(false),
			check: func(t *testing.T, rec *responseUnderTest) {
				if sc := decodeInto[discovery.Scan](t, rec); sc.Status != discovery.ScanQueued || sc.Params.Rate != builtin.DiscoverMaxRate {
					t.Fatalf("scan %s", rec.body)
				}
			}},
		{name: "running an unknown profile is a 404", method: "POST", target: "/api/v1/discovery/profiles/nope/run", want: 404},
		{name: "scans are listed", method: "GET", target: "/api/v1/discovery/scans?profile=lo", want: 200, prepare: discoveryProfile(true),
			check: func(t *testing.T, rec *responseUnderTest) {
				if p := decodeInto[discovery.ScanPage](t, rec); len(p.Items) != 1 {
					t.Fatalf("page %s", rec.body)
				}
			}},
		{name: "a finished scan shows its summary and diff", method: "GET", target: "/api/v1/discovery/scans/$id", want: 200,
			prepare: discoveryProfile(true), check: func(t *testing.T, rec *responseUnderTest) {
				d := decodeInto[discovery.ScanDetail](t, rec)
				if d.Summary == nil || d.Summary.HostsUp != 1 || d.Diff == nil || len(d.Diff.Appeared) != 1 {
					t.Fatalf("scan %s", rec.body)
				}
			}},
		{name: "an unknown scan is a 404", method: "GET", target: "/api/v1/discovery/scans/ds-nope", want: 404},
		{name: "a running scan is canceled", method: "POST", target: "/api/v1/discovery/scans/$id/cancel", want: 202, prepare: slowScan},
		{name: "canceling a finished scan is a 409", method: "POST", target: "/api/v1/discovery/scans/$id/cancel", want: 409,
			prepare: discoveryProfile(true), check: wantError("scan_finished", "")},
		{name: "a scan's hosts are proposed", method: "GET", target: "/api/v1/discovery/scans/$id/hosts?proposed=true", want: 200,
			prepare: discoveryProfile(true), check: func(t *testing.T, rec *responseUnderTest) {
				if p := decodeInto[discovery.HostPage](t, rec); len(p.Items) != 1 || p.Items[0].Address != "127.0.0.1" || p.Items[0].Target != "" {
					t.Fatalf("page %s", rec.body)
				}
			}},
		{name: "found hosts are imported as targets", method: "POST", target: "/api/v1/discovery/scans/$id/import", contentType: json,
			body: `{"hosts":["127.0.0.1"],"tags":{"env":"lab"}}`, want: 200, prepare: discoveryProfile(true),
			check: func(t *testing.T, rec *responseUnderTest) {
				if r := decodeInto[discovery.ImportResult](t, rec); r.Report.Created != 1 || !r.Report.Written {
					t.Fatalf("import %s", rec.body)
				}
			}},
		{name: "importing an address the scan did not find is a 400 naming it", method: "POST", target: "/api/v1/discovery/scans/$id/import",
			contentType: json, body: `{"hosts":["10.9.9.9"]}`, want: 400, prepare: discoveryProfile(true), check: wantError("invalid_input", "hosts[0]")},
		{name: "an import with an unknown field is a 400 naming it", method: "POST", target: "/api/v1/discovery/scans/$id/import",
			contentType: json, body: `{"all":true,"everything":true}`, want: 400, prepare: discoveryProfile(true), check: wantError("invalid_input", "everything")},
		{name: "an agent's ranges are read", method: "GET", target: "/api/v1/discovery/agents/relay-1/ranges", want: 200},
		{name: "the ranges of an unknown agent are a 404", method: "GET", target: "/api/v1/discovery/agents/nobody/ranges", want: 404},
		{name: "an agent's ranges are set", method: "PUT", target: "/api/v1/discovery/agents/relay-1/ranges", contentType: json,
			body: `{"cidrs":["10.0.0.0/16","192.168.1.7/24"]}`, want: 200, check: func(t *testing.T, rec *responseUnderTest) {
				if r := decodeInto[discovery.Ranges](t, rec); r.Agent != caseRelay.ID || len(r.CIDRs) != 2 || r.CIDRs[1] != "192.168.1.0/24" {
					t.Fatalf("ranges %s", rec.body)
				}
			}},
		{name: "a bad range is a 400 naming it", method: "PUT", target: "/api/v1/discovery/agents/relay-1/ranges", contentType: json,
			body: `{"cidrs":["10.0.0.0/16","ten"]}`, want: 400, check: wantError("invalid_input", "cidrs[1]")},
	}
}

func TestDiscoveryRoutesAnswer503WithoutTheService(t *testing.T) {
	f := newFixture(t, Config{}, func(d *Deps) { d.Discovery = nil })
	rec := f.do(t, newRequest("GET", "/api/v1/discovery/profiles", "", ""))
	if rec.Code != 503 || !strings.Contains(rec.Body.String(), "discovery_unavailable") {
		t.Fatalf("status %d body %s", rec.Code, rec.Body)
	}
}
