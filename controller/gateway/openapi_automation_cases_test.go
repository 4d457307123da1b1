package gateway

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opsconductor/opsconductor/controller/agentrpc"
	"github.com/opsconductor/opsconductor/controller/assets"
	"github.com/opsconductor/opsconductor/controller/automation"
	"github.com/opsconductor/opsconductor/controller/automation/jobspec"
	"github.com/opsconductor/opsconductor/controller/history"
	"github.com/opsconductor/opsconductor/controller/history/embedded"
	"github.com/opsconductor/opsconductor/controller/problem"
	"github.com/opsconductor/opsconductor/controller/state"
	"github.com/opsconductor/opsconductor/controller/state/statetest"
)

// offlineAgents is the agent transport of the automation cases: no agent
// is ever connected, so a step waits for its agent and nothing is sent,
// while approval steps, which need no agent, go ahead. That keeps every
// run the cases make in a known state (waiting, or waiting for approval)
// until a case cancels it; controller/server's tests run steps on real
// agents. reached counts calls the engine should never make here.
type offlineAgents struct{ reached atomic.Int32 }

func (a *offlineAgents) Connected(string) bool { return false }

func (a *offlineAgents) DispatchStepsWith(_ context.Context, _ []state.Command, ds []agentrpc.StepDispatch) ([]agentrpc.DispatchResult, []state.Result) {
	a.reached.Add(1)
	out := make([]agentrpc.DispatchResult, len(ds))
	for i := range out {
		out[i].Err = problem.Unavailable("agent_offline", "no agent is connected in the gateway's tests")
	}
	return out, nil
}

func (a *offlineAgents) CancelAttempt(_ context.Context, id string) (agentrpc.Attempt, error) {
	a.reached.Add(1)
	return agentrpc.Attempt{}, problem.NotFound("attempt", id)
}

// newTestAutomation is a real automation service over its own store and
// history, running on the targets of inv (the relay agent, relay-1, is
// one) with the step kinds catalog knows, its engine driving runs as the
// leader until the test ends.
func newTestAutomation(t testing.TB, inv *assets.Service, principals automation.Principals, catalog jobspec.Catalog) *automation.Service {
	t.Helper()
	hooks := automation.NewHooks()
	store := statetest.NewStore(t, agentrpc.Domain(agentrpc.Hooks{Attempt: hooks.Attempt, AgentUp: hooks.AgentUp}),
		automation.Domain(hooks.RunChanged))
	hist, err := embedded.Open(filepath.Join(t.TempDir(), "history"), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	w := history.NewWriter(hist, history.WriterConfig{Logger: slog.New(slog.DiscardHandler)})
	agents := &offlineAgents{}
	svc, err := automation.New(automation.Config{}, automation.Deps{Applier: &statetest.Applier{Store: store}, Store: store,
		Logger: slog.New(slog.DiscardHandler), IsLeader: func() bool { return true }, Agents: agents, Inventory: inv,
		Catalog: catalog, Principals: principals, History: w, HistoryReader: hist, Hooks: hooks})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		w.Close(context.Background())
		hist.Close()
		if n := agents.reached.Load(); n > 0 {
			t.Errorf("the automation engine called the offline agents %d times", n)
		}
	})
	return svc
}

// caseJobYAML runs noop on the relay agent with a greeting parameter.
const caseJobYAML = `description: Says hello on the relay
params:
  - {name: greeting, type: string, default: hello}
targets: {names: [relay-1]}
steps:
  - id: say
    uses: noop
    with: {outputs: {said: "${{ params.greeting }}"}}
`

// caseJobYAML2 is caseJobYAML with another description: a second version.
var caseJobYAML2 = strings.Replace(caseJobYAML, "Says hello", "Greets", 1)

// caseJobJSON is caseJobYAML as JSON.
const caseJobJSON = `{"description":"Says hello on the relay","params":[{"name":"greeting","type":"string","default":"hello"}],` +
	`"targets":{"names":["relay-1"]},"steps":[{"id":"say","uses":"noop","with":{"outputs":{"said":"${{ params.greeting }}"}}}]}`

// caseApprovalYAML asks a person before it says hello.
const caseApprovalYAML = `targets: {names: [relay-1]}
steps:
  - id: gate
    uses: approval
    with: {message: "Say hello on the relay?", timeout: 1h}
  - id: say
    uses: noop
    needs: [gate]
`

// caseForbidYAML is caseJobYAML allowing one run at a time.
const caseForbidYAML = caseJobYAML + "concurrency: forbid\n"

// caseBadJobYAML has a problem in every step.
const caseBadJobYAML = `targets: {names: [relay-1]}
steps:
  - id: first
    uses: nope
  - id: second
    uses: noop
    needs: [chek]
    when: params.nope ==
  - id: third
    uses: noop
    with: {lines: many}
`

// caseJob saves each body in turn as a version of job name, as the
// fixture's admin.
func caseJob(t *testing.T, f *fixture, name string, bodies ...string) automation.JobPutResult {
	t.Helper()
	var res automation.JobPutResult
	for _, b := range bodies {
		var err error
		if res, err = f.srv.automation.PutJob(context.Background(), casePrincipal(t, f.ident, f.ident.adminToken), name, []byte(b)); err != nil {
			t.Fatalf("save job %s: %v", name, err)
		}
	}
	return res
}

// withJob saves versions of job name before the request.
func withJob(name string, bodies ...string) func(t *testing.T, f *fixture) prepared {
	return func(t *testing.T, f *fixture) prepared {
		t.Helper()
		caseJob(t, f, name, bodies...)
		return prepared{}
	}
}

// caseRun starts a run of job as the fixture's admin.
func caseRun(t *testing.T, f *fixture, job string) automation.RunView {
	t.Helper()
	v, err := f.srv.automation.StartRun(context.Background(), casePrincipal(t, f.ident, f.ident.adminToken), job, automation.RunRequest{})
	if err != nil {
		t.Fatalf("start a run of %s: %v", job, err)
	}
	return v
}

// waitRun polls run id until ok holds of it; the engine decides on its
// own goroutine, and its changes have no channel a test can watch.
func waitRun(t *testing.T, f *fixture, id, what string, ok func(automation.RunView) bool) automation.RunView {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, err := f.srv.automation.GetRun(context.Background(), casePrincipal(t, f.ident, f.ident.adminToken), id)
		if err == nil && ok(v) {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s is not %s: %+v, %v", id, what, v, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitingForAgent says the engine has looked at the run and found the
// relay agent away.
func waitingForAgent(v automation.RunView) bool {
	return v.Status == automation.RunWaiting && strings.Contains(v.Reason, "waiting for the agent of relay-1")
}

// pendingApproval says the engine has asked for approval of step gate.
func pendingApproval(v automation.RunView) bool {
	return len(v.Approvals) == 1 && v.Approvals[0].Step == "gate" && v.Approvals[0].Status == automation.ApprovalPending
}

// withRun saves job "hello" (of body) and starts a run of it that waits
// for its agent; $id is the run's ID.
func withRun(body string) func(t *testing.T, f *fixture) prepared {
	return func(t *testing.T, f *fixture) prepared {
		t.Helper()
		caseJob(t, f, "hello", body)
		v := caseRun(t, f, "hello")
		waitRun(t, f, v.ID, "waiting for its agent", waitingForAgent)
		return caseVars("id", v.ID)
	}
}

// withCanceledRun is withRun with the run canceled and finished.
func withCanceledRun(t *testing.T, f *fixture) prepared {
	t.Helper()
	p := withRun(caseJobYAML)(t, f)
	id := p.vars["id"]
	if _, err := f.srv.automation.CancelRun(context.Background(), casePrincipal(t, f.ident, f.ident.adminToken), id, nil); err != nil {
		t.Fatal(err)
	}
	waitRun(t, f, id, "canceled", func(v automation.RunView) bool { return v.Status == automation.RunCanceled })
	return p
}

// withApproval saves job "gate" (caseApprovalYAML) and starts a run that
// waits for approval of step gate; with decided, the admin has approved
// it already. $id is the run's ID.
func withApproval(decided bool) func(t *testing.T, f *fixture) prepared {
	return func(t *testing.T, f *fixture) prepared {
		t.Helper()
		caseJob(t, f, "gate", caseApprovalYAML)
		v := caseRun(t, f, "gate")
		waitRun(t, f, v.ID, "waiting for approval", pendingApproval)
		if decided {
			if _, err := f.srv.automation.Decide(context.Background(), casePrincipal(t, f.ident, f.ident.adminToken), v.ID, "gate",
				automation.ApprovalDecision{Approve: true}); err != nil {
				t.Fatal(err)
			}
		}
		return caseVars("id", v.ID)
	}
}

// wantFields checks that a 400 names every field, in error.details.
func wantFields(fields ...string) func(*testing.T, *responseUnderTest) {
	return func(t *testing.T, rec *responseUnderTest) {
		t.Helper()
		for _, f := range fields {
			if !strings.Contains(string(rec.body), `"field":"`+f+`"`) {
				t.Errorf("no field %s in %s", f, rec.body)
			}
		}
	}
}

func automationCases() []routeCase {
	const js, yml = "application/json", "application/yaml"
	putResult := func(status, version int, unchanged bool) func(*testing.T, *responseUnderTest) {
		return func(t *testing.T, rec *responseUnderTest) {
			r := decodeInto[automation.JobPutResult](t, rec)
			if r.Version.Version != version || r.Job.Latest != version || r.Unchanged != unchanged || r.Version.CreatedBy != "admin" ||
				r.Version.Digest == "" || rec.status != status {
				t.Fatalf("saved %s", rec.body)
			}
		}
	}
	run := func(check func(t *testing.T, v automation.RunView)) func(*testing.T, *responseUnderTest) {
		return func(t *testing.T, rec *responseUnderTest) {
			check(t, decodeInto[automation.RunView](t, rec))
		}
	}
	return []routeCase{
		{name: "a job is saved from YAML as its first version", method: "PUT", target: "/api/v1/jobs/hello", contentType: yml,
			body: caseJobYAML, want: 201, check: func(t *testing.T, rec *responseUnderTest) {
				putResult(201, 1, false)(t, rec)
				if r := decodeInto[automation.JobPutResult](t, rec); r.Version.Source != caseJobYAML || r.Job.Description != "Says hello on the relay" {
					t.Fatalf("saved %s", rec.body)
				}
			}},
		{name: "a job is saved from JSON as its first version", method: "PUT", target: "/api/v1/jobs/hello", contentType: js,
			body: caseJobJSON, want: 201, check: putResult(201, 1, false)},
		{name: "a changed job is saved as its next version", method: "PUT", target: "/api/v1/jobs/hello", contentType: yml,
			body: caseJobYAML2, want: 200, prepare: withJob("hello", caseJobYAML), check: putResult(200, 2, false)},
		{name: "a job saved unchanged makes no version", method: "PUT", target: "/api/v1/jobs/hello", contentType: yml,
			body: caseJobYAML, want: 200, prepare: withJob("hello", caseJobYAML), check: putResult(200, 1, true)},
		{name: "the same job as JSON is unchanged too", method: "PUT", target: "/api/v1/jobs/hello", contentType: js,
			body: caseJobJSON, want: 200, prepare: withJob("hello", caseJobYAML), check: putResult(200, 1, true)},
		{name: "a job with a problem in every step is a 400 naming each path", method: "PUT", target: "/api/v1/jobs/bad",
			contentType: yml, body: caseBadJobYAML, want: 400,
			check: wantFields("steps[0].uses", "steps[1].needs[0]", "steps[1].when", "steps[2].with.lines")},
		{name: "a job whose body names another job is a 400 naming name", method: "PUT", target: "/api/v1/jobs/hello",
			contentType: yml, body: "name: other\n" + caseJobYAML, want: 400, check: wantError("invalid_input", "name")},
		{name: "a job with a bad name is a 400 naming name", method: "PUT", target: "/api/v1/jobs/Hello", contentType: yml,
			body: caseJobYAML, want: 400, check: wantError("invalid_input", "name")},
		{name: "an empty job is a 400 naming body", method: "PUT", target: "/api/v1/jobs/hello", contentType: yml, body: "\n",
			want: 400, check: wantError("invalid_input", "body")},
		{name: "a job sent as text is a 415", method: "PUT", target: "/api/v1/jobs/hello", contentType: "text/plain",
			body: caseJobYAML, want: 415},

		{name: "jobs are listed", method: "GET", target: "/api/v1/jobs", want: 200, prepare: withJob("hello", caseJobYAML, caseJobYAML2),
			check: func(t *testing.T, rec *responseUnderTest) {
				l := decodeInto[struct{ Items []automation.Job }](t, rec)
				if len(l.Items) != 1 || l.Items[0].Name != "hello" || l.Items[0].Latest != 2 || l.Items[0].Description != "Greets on the relay" {
					t.Fatalf("list %s", rec.body)
				}
			}},
		{name: "an empty job list is an empty array", method: "GET", target: "/api/v1/jobs", want: 200,
			check: func(t *testing.T, rec *responseUnderTest) {
				if !strings.Contains(string(rec.body), `"items":[]`) {
					t.Fatalf("list %s", rec.body)
				}
			}},
		{name: "a job is read with its newest version", method: "GET", target: "/api/v1/jobs/hello", want: 200,
			prepare: withJob("hello", caseJobYAML, caseJobYAML2), check: func(t *testing.T, rec *responseUnderTest) {
				if d := decodeInto[automation.JobDetail](t, rec); d.Version.Version != 2 || d.Version.Source != caseJobYAML2 || len(d.Version.Spec) == 0 {
					t.Fatalf("job %s", rec.body)
				}
			}},
		{name: "an older version of a job is read", method: "GET", target: "/api/v1/jobs/hello?version=1", want: 200,
			prepare: withJob("hello", caseJobYAML, caseJobYAML2), check: func(t *testing.T, rec *responseUnderTest) {
				if d := decodeInto[automation.JobDetail](t, rec); d.Version.Version != 1 || d.Version.Source != caseJobYAML || d.Latest != 2 {
					t.Fatalf("job %s", rec.body)
				}
			}},
		{name: "a job version that is not a number is a 400 naming version", method: "GET", target: "/api/v1/jobs/hello?version=0",
			want: 400, prepare: withJob("hello", caseJobYAML), check: wantError("invalid_input", "version")},
		{name: "a job version never saved is a 404", method: "GET", target: "/api/v1/jobs/hello?version=9", want: 404,
			prepare: withJob("hello", caseJobYAML)},
		{name: "an unknown job is a 404", method: "GET", target: "/api/v1/jobs/nope", want: 404},
		{name: "a job's versions are listed newest first without their source", method: "GET", target: "/api/v1/jobs/hello/versions",
			want: 200, prepare: withJob("hello", caseJobYAML, caseJobYAML2), check: func(t *testing.T, rec *responseUnderTest) {
				l := decodeInto[struct{ Items []automation.JobVersion }](t, rec)
				if len(l.Items) != 2 || l.Items[0].Version != 2 || l.Items[1].Version != 1 || l.Items[0].Source != "" || l.Items[0].Digest == "" {
					t.Fatalf("versions %s", rec.body)
				}
			}},
		{name: "the versions of an unknown job are a 404", method: "GET", target: "/api/v1/jobs/nope/versions", want: 404},
		{name: "a good definition validates without being saved", method: "POST", target: "/api/v1/jobs/hello/validate",
			contentType: yml, body: caseApprovalYAML, want: 200, check: func(t *testing.T, rec *responseUnderTest) {
				if strings.TrimSpace(string(rec.body)) != `{"valid":true}` {
					t.Fatalf("validation %s", rec.body)
				}
			}},
		{name: "a bad definition fails validation naming each path", method: "POST", target: "/api/v1/jobs/bad/validate",
			contentType: yml, body: caseBadJobYAML, want: 400,
			check: wantFields("steps[0].uses", "steps[1].needs[0]", "steps[1].when", "steps[2].with.lines")},
		{name: "a definition to validate sent as text is a 415", method: "POST", target: "/api/v1/jobs/hello/validate",
			contentType: "text/plain", body: caseJobYAML, want: 415},
		{name: "a job is deleted", method: "DELETE", target: "/api/v1/jobs/hello", want: 204, prepare: withJob("hello", caseJobYAML)},
		{name: "deleting a job with a run not finished is a 409", method: "DELETE", target: "/api/v1/jobs/hello", want: 409,
			prepare: withRun(caseJobYAML), check: wantError("job_running", "")},
		{name: "deleting an unknown job is a 404", method: "DELETE", target: "/api/v1/jobs/nope", want: 404},

		{name: "a run is started with its parameters", method: "POST", target: "/api/v1/jobs/hello/runs", contentType: js,
			body: `{"params":{"greeting":"hi"}}`, want: 201, prepare: withJob("hello", caseJobYAML),
			check: func(t *testing.T, rec *responseUnderTest) {
				v := decodeInto[automation.RunView](t, rec)
				if rec.header.Get("Location") != "/api/v1/runs/"+v.ID || v.Status != automation.RunQueued || v.Trigger.Kind != "api" ||
					v.Version != 1 || len(v.Targets) != 1 || v.Targets[0].Name != "relay-1" || v.Targets[0].AgentID != caseRelay.ID {
					t.Fatalf("run %s (Location %q)", rec.body, rec.header.Get("Location"))
				}
				if p, _ := v.Params.(map[string]any); p["greeting"] != "hi" {
					t.Fatalf("params %v", v.Params)
				}
			}},
		{name: "a run with an unknown parameter is a 400 naming it", method: "POST", target: "/api/v1/jobs/hello/runs",
			contentType: js, body: `{"params":{"greting":"hi"}}`, want: 400, prepare: withJob("hello", caseJobYAML),
			check: wantFields("params.greting")},
		{name: "a run on a target the job does not name is a 400 naming it", method: "POST", target: "/api/v1/jobs/hello/runs",
			contentType: js, body: `{"targets":["web-9"]}`, want: 400, prepare: withJob("hello", caseJobYAML),
			check: wantError("invalid_input", "targets[0]")},
		{name: "a run request with an unknown field is a 400 naming it", method: "POST", target: "/api/v1/jobs/hello/runs",
			contentType: js, body: `{"parameters":{}}`, want: 400, prepare: withJob("hello", caseJobYAML),
			check: wantError("invalid_input", "parameters")},
		{name: "a run of an unknown job is a 404", method: "POST", target: "/api/v1/jobs/nope/runs", contentType: js, body: `{}`, want: 404},
		{name: "a second run of a job that forbids concurrency is a 409", method: "POST", target: "/api/v1/jobs/hello/runs",
			contentType: js, body: `{}`, want: 409, prepare: withRun(caseForbidYAML), check: wantError("job_running", "")},

		{name: "runs are listed by job and target without their targets", method: "GET",
			target: "/api/v1/runs?job=hello&target=relay-1&since=2020-01-01T00:00:00Z&limit=10", want: 200, prepare: withRun(caseJobYAML),
			check: func(t *testing.T, rec *responseUnderTest) {
				p := decodeInto[automation.RunPage](t, rec)
				if len(p.Items) != 1 || p.Items[0].Targets != nil || p.Items[0].Summary.Targets != 1 || p.Next != "" {
					t.Fatalf("page %s", rec.body)
				}
			}},
		{name: "runs are listed by status", method: "GET", target: "/api/v1/runs?status=canceled", want: 200, prepare: withCanceledRun,
			check: func(t *testing.T, rec *responseUnderTest) {
				if p := decodeInto[automation.RunPage](t, rec); len(p.Items) != 1 || p.Items[0].Status != automation.RunCanceled {
					t.Fatalf("page %s", rec.body)
				}
			}},
		{name: "runs of another job are not listed", method: "GET", target: "/api/v1/runs?job=other", want: 200, prepare: withRun(caseJobYAML),
			check: func(t *testing.T, rec *responseUnderTest) {
				if !strings.Contains(string(rec.body), `"items":[]`) {
					t.Fatalf("page %s", rec.body)
				}
			}},
		{name: "a page of runs holds a cursor to the next", method: "GET", target: "/api/v1/runs?limit=1", want: 200,
			prepare: func(t *testing.T, f *fixture) prepared {
				caseJob(t, f, "hello", caseJobYAML)
				caseRun(t, f, "hello")
				caseRun(t, f, "hello")
				return prepared{}
			},
			check: func(t *testing.T, rec *responseUnderTest) {
				if p := decodeInto[automation.RunPage](t, rec); len(p.Items) != 1 || p.Next == "" {
					t.Fatalf("page %s", rec.body)
				}
			}},
		{name: "a bad run status is a 400 naming status", method: "GET", target: "/api/v1/runs?status=done", want: 400,
			check: wantError("invalid_input", "status")},
		{name: "bad run filters are a 400 naming each", method: "GET", target: "/api/v1/runs?limit=0&since=yesterday", want: 400,
			check: wantFields("limit", "since")},
		{name: "a run is read with why it waits", method: "GET", target: "/api/v1/runs/$id", want: 200, prepare: withRun(caseJobYAML),
			check: run(func(t *testing.T, v automation.RunView) {
				if !waitingForAgent(v) || len(v.Targets) != 1 || v.Targets[0].Status != automation.RunWaiting ||
					len(v.Targets[0].Steps) != 1 || v.Targets[0].Steps[0].ID != "say" || v.StartedAt == nil {
					t.Fatalf("run %+v", v)
				}
			})},
		{name: "a run waiting for approval shows it", method: "GET", target: "/api/v1/runs/$id", want: 200, prepare: withApproval(false),
			check: run(func(t *testing.T, v automation.RunView) {
				if !pendingApproval(v) || v.Approvals[0].Message != "Say hello on the relay?" || v.Targets[0].Steps[0].Status != "waiting" {
					t.Fatalf("run %+v", v)
				}
			})},
		{name: "an unknown run is a 404", method: "GET", target: "/api/v1/runs/run_0000000000000000", want: 404},
		{name: "a run's output is a page of JSON", method: "GET", target: "/api/v1/runs/$id/logs?target=relay-1&step=say&limit=10",
			want: 200, prepare: withRun(caseJobYAML), check: func(t *testing.T, rec *responseUnderTest) {
				// No agent ran the step, so there is nothing to show yet.
				if p := decodeInto[automation.LogPage](t, rec); len(p.Items) != 0 {
					t.Fatalf("page %s", rec.body)
				}
			}},
		{name: "a run's output downloads as text", method: "GET", target: "/api/v1/runs/$id/logs?format=text", want: 200,
			prepare: withRun(caseJobYAML), check: func(t *testing.T, rec *responseUnderTest) {
				if !strings.HasPrefix(rec.contentType, "text/plain") || !strings.Contains(rec.header.Get("Content-Disposition"), ".log") {
					t.Fatalf("Content-Type %q, Content-Disposition %q", rec.contentType, rec.header.Get("Content-Disposition"))
				}
			}},
		{name: "a run's output asked for as text by Accept is text", method: "GET", target: "/api/v1/runs/$id/logs", want: 200,
			header: map[string]string{"Accept": "text/plain"}, prepare: withRun(caseJobYAML),
			check: func(t *testing.T, rec *responseUnderTest) {
				if !strings.HasPrefix(rec.contentType, "text/plain") {
					t.Fatalf("Content-Type %q", rec.contentType)
				}
			}},
		{name: "the output of a target the run lacks is a 400 naming target", method: "GET", target: "/api/v1/runs/$id/logs?target=web-9",
			want: 400, prepare: withRun(caseJobYAML), check: wantError("invalid_input", "target")},
		{name: "a bad output limit is a 400 naming limit", method: "GET", target: "/api/v1/runs/$id/logs?limit=-1", want: 400,
			prepare: withRun(caseJobYAML), check: wantError("invalid_input", "limit")},
		{name: "the output of an unknown run is a 404", method: "GET", target: "/api/v1/runs/run_0000000000000000/logs", want: 404},

		{name: "a run is canceled", method: "POST", target: "/api/v1/runs/$id/cancel", want: 200, prepare: withRun(caseJobYAML),
			check: run(func(t *testing.T, v automation.RunView) {
				if v.CancelRequested == nil || v.CanceledBy != "admin" {
					t.Fatalf("run %+v", v)
				}
			})},
		{name: "one target of a run is canceled", method: "POST", target: "/api/v1/runs/$id/cancel", contentType: js,
			body: `{"targets":["relay-1"]}`, want: 200, prepare: withRun(caseJobYAML)},
		{name: "canceling a target the run lacks is a 400 naming targets", method: "POST", target: "/api/v1/runs/$id/cancel",
			contentType: js, body: `{"targets":["web-9"]}`, want: 400, prepare: withRun(caseJobYAML), check: wantError("invalid_input", "targets")},
		{name: "canceling a finished run is a 409", method: "POST", target: "/api/v1/runs/$id/cancel", want: 409, prepare: withCanceledRun,
			check: wantError("run_finished", "")},
		{name: "canceling an unknown run is a 404", method: "POST", target: "/api/v1/runs/run_0000000000000000/cancel", want: 404},
		{name: "a canceled run is rerun", method: "POST", target: "/api/v1/runs/$id/rerun", contentType: js, body: `{"mode":"failed"}`,
			want: 201, prepare: withCanceledRun, check: func(t *testing.T, rec *responseUnderTest) {
				v := decodeInto[automation.RunView](t, rec)
				if v.Trigger.Kind != "rerun" || v.Trigger.RerunOf == "" || v.Trigger.RerunOf == v.ID || v.Status != automation.RunQueued ||
					rec.header.Get("Location") != "/api/v1/runs/"+v.ID || len(v.Targets) != 1 {
					t.Fatalf("rerun %s", rec.body)
				}
			}},
		{name: "a run is rerun with the default mode", method: "POST", target: "/api/v1/runs/$id/rerun", want: 201, prepare: withCanceledRun},
		{name: "rerunning a run not finished is a 409", method: "POST", target: "/api/v1/runs/$id/rerun", want: 409,
			prepare: withRun(caseJobYAML), check: wantError("run_active", "")},
		{name: "a rerun with a bad mode is a 400 naming mode", method: "POST", target: "/api/v1/runs/$id/rerun", contentType: js,
			body: `{"mode":"some"}`, want: 400, prepare: withCanceledRun, check: wantError("invalid_input", "mode")},
		{name: "rerunning an unknown run is a 404", method: "POST", target: "/api/v1/runs/run_0000000000000000/rerun", want: 404},

		{name: "an approval is approved", method: "POST", target: "/api/v1/runs/$id/approvals/gate", contentType: js,
			body: `{"approve":true,"comment":"go ahead"}`, want: 200, prepare: withApproval(false),
			check: func(t *testing.T, rec *responseUnderTest) {
				a := decodeInto[automation.Approval](t, rec)
				if a.Status != automation.ApprovalApproved || a.DecidedBy != "admin" || a.Comment != "go ahead" || a.DecidedAt == nil {
					t.Fatalf("approval %s", rec.body)
				}
			}},
		{name: "an approval is rejected", method: "POST", target: "/api/v1/runs/$id/approvals/gate", contentType: js,
			body: `{"approve":false}`, want: 200, prepare: withApproval(false), check: func(t *testing.T, rec *responseUnderTest) {
				if a := decodeInto[automation.Approval](t, rec); a.Status != automation.ApprovalRejected {
					t.Fatalf("approval %s", rec.body)
				}
			}},
		{name: "deciding an approval again is a 409", method: "POST", target: "/api/v1/runs/$id/approvals/gate", contentType: js,
			body: `{"approve":false}`, want: 409, prepare: withApproval(true), check: wantError("approval_decided", "")},
		{name: "deciding a step that asked for no approval is a 409", method: "POST", target: "/api/v1/runs/$id/approvals/say",
			contentType: js, body: `{"approve":true}`, want: 409, prepare: withApproval(false), check: wantError("approval_not_requested", "")},
		{name: "an approval with a long comment is a 400 naming comment", method: "POST", target: "/api/v1/runs/$id/approvals/gate",
			contentType: js, body: `{"approve":true,"comment":"` + strings.Repeat("x", 1025) + `"}`, want: 400, prepare: withApproval(false),
			check: wantError("invalid_input", "comment")},
		{name: "deciding an approval of an unknown run is a 404", method: "POST", target: "/api/v1/runs/run_0000000000000000/approvals/gate",
			contentType: js, body: `{"approve":true}`, want: 404},
	}
}

func TestAutomationRoutesAnswer503WithoutTheService(t *testing.T) {
	f := newFixture(t, Config{}, func(d *Deps) { d.Automation = nil })
	for _, target := range []string{"/api/v1/jobs", "/api/v1/runs/run_0000000000000000"} {
		rec := f.do(t, newRequest("GET", target, "", ""))
		if rec.Code != 503 || !strings.Contains(rec.Body.String(), "automation_unavailable") {
			t.Fatalf("GET %s: status %d body %s", target, rec.Code, rec.Body)
		}
	}
}
