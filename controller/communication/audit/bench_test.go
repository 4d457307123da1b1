package audit

import (
	"context"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/opsconductor/opsconductor/controller/history"
	"github.com/opsconductor/opsconductor/controller/history/embedded"
)

// The figure: the audit overhead on a mutating request, p50 and
// p99 of Append with the embedded store (target p99 <= 2 ms). Append is
// all a request adds: the entry is prepared, chained, committed (fsync)
// and read back before it returns.

func benchLog(b *testing.B) (*Log, func()) {
	b.Helper()
	s, err := embedded.Open(filepath.Join(b.TempDir(), "history.db"), embedded.Options{})
	if err != nil {
		b.Fatal(err)
	}
	l, err := Open(context.Background(), Config{Store: s, Node: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	return l, func() {
		_ = l.Close(context.Background())
		_ = s.Close()
	}
}

func reportLatency(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	if len(lat) == 0 {
		return
	}
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}

// BenchmarkAppend is one request at a time: each Append pays a commit of
// its own.
func BenchmarkAppend(b *testing.B) {
	l, done := benchLog(b)
	defer done()
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	e := userEntry(1)
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		if _, err := l.Append(ctx, e); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	reportLatency(b, lat)
}

// BenchmarkAppendConcurrent is 32 requests at once: concurrent appends
// share commits, so throughput grows while latency stays near one commit.
func BenchmarkAppendConcurrent(b *testing.B) {
	l, done := benchLog(b)
	defer done()
	ctx := context.Background()
	const workers = 32
	var mu sync.Mutex
	lat := make([]time.Duration, 0, b.N)
	e := userEntry(1)
	var wg sync.WaitGroup
	next := make(chan struct{})
	b.ResetTimer()
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for range next {
				t0 := time.Now()
				if _, err := l.Append(ctx, e); err != nil {
					b.Error(err)
					return
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	for range b.N {
		next <- struct{}{}
	}
	close(next)
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "entries/s")
	reportLatency(b, lat)
}

// BenchmarkStoreAppendAlone is the floor under BenchmarkAppend: one record
// of an entry's size appended to the same store, commit and fsync alone,
// so that the difference is what the audit log itself costs.
func BenchmarkStoreAppendAlone(b *testing.B) {
	s, err := embedded.Open(filepath.Join(b.TempDir(), "history.db"), embedded.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	e, err := prepare(userEntry(1), time.Now())
	if err != nil {
		b.Fatal(err)
	}
	e.Node, e.PrevHash = "bench", ZeroHash
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for b.Loop() {
		e.Seq++
		data, _, err := encode(e)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if err := s.Append(ctx, []history.Record{record(e, data)}); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	reportLatency(b, lat)
}
