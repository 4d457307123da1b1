package schedule

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/opsconductor/opsconductor/controller/problem"
)

// Clock is the scheduler's time source; tests drive a fake one.
type Clock interface {
	Now() time.Time
	NewTimer(d time.Duration) Timer
}

// Timer is a one-shot timer from a Clock.
type Timer interface {
	C() <-chan time.Time
	Stop() bool
}

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }
func (wallClock) NewTimer(d time.Duration) Timer {
	return wallTimer{time.NewTimer(d)}
}

type wallTimer struct{ t *time.Timer }

func (w wallTimer) C() <-chan time.Time { return w.t.C }
func (w wallTimer) Stop() bool          { return w.t.Stop() }

// Run fires schedules while this controller leads, until ctx ends. It
// sleeps until the next tick is due, at most MaxWait, so that it notices
// new schedules and a change of leader within it.
func (s *Service) Run(ctx context.Context) {
	for {
		wait := s.d.MaxWait
		if s.d.IsLeader() {
			now := s.clock.Now()
			s.fireDue(ctx, now)
			if next, ok := s.nextDue(now); ok {
				wait = min(wait, max(next.Sub(s.clock.Now()), 0))
			}
		}
		t := s.clock.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
	}
}

// plan is what one schedule is due to do at now.
type plan struct {
	slot   time.Time
	missed bool // the slot is older than the grace
}

// due returns the tick sc should deal with at now: the latest slot after
// its last fire (or since it became active) that is not after now.
func (s *Service) due(sc *Schedule, now time.Time) (plan, bool) {
	if !sc.Enabled {
		return plan{}, false
	}
	sp, err := ParseSpec(sc.Cron, sc.Timezone)
	if err != nil {
		// Stored schedules were checked; a zone the controller's tzdata
		// lacks is the only way here.
		s.d.Logger.Warn("schedule cannot be read", "schedule", sc.Name, "schedule_id", sc.ID, "error", err)
		return plan{}, false
	}
	base := s.base(sc)
	first := sp.Next(base)
	if first.IsZero() || first.After(now) {
		return plan{}, false
	}
	if now.Sub(first) <= s.d.Grace {
		// Within the grace every tick is fired, oldest first: a leader
		// that took over after a short gap owes each tick of the gap.
		return plan{slot: first}, true
	}
	// Ticks missed by more than the grace are dealt with together, as
	// the latest of them, by the catch-up policy; the ticks within the
	// grace after it fire one by one on the next looks.
	slot, ok := sp.Latest(base, now.Add(-s.d.Grace))
	if !ok {
		slot = first
	}
	return plan{slot: slot, missed: true}, true
}

// base is the time after which sc's ticks count.
func (s *Service) base(sc *Schedule) time.Time {
	b := sc.ActiveSince
	if sc.LastFireTime != nil && sc.LastFireTime.After(b) {
		b = *sc.LastFireTime
	}
	return b
}

// nextDue is the earliest tick after now of any enabled schedule.
func (s *Service) nextDue(now time.Time) (time.Time, bool) {
	scs, err := all(s.d.Store.ReadTxn())
	if err != nil {
		return time.Time{}, false
	}
	var next time.Time
	for _, sc := range scs {
		if !sc.Enabled {
			continue
		}
		sp, err := ParseSpec(sc.Cron, sc.Timezone)
		if err != nil {
			continue
		}
		from := s.base(sc)
		if now.After(from) {
			from = now
		}
		if t := sp.Next(from); !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	return next, !next.IsZero()
}

// fireDue deals with every schedule that has a tick due at now.
func (s *Service) fireDue(ctx context.Context, now time.Time) {
	scs, err := all(s.d.Store.ReadTxn())
	if err != nil {
		s.d.Logger.Warn("schedules not read", "error", err)
		return
	}
	for _, sc := range scs {
		if ctx.Err() != nil {
			return
		}
		// A schedule may owe several ticks (a failover spanned them):
		// fire them in order while each one is recorded.
		for range maxTicksPerLook {
			p, ok := s.due(sc, now)
			if !ok {
				break
			}
			s.fire(ctx, sc, p)
			next, err := byName(s.d.Store.ReadTxn(), sc.Name)
			if err != nil || next.ID != sc.ID || next.LastFireTime == nil || !next.LastFireTime.Equal(p.slot) {
				break // not recorded (retried at the next look) or changed meanwhile
			}
			sc = next
		}
	}
}

// maxTicksPerLook bounds the ticks one schedule fires in one look.
const maxTicksPerLook = 100

// fire deals with one tick: it starts the tick's run (idempotent by
// schedule and slot) and then commits the slot. If this controller dies
// between the two, the next leader asks for the same slot's run, gets
// the same run back, and commits it.
func (s *Service) fire(ctx context.Context, sc *Schedule, p plan) {
	log := s.d.Logger.With("schedule", sc.Name, "schedule_id", sc.ID, "fire_time", p.slot.UTC())
	rec := firedPayload{ID: sc.ID, FireTime: p.slot}
	switch {
	case p.missed && sc.CatchUp == CatchUpSkip:
		rec.Outcome = OutcomeSkippedMissed
		log.Info("a tick was missed while no controller led; catch_up is skip", "late_by", s.clock.Now().Sub(p.slot))
	default:
		if p.missed {
			log.Info("catching up: one run for the latest missed tick", "late_by", s.clock.Now().Sub(p.slot))
		}
		outcome, runID, retry := s.start(ctx, log, sc, p.slot)
		if retry {
			return
		}
		rec.Outcome, rec.RunID = outcome, runID
	}
	var out Schedule
	if err := s.apply(ctx, cmdFired, rec, &out); err != nil {
		if pe, ok := problem.As(err); ok && pe.Code == "already_fired" {
			// Another leader dealt with it; the engine's idempotency
			// means no second run was made for it.
			log.Debug("tick already recorded by another controller")
			return
		}
		// Not recorded: the next look fires the slot again, which the
		// engine answers with the same run.
		log.Warn("tick not recorded; it is retried", "run_id", rec.RunID, "error", err)
		return
	}
	log.Info("schedule fired", "outcome", rec.Outcome, "run_id", rec.RunID, "job", sc.Job)
}

// start asks the engine for the tick's run. retry is true when the tick
// should be tried again at the next look rather than spent (the engine
// or the cluster is briefly unavailable).
func (s *Service) start(ctx context.Context, log *slog.Logger, sc *Schedule, slot time.Time) (outcome, runID string, retry bool) {
	if sc.Overlap == OverlapSkip {
		active, err := s.d.Runner.ActiveRun(ctx, sc.ID)
		if err != nil {
			if transient(ctx, err) {
				log.Warn("active run not known; the tick is retried", "error", err)
				return "", "", true
			}
			return outcomeErrorPrefix + err.Error(), "", false
		}
		// A run not recorded as the last one was started for a tick
		// whose record was lost with its leader: most likely this very
		// tick, which StartScheduled below returns again.
		if active != "" && active == sc.LastRunID {
			log.Info("tick skipped: the previous run is still going", "active_run_id", active)
			return OutcomeSkippedOverlap, "", false
		}
		if active != "" {
			defer func() {
				if runID != "" && runID != active {
					log.Warn("a run of an earlier, unrecorded tick is still going beside this one", "active_run_id", active, "run_id", runID)
				}
			}()
		}
	}
	runID, err := s.d.Runner.StartScheduled(ctx, Tick{ScheduleID: sc.ID, Schedule: sc.Name, Job: sc.Job,
		Params: cloneParams(sc.Params), FireTime: slot, Owner: sc.Owner})
	if err != nil {
		if transient(ctx, err) {
			log.Warn("run not started; the tick is retried", "error", err)
			return "", "", true
		}
		log.Warn("run not started", "error", err)
		return outcomeErrorPrefix + err.Error(), "", false
	}
	return OutcomeStarted, runID, false
}

// transient reports whether err may pass if tried again soon: the
// context ended (this controller stops) or the engine or cluster said so.
func transient(ctx context.Context, err error) bool {
	if ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	return problem.Is(err, problem.KindUnavailable) || problem.Is(err, problem.KindTimeout)
}
