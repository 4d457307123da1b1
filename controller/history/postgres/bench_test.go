package postgres

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

// BenchmarkTail1000 reads the last 1000 records of a stream in a table of
// about a million records (100 streams of 10,000, 100-byte data, all
// indexes in place), appended as producers append them: batches of 1000,
// here ten streams' worth of 100 each. Ten million records take ten times
// as long to write (OPSCONDUCTOR_BENCH_TAIL_MILLIONS=10); Tail walks the
// primary key backwards and stops once its chunks hold n records, so its
// cost depends on n, not on the table's size.
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
	data := bytes.Repeat([]byte{'x'}, 100)
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	fields := make([]map[string]string, streams)
	for i := range fields {
		fields[i] = map[string]string{"run_id": strconv.Itoa(i), "level": "info"}
	}
	batch := make([]history.Record, 0, 1000)
	for from := 0; from < perStream; from += 100 {
		for first := 0; first < streams; first += 10 {
			batch = batch[:0]
			for st := first; st < first+10; st++ {
				for i := from; i < from+100; i++ {
					batch = append(batch, history.Record{Stream: fmt.Sprintf("automation/run/%d/log", st), Seq: uint64(i + 1),
						Time: base.Add(time.Duration(i*streams+st) * time.Millisecond), Kind: "automation.log", Fields: fields[st], Data: data})
				}
			}
			if err := s.Append(ctx, batch); err != nil {
				b.Fatal(err)
			}
		}
	}
	if _, err := connect(b, dsn).Exec(ctx, `VACUUM ANALYZE automation.chunks`); err != nil {
		b.Fatal(err)
	}
	b.Logf("appended %d records in %s", streams*perStream, time.Since(start).Round(time.Millisecond))
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
