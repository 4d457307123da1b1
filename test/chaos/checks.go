package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/opsconductor/opsconductor/controller/apiclient"
	"github.com/opsconductor/opsconductor/test/e2e/localcluster"
)

// result is one line of the final table.
type result struct {
	name   string
	ok     bool
	detail string
}

// drainLimit bounds the wait for every run to end once everything is
// healed: a step whose agent was down waits up to runAgentWait, and an
// attempt lost with its agent needs the agent's lease to run out.
const drainLimit = 3 * time.Minute

// checkAll waits for the work to drain and checks every property. Each
// check runs even if an earlier one failed, so one run shows every broken
// property.
func checkAll(ctx context.Context, r *rig, s *storm) []result {
	var out []result
	runs, res := checkRunsTerminal(ctx, r, s)
	out = append(out, res, checkAfterHeal(runs, s.afterHeal))
	out = append(out, checkLedgers(r, runs))
	out = append(out, checkLogs(ctx, r, runs))
	out = append(out, checkSnapshots(ctx, r))
	out = append(out, checkAudit(ctx, r))
	out = append(out, checkLeaks(ctx, r, s)...)
	s.mu.Lock()
	refused := append([]string(nil), s.refused...)
	s.mu.Unlock()
	res = result{name: "no valid request was refused with a 4xx", ok: len(refused) == 0,
		detail: "start errors were all unavailability (5xx, refused or timed-out connections)"}
	if len(refused) > 0 {
		res.detail = summarize(refused)
	}
	out = append(out, res)
	r.mu.Lock()
	exits := append([]string(nil), r.exits...)
	r.mu.Unlock()
	res = result{name: "no process exited by itself", ok: len(exits) == 0, detail: "every exit was a fault the driver injected"}
	if len(exits) > 0 {
		res.detail = summarize(exits)
	}
	return append(out, res)
}

func printResults(l *logger, results []result) bool {
	ok := true
	var b strings.Builder
	fmt.Fprintf(&b, "\n%-6s %-44s %s\n", "RESULT", "CHECK", "DETAIL")
	for _, r := range results {
		verdict := "PASS"
		if !r.ok {
			verdict, ok = "FAIL", false
		}
		fmt.Fprintf(&b, "%-6s %-44s %s\n", verdict, r.name, r.detail)
	}
	l.printf("%s", b.String())
	return ok
}

// allRuns lists every run of the ledger job, newest first, from one node.
func allRuns(ctx context.Context, c *apiclient.Client) ([]apiclient.Run, error) {
	var out []apiclient.Run
	cursor := ""
	for {
		page, err := c.ListRuns(ctx, apiclient.RunQuery{Job: ledgerJobName, Limit: 100, Cursor: cursor})
		if err != nil {
			return nil, err
		}
		out = append(out, page.Items...)
		if page.Next == "" || len(page.Items) == 0 {
			return out, nil
		}
		cursor = page.Next
	}
}

// checkRunsTerminal waits until every run of the job, acknowledged or not,
// is terminal, and returns them with their targets.
func checkRunsTerminal(ctx context.Context, r *rig, s *storm) ([]apiclient.Run, result) {
	res := result{name: "every run reached a terminal state"}
	began := time.Now()
	var ids []string
	err := poll(ctx, drainLimit, time.Second, func(ctx context.Context) error {
		runs, err := allRuns(ctx, r.anyClient(ctx))
		if err != nil {
			return err
		}
		ids = ids[:0]
		var open []string
		for _, run := range runs {
			ids = append(ids, run.ID)
			if !run.Finished() {
				open = append(open, fmt.Sprintf("%s %s (%s) %+v", run.ID, run.Status, run.Reason, run.Summary))
			}
		}
		if len(open) > 0 {
			return fmt.Errorf("%d of %d runs not terminal, e.g. %s", len(open), len(runs), open[0])
		}
		return nil
	})
	if err != nil {
		res.detail = err.Error()
		return nil, res
	}
	listed := map[string]bool{}
	for _, id := range ids {
		listed[id] = true
	}
	s.mu.Lock()
	acked := append([]string(nil), s.acked...)
	s.mu.Unlock()
	var missing []string
	for _, id := range acked {
		if !listed[id] {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		res.detail = fmt.Sprintf("%d acknowledged runs are not listed: %v", len(missing), missing)
		return nil, res
	}
	// The full documents, with targets and steps.
	runs := make([]apiclient.Run, 0, len(ids))
	statuses := map[string]int{}
	for _, id := range ids {
		run, err := r.anyClient(ctx).GetRun(ctx, id)
		if err != nil {
			res.detail = fmt.Sprintf("get run %s: %v", id, err)
			return nil, res
		}
		runs = append(runs, run)
		statuses[run.Status]++
	}
	res.ok = true
	res.detail = fmt.Sprintf("%d runs (%d acknowledged) %v, drained %v after healing", len(runs), len(acked), statuses,
		time.Since(began).Round(time.Second))
	return runs, res
}

// checkAfterHeal: faults may fail the steps they hit, but once everything
// is healed the cluster must be whole again, so a run started then
// succeeds on every agent.
func checkAfterHeal(runs []apiclient.Run, id string) result {
	res := result{name: "a run started after healing succeeds"}
	if runs == nil {
		res.detail = "not checked: the runs did not all end"
		return res
	}
	for _, run := range runs {
		if run.ID != id {
			continue
		}
		res.ok = run.Status == apiclient.RunSucceeded
		res.detail = fmt.Sprintf("run %s %s on %d of %d targets", id, run.Status, run.Summary.Succeeded, run.Summary.Targets)
		if !res.ok {
			for _, tg := range run.Targets {
				if st, ok := stepOf(tg, "work"); ok && st.Status != "succeeded" {
					res.detail += fmt.Sprintf("; %s: %s %s", tg.Name, st.Status, st.Error)
					break
				}
			}
		}
		return res
	}
	res.detail = fmt.Sprintf("run %s is not listed", id)
	return res
}

func stepOf(tg apiclient.RunTarget, id string) (apiclient.RunStep, bool) {
	for _, s := range tg.Steps {
		if s.ID == id {
			return s, true
		}
	}
	return apiclient.RunStep{}, false
}

// checkLedgers: the step appends "RUN TARGET" to its agent's ledger before
// anything else, so two entries for one run and target mean it ran twice;
// an entry for no target of any run, or a succeeded step with no entry,
// means the controllers' record and what happened on the hosts disagree.
func checkLedgers(r *rig, runs []apiclient.Run) result {
	res := result{name: "no step ran twice (ledgers)"}
	if runs == nil {
		res.detail = "not checked: the runs did not all end"
		return res
	}
	count := map[string]int{}
	files, _ := filepath.Glob(filepath.Join(r.ledgerDir, "*.ledger"))
	entries := 0
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			res.detail = err.Error()
			return res
		}
		sc := bufio.NewScanner(bytes.NewReader(raw))
		for sc.Scan() {
			if l := strings.TrimSpace(sc.Text()); l != "" {
				count[l]++
				entries++
			}
		}
	}
	var problems []string
	attempts := map[string]int{}
	reasons := map[string]int{}
	for _, run := range runs {
		for _, tg := range run.Targets {
			st, ok := stepOf(tg, "work")
			if !ok {
				continue
			}
			attempts[st.Status]++
			if st.Status != "succeeded" {
				reasons[st.Status+": "+st.Error]++
			}
			key := run.ID + " " + tg.Name
			n := count[key]
			delete(count, key)
			switch {
			case n > 1:
				problems = append(problems, fmt.Sprintf("run %s target %s ran %d times (%s, attempts %v)", run.ID, tg.Name, n, st.Status, st.Attempts))
			case n == 0 && st.Status == "succeeded":
				problems = append(problems, fmt.Sprintf("run %s target %s succeeded without running", run.ID, tg.Name))
			}
			if len(st.Attempts) > 1 {
				problems = append(problems, fmt.Sprintf("run %s target %s has %d attempts %v for a step that is not idempotent", run.ID, tg.Name, len(st.Attempts), st.Attempts))
			}
		}
	}
	for k, n := range count {
		problems = append(problems, fmt.Sprintf("ledger entry %q (%d times) belongs to no target of any run", k, n))
	}
	if len(problems) > 0 {
		res.detail = summarize(problems)
		return res
	}
	res.ok = true
	res.detail = fmt.Sprintf("%d ledger entries, each once; steps %v", entries, attempts)
	if len(reasons) > 0 {
		res.detail += fmt.Sprintf("; why steps did not succeed: %v", reasons)
	}
	return res
}

// checkLogs: each attempt's stored output must be chunks 1, 2 … without a
// gap or repeat holding "line 1" … "line n" each once, and a succeeded
// attempt must have all its lines.
func checkLogs(ctx context.Context, r *rig, runs []apiclient.Run) result {
	res := result{name: "every log line stored exactly once"}
	if runs == nil {
		res.detail = "not checked: the runs did not all end"
		return res
	}
	var problems []string
	lines, complete := 0, 0
	for _, run := range runs {
		logs, err := r.anyClient(ctx).AllRunLogs(ctx, run.ID, apiclient.RunLogQuery{Limit: 1000})
		if err != nil {
			res.detail = fmt.Sprintf("logs of run %s: %v", run.ID, err)
			return res
		}
		byAttempt := map[string][]apiclient.RunLogLine{}
		for _, l := range logs {
			byAttempt[l.AttemptID] = append(byAttempt[l.AttemptID], l)
		}
		for _, tg := range run.Targets {
			st, ok := stepOf(tg, "work")
			if !ok {
				continue
			}
			for _, id := range st.Attempts {
				got := byAttempt[id]
				delete(byAttempt, id)
				n, err := localcluster.CheckNumbered(got)
				lines += n
				if err != nil {
					problems = append(problems, fmt.Sprintf("run %s target %s attempt %s (%s): %v", run.ID, tg.Name, id, st.Status, err))
					continue
				}
				if st.Status == "succeeded" && id == st.AttemptID {
					if n != ledgerLines {
						problems = append(problems, fmt.Sprintf("run %s target %s succeeded with %d of %d lines stored", run.ID, tg.Name, n, ledgerLines))
					}
					complete++
				}
			}
		}
		for id, l := range byAttempt {
			problems = append(problems, fmt.Sprintf("run %s: %d log lines of attempt %s, which no step lists", run.ID, len(l), id))
		}
	}
	if len(problems) > 0 {
		res.detail = summarize(problems)
		return res
	}
	res.ok = true
	res.detail = fmt.Sprintf("%d lines; %d succeeded attempts have all %d", lines, complete, ledgerLines)
	return res
}

// checkSnapshots: with the cluster quiet, every node at the same applied
// index must hold byte-identical state. A background write between reading
// the index and the snapshot makes the comparison void, not failed, so it
// is retried until one attempt sees the same index before and after.
func checkSnapshots(ctx context.Context, r *rig) result {
	res := result{name: "FSM snapshots identical on all controllers"}
	var detail string
	err := poll(ctx, 60*time.Second, 500*time.Millisecond, func(ctx context.Context) error {
		_, before, err := r.leader(ctx, allNodes())
		if err != nil {
			return err
		}
		index := before[1].Raft.AppliedIndex
		for _, n := range allNodes() {
			if before[n].Raft.AppliedIndex != index {
				return fmt.Errorf("applied indexes differ: %v", appliedOf(before))
			}
		}
		sums := map[int]string{}
		sizes := map[int]int{}
		for _, n := range allNodes() {
			var buf bytes.Buffer
			sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			_, err := r.ctl(n).client.SnapshotSave(sctx, &buf, true)
			cancel()
			if err != nil {
				return fmt.Errorf("node%d snapshot: %w", n, err)
			}
			sum := sha256.Sum256(buf.Bytes())
			sums[n], sizes[n] = hex.EncodeToString(sum[:8]), buf.Len()
		}
		_, after, err := r.leader(ctx, allNodes())
		if err != nil {
			return err
		}
		for _, n := range allNodes() {
			if after[n].Raft.AppliedIndex != index {
				return fmt.Errorf("a write landed while comparing (index %d, now %v)", index, appliedOf(after))
			}
		}
		if sums[1] != sums[2] || sums[1] != sums[3] {
			// Same index, different state: a real divergence. Stop
			// retrying by reporting success of the wait with the detail.
			detail = fmt.Sprintf("DIVERGED at index %d: sha256 %v, sizes %v", index, sums, sizes)
			return nil
		}
		res.ok = true
		detail = fmt.Sprintf("index %d, %d bytes, sha256 %s… on all three", index, sizes[1], sums[1])
		return nil
	})
	if err != nil {
		res.detail = err.Error()
		return res
	}
	res.detail = detail
	return res
}

func appliedOf(hs map[int]apiclient.Health) string {
	var parts []string
	for _, n := range allNodes() {
		parts = append(parts, fmt.Sprintf("node%d=%d", n, hs[n].Raft.AppliedIndex))
	}
	return strings.Join(parts, " ")
}

func checkAudit(ctx context.Context, r *rig) result {
	res := result{name: "audit chain verifies"}
	v, err := r.anyClient(ctx).AuditVerify(ctx)
	if err != nil {
		res.detail = err.Error()
		return res
	}
	if !v.OK {
		res.detail = fmt.Sprintf("broken: %+v", v.FirstBroken)
		return res
	}
	res.ok = true
	res.detail = fmt.Sprintf("%d chains verified", len(v.Chains))
	return res
}

// procFigures are the leak indicators of one server process.
type procFigures struct {
	goroutines, fds int
	leader          bool
}

func (r *rig) figures(ctx context.Context, n int) (procFigures, error) {
	var f procFigures
	mctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(mctx, http.MethodGet, "http://"+r.ctl(n).apiAddr()+"/metrics", nil)
	if err != nil {
		return f, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return f, fmt.Errorf("node%d metrics: %w", n, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return f, err
	}
	got := map[string]bool{}
	for line := range strings.Lines(string(body)) {
		name, value, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok || (name != "go_goroutines" && name != "process_open_fds") {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return f, fmt.Errorf("node%d metrics: %s %q: %w", n, name, value, err)
		}
		if name == "go_goroutines" {
			f.goroutines = int(v)
		} else {
			f.fds = int(v)
		}
		got[name] = true
	}
	if len(got) != 2 {
		return f, fmt.Errorf("node%d metrics: go_goroutines or process_open_fds missing", n)
	}
	hctx, hcancel := context.WithTimeout(ctx, 2*time.Second)
	defer hcancel()
	h, err := r.ctl(n).anon().Health(hctx)
	if err != nil {
		return f, err
	}
	f.leader = h.Raft.State == "leader"
	return f, nil
}

// Leak tolerances: measured the same way, a quiet follower's counts move
// a little (an idle keep-alive connection and its goroutines); a leak
// grows with the number of faults, and a storm has dozens of each kind.
func goroutineSlack(base int) int { return max(30, base/5) }
func fdSlack(base int) int        { return max(20, base/5) }

// checkLeaks measures the protected node, which lived through the whole
// storm, as its baseline was measured, and compares.
func checkLeaks(ctx context.Context, r *rig, s *storm) []result {
	n := s.protected
	res := result{name: "no goroutine or fd leak on survivors"}
	if s.killed[n] || r.ctl(n).proc.starts > 1 {
		res.detail = fmt.Sprintf("node%d did not live through the storm", n)
		return []result{res}
	}
	now, err := s.quietFigures(ctx, n)
	if err != nil {
		res.detail = err.Error()
		return []result{res}
	}
	base := s.baseline
	res.ok = now.goroutines <= base.goroutines+goroutineSlack(base.goroutines) && now.fds <= base.fds+fdSlack(base.fds)
	res.detail = fmt.Sprintf("node%d (never killed; a follower, no agents): goroutines %d→%d (allowed +%d), open fds %d→%d (allowed +%d)", n,
		base.goroutines, now.goroutines, goroutineSlack(base.goroutines), base.fds, now.fds, fdSlack(base.fds))
	return []result{res}
}

func summarize(problems []string) string {
	sort.Strings(problems)
	if len(problems) > 5 {
		return fmt.Sprintf("%d problems: %s … and %d more", len(problems), strings.Join(problems[:5], "; "), len(problems)-5)
	}
	return fmt.Sprintf("%d problems: %s", len(problems), strings.Join(problems, "; "))
}
