package schedule

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opsconductor/opsconductor/controller/problem"
)

// The schedule tests below create schedules at t0 (09:00 UTC) with an
// hourly spec, so the ticks are 10:00, 11:00 …

func TestSchedulerFiresEachTickOnce(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	v := e.create(t, Input{Name: "hourly", Job: "backup", Params: map[string]any{"target": "db"}, Cron: "0 * * * *"})
	ten := at(t, "2026-11-02T10:00:00Z")

	t.Run("nothing fires before the tick", func(t *testing.T) {
		e.svc.fireDue(ctx, ten.Add(-time.Second))
		if got := e.runner.created(); len(got) != 0 {
			t.Fatalf("runs %s", fmtTicks(got))
		}
	})
	t.Run("the tick fires once however often it is looked at", func(t *testing.T) {
		for _, d := range []time.Duration{0, time.Second, 30 * time.Second} {
			e.svc.fireDue(ctx, ten.Add(d))
		}
		got := e.runner.created()
		if len(got) != 1 || !got[0].FireTime.Equal(ten) || got[0].Owner != e.admin.UserID || got[0].Job != "backup" ||
			got[0].Params["target"] != "db" || got[0].ScheduleID != v.ID {
			t.Fatalf("runs %s %+v", fmtTicks(got), got)
		}
		s := e.get(t, "hourly")
		if s.LastFireTime == nil || !s.LastFireTime.Equal(ten) || s.LastOutcome != OutcomeStarted || s.LastRunID != runIDFor(got[0]) {
			t.Fatalf("recorded %+v", s.Schedule)
		}
		if s.Revision != v.Revision {
			t.Fatalf("a fire moved the revision from %d to %d", v.Revision, s.Revision)
		}
	})
	t.Run("the next tick fires too", func(t *testing.T) {
		e.svc.fireDue(ctx, ten.Add(time.Hour))
		if got := e.runner.created(); len(got) != 2 || !got[1].FireTime.Equal(ten.Add(time.Hour)) {
			t.Fatalf("runs %s", fmtTicks(got))
		}
	})
	t.Run("a follower fires nothing", func(t *testing.T) {
		e.leader.set(false)
		defer e.leader.set(true)
		runLoop(t, e, e.svc, ten.Add(2*time.Hour))
		if got := e.runner.created(); len(got) != 2 {
			t.Fatalf("runs %s", fmtTicks(got))
		}
	})
}

// runLoop runs the scheduler loop until it sleeps, moves the clock to
// now, and stops it once it sleeps again.
func runLoop(t *testing.T, e *env, svc *Service, now time.Time) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); svc.Run(ctx) }()
	e.clock.asleep(t)
	e.clock.set(now)
	e.clock.asleep(t)
	cancel()
	<-done
}

func TestSchedulerLoopWakesForTheTick(t *testing.T) {
	e := newEnv(t)
	e.svc.d.MaxWait = 24 * time.Hour // only the tick wakes it
	e.create(t, Input{Name: "at-ten", Job: "backup", Cron: "0 10 * * *"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.svc.Run(ctx) }()
	defer func() { cancel(); <-done }()
	if d := e.clock.asleep(t); d != time.Hour {
		t.Fatalf("slept %s, want until 10:00 (1h)", d)
	}
	e.clock.set(at(t, "2026-11-02T10:00:00Z"))
	if d := e.clock.asleep(t); d != 24*time.Hour {
		t.Fatalf("slept %s after the tick, want 24h", d)
	}
	if got := e.runner.created(); len(got) != 1 || !got[0].FireTime.Equal(at(t, "2026-11-02T10:00:00Z")) {
		t.Fatalf("runs %s", fmtTicks(got))
	}
}

func TestLeaderChangeMidTickFiresOnce(t *testing.T) {
	ten := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	t.Run("a leader that dies between starting the run and recording the tick leaves it to the next, which gets the same run", func(t *testing.T) {
		e := newEnv(t)
		e.create(t, Input{Name: "hourly", Job: "backup", Cron: "0 * * * *"})
		e.runner.hold = true // the run is still going when the next leader looks
		old := e.svc
		e.applier.setBroken(true)
		old.fireDue(context.Background(), ten.Add(time.Second))
		if s := e.get(t, "hourly"); s.LastFireTime != nil {
			t.Fatalf("the tick was recorded: %+v", s.Schedule)
		}
		e.applier.setBroken(false)
		next := e.service(t, e.applier)
		runLoop(t, e, next, ten.Add(20*time.Second))
		got := e.runner.created()
		if len(got) != 1 || e.runner.callCount() != 2 {
			t.Fatalf("runs %s after %d calls, want one run from two calls", fmtTicks(got), e.runner.callCount())
		}
		s := e.get(t, "hourly")
		if s.LastOutcome != OutcomeStarted || s.LastRunID != runIDFor(got[0]) || !s.LastFireTime.Equal(ten) {
			t.Fatalf("recorded %+v: the unrecorded run was taken for an overlap", s.Schedule)
		}
	})
	t.Run("two controllers that both think they lead fire the tick once", func(t *testing.T) {
		e := newEnv(t)
		e.create(t, Input{Name: "hourly", Job: "backup", Cron: "0 * * * *"})
		a, b := e.svc, e.service(t, e.applier)
		var wg sync.WaitGroup
		for _, svc := range []*Service{a, b} {
			wg.Add(1)
			go func() { defer wg.Done(); svc.fireDue(context.Background(), ten.Add(time.Second)) }()
		}
		wg.Wait()
		if got := e.runner.created(); len(got) != 1 {
			t.Fatalf("runs %s", fmtTicks(got))
		}
		if s := e.get(t, "hourly"); !s.LastFireTime.Equal(ten) || s.LastOutcome != OutcomeStarted {
			t.Fatalf("recorded %+v", s.Schedule)
		}
	})
	t.Run("a recorded tick is refused a second record", func(t *testing.T) {
		e := newEnv(t)
		v := e.create(t, Input{Name: "hourly", Job: "backup", Cron: "0 * * * *"})
		e.svc.fireDue(context.Background(), ten)
		var out Schedule
		err := e.svc.apply(context.Background(), cmdFired, firedPayload{ID: v.ID, FireTime: ten, Outcome: OutcomeStarted}, &out)
		wantProblem(t, err, problem.KindConflict, "already_fired", "")
	})
}

func TestOverlap(t *testing.T) {
	ten := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		overlap  string
		want     []string // outcomes of ticks 10:00, 11:00, 12:00
		runs     int
		finishAt int // the first run ends after this tick (index)
	}{
		{"skip: a tick while the previous run goes is recorded as skipped", OverlapSkip,
			[]string{OutcomeStarted, OutcomeSkippedOverlap, OutcomeStarted}, 2, 1},
		{"allow: every tick starts a run", OverlapAllow,
			[]string{OutcomeStarted, OutcomeStarted, OutcomeStarted}, 3, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.runner.hold = true
			v := e.create(t, Input{Name: "hourly", Job: "backup", Cron: "0 * * * *", Overlap: tt.overlap})
			var firstRun string
			for i, want := range tt.want {
				e.svc.fireDue(context.Background(), ten.Add(time.Duration(i)*time.Hour))
				s := e.get(t, "hourly")
				if s.LastOutcome != want {
					t.Fatalf("tick %d: outcome %q, want %q", i, s.LastOutcome, want)
				}
				if i == 0 {
					firstRun = s.LastRunID
				}
				if want == OutcomeSkippedOverlap && s.LastRunID != firstRun {
					t.Fatalf("a skipped tick changed last_run_id to %q", s.LastRunID)
				}
				if i == tt.finishAt {
					e.runner.finish(v.ID)
				}
			}
			if got := e.runner.created(); len(got) != tt.runs {
				t.Fatalf("runs %s, want %d", fmtTicks(got), tt.runs)
			}
		})
	}
}

func TestCatchUpAfterDowntime(t *testing.T) {
	ten := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		catchUp   string
		now       time.Time
		wantRuns  []time.Time
		wantOut   string
		wantFired time.Time
	}{
		{"skip: ticks missed by more than the grace start nothing", CatchUpSkip, ten.Add(3*time.Hour + 5*time.Minute),
			nil, OutcomeSkippedMissed, ten.Add(3 * time.Hour)},
		{"once: one run for the latest missed tick", CatchUpOnce, ten.Add(3*time.Hour + 5*time.Minute),
			[]time.Time{ten.Add(3 * time.Hour)}, OutcomeStarted, ten.Add(3 * time.Hour)},
		{"a tick late by less than the grace is a failover, fired even with skip", CatchUpSkip, ten.Add(50 * time.Second),
			[]time.Time{ten}, OutcomeStarted, ten},
		{"only the latest of several ticks is fired when it is within the grace", CatchUpSkip, ten.Add(2*time.Hour + 10*time.Second),
			[]time.Time{ten.Add(2 * time.Hour)}, OutcomeStarted, ten.Add(2 * time.Hour)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.create(t, Input{Name: "hourly", Job: "backup", Cron: "0 * * * *", CatchUp: tt.catchUp})
			runLoop(t, e, e.svc, tt.now)
			got := e.runner.created()
			if len(got) != len(tt.wantRuns) {
				t.Fatalf("runs %s, want %v", fmtTicks(got), tt.wantRuns)
			}
			for i, w := range tt.wantRuns {
				if !got[i].FireTime.Equal(w) {
					t.Fatalf("runs %s, want %v", fmtTicks(got), tt.wantRuns)
				}
			}
			s := e.get(t, "hourly")
			if s.LastOutcome != tt.wantOut || s.LastFireTime == nil || !s.LastFireTime.Equal(tt.wantFired) {
				t.Fatalf("recorded %+v", s.Schedule)
			}
			// The next tick is on time again.
			next := tt.wantFired.Add(time.Hour)
			e.svc.fireDue(context.Background(), next)
			if all := e.runner.created(); len(all) != len(tt.wantRuns)+1 || !all[len(all)-1].FireTime.Equal(next) {
				t.Fatalf("after recovery: runs %s", fmtTicks(all))
			}
		})
	}
}

func TestDisabledSchedulesDoNotFireOrCatchUp(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ten := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	e.create(t, Input{Name: "hourly", Job: "backup", Cron: "0 * * * *", CatchUp: CatchUpOnce, Enabled: new(bool)})
	e.svc.fireDue(ctx, ten.Add(5*time.Hour))
	if got := e.runner.created(); len(got) != 0 {
		t.Fatalf("a disabled schedule fired: %s", fmtTicks(got))
	}
	e.clock.set(ten.Add(5*time.Hour + 30*time.Minute))
	if _, err := e.svc.SetEnabled(ctx, e.admin, "hourly", true); err != nil {
		t.Fatal(err)
	}
	e.svc.fireDue(ctx, ten.Add(5*time.Hour+31*time.Minute))
	if got := e.runner.created(); len(got) != 0 {
		t.Fatalf("ticks from while it was off were caught up: %s", fmtTicks(got))
	}
	e.svc.fireDue(ctx, ten.Add(6*time.Hour))
	if got := e.runner.created(); len(got) != 1 || !got[0].FireTime.Equal(ten.Add(6*time.Hour)) {
		t.Fatalf("runs %s", fmtTicks(got))
	}
}

func TestEngineErrors(t *testing.T) {
	ten := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	t.Run("a refusal spends the tick and is recorded", func(t *testing.T) {
		e := newEnv(t)
		e.create(t, Input{Name: "hourly", Job: "backup", Cron: "0 * * * *"})
		e.runner.failing = problem.NotFound("job", "backup")
		e.svc.fireDue(context.Background(), ten)
		s := e.get(t, "hourly")
		if !strings.HasPrefix(s.LastOutcome, "error: ") || !strings.Contains(s.LastOutcome, "backup") || !s.LastFireTime.Equal(ten) {
			t.Fatalf("recorded %+v", s.Schedule)
		}
	})
	t.Run("an unavailable engine leaves the tick to be tried again", func(t *testing.T) {
		e := newEnv(t)
		e.create(t, Input{Name: "hourly", Job: "backup", Cron: "0 * * * *"})
		e.runner.failing = problem.Unavailable("not_leader", "leadership moved")
		e.svc.fireDue(context.Background(), ten)
		if s := e.get(t, "hourly"); s.LastFireTime != nil {
			t.Fatalf("recorded %+v", s.Schedule)
		}
		e.runner.failing = nil
		e.svc.fireDue(context.Background(), ten.Add(2*time.Second))
		if s := e.get(t, "hourly"); s.LastOutcome != OutcomeStarted || !s.LastFireTime.Equal(ten) {
			t.Fatalf("recorded %+v", s.Schedule)
		}
	})
}

// TestLogsLeaveParamsOut: params may carry what a job needs to reach a
// system (a bucket key, a token), so neither writes nor fires log them.
func TestLogsLeaveParamsOut(t *testing.T) {
	e := newEnv(t)
	var buf syncBuffer
	svc, err := New(Deps{Applier: e.applier, Store: e.store, Runner: e.runner, Logger: slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})),
		IsLeader: e.leader.get, Clock: e.clock})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	in := Input{Name: "hourly", Job: "backup", Params: map[string]any{"target": "s3cr3t-bucket-key"}, Cron: "0 * * * *"}
	if _, err := svc.Create(ctx, e.admin, in); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Update(ctx, e.admin, "hourly", in); err != nil {
		t.Fatal(err)
	}
	svc.fireDue(ctx, time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC))
	logs := buf.String()
	if !strings.Contains(logs, "schedule fired") {
		t.Fatalf("the fire was not logged:\n%s", logs)
	}
	if strings.Contains(logs, "s3cr3t") {
		t.Fatalf("a param value was logged:\n%s", logs)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A leader that takes over after a short gap owes every tick of the gap:
// they fire oldest first, none skipped and none twice.
func TestTicksOwedWithinTheGraceAllFire(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.create(t, Input{Name: "tens", Job: "backup", Params: map[string]any{"target": "db"}, Cron: "*/10 * * * * *", Overlap: "allow"})
	start := at(t, "2026-11-02T10:00:00Z")
	e.svc.fireDue(ctx, start)
	before := len(e.runner.created())
	// The leader was away from 10:00:00 to 10:00:35.
	e.svc.fireDue(ctx, start.Add(35*time.Second))
	e.svc.fireDue(ctx, start.Add(36*time.Second))
	got := e.runner.created()[before:]
	var ticks []time.Time
	for _, tk := range got {
		ticks = append(ticks, tk.FireTime)
	}
	want := []time.Time{start.Add(10 * time.Second), start.Add(20 * time.Second), start.Add(30 * time.Second)}
	if !slices.EqualFunc(ticks, want, time.Time.Equal) {
		t.Fatalf("fired %s, want %v", fmtTicks(got), want)
	}
}
