package server

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opsconductor/opsconductor/agent/enroll"
	"github.com/opsconductor/opsconductor/agent/facts"
	"github.com/opsconductor/opsconductor/agent/node"
	"github.com/opsconductor/opsconductor/controller/apiclient"
	"github.com/opsconductor/opsconductor/controller/history/postgres/pgtest"
)

// testAgent is a real agent (enrolment, mTLS stream, executor, outbox)
// running in the test's process.
type testAgent struct {
	name, id string
	stop     func()
}

// startAgents enrols one agent per name with tags and runs them until the
// test ends (or stop); it returns once every one is up.
func startAgents(ctx context.Context, t *testing.T, r *running, names []string, tags map[string]string) []*testAgent {
	t.Helper()
	tok, err := r.client.CreateJoinToken(ctx, apiclient.CreateJoinTokenRequest{TTL: "10m", MaxUses: len(names), Tags: tags})
	if err != nil {
		t.Fatal(err)
	}
	var out []*testAgent
	for _, name := range names {
		dir := filepath.Join(t.TempDir(), name)
		res, err := enroll.Join(ctx, enroll.Options{Controllers: []string{r.ready.AgentAddr}, Token: tok.Token, CAPin: tok.CAPin,
			DataDir: dir, Name: name, Version: "test", Facts: facts.Gather()})
		if err != nil {
			t.Fatalf("join %s: %v", name, err)
		}
		id, err := enroll.LoadIdentity(dir)
		if err != nil {
			t.Fatal(err)
		}
		n, err := node.Open(node.Config{Identity: id, DataDir: dir, Controllers: []string{r.ready.AgentAddr},
			PluginDir: filepath.Join(dir, "plugins"), Version: "test", Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		actx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = n.Session.Run(actx) }()
		stopped := false
		a := &testAgent{name: name, id: res.AgentID, stop: func() {
			if !stopped {
				stopped = true
				cancel()
				<-done
				n.Close()
			}
		}}
		t.Cleanup(a.stop)
		out = append(out, a)
	}
	poll(ctx, t, "the agents to be up", func() error {
		for _, a := range out {
			got, err := r.client.GetAgent(ctx, a.id)
			if err != nil {
				return err
			}
			if got.Status != "up" {
				return fmt.Errorf("%s is %s", a.name, got.Status)
			}
		}
		return nil
	})
	return out
}

// waitRun polls a run until it is final.
func waitRun(ctx context.Context, t *testing.T, c *apiclient.Client, id string) apiclient.Run {
	t.Helper()
	var run apiclient.Run
	poll(ctx, t, "run "+id+" to finish", func() error {
		var err error
		if run, err = c.GetRun(ctx, id); err != nil {
			return err
		}
		if !run.Finished() {
			return fmt.Errorf("run is %s (%s)", run.Status, run.Reason)
		}
		return nil
	})
	return run
}

// waitRunStatus polls a run until cond holds.
func waitRunState(ctx context.Context, t *testing.T, c *apiclient.Client, id, what string, cond func(apiclient.Run) bool) apiclient.Run {
	t.Helper()
	var run apiclient.Run
	poll(ctx, t, what, func() error {
		var err error
		if run, err = c.GetRun(ctx, id); err != nil {
			return err
		}
		if !cond(run) {
			return fmt.Errorf("run is %s (%s): %s", run.Status, run.Reason, stepStates(run))
		}
		return nil
	})
	return run
}

// stepStates renders a run's targets and steps: "web-1[build=succeeded …]".
func stepStates(run apiclient.Run) string {
	var parts []string
	for _, t := range run.Targets {
		var steps []string
		for _, s := range t.Steps {
			steps = append(steps, s.ID+"="+s.Status)
		}
		parts = append(parts, t.Name+":"+t.Status+"["+strings.Join(steps, " ")+"]")
	}
	return strings.Join(parts, " ")
}

func stepOf(t *testing.T, run apiclient.Run, target, step string) apiclient.RunStep {
	t.Helper()
	for _, tg := range run.Targets {
		if tg.Name != target {
			continue
		}
		for _, s := range tg.Steps {
			if s.ID == step {
				return s
			}
		}
	}
	t.Fatalf("run %s has no step %s on %s: %s", run.ID, step, target, stepStates(run))
	return apiclient.RunStep{}
}

func putJob(ctx context.Context, t *testing.T, c *apiclient.Client, name, def string) {
	t.Helper()
	if _, err := c.PutJob(ctx, name, []byte(def)); err != nil {
		t.Fatalf("put job %s: %v", name, err)
	}
}

func startRun(ctx context.Context, t *testing.T, c *apiclient.Client, job string, params map[string]any) apiclient.Run {
	t.Helper()
	run, err := c.StartRun(ctx, job, apiclient.RunRequest{Params: params})
	if err != nil {
		t.Fatalf("start %s: %v", job, err)
	}
	return run
}

const workflowJob = `
name: deploy
params:
  - {name: version, type: string, default: "1.0"}
targets: {tags: {role: web}}
steps:
  - id: build
    uses: shell
    with: {command: "echo version=${{ params.version }}-${{ target.name }} >> $OPSCONDUCTOR_OUTPUT; echo built"}
  - id: check
    uses: shell
    needs: [build]
    with: {command: "test '${{ steps.build.outputs.version }}' = '${{ params.version }}-${{ target.name }}' && echo ok"}
  - id: only-two
    uses: noop
    needs: [check]
    when: 'target.name == "web-2"'
  - id: flaky
    uses: shell
    needs: [check]
    with: {command: "test ${{ target.name }} != web-3"}
  - id: after
    uses: noop
    needs: [flaky]
  - id: cleanup
    uses: shell
    on_failure: true
    with: {command: "echo cleaning up ${{ target.name }}"}
`

// TestWorkflowSemanticsOnRealAgents runs one job over three agents:
// outputs feed later steps, when skips, a failure skips what needs it and
// runs the failure handler on that target only.
func TestWorkflowSemanticsOnRealAgents(t *testing.T) {
	r := start(t, testConfig(t.TempDir()))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	startAgents(ctx, t, r, []string{"web-1", "web-2", "web-3"}, map[string]string{"role": "web"})
	putJob(ctx, t, r.client, "deploy", workflowJob)
	run := waitRun(ctx, t, r.client, startRun(ctx, t, r.client, "deploy", map[string]any{"version": "2.5"}).ID)

	want := map[string]map[string]string{
		"web-1": {"build": "succeeded", "check": "succeeded", "only-two": "skipped", "flaky": "succeeded", "after": "succeeded", "cleanup": "skipped"},
		"web-2": {"build": "succeeded", "check": "succeeded", "only-two": "succeeded", "flaky": "succeeded", "after": "succeeded", "cleanup": "skipped"},
		"web-3": {"build": "succeeded", "check": "succeeded", "only-two": "skipped", "flaky": "failed", "after": "skipped", "cleanup": "succeeded"},
	}
	for target, steps := range want {
		for step, status := range steps {
			if got := stepOf(t, run, target, step); got.Status != status {
				t.Errorf("%s/%s = %s (%s), want %s", target, step, got.Status, got.Error, status)
			}
		}
	}
	if run.Status != "failed" || run.Summary.Succeeded != 2 || run.Summary.Failed != 1 {
		t.Errorf("run %s, summary %+v; want failed with 2 succeeded and 1 failed", run.Status, run.Summary)
	}
	if got := stepOf(t, run, "web-1", "build").Outputs["version"]; got != "2.5-web-1" {
		t.Errorf("build output version = %q", got)
	}
	logs, err := r.client.AllRunLogs(ctx, run.ID, apiclient.RunLogQuery{Target: "web-3", Step: "cleanup"})
	if err != nil {
		t.Fatal(err)
	}
	if len(logs) != 1 || logs[0].Data != "cleaning up web-3\n" {
		t.Errorf("cleanup log on web-3 = %+v", logs)
	}

	// Rerun only what failed: one target. Resume: keep its earlier steps.
	again, err := r.client.Rerun(ctx, run.ID, apiclient.RerunFailed)
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Targets) != 1 || again.Targets[0].Name != "web-3" || again.Trigger.RerunOf != run.ID {
		t.Fatalf("rerun failed: targets %s, trigger %+v", stepStates(again), again.Trigger)
	}
	waitRun(ctx, t, r.client, again.ID)
	resumed, err := r.client.Rerun(ctx, run.ID, apiclient.RerunResume)
	if err != nil {
		t.Fatal(err)
	}
	resumed = waitRun(ctx, t, r.client, resumed.ID)
	if b := stepOf(t, resumed, "web-3", "build"); b.AttemptID != "" || b.Outputs["version"] != "2.5-web-3" {
		t.Errorf("resume ran build again or lost its output: %+v", b)
	}
	if f := stepOf(t, resumed, "web-3", "flaky"); f.AttemptID == "" || f.Status != "failed" {
		t.Errorf("resume did not run the failed step again: %+v", f)
	}
}

// TestRolloutStopsAtTheFailureThreshold: batches of one, no failure
// allowed: the target after the failing one never starts.
func TestRolloutStopsAtTheFailureThreshold(t *testing.T) {
	r := start(t, testConfig(t.TempDir()))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	startAgents(ctx, t, r, []string{"web-1", "web-2", "web-3"}, map[string]string{"role": "web"})
	putJob(ctx, t, r.client, "rolling", `
name: rolling
targets: {tags: {role: web}}
rollout: {batch_size: 1, max_fail_percent: 0}
steps:
  - {id: restart, uses: shell, with: {command: "test ${{ target.name }} != web-2"}}
`)
	run := waitRun(ctx, t, r.client, startRun(ctx, t, r.client, "rolling", nil).ID)
	got := map[string]string{}
	for _, tg := range run.Targets {
		got[tg.Name] = tg.Status
	}
	want := map[string]string{"web-1": "succeeded", "web-2": "failed", "web-3": "skipped"}
	if fmt.Sprint(got) != fmt.Sprint(want) || run.Status != "failed" || !strings.Contains(run.Reason, "max_fail_percent") {
		t.Fatalf("targets %v, run %s (%s); want %v, failed by max_fail_percent", got, run.Status, run.Reason, want)
	}
	if s := stepOf(t, run, "web-3", "restart"); s.AttemptID != "" {
		t.Errorf("web-3 was started: %+v", s)
	}
}

// TestConcurrencyAndApprovals: forbid refuses a second run, queue holds
// it until the first ends; approvals gate a run and time out.
func TestConcurrencyAndApprovals(t *testing.T) {
	r := start(t, testConfig(t.TempDir()))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	startAgents(ctx, t, r, []string{"db-1"}, map[string]string{"role": "db"})
	job := func(name, concurrency, timeout string) string {
		return fmt.Sprintf(`
name: %s
targets: {tags: {role: db}}
concurrency: %s
steps:
  - {id: gate, uses: approval, with: {timeout: %s, message: "go?"}}
  - {id: work, uses: noop, needs: [gate]}
`, name, concurrency, timeout)
	}
	waitApproval := func(id string) apiclient.Run {
		return waitRunState(ctx, t, r.client, id, "an approval request", func(run apiclient.Run) bool {
			return len(run.Approvals) == 1 && run.Approvals[0].Status == "pending" && run.Status == "waiting"
		})
	}

	putJob(ctx, t, r.client, "forbid", job("forbid", "forbid", "1h"))
	first := startRun(ctx, t, r.client, "forbid", nil)
	waitApproval(first.ID)
	if _, err := r.client.StartRun(ctx, "forbid", apiclient.RunRequest{}); httpStatus(err) != http.StatusConflict {
		t.Fatalf("a second run of a forbid job: %v, want a conflict", err)
	}
	if _, err := r.client.DecideApproval(ctx, first.ID, "gate", false, "not today"); err != nil {
		t.Fatal(err)
	}
	rejected := waitRun(ctx, t, r.client, first.ID)
	if rejected.Status != "failed" || stepOf(t, rejected, "db-1", "work").Status != "skipped" {
		t.Fatalf("a rejected approval: %s %s", rejected.Status, stepStates(rejected))
	}

	putJob(ctx, t, r.client, "queue", job("queue", "queue", "1h"))
	a := startRun(ctx, t, r.client, "queue", nil)
	waitApproval(a.ID)
	b := startRun(ctx, t, r.client, "queue", nil)
	waitRunState(ctx, t, r.client, b.ID, "the second run to queue", func(run apiclient.Run) bool {
		return run.Status == "queued" && strings.Contains(run.Reason, a.ID)
	})
	c := startRun(ctx, t, r.client, "queue", nil)
	if _, err := r.client.CancelRun(ctx, c.ID, nil); err != nil {
		t.Fatal(err)
	}
	if got := waitRun(ctx, t, r.client, c.ID); got.Status != "canceled" || got.StartedAt == nil {
		t.Fatalf("a run canceled while queued: %s (%s)", got.Status, got.Reason)
	}
	if _, err := r.client.DecideApproval(ctx, a.ID, "gate", true, ""); err != nil {
		t.Fatal(err)
	}
	if got := waitRun(ctx, t, r.client, a.ID); got.Status != "succeeded" {
		t.Fatalf("approved run: %s %s", got.Status, stepStates(got))
	}
	waitApproval(b.ID)
	if _, err := r.client.DecideApproval(ctx, b.ID, "gate", true, ""); err != nil {
		t.Fatal(err)
	}
	if got := waitRun(ctx, t, r.client, b.ID); got.Status != "succeeded" {
		t.Fatalf("queued run: %s %s", got.Status, stepStates(got))
	}

	putJob(ctx, t, r.client, "expiring", job("expiring", "allow", "1s"))
	expired := waitRun(ctx, t, r.client, startRun(ctx, t, r.client, "expiring", nil).ID)
	if expired.Status != "failed" || len(expired.Approvals) != 1 || expired.Approvals[0].Status != "expired" {
		t.Fatalf("an approval past its timeout: run %s, approvals %+v", expired.Status, expired.Approvals)
	}
}

// TestCancelAndRetries: a cancel stops the step's process within
// seconds; a failing step is retried with backoff until it passes.
func TestCancelAndRetries(t *testing.T) {
	r := start(t, testConfig(t.TempDir()))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	startAgents(ctx, t, r, []string{"app-1"}, map[string]string{"role": "app"})
	putJob(ctx, t, r.client, "slow", `
name: slow
targets: {names: [app-1]}
steps:
  - {id: sleep, uses: shell, with: {command: "echo started; sleep 60"}}
  - {id: never, uses: noop, needs: [sleep]}
`)
	run := startRun(ctx, t, r.client, "slow", nil)
	waitRunState(ctx, t, r.client, run.ID, "the step to run", func(run apiclient.Run) bool {
		return len(run.Targets) == 1 && stepOf(t, run, "app-1", "sleep").StartedAt != nil
	})
	asked := time.Now()
	if _, err := r.client.CancelRun(ctx, run.ID, nil); err != nil {
		t.Fatal(err)
	}
	done := waitRun(ctx, t, r.client, run.ID)
	if took := time.Since(asked); took > 10*time.Second {
		t.Errorf("cancel took %s", took)
	}
	if done.Status != "canceled" || stepOf(t, done, "app-1", "sleep").Status != "canceled" || stepOf(t, done, "app-1", "never").Status != "canceled" {
		t.Fatalf("canceled run: %s %s", done.Status, stepStates(done))
	}

	counter := filepath.Join(t.TempDir(), "tries")
	if err := os.WriteFile(counter, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	putJob(ctx, t, r.client, "flaky", fmt.Sprintf(`
name: flaky
targets: {names: [app-1]}
steps:
  - id: try
    uses: shell
    retries: {count: 3, backoff: 200ms}
    with: {command: "echo x >> %s; test $(wc -l < %s) -ge 3"}
`, counter, counter))
	got := waitRun(ctx, t, r.client, startRun(ctx, t, r.client, "flaky", nil).ID)
	step := stepOf(t, got, "app-1", "try")
	if got.Status != "succeeded" || step.Try != 3 || len(step.Attempts) != 3 {
		t.Fatalf("retried step: run %s, try %d, attempts %v", got.Status, step.Try, step.Attempts)
	}
}

// TestFinishedRunsMoveToHistory: past the retention a run leaves the
// replicated state and is still read, listed and its log fetched, from
// either history backend.
func TestFinishedRunsMoveToHistory(t *testing.T) {
	tests := []struct {
		name    string
		history func(t *testing.T) string
	}{
		{"embedded", func(*testing.T) string { return "" }},
		{"postgres", func(t *testing.T) string { return pgtest.NewDatabase(t) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t.TempDir())
			cfg.History, cfg.RunRetention = tt.history(t), time.Second
			r := start(t, cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			startAgents(ctx, t, r, []string{"h-1", "h-2"}, map[string]string{"role": "h"})
			putJob(ctx, t, r.client, "report", `
name: report
targets: {tags: {role: h}}
steps:
  - {id: say, uses: shell, with: {command: "echo line one; echo line two"}}
`)
			var ids []string
			for range 3 {
				ids = append(ids, waitRun(ctx, t, r.client, startRun(ctx, t, r.client, "report", nil).ID).ID)
			}
			// The attempts go with the run: once an attempt is gone,
			// only history can answer.
			first, err := r.client.GetRun(ctx, ids[0])
			if err != nil {
				t.Fatal(err)
			}
			attempt := stepOf(t, first, "h-1", "say").AttemptID
			poll(ctx, t, "the run to leave the state", func() error {
				if _, err := r.client.GetAttempt(ctx, attempt); httpStatus(err) != http.StatusNotFound {
					return fmt.Errorf("attempt still there: %v", err)
				}
				return nil
			})
			got, err := r.client.GetRun(ctx, ids[0])
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != "succeeded" || stepOf(t, got, "h-2", "say").Status != "succeeded" {
				t.Fatalf("run read from history: %s %s", got.Status, stepStates(got))
			}
			logs, err := r.client.AllRunLogs(ctx, ids[0], apiclient.RunLogQuery{Target: "h-2"})
			if err != nil || len(logs) != 2 || logs[1].Data != "line two\n" {
				t.Fatalf("log read from history: %+v, %v", logs, err)
			}
			page, err := r.client.ListRuns(ctx, apiclient.RunQuery{Job: "report", Limit: 2})
			if err != nil {
				t.Fatal(err)
			}
			rest, err := r.client.ListRuns(ctx, apiclient.RunQuery{Job: "report", Limit: 2, Cursor: page.Next})
			if err != nil {
				t.Fatal(err)
			}
			var listed []string
			for _, it := range append(page.Items, rest.Items...) {
				listed = append(listed, it.ID)
			}
			slices.Reverse(listed)
			if !slices.Equal(listed, ids) {
				t.Fatalf("listed %v (next %q), want newest first of %v", listed, page.Next, ids)
			}
			byTarget, err := r.client.ListRuns(ctx, apiclient.RunQuery{Target: "h-1", Status: "succeeded"})
			if err != nil || len(byTarget.Items) != 3 {
				t.Fatalf("runs on h-1: %+v, %v", byTarget.Items, err)
			}
		})
	}
}

// httpStatus is the status of an API error (0 for success or another
// error).
func httpStatus(err error) int {
	var apiErr *apiclient.Error
	if errors.As(err, &apiErr) {
		return apiErr.Status
	}
	return 0
}

// TestSecretParamsStayOutOfTheState: a secret parameter is sealed in the
// run, masked in its view, the attempt's stored parameters and the
// step's output, and found nowhere in the data dir; a rerun gets it too.
func TestSecretParamsStayOutOfTheState(t *testing.T) {
	dir := t.TempDir()
	r := start(t, testConfig(dir))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	startAgents(ctx, t, r, []string{"vault-1"}, map[string]string{"role": "vault"})
	putJob(ctx, t, r.client, "login", `
name: login
params:
  - {name: token, type: string, secret: true, required: true}
  - {name: user, type: string, default: ops}
targets: {names: [vault-1]}
steps:
  - id: use
    uses: shell
    with: {command: "echo user ${{ params.user }} token ${{ params.token }}; test $(printf %s '${{ params.token }}' | wc -c) -eq 15"}
`)
	const secret = "Tr0ub4dor-and-3"
	run := waitRun(ctx, t, r.client, startRun(ctx, t, r.client, "login", map[string]any{"token": secret}).ID)
	if run.Status != "succeeded" {
		t.Fatalf("run %s: %s", run.Status, stepStates(run))
	}
	params, _ := run.Params.(map[string]any)
	if params["token"] != "********" || params["user"] != "ops" {
		t.Errorf("run params shown as %v", run.Params)
	}
	step := stepOf(t, run, "vault-1", "use")
	att, err := r.client.GetAttempt(ctx, step.AttemptID)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(att.Params), secret) || !strings.Contains(string(att.Params), "********") {
		t.Errorf("the attempt stores %s", att.Params)
	}
	logs, err := r.client.AllRunLogs(ctx, run.ID, apiclient.RunLogQuery{})
	if err != nil || len(logs) != 1 || strings.Contains(logs[0].Data, secret) || !strings.Contains(logs[0].Data, "user ops token") {
		t.Fatalf("output %+v, %v: want it masked", logs, err)
	}
	again, err := r.client.Rerun(ctx, run.ID, apiclient.RerunAll)
	if err != nil {
		t.Fatal(err)
	}
	if got := waitRun(ctx, t, r.client, again.ID); got.Status != "succeeded" {
		t.Fatalf("rerun %s: the secret did not reach it (%s)", got.Status, stepStates(got))
	}
	if _, err := r.client.StartRun(ctx, "login", apiclient.RunRequest{Params: map[string]any{"token": "abc"}}); httpStatus(err) != http.StatusBadRequest {
		t.Errorf("a 3-character secret: %v, want 400", err)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		assertNoPlaintext(t, path, data, secret)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
