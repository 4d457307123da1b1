package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opsconductor/opsconductor/agent/enroll"
	"github.com/opsconductor/opsconductor/agent/executor"
	"github.com/opsconductor/opsconductor/agent/outbox"
	"github.com/opsconductor/opsconductor/agent/session"
	"github.com/opsconductor/opsconductor/controller/apiclient"
	"github.com/opsconductor/opsconductor/test/e2e/localcluster"
)

// agentAddr is node n's agent listener, as deploy/local/cluster.sh lays
// out ports.
func agentAddr(c *localcluster.Cluster, n int) string {
	return fmt.Sprintf("127.0.0.1:%d", c.BasePort+10*(n-1)+1)
}

// TestAgentsEnrolThroughAnyController enrols real agents (agent/enroll, as
// `opsconductor-agent join` runs it) against a three-process cluster: the
// agent CA is replicated, so every controller serves enrolment, and a join
// token's use count holds cluster-wide.
func TestAgentsEnrolThroughAnyController(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-process cluster; skipped with -short")
	}
	ctx := testContext(t)
	c := startCluster(ctx, t)
	admin := c.Client(1)

	// The leader creates the agent CA shortly after start.
	var tok apiclient.CreatedJoinToken
	err := localcluster.Poll(ctx, 100*time.Millisecond, func(ctx context.Context) error {
		var err error
		tok, err = admin.CreateJoinToken(ctx, apiclient.CreateJoinTokenRequest{TTL: "10m", MaxUses: 2, Tags: map[string]string{"env": "e2e"}})
		return err
	})
	if err != nil {
		t.Fatalf("create a join token: %v", err)
	}
	if !strings.Contains(tok.JoinCommand, tok.Token) || !strings.Contains(tok.JoinCommand, tok.CAPin) {
		t.Fatalf("join command %q lacks the token or the pin", tok.JoinCommand)
	}

	join := func(name string, controllers []string, pin string) (*enroll.Result, error) {
		dir := filepath.Join(t.TempDir(), name)
		jctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		return enroll.Join(jctx, enroll.Options{Controllers: controllers, Token: tok.Token, CAPin: pin, DataDir: dir,
			Name: name, Version: "e2e"})
	}

	var enrolled []string
	for i, n := range []int{3, 2} {
		res, err := join(fmt.Sprintf("host-%d", i), []string{agentAddr(c, n)}, tok.CAPin)
		if err != nil {
			t.Fatalf("enrol through node%d: %v", n, err)
		}
		enrolled = append(enrolled, res.AgentID)
	}

	t.Run("a wrong pin is refused before the token is sent", func(t *testing.T) {
		wrong := "sha256:" + strings.Repeat("0", 64)
		if _, err := join("wrong-pin", []string{agentAddr(c, 1)}, wrong); err == nil || !strings.Contains(err.Error(), "pin") {
			t.Fatalf("join with a wrong pin: %v", err)
		}
	})
	t.Run("the token's two uses are spent cluster-wide", func(t *testing.T) {
		if _, err := join("third", []string{agentAddr(c, 1)}, tok.CAPin); err == nil {
			t.Fatal("a third agent enrolled with a two-use token")
		}
	})
	// Reads are served from each node's replica, so a node may trail the
	// write by a moment: poll each with a deadline.
	eventually := func(t *testing.T, n int, check func(apiclient.Agent) error, id string) {
		t.Helper()
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		var last error
		err := localcluster.Poll(pctx, 20*time.Millisecond, func(ctx context.Context) error {
			a, err := c.Client(n).GetAgent(ctx, id)
			if err == nil {
				err = check(a)
			}
			last = err
			return err
		})
		if err != nil {
			t.Fatalf("node%d, agent %s: %v (last: %v)", n, id, err, last)
		}
	}
	t.Run("every controller lists the agents with the token's tags", func(t *testing.T) {
		for _, n := range localcluster.All() {
			for _, id := range enrolled {
				eventually(t, n, func(a apiclient.Agent) error {
					if a.Tags["env"] != "e2e" || a.Revoked {
						return fmt.Errorf("agent %+v", a)
					}
					return nil
				}, id)
			}
		}
	})
	t.Run("a revoked agent is marked so everywhere", func(t *testing.T) {
		if _, err := admin.RevokeAgent(ctx, enrolled[0]); err != nil {
			t.Fatal(err)
		}
		for _, n := range localcluster.All() {
			eventually(t, n, func(a apiclient.Agent) error {
				if !a.Revoked {
					return fmt.Errorf("not revoked yet")
				}
				return nil
			}, enrolled[0])
		}
	})
	if _, err := os.Stat(filepath.Join(c.Dir, "keyring.key")); err != nil {
		t.Fatalf("the cluster has no shared keyring file: %v", err)
	}
}

// TestAgentFollowsTheLeaderThroughFailover runs a real agent (agent/enroll
// then agent/session, as `opsconductor-agent join` and `run` do) against a
// three-process cluster, configured with a follower only: the follower
// redirects it to the leader, which marks it up. Then the leader is killed
// with SIGKILL; the agent must reach the new leader and be up there.
func TestAgentFollowsTheLeaderThroughFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-process cluster and kills its leader; skipped with -short")
	}
	ctx := testContext(t)
	c := startCluster(ctx, t)
	leader, err := c.WaitLeader(ctx, localcluster.All())
	if err != nil {
		t.Fatal(err)
	}
	follower := localcluster.Others(leader)[0]
	var tok apiclient.CreatedJoinToken
	if err := localcluster.Poll(ctx, 100*time.Millisecond, func(ctx context.Context) error {
		tok, err = c.Client(follower).CreateJoinToken(ctx, apiclient.CreateJoinTokenRequest{TTL: "10m"})
		return err
	}); err != nil {
		t.Fatalf("create a join token: %v", err)
	}
	dir := filepath.Join(t.TempDir(), "agent")
	var addrs []string
	for _, n := range localcluster.All() {
		addrs = append(addrs, agentAddr(c, n))
	}
	res, err := enroll.Join(ctx, enroll.Options{Controllers: []string{agentAddr(c, follower)}, Token: tok.Token, CAPin: tok.CAPin,
		DataDir: dir, Name: "failover-agent", Version: "e2e"})
	if err != nil {
		t.Fatalf("join: %v", err)
	}
	id, err := enroll.LoadIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	// The follower first, so the first stream is a redirect.
	controllers := append([]string{agentAddr(c, follower)}, addrs...)
	sess, err := session.New(session.Config{Identity: id, Controllers: controllers, Version: "e2e",
		Logger: slog.New(slog.NewTextHandler(&lineLogger{t: t}, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- sess.Run(sctx) }()
	t.Cleanup(func() { stop(); <-done })

	connectedTo := func(want func(node int) bool) int {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for {
			changed := sess.Changed()
			st := sess.Status()
			if n, ok := localcluster.NodeNumber(st.NodeID); st.Connected && ok && want(n) {
				return n
			}
			select {
			case <-changed:
			case <-deadline:
				t.Fatalf("the agent did not get there: %+v", sess.Status())
			}
		}
	}
	upOn := func(n int) {
		t.Helper()
		pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		var last apiclient.Agent
		if err := localcluster.Poll(pctx, 50*time.Millisecond, func(ctx context.Context) error {
			a, err := c.Client(n).GetAgent(ctx, res.AgentID)
			if err != nil {
				return err
			}
			last = a
			if a.Status != "up" {
				return fmt.Errorf("status %q", a.Status)
			}
			return nil
		}); err != nil {
			t.Fatalf("node%d does not show the agent up: %v (%+v)", n, err, last)
		}
	}

	if got := connectedTo(func(n int) bool { return n == leader }); got != leader {
		t.Fatalf("connected to node%d, want the leader node%d", got, leader)
	}
	if sess.Status().Redirects == 0 {
		t.Error("the agent reached the leader without being redirected by the follower it tried first")
	}
	upOn(leader)

	t.Logf("killing the leader node%d", leader)
	if _, err := c.Kill(ctx, leader); err != nil {
		t.Fatal(err)
	}
	newLeader := connectedTo(func(n int) bool { return n != leader })
	t.Logf("the agent is connected to node%d", newLeader)
	upOn(newLeader)
}

// TestAttemptsSurviveLeaderFailover is the failover test at its full
// size (20 agents, 10,000 lines each): real agents (enroll, session, executor, outbox) each run a
// command printing numbered lines through a three-process cluster; the
// leader is killed with SIGKILL mid-run. Every agent must reach the new
// leader, and every attempt's result and every line must arrive exactly
// once and in order.
func TestAttemptsSurviveLeaderFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-process cluster and kills its leader; skipped with -short")
	}
	const agents, lines = 20, 10000
	ctx := testContext(t)
	c := startCluster(ctx, t)
	leader, err := c.WaitLeader(ctx, localcluster.All())
	if err != nil {
		t.Fatal(err)
	}
	var tok apiclient.CreatedJoinToken
	if err := localcluster.Poll(ctx, 100*time.Millisecond, func(ctx context.Context) error {
		tok, err = c.Client(leader).CreateJoinToken(ctx, apiclient.CreateJoinTokenRequest{TTL: "10m", MaxUses: agents})
		return err
	}); err != nil {
		t.Fatalf("create a join token: %v", err)
	}
	var addrs []string
	for _, n := range localcluster.All() {
		addrs = append(addrs, agentAddr(c, n))
	}
	logger := slog.New(slog.NewTextHandler(&lineLogger{t: t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ids := make([]string, agents)
	sessions := make([]*session.Session, agents)
	for i := range agents {
		dir := filepath.Join(t.TempDir(), fmt.Sprintf("agent%d", i))
		res, err := enroll.Join(ctx, enroll.Options{Controllers: addrs, Token: tok.Token, CAPin: tok.CAPin, DataDir: dir,
			Name: fmt.Sprintf("worker-%d", i), Version: "e2e"})
		if err != nil {
			t.Fatalf("join %d: %v", i, err)
		}
		ids[i] = res.AgentID
		id, err := enroll.LoadIdentity(dir)
		if err != nil {
			t.Fatal(err)
		}
		box, err := outbox.Open(filepath.Join(dir, "outbox.db"), outbox.Options{Logger: logger})
		if err != nil {
			t.Fatal(err)
		}
		exec, err := executor.New(executor.Config{Outbox: box, Logger: logger})
		if err != nil {
			t.Fatal(err)
		}
		sess, err := session.New(session.Config{Identity: id, Controllers: addrs, Version: "e2e", Logger: logger, Executor: exec})
		if err != nil {
			t.Fatal(err)
		}
		sessions[i] = sess
		sctx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- sess.Run(sctx) }()
		t.Cleanup(func() { stop(); <-done; exec.Close(); box.Close() })
	}
	waitAll := func(what string, ok func(st session.Status) bool) {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for i, s := range sessions {
			for {
				changed := s.Changed()
				if ok(s.Status()) {
					break
				}
				select {
				case <-changed:
				case <-deadline:
					t.Fatalf("agent %d: %s: %+v", i, what, s.Status())
				}
			}
		}
	}
	onNode := func(n int) func(session.Status) bool {
		return func(st session.Status) bool {
			m, ok := localcluster.NodeNumber(st.NodeID)
			return st.Connected && ok && m == n
		}
	}
	waitAll("connect to the leader", onNode(leader))

	// Paced so that the kill lands mid-run: 10,000 lines over about 5 s.
	script := fmt.Sprintf(`i=1; while [ $i -le %d ]; do echo "line $i"; if [ $((i %% 200)) -eq 0 ]; then sleep 0.1; fi; i=$((i+1)); done`, lines)
	attempts := make([]string, agents)
	for i, id := range ids {
		var at apiclient.Attempt
		if err := localcluster.Poll(ctx, 50*time.Millisecond, func(ctx context.Context) error {
			at, err = c.Client(leader).RunCommand(ctx, id, apiclient.CommandSpec{Shell: script, Timeout: "2m"})
			return err
		}); err != nil {
			t.Fatalf("dispatch to agent %d: %v", i, err)
		}
		attempts[i] = at.ID
	}
	// Kill once output is flowing.
	if err := localcluster.Poll(ctx, 20*time.Millisecond, func(ctx context.Context) error {
		l, err := c.Client(leader).AttemptLog(ctx, attempts[0], 0, 1)
		if err == nil && len(l.Items) == 0 {
			err = fmt.Errorf("no output yet")
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("output is flowing; killing the leader node%d", leader)
	if _, err := c.Kill(ctx, leader); err != nil {
		t.Fatal(err)
	}
	survivor := localcluster.Others(leader)[0]
	newLeader, err := c.WaitLeader(ctx, localcluster.Others(leader))
	if err != nil {
		t.Fatal(err)
	}
	waitAll("reconnect to the new leader", onNode(newLeader))

	for i, id := range attempts {
		pctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		var at apiclient.Attempt
		err := localcluster.Poll(pctx, 100*time.Millisecond, func(ctx context.Context) error {
			at, err = c.Client(survivor).GetAttempt(ctx, id)
			if err == nil && at.Status != "succeeded" {
				err = fmt.Errorf("status %s", at.Status)
			}
			return err
		})
		cancel()
		if err != nil {
			t.Fatalf("attempt %d (%s) did not succeed: %v (%+v)", i, id, err, at)
		}
		if at.LastSeq == 0 || at.Late {
			t.Fatalf("attempt %d: last_seq %d, late %v; want output and an on-time result", i, at.LastSeq, at.Late)
		}
		var got []apiclient.LogLine
		after := uint64(0)
		for {
			page, err := c.Client(survivor).AttemptLog(ctx, id, after, 1000)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, page.Items...)
			if page.Next == 0 || len(page.Items) == 0 {
				break
			}
			after = page.Next
		}
		// Lines that waited together in the agent's pipe travel as one
		// chunk; every chunk is stored once, in order, and together they
		// are exactly the command's output.
		if uint64(len(got)) != at.LastSeq {
			t.Fatalf("attempt %d: %d chunks stored, the result says %d", i, len(got), at.LastSeq)
		}
		if err := numberedLines(got, lines); err != nil {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
}

// TestAgentKilledMidAttemptReplaysItsOutbox runs the agent binary as its own
// process, kills it with SIGKILL while a command streams output, and starts
// it again: the attempt ends as an error ("agent restarted during the
// attempt"), and every line the agent had recorded arrives exactly once
// and in order, replayed from its outbox.
func TestAgentKilledMidAttemptReplaysItsOutbox(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-process cluster and an agent process; skipped with -short")
	}
	ctx := testContext(t)
	c := startCluster(ctx, t)
	root, err := localcluster.RepoRoot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	agentBin := filepath.Join(t.TempDir(), "opsconductor-agent")
	build := exec.CommandContext(ctx, "go", "build", "-o", agentBin, "./cmd/opsconductor-agent")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the agent: %v\n%s", err, out)
	}
	var tok apiclient.CreatedJoinToken
	if err := localcluster.Poll(ctx, 100*time.Millisecond, func(ctx context.Context) error {
		tok, err = c.Client(1).CreateJoinToken(ctx, apiclient.CreateJoinTokenRequest{TTL: "10m"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var addrs []string
	for _, n := range localcluster.All() {
		addrs = append(addrs, agentAddr(c, n))
	}
	dir := filepath.Join(t.TempDir(), "agent")
	join := exec.CommandContext(ctx, agentBin, "join", "--controller", strings.Join(addrs, ","), "--token", tok.Token,
		"--ca-pin", tok.CAPin, "--data-dir", dir, "--name", "crashy")
	if out, err := join.CombinedOutput(); err != nil {
		t.Fatalf("join: %v\n%s", err, out)
	}
	startAgent := func() *exec.Cmd {
		cmd := exec.Command(agentBin, "run", "--data-dir", dir, "--log-level", "warn")
		cmd.Stdout, cmd.Stderr = &lineLogger{t: t}, &lineLogger{t: t}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd
	}
	agentProc := startAgent()

	var agentID string
	if err := localcluster.Poll(ctx, 50*time.Millisecond, func(ctx context.Context) error {
		page, err := c.Client(1).ListAgents(ctx, "", 10)
		if err != nil {
			return err
		}
		for _, a := range page.Items {
			if a.Name == "crashy" && a.Status == "up" {
				agentID = a.ID
				return nil
			}
		}
		return fmt.Errorf("not up yet")
	}); err != nil {
		t.Fatal(err)
	}
	leader, err := c.WaitLeader(ctx, localcluster.All())
	if err != nil {
		t.Fatal(err)
	}
	// About 4 s of paced output, so the kill lands mid-run.
	at, err := c.Client(leader).RunCommand(ctx, agentID, apiclient.CommandSpec{
		Shell: `i=1; while [ $i -le 4000 ]; do echo "line $i"; if [ $((i % 100)) -eq 0 ]; then sleep 0.1; fi; i=$((i+1)); done`})
	if err != nil {
		t.Fatal(err)
	}
	if err := localcluster.Poll(ctx, 20*time.Millisecond, func(ctx context.Context) error {
		l, err := c.Client(leader).AttemptLog(ctx, at.ID, 0, 1)
		if err == nil && len(l.Items) == 0 {
			err = fmt.Errorf("no output yet")
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := agentProc.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = agentProc.Wait()
	t.Log("killed the agent with SIGKILL mid-attempt; starting it again")
	startAgent()

	var final apiclient.Attempt
	if err := localcluster.Poll(ctx, 100*time.Millisecond, func(ctx context.Context) error {
		final, err = c.Client(leader).GetAttempt(ctx, at.ID)
		if err == nil && (final.Status == "pending" || final.Status == "running") {
			err = fmt.Errorf("status %s", final.Status)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if final.Status != "error" || !strings.Contains(final.Error, "restarted") || final.LastSeq == 0 || final.LastSeq >= 4000 {
		t.Fatalf("attempt after the agent's restart: %+v", final)
	}
	var got []apiclient.LogLine
	for after := uint64(0); ; {
		page, err := c.Client(leader).AttemptLog(ctx, at.ID, after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, page.Items...)
		if page.Next == 0 || len(page.Items) == 0 {
			break
		}
		after = page.Next
	}
	if uint64(len(got)) != final.LastSeq {
		t.Fatalf("%d chunks stored, the result says %d", len(got), final.LastSeq)
	}
	n := strings.Count(joinLog(got), "\n")
	if err := numberedLines(got, n); err != nil || n == 0 || n >= 4000 {
		t.Fatalf("%d lines stored: %v", n, err)
	}
	t.Logf("the agent had sent or recorded %d of 4,000 lines (%d chunks) before the kill; all arrived exactly once", n, final.LastSeq)
}

func joinLog(items []apiclient.LogLine) string {
	var b strings.Builder
	for _, l := range items {
		b.WriteString(l.Data)
	}
	return b.String()
}

// numberedLines checks that the chunks are seqs 1, 2, … without gaps and
// that their data is exactly "line 1\n" … "line n\n".
func numberedLines(items []apiclient.LogLine, n int) error {
	for j, l := range items {
		if l.Seq != uint64(j+1) {
			return fmt.Errorf("chunk %d has seq %d", j+1, l.Seq)
		}
	}
	var want strings.Builder
	for j := 1; j <= n; j++ {
		fmt.Fprintf(&want, "line %d\n", j)
	}
	if got := joinLog(items); got != want.String() {
		return fmt.Errorf("the %d chunks hold %d bytes that are not lines 1 to %d in order", len(items), len(got), n)
	}
	return nil
}
