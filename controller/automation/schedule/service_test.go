package schedule

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opsconductor/opsconductor/controller/identity"
	"github.com/opsconductor/opsconductor/controller/problem"
)

func TestValidationNamesEveryField(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	tests := []struct {
		name       string
		in         Input
		wantFields []string
	}{
		{"an empty input names what is required", Input{},
			[]string{"name", "job", "cron"}},
		{"a bad name, zone, cron and policies are reported at once",
			Input{Name: "Nightly Backup", Job: "backup", Cron: "0 25 * * *", Timezone: "Mars/Olympus", Overlap: "queue", CatchUp: "all"},
			[]string{"name", "timezone", "cron", "overlap", "catch_up"}},
		{"a bad zone is named timezone", Input{Name: "n", Job: "backup", Cron: "0 3 * * *", Timezone: "Europe/Atlantis"},
			[]string{"timezone"}},
		{"a spec that names no real date never fires", Input{Name: "n", Job: "backup", Cron: "0 0 30 2 *"},
			[]string{"cron"}},
		{"an unknown job is named job", Input{Name: "n", Job: "nope", Cron: "@daily"},
			[]string{"job"}},
		{"params the job refuses are named by the engine, beside static problems",
			Input{Name: "n", Job: "backup", Cron: "@hourly", Overlap: "sometimes", Params: map[string]any{"target": "db", "bogus": 1, "other": true}},
			[]string{"overlap", "params.bogus", "params.other"}},
		{"a long description", Input{Name: "n", Job: "backup", Cron: "@daily", Description: strings.Repeat("x", 1025)},
			[]string{"description"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.svc.Create(ctx, e.admin, tt.in)
			p := wantProblem(t, err, problem.KindInvalid, "invalid_input", "")
			got := fields(p)
			slices.Sort(got)
			want := slices.Clone(tt.wantFields)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("fields = %v, want %v (%v)", got, want, p)
			}
		})
	}
}

func TestSchedulesAreStoredReadAndReplaced(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	v := e.create(t, Input{Name: "nightly", Job: "backup", Params: map[string]any{"target": "db", "keep": 7.0},
		Cron: "30 2 * * *", Timezone: "Europe/Berlin", Description: "keep a week"})

	t.Run("defaults and the owner are filled in", func(t *testing.T) {
		if !v.Enabled || v.Overlap != OverlapSkip || v.CatchUp != CatchUpSkip || v.Owner != e.admin.UserID ||
			v.OwnerName != "admin" || !strings.HasPrefix(v.ID, "sch_") || v.Revision == 0 || !v.ActiveSince.Equal(t0) {
			t.Fatalf("created %+v", v)
		}
	})
	t.Run("the next five ticks are shown in the schedule's zone", func(t *testing.T) {
		want := []string{"2026-11-03T02:30:00+01:00", "2026-11-04T02:30:00+01:00", "2026-11-05T02:30:00+01:00",
			"2026-11-06T02:30:00+01:00", "2026-11-07T02:30:00+01:00"}
		if got := e.get(t, "nightly").NextFires; !slices.Equal(got, want) {
			t.Fatalf("next fires = %v, want %v", got, want)
		}
	})
	t.Run("a second schedule of the same name is a conflict", func(t *testing.T) {
		_, err := e.svc.Create(ctx, e.admin, Input{Name: "nightly", Job: "backup", Cron: "@daily"})
		wantProblem(t, err, problem.KindConflict, "schedule_exists", "")
	})
	t.Run("schedules are listed by name", func(t *testing.T) {
		e.create(t, Input{Name: "a-first", Job: "report", Cron: "@hourly"})
		vs, err := e.svc.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(vs) != 2 || vs[0].Name != "a-first" || vs[1].Name != "nightly" || len(vs[0].NextFires) != NextFireCount {
			t.Fatalf("list %+v", vs)
		}
	})
	t.Run("a replace with a stale revision is a conflict", func(t *testing.T) {
		_, err := e.svc.Update(ctx, e.admin, "nightly", Input{Job: "backup", Cron: "@daily", Revision: v.Revision + 100})
		wantProblem(t, err, problem.KindConflict, "revision_mismatch", "")
	})
	t.Run("a rename is refused naming name", func(t *testing.T) {
		_, err := e.svc.Update(ctx, e.admin, "nightly", Input{Name: "other", Job: "backup", Cron: "@daily"})
		wantProblem(t, err, problem.KindInvalid, "", "name")
	})
	t.Run("a replace keeps the ID and the creation, and the writer becomes the owner", func(t *testing.T) {
		writer := e.user(t, "writer", identity.PermJobsWrite, identity.PermJobsRun)
		e.clock.set(t0.Add(time.Hour))
		u, err := e.svc.Update(ctx, writer, "nightly", Input{Job: "report", Cron: "0 4 * * *", Timezone: "Europe/Berlin", Revision: v.Revision})
		if err != nil {
			t.Fatal(err)
		}
		if u.ID != v.ID || !u.CreatedAt.Equal(v.CreatedAt) || u.Owner != writer.UserID || u.Job != "report" || u.Params != nil ||
			u.Description != "" || !u.ActiveSince.Equal(t0.Add(time.Hour)) || u.Revision <= v.Revision {
			t.Fatalf("updated %+v", u)
		}
	})
	t.Run("replacing an unknown schedule is a 404", func(t *testing.T) {
		_, err := e.svc.Update(ctx, e.admin, "nope", Input{Job: "backup", Cron: "@daily"})
		wantProblem(t, err, problem.KindNotFound, "schedule_not_found", "")
	})
	t.Run("a disabled schedule has no next ticks, and a replace that does not say keeps it disabled", func(t *testing.T) {
		d, err := e.svc.SetEnabled(ctx, e.admin, "nightly", false)
		if err != nil {
			t.Fatal(err)
		}
		if d.Enabled || len(d.NextFires) != 0 {
			t.Fatalf("disabled %+v", d)
		}
		u, err := e.svc.Update(ctx, e.admin, "nightly", Input{Job: "backup", Cron: "0 4 * * *", Timezone: "Europe/Berlin"})
		if err != nil {
			t.Fatal(err)
		}
		if u.Enabled {
			t.Fatal("an update without enabled turned the schedule on")
		}
		on, err := e.svc.SetEnabled(ctx, e.admin, "nightly", true)
		if err != nil {
			t.Fatal(err)
		}
		if !on.Enabled || len(on.NextFires) != NextFireCount {
			t.Fatalf("enabled %+v", on)
		}
	})
	t.Run("a schedule is deleted", func(t *testing.T) {
		d, err := e.svc.Delete(ctx, e.admin, "nightly")
		if err != nil || d.Name != "nightly" || len(d.NextFires) != 0 {
			t.Fatalf("delete = %+v, %v", d, err)
		}
		_, err = e.svc.Get(ctx, "nightly")
		wantProblem(t, err, problem.KindNotFound, "schedule_not_found", "")
		_, err = e.svc.Delete(ctx, e.admin, "nightly")
		wantProblem(t, err, problem.KindNotFound, "schedule_not_found", "")
	})
}

func TestWritingNeedsJobsWriteAndAnOwnerWhoMayRun(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.create(t, Input{Name: "daily", Job: "backup", Cron: "@daily"})
	author := e.user(t, "author", identity.PermJobsRead, identity.PermJobsWrite)
	reader := e.user(t, "reader", identity.PermJobsRead, identity.PermJobsRun)
	in := Input{Name: "mine", Job: "backup", Cron: "@daily"}
	tests := []struct {
		name string
		call func() error
		code string
	}{
		{"a writer without jobs:run cannot create: the runs would act for them", func() error {
			_, err := e.svc.Create(ctx, author, in)
			return err
		}, "owner_cannot_run"},
		{"a writer without jobs:run cannot take a schedule over", func() error {
			_, err := e.svc.Update(ctx, author, "daily", Input{Job: "backup", Cron: "@hourly"})
			return err
		}, "owner_cannot_run"},
		{"a runner without jobs:write cannot create", func() error {
			_, err := e.svc.Create(ctx, reader, in)
			return err
		}, "forbidden"},
		{"a runner without jobs:write cannot disable", func() error {
			_, err := e.svc.SetEnabled(ctx, reader, "daily", false)
			return err
		}, "forbidden"},
		{"a runner without jobs:write cannot delete", func() error {
			_, err := e.svc.Delete(ctx, reader, "daily")
			return err
		}, "forbidden"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantProblem(t, tt.call(), problem.KindForbidden, tt.code, "")
		})
	}
	t.Run("a writer without jobs:run may still disable: that runs nothing", func(t *testing.T) {
		if _, err := e.svc.SetEnabled(ctx, author, "daily", false); err != nil {
			t.Fatal(err)
		}
	})
}
