package server

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
)

// historyMetrics reads the history monitor and writer when scraped, so
// /metrics and /health can never disagree.
type historyMetrics struct {
	m         *historyMonitor
	reachable *prometheus.Desc
	buffered  *prometheus.Desc
	oldest    *prometheus.Desc
	failures  *prometheus.Desc
}

func newHistoryMetrics(m *historyMonitor) *historyMetrics {
	return &historyMetrics{m: m,
		reachable: prometheus.NewDesc("opsconductor_history_reachable", "1 while the history store answers pings and takes writes (the /health history.reachable).", nil, nil),
		buffered:  prometheus.NewDesc("opsconductor_history_buffered_records", "Records waiting in memory to be stored in the history store.", nil, nil),
		oldest:    prometheus.NewDesc("opsconductor_history_oldest_buffered_seconds", "Age of the oldest record waiting to be stored (0 when none waits).", nil, nil),
		failures:  prometheus.NewDesc("opsconductor_history_append_errors_total", "Appends to the history store that failed, retries included.", nil, nil),
	}
}

func (h *historyMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{h.reachable, h.buffered, h.oldest, h.failures} {
		ch <- d
	}
}

func (h *historyMetrics) Collect(ch chan<- prometheus.Metric) {
	st := h.m.section(context.Background()).(historyHealth)
	reachable := 0.0
	if st.Reachable {
		reachable = 1
	}
	ch <- prometheus.MustNewConstMetric(h.reachable, prometheus.GaugeValue, reachable)
	ch <- prometheus.MustNewConstMetric(h.buffered, prometheus.GaugeValue, float64(st.Buffered))
	ch <- prometheus.MustNewConstMetric(h.oldest, prometheus.GaugeValue, float64(st.LagMillis)/1000)
	ch <- prometheus.MustNewConstMetric(h.failures, prometheus.CounterValue, float64(h.m.writer.AppendFailures()))
}
