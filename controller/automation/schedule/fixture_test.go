package schedule

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/opsconductor/opsconductor/controller/identity"
	"github.com/opsconductor/opsconductor/controller/identity/password"
	"github.com/opsconductor/opsconductor/controller/keyring"
	"github.com/opsconductor/opsconductor/controller/problem"
	"github.com/opsconductor/opsconductor/controller/state"
	"github.com/opsconductor/opsconductor/controller/state/statetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recordingRunner is the run engine's double: it keeps the runs it made,
// derives a run's ID from (schedule, tick) as the engine promises, and
// counts calls.
type recordingRunner struct {
	mu      sync.Mutex
	runs    map[string]Tick   // by run ID
	order   []string          // run IDs in creation order
	active  map[string]string // schedule ID → its unfinished run
	calls   int
	hold    bool  // runs stay active until finish
	failing error // StartScheduled returns it when set
	jobs    map[string]bool
}

func newRunner() *recordingRunner {
	return &recordingRunner{runs: map[string]Tick{}, active: map[string]string{}, jobs: map[string]bool{"backup": true, "report": true}}
}

func runIDFor(t Tick) string {
	return "run-" + t.ScheduleID + "-" + t.FireTime.UTC().Format("20060102T150405Z")
}

func (r *recordingRunner) StartScheduled(_ context.Context, t Tick) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if r.failing != nil {
		return "", r.failing
	}
	id := runIDFor(t)
	if _, ok := r.runs[id]; !ok {
		r.runs[id] = t
		r.order = append(r.order, id)
		if r.hold {
			r.active[t.ScheduleID] = id
		}
	}
	return id, nil
}

func (r *recordingRunner) ActiveRun(_ context.Context, scheduleID string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.active[scheduleID], nil
}

func (r *recordingRunner) CheckJob(_ context.Context, job string, params map[string]any) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.jobs[job] {
		return problem.NotFound("job", job)
	}
	var errs problem.List
	for k := range params {
		if k != "target" && k != "keep" {
			errs.Add("params."+k, "job %s has no parameter %q", job, k)
		}
	}
	return errs.Err()
}

func (r *recordingRunner) callCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls
}

func (r *recordingRunner) finish(scheduleID string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.active, scheduleID)
}

func (r *recordingRunner) created() []Tick {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Tick, 0, len(r.order))
	for _, id := range r.order {
		out = append(out, r.runs[id])
	}
	return out
}

// fakeClock is a Clock the test moves. Every timer the scheduler makes is
// announced on sleeps, so a test knows the loop is asleep before it
// moves the clock.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
	sleeps chan time.Duration
}

type fakeTimer struct {
	at   time.Time
	ch   chan time.Time
	done bool
}

func newFakeClock(now time.Time) *fakeClock {
	return &fakeClock{now: now, sleeps: make(chan time.Duration, 1024)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer(d time.Duration) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{at: c.now.Add(d), ch: make(chan time.Time, 1)}
	if d <= 0 {
		t.done = true
		t.ch <- c.now
	} else {
		c.timers = append(c.timers, t)
	}
	c.sleeps <- d
	return &fakeTimerHandle{c: c, t: t}
}

type fakeTimerHandle struct {
	c *fakeClock
	t *fakeTimer
}

func (h *fakeTimerHandle) C() <-chan time.Time { return h.t.ch }
func (h *fakeTimerHandle) Stop() bool {
	h.c.mu.Lock()
	defer h.c.mu.Unlock()
	was := !h.t.done
	h.t.done = true
	return was
}

// set moves the clock to now and fires the timers due by then.
func (c *fakeClock) set(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = now
	keep := c.timers[:0]
	for _, t := range c.timers {
		switch {
		case t.done:
		case !t.at.After(now):
			t.done = true
			t.ch <- now
		default:
			keep = append(keep, t)
		}
	}
	c.timers = keep
}

// asleep waits until the scheduler has made its next timer.
func (c *fakeClock) asleep(t *testing.T) time.Duration {
	t.Helper()
	select {
	case d := <-c.sleeps:
		return d
	case <-time.After(10 * time.Second):
		t.Fatal("the scheduler did not go to sleep")
		return 0
	}
}

// flakyApplier commits to the store as a one-node cluster does, stamping
// schedule commands with the fake clock (identity's with the wall clock,
// which its sessions are checked against). While broken it refuses fire
// records, as a leader that lost its leadership between starting a run
// and committing the tick would.
type flakyApplier struct {
	store  *state.Store
	clock  *fakeClock
	mu     sync.Mutex
	index  uint64
	broken bool
}

func (a *flakyApplier) Apply(_ context.Context, cmds ...state.Command) ([]state.Result, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := time.Now().UTC()
	for _, c := range cmds {
		if a.broken && c.Type == cmdFired {
			return nil, problem.Unavailable("not_leader", "leadership lost")
		}
		if strings.HasPrefix(c.Type, "automation.schedule.") {
			now = a.clock.Now()
		}
	}
	a.index++
	res, err := a.store.Apply(a.index, state.Entry{Time: now, Commands: cmds})
	if err != nil {
		return nil, err
	}
	return state.EncodeResults(res), nil
}

func (a *flakyApplier) setBroken(b bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.broken = b
}

const adminPassword = "violet-Harbour-lantern-42"

var testHasher = sync.OnceValues(func() (*password.Hasher, error) {
	return password.NewHasher(password.DefaultParams, 4)
})

// env is a schedule service over a store shared with a real identity
// service (for principals), a recording runner and a fake clock.
type env struct {
	svc     *Service
	store   *state.Store
	applier *flakyApplier
	runner  *recordingRunner
	clock   *fakeClock
	ident   *identity.Service
	admin   *identity.Principal
	leader  *leaderFlag
}

type leaderFlag struct {
	mu sync.Mutex
	on bool
}

func (l *leaderFlag) get() bool  { l.mu.Lock(); defer l.mu.Unlock(); return l.on }
func (l *leaderFlag) set(v bool) { l.mu.Lock(); defer l.mu.Unlock(); l.on = v }

var t0 = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)

func newEnv(t testing.TB) *env {
	t.Helper()
	store := statetest.NewStore(t, Domain(), identity.Domain())
	clock := newFakeClock(t0)
	applier := &flakyApplier{store: store, clock: clock}
	key, _ := keyring.NewKey()
	kr, err := keyring.Parse([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	hasher, err := testHasher()
	if err != nil {
		t.Fatal(err)
	}
	ident, err := identity.New(identity.Config{}, identity.Deps{Applier: applier, Store: store, Keyring: kr, Hasher: hasher,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := ident.Bootstrap(ctx, adminPassword, false); err != nil {
		t.Fatal(err)
	}
	if err := ident.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	e := &env{store: store, applier: applier, runner: newRunner(), clock: clock, ident: ident, leader: &leaderFlag{on: true}}
	e.svc = e.service(t, applier)
	e.admin = e.login(t, "admin", adminPassword)
	return e
}

// service is another controller's schedule service over the same store.
func (e *env) service(t testing.TB, a Applier) *Service {
	t.Helper()
	svc, err := New(Deps{Applier: a, Store: e.store, Runner: e.runner, Logger: slog.New(slog.DiscardHandler),
		IsLeader: e.leader.get, Clock: e.clock})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

func (e *env) login(t testing.TB, user, pw string) *identity.Principal {
	t.Helper()
	tok, err := e.ident.Login(context.Background(), identity.LoginRequest{Username: user, Password: pw})
	if err != nil {
		t.Fatalf("login %s: %v", user, err)
	}
	p, err := e.ident.Authenticate(context.Background(), tok.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// user creates a user holding only perms and returns its principal.
func (e *env) user(t testing.TB, name string, perms ...identity.Permission) *identity.Principal {
	t.Helper()
	ctx := context.Background()
	role := name + "-role"
	if _, err := e.ident.PutRole(ctx, e.admin, identity.Role{Name: role, Permissions: perms}, true); err != nil {
		t.Fatal(err)
	}
	f := false
	pw := name + "-Tangerine-Pylon-7"
	if _, _, err := e.ident.CreateUser(ctx, e.admin, identity.CreateUser{Username: name, Password: pw,
		Roles: []identity.Binding{{Role: role}}, MustChangePassword: &f}); err != nil {
		t.Fatalf("create user %s: %v", name, err)
	}
	return e.login(t, name, pw)
}

func (e *env) create(t testing.TB, in Input) View {
	t.Helper()
	v, err := e.svc.Create(context.Background(), e.admin, in)
	if err != nil {
		t.Fatalf("create %s: %v", in.Name, err)
	}
	return v
}

func (e *env) get(t testing.TB, name string) View {
	t.Helper()
	v, err := e.svc.Get(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func wantProblem(t testing.TB, err error, kind problem.Kind, code, field string) *problem.Error {
	t.Helper()
	p, ok := problem.As(err)
	if !ok || p.Kind != kind {
		t.Fatalf("error = %v, want a %s problem", err, kind)
	}
	if code != "" && p.Code != code {
		t.Fatalf("problem code = %q, want %q (%v)", p.Code, code, p)
	}
	if field != "" && p.Field != field {
		t.Fatalf("problem field = %q, want %q (%v)", p.Field, field, p)
	}
	return p
}

func fields(p *problem.Error) []string {
	if len(p.Details) == 0 {
		return []string{p.Field}
	}
	out := make([]string, len(p.Details))
	for i, d := range p.Details {
		out[i] = d.Field
	}
	return out
}

func at(t testing.TB, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func fmtTicks(ts []Tick) string {
	s := ""
	for _, t := range ts {
		s += fmt.Sprintf("%s@%s ", t.Schedule, t.FireTime.UTC().Format(time.RFC3339))
	}
	return s
}
