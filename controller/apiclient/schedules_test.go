package apiclient

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeSchedules answers the schedule routes from a map, recording each
// request as "METHOD path body".
type fakeSchedules struct {
	mu   sync.Mutex
	seen []string
	byID map[string]Schedule
}

func (f *fakeSchedules) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, _ := io.ReadAll(r.Body)
	f.seen = append(f.seen, strings.TrimSpace(r.Method+" "+r.URL.EscapedPath()+" "+string(b)))
	w.Header().Set("Content-Type", "application/json")
	name := strings.TrimPrefix(r.URL.Path, schedulesBase+"/")
	name, action, _ := strings.Cut(name, "/")
	notFound := func() {
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"error":{"code":"schedule_not_found","message":"schedule \"`+name+`\" not found"}}`)
	}
	switch {
	case r.URL.Path == schedulesBase && r.Method == http.MethodGet:
		items := []Schedule{}
		for _, s := range f.byID {
			items = append(items, s)
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"items": items})
	case r.URL.Path == schedulesBase && r.Method == http.MethodPost:
		var in ScheduleInput
		_ = json.Unmarshal(b, &in)
		if in.Cron == "bad" {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error":{"code":"invalid_input","message":"must be 5 fields","field":"cron",`+
				`"details":[{"field":"cron","message":"must be 5 fields"},{"field":"timezone","message":"unknown time zone"}]}}`)
			return
		}
		s := Schedule{ID: "sch_1", Name: in.Name, Job: in.Job, Cron: in.Cron, Timezone: "UTC", Enabled: true, Revision: 3,
			NextFires: []string{"2026-11-28T00:00:00Z"}}
		f.byID[in.Name] = s
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(s)
	default:
		s, ok := f.byID[name]
		if !ok {
			notFound()
			return
		}
		switch {
		case r.Method == http.MethodPut:
			var in ScheduleInput
			_ = json.Unmarshal(b, &in)
			s.Job, s.Cron = in.Job, in.Cron
		case r.Method == http.MethodDelete:
			delete(f.byID, name)
		case action == "enable" || action == "disable":
			s.Enabled = action == "enable"
		}
		if r.Method != http.MethodDelete {
			f.byID[name] = s
		}
		_ = json.NewEncoder(w).Encode(s)
	}
}

func TestScheduleClient(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fake := &fakeSchedules{byID: map[string]Schedule{}}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	c, err := New(srv.URL, WithToken("oct_test"))
	if err != nil {
		t.Fatal(err)
	}
	last := func() string {
		fake.mu.Lock()
		defer fake.mu.Unlock()
		return fake.seen[len(fake.seen)-1]
	}
	tests := []struct {
		name string
		call func() (Schedule, error)
		want string // the request the controller saw
		ok   func(Schedule) bool
	}{
		{"create posts the input", func() (Schedule, error) {
			return c.CreateSchedule(ctx, ScheduleInput{Name: "nightly", Job: "backup", Cron: "@daily", Params: map[string]any{"n": 1}})
		}, `POST /api/v1/schedules {"name":"nightly","job":"backup","params":{"n":1},"cron":"@daily"}`,
			func(s Schedule) bool { return s.ID == "sch_1" && len(s.NextFires) == 1 }},
		{"get reads by name", func() (Schedule, error) { return c.GetSchedule(ctx, "nightly") },
			"GET /api/v1/schedules/nightly", func(s Schedule) bool { return s.Name == "nightly" }},
		{"update puts the whole input at the path", func() (Schedule, error) {
			in := Schedule{Name: "nightly", Job: "report", Cron: "@hourly", Timezone: "UTC", Enabled: true, Overlap: "skip",
				CatchUp: "skip", Revision: 3}.Input()
			return c.UpdateSchedule(ctx, "nightly", in)
		}, `PUT /api/v1/schedules/nightly {"name":"nightly","job":"report","cron":"@hourly","timezone":"UTC","enabled":true,"overlap":"skip","catch_up":"skip","revision":3}`,
			func(s Schedule) bool { return s.Job == "report" }},
		{"disable posts to the action", func() (Schedule, error) { return c.SetScheduleEnabled(ctx, "nightly", false) },
			"POST /api/v1/schedules/nightly/disable", func(s Schedule) bool { return !s.Enabled }},
		{"enable posts to the action", func() (Schedule, error) { return c.SetScheduleEnabled(ctx, "nightly", true) },
			"POST /api/v1/schedules/nightly/enable", func(s Schedule) bool { return s.Enabled }},
		{"a name is escaped in the path", func() (Schedule, error) { return c.GetSchedule(ctx, "a/b") },
			"GET /api/v1/schedules/a%2Fb", nil},
		{"delete deletes by name", func() (Schedule, error) { return c.DeleteSchedule(ctx, "nightly") },
			"DELETE /api/v1/schedules/nightly", func(s Schedule) bool { return s.Name == "nightly" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := tt.call()
			if got := last(); got != tt.want {
				t.Fatalf("request %q, want %q", got, tt.want)
			}
			if tt.ok == nil {
				return
			}
			if err != nil || !tt.ok(s) {
				t.Fatalf("got %+v, %v", s, err)
			}
		})
	}
	t.Run("a missing schedule is an error with its code", func(t *testing.T) {
		_, err := c.GetSchedule(ctx, "nightly")
		var apiErr *Error
		if !errors.As(err, &apiErr) || apiErr.Status != http.StatusNotFound || apiErr.Code != "schedule_not_found" {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("a validation error carries every field", func(t *testing.T) {
		_, err := c.CreateSchedule(ctx, ScheduleInput{Name: "x", Job: "backup", Cron: "bad"})
		var apiErr *Error
		if !errors.As(err, &apiErr) || len(apiErr.Details) != 2 || !strings.Contains(err.Error(), "timezone: unknown time zone") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("the list is empty, not nil, once all are deleted", func(t *testing.T) {
		l, err := c.ListSchedules(ctx)
		if err != nil || l == nil || len(l) != 0 {
			t.Fatalf("list %v, %v", l, err)
		}
	})
}
