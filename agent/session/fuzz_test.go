package session

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/opsconductor/opsconductor/agent/enroll"
	"github.com/opsconductor/opsconductor/agent/executor"
	"github.com/opsconductor/opsconductor/agent/outbox"
	"github.com/opsconductor/opsconductor/agent/runner"
	agentv1 "github.com/opsconductor/opsconductor/proto/agent/v1"
)

// FuzzHandle feeds arbitrary bytes to the agent's handling of controller
// messages, as they would arrive off the wire: decode, then handle. It
// must never panic, and must never ask the stream loop for a heartbeat
// interval outside its bounds.
func FuzzHandle(f *testing.F) {
	seeds := []*agentv1.ControllerMessage{
		{Msg: &agentv1.ControllerMessage_Welcome{Welcome: &agentv1.Welcome{NodeId: "n1", HeartbeatInterval: durationpb.New(0)}}},
		{Msg: &agentv1.ControllerMessage_Welcome{Welcome: &agentv1.Welcome{HeartbeatInterval: &durationpb.Duration{Seconds: -1, Nanos: 5}}}},
		{Msg: &agentv1.ControllerMessage_Welcome{Welcome: &agentv1.Welcome{HeartbeatInterval: &durationpb.Duration{Seconds: 1 << 62}}}},
		{Msg: &agentv1.ControllerMessage_Redirect{Redirect: &agentv1.Redirect{LeaderAddress: "not an address\x00"}}},
		{Msg: &agentv1.ControllerMessage_Redirect{Redirect: &agentv1.Redirect{}}},
		{Msg: &agentv1.ControllerMessage_Drain{Drain: &agentv1.Drain{Draining: true}}},
		{Msg: &agentv1.ControllerMessage_Drain{}},
		// Malformed assignments: empty, bad JSON, a non-object, a hostile timeout.
		{Msg: &agentv1.ControllerMessage_Assignment{}},
		{Msg: &agentv1.ControllerMessage_Assignment{Assignment: &agentv1.Assignment{ParamsJson: []byte("{")}}},
		{Msg: &agentv1.ControllerMessage_Assignment{Assignment: &agentv1.Assignment{AttemptId: "at\x1b[31m", Kind: "command", ParamsJson: []byte("[1,2]"),
			Timeout: &durationpb.Duration{Seconds: 1, Nanos: -1}, Secrets: map[string]string{"": ""}}}},
		{Msg: &agentv1.ControllerMessage_Assignment{Assignment: &agentv1.Assignment{AttemptId: "at-1", Kind: "command", ParamsJson: []byte(`{"argv":["true"]}`),
			Timeout: durationpb.New(-5)}}},
		{Msg: &agentv1.ControllerMessage_Cancel{Cancel: &agentv1.Cancel{AttemptId: "at-1"}}},
		{Msg: &agentv1.ControllerMessage_Ack{Ack: &agentv1.Ack{ThroughSeq: ^uint64(0)}}},
		{Msg: &agentv1.ControllerMessage_Certificate{Certificate: &agentv1.CertificateIssued{CertificateDer: []byte{0x30}}}},
	}
	for _, m := range seeds {
		f.Add(mustMarshal(f, m))
	}
	f.Add([]byte{0xff, 0xff, 0xff})
	f.Add([]byte{0x1a, 0x05, 0x2a, 0x03, '{', '"', 'x'}) // assignment with truncated params
	f.Add([]byte{0x9a, 0x06, 0x00})                      // field 99, empty: a future kind

	f.Add(mustMarshal(f, &agentv1.ControllerMessage{Msg: &agentv1.ControllerMessage_Assignment{Assignment: &agentv1.Assignment{
		AttemptId: "at-2", Kind: "command", ParamsJson: []byte(`{"shell":"echo hi"}`), Secrets: map[string]string{"pw": "hunter22"}}}}))

	// Two sessions: one without an executor (assignments refused), one
	// whose executor runs every valid command through a stub that never
	// starts a process, so that fuzzing exercises acceptance, the outbox,
	// cancels and acks without running whatever the fuzzer writes.
	s, err := New(Config{Identity: &enroll.Identity{AgentID: "a-1"}, Controllers: []string{"127.0.0.1:1"},
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	box, err := outbox.Open(filepath.Join(f.TempDir(), "outbox.db"), outbox.Options{})
	if err != nil {
		f.Fatal(err)
	}
	ex, err := executor.New(executor.Config{Outbox: box, Run: noExec})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { ex.Close(); box.Close() })
	sx, err := New(Config{Identity: &enroll.Identity{AgentID: "a-1"}, Controllers: []string{"127.0.0.1:1"},
		Logger: slog.New(slog.DiscardHandler), Executor: ex})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var m agentv1.ControllerMessage
		if proto.Unmarshal(data, &m) != nil {
			return
		}
		for _, s := range []*Session{s, sx} {
			act := s.handle(&m)
			if act.welcome && (act.interval < minHeartbeatInterval || act.interval > maxHeartbeatInterval) {
				t.Fatalf("heartbeat interval %s out of bounds", act.interval)
			}
			if a := act.send.GetAssignmentAck(); a != nil && a.GetAttemptId() != m.GetAssignment().GetAttemptId() {
				t.Fatalf("acked %q for an assignment of %q", a.GetAttemptId(), m.GetAssignment().GetAttemptId())
			}
		}
	})
}

func mustMarshal(f *testing.F, m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// noExec stands in for runner.Run under fuzzing: it never starts a
// process, and emits one line so that the outbox path is exercised.
func noExec(_ context.Context, _ runner.Command, emit func(runner.Line) error) runner.Result {
	now := time.Now()
	res := runner.Result{Status: agentv1.AttemptStatus_ATTEMPT_STATUS_SUCCEEDED, StartedAt: now, FinishedAt: now}
	if emit(runner.Line{Seq: 1, Stream: agentv1.OutputStream_OUTPUT_STREAM_STDOUT, Data: []byte("stub\n"), Time: now}) == nil {
		res.LastSeq = 1
	}
	return res
}
