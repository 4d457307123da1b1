package gateway

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opsconductor/opsconductor/controller/communication/audit"
	"github.com/opsconductor/opsconductor/controller/history"
)

// auditSeed appends three entries to the fixture's chain (node n1):
// alice's job change, bob's denied user change and a token's run.
func auditSeed(t testing.TB, f *fixture) {
	t.Helper()
	t0 := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	for i, e := range []audit.Entry{
		{Time: t0, Actor: "alice", ActorType: audit.ActorUser, Action: "jobs.put", Resource: "/api/v1/jobs/backup",
			Outcome: audit.OutcomeSuccess, Diff: map[string]any{"password": "hunter2", "steps": 3}},
		{Time: t0.Add(time.Hour), Actor: "bob", ActorType: audit.ActorUser, Action: "users.post", Resource: "/api/v1/users",
			Outcome: audit.OutcomeDenied},
		{Time: t0.Add(2 * time.Hour), Actor: "=cmd|calc", ActorType: audit.ActorToken, Action: "jobs.runs.post",
			Resource: "/api/v1/jobs/backup/runs", Outcome: audit.OutcomeSuccess},
	} {
		if _, err := f.srv.audit.Append(context.Background(), e); err != nil {
			t.Fatalf("seed audit entry %d: %v", i, err)
		}
	}
}

// auditTamper stores a forged chain for n2, a cluster member that never
// registered one: its first entry is n1's first with the actor changed,
// so its hash no longer matches.
func auditTamper(t testing.TB, f *fixture) {
	t.Helper()
	ctx := context.Background()
	recs, err := f.auditStore.Read(ctx, audit.Stream("n1"), 1, 1, 1)
	if err != nil || len(recs) != 1 {
		t.Fatalf("read n1's first entry: %d records, %v", len(recs), err)
	}
	forged := recs[0]
	forged.Stream = audit.Stream("n2")
	forged.Data = bytes.Replace(forged.Data, []byte(`"actor":"alice"`), []byte(`"actor":"mallory"`), 1)
	if err := f.auditStore.Append(ctx, []history.Record{forged}); err != nil {
		t.Fatalf("store forged entry: %v", err)
	}
}

func auditCases() []routeCase {
	entries := func(t *testing.T, rec *responseUnderTest) auditList {
		t.Helper()
		return decodeInto[auditList](t, rec)
	}
	seeded := func(t *testing.T, f *fixture) prepared { auditSeed(t, f); return prepared{} }
	return []routeCase{
		{name: "the audit log lists entries newest first, secrets redacted", method: "GET", target: "/api/v1/audit", want: 200,
			prepare: seeded, check: func(t *testing.T, rec *responseUnderTest) {
				l := entries(t, rec)
				if len(l.Items) != 3 || l.Next != "" || l.Items[0].Action != "jobs.runs.post" || l.Items[2].Actor != "alice" {
					t.Fatalf("list %s", rec.body)
				}
				if l.Items[2].Diff["password"] != "[redacted]" {
					t.Fatalf("a secret was listed: %s", rec.body)
				}
			}},
		{name: "the audit log filters by actor, action and outcome", method: "GET",
			target: "/api/v1/audit?actor=bob&action=users.post&outcome=denied&actor_type=user&node=n1", want: 200,
			prepare: seeded, check: func(t *testing.T, rec *responseUnderTest) {
				if l := entries(t, rec); len(l.Items) != 1 || l.Items[0].Actor != "bob" {
					t.Fatalf("list %s", rec.body)
				}
			}},
		{name: "the audit log filters by time and pages with a cursor", method: "GET",
			target: "/api/v1/audit?since=2026-11-02T10:30:00Z&until=2026-11-03T00:00:00Z&limit=1", want: 200,
			prepare: seeded, check: func(t *testing.T, rec *responseUnderTest) {
				if l := entries(t, rec); len(l.Items) != 1 || l.Items[0].Actor != "=cmd|calc" || l.Next == "" {
					t.Fatalf("list %s", rec.body)
				}
			}},
		{name: "an empty audit log lists an empty array", method: "GET", target: "/api/v1/audit", want: 200,
			check: func(t *testing.T, rec *responseUnderTest) {
				if l := entries(t, rec); l.Items == nil || len(l.Items) != 0 {
					t.Fatalf("list %s", rec.body)
				}
			}},
		{name: "an audit query with a bad time is a 400 naming since", method: "GET", target: "/api/v1/audit?since=yesterday",
			want: 400, check: wantError("invalid_input", "since")},
		{name: "an audit query with an unknown parameter is a 400 naming it", method: "GET", target: "/api/v1/audit?who=alice",
			want: 400, check: wantError("invalid_input", "who")},
		{name: "an audit query names every bad parameter at once", method: "GET",
			target: "/api/v1/audit?outcome=maybe&limit=0x&until=soon", want: 400,
			check: func(t *testing.T, rec *responseUnderTest) {
				for _, f := range []string{`"field":"outcome"`, `"field":"limit"`, `"field":"until"`} {
					if !strings.Contains(string(rec.body), f) {
						t.Fatalf("no %s in %s", f, rec.body)
					}
				}
			}},
		{name: "an audit query without a store is a 503", method: "GET", target: "/api/v1/audit", want: 503,
			setup: func(f *fixture) { f.srv.auditStore = nil }, check: wantError("audit_unavailable", "")},

		{name: "intact audit chains verify, members' empty chains included", method: "GET", target: "/api/v1/audit/verify",
			want: 200, prepare: seeded, check: func(t *testing.T, rec *responseUnderTest) {
				v := decodeInto[auditVerification](t, rec)
				nodes := map[string]int64{}
				for _, c := range v.Chains {
					nodes[c.Node] = c.Entries
				}
				if !v.OK || v.FirstBroken != nil || !maps.Equal(nodes, map[string]int64{"n1": 3, "n2": 0, "n3": 0}) {
					t.Fatalf("verify %s", rec.body)
				}
			}},
		{name: "a tampered audit entry is named by verify", method: "GET", target: "/api/v1/audit/verify", want: 200,
			prepare: func(t *testing.T, f *fixture) prepared {
				auditSeed(t, f)
				auditTamper(t, f)
				return prepared{}
			}, check: func(t *testing.T, rec *responseUnderTest) {
				v := decodeInto[auditVerification](t, rec)
				if v.OK || v.FirstBroken == nil || v.FirstBroken.Node != "n2" || v.FirstBroken.Seq != 1 ||
					v.FirstBroken.Reason != "hash mismatch" {
					t.Fatalf("verify %s", rec.body)
				}
			}},

		{name: "the audit log exports as JSON Lines, each line as stored", method: "GET",
			target: "/api/v1/audit/export?format=jsonl&outcome=success", want: 200, prepare: seeded,
			check: func(t *testing.T, rec *responseUnderTest) {
				if rec.contentType != "application/jsonl" || !strings.HasPrefix(rec.header.Get("Content-Disposition"), `attachment; filename="audit-`) {
					t.Fatalf("Content-Type %q, Content-Disposition %q", rec.contentType, rec.header.Get("Content-Disposition"))
				}
				lines := strings.Split(strings.TrimSuffix(string(rec.body), "\n"), "\n")
				if len(lines) != 2 || !strings.Contains(lines[0], `"action":"jobs.runs.post"`) {
					t.Fatalf("export %s", rec.body)
				}
			}},
		{name: "the audit log exports as CSV with a header", method: "GET", target: "/api/v1/audit/export?format=csv", want: 200,
			prepare: seeded, check: func(t *testing.T, rec *responseUnderTest) {
				rows, err := csv.NewReader(bytes.NewReader(rec.body)).ReadAll()
				if err != nil || len(rows) != 4 || !slices.Equal(rows[0], audit.CSVHeader) || !strings.HasPrefix(rec.contentType, "text/csv") {
					t.Fatalf("export (%v) %s", err, rec.body)
				}
				// A cell a spreadsheet would run is quoted.
				if rows[1][3] != "'=cmd|calc" {
					t.Fatalf("actor cell %q", rows[1][3])
				}
			}},
		{name: "an audit export in an unknown format is a 400 naming format", method: "GET",
			target: "/api/v1/audit/export?format=xml", want: 400, check: wantError("invalid_input", "format")},
		{name: "an audit export names a bad format and a bad filter at once", method: "GET",
			target: "/api/v1/audit/export?format=xml&since=then", want: 400, check: func(t *testing.T, rec *responseUnderTest) {
				for _, f := range []string{`"field":"format"`, `"field":"since"`} {
					if !strings.Contains(string(rec.body), f) {
						t.Fatalf("no %s in %s", f, rec.body)
					}
				}
			}},
		{name: "an audit export with a bad filter is a 400 naming it", method: "GET",
			target: "/api/v1/audit/export?actor_type=robot", want: 400, check: wantError("invalid_input", "actor_type")},
	}
}

// TestAuditExportIsByteForByteAsStored: each exported JSON line is the
// stored record's data, so an auditor can check it against its hash.
func TestAuditExportIsByteForByteAsStored(t *testing.T) {
	f := newFixture(t, Config{})
	auditSeed(t, f)
	rec := serve(t, f, newRequest("GET", "/api/v1/audit/export", "", ""))
	if rec.status != 200 {
		t.Fatalf("status %d: %s", rec.status, rec.body)
	}
	stored, err := f.auditStore.Read(context.Background(), audit.Stream("n1"), 0, history.MaxSeq, 100)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, r := range slices.Backward(stored) {
		want = append(want, string(r.Data))
	}
	got := strings.Split(strings.TrimSuffix(string(rec.body), "\n"), "\n")
	if !slices.Equal(got, want) {
		t.Fatalf("export\n%s\nstored (newest first)\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestEveryMutatingRouteIsAudited walks the route table: every route with
// a mutating method that is neither public (identity audits those) nor a
// websocket is driven once as the admin, whatever the outcome, and must
// leave exactly one entry with its action, its path and the request's ID.
// Reads, public routes and the audit routes themselves leave none.
func TestEveryMutatingRouteIsAudited(t *testing.T) {
	// Its own identity: the walk rotates signing keys, revokes sessions
	// and begins TOTP enrolment for the admin.
	ti := newTestIdentity(t)
	f := newFixture(t, Config{}, func(d *Deps) { d.Identity = ti.svc })
	f.ident = ti
	want := map[string]int{}
	routes := 0
	// status is each request's answer by action and path: its entry
	// must carry the outcome that status means.
	status := map[string]int{}
	for _, rt := range f.srv.Routes() {
		if !audit.Mutating(rt.Method) || rt.Access == AccessPublic || rt.WebSocket {
			continue
		}
		want[auditAction(rt.Method, rt.Path)]++
		routes++
		target := muxWildcard.ReplaceAllString(rt.Path, "x")
		// A JSON body that no handler accepts as is; multipart and
		// octet-stream routes refuse its media type. Every outcome is
		// recorded, so no route needs to succeed.
		req := newRequest(rt.Method, target, "application/json", `{"audit-walk":true}`)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		rec := f.do(t, req.WithContext(ctx))
		cancel()
		status[auditAction(rt.Method, rt.Path)+" "+target] = rec.Code
	}
	if routes < 50 {
		t.Fatalf("only %d mutating routes in the route table", routes)
	}
	// Neither reads nor public routes are recorded by the gateway.
	for _, target := range []string{"/health", "/api/v1/audit", "/api/v1/audit/verify", "/api/v1/users"} {
		f.do(t, newRequest("GET", target, "", ""))
	}
	f.do(t, newRequest("POST", "/api/v1/auth/login", "application/json", `{"username":"admin","password":"wrong"}`))

	page, err := audit.Query(context.Background(), f.auditStore, audit.Filter{Limit: history.MaxPage})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, e := range page.Entries {
		got[e.Action]++
		if e.Actor != "admin" && e.Actor != "anonymous" {
			t.Errorf("entry %d (%s) actor %q", e.Seq, e.Action, e.Actor)
		}
		code, ok := status[e.Action+" "+e.Resource]
		if !ok || e.Outcome != audit.OutcomeOf(code) || e.RequestID == "" || e.Node != "n1" {
			t.Errorf("entry %d (%s %s, answered %d): outcome %q, request ID %q, node %q", e.Seq, e.Action, e.Resource, code,
				e.Outcome, e.RequestID, e.Node)
		}
	}
	for _, action := range slices.Sorted(maps.Keys(want)) {
		if got[action] != want[action] {
			t.Errorf("action %s: %d entries, want %d", action, got[action], want[action])
		}
	}
	for _, action := range slices.Sorted(maps.Keys(got)) {
		if want[action] == 0 {
			t.Errorf("unexpected entries for action %s: %d", action, got[action])
		}
	}
	reps, err := audit.VerifyAll(context.Background(), f.auditStore)
	if err != nil || len(reps) != 1 || !reps[0].OK() || reps[0].Entries != int64(len(page.Entries)) {
		t.Fatalf("verify: %+v, %v", reps, err)
	}
}

// failingQueries is a history store whose Query fails from the n-th call
// on, for an export that breaks after its status is sent.
type failingQueries struct {
	history.Store
	mu    sync.Mutex
	calls int
	after int
}

func (s *failingQueries) Query(ctx context.Context, q history.Query) (history.Page, error) {
	s.mu.Lock()
	s.calls++
	fail := s.calls > s.after
	s.mu.Unlock()
	if fail {
		return history.Page{}, errors.New("history store went away")
	}
	return s.Store.Query(ctx, q)
}

// TestAuditExportFailingMidStreamAbortsTheConnection: once the 200 is
// sent, a failure can only be told by breaking the connection, so that a
// client never takes a short export for the whole log.
func TestAuditExportFailingMidStreamAbortsTheConnection(t *testing.T) {
	var fq *failingQueries
	f := newFixture(t, Config{}, func(d *Deps) {
		// The check before streaming succeeds; the export's first page
		// fails.
		fq = &failingQueries{Store: d.AuditStore, after: 1}
		d.AuditStore = fq
	})
	auditSeed(t, f)
	srv := httptest.NewServer(f.srv.Handler())
	defer srv.Close()
	req, err := http.NewRequest(http.MethodGet, srv.URL+"/api/v1/audit/export", nil)
	if err != nil {
		t.Fatal(err)
	}
	f.ident.authorize(req)
	resp, err := srv.Client().Do(req)
	if err == nil {
		defer resp.Body.Close()
		body, rerr := io.ReadAll(resp.Body)
		if rerr == nil {
			t.Fatalf("status %d, a complete body %q: the failure was not told", resp.StatusCode, body)
		}
	}
	fq.mu.Lock()
	defer fq.mu.Unlock()
	if fq.calls < 2 {
		t.Fatalf("the store was queried %d times", fq.calls)
	}
}

// While the history store is known to be down, a mutating request is
// refused before its handler runs: nothing changes without an audit entry.
func TestMutationsWaitForTheAuditStore(t *testing.T) {
	var down atomic.Bool
	f := newFixture(t, Config{}, func(d *Deps) {
		d.ReadyChecks = map[string]func(context.Context) error{
			"history": func(context.Context) error {
				if down.Load() {
					return errors.New("connection refused")
				}
				return nil
			},
		}
	})
	write := func() *httptest.ResponseRecorder {
		return f.do(t, newRequest("POST", "/api/v1/operator/probes", "application/json", `{"payload":"x"}`))
	}
	down.Store(true)
	rec := write()
	if e := decodeEnvelope(t, rec); rec.Code != http.StatusServiceUnavailable || e.Code != "audit_unavailable" ||
		!strings.Contains(e.Message, "nothing was changed") || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("status %d, envelope %+v, Retry-After %q: want a 503 audit_unavailable saying nothing changed", rec.Code, e, rec.Header().Get("Retry-After"))
	}
	if n := len(f.probes.records); n != 0 {
		t.Fatalf("the refused request wrote %d probes", n)
	}
	down.Store(false)
	if rec := write(); rec.Code != http.StatusCreated {
		t.Fatalf("after the store came back: status %d: %s", rec.Code, rec.Body)
	}
}
