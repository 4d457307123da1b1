package graph

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/opsconductor/opsconductor/controller/problem"
	"github.com/opsconductor/opsconductor/controller/state"
)

func wantProblem(t *testing.T, err error, kind problem.Kind, field, contains string) {
	t.Helper()
	pr, ok := problem.As(err)
	if !ok {
		t.Fatalf("error = %v, want a %s problem", err, kind)
	}
	if pr.Kind != kind || pr.Field != field || !strings.Contains(pr.Error(), contains) {
		t.Fatalf("problem = %+v, want kind %s, field %q, message containing %q", pr, kind, field, contains)
	}
}

func TestCreateRefusesBadEdgesNamingTheField(t *testing.T) {
	e := newTestEnv(t)
	e.targets.add("web-1")
	db := e.targets.add("db-1")
	e.relate(t, "web-1", DependsOn, "db-1")
	long := strings.Repeat("x", MaxAttrValue+1)
	many := map[string]string{}
	for i := range MaxAttributes + 1 {
		many[fmt.Sprintf("k%d", i)] = "v"
	}
	for _, tc := range []struct {
		name     string
		req      CreateEdge
		kind     problem.Kind
		field    string
		contains string
	}{
		{"a self-edge by name is refused", CreateEdge{From: "web-1", Type: ConnectsTo, To: "web-1"}, problem.KindInvalid, "to", "itself"},
		{"a self-edge by name and ID is refused", CreateEdge{From: "db-1", Type: RunsOn, To: db}, problem.KindInvalid, "to", "itself"},
		{"a camel-case type is refused", CreateEdge{From: "web-1", Type: "dependsOn", To: "db-1"}, problem.KindInvalid, "type", "lower_snake_case"},
		{"a dashed type is refused", CreateEdge{From: "web-1", Type: "backs-up", To: "db-1"}, problem.KindInvalid, "type", "lower_snake_case"},
		{"a type with a leading underscore is refused", CreateEdge{From: "web-1", Type: "_x", To: "db-1"}, problem.KindInvalid, "type", "lower_snake_case"},
		{"a type with a double underscore is refused", CreateEdge{From: "web-1", Type: "backs__up", To: "db-1"}, problem.KindInvalid, "type", "lower_snake_case"},
		{"an over-long type is refused", CreateEdge{From: "web-1", Type: strings.Repeat("a", 64), To: "db-1"}, problem.KindInvalid, "type", "lower_snake_case"},
		{"a missing type is refused", CreateEdge{From: "web-1", To: "db-1"}, problem.KindInvalid, "type", "got \"\""},
		{"a missing from is refused", CreateEdge{Type: DependsOn, To: "db-1"}, problem.KindInvalid, "from", "required"},
		{"an unknown target is refused", CreateEdge{From: "web-1", Type: DependsOn, To: "db-9"}, problem.KindInvalid, "to", `no target "db-9"`},
		{"a duplicate is refused with names", CreateEdge{From: "web-1", Type: DependsOn, To: db}, problem.KindConflict, "", "web-1 depends_on db-1 already exists"},
		{"a bad attribute name is refused", CreateEdge{From: "web-1", Type: ConnectsTo, To: "db-1", Attributes: map[string]string{"a b": "1"}}, problem.KindInvalid, "attributes.a b", "attribute names"},
		{"an over-long attribute value is refused", CreateEdge{From: "web-1", Type: ConnectsTo, To: "db-1", Attributes: map[string]string{"port": long}}, problem.KindInvalid, "attributes.port", "at most"},
		{"too many attributes are refused", CreateEdge{From: "web-1", Type: ConnectsTo, To: "db-1", Attributes: many}, problem.KindInvalid, "attributes", "at most 32"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.applier.Index()
			_, err := e.svc.Create(context.Background(), e.admin, tc.req)
			wantProblem(t, err, tc.kind, tc.field, tc.contains)
			if e.applier.Index() != before {
				t.Fatal("a refused edge reached the log")
			}
		})
	}
	t.Run("a custom type with attributes is accepted", func(t *testing.T) {
		v := e.relate(t, "web-1", "backs_up_to", "db-1", "schedule", "nightly")
		if v.From != "id-web-1" || v.To != db || v.FromName != "web-1" || v.ToName != "db-1" || v.Attributes["schedule"] != "nightly" {
			t.Fatalf("created %+v", v)
		}
		if v.CreatedAt.IsZero() || !v.CreatedAt.Equal(v.UpdatedAt) || v.CreatedBy != "admin" || !strings.HasPrefix(v.ID, "rel_") {
			t.Fatalf("created %+v: want times stamped, creator and a rel_ ID", v)
		}
	})
	t.Run("the same pair may be related by another type", func(t *testing.T) {
		e.relate(t, "web-1", ConnectsTo, "db-1")
	})
}

func TestDependsOnCyclesAreRefusedNamingThePath(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	t.Run("a two-node cycle names both targets", func(t *testing.T) {
		e.targets.add("web-1")
		e.targets.add("db-1")
		e.relate(t, "web-1", DependsOn, "db-1")
		_, err := e.svc.Create(ctx, e.admin, CreateEdge{From: "db-1", Type: DependsOn, To: "web-1"})
		wantProblem(t, err, problem.KindConflict, "to", "db-1 → web-1 → db-1")
	})
	t.Run("a cycle of 200 targets is found and named in full", func(t *testing.T) {
		var names []string
		for i := range 200 {
			names = append(names, e.targets.add(fmt.Sprintf("n%03d", i)))
		}
		for i := 0; i+1 < len(names); i++ {
			e.relate(t, names[i], DependsOn, names[i+1])
		}
		_, err := e.svc.Create(ctx, e.admin, CreateEdge{From: "n199", Type: DependsOn, To: "n000"})
		pr, _ := problem.As(err)
		if pr == nil || pr.Code != codeCycle {
			t.Fatalf("err = %v, want a cycle", err)
		}
		want := "n199 → n000 → n001 → "
		if !strings.Contains(pr.Message, want) || !strings.HasSuffix(pr.Message, "n198 → n199") || strings.Count(pr.Message, "→") != 200 {
			t.Fatalf("message = %q", pr.Message)
		}
	})
	t.Run("edges of other types do not make a depends_on cycle", func(t *testing.T) {
		e.targets.add("vm-1")
		e.targets.add("host-1")
		e.relate(t, "vm-1", RunsOn, "host-1")
		e.relate(t, "host-1", DependsOn, "vm-1")
		e.relate(t, "host-1", ConnectsTo, "vm-1")
	})
	t.Run("a diamond is not a cycle", func(t *testing.T) {
		for _, n := range []string{"a", "b", "c", "d"} {
			e.targets.add(n)
		}
		e.relate(t, "a", DependsOn, "b")
		e.relate(t, "a", DependsOn, "c")
		e.relate(t, "b", DependsOn, "d")
		e.relate(t, "c", DependsOn, "d")
	})
}

// Both commands of one entry pass the service's check (neither edge is
// committed yet); Apply must refuse the second against the first.
func TestApplyRefusesACycleTheServiceCouldNotSee(t *testing.T) {
	e := newTestEnv(t)
	a, b, c := e.targets.add("a"), e.targets.add("b"), e.targets.add("c")
	e.relate(t, "b", DependsOn, "c")
	var cmds []state.Command
	for i, pair := range [][2]string{{a, b}, {c, a}} {
		cmd, err := state.NewCommand(cmdCreate, 1, createPayload{Edge: Edge{ID: fmt.Sprintf("rel_%d", i), From: pair[0], To: pair[1], Type: DependsOn}})
		if err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	res, err := e.applier.Apply(context.Background(), cmds...)
	if err != nil {
		t.Fatal(err)
	}
	if err := res[0].Decode(nil); err != nil {
		t.Fatalf("first edge: %v", err)
	}
	err = res[1].Decode(nil)
	wantProblem(t, err, problem.KindConflict, "to", "id-c → id-a → id-b → id-c")
	// The service restates Apply's IDs as names.
	err = e.svc.explain(context.Background(), err, Edge{From: c, To: a, Type: DependsOn})
	wantProblem(t, err, problem.KindConflict, "to", "c → a → b → c")
}

func TestConcurrentRequestsCannotBothCloseACycle(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	const pairs = 20
	for i := range pairs {
		e.targets.add(fmt.Sprintf("x%d", i))
		e.targets.add(fmt.Sprintf("y%d", i))
	}
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		errs  = make([][2]error, pairs)
	)
	for i := range pairs {
		for j, req := range []CreateEdge{
			{From: fmt.Sprintf("x%d", i), Type: DependsOn, To: fmt.Sprintf("y%d", i)},
			{From: fmt.Sprintf("y%d", i), Type: DependsOn, To: fmt.Sprintf("x%d", i)},
		} {
			wg.Go(func() {
				<-start
				_, errs[i][j] = e.svc.Create(ctx, e.admin, req)
			})
		}
	}
	close(start)
	wg.Wait()
	for i, pe := range errs {
		ok := 0
		for _, err := range pe {
			if err == nil {
				ok++
			} else if pr, _ := problem.As(err); pr == nil || pr.Code != codeCycle {
				t.Fatalf("pair %d: %v, want a cycle refusal", i, err)
			}
		}
		if ok != 1 {
			t.Fatalf("pair %d: %d of 2 opposite edges were created (%v), want exactly 1", i, ok, pe)
		}
	}
	page, err := e.svc.List(ctx, e.admin, Filter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != pairs {
		t.Fatalf("%d edges stored, want %d", len(page.Items), pairs)
	}
}

func TestRemovingATargetRemovesItsEdges(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	for _, n := range []string{"web-1", "db-1", "lb-1", "web-10"} {
		e.targets.add(n)
	}
	e.relate(t, "web-1", DependsOn, "db-1")
	e.relate(t, "lb-1", ConnectsTo, "web-1")
	kept := e.relate(t, "web-10", DependsOn, "db-1")

	cmd, err := state.NewCommand("test.remove_target", 1, struct{ ID string }{"id-web-1"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.applier.Apply(ctx, cmd)
	if err != nil || res[0].Decode(nil) != nil {
		t.Fatalf("remove target: %v %v", err, res)
	}
	e.targets.remove("id-web-1")

	page, err := e.svc.List(ctx, e.admin, Filter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 1 || page.Items[0].ID != kept.ID {
		t.Fatalf("edges left: %+v, want only %s", page.Items, kept.ID)
	}
}

func TestCreateRefusesAnEndpointDeletedBeforeApply(t *testing.T) {
	e := newTestEnv(t)
	e.targets.add("a")
	e.targets.add("b")
	cmd, err := state.NewCommand(cmdCreate, 1, createPayload{Edge: Edge{ID: "rel_1", From: "id-a", To: "id-gone", Type: ConnectsTo}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.applier.Apply(context.Background(), cmd)
	if err != nil {
		t.Fatal(err)
	}
	wantProblem(t, res[0].Decode(nil), problem.KindNotFound, "", `target "id-gone" not found`)
}

func TestUpdatePatchesAttributes(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	e.targets.add("web-1")
	e.targets.add("db-1")
	v := e.relate(t, "web-1", ConnectsTo, "db-1", "port", "5432", "proto", "tcp")
	s := func(v string) *string { return &v }

	got, err := e.svc.Update(ctx, e.admin, v.ID, Patch{Attributes: map[string]*string{"port": s("6432"), "proto": nil, "tls": s("on")}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Attributes) != 2 || got.Attributes["port"] != "6432" || got.Attributes["tls"] != "on" || got.FromName != "web-1" {
		t.Fatalf("after patch: %+v", got)
	}
	t.Run("a bad attribute leaves the edge as it was", func(t *testing.T) {
		_, err := e.svc.Update(ctx, e.admin, v.ID, Patch{Attributes: map[string]*string{"port": s("1"), "bad key": s("x")}})
		wantProblem(t, err, problem.KindInvalid, "attributes.bad key", "attribute names")
		now, _ := e.svc.Get(ctx, e.admin, v.ID)
		if now.Attributes["port"] != "6432" {
			t.Fatalf("port = %q after a refused patch", now.Attributes["port"])
		}
	})
	t.Run("a patch past the attribute bound is refused by Apply", func(t *testing.T) {
		many := map[string]*string{}
		for i := range MaxAttributes - 1 {
			many[fmt.Sprintf("k%d", i)] = s("v")
		}
		_, err := e.svc.Update(ctx, e.admin, v.ID, Patch{Attributes: many})
		wantProblem(t, err, problem.KindInvalid, "attributes", "at most 32")
	})
	t.Run("a patch without attributes is refused", func(t *testing.T) {
		_, err := e.svc.Update(ctx, e.admin, v.ID, Patch{})
		wantProblem(t, err, problem.KindInvalid, "attributes", "required")
	})
	t.Run("an unknown edge is not found", func(t *testing.T) {
		_, err := e.svc.Update(ctx, e.admin, "rel_nope", Patch{Attributes: map[string]*string{"a": s("b")}})
		wantProblem(t, err, problem.KindNotFound, "", "rel_nope")
	})
}

func TestListFiltersAndPages(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	for _, n := range []string{"app", "db", "cache", "host", "app2"} {
		e.targets.add(n)
	}
	e.relate(t, "app", DependsOn, "db")
	e.relate(t, "app", DependsOn, "cache")
	e.relate(t, "app", RunsOn, "host")
	e.relate(t, "db", RunsOn, "host")
	e.relate(t, "app2", DependsOn, "db")

	count := func(f Filter) int {
		t.Helper()
		f.Limit = 100
		page, err := e.svc.List(ctx, e.admin, f)
		if err != nil {
			t.Fatal(err)
		}
		return len(page.Items)
	}
	for _, tc := range []struct {
		name string
		f    Filter
		want int
	}{
		{"everything", Filter{}, 5},
		{"from one target", Filter{From: "app"}, 3},
		{"from one target by type", Filter{From: "app", Type: DependsOn}, 2},
		{"to one target", Filter{To: "host"}, 2},
		{"between two targets", Filter{From: "app", To: "db"}, 1},
		{"of one type", Filter{Type: RunsOn}, 2},
		{"of a type nobody uses", Filter{Type: "backs_up_to"}, 0},
		{"from a target whose name prefixes another's", Filter{From: "app2"}, 1},
	} {
		t.Run("lists edges "+tc.name, func(t *testing.T) {
			if got := count(tc.f); got != tc.want {
				t.Fatalf("%d edges, want %d", got, tc.want)
			}
		})
	}
	t.Run("pages of two cover every edge once", func(t *testing.T) {
		for _, f := range []Filter{{}, {From: "app"}} {
			seen := map[string]bool{}
			f.Limit = 2
			for {
				page, err := e.svc.List(ctx, e.admin, f)
				if err != nil {
					t.Fatal(err)
				}
				for _, it := range page.Items {
					if seen[it.ID] {
						t.Fatalf("%s listed twice", it.ID)
					}
					seen[it.ID] = true
				}
				if page.Next == "" {
					break
				}
				f.After = page.Next
			}
			if want := count(Filter{From: f.From}); len(seen) != want {
				t.Fatalf("paged through %d edges, want %d", len(seen), want)
			}
		}
	})
	t.Run("an unknown filter target is invalid", func(t *testing.T) {
		_, err := e.svc.List(ctx, e.admin, Filter{From: "nope", Limit: 10})
		wantProblem(t, err, problem.KindInvalid, "from", "nope")
	})
}

func TestDeleteRemovesOneEdge(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	e.targets.add("a")
	e.targets.add("b")
	v := e.relate(t, "a", DependsOn, "b")
	if _, err := e.svc.Delete(ctx, e.admin, v.ID); err != nil {
		t.Fatal(err)
	}
	_, err := e.svc.Get(ctx, e.admin, v.ID)
	wantProblem(t, err, problem.KindNotFound, "", v.ID)
	_, err = e.svc.Delete(ctx, e.admin, v.ID)
	wantProblem(t, err, problem.KindNotFound, "", v.ID)
	// With the edge gone the opposite one no longer makes a cycle.
	e.relate(t, "b", DependsOn, "a")
}

func TestListEndsAPageShortRatherThanScanTheWholeTable(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	e.targets.add("p1", "env", "prod")
	e.targets.add("p2", "env", "prod")
	e.targets.add("s1", "env", "staging")
	e.targets.add("s2", "env", "staging")
	// scanBudget+50 prod edges first (by ID), then five staging ones.
	var edges []Edge
	for i := range scanBudget + 50 {
		edges = append(edges, Edge{ID: fmt.Sprintf("rel_a%06d", i), From: "id-p1", To: "id-p2", Type: fmt.Sprintf("t%d", i)})
	}
	for i := range 5 {
		edges = append(edges, Edge{ID: fmt.Sprintf("rel_b%06d", i), From: "id-s1", To: "id-s2", Type: fmt.Sprintf("t%d", i)})
	}
	cmd, err := state.NewCommand("test.bulk_edges", 1, edges)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := e.applier.Apply(ctx, cmd); err != nil || res[0].Decode(nil) != nil {
		t.Fatal(err, res)
	}
	f := Filter{Limit: 100}
	first, err := e.svc.List(ctx, e.staging, f)
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Items) != 0 || first.Next != fmt.Sprintf("rel_a%06d", scanBudget-1) {
		t.Fatalf("first page: %d items, next %q; want none and a cursor at the budget", len(first.Items), first.Next)
	}
	f.After = first.Next
	second, err := e.svc.List(ctx, e.staging, f)
	if err != nil {
		t.Fatal(err)
	}
	if len(second.Items) != 5 || second.Next != "" {
		t.Fatalf("second page: %d items, next %q; want the 5 staging edges and the end", len(second.Items), second.Next)
	}
}

func TestTheControllerItselfMayRelateTargets(t *testing.T) {
	e := newTestEnv(t)
	e.targets.add("a")
	e.targets.add("b")
	v, err := e.svc.Create(context.Background(), nil, CreateEdge{From: "a", Type: MemberOf, To: "b"})
	if err != nil {
		t.Fatal(err)
	}
	if v.CreatedBy != "controller" || v.UpdatedBy != "controller" {
		t.Fatalf("created by %q, updated by %q", v.CreatedBy, v.UpdatedBy)
	}
}
