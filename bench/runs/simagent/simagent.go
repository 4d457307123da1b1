// Package simagent is simulated agents for the run benchmarks: agents
// enrolled with agent/enroll and connected with agent/session over real
// gRPC and mutual TLS, whose executor answers every noop assignment with
// a succeeded Result at once, from memory. It is for benchmarks only
// (bench/runs and controller/server's BenchmarkRunThroughput): it never
// runs a step.
package simagent

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/opsconductor/opsconductor/agent/enroll"
	"github.com/opsconductor/opsconductor/agent/session"
	"github.com/opsconductor/opsconductor/controller/apiclient"
	agentv1 "github.com/opsconductor/opsconductor/proto/agent/v1"
)

// Exec is a simulated agent's executor: it answers every noop
// assignment with a succeeded Result at once, from memory. It stands in
// for agent/executor, whose bbolt outbox fsyncs each event: a thousand of
// those in this process would measure this machine's disk and the
// driver, not the controller. Everything else on the wire is real: the
// session (agent/session) acknowledges the assignment, sends the Result,
// replays what was not acknowledged after a reconnect, and drops it on
// the controller's Ack.
type Exec struct {
	answered *atomic.Int64 // across all agents: Results produced
	refused  *atomic.Int64 // assignments of a kind other than noop
	times    *answerTimes

	mu      sync.Mutex
	results map[string]*agentv1.Result // not yet acknowledged by the controller
	order   []string                   // results' keys in arrival order
	changed chan struct{}              // closed and replaced when a Result is added
}

func newExec(answered, refused *atomic.Int64, times *answerTimes) *Exec {
	return &Exec{answered: answered, refused: refused, times: times, results: map[string]*agentv1.Result{}, changed: make(chan struct{})}
}

// answerTimes are the first and the last answer since a reset, in Unix
// nanoseconds (0: none yet).
type answerTimes struct {
	first, last atomic.Int64
}

func (t *answerTimes) note(now int64) {
	t.first.CompareAndSwap(0, now)
	for {
		l := t.last.Load()
		if l >= now || t.last.CompareAndSwap(l, now) {
			return
		}
	}
}

// Assign implements session.Executor. A repeated assignment (the
// controller resending after a reconnect) is acknowledged again and not
// run twice.
func (e *Exec) Assign(a *agentv1.Assignment, _ bool) *agentv1.AssignmentAck {
	id := a.GetAttemptId()
	if id == "" {
		return nil
	}
	ack := &agentv1.AssignmentAck{AttemptId: id}
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, dup := e.results[id]; dup {
		return ack
	}
	now := timestamppb.Now()
	res := &agentv1.Result{AttemptId: id, Status: agentv1.AttemptStatus_ATTEMPT_STATUS_SUCCEEDED, StartedAt: now, FinishedAt: now}
	if k := a.GetKind(); k != "noop" && k != "noop@1" {
		// The benchmark sends noop only; anything else is its mistake
		// and must not pass as a success.
		res.Status, res.ExitCode, res.Error = agentv1.AttemptStatus_ATTEMPT_STATUS_ERROR, -1, "simulated agent runs noop only, got "+k
		e.refused.Add(1)
	} else {
		e.answered.Add(1)
		e.times.note(time.Now().UnixNano())
	}
	e.results[id] = res
	e.order = append(e.order, id)
	close(e.changed)
	e.changed = make(chan struct{})
	return ack
}

// Cancel implements session.Executor: a noop has finished before any
// cancel can arrive.
func (e *Exec) Cancel(string) {}

// Ack implements session.Executor: an acknowledged Result leaves memory.
func (e *Exec) Ack(a *agentv1.Ack) {
	if !a.GetResult() {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	id := a.GetAttemptId()
	if _, ok := e.results[id]; !ok {
		return
	}
	delete(e.results, id)
	for i, o := range e.order {
		if o == id {
			e.order = append(e.order[:i], e.order[i+1:]...)
			break
		}
	}
}

// Running implements session.Executor: every Result not yet acknowledged.
func (e *Exec) Running() []*agentv1.RunningAttempt {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]*agentv1.RunningAttempt, len(e.order))
	for i, id := range e.order {
		out[i] = &agentv1.RunningAttempt{AttemptId: id, Finished: true}
	}
	return out
}

// Pending implements session.Executor: a noop has no output, only its
// Result.
func (e *Exec) Pending(id string, _ uint64, _ int) ([]*agentv1.LogChunk, *agentv1.Result) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return nil, e.results[id]
}

// Changed implements session.Executor.
func (e *Exec) Changed() <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.changed
}

// Fleet is the simulated agents: enrolled identities and their sessions.
type Fleet struct {
	ids      []*enroll.Identity
	sessions []*session.Session
	answered atomic.Int64
	refused  atomic.Int64
	times    answerTimes
	// Enrolled is how long the enrolment took.
	Enrolled time.Duration

	stop context.CancelFunc
	wg   sync.WaitGroup
}

// Answered counts the noop Results the fleet's agents produced.
func (f *Fleet) Answered() int64 { return f.answered.Load() }

// Refused counts assignments of a kind other than noop (answered with an
// error Result).
func (f *Fleet) Refused() int64 { return f.refused.Load() }

// ResetAnswerTimes forgets the first and last answer seen so far.
func (f *Fleet) ResetAnswerTimes() {
	f.times.first.Store(0)
	f.times.last.Store(0)
}

// AnswerTimes are the first and the last noop answered since
// ResetAnswerTimes (zero times if none was).
func (f *Fleet) AnswerTimes() (first, last time.Time) {
	unix := func(n int64) time.Time {
		if n == 0 {
			return time.Time{}
		}
		return time.Unix(0, n)
	}
	return unix(f.times.first.Load()), unix(f.times.last.Load())
}

// Size is the number of agents.
func (f *Fleet) Size() int { return len(f.ids) }

// maxTokenUses is the controller's cap on one join token's uses
// (agentrpc.MaxTokenUses).
const maxTokenUses = 1000

// Config says which agents to enrol.
type Config struct {
	// Admin creates the join tokens.
	Admin *apiclient.Client
	// Addrs are the controllers' agent listener addresses.
	Addrs []string
	// Dir holds one data dir per agent.
	Dir string
	// N agents, InFlight enrolments at a time.
	N, InFlight int
	// Name and Tags name and tag agent i.
	Name func(i int) string
	Tags func(i int) map[string]string
}

// Enrol enrols cfg.N agents with agent/enroll, InFlight joins at a time.
func Enrol(ctx context.Context, cfg Config) (*Fleet, error) {
	n := cfg.N
	tokens := make([]apiclient.CreatedJoinToken, (n+maxTokenUses-1)/maxTokenUses)
	for i := range tokens {
		jt, err := createJoinToken(ctx, cfg.Admin, apiclient.CreateJoinTokenRequest{TTL: "1h", MaxUses: min(maxTokenUses, n-i*maxTokenUses)})
		if err != nil {
			return nil, err
		}
		tokens[i] = jt
	}
	f := &Fleet{ids: make([]*enroll.Identity, n)}
	start := time.Now()
	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var workers sync.WaitGroup
	for range max(1, min(cfg.InFlight, n)) {
		workers.Go(func() {
			for wctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				d := filepath.Join(cfg.Dir, fmt.Sprintf("%05d", i))
				jt := tokens[i/maxTokenUses]
				_, err := enroll.Join(wctx, enroll.Options{Controllers: cfg.Addrs, Token: jt.Token, CAPin: jt.CAPin, DataDir: d,
					Name: cfg.Name(i), Tags: cfg.Tags(i), Version: version, Facts: staticFacts()})
				if err == nil {
					f.ids[i], err = enroll.LoadIdentity(d)
				}
				if err != nil {
					cancel(fmt.Errorf("enrol agent %d: %w", i, err))
					return
				}
			}
		})
	}
	workers.Wait()
	if err := context.Cause(wctx); err != nil {
		return nil, err
	}
	f.Enrolled = time.Since(start)
	return f, nil
}

// createJoinToken retries while a new leader has not made the agent CA
// yet (it does so just after it starts leading).
func createJoinToken(ctx context.Context, c *apiclient.Client, req apiclient.CreateJoinTokenRequest) (apiclient.CreatedJoinToken, error) {
	var jt apiclient.CreatedJoinToken
	err := pollUntil(ctx, func() error {
		var err error
		jt, err = c.CreateJoinToken(ctx, req)
		return err
	})
	if err != nil {
		return jt, fmt.Errorf("create a join token: %w", err)
	}
	return jt, nil
}

// Connect starts every agent's session, batch at a time, and waits until
// all are welcomed. Each batch is welcomed before the next starts: these
// agents share this machine's cores with the controller, and a thousand
// simultaneous TLS handshakes would measure the driver. The sessions run
// until Close.
func (f *Fleet) Connect(ctx context.Context, addrs []string, batch int, deadline time.Duration) error {
	sctx, stop := context.WithCancel(context.Background())
	f.stop = stop
	f.sessions = make([]*session.Session, len(f.ids))
	for i, id := range f.ids {
		s, err := session.New(session.Config{Identity: id, Controllers: addrs, Version: version, Facts: staticFacts,
			Executor: newExec(&f.answered, &f.refused, &f.times)})
		if err != nil {
			return fmt.Errorf("agent %d: %w", i, err)
		}
		f.sessions[i] = s
	}
	dctx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()
	for lo := 0; lo < len(f.sessions); lo += max(1, batch) {
		hi := min(lo+max(1, batch), len(f.sessions))
		for _, s := range f.sessions[lo:hi] {
			f.wg.Go(func() { _ = s.Run(sctx) })
		}
		if err := pollUntil(dctx, func() error {
			for i, s := range f.sessions[:hi] {
				if st := s.Status(); !st.Connected {
					return fmt.Errorf("agent %d not welcomed (last error: %s)", i, st.LastError)
				}
			}
			return nil
		}); err != nil {
			return fmt.Errorf("connect the agents: %w", err)
		}
	}
	return nil
}

// Close ends every session and waits for them.
func (f *Fleet) Close() {
	if f.stop != nil {
		f.stop()
	}
	f.wg.Wait()
}

const version = "bench-runs"

// staticFacts never change, so a reconnect commits nothing new.
var staticFacts = func() func() *agentv1.Facts {
	f := &agentv1.Facts{Hostname: "bench-runs", Os: "linux", Arch: "amd64", Cpus: 1, MemoryBytes: 1 << 30}
	return func() *agentv1.Facts { return f }
}()

// pollEvery bounds the timing error of waits that must poll.
const pollEvery = 20 * time.Millisecond

// pollUntil calls cond every pollEvery until it returns nil or ctx ends.
func pollUntil(ctx context.Context, cond func() error) error {
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	for {
		err := cond()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-t.C:
		}
	}
}
