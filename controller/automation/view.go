package automation

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/opsconductor/opsconductor/controller/agentrpc"
	"github.com/opsconductor/opsconductor/controller/automation/jobspec"
)

// StepView is one step on one target as the API shows it.
type StepView struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	// Reason says why a step waits or was skipped.
	Reason     string            `json:"reason,omitempty"`
	AttemptID  string            `json:"attempt_id,omitempty"`
	Try        int               `json:"try,omitempty"`
	Attempts   []string          `json:"attempts,omitempty"`
	ExitCode   *int              `json:"exit_code,omitempty"`
	Error      string            `json:"error,omitempty"`
	StartedAt  *time.Time        `json:"started_at,omitempty"`
	FinishedAt *time.Time        `json:"finished_at,omitempty"`
	Outputs    map[string]string `json:"outputs,omitempty"`
	Changed    bool              `json:"changed,omitempty"`
	RetryAt    *time.Time        `json:"retry_at,omitempty"`
}

// TargetView is one target of a run.
type TargetView struct {
	Name    string     `json:"name"`
	AgentID string     `json:"agent_id"`
	Batch   int        `json:"batch"`
	Status  string     `json:"status"`
	Steps   []StepView `json:"steps"`
}

// Summary counts a run's targets by status.
type Summary struct {
	Targets   int `json:"targets"`
	Pending   int `json:"pending"`
	Running   int `json:"running"`
	Waiting   int `json:"waiting"`
	Succeeded int `json:"succeeded"`
	Failed    int `json:"failed"`
	Canceled  int `json:"canceled"`
	Skipped   int `json:"skipped"`
}

// RunView is a run with what happened on each target.
type RunView struct {
	ID              string       `json:"id"`
	Job             string       `json:"job"`
	Version         int          `json:"version"`
	Params          any          `json:"params"`
	Trigger         Trigger      `json:"trigger"`
	Status          string       `json:"status"`
	Reason          string       `json:"reason,omitempty"`
	BatchSize       int          `json:"batch_size"`
	Approvals       []Approval   `json:"approvals,omitempty"`
	CancelRequested *time.Time   `json:"cancel_requested_at,omitempty"`
	CanceledBy      string       `json:"canceled_by,omitempty"`
	CreatedAt       time.Time    `json:"created_at"`
	StartedAt       *time.Time   `json:"started_at,omitempty"`
	FinishedAt      *time.Time   `json:"finished_at,omitempty"`
	Summary         Summary      `json:"summary"`
	Targets         []TargetView `json:"targets"`
	// Hidden counts targets left out because the caller may not see them.
	Hidden int `json:"hidden,omitempty"`
}

// Target statuses beyond the step statuses.
const (
	targetPending = "pending"
	targetSkipped = "skipped"
)

// stepState is what is known of one step on one target.
type stepState struct {
	status   jobspec.Status
	reason   string
	latest   *agentrpc.Attempt
	attempts []*agentrpc.Attempt
	// retryAt is set while a failed try waits for its next one.
	retryAt *time.Time
	err     string
	kept    *KeptStep
}

// targetState is one target's DAG, decided as far as it can be.
type targetState struct {
	t        *RunTarget
	batch    int
	admitted bool
	steps    map[string]*stepState
	start    []string // steps whose turn has come
	done     bool
	outcome  jobspec.Status
}

// derivation is a run's state derived from its row and its attempts.
type derivation struct {
	targets []*targetState
	done    bool
	outcome string
	stopped bool // the failure threshold stopped new batches
	failed  int
}

// maxLostRetries bounds the automatic tries of an idempotent step whose
// agent went away.
const maxLostRetries = 3

// attemptStatus maps an attempt's status to a step status.
func attemptStatus(s string) jobspec.Status {
	switch s {
	case agentrpc.AttemptPending, agentrpc.AttemptRunning:
		return jobspec.Running
	case agentrpc.AttemptSucceeded:
		return jobspec.Succeeded
	case agentrpc.AttemptTimedOut:
		return jobspec.TimedOut
	case agentrpc.AttemptCanceled:
		return jobspec.Canceled
	case agentrpc.AttemptLost:
		return jobspec.Lost
	default: // failed, error
		return jobspec.Failed
	}
}

// retryDue says when a step whose latest try ended badly gets another, or
// nil when it gets none.
func retryDue(st *jobspec.Step, a *agentrpc.Attempt, canceled bool) *time.Time {
	if canceled || a.FinishedAt == nil {
		return nil
	}
	limit := 1 + st.Retries.Count
	switch a.Status {
	case agentrpc.AttemptFailed, agentrpc.AttemptError, agentrpc.AttemptTimedOut:
	case agentrpc.AttemptLost:
		if st.Idempotent {
			limit = max(limit, maxLostRetries)
		} else {
			return nil
		}
	default:
		return nil
	}
	if a.Try >= limit {
		return nil
	}
	backoff := st.Backoff()
	for i := 1; i < a.Try && backoff < 10*time.Minute; i++ {
		backoff *= 2
	}
	at := a.FinishedAt.Add(min(backoff, 10*time.Minute))
	return &at
}

// env is what a step's expressions see on a target.
// params are the run's parameters: without the secret ones when the
// state is read (a when: condition sees the same on every node), with
// them when the leader renders a step.
func env(r *Run, params map[string]any, t *RunTarget, steps map[string]*stepState) jobspec.Env {
	e := jobspec.Env{
		Params: params,
		Target: jobspec.TargetEnv{Name: t.Name, Address: t.Address, Tags: t.Tags, Facts: t.Facts},
		Steps:  make(map[string]jobspec.StepEnv, len(steps)),
		Run:    jobspec.RunEnv{ID: r.ID, Job: r.Job, Version: r.Version, TriggeredBy: r.Trigger.By},
	}
	for id, s := range steps {
		se := jobspec.StepEnv{Status: string(s.status)}
		switch {
		case s.kept != nil:
			se.Outputs, se.Changed = s.kept.Outputs, s.kept.Changed
		case s.latest != nil:
			se.Outputs, se.Changed = s.latest.Outputs, s.latest.Changed
		}
		if se.Outputs == nil {
			se.Outputs = map[string]string{}
		}
		e.Steps[id] = se
	}
	return e
}

// derive works out where every target of a run stands. It is pure: the
// API and the leader's engine get the same answer from the same state.
func derive(r *Run, job *jobspec.Job, atts []*agentrpc.Attempt) *derivation {
	byTarget := map[string]map[string][]*agentrpc.Attempt{}
	for _, a := range atts {
		m := byTarget[a.Target]
		if m == nil {
			m = map[string][]*agentrpc.Attempt{}
			byTarget[a.Target] = m
		}
		m[a.Step] = append(m[a.Step], a)
	}
	d := &derivation{}
	batch := max(r.BatchSize, 1)
	for i := range r.Targets {
		d.targets = append(d.targets, deriveTarget(r, job, &r.Targets[i], i/batch, byTarget[r.Targets[i].Name]))
	}
	// Batches are admitted in order: the next once every target of the
	// earlier ones is decided, unless failures passed the threshold.
	total := len(d.targets)
	for b := 0; b*batch < total; b++ {
		for _, ts := range d.targets[b*batch : min((b+1)*batch, total)] {
			ts.admitted = true
			if ts.done && ts.outcome == jobspec.Failed {
				d.failed++
			}
		}
		if !batchDone(d.targets, b) || d.thresholdPassed(job, total) {
			break
		}
	}
	// A started target is one that has anything to show: it finishes even
	// when its batch was not formally open (a run resumed after a change).
	for _, ts := range d.targets {
		if !ts.admitted && started(ts) {
			ts.admitted = true
		}
	}
	d.stopped = d.thresholdPassed(job, total) && slices.ContainsFunc(d.targets, func(ts *targetState) bool { return !ts.admitted })
	d.done = true
	for _, ts := range d.targets {
		if ts.admitted && !ts.done {
			d.done = false
		}
		if !ts.admitted && !d.stopped && !r.targetCanceled(ts.t.Name) {
			d.done = false
		}
	}
	if d.done {
		d.outcome = RunSucceeded
		anyCanceled := false
		for _, ts := range d.targets {
			switch {
			case ts.admitted && ts.outcome == jobspec.Failed:
				d.outcome = RunFailed
			case ts.admitted && ts.outcome == jobspec.Canceled, !ts.admitted && r.targetCanceled(ts.t.Name):
				anyCanceled = true
			}
		}
		if d.stopped {
			d.outcome = RunFailed
		}
		if r.CancelRequested != nil || (anyCanceled && d.outcome == RunSucceeded) {
			d.outcome = RunCanceled
		}
	}
	return d
}

func (d *derivation) thresholdPassed(job *jobspec.Job, total int) bool {
	mf := job.Rollout.MaxFailPercent
	return mf != nil && total > 0 && float64(d.failed)*100 > *mf*float64(total)
}

func batchDone(ts []*targetState, b int) bool {
	for _, t := range ts {
		if t.batch == b && !t.done {
			return false
		}
	}
	return true
}

func started(ts *targetState) bool {
	for _, s := range ts.steps {
		if s.latest != nil || s.err != "" || s.kept != nil {
			return true
		}
	}
	return false
}

// deriveTarget plays the job's DAG rules over what happened on a target.
func deriveTarget(r *Run, job *jobspec.Job, t *RunTarget, batch int, atts map[string][]*agentrpc.Attempt) *targetState {
	ts := &targetState{t: t, batch: batch, steps: map[string]*stepState{}}
	canceled := r.targetCanceled(t.Name)
	states := map[string]jobspec.StepState{}
	for i := range job.Steps {
		st := &job.Steps[i]
		ss := &stepState{status: jobspec.Pending}
		if k, ok := t.Keep[st.ID]; ok {
			kc := k
			ss.kept, ss.status = &kc, jobspec.Status(k.Status)
		} else if list := atts[st.ID]; len(list) > 0 {
			slices.SortFunc(list, func(a, b *agentrpc.Attempt) int { return a.Try - b.Try })
			ss.attempts, ss.latest = list, list[len(list)-1]
			ss.status = attemptStatus(ss.latest.Status)
			if due := retryDue(st, ss.latest, canceled); due != nil {
				ss.status, ss.retryAt = jobspec.Running, due
				ss.reason = fmt.Sprintf("try %d %s; retrying", ss.latest.Try, ss.latest.Status)
			}
		} else if e, ok := r.stepError(t.Name, st.ID); ok {
			ss.status, ss.err = jobspec.Failed, e.Error
		} else if st.IsApproval() {
			if a := r.Approvals[st.ID]; a != nil {
				switch a.Status {
				case ApprovalPending:
					ss.status, ss.reason = jobspec.Waiting, "waiting for approval"
					if canceled {
						ss.status = jobspec.Canceled
					}
				case ApprovalApproved:
					ss.status = jobspec.Succeeded
				default:
					ss.status, ss.err = jobspec.Failed, "approval "+a.Status
				}
			}
		}
		ts.steps[st.ID] = ss
		if ss.status != jobspec.Pending {
			states[st.ID] = jobspec.StepState{Status: ss.status, Outputs: outputsOf(ss), Changed: changedOf(ss)}
		}
	}
	// Plan decides the steps whose turn has come; skips and cancels feed
	// the next round until nothing new is decided.
	for round := 0; round <= len(job.Steps)+1; round++ {
		eval := func(st *jobspec.Step) (bool, error) {
			return st.ShouldRun(env(r, r.Params, t, ts.steps))
		}
		dec := job.Plan(states, canceled, eval)
		changed := false
		for _, id := range dec.Skip {
			if _, ok := states[id]; !ok {
				states[id] = jobspec.StepState{Status: jobspec.Skipped}
				ts.steps[id].status, changed = jobspec.Skipped, true
			}
		}
		for _, id := range dec.Cancel {
			if _, ok := states[id]; !ok {
				states[id] = jobspec.StepState{Status: jobspec.Canceled}
				ts.steps[id].status, changed = jobspec.Canceled, true
			}
		}
		for id, msg := range dec.Errors {
			if _, ok := states[id]; !ok {
				states[id] = jobspec.StepState{Status: jobspec.Failed}
				ts.steps[id].status, ts.steps[id].err, changed = jobspec.Failed, "when: "+msg, true
			}
		}
		if changed {
			continue
		}
		ts.start, ts.done, ts.outcome = dec.Start, dec.Done, dec.Outcome
		break
	}
	return ts
}

func outputsOf(s *stepState) map[string]string {
	switch {
	case s.kept != nil:
		return s.kept.Outputs
	case s.latest != nil:
		return s.latest.Outputs
	}
	return nil
}

func changedOf(s *stepState) bool {
	switch {
	case s.kept != nil:
		return s.kept.Changed
	case s.latest != nil:
		return s.latest.Changed
	}
	return false
}

// view renders a run for the API; visible filters targets (nil: all).
func view(r *Run, job *jobspec.Job, d *derivation, visible func(*RunTarget) bool) RunView {
	v := RunView{ID: r.ID, Job: r.Job, Version: r.Version, Params: viewParams(r), Trigger: r.Trigger, Status: r.Status,
		Reason: r.Reason, BatchSize: r.BatchSize, CancelRequested: r.CancelRequested, CanceledBy: r.CanceledBy,
		CreatedAt: r.CreatedAt, StartedAt: r.StartedAt, FinishedAt: r.FinishedAt, Targets: []TargetView{}}
	v.Trigger.Roles = nil
	for _, k := range slices.Sorted(maps.Keys(r.Approvals)) {
		v.Approvals = append(v.Approvals, *r.Approvals[k])
	}
	for _, ts := range d.targets {
		if visible != nil && !visible(ts.t) {
			v.Hidden++
			continue
		}
		tv := TargetView{Name: ts.t.Name, AgentID: ts.t.AgentID, Batch: ts.batch, Status: targetStatus(r, d, ts)}
		for i := range job.Steps {
			st := &job.Steps[i]
			ss := ts.steps[st.ID]
			sv := StepView{ID: st.ID, Status: string(ss.status), Reason: ss.reason, Error: ss.err, RetryAt: ss.retryAt}
			if ss.status == jobspec.Pending && ts.admitted && slices.Contains(ts.start, st.ID) {
				sv.Reason = "ready"
			}
			if ss.status == jobspec.Pending && !ts.admitted {
				sv.Reason = "waiting for an earlier batch"
				if d.stopped || (r.targetCanceled(ts.t.Name)) {
					sv.Status, sv.Reason = string(jobspec.Skipped), "the run stopped before this target"
				}
			}
			if ss.kept != nil {
				sv.Outputs, sv.Changed, sv.Reason = ss.kept.Outputs, ss.kept.Changed, "kept from the run this one reran"
			}
			if a := ss.latest; a != nil {
				sv.AttemptID, sv.Try, sv.ExitCode, sv.StartedAt, sv.FinishedAt = a.ID, a.Try, a.ExitCode, a.StartedAt, a.FinishedAt
				sv.Outputs, sv.Changed = a.Outputs, a.Changed
				if sv.Error == "" {
					sv.Error = a.Error
				}
				for _, x := range ss.attempts {
					sv.Attempts = append(sv.Attempts, x.ID)
				}
			}
			tv.Steps = append(tv.Steps, sv)
		}
		v.Targets = append(v.Targets, tv)
		v.Summary.count(tv.Status)
	}
	v.Summary.Targets = len(v.Targets)
	return v
}

// targetStatus is how a target stands as a whole.
func targetStatus(r *Run, d *derivation, ts *targetState) string {
	switch {
	case ts.admitted && ts.done:
		return string(ts.outcome)
	case !ts.admitted && (d.stopped || r.targetCanceled(ts.t.Name)):
		return targetSkipped
	case !ts.admitted:
		return targetPending
	}
	running := false
	for _, s := range ts.steps {
		if s.status == jobspec.Running {
			running = true
		}
	}
	if running {
		return RunRunning
	}
	if started(ts) || len(ts.start) > 0 {
		return RunWaiting
	}
	return targetPending
}

func (s *Summary) count(status string) {
	switch status {
	case targetPending:
		s.Pending++
	case RunRunning:
		s.Running++
	case RunWaiting:
		s.Waiting++
	case RunSucceeded:
		s.Succeeded++
	case RunFailed, string(jobspec.Lost), string(jobspec.TimedOut):
		s.Failed++
	case RunCanceled:
		s.Canceled++
	case targetSkipped:
		s.Skipped++
	}
}
