package server

import (
	"bufio"
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opsconductor/opsconductor/controller/apiclient"
)

// scrapeMetrics reads /metrics as Prometheus does and returns each sample
// by its series, name{label="value",…} as the text format writes it.
func scrapeMetrics(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// wantMetrics fails unless every series has its value in the scrape.
func wantMetrics(t *testing.T, got map[string]float64, want map[string]float64) {
	t.Helper()
	for series, v := range want {
		if g, ok := got[series]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", series, g, ok, v)
		}
	}
}

// waitMetrics scrapes until every series has its value or ten seconds
// have passed, then fails naming the series that differ.
func waitMetrics(t *testing.T, addr string, want map[string]float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, same := scrapeMetrics(t, addr), true
		for series, v := range want {
			if g, ok := got[series]; !ok || g != v {
				same = false
			}
		}
		if same || time.Now().After(deadline) {
			wantMetrics(t, got, want)
			return
		}
		time.Sleep(20 * time.Millisecond) // polling with a deadline
	}
}

func TestMetricsFollowTheStateOperatorsAlertOn(t *testing.T) {
	r := start(t, testConfig(t.TempDir()))
	wantMetrics(t, scrapeMetrics(t, r.ready.HTTPAddr), map[string]float64{
		"opsconductor_history_reachable": 1, "opsconductor_history_append_errors_total": 0,
		"opsconductor_audit_append_errors_total": 0,
		"opsconductor_notify_outbox_pending":     0, "opsconductor_notify_dead_letters": 0,
		`opsconductor_runs_finished_total{status="failed"}`:                             0,
		`opsconductor_notify_deliveries_total{channel_kind="webhook",outcome="failed"}`: 0,
		`opsconductor_runs_active{status="waiting"}`:                                    0, `opsconductor_runs_active{status="queued"}`: 0,
		`opsconductor_runs_active{status="running"}`: 0,
	})
	if got := scrapeMetrics(t, r.ready.HTTPAddr); got["opsconductor_history_buffered_records"] < 0 ||
		got["opsconductor_history_oldest_buffered_seconds"] < 0 {
		t.Fatalf("history buffer metrics missing or negative: %v", got)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	startAgents(ctx, t, r, []string{"db-1"}, map[string]string{"role": "db"})
	putJob(ctx, t, r.client, "gated", `
name: gated
targets: {tags: {role: db}}
concurrency: queue
steps:
  - {id: gate, uses: approval, with: {timeout: 1h, message: "go?"}}
`)
	first := startRun(ctx, t, r.client, "gated", nil)
	waitRunState(ctx, t, r.client, first.ID, "an approval request", func(run apiclient.Run) bool { return run.Status == "waiting" })
	second := startRun(ctx, t, r.client, "gated", nil)
	waitRunState(ctx, t, r.client, second.ID, "the second run to queue", func(run apiclient.Run) bool { return run.Status == "queued" })
	got := scrapeMetrics(t, r.ready.HTTPAddr)
	wantMetrics(t, got, map[string]float64{
		`opsconductor_runs_active{status="waiting"}`: 1, `opsconductor_runs_active{status="queued"}`: 1,
	})
	// The cluster and agentrpc collectors share the expiry metric's name.
	now := float64(time.Now().Unix())
	for _, cert := range []string{"cluster_ca", "raft_node", "agent_ca", "agent_listener"} {
		if v := got[`opsconductor_cert_expiry_timestamp_seconds{cert="`+cert+`"}`]; v <= now {
			t.Errorf("%s expires at %v, want a time after now (%v)", cert, v, now)
		}
	}

	for _, id := range []string{first.ID, second.ID} {
		if _, err := r.client.CancelRun(ctx, id, nil); err != nil {
			t.Fatal(err)
		}
		waitRun(ctx, t, r.client, id)
	}
	// One run finishes on its own, so succeeded moves too.
	putJob(ctx, t, r.client, "quick", `
name: quick
targets: {tags: {role: db}}
steps:
  - {id: work, uses: noop}
`)
	if got := waitRun(ctx, t, r.client, startRun(ctx, t, r.client, "quick", nil).ID); got.Status != "succeeded" {
		t.Fatalf("quick run: %s", got.Status)
	}
	// The engine counts a run once its Apply returns, which can be a
	// moment after the API shows the run final.
	waitMetrics(t, r.ready.HTTPAddr, map[string]float64{
		`opsconductor_runs_active{status="waiting"}`: 0, `opsconductor_runs_active{status="queued"}`: 0,
		`opsconductor_runs_finished_total{status="canceled"}`: 2, `opsconductor_runs_finished_total{status="succeeded"}`: 1,
	})
}
