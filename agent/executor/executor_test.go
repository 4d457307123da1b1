package executor

import (
	"context"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/opsconductor/opsconductor/agent/outbox"
	"github.com/opsconductor/opsconductor/agent/runner"
	agentv1 "github.com/opsconductor/opsconductor/proto/agent/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// blockingRun stands in for runner.Run: it emits one line and waits for
// its context, counting the commands it was given.
type blockingRun struct{ calls atomic.Int32 }

func (b *blockingRun) run(ctx context.Context, _ runner.Command, emit func(runner.Line) error) runner.Result {
	b.calls.Add(1)
	start := time.Now()
	_ = emit(runner.Line{Seq: 1, Stream: agentv1.OutputStream_OUTPUT_STREAM_STDOUT, Data: []byte("x\n"), Time: start})
	<-ctx.Done()
	return runner.Result{Status: agentv1.AttemptStatus_ATTEMPT_STATUS_CANCELED, Error: "canceled", ExitCode: 143, LastSeq: 1,
		StartedAt: start, FinishedAt: time.Now()}
}

func newExec(t *testing.T, path string, max int, run RunFunc) (*Executor, *outbox.Outbox) {
	t.Helper()
	box, err := outbox.Open(path, outbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ex, err := New(Config{Outbox: box, MaxConcurrent: max, Run: run})
	if err != nil {
		t.Fatal(err)
	}
	return ex, box
}

func cmd(id string) *agentv1.Assignment {
	return &agentv1.Assignment{AttemptId: id, Kind: KindCommand, ParamsJson: []byte(`{"argv":["true"]}`)}
}

func result(t *testing.T, box *outbox.Outbox, id string) *agentv1.Result {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		ch := box.Changed()
		if _, r, err := box.Pending(id, 0, 100); err != nil {
			t.Fatal(err)
		} else if r != nil {
			return r
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("no result for %s", id)
		}
	}
}

func TestAssignmentsOverTheLimitAreRefusedAndRepeatsAreNotRerun(t *testing.T) {
	b := &blockingRun{}
	ex, box := newExec(t, filepath.Join(t.TempDir(), "outbox.db"), 2, b.run)
	defer box.Close()
	defer ex.Close()
	for _, id := range []string{"at-1", "at-2", "at-3"} {
		if ack := ex.Assign(cmd(id), false); ack.GetAttemptId() != id {
			t.Fatalf("ack %v for %s", ack, id)
		}
	}
	if r := result(t, box, "at-3"); r.GetStatus() != agentv1.AttemptStatus_ATTEMPT_STATUS_ERROR || !strings.Contains(r.GetError(), "limit of 2") {
		t.Fatalf("third attempt: %v", r)
	}
	if ack := ex.Assign(cmd("at-1"), false); ack.GetAttemptId() != "at-1" {
		t.Fatalf("repeat not acked: %v", ack)
	}
	if ex.Assign(&agentv1.Assignment{Kind: KindCommand}, false) != nil {
		t.Fatal("an assignment without an attempt ID was acked")
	}
	ex.Cancel("at-1")
	if r := result(t, box, "at-1"); r.GetStatus() != agentv1.AttemptStatus_ATTEMPT_STATUS_CANCELED {
		t.Fatalf("canceled attempt: %v", r)
	}
	// at-2 starts in its own goroutine, perhaps only now.
	deadline := time.Now().Add(10 * time.Second)
	for b.calls.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := b.calls.Load(); n != 2 {
		t.Fatalf("%d commands ran, want 2", n)
	}
}

func TestCloseActsAsADeathAndTheNextStartReportsIt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	b := &blockingRun{}
	ex, box := newExec(t, path, 0, b.run)
	ex.Assign(cmd("at-1"), false)
	deadline := time.Now().Add(10 * time.Second)
	for as, _ := box.Attempts(); len(as) == 0 || as[0].LastSeq != 1; as, _ = box.Attempts() {
		if time.Now().After(deadline) {
			t.Fatal("the line was never committed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	ex.Close()
	box.Close()

	ex, box = newExec(t, path, 0, b.run)
	defer box.Close()
	defer ex.Close()
	chunks, r, err := box.Pending("at-1", 0, 10)
	if err != nil || len(chunks) != 1 || r.GetError() != RestartedError || r.GetLastSeq() != 1 || r.GetStartedAt() == nil {
		t.Fatalf("after restart: %d chunks, result %v, %v", len(chunks), r, err)
	}
}

func TestShutdownCancelsWhatOutlivesTheGracePeriod(t *testing.T) {
	b := &blockingRun{}
	ex, box := newExec(t, filepath.Join(t.TempDir(), "outbox.db"), 0, b.run)
	defer box.Close()
	ex.Assign(cmd("at-1"), false)
	start := time.Now()
	ex.Shutdown(50 * time.Millisecond)
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Fatalf("Shutdown returned after %s, before the grace period", d)
	}
	if r := result(t, box, "at-1"); r.GetStatus() != agentv1.AttemptStatus_ATTEMPT_STATUS_CANCELED {
		t.Fatalf("result %v", r)
	}
	ex.Assign(cmd("at-2"), false)
	if r := result(t, box, "at-2"); r.GetError() != "agent is stopping" {
		t.Fatalf("after shutdown: %v", r)
	}
	ex.Close()
}
