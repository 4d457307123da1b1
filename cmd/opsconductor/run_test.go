package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/spf13/cobra"
	"go.uber.org/goleak"

	"github.com/opsconductor/opsconductor/controller/apiclient"
)

func lines(s ...string) string { return strings.Join(s, "\n") + "\n" }

func TestUnifiedDiffMatchesGNUDiff(t *testing.T) {
	// The expected hunks are what `diff -u` prints for the same texts.
	letters := lines("a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m")
	tests := []struct {
		name, a, b, want string
	}{
		{"identical texts have no diff", "x\ny\n", "x\ny\n", ""},
		{"changes far apart make two hunks", letters, lines("a", "B", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n"),
			lines("--- web@1", "+++ web@2", "@@ -1,5 +1,5 @@", " a", "-b", "+B", " c", " d", " e",
				"@@ -11,3 +11,4 @@", " k", " l", " m", "+n")},
		{"changes within twice the context share a hunk", lines("a", "b", "c", "d", "e", "f", "g", "h"), lines("a", "b", "c", "X", "e", "f", "g", "Y"),
			lines("--- web@1", "+++ web@2", "@@ -1,8 +1,8 @@", " a", " b", " c", "-d", "+X", " e", " f", " g", "-h", "+Y")},
		{"a line dropped at the head and one added at the tail", lines("x", "y"), lines("y", "z"),
			lines("--- web@1", "+++ web@2", "@@ -1,2 +1,2 @@", "-x", " y", "+z")},
		{"everything added to an empty text", "", lines("x", "y"),
			lines("--- web@1", "+++ web@2", "@@ -0,0 +1,2 @@", "+x", "+y")},
		{"a missing final newline is no change", "x\ny", "x\ny\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := unifiedDiff("web@1", "web@2", tt.a, tt.b, 3); got != tt.want {
				t.Fatalf("diff:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func TestParseParamsKeepsValuesAsStrings(t *testing.T) {
	tests := []struct {
		name    string
		in      []string
		want    map[string]any
		wantErr string
	}{
		{"no flags send no params", nil, nil, ""},
		{"values stay strings for the server to convert", []string{"batch=2", "service=nginx"}, map[string]any{"batch": "2", "service": "nginx"}, ""},
		{"a value may hold '=' and be empty", []string{"q=a=b", "empty="}, map[string]any{"q": "a=b", "empty": ""}, ""},
		{"a flag without '=' is refused", []string{"batch"}, nil, `-p "batch": want NAME=VALUE`},
		{"a flag without a name is refused", []string{"=2"}, nil, `-p "=2": want NAME=VALUE`},
		{"a name given twice is refused", []string{"a=1", "a=2"}, nil, "-p a given twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseParams(tt.in)
			if tt.wantErr != "" {
				var ue usageError
				if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want a usage error saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || len(got) != len(tt.want) {
				t.Fatalf("parseParams = %v, %v", got, err)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s = %#v, want %#v", k, got[k], v)
				}
			}
		})
	}
}

func TestReadDefinitionFindsTheJobsName(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	yamlFile := write("web.yaml", "# a comment\nname: rolling-restart\nsteps: []\n")
	jsonFile := write("web.json", `{"name": "from-json", "steps": []}`)
	nameless := write("nameless.yaml", "steps: []\n")
	broken := write("broken.yaml", "name: [\n")
	tests := []struct {
		name, file, flag, stdin, want, wantErr string
	}{
		{"the name comes from YAML", yamlFile, "", "", "rolling-restart", ""},
		{"the name comes from JSON", jsonFile, "", "", "from-json", ""},
		{"--name wins over the file", yamlFile, "other", "", "other", ""},
		{"standard input is read for -", "-", "", "name: piped\n", "piped", ""},
		{"a definition without a name needs --name", nameless, "", "", "", "has no name: field; give the job's name with --name"},
		{"a definition that does not parse names the file", broken, "", "", "", "broken.yaml: cannot read the job's name"},
		{"no file is a usage error", "", "", "", "", "give the definition with -f FILE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := &cobra.Command{}
			cmd.SetIn(strings.NewReader(tt.stdin))
			def, name, err := readDefinition(cmd, tt.file, tt.flag)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || name != tt.want || len(def) == 0 {
				t.Fatalf("readDefinition = %q, %q, %v", def, name, err)
			}
		})
	}
}

func TestJobAndRunCommandsCheckTheirArguments(t *testing.T) {
	cliEnv(t)
	// Nothing listens here: every case must be refused before a request.
	addr := "--address=http://127.0.0.1:1"
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"apply needs a file", []string{"job", "apply", addr}, "give the definition with -f FILE"},
		{"a param needs a value", []string{"job", "run", "web", "-p", "batch", addr}, `-p "batch": want NAME=VALUE`},
		{"a negative version is refused", []string{"job", "run", "web", "--version", "-1", addr}, "--version -1"},
		{"diff needs version numbers", []string{"job", "diff", "web", "1", "latest", addr}, `version "latest"`},
		{"diff needs three arguments", []string{"job", "diff", "web", "1", addr}, "takes 3 argument"},
		{"rerun takes one mode", []string{"run", "rerun", "run_1", "--failed", "--resume", addr}, "--failed and --resume do not go together"},
		{"since must be a time or a duration", []string{"run", "list", "--since", "yesterday", addr}, `--since "yesterday"`},
		{"approve needs the step", []string{"run", "approve", "run_1", addr}, "takes 2 argument"},
		{"logs cannot follow as JSON", []string{"run", "logs", "run_1", "-f", "--json", addr}, "--json and --follow do not go together"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := runIn(t, "", tt.args...)
			var ue usageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want a usage error saying %q", err, tt.want)
			}
		})
	}
}

func step(id, status string) apiclient.RunStep { return apiclient.RunStep{ID: id, Status: status} }

func TestProgressPrintsOneLinePerChange(t *testing.T) {
	view := func(status string, web1, web2 []apiclient.RunStep) apiclient.Run {
		return apiclient.Run{ID: "run_1", Status: status, Targets: []apiclient.RunTarget{
			{Name: "web1", Steps: web1}, {Name: "web2", Steps: web2}}}
	}
	failed := step("restart", "failed")
	failed.Error, failed.Try = "exit status 3", 2
	skipped := step("check", "skipped")
	skipped.Reason = "a step it needs failed"
	views := []apiclient.Run{
		view("queued", []apiclient.RunStep{step("restart", "pending"), step("check", "pending")},
			[]apiclient.RunStep{step("restart", "pending"), step("check", "pending")}),
		view("running", []apiclient.RunStep{step("restart", "running"), step("check", "pending")},
			[]apiclient.RunStep{step("restart", "pending"), step("check", "pending")}),
		view("running", []apiclient.RunStep{step("restart", "running"), step("check", "pending")},
			[]apiclient.RunStep{step("restart", "pending"), step("check", "pending")}),
		view("failed", []apiclient.RunStep{step("restart", "succeeded"), step("check", "succeeded")},
			[]apiclient.RunStep{failed, skipped}),
	}
	var out strings.Builder
	p := newRunProgress(&out, false)
	for _, v := range views {
		p.update(v)
	}
	want := lines("run run_1: queued", "run run_1: running", "web1 restart: running",
		"run run_1: failed", "web1 restart: succeeded", "web1 check: succeeded",
		"web2 restart: failed (try 2) (exit status 3)", "web2 check: skipped (a step it needs failed)")
	if out.String() != want {
		t.Fatalf("progress:\n%s\nwant:\n%s", out.String(), want)
	}
}

func TestProgressRedrawsItsTableOnATerminal(t *testing.T) {
	var out strings.Builder
	p := newRunProgress(&out, true)
	r := apiclient.Run{ID: "run_1", Job: "web", Version: 2, Status: "running", Summary: apiclient.RunSummary{Targets: 1, Running: 1},
		Targets: []apiclient.RunTarget{{Name: "web1", Status: "running", Steps: []apiclient.RunStep{step("restart", "running")}}}}
	p.update(r)
	first := out.String()
	if strings.Contains(first, "\x1b[") || !strings.Contains(first, "web1    running  running") {
		t.Fatalf("first drawing:\n%q", first)
	}
	r.Status, r.Targets[0].Status, r.Targets[0].Steps[0].Status = "succeeded", "succeeded", "succeeded"
	p.update(r)
	// Three lines were drawn (the head, the table's header and one row):
	// the second drawing goes up over them and clears.
	if second := strings.TrimPrefix(out.String(), first); !strings.HasPrefix(second, "\x1b[3A\x1b[J") || !strings.Contains(second, "succeeded") {
		t.Fatalf("second drawing:\n%q", second)
	}
}

func TestLogPrinterPrintsEachLineOnce(t *testing.T) {
	var out strings.Builder
	lp := newLogPrinter(&out, "", "restart")
	for _, l := range []apiclient.RunLogLine{
		{Target: "web1", Step: "restart", AttemptID: "a1", Seq: 1, Data: "stopping\nstarting\n"},
		{Target: "web1", Step: "drain", AttemptID: "a0", Seq: 1, Data: "drained\n"},
		{Target: "web1", Step: "restart", AttemptID: "a1", Seq: 1, Data: "stopping\nstarting\n"},
		{Target: "web1", Step: "restart", AttemptID: "a1", Seq: 2, Data: "ok"},
		{Target: "web2", Step: "restart", AttemptID: "a2", Seq: 1, Data: "ok\n"},
	} {
		lp.print(l)
	}
	want := lines("web1 restart | stopping", "web1 restart | starting", "web1 restart | ok", "web2 restart | ok")
	if out.String() != want {
		t.Fatalf("printed:\n%s\nwant:\n%s", out.String(), want)
	}
}

func TestApplyAttemptShowsAStepsNewStatus(t *testing.T) {
	code := 3
	tests := []struct {
		name                   string
		before                 apiclient.RunTarget
		ev                     apiclient.AttemptEvent
		wantStatus, wantTarget string
		wantChanged            bool
	}{
		{"a pending attempt shows as running", apiclient.RunTarget{Name: "web1", Status: "waiting", Steps: []apiclient.RunStep{step("restart", "pending")}},
			apiclient.AttemptEvent{Target: "web1", Step: "restart", Try: 1, Status: "pending"}, "running", "running", true},
		{"an attempt in error shows as failed", apiclient.RunTarget{Name: "web1", Status: "waiting", Steps: []apiclient.RunStep{step("restart", "pending")}},
			apiclient.AttemptEvent{Target: "web1", Step: "restart", Try: 1, Status: "error", ExitCode: &code}, "failed", "waiting", true},
		{"the same status and try again changes nothing", apiclient.RunTarget{Name: "web1", Status: "running", Steps: []apiclient.RunStep{{ID: "restart", Status: "running", Try: 1}}},
			apiclient.AttemptEvent{Target: "web1", Step: "restart", Try: 1, Status: "running"}, "running", "running", false},
		{"a new try of a running step is a change", apiclient.RunTarget{Name: "web1", Status: "running", Steps: []apiclient.RunStep{{ID: "restart", Status: "running", Try: 1}}},
			apiclient.AttemptEvent{Target: "web1", Step: "restart", Try: 2, Status: "pending"}, "running", "running", true},
		{"an unknown target changes nothing", apiclient.RunTarget{Name: "web1", Status: "waiting", Steps: []apiclient.RunStep{step("restart", "pending")}},
			apiclient.AttemptEvent{Target: "web9", Step: "restart", Try: 1, Status: "failed"}, "pending", "waiting", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := apiclient.Run{Targets: []apiclient.RunTarget{tt.before}}
			changed := applyAttempt(&r, tt.ev)
			if changed != tt.wantChanged || r.Targets[0].Steps[0].Status != tt.wantStatus || r.Targets[0].Status != tt.wantTarget {
				t.Fatalf("changed %v, step %s, target %s", changed, r.Targets[0].Steps[0].Status, r.Targets[0].Status)
			}
		})
	}
}

func TestRunExitCodesFollowTheOutcome(t *testing.T) {
	tests := []struct {
		status string
		code   int
	}{{"succeeded", 0}, {"failed", 1}, {"canceled", 2}}
	for _, tt := range tests {
		t.Run("a run that "+tt.status+" exits "+string(rune('0'+tt.code)), func(t *testing.T) {
			var out strings.Builder
			err := runExit(&out, apiclient.Run{ID: "run_1", Status: tt.status, Summary: apiclient.RunSummary{Targets: 1}})
			var ec exitCodeError
			switch {
			case tt.code == 0 && err != nil:
				t.Fatalf("err = %v", err)
			case tt.code != 0 && (!errors.As(err, &ec) || ec.code != tt.code):
				t.Fatalf("err = %v, want exit code %d", err, tt.code)
			}
			if !strings.HasPrefix(out.String(), "run run_1 "+tt.status) {
				t.Fatalf("said %q", out.String())
			}
		})
	}
}

// pollingController serves a run that succeeds on the third look, with
// no live stream, as a controller whose stream is down would.
type pollingController struct {
	mu    sync.Mutex
	looks int
}

func (pc *pollingController) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	pc.mu.Lock()
	defer pc.mu.Unlock()
	steps := func(status string) []apiclient.RunStep { return []apiclient.RunStep{step("hello", status)} }
	run := apiclient.Run{ID: "run_1", Job: "hello", Version: 1, Status: "running", Summary: apiclient.RunSummary{Targets: 1, Running: 1},
		Targets: []apiclient.RunTarget{{Name: "local", Status: "running", Steps: steps("running")}}}
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/api/v1/jobs/hello/runs":
		w.WriteHeader(http.StatusCreated)
		run.Status, run.Targets[0].Steps = "queued", steps("pending")
		_ = json.NewEncoder(w).Encode(run)
	case r.URL.Path == "/api/v1/runs/run_1/stream":
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"error":{"code":"no_leader","message":"no leader is known"}}`)
	case r.URL.Path == "/api/v1/runs/run_1":
		if pc.looks++; pc.looks >= 3 {
			run.Status, run.Summary = "succeeded", apiclient.RunSummary{Targets: 1, Succeeded: 1}
			run.Targets[0].Status, run.Targets[0].Steps = "succeeded", steps("succeeded")
		}
		_ = json.NewEncoder(w).Encode(run)
	case r.URL.Path == "/api/v1/runs/run_1/logs":
		_, _ = io.WriteString(w, `{"items":[{"target":"local","step":"hello","attempt_id":"att_1","try":1,"seq":1,"stream":"stdout","data":"hello\n"}],"next":"0:1"}`)
	default:
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"error":{"code":"not_found","message":"no such route"}}`)
	}
}

func TestFollowFallsBackToPollingWithoutTheStream(t *testing.T) {
	cliEnv(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"job run --follow shows progress, then the output and the outcome", []string{"job", "run", "hello", "--follow", "--poll", "10ms"},
			lines("run run_1 started; follow with opsconductor run logs -f run_1", "run run_1: running", "local hello: running",
				"run run_1: succeeded", "local hello: succeeded", "", "local hello | hello", "run run_1 succeeded: 1 (1 succeeded)")},
		{"run logs -f prints each line once", []string{"run", "logs", "run_1", "-f", "--poll", "10ms"}, lines("local hello | hello")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(&pollingController{})
			defer srv.Close()
			out, errOut, err := runIn(t, "", append(tt.args, "--address", srv.URL, "--token", "oct_test")...)
			if err != nil {
				t.Fatalf("err = %v\nstdout: %s\nstderr: %s", err, out, errOut)
			}
			if out != tt.want {
				t.Fatalf("stdout:\n%s\nwant:\n%s", out, tt.want)
			}
			if !strings.Contains(errOut, "live output unavailable") || !strings.Contains(errOut, "no leader is known") {
				t.Fatalf("stderr does not say why it polls: %s", errOut)
			}
		})
	}
}

// applyUnified applies a diff made by unifiedDiff to the lines of a; it
// fails the test on a hunk that does not fit a.
func applyUnified(t *testing.T, a []string, diff string) []string {
	t.Helper()
	if diff == "" {
		return a
	}
	dl := strings.Split(strings.TrimSuffix(diff, "\n"), "\n")
	if len(dl) < 3 || !strings.HasPrefix(dl[0], "--- ") || !strings.HasPrefix(dl[1], "+++ ") {
		t.Fatalf("no diff header:\n%s", diff)
	}
	var out []string
	next := 0 // the next line of a not yet copied
	for _, l := range dl[2:] {
		if strings.HasPrefix(l, "@@ ") {
			var oStart, oc, ns, nc int
			head := strings.Fields(l)
			parse := func(s string, start, count *int) {
				*count = 1
				if i := strings.IndexByte(s, ','); i >= 0 {
					_, _ = fmt.Sscanf(s[i+1:], "%d", count)
					s = s[:i]
				}
				_, _ = fmt.Sscanf(s, "%d", start)
			}
			parse(strings.TrimPrefix(head[1], "-"), &oStart, &oc)
			parse(strings.TrimPrefix(head[2], "+"), &ns, &nc)
			from := oStart - 1
			if oc == 0 {
				from = oStart
			}
			if from < next || from > len(a) {
				t.Fatalf("hunk %q starts at line %d, after line %d of %d", l, from+1, next, len(a))
			}
			out, next = append(out, a[next:from]...), from
			continue
		}
		if l == "" {
			t.Fatalf("an empty diff line in:\n%s", diff)
		}
		switch body := l[1:]; l[0] {
		case ' ', '-':
			if next >= len(a) || a[next] != body {
				t.Fatalf("line %q does not match line %d of a", l, next+1)
			}
			if l[0] == ' ' {
				out = append(out, body)
			}
			next++
		case '+':
			out = append(out, body)
		default:
			t.Fatalf("line %q is not context, removal or addition", l)
		}
	}
	return append(out, a[next:]...)
}

func FuzzUnifiedDiff(f *testing.F) {
	f.Add("a\nb\nc\n", "a\nB\nc\nd\n", 3)
	f.Add("", "x\n", 0)
	f.Add("x\ny\nz\n", "", 1)
	f.Add("a\nb\nc\nd\ne\nf\ng\nh\ni\n", "a\nX\nc\nd\ne\nf\ng\nY\ni\n", 2)
	f.Add("same\n", "same\n", 3)
	f.Fuzz(func(t *testing.T, a, b string, ctx int) {
		if len(a) > 4096 || len(b) > 4096 || ctx < 0 || ctx > 10 {
			t.Skip()
		}
		split := func(s string) []string {
			if s == "" {
				return nil
			}
			return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
		}
		diff := unifiedDiff("a", "b", a, b, ctx)
		if got, want := applyUnified(t, split(a), diff), split(b); strings.Join(got, "\n") != strings.Join(want, "\n") || len(got) != len(want) {
			t.Fatalf("the diff does not turn a into b:\n%s\ngot  %q\nwant %q", diff, got, want)
		}
	})
}

func FuzzParseParams(f *testing.F) {
	f.Add("batch=2", "service=nginx")
	f.Add("=x", "y")
	f.Add("a=1", "a=2")
	f.Add("q=a=b", "empty=")
	f.Fuzz(func(t *testing.T, p1, p2 string) {
		got, err := parseParams([]string{p1, p2})
		if err != nil {
			var ue usageError
			if !errors.As(err, &ue) {
				t.Fatalf("a bad -p is not a usage error: %v", err)
			}
			return
		}
		for _, kv := range []string{p1, p2} {
			k, v, _ := strings.Cut(kv, "=")
			if got[strings.TrimSpace(k)] != v {
				t.Fatalf("-p %q became %#v", kv, got)
			}
		}
	})
}

// resumingController serves a run whose live stream breaks once: the
// first connection sends a hello and one event and drops; the run ends
// on the second, which must resume after that event, in that epoch.
type resumingController struct {
	mu      sync.Mutex
	queries []string
}

func (rc *resumingController) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc.mu.Lock()
	conns := len(rc.queries)
	rc.mu.Unlock()
	run := apiclient.Run{ID: "run_1", Status: "running", Summary: apiclient.RunSummary{Targets: 1, Running: 1},
		Targets: []apiclient.RunTarget{{Name: "local", Status: "running", Steps: []apiclient.RunStep{step("hello", "pending")}}}}
	if conns == 1 {
		run.Targets[0].Steps[0].Status = "running"
	}
	if conns >= 2 {
		run.Status, run.Summary = "succeeded", apiclient.RunSummary{Targets: 1, Succeeded: 1}
		run.Targets[0].Status, run.Targets[0].Steps[0].Status = "succeeded", "succeeded"
	}
	if r.URL.Path != "/api/v1/runs/run_1/stream" {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(run)
		return
	}
	up := websocket.Upgrader{Subprotocols: []string{"opsconductor.v1"}}
	conn, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer conn.Close()
	rc.mu.Lock()
	rc.queries = append(rc.queries, r.URL.RawQuery)
	rc.mu.Unlock()
	send := func(seq uint64, typ, data string) {
		ev := apiclient.RunEvent{Seq: seq, Type: typ}
		if data != "" {
			ev.Data = json.RawMessage(data)
		}
		b, _ := json.Marshal(ev)
		_ = conn.WriteMessage(websocket.TextMessage, b)
	}
	if conns == 0 {
		send(0, "hello", `{"run_id":"run_1","epoch":"e1","head":0,"oldest":1}`)
		send(1, "attempt", `{"target":"local","step":"hello","attempt_id":"att_1","try":1,"status":"running"}`)
		return // dropped without a close frame, as by a leader that died
	}
	send(1, "hello", `{"run_id":"run_1","epoch":"e1","head":1,"oldest":1}`)
	send(2, "log", `{"target":"local","step":"hello","attempt_id":"att_1","try":1,"seq":1,"data":"hi\n"}`)
	send(3, "run", `{"id":"run_1","status":"succeeded"}`)
	send(4, "end", "")
	_ = conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "run ended"))
}

func TestWatcherResumesABrokenStreamWhereItLeftOff(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	rc := &resumingController{}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	c, err := apiclient.New(srv.URL, apiclient.WithToken("oct_test"))
	if err != nil {
		t.Fatal(err)
	}
	var progress, notes, logs strings.Builder
	lp := newLogPrinter(&logs, "", "")
	w := &watcher{c: c, id: "run_1", poll: time.Hour, note: &notes, onView: newRunProgress(&progress, false).update, onLog: lp.print}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := w.watch(ctx)
	if err != nil || r.Status != "succeeded" {
		t.Fatalf("watch = %s, %v", r.Status, err)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.queries) != 2 || rc.queries[0] != "" || rc.queries[1] != "after=1&epoch=e1" {
		t.Fatalf("stream queries %q, want a fresh start and then after=1&epoch=e1", rc.queries)
	}
	if notes.Len() != 0 {
		t.Errorf("the watcher fell back to polling: %s", notes.String())
	}
	if want := lines("run run_1: running", "local hello: running", "run run_1: succeeded", "local hello: succeeded"); progress.String() != want {
		t.Errorf("progress:\n%s\nwant:\n%s", progress.String(), want)
	}
	if logs.String() != "local hello | hi\n" {
		t.Errorf("logs: %q", logs.String())
	}
}
