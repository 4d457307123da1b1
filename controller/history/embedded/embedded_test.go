package embedded

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"
	"go.uber.org/goleak"

	"github.com/opsconductor/opsconductor/controller/history"
	"github.com/opsconductor/opsconductor/controller/history/historytest"
	"github.com/opsconductor/opsconductor/controller/problem"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func dbPath(t testing.TB) string {
	return filepath.Join(t.TempDir(), "history", "history.db")
}

func openStore(t testing.TB, path string, opts Options) *Store {
	t.Helper()
	s, err := Open(path, opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func rec(stream string, seq uint64, at time.Time, fields map[string]string, data []byte) history.Record {
	domain, _ := history.Domain(stream)
	return history.Record{Stream: stream, Seq: seq, Time: at, Kind: domain + ".test", Fields: fields, Data: data}
}

func mustAppend(t testing.TB, s *Store, recs ...history.Record) {
	t.Helper()
	if err := s.Append(context.Background(), recs); err != nil {
		t.Fatalf("append %d records: %v", len(recs), err)
	}
}

func stats(t testing.TB, s *Store) history.Stats {
	t.Helper()
	st, err := s.Stats(context.Background())
	if err != nil {
		t.Fatalf("stats: %v", err)
	}
	return st
}

func seqsOf(recs []history.Record) []uint64 {
	out := make([]uint64, len(recs))
	for i, r := range recs {
		out[i] = r.Seq
	}
	return out
}

func span(from, to uint64) []uint64 {
	out := []uint64{}
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

// seed returns the seed of a randomised test, from OPSCONDUCTOR_TEST_SEED
// when set, and logs it so that a failure can be replayed.
func seed(t *testing.T) uint64 {
	t.Helper()
	s := uint64(time.Now().UnixNano())
	if v := os.Getenv("OPSCONDUCTOR_TEST_SEED"); v != "" {
		var err error
		if s, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("OPSCONDUCTOR_TEST_SEED: %v", err)
		}
	}
	t.Logf("seed %d (rerun with OPSCONDUCTOR_TEST_SEED=%d)", s, s)
	return s
}

func TestConformance(t *testing.T) {
	historytest.Run(t, func(t *testing.T) historytest.Backend {
		path := dbPath(t)
		return historytest.Backend{Open: func() (history.Store, error) { return Open(path, Options{}) }}
	})
}

func TestOpenCreatesAPrivateDirAndFile(t *testing.T) {
	path := dbPath(t)
	openStore(t, path, Options{})
	for _, c := range []struct {
		path string
		want os.FileMode
	}{{filepath.Dir(path), 0o700 | os.ModeDir}, {path, 0o600}} {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != c.want {
			t.Errorf("%s has mode %v, want %v", c.path, fi.Mode(), c.want)
		}
	}
}

func TestOpenRefusesAFileAnotherStoreHolds(t *testing.T) {
	path := dbPath(t)
	openStore(t, path, Options{})
	if s, err := Open(path, Options{}); err == nil {
		_ = s.Close()
		t.Fatal("a second store opened the same file")
	}
}

func TestEveryMethodAfterCloseReturnsErrClosed(t *testing.T) {
	s := openStore(t, dbPath(t), Options{})
	mustAppend(t, s, rec("automation/a", 1, t0, nil, nil))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, c := range []struct {
		name string
		call func() error
	}{
		{"a second Close is a no-op", func() error {
			if err := s.Close(); err != nil {
				return err
			}
			return history.ErrClosed
		}},
		{"Append is refused", func() error { return s.Append(ctx, []history.Record{rec("automation/a", 2, t0, nil, nil)}) }},
		{"Read is refused", func() error { _, err := s.Read(ctx, "automation/a", 0, 10, 10); return err }},
		{"Tail is refused", func() error { _, err := s.Tail(ctx, "automation/a", 10); return err }},
		{"Query is refused", func() error {
			_, err := s.Query(ctx, history.Query{Kind: "automation.test", Limit: 10})
			return err
		}},
		{"DeleteBefore is refused", func() error { _, err := s.DeleteBefore(ctx, t0.Add(time.Hour)); return err }},
		{"Stats is refused", func() error { _, err := s.Stats(ctx); return err }},
		{"Ping reports it", func() error { return s.Ping(ctx) }},
		{"Compact is refused", func() error { return s.Compact(ctx) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := c.call(); !errors.Is(err, history.ErrClosed) {
				t.Fatalf("got %v, want ErrClosed", err)
			}
		})
	}
}

// clock is the injected time retention measures MaxAge against.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// driven opens a store whose retention goroutine runs a pass only when
// the test calls pass, and reports what it did.
type driven struct {
	*Store
	tick   chan time.Time
	passes chan retentionPass
}

func openDriven(t *testing.T, path string, opts Options) *driven {
	t.Helper()
	d := &driven{tick: make(chan time.Time), passes: make(chan retentionPass, 1)}
	opts.tick = d.tick
	opts.passed = func(p retentionPass) { d.passes <- p }
	d.Store = openStore(t, path, opts)
	return d
}

func (d *driven) pass(t *testing.T) retentionPass {
	t.Helper()
	deadline := time.After(30 * time.Second)
	select {
	case d.tick <- time.Time{}:
	case <-deadline:
		t.Fatal("the retention goroutine does not take a tick")
	}
	select {
	case p := <-d.passes:
		if p.Err != nil {
			t.Fatalf("retention pass: %v", p.Err)
		}
		return p
	case <-deadline:
		t.Fatal("the retention pass does not finish")
	}
	panic("unreachable")
}

// assertLayout checks the invariants the layout relies on: a stream's
// chunks hold increasing seqs and never overlap, every index leaf is keyed
// by its first posting and follows the one before, each posting names a
// stored record of its index's kind, fieldcounts counts each field index
// exactly, and meta counts the records.
func assertLayout(t *testing.T, s *Store) {
	t.Helper()
	err := s.view(func(tx *bbolt.Tx) error {
		b := bucketsOf(tx)
		stored := map[ref]history.Record{}
		var prevStream []byte
		var prevLast uint64
		err := b.records.ForEach(func(k, v []byte) error {
			recs, err := decodeChunk(nil, k, v)
			if err != nil {
				return err
			}
			stream, first, _ := splitRecordKey(k)
			if bytes.Equal(stream, prevStream) && first <= prevLast {
				return fmt.Errorf("chunk %s/%d overlaps the one before, which ends at %d", stream, first, prevLast)
			}
			if len(recs) > 1 && len(v) > maxChunkBytes {
				return fmt.Errorf("chunk %s/%d holds %d bytes", stream, first, len(v))
			}
			if b.streams.Get(stream) == nil {
				return fmt.Errorf("stream %s has no id", stream)
			}
			prevStream, prevLast = bytes.Clone(stream), recs[len(recs)-1].seq
			for _, cr := range recs {
				r, err := decodeRecord(string(stream), cr, nil)
				if err != nil {
					return err
				}
				stored[ref{r.Stream, r.Seq}] = r
			}
			return nil
		})
		if err != nil {
			return err
		}
		if n := getUint(b.meta, metaRecords); n != int64(len(stored)) {
			return fmt.Errorf("meta counts %d records, the chunks hold %d", n, len(stored))
		}
		rr := newRecordReader(b)
		counts := map[string]int64{}
		var prevPrefix []byte
		var prevPosting posting
		err = b.byField.ForEach(func(k, v []byte) error {
			prefix, key := k[:len(k)-postingKeyLen], k[len(k)-postingKeyLen:]
			first, _ := parsePostingKey(key)
			ps, err := decodeLeaf(nil, v)
			if err != nil {
				return err
			}
			if ps[0] != first {
				return fmt.Errorf("leaf %q starts at %v", k, ps[0])
			}
			if bytes.Equal(prefix, prevPrefix) && first.compare(prevPosting) <= 0 {
				return fmt.Errorf("leaf %q does not follow the one before", k)
			}
			prevPrefix, prevPosting = bytes.Clone(prefix), ps[len(ps)-1]
			kind, field, _ := strings.Cut(string(prefix[:len(prefix)-1]), "\x00")
			for _, p := range ps {
				name, err := rr.name(p.sid)
				if err != nil {
					return err
				}
				r, ok := stored[ref{name, p.seq}]
				if !ok || r.Kind != kind || timeKey(r.Time) != p.time {
					return fmt.Errorf("index %q names %s/%d, which is not a record of it", prefix, name, p.seq)
				}
				if field != "" {
					k, v, _ := strings.Cut(field, "=")
					if r.Fields[k] != v {
						return fmt.Errorf("index %q names %s/%d, whose %s is %q", prefix, name, p.seq, k, r.Fields[k])
					}
					counts[string(prefix)]++
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		err = b.fieldCounts.ForEach(func(k, v []byte) error {
			if n := getUint(b.fieldCounts, k); n != counts[string(k)] {
				return fmt.Errorf("fieldcounts has %d for %q, the index holds %d", n, k, counts[string(k)])
			}
			delete(counts, string(k))
			return nil
		})
		if err == nil && len(counts) > 0 {
			err = fmt.Errorf("fieldcounts lacks indexes %v", slices.Collect(maps.Keys(counts)))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// assertEmptyIndexes checks that deleting every record left no index entry
// or field count behind.
func assertEmptyIndexes(t *testing.T, s *Store) {
	t.Helper()
	err := s.view(func(tx *bbolt.Tx) error {
		for _, name := range [][]byte{bucketRecords, bucketStreams, bucketStreamIDs, bucketByField, bucketFieldCounts} {
			if k, _ := tx.Bucket(name).Cursor().First(); k != nil {
				return fmt.Errorf("bucket %s still holds %q", name, k)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestRetentionByAgeFollowsTheClock(t *testing.T) {
	ctx := context.Background()
	clk := &clock{now: t0.Add(100 * time.Second)}
	s := openDriven(t, dbPath(t), Options{Retention: Retention{MaxAge: 60 * time.Second}, Now: clk.Now})
	for i := uint64(1); i <= 100; i++ {
		mustAppend(t, s.Store, rec("automation/run/r1/log", i, t0.Add(time.Duration(i)*time.Second), map[string]string{"run_id": "r1"}, []byte("line")))
	}
	for _, c := range []struct {
		name        string
		now         time.Time
		wantDeleted int64
		wantOldest  uint64 // 0: the store is empty
	}{
		{"a pass removes what is older than MaxAge", t0.Add(100 * time.Second), 39, 40},
		{"a pass with no time passed removes nothing", t0.Add(100 * time.Second), 0, 40},
		{"a later pass removes what has aged since", t0.Add(130 * time.Second), 30, 70},
		{"a pass after everything aged empties the store", t0.Add(time.Hour), 31, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			clk.Set(c.now)
			if p := s.pass(t); p.ByAge != c.wantDeleted || p.BySize != 0 {
				t.Fatalf("pass %+v, want %d deleted by age", p, c.wantDeleted)
			}
			st := stats(t, s.Store)
			got, err := s.Read(ctx, "automation/run/r1/log", 0, math.MaxUint64, 1000)
			if err != nil {
				t.Fatal(err)
			}
			page, err := s.Query(ctx, history.Query{Kind: "automation.test", Fields: map[string]string{"run_id": "r1"}, Limit: 1000})
			if err != nil {
				t.Fatal(err)
			}
			if c.wantOldest == 0 {
				if st != (history.Stats{}) || len(got) != 0 || len(page.Records) != 0 {
					t.Fatalf("stats %+v, read %v, query %v; want empty", st, seqsOf(got), seqsOf(page.Records))
				}
				assertEmptyIndexes(t, s.Store)
				return
			}
			want := span(c.wantOldest, 100)
			if !slices.Equal(seqsOf(got), want) || len(page.Records) != len(want) {
				t.Fatalf("read %v, query %d records; want %v", seqsOf(got), len(page.Records), want)
			}
			if st.Records != int64(len(want)) || !st.Oldest.Equal(t0.Add(time.Duration(c.wantOldest)*time.Second)) {
				t.Fatalf("stats %+v, want %d records from seq %d", st, len(want), c.wantOldest)
			}
		})
	}
}

func TestRetentionBySizeRemovesTheOldestFirst(t *testing.T) {
	clk := &clock{now: t0}
	path := dbPath(t)
	// Every record has the same size: one stream, fixed-width seqs in the
	// keys, same fields and data length.
	add := func(s *Store, from, to uint64) {
		for i := from; i <= to; i++ {
			mustAppend(t, s, rec("assets/scan", i, t0.Add(time.Duration(i)*time.Second), map[string]string{"host": "h1"}, bytes.Repeat([]byte{'x'}, 200)))
		}
	}
	probe := openStore(t, filepath.Join(t.TempDir(), "probe.db"), Options{})
	add(probe, 1, 1)
	one := stats(t, probe).Bytes

	s := openDriven(t, path, Options{Retention: Retention{MaxBytes: 30*one + one/2}, Now: clk.Now})
	for _, c := range []struct {
		name        string
		add         [2]uint64
		wantDeleted int64
		wantFirst   uint64
		wantLast    uint64
	}{
		{"a pass under the limit removes nothing", [2]uint64{1, 20}, 0, 1, 20},
		{"a pass over the limit removes the oldest until under it", [2]uint64{21, 100}, 70, 71, 100},
		{"the next pass trims only what was added since", [2]uint64{101, 110}, 10, 81, 110},
	} {
		t.Run(c.name, func(t *testing.T) {
			add(s.Store, c.add[0], c.add[1])
			if p := s.pass(t); p.BySize != c.wantDeleted || p.ByAge != 0 {
				t.Fatalf("pass %+v, want %d deleted by size", p, c.wantDeleted)
			}
			got, err := s.Read(context.Background(), "assets/scan", 0, math.MaxUint64, 1000)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(seqsOf(got), span(c.wantFirst, c.wantLast)) {
				t.Fatalf("kept %v, want %d..%d", seqsOf(got), c.wantFirst, c.wantLast)
			}
			st := stats(t, s.Store)
			if st.Bytes != int64(len(got))*one || st.Bytes > 30*one+one/2 {
				t.Fatalf("stats %+v with %d records of %d bytes", st, len(got), one)
			}
		})
	}
}

func TestDeleteBeforeSpansTransactionsAndKeepsCountsExact(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, dbPath(t), Options{})
	const n = 2*deleteBatch + 500
	streams := []string{"automation/x", "automation/x/y", "automation/x0"}
	var batch []history.Record
	for i := range uint64(n) {
		st := streams[i%3]
		batch = append(batch, rec(st, i, t0.Add(time.Duration(i)*time.Millisecond), map[string]string{"shard": strconv.Itoa(int(i % 7))}, []byte(`{}`)))
		if len(batch) == 1000 {
			mustAppend(t, s, batch...)
			batch = nil
		}
	}
	mustAppend(t, s, batch...)
	full := stats(t, s)
	if full.Records != n {
		t.Fatalf("stats %+v, want %d records", full, n)
	}
	got, err := s.DeleteBefore(ctx, t0.Add((n-100)*time.Millisecond))
	if err != nil || got != n-100 {
		t.Fatalf("deleted %d, %v; want %d", got, err, n-100)
	}
	if st := stats(t, s); st.Records != 100 || !st.Oldest.Equal(t0.Add((n-100)*time.Millisecond)) {
		t.Fatalf("stats %+v, want 100 records", st)
	}
	if got, err := s.DeleteBefore(ctx, t0.Add(time.Hour)); err != nil || got != 100 {
		t.Fatalf("deleted %d, %v; want 100", got, err)
	}
	if st := stats(t, s); st != (history.Stats{}) {
		t.Fatalf("stats %+v after deleting everything", st)
	}
	assertEmptyIndexes(t, s)
}

func fileSize(t testing.TB, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// fill appends records of 1 KiB over 10 streams, times one millisecond apart.
func fill(t testing.TB, s *Store, n int) {
	t.Helper()
	data := bytes.Repeat([]byte{'d'}, 1024)
	var batch []history.Record
	for i := range uint64(n) {
		batch = append(batch, rec(fmt.Sprintf("automation/s%d", i%10), i, t0.Add(time.Duration(i)*time.Millisecond), map[string]string{"run_id": fmt.Sprint(i % 100)}, data))
		if len(batch) == 1000 || int(i) == n-1 {
			mustAppend(t, s, batch...)
			batch = nil
		}
	}
}

func TestCompactionReturnsFreeSpaceToTheFileSystem(t *testing.T) {
	ctx := context.Background()
	const n = 30_000 // about 40 MiB with indexes
	for _, c := range []struct {
		name    string
		compact func(t *testing.T, s *driven)
	}{
		{"when called directly", func(t *testing.T, s *driven) {
			if err := s.Compact(ctx); err != nil {
				t.Fatal(err)
			}
		}},
		{"when a retention pass finds more than half the file free", func(t *testing.T, s *driven) {
			if p := s.pass(t); !p.Compacted {
				t.Fatalf("pass %+v did not compact", p)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := dbPath(t)
			s := openDriven(t, path, Options{CompactMinBytes: 1 << 20})
			fill(t, s.Store, n)
			if p := s.pass(t); p.Compacted {
				t.Fatal("a pass compacted a file with nothing free")
			}
			if _, err := s.DeleteBefore(ctx, t0.Add(n*9/10*time.Millisecond)); err != nil {
				t.Fatal(err)
			}
			before, st := fileSize(t, path), stats(t, s.Store)
			c.compact(t, s)
			after := fileSize(t, path)
			t.Logf("file %d → %d bytes for %d records of %d bytes", before, after, st.Records, st.Bytes)
			if after > before/3 {
				t.Fatalf("file %d bytes after compaction, was %d", after, before)
			}
			if got := stats(t, s.Store); got != st {
				t.Fatalf("stats %+v after compaction, were %+v", got, st)
			}
			tail, err := s.Tail(ctx, "automation/s3", 5)
			if err != nil || !slices.Equal(seqsOf(tail), []uint64{n - 47, n - 37, n - 27, n - 17, n - 7}) {
				t.Fatalf("tail after compaction: %v %v", seqsOf(tail), err)
			}
			page, err := s.Query(ctx, history.Query{Kind: "automation.test", Fields: map[string]string{"run_id": "3"}, Limit: 1000})
			if err != nil || len(page.Records) != n/10/100 {
				t.Fatalf("query after compaction: %d records %v", len(page.Records), err)
			}
			mustAppend(t, s.Store, rec("automation/s3", n, t0.Add(time.Hour), nil, nil))
			for _, suffix := range []string{compactSuffix, staleSuffix} {
				if _, err := os.Stat(path + suffix); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("%s is still there: %v", path+suffix, err)
				}
			}
		})
	}
}

func TestCompactionLosesNoConcurrentAppend(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, dbPath(t), Options{})
	fill(t, s, 20_000)
	if _, err := s.DeleteBefore(ctx, t0.Add(15*time.Second)); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	acked := make(chan uint64, 1)
	go func() {
		seq := uint64(0)
		defer func() { acked <- seq }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			// Two records a batch, one of them repeated from the batch
			// before, to replay dedup too.
			batch := []history.Record{
				rec("automation/during", seq+1, t0.Add(time.Hour), map[string]string{"during": "yes"}, []byte("x")),
				rec("automation/during", max(seq, 1), t0.Add(time.Hour), map[string]string{"during": "yes"}, []byte("x")),
			}
			if err := s.Append(ctx, batch); err != nil {
				t.Errorf("append during compaction: %v", err)
				return
			}
			seq++
		}
	}()
	var readErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		for range 50 {
			if _, err := s.Tail(ctx, "automation/s1", 10); err != nil {
				readErr = err
				return
			}
		}
	})
	replayed := 0
	for range 3 {
		c, err := s.compact(ctx)
		if err != nil {
			t.Fatal(err)
		}
		replayed += c.Replayed
	}
	close(stop)
	last := <-acked
	wg.Wait()
	t.Logf("%d batches appended, %d records replayed", last, replayed)
	assertLayout(t, s)
	if readErr != nil {
		t.Fatalf("read during compaction: %v", readErr)
	}
	got, err := s.Read(ctx, "automation/during", 0, math.MaxUint64, history.MaxPage)
	if err != nil || !slices.Equal(seqsOf(got), span(1, last)) {
		t.Fatalf("acknowledged %d appends, read back %d: %v", last, len(got), err)
	}
	page, err := s.Query(ctx, history.Query{Kind: "automation.test", Fields: map[string]string{"during": "yes"}, Limit: history.MaxPage})
	if err != nil || len(page.Records) != int(last) {
		t.Fatalf("query found %d of %d appended records: %v", len(page.Records), last, err)
	}
	if st := stats(t, s); st.Records != 5000+int64(last) {
		t.Fatalf("stats %+v, want %d records", st, 5000+last)
	}
	// The counters the replay kept must be the ones deletes find.
	if n, err := s.DeleteBefore(ctx, t0.Add(2*time.Hour)); err != nil || n != 5000+int64(last) {
		t.Fatalf("deleted %d, %v", n, err)
	}
	if st := stats(t, s); st != (history.Stats{}) {
		t.Fatalf("stats %+v after deleting everything", st)
	}
	assertEmptyIndexes(t, s)
}

func TestCloseAbandonsACompactionInProgress(t *testing.T) {
	path := dbPath(t)
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	fill(t, s, 20_000)
	done := make(chan error, 1)
	go func() { done <- s.Compact(context.Background()) }()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The compaction either finished before Close or gave up because of it.
	if err := <-done; err != nil && !errors.Is(err, history.ErrClosed) && !errors.Is(err, context.Canceled) {
		t.Fatalf("compaction: %v", err)
	}
	if _, err := os.Stat(path + compactSuffix); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the compaction copy is still there: %v", err)
	}
	s = openStore(t, path, Options{})
	if st := stats(t, s); st.Records != 20_000 {
		t.Fatalf("stats after reopen: %+v", st)
	}
}

func TestOpenRemovesWhatACrashedCompactionLeft(t *testing.T) {
	for _, suffix := range []string{compactSuffix, staleSuffix} {
		t.Run(fmt.Sprintf("a leftover %s file is removed", suffix), func(t *testing.T) {
			path := dbPath(t)
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path+suffix, []byte("half a copy"), 0o600); err != nil {
				t.Fatal(err)
			}
			openStore(t, path, Options{})
			if _, err := os.Stat(path + suffix); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("%s is still there: %v", path+suffix, err)
			}
		})
	}
}

// modelOrder is Query's order: newest first by (Time, Stream, Seq).
func modelOrder(a, b history.Record) int {
	return cmp.Or(b.Time.Compare(a.Time), strings.Compare(b.Stream, a.Stream), cmp.Compare(b.Seq, a.Seq))
}

type ref struct {
	stream string
	seq    uint64
}

func refs(recs []history.Record) []ref {
	out := []ref{}
	for _, r := range recs {
		out = append(out, ref{r.Stream, r.Seq})
	}
	return out
}

// TestQueriesMatchAModel runs random queries, paged, over random records
// with many equal times, and compares every answer with a brute-force
// filter and sort, before and after a delete.
func TestQueriesMatchAModel(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed(t), 1))
	s := openStore(t, dbPath(t), Options{})
	// Streams that are prefixes of one another, to catch a key that
	// confuses them.
	streams := []string{"automation/a", "automation/a/b", "automation/a0", "automation/b", "automation/ab"}
	kinds := []string{"automation.run", "automation.step"}
	values := map[string][]string{"status": {"ok", "failed"}, "actor": {"u0", "u1", "u2"}, "run": {"r0", "r1", "r2", "r3", "r4", "r5"}}
	// Sorted, so that the same seed draws the same numbers.
	fields := slices.Sorted(maps.Keys(values))
	next := map[string]uint64{}
	var model []history.Record
	for range 3000 {
		st := streams[rng.IntN(len(streams))]
		next[st]++
		r := history.Record{Stream: st, Seq: next[st], Time: t0.Add(time.Duration(rng.IntN(400)) * time.Second),
			Kind: kinds[rng.IntN(len(kinds))], Fields: map[string]string{}, Data: []byte(fmt.Sprint(rng.Uint64()))}
		for _, k := range fields {
			if vs := values[k]; rng.IntN(4) > 0 {
				r.Fields[k] = vs[rng.IntN(len(vs))]
			}
		}
		if len(r.Fields) == 0 {
			r.Fields = nil // as the store returns it
		}
		model = append(model, r)
	}
	shuffled := slices.Clone(model)
	rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	for b := range slices.Chunk(shuffled, 100) {
		mustAppend(t, s, b...)
	}

	check := func(t *testing.T, model []history.Record) {
		for i := range 300 {
			q := history.Query{Kind: kinds[rng.IntN(len(kinds))], Fields: map[string]string{}, Limit: 1 + rng.IntN(60)}
			for _, k := range fields {
				if vs := values[k]; rng.IntN(3) == 0 {
					q.Fields[k] = vs[rng.IntN(len(vs))]
				}
			}
			if rng.IntN(2) == 0 {
				q.Since = t0.Add(time.Duration(rng.IntN(200)) * time.Second)
			}
			if rng.IntN(2) == 0 {
				q.Until = t0.Add(time.Duration(200+rng.IntN(250)) * time.Second)
			}
			var want []history.Record
			for _, r := range model {
				if r.Kind == q.Kind && (q.Since.IsZero() || !r.Time.Before(q.Since)) && (q.Until.IsZero() || r.Time.Before(q.Until)) {
					match := true
					for k, v := range q.Fields {
						if r.Fields[k] != v {
							match = false
						}
					}
					if match {
						want = append(want, r)
					}
				}
			}
			slices.SortFunc(want, modelOrder)
			var got []history.Record
			for pages := 0; ; pages++ {
				p, err := s.Query(ctx, q)
				if err != nil {
					t.Fatalf("query %d %+v: %v", i, q, err)
				}
				if p.Next != "" && len(p.Records) != q.Limit {
					t.Fatalf("query %d: a page of %d records, limit %d, is not the last", i, len(p.Records), q.Limit)
				}
				got = append(got, p.Records...)
				if p.Next == "" {
					break
				}
				if pages > len(model) {
					t.Fatalf("query %d: paging does not end", i)
				}
				q.Cursor = p.Next
			}
			if !slices.Equal(refs(got), refs(want)) {
				t.Fatalf("query %d %+v:\n got %v\nwant %v", i, q, refs(got), refs(want))
			}
			for j := range got {
				if !reflect.DeepEqual(got[j], want[j]) {
					t.Fatalf("query %d: record %+v came back as %+v", i, want[j], got[j])
				}
			}
		}
		for _, st := range streams {
			var own []history.Record
			for _, r := range model {
				if r.Stream == st {
					own = append(own, r)
				}
			}
			slices.SortFunc(own, func(a, b history.Record) int { return cmp.Compare(a.Seq, b.Seq) })
			n := 1 + rng.IntN(len(own))
			tail, err := s.Tail(ctx, st, n)
			if err != nil || !slices.Equal(refs(tail), refs(own[len(own)-n:])) {
				t.Fatalf("tail %s %d: %v %v", st, n, refs(tail), err)
			}
		}
	}
	assertLayout(t, s)
	t.Run("queries match before any delete", func(t *testing.T) { check(t, model) })
	cut := t0.Add(150 * time.Second)
	n, err := s.DeleteBefore(ctx, cut)
	if err != nil {
		t.Fatal(err)
	}
	model = slices.DeleteFunc(model, func(r history.Record) bool { return r.Time.Before(cut) })
	if int(n) != 3000-len(model) {
		t.Fatalf("deleted %d, want %d", n, 3000-len(model))
	}
	assertLayout(t, s)
	t.Run("queries match after a delete", func(t *testing.T) { check(t, model) })
}

func TestQueryRefusesMalformedCursors(t *testing.T) {
	s := openStore(t, dbPath(t), Options{})
	for _, c := range []struct{ name, cursor string }{
		{"not base64", "not a cursor"},
		{"an unknown version", "Ag"},
		{"a truncated position", encodeCursor([]byte{1, 2, 3})},
		{"a position without its separator", encodeCursor(bytes.Repeat([]byte{1}, minPosLen))},
	} {
		t.Run(c.name+" is refused naming the cursor", func(t *testing.T) {
			_, err := s.Query(context.Background(), history.Query{Kind: "automation.test", Cursor: c.cursor, Limit: 5})
			if p, ok := problem.As(err); !ok || p.Kind != problem.KindInvalid || p.Field != "cursor" {
				t.Fatalf("got %v, want an invalid problem on cursor", err)
			}
		})
	}
}

func TestArgumentsNoRecordCanMatchAreRefused(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, dbPath(t), Options{})
	// A record whose key bytes a NUL in the argument would otherwise match.
	mustAppend(t, s, rec("automation/a", 0x7800_0000_0000_0001, t0, map[string]string{"k": "v=w"}, nil))
	for _, c := range []struct {
		name  string
		call  func() error
		field string
	}{
		{"a read of a stream with NUL", func() error { _, err := s.Read(ctx, "automation/a\x00x", 0, math.MaxUint64, 10); return err }, "stream"},
		{"a tail of a stream with NUL", func() error { _, err := s.Tail(ctx, "automation/a\x00x", 10); return err }, "stream"},
		{"a query of a kind with NUL", func() error {
			_, err := s.Query(ctx, history.Query{Kind: "automation.test\x00", Limit: 10})
			return err
		}, "kind"},
		{"a query of a field key with '='", func() error {
			_, err := s.Query(ctx, history.Query{Kind: "automation.test", Fields: map[string]string{"k=v": "w"}, Limit: 10})
			return err
		}, "fields"},
		{"a query of a field value with NUL", func() error {
			_, err := s.Query(ctx, history.Query{Kind: "automation.test", Fields: map[string]string{"k": "v\x00"}, Limit: 10})
			return err
		}, "fields"},
	} {
		t.Run(c.name+" is refused naming the argument", func(t *testing.T) {
			if p, ok := problem.As(c.call()); !ok || p.Kind != problem.KindInvalid || p.Field != c.field {
				t.Fatalf("got %v, want an invalid problem on %s", p, c.field)
			}
		})
	}
}

func TestRecordsComeBackAsStored(t *testing.T) {
	cest := time.FixedZone("CEST", 2*3600)
	for _, c := range []struct {
		name     string
		in       history.Record
		wantTime time.Time
	}{
		{"a minimal record comes back whole",
			history.Record{Stream: "identity/x", Seq: 0, Time: time.Unix(0, 1000).UTC(), Kind: "identity.login"},
			time.Unix(0, 1000).UTC()},
		{"a record at the largest seq, before 1970, comes back whole",
			history.Record{Stream: "assets/h", Seq: history.MaxSeq, Time: time.Date(1901, 2, 3, 4, 5, 6, 999_999_000, time.UTC), Kind: "assets.seen"},
			time.Date(1901, 2, 3, 4, 5, 6, 999_999_000, time.UTC)},
		{"a record in the last storable year comes back whole",
			history.Record{Stream: "assets/h", Seq: 7, Time: time.Date(9999, 12, 31, 23, 59, 59, 999_999_000, time.UTC), Kind: "assets.seen",
				Fields: map[string]string{"a": "", "b": "é"}, Data: []byte{0, 1, 2}},
			time.Date(9999, 12, 31, 23, 59, 59, 999_999_000, time.UTC)},
		{"a time in another zone with nanoseconds comes back in UTC truncated to the microsecond",
			history.Record{Stream: "assets/h", Seq: 8, Time: time.Date(2026, 5, 1, 10, 0, 0, 1999, cest), Kind: "assets.seen"},
			time.Date(2026, 5, 1, 8, 0, 0, 1000, time.UTC)},
		{"a time before 1970 with nanoseconds is truncated towards the past",
			history.Record{Stream: "assets/h", Seq: 9, Time: time.Date(1969, 12, 31, 23, 59, 59, 1999, time.UTC), Kind: "assets.seen"},
			time.Date(1969, 12, 31, 23, 59, 59, 1000, time.UTC)},
	} {
		t.Run(c.name, func(t *testing.T) {
			want := c.in
			want.Time = c.wantTime
			got, err := roundTrip(c.in)
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("decoded %+v, %v; want %+v", got, err, want)
			}
			s := openStore(t, dbPath(t), Options{})
			mustAppend(t, s, c.in)
			page, err := s.Query(context.Background(), history.Query{Kind: c.in.Kind, Fields: c.in.Fields, Limit: 1})
			if err != nil || len(page.Records) != 1 || !reflect.DeepEqual(page.Records[0], want) {
				t.Fatalf("query: %+v, %v; want %+v", page.Records, err, want)
			}
		})
	}
}

func TestTimeBoundsCompareStoredMicrosecondsExactly(t *testing.T) {
	ctx := context.Background()
	base := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	s := openStore(t, dbPath(t), Options{})
	// Stored as base+1µs.
	mustAppend(t, s, rec("assets/precise", 1, base.Add(1500*time.Nanosecond), nil, nil))
	for _, c := range []struct {
		name         string
		since, until time.Duration
		found        bool
	}{
		{"since the stored microsecond finds it", 1000, 0, true},
		{"since a nanosecond after it does not", 1001, 0, false},
		{"until a nanosecond after it finds it", 0, 1001, true},
		{"until the stored microsecond does not", 0, 1000, false},
		{"bounds beyond any storable year find it", -1e6 * time.Hour, 1e6 * time.Hour, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			q := history.Query{Kind: "assets.test", Limit: 10}
			if c.since != 0 {
				q.Since = base.Add(c.since)
			}
			if c.until != 0 {
				q.Until = base.Add(c.until)
			}
			p, err := s.Query(ctx, q)
			if err != nil || (len(p.Records) == 1) != c.found {
				t.Fatalf("query %v..%v: %v %v, want found %v", c.since, c.until, seqsOf(p.Records), err, c.found)
			}
		})
	}
	t.Run("deleting before the stored microsecond keeps it, a nanosecond after removes it", func(t *testing.T) {
		if n, err := s.DeleteBefore(ctx, base.Add(1000)); err != nil || n != 0 {
			t.Fatalf("deleted %d, %v; want 0", n, err)
		}
		if n, err := s.DeleteBefore(ctx, base.Add(1001)); err != nil || n != 1 {
			t.Fatalf("deleted %d, %v; want 1", n, err)
		}
	})
}

func TestEachWalksDomainsThenStreamsAndSeqs(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, dbPath(t), Options{})
	// Streams that are prefixes of one another, and domains out of order.
	streams := []string{"communication/audit", "automation/a/b", "automation/a", "assets/x", "automation/a0", "identity/users"}
	var recs []history.Record
	for i := uint64(1); i <= 40; i++ {
		for _, st := range streams {
			recs = append(recs, rec(st, 41-i, t0.Add(time.Duration(i)*time.Second), nil, []byte("d")))
		}
	}
	mustAppend(t, s, recs...)
	var want []ref
	for _, st := range []string{"identity/users", "assets/x", "automation/a", "automation/a/b", "automation/a0", "communication/audit"} {
		for i := uint64(1); i <= 40; i++ {
			want = append(want, ref{st, i})
		}
	}
	for _, chunk := range []int{1, 7, 40, eachRecords} {
		t.Run(fmt.Sprintf("in chunks of %d every record comes once, in order", chunk), func(t *testing.T) {
			var got []ref
			err := s.each(ctx, func(r history.Record) error {
				got = append(got, ref{r.Stream, r.Seq})
				return nil
			}, chunk)
			if err != nil || !slices.Equal(got, want) {
				t.Fatalf("walked %v, %v\nwant %v", got, err, want)
			}
		})
	}
	t.Run("an error from fn stops the walk and comes back as it is", func(t *testing.T) {
		stop := errors.New("stop")
		n := 0
		err := s.Each(ctx, func(history.Record) error {
			if n++; n == 50 {
				return stop
			}
			return nil
		})
		if err != stop || n != 50 {
			t.Fatalf("walk ended after %d records with %v", n, err)
		}
	})
}

// chunkRecOf is r as a chunk holds it.
func chunkRecOf(r history.Record) chunkRec {
	return chunkRec{seq: r.Seq, time: r.Time.UnixMicro(), head: appendHead(nil, r.Kind, sortedFields(r)), data: r.Data}
}

// roundTrip stores r in a chunk of its own and reads it back.
func roundTrip(r history.Record) (history.Record, error) {
	key := appendRecordKey(nil, r.Stream, r.Seq)
	recs, err := decodeChunk(nil, key, encodeChunk(nil, []chunkRec{chunkRecOf(r)}))
	if err != nil {
		return history.Record{}, err
	}
	if len(recs) != 1 || recs[0].seq != r.Seq {
		return history.Record{}, fmt.Errorf("chunk of one record decodes as %d records", len(recs))
	}
	return decodeRecord(r.Stream, recs[0], nil)
}

func FuzzDecodeRecord(f *testing.F) {
	for _, r := range []history.Record{
		rec("automation/run/1/log", 42, t0, map[string]string{"run_id": "1", "status": "ok"}, []byte(`{"line":1}`)),
		rec("automation/run/1/log", 42, time.Date(1600, 1, 1, 0, 0, 0, 5, time.UTC), nil, nil),
	} {
		cr := chunkRecOf(r)
		f.Add(cr.head, cr.time, cr.data)
	}
	f.Add([]byte{0}, int64(-1), []byte{})
	f.Add([]byte{0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, int64(math.MaxInt64), []byte{0})
	f.Add([]byte{}, int64(0), []byte(nil))
	f.Fuzz(func(t *testing.T, head []byte, micros int64, data []byte) {
		r, err := decodeRecord("automation/run/1/log", chunkRec{42, micros, head, data}, &interner{})
		if err != nil {
			return
		}
		// What decodes must encode to something that decodes the same.
		again, err := decodeRecord(r.Stream, chunkRecOf(r), nil)
		if err != nil || !reflect.DeepEqual(again, r) {
			t.Fatalf("%+v re-encoded decodes as %+v, %v", r, again, err)
		}
	})
}

func FuzzDecodeChunk(f *testing.F) {
	key := appendRecordKey(nil, "automation/run/1/log", 42)
	r := rec("automation/run/1/log", 42, t0, map[string]string{"run_id": "1"}, []byte(`{"line":1}`))
	a, b, c := chunkRecOf(r), chunkRecOf(r), chunkRecOf(r)
	b.seq, b.time = 43, b.time-5
	c.seq, c.head, c.data = 100, []byte{0}, nil
	f.Add(key, encodeChunk(nil, []chunkRec{a, b, c}))
	f.Add(key, encodeChunk(nil, []chunkRec{a}))
	f.Add(key, []byte{chunkFormatV1, 0, 0, 0, 0, 0, 0, 0, 42, 0, 2, 0, 0})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0}, []byte{2})
	f.Add([]byte{}, []byte{})
	f.Fuzz(func(t *testing.T, key, val []byte) {
		recs, err := decodeChunk(nil, key, val)
		if err != nil {
			return
		}
		_, first, _ := splitRecordKey(key)
		if len(recs) == 0 || recs[0].seq != first || !slices.IsSortedFunc(recs, func(a, b chunkRec) int { return cmp.Compare(a.seq, b.seq) }) {
			t.Fatalf("chunk %q decodes to records out of order", key)
		}
		again, err := decodeChunk(nil, key, encodeChunk(nil, recs))
		if err != nil || !reflect.DeepEqual(again, recs) {
			t.Fatalf("chunk re-encoded decodes as %v, %v", again, err)
		}
		if n := len(encodeChunk(nil, recs)); n > len(val) {
			t.Fatalf("chunk of %d bytes re-encodes to %d", len(val), n)
		}
	})
}

func FuzzDecodeLeaf(f *testing.F) {
	f.Add(encodeLeaf(nil, []posting{{timeKey(t0), 1, 1}, {timeKey(t0), 1, 2}, {timeKey(t0.Add(time.Second)), 7, 0}}))
	f.Add([]byte{0, 0, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, val []byte) {
		ps, err := decodeLeaf(nil, val)
		if err != nil {
			return
		}
		if len(ps) == 0 || !slices.IsSortedFunc(ps, posting.compare) {
			t.Fatalf("leaf %x decodes to postings out of order: %v", val, ps)
		}
		again, err := decodeLeaf(nil, encodeLeaf(nil, ps))
		if err != nil || !slices.Equal(again, ps) || leafLen(ps) != len(encodeLeaf(nil, ps)) {
			t.Fatalf("postings %v re-encoded decode as %v, %v", ps, again, err)
		}
	})
}

func FuzzDecodeCursor(f *testing.F) {
	pos := append(appendTimeKey(nil, t0), appendRecordKey(nil, "communication/audit", 9)...)
	f.Add(encodeCursor(pos))
	f.Add("")
	f.Add("AQ")
	f.Add("not a cursor")
	f.Fuzz(func(t *testing.T, s string) {
		pos, err := decodeCursor(s)
		if err != nil {
			return
		}
		again, err := decodeCursor(encodeCursor(pos))
		if !validPos(pos) || err != nil || !bytes.Equal(again, pos) {
			t.Fatalf("cursor %q decodes to %q, which does not round-trip: %q %v", s, pos, again, err)
		}
	})
}

const crashHelperEnv = "OPSCONDUCTOR_HISTORY_CRASH_HELPER"

var crashStreams = []string{"automation/crash/a", "automation/crash/b", "communication/crash", "assets/crash"}

// TestHelperProcess is the child of TestCrashMidBatchKeepsBatchesWhole: it
// appends batches holding seqs b*10+1..b*10+10 of every crash stream, and
// reports each batch once Append returns, until it is killed.
func TestHelperProcess(t *testing.T) {
	path := os.Getenv(crashHelperEnv)
	if path == "" {
		return
	}
	ctx := context.Background()
	s, err := Open(path, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	// Go on from what an earlier child committed.
	last, err := s.Tail(ctx, crashStreams[0], 1)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	b := uint64(0)
	if len(last) == 1 {
		b = last[0].Seq / 10
	}
	data := bytes.Repeat([]byte{'c'}, 700)
	for ; ; b++ {
		var batch []history.Record
		for _, st := range crashStreams {
			for i := uint64(1); i <= 10; i++ {
				seq := b*10 + i
				domain, _ := history.Domain(st)
				batch = append(batch, history.Record{Stream: st, Seq: seq, Time: t0.Add(time.Duration(seq) * time.Millisecond),
					Kind: domain + ".crash", Fields: map[string]string{"batch": fmt.Sprint(b)}, Data: data})
			}
		}
		if err := s.Append(ctx, batch); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		fmt.Printf("committed %d\n", b)
	}
}

func TestCrashMidBatchKeepsBatchesWhole(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	rng := rand.New(rand.NewPCG(seed(t), 2))
	path := dbPath(t)
	committed := -1 // the highest batch a child reported durable
	for round := range 4 {
		t.Run(fmt.Sprintf("after kill %d every stream is a whole-batch prefix", round+1), func(t *testing.T) {
			killAfter := 1 + rng.IntN(40)
			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
			cmd.Env = append(os.Environ(), crashHelperEnv+"="+path)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// A child that hangs must not hang the test.
			watchdog := time.AfterFunc(time.Minute, func() { _ = cmd.Process.Kill() })
			defer watchdog.Stop()
			seen := 0
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				b, ok := strings.CutPrefix(sc.Text(), "committed ")
				if !ok {
					continue
				}
				n, err := strconv.Atoi(b)
				if err != nil {
					t.Fatalf("child wrote %q", sc.Text())
				}
				committed = max(committed, n)
				if seen++; seen == killAfter {
					// SIGKILL: no deferred function, no Close, most likely
					// in the middle of the next batch's commit.
					if err := cmd.Process.Kill(); err != nil {
						t.Fatal(err)
					}
				}
			}
			err = cmd.Wait()
			if seen < killAfter {
				t.Fatalf("child ended after %d batches (%v): %s", seen, err, stderr.String())
			}
			t.Logf("killed after %d batches; batch %d was the last reported", killAfter, committed)

			s := openStore(t, path, Options{})
			count := -1
			for _, st := range crashStreams {
				got, err := s.Read(context.Background(), st, 0, math.MaxUint64, history.MaxPage)
				if err != nil {
					t.Fatal(err)
				}
				n := len(got)
				if !slices.Equal(seqsOf(got), span(1, uint64(n))) {
					t.Fatalf("%s is not a contiguous prefix: %v", st, seqsOf(got))
				}
				if n%10 != 0 {
					t.Fatalf("%s holds %d records: a batch was stored in part", st, n)
				}
				if n < (committed+1)*10 {
					t.Fatalf("%s holds %d records, but batch %d was reported durable", st, n, committed)
				}
				if count >= 0 && n != count {
					t.Fatalf("%s holds %d records, another stream %d: a batch was stored in part", st, n, count)
				}
				count = n
			}
			if st := stats(t, s); st.Records != int64(count*len(crashStreams)) {
				t.Fatalf("stats %+v, want %d records", st, count*len(crashStreams))
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
