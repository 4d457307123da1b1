package server

import (
	"context"
	"fmt"
	"strings"

	"github.com/opsconductor/opsconductor/controller/agentrpc"
	"github.com/opsconductor/opsconductor/controller/assets"
	"github.com/opsconductor/opsconductor/controller/problem"
)

// agentDirectory is the inventory's view of agentrpc (assets.AgentDirectory):
// every enrolled agent, read from agentrpc's service on each call, so an
// agent's target is there the moment the agent enrols and its facts and
// status are the agent's own.
type agentDirectory struct{ agents *agentrpc.Service }

var _ assets.AgentDirectory = agentDirectory{}

// agentPage is how many agents one ListAgents call returns.
const agentPage = 1000

func (d agentDirectory) Agents(ctx context.Context) ([]assets.AgentInfo, error) {
	var (
		out   []assets.AgentInfo
		after string
	)
	for {
		page, err := d.agents.ListAgents(ctx, after, agentPage)
		if err != nil {
			return nil, fmt.Errorf("list agents: %w", err)
		}
		for _, a := range page.Items {
			out = append(out, agentInfo(a))
		}
		if page.Next == "" {
			return out, nil
		}
		after = page.Next
	}
}

// Agent finds an agent by ID, then by name (agent names are unique,
// compared without case as agentrpc does).
func (d agentDirectory) Agent(ctx context.Context, idOrName string) (assets.AgentInfo, error) {
	a, err := d.agents.GetAgent(ctx, idOrName)
	if err == nil {
		return agentInfo(a), nil
	}
	if !problem.Is(err, problem.KindNotFound) {
		return assets.AgentInfo{}, err
	}
	all, err := d.Agents(ctx)
	if err != nil {
		return assets.AgentInfo{}, err
	}
	for _, a := range all {
		if strings.EqualFold(a.Name, idOrName) {
			return a, nil
		}
	}
	return assets.AgentInfo{}, problem.NotFound("agent", idOrName)
}

func agentInfo(a agentrpc.Agent) assets.AgentInfo {
	status := a.Status
	if a.Revoked {
		status = agentrpc.StatusRevoked
	}
	return assets.AgentInfo{ID: a.ID, Name: a.Name, Tags: a.Tags, Status: status, LastSeen: a.LastSeen, EnrolledAt: a.EnrolledAt,
		Facts: assets.AgentFacts{Hostname: a.Facts.Hostname, OS: a.Facts.OS, OSVersion: a.Facts.OSVersion, Kernel: a.Facts.Kernel,
			Arch: a.Facts.Arch, CPUs: a.Facts.CPUs, MemoryBytes: a.Facts.MemoryBytes, Addresses: a.Facts.Addresses, Extra: a.Facts.Extra}}
}
