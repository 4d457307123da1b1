package automation

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/opsconductor/opsconductor/controller/agentrpc"
	"github.com/opsconductor/opsconductor/controller/automation/jobspec"
	"github.com/opsconductor/opsconductor/controller/history"
	"github.com/opsconductor/opsconductor/controller/state"
)

// History kinds and streams of finished runs. A run is one record (its
// row without targets) and one record per target (the target and what
// happened on it), so that no record outgrows history.MaxDataLen and runs
// can be found by target.
const (
	kindRun       = "automation.run"
	kindRunTarget = "automation.run_target"
)

func runStream(id string) string        { return "automation/run/" + id }
func runTargetsStream(id string) string { return "automation/run/" + id + "/targets" }

// storedRun is the Data of a run record.
type storedRun struct {
	Run     Run     `json:"run"`
	Summary Summary `json:"summary"`
}

// storedTarget is the Data of a run-target record.
type storedTarget struct {
	Target RunTarget  `json:"target"`
	View   TargetView `json:"view"`
}

// finishingRun is a run the pass found decided.
type finishingRun struct {
	run *Run
	job *jobspec.Job
	d   *derivation
}

// records turns a finished run into history records; Time is the run's
// creation so that lists read back in the order runs were made.
func (f *finishingRun) records(outcome string, now time.Time) ([]history.Record, error) {
	r := f.run.clone()
	r.Status, r.FinishedAt = outcome, &now
	if r.StartedAt == nil {
		r.StartedAt = &now
	}
	v := view(r, f.job, f.d, nil)
	targets := r.Targets
	r.Targets = nil
	r.Trigger.Roles = nil
	data, err := json.Marshal(storedRun{Run: *r, Summary: v.Summary})
	if err != nil {
		return nil, fmt.Errorf("encode run: %w", err)
	}
	fields := map[string]string{"run_id": r.ID, "job": r.Job, "status": outcome, "trigger": r.Trigger.Kind}
	if r.Trigger.Schedule != "" {
		fields["schedule"] = r.Trigger.Schedule
	}
	recs := []history.Record{{Stream: runStream(r.ID), Seq: 1, Time: r.CreatedAt, Kind: kindRun, Fields: fields, Data: data}}
	for i, t := range targets {
		t.Facts = nil
		data, err := json.Marshal(storedTarget{Target: t, View: v.Targets[i]})
		if err != nil {
			return nil, fmt.Errorf("encode run target: %w", err)
		}
		recs = append(recs, history.Record{Stream: runTargetsStream(r.ID), Seq: uint64(i + 1), Time: r.CreatedAt, Kind: kindRunTarget,
			Fields: map[string]string{"run_id": r.ID, "job": r.Job, "target": t.Name, "status": v.Targets[i].Status}, Data: data})
	}
	return recs, nil
}

// finish records decided runs in the history store and then commits their
// outcome: a run is never final in the state without its record, so the
// retention that later drops it from the state loses nothing.
func (e *engine) finish(ctx context.Context, fs []*finishingRun) {
	if len(fs) == 0 {
		return
	}
	now := e.s.d.Now().UTC()
	var recs []history.Record
	var cmds []state.Command
	for _, f := range fs {
		rs, err := f.records(f.d.outcome, now)
		if err != nil {
			e.s.d.Logger.Error("run not recorded", "run_id", f.run.ID, "error", err)
			continue
		}
		recs = append(recs, rs...)
		reason := ""
		switch {
		case f.d.stopped:
			reason = "stopped: failures passed the job's max_fail_percent"
		case f.d.outcome == RunCanceled:
			reason = f.run.Reason
			if reason == "" {
				reason = "canceled by " + f.run.CanceledBy
			}
		}
		if c, err := state.NewCommand(cmdRunStatus, 1, runStatusPayload{ID: f.run.ID, Status: f.d.outcome, Reason: reason}); err == nil {
			cmds = append(cmds, c)
		}
	}
	if e.s.d.History != nil && len(recs) > 0 {
		if err := e.s.d.History.Write(ctx, recs); err != nil {
			// Not final yet: the next pass tries again.
			e.s.d.Logger.Warn("finished runs not recorded; retrying", "runs", len(fs), "error", err)
			for _, f := range fs {
				e.wakeAt(f.run.ID, now.Add(5*time.Second))
			}
			return
		}
	}
	e.commit(ctx, cmds)
	for _, f := range fs {
		e.s.d.Logger.Info("run finished", "run_id", f.run.ID, "job", f.run.Job, "status", f.d.outcome)
		if e.s.d.Live != nil {
			e.s.d.Live.End(f.run.ID)
		}
	}
}

// expire drops runs finished longer ago than the retention from the state
// (and their attempts with them), once their record is readable.
func (e *engine) expire(ctx context.Context, now time.Time) {
	if e.s.d.HistoryReader == nil {
		return
	}
	before := now.Add(-e.s.cfg.Retention)
	it, err := e.s.d.Store.ReadTxn().Get(tableRuns, "id")
	if err != nil {
		return
	}
	var ids []string
	for obj := it.Next(); obj != nil && len(ids) < 1000; obj = it.Next() {
		r := obj.(*Run)
		if !finalRun(r.Status) || r.FinishedAt == nil || !r.FinishedAt.Before(before) {
			continue
		}
		recs, err := e.s.d.HistoryReader.Read(ctx, runStream(r.ID), 1, 1, 1)
		if err != nil || len(recs) == 0 {
			continue
		}
		ids = append(ids, r.ID)
	}
	if len(ids) == 0 {
		return
	}
	exp, err := state.NewCommand(cmdRunExpire, 1, runExpirePayload{IDs: ids, Before: before})
	if err != nil {
		return
	}
	forget, err := agentrpc.ForgetRunAttempts(ids)
	if err != nil {
		return
	}
	if _, err := e.s.d.Applier.Apply(ctx, exp, forget); err != nil {
		e.s.d.Logger.Warn("finished runs not moved out of the state", "runs", len(ids), "error", err)
		return
	}
	e.s.d.Logger.Info("finished runs moved out of the state into history", "runs", len(ids))
}

// readStoredRun reads a finished run back from the history store.
func (s *Service) readStoredRun(ctx context.Context, id string) (*storedRun, []storedTarget, error) {
	if s.d.HistoryReader == nil {
		return nil, nil, nil
	}
	recs, err := s.d.HistoryReader.Read(ctx, runStream(id), 1, 1, 1)
	if err != nil || len(recs) == 0 {
		return nil, nil, err
	}
	var sr storedRun
	if err := json.Unmarshal(recs[0].Data, &sr); err != nil {
		return nil, nil, fmt.Errorf("decode stored run %s: %w", id, err)
	}
	var targets []storedTarget
	for from := uint64(1); ; {
		page, err := s.d.HistoryReader.Read(ctx, runTargetsStream(id), from, history.MaxSeq, history.MaxPage)
		if err != nil {
			return nil, nil, err
		}
		for _, rec := range page {
			var st storedTarget
			if err := json.Unmarshal(rec.Data, &st); err != nil {
				return nil, nil, fmt.Errorf("decode stored run %s target %d: %w", id, rec.Seq, err)
			}
			targets = append(targets, st)
			from = rec.Seq + 1
		}
		if len(page) < history.MaxPage {
			break
		}
	}
	return &sr, targets, nil
}

// storedView is a run read back from history as the API shows it.
func storedView(sr *storedRun, targets []storedTarget, visible func(*RunTarget) bool) RunView {
	r := sr.Run
	v := RunView{ID: r.ID, Job: r.Job, Version: r.Version, Params: viewParams(&r), Trigger: r.Trigger, Status: r.Status, Reason: r.Reason,
		BatchSize: r.BatchSize, CancelRequested: r.CancelRequested, CanceledBy: r.CanceledBy, CreatedAt: r.CreatedAt,
		StartedAt: r.StartedAt, FinishedAt: r.FinishedAt, Targets: []TargetView{}}
	for _, a := range r.Approvals {
		v.Approvals = append(v.Approvals, *a)
	}
	for i := range targets {
		if visible != nil && !visible(&targets[i].Target) {
			v.Hidden++
			continue
		}
		v.Targets = append(v.Targets, targets[i].View)
		v.Summary.count(targets[i].View.Status)
	}
	v.Summary.Targets = len(v.Targets)
	return v
}

// cursorOf encodes a list position: the creation time and ID of the last
// run returned.
func cursorOf(t time.Time, id string) string {
	return strconv.FormatInt(t.UnixNano(), 36) + "." + id
}
