package server

import (
	"context"
	"log/slog"
	"time"

	"github.com/opsconductor/opsconductor/controller/agentrpc"
	"github.com/opsconductor/opsconductor/controller/cluster"
)

// clusterLeadership is the cluster as agent streams need it.
type clusterLeadership struct{ node *cluster.Node }

func (l clusterLeadership) IsLeader() bool                    { return l.node.IsLeader() }
func (l clusterLeadership) LeaderChanged() <-chan struct{}    { return l.node.LeaderChanged() }
func (l clusterLeadership) Barrier(ctx context.Context) error { return l.node.ConsistentRead(ctx) }

func (l clusterLeadership) LeaderAgent(ctx context.Context) (string, string, error) {
	info, err := l.node.Leader(ctx)
	return info.ID, info.AgentAddr, err
}

// agentMaintainer has the leader create the agent CA once. Every node
// then opens the CA and issues its listener certificate on first use.
type agentMaintainer struct {
	svc      *agentrpc.Service
	isLeader func() bool
	log      *slog.Logger
}

func (m *agentMaintainer) run(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if m.isLeader() {
			if _, err := m.svc.EnsureCA(ctx); err != nil && ctx.Err() == nil {
				m.log.Warn("create the agent CA", "error", err)
			}
		}
		// Poll fast until the CA exists (on a follower: until it has
		// replicated here), then rarely: it never changes in this release.
		interval := 200 * time.Millisecond
		if m.svc.Ready(ctx) == nil {
			interval = time.Minute
		}
		t.Reset(interval)
	}
}
