package executor

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/opsconductor/opsconductor/agent/runner"
	agentv1 "github.com/opsconductor/opsconductor/proto/agent/v1"
)

func step(id, kind string, params map[string]any, secrets map[string]string, timeout time.Duration) *agentv1.Assignment {
	raw, _ := json.Marshal(params)
	a := &agentv1.Assignment{AttemptId: id, Kind: kind, ParamsJson: raw, Secrets: secrets}
	if timeout > 0 {
		a.Timeout = durationpb.New(timeout)
	}
	return a
}

func TestBuiltinStepsRunInTheAgentAndReportOutputsAndChanged(t *testing.T) {
	tests := []struct {
		name   string
		a      *agentv1.Assignment
		status agentv1.AttemptStatus
		check  func(t *testing.T, r *agentv1.Result, lines []string)
	}{
		{
			name:   "noop prints its lines, sets its outputs and reports changed",
			a:      step("at-1", "noop", map[string]any{"lines": 3, "outputs": map[string]string{"answer": "42"}, "changed": true}, nil, 0),
			status: agentv1.AttemptStatus_ATTEMPT_STATUS_SUCCEEDED,
			check: func(t *testing.T, r *agentv1.Result, lines []string) {
				if !r.GetChanged() || r.GetOutputs()["answer"] != "42" || r.GetLastSeq() != 3 || strings.Join(lines, "") != "noop line 1\nnoop line 2\nnoop line 3\n" {
					t.Fatalf("result %v, lines %q", r, lines)
				}
			},
		},
		{
			name:   "a pinned major that matches the built-in runs it",
			a:      step("at-2", "noop@1", nil, nil, 0),
			status: agentv1.AttemptStatus_ATTEMPT_STATUS_SUCCEEDED,
		},
		{
			name:   "a step reporting failure fails with its message",
			a:      step("at-3", "noop", map[string]any{"fail": true}, nil, 0),
			status: agentv1.AttemptStatus_ATTEMPT_STATUS_FAILED,
			check: func(t *testing.T, r *agentv1.Result, _ []string) {
				if r.GetError() != "noop asked to fail" || r.GetExitCode() == 0 {
					t.Fatalf("result %v", r)
				}
			},
		},
		{
			name:   "invalid params are an error naming the parameter and the rule, and the step never runs",
			a:      step("at-4", "noop", map[string]any{"lines": -1, "colour": "red"}, nil, 0),
			status: agentv1.AttemptStatus_ATTEMPT_STATUS_ERROR,
			check: func(t *testing.T, r *agentv1.Result, lines []string) {
				if !strings.Contains(r.GetError(), "params.lines") || !strings.Contains(r.GetError(), "colour") || len(lines) != 0 {
					t.Fatalf("result %v, lines %q", r, lines)
				}
			},
		},
		{
			name:   "a step past its timeout ends timed out",
			a:      step("at-5", "noop", map[string]any{"sleep": "1m"}, nil, 50*time.Millisecond),
			status: agentv1.AttemptStatus_ATTEMPT_STATUS_TIMED_OUT,
		},
		{
			name:   "secrets in outputs and lines are masked",
			a:      step("at-6", "noop", map[string]any{"outputs": map[string]string{"token": "xx-hunter22-xx"}}, map[string]string{"pw": "hunter22"}, 0),
			status: agentv1.AttemptStatus_ATTEMPT_STATUS_SUCCEEDED,
			check: func(t *testing.T, r *agentv1.Result, _ []string) {
				if strings.Contains(r.GetOutputs()["token"], "hunter22") {
					t.Fatalf("outputs %v", r.GetOutputs())
				}
			},
		},
		{
			name:   "a pin the built-in does not satisfy is refused",
			a:      step("at-7", "noop@9", nil, nil, 0),
			status: agentv1.AttemptStatus_ATTEMPT_STATUS_ERROR,
		},
		{
			name:   "a plugin on an agent without a plugin host is refused",
			a:      step("at-8", "disk-usage@1", nil, nil, 0),
			status: agentv1.AttemptStatus_ATTEMPT_STATUS_ERROR,
		},
	}
	ex, box := newExec(t, filepath.Join(t.TempDir(), "outbox.db"), 0, runner.Run)
	defer box.Close()
	defer ex.Close()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if ack := ex.Assign(tc.a, false); ack == nil {
				t.Fatal("not acknowledged")
			}
			r := result(t, box, tc.a.GetAttemptId())
			if r.GetStatus() != tc.status {
				t.Fatalf("status %s (%s), want %s", r.GetStatus(), r.GetError(), tc.status)
			}
			chunks, _, err := box.Pending(tc.a.GetAttemptId(), 0, 1000)
			if err != nil {
				t.Fatal(err)
			}
			var lines []string
			for i, c := range chunks {
				if c.GetSeq() != uint64(i+1) {
					t.Fatalf("chunk %d has seq %d", i, c.GetSeq())
				}
				lines = append(lines, string(c.GetData()))
			}
			if tc.check != nil {
				tc.check(t, r, lines)
			}
		})
	}
}
