package server

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/opsconductor/opsconductor/controller/apiclient"
)

// TestAPushedPluginIsFetchedByTheAgentAndRun is issue 6's end to end path
// in one process: the example plugin is built, pushed to the registry
// over the API, and a step naming it by major version goes to the dev
// server's built-in agent, which does not have it, fetches it over its
// mTLS connection (checking the sha256), runs it as a real go-plugin
// process and reports its outputs; a second run uses the installed copy.
func TestAPushedPluginIsFetchedByTheAgentAndRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the example plugin; skipped with -short")
	}
	bin := filepath.Join(t.TempDir(), "disk-usage")
	if out, err := exec.Command("go", "build", "-o", bin, "../../plugins/examples/diskusage").CombinedOutput(); err != nil {
		t.Fatalf("build the example plugin: %v\n%s", err, out)
	}
	cfg := testConfig(t.TempDir())
	cfg.Dev = true
	r := start(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	local := waitLocalAgent(ctx, t, r)

	f, err := os.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	schema := json.RawMessage(`{"type":"object","additionalProperties":false,"properties":{"path":{"type":"string","minLength":1},` +
		`"warn_percent":{"type":"number","minimum":0,"maximum":100},"fail_percent":{"type":"number","minimum":0,"maximum":100}}}`)
	if _, err := r.client.PushPlugin(ctx, apiclient.PushPluginRequest{OS: runtime.GOOS, Arch: runtime.GOARCH, Binary: f,
		Description: apiclient.StepDescription{Name: "disk-usage", Version: "1.0.0", Summary: "Disk usage", Params: schema}}); err != nil {
		t.Fatal(err)
	}

	run := func(with string) apiclient.Attempt {
		t.Helper()
		at, err := r.client.RunStep(ctx, local.ID, apiclient.StepSpec{Uses: "disk-usage@1", With: json.RawMessage(with), Timeout: "1m"})
		if err != nil {
			t.Fatal(err)
		}
		var got apiclient.Attempt
		poll(ctx, t, "the step to finish", func() error {
			got, err = r.client.GetAttempt(ctx, at.ID)
			if err == nil && !got.Finished() {
				err = fmt.Errorf("status %s", got.Status)
			}
			return err
		})
		return got
	}
	for i, want := range []string{"fetched and run", "run from the agent's cache"} {
		got := run(`{"path":"/"}`)
		pct, err := strconv.ParseFloat(got.Outputs["used_percent"], 64)
		if got.Status != "succeeded" || err != nil || pct < 0 || pct > 100 || got.Outputs["total_bytes"] == "" {
			t.Fatalf("run %d (%s): %+v", i+1, want, got)
		}
	}
	// The plugin's own checks: the controller refuses parameters the
	// pushed schema refuses before anything reaches the agent.
	_, err = r.client.RunStep(ctx, local.ID, apiclient.StepSpec{Uses: "disk-usage@1", With: json.RawMessage(`{"path":""}`)})
	if err == nil {
		t.Fatal("an empty path was accepted")
	}
	// A failing threshold fails the step with the plugin's message.
	if got := run(`{"path":"/","fail_percent":0}`); got.Status != "failed" || got.Error == "" {
		t.Fatalf("a threshold of 0%% did not fail: %+v", got)
	}
}

func waitLocalAgent(ctx context.Context, t testing.TB, r *running) apiclient.Agent {
	t.Helper()
	var local apiclient.Agent
	poll(ctx, t, "the built-in agent to be up", func() error {
		page, err := r.client.ListAgents(ctx, "", 10)
		if err != nil {
			return err
		}
		for _, a := range page.Items {
			if a.Name == LocalAgentName && a.Status == "up" {
				local = a
				return nil
			}
		}
		return fmt.Errorf("agents: %+v", page.Items)
	})
	return local
}

// TestJobsPinPluginVersions: two versions of one plugin are pushed and
// live side by side; a job's steps pin each, and each attempt runs the
// version its step asked for (the plugin reports its own version).
func TestJobsPinPluginVersions(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a test plugin twice; skipped with -short")
	}
	dir := t.TempDir()
	schema := json.RawMessage(`{"type":"object","required":["mode"],"additionalProperties":false,"properties":{` +
		`"mode":{"enum":["noop","echo","secret","fail","error","panic","crash","hang","stop","flood"]},` +
		`"text":{"type":"string"},"bytes":{"type":"integer","minimum":0},"done_file":{"type":"string"}}}`)
	cfg := testConfig(t.TempDir())
	cfg.Dev = true
	r := start(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	waitLocalAgent(ctx, t, r)
	for _, v := range []string{"1.4.0", "2.1.0"} {
		bin := filepath.Join(dir, "teststep-"+v)
		cmd := exec.Command("go", "build", "-o", bin, "-ldflags", "-X main.version="+v, "../../agent/pluginhost/testdata/teststep")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build teststep %s: %v\n%s", v, err, out)
		}
		f, err := os.Open(bin)
		if err != nil {
			t.Fatal(err)
		}
		_, err = r.client.PushPlugin(ctx, apiclient.PushPluginRequest{OS: runtime.GOOS, Arch: runtime.GOARCH, Binary: f,
			Description: apiclient.StepDescription{Name: "teststep", Version: v, Summary: "Behaves as its mode says, for tests.", Params: schema,
				Outputs: []apiclient.StepOutput{{Name: "pid"}, {Name: "version"}}}})
		f.Close()
		if err != nil {
			t.Fatalf("push %s: %v", v, err)
		}
	}
	putJob(ctx, t, r.client, "pinned", `
name: pinned
targets: {names: [local]}
steps:
  - {id: old, uses: teststep@1, with: {mode: noop}}
  - {id: new, uses: teststep@2, with: {mode: noop}, needs: [old]}
  - {id: newest, uses: teststep, with: {mode: noop}, needs: [new]}
`)
	run := waitRun(ctx, t, r.client, startRun(ctx, t, r.client, "pinned", nil).ID)
	for step, want := range map[string]string{"old": "1.4.0", "new": "2.1.0", "newest": "2.1.0"} {
		if got := stepOf(t, run, "local", step); got.Status != "succeeded" || got.Outputs["version"] != want {
			t.Errorf("step %s: %s, ran version %q, want %s (%s)", step, got.Status, got.Outputs["version"], want, got.Error)
		}
	}
}
