package server

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/opsconductor/opsconductor/controller/assets/graph"
	"github.com/opsconductor/opsconductor/controller/identity"
	"github.com/opsconductor/opsconductor/controller/state"
)

// inventory is what the relationships need of the assets service: its
// Get (by ID or name) and Allowed (scoped RBAC on one target). T is
// assets.Target; the adapter is generic so that it does not tie this file
// to the inventory's types beyond these two methods.
type inventory[T any] interface {
	Get(ctx context.Context, idOrName string) (T, error)
	Allowed(p *identity.Principal, perm identity.Permission, t T) bool
}

// graphTargets adapts the inventory to graph.Targets.
type graphTargets[T any] struct {
	inv  inventory[T]
	node func(T) graph.Node
}

func (g graphTargets[T]) Resolve(ctx context.Context, idOrName string) (graph.Node, error) {
	t, err := g.inv.Get(ctx, idOrName)
	if err != nil {
		return graph.Node{}, err
	}
	return g.node(t), nil
}

func (g graphTargets[T]) Allowed(p *identity.Principal, perm identity.Permission, id string) bool {
	t, err := g.inv.Get(context.Background(), id)
	return err == nil && g.inv.Allowed(p, perm, t)
}

// Tables targetExists reads: the inventory's targets and agentrpc's
// agents (an enrolled agent is a target whether or not the inventory holds
// a row for it).
const (
	inventoryTargets = "assets_targets"
	enrolledAgents   = "agentrpc_agents"
)

// targetExists is the graph's node check (graph.WithNodeCheck): it runs
// inside Apply, where no service may be called, so it looks the ID up in
// the two tables by their index "id". With it, an edge created while its
// target is being deleted is refused instead of outliving the target.
// Agents are revoked, never deleted, so an agent's target always exists.
func targetExists(txn state.Reader, id string) (bool, error) {
	for _, table := range []string{inventoryTargets, enrolledAgents} {
		raw, err := txn.First(table, "id", id)
		if err != nil {
			return false, fmt.Errorf("look up %s in %s: %w", id, table, err)
		}
		if raw != nil {
			return true, nil
		}
	}
	return false, nil
}

// newRelationships builds the relationships service over the inventory;
// node maps an inventory target to its ID and name.
func newRelationships[T any](applier graph.Applier, store *state.Store, inv inventory[T], node func(T) graph.Node, log *slog.Logger) (*graph.Service, error) {
	return graph.New(graph.Deps{Applier: applier, Store: store, Targets: graphTargets[T]{inv: inv, node: node},
		Logger: log.With("component", "relationships")})
}
