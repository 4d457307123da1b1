package gateway

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opsconductor/opsconductor/controller/automation/schedule"
	"github.com/opsconductor/opsconductor/controller/identity"
	"github.com/opsconductor/opsconductor/controller/problem"
	"github.com/opsconductor/opsconductor/controller/state/statetest"
)

// caseRunner stands in for the run engine behind schedules: it knows the
// jobs "backup" (parameter target) and "report", and makes runs named
// after their tick. The scheduler's own tests cover firing; these cases
// cover the API.
type caseRunner struct {
	mu   sync.Mutex
	runs map[string]schedule.Tick
}

func (r *caseRunner) StartScheduled(_ context.Context, t schedule.Tick) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.runs == nil {
		r.runs = map[string]schedule.Tick{}
	}
	id := "run-" + t.ScheduleID + "-" + t.FireTime.UTC().Format("20060102T150405Z")
	r.runs[id] = t
	return id, nil
}

func (r *caseRunner) ActiveRun(context.Context, string) (string, error) { return "", nil }

func (r *caseRunner) CheckJob(_ context.Context, job string, params map[string]any) error {
	if job != "backup" && job != "report" {
		return problem.NotFound("job", job)
	}
	var errs problem.List
	for k := range params {
		if job != "backup" || k != "target" {
			errs.Add("params."+k, "job %s has no parameter %q", job, k)
		}
	}
	return errs.Err()
}

// newTestSchedules is a real schedule service over its own store. Its
// scheduler loop is not started: no case waits for a tick.
func newTestSchedules(t testing.TB) *schedule.Service {
	t.Helper()
	store := statetest.NewStore(t, schedule.Domain())
	svc, err := schedule.New(schedule.Deps{Applier: &statetest.Applier{Store: store}, Store: store, Runner: &caseRunner{},
		Logger: slog.New(slog.DiscardHandler), IsLeader: func() bool { return true }})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// caseSchedule creates schedule name (backup of db at 02:30 Berlin time)
// as the fixture's admin.
func caseSchedule(t *testing.T, f *fixture, name string) schedule.View {
	t.Helper()
	v, err := f.srv.schedules.Create(context.Background(), casePrincipal(t, f.ident, f.ident.adminToken), schedule.Input{Name: name,
		Job: "backup", Params: map[string]any{"target": "db"}, Cron: "30 2 * * *", Timezone: "Europe/Berlin"})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func withSchedule(name string) func(t *testing.T, f *fixture) prepared {
	return func(t *testing.T, f *fixture) prepared {
		t.Helper()
		v := caseSchedule(t, f, name)
		return caseVars("revision", strconv.FormatUint(v.Revision, 10))
	}
}

func scheduleCases() []routeCase {
	json := "application/json"
	return []routeCase{
		{name: "a schedule is created with its defaults and next ticks", method: "POST", target: "/api/v1/schedules", contentType: json,
			body: `{"name":"nightly","job":"backup","params":{"target":"db"},"cron":"30 2 * * *","timezone":"Europe/Berlin"}`, want: 201,
			check: func(t *testing.T, rec *responseUnderTest) {
				v := decodeInto[schedule.View](t, rec)
				if v.Overlap != "skip" || v.CatchUp != "skip" || !v.Enabled || v.OwnerName != "admin" || len(v.NextFires) != 5 {
					t.Fatalf("created %s", rec.body)
				}
				// Berlin's offset, whatever the season; a day apart.
				first, err := time.Parse(time.RFC3339, v.NextFires[0])
				if err != nil || strings.HasSuffix(v.NextFires[0], "Z") {
					t.Fatalf("next fires %v: %v", v.NextFires, err)
				}
				if second, _ := time.Parse(time.RFC3339, v.NextFires[1]); second.Sub(first) < 23*time.Hour {
					t.Fatalf("next fires %v", v.NextFires)
				}
			}},
		{name: "a schedule with every problem names each field", method: "POST", target: "/api/v1/schedules", contentType: json,
			body: `{"name":"Bad Name","job":"backup","params":{"nope":1},"cron":"61 * * * *","timezone":"Mars/Olympus","overlap":"queue"}`,
			want: 400, check: func(t *testing.T, rec *responseUnderTest) {
				for _, f := range []string{`"field":"name"`, `"field":"cron"`, `"field":"timezone"`, `"field":"overlap"`, `"field":"params.nope"`} {
					if !strings.Contains(string(rec.body), f) {
						t.Fatalf("no %s in %s", f, rec.body)
					}
				}
			}},
		{name: "a schedule of an unknown job is a 400 naming job", method: "POST", target: "/api/v1/schedules", contentType: json,
			body: `{"name":"n","job":"nope","cron":"@daily"}`, want: 400, check: wantError("invalid_input", "job")},
		{name: "a schedule with an unknown field is a 400 naming it", method: "POST", target: "/api/v1/schedules", contentType: json,
			body: `{"name":"n","job":"backup","cron":"@daily","every":"day"}`, want: 400, check: wantError("invalid_input", "every")},
		{name: "a second schedule of the same name is a 409", method: "POST", target: "/api/v1/schedules", contentType: json,
			body: `{"name":"nightly","job":"report","cron":"@daily"}`, want: 409, prepare: withSchedule("nightly"),
			check: wantError("schedule_exists", "")},
		{name: "schedules are listed", method: "GET", target: "/api/v1/schedules", want: 200, prepare: withSchedule("nightly"),
			check: func(t *testing.T, rec *responseUnderTest) {
				l := decodeInto[struct{ Items []schedule.View }](t, rec)
				if len(l.Items) != 1 || l.Items[0].Name != "nightly" {
					t.Fatalf("list %s", rec.body)
				}
			}},
		{name: "an empty schedule list is an empty array", method: "GET", target: "/api/v1/schedules", want: 200,
			check: func(t *testing.T, rec *responseUnderTest) {
				if !strings.Contains(string(rec.body), `"items":[]`) {
					t.Fatalf("list %s", rec.body)
				}
			}},
		{name: "a schedule is read with its next ticks", method: "GET", target: "/api/v1/schedules/nightly", want: 200,
			prepare: withSchedule("nightly")},
		{name: "an unknown schedule is a 404", method: "GET", target: "/api/v1/schedules/nope", want: 404,
			check: wantError("schedule_not_found", "")},
		{name: "a schedule is replaced at its revision", method: "PUT", target: "/api/v1/schedules/nightly", contentType: json,
			body: `{"job":"report","cron":"@every 5m","catch_up":"once","overlap":"allow","revision":$revision}`, want: 200,
			prepare: withSchedule("nightly"), check: func(t *testing.T, rec *responseUnderTest) {
				v := decodeInto[schedule.View](t, rec)
				if v.Job != "report" || v.Cron != "@every 5m" || v.CatchUp != "once" || v.Overlap != "allow" || v.Timezone != "UTC" {
					t.Fatalf("replaced %s", rec.body)
				}
			}},
		{name: "a replace at a stale revision is a 409", method: "PUT", target: "/api/v1/schedules/nightly", contentType: json,
			body: `{"job":"report","cron":"@daily","revision":99999}`, want: 409, prepare: withSchedule("nightly"),
			check: wantError("revision_mismatch", "")},
		{name: "replacing an unknown schedule is a 404", method: "PUT", target: "/api/v1/schedules/nope", contentType: json,
			body: `{"job":"report","cron":"@daily"}`, want: 404},
		{name: "a schedule is deleted", method: "DELETE", target: "/api/v1/schedules/nightly", want: 200, prepare: withSchedule("nightly")},
		{name: "deleting an unknown schedule is a 404", method: "DELETE", target: "/api/v1/schedules/nope", want: 404},
		{name: "a schedule is disabled and shows no next ticks", method: "POST", target: "/api/v1/schedules/nightly/disable", want: 200,
			prepare: withSchedule("nightly"), check: func(t *testing.T, rec *responseUnderTest) {
				if v := decodeInto[schedule.View](t, rec); v.Enabled || len(v.NextFires) != 0 {
					t.Fatalf("disabled %s", rec.body)
				}
			}},
		{name: "a schedule is enabled", method: "POST", target: "/api/v1/schedules/nightly/enable", want: 200,
			prepare: withSchedule("nightly")},
		{name: "enabling an unknown schedule is a 404", method: "POST", target: "/api/v1/schedules/nope/enable", want: 404},
	}
}

func TestScheduleRoutesAnswer503WithoutTheService(t *testing.T) {
	f := newFixture(t, Config{}, func(d *Deps) { d.Schedules = nil })
	rec := f.do(t, newRequest("GET", "/api/v1/schedules", "", ""))
	if rec.Code != 503 || !strings.Contains(rec.Body.String(), "schedules_unavailable") {
		t.Fatalf("status %d body %s", rec.Code, rec.Body)
	}
}

// TestScheduleWritersMustBeAbleToRun: a schedule's runs act for whoever
// writes it, so jobs:write alone is not enough to create or replace one.
func TestScheduleWritersMustBeAbleToRun(t *testing.T) {
	ti := newTestIdentity(t)
	admin := casePrincipal(t, ti, ti.adminToken)
	if _, err := ti.svc.PutRole(context.Background(), admin,
		identity.Role{Name: "job-author", Permissions: []identity.Permission{identity.PermJobsRead, identity.PermJobsWrite}}, true); err != nil {
		t.Fatal(err)
	}
	caseCreateUser(t, ti, "author", "job-author", false)
	author := caseLogin(t, ti, "author", casePassword).AccessToken
	f := newFixture(t, Config{}, func(d *Deps) { d.Identity = ti.svc })
	f.ident = ti
	caseSchedule(t, f, "nightly")
	tests := []struct {
		name, method, target, body string
		want                       int
		code                       string
	}{
		{"creating is refused", "POST", "/api/v1/schedules", `{"name":"mine","job":"backup","cron":"@daily"}`, 403, "owner_cannot_run"},
		{"replacing is refused", "PUT", "/api/v1/schedules/nightly", `{"job":"report","cron":"@daily"}`, 403, "owner_cannot_run"},
		{"disabling runs nothing, so it is allowed", "POST", "/api/v1/schedules/nightly/disable", "", 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ct := ""
			if tt.body != "" {
				ct = "application/json"
			}
			req := newRequest(tt.method, tt.target, ct, tt.body)
			req.Header.Set("Authorization", "Bearer "+author)
			rec := f.do(t, req)
			if rec.Code != tt.want || !strings.Contains(rec.Body.String(), tt.code) {
				t.Fatalf("status %d body %s", rec.Code, rec.Body)
			}
		})
	}
}
