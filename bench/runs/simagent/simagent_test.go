package simagent

import (
	"sync/atomic"
	"testing"

	agentv1 "github.com/opsconductor/opsconductor/proto/agent/v1"
)

func TestExec(t *testing.T) {
	type step struct {
		assign     *agentv1.Assignment
		ack        *agentv1.Ack
		wantAck    bool
		wantStatus agentv1.AttemptStatus // of attempt "a1" after the step; 0: no Result held
	}
	noop := &agentv1.Assignment{AttemptId: "a1", Kind: "noop"}
	cases := []struct {
		name                  string
		steps                 []step
		wantAnswered, wantRef int64
		wantRunning           int
	}{
		{name: "a noop is acknowledged and answered succeeded at once",
			steps:        []step{{assign: noop, wantAck: true, wantStatus: agentv1.AttemptStatus_ATTEMPT_STATUS_SUCCEEDED}},
			wantAnswered: 1, wantRunning: 1},
		{name: "a noop sent again is acknowledged again and not run twice",
			steps: []step{{assign: noop, wantAck: true, wantStatus: agentv1.AttemptStatus_ATTEMPT_STATUS_SUCCEEDED},
				{assign: noop, wantAck: true, wantStatus: agentv1.AttemptStatus_ATTEMPT_STATUS_SUCCEEDED}},
			wantAnswered: 1, wantRunning: 1},
		{name: "the controller's ack of the result drops it",
			steps: []step{{assign: noop, wantAck: true, wantStatus: agentv1.AttemptStatus_ATTEMPT_STATUS_SUCCEEDED},
				{ack: &agentv1.Ack{AttemptId: "a1", Result: true}}},
			wantAnswered: 1},
		{name: "an ack of chunks only keeps the result",
			steps: []step{{assign: noop, wantAck: true, wantStatus: agentv1.AttemptStatus_ATTEMPT_STATUS_SUCCEEDED},
				{ack: &agentv1.Ack{AttemptId: "a1", ThroughSeq: 3}, wantStatus: agentv1.AttemptStatus_ATTEMPT_STATUS_SUCCEEDED}},
			wantAnswered: 1, wantRunning: 1},
		{name: "another kind is refused with an error result, never a success",
			steps:   []step{{assign: &agentv1.Assignment{AttemptId: "a1", Kind: "shell@1"}, wantAck: true, wantStatus: agentv1.AttemptStatus_ATTEMPT_STATUS_ERROR}},
			wantRef: 1, wantRunning: 1},
		{name: "an assignment without an attempt ID is ignored",
			steps: []step{{assign: &agentv1.Assignment{Kind: "noop"}}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var answered, refused atomic.Int64
			e := newExec(&answered, &refused, &answerTimes{})
			for i, s := range c.steps {
				changed := e.Changed()
				if s.assign != nil {
					if got := e.Assign(s.assign, false) != nil; got != s.wantAck {
						t.Fatalf("step %d: acknowledged %v, want %v", i, got, s.wantAck)
					}
				}
				if s.ack != nil {
					e.Ack(s.ack)
				}
				chunks, res := e.Pending("a1", 0, 10)
				if len(chunks) != 0 {
					t.Fatalf("step %d: %d log chunks for a noop", i, len(chunks))
				}
				switch {
				case s.wantStatus == 0 && res != nil:
					t.Fatalf("step %d: holds result %v, want none", i, res)
				case s.wantStatus != 0 && (res == nil || res.GetStatus() != s.wantStatus):
					t.Fatalf("step %d: result %v, want status %v", i, res, s.wantStatus)
				}
				if s.assign != nil && s.wantStatus != 0 && i == 0 {
					select {
					case <-changed:
					default:
						t.Fatalf("step %d: a new result did not fire Changed", i)
					}
				}
			}
			if answered.Load() != c.wantAnswered || refused.Load() != c.wantRef {
				t.Fatalf("answered %d, refused %d; want %d, %d", answered.Load(), refused.Load(), c.wantAnswered, c.wantRef)
			}
			if got := len(e.Running()); got != c.wantRunning {
				t.Fatalf("Running lists %d attempts, want %d", got, c.wantRunning)
			}
		})
	}
}
