package gateway

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/opsconductor/opsconductor/controller/assets/graph"
	"github.com/opsconductor/opsconductor/controller/identity"
	"github.com/opsconductor/opsconductor/controller/problem"
	"github.com/opsconductor/opsconductor/controller/state"
	"github.com/opsconductor/opsconductor/controller/state/statetest"
)

// caseTargets is a fixed inventory for the relationship routes: the
// gateway's tests do not build the inventory service. Scoped principals
// see nothing, which the graph's own tests cover in detail.
type caseTargets struct{}

var caseTargetNames = map[string]string{"tgt_web1": "web-1", "tgt_db1": "db-1", "tgt_cache1": "cache-1"}

func (caseTargets) Resolve(_ context.Context, ref string) (graph.Node, error) {
	for id, name := range caseTargetNames {
		if ref == id || ref == name {
			return graph.Node{ID: id, Name: name}, nil
		}
	}
	return graph.Node{}, problem.NotFound("target", ref)
}

func (caseTargets) Allowed(p *identity.Principal, perm identity.Permission, _ string) bool {
	scopes, ok := p.Scopes(perm)
	return ok && scopes == nil
}

// newTestRelationships is a real relationships service over its own
// in-memory store.
func newTestRelationships(t testing.TB) *graph.Service {
	t.Helper()
	reg := state.NewRegistry()
	reg.MustRegister(graph.Domain())
	store, err := state.NewStore(reg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := graph.New(graph.Deps{Applier: &statetest.Applier{Store: store}, Store: store, Targets: caseTargets{},
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// relateAll creates the edges ("web-1 depends_on db-1", …) as the
// fixture's admin; $id is the first one's ID.
func relateAll(edges ...string) func(t *testing.T, f *fixture) prepared {
	return func(t *testing.T, f *fixture) prepared {
		t.Helper()
		p := casePrincipal(t, f.ident, f.ident.adminToken)
		vars := map[string]string{}
		for _, e := range edges {
			parts := strings.Fields(e)
			v, err := f.srv.relationships.Create(context.Background(), p, graph.CreateEdge{From: parts[0], Type: parts[1], To: parts[2]})
			if err != nil {
				t.Fatalf("relate %s: %v", e, err)
			}
			if vars["id"] == "" {
				vars["id"] = v.ID
			}
		}
		return prepared{vars: vars}
	}
}

func relationshipCases() []routeCase {
	post := func(name, body string, want int, prepare func(*testing.T, *fixture) prepared, check func(*testing.T, *responseUnderTest)) routeCase {
		return routeCase{name: name, method: "POST", target: "/api/v1/relationships", contentType: "application/json",
			body: body, want: want, prepare: prepare, check: check}
	}
	return []routeCase{
		post("a relationship is created between targets named by name", `{"from":"web-1","type":"depends_on","to":"db-1","attributes":{"port":"5432"}}`,
			201, nil, func(t *testing.T, rec *responseUnderTest) {
				e := decodeInto[graph.EdgeView](t, rec)
				if e.From != "tgt_web1" || e.To != "tgt_db1" || e.FromName != "web-1" || e.Attributes["port"] != "5432" || e.CreatedBy != "admin" {
					t.Fatalf("created %s", rec.body)
				}
			}),
		post("a relationship of a badly formed type is a 400 naming type", `{"from":"web-1","type":"Depends-On","to":"db-1"}`,
			400, nil, wantError("invalid_input", "type")),
		post("a relationship from a target to itself is a 400 naming to", `{"from":"web-1","type":"connects_to","to":"tgt_web1"}`,
			400, nil, wantError("invalid_input", "to")),
		post("a relationship to an unknown target is a 400 naming to", `{"from":"web-1","type":"connects_to","to":"db-9"}`,
			400, nil, wantError("invalid_input", "to")),
		post("a relationship with an unknown field is a 400 naming it", `{"from":"web-1","type":"connects_to","to":"db-1","weight":3}`,
			400, nil, wantError("invalid_input", "weight")),
		post("a duplicate relationship is a 409", `{"from":"web-1","type":"depends_on","to":"db-1"}`,
			409, relateAll("web-1 depends_on db-1"), wantError("relationship_duplicate", "")),
		post("a depends_on cycle is a 409 naming its path", `{"from":"cache-1","type":"depends_on","to":"web-1"}`,
			409, relateAll("web-1 depends_on db-1", "db-1 depends_on cache-1"), func(t *testing.T, rec *responseUnderTest) {
				wantError("relationship_cycle", "to")(t, rec)
				if !strings.Contains(string(rec.body), "cache-1 → web-1 → db-1 → cache-1") {
					t.Fatalf("body %s does not name the cycle", rec.body)
				}
			}),
		{name: "a relationship sent as text is a 415", method: "POST", target: "/api/v1/relationships", contentType: "text/plain",
			body: `{}`, want: 415},

		{name: "relationships are listed from one target", method: "GET", target: "/api/v1/relationships?from=web-1&limit=1", want: 200,
			prepare: relateAll("web-1 depends_on db-1", "web-1 connects_to cache-1", "db-1 runs_on cache-1"),
			check: func(t *testing.T, rec *responseUnderTest) {
				p := decodeInto[graph.Page](t, rec)
				if len(p.Items) != 1 || p.Items[0].From != "tgt_web1" || p.Next == "" {
					t.Fatalf("page %s", rec.body)
				}
			}},
		{name: "an empty relationship list is an empty array", method: "GET", target: "/api/v1/relationships?consistent=true", want: 200,
			check: func(t *testing.T, rec *responseUnderTest) {
				if !strings.Contains(string(rec.body), `"items":[]`) {
					t.Fatalf("body %s", rec.body)
				}
			}},
		{name: "a relationship list of a bad type is a 400 naming type", method: "GET", target: "/api/v1/relationships?type=A", want: 400,
			check: wantError("invalid_input", "type")},

		{name: "a relationship is read", method: "GET", target: "/api/v1/relationships/$id", want: 200, prepare: relateAll("web-1 depends_on db-1")},
		{name: "an unknown relationship is a 404", method: "GET", target: "/api/v1/relationships/rel_nope", want: 404},

		{name: "a relationship's attributes are patched", method: "PATCH", target: "/api/v1/relationships/$id", contentType: "application/json",
			body: `{"attributes":{"port":"6432","note":null}}`, want: 200, prepare: relateAll("web-1 connects_to db-1"),
			check: func(t *testing.T, rec *responseUnderTest) {
				if e := decodeInto[graph.EdgeView](t, rec); e.Attributes["port"] != "6432" {
					t.Fatalf("patched %s", rec.body)
				}
			}},
		{name: "a bad attribute name in a patch is a 400 naming it", method: "PATCH", target: "/api/v1/relationships/$id",
			contentType: "application/json", body: `{"attributes":{"a b":"1"}}`, want: 400, prepare: relateAll("web-1 connects_to db-1"),
			check: wantError("invalid_input", "attributes.a b")},
		{name: "patching an unknown relationship is a 404", method: "PATCH", target: "/api/v1/relationships/rel_nope",
			contentType: "application/json", body: `{"attributes":{}}`, want: 404},

		{name: "a relationship is deleted", method: "DELETE", target: "/api/v1/relationships/$id", want: 200, prepare: relateAll("web-1 depends_on db-1")},
		{name: "deleting an unknown relationship is a 404", method: "DELETE", target: "/api/v1/relationships/rel_nope", want: 404},

		{name: "the impact of a target is walked", method: "GET", target: "/api/v1/targets/cache-1/graph?direction=dependents&depth=3", want: 200,
			prepare: relateAll("web-1 depends_on db-1", "db-1 runs_on cache-1"),
			check: func(t *testing.T, rec *responseUnderTest) {
				g := decodeInto[graph.Graph](t, rec)
				if len(g.Nodes) != 3 || len(g.Edges) != 2 || g.Nodes[2].Name != "web-1" || g.Nodes[2].Depth != 2 || g.Truncated {
					t.Fatalf("graph %s", rec.body)
				}
			}},
		{name: "a truncated graph says so", method: "GET", target: "/api/v1/targets/web-1/graph?limit=2&type=depends_on&type=connects_to", want: 200,
			prepare: relateAll("web-1 depends_on db-1", "web-1 connects_to cache-1"),
			check: func(t *testing.T, rec *responseUnderTest) {
				if g := decodeInto[graph.Graph](t, rec); len(g.Nodes) != 2 || !g.Truncated {
					t.Fatalf("graph %s", rec.body)
				}
			}},
		{name: "a graph deeper than ten hops is a 400 naming depth", method: "GET", target: "/api/v1/targets/web-1/graph?depth=11", want: 400,
			check: wantError("invalid_input", "depth")},
		{name: "a graph with a non-numeric depth is a 400 naming depth", method: "GET", target: "/api/v1/targets/web-1/graph?depth=deep", want: 400,
			check: wantError("invalid_input", "depth")},
		{name: "the graph of an unknown target is a 404", method: "GET", target: "/api/v1/targets/nowhere/graph", want: 404},
	}
}

func TestRelationshipRoutesAnswer503WithoutTheService(t *testing.T) {
	f := newFixture(t, Config{}, func(d *Deps) { d.Relationships = nil })
	rec := f.do(t, newRequest("GET", "/api/v1/relationships", "", ""))
	if rec.Code != 503 || !strings.Contains(rec.Body.String(), "relationships_unavailable") {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
}

// FuzzCreateRelationship sends any body to POST /api/v1/relationships:
// the answer is a 201 or a 4xx naming what to fix (never a 5xx or a
// panic), and a refused request writes nothing.
func FuzzCreateRelationship(f *testing.F) {
	for _, s := range []string{
		`{"from":"web-1","type":"depends_on","to":"db-1"}`,
		`{"from":"db-1","type":"depends_on","to":"web-1"}`,
		`{"from":"web-1","type":"connects_to","to":"web-1"}`,
		`{"from":"tgt_cache1","type":"backs_up_to","to":"db-1","attributes":{"schedule":"nightly"}}`,
		`{"from":"web-1","type":"Bad Type","to":"db-1"}`,
		`{"from":"web-1","type":"runs_on","to":"db-1","attributes":{"a b":"c"}}`,
		`{"from":"web-1","type":"runs_on","to":"db-1","attributes":{"k":1}}`,
		`{"from":"web-1","type":"runs_on","to":"db-1","attributes":null}`,
		`{"from":1}`, `{}`, `[]`, `null`, `{"from":"web-1"`, "\xff",
	} {
		f.Add(s)
	}
	fx := newFixture(f, Config{})
	f.Fuzz(func(t *testing.T, body string) {
		before := countRelationships(t, fx)
		rec := fx.do(t, newRequest("POST", "/api/v1/relationships", "application/json", body))
		after := countRelationships(t, fx)
		switch {
		case rec.Code == 201:
			if after != before+1 {
				t.Fatalf("201 but %d → %d edges", before, after)
			}
		case rec.Code >= 400 && rec.Code < 500:
			if after != before {
				t.Fatalf("%d but %d → %d edges: %s", rec.Code, before, after, rec.Body)
			}
			if !strings.Contains(rec.Body.String(), `"code"`) {
				t.Fatalf("%d without an error envelope: %s", rec.Code, rec.Body)
			}
		default:
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body)
		}
	})
}

func countRelationships(t *testing.T, fx *fixture) int {
	t.Helper()
	p := casePrincipal(t, fx.ident, fx.ident.adminToken)
	n, f := 0, graph.Filter{Limit: 1000}
	for {
		page, err := fx.srv.relationships.List(context.Background(), p, f)
		if err != nil {
			t.Fatal(err)
		}
		n += len(page.Items)
		if page.Next == "" {
			return n
		}
		f.After = page.Next
	}
}
