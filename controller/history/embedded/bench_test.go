package embedded

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/opsconductor/opsconductor/controller/history"
	"github.com/opsconductor/opsconductor/controller/history/historytest"
)

// benchWriter holds one writer's ten streams and their fields, made once:
// the benchmark measures appending, not formatting strings.
type benchWriter struct {
	streams [10]string
	fields  [10]map[string]string
}

func newBenchWriter(writer int) *benchWriter {
	w := &benchWriter{}
	for i := range w.streams {
		w.streams[i] = fmt.Sprintf("automation/run/w%d-%d/log", writer, i)
		w.fields[i] = map[string]string{"run_id": fmt.Sprintf("w%d-%d", writer, i), "status": "ok"}
	}
	return w
}

// benchBatch is newBenchWriter(writer).batch, for loops that build data
// rather than measure appends.
func benchBatch(writer int, b, global uint64, data []byte) []history.Record {
	return newBenchWriter(writer).batch(b, global, data)
}

// batch builds the writer's batch b, the store's batch number global:
// 1000 records over its 10 streams, each with a run_id and a status
// field. A batch spans one second and starts 100ms after the one before
// it, so that, as with producers writing concurrently, each batch's times
// interleave with those of its ten neighbours in the time index.
func (w *benchWriter) batch(b, global uint64, data []byte) []history.Record {
	recs := make([]history.Record, 0, 1000)
	at := t0.Add(time.Duration(global) * 100 * time.Millisecond)
	for i := range uint64(1000) {
		recs = append(recs, history.Record{Stream: w.streams[i%10], Seq: b*100 + i/10, Time: at.Add(time.Duration(i) * time.Millisecond),
			Kind: "automation.log", Fields: w.fields[i%10], Data: data})
	}
	return recs
}

// BenchmarkAppend measures durable appends: each operation is one batch of
// 1000 records in one fsync'd bbolt transaction. MB/s counts the records'
// Data; records/s counts records; file-B/record is the file's used size
// (pages, live or free) per record appended. bbolt has one writer at a
// time, so 32 writers gain from encoding their batches in parallel outside
// the write transaction and from sharing its commits.
func BenchmarkAppend(b *testing.B) {
	for _, size := range []int{100, 1024} {
		for _, writers := range []int{1, 32} {
			b.Run(fmt.Sprintf("record=%dB/batch=1000/writers=%d", size, writers), func(b *testing.B) {
				s := openStore(b, dbPath(b), Options{})
				data := bytes.Repeat([]byte{'x'}, size)
				var next atomic.Int64
				b.SetBytes(int64(1000 * size))
				b.ResetTimer()
				var wg sync.WaitGroup
				for w := range writers {
					bw := newBenchWriter(w)
					wg.Go(func() {
						for n := uint64(0); ; n++ {
							global := next.Add(1)
							if global > int64(b.N) {
								return
							}
							if err := s.Append(context.Background(), bw.batch(n, uint64(global), data)); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				b.StopTimer()
				b.ReportMetric(float64(b.N)*1000/b.Elapsed().Seconds(), "records/s")
				b.ReportMetric(float64(usedBytes(b, s))/float64(b.N*1000), "file-B/record")
			})
		}
	}
}

// usedBytes is how much of the file holds pages, live or free: what the
// appends wrote, without the room bbolt grows the file by ahead of use.
func usedBytes(b *testing.B, s *Store) int64 {
	var n int64
	if err := s.view(func(tx *bbolt.Tx) error { n = tx.Size(); return nil }); err != nil {
		b.Fatal(err)
	}
	return n
}

// BenchmarkTail1000 reads the last 1000 records of one stream among 1M
// stored: 1000 batches of 100-byte records over 10 streams each of 100
// writers' (1000 streams of 1000 records). Building them (fsyncs off) takes
// about 17 s and a 700 MB file on a 2-vCPU VM. 10M records would take ten
// times both, about three minutes and 7 GB, which is why the benchmark
// stops at 1M; Tail would barely change, since it costs one B+tree descent
// (a level more per ~100 times the keys) and then 1000 records read in key
// order from neighbouring pages.
func BenchmarkTail1000(b *testing.B) {
	ctx := context.Background()
	s := openStore(b, dbPath(b), Options{})
	// The build is not what is measured: skip fsyncs while it runs.
	s.db.NoSync = true
	data := bytes.Repeat([]byte{'x'}, 100)
	millions := tailMillions(b)
	start := time.Now()
	for n := range uint64(10 * millions) {
		for w := range 100 {
			if err := s.Append(ctx, benchBatch(w, n, n*100+uint64(w), data)); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := s.db.Sync(); err != nil {
		b.Fatal(err)
	}
	s.db.NoSync = false
	st := stats(b, s)
	file, free, err := s.space()
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("built %d records (Stats.Bytes %d, file %d bytes, %d free) in %v", st.Records, st.Bytes, file, free, time.Since(start).Round(time.Millisecond))
	b.Run(fmt.Sprintf("records=%dM", millions), func(b *testing.B) {
		var lat []time.Duration
		for b.Loop() {
			t0 := time.Now()
			recs, err := s.Tail(ctx, "automation/run/w42-7/log", 1000)
			lat = append(lat, time.Since(t0))
			if err != nil || len(recs) != 1000 {
				b.Fatalf("tail: %d records, %v", len(recs), err)
			}
		}
		b.ReportMetric(float64(b.N)*1000/b.Elapsed().Seconds(), "records/s")
		b.ReportMetric(historytest.P99Millis(lat), "p99-ms")
	})
}

// BenchmarkCompact measures Compact on a file of 250,000 live 100-byte
// records (500,000 stored, the older half deleted): the whole compaction
// (MB/s of Stats.Bytes, records/s) and how long writers waited, idle and
// with a writer appending batches of 1000 as fast as it can throughout.
func BenchmarkCompact(b *testing.B) {
	ctx := context.Background()
	s := openStore(b, dbPath(b), Options{})
	s.db.NoSync = true
	data := bytes.Repeat([]byte{'x'}, 100)
	for n := range uint64(5) {
		for w := range 100 {
			if err := s.Append(ctx, benchBatch(w, n, n*100+uint64(w), data)); err != nil {
				b.Fatal(err)
			}
		}
	}
	s.db.NoSync = false
	start := time.Now()
	deleted, err := s.DeleteBefore(ctx, t0.Add(250*100*time.Millisecond))
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("deleted %d records in %v", deleted, time.Since(start).Round(time.Millisecond))
	before := fileSize(b, s.path)
	for _, appending := range []bool{false, true} {
		b.Run(fmt.Sprintf("appending=%v", appending), func(b *testing.B) {
			stop := make(chan struct{})
			var wg sync.WaitGroup
			if appending {
				wg.Go(func() {
					for n := uint64(0); ; n++ {
						select {
						case <-stop:
							return
						default:
						}
						if err := s.Append(ctx, benchBatch(1000, n, 10_000+n, data)); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			st := stats(b, s)
			b.SetBytes(st.Bytes)
			var paused time.Duration
			var replayed int
			for b.Loop() {
				c, err := s.compact(ctx)
				if err != nil {
					b.Fatal(err)
				}
				paused += c.Paused
				replayed += c.Replayed
			}
			close(stop)
			wg.Wait()
			b.ReportMetric(float64(st.Records)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(paused.Milliseconds())/float64(b.N), "ms-writers-paused/op")
			b.ReportMetric(float64(replayed)/float64(b.N), "replayed/op")
		})
	}
	b.Logf("file %d bytes before the first compaction, %d after", before, fileSize(b, s.path))
}

// tailMillions is how many million records BenchmarkTail1000 stores:
// OPSCONDUCTOR_BENCH_TAIL_MILLIONS (default 1; the figure is 10).
func tailMillions(b *testing.B) uint64 {
	v := os.Getenv("OPSCONDUCTOR_BENCH_TAIL_MILLIONS")
	if v == "" {
		return 1
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n < 1 || n > 100 {
		b.Fatalf("OPSCONDUCTOR_BENCH_TAIL_MILLIONS=%q: want 1-100", v)
	}
	return n
}
