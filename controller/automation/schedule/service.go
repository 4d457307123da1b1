package schedule

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"time"

	"github.com/opsconductor/opsconductor/controller/identity"
	"github.com/opsconductor/opsconductor/controller/problem"
	"github.com/opsconductor/opsconductor/controller/state"
)

// Tick is one firing of a schedule.
type Tick struct {
	ScheduleID string
	Schedule   string // name
	Job        string
	Params     map[string]any
	FireTime   time.Time // the slot (cron time), not the wall clock
	Owner      string    // user ID of the schedule's owner: the run acts for them
}

// Runner is what schedules need of the run engine (controller/automation).
type Runner interface {
	// StartScheduled creates the run for one tick. It is idempotent by (ScheduleID, FireTime): the engine derives the run ID from
	// them, so calling again for the same tick (after a failover) returns the same run ID and creates nothing.
	StartScheduled(ctx context.Context, t Tick) (runID string, err error)
	// ActiveRun returns the ID of a run started by this schedule that is not yet final ("" if none).
	ActiveRun(ctx context.Context, scheduleID string) (string, error)
	// CheckJob refuses a job name that does not exist, or params the job would refuse (error names params.<x>).
	CheckJob(ctx context.Context, job string, params map[string]any) error
}

// Applier commits commands through Raft (cluster.Node in production).
type Applier interface {
	Apply(ctx context.Context, cmds ...state.Command) ([]state.Result, error)
}

// Deps are what the service needs.
type Deps struct {
	Applier Applier
	Store   *state.Store
	Runner  Runner
	Logger  *slog.Logger
	// IsLeader reports whether this controller leads: only the leader
	// fires schedules.
	IsLeader func() bool
	// Clock is the time source of the scheduler and of next_fires (the
	// wall clock when nil).
	Clock Clock
	// Grace is how late a tick may be fired as on time (a minute when
	// 0): a new leader fires a tick its predecessor was about to, while a
	// tick missed by more (every controller was down) is "missed" and
	// goes by the schedule's catch-up policy.
	Grace time.Duration
	// MaxWait bounds how long the loop sleeps between looks at the
	// schedules (a second when 0): it notices new schedules and gained
	// leadership within it.
	MaxWait time.Duration
}

// Service is schedules on one controller.
type Service struct {
	d     Deps
	clock Clock
}

// New checks the dependencies. A controller registers Domain() in its
// state registry, builds the service over its Raft applier and store with
// the run engine as Runner, and runs Run(ctx) on every node: the loop
// fires only while IsLeader says so.
func New(d Deps) (*Service, error) {
	if d.Applier == nil || d.Store == nil || d.Runner == nil || d.Logger == nil || d.IsLeader == nil {
		return nil, errors.New("schedule: Applier, Store, Runner, Logger and IsLeader are required")
	}
	if d.Grace <= 0 {
		d.Grace = time.Minute
	}
	if d.MaxWait <= 0 {
		d.MaxWait = time.Second
	}
	s := &Service{d: d, clock: d.Clock}
	if s.clock == nil {
		s.clock = wallClock{}
	}
	return s, nil
}

// Input is a schedule as a client writes it. A missing overlap or
// catch_up is "skip"; a missing enabled is true on create and unchanged
// on update.
type Input struct {
	Name        string         `json:"name"`
	Job         string         `json:"job"`
	Params      map[string]any `json:"params,omitempty"`
	Cron        string         `json:"cron"`
	Timezone    string         `json:"timezone,omitempty"`
	Enabled     *bool          `json:"enabled,omitempty"`
	Overlap     string         `json:"overlap,omitempty"`
	CatchUp     string         `json:"catch_up,omitempty"`
	Description string         `json:"description,omitempty"`
	// Revision, on update, must be the stored schedule's (0: any).
	Revision uint64 `json:"revision,omitempty"`
}

// View is a schedule as the API shows it: with its next ticks.
type View struct {
	Schedule
	// NextFires are the next five ticks in the schedule's zone, RFC 3339
	// with the zone's offset; empty while the schedule is disabled.
	NextFires []string `json:"next_fires"`
}

// NextFireCount is how many next ticks a View shows.
const NextFireCount = 5

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

const (
	maxJobName     = 128
	maxDescription = 1024
)

// normalize checks what can be checked without the run engine, every
// problem at once, and returns the schedule it describes.
func normalize(in Input) (Schedule, problem.List) {
	var errs problem.List
	if !nameRE.MatchString(in.Name) {
		errs.Add("name", "must be 1 to 63 lower-case letters, digits and . _ -, starting with a letter or digit, got %q", in.Name)
	}
	switch {
	case in.Job == "":
		errs.Add("job", "name the job to run")
	case len(in.Job) > maxJobName:
		errs.Add("job", "must be at most %d characters", maxJobName)
	}
	tz := in.Timezone
	if tz == "" {
		tz = "UTC"
	}
	zoneOK := true
	if _, err := LoadZone(tz); err != nil {
		errs.Add("timezone", "%v", err)
		zoneOK = false
	}
	switch {
	case in.Cron == "":
		errs.Add("cron", "give a cron spec: 5 fields (minute hour day month weekday), 6 with seconds first, or @daily, @hourly, @every 5m …")
	default:
		// With a bad zone the spec is still checked, in UTC, so both
		// problems are reported at once.
		specZone := tz
		if !zoneOK {
			specZone = "UTC"
		}
		if sp, err := ParseSpec(in.Cron, specZone); err != nil {
			errs.Add("cron", "must be 5 fields (minute hour day month weekday), 6 with seconds first, or @daily, @hourly, @every 5m …: %v", err)
		} else if sp.Next(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)).IsZero() {
			errs.Add("cron", "never fires (%q names no date that exists)", in.Cron)
		}
	}
	overlap := in.Overlap
	switch overlap {
	case "":
		overlap = OverlapSkip
	case OverlapSkip, OverlapAllow:
	default:
		errs.Add("overlap", "must be %q or %q, got %q", OverlapSkip, OverlapAllow, in.Overlap)
	}
	catchUp := in.CatchUp
	switch catchUp {
	case "":
		catchUp = CatchUpSkip
	case CatchUpSkip, CatchUpOnce:
	default:
		errs.Add("catch_up", "must be %q or %q, got %q", CatchUpSkip, CatchUpOnce, in.CatchUp)
	}
	if len(in.Description) > maxDescription {
		errs.Add("description", "must be at most %d bytes, got %d", maxDescription, len(in.Description))
	}
	for k := range in.Params {
		if k == "" {
			errs.Add("params", "a parameter has an empty name")
		}
	}
	enabled := true
	if in.Enabled != nil {
		enabled = *in.Enabled
	}
	return Schedule{Name: in.Name, Job: in.Job, Params: cloneParams(in.Params), Cron: in.Cron, Timezone: tz, Enabled: enabled,
		Overlap: overlap, CatchUp: catchUp, Description: in.Description}, errs
}

// check validates in fully: normalize's checks and the engine's view of
// the job and its params, all problems at once.
func (s *Service) check(ctx context.Context, in Input) (Schedule, error) {
	sc, errs := normalize(in)
	if in.Job != "" && len(in.Job) <= maxJobName {
		if err := s.d.Runner.CheckJob(ctx, in.Job, in.Params); err != nil {
			p, ok := problem.As(err)
			switch {
			case ok && p.Kind == problem.KindNotFound:
				errs.Add("job", "%s", p.Message)
			case ok && p.Kind == problem.KindInvalid:
				if len(p.Details) == 0 {
					errs = append(errs, p)
				}
				for i := range p.Details {
					d := p.Details[i]
					errs = append(errs, &d)
				}
			default:
				return Schedule{}, fmt.Errorf("check job %q: %w", in.Job, err)
			}
		}
	}
	if err := errs.Err(); err != nil {
		return Schedule{}, err
	}
	return sc, nil
}

// mayWrite refuses a principal who could not run what the schedule runs:
// its runs act for the writer (jobs:write to write it, jobs:run because
// the writer becomes the owner).
func mayWrite(p *identity.Principal, owner bool) error {
	if p == nil || !p.Can(identity.PermJobsWrite) {
		return problem.New(problem.KindForbidden, "forbidden", "writing a schedule needs %s", identity.PermJobsWrite)
	}
	if owner && !p.Can(identity.PermJobsRun) {
		return problem.New(problem.KindForbidden, "owner_cannot_run",
			"a schedule's runs act for whoever writes it, and %s does not hold %s", p.Name(), identity.PermJobsRun)
	}
	return nil
}

// Create stores a new schedule owned by p.
func (s *Service) Create(ctx context.Context, p *identity.Principal, in Input) (View, error) {
	if err := mayWrite(p, true); err != nil {
		return View{}, err
	}
	sc, err := s.check(ctx, in)
	if err != nil {
		return View{}, err
	}
	if sc.ID, err = newID(); err != nil {
		return View{}, err
	}
	sc.Owner, sc.OwnerName = p.UserID, p.Username
	var out Schedule
	if err := s.apply(ctx, cmdPut, putPayload{Schedule: sc, Create: true}, &out); err != nil {
		return View{}, err
	}
	s.d.Logger.Info("created a schedule", "schedule", out.Name, "schedule_id", out.ID, "job", out.Job, "cron", out.Cron,
		"timezone", out.Timezone, "actor", p.Name())
	return s.view(&out), nil
}

// Update replaces the schedule named name; p becomes its owner.
func (s *Service) Update(ctx context.Context, p *identity.Principal, name string, in Input) (View, error) {
	if err := mayWrite(p, true); err != nil {
		return View{}, err
	}
	if in.Name == "" {
		in.Name = name
	}
	if in.Name != name {
		return View{}, problem.Invalid("name", "is %q in the path and %q in the body; a schedule is not renamed", name, in.Name)
	}
	sc, err := s.check(ctx, in)
	if err != nil {
		return View{}, err
	}
	sc.Owner, sc.OwnerName = p.UserID, p.Username
	var out Schedule
	if err := s.apply(ctx, cmdPut, putPayload{Schedule: sc, Revision: in.Revision, KeepEnabled: in.Enabled == nil}, &out); err != nil {
		return View{}, err
	}
	s.d.Logger.Info("updated a schedule", "schedule", out.Name, "schedule_id", out.ID, "job", out.Job, "cron", out.Cron,
		"timezone", out.Timezone, "actor", p.Name())
	return s.view(&out), nil
}

// Delete removes a schedule; runs it started go on.
func (s *Service) Delete(ctx context.Context, p *identity.Principal, name string) (View, error) {
	if err := mayWrite(p, false); err != nil {
		return View{}, err
	}
	var out Schedule
	if err := s.apply(ctx, cmdDelete, deletePayload{Name: name}, &out); err != nil {
		return View{}, err
	}
	s.d.Logger.Info("deleted a schedule", "schedule", name, "schedule_id", out.ID, "actor", p.Name())
	// It fires no more, so it has no next ticks.
	return View{Schedule: out, NextFires: []string{}}, nil
}

// SetEnabled turns a schedule on or off. Turned on, it fires from the
// next tick: ticks while it was off are not caught up.
func (s *Service) SetEnabled(ctx context.Context, p *identity.Principal, name string, enabled bool) (View, error) {
	if err := mayWrite(p, false); err != nil {
		return View{}, err
	}
	var out Schedule
	if err := s.apply(ctx, cmdEnable, enablePayload{Name: name, Enabled: enabled}, &out); err != nil {
		return View{}, err
	}
	s.d.Logger.Info("set a schedule's enabled", "schedule", name, "schedule_id", out.ID, "enabled", enabled, "actor", p.Name())
	return s.view(&out), nil
}

// Get returns one schedule.
func (s *Service) Get(_ context.Context, name string) (View, error) {
	sc, err := byName(s.d.Store.ReadTxn(), name)
	if err != nil {
		return View{}, err
	}
	return s.view(sc), nil
}

// List returns every schedule, by name.
func (s *Service) List(context.Context) ([]View, error) {
	scs, err := all(s.d.Store.ReadTxn())
	if err != nil {
		return nil, err
	}
	out := make([]View, 0, len(scs))
	for _, sc := range scs {
		out = append(out, s.view(sc))
	}
	return out, nil
}

// view copies sc and adds its next ticks after now (and after its last
// fire, which a tick being fired right now may be ahead of).
func (s *Service) view(sc *Schedule) View {
	v := View{Schedule: *sc.clone(), NextFires: []string{}}
	if !sc.Enabled {
		return v
	}
	sp, err := ParseSpec(sc.Cron, sc.Timezone)
	if err != nil {
		return v
	}
	from := s.clock.Now()
	if sc.LastFireTime != nil && sc.LastFireTime.After(from) {
		from = *sc.LastFireTime
	}
	if sc.ActiveSince.After(from) {
		from = sc.ActiveSince
	}
	for _, t := range sp.NextN(from, NextFireCount) {
		v.NextFires = append(v.NextFires, t.Format(time.RFC3339))
	}
	return v
}

func (s *Service) apply(ctx context.Context, typ string, payload, out any) error {
	return state.ApplyOne(ctx, s.d.Applier, typ, payload, out)
}

// newID is "sch_" and 16 hex digits; the leader draws it before Apply.
func newID() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("schedule id: %w", err)
	}
	return "sch_" + hex.EncodeToString(b[:]), nil
}
