package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	agentv1 "github.com/opsconductor/opsconductor/proto/agent/v1"
)

func TestMain(m *testing.M) {
	// As the agent does: orphans of killed groups come back to us.
	if err := BecomeSubreaper(); err != nil {
		fmt.Fprintln(os.Stderr, "subreaper:", err)
	}
	goleak.VerifyTestMain(m)
}

type collector struct {
	mu    sync.Mutex
	lines []Line
}

func (c *collector) emit(l Line) error {
	c.mu.Lock()
	c.lines = append(c.lines, l)
	c.mu.Unlock()
	return nil
}

// text is everything the command wrote to stream, rebuilt from the chunks.
func (c *collector) text(stream agentv1.OutputStream) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	for _, l := range c.lines {
		if l.Stream == stream {
			b.Write(l.Data)
		}
	}
	return b.String()
}

// numbered is "1\n2\n…n\n".
func numbered(n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		b.WriteString(strconv.Itoa(i) + "\n")
	}
	return b.String()
}

func (c *collector) checkSeq(t *testing.T) {
	t.Helper()
	for i, l := range c.lines {
		if l.Seq != uint64(i+1) {
			t.Fatalf("line %d has seq %d", i, l.Seq)
		}
		if l.Time.IsZero() {
			t.Fatalf("line %d has no time", i)
		}
	}
}

func TestRunStreamsTenThousandLinesInOrder(t *testing.T) {
	var c collector
	res := Run(context.Background(), Command{Argv: []string{"seq", "1", "10000"}}, c.emit)
	if res.Status != agentv1.AttemptStatus_ATTEMPT_STATUS_SUCCEEDED || res.ExitCode != 0 {
		t.Fatalf("result %+v", res)
	}
	if len(c.lines) == 0 || res.LastSeq != uint64(len(c.lines)) {
		t.Fatalf("got %d chunks, last seq %d", len(c.lines), res.LastSeq)
	}
	c.checkSeq(t)
	// Lines waiting together in the pipe travel together: every chunk is
	// whole lines, at most CoalesceMax, and nothing is lost or reordered.
	for i, l := range c.lines {
		if len(l.Data) > CoalesceMax || l.Data[len(l.Data)-1] != '\n' || l.Stream != agentv1.OutputStream_OUTPUT_STREAM_STDOUT {
			t.Fatalf("chunk %d: %d bytes on %v, ending %q", i, len(l.Data), l.Stream, l.Data[len(l.Data)-1:])
		}
	}
	if got := c.text(agentv1.OutputStream_OUTPUT_STREAM_STDOUT); got != numbered(10000) {
		t.Fatalf("the output does not rebuild exactly (%d bytes)", len(got))
	}
}

func TestStdoutAndStderrShareOneSequence(t *testing.T) {
	var c collector
	res := Run(context.Background(), Command{Shell: `for i in 1 2 3 4 5 6 7 8 9 10; do echo out$i; echo err$i >&2; done`}, c.emit)
	if res.Status != agentv1.AttemptStatus_ATTEMPT_STATUS_SUCCEEDED {
		t.Fatalf("result %+v", res)
	}
	c.checkSeq(t)
	var out, errs strings.Builder
	for i := 1; i <= 10; i++ {
		fmt.Fprintf(&out, "out%d\n", i)
		fmt.Fprintf(&errs, "err%d\n", i)
	}
	if got := c.text(agentv1.OutputStream_OUTPUT_STREAM_STDOUT); got != out.String() {
		t.Fatalf("stdout %q", got)
	}
	if got := c.text(agentv1.OutputStream_OUTPUT_STREAM_STDERR); got != errs.String() {
		t.Fatalf("stderr %q", got)
	}
}

func TestLongLinesAreSplit(t *testing.T) {
	var c collector
	Run(context.Background(), Command{Shell: `head -c 200000 /dev/zero | tr '\0' a; echo; echo short`}, c.emit)
	var sizes []int
	var all []byte
	for _, l := range c.lines {
		sizes = append(sizes, len(l.Data))
		all = append(all, l.Data...)
	}
	// Three MaxLine pieces, then the rest of the long line, with the short
	// line in the same chunk or (when the pipe delivered it later) the
	// next: which one depends on the scheduler, the split does not.
	rest := 200000 - 3*MaxLine + 1
	if fmt.Sprint(sizes) != fmt.Sprint([]int{MaxLine, MaxLine, MaxLine, rest + 6}) &&
		fmt.Sprint(sizes) != fmt.Sprint([]int{MaxLine, MaxLine, MaxLine, rest, 6}) {
		t.Fatalf("chunk sizes %v, want three of %d then the rest of the line (%d) and the short line (6)", sizes, MaxLine, rest)
	}
	if want := append(bytes.Repeat([]byte("a"), 200000), "\nshort\n"...); !bytes.Equal(all, want) {
		t.Fatal("the output does not rebuild exactly")
	}
}

func TestResults(t *testing.T) {
	cases := []struct {
		name     string
		cmd      Command
		status   agentv1.AttemptStatus
		exitCode int
	}{
		{"a failing command fails with its exit code", Command{Shell: "exit 3"}, agentv1.AttemptStatus_ATTEMPT_STATUS_FAILED, 3},
		{"a missing program is an error", Command{Argv: []string{"/nonexistent/program"}}, agentv1.AttemptStatus_ATTEMPT_STATUS_ERROR, -1},
		{"a missing working dir is an error", Command{Argv: []string{"true"}, Dir: "/nonexistent"}, agentv1.AttemptStatus_ATTEMPT_STATUS_ERROR, -1},
		{"no command is an error", Command{}, agentv1.AttemptStatus_ATTEMPT_STATUS_ERROR, -1},
		{"a command killed by a signal reports 128+n", Command{Shell: "kill -9 $$"}, agentv1.AttemptStatus_ATTEMPT_STATUS_FAILED, 137},
		{"a timeout ends the command", Command{Shell: "sleep 1000", Timeout: 100 * time.Millisecond}, agentv1.AttemptStatus_ATTEMPT_STATUS_TIMED_OUT, 128 + 15},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var col collector
			res := Run(context.Background(), c.cmd, col.emit)
			if res.Status != c.status || res.ExitCode != c.exitCode {
				t.Fatalf("result %+v, want %v exit %d", res, c.status, c.exitCode)
			}
			if res.Status == agentv1.AttemptStatus_ATTEMPT_STATUS_ERROR && res.Error == "" {
				t.Fatal("error status without a message")
			}
			if res.StartedAt.IsZero() || res.FinishedAt.Before(res.StartedAt) {
				t.Fatalf("times %v %v", res.StartedAt, res.FinishedAt)
			}
		})
	}
}

func TestEnvAndDir(t *testing.T) {
	var c collector
	dir := t.TempDir()
	res := Run(context.Background(), Command{Shell: `echo "$GREETING"; pwd`, Env: map[string]string{"GREETING": "hello"}, Dir: dir}, c.emit)
	real, _ := filepath.EvalSymlinks(dir)
	if out := c.text(agentv1.OutputStream_OUTPUT_STREAM_STDOUT); res.Status != agentv1.AttemptStatus_ATTEMPT_STATUS_SUCCEEDED || out != "hello\n"+real+"\n" {
		t.Fatalf("result %+v output %q", res, out)
	}
}

func TestCancelKillsTheProcessTree(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	var once sync.Once
	emit := func(Line) error { once.Do(func() { close(started) }); return nil }
	done := make(chan Result, 1)
	go func() {
		done <- Run(ctx, Command{Shell: `sleep 1000 & sleep 1000 & echo started; wait`}, emit)
	}()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("command did not start")
	}
	canceledAt := time.Now()
	cancel()
	var res Result
	select {
	case res = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if res.Status != agentv1.AttemptStatus_ATTEMPT_STATUS_CANCELED {
		t.Fatalf("result %+v", res)
	}
	// Every process of the group is gone (and reaped) within a second.
	for {
		err := syscall.Kill(-res.Pid, 0)
		if errors.Is(err, syscall.ESRCH) {
			break
		}
		if time.Since(canceledAt) > time.Second {
			t.Fatalf("process group %d still alive %v after cancel (kill: %v)", res.Pid, time.Since(canceledAt), err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestASlowConsumerSlowsTheCommand(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "finished")
	gate := make(chan struct{})
	var c collector
	emit := func(l Line) error {
		if l.Seq == 1 {
			<-gate
		}
		return c.emit(l)
	}
	done := make(chan Result, 1)
	// 100,000 lines is far more than a pipe holds: the command must wait.
	go func() {
		done <- Run(context.Background(), Command{Shell: `seq 1 100000 && touch ` + marker}, emit)
	}()
	time.Sleep(300 * time.Millisecond)
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the command finished while its output was not being consumed")
	}
	close(gate)
	res := <-done
	if res.Status != agentv1.AttemptStatus_ATTEMPT_STATUS_SUCCEEDED || c.text(agentv1.OutputStream_OUTPUT_STREAM_STDOUT) != numbered(100000) {
		t.Fatalf("result %+v, %d chunks", res, len(c.lines))
	}
	c.checkSeq(t)
	if _, err := os.Stat(marker); err != nil {
		t.Fatal("the command did not finish")
	}
}

func TestAFailingConsumerEndsTheCommand(t *testing.T) {
	emit := func(l Line) error {
		if l.Seq == 3 {
			return errors.New("outbox closed")
		}
		return nil
	}
	res := Run(context.Background(), Command{Shell: `while true; do echo x; done`}, emit)
	if res.Status != agentv1.AttemptStatus_ATTEMPT_STATUS_ERROR || res.LastSeq != 2 {
		t.Fatalf("result %+v", res)
	}
}

// A command that writes what the pipe and the reader's buffer hold and then
// exits, while the consumer is stalled for longer than drainTimeout, must
// still deliver every line: the drain timeout is for pipes held open by an
// escaped process, not a cap on a slow consumer. (The e2e failover test
// lost the tail of a 10,000-line output to this under the race detector.)
func TestAStalledConsumerLosesNoLinesAfterTheCommandExits(t *testing.T) {
	const lines = 5000 // about 55 KB: all of it fits in the pipe, so the command exits at once
	release := time.Now().Add(2*drainTimeout + 500*time.Millisecond)
	var c collector
	emit := func(l Line) error {
		if l.Seq == 1 {
			time.Sleep(time.Until(release)) // the slow consumer under test, not synchronisation
		}
		return c.emit(l)
	}
	res := Run(context.Background(), Command{Shell: `i=1; while [ $i -le 5000 ]; do printf 'line %05d\n' $i; i=$((i+1)); done`}, emit)
	got := strings.Count(c.text(agentv1.OutputStream_OUTPUT_STREAM_STDOUT), "\n")
	if res.Status != agentv1.AttemptStatus_ATTEMPT_STATUS_SUCCEEDED || got != lines || res.LastSeq != uint64(len(c.lines)) {
		t.Fatalf("result %+v with %d lines in %d chunks, want %d lines", res, got, len(c.lines), lines)
	}
	c.checkSeq(t)
}

// A process that leaves the group (setsid) keeps the pipes open after the
// command exits; Run must not wait for it beyond the idle drain timeout.
func TestAnEscapedProcessDoesNotHoldTheAttemptOpen(t *testing.T) {
	var c collector
	marker := filepath.Join(t.TempDir(), "escaped")
	start := time.Now()
	// The shell waits until the child has left the group, so that the
	// group kill after exit cannot catch it first.
	res := Run(context.Background(), Command{Shell: `setsid sh -c 'touch ` + marker + `; exec sleep 5' & while [ ! -e ` + marker + ` ]; do :; done; echo started`}, c.emit)
	if took := time.Since(start); took > 3*drainTimeout || took < drainTimeout {
		t.Fatalf("Run took %v with an escaped process holding the pipes, want about the %v drain timeout", took, drainTimeout)
	}
	if res.Status != agentv1.AttemptStatus_ATTEMPT_STATUS_SUCCEEDED || len(c.lines) != 1 || string(c.lines[0].Data) != "started\n" {
		t.Fatalf("result %+v, lines %+v", res, c.lines)
	}
}
