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

// finishingRun is a run a pass found decided; cmd indexes its final
// status among the pass's commands.
type finishingRun struct {
	id, job string
	outcome string
	cmd     int
}

// finalReason says how a decided run ended.
func finalReason(r *Run, d *derivation) string {
	switch {
	case d.stopped:
		return "stopped: failures passed the job's max_fail_percent"
	case d.outcome == RunCanceled && r.Reason != "" && r.CancelRequested != nil:
		return r.Reason
	case d.outcome == RunCanceled && r.CanceledBy != "":
		return "canceled by " + r.CanceledBy
	}
	return ""
}

// records turns a finished run (its final row) into history records;
// Time is the run's creation so that lists read back in the order runs
// were made.
func records(r *Run, job *jobspec.Job, d *derivation) ([]history.Record, error) {
	v := view(r, job, d, nil)
	row := r.clone()
	targets := row.Targets
	row.Targets = nil
	row.Trigger.Roles = nil
	data, err := json.Marshal(storedRun{Run: *row, Summary: v.Summary})
	if err != nil {
		return nil, fmt.Errorf("encode run: %w", err)
	}
	fields := map[string]string{"run_id": r.ID, "job": r.Job, "status": r.Status, "trigger": r.Trigger.Kind}
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

// finished ends the live stream of runs whose outcome was committed and
// hands them to the recorder.
func (e *engine) finished(fs []finishingRun, committed []bool) {
	for _, f := range fs {
		if f.cmd >= len(committed) || !committed[f.cmd] {
			continue
		}
		e.s.d.Logger.Info("run finished", "run_id", f.id, "job", f.job, "status", f.outcome)
		e.s.finishedRuns.WithLabelValues(f.outcome).Inc()
		if e.s.d.Live != nil {
			e.s.d.Live.End(f.id)
		}
		e.record(f.id)
	}
}

// record asks the recorder to write a finished run to the history store.
// A full queue drops the request: the retention sweep, which moves a run
// out of the state only once its record is readable, asks again.
func (e *engine) record(id string) {
	select {
	case e.toRecord <- id:
	default:
	}
}

// recorder writes finished runs to the history store off the engine's
// loop, so that a history fsync (or PostgreSQL round trip) never holds up
// dispatch. Runs stay in the state until their record is readable, so a
// write lost to a crash or a failover is written again by the next sweep.
func (e *engine) recorder(ctx context.Context) {
	for {
		var ids []string
		select {
		case <-ctx.Done():
			return
		case id := <-e.toRecord:
			ids = append(ids, id)
		}
	more:
		for len(ids) < 256 {
			select {
			case id := <-e.toRecord:
				ids = append(ids, id)
			default:
				break more
			}
		}
		e.writeRecords(ctx, ids)
	}
}

func (e *engine) writeRecords(ctx context.Context, ids []string) {
	if e.s.d.History == nil {
		return
	}
	txn := e.s.d.Store.ReadTxn()
	var recs []history.Record
	for _, id := range ids {
		r, err := getRun(txn, id)
		if err != nil || !finalRun(r.Status) {
			continue
		}
		job, err := e.s.spec(r.Job, r.Version, r.Spec)
		if err != nil {
			e.s.d.Logger.Error("run not recorded", "run_id", id, "error", err)
			continue
		}
		atts, err := agentrpc.RunAttempts(txn, id)
		if err != nil {
			continue
		}
		rs, err := records(r, job, derive(r, job, atts))
		if err != nil {
			e.s.d.Logger.Error("run not recorded", "run_id", id, "error", err)
			continue
		}
		recs = append(recs, rs...)
	}
	if len(recs) == 0 {
		return
	}
	if err := e.s.d.History.Write(ctx, recs); err != nil && ctx.Err() == nil {
		e.s.d.Logger.Warn("finished runs not recorded yet; the retention sweep retries", "runs", len(ids), "error", err)
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
		if err != nil {
			continue
		}
		if len(recs) == 0 {
			// Finished but not yet recorded (a lost write, a failover):
			// record it now, and move it out at the next sweep.
			e.record(r.ID)
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
