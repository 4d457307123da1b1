// Package historytest is the conformance suite every history backend must
// pass. Backends call Run from their own tests with a way to open (and
// reopen) a fresh store.
package historytest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/opsconductor/opsconductor/controller/history"
	"github.com/opsconductor/opsconductor/controller/problem"
)

// Backend opens stores over one underlying database. Open may be called
// again after Close to reopen the same data (restart durability).
type Backend struct {
	Open func() (history.Store, error)
}

// NewBackend returns a Backend for one subtest, over fresh empty data.
type NewBackend func(t *testing.T) Backend

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// Rec builds a record of stream at seq, its time seq seconds after t0.
func Rec(stream string, seq uint64, fields map[string]string) history.Record {
	domain, _ := history.Domain(stream)
	return history.Record{
		Stream: stream, Seq: seq, Time: t0.Add(time.Duration(seq) * time.Second),
		Kind: domain + ".test", Fields: fields, Data: []byte(fmt.Sprintf(`{"line":%d}`, seq)),
	}
}

func open(t *testing.T, b Backend) history.Store {
	t.Helper()
	s, err := b.Open()
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return s
}

func appendAll(t *testing.T, s history.Store, recs ...history.Record) {
	t.Helper()
	if err := s.Append(context.Background(), recs); err != nil {
		t.Fatalf("append %d records: %v", len(recs), err)
	}
}

func seqs(recs []history.Record) []uint64 {
	out := make([]uint64, len(recs))
	for i, r := range recs {
		out[i] = r.Seq
	}
	return out
}

func span(from, to uint64) []uint64 {
	var out []uint64
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

// Run runs the whole suite.
func Run(t *testing.T, newBackend NewBackend) {
	ctx := context.Background()
	const stream = "automation/run/r1/log"

	t.Run("records read back in sequence order, whole", func(t *testing.T) {
		s := open(t, newBackend(t))
		defer s.Close()
		var batch []history.Record
		for i := uint64(1); i <= 100; i++ {
			batch = append(batch, Rec(stream, i, map[string]string{"run_id": "r1"}))
		}
		appendAll(t, s, batch[50:]...)
		appendAll(t, s, batch[:50]...)
		got, err := s.Read(ctx, stream, 1, 100, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(seqs(got), span(1, 100)) {
			t.Fatalf("read %v", seqs(got))
		}
		want := batch[41]
		if g := got[41]; g.Stream != want.Stream || g.Kind != want.Kind || !g.Time.Equal(want.Time) || string(g.Data) != string(want.Data) || g.Fields["run_id"] != "r1" {
			t.Fatalf("record 42 came back as %+v, want %+v", g, want)
		}
		for _, c := range []struct {
			from, to uint64
			limit    int
			want     []uint64
		}{
			{10, 20, 1000, span(10, 20)},
			{10, 20, 5, span(10, 14)},
			{95, 200, 1000, span(95, 100)},
			{101, 200, 1000, nil},
		} {
			got, err := s.Read(ctx, stream, c.from, c.to, c.limit)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(seqs(got), c.want) {
				t.Fatalf("read %d..%d limit %d: %v, want %v", c.from, c.to, c.limit, seqs(got), c.want)
			}
		}
		tail, err := s.Tail(ctx, stream, 10)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(seqs(tail), span(91, 100)) {
			t.Fatalf("tail %v", seqs(tail))
		}
		other, err := s.Read(ctx, "automation/run/r2/log", 0, 1000, 10)
		if err != nil || len(other) != 0 {
			t.Fatalf("another stream: %v %v", seqs(other), err)
		}
	})

	t.Run("a record sent twice is stored once", func(t *testing.T) {
		s := open(t, newBackend(t))
		defer s.Close()
		appendAll(t, s, Rec(stream, 1, nil), Rec(stream, 2, nil))
		dup := Rec(stream, 2, nil)
		dup.Data = []byte(`"changed"`)
		appendAll(t, s, dup, Rec(stream, 3, nil), Rec(stream, 3, nil))
		got, err := s.Read(ctx, stream, 0, 10, 10)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(seqs(got), []uint64{1, 2, 3}) {
			t.Fatalf("read %v", seqs(got))
		}
		if string(got[1].Data) == `"changed"` {
			t.Fatal("a re-sent record replaced the stored one")
		}
		st, err := s.Stats(ctx)
		if err != nil || st.Records != 3 {
			t.Fatalf("stats %+v %v, want 3 records", st, err)
		}
	})

	t.Run("an invalid batch is refused whole, naming the record", func(t *testing.T) {
		s := open(t, newBackend(t))
		defer s.Close()
		bad := Rec(stream, 2, nil)
		bad.Kind = "assets.test"
		err := s.Append(ctx, []history.Record{Rec(stream, 1, nil), bad})
		p, ok := problem.As(err)
		if !ok || p.Kind != problem.KindInvalid || p.Field != "records[1].kind" {
			t.Fatalf("got %v, want an invalid problem on records[1].kind", err)
		}
		if got, _ := s.Read(ctx, stream, 0, 10, 10); len(got) != 0 {
			t.Fatalf("refused batch left %v", seqs(got))
		}
	})

	t.Run("queries filter by kind, fields and time and page newest first", func(t *testing.T) {
		s := open(t, newBackend(t))
		defer s.Close()
		var want []history.Record
		for i := uint64(1); i <= 250; i++ {
			st := "communication/audit"
			status := "ok"
			if i%3 == 0 {
				status = "failed"
			}
			r := Rec(st, i, map[string]string{"status": status, "actor": fmt.Sprintf("u%d", i%2)})
			r.Kind = "communication.audit"
			appendAll(t, s, r)
			if status == "failed" && i%2 == 1 && r.Time.Before(t0.Add(240*time.Second)) {
				want = append(want, r)
			}
		}
		appendAll(t, s, Rec("communication/deliveries", 1, map[string]string{"status": "failed", "actor": "u1"}))
		slices.Reverse(want)
		var got []history.Record
		cursor := ""
		for pages := 0; ; pages++ {
			if pages > 100 {
				t.Fatal("paging does not end")
			}
			p, err := s.Query(ctx, history.Query{Kind: "communication.audit", Fields: map[string]string{"status": "failed", "actor": "u1"},
				Until: t0.Add(240 * time.Second), Cursor: cursor, Limit: 7})
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, p.Records...)
			if p.Next == "" {
				break
			}
			cursor = p.Next
		}
		if !slices.Equal(seqs(got), seqs(want)) {
			t.Fatalf("query returned %v\nwant %v", seqs(got), seqs(want))
		}
		p, err := s.Query(ctx, history.Query{Kind: "communication.audit", Since: t0.Add(245 * time.Second), Limit: 100})
		if err != nil || !slices.Equal(seqs(p.Records), []uint64{250, 249, 248, 247, 246, 245}) || p.Next != "" {
			t.Fatalf("since query: %v next %q %v", seqs(p.Records), p.Next, err)
		}
		if _, err := s.Query(ctx, history.Query{Kind: "communication.audit", Limit: 0}); !problem.Is(err, problem.KindInvalid) {
			t.Fatalf("limit 0: %v", err)
		}
		if _, err := s.Query(ctx, history.Query{Kind: "communication.audit", Cursor: "not a cursor", Limit: 5}); !problem.Is(err, problem.KindInvalid) {
			t.Fatalf("bad cursor: %v", err)
		}
	})

	t.Run("a replay split unlike the stored batches stores each record once", func(t *testing.T) {
		s := open(t, newBackend(t))
		defer s.Close()
		// The odd seqs in batches of 7; then everything, 1-200, in batches
		// of 64 whose bounds fall inside the stored ones, data changed.
		var odd []history.Record
		for i := uint64(1); i <= 199; i += 2 {
			odd = append(odd, Rec(stream, i, map[string]string{"run_id": "r1"}))
		}
		for b := range slices.Chunk(odd, 7) {
			appendAll(t, s, b...)
		}
		var all []history.Record
		for i := uint64(1); i <= 200; i++ {
			r := Rec(stream, i, map[string]string{"run_id": "r1"})
			r.Data = []byte(`"replayed"`)
			all = append(all, r)
		}
		for b := range slices.Chunk(all, 64) {
			appendAll(t, s, b...)
		}
		got, err := s.Read(ctx, stream, 0, 1000, 1000)
		if err != nil || !slices.Equal(seqs(got), span(1, 200)) {
			t.Fatalf("read %v, %v", seqs(got), err)
		}
		for _, r := range got {
			if replayed := string(r.Data) == `"replayed"`; replayed != (r.Seq%2 == 0) {
				t.Fatalf("record %d has data %s: a stored record was replaced or a new one lost", r.Seq, r.Data)
			}
		}
		p, err := s.Query(ctx, history.Query{Kind: "automation.test", Fields: map[string]string{"run_id": "r1"}, Limit: 1000})
		if err != nil || len(p.Records) != 200 {
			t.Fatalf("query: %d records, %v", len(p.Records), err)
		}
		if st, err := s.Stats(ctx); err != nil || st.Records != 200 {
			t.Fatalf("stats %+v, %v; want 200 records", st, err)
		}
	})

	t.Run("concurrent overlapping replays of one stream store each record once", func(t *testing.T) {
		s := open(t, newBackend(t))
		defer s.Close()
		var wg sync.WaitGroup
		errs := make(chan error, 6)
		for w := range 6 {
			wg.Go(func() {
				// Writer w sends 30w+1 .. 30w+90 in batches of 5+w.
				var recs []history.Record
				for i := uint64(30*w + 1); i <= uint64(30*w+90); i++ {
					recs = append(recs, Rec(stream, i, nil))
				}
				for b := range slices.Chunk(recs, 5+w) {
					if err := s.Append(ctx, b); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		got, err := s.Read(ctx, stream, 0, 1000, 1000)
		if err != nil || !slices.Equal(seqs(got), span(1, 240)) {
			t.Fatalf("read %v, %v", seqs(got), err)
		}
		if st, err := s.Stats(ctx); err != nil || st.Records != 240 {
			t.Fatalf("stats %+v, %v; want 240 records", st, err)
		}
	})

	t.Run("concurrent writers lose and duplicate nothing", func(t *testing.T) {
		s := open(t, newBackend(t))
		defer s.Close()
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for w := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				own := fmt.Sprintf("automation/run/w%d/log", w)
				for b := uint64(0); b < 20; b++ {
					batch := []history.Record{}
					for i := uint64(1); i <= 10; i++ {
						batch = append(batch, Rec(own, b*10+i, nil), Rec("automation/shared", b*10+i, nil))
					}
					if err := s.Append(ctx, batch); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		for w := range 8 {
			got, err := s.Read(ctx, fmt.Sprintf("automation/run/w%d/log", w), 0, 1000, 1000)
			if err != nil || !slices.Equal(seqs(got), span(1, 200)) {
				t.Fatalf("writer %d: %d records, %v", w, len(got), err)
			}
		}
		shared, err := s.Read(ctx, "automation/shared", 0, 1000, 1000)
		if err != nil || !slices.Equal(seqs(shared), span(1, 200)) {
			t.Fatalf("shared stream: %d records %v", len(shared), err)
		}
		st, err := s.Stats(ctx)
		if err != nil || st.Records != 8*200+200 {
			t.Fatalf("stats %+v %v, want %d records", st, err, 8*200+200)
		}
	})

	t.Run("retention removes what is older than the cut-off, everywhere", func(t *testing.T) {
		s := open(t, newBackend(t))
		defer s.Close()
		for i := uint64(1); i <= 100; i++ {
			r := Rec(stream, i, map[string]string{"run_id": "r1"})
			r.Kind = "automation.test"
			appendAll(t, s, r)
		}
		n, err := s.DeleteBefore(ctx, t0.Add(41*time.Second))
		if err != nil || n != 40 {
			t.Fatalf("deleted %d, %v; want 40", n, err)
		}
		got, _ := s.Read(ctx, stream, 0, 1000, 1000)
		if !slices.Equal(seqs(got), span(41, 100)) {
			t.Fatalf("after retention: %v", seqs(got))
		}
		p, err := s.Query(ctx, history.Query{Kind: "automation.test", Fields: map[string]string{"run_id": "r1"}, Limit: 1000})
		if err != nil || len(p.Records) != 60 {
			t.Fatalf("query after retention: %d records %v", len(p.Records), err)
		}
		st, err := s.Stats(ctx)
		if err != nil || st.Records != 60 || !st.Oldest.Equal(t0.Add(41*time.Second)) {
			t.Fatalf("stats after retention: %+v %v", st, err)
		}
	})

	t.Run("what was appended survives a close and reopen", func(t *testing.T) {
		b := newBackend(t)
		s := open(t, b)
		appendAll(t, s, Rec(stream, 1, nil), Rec(stream, 2, nil))
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Append(ctx, []history.Record{Rec(stream, 3, nil)}); !errors.Is(err, history.ErrClosed) {
			t.Fatalf("append after close: %v, want ErrClosed", err)
		}
		s = open(t, b)
		defer s.Close()
		got, err := s.Read(ctx, stream, 0, 10, 10)
		if err != nil || !slices.Equal(seqs(got), []uint64{1, 2}) {
			t.Fatalf("after reopen: %v %v", seqs(got), err)
		}
		if err := s.Ping(ctx); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("equal times order by stream then seq, newest first, and cursors survive deletes", func(t *testing.T) {
		s := open(t, newBackend(t))
		defer s.Close()
		at := t0.Add(time.Hour)
		var recs []history.Record
		for _, st := range []string{"assets/a", "assets/ab", "assets/b"} {
			for i := uint64(1); i <= 3; i++ {
				r := Rec(st, i, nil)
				r.Time, r.Kind = at, "assets.same"
				recs = append(recs, r)
			}
		}
		appendAll(t, s, recs...)
		p, err := s.Query(ctx, history.Query{Kind: "assets.same", Limit: 4})
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"assets/b/3", "assets/b/2", "assets/b/1", "assets/ab/3"}
		for i, r := range p.Records {
			if got := fmt.Sprintf("%s/%d", r.Stream, r.Seq); got != want[i] {
				t.Fatalf("position %d: %s, want %s", i, got, want[i])
			}
		}
		// A prefix stream does not leak into its longer sibling.
		if got, _ := s.Read(ctx, "assets/a", 0, 10, 10); len(got) != 3 {
			t.Fatalf("read assets/a returned %d records, want 3", len(got))
		}
		if got, _ := s.Tail(ctx, "assets/a", 10); len(got) != 3 || got[2].Stream != "assets/a" {
			t.Fatalf("tail assets/a: %v", got)
		}
		if _, err := s.DeleteBefore(ctx, at.Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		next, err := s.Query(ctx, history.Query{Kind: "assets.same", Cursor: p.Next, Limit: 4})
		if err != nil || len(next.Records) != 0 || next.Next != "" {
			t.Fatalf("cursor after deleting everything: %d records, next %q, %v", len(next.Records), next.Next, err)
		}
		st, err := s.Stats(ctx)
		if err != nil || st.Records != 0 || st.Bytes != 0 {
			t.Fatalf("stats after deleting everything: %+v %v", st, err)
		}
	})

	t.Run("times are kept to the microsecond in UTC", func(t *testing.T) {
		s := open(t, newBackend(t))
		defer s.Close()
		r := Rec(stream, 1, nil)
		r.Time = time.Date(2026, 5, 6, 7, 8, 9, 123456789, time.FixedZone("X", 3600))
		appendAll(t, s, r)
		got, err := s.Read(ctx, stream, 1, 1, 1)
		if err != nil || len(got) != 1 {
			t.Fatal(err)
		}
		if want := r.Time.UTC().Truncate(time.Microsecond); !got[0].Time.Equal(want) || got[0].Time.Location() != time.UTC {
			t.Fatalf("time came back as %s, want %s", got[0].Time, want)
		}
	})

	t.Run("export walks every record in domain, stream, seq order", func(t *testing.T) {
		s := open(t, newBackend(t))
		defer s.Close()
		ex, ok := s.(history.Exporter)
		if !ok {
			t.Fatal("the store does not implement history.Exporter")
		}
		appendAll(t, s, Rec("communication/z", 2, nil), Rec("identity/b", 1, nil), Rec("communication/z", 1, nil), Rec("identity/a", 7, nil), Rec("automation/m", 3, nil))
		var got []string
		if err := ex.Each(ctx, func(r history.Record) error { got = append(got, fmt.Sprintf("%s/%d", r.Stream, r.Seq)); return nil }); err != nil {
			t.Fatal(err)
		}
		want := []string{"identity/a/7", "identity/b/1", "automation/m/3", "communication/z/1", "communication/z/2"}
		if !slices.Equal(got, want) {
			t.Fatalf("each visited %v, want %v", got, want)
		}
	})

	t.Run("close is idempotent", func(t *testing.T) {
		s := open(t, newBackend(t))
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil && !errors.Is(err, history.ErrClosed) {
			t.Fatalf("second close: %v", err)
		}
		if _, err := s.Tail(ctx, stream, 1); !errors.Is(err, history.ErrClosed) {
			t.Fatalf("tail after close: %v", err)
		}
	})

	t.Run("bad reads are refused naming the argument", func(t *testing.T) {
		s := open(t, newBackend(t))
		defer s.Close()
		for _, c := range []struct {
			stream string
			limit  int
			field  string
		}{{"nodomain", 10, "stream"}, {stream, 0, "limit"}, {stream, history.MaxPage + 1, "limit"}} {
			_, err := s.Read(ctx, c.stream, 0, 10, c.limit)
			if p, ok := problem.As(err); !ok || p.Field != c.field {
				t.Errorf("read %q limit %d: %v, want a problem on %s", c.stream, c.limit, err, c.field)
			}
			_, err = s.Tail(ctx, c.stream, c.limit)
			if p, ok := problem.As(err); !ok || p.Field != c.field {
				t.Errorf("tail %q n %d: %v, want a problem on %s", c.stream, c.limit, err, c.field)
			}
		}
		for _, kind := range []string{"", "nodot", "unknown.audit"} {
			if _, err := s.Query(ctx, history.Query{Kind: kind, Limit: 10}); !problem.Is(err, problem.KindInvalid) {
				t.Errorf("query kind %q: %v, want invalid", kind, err)
			}
		}
	})
}

// P99Millis is the 99th percentile of lat in milliseconds, for the
// backends' latency benchmarks. It sorts lat.
func P99Millis(lat []time.Duration) float64 {
	if len(lat) == 0 {
		return 0
	}
	slices.Sort(lat)
	return float64(lat[min(len(lat)-1, len(lat)*99/100)].Microseconds()) / 1000
}
