package postgres

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opsconductor/opsconductor/controller/history"
	"github.com/opsconductor/opsconductor/controller/history/historytest"
)

// benchRecords builds a batch of n records of stream from seq on, each with
// size bytes of data and the two fields a run log carries.
func benchRecords(stream string, from uint64, n, size int, data []byte) []history.Record {
	out := make([]history.Record, n)
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range out {
		seq := from + uint64(i)
		out[i] = history.Record{
			Stream: stream, Seq: seq, Time: base.Add(time.Duration(seq) * time.Millisecond),
			Kind: "automation.log", Fields: map[string]string{"run_id": stream, "level": "info"}, Data: data[:size],
		}
	}
	return out
}

// BenchmarkAppend measures Append of batches of 1000 records, the Writer's
// batch size, from one and from 32 concurrent writers, each on streams of
// its own. One op is one batch; MB/s counts record data only.
func BenchmarkAppend(b *testing.B) {
	const batch = 1000
	data := make([]byte, 1024)
	for i := range data {
		data[i] = 'a' + byte(i%26)
	}
	for _, size := range []int{100, 1024} {
		for _, writers := range []int{1, 32} {
			b.Run(fmt.Sprintf("record=%dB/writers=%d", size, writers), func(b *testing.B) {
				// The default pool: more connections than the server has
				// CPUs only add lock contention (measured: 32 writers on 2
				// vCPUs do 46k records/s through 2 connections, 38k through
				// 8, 24k through 32).
				s := openStore(b, newDatabase(b), Options{})
				var streams atomic.Int64
				ctx := context.Background()
				b.SetBytes(int64(batch * size))
				b.ResetTimer()
				var (
					done atomic.Int64
					wg   sync.WaitGroup
				)
				for range writers {
					wg.Go(func() {
						stream := fmt.Sprintf("automation/bench/%d/log", streams.Add(1))
						next := uint64(1)
						for done.Add(1) <= int64(b.N) {
							if err := s.Append(ctx, benchRecords(stream, next, batch, size, data)); err != nil {
								b.Error(err)
								return
							}
							next += batch
						}
					})
				}
				wg.Wait()
				b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "records/s")
			})
		}
	}
}

// BenchmarkAppendPath compares the two ways Append writes a batch, arrays
// in one INSERT and COPY straight into the table, across batch sizes; it
// is the measurement behind copyThreshold.
func BenchmarkAppendPath(b *testing.B) {
	data := make([]byte, 100)
	s := openStore(b, newDatabase(b), Options{})
	ctx := context.Background()
	var streams atomic.Int64
	for _, n := range []int{1, 10, 100, 250, 500, 1000, 5000} {
		for _, path := range []struct {
			name  string
			write func(context.Context, []row) error
		}{{"arrays", s.appendArrays}, {"copy", s.appendCopy}} {
			b.Run(fmt.Sprintf("batch=%d/%s", n, path.name), func(b *testing.B) {
				stream := fmt.Sprintf("automation/path/%d/log", streams.Add(1))
				next := uint64(1)
				for b.Loop() {
					rows := s.rows(benchRecords(stream, next, n, len(data), data))
					if err := path.write(ctx, rows); err != nil {
						b.Fatal(err)
					}
					next += uint64(n)
				}
				b.ReportMetric(float64(next-1)/b.Elapsed().Seconds(), "records/s")
			})
		}
	}
}

// BenchmarkTail1000 reads the last 1000 records of a stream in a table of
// about a million rows (100 streams of 10,000, 100-byte data, all indexes
// in place). The rows are made by the server with generate_series, which
// takes some 10-20 s here; ten million rows would take roughly ten times
// that, some minutes, and a few GB of disk, which is why the benchmark
// stops at one million: Tail is a backward scan of the primary key that
// stops after n rows, so its cost depends on n, not on the table's size.
func BenchmarkTail1000(b *testing.B) {
	streams, perStream := 100, 10000
	if v := os.Getenv("OPSCONDUCTOR_BENCH_TAIL_MILLIONS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			b.Fatalf("OPSCONDUCTOR_BENCH_TAIL_MILLIONS=%q: want 1-100", v)
		}
		perStream *= n
	}
	dsn := newDatabase(b)
	s := openStore(b, dsn, Options{})
	ctx := context.Background()
	start := time.Now()
	if _, err := connect(b, dsn).Exec(ctx, `INSERT INTO automation.records (stream, seq, time, kind, fields, data)
		SELECT 'automation/run/' || (g % $1) || '/log', g / $1 + 1,
			timestamptz '2026-01-01 00:00:00Z' + g * interval '1 millisecond', 'automation.log',
			jsonb_build_object('run_id', (g % $1)::text, 'level', 'info'), convert_to(repeat('x', 100), 'UTF8')
		FROM generate_series(0, $2::int - 1) g`, streams, streams*perStream); err != nil {
		b.Fatal(err)
	}
	if _, err := connect(b, dsn).Exec(ctx, `VACUUM ANALYZE automation.records`); err != nil {
		b.Fatal(err)
	}
	b.Logf("generated %d rows in %s", streams*perStream, time.Since(start).Round(time.Millisecond))
	i := 0
	var lat []time.Duration
	for b.Loop() {
		t0 := time.Now()
		got, err := s.Tail(ctx, fmt.Sprintf("automation/run/%d/log", i%streams), 1000)
		lat = append(lat, time.Since(t0))
		if err != nil || len(got) != 1000 || got[999].Seq != uint64(perStream) {
			b.Fatalf("tail: %d records, %v", len(got), err)
		}
		i++
	}
	b.ReportMetric(float64(i*1000)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(historytest.P99Millis(lat), "p99-ms")
}
