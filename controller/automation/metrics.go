package automation

import "github.com/prometheus/client_golang/prometheus"

// Metrics returns the service's collectors for the controller's registry.
// The runs are counted from the replicated state when scraped, so every
// server reports the same figures and none can drift.
func (s *Service) Metrics() prometheus.Collector {
	return &runMetrics{s: s,
		active: prometheus.NewDesc("opsconductor_runs_active", "Runs not yet finished, by status.", []string{"status"}, nil)}
}

type runMetrics struct {
	s      *Service
	active *prometheus.Desc
}

func (m *runMetrics) Describe(ch chan<- *prometheus.Desc) { ch <- m.active }

func (m *runMetrics) Collect(ch chan<- prometheus.Metric) {
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
