package server

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/opsconductor/opsconductor/controller/agentrpc"
	"github.com/opsconductor/opsconductor/controller/assets"
	"github.com/opsconductor/opsconductor/controller/assets/credentials"
	"github.com/opsconductor/opsconductor/controller/automation"
	"github.com/opsconductor/opsconductor/controller/automation/jobspec"
	"github.com/opsconductor/opsconductor/controller/automation/live"
	"github.com/opsconductor/opsconductor/controller/automation/schedule"
	"github.com/opsconductor/opsconductor/controller/cluster"
	"github.com/opsconductor/opsconductor/controller/config"
	"github.com/opsconductor/opsconductor/controller/gateway"
	"github.com/opsconductor/opsconductor/controller/history"
	"github.com/opsconductor/opsconductor/controller/identity"
	"github.com/opsconductor/opsconductor/controller/keyring"
	"github.com/opsconductor/opsconductor/controller/problem"
	"github.com/opsconductor/opsconductor/controller/state"
)

// stepSecrets resolves a run's step credentials: the target must be in
// the scope of the acting person's credentials:use, and every use is
// recorded against the attempt and the target.
type stepSecrets struct {
	creds *credentials.Service
	inv   *assets.Service
}

func (s stepSecrets) StepSecrets(ctx context.Context, p *identity.Principal, attemptID string, t assets.Target, creds map[string]string) (map[string]string, error) {
	if !s.inv.Allowed(p, identity.PermCredentialsUse, t) {
		return nil, problem.New(problem.KindForbidden, "target_out_of_scope",
			"target %s is outside the scope of the credentials:use permission of the person the run acts for", t.Name)
	}
	return s.creds.ResolveStep(ctx, p, creds, credentials.Use{AttemptID: attemptID, TargetID: t.ID, TargetName: t.Name})
}

// DefaultFor names the credential attached to the target (or one of its
// groups) in role.
func (s stepSecrets) DefaultFor(ctx context.Context, t assets.Target, role string) (string, error) {
	c, err := s.creds.Default(ctx, t.Name, s.inv.GroupsOf(t), role)
	if err != nil {
		return "", err
	}
	return c.Name, nil
}

// automationParts are the run engine, its schedules and its live stream.
type automationParts struct {
	svc       *automation.Service
	schedules *schedule.Service
	stream    *gateway.RunStream
}

// newAutomation builds the run engine over the agents, the inventory and
// the credentials, the scheduler that starts runs through it, and the
// live hub the engine and agentrpc feed.
func newAutomation(cfg config.Server, node *cluster.Node, store *state.Store, hooks *automation.Hooks, hub *live.Hub, agents *agentrpc.Service,
	inv *assets.Service, creds *credentials.Service, ident *identity.Service, ring *keyring.Service, catalog jobspec.Catalog,
	w *history.Writer, hist history.Store, log *slog.Logger) (automationParts, error) {
	svc, err := automation.New(automation.Config{MaxActiveRuns: cfg.MaxActiveRuns, AgentCapacity: cfg.AgentCapacity,
		AgentWait: cfg.RunAgentWait, Retention: cfg.RunRetention}, automation.Deps{Applier: node, Store: store, Logger: log.With("component", "automation"),
		IsLeader: node.IsLeader, Agents: agents, Inventory: inv, Catalog: catalog, Secrets: stepSecrets{creds: creds, inv: inv}, Credentials: stepSecrets{creds: creds, inv: inv},
		Principals: ident, History: w, HistoryReader: hist, Live: hub, Hooks: hooks, Sealer: ring})
	if err != nil {
		return automationParts{}, err
	}
	// Runs with secret parameters keep envelopes: re-wrapped after a rotation.
	ring.Register("automation", svc)
	sched, err := schedule.New(schedule.Deps{Applier: node, Store: store, Runner: svc, Logger: log.With("component", "schedules"),
		IsLeader: node.IsLeader})
	if err != nil {
		return automationParts{}, err
	}
	stream := &gateway.RunStream{Hub: hub, Access: svc.RunAccess, Leader: node.Leader}
	return automationParts{svc: svc, schedules: sched, stream: stream}, nil
}

// newHub builds the live hub, its metrics in reg.
func newHub(reg prometheus.Registerer, log *slog.Logger) *live.Hub {
	return live.NewHub(live.Config{Logger: log.With("component", "live"), Registerer: reg})
}
