package assets

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opsconductor/opsconductor/controller/assets/graph"
	"github.com/opsconductor/opsconductor/controller/identity"
	"github.com/opsconductor/opsconductor/controller/problem"
)

func TestTargets(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	web := e.create(t, "web-1", map[string]string{"env": "prod", "role": "web"}, "web")

	t.Run("a created target gets an ID, times, a revision and its static group", func(t *testing.T) {
		if !strings.HasPrefix(web.ID, "tgt_") || web.CreatedAt.IsZero() || web.Revision == 0 || web.CreatedBy != "admin" {
			t.Fatalf("created %+v", web)
		}
		if web.Connection.HostKeyPolicy != HostKeyTOFU || web.Status.Agent != StatusUnknown {
			t.Fatalf("defaults: %+v", web)
		}
		g, err := e.svc.GetGroup(ctx, "web")
		if err != nil || g.Kind != GroupStatic {
			t.Fatalf("group web = %+v, %v; want it created as static", g, err)
		}
	})
	t.Run("a target is found by ID and by name", func(t *testing.T) {
		for _, key := range []string{web.ID, "web-1"} {
			got, err := e.svc.Get(ctx, key)
			if err != nil || got.ID != web.ID {
				t.Fatalf("Get(%s) = %+v, %v", key, got, err)
			}
		}
	})
	t.Run("bad input names every field at once", func(t *testing.T) {
		_, err := e.svc.Create(ctx, e.admin, TargetInput{Name: "-bad", Addresses: []string{"not a host!", "10.0.0.1"},
			Connection: &Connection{Type: ConnSSH, Port: 70000, HostKeyPolicy: "yolo"}, Tags: map[string]string{"facts.os": "x", "ok": "a b"}})
		p := wantProblem(t, err, problem.KindInvalid, "")
		var fields []string
		for _, d := range p.Details {
			fields = append(fields, d.Field)
		}
		for _, want := range []string{"name", "addresses[0]", "connection.via", "connection.port", "connection.host_key_policy", "tags.facts.os", "tags.ok"} {
			if !slices.Contains(fields, want) {
				t.Errorf("no problem for %s in %v", want, fields)
			}
		}
	})
	t.Run("an unknown relay agent is refused", func(t *testing.T) {
		_, err := e.svc.Create(ctx, e.admin, TargetInput{Name: "x", Addresses: []string{"10.0.0.9"}, Connection: ssh("nope")})
		wantProblem(t, err, problem.KindInvalid, "connection.via")
	})
	t.Run("a name already taken is a conflict", func(t *testing.T) {
		_, err := e.svc.Create(ctx, e.admin, TargetInput{Name: "web-1", Addresses: []string{"10.0.0.9"}, Connection: ssh("relay-1")})
		wantProblem(t, err, problem.KindConflict, "name")
		_, err = e.svc.Create(ctx, e.admin, TargetInput{Name: "relay-1", Addresses: []string{"10.0.0.9"}, Connection: ssh("relay-1")})
		wantProblem(t, err, problem.KindConflict, "name")
	})
	t.Run("an update with a stale revision is refused", func(t *testing.T) {
		owner := "team-web"
		stale := web.Revision
		got, err := e.svc.Update(ctx, e.admin, "web-1", TargetPatch{Owner: &owner})
		if err != nil || got.Owner != owner || got.Revision <= stale || got.Tags["env"] != "prod" {
			t.Fatalf("update = %+v, %v", got, err)
		}
		notes := "x"
		_, err = e.svc.Update(ctx, e.admin, "web-1", TargetPatch{Notes: &notes, Revision: &stale})
		wantProblem(t, err, problem.KindConflict, "revision")
	})
	t.Run("a deleted target is gone", func(t *testing.T) {
		tmp := e.create(t, "tmp-1", nil)
		if _, err := e.svc.Delete(ctx, e.admin, "tmp-1"); err != nil {
			t.Fatal(err)
		}
		_, err := e.svc.Get(ctx, tmp.ID)
		wantProblem(t, err, problem.KindNotFound, "")
	})
}

func TestAgentsAppearAsTargets(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	t.Run("an enrolled agent is a target with its facts and status", func(t *testing.T) {
		tg, err := e.svc.Get(ctx, "relay-1")
		if err != nil {
			t.Fatal(err)
		}
		if tg.ID != "agt_relay" || tg.Connection.Type != ConnAgent || tg.Status.Agent != "up" || tg.Facts["os"] != "linux" ||
			tg.Tags["role"] != "relay" || !slices.Equal(tg.Addresses, []string{"10.0.0.2"}) {
			t.Fatalf("agent target = %+v", tg)
		}
	})
	t.Run("a newly enrolled agent is listed at once", func(t *testing.T) {
		e.agents.add(AgentInfo{ID: "agt_new", Name: "db-7", Status: "enrolled", Facts: AgentFacts{OS: "freebsd"}})
		page, err := e.svc.List(ctx, e.admin, Query{Connection: ConnAgent})
		if err != nil || !slices.Equal(names(page.Items), []string{"db-7", "relay-1"}) {
			t.Fatalf("agents' targets = %v, %v", names(page.Items), err)
		}
	})
	t.Run("operators annotate an agent's target; its facts stay the agent's", func(t *testing.T) {
		tags := map[string]string{"env": "prod"}
		groups := []string{"db"}
		owner := "dba"
		got, err := e.svc.Update(ctx, e.admin, "db-7", TargetPatch{Tags: &tags, Groups: &groups, Owner: &owner})
		if err != nil {
			t.Fatal(err)
		}
		if got.Tags["env"] != "prod" || !slices.Equal(got.Groups, []string{"db"}) || got.Owner != "dba" || got.Facts["os"] != "freebsd" {
			t.Fatalf("annotated = %+v", got)
		}
		page, err := e.svc.List(ctx, e.admin, Query{Tags: map[string]string{"env": "prod"}})
		if err != nil || !slices.Equal(names(page.Items), []string{"db-7"}) {
			t.Fatalf("env=prod = %v, %v", names(page.Items), err)
		}
		name := "renamed"
		_, err = e.svc.Update(ctx, e.admin, "db-7", TargetPatch{Name: &name})
		wantProblem(t, err, problem.KindInvalid, "name")
	})
	t.Run("a revoked agent's target says revoked and cannot be deleted", func(t *testing.T) {
		e.agents.add(AgentInfo{ID: "agt_new", Name: "db-7", Status: "revoked"})
		got, err := e.svc.Get(ctx, "agt_new")
		if err != nil || got.Status.Agent != "revoked" || got.Owner != "dba" {
			t.Fatalf("revoked = %+v, %v", got, err)
		}
		_, err = e.svc.Delete(ctx, e.admin, "db-7")
		wantProblem(t, err, problem.KindConflict, "")
	})
	t.Run("a run outcome is kept on an agent's target", func(t *testing.T) {
		at := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
		if err := e.svc.RecordRun(ctx, "relay-1", RunOutcome{RunID: "run_1", Outcome: "succeeded", At: at}); err != nil {
			t.Fatal(err)
		}
		if err := e.svc.RecordRun(ctx, "relay-1", RunOutcome{RunID: "run_0", Outcome: "failed", At: at.Add(-time.Hour)}); err != nil {
			t.Fatal(err)
		}
		got, _ := e.svc.Get(ctx, "relay-1")
		if got.Status.LastRun == nil || got.Status.LastRun.RunID != "run_1" {
			t.Fatalf("last run = %+v, want run_1 (the later one)", got.Status.LastRun)
		}
	})
}

// TestListMatchesBruteForce pages through randomly tagged targets with
// every filter and order and compares each full walk with a plain filter
// and sort of everything.
func TestListMatchesBruteForce(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 7))
	envs, roles := []string{"prod", "staging", "dev"}, []string{"web", "db", "cache"}
	var rows []TargetInput
	for i := range 300 {
		in := TargetInput{Name: fmt.Sprintf("host-%03d", rng.IntN(1000)*1000+i), Addresses: []string{fmt.Sprintf("10.1.%d.%d", i/250, i%250+1)},
			Connection: ssh("relay-1"), Tags: map[string]string{"env": envs[rng.IntN(3)], "role": roles[rng.IntN(3)]}}
		if rng.IntN(4) == 0 {
			in.Groups = []string{"pets"}
		}
		if rng.IntN(5) == 0 {
			in.Notes = "needle in here"
		}
		rows = append(rows, in)
	}
	if _, err := e.svc.Import(ctx, e.admin, rows, ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.CreateGroup(ctx, e.admin, GroupInput{Name: "prod-web", Kind: GroupDynamic, Selector: "env=prod,role=web"}); err != nil {
		t.Fatal(err)
	}
	all := map[string]Target{}
	if err := e.svc.Each(ctx, e.admin, Query{}, func(t Target) error { all[t.ID] = t; return nil }); err != nil {
		t.Fatal(err)
	}
	if len(all) != 301 { // and the relay agent
		t.Fatalf("%d targets, want 301", len(all))
	}
	queries := []Query{
		{},
		{Tags: map[string]string{"env": "prod"}},
		{Tags: map[string]string{"env": "prod", "role": "db"}},
		{Group: "pets"},
		{Group: "prod-web"},
		{Selector: "role in (web,cache),env!=dev"},
		{Q: "needle"},
		{Connection: ConnSSH},
		{Connection: ConnAgent},
		{Tags: map[string]string{"env": "staging"}, Group: "pets"},
	}
	for _, q := range queries {
		for _, order := range []string{SortName, SortNameDesc, SortUpdated, SortUpdatedDesc} {
			for _, limit := range []int{1, 7, 1000} {
				q := q
				q.Sort, q.Limit = order, limit
				t.Run(fmt.Sprintf("%+v", q), func(t *testing.T) {
					var got []string
					for pages := 0; ; pages++ {
						page, err := e.svc.List(ctx, e.admin, q)
						if err != nil {
							t.Fatal(err)
						}
						if len(page.Items) > limit || pages > 400 {
							t.Fatalf("page of %d, limit %d (page %d)", len(page.Items), limit, pages)
						}
						for _, it := range page.Items {
							got = append(got, it.ID)
						}
						if page.Next == "" {
							break
						}
						q.Cursor = page.Next
					}
					want := bruteForce(t, e, all, q)
					if !slices.Equal(got, want) {
						t.Fatalf("got %d targets, want %d\n got %v\nwant %v", len(got), len(want), got, want)
					}
				})
			}
		}
	}
}

func bruteForce(t *testing.T, e *env, all map[string]Target, q Query) []string {
	t.Helper()
	v, err := e.svc.view(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.compile(Query{Tags: q.Tags, Group: q.Group, Selector: q.Selector, Q: q.Q, Connection: q.Connection})
	if err != nil {
		t.Fatal(err)
	}
	var ts []*Target
	for _, tg := range all {
		tg := tg
		if c.match(v, &tg) {
			ts = append(ts, &tg)
		}
	}
	sortTargets(ts, q.Sort)
	out := make([]string, len(ts))
	for i, tg := range ts {
		out[i] = tg.ID
	}
	return out
}

func TestGroups(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a := e.create(t, "a", map[string]string{"env": "prod"})
	e.create(t, "b", map[string]string{"env": "staging"})
	members := func(t *testing.T, group string) []string {
		t.Helper()
		page, err := e.svc.Members(ctx, e.admin, group, Query{})
		if err != nil {
			t.Fatal(err)
		}
		return names(page.Items)
	}
	t.Run("dynamic groups follow tag changes at once", func(t *testing.T) {
		if _, err := e.svc.CreateGroup(ctx, e.admin, GroupInput{Name: "prod", Kind: GroupDynamic, Selector: "env=prod"}); err != nil {
			t.Fatal(err)
		}
		if got := members(t, "prod"); !slices.Equal(got, []string{"a"}) {
			t.Fatalf("members = %v", got)
		}
		tags := map[string]string{"env": "prod"}
		if _, err := e.svc.Update(ctx, e.admin, "b", TargetPatch{Tags: &tags}); err != nil {
			t.Fatal(err)
		}
		if got := members(t, "prod"); !slices.Equal(got, []string{"a", "b"}) {
			t.Fatalf("after tagging b: members = %v", got)
		}
		staging := map[string]string{"env": "staging"}
		if _, err := e.svc.Update(ctx, e.admin, "a", TargetPatch{Tags: &staging}); err != nil {
			t.Fatal(err)
		}
		if got := members(t, "prod"); !slices.Equal(got, []string{"b"}) {
			t.Fatalf("after retagging a: members = %v", got)
		}
		got, _ := e.svc.Get(ctx, "b")
		if !slices.Equal(got.DynamicGroups, []string{"prod"}) || !slices.Equal(e.svc.GroupsOf(got), []string{"prod"}) {
			t.Fatalf("b's groups: dynamic %v, GroupsOf %v", got.DynamicGroups, e.svc.GroupsOf(got))
		}
	})
	t.Run("a bad selector names its position", func(t *testing.T) {
		_, err := e.svc.CreateGroup(ctx, e.admin, GroupInput{Name: "bad", Kind: GroupDynamic, Selector: "env in (a"})
		p := wantProblem(t, err, problem.KindInvalid, "selector")
		if !strings.Contains(p.Message, "position 9") {
			t.Fatalf("message %q does not name the position", p.Message)
		}
	})
	t.Run("a static group's members are set by name, ID or agent", func(t *testing.T) {
		list := []string{"a", a.ID, "relay-1"}
		if _, err := e.svc.CreateGroup(ctx, e.admin, GroupInput{Name: "pets", Kind: GroupStatic, Members: &list}); err != nil {
			t.Fatal(err)
		}
		if got := members(t, "pets"); !slices.Equal(got, []string{"a", "relay-1"}) {
			t.Fatalf("members = %v", got)
		}
		only := []string{"relay-1"}
		if _, err := e.svc.UpdateGroup(ctx, e.admin, "pets", GroupInput{Kind: GroupStatic, Members: &only}); err != nil {
			t.Fatal(err)
		}
		if got := members(t, "pets"); !slices.Equal(got, []string{"relay-1"}) {
			t.Fatalf("members = %v", got)
		}
	})
	t.Run("a target cannot be listed in a dynamic group", func(t *testing.T) {
		groups := []string{"prod"}
		_, err := e.svc.Update(ctx, e.admin, "a", TargetPatch{Groups: &groups})
		wantProblem(t, err, problem.KindInvalid, "groups[0]")
	})
	t.Run("deleting a group leaves its members without it", func(t *testing.T) {
		if _, err := e.svc.DeleteGroup(ctx, e.admin, "pets"); err != nil {
			t.Fatal(err)
		}
		got, _ := e.svc.Get(ctx, "relay-1")
		if len(got.Groups) != 0 {
			t.Fatalf("relay-1 groups = %v", got.Groups)
		}
		_, err := e.svc.Members(ctx, e.admin, "pets", Query{})
		wantProblem(t, err, problem.KindNotFound, "")
	})
}

func TestScopedAccess(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.create(t, "prod-1", map[string]string{"env": "prod"}, "web")
	e.create(t, "stage-1", map[string]string{"env": "staging"}, "web")
	e.create(t, "stage-2", map[string]string{"env": "staging"})
	staging := &identity.Scope{Tags: map[string]string{"env": "staging"}}
	op := e.user(t, "stager", identity.Binding{Role: "operator", Scope: staging})

	t.Run("a scoped operator lists only targets in scope", func(t *testing.T) {
		page, err := e.svc.List(ctx, op, Query{})
		if err != nil || !slices.Equal(names(page.Items), []string{"stage-1", "stage-2"}) {
			t.Fatalf("list = %v, %v", names(page.Items), err)
		}
	})
	t.Run("a target out of scope is not found rather than forbidden", func(t *testing.T) {
		_, err := e.svc.GetFor(ctx, op, "prod-1")
		wantProblem(t, err, problem.KindNotFound, "")
		_, err = e.svc.Delete(ctx, op, "prod-1")
		wantProblem(t, err, problem.KindNotFound, "")
	})
	t.Run("group members and export hold only targets in scope", func(t *testing.T) {
		page, err := e.svc.Members(ctx, op, "web", Query{})
		if err != nil || !slices.Equal(names(page.Items), []string{"stage-1"}) {
			t.Fatalf("members = %v, %v", names(page.Items), err)
		}
		var buf bytes.Buffer
		ex, _ := NewExporter(&buf, FormatCSV)
		if err := e.svc.Each(ctx, op, Query{}, ex.Write); err != nil {
			t.Fatal(err)
		}
		_ = ex.Close()
		if strings.Contains(buf.String(), "prod-1") || !strings.Contains(buf.String(), "stage-2") {
			t.Fatalf("export:\n%s", buf.String())
		}
	})
	t.Run("a scoped writer cannot create or move a target out of scope", func(t *testing.T) {
		_, err := e.svc.Create(ctx, op, TargetInput{Name: "sneaky", Addresses: []string{"10.9.9.9"}, Connection: ssh("relay-1"),
			Tags: map[string]string{"env": "prod"}})
		wantProblem(t, err, problem.KindForbidden, "tags")
		prod := map[string]string{"env": "prod"}
		_, err = e.svc.Update(ctx, op, "stage-1", TargetPatch{Tags: &prod})
		wantProblem(t, err, problem.KindForbidden, "tags")
		if _, err := e.svc.Create(ctx, op, TargetInput{Name: "fine", Addresses: []string{"10.9.9.8"}, Connection: ssh("relay-1"),
			Tags: map[string]string{"env": "staging"}}); err != nil {
			t.Fatalf("create in scope: %v", err)
		}
	})
	t.Run("a scoped writer cannot change groups", func(t *testing.T) {
		_, err := e.svc.CreateGroup(ctx, op, GroupInput{Name: "mine", Kind: GroupDynamic, Selector: "env=prod"})
		wantProblem(t, err, problem.KindForbidden, "")
	})
	t.Run("Allowed and Resolve honour the scope for running on targets", func(t *testing.T) {
		prod, _ := e.svc.Get(ctx, "prod-1")
		stage, _ := e.svc.Get(ctx, "stage-1")
		if e.svc.Allowed(op, identity.PermJobsRun, prod) || !e.svc.Allowed(op, identity.PermJobsRun, stage) {
			t.Fatal("Allowed disagrees with the env=staging scope")
		}
		got, err := e.svc.Resolve(ctx, op, identity.PermJobsRun, ResolveSpec{Group: "web"})
		if err != nil || !slices.Equal(names(got), []string{"stage-1"}) {
			t.Fatalf("Resolve(group web) = %v, %v", names(got), err)
		}
		_, err = e.svc.Resolve(ctx, op, identity.PermJobsRun, ResolveSpec{Names: []string{"stage-1", "prod-1"}})
		wantProblem(t, err, problem.KindNotFound, "names[1]")
	})
	t.Run("a scope by group covers the group's members", func(t *testing.T) {
		webOnly := e.user(t, "webby", identity.Binding{Role: "viewer", Scope: &identity.Scope{Groups: []string{"web"}}})
		page, err := e.svc.List(ctx, webOnly, Query{})
		if err != nil || !slices.Equal(names(page.Items), []string{"prod-1", "stage-1"}) {
			t.Fatalf("list = %v, %v", names(page.Items), err)
		}
	})
}

func TestImportCSV(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.svc.CreateGroup(ctx, e.admin, GroupInput{Name: "dyn", Kind: GroupDynamic, Selector: "env=prod"}); err != nil {
		t.Fatal(err)
	}
	e.create(t, "exists", nil)
	const csvFile = `name,address,connection,via,port,username,tags,groups,owner,notes
ok-1,10.0.0.1,ssh,relay-1,22,root,env=prod;role=web,web,team,first
ok-2,10.0.0.2;ok-2.example.net,ssh,relay-1,,,env=prod,,,
bad-addr,not a host!,ssh,relay-1,,,,,,
bad-port,10.0.0.4,ssh,relay-1,eighty,,,,,
bad-via,10.0.0.5,ssh,ghost,,,,,,
bad-tag,10.0.0.6,ssh,relay-1,,,env,,,
ok-1,10.0.0.7,ssh,relay-1,,,,,,
exists,10.0.0.8,ssh,relay-1,,,,,,
dyn-member,10.0.0.9,ssh,relay-1,,,,dyn,,
`
	decode := func(t *testing.T) []ImportRow {
		rows, err := DecodeCSV(strings.NewReader(csvFile))
		if err != nil {
			t.Fatal(err)
		}
		return rows
	}
	wantErrors := map[int]string{3: "addresses", 4: "port", 5: "via", 6: "tags", 7: "name", 8: "name", 9: "groups"}
	t.Run("a dry run names the row and column of every error and writes nothing", func(t *testing.T) {
		before := e.applier.Index()
		rep, err := e.svc.ImportRows(ctx, e.admin, decode(t), ImportOptions{DryRun: true}, true)
		if err != nil {
			t.Fatal(err)
		}
		if e.applier.Index() != before {
			t.Fatalf("a dry run applied %d entries", e.applier.Index()-before)
		}
		if rep.Rows != 9 || rep.Valid != 2 || rep.Invalid != 7 || rep.Written {
			t.Fatalf("report %+v", rep)
		}
		got := map[int]string{}
		for _, re := range rep.Errors {
			got[re.Row] = re.Field
		}
		for row, col := range wantErrors {
			if got[row] != col {
				t.Errorf("row %d: error on %q, want %q (%+v)", row, got[row], col, rep.Errors)
			}
		}
	})
	t.Run("an import with bad rows writes nothing and answers every row's field", func(t *testing.T) {
		before := e.applier.Index()
		_, err := e.svc.ImportRows(ctx, e.admin, decode(t), ImportOptions{}, true)
		p := wantProblem(t, err, problem.KindInvalid, "rows[3].addresses")
		if len(p.Details) != 7 || p.Details[1].Field != "rows[4].port" {
			t.Fatalf("details %+v", p.Details)
		}
		if e.applier.Index() != before {
			t.Fatal("a refused import wrote")
		}
	})
	t.Run("a partial import writes the valid rows and lists the rest", func(t *testing.T) {
		rep, err := e.svc.ImportRows(ctx, e.admin, decode(t), ImportOptions{Partial: true}, true)
		if err != nil || rep.Created != 2 || rep.Invalid != 7 || !rep.Written {
			t.Fatalf("report %+v, %v", rep, err)
		}
		got, err := e.svc.Get(ctx, "ok-2")
		if err != nil || !slices.Equal(got.Addresses, []string{"10.0.0.2", "ok-2.example.net"}) {
			t.Fatalf("ok-2 = %+v, %v", got, err)
		}
		one, _ := e.svc.Get(ctx, "ok-1")
		if one.Connection.Port != 22 || one.Connection.Username != "root" || one.Tags["role"] != "web" || !one.InGroup("web") || one.Notes != "first" {
			t.Fatalf("ok-1 = %+v", one)
		}
	})
	t.Run("upsert replaces a known name in place", func(t *testing.T) {
		old, _ := e.svc.Get(ctx, "exists")
		rep, err := e.svc.Import(ctx, e.admin, []TargetInput{{Name: "exists", Addresses: []string{"10.7.7.7"}, Connection: ssh("relay-1")}},
			ImportOptions{Mode: ImportUpsert})
		if err != nil || rep.Updated != 1 {
			t.Fatalf("report %+v, %v", rep, err)
		}
		got, _ := e.svc.Get(ctx, "exists")
		if got.ID != old.ID || got.Addresses[0] != "10.7.7.7" {
			t.Fatalf("upserted %+v", got)
		}
	})
	t.Run("an export imports back to the same targets", func(t *testing.T) {
		for _, format := range []string{FormatCSV, FormatJSON} {
			var buf bytes.Buffer
			ex, err := NewExporter(&buf, format)
			if err != nil {
				t.Fatal(err)
			}
			if err := e.svc.Each(ctx, e.admin, Query{}, ex.Write); err != nil {
				t.Fatal(err)
			}
			if err := ex.Close(); err != nil {
				t.Fatal(err)
			}
			var rows []ImportRow
			if format == FormatCSV {
				rows, err = DecodeCSV(&buf)
			} else {
				rows, err = DecodeJSON(&buf)
			}
			if err != nil {
				t.Fatalf("%s: %v\n%s", format, err, buf.String())
			}
			rep, err := e.svc.ImportRows(ctx, e.admin, rows, ImportOptions{Mode: ImportUpsert, DryRun: true}, format == FormatCSV)
			if err != nil || rep.Invalid != 0 || rep.Rows != 3 {
				t.Fatalf("%s round trip: %+v, %v", format, rep, err)
			}
		}
	})
}

func TestDecodeJSON(t *testing.T) {
	tests := []struct {
		name, body string
		rows       int
		rowErr     string // field of row 1's error
		fatal      bool
	}{
		{name: "an array of targets decodes", body: `[{"name":"a","addresses":["10.0.0.1"],"connection":{"type":"ssh","via":"r"}}]`, rows: 1},
		{name: "an unknown field is the row's problem", body: `[{"name":"a","colour":"red"}]`, rows: 1, rowErr: "colour"},
		{name: "a mistyped field is the row's problem", body: `[{"name":"a","addresses":"10.0.0.1"}]`, rows: 1, rowErr: "addresses"},
		{name: "a non-object element is the row's problem", body: `[42]`, rows: 1, rowErr: "-"},
		{name: "an object instead of an array is refused", body: `{"name":"a"}`, fatal: true},
		{name: "broken JSON is refused", body: `[{"name":`, fatal: true},
		{name: "trailing data is refused", body: `[] []`, fatal: true},
		{name: "an empty body is refused", body: ``, fatal: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, err := DecodeJSON(strings.NewReader(tt.body))
			if tt.fatal {
				wantProblem(t, err, problem.KindInvalid, "body")
				return
			}
			if err != nil || len(rows) != tt.rows {
				t.Fatalf("rows %d, %v", len(rows), err)
			}
			switch {
			case tt.rowErr == "" && len(rows[0].Errors) != 0:
				t.Fatalf("unexpected row errors %+v", rows[0].Errors)
			case tt.rowErr == "-" && (len(rows[0].Errors) != 1 || rows[0].Errors[0].Field != ""):
				t.Fatalf("row errors %+v, want one for the whole row", rows[0].Errors)
			case tt.rowErr != "" && tt.rowErr != "-" && (len(rows[0].Errors) != 1 || rows[0].Errors[0].Field != tt.rowErr):
				t.Fatalf("row errors %+v, want one on %s", rows[0].Errors, tt.rowErr)
			}
		})
	}
}

func TestDecodeCSVHeader(t *testing.T) {
	tests := []struct{ name, body, field string }{
		{"an empty file is refused", "", "body"},
		{"an unknown column is refused", "name,addresses,colour\n", "header[2]"},
		{"a repeated column is refused", "name,address,addresses\n", "header[2]"},
		{"a file without names is refused", "addresses\n", "header"},
		{"broken quoting names the line", "name,addresses\n\"a,10.0.0.1\n", "body"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeCSV(strings.NewReader(tt.body))
			wantProblem(t, err, problem.KindInvalid, tt.field)
		})
	}
}

func FuzzDecodeCSV(f *testing.F) {
	f.Add("name,address,connection,via,port,username,tags,groups,owner,notes\nok-1,10.0.0.1,ssh,relay-1,22,root,env=prod;role=web,web,team,first\n")
	f.Add("name,addresses\n\"a\"\"b\",x\n,\n")
	f.Add("\ufeffName,Address,tags\na,b,k=v;k=w;x\n")
	f.Add("name,addresses,port\na,b,99999999999999999999\n")
	f.Fuzz(func(t *testing.T, body string) {
		rows, err := DecodeCSV(strings.NewReader(body))
		if err != nil {
			if _, ok := problem.As(err); !ok {
				t.Fatalf("DecodeCSV error %v is not a problem", err)
			}
			return
		}
		for i, r := range rows {
			if r.Row != i+1 {
				t.Fatalf("row %d numbered %d", i+1, r.Row)
			}
			for _, re := range r.Errors {
				if re.Row != r.Row {
					t.Fatalf("row %d's error names row %d", r.Row, re.Row)
				}
			}
			var errs problem.List
			if r.Input.Connection != nil {
				checkInput("", r.Input, &errs)
			}
		}
	})
}

func FuzzDecodeJSON(f *testing.F) {
	f.Add(`[{"name":"a","addresses":["10.0.0.1"],"connection":{"type":"ssh","via":"r","port":22},"tags":{"k":"v"}}]`)
	f.Add(`[{"name":"a","x":1},null,[],"s"]`)
	f.Add(`[`)
	f.Add(`{}`)
	f.Fuzz(func(t *testing.T, body string) {
		rows, err := DecodeJSON(strings.NewReader(body))
		if err != nil {
			if _, ok := problem.As(err); !ok {
				t.Fatalf("DecodeJSON error %v is not a problem", err)
			}
			return
		}
		for i, r := range rows {
			if r.Row != i+1 {
				t.Fatalf("row %d numbered %d", i+1, r.Row)
			}
			var errs problem.List
			if r.Input.Connection != nil {
				checkInput("", r.Input, &errs)
			}
		}
	})
}

// graphTargets lets the relationships resolve the inventory's targets, as
// controller/server's adapter does.
type graphTargets struct{ svc *Service }

func (g graphTargets) Resolve(ctx context.Context, ref string) (graph.Node, error) {
	t, err := g.svc.Get(ctx, ref)
	return graph.Node{ID: t.ID, Name: t.Name}, err
}

func (g graphTargets) Allowed(p *identity.Principal, perm identity.Permission, id string) bool {
	t, err := g.svc.Get(context.Background(), id)
	return err == nil && g.svc.Allowed(p, perm, t)
}

func TestDeletingATargetDropsItsRelationships(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	rels, err := graph.New(graph.Deps{Applier: e.applier, Store: e.store, Targets: graphTargets{e.svc}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	e.create(t, "web-1", nil)
	e.create(t, "db-1", nil)
	edge, err := rels.Create(ctx, e.admin, graph.CreateEdge{From: "web-1", Type: graph.DependsOn, To: "db-1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Delete(ctx, e.admin, "db-1"); err != nil {
		t.Fatal(err)
	}
	_, err = rels.Get(ctx, e.admin, edge.ID)
	wantProblem(t, err, problem.KindNotFound, "")
}

func TestASnapshotRestoresTheInventoryAndItsIndexes(t *testing.T) {
	src := newEnv(t)
	ctx := context.Background()
	src.create(t, "web-1", map[string]string{"env": "prod"}, "web")
	src.create(t, "db-1", map[string]string{"env": "staging"})
	if _, err := src.svc.CreateGroup(ctx, src.admin, GroupInput{Name: "prod", Kind: GroupDynamic, Selector: "env=prod"}); err != nil {
		t.Fatal(err)
	}
	var snap bytes.Buffer
	if err := src.store.WriteSnapshot(src.store.View(), &snap); err != nil {
		t.Fatal(err)
	}
	dst := newEnv(t)
	if err := dst.store.Restore(&snap); err != nil {
		t.Fatal(err)
	}
	for _, q := range []Query{{Tags: map[string]string{"env": "prod"}}, {Group: "web"}, {Group: "prod"}, {Connection: ConnSSH, Sort: SortNameDesc}} {
		want, err := src.svc.List(ctx, src.admin, q)
		if err != nil {
			t.Fatal(err)
		}
		got, err := dst.svc.List(ctx, src.admin, q)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(names(got.Items), names(want.Items)) || len(got.Items) == 0 {
			t.Fatalf("%+v after restore: %v, want %v", q, names(got.Items), names(want.Items))
		}
	}
}

func TestRecordFacts(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	web := e.create(t, "web-1", nil)
	t.Run("an SSH target's facts are stored and selectors read them", func(t *testing.T) {
		if err := e.svc.RecordFacts(ctx, web.ID, map[string]string{"os": "linux", "kernel": "6.1"}); err != nil {
			t.Fatal(err)
		}
		page, err := e.svc.List(ctx, e.admin, Query{Selector: "facts.os=linux"})
		if err != nil || !slices.Equal(names(page.Items), []string{"relay-1", "web-1"}) {
			t.Fatalf("facts.os=linux: %v, %v", names(page.Items), err)
		}
	})
	t.Run("a bad fact name is refused", func(t *testing.T) {
		err := e.svc.RecordFacts(ctx, web.ID, map[string]string{"no spaces": "x"})
		wantProblem(t, err, problem.KindInvalid, "facts.no spaces")
	})
	t.Run("an agent's facts are the agent's", func(t *testing.T) {
		tags := map[string]string{"x": "y"}
		if _, err := e.svc.Update(ctx, e.admin, "relay-1", TargetPatch{Tags: &tags}); err != nil {
			t.Fatal(err)
		}
		err := e.svc.RecordFacts(ctx, "agt_relay", map[string]string{"os": "plan9"})
		wantProblem(t, err, problem.KindInvalid, "id")
	})
	t.Run("import and export are reserved names", func(t *testing.T) {
		_, err := e.svc.Create(ctx, e.admin, TargetInput{Name: "export", Addresses: []string{"10.0.0.1"}, Connection: ssh("relay-1")})
		wantProblem(t, err, problem.KindInvalid, "name")
	})
}

func TestCheckHostKey(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	tofu := e.create(t, "tofu-1", nil)
	pinned, err := e.svc.Create(ctx, e.admin, TargetInput{Name: "pinned-1", Addresses: []string{"10.0.0.5"},
		Connection: &Connection{Type: ConnSSH, Via: "relay-1", HostKeyPolicy: HostKeyPinned, HostKey: "ssh-ed25519 AAAApinned"}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, id, key string
		want          problem.Kind // "" for accepted
	}{
		{"the first key a tofu target shows is recorded", tofu.ID, "ssh-ed25519 AAAAfirst", ""},
		{"the recorded key is accepted again", tofu.ID, "ssh-ed25519 AAAAfirst", ""},
		{"another key is a mismatch", tofu.ID, "ssh-ed25519 AAAAother", problem.KindConflict},
		{"a pinned target accepts its key", pinned.ID, "ssh-ed25519 AAAApinned", ""},
		{"a pinned target refuses any other", pinned.ID, "ssh-ed25519 AAAAfirst", problem.KindConflict},
		{"a malformed key is refused", tofu.ID, "garbage", problem.KindInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.svc.CheckHostKey(ctx, tt.id, tt.key)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantProblem(t, err, tt.want, "")
		})
	}
	got, _ := e.svc.Get(ctx, tofu.ID)
	if got.Connection.HostKey != "ssh-ed25519 AAAAfirst" {
		t.Fatalf("recorded key %q", got.Connection.HostKey)
	}
}

func TestAnUpsertKeepsWhatOthersWrote(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	web := e.create(t, "web-1", nil)
	if err := e.svc.RecordFacts(ctx, web.ID, map[string]string{"os": "linux"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.CheckHostKey(ctx, web.ID, "ssh-ed25519 AAAAlearnt"); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.RecordRun(ctx, web.ID, RunOutcome{RunID: "run_1", Outcome: "succeeded", At: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Import(ctx, e.admin, []TargetInput{{Name: "web-1", Addresses: []string{"10.0.0.7"}, Connection: ssh("relay-1"),
		Tags: map[string]string{"env": "prod"}}}, ImportOptions{Mode: ImportUpsert}); err != nil {
		t.Fatal(err)
	}
	got, _ := e.svc.Get(ctx, "web-1")
	if got.Facts["os"] != "linux" || got.Connection.HostKey != "ssh-ed25519 AAAAlearnt" || got.Status.LastRun == nil ||
		got.Tags["env"] != "prod" || got.Addresses[0] != "10.0.0.7" {
		t.Fatalf("after the upsert: %+v", got)
	}
}
