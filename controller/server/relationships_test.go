package server

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/opsconductor/opsconductor/controller/agentrpc"
	"github.com/opsconductor/opsconductor/controller/assets"
	"github.com/opsconductor/opsconductor/controller/assets/graph"
	"github.com/opsconductor/opsconductor/controller/identity"
	"github.com/opsconductor/opsconductor/controller/identity/password"
	"github.com/opsconductor/opsconductor/controller/keyring"
	"github.com/opsconductor/opsconductor/controller/problem"
	"github.com/opsconductor/opsconductor/controller/state"
	"github.com/opsconductor/opsconductor/controller/state/statetest"
)

// oneRelay is an agent directory holding one relay agent, for SSH
// targets to be reached through.
type oneRelay struct{}

var relay = assets.AgentInfo{ID: "agt_relay", Name: "relay-1", Status: "up", Tags: map[string]string{"env": "staging"},
	EnrolledAt: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)}

func (oneRelay) Agents(context.Context) ([]assets.AgentInfo, error) {
	return []assets.AgentInfo{relay}, nil
}

func (oneRelay) Agent(_ context.Context, ref string) (assets.AgentInfo, error) {
	if ref == relay.ID || ref == relay.Name {
		return relay, nil
	}
	return assets.AgentInfo{}, problem.NotFound("agent", ref)
}

// invEnv is the relationships over a real inventory and identity, with
// an admin and an operator bound to env=staging logged in.
type invEnv struct {
	applier       *statetest.Applier
	inv           *assets.Service
	rels          *graph.Service
	admin, stager *identity.Principal
}

func newInvEnv(t testing.TB) *invEnv {
	t.Helper()
	ctx := context.Background()
	store := statetest.NewStore(t, assets.Domain(), agentrpc.Domain(), graph.Domain(graph.WithNodeCheck(targetExists)),
		identity.Domain(), seed())
	applier := &statetest.Applier{Store: store}
	log := slog.New(slog.DiscardHandler)
	cmd, err := state.NewCommand("test.agent.seed", 1, agentrpc.Agent{ID: relay.ID, Name: relay.Name})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := applier.Apply(ctx, cmd); err != nil || res[0].Decode(nil) != nil {
		t.Fatalf("seed the relay agent: %v %v", err, res)
	}
	key, _ := keyring.NewKey()
	kr, err := keyring.Parse([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	hasher, err := password.NewHasher(password.DefaultParams, 2)
	if err != nil {
		t.Fatal(err)
	}
	ident, err := identity.New(identity.Config{}, identity.Deps{Applier: applier, Store: store, Keyring: kr, Hasher: hasher, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	const pw = "violet-Harbour-lantern-42"
	if _, err := ident.Bootstrap(ctx, pw, false); err != nil {
		t.Fatal(err)
	}
	if err := ident.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	login := func(user string) *identity.Principal {
		t.Helper()
		tok, err := ident.Login(ctx, identity.LoginRequest{Username: user, Password: pw})
		if err != nil {
			t.Fatal(err)
		}
		p, err := ident.Authenticate(ctx, tok.AccessToken)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	e := &invEnv{applier: applier, admin: login("admin")}
	no := false
	if _, _, err := ident.CreateUser(ctx, e.admin, identity.CreateUser{Username: "stager", Password: pw, MustChangePassword: &no,
		Roles: []identity.Binding{{Role: "operator", Scope: &identity.Scope{Tags: map[string]string{"env": "staging"}}}}}); err != nil {
		t.Fatal(err)
	}
	e.stager = login("stager")
	if e.inv, err = assets.New(assets.Deps{Applier: applier, Store: store, Agents: oneRelay{}, Logger: log}); err != nil {
		t.Fatal(err)
	}
	e.rels, err = newRelationships[assets.Target](applier, store, e.inv,
		func(t assets.Target) graph.Node { return graph.Node{ID: t.ID, Name: t.Name} }, log)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// The relationships over the real inventory and identity: names resolve
// through the inventory, its scopes filter the graph, and deleting a
// target there drops its edges.
func TestRelationshipsOverTheInventory(t *testing.T) {
	ctx := context.Background()
	e := newInvEnv(t)
	inv, rels, admin, stager := e.inv, e.rels, e.admin, e.stager
	for name, env := range map[string]string{"web-s": "staging", "db-s": "staging", "db-p": "prod"} {
		if _, err := inv.Create(ctx, admin, assets.TargetInput{Name: name, Addresses: []string{name + ".example.net"},
			Connection: &assets.Connection{Type: "ssh", Via: "relay-1"}, Tags: map[string]string{"env": env}}); err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
	}
	relate := func(p *identity.Principal, from, typ, to string) (graph.EdgeView, error) {
		return rels.Create(ctx, p, graph.CreateEdge{From: from, Type: typ, To: to})
	}
	for _, e := range [][3]string{{"web-s", "depends_on", "db-s"}, {"web-s", "depends_on", "db-p"}, {"web-s", "runs_on", "relay-1"}} {
		if _, err := relate(admin, e[0], e[1], e[2]); err != nil {
			t.Fatalf("relate %v: %v", e, err)
		}
	}

	t.Run("an agent's target is an endpoint like any other", func(t *testing.T) {
		page, err := rels.List(ctx, admin, graph.Filter{To: "relay-1", Limit: 10})
		if err != nil || len(page.Items) != 1 || page.Items[0].To != "agt_relay" || page.Items[0].ToName != "relay-1" {
			t.Fatalf("edges to relay-1: %+v, %v", page.Items, err)
		}
	})
	t.Run("a reader scoped to staging sees only staging targets", func(t *testing.T) {
		g, err := rels.Graph(ctx, stager, "web-s", graph.Query{Direction: graph.Dependencies})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, n := range g.Nodes {
			names = append(names, n.Name)
		}
		if len(names) != 3 || names[0] != "web-s" || len(g.Edges) != 2 {
			t.Fatalf("staging sees %v and %d edges", names, len(g.Edges))
		}
		for _, n := range names {
			if n == "db-p" {
				t.Fatalf("staging sees db-p: %v", names)
			}
		}
		_, err = relate(stager, "db-s", "connects_to", "db-p")
		if p, ok := problem.As(err); !ok || p.Field != "to" {
			t.Fatalf("relating to a prod target: %v, want an invalid to", err)
		}
	})
	t.Run("deleting a target in the inventory drops its edges", func(t *testing.T) {
		if _, err := inv.Delete(ctx, admin, "db-p"); err != nil {
			t.Fatal(err)
		}
		page, err := rels.List(ctx, admin, graph.Filter{From: "web-s", Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page.Items {
			if e.ToName == "db-p" || e.ToName == "" {
				t.Fatalf("an edge outlived its target: %+v", e)
			}
		}
		if len(page.Items) != 2 {
			t.Fatalf("edges from web-s: %+v, want 2", page.Items)
		}
	})
}

// seed writes an agent row as enrolment would and a target row as the
// inventory would, without the protocols this test is not about.
func seed() state.Domain {
	return state.Domain{Name: "test.seed", Commands: map[string]state.Handler{
		"test.agent.seed": state.V1(func(ctx *state.ApplyContext, a agentrpc.Agent) (any, error) {
			return nil, ctx.Txn.Insert(enrolledAgents, &a)
		}),
		"test.target.seed": state.V1(func(ctx *state.ApplyContext, t assets.Target) (any, error) {
			return nil, ctx.Txn.Insert(inventoryTargets, &t)
		}),
	}}
}

func TestEdgesToMissingTargetsAreRefusedInApply(t *testing.T) {
	ctx := context.Background()
	store := statetest.NewStore(t, assets.Domain(), agentrpc.Domain(), graph.Domain(graph.WithNodeCheck(targetExists)), seed())
	applier := &statetest.Applier{Store: store}
	apply := func(typ string, payload any) error {
		t.Helper()
		cmd, err := state.NewCommand(typ, 1, payload)
		if err != nil {
			t.Fatal(err)
		}
		res, err := applier.Apply(ctx, cmd)
		if err != nil {
			t.Fatal(err)
		}
		return res[0].Decode(nil)
	}
	if err := apply("test.agent.seed", agentrpc.Agent{ID: "agt_1", Name: "relay-1"}); err != nil {
		t.Fatal(err)
	}
	if err := apply("test.target.seed", assets.Target{ID: "tgt_web", Name: "web-1", Connection: assets.Connection{Type: "ssh", Via: "agt_1"}}); err != nil {
		t.Fatal(err)
	}
	edge := func(id, from, to string) map[string]any {
		return map[string]any{"edge": map[string]any{"id": id, "from": from, "to": to, "type": "runs_on"}}
	}
	if err := apply("assets.graph.create", edge("rel_1", "tgt_web", "agt_1")); err != nil {
		t.Fatalf("an edge from a stored target to an enrolled agent: %v", err)
	}
	err := apply("assets.graph.create", edge("rel_2", "tgt_web", "tgt_gone"))
	if !problem.Is(err, problem.KindNotFound) {
		t.Fatalf("an edge to a missing target: %v, want not found", err)
	}
}

// BenchmarkImpactOverTheInventory measures the impact of a hub with 1,200
// dependents (the answer stops at 1,000 nodes) when names and scopes come
// from the real inventory: half the targets are env=staging, and the
// operator scoped to it is asked about every one the walk meets.
func BenchmarkImpactOverTheInventory(b *testing.B) {
	ctx := context.Background()
	e := newInvEnv(b)
	const n = 1200
	rows := []assets.TargetInput{{Name: "hub", Addresses: []string{"hub.example.net"},
		Connection: &assets.Connection{Type: "ssh", Via: "relay-1"}, Tags: map[string]string{"env": "staging"}}}
	for i := range n {
		env := "staging"
		if i%2 == 1 {
			env = "prod"
		}
		rows = append(rows, assets.TargetInput{Name: fmt.Sprintf("svc-%04d", i), Addresses: []string{fmt.Sprintf("svc-%04d.example.net", i)},
			Connection: &assets.Connection{Type: "ssh", Via: "relay-1"}, Tags: map[string]string{"env": env}})
	}
	if rep, err := e.inv.Import(ctx, e.admin, rows, assets.ImportOptions{}); err != nil {
		b.Fatalf("import: %v %+v", err, rep)
	}
	for i := range n {
		if _, err := e.rels.Create(ctx, e.admin, graph.CreateEdge{From: fmt.Sprintf("svc-%04d", i), Type: graph.DependsOn, To: "hub"}); err != nil {
			b.Fatal(err)
		}
	}
	for _, who := range []struct {
		name string
		p    *identity.Principal
	}{{"unscoped", e.admin}, {"scoped", e.stager}} {
		b.Run(who.name, func(b *testing.B) {
			var lat []time.Duration
			nodes := 0
			for b.Loop() {
				start := time.Now()
				g, err := e.rels.Graph(ctx, who.p, "hub", graph.Query{Direction: graph.Dependents})
				lat = append(lat, time.Since(start))
				if err != nil {
					b.Fatal(err)
				}
				nodes = len(g.Nodes)
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(nodes), "nodes")
		})
	}
}
