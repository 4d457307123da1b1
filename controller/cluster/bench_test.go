package cluster

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// BenchmarkApply measures committed commands per second and the apply
// latency each writer sees, on real TLS loopback sockets and bbolt logs
// with fsync, for 1 and 3 nodes, with and without leader-side batching.
// Writers submit through the leader; 64 of them model a busy controller.
//
//	go test ./controller/cluster -run '^$' -bench Apply -benchtime 20000x
func BenchmarkApply(b *testing.B) {
	for _, nodes := range []int{1, 3} {
		for _, batching := range []bool{false, true} {
			for _, writers := range []int{16, 32, 64} {
				b.Run(fmt.Sprintf("nodes=%d/batching=%t/writers=%d", nodes, batching, writers), func(b *testing.B) {
					benchApply(b, nodes, batching, writers)
				})
			}
		}
	}
}

func benchApply(b *testing.B, size int, batching bool, writers int) {
	c := newTestClusterWith(b, size, func(cfg *Config) { cfg.Batching = batching })
	leader := c.waitLeader(nil)
	var mu sync.Mutex
	lat := make([]time.Duration, 0, b.N)
	work := make(chan int, b.N)
	for i := range b.N {
		work <- i
	}
	close(work)
	firstIndex := leader.raft.LastIndex()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, b.N/writers+1)
			for i := range work {
				t0 := time.Now()
				if _, err := leader.probes.Write(context.Background(), fmt.Sprintf("bench %d", i)); err != nil {
					errs <- err
					return
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(float64(len(lat))*p))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "cmds/s")
	b.ReportMetric(float64(b.N)/float64(max(1, leader.raft.LastIndex()-firstIndex)), "cmds/entry")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}
