package server

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/opsconductor/opsconductor/agent/enroll"
	"github.com/opsconductor/opsconductor/agent/facts"
	"github.com/opsconductor/opsconductor/agent/node"
	"github.com/opsconductor/opsconductor/agent/runner"
	"github.com/opsconductor/opsconductor/controller/agentrpc"
	"github.com/opsconductor/opsconductor/controller/automation"
	"github.com/opsconductor/opsconductor/controller/problem"
	"github.com/opsconductor/opsconductor/internal/buildinfo"
)

// LocalAgentName is the dev server's built-in agent.
const LocalAgentName = "local"

// localAgent is `opsconductor dev`'s built-in agent: the real agent code
// (enrolment with a join token and the CA pin, the Connect stream, the
// executor and its on-disk outbox) running in the controller's process, so
// that a newcomer can run commands at once. It enrols once; its identity
// lives in DATA/local-agent like any agent's data dir.
type localAgent struct {
	agents *agentrpc.Service
	addr   string // this controller's agent listener
	dir    string
	log    *slog.Logger
}

func (a *localAgent) run(ctx context.Context) {
	if err := runner.BecomeSubreaper(); err != nil {
		a.log.Warn("cannot become a child subreaper: killed step processes may linger as zombies", "error", err)
	}
	id, err := enroll.LoadIdentity(a.dir)
	if err != nil {
		if id, err = a.enrol(ctx); err != nil {
			if ctx.Err() == nil {
				a.log.Error("the built-in agent could not enrol", "error", err)
			}
			return
		}
	}
	n, err := node.Open(node.Config{Identity: id, DataDir: a.dir, Controllers: []string{a.addr}, PluginDir: filepath.Join(a.dir, "plugins"),
		Version: buildinfo.Version(), Logger: a.log})
	if err != nil {
		a.log.Error("the built-in agent could not start", "error", err)
		return
	}
	// The controller is stopping too when Run returns: what runs then is
	// cut short, and its output is replayed from the outbox on the next
	// start.
	defer n.Close()
	a.log.Info("the built-in agent is running", "name", id.Name, "agent_id", id.AgentID)
	if err := n.Session.Run(ctx); err != nil {
		a.log.Error("the built-in agent stopped", "error", err)
	}
}

// enrol creates a one-use join token through the service (the dev server
// has no operator to paste one) and joins with it over the real listener.
func (a *localAgent) enrol(ctx context.Context) (*enroll.Identity, error) {
	var tok agentrpc.CreatedJoinToken
	for {
		var err error
		tok, err = a.agents.CreateJoinToken(ctx, "dev", agentrpc.CreateJoinToken{TTL: "10m", MaxUses: 1,
			Tags: map[string]string{"env": "dev"}})
		if err == nil {
			break
		}
		// The leader creates the agent CA moments after the first start.
		if !problem.Is(err, problem.KindUnavailable) {
			return nil, fmt.Errorf("create a join token: %w", err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	if err := os.MkdirAll(filepath.Dir(a.dir), 0o700); err != nil {
		return nil, err
	}
	res, err := enroll.Join(ctx, enroll.Options{Controllers: []string{a.addr}, Token: tok.Token, CAPin: tok.CAPin,
		DataDir: a.dir, Name: LocalAgentName, Version: buildinfo.Version(), Facts: facts.Gather()})
	if err != nil {
		return nil, fmt.Errorf("join: %w", err)
	}
	a.log.Info("enrolled the built-in agent", "name", res.Name, "agent_id", res.AgentID)
	return enroll.LoadIdentity(a.dir)
}

// exampleJob is the dev server's first job, so that the first thing a
// newcomer runs is a real job: opsconductor job run hello --follow.
const exampleJob = `name: hello
description: "The dev server's example job, on its built-in agent. Run it with: opsconductor job run hello -p who=you --follow"
params:
  - {name: who, type: string, default: world, description: Who to greet}
targets: {names: [local]}
steps:
  - id: greet
    uses: shell
    with:
      command: |
        echo "hello ${{ params.who }} from $(hostname)"
        echo "greeted=${{ params.who }}" >> "$OPSCONDUCTOR_OUTPUT"
  - id: facts
    uses: shell
    needs: [greet]
    with: {command: "uname -srm; uptime"}
  - id: done
    uses: shell
    needs: [facts]
    with: {command: "echo 'greeted ${{ steps.greet.outputs.greeted }}; see the run with: opsconductor run show ${{ run.id }}'"}
`

// ensureExampleJob saves the example job once the controller takes
// writes; an operator who edits or deletes it keeps their change until
// the next start (which only saves it when it is missing).
func ensureExampleJob(ctx context.Context, svc *automation.Service, ready func() error, log *slog.Logger) {
	for {
		if ready() == nil {
			created, err := svc.EnsureJob(ctx, "dev", "hello", []byte(exampleJob))
			switch {
			case err == nil:
				if created {
					log.Info("saved the example job: opsconductor job run hello --follow")
				}
				return
			case !problem.Is(err, problem.KindUnavailable):
				log.Warn("the example job was not saved", "error", err)
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}
