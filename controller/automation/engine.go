package automation

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/opsconductor/opsconductor/controller/agentrpc"
	"github.com/opsconductor/opsconductor/controller/automation/jobspec"
	"github.com/opsconductor/opsconductor/controller/identity"
	"github.com/opsconductor/opsconductor/controller/problem"
	"github.com/opsconductor/opsconductor/controller/state"
)

// engine drives runs on the leader. Changes reach it as marks (a run
// changed, one of its attempts changed, an agent came up) and each pass
// advances every marked run: what it decides for all of them is committed
// together and the attempts go out in one batch, so a fan-out over a
// thousand agents is a handful of Raft entries, not thousands.
type engine struct {
	s    *Service
	kick chan struct{}

	mu    sync.Mutex
	dirty map[string]struct{}
	// open counts each agent's attempts not yet decided (its load), kept
	// from the attempt hook on every node.
	open map[string]string // attempt → agent
	busy map[string]int    // agent → open attempts
	// waitOn lists runs waiting for an agent to come up or to have room.
	waitOn map[string]map[string]struct{}
	// queued asks the next pass to look at every queued run.
	queued bool

	// The rest is the loop goroutine's alone.
	leading    bool
	wake       map[string]time.Time // run → when a timed decision is due
	waitSince  map[string]time.Time // run/target/step → first wait for its agent
	cancelSent map[string]bool      // attempts told to cancel
	lastExpire time.Time
	// toRecord queues finished runs for the recorder.
	toRecord chan string
}

func newEngine(s *Service) *engine {
	return &engine{s: s, kick: make(chan struct{}, 1), dirty: map[string]struct{}{}, open: map[string]string{},
		busy: map[string]int{}, waitOn: map[string]map[string]struct{}{}, wake: map[string]time.Time{},
		waitSince: map[string]time.Time{}, cancelSent: map[string]bool{}, toRecord: make(chan string, 4096)}
}

// mark asks the loop to look at a run.
func (e *engine) mark(runID string) {
	e.mu.Lock()
	e.dirty[runID] = struct{}{}
	e.mu.Unlock()
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// markQueued asks the loop to look at every queued run.
func (e *engine) markQueued() {
	e.mu.Lock()
	e.queued = true
	e.mu.Unlock()
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

func (e *engine) attemptChanged(a *agentrpc.Attempt) {
	e.mu.Lock()
	if agentrpc.IsFinal(a.Status) {
		if agent, ok := e.open[a.ID]; ok {
			delete(e.open, a.ID)
			if e.busy[agent]--; e.busy[agent] <= 0 {
				delete(e.busy, agent)
			}
			// Room on the agent: runs waiting for it may go on.
			for id := range e.waitOn[agent] {
				e.dirty[id] = struct{}{}
			}
			delete(e.waitOn, agent)
		}
	} else if _, ok := e.open[a.ID]; !ok {
		e.open[a.ID] = a.AgentID
		e.busy[a.AgentID]++
	}
	e.dirty[a.RunID] = struct{}{}
	e.mu.Unlock()
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

func (e *engine) agentUp(agentID string) {
	e.mu.Lock()
	for id := range e.waitOn[agentID] {
		e.dirty[id] = struct{}{}
	}
	delete(e.waitOn, agentID)
	e.mu.Unlock()
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

func (e *engine) waitFor(agentID, runID string) {
	e.mu.Lock()
	m := e.waitOn[agentID]
	if m == nil {
		m = map[string]struct{}{}
		e.waitOn[agentID] = m
	}
	m[runID] = struct{}{}
	e.mu.Unlock()
}

func (e *engine) load(agentID string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.busy[agentID]
}

func (e *engine) takeDirty(txn state.Reader) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.queued {
		e.queued = false
		if runs, err := activeRuns(txn, ""); err == nil {
			for _, r := range runs {
				if r.Status == RunQueued {
					e.dirty[r.ID] = struct{}{}
				}
			}
		}
	}
	ids := slices.Collect(maps.Keys(e.dirty))
	clear(e.dirty)
	return ids
}

// run is the loop: it acts only while this node leads.
func (e *engine) run(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); e.recorder(ctx) }()
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.kick:
		case <-tick.C:
		}
		if !e.s.d.IsLeader() {
			if e.leading && e.s.d.Live != nil {
				e.s.d.Live.Reset()
			}
			e.leading = false
			continue
		}
		if !e.leading {
			e.leading = true
			if e.s.d.Live != nil {
				e.s.d.Live.Reset()
			}
			e.becomeLeader()
		}
		now := e.s.d.Now()
		for id, at := range e.wake {
			if !at.After(now) {
				delete(e.wake, id)
				e.mark(id)
			}
		}
		e.pass(ctx)
		if now.Sub(e.lastExpire) >= min(time.Minute, max(e.s.cfg.Retention, time.Second)) {
			e.lastExpire = now
			e.expire(ctx, now)
		}
	}
}

// becomeLeader takes over every run not finished: whatever the last
// leader decided is in the state, and the rest is decided again.
func (e *engine) becomeLeader() {
	clear(e.wake)
	clear(e.waitSince)
	clear(e.cancelSent)
	txn := e.s.d.Store.ReadTxn()
	runs, err := activeRuns(txn, "")
	if err != nil {
		e.s.d.Logger.Error("cannot read active runs on becoming leader", "error", err)
		return
	}
	e.mu.Lock()
	clear(e.open)
	clear(e.busy)
	e.mu.Unlock()
	for _, r := range runs {
		atts, err := agentrpc.RunAttempts(txn, r.ID)
		if err != nil {
			continue
		}
		e.mu.Lock()
		for _, a := range atts {
			if !agentrpc.IsFinal(a.Status) {
				e.open[a.ID] = a.AgentID
				e.busy[a.AgentID]++
			}
		}
		e.mu.Unlock()
		e.mark(r.ID)
	}
	e.s.d.Logger.Info("driving runs as leader", "active_runs", len(runs))
}

// plannedDispatch is an attempt decided in a pass, sent at its end.
type plannedDispatch struct {
	run    *Run
	target *RunTarget
	step   *jobspec.Step
	try    int
	with   []byte
	// uses and creds replace the step's for a target reached through a
	// relay agent (see relay.go); empty means the step's own.
	uses  string
	creds map[string]string
	// secrets are the run's secret parameter values: sent for masking,
	// and masked in the parameters the attempt stores.
	secrets map[string]string
}

// runParams are a run's parameters opened for rendering.
type runParams struct {
	all     map[string]any
	secrets map[string]string
}

// passState collects what one pass decided for all its runs.
type passState struct {
	now        time.Time
	cmds       []state.Command
	dispatches []plannedDispatch
	planned    map[string]int // agent → attempts planned this pass
	params     map[string]runParams
	finishing  []finishingRun
	cancels    []string
	active     int
}

func (p *passState) command(typ string, payload any) {
	c, err := state.NewCommand(typ, 1, payload)
	if err == nil {
		p.cmds = append(p.cmds, c)
	}
}

// pass advances every marked run.
func (e *engine) pass(ctx context.Context) {
	txn := e.s.d.Store.ReadTxn()
	ids := e.takeDirty(txn)
	if len(ids) == 0 {
		return
	}
	ps := &passState{now: e.s.d.Now(), planned: map[string]int{}, params: map[string]runParams{}}
	if active, err := activeRuns(txn, ""); err == nil {
		for _, r := range active {
			if r.Status != RunQueued {
				ps.active++
			}
		}
	}
	// Oldest first, so queued runs are admitted in order.
	var runs []*Run
	for _, id := range ids {
		if r, err := getRun(txn, id); err == nil && !finalRun(r.Status) {
			runs = append(runs, r)
		}
	}
	slices.SortFunc(runs, func(a, b *Run) int { return cmpUint(a.Seq, b.Seq) })
	for _, r := range runs {
		if err := e.advance(ctx, txn, r, ps); err != nil {
			e.s.d.Logger.Warn("run not advanced", "run_id", r.ID, "error", err)
		}
	}
	for _, id := range ps.cancels {
		if _, err := e.s.d.Agents.CancelAttempt(ctx, id); err != nil && !problem.Is(err, problem.KindConflict) {
			e.s.d.Logger.Warn("attempt cancel not sent", "attempt_id", id, "error", err)
			delete(e.cancelSent, id)
		}
	}
	// The pass's decisions ride in the entry that creates its attempts:
	// one durable write on a run's critical path, not two.
	committed := e.dispatch(ctx, ps)
	e.finished(ps.finishing, committed)
}

// maxExtra bounds the decisions that ride with the attempts; more are
// committed on their own first.
const maxExtra = 256

// commit applies a pass's decisions, in entries of bounded size. A
// rejected command (a run finished meanwhile) is only logged: the next
// pass sees the state as it is.
func (e *engine) commit(ctx context.Context, cmds []state.Command) []bool {
	ok := make([]bool, len(cmds))
	for start := 0; start < len(cmds); start += 1024 {
		end := min(start+1024, len(cmds))
		res, err := e.s.d.Applier.Apply(ctx, cmds[start:end]...)
		if err != nil {
			e.s.d.Logger.Warn("run decisions not committed", "commands", end-start, "error", err)
			continue
		}
		for i, r := range res {
			ok[start+i] = r.Err == nil
			if r.Err != nil && r.Err.Kind != problem.KindConflict {
				e.s.d.Logger.Warn("run decision refused", "type", cmds[start+i].Type, "error", r.Err)
			}
		}
	}
	return ok
}

func (e *engine) wakeAt(runID string, at time.Time) {
	if cur, ok := e.wake[runID]; !ok || at.Before(cur) {
		e.wake[runID] = at
	}
}

// advance decides what comes next for one run.
func (e *engine) advance(ctx context.Context, txn state.Reader, r *Run, ps *passState) error {
	job, err := e.s.spec(r.Job, r.Version, r.Spec)
	if err != nil {
		ps.command(cmdRunStatus, runStatusPayload{ID: r.ID, Status: RunFailed, Reason: err.Error()})
		return err
	}
	status := r.Status
	// A run canceled while queued goes straight to its end.
	if status == RunQueued && r.CancelRequested == nil {
		if reason := e.queueReason(txn, r, job, ps.active); reason != "" {
			if reason != r.Reason {
				ps.command(cmdRunStatus, runStatusPayload{ID: r.ID, Status: RunQueued, Reason: reason})
			}
			return nil
		}
		ps.active++
		status = RunRunning
	}
	atts, err := agentrpc.RunAttempts(txn, r.ID)
	if err != nil {
		return err
	}
	if t := job.Timeout.Std(); t > 0 && r.StartedAt != nil && r.CancelRequested == nil {
		if deadline := r.StartedAt.Add(t); !ps.now.Before(deadline) {
			ps.command(cmdRunCancel, runCancelPayload{ID: r.ID, By: "timeout", Reason: fmt.Sprintf("the job's timeout (%s) passed", t)})
		} else {
			e.wakeAt(r.ID, deadline)
		}
	}
	e.s.learnHostKeys(ctx, r, atts)
	for _, a := range atts {
		if !agentrpc.IsFinal(a.Status) && r.targetCanceled(a.Target) && !e.cancelSent[a.ID] && a.CancelAt == nil {
			e.cancelSent[a.ID] = true
			ps.cancels = append(ps.cancels, a.ID)
		}
	}
	d := derive(r, job, atts)
	if d.done {
		ps.finishing = append(ps.finishing, finishingRun{id: r.ID, job: r.Job, outcome: d.outcome, cmd: len(ps.cmds)})
		ps.command(cmdRunStatus, runStatusPayload{ID: r.ID, Status: d.outcome, Reason: finalReason(r, d)})
		return nil
	}
	var waits []string
	var stepErrs []StepError
	requested := map[string]bool{}
	running := false
	for _, ts := range d.targets {
		if !ts.admitted {
			continue
		}
		for _, ss := range ts.steps {
			if ss.status == jobspec.Running && ss.retryAt == nil {
				running = true
			}
		}
		if r.targetCanceled(ts.t.Name) {
			continue
		}
		for _, id := range ts.start {
			st, ok := job.Step(id)
			if !ok {
				continue
			}
			if st.IsApproval() {
				if r.Approvals[id] == nil && !requested[id] {
					requested[id] = true
					ps.command(cmdRunApproval, runApprovalPayload{ID: r.ID, Approval: Approval{Step: id, Message: st.ApprovalMessage(),
						Deadline: ps.now.Add(st.ApprovalTimeout())}})
				}
				continue
			}
			why, err := e.plan(ctx, r, ts, st, 1, ps)
			if err != nil {
				stepErrs = append(stepErrs, StepError{Target: ts.t.Name, Step: id, Error: err.Error()})
			} else if why != "" {
				waits = append(waits, why)
			} else {
				running = true
			}
		}
		for _, st := range job.Steps {
			ss := ts.steps[st.ID]
			if ss.retryAt == nil {
				continue
			}
			if ps.now.Before(*ss.retryAt) {
				e.wakeAt(r.ID, *ss.retryAt)
				waits = append(waits, "a step waits to retry")
				continue
			}
			why, err := e.plan(ctx, r, ts, &st, ss.latest.Try+1, ps)
			if err != nil {
				stepErrs = append(stepErrs, StepError{Target: ts.t.Name, Step: st.ID, Error: err.Error()})
			} else if why != "" {
				waits = append(waits, why)
			} else {
				running = true
			}
		}
	}
	if len(stepErrs) > 0 {
		ps.command(cmdRunStepError, runStepErrorPayload{ID: r.ID, Errors: stepErrs})
	}
	for _, k := range slices.Sorted(maps.Keys(r.Approvals)) {
		a := r.Approvals[k]
		if a.Status != ApprovalPending {
			continue
		}
		if !ps.now.Before(a.Deadline) {
			ps.command(cmdRunApproval, runApprovalPayload{ID: r.ID, Decide: true, Approval: Approval{Step: k, Status: ApprovalExpired,
				DecidedBy: "timeout"}})
			continue
		}
		e.wakeAt(r.ID, a.Deadline)
		waits = append(waits, "waiting for approval of step "+k)
	}
	reason := ""
	if !running {
		status = RunWaiting
		reason = summarizeWaits(waits, d)
	} else {
		status = RunRunning
	}
	if status != r.Status || reason != r.Reason {
		ps.command(cmdRunStatus, runStatusPayload{ID: r.ID, Status: status, Reason: reason})
	}
	return nil
}

// summarizeWaits says in one line why a run waits.
func summarizeWaits(waits []string, d *derivation) string {
	if len(waits) == 0 {
		for _, ts := range d.targets {
			if !ts.admitted {
				return "waiting for the current batch to finish"
			}
		}
		return "waiting"
	}
	slices.Sort(waits)
	waits = slices.Compact(waits)
	if len(waits) > 3 {
		return strings.Join(waits[:3], "; ") + fmt.Sprintf("; and %d more", len(waits)-3)
	}
	return strings.Join(waits, "; ")
}

// queueReason says why a queued run must wait, or "" when it may start.
func (e *engine) queueReason(txn state.Reader, r *Run, job *jobspec.Job, active int) string {
	if job.ConcurrencyPolicy() == ConcurrencyQueue {
		runs, err := activeRuns(txn, r.Job)
		if err == nil {
			for _, o := range runs {
				if o.Seq < r.Seq {
					return fmt.Sprintf("queued behind run %s (the job's concurrency is queue)", o.ID)
				}
			}
		}
	}
	if active >= e.s.cfg.MaxActiveRuns {
		return fmt.Sprintf("queued: %d runs are active, the limit is %d", active, e.s.cfg.MaxActiveRuns)
	}
	return ""
}

// plan decides to send a try of a step to a target's agent, or says why
// it waits; an error fails the step.
func (e *engine) plan(ctx context.Context, r *Run, ts *targetState, st *jobspec.Step, try int, ps *passState) (string, error) {
	agent := ts.t.AgentID
	key := r.ID + "\x00" + ts.t.Name + "\x00" + st.ID
	if !e.s.d.Agents.Connected(agent) {
		since, ok := e.waitSince[key]
		if !ok {
			since = ps.now
			e.waitSince[key] = since
		}
		if ps.now.Sub(since) >= e.s.cfg.AgentWait {
			delete(e.waitSince, key)
			return "", fmt.Errorf("the agent of target %s was not connected for %s", ts.t.Name, e.s.cfg.AgentWait)
		}
		e.waitFor(agent, r.ID)
		e.wakeAt(r.ID, since.Add(e.s.cfg.AgentWait))
		return "waiting for the agent of " + ts.t.Name, nil
	}
	delete(e.waitSince, key)
	if e.load(agent)+ps.planned[agent] >= e.s.cfg.AgentCapacity {
		e.waitFor(agent, r.ID)
		return "waiting for room on the agent of " + ts.t.Name, nil
	}
	params, ok := ps.params[r.ID]
	if !ok {
		full, secrets, err := e.s.openParams(r)
		if err != nil {
			return "", err
		}
		params = runParams{all: full, secrets: secrets}
		ps.params[r.ID] = params
	}
	with, err := st.Render(env(r, params.all, ts.t, ts.steps))
	if err != nil {
		return "", err
	}
	pd := plannedDispatch{run: r, target: ts.t, step: st, try: try, with: with, secrets: params.secrets}
	if ts.t.Connection == connSSH {
		if pd.uses, pd.with, pd.creds, err = e.s.relayed(ctx, ts.t, st, with); err != nil {
			return "", err
		}
	}
	ps.planned[agent]++
	ps.dispatches = append(ps.dispatches, pd)
	return "", nil
}

// dispatch sends the pass's attempts in one batch.
// dispatch sends the pass's attempts in one batch with its other
// decisions, and reports which of those decisions were committed.
func (e *engine) dispatch(ctx context.Context, ps *passState) []bool {
	committed := make([]bool, len(ps.cmds))
	extra := ps.cmds
	if len(extra) > maxExtra || len(ps.dispatches) == 0 {
		for i, ok := range e.commit(ctx, ps.cmds) {
			committed[i] = ok
		}
		extra = nil
		if len(ps.dispatches) == 0 {
			return committed
		}
	}
	ds := make([]agentrpc.StepDispatch, 0, len(ps.dispatches))
	keep := make([]plannedDispatch, 0, len(ps.dispatches))
	var stepErrs = map[string][]StepError{}
	actors := map[string]*identity.Principal{}
	for _, pd := range ps.dispatches {
		id, err := agentrpc.NewAttemptID()
		if err != nil {
			e.s.d.Logger.Error("no attempt id", "error", err)
			continue
		}
		spec := agentrpc.StepSpec{Uses: pd.step.Uses, With: pd.with, Timeout: timeoutOf(pd.step)}
		if pd.uses != "" {
			spec.Uses = pd.uses
		}
		var secrets map[string]string
		if len(pd.step.Credentials) > 0 || len(pd.creds) > 0 {
			spec.Credentials = maps.Clone(pd.creds)
			if spec.Credentials == nil {
				spec.Credentials = map[string]string{}
			}
			for _, c := range pd.step.Credentials {
				spec.Credentials[jobspec.CredentialAlias(c)] = c
			}
			secrets, err = e.secrets(ctx, actors, pd, id, spec.Credentials)
			if err != nil {
				stepErrs[pd.run.ID] = append(stepErrs[pd.run.ID], StepError{Target: pd.target.Name, Step: pd.step.ID, Error: err.Error()})
				continue
			}
		}
		d := agentrpc.StepDispatch{ID: id, AgentID: pd.target.AgentID, Spec: spec, Actor: "run:" + pd.run.ID,
			Run: agentrpc.RunRef{RunID: pd.run.ID, Target: pd.target.Name, Step: pd.step.ID, Try: pd.try}, Secrets: secrets}
		if len(pd.secrets) > 0 {
			d.Stored = maskSecrets(pd.with, pd.secrets)
			if d.Secrets == nil {
				d.Secrets = map[string]string{}
			}
			maps.Copy(d.Secrets, pd.secrets)
		}
		ds = append(ds, d)
		keep = append(keep, pd)
	}
	results, extraRes := e.s.d.Agents.DispatchStepsWith(ctx, extra, ds)
	for i, r := range extraRes {
		committed[i] = r.Err == nil
		if r.Err != nil && r.Err.Kind != problem.KindConflict {
			e.s.d.Logger.Warn("run decision refused", "type", extra[i].Type, "error", r.Err)
		}
	}
	for i, res := range results {
		pd := keep[i]
		switch {
		case res.Err == nil:
		case res.Attempt.ID != "":
			// Created but not sent: marked failed by agentrpc; the step's
			// retries (if any) take it from there.
			e.s.d.Logger.Warn("assignment not sent", "run_id", pd.run.ID, "target", pd.target.Name, "step", pd.step.ID, "error", res.Err)
		case problem.Is(res.Err, problem.KindConflict) || problem.Is(res.Err, problem.KindUnavailable):
			// The agent went between the check and the send: wait for it.
			e.waitFor(pd.target.AgentID, pd.run.ID)
		default:
			stepErrs[pd.run.ID] = append(stepErrs[pd.run.ID], StepError{Target: pd.target.Name, Step: pd.step.ID, Error: res.Err.Error()})
		}
	}
	var cmds []state.Command
	for _, id := range slices.Sorted(maps.Keys(stepErrs)) {
		if c, err := state.NewCommand(cmdRunStepError, 1, runStepErrorPayload{ID: id, Errors: stepErrs[id]}); err == nil {
			cmds = append(cmds, c)
		}
	}
	e.commit(ctx, cmds)
	return committed
}

func timeoutOf(st *jobspec.Step) string {
	if d := st.Timeout.Std(); d > 0 {
		return d.String()
	}
	return ""
}

// secrets resolves a step's credentials as the person the run acts for.
func (e *engine) secrets(ctx context.Context, actors map[string]*identity.Principal, pd plannedDispatch, attemptID string, creds map[string]string) (map[string]string, error) {
	if e.s.d.Secrets == nil {
		return nil, problem.Invalid("credentials", "this controller cannot resolve credentials")
	}
	p := actors[pd.run.ID]
	if p == nil {
		var err error
		if p, err = e.s.d.Principals.Acting(ctx, pd.run.Trigger.UserID, pd.run.Trigger.Roles); err != nil {
			return nil, err
		}
		actors[pd.run.ID] = p
	}
	t, err := e.s.d.Inventory.Get(ctx, pd.target.Name)
	if err != nil {
		return nil, fmt.Errorf("target %s: %w", pd.target.Name, err)
	}
	return e.s.d.Secrets.StepSecrets(ctx, p, attemptID, t, creds)
}
