package main

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// scheduleController answers the schedule routes with one stored
// schedule, "nightly", recording every request as "METHOD path body".
// The real controller behind these routes is tested in controller/gateway;
// here what matters is what the CLI sends and prints.
type scheduleController struct {
	mu   sync.Mutex
	seen []string
}

const storedNightly = `{"id":"sch_1","name":"nightly","job":"backup","params":{"target":"db","keep":7},"cron":"30 2 * * *",` +
	`"timezone":"Europe/Berlin","enabled":true,"overlap":"skip","catch_up":"skip","owner":"usr_1","owner_name":"admin",` +
	`"created_at":"2026-11-01T00:00:00Z","updated_at":"2026-11-01T00:00:00Z","active_since":"2026-11-01T00:00:00Z",` +
	`"last_fire_time":"2026-11-27T01:30:00Z","last_run_id":"run-9","last_outcome":"started","revision":7,` +
	`"next_fires":["2026-11-28T02:30:00+01:00","2026-11-29T02:30:00+01:00"]}`

func (c *scheduleController) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	c.mu.Lock()
	c.seen = append(c.seen, strings.TrimSpace(r.Method+" "+r.URL.Path+" "+string(b)))
	c.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.URL.Path == "/api/v1/schedules" && r.Method == http.MethodGet:
		io.WriteString(w, `{"items":[`+storedNightly+`]}`)
	case r.URL.Path == "/api/v1/schedules/taken" || strings.Contains(string(b), `"name":"taken"`):
		w.WriteHeader(http.StatusConflict)
		io.WriteString(w, `{"error":{"code":"schedule_exists","message":"schedule \"taken\" exists"}}`)
	case strings.HasPrefix(r.URL.Path, "/api/v1/schedules/nightly") || r.Method == http.MethodPost:
		if r.Method == http.MethodPost && r.URL.Path == "/api/v1/schedules" {
			w.WriteHeader(http.StatusCreated)
		}
		io.WriteString(w, storedNightly)
	default:
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"error":{"code":"schedule_not_found","message":"schedule not found"}}`)
	}
}

func (c *scheduleController) requests() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.seen
	c.seen = nil
	return out
}

// body decodes the JSON body of a recorded request.
func recordedBody(t *testing.T, req string) map[string]any {
	t.Helper()
	_, raw, _ := strings.Cut(req, " {")
	var m map[string]any
	if err := json.Unmarshal([]byte("{"+raw), &m); err != nil {
		t.Fatalf("request %q: %v", req, err)
	}
	return m
}

func TestScheduleCommands(t *testing.T) {
	cliEnv(t)
	ctl := &scheduleController{}
	srv := httptest.NewServer(ctl)
	defer srv.Close()
	api := []string{"--address", srv.URL, "--token", "oct_test"}
	cli := func(args ...string) (string, string, error) {
		return runIn(t, "", append(append([]string{"schedule"}, args...), api...)...)
	}

	t.Run("create sends the flags, with -p values typed as JSON where they parse", func(t *testing.T) {
		out, errOut, err := cli("create", "nightly", "--job", "backup", "--cron", "30 2 * * *", "--timezone", "Europe/Berlin",
			"-p", "target=db", "-p", "keep=7", "-p", `tags=["a","b"]`, "-p", "note=two words", "--catch-up", "once", "--overlap", "allow",
			"--disabled", "--description", "nightly db backup")
		if err != nil {
			t.Fatalf("%v\n%s", err, errOut)
		}
		reqs := ctl.requests()
		if len(reqs) != 1 || !strings.HasPrefix(reqs[0], "POST /api/v1/schedules {") {
			t.Fatalf("requests %q", reqs)
		}
		got, _ := json.Marshal(recordedBody(t, reqs[0]))
		want := `{"catch_up":"once","cron":"30 2 * * *","description":"nightly db backup","enabled":false,"job":"backup",` +
			`"name":"nightly","overlap":"allow","params":{"keep":7,"note":"two words","tags":["a","b"],"target":"db"},"timezone":"Europe/Berlin"}`
		if string(got) != want {
			t.Fatalf("body\n got %s\nwant %s", got, want)
		}
		if !strings.Contains(out, "next ticks:\n  2026-11-28T02:30:00+01:00\n") {
			t.Fatalf("output:\n%s", out)
		}
	})
	t.Run("update reads the schedule and replaces only what the flags say, at its revision", func(t *testing.T) {
		if _, errOut, err := cli("update", "nightly", "--cron", "0 4 * * *", "-p", "keep=14", "--unset-param", "target"); err != nil {
			t.Fatalf("%v\n%s", err, errOut)
		}
		reqs := ctl.requests()
		if len(reqs) != 2 || reqs[0] != "GET /api/v1/schedules/nightly" || !strings.HasPrefix(reqs[1], "PUT /api/v1/schedules/nightly {") {
			t.Fatalf("requests %q", reqs)
		}
		got, _ := json.Marshal(recordedBody(t, reqs[1]))
		want := `{"catch_up":"skip","cron":"0 4 * * *","job":"backup","name":"nightly","overlap":"skip","params":{"keep":14},` +
			`"revision":7,"timezone":"Europe/Berlin"}`
		if string(got) != want {
			t.Fatalf("body\n got %s\nwant %s", got, want)
		}
	})
	t.Run("update with --replace-params keeps only the -p given", func(t *testing.T) {
		if _, errOut, err := cli("update", "nightly", "--replace-params", "-p", "only=1"); err != nil {
			t.Fatalf("%v\n%s", err, errOut)
		}
		reqs := ctl.requests()
		if p := recordedBody(t, reqs[1])["params"]; len(p.(map[string]any)) != 1 {
			t.Fatalf("params %v", p)
		}
	})
	t.Run("show prints the schedule, its last tick and next ticks", func(t *testing.T) {
		out, _, err := cli("show", "nightly")
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{`nightly  job backup  cron "30 2 * * *" in Europe/Berlin  enabled`, "runs as admin",
			`params keep=7 target="db"`, "last tick 2026-11-27T01:30:00Z started (last run run-9)", "  2026-11-29T02:30:00+01:00"} {
			if !strings.Contains(out, want) {
				t.Fatalf("no %q in\n%s", want, out)
			}
		}
	})
	t.Run("list prints a table, or JSON with --json", func(t *testing.T) {
		out, _, err := cli("list")
		if err != nil || !strings.Contains(out, "NAME") || !strings.Contains(out, "2026-11-28T02:30:00+01:00") {
			t.Fatalf("list %v:\n%s", err, out)
		}
		out, _, err = cli("list", "--json")
		var items []map[string]any
		if err != nil || json.Unmarshal([]byte(out), &items) != nil || len(items) != 1 || items[0]["name"] != "nightly" {
			t.Fatalf("list --json %v:\n%s", err, out)
		}
		ctl.requests()
	})
	t.Run("enable, disable and delete post to their routes", func(t *testing.T) {
		ctl.requests()
		for _, args := range [][]string{{"enable", "nightly"}, {"disable", "nightly"}, {"delete", "nightly"}} {
			if _, errOut, err := cli(args...); err != nil {
				t.Fatalf("%v: %v\n%s", args, err, errOut)
			}
		}
		want := []string{"POST /api/v1/schedules/nightly/enable", "POST /api/v1/schedules/nightly/disable", "DELETE /api/v1/schedules/nightly"}
		if got := ctl.requests(); strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("requests %q", got)
		}
	})
	t.Run("the controller's refusal is shown with its code", func(t *testing.T) {
		_, _, err := cli("create", "taken", "--job", "backup", "--cron", "@daily")
		if err == nil || !strings.Contains(err.Error(), "schedule_exists") {
			t.Fatalf("err %v", err)
		}
		ctl.requests()
	})

	bad := []struct {
		name string
		args []string
		want string
	}{
		{"create without a job", []string{"create", "n", "--cron", "@daily"}, "--job"},
		{"create without a cron spec", []string{"create", "n", "--job", "backup"}, "--cron"},
		{"a parameter without a value", []string{"create", "n", "--job", "backup", "--cron", "@daily", "-p", "target"}, `--param "target"`},
		{"a parameter without a name", []string{"update", "nightly", "-p", "=1"}, `--param "=1"`},
		{"show without a name", []string{"show"}, "argument"},
	}
	for _, tt := range bad {
		t.Run("it refuses "+tt.name, func(t *testing.T) {
			_, _, err := cli(tt.args...)
			var ue usageError
			if err == nil || !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want a usage error mentioning %q", err, tt.want)
			}
			if reqs := ctl.requests(); len(reqs) != 0 {
				t.Fatalf("sent %q before refusing", reqs)
			}
		})
	}
}
