package main

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opsconductor/opsconductor/controller/apiclient"
)

// waitFor runs the CLI until check accepts its output or the deadline
// passes.
func waitFor(t *testing.T, what string, check func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !check() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func exitCode(err error) int {
	var ec exitCodeError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ec):
		return ec.code
	}
	return -1
}

// runIDOf reads the run ID from "run run_… started; …".
func runIDOf(t *testing.T, out string) string {
	t.Helper()
	f := strings.Fields(out)
	if len(f) < 3 || f[0] != "run" || !strings.HasPrefix(f[1], "run_") || f[2] != "started;" && f[2] != "started" {
		t.Fatalf("no run ID in %q", out)
	}
	return f[1]
}

func TestJobsAndRunsAgainstADevController(t *testing.T) {
	cliEnv(t)
	ctl := startDevController(t)
	addr := "--address=" + ctl.addr
	must(t, adminPassword+"\n", "login", addr, "--username", "admin", "--password-stdin")
	waitFor(t, "the built-in agent", func() bool {
		var agents []apiclient.Agent
		return json.Unmarshal([]byte(must(t, "", "agent", "list", "--json", addr)), &agents) == nil &&
			len(agents) == 1 && agents[0].Status == "up"
	})
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// Like the dev server's example job: a parameter, an output feeding a
	// later step, three steps in a row on the built-in agent.
	greet := write("greet.yaml", `name: greet
params:
  - {name: who, type: string, default: world}
targets: {names: [local]}
steps:
  - id: greet
    uses: shell
    with:
      command: |
        echo "hello ${{ params.who }}"
        echo "greeted=${{ params.who }}" >> "$OPSCONDUCTOR_OUTPUT"
  - id: facts
    uses: shell
    needs: [greet]
    with: {command: "uname -s"}
  - id: done
    uses: shell
    needs: [facts]
    with: {command: "echo 'greeted ${{ steps.greet.outputs.greeted }}'"}
`)
	must(t, "", "job", "apply", "-f", greet, addr)

	t.Run("the dev server's example job is there and runs", func(t *testing.T) {
		waitFor(t, "the example job", func() bool { return strings.Contains(must(t, "", "job", "list", addr), "hello ") })
		out, errOut, err := runIn(t, "", "job", "run", "hello", "-p", "who=newcomer", "--follow", addr)
		if err != nil || !strings.Contains(out, "local greet | hello newcomer from") || !strings.Contains(out, " succeeded: 1 (1 succeeded)") {
			t.Fatalf("job run hello --follow: %v\nstdout: %s\nstderr: %s", err, out, errOut)
		}
	})
	t.Run("a job runs on the built-in agent and --follow shows its progress and output", func(t *testing.T) {
		out, errOut, err := runIn(t, "", "job", "run", "greet", "-p", "who=tester", "--follow", addr)
		if err != nil {
			t.Fatalf("job run --follow: %v\nstdout: %s\nstderr: %s", err, out, errOut)
		}
		id := runIDOf(t, out)
		for _, want := range []string{"run " + id + ": succeeded", "local greet: succeeded", "local done: succeeded",
			"local greet | hello tester\n", "local done | greeted tester", "run " + id + " succeeded: 1 (1 succeeded)"} {
			if !strings.Contains(out, want) {
				t.Errorf("job run --follow does not say %q:\n%s", want, out)
			}
		}
		if strings.Contains(errOut, "live output unavailable") {
			t.Errorf("the live stream was not used: %s", errOut)
		}
		show := must(t, "", "run", "show", id, addr)
		if !strings.Contains(show, "job greet version 1  succeeded") || !strings.Contains(show, `params who="tester"`) ||
			!strings.Contains(show, "local   succeeded  succeeded  succeeded  succeeded") {
			t.Errorf("run show:\n%s", show)
		}
		if logs := must(t, "", "run", "logs", id, "--step", "greet", addr); !strings.HasPrefix(logs, "local greet | hello tester\n") ||
			strings.Contains(logs, "facts") {
			t.Errorf("run logs --step greet:\n%s", logs)
		}
		if list := must(t, "", "run", "list", "--job", "greet", addr); !strings.Contains(list, id) || !strings.Contains(list, "greet@1") {
			t.Errorf("run list:\n%s", list)
		}
	})

	marker := filepath.Join(dir, "second-try")
	flaky := write("flaky.yaml", `name: flaky
description: fails until a marker file exists
targets: {names: [local]}
steps:
  - id: try
    uses: shell
    with:
      command: |
        echo trying
        if [ -f `+marker+` ]; then echo second; else touch `+marker+`; echo first >&2; exit 3; fi
  - id: after
    uses: shell
    needs: [try]
    with: {command: "echo after"}
`)
	t.Run("a job is applied once, and again only when it changed", func(t *testing.T) {
		if out := must(t, "", "job", "apply", "-f", flaky, addr); out != "job flaky version 1\n" {
			t.Fatalf("apply: %q", out)
		}
		if out := must(t, "", "job", "apply", "-f", flaky, addr); out != "unchanged (version 1)\n" {
			t.Fatalf("apply again: %q", out)
		}
	})

	t.Run("a failing run exits 1 and a rerun of its failed targets succeeds", func(t *testing.T) {
		out, errOut, err := runIn(t, "", "job", "run", "flaky", "--follow", addr)
		if exitCode(err) != 1 {
			t.Fatalf("job run --follow of a failing job: %v\nstdout: %s\nstderr: %s", err, out, errOut)
		}
		id := runIDOf(t, out)
		for _, want := range []string{"local try: failed", "local after: skipped", "local try | trying", "local try | first",
			"run " + id + " failed"} {
			if !strings.Contains(out, want) {
				t.Errorf("the failed run does not say %q:\n%s", want, out)
			}
		}
		var r apiclient.Run
		if err := json.Unmarshal([]byte(must(t, "", "run", "show", id, "--json", addr)), &r); err != nil {
			t.Fatal(err)
		}
		if r.Status != "failed" || len(r.Targets) != 1 || r.Targets[0].Steps[0].ExitCode == nil || *r.Targets[0].Steps[0].ExitCode != 3 {
			t.Fatalf("run show --json: %+v", r)
		}
		out, errOut, err = runIn(t, "", "run", "rerun", id, "--failed", "--follow", addr)
		if err != nil {
			t.Fatalf("rerun --failed --follow: %v\nstdout: %s\nstderr: %s", err, out, errOut)
		}
		rerun := runIDOf(t, out)
		if !strings.Contains(out, "(rerun of "+id+")") || !strings.Contains(out, "local try | second") || !strings.Contains(out, "local after | after") {
			t.Errorf("rerun --failed --follow:\n%s", out)
		}
		if show := must(t, "", "run", "show", rerun, addr); !strings.Contains(show, "rerun of "+id) {
			t.Errorf("run show of the rerun:\n%s", show)
		}
	})

	t.Run("a canceled run exits 2", func(t *testing.T) {
		slow := write("slow.yaml", "name: slow\ntargets: {names: [local]}\nsteps:\n  - id: wait\n    uses: shell\n    with: {command: \"echo waiting; sleep 60\"}\n")
		must(t, "", "job", "apply", "-f", slow, addr)
		id := runIDOf(t, must(t, "", "job", "run", "slow", addr))
		waitFor(t, "the step to run", func() bool {
			var r apiclient.Run
			return json.Unmarshal([]byte(must(t, "", "run", "show", id, "--json", addr)), &r) == nil &&
				len(r.Targets) == 1 && r.Targets[0].Steps[0].Status == "running"
		})
		if out := must(t, "", "run", "cancel", id, addr); !strings.HasPrefix(out, "cancel requested for run "+id) {
			t.Fatalf("cancel: %q", out)
		}
		out, errOut, err := runIn(t, "", "run", "logs", id, "-f", addr)
		if exitCode(err) != 2 {
			t.Fatalf("run logs -f of a canceled run: %v\nstdout: %s\nstderr: %s", err, out, errOut)
		}
		if !strings.Contains(out, "local wait | waiting") || !strings.Contains(errOut, "run "+id+" canceled") {
			t.Errorf("run logs -f:\nstdout: %s\nstderr: %s", out, errOut)
		}
	})

	t.Run("an approval step waits for a person, and the decision decides the run", func(t *testing.T) {
		gated := write("gated.yaml", `name: gated
targets: {names: [local]}
steps:
  - id: prep
    uses: shell
    with: {command: "echo prepared"}
  - id: gate
    uses: approval
    needs: [prep]
    with: {message: "go ahead?", timeout: 1h}
  - id: go
    uses: shell
    needs: [gate]
    with: {command: "echo went"}
`)
		must(t, "", "job", "apply", "-f", gated, addr)
		for _, tc := range []struct {
			verb, done string
			code       int
		}{{"approve", "approved", 0}, {"reject", "rejected", 1}} {
			id := runIDOf(t, must(t, "", "job", "run", "gated", addr))
			var show string
			waitFor(t, "the approval", func() bool {
				show = must(t, "", "run", "show", id, addr)
				return strings.Contains(show, "approval gate: pending")
			})
			if !strings.Contains(show, "go ahead?") || !strings.Contains(show, "local gate: waiting: waiting for approval") {
				t.Errorf("run show of a run waiting for approval:\n%s", show)
			}
			if out := must(t, "", "run", tc.verb, id, "gate", "--comment", "by the test", addr); out != tc.done+" step gate of run "+id+"\n" {
				t.Errorf("run %s: %q", tc.verb, out)
			}
			out, errOut, err := runIn(t, "", "run", "logs", id, "-f", addr)
			if exitCode(err) != tc.code || !strings.Contains(out, "local prep | prepared") {
				t.Fatalf("run logs -f after %s: %v\nstdout: %s\nstderr: %s", tc.verb, err, out, errOut)
			}
			show = must(t, "", "run", "show", id, addr)
			if !strings.Contains(show, "approval gate: "+tc.done+` by admin ("by the test")`) ||
				(tc.code == 0) != strings.Contains(out, "local go | went") {
				t.Errorf("after %s:\nlogs: %s\nshow: %s", tc.verb, out, show)
			}
		}
	})

	t.Run("validate names every problem with its path and exits 1", func(t *testing.T) {
		bad := write("bad.yaml", "name: bad\ntargets: {names: [local]}\nsteps:\n  - id: a\n    uses: shell\n    with: {command: \"true\"}\n"+
			"  - id: b\n    uses: nosuch@1\n    needs: [chek]\n    timeout: soon\n")
		out, errOut, err := runIn(t, "", "job", "validate", "-f", bad, addr)
		if exitCode(err) != 1 {
			t.Fatalf("validate: %v\nstdout: %s\nstderr: %s", err, out, errOut)
		}
		if !strings.Contains(out, "steps[1].needs[0]: ") || !strings.Contains(out, "chek") || !strings.Contains(out, "steps[1].uses: ") ||
			!strings.Contains(out, "steps[1].timeout: ") {
			t.Errorf("validate did not name every problem:\n%s", out)
		}
		if out := must(t, "", "job", "validate", "-f", flaky, addr); out != "job flaky: valid\n" {
			t.Errorf("validate of a good job: %q", out)
		}
		if _, _, err := runIn(t, "", "job", "apply", "-f", bad, addr); err == nil || !strings.Contains(err.Error(), "steps[1].needs[0]") {
			t.Errorf("apply of a bad job: %v", err)
		}
	})

	t.Run("versions are listed, shown and compared", func(t *testing.T) {
		changed := strings.Replace(mustRead(t, flaky), "echo after", "echo after, changed", 1)
		if out := must(t, "", "job", "apply", "-f", write("flaky2.yaml", changed), addr); out != "job flaky version 2\n" {
			t.Fatalf("apply v2: %q", out)
		}
		if out := must(t, "", "job", "versions", "flaky", addr); !strings.Contains(out, "\n2 ") || !strings.Contains(out, "\n1 ") {
			t.Errorf("versions:\n%s", out)
		}
		if out := must(t, "", "job", "show", "flaky", "--version", "1", addr); out != mustRead(t, flaky) {
			t.Errorf("show --version 1 is not the file as applied:\n%s", out)
		}
		diff := must(t, "", "job", "diff", "flaky", "1", "2", addr)
		if !strings.HasPrefix(diff, "--- flaky@1\n+++ flaky@2\n@@ ") ||
			!strings.Contains(diff, "\n-    with: {command: \"echo after\"}\n+    with: {command: \"echo after, changed\"}\n") {
			t.Errorf("diff:\n%s", diff)
		}
		if out := must(t, "", "job", "diff", "flaky", "2", "2", addr); out != "" {
			t.Errorf("diff of a version with itself: %q", out)
		}
	})

	t.Run("a deleted job is gone", func(t *testing.T) {
		if out := must(t, "", "job", "delete", "slow", addr); out != "deleted job slow\n" {
			t.Fatalf("delete: %q", out)
		}
		var apiErr *apiclient.Error
		if _, _, err := runIn(t, "", "job", "show", "slow", addr); !errors.As(err, &apiErr) || apiErr.Status != 404 {
			t.Fatalf("show of a deleted job: %v", err)
		}
	})
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
