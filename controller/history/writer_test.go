package history

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/opsconductor/opsconductor/controller/problem"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// flakyStore records appends in memory and fails them while down, so the
// writer's buffering can be tested in isolation. The backends themselves
// are tested by historytest against real storage.
type flakyStore struct {
	mu      sync.Mutex
	down    bool
	appends [][]Record
	seen    map[string]bool
	dups    int
}

func newFlaky() *flakyStore { return &flakyStore{seen: map[string]bool{}} }

func (f *flakyStore) setDown(down bool) {
	f.mu.Lock()
	f.down = down
	f.mu.Unlock()
}

func (f *flakyStore) Append(_ context.Context, recs []Record) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return errors.New("connection refused")
	}
	for _, r := range recs {
		k := fmt.Sprintf("%s/%d", r.Stream, r.Seq)
		if f.seen[k] {
			f.dups++
		}
		f.seen[k] = true
	}
	f.appends = append(f.appends, recs)
	return nil
}

func (f *flakyStore) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.seen)
}

func (f *flakyStore) Read(context.Context, string, uint64, uint64, int) ([]Record, error) {
	return nil, nil
}
func (f *flakyStore) Tail(context.Context, string, int) ([]Record, error)    { return nil, nil }
func (f *flakyStore) Query(context.Context, Query) (Page, error)             { return Page{}, nil }
func (f *flakyStore) DeleteBefore(context.Context, time.Time) (int64, error) { return 0, nil }
func (f *flakyStore) Stats(context.Context) (Stats, error)                   { return Stats{}, nil }
func (f *flakyStore) Ping(context.Context) error                             { return nil }
func (f *flakyStore) Close() error                                           { return nil }

func rec(stream string, seq uint64) Record {
	return Record{Stream: stream, Seq: seq, Time: time.Unix(int64(seq), 0).UTC(), Kind: "automation.log", Data: []byte("x")}
}

func batch(stream string, from, n uint64) []Record {
	var out []Record
	for i := from; i < from+n; i++ {
		out = append(out, rec(stream, i))
	}
	return out
}

func TestWriterBatchesAndAcknowledgesDurableRecords(t *testing.T) {
	s := newFlaky()
	w := NewWriter(s, WriterConfig{MaxBatch: 100, MaxDelay: time.Millisecond})
	defer w.Close(context.Background())
	var tickets []*Ticket
	for i := range 50 {
		tk, err := w.Submit(context.Background(), batch("automation/s", uint64(i*10+1), 10))
		if err != nil {
			t.Fatal(err)
		}
		tickets = append(tickets, tk)
	}
	for i, tk := range tickets {
		if err := tk.Err(); err != nil {
			t.Fatalf("ticket %d: %v", i, err)
		}
	}
	if got := s.count(); got != 500 {
		t.Fatalf("stored %d records, want 500", got)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.appends) >= 50 {
		t.Fatalf("%d appends for 50 submits: the writer did not batch", len(s.appends))
	}
	for _, a := range s.appends {
		if len(a) > 100 {
			t.Fatalf("a batch of %d exceeds MaxBatch 100", len(a))
		}
	}
}

func TestWriterRefusesBadRecordsAtOnce(t *testing.T) {
	w := NewWriter(newFlaky(), WriterConfig{})
	defer w.Close(context.Background())
	bad := rec("automation/s", 1)
	bad.Kind = ""
	_, err := w.Submit(context.Background(), []Record{rec("automation/s", 2), bad})
	if p, ok := problem.As(err); !ok || p.Field != "records[1].kind" {
		t.Fatalf("got %v, want a problem naming records[1].kind", err)
	}
}

func TestWriterRidesOutAnOutage(t *testing.T) {
	s := newFlaky()
	w := NewWriter(s, WriterConfig{MaxBatch: 50, MaxDelay: time.Millisecond, MaxBuffer: 200})
	defer w.Close(context.Background())
	if n := w.AppendFailures(); n != 0 {
		t.Fatalf("append failures before any append = %d", n)
	}

	s.setDown(true)
	first, err := w.Submit(context.Background(), batch("automation/s", 1, 150))
	if err != nil {
		t.Fatal(err)
	}
	// Nothing is acknowledged while the store is down …
	waitUntil(t, "the writer to report the outage", func() bool { return w.Status().Failing })
	if n := w.AppendFailures(); n < 1 {
		t.Fatalf("append failures during the outage = %d, want at least 1", n)
	}
	select {
	case <-first.Done():
		t.Fatal("records were acknowledged while the store was down")
	default:
	}
	if st := w.Status(); st.Buffered != 150 || st.LastError == "" {
		t.Fatalf("status during outage: %+v", st)
	}
	// … producers feel back-pressure once the buffer is full …
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	_, err = w.Submit(ctx, batch("automation/s", 151, 100))
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("submit past the buffer: %v, want it to wait and time out", err)
	}
	// … and a producer already waiting for room gets in once it drains.
	blocked := make(chan *Ticket, 1)
	go func() {
		tk, err := w.Submit(context.Background(), batch("automation/s", 151, 100))
		if err != nil {
			t.Error(err)
		}
		blocked <- tk
	}()
	s.setDown(false)
	if err := first.Err(); err != nil {
		t.Fatal(err)
	}
	if err := (<-blocked).Err(); err != nil {
		t.Fatal(err)
	}
	// Everything stored once, in submission order.
	if s.count() != 250 {
		t.Fatalf("stored %d records, want 250", s.count())
	}
	s.mu.Lock()
	if s.dups != 0 {
		s.mu.Unlock()
		t.Fatalf("%d records stored twice", s.dups)
	}
	var next uint64 = 1
	for _, a := range s.appends {
		for _, r := range a {
			if r.Seq != next {
				s.mu.Unlock()
				t.Fatalf("stored seq %d, expected %d: out of order", r.Seq, next)
			}
			next++
		}
	}
	s.mu.Unlock()
	if st := w.Status(); st.Failing || st.Buffered != 0 || st.Stored != 250 {
		t.Fatalf("status after recovery: %+v", st)
	}
}

func TestWriterCloseFailsWhatItCannotStore(t *testing.T) {
	s := newFlaky()
	s.setDown(true)
	w := NewWriter(s, WriterConfig{MaxDelay: time.Millisecond})
	tk, err := w.Submit(context.Background(), batch("automation/s", 1, 5))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := w.Close(ctx); err == nil {
		t.Fatal("close with unstored records reported success")
	}
	if err := tk.Err(); !errors.Is(err, ErrClosed) {
		t.Fatalf("ticket: %v, want ErrClosed", err)
	}
	if _, err := w.Submit(context.Background(), batch("automation/s", 6, 1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("submit after close: %v", err)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling with a deadline
	}
}

func TestValidateNamesEveryProblem(t *testing.T) {
	good := rec("automation/s", 1)
	tests := []struct {
		name  string
		mut   func(*Record)
		field string
	}{
		{"a stream without a domain", func(r *Record) { r.Stream = "logs/1" }, "records[0].stream"},
		{"a kind from another domain", func(r *Record) { r.Kind = "assets.log" }, "records[0].kind"},
		{"a kind without a type", func(r *Record) { r.Kind = "automation" }, "records[0].kind"},
		{"a missing time", func(r *Record) { r.Time = time.Time{} }, "records[0].time"},
		{"a field key with '='", func(r *Record) { r.Fields = map[string]string{"a=b": "c"} }, "records[0].fields"},
		{"oversized data", func(r *Record) { r.Data = make([]byte, MaxDataLen+1) }, "records[0].data"},
	}
	for _, tt := range tests {
		t.Run("it names "+tt.name, func(t *testing.T) {
			r := good
			tt.mut(&r)
			err := ValidateBatch([]Record{r})
			if p, ok := problem.As(err); !ok || p.Field != tt.field {
				t.Fatalf("got %v, want a problem on %s", err, tt.field)
			}
		})
	}
	if err := ValidateBatch([]Record{good}); err != nil {
		t.Fatalf("valid record refused: %v", err)
	}
}

func TestBarrierSettlesOnceEverythingBeforeItIsStored(t *testing.T) {
	f := newFlaky()
	w := NewWriter(f, WriterConfig{MaxBatch: 10})
	defer w.Close(context.Background())
	if err := w.Barrier().Err(); err != nil {
		t.Fatalf("a barrier on an empty writer: %v", err)
	}
	// While the store is down nothing is stored, so the barrier waits.
	f.setDown(true)
	ctx := context.Background()
	for i := uint64(1); i <= 100; i++ {
		if _, err := w.Submit(ctx, []Record{rec("automation/barrier", i)}); err != nil {
			t.Fatal(err)
		}
	}
	b := w.Barrier()
	select {
	case <-b.Done():
		t.Fatal("the barrier settled with nothing stored")
	default:
	}
	f.setDown(false)
	if err := b.Err(); err != nil {
		t.Fatal(err)
	}
	if n := f.count(); n != 100 {
		t.Fatalf("%d records stored when the barrier settled, want 100", n)
	}
}
