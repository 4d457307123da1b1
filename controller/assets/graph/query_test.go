package graph

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/opsconductor/opsconductor/controller/problem"
)

// names lists a graph's nodes as name@depth, in the answer's order.
func names(g Graph) []string {
	var out []string
	for _, n := range g.Nodes {
		out = append(out, fmt.Sprintf("%s@%d", n.Name, n.Depth))
	}
	return out
}

// A small service map:
//
//	lb → web-1, web-2 (connects_to); web-1, web-2 depends_on api;
//	api depends_on db; db runs_on host; api runs_on host
func serviceMap(t *testing.T) *testEnv {
	e := newTestEnv(t)
	for _, n := range []string{"lb", "web-1", "web-2", "api", "db", "host"} {
		e.targets.add(n)
	}
	e.relate(t, "lb", ConnectsTo, "web-1")
	e.relate(t, "lb", ConnectsTo, "web-2")
	e.relate(t, "web-1", DependsOn, "api")
	e.relate(t, "web-2", DependsOn, "api")
	e.relate(t, "api", DependsOn, "db")
	e.relate(t, "db", RunsOn, "host")
	e.relate(t, "api", RunsOn, "host")
	return e
}

func TestGraphQueries(t *testing.T) {
	e := serviceMap(t)
	for _, tc := range []struct {
		name      string
		root      string
		q         Query
		wantNodes []string
		wantEdges int
	}{
		// db runs_on host joins two neighbours: drawn, though one hop out.
		{"neighbours default to one hop both ways", "api", Query{},
			[]string{"api@0", "db@1", "host@1", "web-1@1", "web-2@1"}, 5},
		{"neighbours filtered by type", "api", Query{Types: []string{RunsOn}},
			[]string{"api@0", "host@1"}, 1},
		{"impact follows depends_on and runs_on backwards", "host", Query{Direction: Dependents},
			[]string{"host@0", "api@1", "db@1", "web-1@2", "web-2@2"}, 5},
		// api depends_on db joins the two targets one hop out.
		{"impact stops at the depth asked", "host", Query{Direction: Dependents, Depth: 1},
			[]string{"host@0", "api@1", "db@1"}, 3},
		{"impact does not follow connects_to", "web-1", Query{Direction: Dependents},
			[]string{"web-1@0"}, 0},
		{"dependencies follow depends_on and runs_on forwards", "web-1", Query{Direction: Dependencies},
			[]string{"web-1@0", "api@1", "db@2", "host@2"}, 4},
		{"dependencies of one type only", "web-1", Query{Direction: Dependencies, Types: []string{DependsOn}},
			[]string{"web-1@0", "api@1", "db@2"}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, err := e.svc.Graph(context.Background(), e.admin, tc.root, tc.q)
			if err != nil {
				t.Fatal(err)
			}
			got := names(g)
			slices.Sort(got[1:])
			want := slices.Clone(tc.wantNodes)
			slices.Sort(want[1:])
			if !slices.Equal(got, want) || len(g.Edges) != tc.wantEdges || g.Truncated {
				t.Fatalf("nodes %v, %d edges, truncated %v; want %v, %d edges", got, len(g.Edges), g.Truncated, want, tc.wantEdges)
			}
			in := map[string]bool{}
			for _, n := range g.Nodes {
				in[n.ID] = true
			}
			for _, ed := range g.Edges {
				if !in[ed.From] || !in[ed.To] {
					t.Fatalf("edge %s %s→%s leads outside the nodes returned", ed.ID, ed.From, ed.To)
				}
			}
		})
	}
}

func TestGraphBoundsAndTruncation(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	// A chain of 15 (c00 ← c01 ← … ← c14, each depending on the previous)
	// and a star of 30 dependents around hub.
	for i := range 15 {
		e.targets.add(fmt.Sprintf("c%02d", i))
		if i > 0 {
			e.relate(t, fmt.Sprintf("c%02d", i), DependsOn, fmt.Sprintf("c%02d", i-1))
		}
	}
	e.targets.add("hub")
	for i := range 30 {
		e.targets.add(fmt.Sprintf("s%02d", i))
		e.relate(t, fmt.Sprintf("s%02d", i), DependsOn, "hub")
	}
	t.Run("impact defaults to five hops", func(t *testing.T) {
		g, err := e.svc.Graph(ctx, e.admin, "c00", Query{Direction: Dependents})
		if err != nil {
			t.Fatal(err)
		}
		if len(g.Nodes) != 6 || g.Nodes[5].Depth != 5 || g.Depth != 5 || g.Truncated {
			t.Fatalf("%v (depth %d, truncated %v)", names(g), g.Depth, g.Truncated)
		}
	})
	t.Run("ten hops is the deepest walk", func(t *testing.T) {
		g, err := e.svc.Graph(ctx, e.admin, "c00", Query{Direction: Dependents, Depth: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(g.Nodes) != 11 {
			t.Fatalf("%v", names(g))
		}
		_, err = e.svc.Graph(ctx, e.admin, "c00", Query{Direction: Dependents, Depth: 11})
		wantProblem(t, err, problem.KindInvalid, "depth", "from 1 to 10")
		_, err = e.svc.Graph(ctx, e.admin, "c00", Query{Direction: Dependents, Depth: -1})
		wantProblem(t, err, problem.KindInvalid, "depth", "from 1 to 10")
	})
	t.Run("a node bound cuts the walk and says so", func(t *testing.T) {
		g, err := e.svc.Graph(ctx, e.admin, "hub", Query{Direction: Dependents, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(g.Nodes) != 10 || len(g.Edges) != 9 || !g.Truncated {
			t.Fatalf("%d nodes, %d edges, truncated %v; want 10, 9, true", len(g.Nodes), len(g.Edges), g.Truncated)
		}
	})
	t.Run("an answer that just fits is not truncated", func(t *testing.T) {
		g, err := e.svc.Graph(ctx, e.admin, "hub", Query{Direction: Dependents, Limit: 31})
		if err != nil {
			t.Fatal(err)
		}
		if len(g.Nodes) != 31 || g.Truncated {
			t.Fatalf("%d nodes, truncated %v", len(g.Nodes), g.Truncated)
		}
	})
	t.Run("bad parameters are named", func(t *testing.T) {
		for _, tc := range []struct {
			q     Query
			field string
		}{
			{Query{Direction: "up"}, "direction"},
			{Query{Limit: MaxNodes + 1}, "limit"},
			{Query{Types: []string{"Bad"}}, "type[0]"},
		} {
			_, err := e.svc.Graph(ctx, e.admin, "hub", tc.q)
			wantProblem(t, err, problem.KindInvalid, tc.field, "")
		}
		_, err := e.svc.Graph(ctx, e.admin, "nowhere", Query{})
		wantProblem(t, err, problem.KindNotFound, "", "nowhere")
	})
}

func TestScopedReadersSeeOnlyTheirTargets(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	e.targets.add("web-s", "env", "staging")
	e.targets.add("db-s", "env", "staging")
	e.targets.add("shared-p", "env", "prod")
	e.targets.add("beyond-s", "env", "staging")
	e.targets.add("db-p", "env", "prod")
	inScope := e.relate(t, "web-s", DependsOn, "db-s")
	// web-s → shared-p → beyond-s: a path through a prod target.
	cross := e.relate(t, "web-s", DependsOn, "shared-p")
	e.relate(t, "shared-p", DependsOn, "beyond-s")
	e.relate(t, "db-p", RunsOn, "shared-p")

	t.Run("the graph neither shows nor walks through targets out of scope", func(t *testing.T) {
		g, err := e.svc.Graph(ctx, e.staging, "web-s", Query{Direction: Dependencies, Depth: 3})
		if err != nil {
			t.Fatal(err)
		}
		if got := names(g); !slices.Equal(got, []string{"web-s@0", "db-s@1"}) || len(g.Edges) != 1 {
			t.Fatalf("staging sees %v and %d edges", got, len(g.Edges))
		}
		all, err := e.svc.Graph(ctx, e.admin, "web-s", Query{Direction: Dependencies, Depth: 3})
		if err != nil {
			t.Fatal(err)
		}
		if len(all.Nodes) != 4 {
			t.Fatalf("admin sees %v", names(all))
		}
	})
	t.Run("a target out of scope cannot be a root", func(t *testing.T) {
		_, err := e.svc.Graph(ctx, e.staging, "shared-p", Query{})
		wantProblem(t, err, problem.KindNotFound, "", "shared-p")
	})
	t.Run("lists leave out edges with an end out of scope", func(t *testing.T) {
		page, err := e.svc.List(ctx, e.staging, Filter{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Items) != 1 || page.Items[0].ID != inScope.ID {
			t.Fatalf("staging lists %+v", page.Items)
		}
	})
	t.Run("an edge with an end out of scope is not found", func(t *testing.T) {
		_, err := e.svc.Get(ctx, e.staging, cross.ID)
		wantProblem(t, err, problem.KindNotFound, "", cross.ID)
		_, err = e.svc.Delete(ctx, e.staging, cross.ID)
		wantProblem(t, err, problem.KindNotFound, "", cross.ID)
	})
	t.Run("an edge to a target out of scope cannot be created", func(t *testing.T) {
		_, err := e.svc.Create(ctx, e.staging, CreateEdge{From: "db-s", Type: ConnectsTo, To: "db-p"})
		wantProblem(t, err, problem.KindInvalid, "to", `no target "db-p"`)
	})
	t.Run("a scoped writer changes edges within scope", func(t *testing.T) {
		v, err := e.svc.Create(ctx, e.staging, CreateEdge{From: "db-s", Type: ConnectsTo, To: "beyond-s"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.Delete(ctx, e.staging, v.ID); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a reader without assets:write cannot change edges", func(t *testing.T) {
		_, err := e.svc.Create(ctx, e.viewer, CreateEdge{From: "db-s", Type: ConnectsTo, To: "beyond-s"})
		wantProblem(t, err, problem.KindForbidden, "", "assets:write")
		_, err = e.svc.Delete(ctx, e.viewer, inScope.ID)
		wantProblem(t, err, problem.KindForbidden, "", "assets:write")
		if _, err := e.svc.Get(ctx, e.viewer, cross.ID); err != nil {
			t.Fatalf("an unscoped viewer reads every edge: %v", err)
		}
	})
}
