package server

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/opsconductor/opsconductor/controller/apiclient"
)

// TestDevServerRunsCommandsOnItsBuiltInAgent is the newcomer's path: a dev
// server enrols its own agent "local", and a command sent to it runs and
// streams back.
func TestDevServerRunsCommandsOnItsBuiltInAgent(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.Dev = true
	r := start(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	local := waitLocalAgent(ctx, t, r)
	at, err := r.client.RunCommand(ctx, local.ID, apiclient.CommandSpec{Shell: "echo hello from $(hostname) >/dev/null; echo hello"})
	if err != nil {
		t.Fatal(err)
	}
	poll(ctx, t, "the command to finish", func() error {
		got, err := r.client.GetAttempt(ctx, at.ID)
		if err == nil && got.Status != "succeeded" {
			err = fmt.Errorf("status %s (%s)", got.Status, got.Error)
		}
		return err
	})
	log, err := r.client.AttemptLog(ctx, at.ID, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(log.Items) != 1 || log.Items[0].Data != "hello\n" {
		t.Fatalf("log = %+v", log.Items)
	}
}

// poll retries fn every 50 ms until it succeeds or ctx ends.
func poll(ctx context.Context, t testing.TB, what string, fn func() error) {
	t.Helper()
	for {
		err := fn()
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestDevServerRunsItsExampleJob: the first thing a newcomer runs works.
func TestDevServerRunsItsExampleJob(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.Dev = true
	r := start(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	waitLocalAgent(ctx, t, r)
	poll(ctx, t, "the example job", func() error {
		_, err := r.client.GetJob(ctx, "hello", 0)
		return err
	})
	run := waitRun(ctx, t, r.client, startRun(ctx, t, r.client, "hello", map[string]any{"who": "newcomer"}).ID)
	if run.Status != "succeeded" {
		t.Fatalf("example run %s: %s", run.Status, stepStates(run))
	}
	logs, err := r.client.AllRunLogs(ctx, run.ID, apiclient.RunLogQuery{Step: "done"})
	if err != nil || len(logs) != 1 || !strings.HasPrefix(logs[0].Data, "greeted newcomer;") {
		t.Fatalf("done step's log = %+v, %v", logs, err)
	}
}
