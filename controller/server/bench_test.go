package server

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/opsconductor/opsconductor/controller/apiclient"
	"github.com/opsconductor/opsconductor/controller/history/postgres/pgtest"
)

// BenchmarkOutputThroughput is one step's output through the whole path in
// one process: the dev server's built-in agent runs a command printing
// 64 MiB in 1 KiB lines; the figure is dispatch → result committed, which
// the controller commits only once every line is durable in history. It
// exists to profile that path (-cpuprofile covers both ends); make bench
// measures the same thing across real processes in bench/agent.
func BenchmarkOutputThroughput(b *testing.B) {
	backends := []struct {
		name    string
		history func(b *testing.B) string
	}{
		{"embedded", func(*testing.B) string { return "" }},
		{"postgres", func(b *testing.B) string { return pgtest.NewDatabase(b) }},
	}
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			cfg := testConfig(b.TempDir())
			cfg.Dev, cfg.History = true, be.history(b)
			r := start(b, cfg)
			ctx := context.Background()
			wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			local := waitLocalAgent(wctx, b, r)
			const size = 64 << 20
			shell := fmt.Sprintf("yes \"$(printf '%%01023d' 0)\" | head -c %d", size)
			b.SetBytes(size)
			for b.Loop() {
				at, err := r.client.RunCommand(ctx, local.ID, apiclient.CommandSpec{Shell: shell, Timeout: "10m"})
				if err != nil {
					b.Fatal(err)
				}
				poll(ctx, b, "the command", func() error {
					got, err := r.client.GetAttempt(ctx, at.ID)
					if err == nil && got.Status != "succeeded" {
						err = fmt.Errorf("status %s (%s)", got.Status, got.Error)
					}
					return err
				})
			}
		})
	}
}
