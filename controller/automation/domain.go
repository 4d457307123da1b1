package automation

import (
	"fmt"
	"slices"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/opsconductor/opsconductor/controller/communication/notify"
	"github.com/opsconductor/opsconductor/controller/communication/tmpl"
	"github.com/opsconductor/opsconductor/controller/problem"
	"github.com/opsconductor/opsconductor/controller/state"
)

// Tables owned by automation.
const (
	tableJobs     = "automation_jobs"
	tableVersions = "automation_job_versions"
	tableRuns     = "automation_runs"
)

// Command types. Appended, never renamed or reused.
const (
	cmdJobPut       = "automation.job.put"
	cmdJobDelete    = "automation.job.delete"
	cmdRunCreate    = "automation.run.create"
	cmdRunStatus    = "automation.run.status"
	cmdRunApproval  = "automation.run.approval"
	cmdRunStepError = "automation.run.step_error"
	cmdRunCancel    = "automation.run.cancel"
	cmdRunExpire    = "automation.run.expire"
	cmdRunRewrap    = "automation.run.rewrap"
)

// Notify is told, after the commit, of every run that changed; the engine
// and the live hub listen. It must not block.
type Notify func(r *Run)

// Domain returns automation's tables and commands. notify may be nil.
func Domain(notify Notify) state.Domain { return DomainWithEvents(notify, nil) }

// DomainWithEvents is Domain that also raises notification events (run
// started and finished, approval requested) through emit, inside the
// transaction that makes them.
func DomainWithEvents(notify Notify, emit notifyEmitter) state.Domain {
	d := domain{notify: notify, emit: emit}
	return state.Domain{
		Name: "automation",
		Tables: []state.Table{
			{Schema: &memdb.TableSchema{Name: tableJobs, Indexes: map[string]*memdb.IndexSchema{
				"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Name"}},
			}}, New: func() any { return &Job{} }},
			{Schema: &memdb.TableSchema{Name: tableVersions, Indexes: map[string]*memdb.IndexSchema{
				"id": {Name: "id", Unique: true, Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{
					&memdb.StringFieldIndex{Field: "Name"}, &memdb.IntFieldIndex{Field: "Version"}}}},
				"name": {Name: "name", Indexer: &memdb.StringFieldIndex{Field: "Name"}},
			}}, New: func() any { return &JobVersion{} }},
			{Schema: &memdb.TableSchema{Name: tableRuns, Indexes: map[string]*memdb.IndexSchema{
				"id":  {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
				"job": {Name: "job", Indexer: &memdb.StringFieldIndex{Field: "Job"}},
				"active": {Name: "active", Indexer: &memdb.ConditionalIndex{Conditional: func(obj any) (bool, error) {
					return !finalRun(obj.(*Run).Status), nil
				}}},
				"seq": {Name: "seq", Unique: true, Indexer: &memdb.UintFieldIndex{Field: "Seq"}},
			}}, New: func() any { return &Run{} }},
		},
		Commands: map[string]state.Handler{
			cmdJobPut:       state.V1(d.applyJobPut),
			cmdJobDelete:    state.V1(d.applyJobDelete),
			cmdRunCreate:    state.V1(d.applyRunCreate),
			cmdRunStatus:    state.V1(d.applyRunStatus),
			cmdRunApproval:  state.V1(d.applyRunApproval),
			cmdRunStepError: state.V1(d.applyRunStepError),
			cmdRunCancel:    state.V1(d.applyRunCancel),
			cmdRunExpire:    state.V1(d.applyRunExpire),
			cmdRunRewrap:    state.V1(d.applyRunRewrap),
		},
	}
}

type domain struct {
	notify Notify
	emit   notifyEmitter
}

// put stores a run and tells notify once it is committed.
func (d domain) put(ctx *state.ApplyContext, r *Run) error {
	if err := ctx.Txn.Insert(tableRuns, r); err != nil {
		return err
	}
	if d.notify != nil {
		ctx.Txn.AfterCommit(func() { d.notify(r) })
	}
	return nil
}

func getJob(txn state.Reader, name string) (*Job, error) {
	return state.ByID[Job](txn, tableJobs, "job", name)
}

func getVersion(txn state.Reader, name string, version int) (*JobVersion, error) {
	raw, err := txn.First(tableVersions, "id", name, version)
	if err != nil {
		return nil, fmt.Errorf("read job version: %w", err)
	}
	if raw == nil {
		return nil, problem.NotFound("job version", fmt.Sprintf("%s@%d", name, version))
	}
	return raw.(*JobVersion), nil
}

func getRun(txn state.Reader, id string) (*Run, error) {
	return state.ByID[Run](txn, tableRuns, "run", id)
}

// activeRuns returns the runs not yet final, of one job or ("" ) all.
func activeRuns(txn state.Reader, job string) ([]*Run, error) {
	it, err := txn.Get(tableRuns, "active", true)
	if err != nil {
		return nil, fmt.Errorf("read active runs: %w", err)
	}
	var out []*Run
	for obj := it.Next(); obj != nil; obj = it.Next() {
		if r := obj.(*Run); job == "" || r.Job == job {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b *Run) int { return cmpUint(a.Seq, b.Seq) })
	return out, nil
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

type jobPutPayload struct {
	Version JobVersion `json:"version"`
	// Description is the job's, shown in lists.
	Description string `json:"description,omitempty"`
}

// JobPutResult says which version a save made, or that the definition was
// unchanged and no version was made.
type JobPutResult struct {
	Job       Job        `json:"job"`
	Version   JobVersion `json:"version"`
	Unchanged bool       `json:"unchanged"`
}

func (d domain) applyJobPut(ctx *state.ApplyContext, p jobPutPayload) (any, error) {
	v := p.Version
	job, err := getJob(ctx.Txn, v.Name)
	switch {
	case problem.Is(err, problem.KindNotFound):
		job = &Job{Name: v.Name, CreatedAt: ctx.Time, CreatedBy: v.CreatedBy}
	case err != nil:
		return nil, err
	default:
		latest, err := getVersion(ctx.Txn, v.Name, job.Latest)
		if err != nil {
			return nil, err
		}
		if latest.Digest == v.Digest {
			return JobPutResult{Job: *job, Version: *latest, Unchanged: true}, nil
		}
		c := *job
		job = &c
	}
	job.Latest++
	job.Description, job.UpdatedAt, job.UpdatedBy = p.Description, ctx.Time, v.CreatedBy
	v.Version, v.CreatedAt = job.Latest, ctx.Time
	if err := ctx.Txn.Insert(tableJobs, job); err != nil {
		return nil, err
	}
	if err := ctx.Txn.Insert(tableVersions, &v); err != nil {
		return nil, err
	}
	return JobPutResult{Job: *job, Version: v}, nil
}

type jobDeletePayload struct {
	Name string `json:"name"`
}

// applyJobDelete removes a job and its versions. A job with runs still
// going is kept: they pin a version, and a delete in the middle would
// leave a rerun nothing to read.
func (d domain) applyJobDelete(ctx *state.ApplyContext, p jobDeletePayload) (any, error) {
	job, err := getJob(ctx.Txn, p.Name)
	if err != nil {
		return nil, err
	}
	active, err := activeRuns(ctx.Txn, p.Name)
	if err != nil {
		return nil, err
	}
	if len(active) > 0 {
		return nil, problem.New(problem.KindConflict, "job_running", "job %s has %d run(s) not finished (%s …): cancel them or wait", p.Name, len(active), active[0].ID)
	}
	it, err := ctx.Txn.Get(tableVersions, "name", p.Name)
	if err != nil {
		return nil, err
	}
	var versions []any
	for obj := it.Next(); obj != nil; obj = it.Next() {
		versions = append(versions, obj)
	}
	for _, v := range versions {
		if err := ctx.Txn.Delete(tableVersions, v); err != nil {
			return nil, err
		}
	}
	if err := ctx.Txn.Delete(tableJobs, job); err != nil {
		return nil, err
	}
	return nil, nil
}

type runCreatePayload struct {
	Run         Run    `json:"run"`
	Concurrency string `json:"concurrency"`
}

// RunCreateResult is the run as created, or the one that already had the
// ID (a schedule's tick retried after a failover).
type RunCreateResult struct {
	Run     Run  `json:"run"`
	Existed bool `json:"existed"`
}

func (d domain) applyRunCreate(ctx *state.ApplyContext, p runCreatePayload) (any, error) {
	if r, err := getRun(ctx.Txn, p.Run.ID); err == nil {
		return RunCreateResult{Run: *r, Existed: true}, nil
	}
	if _, err := getVersion(ctx.Txn, p.Run.Job, p.Run.Version); err != nil {
		return nil, err
	}
	if p.Concurrency == ConcurrencyForbid {
		active, err := activeRuns(ctx.Txn, p.Run.Job)
		if err != nil {
			return nil, err
		}
		if len(active) > 0 {
			return nil, problem.New(problem.KindConflict, "job_running",
				"job %s forbids concurrent runs and run %s is %s", p.Run.Job, active[0].ID, active[0].Status)
		}
	}
	r := p.Run.clone()
	r.Status, r.CreatedAt = RunQueued, ctx.Time
	// Several runs may share an entry (at most MaxCommandsPerEntry): each
	// takes the next free number under the entry's index.
	for c := ctx.Index << 12; ; c++ {
		if raw, err := ctx.Txn.First(tableRuns, "seq", c); err != nil {
			return nil, err
		} else if raw == nil {
			r.Seq = c
			break
		}
	}
	if err := d.put(ctx, r); err != nil {
		return nil, err
	}
	return RunCreateResult{Run: *r}, nil
}

type runStatusPayload struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Reason string `json:"reason"`
}

// applyRunStatus moves a run to a new state. A final run stays final: a
// leader that decided late cannot reopen it.
func (d domain) applyRunStatus(ctx *state.ApplyContext, p runStatusPayload) (any, error) {
	before, err := getRun(ctx.Txn, p.ID)
	if err != nil {
		return nil, err
	}
	if finalRun(before.Status) || (before.Status == p.Status && before.Reason == p.Reason) {
		return *before, nil
	}
	r := before.clone()
	r.Status, r.Reason = p.Status, p.Reason
	at := ctx.Time
	if r.StartedAt == nil && (p.Status == RunRunning || p.Status == RunWaiting || finalRun(p.Status)) {
		r.StartedAt = &at
	}
	if finalRun(p.Status) {
		r.FinishedAt = &at
	}
	if err := d.put(ctx, r); err != nil {
		return nil, err
	}
	if err := d.runEvents(ctx, before, r); err != nil {
		return nil, err
	}
	return *r, nil
}

type runApprovalPayload struct {
	ID       string   `json:"id"`
	Approval Approval `json:"approval"`
	// Decide is set for a person's decision or an expiry; a request
	// (Decide false) is ignored when the step already has one.
	Decide bool `json:"decide"`
}

func (d domain) applyRunApproval(ctx *state.ApplyContext, p runApprovalPayload) (any, error) {
	before, err := getRun(ctx.Txn, p.ID)
	if err != nil {
		return nil, err
	}
	cur := before.Approvals[p.Approval.Step]
	switch {
	case finalRun(before.Status):
		return nil, problem.New(problem.KindConflict, "run_finished", "run %s is already %s", p.ID, before.Status)
	case !p.Decide && cur != nil:
		return *cur, nil
	case p.Decide && cur == nil:
		return nil, problem.New(problem.KindConflict, "approval_not_requested", "run %s has not asked for approval of step %s", p.ID, p.Approval.Step)
	case p.Decide && cur.Status != ApprovalPending:
		return nil, problem.New(problem.KindConflict, "approval_decided", "step %s of run %s is already %s by %s", p.Approval.Step, p.ID, cur.Status, cur.DecidedBy)
	}
	r := before.clone()
	a := p.Approval
	if p.Decide {
		at := ctx.Time
		c := *cur
		c.Status, c.DecidedAt, c.DecidedBy, c.Comment = a.Status, &at, a.DecidedBy, a.Comment
		a = c
	} else {
		a.Status, a.RequestedAt = ApprovalPending, ctx.Time
	}
	r.Approvals[a.Step] = &a
	if err := d.put(ctx, r); err != nil {
		return nil, err
	}
	if !p.Decide && d.emit != nil {
		e := tmpl.Event{Type: tmpl.EventApprovalRequested, Severity: tmpl.SeverityWarning,
			Summary: fmt.Sprintf("run %s of job %s waits for approval of step %s", r.ID, r.Job, a.Step),
			Run:     notifyRun(r), Step: &tmpl.Step{ID: a.Step, Status: "awaiting_approval"}}
		if err := d.emit(ctx, e, notify.Match{Job: r.Job}); err != nil {
			return nil, err
		}
	}
	return a, nil
}

type runStepErrorPayload struct {
	ID     string      `json:"id"`
	Errors []StepError `json:"errors"`
}

func (d domain) applyRunStepError(ctx *state.ApplyContext, p runStepErrorPayload) (any, error) {
	before, err := getRun(ctx.Txn, p.ID)
	if err != nil {
		return nil, err
	}
	if finalRun(before.Status) {
		return *before, nil
	}
	r := before.clone()
	for _, e := range p.Errors {
		if _, dup := r.stepError(e.Target, e.Step); dup {
			continue
		}
		e.At = ctx.Time
		r.StepErrors = append(r.StepErrors, e)
	}
	if err := d.put(ctx, r); err != nil {
		return nil, err
	}
	return *r, nil
}

type runCancelPayload struct {
	ID      string   `json:"id"`
	By      string   `json:"by"`
	Targets []string `json:"targets,omitempty"`
	Reason  string   `json:"reason,omitempty"`
}

func (d domain) applyRunCancel(ctx *state.ApplyContext, p runCancelPayload) (any, error) {
	before, err := getRun(ctx.Txn, p.ID)
	if err != nil {
		return nil, err
	}
	if finalRun(before.Status) {
		return nil, problem.New(problem.KindConflict, "run_finished", "run %s is already %s", p.ID, before.Status)
	}
	r := before.clone()
	if len(p.Targets) == 0 {
		if r.CancelRequested != nil {
			return *before, nil
		}
		at := ctx.Time
		r.CancelRequested, r.CanceledBy = &at, p.By
		if p.Reason != "" {
			r.Reason = p.Reason
		}
	} else {
		for _, t := range p.Targets {
			if !slices.ContainsFunc(r.Targets, func(rt RunTarget) bool { return rt.Name == t }) {
				return nil, problem.Invalid("targets", "run %s has no target %q", p.ID, t)
			}
			if !slices.Contains(r.CancelTargets, t) {
				r.CancelTargets = append(r.CancelTargets, t)
			}
		}
	}
	if err := d.put(ctx, r); err != nil {
		return nil, err
	}
	return *r, nil
}

type runExpirePayload struct {
	IDs []string `json:"ids"`
	// Before guards against removing a run that finished after the leader
	// looked: only runs finished before it go.
	Before time.Time `json:"before"`
}

// applyRunExpire removes finished runs whose record is in the history
// store. (Their attempts are removed by agentrpc's command in the same
// entry.)
func (d domain) applyRunExpire(ctx *state.ApplyContext, p runExpirePayload) (any, error) {
	n := 0
	for _, id := range p.IDs {
		r, err := getRun(ctx.Txn, id)
		if problem.Is(err, problem.KindNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if !finalRun(r.Status) || r.FinishedAt == nil || !r.FinishedAt.Before(p.Before) {
			continue
		}
		if err := ctx.Txn.Delete(tableRuns, r); err != nil {
			return nil, err
		}
		n++
	}
	return n, nil
}
