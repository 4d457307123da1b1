package outbox

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	agentv1 "github.com/opsconductor/opsconductor/proto/agent/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func chunk(id string, seq uint64, size int) *agentv1.LogChunk {
	data := []byte(fmt.Sprintf("line %d\n", seq))
	if size > 0 {
		data = bytes.Repeat([]byte("x"), size)
	}
	return &agentv1.LogChunk{AttemptId: id, Seq: seq, Stream: agentv1.OutputStream_OUTPUT_STREAM_STDOUT, Data: data}
}

func open(t *testing.T, path string, max int64) *Outbox {
	t.Helper()
	o, err := Open(path, Options{MaxBytes: max})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// waitCommitted waits until attempt's committed last seq reaches seq.
func waitCommitted(t *testing.T, o *Outbox, id string, seq uint64) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		ch := o.Changed()
		as, err := o.Attempts()
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range as {
			if a.ID == id && a.LastSeq >= seq {
				return
			}
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("seq %d of %s never committed", seq, id)
		}
	}
}

func TestEverythingPendingSurvivesAReopenInOrder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	o := open(t, path, 0)
	ctx := context.Background()
	if err := o.Accept(&agentv1.Assignment{AttemptId: "at-1", Kind: "command", Secrets: map[string]string{"pw": "hunter22"}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	const n = 5000
	for i := uint64(1); i <= n; i++ {
		if err := o.Put(ctx, chunk("at-1", i, 0)); err != nil {
			t.Fatal(err)
		}
	}
	if err := o.Finish(&agentv1.Result{AttemptId: "at-1", Status: agentv1.AttemptStatus_ATTEMPT_STATUS_SUCCEEDED, LastSeq: n}); err != nil {
		t.Fatal(err)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}

	o = open(t, path, 0)
	defer o.Close()
	as, err := o.Attempts()
	if err != nil {
		t.Fatal(err)
	}
	if len(as) != 1 || as[0].ID != "at-1" || as[0].LastSeq != n || !as[0].Finished || as[0].Accepted.IsZero() {
		t.Fatalf("attempts after reopen: %+v", as)
	}
	chunks, res, err := o.Pending("at-1", 0, 2*n)
	if err != nil {
		t.Fatal(err)
	}
	if len(chunks) != n || res.GetLastSeq() != n {
		t.Fatalf("pending: %d chunks, result %v", len(chunks), res)
	}
	for i, c := range chunks {
		if c.GetSeq() != uint64(i+1) || string(c.GetData()) != fmt.Sprintf("line %d\n", i+1) {
			t.Fatalf("chunk %d is %d %q", i, c.GetSeq(), c.GetData())
		}
	}
	a, err := o.Assignment("at-1")
	if err != nil || a.GetKind() != "command" || len(a.GetSecrets()) != 0 {
		t.Fatalf("assignment %v (secrets must not be stored), %v", a, err)
	}
}

func TestAckPrunes(t *testing.T) {
	o := open(t, filepath.Join(t.TempDir(), "outbox.db"), 0)
	defer o.Close()
	ctx := context.Background()
	for i := uint64(1); i <= 10; i++ {
		if err := o.Put(ctx, chunk("at-1", i, 0)); err != nil {
			t.Fatal(err)
		}
	}
	if err := o.Finish(&agentv1.Result{AttemptId: "at-1", LastSeq: 10}); err != nil {
		t.Fatal(err)
	}
	if err := o.Ack("at-1", 4, false); err != nil {
		t.Fatal(err)
	}
	chunks, res, _ := o.Pending("at-1", 0, 100)
	if len(chunks) != 6 || chunks[0].GetSeq() != 5 || res == nil {
		t.Fatalf("after ack through 4: %d chunks from %d, result %v", len(chunks), chunks[0].GetSeq(), res)
	}
	t.Run("a result acked before its chunks keeps them, then forgets the attempt", func(t *testing.T) {
		if err := o.Ack("at-1", 8, true); err != nil {
			t.Fatal(err)
		}
		as, _ := o.Attempts()
		if len(as) != 1 || !as[0].Finished {
			t.Fatalf("attempts %+v", as)
		}
		if err := o.Ack("at-1", 10, false); err != nil {
			t.Fatal(err)
		}
		if as, _ := o.Attempts(); len(as) != 0 {
			t.Fatalf("attempts %+v before the ack's commit", as)
		}
		if err := o.Flush(); err != nil {
			t.Fatal(err)
		}
		if as, _ := o.Attempts(); len(as) != 0 || o.Used() != 0 {
			t.Fatalf("attempts %+v, used %d", as, o.Used())
		}
	})
	t.Run("acks of unknown attempts are ignored", func(t *testing.T) {
		if err := o.Ack("nope", 1<<63, true); err != nil {
			t.Fatal(err)
		}
	})
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func TestAFullOutboxBlocksPutUntilAnAckAndSaysSo(t *testing.T) {
	logs := &syncBuf{}
	o, err := Open(filepath.Join(t.TempDir(), "outbox.db"), Options{MaxBytes: 4096, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	ctx := context.Background()
	var seq uint64
	for o.Used()+int64(proto.Size(chunk("at-1", seq+1, 1000))) <= 4096 {
		seq++
		if err := o.Put(ctx, chunk("at-1", seq, 1000)); err != nil {
			t.Fatal(err)
		}
	}
	blocked := make(chan error, 1)
	go func() { blocked <- o.Put(ctx, chunk("at-1", seq+1, 1000)) }()
	select {
	case err := <-blocked:
		t.Fatalf("Put into a full outbox returned %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	waitCommitted(t, o, "at-1", seq)
	if !strings.Contains(logs.String(), "applying back-pressure") {
		t.Errorf("no back-pressure log line: %s", logs)
	}
	if err := o.Ack("at-1", 1, false); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-blocked:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Put stayed blocked after an ack freed room")
	}
	waitCommitted(t, o, "at-1", seq+1)
	chunks, _, _ := o.Pending("at-1", 0, 100)
	if len(chunks) != int(seq) || chunks[len(chunks)-1].GetSeq() != seq+1 {
		t.Fatalf("%d chunks held, want %d through %d", len(chunks), seq, seq+1)
	}
	t.Run("a blocked Put gives up when its context ends", func(t *testing.T) {
		for o.Used()+int64(proto.Size(chunk("at-1", seq+2, 1000))) <= 4096 {
			seq++
			if err := o.Put(ctx, chunk("at-1", seq+1, 1000)); err != nil {
				t.Fatal(err)
			}
		}
		cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		if err := o.Put(cctx, chunk("at-1", seq+2, 1000)); err != context.DeadlineExceeded {
			t.Fatalf("Put = %v", err)
		}
	})
}

func TestPutsAreGroupCommitted(t *testing.T) {
	o := open(t, filepath.Join(t.TempDir(), "outbox.db"), 0)
	defer o.Close()
	start := time.Now()
	const n = 10000
	for i := uint64(1); i <= n; i++ {
		if err := o.Put(context.Background(), chunk("at-1", i, 0)); err != nil {
			t.Fatal(err)
		}
	}
	waitCommitted(t, o, "at-1", n)
	t.Logf("%d chunks durable in %s", n, time.Since(start))
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("10,000 chunks took %s to commit", d)
	}
}

func BenchmarkPut(b *testing.B) {
	o, err := Open(filepath.Join(b.TempDir(), "outbox.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer o.Close()
	for i := range b.N {
		if err := o.Put(context.Background(), chunk("at-1", uint64(i+1), 0)); err != nil {
			b.Fatal(err)
		}
	}
}

// The session sends events as soon as they are queued, and the controller
// may ack them before the outbox commits them: the ack must still land
// after them, or the outbox would keep (and replay) acknowledged output.
func TestQueuedEventsAreVisibleAndAcksLandBehindThem(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	o := open(t, path, 0)
	ctx := context.Background()
	for round := range 50 {
		id := fmt.Sprintf("at-%02d", round)
		watch := o.Changed()
		if err := o.Accept(&agentv1.Assignment{AttemptId: id, Kind: "command"}, time.Now()); err != nil {
			t.Fatal(err)
		}
		select {
		case <-watch:
		default:
			t.Fatal("Changed did not fire when an event was queued")
		}
		for i := uint64(1); i <= 20; i++ {
			if err := o.Put(ctx, chunk(id, i, 0)); err != nil {
				t.Fatal(err)
			}
		}
		if err := o.Finish(&agentv1.Result{AttemptId: id, LastSeq: 20}); err != nil {
			t.Fatal(err)
		}
		chunks, res, err := o.Pending(id, 0, 100)
		if err != nil || len(chunks) != 20 || res.GetLastSeq() != 20 {
			t.Fatalf("%s: pending before any flush: %d chunks, result %v, %v", id, len(chunks), res, err)
		}
		if !o.Has(id) {
			t.Fatalf("%s: Has is false for a queued attempt", id)
		}
		if err := o.Ack(id, 20, true); err != nil {
			t.Fatal(err)
		}
		if chunks, res, _ := o.Pending(id, 0, 100); len(chunks) != 0 || res != nil {
			t.Fatalf("%s: pending after a queued ack: %d chunks, result %v", id, len(chunks), res)
		}
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	o = open(t, path, 0)
	defer o.Close()
	if as, err := o.Attempts(); err != nil || len(as) != 0 || o.Used() != 0 {
		t.Fatalf("after reopen: attempts %+v, used %d, %v", as, o.Used(), err)
	}
}
