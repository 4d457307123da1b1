// Package runner is the agent's built-in command step: it runs argv or a
// shell command in its own process group, streams the output as numbered
// lines, and kills the whole group on timeout or cancel.
//
// It owns the process group of each command and nothing else. It must
// never drop a line: when the consumer is slow, the pipes fill and the
// command blocks on its writes. A step's processes do not outlive it: once
// the command exits, whatever it left running in its group is killed (a
// step that starts a service should hand it to systemd, not background it).
package runner

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	agentv1 "github.com/opsconductor/opsconductor/proto/agent/v1"
)

// MaxLine is the longest chunk of output sent as one line; longer lines
// arrive as several chunks.
const MaxLine = 64 * 1024

// CoalesceMax bounds the whole lines, already waiting in the pipe's
// buffer, that one chunk carries.
const CoalesceMax = 32 * 1024

// KillGrace is how long a canceled or timed-out command has between SIGTERM
// and SIGKILL. A cancel must reach the processes within a second.
const KillGrace = 300 * time.Millisecond

// drainTimeout bounds how long Run keeps reading after the command and its
// group are gone while nothing arrives: a process that left the group
// (setsid) may still hold the pipes open, and Run must not wait for it.
// It is an idle timeout, never a cap on output: while output still flows,
// or a reader waits for the consumer (back-pressure), Run keeps reading,
// so no line the command wrote is ever dropped.
const drainTimeout = time.Second

// Command is one command step.
type Command struct {
	// Argv runs a program directly; Shell runs a command line with
	// /bin/sh -c. Exactly one is set.
	Argv  []string
	Shell string
	// Env is added to the agent's environment.
	Env map[string]string
	// Dir is the working directory (the agent's when empty).
	Dir string
	// Timeout ends the command with status timed out (none when 0).
	Timeout time.Duration
	// Credential runs the command as another user (nil: the agent's
	// own). Only an agent running as root can set it.
	Credential *syscall.Credential
}

// Line is one chunk of output: one or more whole lines that were waiting
// together in the pipe (at most CoalesceMax), or a MaxLine piece of a
// longer line. Data keeps its newlines, so that the output can be rebuilt
// exactly: a chunk without a final one is a piece of a long line or the
// unterminated end.
type Line struct {
	// Seq counts from 1 across stdout and stderr, without gaps.
	Seq    uint64
	Stream agentv1.OutputStream
	Data   []byte
	Time   time.Time
}

// Result is how a command ended.
type Result struct {
	Status agentv1.AttemptStatus
	// ExitCode is the command's exit status, 128+n when signal n killed
	// it, and -1 when it never ran.
	ExitCode int
	// Error explains a status other than succeeded or failed.
	Error string
	// LastSeq is the Seq of the last line emitted (0: no output).
	LastSeq    uint64
	Pid        int
	StartedAt  time.Time
	FinishedAt time.Time
}

// Run runs c and blocks until it has ended and every line of its output
// went to emit. emit is called from one goroutine at a time, in Seq order,
// and may block: the command then blocks on its output. If emit fails the
// command is killed and the status is error. Canceling ctx cancels the
// command (status canceled).
func Run(ctx context.Context, c Command, emit func(Line) error) Result {
	res := Result{ExitCode: -1, StartedAt: time.Now()}
	finish := func(st agentv1.AttemptStatus, msg string) Result {
		res.Status, res.Error, res.FinishedAt = st, msg, time.Now()
		return res
	}
	argv := c.Argv
	if c.Shell != "" {
		argv = []string{"/bin/sh", "-c", c.Shell}
	}
	if len(argv) == 0 || argv[0] == "" {
		return finish(agentv1.AttemptStatus_ATTEMPT_STATUS_ERROR, "no command given")
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = c.Dir
	cmd.Env = environ(c.Env)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: c.Credential}

	// Our own pipes, not cmd.StdoutPipe: output must be read to the end
	// even after Wait, and the read ends closed only by us.
	outR, outW, err := os.Pipe()
	if err != nil {
		return finish(agentv1.AttemptStatus_ATTEMPT_STATUS_ERROR, err.Error())
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return finish(agentv1.AttemptStatus_ATTEMPT_STATUS_ERROR, err.Error())
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	err = cmd.Start()
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return finish(agentv1.AttemptStatus_ATTEMPT_STATUS_ERROR, fmt.Sprintf("start %s: %v", argv[0], err))
	}
	res.Pid = cmd.Process.Pid
	pgid := cmd.Process.Pid

	// Readers split each pipe into chunks; one emitter numbers them, so
	// that stdout and stderr share one sequence.
	chunks := make(chan Line)
	var readers sync.WaitGroup
	readers.Add(2)
	pipes := [2]*pipeReader{{}, {}}
	go pipes[0].readLines(outR, agentv1.OutputStream_OUTPUT_STREAM_STDOUT, chunks, &readers)
	go pipes[1].readLines(errR, agentv1.OutputStream_OUTPUT_STREAM_STDERR, chunks, &readers)
	go func() { readers.Wait(); close(chunks) }()

	emitFailed := make(chan error, 1)
	emitted := make(chan uint64)
	go func() {
		var seq uint64
		var failed bool
		for l := range chunks {
			if failed {
				continue // keep draining so the readers finish
			}
			seq++
			l.Seq = seq
			if err := emit(l); err != nil {
				failed = true
				seq--
				emitFailed <- err
			}
		}
		emitted <- seq
	}()

	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()

	var timeout <-chan time.Time
	if c.Timeout > 0 {
		t := time.NewTimer(c.Timeout)
		defer t.Stop()
		timeout = t.C
	}
	status, msg := agentv1.AttemptStatus_ATTEMPT_STATUS_UNSPECIFIED, ""
	select {
	case <-exited:
	case <-ctx.Done():
		status, msg = agentv1.AttemptStatus_ATTEMPT_STATUS_CANCELED, "canceled"
		terminate(pgid, exited)
	case <-timeout:
		status, msg = agentv1.AttemptStatus_ATTEMPT_STATUS_TIMED_OUT, fmt.Sprintf("timed out after %s", c.Timeout)
		terminate(pgid, exited)
	case err := <-emitFailed:
		status, msg = agentv1.AttemptStatus_ATTEMPT_STATUS_ERROR, fmt.Sprintf("output: %v", err)
		terminate(pgid, exited)
	}
	<-exited
	// Whatever the command left in its group goes with it.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	reapGroup(pgid)

	drain(readerDone(&readers), pipes)
	outR.Close()
	errR.Close()
	res.LastSeq = <-emitted
	if status == agentv1.AttemptStatus_ATTEMPT_STATUS_UNSPECIFIED {
		select {
		case err := <-emitFailed:
			status, msg = agentv1.AttemptStatus_ATTEMPT_STATUS_ERROR, fmt.Sprintf("output: %v", err)
		default:
		}
	}
	res.ExitCode = exitCode(cmd.ProcessState)
	if status == agentv1.AttemptStatus_ATTEMPT_STATUS_UNSPECIFIED {
		status = agentv1.AttemptStatus_ATTEMPT_STATUS_SUCCEEDED
		if waitErr != nil || res.ExitCode != 0 {
			status = agentv1.AttemptStatus_ATTEMPT_STATUS_FAILED
		}
	}
	return finish(status, msg)
}

func readerDone(wg *sync.WaitGroup) <-chan struct{} {
	ch := make(chan struct{})
	go func() { wg.Wait(); close(ch) }()
	return ch
}

// terminate sends SIGTERM to the group, and SIGKILL after KillGrace unless
// the command exited first (its leftovers are killed after Wait anyway).
func terminate(pgid int, exited <-chan struct{}) {
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	t := time.NewTimer(KillGrace)
	defer t.Stop()
	select {
	case <-exited:
	case <-t.C:
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	}
}

// reapGroup collects the group's processes that were re-parented to this
// process (see BecomeSubreaper), so that they do not linger as zombies.
// It gives up after a short while: processes that are not our children
// are reaped by their own parents.
func reapGroup(pgid int) {
	deadline := time.Now().Add(500 * time.Millisecond)
	for time.Now().Before(deadline) {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-pgid, &ws, syscall.WNOHANG, nil)
		switch {
		case errors.Is(err, syscall.EINTR):
		case err != nil: // ECHILD: none of our children is left in the group
			return
		case pid == 0:
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// pipeReader reads one output pipe and says, for drain, whether it is
// waiting on the pipe (rather than on the consumer) and how much it read.
type pipeReader struct {
	waiting atomic.Bool   // blocked reading the pipe, or finished
	reads   atomic.Uint64 // reads that returned data
}

func (p *pipeReader) readLines(r io.Reader, stream agentv1.OutputStream, out chan<- Line, wg *sync.WaitGroup) {
	defer wg.Done()
	defer p.waiting.Store(true)
	br := bufio.NewReaderSize(r, MaxLine)
	for {
		p.waiting.Store(true)
		b, err := br.ReadSlice('\n')
		p.waiting.Store(false)
		if len(b) > 0 {
			p.reads.Add(1)
			data := append([]byte(nil), b...)
			// Whole lines already read from the pipe go out together,
			// up to CoalesceMax: a command printing as fast as it can
			// then costs one chunk per buffer rather than per line, and
			// one printing now and then still has each line sent alone
			// and at once.
			for err == nil && len(data) < CoalesceMax && br.Buffered() > 0 {
				peek, _ := br.Peek(br.Buffered())
				i := bytes.IndexByte(peek, '\n')
				if i < 0 || len(data)+i+1 > CoalesceMax {
					break
				}
				next, _ := br.ReadSlice('\n') // buffered: does not block
				data = append(data, next...)
			}
			out <- Line{Stream: stream, Data: data, Time: time.Now()}
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

// drain waits for the readers to reach the end of their pipes, giving up
// only after a whole drainTimeout in which both sat waiting on their pipes
// and nothing arrived: then some process outside the group holds them.
func drain(done <-chan struct{}, pipes [2]*pipeReader) {
	total := func() uint64 { return pipes[0].reads.Load() + pipes[1].reads.Load() }
	last := total()
	t := time.NewTicker(drainTimeout)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		now := total()
		if now == last && pipes[0].waiting.Load() && pipes[1].waiting.Load() {
			return
		}
		last = now
	}
}

func environ(extra map[string]string) []string {
	env := os.Environ()
	keys := make([]string, 0, len(extra))
	for k := range extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+extra[k]) // later entries win in os/exec
	}
	return env
}

func exitCode(ps *os.ProcessState) int {
	if ps == nil {
		return -1
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}
