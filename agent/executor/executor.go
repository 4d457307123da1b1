// Package executor runs the attempts the controller assigns to this agent:
// it validates an Assignment, records it in the outbox, runs it with the
// command runner in its own goroutine, masks secrets in every output
// chunk, and puts the chunks and the Result into the outbox, from which
// the session sends them.
//
// It owns the running attempts and nothing else: it never talks to the
// stream (the session does), never writes a secret to disk or to the log,
// and never runs an attempt it finds in the outbox after a restart — such
// an attempt ends with an error Result instead.
package executor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/opsconductor/opsconductor/agent/mask"
	"github.com/opsconductor/opsconductor/agent/outbox"
	"github.com/opsconductor/opsconductor/agent/runner"
	"github.com/opsconductor/opsconductor/plugins/sdk"
	agentv1 "github.com/opsconductor/opsconductor/proto/agent/v1"
)

// DefaultMaxConcurrent bounds the attempts running at once.
const DefaultMaxConcurrent = 32

// KindCommand is the command runner; other kinds are built-in steps
// ("http", "file@1") and plugins ("disk-usage@1").
const KindCommand = "command"

// RestartedError is the error of an attempt that was running when the
// agent stopped without finishing it.
const RestartedError = "agent restarted during the attempt"

// RunFunc runs one command; runner.Run is the real one.
type RunFunc func(ctx context.Context, c runner.Command, emit func(runner.Line) error) runner.Result

// Config configures an Executor.
type Config struct {
	Outbox        *outbox.Outbox
	Logger        *slog.Logger
	MaxConcurrent int
	// Run defaults to runner.Run. The fuzz target passes a stub that never
	// starts a process.
	Run RunFunc
	// Plugins runs external plugins (nil: plugin kinds are refused).
	// NotInstalled is the error its Run wraps for a plugin it does not
	// have, which Fetch (if set) then fetches and installs once.
	Plugins      Plugins
	NotInstalled error
	Fetch        FetchFunc
}

// Executor runs attempts. Create it with New; stop it with Shutdown or
// Close.
type Executor struct {
	cfg Config
	log *slog.Logger
	box *outbox.Outbox

	ctx       context.Context // ends on Close: output is no longer recorded
	cancelAll context.CancelFunc
	wg        sync.WaitGroup

	mu       sync.Mutex
	running  map[string]*attempt
	stopping bool // Shutdown or Close began: no new attempts
	closed   bool
	idle     chan struct{} // closed and replaced when an attempt ends
	acked    chan struct{} // closed and replaced after every Ack
}

type attempt struct {
	cancel   context.CancelFunc
	canceled bool // by a Cancel from the controller or Shutdown (guarded by Executor.mu)
}

// New makes an Executor over cfg.Outbox. Attempts the outbox holds
// without a Result were running when the agent stopped: each gets an
// error Result (RestartedError) now, and its recorded output stays for
// replay.
func New(cfg Config) (*Executor, error) {
	if cfg.Outbox == nil {
		return nil, errors.New("executor: no outbox")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = DefaultMaxConcurrent
	}
	if cfg.Run == nil {
		cfg.Run = runner.Run
	}
	as, err := cfg.Outbox.Attempts()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	for _, a := range as {
		if a.Finished {
			continue
		}
		cfg.Logger.Warn("an attempt was running when the agent stopped; reporting it as an error",
			"attempt_id", a.ID, "last_seq", a.LastSeq)
		r := &agentv1.Result{AttemptId: a.ID, Status: agentv1.AttemptStatus_ATTEMPT_STATUS_ERROR, ExitCode: -1,
			Error: RestartedError, LastSeq: a.LastSeq, FinishedAt: timestamppb.New(now)}
		if !a.Accepted.IsZero() {
			r.StartedAt = timestamppb.New(a.Accepted)
		}
		if err := cfg.Outbox.Finish(r); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Executor{cfg: cfg, log: cfg.Logger, box: cfg.Outbox, ctx: ctx, cancelAll: cancel,
		running: map[string]*attempt{}, idle: make(chan struct{}), acked: make(chan struct{})}, nil
}

// Assign takes an assignment off the stream. It returns the
// AssignmentAck to send, or nil when the assignment names no attempt (it
// cannot be acknowledged or reported). An assignment it cannot run —
// invalid, while draining, over the concurrency limit — is acknowledged
// and ends at once with an error Result. A repeated assignment (the
// controller did not see the ack) is acknowledged again, not rerun.
func (e *Executor) Assign(a *agentv1.Assignment, draining bool) *agentv1.AssignmentAck {
	id := a.GetAttemptId()
	if id == "" || len(id) > 256 {
		e.log.Warn("ignoring an assignment without a usable attempt ID")
		return nil
	}
	ack := &agentv1.AssignmentAck{AttemptId: id}
	e.mu.Lock()
	_, dup := e.running[id]
	e.mu.Unlock()
	if dup || e.box.Has(id) {
		e.log.Info("assignment received again; acknowledging it again", "attempt_id", id)
		return ack
	}
	// Never log params or secrets: they may carry credentials.
	log := e.log.With("attempt_id", id, "run_id", a.GetRunId(), "step_id", a.GetStepId())
	now := time.Now()
	if err := e.box.Accept(a, now); err != nil {
		log.Error("cannot record the assignment", "error", err)
		return nil // unacknowledged: the controller will time it out or resend
	}
	work, err := e.validate(a)
	e.mu.Lock()
	switch {
	case err != nil:
	case e.stopping:
		err = errors.New("agent is stopping")
	case draining:
		err = errors.New("agent is draining")
	case len(e.running) >= e.cfg.MaxConcurrent:
		err = fmt.Errorf("agent is at its limit of %d concurrent attempts", e.cfg.MaxConcurrent)
	}
	if err != nil {
		e.mu.Unlock()
		log.Warn("refusing assignment", "kind", a.GetKind(), "error", err)
		e.finish(log, &agentv1.Result{AttemptId: id, Status: agentv1.AttemptStatus_ATTEMPT_STATUS_ERROR, ExitCode: -1,
			Error: err.Error(), StartedAt: timestamppb.New(now), FinishedAt: timestamppb.New(time.Now())})
		return ack
	}
	ctx, cancel := context.WithCancel(e.ctx)
	at := &attempt{cancel: cancel}
	e.running[id] = at
	e.wg.Add(1)
	e.mu.Unlock()
	log.Info("running attempt", "kind", a.GetKind())
	go e.run(ctx, log, id, at, work, mask.New(a.GetSecrets()))
	return ack
}

// SecretEnv names the environment variable a command gets a secret in:
// "db.password" → OPSCONDUCTOR_SECRET_DB_PASSWORD.
func SecretEnv(name string) string {
	b := []byte("OPSCONDUCTOR_SECRET_")
	for _, r := range strings.ToUpper(name) {
		if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			b = append(b, byte(r))
		} else {
			b = append(b, '_')
		}
	}
	return string(b)
}

// work runs one accepted attempt, streaming its output through emit; it
// returns the step's own result for steps (nil for commands).
type work func(ctx context.Context, emit func(runner.Line) error) (runner.Result, *sdk.Result)

func (e *Executor) validate(a *agentv1.Assignment) (work, error) {
	var timeout time.Duration
	if t := a.GetTimeout(); t != nil {
		if err := t.CheckValid(); err != nil {
			return nil, fmt.Errorf("timeout: %w", err)
		}
		if t.AsDuration() <= 0 {
			return nil, errors.New("timeout: not positive")
		}
		timeout = t.AsDuration()
	}
	if a.GetKind() == KindCommand {
		cmd, err := runner.DecodeParams(a.GetParamsJson())
		if err != nil {
			return nil, err
		}
		cmd.Timeout = timeout
		// A command reads its credentials from the environment; the
		// masker hides them in what it prints.
		if len(a.GetSecrets()) > 0 {
			env := maps.Clone(cmd.Env)
			if env == nil {
				env = map[string]string{}
			}
			for k, v := range a.GetSecrets() {
				env[SecretEnv(k)] = v
			}
			cmd.Env = env
		}
		return func(ctx context.Context, emit func(runner.Line) error) (runner.Result, *sdk.Result) {
			return e.cfg.Run(ctx, cmd, emit), nil
		}, nil
	}
	k, err := parseKind(a.GetKind())
	if err != nil {
		return nil, err
	}
	if k.builtin == nil && e.cfg.Plugins == nil {
		return nil, fmt.Errorf("kind: %q is a plugin and this agent runs no external plugins", a.GetKind())
	}
	params := a.GetParamsJson()
	if string(bytes.TrimSpace(params)) == "null" {
		params = nil // no parameters: validated as {}
	}
	sr := stepRequest{timeout: timeout, req: sdk.Request{AttemptID: a.GetAttemptId(), Params: params,
		Secrets: a.GetSecrets()}}
	return func(ctx context.Context, emit func(runner.Line) error) (runner.Result, *sdk.Result) {
		return e.runStep(ctx, k, sr, emit)
	}, nil
}

func (e *Executor) run(ctx context.Context, log *slog.Logger, id string, at *attempt, do work, m *mask.Masker) {
	defer e.wg.Done()
	defer at.cancel()
	res, step := do(ctx, func(l runner.Line) error {
		// Blocks while the outbox is full: the step then blocks on its
		// output, and nothing is dropped. Steps' lines are masked already;
		// masking twice is harmless and keeps one path.
		return e.box.Put(ctx, &agentv1.LogChunk{AttemptId: id, Seq: l.Seq, Stream: l.Stream,
			Data: m.Mask(l.Data), Time: timestamppb.New(l.Time)})
	})
	e.mu.Lock()
	delete(e.running, id)
	canceled, closed := at.canceled, e.closed
	close(e.idle)
	e.idle = make(chan struct{})
	e.mu.Unlock()
	if closed {
		// Close stands for the agent dying: the next New reports it.
		return
	}
	if canceled && res.Status == agentv1.AttemptStatus_ATTEMPT_STATUS_ERROR {
		// A Put blocked on a full outbox saw the cancel before the runner did.
		res.Status, res.Error = agentv1.AttemptStatus_ATTEMPT_STATUS_CANCELED, "canceled"
	}
	log.Info("attempt finished", "status", res.Status, "exit_code", res.ExitCode, "last_seq", res.LastSeq)
	r := &agentv1.Result{AttemptId: id, Status: res.Status, ExitCode: int32(res.ExitCode),
		Error: string(m.Mask([]byte(res.Error))), LastSeq: res.LastSeq,
		StartedAt: timestamppb.New(res.StartedAt), FinishedAt: timestamppb.New(res.FinishedAt)}
	if step != nil {
		r.Changed = step.Changed
		if len(step.Outputs) > 0 {
			r.Outputs = make(map[string]string, len(step.Outputs))
			for k, v := range step.Outputs {
				r.Outputs[k] = string(m.Mask([]byte(v)))
			}
		}
	}
	e.finish(log, r)
}

func (e *Executor) finish(log *slog.Logger, r *agentv1.Result) {
	if err := e.box.Finish(r); err != nil {
		log.Error("cannot record the result", "error", err)
	}
}

// Cancel cancels a running attempt; it then ends with status canceled.
// Unknown or finished attempts are ignored.
func (e *Executor) Cancel(id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if at, ok := e.running[id]; ok {
		e.log.Info("canceling attempt", "attempt_id", id)
		at.canceled = true
		at.cancel()
	}
}

// Ack removes what the controller holds durably from the outbox.
func (e *Executor) Ack(a *agentv1.Ack) {
	if a.GetAttemptId() == "" {
		return
	}
	if err := e.box.Ack(a.GetAttemptId(), a.GetThroughSeq(), a.GetResult()); err != nil {
		e.log.Error("cannot apply an ack", "attempt_id", a.GetAttemptId(), "error", err)
	}
	e.mu.Lock()
	close(e.acked)
	e.acked = make(chan struct{})
	e.mu.Unlock()
}

// WaitAcked blocks until the controller has acknowledged everything the
// outbox holds, or ctx ends (what is left is replayed on the next start).
func (e *Executor) WaitAcked(ctx context.Context) error {
	for {
		e.mu.Lock()
		acked := e.acked
		e.mu.Unlock()
		as, err := e.box.Attempts()
		if err != nil {
			return err
		}
		if len(as) == 0 {
			return nil
		}
		select {
		case <-acked:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Running lists, for Hello, every attempt running or holding events the
// controller has not acknowledged.
func (e *Executor) Running() []*agentv1.RunningAttempt {
	as, err := e.box.Attempts()
	if err != nil {
		e.log.Error("cannot list the outbox", "error", err)
		return nil
	}
	out := make([]*agentv1.RunningAttempt, len(as))
	for i, a := range as {
		out[i] = &agentv1.RunningAttempt{AttemptId: a.ID, LastSeq: a.LastSeq, Finished: a.Finished}
	}
	return out
}

// Pending returns what the outbox holds for attempt after afterSeq (see
// outbox.Outbox.Pending).
func (e *Executor) Pending(id string, afterSeq uint64, limit int) ([]*agentv1.LogChunk, *agentv1.Result) {
	chunks, res, err := e.box.Pending(id, afterSeq, limit)
	if err != nil {
		e.log.Error("cannot read the outbox", "attempt_id", id, "error", err)
	}
	return chunks, res
}

// Changed fires after the outbox commits new events.
func (e *Executor) Changed() <-chan struct{} { return e.box.Changed() }

// RunningCount is the number of attempts running now.
func (e *Executor) RunningCount() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.running)
}

// Shutdown refuses new attempts, lets the running ones finish for up to
// grace, then cancels the rest and waits for their Results to be
// recorded.
func (e *Executor) Shutdown(grace time.Duration) {
	t := time.NewTimer(grace)
	defer t.Stop()
	for {
		e.mu.Lock()
		e.stopping = true
		n, idle := len(e.running), e.idle
		if n == 0 {
			e.mu.Unlock()
			break
		}
		e.mu.Unlock()
		select {
		case <-idle:
			continue
		case <-t.C:
		}
		e.mu.Lock()
		for id, at := range e.running {
			e.log.Warn("canceling attempt: the agent is stopping and the grace period is over", "attempt_id", id, "grace", grace)
			at.canceled = true
			at.cancel()
		}
		e.mu.Unlock()
		break
	}
	e.wg.Wait()
}

// Close kills every running attempt without recording its Result, as if
// the agent died (the next New reports them), and waits for them.
func (e *Executor) Close() {
	e.mu.Lock()
	e.stopping, e.closed = true, true
	e.mu.Unlock()
	e.cancelAll()
	e.wg.Wait()
}
