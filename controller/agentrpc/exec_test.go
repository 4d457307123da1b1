package agentrpc

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/opsconductor/opsconductor/controller/history"
	"github.com/opsconductor/opsconductor/controller/history/embedded"
	"github.com/opsconductor/opsconductor/controller/problem"
	"github.com/opsconductor/opsconductor/plugins/builtin"
	"github.com/opsconductor/opsconductor/plugins/sdk"
	agentv1 "github.com/opsconductor/opsconductor/proto/agent/v1"
)

// execEnv is an env whose service writes attempt output to a real
// embedded history store in t.TempDir().
type execEnv struct {
	*env
	hist *embedded.Store
}

func newExecEnv(t *testing.T, mut func(*Config)) *execEnv {
	t.Helper()
	st, err := embedded.Open(filepath.Join(t.TempDir(), "history.db"), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	w := history.NewWriter(st, history.WriterConfig{Logger: slog.New(slog.DiscardHandler)})
	// Registered first, so run last: after the service has stopped.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := w.Close(ctx); err != nil {
			t.Errorf("close writer: %v", err)
		}
		st.Close()
	})
	e := newEnvDeps(t, mut, nil, func(d *Deps) { d.History, d.HistoryReader = w, st })
	return &execEnv{env: e, hist: st}
}

// execAgent is a test agent whose messages from the controller are read
// by one goroutine into msgs.
type execAgent struct {
	*testAgent
	msgs chan *agentv1.ControllerMessage
}

func (a *testAgent) receive() *execAgent {
	ea := &execAgent{testAgent: a, msgs: make(chan *agentv1.ControllerMessage, 100_000)}
	go func() {
		defer close(ea.msgs)
		for {
			m, err := a.stream.Recv()
			if err != nil {
				return
			}
			ea.msgs <- m
		}
	}()
	return ea
}

// next returns the first message that matches, skipping the others.
func (a *execAgent) next(t *testing.T, what string, match func(*agentv1.ControllerMessage) bool) *agentv1.ControllerMessage {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case m, ok := <-a.msgs:
			if !ok {
				t.Fatalf("stream ended waiting for %s", what)
			}
			if match(m) {
				return m
			}
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func (a *execAgent) ackThrough(t *testing.T, id string, seq uint64) {
	t.Helper()
	a.next(t, fmt.Sprintf("ack through %d", seq), func(m *agentv1.ControllerMessage) bool {
		return m.GetAck().GetAttemptId() == id && !m.GetAck().GetResult() && m.GetAck().GetThroughSeq() >= seq
	})
}

func (a *execAgent) resultAck(t *testing.T, id string) *agentv1.Ack {
	t.Helper()
	return a.next(t, "the result's ack", func(m *agentv1.ControllerMessage) bool {
		return m.GetAck().GetAttemptId() == id && m.GetAck().GetResult()
	}).GetAck()
}

func chunk(id string, seq uint64) *agentv1.AgentMessage {
	st := agentv1.OutputStream_OUTPUT_STREAM_STDOUT
	if seq%100 == 0 {
		st = agentv1.OutputStream_OUTPUT_STREAM_STDERR
	}
	return &agentv1.AgentMessage{Msg: &agentv1.AgentMessage_Log{Log: &agentv1.LogChunk{AttemptId: id, Seq: seq, Stream: st,
		Data: fmt.Appendf(nil, "line %d\n", seq), Time: timestamppb.Now()}}}
}

func result(id string, st agentv1.AttemptStatus, code int32, last uint64) *agentv1.AgentMessage {
	return &agentv1.AgentMessage{Msg: &agentv1.AgentMessage_Result{Result: &agentv1.Result{AttemptId: id, Status: st, ExitCode: code,
		LastSeq: last, StartedAt: timestamppb.Now(), FinishedAt: timestamppb.Now()}}}
}

func assignmentAck(id string) *agentv1.AgentMessage {
	return &agentv1.AgentMessage{Msg: &agentv1.AgentMessage_AssignmentAck{AssignmentAck: &agentv1.AssignmentAck{AttemptId: id}}}
}

// dispatch runs a command on the agent, checks the assignment and
// acknowledges it, and returns the attempt once it is running.
func (e *execEnv) dispatch(t *testing.T, a *execAgent) Attempt {
	t.Helper()
	att, err := e.svc.RunCommand(context.Background(), a.id, CommandSpec{Argv: []string{"seq", "10000"}, Env: map[string]string{"A": "1"}, Timeout: "30s"}, "admin")
	if err != nil {
		t.Fatal(err)
	}
	m := a.next(t, "the assignment", func(m *agentv1.ControllerMessage) bool { return m.GetAssignment() != nil })
	as := m.GetAssignment()
	var p map[string]any
	if err := json.Unmarshal(as.GetParamsJson(), &p); err != nil {
		t.Fatal(err)
	}
	if as.GetAttemptId() != att.ID || as.GetKind() != KindCommand || as.GetTimeout().AsDuration() != 30*time.Second ||
		fmt.Sprint(p["argv"]) != "[seq 10000]" || fmt.Sprint(p["env"]) != "map[A:1]" {
		t.Fatalf("assignment = %v, params %v", as, p)
	}
	a.send(t, assignmentAck(att.ID))
	waitFor(t, "the attempt to run", func() bool { return e.attempt(t, att.ID).Status == AttemptRunning })
	return att
}

func (e *execEnv) attempt(t *testing.T, id string) Attempt {
	t.Helper()
	a, err := e.svc.GetAttempt(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// stored checks that the attempt's log holds exactly seqs 1..n in order.
func (e *execEnv) stored(t *testing.T, id string, n int) {
	t.Helper()
	recs, err := e.hist.Read(context.Background(), LogStream(id), 0, history.MaxSeq, history.MaxPage)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != n {
		t.Fatalf("stored %d records, want %d", len(recs), n)
	}
	for i, r := range recs {
		want := fmt.Sprintf("line %d\n", i+1)
		if r.Seq != uint64(i+1) || string(r.Data) != want || r.Kind != LogKind || r.Fields["agent_id"] == "" {
			t.Fatalf("record %d = seq %d %q %v, want seq %d %q", i, r.Seq, r.Data, r.Fields, i+1, want)
		}
	}
}

func TestACommandsOutputIsDurableOnceAndInOrderBeforeItIsAcked(t *testing.T) {
	e := newExecEnv(t, nil)
	ta, _ := e.connectAgent(t, "web01")
	a := ta.receive()
	att := e.dispatch(t, a)

	const n = 10_000
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		for seq := uint64(1); seq <= n; seq++ {
			if err := a.stream.Send(chunk(att.ID, seq)); err != nil {
				return
			}
		}
		_ = a.stream.Send(result(att.ID, agentv1.AttemptStatus_ATTEMPT_STATUS_SUCCEEDED, 0, n))
	}()
	var last uint64
	acks := 0
	for {
		m := a.next(t, "acks", func(m *agentv1.ControllerMessage) bool { return m.GetAck().GetAttemptId() == att.ID })
		ack := m.GetAck()
		if ack.GetResult() {
			if ack.GetThroughSeq() != n {
				t.Fatalf("result ack through %d, want %d", ack.GetThroughSeq(), n)
			}
			break
		}
		if ack.GetThroughSeq() < last {
			t.Fatalf("acks went back from %d to %d", last, ack.GetThroughSeq())
		}
		last = ack.GetThroughSeq()
		acks++
	}
	<-sent
	if last != n || acks < 2 {
		t.Fatalf("log acks reached %d in %d acks, want %d in several", last, acks, n)
	}
	e.stored(t, att.ID, n)
	got := e.attempt(t, att.ID)
	if got.Status != AttemptSucceeded || got.ExitCode == nil || *got.ExitCode != 0 || got.LastSeq != n || got.FinishedAt == nil || got.Late {
		t.Fatalf("attempt = %+v", got)
	}
	page, err := e.svc.AttemptLog(context.Background(), att.ID, 99, 2)
	if err != nil || len(page.Items) != 2 || page.Items[0].Seq != 100 || page.Items[0].Stream != "stderr" ||
		page.Items[1].Data != "line 101\n" || page.Items[1].Stream != "stdout" || page.Next != 101 {
		t.Fatalf("log page = %+v, %v", page, err)
	}
}

func TestReplayedChunksAfterAReconnectAreStoredOnceAndAckedAgain(t *testing.T) {
	e := newExecEnv(t, nil)
	ta, cert := e.connectAgent(t, "web01")
	a := ta.receive()
	att := e.dispatch(t, a)
	for seq := uint64(1); seq <= 100; seq++ {
		a.send(t, chunk(att.ID, seq))
	}
	a.ackThrough(t, att.ID, 100)
	a.cancel()

	// The agent reconnects holding the attempt: it hears first what is
	// durable, then replays its whole outbox and more.
	b := e.open(t, ta.id, cert)
	hello := helloFrom(ta.id)
	hello.GetHello().Running = []*agentv1.RunningAttempt{{AttemptId: att.ID, LastSeq: 150}}
	b.send(t, hello)
	rb := b.receive()
	rb.next(t, "welcome", func(m *agentv1.ControllerMessage) bool { return m.GetWelcome() != nil })
	if ack := rb.next(t, "the resume ack", func(m *agentv1.ControllerMessage) bool { return m.GetAck() != nil }).GetAck(); ack.GetThroughSeq() != 100 {
		t.Fatalf("resume ack = %v, want through 100", ack)
	}
	for seq := uint64(1); seq <= 150; seq++ {
		b.send(t, chunk(att.ID, seq))
	}
	rb.ackThrough(t, att.ID, 150)
	b.send(t, result(att.ID, agentv1.AttemptStatus_ATTEMPT_STATUS_FAILED, 3, 150))
	rb.resultAck(t, att.ID)
	// A replayed result is acked again and committed once.
	b.send(t, result(att.ID, agentv1.AttemptStatus_ATTEMPT_STATUS_FAILED, 3, 150))
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(e.logs.String())
		}
	})
	rb.resultAck(t, att.ID)
	e.stored(t, att.ID, 150)
	got := e.attempt(t, att.ID)
	if got.Status != AttemptFailed || *got.ExitCode != 3 {
		t.Fatalf("attempt = %+v", got)
	}
	finished := e.applier.Applied(cmdAttemptFinished)
	if finished != 1 {
		t.Fatalf("%d finished commands, want 1", finished)
	}
}

func TestAResultIsAckedOnlyOnceItsChunksAreDurable(t *testing.T) {
	e := newExecEnv(t, nil)
	ta, _ := e.connectAgent(t, "web01")
	a := ta.receive()
	att := e.dispatch(t, a)
	for seq := uint64(1); seq <= 5; seq++ {
		a.send(t, chunk(att.ID, seq))
	}
	a.send(t, result(att.ID, agentv1.AttemptStatus_ATTEMPT_STATUS_SUCCEEDED, 0, 8))
	// Chunk 6 is handled after the result: once it is acked the result
	// has been seen, and it must still wait for 7 and 8.
	a.send(t, chunk(att.ID, 6))
	for {
		ack := a.next(t, "ack through 6", func(m *agentv1.ControllerMessage) bool { return m.GetAck() != nil }).GetAck()
		if ack.GetResult() {
			t.Fatalf("result acked before its chunks: %v", ack)
		}
		if ack.GetThroughSeq() >= 6 {
			break
		}
	}
	if got := e.attempt(t, att.ID); got.Status != AttemptRunning {
		t.Fatalf("attempt %s before its last chunks were durable", got.Status)
	}
	a.send(t, chunk(att.ID, 8))
	a.send(t, chunk(att.ID, 7))
	ack := a.resultAck(t, att.ID)
	if ack.GetThroughSeq() != 8 {
		t.Fatalf("result ack = %v", ack)
	}
	e.stored(t, att.ID, 8)
	if got := e.attempt(t, att.ID); got.Status != AttemptSucceeded {
		t.Fatalf("attempt = %+v", got)
	}
}

func TestAnAgentGoingDownLosesItsAttemptsAndALateResultDoesNotChangeThat(t *testing.T) {
	e := newExecEnv(t, func(c *Config) { c.HeartbeatInterval, c.MinLease = 20*time.Millisecond, 300*time.Millisecond })
	ta, cert := e.connectAgent(t, "web01")
	a := ta.receive()
	att := e.dispatch(t, a)
	a.send(t, chunk(att.ID, 1))
	a.ackThrough(t, att.ID, 1)
	a.cancel()
	waitFor(t, "the attempt to be lost", func() bool { return e.attempt(t, att.ID).Status == AttemptLost })
	if ag := e.agent(t, ta.id); ag.Status != StatusDown {
		t.Fatalf("agent %s, want down", ag.Status)
	}

	b := e.open(t, ta.id, cert)
	b.hello(t)
	rb := b.receive()
	b.send(t, chunk(att.ID, 2))
	b.send(t, result(att.ID, agentv1.AttemptStatus_ATTEMPT_STATUS_SUCCEEDED, 0, 2))
	rb.resultAck(t, att.ID)
	got := e.attempt(t, att.ID)
	if got.Status != AttemptLost || !got.Late || got.LateResult == nil || got.LateResult.Status != AttemptSucceeded || got.ExitCode != nil {
		t.Fatalf("attempt = %+v, late %+v", got, got.LateResult)
	}
	e.stored(t, att.ID, 2)
}

func TestCancelReachesTheAgent(t *testing.T) {
	e := newExecEnv(t, nil)
	ta, _ := e.connectAgent(t, "web01")
	a := ta.receive()
	att := e.dispatch(t, a)
	got, err := e.svc.CancelAttempt(context.Background(), att.ID)
	if err != nil || got.CancelAt == nil {
		t.Fatalf("cancel = %+v, %v", got, err)
	}
	a.next(t, "the cancel", func(m *agentv1.ControllerMessage) bool { return m.GetCancel().GetAttemptId() == att.ID })
	a.send(t, result(att.ID, agentv1.AttemptStatus_ATTEMPT_STATUS_CANCELED, -1, 0))
	a.resultAck(t, att.ID)
	if got := e.attempt(t, att.ID); got.Status != AttemptCanceled {
		t.Fatalf("attempt = %+v", got)
	}
	_, err = e.svc.CancelAttempt(context.Background(), att.ID)
	if p, ok := problem.As(err); !ok || p.Code != "attempt_finished" {
		t.Fatalf("cancel of a finished attempt: %v", err)
	}
}

func TestDispatchIsRefusedWithoutALiveStreamOrWhileDraining(t *testing.T) {
	e := newExecEnv(t, nil)
	ctx := context.Background()
	idle, _ := e.enrolled(t, "idle")
	ta, _ := e.connectAgent(t, "busy")
	a := ta.receive()
	if _, err := e.svc.DrainAgent(ctx, ta.id, true); err != nil {
		t.Fatal(err)
	}
	a.next(t, "drain", func(m *agentv1.ControllerMessage) bool { return m.GetDrain().GetDraining() })
	spec := CommandSpec{Shell: "true"}
	for _, tc := range []struct {
		name, agent, code string
		spec              CommandSpec
	}{
		{"an agent without a stream is refused", idle, "agent_not_connected", spec},
		{"a draining agent is refused", ta.id, "agent_draining", spec},
		{"argv and shell together are refused", ta.id, "invalid", CommandSpec{Argv: []string{"true"}, Shell: "true"}},
		{"neither argv nor shell is refused", ta.id, "invalid", CommandSpec{}},
		{"a bad timeout is refused", ta.id, "invalid", CommandSpec{Shell: "true", Timeout: "soon"}},
		{"an unknown agent is not found", "agt_nope", "not_found", spec},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.svc.RunCommand(ctx, tc.agent, tc.spec, "admin")
			p, ok := problem.As(err)
			if !ok || (p.Code != tc.code && string(p.Kind) != tc.code) {
				t.Fatalf("error = %v, want %s", err, tc.code)
			}
		})
	}
	if e.applier.Applied(cmdAttemptCreate) != 0 {
		t.Fatal("a refused dispatch created an attempt")
	}
}

func TestRevokingAnAgentLosesItsAttempts(t *testing.T) {
	e := newExecEnv(t, nil)
	ta, _ := e.connectAgent(t, "web01")
	a := ta.receive()
	att := e.dispatch(t, a)
	if _, err := e.svc.RevokeAgent(context.Background(), ta.id); err != nil {
		t.Fatal(err)
	}
	if got := e.attempt(t, att.ID); got.Status != AttemptLost || got.Error != "the agent was revoked" {
		t.Fatalf("attempt = %+v", got)
	}
}

func TestAFollowerRefusesToDispatchOrCancel(t *testing.T) {
	lead := newFakeLeadership(false)
	e := newEnvDeps(t, nil, lead, func(d *Deps) { d.History, d.HistoryReader = noopHistory{}, noopHistory{} })
	id, _ := e.enrolled(t, "web01")
	_, err := e.svc.RunCommand(context.Background(), id, CommandSpec{Shell: "true"}, "admin")
	if p, ok := problem.As(err); !ok || p.Code != "not_leader" {
		t.Fatalf("dispatch on a follower: %v", err)
	}
	_, err = e.svc.CancelAttempt(context.Background(), "att_0000000000000000")
	if p, ok := problem.As(err); !ok || p.Code != "not_leader" {
		t.Fatalf("cancel on a follower: %v", err)
	}
}

type noopHistory struct{}

func (noopHistory) Submit(context.Context, []history.Record) (*history.Ticket, error) {
	return nil, nil
}
func (noopHistory) Read(context.Context, string, uint64, uint64, int) ([]history.Record, error) {
	return nil, nil
}
func (noopHistory) Tail(context.Context, string, int) ([]history.Record, error) { return nil, nil }
func (noopHistory) Barrier() *history.Ticket                                    { return nil }

// An agent's stream can end with an assignment or a cancel on the wire,
// and an agent can crash before recording an assignment it acknowledged:
// its next hello is reconciled with its open attempts.
func TestAReconnectingAgentIsToldWhatItMissed(t *testing.T) {
	tests := []struct {
		name string
		// prepare leaves the attempt in the state under test on the first
		// stream and says whether the agent's hello names it.
		prepare func(t *testing.T, e *execEnv, a *execAgent) (att Attempt, held bool)
		check   func(t *testing.T, e *execEnv, b *execAgent, att Attempt)
	}{
		{
			name: "a pending assignment the agent never acknowledged is sent again",
			prepare: func(t *testing.T, e *execEnv, a *execAgent) (Attempt, bool) {
				att, err := e.svc.RunCommand(context.Background(), a.id, CommandSpec{Argv: []string{"true"}, Timeout: "30s"}, "admin")
				if err != nil {
					t.Fatal(err)
				}
				a.next(t, "the assignment", func(m *agentv1.ControllerMessage) bool { return m.GetAssignment() != nil })
				return att, false
			},
			check: func(t *testing.T, e *execEnv, b *execAgent, att Attempt) {
				as := b.next(t, "the assignment again", func(m *agentv1.ControllerMessage) bool { return m.GetAssignment() != nil }).GetAssignment()
				if as.GetAttemptId() != att.ID || as.GetKind() != KindCommand || as.GetTimeout().AsDuration() != 30*time.Second {
					t.Fatalf("resent assignment = %v", as)
				}
				b.send(t, assignmentAck(att.ID))
				b.send(t, result(att.ID, agentv1.AttemptStatus_ATTEMPT_STATUS_SUCCEEDED, 0, 0))
				b.resultAck(t, att.ID)
				if got := e.attempt(t, att.ID); got.Status != AttemptSucceeded {
					t.Fatalf("attempt = %+v", got)
				}
			},
		},
		{
			name: "a running attempt the agent no longer knows ends as an error at once",
			prepare: func(t *testing.T, e *execEnv, a *execAgent) (Attempt, bool) {
				return e.dispatch(t, a), false
			},
			check: func(t *testing.T, e *execEnv, b *execAgent, att Attempt) {
				waitFor(t, "the attempt to end", func() bool { return e.attempt(t, att.ID).Status == AttemptError })
				if got := e.attempt(t, att.ID); got.Error == "" || *got.ExitCode != -1 {
					t.Fatalf("attempt = %+v", got)
				}
			},
		},
		{
			name: "a cancel requested while the agent was away is sent again",
			prepare: func(t *testing.T, e *execEnv, a *execAgent) (Attempt, bool) {
				att := e.dispatch(t, a)
				a.cancel()
				waitFor(t, "the stream to go", func() bool { return e.svc.reg.stream(a.id) == nil })
				if _, err := e.svc.CancelAttempt(context.Background(), att.ID); err != nil {
					t.Fatal(err)
				}
				return att, true
			},
			check: func(t *testing.T, e *execEnv, b *execAgent, att Attempt) {
				b.next(t, "the cancel", func(m *agentv1.ControllerMessage) bool { return m.GetCancel().GetAttemptId() == att.ID })
				b.send(t, result(att.ID, agentv1.AttemptStatus_ATTEMPT_STATUS_CANCELED, -1, 0))
				b.resultAck(t, att.ID)
				if got := e.attempt(t, att.ID); got.Status != AttemptCanceled {
					t.Fatalf("attempt = %+v", got)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newExecEnv(t, nil)
			ta, cert := e.connectAgent(t, "web01")
			a := ta.receive()
			att, held := tc.prepare(t, e, a)
			a.cancel()
			waitFor(t, "the stream to go", func() bool { return e.svc.reg.stream(ta.id) == nil })

			b := e.open(t, ta.id, cert)
			hello := helloFrom(ta.id)
			if held {
				hello.GetHello().Running = []*agentv1.RunningAttempt{{AttemptId: att.ID}}
			}
			b.send(t, hello)
			rb := b.receive()
			rb.next(t, "welcome", func(m *agentv1.ControllerMessage) bool { return m.GetWelcome() != nil })
			tc.check(t, e, rb, att)
		})
	}
}

// builtinSteps is the real built-in catalog, as the server's adapter
// serves it without a registry.
type builtinSteps struct{}

func (builtinSteps) Describe(_ context.Context, uses string) (sdk.Description, error) {
	name, _, _ := strings.Cut(uses, "@")
	s, ok := builtin.Lookup(name)
	if !ok {
		return sdk.Description{}, problem.Invalid("uses", "unknown step %q", uses)
	}
	return s.Describe(), nil
}

func TestRunStepChecksTheReferenceAndParametersBeforeSending(t *testing.T) {
	e := newExecEnv(t, nil)
	e.svc.steps = builtinSteps{}
	ta, _ := e.connectAgent(t, "web01")
	a := ta.receive()
	refusals := []struct {
		name  string
		spec  StepSpec
		field string
	}{
		{"a reference that is not a step name", StepSpec{Uses: "Not A Step"}, "uses"},
		{"the command kind, which has its own route", StepSpec{Uses: "command"}, "uses"},
		{"parameters that are not an object", StepSpec{Uses: "noop", With: json.RawMessage(`[1]`)}, "with"},
		{"parameters the schema refuses, named with the rule", StepSpec{Uses: "noop", With: json.RawMessage(`{"lines":-1}`)}, "params.lines"},
		{"an unknown step", StepSpec{Uses: "nope@1"}, "uses"},
		{"a timeout out of range", StepSpec{Uses: "noop", Timeout: "100h"}, "timeout"},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.svc.RunStep(context.Background(), ta.id, tc.spec, "admin")
			if err == nil || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("err = %v, want one naming %s", err, tc.field)
			}
		})
	}
	t.Run("a valid step is sent with its kind, parameters and timeout", func(t *testing.T) {
		att, err := e.svc.RunStep(context.Background(), ta.id, StepSpec{Uses: "noop@1", With: json.RawMessage(`{"lines": 2}`), Timeout: "10s"}, "admin")
		if err != nil {
			t.Fatal(err)
		}
		as := a.next(t, "the assignment", func(m *agentv1.ControllerMessage) bool { return m.GetAssignment() != nil }).GetAssignment()
		if as.GetAttemptId() != att.ID || as.GetKind() != "noop@1" || string(as.GetParamsJson()) != `{"lines":2}` || as.GetTimeout().AsDuration() != 10*time.Second {
			t.Fatalf("assignment = %v", as)
		}
	})
}
