package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/opsconductor/opsconductor/controller/cluster"
	"github.com/opsconductor/opsconductor/controller/problem"
)

func TestHealth(t *testing.T) {
	f := newFixture(t, Config{}, func(d *Deps) {
		d.HealthSections = map[string]HealthSection{
			"agents": func(context.Context) any { return map[string]int{"connected": 7} },
		}
	})
	rec := f.do(t, newRequest("GET", "/health", "", ""))
	if rec.Code != http.StatusOK {
		t.Fatalf("status = %d", rec.Code)
	}
	var doc struct {
		Status  string         `json:"status"`
		NodeID  string         `json:"node_id"`
		Version string         `json:"version"`
		Raft    cluster.Status `json:"raft"`
		Agents  map[string]int `json:"agents"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	st := f.cluster.status
	checks := []struct {
		name      string
		got, want any
	}{
		{"status is ok", doc.Status, "ok"},
		{"node_id is the node's", doc.NodeID, "n1"},
		{"version is the build's", doc.Version, "1.2.3"},
		{"raft state comes from the cluster", doc.Raft.State, st.State},
		{"raft leader comes from the cluster", doc.Raft.LeaderAddr, st.LeaderAddr},
		{"raft applied index comes from the cluster", doc.Raft.AppliedIndex, st.AppliedIndex},
		{"raft peers come from the cluster", len(doc.Raft.Peers), len(st.Peers)},
		{"a registered section is included", doc.Agents["connected"], 7},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if c.got != c.want {
				t.Errorf("got %v, want %v", c.got, c.want)
			}
		})
	}
}

func TestReady(t *testing.T) {
	tests := []struct {
		name        string
		readyErr    error
		wantStatus  int
		wantCode    string
		wantMessage string
		historyErr  error
	}{
		{name: "a ready node answers 200", wantStatus: 200},
		{name: "a node whose history store is away answers 503 naming it",
			historyErr: errors.New("connection refused"),
			wantStatus: 503, wantCode: "history_unavailable", wantMessage: "history: connection refused"},
		{name: "a node without a leader answers 503 with the reason",
			readyErr:   problem.Unavailable("no_leader", "no leader known"),
			wantStatus: 503, wantCode: "no_leader", wantMessage: "no leader known"},
		{name: "a node still catching up answers 503 with the reason",
			readyErr:   errors.New("applied index 10 behind commit index 42"),
			wantStatus: 503, wantCode: "not_ready", wantMessage: "applied index 10 behind commit index 42"},
		{name: "a not-ready problem of another kind is still a 503",
			readyErr:   problem.New(problem.KindConflict, "", "restoring a snapshot"),
			wantStatus: 503, wantCode: "not_ready", wantMessage: "restoring a snapshot"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, Config{}, func(d *Deps) {
				d.ReadyChecks = map[string]func(context.Context) error{
					"history": func(context.Context) error { return tt.historyErr },
				}
			})
			f.cluster.readyErr = tt.readyErr
			rec := f.do(t, newRequest("GET", "/health/ready", "", ""))
			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d", rec.Code, tt.wantStatus)
			}
			if tt.wantStatus == http.StatusOK {
				if !strings.Contains(rec.Body.String(), `"status":"ready"`) {
					t.Errorf("body = %s", rec.Body)
				}
				return
			}
			if e := decodeEnvelope(t, rec); e.Code != tt.wantCode || e.Message != tt.wantMessage {
				t.Errorf("envelope = %+v, want code %q message %q", e, tt.wantCode, tt.wantMessage)
			}
		})
	}
}

func TestConsistentReads(t *testing.T) {
	f := newFixture(t, Config{})
	f.probes.add(1)
	// A live agent's attempt first: it gives the fixture the agents
	// service that the agent below is enrolled in too.
	attemptID := caseAttempt(t, f).ID
	agentID := caseEnroll(t, f).ID
	casePush(t, f, "1.0.0")
	relationshipID := relateAll("web-1 depends_on db-1")(t, f).vars["id"]
	caseCredential(t, f, "admin") // {name} is "admin" below
	inventory("web-1 env=prod", "+admin web-1")(t, f)
	scanID := caseDiscovery(t, f, "admin", true)
	caseSchedule(t, f, "admin") // {name} is "admin" below
	// Job "admin" and a run of it that waits for its agent ({id} of /runs/).
	caseJob(t, f, "admin", caseJobYAML)
	runID := caseRun(t, f, "admin").ID
	// Channel, template and rule "admin", and a delivery to the channel.
	deliveryID := caseNotifyAll(t, f, "admin")
	caseTriggerAdmin(t, f, "admin") // {ref} is "admin" below
	var consistentRoutes []RouteInfo
	for _, rt := range f.srv.Routes() {
		if rt.Consistent {
			consistentRoutes = append(consistentRoutes, rt)
		}
	}
	if len(consistentRoutes) == 0 {
		t.Fatal("no route honours consistent=true")
	}
	tests := []struct {
		name      string
		query     string
		wantCalls int
	}{
		{"consistent=true waits for ConsistentRead", "?consistent=true", 1},
		{"consistent=1 is true too", "?consistent=1", 1},
		{"consistent=false reads locally", "?consistent=false", 0},
		{"no flag reads locally", "", 0},
	}
	for _, rt := range consistentRoutes {
		for _, tt := range tests {
			t.Run(rt.Pattern()+": "+tt.name, func(t *testing.T) {
				before := f.cluster.calls()
				id := "p1"
				if strings.HasPrefix(rt.Path, "/api/v1/agents/") {
					id = agentID
				}
				if strings.HasPrefix(rt.Path, "/api/v1/attempts/") {
					id = attemptID
				}
				if strings.HasPrefix(rt.Path, "/api/v1/relationships/") {
					id = relationshipID
				}
				if strings.HasPrefix(rt.Path, "/api/v1/discovery/scans/") {
					id = scanID
				}
				if strings.HasPrefix(rt.Path, "/api/v1/runs/") {
					id = runID
				}
				if strings.HasPrefix(rt.Path, "/api/v1/notifications/deliveries/") {
					id = deliveryID
				}
				name := "admin"
				if strings.HasPrefix(rt.Path, "/api/v1/plugins/") {
					name = "disk-usage"
				}
				target := strings.NewReplacer("{name...}", name, "{ref}", "admin", "{id}", id, "{target}", "web-1", "{user}", "admin", "{name}", name, "{version}", "1", "{agent}", "relay-1").Replace(rt.Path) + tt.query
				if rec := f.do(t, newRequest(rt.Method, target, "", "")); rec.Code != http.StatusOK {
					t.Fatalf("status = %d: %s", rec.Code, rec.Body)
				}
				if got := f.cluster.calls() - before; got != tt.wantCalls {
					t.Errorf("ConsistentRead called %d times, want %d", got, tt.wantCalls)
				}
			})
		}
	}
	t.Run("a write ignores the flag", func(t *testing.T) {
		before := f.cluster.calls()
		f.do(t, newRequest("POST", "/api/v1/operator/probes?consistent=true", "application/json", `{}`))
		if f.cluster.calls() != before {
			t.Error("ConsistentRead called for a write")
		}
	})
	t.Run("a failed consistent read stops the handler", func(t *testing.T) {
		f.cluster.mu.Lock()
		f.cluster.consistentErr = problem.Unavailable("no_leader", "no leader")
		f.cluster.mu.Unlock()
		rec := f.do(t, newRequest("GET", "/api/v1/operator/probes/p1?consistent=true", "", ""))
		if rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("status = %d, want 503", rec.Code)
		}
	})
}

func TestListProbes(t *testing.T) {
	tests := []struct {
		name      string
		query     string
		stored    int
		wantIDs   []string
		wantNext  string
		wantField string // set for a 400
	}{
		{name: "the default page holds up to 100", stored: 3, wantIDs: []string{"p1", "p2", "p3"}},
		{name: "a full page points at the next", query: "?limit=2", stored: 3, wantIDs: []string{"p1", "p2"}, wantNext: "p2"},
		{name: "the next page starts after", query: "?limit=2&after=p2", stored: 3, wantIDs: []string{"p3"}},
		{name: "a page that exactly ends the list has no next", query: "?limit=3", stored: 3, wantIDs: []string{"p1", "p2", "p3"}},
		{name: "an empty store lists nothing", wantIDs: []string{}},
		{name: "the limit must be a number", query: "?limit=ten", wantField: "limit"},
		{name: "the limit must be positive", query: "?limit=0", wantField: "limit"},
		{name: "the limit may be at most 1000", query: "?limit=1001", wantField: "limit"},
		{name: "1000 is allowed", query: "?limit=1000", wantIDs: []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, Config{})
			f.probes.add(tt.stored)
			rec := f.do(t, newRequest("GET", "/api/v1/operator/probes"+tt.query, "", ""))
			if tt.wantField != "" {
				if rec.Code != http.StatusBadRequest {
					t.Fatalf("status = %d, want 400", rec.Code)
				}
				if e := decodeEnvelope(t, rec); e.Field != tt.wantField {
					t.Errorf("field = %q, want %q", e.Field, tt.wantField)
				}
				return
			}
			var page probeList
			if err := json.Unmarshal(rec.Body.Bytes(), &page); err != nil {
				t.Fatal(err)
			}
			ids := []string{}
			for _, r := range page.Items {
				ids = append(ids, r.ID)
			}
			if strings.Join(ids, ",") != strings.Join(tt.wantIDs, ",") || page.Next != tt.wantNext {
				t.Errorf("page = %v next %q, want %v next %q", ids, page.Next, tt.wantIDs, tt.wantNext)
			}
		})
	}
}

func TestOperatorRoutes(t *testing.T) {
	t.Run("removing a peer reaches the cluster", func(t *testing.T) {
		f := newFixture(t, Config{})
		if rec := f.do(t, newRequest("DELETE", "/api/v1/operator/raft/peers/n3", "", "")); rec.Code != http.StatusNoContent {
			t.Fatalf("status = %d", rec.Code)
		}
		if len(f.cluster.removed) != 1 || f.cluster.removed[0] != "n3" {
			t.Errorf("removed = %v, want [n3]", f.cluster.removed)
		}
	})
	t.Run("a snapshot download is an attachment", func(t *testing.T) {
		f := newFixture(t, Config{})
		rec := f.do(t, newRequest("GET", "/api/v1/operator/snapshot", "", ""))
		if rec.Code != http.StatusOK || rec.Body.String() != "snapshot-bytes" {
			t.Fatalf("status = %d body %q", rec.Code, rec.Body)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/octet-stream" {
			t.Errorf("Content-Type = %q", ct)
		}
		if cd := rec.Header().Get("Content-Disposition"); !strings.HasPrefix(cd, "attachment; filename=opsconductor-n1-") {
			t.Errorf("Content-Disposition = %q", cd)
		}
	})
	t.Run("a stale snapshot download reads the local store only", func(t *testing.T) {
		f := newFixture(t, Config{})
		rec := f.do(t, newRequest("GET", "/api/v1/operator/snapshot?stale=true", "", ""))
		if rec.Code != http.StatusOK || rec.Body.String() != "snapshot-bytes" {
			t.Fatalf("status = %d body %q", rec.Code, rec.Body)
		}
		if f.cluster.localSaves != 1 {
			t.Fatalf("local saves = %d, want 1", f.cluster.localSaves)
		}
		bad := f.do(t, newRequest("GET", "/api/v1/operator/snapshot?stale=maybe", "", ""))
		if bad.Code != http.StatusBadRequest || !strings.Contains(bad.Body.String(), `"field":"stale"`) {
			t.Fatalf("stale=maybe: %d %s", bad.Code, bad.Body)
		}
	})
	t.Run("a snapshot download is never gzipped", func(t *testing.T) {
		f := newFixture(t, Config{})
		f.cluster.snapshot = []byte(strings.Repeat("a", 10*minGzipBytes))
		req := newRequest("GET", "/api/v1/operator/snapshot", "", "")
		req.Header.Set("Accept-Encoding", "gzip")
		rec := f.do(t, req)
		if rec.Header().Get("Content-Encoding") != "" || rec.Body.Len() != 10*minGzipBytes {
			t.Errorf("Content-Encoding = %q, %d bytes", rec.Header().Get("Content-Encoding"), rec.Body.Len())
		}
	})
	t.Run("a snapshot upload reaches the cluster whole", func(t *testing.T) {
		f := newFixture(t, Config{MaxBodyBytes: 16})
		big := strings.Repeat("s", 4096) // over the JSON limit, under the snapshot one
		rec := f.do(t, newRequest("PUT", "/api/v1/operator/snapshot", "application/octet-stream", big))
		if rec.Code != http.StatusNoContent {
			t.Fatalf("status = %d: %s", rec.Code, rec.Body)
		}
		if string(f.cluster.restored) != big {
			t.Errorf("restored %d bytes, want %d", len(f.cluster.restored), len(big))
		}
	})
	t.Run("a streamed snapshot upload over the limit is a 413", func(t *testing.T) {
		f := newFixture(t, Config{MaxSnapshotBytes: 8})
		req := newRequest("PUT", "/api/v1/operator/snapshot", "application/octet-stream", strings.Repeat("s", 64))
		req.ContentLength = -1 // chunked: the limit can only be found while reading
		rec := f.do(t, req)
		if rec.Code != http.StatusRequestEntityTooLarge {
			t.Fatalf("status = %d, want 413: %s", rec.Code, rec.Body)
		}
		if e := decodeEnvelope(t, rec); e.Field != "body" {
			t.Errorf("field = %q, want body", e.Field)
		}
	})
}
