package server

import (
	"context"
	"log/slog"
	"testing"

	"github.com/opsconductor/opsconductor/controller/assets/graph"
	"github.com/opsconductor/opsconductor/controller/identity"
	"github.com/opsconductor/opsconductor/controller/problem"
	"github.com/opsconductor/opsconductor/controller/state/statetest"
)

// shelf is an inventory of named things, to drive the adapter.
type shelf map[string]string // id → name

type item struct{ id, name string }

func (s shelf) Get(_ context.Context, ref string) (item, error) {
	for id, name := range s {
		if ref == id || ref == name {
			return item{id, name}, nil
		}
	}
	return item{}, problem.NotFound("target", ref)
}

func (s shelf) Allowed(_ *identity.Principal, _ identity.Permission, t item) bool {
	return t.name != "secret"
}

func TestRelationshipsResolveAndCheckThroughTheInventory(t *testing.T) {
	store := statetest.NewStore(t, graph.Domain())
	inv := shelf{"t1": "web-1", "t2": "secret"}
	svc, err := newRelationships[item](&statetest.Applier{Store: store}, store, inv,
		func(i item) graph.Node { return graph.Node{ID: i.id, Name: i.name} }, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if svc == nil {
		t.Fatal("no service")
	}
	targets := graphTargets[item]{inv: inv, node: func(i item) graph.Node { return graph.Node{ID: i.id, Name: i.name} }}
	n, err := targets.Resolve(context.Background(), "web-1")
	if err != nil || n != (graph.Node{ID: "t1", Name: "web-1"}) {
		t.Fatalf("resolve web-1 = %+v, %v", n, err)
	}
	if _, err := targets.Resolve(context.Background(), "db-9"); !problem.Is(err, problem.KindNotFound) {
		t.Fatalf("resolve db-9: %v, want not found", err)
	}
	for id, want := range map[string]bool{"t1": true, "t2": false, "t9": false} {
		if got := targets.Allowed(nil, identity.PermAssetsRead, id); got != want {
			t.Errorf("Allowed(%s) = %v, want %v", id, got, want)
		}
	}
}
