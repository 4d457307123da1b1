package pluginhost

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/opsconductor/opsconductor/plugins/sdk"
)

// BenchmarkRunWarm is the per-attempt overhead of an external plugin whose
// process is warm: from the Run call to its Result, for a step that does
// nothing (issue 6: target ≤ 5 ms p50).
func BenchmarkRunWarm(b *testing.B) {
	benchRun(b, Config{})
}

// BenchmarkRunCold is the same with no warm process: every attempt
// verifies the binary's sha256, execs it, does the go-plugin handshake
// and mTLS, and asks for its Description before running.
func BenchmarkRunCold(b *testing.B) {
	benchRun(b, Config{MaxIdle: -1})
}

func benchRun(b *testing.B, cfg Config) {
	h := newHost(b, cfg)
	install(b, h, "1.0.0")
	req := sdk.Request{AttemptID: "bench", Params: params("noop")}
	ctx := context.Background()
	if _, _, err := run(b, h, ctx, "teststep@1", req); err != nil {
		b.Fatal(err)
	}
	var out capture
	var took []time.Duration
	for b.Loop() {
		t0 := time.Now()
		if _, err := h.Run(ctx, "teststep@1", req, &out); err != nil {
			b.Fatal(err)
		}
		took = append(took, time.Since(t0))
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkOutputThroughput is how fast a plugin that prints as fast as
// it can gets its output through the host (gRPC stream, line splitting,
// masking with two secrets) to the executor's writer.
func BenchmarkOutputThroughput(b *testing.B) {
	h := newHost(b, Config{})
	install(b, h, "1.0.0")
	const size = 32 << 20
	req := sdk.Request{Params: params("flood", "bytes", "33554432"),
		Secrets: map[string]string{"a": "s3cr3t-value", "b": "tok-1234"}}
	ctx := context.Background()
	if _, _, err := run(b, h, ctx, "teststep", sdk.Request{Params: params("noop")}); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(size)
	for b.Loop() {
		if _, err := h.Run(ctx, "teststep", req, &countingOutput{}); err != nil {
			b.Fatal(err)
		}
	}
}
