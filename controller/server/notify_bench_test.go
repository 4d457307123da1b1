package server

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opsconductor/opsconductor/controller/communication/channel"
)

// BenchmarkNotifyDeliveries is issue 9's webhook figure on one embedded
// node, end to end: b.N deliveries are committed to the outbox (send-test
// requests, eight clients), and the figure runs from the first request
// until the receiver has verified every signature and the outbox holds
// nothing pending — the leader's worker rendering, signing, posting and
// committing each result through Raft. Reports deliveries/s (issue 9:
// >= 500/s sustained).
func BenchmarkNotifyDeliveries(b *testing.B) {
	cfg := testConfig(b.TempDir())
	cfg.LogLevel = "warn"
	cfg.RateRead, cfg.RateWrite = 1e6, 1e6
	r := start(b, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var got, bad atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		if channel.VerifySignature(hookSecret, req.Header.Get(channel.HeaderTimestamp), body, req.Header.Get("X-OpsConductor-Signature"), time.Now(), time.Minute) != nil {
			bad.Add(1)
		}
		got.Add(1)
	}))
	defer srv.Close()
	if st := call(ctx, b, r, "POST", "/api/v1/notifications/channels", map[string]any{
		"name": "bench", "secret": hookSecret, "config": map[string]any{"kind": "webhook", "webhook": map[string]any{"url": srv.URL}},
	}, &map[string]any{}); st != http.StatusCreated {
		b.Fatalf("create channel = %d", st)
	}
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				if st := call(ctx, b, r, "POST", "/api/v1/notifications/channels/bench/test?wait=false", map[string]any{"event": "run.failed"}, &map[string]any{}); st != http.StatusAccepted {
					b.Errorf("send test = %d", st)
					return
				}
			}
		}()
	}
	wg.Wait()
	queued := time.Since(start)
	for got.Load() < int64(b.N) {
		if ctx.Err() != nil {
			b.Fatalf("received %d of %d", got.Load(), b.N)
		}
		time.Sleep(5 * time.Millisecond)
	}
	for {
		var pending struct {
			Items []map[string]any `json:"items"`
		}
		call(ctx, b, r, "GET", "/api/v1/notifications/deliveries?state=pending&limit=1", nil, &pending)
		if len(pending.Items) == 0 {
			break
		}
		if ctx.Err() != nil {
			b.Fatal("deliveries still pending")
		}
		time.Sleep(5 * time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	if bad.Load() != 0 {
		b.Fatalf("%d deliveries had a bad signature", bad.Load())
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "deliveries/s")
	b.ReportMetric(float64(b.N)/queued.Seconds(), "queued/s")
}
