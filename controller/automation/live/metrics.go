package live

import "github.com/prometheus/client_golang/prometheus"

// metrics are the hub's figures. They exist whether or not a registry
// takes them, so the hub never checks for nil.
type metrics struct {
	events      *prometheus.CounterVec
	dropped     *prometheus.CounterVec
	gaps        *prometheus.CounterVec
	subscribers prometheus.Gauge
	runs        prometheus.Gauge
	ringBytes   prometheus.GaugeFunc
}

func newMetrics(ringBytes func() float64) *metrics {
	return &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "opsconductor_live_events_total",
			Help: "Events published to live run streams, by type.",
		}, []string{"type"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "opsconductor_live_events_dropped_total",
			Help: "Events the live hub refused (bad type, bad data, run already ended), by reason.",
		}, []string{"reason"}),
		gaps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "opsconductor_live_gaps_total",
			Help: "Gap markers sent to subscribers: slow (fell behind its queue) or ring (resumed before the oldest kept event).",
		}, []string{"reason"}),
		subscribers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "opsconductor_live_subscribers",
			Help: "Open live run stream subscriptions.",
		}),
		runs: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "opsconductor_live_runs",
			Help: "Runs the live hub holds a ring for.",
		}),
		ringBytes: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "opsconductor_live_ring_bytes",
			Help: "Event data bytes all live run rings hold (bounded by the hub's budget).",
		}, ringBytes),
	}
}

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	m.events.Describe(ch)
	m.dropped.Describe(ch)
	m.gaps.Describe(ch)
	m.subscribers.Describe(ch)
	m.runs.Describe(ch)
	m.ringBytes.Describe(ch)
}

// Collect implements prometheus.Collector.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	m.events.Collect(ch)
	m.dropped.Collect(ch)
	m.gaps.Collect(ch)
	m.subscribers.Collect(ch)
	m.runs.Collect(ch)
	m.ringBytes.Collect(ch)
}
