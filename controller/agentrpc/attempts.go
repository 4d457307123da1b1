package agentrpc

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"time"

	"github.com/opsconductor/opsconductor/controller/communication/notify"
	"github.com/opsconductor/opsconductor/controller/communication/tmpl"
	"github.com/opsconductor/opsconductor/controller/problem"
	"github.com/opsconductor/opsconductor/controller/state"
)

// Attempt statuses. pending → running → one of the final statuses; lost
// is decided by the controller when the agent went down first, and no
// later report from the agent changes it.
const (
	AttemptPending   = "pending"
	AttemptRunning   = "running"
	AttemptSucceeded = "succeeded"
	AttemptFailed    = "failed"
	AttemptTimedOut  = "timed_out"
	AttemptCanceled  = "canceled"
	AttemptError     = "error"
	AttemptLost      = "lost"
)

// finalAttempt reports whether status is decided.
func finalAttempt(status string) bool { return status != AttemptPending && status != AttemptRunning }

// LateResult is what an agent reported for an attempt already marked
// lost: recorded, never the outcome.
type LateResult struct {
	Status     string    `json:"status"`
	ExitCode   int       `json:"exit_code"`
	Error      string    `json:"error,omitempty"`
	LastSeq    uint64    `json:"last_seq"`
	ReportedAt time.Time `json:"reported_at"`
}

// Attempt is one execution of one piece of work on one agent. Params never
// hold secrets: they are stored in Raft and returned by the API.
type Attempt struct {
	ID         string          `json:"id"`
	AgentID    string          `json:"agent_id"`
	Kind       string          `json:"kind"`
	Params     json.RawMessage `json:"params"`
	Timeout    string          `json:"timeout"`
	Status     string          `json:"status"`
	CreatedAt  time.Time       `json:"created_at"`
	CreatedBy  string          `json:"created_by"`
	StartedAt  *time.Time      `json:"started_at,omitempty"`
	FinishedAt *time.Time      `json:"finished_at,omitempty"`
	ExitCode   *int            `json:"exit_code,omitempty"`
	Error      string          `json:"error,omitempty"`
	LastSeq    uint64          `json:"last_seq"`
	// Outputs and Changed are what a step reported (commands set none).
	Outputs    map[string]string `json:"outputs,omitempty"`
	Changed    bool              `json:"changed"`
	CancelAt   *time.Time        `json:"cancel_requested_at,omitempty"`
	Late       bool              `json:"late"`
	LateResult *LateResult       `json:"late_result,omitempty"`
	// Credentials names the credentials the attempt declared, by alias
	// (alias → credential name). Their values went to the agent in the
	// assignment only, never into the state.
	Credentials map[string]string `json:"credentials,omitempty"`
	// RunRef places an attempt made by the run engine in its run; it is
	// empty for attempts sent by hand.
	RunRef
}

// RunRef names the run, target and step an attempt belongs to, and which
// try of that step on that target it is (1 for the first).
type RunRef struct {
	RunID  string `json:"run_id,omitempty"`
	Target string `json:"target,omitempty"`
	Step   string `json:"step,omitempty"`
	Try    int    `json:"try,omitempty"`
}

// Hooks are told, after the commit, of changes another domain acts on:
// every change to an attempt that belongs to a run, and every agent that
// comes up. They run inside the FSM's Apply on every node, so they must
// not block; a nil hook is skipped.
type Hooks struct {
	Attempt func(a *Attempt)
	AgentUp func(agentID string)
	// Emit raises notification events (step failed, agent down or up)
	// inside the transaction that made them; nil raises none.
	Emit notify.Emitter
}

// hooks is Hooks as the apply functions use them.
type hooks Hooks

// changed tells the attempt hook about a once the transaction commits. a
// is the row as stored, which is never changed in place.
func (h hooks) changed(ctx *state.ApplyContext, a *Attempt) {
	if h.Attempt == nil || a.RunID == "" {
		return
	}
	ctx.Txn.AfterCommit(func() { h.Attempt(a) })
}

func (a *Attempt) clone() *Attempt {
	c := *a
	c.Params = append(json.RawMessage(nil), a.Params...)
	c.Outputs = maps.Clone(a.Outputs)
	c.Credentials = maps.Clone(a.Credentials)
	if a.LateResult != nil {
		l := *a.LateResult
		c.LateResult = &l
	}
	return &c
}

func getAttempt(txn reader, id string) (*Attempt, error) {
	raw, err := txn.First(tableAttempts, "id", id)
	if err != nil {
		return nil, fmt.Errorf("read attempt: %w", err)
	}
	if raw == nil {
		return nil, problem.NotFound("attempt", id)
	}
	return raw.(*Attempt), nil
}

// NewAttemptID returns a fresh attempt ID, for a caller that must know it
// before dispatch (to record a credential's use against it).
func NewAttemptID() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate attempt id: %w", err)
	}
	return "att_" + hex.EncodeToString(b), nil
}

type attemptCreatePayload struct {
	Attempt Attempt `json:"attempt"`
}

func (h hooks) applyAttemptCreate(ctx *state.ApplyContext, p attemptCreatePayload) (any, error) {
	if _, err := getAttempt(ctx.Txn, p.Attempt.ID); err == nil {
		return nil, problem.New(problem.KindConflict, "attempt_exists", "attempt %s already exists", p.Attempt.ID)
	}
	a := p.Attempt.clone()
	a.Status, a.CreatedAt = AttemptPending, ctx.Time
	if err := ctx.Txn.Insert(tableAttempts, a); err != nil {
		return nil, err
	}
	h.changed(ctx, a)
	return *a, nil
}

type attemptStartedPayload struct {
	ID string `json:"id"`
}

// applyAttemptStarted marks a pending attempt running; anything else is
// left alone (a replayed ack, or an attempt already lost).
func (h hooks) applyAttemptStarted(ctx *state.ApplyContext, p attemptStartedPayload) (any, error) {
	before, err := getAttempt(ctx.Txn, p.ID)
	if err != nil {
		return nil, err
	}
	if before.Status != AttemptPending {
		return *before, nil
	}
	a := before.clone()
	at := ctx.Time
	a.Status, a.StartedAt = AttemptRunning, &at
	if err := ctx.Txn.Insert(tableAttempts, a); err != nil {
		return nil, err
	}
	h.changed(ctx, a)
	return *a, nil
}

type attemptFinishedPayload struct {
	ID         string            `json:"id"`
	Status     string            `json:"status"`
	ExitCode   int               `json:"exit_code"`
	Error      string            `json:"error,omitempty"`
	LastSeq    uint64            `json:"last_seq"`
	StartedAt  *time.Time        `json:"started_at,omitempty"`
	FinishedAt *time.Time        `json:"finished_at,omitempty"`
	Outputs    map[string]string `json:"outputs,omitempty"`
	Changed    bool              `json:"changed,omitempty"`
}

type attemptFinishedResult struct {
	Attempt Attempt `json:"attempt"`
	// Committed is false for a duplicate result (nothing changed).
	Committed bool `json:"committed"`
}

// applyAttemptFinished records an agent's result once. A result for a
// lost attempt is kept as late and leaves the outcome alone; a second
// result for a decided attempt changes nothing.
func (h hooks) applyAttemptFinished(ctx *state.ApplyContext, p attemptFinishedPayload) (any, error) {
	before, err := getAttempt(ctx.Txn, p.ID)
	if err != nil {
		return nil, err
	}
	a := before.clone()
	switch {
	case before.Status == AttemptLost && !before.Late:
		a.Late = true
		a.LateResult = &LateResult{Status: p.Status, ExitCode: p.ExitCode, Error: p.Error, LastSeq: p.LastSeq, ReportedAt: ctx.Time}
	case finalAttempt(before.Status):
		return attemptFinishedResult{Attempt: *before}, nil
	default:
		code := p.ExitCode
		a.Status, a.ExitCode, a.Error, a.LastSeq = p.Status, &code, p.Error, p.LastSeq
		a.Outputs, a.Changed = maps.Clone(p.Outputs), p.Changed
		if p.StartedAt != nil && a.StartedAt == nil {
			t := *p.StartedAt
			a.StartedAt = &t
		}
		fin := ctx.Time
		if p.FinishedAt != nil {
			fin = *p.FinishedAt
		}
		a.FinishedAt = &fin
	}
	if err := ctx.Txn.Insert(tableAttempts, a); err != nil {
		return nil, err
	}
	h.changed(ctx, a)
	if !finalAttempt(before.Status) {
		if err := h.stepFailed(ctx, a); err != nil {
			return nil, err
		}
	}
	return attemptFinishedResult{Attempt: *a, Committed: true}, nil
}

type attemptsLostPayload struct {
	AgentIDs []string `json:"agent_ids"`
	Reason   string   `json:"reason"`
}

type attemptsLostResult struct {
	Lost []string `json:"lost"`
}

// applyAttemptsLost marks every pending or running attempt of the agents
// lost. The leader appends it to the entry that marks them down, so an
// agent is never down with an attempt still running.
func (h hooks) applyAttemptsLost(ctx *state.ApplyContext, p attemptsLostPayload) (any, error) {
	var res attemptsLostResult
	for _, agentID := range p.AgentIDs {
		lost, err := h.loseAttempts(ctx, agentID, p.Reason)
		if err != nil {
			return nil, err
		}
		res.Lost = append(res.Lost, lost...)
	}
	return res, nil
}

// openAttempts returns the agent's pending and running attempts.
func openAttempts(txn reader, agentID string) ([]*Attempt, error) {
	it, err := txn.Get(tableAttempts, "agent", agentID)
	if err != nil {
		return nil, fmt.Errorf("read attempts: %w", err)
	}
	var open []*Attempt
	for obj := it.Next(); obj != nil; obj = it.Next() {
		if a := obj.(*Attempt); !finalAttempt(a.Status) {
			open = append(open, a)
		}
	}
	return open, nil
}

// loseAttempts marks the agent's pending and running attempts lost.
func (h hooks) loseAttempts(ctx *state.ApplyContext, agentID, reason string) ([]string, error) {
	open, err := openAttempts(ctx.Txn, agentID)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, before := range open {
		a := before.clone()
		at := ctx.Time
		a.Status, a.FinishedAt, a.Error = AttemptLost, &at, reason
		if err := ctx.Txn.Insert(tableAttempts, a); err != nil {
			return nil, err
		}
		h.changed(ctx, a)
		if err := h.stepFailed(ctx, a); err != nil {
			return nil, err
		}
		ids = append(ids, a.ID)
	}
	return ids, nil
}

type attemptCancelPayload struct {
	ID string `json:"id"`
}

func (h hooks) applyAttemptCancel(ctx *state.ApplyContext, p attemptCancelPayload) (any, error) {
	before, err := getAttempt(ctx.Txn, p.ID)
	if err != nil {
		return nil, err
	}
	if finalAttempt(before.Status) {
		return nil, problem.New(problem.KindConflict, "attempt_finished", "attempt %s is already %s", p.ID, before.Status)
	}
	if before.CancelAt != nil {
		return *before, nil
	}
	a := before.clone()
	at := ctx.Time
	a.CancelAt = &at
	if err := ctx.Txn.Insert(tableAttempts, a); err != nil {
		return nil, err
	}
	h.changed(ctx, a)
	return *a, nil
}

type attemptsForgetPayload struct {
	RunIDs []string `json:"run_ids"`
}

// ForgetRunAttempts is the command that removes the decided attempts of
// runs whose record moved to the history store; the run engine appends it
// to the entry that removes the runs.
func ForgetRunAttempts(runIDs []string) (state.Command, error) {
	return state.NewCommand(cmdAttemptsForget, 1, attemptsForgetPayload{RunIDs: runIDs})
}

func applyAttemptsForget(ctx *state.ApplyContext, p attemptsForgetPayload) (any, error) {
	n := 0
	for _, id := range p.RunIDs {
		it, err := ctx.Txn.Get(tableAttempts, "run", id)
		if err != nil {
			return nil, fmt.Errorf("read attempts: %w", err)
		}
		var gone []*Attempt
		for obj := it.Next(); obj != nil; obj = it.Next() {
			if a := obj.(*Attempt); finalAttempt(a.Status) {
				gone = append(gone, a)
			}
		}
		for _, a := range gone {
			if err := ctx.Txn.Delete(tableAttempts, a); err != nil {
				return nil, err
			}
			n++
		}
	}
	return n, nil
}

// RunAttempts returns the attempts of one run, read from txn.
func RunAttempts(txn state.Reader, runID string) ([]*Attempt, error) {
	it, err := txn.Get(tableAttempts, "run", runID)
	if err != nil {
		return nil, fmt.Errorf("read run attempts: %w", err)
	}
	var out []*Attempt
	for obj := it.Next(); obj != nil; obj = it.Next() {
		out = append(out, obj.(*Attempt))
	}
	return out, nil
}

// IsFinal reports whether an attempt status is decided.
func IsFinal(status string) bool { return finalAttempt(status) }

// stepFailed raises step.failed for a run's attempt that has just failed
// or been lost.
func (h hooks) stepFailed(ctx *state.ApplyContext, a *Attempt) error {
	if h.Emit == nil || a.RunID == "" || (a.Status != AttemptFailed && a.Status != AttemptLost && a.Status != AttemptTimedOut) {
		return nil
	}
	step := &tmpl.Step{ID: a.Step, Target: a.Target, Status: a.Status, Error: a.Error}
	if a.ExitCode != nil {
		step.ExitCode = *a.ExitCode
	}
	e := tmpl.Event{Type: tmpl.EventStepFailed, Severity: tmpl.SeverityWarning,
		Summary: fmt.Sprintf("step %s %s on %s (run %s, try %d)", a.Step, a.Status, a.Target, a.RunID, a.Try),
		Run:     &tmpl.Run{ID: a.RunID, Status: "running"}, Step: step, Target: &tmpl.Target{Name: a.Target}}
	return h.Emit(ctx, e, notify.Match{Targets: []string{a.Target}})
}
