package automation

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/opsconductor/opsconductor/controller/agentrpc"
	"github.com/opsconductor/opsconductor/controller/automation/jobspec"
	"github.com/opsconductor/opsconductor/controller/automation/schedule"
	"github.com/opsconductor/opsconductor/controller/history"
	"github.com/opsconductor/opsconductor/controller/identity"
	"github.com/opsconductor/opsconductor/controller/problem"
)

// visibility returns the filter of the targets p may see runs on (nil:
// all of them).
func (s *Service) visibility(ctx context.Context, p *identity.Principal) func(*RunTarget) bool {
	if p == nil {
		return nil
	}
	scopes, ok := p.Scopes(identity.PermJobsRead)
	if ok && scopes == nil {
		return nil
	}
	return func(rt *RunTarget) bool {
		if !ok {
			return false
		}
		t, err := s.d.Inventory.Get(ctx, rt.Name)
		if err != nil {
			// A target since deleted is judged by what the run kept of it.
			return false
		}
		return s.d.Inventory.Allowed(p, identity.PermJobsRead, t)
	}
}

// viewOf renders a run in the state.
func (s *Service) viewOf(r *Run, visible func(*RunTarget) bool) (RunView, error) {
	job, err := s.spec(r.Job, r.Version, r.Spec)
	if err != nil {
		return RunView{}, err
	}
	atts, err := agentrpc.RunAttempts(s.d.Store.ReadTxn(), r.ID)
	if err != nil {
		return RunView{}, err
	}
	return view(r, job, derive(r, job, atts), visible), nil
}

// GetRun returns a run, from the state or, once it moved out, from the
// history store. A run none of whose targets p may see is not found.
func (s *Service) GetRun(ctx context.Context, p *identity.Principal, id string) (RunView, error) {
	visible := s.visibility(ctx, p)
	var v RunView
	if r, err := getRun(s.txn(), id); err == nil {
		if v, err = s.viewOf(r, visible); err != nil {
			return RunView{}, err
		}
	} else if !problem.Is(err, problem.KindNotFound) {
		return RunView{}, err
	} else {
		sr, targets, err := s.readStoredRun(ctx, id)
		if err != nil {
			return RunView{}, err
		}
		if sr == nil {
			return RunView{}, problem.NotFound("run", id)
		}
		v = storedView(sr, targets, visible)
	}
	if len(v.Targets) == 0 && v.Hidden > 0 {
		return RunView{}, problem.NotFound("run", id)
	}
	return v, nil
}

// RunAccess refuses a run p may not see, as not found (for the stream).
func (s *Service) RunAccess(ctx context.Context, p *identity.Principal, id string) error {
	_, err := s.GetRun(ctx, p, id)
	return err
}

// RunQuery filters a list of runs.
type RunQuery struct {
	Job    string
	Status string
	Target string
	Since  time.Time
	Limit  int
	Cursor string
}

// RunPage is one page of runs, newest first, without per-target detail.
type RunPage struct {
	Items []RunView `json:"items"`
	Next  string    `json:"next,omitempty"`
}

// DefaultRunPage and MaxRunPage bound a page of runs.
const (
	DefaultRunPage = 50
	MaxRunPage     = 500
)

func parseRunCursor(c string) (time.Time, string, error) {
	if c == "" {
		return time.Time{}, "", nil
	}
	ts, id, ok := strings.Cut(c, ".")
	n, err := strconv.ParseInt(ts, 36, 64)
	if !ok || err != nil || id == "" {
		return time.Time{}, "", problem.Invalid("cursor", "not a cursor this server returned")
	}
	return time.Unix(0, n).UTC(), id, nil
}

// before orders runs newest first: creation time, then ID.
func before(t time.Time, id string, ct time.Time, cid string) bool {
	return t.After(ct) || (t.Equal(ct) && id > cid)
}

// ListRuns lists runs newest first, reading the state (active and recent
// runs) and the history store (finished runs) as one list.
func (s *Service) ListRuns(ctx context.Context, p *identity.Principal, q RunQuery) (RunPage, error) {
	var errs problem.List
	if q.Limit == 0 {
		q.Limit = DefaultRunPage
	}
	if q.Limit < 1 || q.Limit > MaxRunPage {
		errs.Add("limit", "must be 1-%d, got %d", MaxRunPage, q.Limit)
	}
	switch q.Status {
	case "", RunQueued, RunWaiting, RunRunning, RunSucceeded, RunFailed, RunCanceled:
	default:
		errs.Add("status", "must be one of queued, waiting, running, succeeded, failed, canceled; got %q", q.Status)
	}
	ct, cid, err := parseRunCursor(q.Cursor)
	if err != nil {
		errs = append(errs, err.(*problem.Error))
	}
	if err := errs.Err(); err != nil {
		return RunPage{}, err
	}
	visible := s.visibility(ctx, p)
	inPage := func(created time.Time, id string) bool {
		return (q.Cursor == "" || before(ct, cid, created, id)) && (q.Since.IsZero() || !created.Before(q.Since))
	}
	seen := map[string]bool{}
	var items []RunView
	it, err := s.txn().Get(tableRuns, "id")
	if err != nil {
		return RunPage{}, fmt.Errorf("list runs: %w", err)
	}
	for obj := it.Next(); obj != nil; obj = it.Next() {
		r := obj.(*Run)
		seen[r.ID] = true
		if (q.Job != "" && r.Job != q.Job) || (q.Status != "" && r.Status != q.Status) || !inPage(r.CreatedAt, r.ID) {
			continue
		}
		if q.Target != "" && !slices.ContainsFunc(r.Targets, func(t RunTarget) bool { return t.Name == q.Target }) {
			continue
		}
		v, err := s.viewOf(r, visible)
		if err != nil || (len(v.Targets) == 0 && v.Hidden > 0) {
			continue
		}
		v.Targets = nil
		items = append(items, v)
	}
	if s.d.HistoryReader != nil {
		err := s.listStored(ctx, q, ct, seen, func(id string) bool {
			sr, targets, err := s.readStoredRun(ctx, id)
			if err != nil || sr == nil || !inPage(sr.Run.CreatedAt, id) || (q.Status != "" && sr.Run.Status != q.Status) {
				return false
			}
			v := storedView(sr, targets, visible)
			if len(v.Targets) == 0 && v.Hidden > 0 {
				return false
			}
			v.Targets = nil
			items = append(items, v)
			return true
		})
		if err != nil {
			return RunPage{}, err
		}
	}
	slices.SortFunc(items, func(a, b RunView) int {
		if before(a.CreatedAt, a.ID, b.CreatedAt, b.ID) {
			return -1
		}
		return 1
	})
	page := RunPage{Items: items}
	if len(items) > q.Limit {
		page.Items = items[:q.Limit]
		last := page.Items[q.Limit-1]
		page.Next = cursorOf(last.CreatedAt, last.ID)
	}
	if page.Items == nil {
		page.Items = []RunView{}
	}
	return page, nil
}

// listStored offers keep the finished runs in the history store that
// match q, newest first, skipping those in the state, until keep has
// taken one more than a page.
func (s *Service) listStored(ctx context.Context, q RunQuery, until time.Time, skip map[string]bool, keep func(id string) bool) error {
	hq := history.Query{Kind: kindRun, Fields: map[string]string{}, Since: q.Since, Limit: q.Limit + 1}
	if !until.IsZero() {
		// Stored times are microseconds: include the cursor's own.
		hq.Until = until.Add(time.Microsecond)
	}
	if q.Job != "" {
		hq.Fields["job"] = q.Job
	}
	if q.Status != "" {
		hq.Fields["status"] = q.Status
	}
	if q.Target != "" {
		// Target records carry the target's status, not the run's: the
		// run's is checked by keep.
		hq.Kind, hq.Fields["target"] = kindRunTarget, q.Target
		delete(hq.Fields, "status")
	}
	kept := 0
	seen := map[string]bool{}
	for kept <= q.Limit {
		page, err := s.d.HistoryReader.Query(ctx, hq)
		if err != nil {
			return fmt.Errorf("query run history: %w", err)
		}
		for _, rec := range page.Records {
			id := rec.Fields["run_id"]
			if skip[id] || seen[id] {
				continue
			}
			seen[id] = true
			if keep(id) {
				kept++
			}
		}
		if page.Next == "" {
			break
		}
		hq.Cursor = page.Next
	}
	return nil
}

// LogLine is one line of a run's output.
type LogLine struct {
	Target    string    `json:"target"`
	Step      string    `json:"step"`
	AttemptID string    `json:"attempt_id"`
	Try       int       `json:"try"`
	Seq       uint64    `json:"seq"`
	Stream    string    `json:"stream"`
	Data      string    `json:"data"`
	Time      time.Time `json:"time"`
}

// LogQuery selects a run's output.
type LogQuery struct {
	Target string
	Step   string
	// After is a cursor from a previous page ("" for the start).
	After string
	Limit int
}

// LogPage is a page of output; Next resumes after it.
type LogPage struct {
	Items []LogLine `json:"items"`
	Next  string    `json:"next"`
}

// parseLogCursor reads a log cursor: the index of the attempt in the
// run's order and the last seq read of it.
func parseLogCursor(after string) (int, uint64, error) {
	if after == "" {
		return 0, 0, nil
	}
	a, b, ok := strings.Cut(after, ":")
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.ParseUint(b, 10, 64)
	if !ok || err1 != nil || err2 != nil || i < 0 || i > maxRunTargets*jobspec.MaxSteps*16 {
		return 0, 0, problem.Invalid("after", "not a cursor this server returned")
	}
	return i, n, nil
}

// RunLogs reads a run's output target by target, step by step, try by
// try, from the history store.
func (s *Service) RunLogs(ctx context.Context, p *identity.Principal, id string, q LogQuery) (LogPage, error) {
	if q.Limit <= 0 {
		q.Limit = 1000
	}
	if q.Limit > history.MaxPage {
		return LogPage{}, problem.Invalid("limit", "must be 1-%d, got %d", history.MaxPage, q.Limit)
	}
	idx, seq, err := parseLogCursor(q.After)
	if err != nil {
		return LogPage{}, err
	}
	v, err := s.GetRun(ctx, p, id)
	if err != nil {
		return LogPage{}, err
	}
	if s.d.HistoryReader == nil {
		return LogPage{}, problem.Unavailable("history_missing", "this controller has no history store")
	}
	type ref struct {
		target, step, attempt string
		try                   int
	}
	var refs []ref
	found := q.Target == ""
	for _, t := range v.Targets {
		if q.Target != "" && t.Name != q.Target {
			continue
		}
		found = true
		for _, st := range t.Steps {
			if q.Step != "" && st.ID != q.Step {
				continue
			}
			for i, a := range st.Attempts {
				refs = append(refs, ref{t.Name, st.ID, a, i + 1})
			}
		}
	}
	if !found {
		return LogPage{}, problem.Invalid("target", "run %s has no target %q you may see", id, q.Target)
	}
	page := LogPage{Items: []LogLine{}, Next: q.After}
	for ; idx < len(refs) && len(page.Items) < q.Limit; idx, seq = idx+1, 0 {
		rf := refs[idx]
		for len(page.Items) < q.Limit {
			recs, err := s.d.HistoryReader.Read(ctx, agentrpc.LogStream(rf.attempt), seq+1, history.MaxSeq, q.Limit-len(page.Items))
			if err != nil {
				return LogPage{}, fmt.Errorf("read output of attempt %s: %w", rf.attempt, err)
			}
			for _, r := range recs {
				page.Items = append(page.Items, LogLine{Target: rf.target, Step: rf.step, AttemptID: rf.attempt, Try: rf.try,
					Seq: r.Seq, Stream: r.Fields["stream"], Data: string(r.Data), Time: r.Time})
				seq = r.Seq
			}
			page.Next = strconv.Itoa(idx) + ":" + strconv.FormatUint(seq, 10)
			if len(recs) == 0 {
				break
			}
		}
		if len(page.Items) >= q.Limit {
			break
		}
	}
	return page, nil
}

// CancelRun cancels a run, or only some of its targets.
func (s *Service) CancelRun(ctx context.Context, p *identity.Principal, id string, targets []string) (RunView, error) {
	if _, err := s.GetRun(ctx, p, id); err != nil {
		return RunView{}, err
	}
	var r Run
	if err := s.apply(ctx, cmdRunCancel, runCancelPayload{ID: id, By: p.Name(), Targets: targets}, &r); err != nil {
		return RunView{}, err
	}
	s.d.Logger.Info("run cancel requested", "run_id", id, "by", p.Name(), "targets", targets)
	return s.GetRun(ctx, p, id)
}

// Rerun modes.
const (
	RerunAll    = "all"
	RerunFailed = "failed"
	RerunResume = "resume"
)

// RerunRequest reruns a finished run: everything, only the targets that
// did not succeed, or those targets from the step that failed on, keeping
// the earlier steps' results.
type RerunRequest struct {
	Mode string `json:"mode"`
}

// Rerun starts a new run of the same job version and parameters.
func (s *Service) Rerun(ctx context.Context, p *identity.Principal, id string, req RerunRequest) (RunView, error) {
	if req.Mode == "" {
		req.Mode = RerunAll
	}
	if req.Mode != RerunAll && req.Mode != RerunFailed && req.Mode != RerunResume {
		return RunView{}, problem.Invalid("mode", "must be all, failed or resume; got %q", req.Mode)
	}
	old, err := s.GetRun(ctx, p, id)
	if err != nil {
		return RunView{}, err
	}
	if !finalRun(old.Status) {
		return RunView{}, problem.New(problem.KindConflict, "run_active", "run %s is still %s: cancel it or wait before rerunning", id, old.Status)
	}
	detail, err := s.GetJob(ctx, old.Job, old.Version)
	if err != nil {
		return RunView{}, err
	}
	job, err := s.spec(old.Job, old.Version, detail.Version.Spec)
	if err != nil {
		return RunView{}, err
	}
	var names []string
	keep := map[string]map[string]KeptStep{}
	for _, t := range old.Targets {
		if req.Mode != RerunAll && t.Status == RunSucceeded {
			continue
		}
		names = append(names, t.Name)
		if req.Mode == RerunResume {
			k := map[string]KeptStep{}
			for _, st := range t.Steps {
				if st.Status == string(jobspec.Succeeded) {
					k[st.ID] = KeptStep{Status: st.Status, Outputs: st.Outputs, Changed: st.Changed}
				}
			}
			keep[t.Name] = k
		}
	}
	if len(names) == 0 {
		return RunView{}, problem.Invalid("mode", "run %s has no target that did not succeed", id)
	}
	// The old run's row has its parameters (the secret ones sealed to it).
	var oldRow *Run
	if r, err := getRun(s.txn(), id); err == nil {
		oldRow = r
	} else if sr, _, err := s.readStoredRun(ctx, id); err == nil && sr != nil {
		oldRow = &sr.Run
	} else {
		return RunView{}, problem.NotFound("run", id)
	}
	full, _, err := s.openParams(oldRow)
	if err != nil {
		return RunView{}, err
	}
	newID, err := newRunID()
	if err != nil {
		return RunView{}, err
	}
	pinned := *job
	pinned.Targets = jobspec.Targets{Names: names}
	targets, err := s.resolveTargets(ctx, p, &pinned, nil)
	if err != nil {
		return RunView{}, err
	}
	for i := range targets {
		targets[i].Keep = keep[targets[i].Name]
	}
	batch, err := job.BatchSize(full, len(targets))
	if err != nil {
		return RunView{}, err
	}
	params, sealed, names, err := s.sealParams(job, newID, full)
	if err != nil {
		return RunView{}, err
	}
	run := Run{ID: newID, Job: old.Job, Version: old.Version, Spec: detail.Version.Spec, Params: params, Secret: sealed, SecretNames: names,
		Trigger: Trigger{Kind: "rerun", RerunOf: id, By: p.Name(), UserID: p.UserID, Roles: slices.Clone(p.Roles)},
		Targets: targets, BatchSize: batch, Approvals: map[string]*Approval{}}
	if run.Trigger.Roles == nil {
		run.Trigger.Roles = []identity.Binding{}
	}
	var res RunCreateResult
	if err := s.apply(ctx, cmdRunCreate, runCreatePayload{Run: run, Concurrency: job.ConcurrencyPolicy()}, &res); err != nil {
		return RunView{}, err
	}
	s.d.Logger.Info("run created", "run_id", newID, "job", old.Job, "rerun_of", id, "mode", req.Mode, "targets", len(targets), "by", p.Name())
	return s.viewOf(&res.Run, nil)
}

// ApprovalDecision approves or rejects an approval step.
type ApprovalDecision struct {
	Approve bool   `json:"approve"`
	Comment string `json:"comment,omitempty"`
}

// Decide records a person's decision on a run's approval step.
func (s *Service) Decide(ctx context.Context, p *identity.Principal, id, step string, dec ApprovalDecision) (Approval, error) {
	if _, err := s.GetRun(ctx, p, id); err != nil {
		return Approval{}, err
	}
	if len(dec.Comment) > 1024 {
		return Approval{}, problem.Invalid("comment", "at most 1024 bytes")
	}
	status := ApprovalRejected
	if dec.Approve {
		status = ApprovalApproved
	}
	var a Approval
	err := s.apply(ctx, cmdRunApproval, runApprovalPayload{ID: id, Decide: true,
		Approval: Approval{Step: step, Status: status, DecidedBy: p.Name(), Comment: dec.Comment}}, &a)
	if err == nil {
		s.d.Logger.Info("approval decided", "run_id", id, "step", step, "status", status, "by", p.Name())
	}
	return a, err
}

// scheduledRunID derives a tick's run ID, so that firing one tick twice
// (after a failover) finds the run the first firing made.
func scheduledRunID(scheduleID string, at time.Time) string {
	sum := sha256.Sum256([]byte(scheduleID + "\x00" + at.UTC().Format(time.RFC3339Nano)))
	return "run_" + hex.EncodeToString(sum[:8])
}

var _ schedule.Runner = (*Service)(nil)

// StartScheduled creates the run of one schedule tick, acting for the
// schedule's owner.
func (s *Service) StartScheduled(ctx context.Context, t schedule.Tick) (string, error) {
	p, err := s.d.Principals.Acting(ctx, t.Owner, nil)
	if err != nil {
		return "", err
	}
	at := t.FireTime.UTC()
	r, err := s.createRun(ctx, p, scheduledRunID(t.ScheduleID, at), t.Job, RunRequest{Params: t.Params},
		Trigger{Kind: "schedule", Schedule: t.Schedule, ScheduleID: t.ScheduleID, FireTime: &at})
	if err != nil {
		return "", err
	}
	return r.ID, nil
}

// StartTriggered creates the run of one inbound webhook delivery, acting
// for the trigger's owner. A delivery the sender retries (same delivery
// ID) gets the same run: the ID is derived from trigger and delivery.
func (s *Service) StartTriggered(ctx context.Context, owner, triggerID, deliveryID, job string, params map[string]any) (string, error) {
	p, err := s.d.Principals.Acting(ctx, owner, nil)
	if err != nil {
		return "", err
	}
	id := ""
	if deliveryID != "" {
		sum := sha256.Sum256([]byte("trigger\x00" + triggerID + "\x00" + deliveryID))
		id = "run_" + hex.EncodeToString(sum[:8])
	} else if id, err = newRunID(); err != nil {
		return "", err
	}
	r, err := s.createRun(ctx, p, id, job, RunRequest{Params: params}, Trigger{Kind: "webhook", TriggerID: triggerID, DeliveryID: deliveryID})
	if err != nil {
		return "", err
	}
	return r.ID, nil
}

// ActiveRun returns a run a schedule started that is not finished.
func (s *Service) ActiveRun(_ context.Context, scheduleID string) (string, error) {
	runs, err := activeRuns(s.txn(), "")
	if err != nil {
		return "", err
	}
	for _, r := range runs {
		if r.Trigger.ScheduleID == scheduleID {
			return r.ID, nil
		}
	}
	return "", nil
}

// CheckJob refuses a job that does not exist or params it would refuse.
func (s *Service) CheckJob(ctx context.Context, name string, params map[string]any) error {
	detail, err := s.GetJob(ctx, name, 0)
	if err != nil {
		return prefixField(err, "job")
	}
	job, err := s.spec(name, detail.Version.Version, detail.Version.Spec)
	if err != nil {
		return err
	}
	if _, err = job.ResolveParams(params); err != nil {
		return err
	}
	// A schedule keeps its params in the clear in the state.
	var errs problem.List
	for _, name := range secretNames(job) {
		if _, ok := params[name]; ok {
			errs.Add("params."+name, "is a secret parameter, which a schedule cannot keep: give it a default-free job a credential instead")
		}
	}
	return errs.Err()
}
