package server

import (
	"context"
	"log/slog"

	"github.com/opsconductor/opsconductor/controller/cluster"
	"github.com/opsconductor/opsconductor/controller/communication/notify"
	"github.com/opsconductor/opsconductor/controller/communication/trigger"
	"github.com/opsconductor/opsconductor/controller/history"
	"github.com/opsconductor/opsconductor/controller/keyring"
	"github.com/opsconductor/opsconductor/controller/state"
)

// newNotify builds the notification service. Its events are raised inside
// other domains' Apply (see the Emit hooks where the registry is built);
// this is the API side and the leader's outbox worker.
func newNotify(node *cluster.Node, store *state.Store, ring *keyring.Service, hist history.Store, w *history.Writer,
	nodeID, uiURL string, log *slog.Logger) (*notify.Service, error) {
	svc, err := notify.New(notify.Config{UIURL: uiURL}, notify.Deps{Applier: node, Store: store, Sealer: ring,
		History: hist, HistoryWriter: w, IsLeader: node.IsLeader, Logger: log.With("component", "notify"),
		LeaderID: func(ctx context.Context) string {
			l, err := node.Leader(ctx)
			if err != nil {
				return ""
			}
			return l.ID
		}, NodeID: nodeID})
	if err != nil {
		return nil, err
	}
	// Channel secrets are envelopes: re-wrapped after a key rotation.
	ring.Register("notify", svc)
	return svc, nil
}

// newTriggers builds the inbound webhook triggers; their runs start
// through automation, acting for each trigger's owner.
func newTriggers(node *cluster.Node, store *state.Store, ring *keyring.Service, runner trigger.Runner, w *history.Writer,
	hist history.Store, log *slog.Logger) (*trigger.Service, error) {
	svc, err := trigger.New(trigger.Deps{Applier: node, Store: store, Sealer: ring, Runner: runner, History: w, Reader: hist,
		Logger: log.With("component", "triggers"), IsLeader: node.IsLeader})
	if err != nil {
		return nil, err
	}
	ring.Register("triggers", svc)
	return svc, nil
}
