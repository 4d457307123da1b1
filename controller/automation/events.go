package automation

import (
	"fmt"

	"github.com/opsconductor/opsconductor/controller/communication/notify"
	"github.com/opsconductor/opsconductor/controller/communication/tmpl"
	"github.com/opsconductor/opsconductor/controller/state"
)

type notifyEmitter = notify.Emitter

// notifyRun describes a run for notification templates. Target outcomes
// are derived from attempts and not known inside Apply; the summary has
// the target count.
func notifyRun(r *Run) *tmpl.Run {
	e := &tmpl.Run{ID: r.ID, Job: r.Job, Version: r.Version, Status: r.Status, Reason: r.Reason, Trigger: r.Trigger.Kind,
		Summary: tmpl.RunSummary{Total: len(r.Targets)}}
	if r.StartedAt != nil {
		e.StartedAt = *r.StartedAt
	}
	if r.FinishedAt != nil {
		e.FinishedAt = *r.FinishedAt
		if r.StartedAt != nil {
			e.Duration = r.FinishedAt.Sub(*r.StartedAt)
		}
	}
	return e
}

// runEvents raises run.started when a run first starts and run.succeeded,
// run.failed or run.canceled when it ends.
func (d domain) runEvents(ctx *state.ApplyContext, before, r *Run) error {
	if d.emit == nil {
		return nil
	}
	m := notify.Match{Job: r.Job}
	for _, t := range r.Targets {
		m.Targets = append(m.Targets, t.Name)
	}
	if before.StartedAt == nil && r.StartedAt != nil && r.Status != RunWaiting {
		e := tmpl.Event{Type: tmpl.EventRunStarted, Severity: tmpl.SeverityInfo,
			Summary: fmt.Sprintf("run %s of job %s started on %d targets", r.ID, r.Job, len(r.Targets)), Run: notifyRun(r)}
		if err := d.emit(ctx, e, m); err != nil {
			return err
		}
	}
	if !finalRun(r.Status) {
		return nil
	}
	e := tmpl.Event{Run: notifyRun(r)}
	switch r.Status {
	case RunSucceeded:
		e.Type, e.Severity = tmpl.EventRunSucceeded, tmpl.SeverityInfo
	case RunFailed:
		e.Type, e.Severity = tmpl.EventRunFailed, tmpl.SeverityCritical
	default:
		e.Type, e.Severity = tmpl.EventRunCanceled, tmpl.SeverityWarning
	}
	e.Summary = fmt.Sprintf("run %s of job %s %s", r.ID, r.Job, r.Status)
	if r.Reason != "" {
		e.Summary += ": " + r.Reason
	}
	return d.emit(ctx, e, m)
}
