package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opsconductor/opsconductor/agent/enroll"
	"github.com/opsconductor/opsconductor/agent/executor"
	"github.com/opsconductor/opsconductor/agent/outbox"
	"github.com/opsconductor/opsconductor/agent/session"
	"github.com/opsconductor/opsconductor/controller/apiclient"
	"github.com/opsconductor/opsconductor/test/e2e/localcluster"
)

// The failure tests of issue 8 (automation): runs, their attempts and a
// schedule driven through a three-process cluster whose leader is killed
// with SIGKILL, and an agent killed mid-step. The agents run in the test
// process (agent/enroll, session, executor and outbox, as in
// agent_test.go): fifty agent processes would swamp a small machine, and
// what is under test is the controllers.

const (
	// fleetSize agents each take ledgerRuns attempts at once: 200
	// concurrent attempts.
	fleetSize  = 50
	ledgerRuns = 4
	// ledgerLines numbered lines per attempt: half, then a wait for the
	// test's release file (created once the leader is killed, so that the
	// kill lands mid-step in every attempt), then the rest.
	ledgerLines = 40
	// tickEvery is the test schedule's period (tickCron): one second, so
	// that the time without a leader (about a second to elect, and up to
	// a second more before the new leader's scheduler looks) spans a tick,
	// and, with the kill timed late in a second, usually two.
	tickEvery = 1 * time.Second
	tickCron  = "* * * * * *"
	// agentWait is --run-agent-wait: how long a step waits for a target's
	// agent to come back before it fails (10 min by default).
	agentWait = 5 * time.Second
)

// TestAutomationSurvivesLeaderKill runs 200 attempts (4 runs over 50
// agents) and a schedule firing every second on a three-process cluster and
// kills the leader with SIGKILL while every attempt is mid-step. Every run
// must reach a terminal state; no attempt may run twice (each step appends
// its run and target to its agent's ledger file before printing); every
// log line is stored once, and a succeeded attempt's lines are all there;
// every schedule tick from the first to the last has exactly one run,
// including those due while there was no leader.
func TestAutomationSurvivesLeaderKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-process cluster, 50 agents and kills its leader; skipped with -short")
	}
	ctx := testContext(t)
	c := startAutomationCluster(ctx, t)
	leader, err := c.WaitLeader(ctx, localcluster.All())
	if err != nil {
		t.Fatal(err)
	}
	admin := c.Client(leader)
	fleet := startFleet(ctx, t, c, leader, "e2e", fleetSize, map[string]string{"pool": "e2e"})
	waitConnected(t, fleet, leader)

	ledgerDir := t.TempDir()
	putJob(ctx, t, admin, "e2e-ledger", ledgerJob(ledgerDir))
	putJob(ctx, t, admin, "e2e-tick", fmt.Sprintf(`name: e2e-tick
targets: {names: [%s]}
steps:
  - id: tick
    uses: shell
    with: {command: "echo tick"}
`, fleet[0].name))
	// overlap: allow, so that a tick is never skipped because the run of
	// the one before is still going (a run that waits out the failover).
	if err := apiJSON(ctx, c, leader, http.MethodPost, "/api/v1/schedules", map[string]any{"name": "e2e-tick", "job": "e2e-tick",
		"cron": tickCron, "timezone": "UTC", "overlap": "allow"}, nil); err != nil {
		t.Fatalf("create the schedule: %v", err)
	}
	// Two ticks before the kill, so that the ticks span it.
	if _, err := waitTicks(ctx, c, leader, func(ticks []tick) bool { return len(ticks) >= 2 }); err != nil {
		t.Fatalf("the schedule does not fire: %v", err)
	}

	dispatchStart := time.Now()
	runIDs := make([]string, ledgerRuns)
	for i := range runIDs {
		r, err := admin.StartRun(ctx, "e2e-ledger", apiclient.RunRequest{})
		if err != nil {
			t.Fatalf("start run %d: %v", i, err)
		}
		runIDs[i] = r.ID
	}
	// Kill once every attempt has started (its ledger entry is written
	// first); none can finish before the release file exists.
	total := ledgerRuns * fleetSize
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = localcluster.Poll(pctx, 20*time.Millisecond, func(context.Context) error {
		entries, err := readLedgers(ledgerDir)
		if err == nil && len(entries) < total {
			err = fmt.Errorf("%d of %d attempts started", len(entries), total)
		}
		return err
	})
	cancel()
	if err != nil {
		t.Fatalf("the attempts do not all start: %v", err)
	}
	t.Logf("%d attempts started %v after the first run was asked for; killing the leader node%d", total,
		time.Since(dispatchStart).Round(time.Millisecond), leader)
	// The kill is timed to land late in a second, after that second's
	// tick fired and shortly before the next: the time without a leader
	// (an election, then up to a second before the new leader's scheduler
	// looks) then spans two ticks or more, and a scheduler that fired only
	// the latest tick owed would skip the others.
	if err := waitPhase(ctx, 500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	killed, err := c.Kill(ctx, leader)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("SIGKILL sent %v into a second", time.Duration(killed.From.Nanosecond()).Round(time.Millisecond))
	// The steps finish while there is no leader: their results and the
	// rest of their output wait in the agents' outboxes.
	if err := os.WriteFile(filepath.Join(ledgerDir, "release"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	survivors := localcluster.Others(leader)
	newLeader, err := c.WaitLeader(ctx, survivors)
	if err != nil {
		t.Fatal(err)
	}
	elected := time.Since(killed.From)
	waitConnected(t, fleet, newLeader)
	reconnected := time.Since(killed.From)
	t.Logf("failover: node%d leads %v after the kill; all %d agents reconnected after %v", newLeader,
		elected.Round(time.Millisecond), fleetSize, reconnected.Round(time.Millisecond))
	api := c.Client(survivors[0])

	// Every run reaches a terminal state.
	runs := waitRunsFinished(ctx, t, api, runIDs, 60*time.Second)
	finished := time.Since(killed.From)

	// Three ticks after the new leader took over, then the schedule stops.
	ticks, err := waitTicks(ctx, c, survivors[0], func(ticks []tick) bool {
		return len(ticks) > 0 && ticks[len(ticks)-1].fire.After(killed.To.Add(elected+3*tickEvery))
	})
	if err != nil {
		t.Fatalf("the schedule does not fire under the new leader: %v", err)
	}
	if err := apiJSON(ctx, c, survivors[0], http.MethodPost, "/api/v1/schedules/e2e-tick/disable", nil, nil); err != nil {
		t.Fatalf("disable the schedule: %v", err)
	}
	var tickRuns []string
	for _, tk := range ticks {
		tickRuns = append(tickRuns, tk.run)
	}
	waitRunsFinished(ctx, t, api, tickRuns, 30*time.Second)

	t.Run("every attempt ran at most once", func(t *testing.T) {
		entries, err := readLedgers(ledgerDir)
		if err != nil {
			t.Fatal(err)
		}
		count := map[string]int{}
		for _, e := range entries {
			count[e]++
		}
		statuses := map[string]int{}
		for _, r := range runs {
			for _, tg := range r.Targets {
				st := stepOf(tg, "work")
				statuses[st.Status]++
				key := r.ID + " " + tg.Name
				n := count[key]
				delete(count, key)
				switch {
				case n > 1:
					t.Errorf("run %s, target %s: the step ran %d times (attempts %v, %s)", r.ID, tg.Name, n, st.Attempts, st.Status)
				case n == 0:
					// Every attempt had started before the kill.
					t.Errorf("run %s, target %s: the step never ran, yet ended %s (%s)", r.ID, tg.Name, st.Status, st.Error)
				}
				if len(st.Attempts) != 1 {
					t.Errorf("run %s, target %s: %d attempts %v for a step that is not idempotent", r.ID, tg.Name, len(st.Attempts), st.Attempts)
				}
			}
		}
		for k, n := range count {
			t.Errorf("ledger entry %q (%d times) belongs to no target of the runs", k, n)
		}
		t.Logf("%d attempts: %v", total, statuses)
	})

	t.Run("every log line is stored once", func(t *testing.T) {
		complete := 0
		for _, r := range runs {
			lines, err := api.AllRunLogs(ctx, r.ID, apiclient.RunLogQuery{Limit: 1000})
			if err != nil {
				t.Fatalf("logs of run %s: %v", r.ID, err)
			}
			byAttempt := map[string][]apiclient.RunLogLine{}
			for _, l := range lines {
				byAttempt[l.AttemptID] = append(byAttempt[l.AttemptID], l)
			}
			for _, tg := range r.Targets {
				st := stepOf(tg, "work")
				got := byAttempt[st.AttemptID]
				delete(byAttempt, st.AttemptID)
				n, err := localcluster.CheckNumbered(got)
				if err != nil {
					t.Errorf("run %s, target %s, attempt %s (%s): %v", r.ID, tg.Name, st.AttemptID, st.Status, err)
					continue
				}
				if st.Status == "succeeded" {
					if n != ledgerLines {
						t.Errorf("run %s, target %s: succeeded with %d of %d lines stored", r.ID, tg.Name, n, ledgerLines)
					}
					complete++
				}
			}
			for id, l := range byAttempt {
				t.Errorf("run %s: %d log lines of attempt %s, which no step lists", r.ID, len(l), id)
			}
		}
		t.Logf("%d succeeded attempts have all %d lines, each once", complete, ledgerLines)
	})

	t.Run("every tick fires exactly once across the failover", func(t *testing.T) {
		var missing []string
		firstAfter := time.Duration(0)
		for i, tk := range ticks {
			if firstAfter == 0 && tk.created.After(killed.To) {
				firstAfter = tk.created.Sub(killed.From)
				t.Logf("the first run created after the kill is tick %s's, %v after the kill", tk.fire.Format("15:04:05"),
					firstAfter.Round(time.Millisecond))
			}
			if i == 0 {
				continue
			}
			prev := ticks[i-1].fire
			if tk.fire.Equal(prev) {
				t.Errorf("tick %s has two runs", tk.fire.Format(time.RFC3339))
			}
			for m := prev.Add(tickEvery); m.Before(tk.fire); m = m.Add(tickEvery) {
				missing = append(missing, m.Format("15:04:05"))
			}
		}
		if len(missing) > 0 {
			t.Errorf("no run for ticks %v: the leader was killed at %s, the next run was created %v later",
				missing, killed.From.UTC().Format("15:04:05.000"), firstAfter.Round(time.Millisecond))
		}
		// The ticks due from the kill until the first run the new leader
		// created: the ones the failover put to the test.
		owed := 0
		for m := killed.From.Truncate(tickEvery).Add(tickEvery); !m.After(killed.From.Add(firstAfter)); m = m.Add(tickEvery) {
			owed++
		}
		t.Logf("%d ticks from %s to %s; %d fell due while there was no leader", len(ticks), ticks[0].fire.Format(time.TimeOnly),
			ticks[len(ticks)-1].fire.Format(time.TimeOnly), owed)
	})
	t.Logf("figures: failover (kill to agreed leader) %v; agents back %v; all %d runs terminal %v after the kill",
		elected.Round(time.Millisecond), reconnected.Round(time.Millisecond), len(runs), finished.Round(time.Millisecond))
}

// TestAutomationAgentKilledMidStepIsLost kills an agent while its step
// runs: the step becomes lost once the agent's lease runs out (it is not
// idempotent, so it is not run again), the step that needs it is skipped,
// and the run takes its failure path: the on_failure step is due on the
// same target, whose agent is gone, so it fails after --run-agent-wait
// saying so, and the run fails.
func TestAutomationAgentKilledMidStepIsLost(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-process cluster and kills an agent mid-step; skipped with -short")
	}
	ctx := testContext(t)
	c := startAutomationCluster(ctx, t)
	leader, err := c.WaitLeader(ctx, localcluster.All())
	if err != nil {
		t.Fatal(err)
	}
	admin := c.Client(leader)
	victim := startFleet(ctx, t, c, leader, "victim", 1, map[string]string{"pool": "victim"})[0]
	waitConnected(t, []*testAgent{victim}, leader)
	putJob(ctx, t, admin, "e2e-victim", `name: e2e-victim
targets: {tags: {pool: victim}}
steps:
  - id: long
    uses: shell
    with: {command: "echo started; sleep 120"}
  - id: after
    uses: shell
    needs: [long]
    with: {command: "echo after"}
  - id: handler
    uses: shell
    on_failure: true
    with: {command: "echo handled"}
`)
	run, err := admin.StartRun(ctx, "e2e-victim", apiclient.RunRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if err := localcluster.Poll(ctx, 20*time.Millisecond, func(ctx context.Context) error {
		page, err := admin.RunLogs(ctx, run.ID, apiclient.RunLogQuery{Step: "long", Limit: 1})
		if err == nil && len(page.Items) == 0 {
			err = errors.New("no output yet")
		}
		return err
	}); err != nil {
		t.Fatalf("the step does not start: %v", err)
	}
	victim.kill()
	killedAt := time.Now()
	t.Logf("killed agent %s mid-step", victim.name)

	var lostAfter time.Duration
	pctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var last apiclient.Run
	err = localcluster.Poll(pctx, 100*time.Millisecond, func(ctx context.Context) error {
		r, err := admin.GetRun(ctx, run.ID)
		if err != nil {
			return err
		}
		last = r
		if lostAfter == 0 && len(r.Targets) == 1 && stepOf(r.Targets[0], "long").Status == "lost" {
			lostAfter = time.Since(killedAt)
		}
		if !r.Finished() {
			return fmt.Errorf("run %s is %s (%s)", r.ID, r.Status, r.Reason)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("the run does not finish: %v\n%s", err, runSteps(last))
	}
	t.Logf("step lost %v after the kill, run %s %v after it\n%s", lostAfter.Round(time.Millisecond), last.Status,
		time.Since(killedAt).Round(time.Millisecond), runSteps(last))
	if last.Status != apiclient.RunFailed || len(last.Targets) != 1 {
		t.Fatalf("the run ended %s over %d targets; want failed over one", last.Status, len(last.Targets))
	}
	tg := last.Targets[0]
	for _, want := range []struct{ step, status, errorHas string }{
		{"long", "lost", "went down"},
		{"after", "skipped", ""},
		{"handler", "failed", "not connected"},
	} {
		st := stepOf(tg, want.step)
		if st.Status != want.status || !strings.Contains(st.Error, want.errorHas) {
			t.Errorf("step %s is %s (%q); want %s with an error naming %q", want.step, st.Status, st.Error, want.status, want.errorHas)
		}
	}
	if st := stepOf(tg, "long"); len(st.Attempts) != 1 {
		t.Errorf("the lost step has attempts %v; want one: it is not idempotent", st.Attempts)
	}
}

// startAutomationCluster is startCluster with a short --run-agent-wait,
// passed the way cluster.sh takes extra server flags.
func startAutomationCluster(ctx context.Context, t *testing.T) *localcluster.Cluster {
	t.Helper()
	flags := strings.TrimSpace(os.Getenv("OPSCONDUCTOR_SERVER_FLAGS") + " --run-agent-wait " + agentWait.String())
	t.Setenv("OPSCONDUCTOR_SERVER_FLAGS", flags)
	return startCluster(ctx, t)
}

// waitPhase waits until the wall clock is phase past a whole second.
func waitPhase(ctx context.Context, phase time.Duration) error {
	now := time.Now()
	at := now.Truncate(time.Second).Add(phase)
	if !at.After(now) {
		at = at.Add(time.Second)
	}
	timer := time.NewTimer(at.Sub(now))
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// testAgent is one agent running in the test process.
type testAgent struct {
	name, id string
	sess     *session.Session
	once     sync.Once
	stop     func()
}

// kill ends the agent as a crash would for the controllers: its stream
// ends without a word, then its executor kills the running steps.
func (a *testAgent) kill() { a.once.Do(a.stop) }

// startFleet enrols n agents named prefix-00 … with a join token carrying
// tags, and runs them until the test ends.
func startFleet(ctx context.Context, t *testing.T, c *localcluster.Cluster, leader int, prefix string, n int, tags map[string]string) []*testAgent {
	t.Helper()
	var tok apiclient.CreatedJoinToken
	if err := localcluster.Poll(ctx, 100*time.Millisecond, func(ctx context.Context) error {
		var err error
		tok, err = c.Client(leader).CreateJoinToken(ctx, apiclient.CreateJoinTokenRequest{TTL: "10m", MaxUses: n, Tags: tags})
		return err
	}); err != nil {
		t.Fatalf("create a join token: %v", err)
	}
	var addrs []string
	for _, m := range localcluster.All() {
		addrs = append(addrs, agentAddr(c, m))
	}
	logger := slog.New(slog.NewTextHandler(&lineLogger{t: t}, &slog.HandlerOptions{Level: slog.LevelError}))
	agents := make([]*testAgent, n)
	errs := make([]error, n)
	// Enrol a few at a time: each is a TLS handshake and a Raft write.
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	root := t.TempDir()
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			name := fmt.Sprintf("%s-%02d", prefix, i)
			dir := filepath.Join(root, name)
			res, err := enroll.Join(ctx, enroll.Options{Controllers: addrs, Token: tok.Token, CAPin: tok.CAPin, DataDir: dir,
				Name: name, Version: "e2e"})
			if err != nil {
				errs[i] = fmt.Errorf("join %s: %w", name, err)
				return
			}
			agents[i] = &testAgent{name: name, id: res.AgentID}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for _, a := range agents {
		dir := filepath.Join(root, a.name)
		id, err := enroll.LoadIdentity(dir)
		if err != nil {
			t.Fatal(err)
		}
		box, err := outbox.Open(filepath.Join(dir, "outbox.db"), outbox.Options{Logger: logger})
		if err != nil {
			t.Fatal(err)
		}
		ex, err := executor.New(executor.Config{Outbox: box, Logger: logger})
		if err != nil {
			box.Close()
			t.Fatal(err)
		}
		sess, err := session.New(session.Config{Identity: id, Controllers: addrs, Version: "e2e", Logger: logger, Executor: ex})
		if err != nil {
			ex.Close()
			box.Close()
			t.Fatal(err)
		}
		a.sess = sess
		sctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); _ = sess.Run(sctx) }()
		// The stream goes first, so that the controllers learn nothing
		// of the steps the executor then kills.
		a.stop = func() { cancel(); <-done; ex.Close(); box.Close() }
		t.Cleanup(a.kill)
	}
	return agents
}

// waitConnected waits until every agent has a stream to node n.
func waitConnected(t *testing.T, agents []*testAgent, n int) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for _, a := range agents {
		for {
			changed := a.sess.Changed()
			st := a.sess.Status()
			if m, ok := localcluster.NodeNumber(st.NodeID); st.Connected && ok && m == n {
				break
			}
			select {
			case <-changed:
			case <-deadline:
				t.Fatalf("agent %s is not connected to node%d: %+v", a.name, n, a.sess.Status())
			}
		}
	}
}

func putJob(ctx context.Context, t *testing.T, c *apiclient.Client, name, def string) {
	t.Helper()
	if _, err := c.PutJob(ctx, name, []byte(def)); err != nil {
		t.Fatalf("save job %s: %v", name, err)
	}
}

// ledgerJob writes its run and target to the target's ledger file,
// prints half its numbered lines, waits (at most 60 s) for dir/release,
// and prints the rest.
func ledgerJob(dir string) string {
	return fmt.Sprintf(`name: e2e-ledger
targets: {tags: {pool: e2e}}
steps:
  - id: work
    uses: shell
    timeout: 2m
    with:
      command: >-
        d='%s';
        echo "${{ run.id }} ${{ target.name }}" >> "$d/${{ target.name }}.ledger";
        i=1; while [ $i -le %d ]; do echo "line $i"; i=$((i+1)); done;
        n=0; while [ ! -e "$d/release" ] && [ $n -lt 60 ]; do sleep 1; n=$((n+1)); done;
        while [ $i -le %d ]; do echo "line $i"; i=$((i+1)); done
`, dir, ledgerLines/2, ledgerLines)
}

// readLedgers returns every ledger entry ("RUN TARGET") of every agent.
func readLedgers(dir string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.ledger"))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			if l := strings.TrimSpace(sc.Text()); l != "" {
				out = append(out, l)
			}
		}
	}
	return out, nil
}

// waitRunsFinished polls the runs until each is in a terminal state and
// returns them with their targets.
func waitRunsFinished(ctx context.Context, t *testing.T, c *apiclient.Client, ids []string, limit time.Duration) []apiclient.Run {
	t.Helper()
	pctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	runs := map[string]apiclient.Run{}
	err := localcluster.Poll(pctx, 250*time.Millisecond, func(ctx context.Context) error {
		for _, id := range ids {
			if r, ok := runs[id]; ok && r.Finished() {
				continue
			}
			r, err := c.GetRun(ctx, id)
			if err != nil {
				return err
			}
			runs[id] = r
			if !r.Finished() {
				return fmt.Errorf("run %s is %s (%s): %+v", id, r.Status, r.Reason, r.Summary)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("not every run reached a terminal state: %v", err)
	}
	out := make([]apiclient.Run, 0, len(ids))
	for _, id := range ids {
		out = append(out, runs[id])
	}
	return out
}

// tick is one run of the e2e-tick schedule, the slot it was fired for
// and when the run was created.
type tick struct {
	run           string
	fire, created time.Time
}

// waitTicks lists the runs of the e2e-tick schedule on node n, oldest
// slot first, until ok accepts them.
func waitTicks(ctx context.Context, c *localcluster.Cluster, n int, ok func([]tick) bool) ([]tick, error) {
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var ticks []tick
	err := localcluster.Poll(pctx, 200*time.Millisecond, func(ctx context.Context) error {
		ticks = ticks[:0]
		q := apiclient.RunQuery{Job: "e2e-tick", Limit: 500}
		for {
			page, err := c.Client(n).ListRuns(ctx, q)
			if err != nil {
				return err
			}
			for _, r := range page.Items {
				if r.Trigger.Kind != "schedule" || r.Trigger.FireTime == nil {
					return fmt.Errorf("run %s of the scheduled job has trigger %+v", r.ID, r.Trigger)
				}
				ticks = append(ticks, tick{run: r.ID, fire: r.Trigger.FireTime.UTC(), created: r.CreatedAt})
			}
			if page.Next == "" {
				break
			}
			q.Cursor = page.Next
		}
		slices.SortFunc(ticks, func(a, b tick) int { return a.fire.Compare(b.fire) })
		if !ok(ticks) {
			return fmt.Errorf("%d ticks so far", len(ticks))
		}
		return nil
	})
	return ticks, err
}

func stepOf(tg apiclient.RunTarget, id string) apiclient.RunStep {
	for _, s := range tg.Steps {
		if s.ID == id {
			return s
		}
	}
	return apiclient.RunStep{ID: id, Status: "absent"}
}

// runSteps renders a run's steps for a failure message.
func runSteps(r apiclient.Run) string {
	var b strings.Builder
	fmt.Fprintf(&b, "run %s: %s (%s)\n", r.ID, r.Status, r.Reason)
	for _, tg := range r.Targets {
		for _, s := range tg.Steps {
			fmt.Fprintf(&b, "  %s/%s: %s %s %s\n", tg.Name, s.ID, s.Status, s.Reason, s.Error)
		}
	}
	return b.String()
}

// apiJSON calls node n's API with the cluster's admin token, for the
// routes apiclient has no method for.
func apiJSON(ctx context.Context, c *localcluster.Cluster, n int, method, path string, in, out any) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	token, err := c.Token(ctx)
	if err != nil {
		return err
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+c.HTTPAddr(n)+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read body: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, bytes.TrimSpace(raw))
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("%s %s: decode: %w", method, path, err)
		}
	}
	return nil
}
