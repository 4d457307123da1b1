package server

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/opsconductor/opsconductor/controller/agentrpc"
	"github.com/opsconductor/opsconductor/controller/assets"
	"github.com/opsconductor/opsconductor/controller/assets/discovery"
	"github.com/opsconductor/opsconductor/controller/history"
	"github.com/opsconductor/opsconductor/controller/state"
)

// discoveryAgents adapts agentrpc to discovery.Agents: scans are attempts
// of the built-in discover step, followed through their log.
type discoveryAgents struct {
	agents *agentrpc.Service
	dir    agentDirectory
}

var _ discovery.Agents = discoveryAgents{}

func (d discoveryAgents) ResolveAgent(ctx context.Context, ref string) (string, string, error) {
	a, err := d.dir.Agent(ctx, ref)
	if err != nil {
		return "", "", err
	}
	return a.ID, a.Name, nil
}

func (d discoveryAgents) RunStep(ctx context.Context, agentID, uses string, params json.RawMessage, timeout time.Duration, actor string) (string, error) {
	a, err := d.agents.RunStep(ctx, agentID, agentrpc.StepSpec{Uses: uses, With: params, Timeout: timeout.String()}, actor)
	if err != nil {
		return "", err
	}
	return a.ID, nil
}

func (d discoveryAgents) Attempt(ctx context.Context, id string) (discovery.AttemptState, error) {
	a, err := d.agents.GetAttempt(ctx, id)
	if err != nil {
		return discovery.AttemptState{}, err
	}
	st := discovery.AttemptState{Status: a.Status, Error: a.Error, LastSeq: a.LastSeq}
	switch a.Status {
	case agentrpc.AttemptPending, agentrpc.AttemptRunning:
	default:
		st.Finished = true
	}
	return st, nil
}

func (d discoveryAgents) AttemptLog(ctx context.Context, id string, after uint64, limit int) ([]discovery.LogLine, uint64, error) {
	page, err := d.agents.AttemptLog(ctx, id, after, limit)
	if err != nil {
		return nil, after, err
	}
	out := make([]discovery.LogLine, len(page.Items))
	for i, l := range page.Items {
		out[i] = discovery.LogLine{Seq: l.Seq, Stream: l.Stream, Data: l.Data}
	}
	return out, page.Next, nil
}

func (d discoveryAgents) CancelAttempt(ctx context.Context, id string) error {
	_, err := d.agents.CancelAttempt(ctx, id)
	return err
}

// newDiscovery builds the discovery service. In dev mode the built-in
// agent may scan loopback without an admin's ranges.
func newDiscovery(applier discovery.Applier, store *state.Store, agents *agentrpc.Service, inv *assets.Service, owners discovery.Principals,
	w *history.Writer, hist history.Store, isLeader func() bool, nodeID string, dev bool, log *slog.Logger) (*discovery.Service, error) {
	dir := agentDirectory{agents}
	var loopback func(string) bool
	if dev {
		loopback = func(id string) bool {
			a, err := agents.GetAgent(context.Background(), id)
			return err == nil && a.Name == LocalAgentName
		}
	}
	return discovery.New(discovery.Deps{Applier: applier, Store: store, Agents: discoveryAgents{agents: agents, dir: dir},
		Inventory: inv, History: w, HistoryReader: hist, Logger: log.With("component", "discovery"),
		IsLeader: isLeader, NodeID: nodeID, LoopbackAgent: loopback, Principals: owners})
}
