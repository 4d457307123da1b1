package automation

import "github.com/prometheus/client_golang/prometheus"

// newFinishedRuns counts runs as the engine commits their final status.
// Only the leader's engine finishes runs, so each run is counted once, by
// the server that led when it ended; the cluster's figure is the sum over
// servers (a server's counter restarts at zero with it, as counters do).
// Counting on the apply path instead would count each run once per server
// and again when a restarted server replays its log.
func newFinishedRuns() *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "opsconductor_runs_finished_total",
		Help: "Runs this server's engine finished while it led, by final status."}, []string{"status"})
	// Every series exists from the start, so a rate over it is 0 rather
	// than absent before the first run of each outcome.
	for _, st := range []string{RunSucceeded, RunFailed, RunCanceled} {
		c.WithLabelValues(st)
	}
	return c
}

// Metrics returns the service's collectors for the controller's registry.
// Active runs are counted from the replicated state when scraped, so every
// server reports the same figures and none can drift.
func (s *Service) Metrics() prometheus.Collector {
	return &runMetrics{s: s,
		active: prometheus.NewDesc("opsconductor_runs_active", "Runs not yet finished, by status.", []string{"status"}, nil)}
}

type runMetrics struct {
	s      *Service
	active *prometheus.Desc
}

func (m *runMetrics) Describe(ch chan<- *prometheus.Desc) {
	m.s.finishedRuns.Describe(ch)
	ch <- m.active
}

func (m *runMetrics) Collect(ch chan<- prometheus.Metric) {
	m.s.finishedRuns.Collect(ch)
	runs, err := activeRuns(m.s.d.Store.ReadTxn(), "")
	if err != nil {
		ch <- prometheus.NewInvalidMetric(m.active, err)
		return
	}
	byStatus := map[string]int{RunQueued: 0, RunWaiting: 0, RunRunning: 0}
	for _, r := range runs {
		if _, known := byStatus[r.Status]; known {
			byStatus[r.Status]++
		}
	}
	for st, n := range byStatus {
		ch <- prometheus.MustNewConstMetric(m.active, prometheus.GaugeValue, float64(n), st)
	}
}
