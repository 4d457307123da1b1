package automation

import (
	"context"
	"encoding/json"

	"github.com/opsconductor/opsconductor/controller/agentrpc"
	"github.com/opsconductor/opsconductor/controller/assets"
	"github.com/opsconductor/opsconductor/controller/automation/jobspec"
	"github.com/opsconductor/opsconductor/controller/problem"
)

// connSSH is the connection of a target reached over SSH from a relay
// agent.
const connSSH = assets.ConnSSH

// relayed turns a step for an SSH target into what its relay agent runs.
func (s *Service) relayed(ctx context.Context, t *RunTarget, st *jobspec.Step, with json.RawMessage) (string, json.RawMessage, map[string]string, error) {
	return "", nil, nil, problem.Invalid("targets", "target %s is reached over SSH, which runs do not support yet", t.Name)
}

// learnHostKeys records host keys ssh steps learned on a run's targets.
func (s *Service) learnHostKeys(ctx context.Context, r *Run, atts []*agentrpc.Attempt) {}
