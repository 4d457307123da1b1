package jobspec

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

const planJob = `
name: plan
targets: {all: true}
steps:
  - {id: drain, uses: noop}
  - {id: restart, uses: noop, needs: [drain]}
  - {id: check, uses: noop, needs: [restart]}
  - {id: undrain, uses: noop, needs: [check]}
  - {id: page, uses: noop, on_failure: true}
`

// st builds a states map from "id=status" pairs.
func st(pairs ...string) map[string]StepState {
	out := map[string]StepState{}
	for _, p := range pairs {
		id, s, _ := strings.Cut(p, "=")
		out[id] = StepState{Status: Status(s)}
	}
	return out
}

// whenFrom answers each step's when from a table: "true", "false" or an
// error message.
func whenFrom(answers map[string]string) func(*Step) (bool, error) {
	return func(s *Step) (bool, error) {
		switch a := answers[s.ID]; a {
		case "true":
			return true, nil
		case "false":
			return false, nil
		case "":
			return false, errors.New("when asked for a step with no answer: " + s.ID)
		default:
			return false, errors.New(a)
		}
	}
}

func TestPlan(t *testing.T) {
	tests := []struct {
		name     string
		job      string
		states   map[string]StepState
		canceled bool
		when     map[string]string
		want     Decision
	}{
		{
			name: "a fresh target starts the steps without needs",
			job:  planJob,
			want: Decision{Start: []string{"drain"}},
		},
		{
			name:   "a step waits while its need runs",
			job:    planJob,
			states: st("drain=running"),
			want:   Decision{},
		},
		{
			name:   "a step starts once its need succeeded",
			job:    planJob,
			states: st("drain=succeeded"),
			want:   Decision{Start: []string{"restart"}},
		},
		{
			name:   "all succeeded: the handler is skipped and the target succeeded",
			job:    planJob,
			states: st("drain=succeeded", "restart=succeeded", "check=succeeded", "undrain=succeeded"),
			want:   Decision{Skip: []string{"page"}, Done: true, Outcome: Succeeded},
		},
		{
			name:   "a failure skips everything after it down the chain and starts the handler",
			job:    planJob,
			states: st("drain=succeeded", "restart=failed"),
			want:   Decision{Start: []string{"page"}, Skip: []string{"check", "undrain"}},
		},
		{
			name:   "after the handler the target has failed",
			job:    planJob,
			states: st("drain=succeeded", "restart=failed", "check=skipped", "undrain=skipped", "page=succeeded"),
			want:   Decision{Done: true, Outcome: Failed},
		},
		{
			name:   "a lost step is a failure: its dependants are skipped and the handler runs",
			job:    planJob,
			states: st("drain=lost"),
			want:   Decision{Start: []string{"page"}, Skip: []string{"restart", "check", "undrain"}},
		},
		{
			name:   "a timed-out step is a failure too",
			job:    planJob,
			states: st("drain=succeeded", "restart=succeeded", "check=timed_out"),
			want:   Decision{Start: []string{"page"}, Skip: []string{"undrain"}},
		},
		{
			name:   "a failing handler fails the target",
			job:    planJob,
			states: st("drain=failed", "restart=skipped", "check=skipped", "undrain=skipped", "page=failed"),
			want:   Decision{Done: true, Outcome: Failed},
		},
		{
			name: "continue_on_error lets dependants run and the target succeed",
			job: `name: x
steps:
  - {id: a, uses: noop, continue_on_error: true}
  - {id: b, uses: noop, needs: [a]}
  - {id: h, uses: noop, on_failure: true}
`,
			states: st("a=failed"),
			want:   Decision{Start: []string{"b"}},
		},
		{
			name: "continue_on_error: the target succeeds and the handler is skipped",
			job: `name: x
steps:
  - {id: a, uses: noop, continue_on_error: true}
  - {id: b, uses: noop, needs: [a]}
  - {id: h, uses: noop, on_failure: true}
`,
			states: st("a=failed", "b=succeeded"),
			want:   Decision{Skip: []string{"h"}, Done: true, Outcome: Succeeded},
		},
		{
			name: "continue_on_error does not carry a lost step's dependants",
			job: `name: x
steps:
  - {id: a, uses: noop, continue_on_error: true}
  - {id: b, uses: noop, needs: [a]}
`,
			states: st("a=lost"),
			want:   Decision{Skip: []string{"b"}, Done: true, Outcome: Succeeded},
		},
		{
			name: "independent steps start together; a when decides each",
			job: `name: x
steps:
  - {id: a, uses: noop}
  - {id: b, uses: noop, when: "false"}
  - {id: c, uses: noop, when: "true"}
  - {id: d, uses: noop, needs: [b]}
`,
			when: map[string]string{"b": "false", "c": "true"},
			want: Decision{Start: []string{"a", "c"}, Skip: []string{"b", "d"}},
		},
		{
			name: "a when is only asked once the needs are met",
			job: `name: x
steps:
  - {id: a, uses: noop}
  - {id: b, uses: noop, needs: [a], when: "steps.a.outputs.go == 'yes'"}
`,
			states: st("a=running"),
			want:   Decision{},
		},
		{
			name: "a when that cannot be evaluated fails its step",
			job: `name: x
steps:
  - {id: a, uses: noop, when: "params.x > 1"}
  - {id: b, uses: noop, needs: [a]}
  - {id: h, uses: noop, on_failure: true}
`,
			when: map[string]string{"a": "invalid operation"},
			want: Decision{Start: []string{"h"}, Skip: []string{"b"}, Errors: map[string]string{"a": "invalid operation"}},
		},
		{
			name: "skips propagate: a skipped need skips the step",
			job: `name: x
steps:
  - {id: a, uses: noop}
  - {id: b, uses: noop, needs: [a]}
  - {id: c, uses: noop, needs: [b]}
`,
			states: st("a=skipped"),
			want:   Decision{Skip: []string{"b", "c"}, Done: true, Outcome: Succeeded},
		},
		{
			name: "a handler runs after its own needs, whatever they ended as",
			job: `name: x
steps:
  - {id: a, uses: noop}
  - {id: b, uses: noop, needs: [a]}
  - {id: h1, uses: noop, on_failure: true, needs: [b]}
  - {id: h2, uses: noop, on_failure: true, needs: [h1]}
`,
			states: st("a=failed"),
			want:   Decision{Start: []string{"h1"}, Skip: []string{"b"}},
		},
		{
			name: "a second handler waits for the first",
			job: `name: x
steps:
  - {id: a, uses: noop}
  - {id: h1, uses: noop, on_failure: true}
  - {id: h2, uses: noop, on_failure: true, needs: [h1], when: "true"}
`,
			states: st("a=failed", "h1=failed"),
			when:   map[string]string{"h2": "true"},
			want:   Decision{Start: []string{"h2"}},
		},
		{
			name: "handlers wait for every other step to end",
			job: `name: x
steps:
  - {id: a, uses: noop}
  - {id: b, uses: noop}
  - {id: h, uses: noop, on_failure: true}
`,
			states: st("a=failed", "b=running"),
			want:   Decision{},
		},
		{
			name:     "cancel: nothing starts, pending steps are canceled, running ones are waited for",
			job:      planJob,
			states:   st("drain=succeeded", "restart=running"),
			canceled: true,
			want:     Decision{Cancel: []string{"check", "undrain", "page"}},
		},
		{
			name:     "cancel: done once nothing runs",
			job:      planJob,
			states:   st("drain=succeeded", "restart=canceled", "check=canceled", "undrain=canceled", "page=canceled"),
			canceled: true,
			want:     Decision{Done: true, Outcome: Canceled},
		},
		{
			name: "cancel: a waiting approval is canceled at once",
			job: `name: x
steps:
  - {id: ok, uses: approval}
  - {id: go, uses: noop, needs: [ok]}
`,
			states:   st("ok=waiting"),
			canceled: true,
			want:     Decision{Cancel: []string{"ok", "go"}, Done: true, Outcome: Canceled},
		},
		{
			name: "a canceled step skips its dependants",
			job: `name: x
steps:
  - {id: a, uses: noop}
  - {id: b, uses: noop, needs: [a]}
`,
			states: st("a=canceled"),
			want:   Decision{Skip: []string{"b"}, Done: true, Outcome: Succeeded},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := mustParse(t, tt.job)
			got := j.Plan(tt.states, tt.canceled, whenFrom(tt.when))
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Plan =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

// run drives one target to its end the way the engine does: start what
// Plan says, let each started step end as outcomes says (succeeded when
// absent), plan again. It returns the order steps started in and the
// outcome.
func run(t *testing.T, j *Job, outcomes map[string]StepState, eval func(*Step, map[string]StepState) (bool, error)) ([]string, Status, map[string]StepState) {
	t.Helper()
	states := map[string]StepState{}
	var started []string
	for range len(j.Steps) + 2 {
		d := j.Plan(states, false, func(s *Step) (bool, error) { return eval(s, states) })
		for _, id := range d.Skip {
			states[id] = StepState{Status: Skipped}
		}
		for id := range d.Errors {
			states[id] = StepState{Status: Failed}
		}
		if d.Done {
			return started, d.Outcome, states
		}
		for _, id := range d.Start {
			started = append(started, id)
			out, ok := outcomes[id]
			if !ok {
				out = StepState{Status: Succeeded}
			}
			states[id] = out
		}
		if len(d.Start) == 0 && len(d.Skip) == 0 && len(d.Errors) == 0 {
			t.Fatalf("Plan made no progress: %+v", states)
		}
	}
	t.Fatalf("the target did not finish: %+v", states)
	return nil, "", nil
}

func TestPlanDrivesATargetToItsEnd(t *testing.T) {
	j := mustParse(t, planJob)
	never := func(*Step, map[string]StepState) (bool, error) { return false, errors.New("no when here") }
	t.Run("in needs order when all succeed", func(t *testing.T) {
		started, outcome, _ := run(t, j, nil, never)
		if want := []string{"drain", "restart", "check", "undrain"}; !reflect.DeepEqual(started, want) || outcome != Succeeded {
			t.Errorf("started %v, outcome %s", started, outcome)
		}
	})
	t.Run("through the failure path", func(t *testing.T) {
		started, outcome, states := run(t, j, map[string]StepState{"check": {Status: Failed}}, never)
		if want := []string{"drain", "restart", "check", "page"}; !reflect.DeepEqual(started, want) || outcome != Failed {
			t.Errorf("started %v, outcome %s", started, outcome)
		}
		if states["undrain"].Status != Skipped {
			t.Errorf("undrain = %s", states["undrain"].Status)
		}
	})
}

// TestPlanFeedsOutputsToLaterSteps runs a step that reads an earlier
// step's output in both its when and its with.
func TestPlanFeedsOutputsToLaterSteps(t *testing.T) {
	j := mustParse(t, `
name: x
targets: {all: true}
steps:
  - {id: build, uses: noop}
  - id: deploy
    uses: noop
    needs: [build]
    when: ${{ steps.build.outputs.version != "" }}
    with: {version: "${{ steps.build.outputs.version }}", changed: "${{ steps.build.changed }}"}
  - id: skipped
    uses: noop
    needs: [build]
    when: steps.build.outputs.version == "0"
`)
	var rendered string
	eval := func(s *Step, states map[string]StepState) (bool, error) {
		env := Env{Steps: j.StepsEnv(states)}
		ok, err := s.ShouldRun(env)
		if ok {
			out, err := s.Render(env)
			if err != nil {
				return false, err
			}
			rendered = string(out)
		}
		return ok, err
	}
	outcomes := map[string]StepState{"build": {Status: Succeeded, Outputs: map[string]string{"version": "1.4.2"}, Changed: true}}
	started, outcome, states := run(t, j, outcomes, eval)
	if want := []string{"build", "deploy"}; !reflect.DeepEqual(started, want) || outcome != Succeeded {
		t.Errorf("started %v, outcome %s", started, outcome)
	}
	if states["skipped"].Status != Skipped {
		t.Errorf("skipped = %s", states["skipped"].Status)
	}
	if rendered != `{"changed":true,"version":"1.4.2"}` {
		t.Errorf("deploy rendered %s", rendered)
	}
}
