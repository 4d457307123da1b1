package graph

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"

	"github.com/opsconductor/opsconductor/controller/identity"
	"github.com/opsconductor/opsconductor/controller/identity/password"
	"github.com/opsconductor/opsconductor/controller/keyring"
	"github.com/opsconductor/opsconductor/controller/problem"
	"github.com/opsconductor/opsconductor/controller/state"
	"github.com/opsconductor/opsconductor/controller/state/statetest"
)

// testTargets stands in for the inventory, which imports this package
// (for RemoveNode) and so cannot be imported by its tests. Its Allowed
// matches role-binding scopes by tags, as the inventory does.
type testTargets struct {
	mu     sync.Mutex
	byID   map[string]testTarget
	byName map[string]string
}

type testTarget struct {
	Node
	tags map[string]string
}

func newTestTargets() *testTargets {
	return &testTargets{byID: map[string]testTarget{}, byName: map[string]string{}}
}

// add registers a target named name with ID "id-"+name.
func (tt *testTargets) add(name string, tags ...string) string {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	id := "id-" + name
	t := testTarget{Node: Node{ID: id, Name: name}, tags: map[string]string{}}
	for i := 0; i+1 < len(tags); i += 2 {
		t.tags[tags[i]] = tags[i+1]
	}
	tt.byID[id], tt.byName[name] = t, id
	return id
}

func (tt *testTargets) remove(id string) {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	delete(tt.byName, tt.byID[id].Name)
	delete(tt.byID, id)
}

func (tt *testTargets) Resolve(_ context.Context, ref string) (Node, error) {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	if t, ok := tt.byID[ref]; ok {
		return t.Node, nil
	}
	if id, ok := tt.byName[ref]; ok {
		return tt.byID[id].Node, nil
	}
	return Node{}, problem.NotFound("target", ref)
}

func (tt *testTargets) Allowed(p *identity.Principal, perm identity.Permission, id string) bool {
	scopes, ok := p.Scopes(perm)
	if !ok {
		return false
	}
	if scopes == nil {
		return true
	}
	tt.mu.Lock()
	t, found := tt.byID[id]
	tt.mu.Unlock()
	if !found {
		return false
	}
	for _, sc := range scopes {
		match := true
		for k, v := range sc.Tags {
			if t.tags[k] != v {
				match = false
			}
		}
		if match {
			return true
		}
	}
	return false
}

func (tt *testTargets) exists(_ state.Reader, id string) (bool, error) {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	_, ok := tt.byID[id]
	return ok, nil
}

type testEnv struct {
	store   *state.Store
	applier *statetest.Applier
	svc     *Service
	targets *testTargets
	// admin holds every permission; staging is an operator bound to
	// env=staging; viewer reads everything and writes nothing.
	admin, staging, viewer *identity.Principal
}

const testPassword = "violet-Harbour-lantern-42"

var testHasher = sync.OnceValues(func() (*password.Hasher, error) {
	return password.NewHasher(password.DefaultParams, 4)
})

// principals logs in, through a real identity service, the three users
// the tests act as. It is built once: argon2id makes logins slow.
var principals = sync.OnceValues(func() ([3]*identity.Principal, error) {
	var out [3]*identity.Principal
	reg := state.NewRegistry()
	reg.MustRegister(identity.Domain())
	store, err := state.NewStore(reg, slog.New(slog.DiscardHandler))
	if err != nil {
		return out, err
	}
	key, _ := keyring.NewKey()
	kr, err := keyring.Parse([]byte(key))
	if err != nil {
		return out, err
	}
	hasher, err := testHasher()
	if err != nil {
		return out, err
	}
	svc, err := identity.New(identity.Config{}, identity.Deps{Applier: &statetest.Applier{Store: store}, Store: store, Keyring: kr,
		Hasher: hasher, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return out, err
	}
	ctx := context.Background()
	if _, err := svc.Bootstrap(ctx, testPassword, false); err != nil {
		return out, err
	}
	if err := svc.Maintain(ctx); err != nil { // creates the signing key
		return out, err
	}
	login := func(user string) (*identity.Principal, error) {
		tok, err := svc.Login(ctx, identity.LoginRequest{Username: user, Password: testPassword})
		if err != nil {
			return nil, fmt.Errorf("login %s: %w", user, err)
		}
		return svc.Authenticate(ctx, tok.AccessToken)
	}
	admin, err := login("admin")
	if err != nil {
		return out, err
	}
	no := false
	for _, u := range []identity.CreateUser{
		{Username: "stager", Roles: []identity.Binding{{Role: "operator", Scope: &identity.Scope{Tags: map[string]string{"env": "staging"}}}}},
		{Username: "watcher", Roles: []identity.Binding{{Role: "viewer"}}},
	} {
		u.Password, u.MustChangePassword = testPassword, &no
		if _, _, err := svc.CreateUser(ctx, admin, u); err != nil {
			return out, fmt.Errorf("create %s: %w", u.Username, err)
		}
	}
	out[0] = admin
	if out[1], err = login("stager"); err != nil {
		return out, err
	}
	out[2], err = login("watcher")
	return out, err
})

func newTestEnv(t testing.TB) *testEnv {
	t.Helper()
	ps, err := principals()
	if err != nil {
		t.Fatal(err)
	}
	targets := newTestTargets()
	store := statetest.NewStore(t, Domain(WithNodeCheck(targets.exists)), removerDomain(), bulkDomain())
	applier := &statetest.Applier{Store: store}
	svc, err := New(Deps{Applier: applier, Store: store, Targets: targets, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return &testEnv{store: store, applier: applier, svc: svc, targets: targets, admin: ps[0], staging: ps[1], viewer: ps[2]}
}

// removerDomain plays the inventory's target-delete command: it calls
// RemoveNode inside its Apply, as the inventory does.
func removerDomain() state.Domain {
	return state.Domain{Name: "test.remover", Commands: map[string]state.Handler{
		"test.remove_target": state.V1(func(ctx *state.ApplyContext, p struct{ ID string }) (any, error) {
			return nil, RemoveNode(ctx.Txn, p.ID)
		}),
	}}
}

// bulkDomain inserts edges as given, unchecked, to build large graphs
// for benchmarks quickly.
func bulkDomain() state.Domain {
	return state.Domain{Name: "test.bulk", Commands: map[string]state.Handler{
		"test.bulk_edges": state.V1(func(ctx *state.ApplyContext, edges []Edge) (any, error) {
			for i := range edges {
				if err := ctx.Txn.Insert(tableEdges, &edges[i]); err != nil {
					return nil, err
				}
			}
			return nil, nil
		}),
	}}
}

// relate creates an edge as admin and fails the test if it is refused.
func (e *testEnv) relate(t testing.TB, from, typ, to string, attrs ...string) EdgeView {
	t.Helper()
	req := CreateEdge{From: from, Type: typ, To: to}
	if len(attrs) > 0 {
		req.Attributes = map[string]string{}
		for i := 0; i+1 < len(attrs); i += 2 {
			req.Attributes[attrs[i]] = attrs[i+1]
		}
	}
	v, err := e.svc.Create(context.Background(), e.admin, req)
	if err != nil {
		t.Fatalf("relate %s %s %s: %v", from, typ, to, err)
	}
	return v
}
