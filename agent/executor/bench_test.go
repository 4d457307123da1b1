package executor

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/opsconductor/opsconductor/agent/outbox"
	"github.com/opsconductor/opsconductor/agent/pluginhost"
	"github.com/opsconductor/opsconductor/agent/runner"
	agentv1 "github.com/opsconductor/opsconductor/proto/agent/v1"
)

// BenchmarkAttempt is issue 6's per-attempt overhead on the agent: from
// Assign to the Result queued in the outbox (what the session sends at
// once), for the built-in noop step, a warm external plugin (the example
// disk-usage plugin, a real go-plugin process) and, for reference, the
// command `true` (a process start). It reports p50 and p99.
func BenchmarkAttempt(b *testing.B) {
	cases := []struct {
		name   string
		kind   string
		params string
		plugin bool
	}{
		{"builtin-noop", "noop", `{}`, false},
		{"plugin-warm", "disk-usage@1", `{"path":"/"}`, true},
		{"command-true", KindCommand, `{"argv":["true"]}`, false},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			box, err := outbox.Open(filepath.Join(b.TempDir(), "outbox.db"), outbox.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer box.Close()
			cfg := Config{Outbox: box, Run: runner.Run}
			if tc.plugin {
				h := exampleHost(b)
				defer h.Close()
				cfg.Plugins, cfg.NotInstalled = h, pluginhost.ErrNotInstalled
			}
			ex, err := New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer ex.Close()
			var took []time.Duration
			i := 0
			for b.Loop() {
				i++
				id := fmt.Sprintf("at-%d", i)
				watch := box.Changed()
				t0 := time.Now()
				ex.Assign(&agentv1.Assignment{AttemptId: id, Kind: tc.kind, ParamsJson: []byte(tc.params)}, false)
				for {
					if _, r, _ := box.Pending(id, 0, 1000); r != nil {
						if r.GetStatus() != agentv1.AttemptStatus_ATTEMPT_STATUS_SUCCEEDED {
							b.Fatalf("%s: %s %s", id, r.GetStatus(), r.GetError())
						}
						break
					}
					<-watch
					watch = box.Changed()
				}
				took = append(took, time.Since(t0))
				ex.Ack(&agentv1.Ack{AttemptId: id, ThroughSeq: 1 << 62, Result: true})
			}
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}

// exampleHost builds the example plugin and installs it into a fresh
// plugin host's cache, as a fetch from the controller would.
func exampleHost(b *testing.B) *pluginhost.Host {
	b.Helper()
	dir := b.TempDir()
	bin := filepath.Join(dir, "disk-usage")
	if out, err := exec.Command("go", "build", "-o", bin, "../../plugins/examples/diskusage").CombinedOutput(); err != nil {
		b.Fatalf("build the example plugin: %v\n%s", err, out)
	}
	h, err := pluginhost.New(pluginhost.Config{CacheDir: filepath.Join(dir, "cache"), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		b.Fatal(err)
	}
	sum := sha256.Sum256(data)
	f, err := os.Open(bin)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if _, err := h.Install("disk-usage", "1.0.0", hex.EncodeToString(sum[:]), f); err != nil {
		b.Fatal(err)
	}
	return h
}
