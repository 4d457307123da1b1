package session

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/opsconductor/opsconductor/agent/executor"
	"github.com/opsconductor/opsconductor/agent/outbox"
	agentv1 "github.com/opsconductor/opsconductor/proto/agent/v1"
)

// execController is a leader that records every agent message and sends
// what the test pushes, over real mutual TLS on loopback.
type execController struct {
	addr   string
	srv    *grpc.Server
	hellos chan *agentv1.Hello
	msgs   chan *agentv1.AgentMessage
	push   chan *agentv1.ControllerMessage
	// autoAck, when set, acks every chunk batch and result as it arrives.
	autoAck bool

	agentv1.UnimplementedAgentServiceServer
}

func startExecController(t *testing.T, ca *testCA, autoAck bool) *execController {
	t.Helper()
	f := &execController{hellos: make(chan *agentv1.Hello, 10), msgs: make(chan *agentv1.AgentMessage, 100000),
		push: make(chan *agentv1.ControllerMessage, 100), autoAck: autoAck}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{ca.issue(t, "opsconductor://server/n1", x509.ExtKeyUsageServerAuth)},
		ClientAuth:   tls.RequireAndVerifyClientCert, ClientCAs: ca.pool(),
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.srv = grpc.NewServer(grpc.Creds(credentials.NewTLS(cfg)))
	agentv1.RegisterAgentServiceServer(f.srv, f)
	go f.srv.Serve(lis)
	t.Cleanup(f.srv.Stop)
	f.addr = lis.Addr().String()
	return f
}

func (f *execController) Connect(stream grpc.BidiStreamingServer[agentv1.AgentMessage, agentv1.ControllerMessage]) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	f.hellos <- first.GetHello()
	if err := stream.Send(welcome("n1", time.Hour)); err != nil {
		return err
	}
	recvErr := make(chan error, 1)
	acks := make(chan *agentv1.ControllerMessage, 100000)
	go func() {
		for {
			m, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			if m.GetHeartbeat() != nil {
				continue
			}
			f.msgs <- m
			if !f.autoAck {
				continue
			}
			if c := m.GetLog(); c != nil {
				acks <- ackMsg(c.GetAttemptId(), c.GetSeq(), false)
			}
			if r := m.GetResult(); r != nil {
				acks <- ackMsg(r.GetAttemptId(), r.GetLastSeq(), true)
			}
		}
	}()
	for {
		var m *agentv1.ControllerMessage
		select {
		case err := <-recvErr:
			return err
		case m = <-f.push:
		case m = <-acks:
		}
		if err := stream.Send(m); err != nil {
			return err
		}
	}
}

func ackMsg(id string, through uint64, result bool) *agentv1.ControllerMessage {
	return &agentv1.ControllerMessage{Msg: &agentv1.ControllerMessage_Ack{Ack: &agentv1.Ack{AttemptId: id, ThroughSeq: through, Result: result}}}
}

func assign(id, kind string, params any, secrets map[string]string, timeout time.Duration) *agentv1.ControllerMessage {
	b, _ := json.Marshal(params)
	a := &agentv1.Assignment{AttemptId: id, RunId: "r-1", Kind: kind, ParamsJson: b, Secrets: secrets}
	if timeout != 0 {
		a.Timeout = durationpb.New(timeout)
	}
	return &agentv1.ControllerMessage{Msg: &agentv1.ControllerMessage_Assignment{Assignment: a}}
}

// agentProc is an agent's session, executor and outbox, stopped together.
type agentProc struct {
	h    *harness
	box  *outbox.Outbox
	ex   *executor.Executor
	stop func() // as if the agent died: results of running attempts are not recorded
}

func startAgent(t *testing.T, ca *testCA, dir string, maxBytes int64, addrs ...string) *agentProc {
	t.Helper()
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	box, err := outbox.Open(filepath.Join(dir, "outbox.db"), outbox.Options{MaxBytes: maxBytes, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ex, err := executor.New(executor.Config{Outbox: box, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Identity: ca.identity(t), Controllers: addrs, Logger: log, Executor: ex,
		Backoff: Backoff{Initial: 20 * time.Millisecond, Max: 100 * time.Millisecond, ResetAfter: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &agentProc{h: &harness{s: s, logs: logs, done: make(chan error, 1)}, box: box, ex: ex}
	go func() { p.h.done <- s.Run(ctx) }()
	stopped := false
	p.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case <-p.h.done:
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after cancel")
		}
		ex.Close()
		if err := box.Close(); err != nil {
			t.Error(err)
		}
	}
	t.Cleanup(p.stop)
	return p
}

// collect reads the controller's messages until done says so.
func collect(t *testing.T, f *execController, what string, done func([]*agentv1.AgentMessage) bool) []*agentv1.AgentMessage {
	t.Helper()
	var got []*agentv1.AgentMessage
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	for !done(got) {
		select {
		case m := <-f.msgs:
			got = append(got, m)
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s; got %d messages", what, len(got))
		}
	}
	return got
}

func hasResult(id string) func([]*agentv1.AgentMessage) bool {
	return func(ms []*agentv1.AgentMessage) bool {
		return len(ms) > 0 && ms[len(ms)-1].GetResult().GetAttemptId() == id
	}
}

// checkChunks asserts that chunks are seq from..to without gaps, in order.
func checkChunks(t *testing.T, ms []*agentv1.AgentMessage, id string, from uint64) []*agentv1.LogChunk {
	t.Helper()
	var out []*agentv1.LogChunk
	want := from
	for _, m := range ms {
		c := m.GetLog()
		if c == nil || c.GetAttemptId() != id {
			continue
		}
		if c.GetSeq() != want {
			t.Fatalf("chunk seq %d, want %d", c.GetSeq(), want)
		}
		want++
		out = append(out, c)
	}
	return out
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestAnAssignmentStreamsEveryLineInOrderThenTheResultAndAcksPruneTheOutbox(t *testing.T) {
	ca := newCA(t)
	c := startExecController(t, ca, false)
	a := startAgent(t, ca, t.TempDir(), 0, c.addr)
	recvWithin(t, c.hellos, 10*time.Second, "hello")
	c.push <- assign("at-1", "command", map[string]any{"argv": []string{"seq", "1", "10000"}}, nil, time.Minute)
	got := collect(t, c, "the result", hasResult("at-1"))
	if got[0].GetAssignmentAck().GetAttemptId() != "at-1" {
		t.Fatalf("first message %v, want the assignment ack", got[0])
	}
	chunks := checkChunks(t, got, "at-1", 1)
	if text := joined(chunks); text != numbered(10000) {
		t.Fatalf("the %d chunks do not rebuild the output (%d bytes)", len(chunks), len(text))
	}
	res := got[len(got)-1].GetResult()
	last := uint64(len(chunks))
	if res.GetStatus() != agentv1.AttemptStatus_ATTEMPT_STATUS_SUCCEEDED || res.GetLastSeq() != last || res.GetExitCode() != 0 {
		t.Fatalf("result %v after %d chunks", res, last)
	}
	c.push <- ackMsg("at-1", last, true)
	waitUntil(t, "the outbox to empty", func() bool { as, _ := a.box.Attempts(); return len(as) == 0 && a.box.Used() == 0 })
}

func TestAStreamBrokenMidRunReplaysUnackedChunksAfterReconnect(t *testing.T) {
	ca := newCA(t)
	c1 := startExecController(t, ca, false)
	c2 := startExecController(t, ca, false)
	a := startAgent(t, ca, t.TempDir(), 0, c1.addr, c2.addr)
	recvWithin(t, c1.hellos, 10*time.Second, "hello")
	const n = 150
	c1.push <- assign("at-1", "command", map[string]any{"shell": fmt.Sprintf("for i in $(seq 1 %d); do echo $i; sleep 0.01; done", n)}, nil, time.Minute)
	got := collect(t, c1, "30 chunks", func(ms []*agentv1.AgentMessage) bool { return len(ms) > 30 })
	first := checkChunks(t, got, "at-1", 1)
	acked := first[20].GetSeq()
	c1.push <- ackMsg("at-1", acked, false)
	waitUntil(t, "the ack to prune", func() bool {
		ch, _ := a.ex.Pending("at-1", 0, 1)
		return len(ch) == 1 && ch[0].GetSeq() == acked+1
	})
	c1.srv.Stop()

	hello := recvWithin(t, c2.hellos, 10*time.Second, "hello after reconnect")
	if len(hello.GetRunning()) != 1 || hello.GetRunning()[0].GetAttemptId() != "at-1" || hello.GetRunning()[0].GetLastSeq() < uint64(len(first)) {
		t.Fatalf("hello.running %v after %d chunks", hello.GetRunning(), len(first))
	}
	got2 := collect(t, c2, "the result", hasResult("at-1"))
	second := checkChunks(t, got2, "at-1", acked+1)
	if text := joined(first[:acked]) + joined(second); text != numbered(n) {
		t.Fatalf("acked chunks and the replay do not rebuild the output: %q", text)
	}
	last := second[len(second)-1].GetSeq()
	if r := got2[len(got2)-1].GetResult(); r.GetStatus() != agentv1.AttemptStatus_ATTEMPT_STATUS_SUCCEEDED || r.GetLastSeq() != last {
		t.Fatalf("result %v, last chunk %d", r, last)
	}
}

func TestAnAgentRestartedMidAttemptReportsAnErrorAndReplaysItsOutput(t *testing.T) {
	ca := newCA(t)
	c := startExecController(t, ca, false)
	dir := t.TempDir()
	a := startAgent(t, ca, dir, 0, c.addr)
	recvWithin(t, c.hellos, 10*time.Second, "hello")
	c.push <- assign("at-1", "command", map[string]any{"shell": "for i in 1 2 3 4 5; do echo $i; done; sleep 30"}, nil, time.Minute)
	var before []*agentv1.LogChunk
	collect(t, c, "five lines", func(ms []*agentv1.AgentMessage) bool {
		before = nil
		for _, m := range ms {
			if m.GetLog() != nil {
				before = append(before, m.GetLog())
			}
		}
		return joined(before) == numbered(5)
	})
	a.stop()

	a = startAgent(t, ca, dir, 0, c.addr)
	hello := recvWithin(t, c.hellos, 10*time.Second, "hello after restart")
	n := uint64(len(before))
	if r := hello.GetRunning(); len(r) != 1 || r[0].GetAttemptId() != "at-1" || r[0].GetLastSeq() != n || !r[0].GetFinished() {
		t.Fatalf("hello.running %v, want last seq %d", r, n)
	}
	got := collect(t, c, "the result", hasResult("at-1"))
	if chunks := checkChunks(t, got, "at-1", 1); joined(chunks) != numbered(5) {
		t.Fatalf("replayed %q, want the five lines", joined(chunks))
	}
	r := got[len(got)-1].GetResult()
	if r.GetStatus() != agentv1.AttemptStatus_ATTEMPT_STATUS_ERROR || r.GetError() != executor.RestartedError || r.GetLastSeq() != n {
		t.Fatalf("result %v", r)
	}
	c.push <- ackMsg("at-1", n, true)
	waitUntil(t, "the outbox to empty", func() bool { as, _ := a.box.Attempts(); return len(as) == 0 })
}

func TestCancelKillsAShellAndItsSleepWithinASecond(t *testing.T) {
	ca := newCA(t)
	c := startExecController(t, ca, true)
	startAgent(t, ca, t.TempDir(), 0, c.addr)
	recvWithin(t, c.hellos, 10*time.Second, "hello")
	c.push <- assign("at-1", "command", map[string]any{"shell": "echo started; sleep 30; echo never"}, nil, time.Minute)
	collect(t, c, "the first line", func(ms []*agentv1.AgentMessage) bool { return len(ms) == 2 })
	start := time.Now()
	c.push <- &agentv1.ControllerMessage{Msg: &agentv1.ControllerMessage_Cancel{Cancel: &agentv1.Cancel{AttemptId: "at-1"}}}
	got := collect(t, c, "the result", hasResult("at-1"))
	if d := time.Since(start); d > time.Second {
		t.Errorf("the canceled result took %s", d)
	}
	if r := got[len(got)-1].GetResult(); r.GetStatus() != agentv1.AttemptStatus_ATTEMPT_STATUS_CANCELED || r.GetLastSeq() != 1 {
		t.Fatalf("result %v", r)
	}
}

func TestSecretsAreMaskedInOutputAndNeverLogged(t *testing.T) {
	ca := newCA(t)
	c := startExecController(t, ca, true)
	a := startAgent(t, ca, t.TempDir(), 0, c.addr)
	recvWithin(t, c.hellos, 10*time.Second, "hello")
	const secret = "hunter22-s3cret"
	c.push <- assign("at-1", "command", map[string]any{"shell": `echo "pw=$PW"; printf %s "$PW" | base64; echo "$PW" >&2`,
		"env": map[string]string{"PW": secret}}, map[string]string{"pw": secret}, time.Minute)
	got := collect(t, c, "the result", hasResult("at-1"))
	var out strings.Builder
	for _, ch := range checkChunks(t, got, "at-1", 1) {
		out.Write(ch.GetData())
	}
	b64 := base64.StdEncoding.EncodeToString([]byte(secret))
	if s := out.String(); strings.Contains(s, secret) || strings.Contains(s, b64) || strings.Count(s, "***") != 3 {
		t.Fatalf("output %q", s)
	}
	if strings.Contains(a.h.logs.String(), secret) {
		t.Fatal("the secret reached the log")
	}
}

func TestAFullOutboxSlowsTheCommandAndDropsNothing(t *testing.T) {
	ca := newCA(t)
	c := startExecController(t, ca, true)
	a := startAgent(t, ca, t.TempDir(), 4096, c.addr)
	recvWithin(t, c.hellos, 10*time.Second, "hello")
	const n = 100000 // about 590 KB against a 4 KiB outbox
	c.push <- assign("at-1", "command", map[string]any{"argv": []string{"seq", "1", fmt.Sprint(n)}}, nil, time.Minute)
	got := collect(t, c, "the result", hasResult("at-1"))
	chunks := checkChunks(t, got, "at-1", 1)
	if joined(chunks) != numbered(n) {
		t.Fatalf("%d chunks do not rebuild the %d lines", len(chunks), n)
	}
	if !strings.Contains(a.h.logs.String(), "applying back-pressure") {
		t.Fatal("no back-pressure was logged")
	}
}

func TestAssignmentsThatCannotRunEndWithAnErrorResult(t *testing.T) {
	ca := newCA(t)
	c := startExecController(t, ca, true)
	a := startAgent(t, ca, t.TempDir(), 0, c.addr)
	recvWithin(t, c.hellos, 10*time.Second, "hello")
	tests := []struct {
		name string
		msg  *agentv1.ControllerMessage
		want string
	}{
		{"bad params are refused with the reason", assign("at-1", "command", map[string]any{"argv": []string{"x"}, "shell": "y"}, nil, 0), "either argv or shell"},
		{"an unknown kind is refused", assign("at-2", "ansible@1", map[string]any{}, nil, 0), "runs no external plugins"},
		{"a bad timeout is refused", assign("at-3", "command", map[string]any{"argv": []string{"true"}}, nil, -time.Second), "timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.push <- tt.msg
			id := tt.msg.GetAssignment().GetAttemptId()
			got := collect(t, c, "the result", hasResult(id))
			if got[0].GetAssignmentAck().GetAttemptId() != id {
				t.Fatalf("first message %v, want the ack", got[0])
			}
			r := got[len(got)-1].GetResult()
			if r.GetStatus() != agentv1.AttemptStatus_ATTEMPT_STATUS_ERROR || !strings.Contains(r.GetError(), tt.want) {
				t.Fatalf("result %v, want an error with %q", r, tt.want)
			}
		})
	}
	t.Run("a draining agent refuses new work", func(t *testing.T) {
		c.push <- &agentv1.ControllerMessage{Msg: &agentv1.ControllerMessage_Drain{Drain: &agentv1.Drain{Draining: true}}}
		a.h.waitFor(t, "draining", func(st Status) bool { return st.Draining })
		c.push <- assign("at-4", "command", map[string]any{"argv": []string{"true"}}, nil, 0)
		got := collect(t, c, "the result", hasResult("at-4"))
		if r := got[len(got)-1].GetResult(); r.GetError() != "agent is draining" {
			t.Fatalf("result %v", r)
		}
	})
}

// joined is the output the chunks carry, in order.
func joined(chunks []*agentv1.LogChunk) string {
	var b strings.Builder
	for _, c := range chunks {
		b.Write(c.GetData())
	}
	return b.String()
}

// numbered is "1\n2\n…n\n".
func numbered[N int | uint64](n N) string {
	var b strings.Builder
	for i := N(1); i <= n; i++ {
		fmt.Fprintf(&b, "%d\n", i)
	}
	return b.String()
}
