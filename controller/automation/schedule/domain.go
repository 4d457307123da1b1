// Package schedule owns job schedules: cron specs with a time zone that
// start runs of a job on the owner's behalf. It stores schedules in the
// replicated state (table automation_schedules), validates them, and runs
// the scheduler loop on the Raft leader.
//
// The scheduler fires each tick exactly once across failovers: for tick T
// it asks the run engine to start T's run, which is idempotent by
// (schedule, T), and only then commits schedule.fired with T; a tick at or
// before the committed fire time is never fired again. A leader that dies
// between the two leaves a run the next leader finds again by asking for
// the same tick.
//
// This package never creates or reads runs itself: the run engine is
// reached only through Runner, which the engine satisfies.
package schedule

import (
	"fmt"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/opsconductor/opsconductor/controller/problem"
	"github.com/opsconductor/opsconductor/controller/state"
)

const table = "automation_schedules"

// Command types. Appended, never renamed or reused.
const (
	cmdPut    = "automation.schedule.put"
	cmdDelete = "automation.schedule.delete"
	cmdEnable = "automation.schedule.enable"
	cmdFired  = "automation.schedule.fired"
)

// Overlap policies: what a tick does while the schedule's previous run is
// still going.
const (
	OverlapSkip  = "skip"  // record the tick as skipped_overlap
	OverlapAllow = "allow" // start another run beside it
)

// Catch-up policies: what ticks missed while no controller led (by more
// than the grace) do.
const (
	CatchUpSkip = "skip" // none of them run
	CatchUpOnce = "once" // one run, for the latest of them
)

// Outcomes of a tick, kept in LastOutcome. An engine error is recorded as
// "error: " followed by its message.
const (
	OutcomeStarted        = "started"
	OutcomeSkippedOverlap = "skipped_overlap"
	OutcomeSkippedMissed  = "skipped_missed"
	outcomeErrorPrefix    = "error: "
)

// Schedule is a stored schedule.
type Schedule struct {
	ID     string         `json:"id"`
	Name   string         `json:"name"`
	Job    string         `json:"job"`
	Params map[string]any `json:"params,omitempty"`
	// Cron is a robfig/cron spec of 5 or 6 fields (seconds first when 6)
	// or a descriptor (@daily, @every 5m), read in Timezone.
	Cron        string `json:"cron"`
	Timezone    string `json:"timezone"`
	Enabled     bool   `json:"enabled"`
	Overlap     string `json:"overlap"`
	CatchUp     string `json:"catch_up"`
	Description string `json:"description,omitempty"`
	// Owner is the user ID the schedule's runs act for: whoever last
	// wrote the schedule (see applyPut).
	Owner     string    `json:"owner"`
	OwnerName string    `json:"owner_name,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// ActiveSince is when the current spec took effect (created, its cron
	// or time zone changed, or enabled again). Ticks before it were never
	// due, so they are not "missed" and catch-up ignores them.
	ActiveSince time.Time `json:"active_since"`
	// LastFireTime is the last tick (the cron slot, not the wall clock)
	// that was dealt with, whatever its outcome; no tick at or before it
	// fires again.
	LastFireTime *time.Time `json:"last_fire_time,omitempty"`
	// LastRunID is the last run a tick started; a skipped or failed tick
	// leaves it as it was.
	LastRunID   string `json:"last_run_id,omitempty"`
	LastOutcome string `json:"last_outcome,omitempty"`
	// Revision is the Raft index of the last write by a person (a fire
	// does not change it, so a read-modify-write is not refused because a
	// tick went by).
	Revision uint64 `json:"revision"`
}

func (s *Schedule) clone() *Schedule {
	c := *s
	c.Params = cloneParams(s.Params)
	if s.LastFireTime != nil {
		t := *s.LastFireTime
		c.LastFireTime = &t
	}
	return &c
}

// cloneParams copies decoded JSON deeply: rows read from memdb are shared.
func cloneParams(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = cloneValue(v)
	}
	return out
}

func cloneValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		return cloneParams(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = cloneValue(e)
		}
		return out
	default:
		return v
	}
}

// Domain returns the schedule table and commands for the state registry.
func Domain() state.Domain {
	return state.Domain{
		Name: "automation.schedule",
		Tables: []state.Table{
			{Schema: &memdb.TableSchema{Name: table, Indexes: map[string]*memdb.IndexSchema{
				"id":   {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
				"name": {Name: "name", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Name"}},
			}}, New: func() any { return &Schedule{} }},
		},
		Commands: map[string]state.Handler{
			cmdPut:    state.V1(applyPut),
			cmdDelete: state.V1(applyDelete),
			cmdEnable: state.V1(applyEnable),
			cmdFired:  state.V1(applyFired),
		},
	}
}

type putPayload struct {
	Schedule Schedule `json:"schedule"`
	Create   bool     `json:"create"`
	// Revision, when not 0, must be the stored schedule's.
	Revision uint64 `json:"revision,omitempty"`
	// KeepEnabled keeps the stored Enabled (an update that did not say).
	KeepEnabled bool `json:"keep_enabled,omitempty"`
}

// applyPut creates or replaces a schedule. The writer becomes the owner:
// runs act for whoever last chose what the schedule runs, so a user
// cannot point someone else's schedule at a job and borrow their rights.
func applyPut(ctx *state.ApplyContext, p putPayload) (any, error) {
	old, err := byName(ctx.Txn, p.Schedule.Name)
	if err != nil && !problem.Is(err, problem.KindNotFound) {
		return nil, err
	}
	sc := p.Schedule.clone()
	switch {
	case old != nil && p.Create:
		return nil, problem.New(problem.KindConflict, "schedule_exists", "schedule %q exists", sc.Name)
	case old == nil && !p.Create:
		return nil, err
	case old != nil:
		if p.Revision != 0 && p.Revision != old.Revision {
			return nil, problem.New(problem.KindConflict, "revision_mismatch",
				"schedule %q is at revision %d, not %d: read it again", sc.Name, old.Revision, p.Revision)
		}
		sc.ID, sc.CreatedAt = old.ID, old.CreatedAt
		if p.KeepEnabled {
			sc.Enabled = old.Enabled
		}
		// The fire record survives an edit, so that changing the params
		// does not fire a tick twice.
		sc.LastFireTime, sc.LastRunID, sc.LastOutcome = old.LastFireTime, old.LastRunID, old.LastOutcome
		sc.ActiveSince = old.ActiveSince
		if sc.Cron != old.Cron || sc.Timezone != old.Timezone || (sc.Enabled && !old.Enabled) {
			sc.ActiveSince = ctx.Time
		}
	default:
		if raw, err := ctx.Txn.First(table, "id", sc.ID); err != nil {
			return nil, err
		} else if raw != nil || sc.ID == "" {
			return nil, fmt.Errorf("schedule %q: id %q is empty or taken", sc.Name, sc.ID)
		}
		sc.CreatedAt, sc.ActiveSince = ctx.Time, ctx.Time
		sc.LastFireTime, sc.LastRunID, sc.LastOutcome = nil, "", ""
	}
	sc.UpdatedAt, sc.Revision = ctx.Time, ctx.Index
	if err := ctx.Txn.Insert(table, sc); err != nil {
		return nil, err
	}
	return *sc, nil
}

type deletePayload struct {
	Name string `json:"name"`
}

func applyDelete(ctx *state.ApplyContext, p deletePayload) (any, error) {
	sc, err := byName(ctx.Txn, p.Name)
	if err != nil {
		return nil, err
	}
	if err := ctx.Txn.Delete(table, sc); err != nil {
		return nil, err
	}
	return *sc, nil
}

type enablePayload struct {
	Name    string `json:"name"`
	Enabled bool   `json:"enabled"`
}

// applyEnable turns a schedule on or off. Turning it on starts it afresh:
// ticks while it was off are not missed ticks to catch up on.
func applyEnable(ctx *state.ApplyContext, p enablePayload) (any, error) {
	old, err := byName(ctx.Txn, p.Name)
	if err != nil {
		return nil, err
	}
	if old.Enabled == p.Enabled {
		return *old, nil
	}
	sc := old.clone()
	sc.Enabled = p.Enabled
	if p.Enabled {
		sc.ActiveSince = ctx.Time
	}
	sc.UpdatedAt, sc.Revision = ctx.Time, ctx.Index
	if err := ctx.Txn.Insert(table, sc); err != nil {
		return nil, err
	}
	return *sc, nil
}

type firedPayload struct {
	ID       string    `json:"id"`
	FireTime time.Time `json:"fire_time"`
	RunID    string    `json:"run_id,omitempty"`
	Outcome  string    `json:"outcome"`
}

// applyFired records that tick FireTime was dealt with. A tick not after
// the last one is refused: two leaders racing, or one replaying a tick
// after a failover, cannot record it twice, and the loser learns that
// the tick is spent.
func applyFired(ctx *state.ApplyContext, p firedPayload) (any, error) {
	raw, err := ctx.Txn.First(table, "id", p.ID)
	if err != nil {
		return nil, err
	}
	if raw == nil {
		return nil, notFound(p.ID)
	}
	sc := raw.(*Schedule).clone()
	if sc.LastFireTime != nil && !p.FireTime.After(*sc.LastFireTime) {
		return nil, problem.New(problem.KindConflict, "already_fired",
			"schedule %q already fired at %s", sc.Name, sc.LastFireTime.Format(time.RFC3339))
	}
	t := p.FireTime.UTC()
	sc.LastFireTime, sc.LastOutcome = &t, p.Outcome
	if p.RunID != "" {
		sc.LastRunID = p.RunID
	}
	if err := ctx.Txn.Insert(table, sc); err != nil {
		return nil, err
	}
	return *sc, nil
}

func notFound(name string) *problem.Error {
	return problem.NotFound("schedule", name)
}

// byName reads one schedule from a write or read transaction.
func byName(txn state.Reader, name string) (*Schedule, error) {
	raw, err := txn.First(table, "name", name)
	if err != nil {
		return nil, fmt.Errorf("read schedule: %w", err)
	}
	if raw == nil {
		return nil, notFound(name)
	}
	return raw.(*Schedule), nil
}

// all lists every schedule by name.
func all(txn state.Reader) ([]*Schedule, error) {
	it, err := txn.Get(table, "name")
	if err != nil {
		return nil, fmt.Errorf("list schedules: %w", err)
	}
	var out []*Schedule
	for o := it.Next(); o != nil; o = it.Next() {
		out = append(out, o.(*Schedule))
	}
	return out, nil
}
