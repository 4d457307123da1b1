package agentrpc

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// roundTrips times attempts on the leader from the moment their
// Assignment is queued on the agent's stream to the moment their Result is
// committed: the dispatch path's latency, which the step itself does not
// control. Overhead is that time minus the run time the agent measured
// (from just before it started the process to its exit), so it isolates
// the controller, the network, the agent and the commit.
type roundTrips struct {
	total    prometheus.Summary
	overhead prometheus.Summary

	mu   sync.Mutex
	sent map[string]time.Time // by attempt ID; leader-local, best effort
}

// maxTimed bounds the attempts timed at once: a leader with more
// assignments in flight than this stops timing new ones rather than grow.
const maxTimed = 100_000

func newRoundTrips() *roundTrips {
	objectives := map[float64]float64{0.5: 0.01, 0.9: 0.01, 0.99: 0.001}
	return &roundTrips{
		total: prometheus.NewSummary(prometheus.SummaryOpts{Name: "opsconductor_attempt_round_trip_seconds",
			Help:       "Assignment queued on the agent's stream to result committed, on the leader.",
			Objectives: objectives, MaxAge: 10 * time.Minute}),
		overhead: prometheus.NewSummary(prometheus.SummaryOpts{Name: "opsconductor_attempt_overhead_seconds",
			Help:       "Round trip minus the step's own run time as the agent measured it (process start included in the run time).",
			Objectives: objectives, MaxAge: 10 * time.Minute}),
		sent: map[string]time.Time{},
	}
}

func (r *roundTrips) Describe(ch chan<- *prometheus.Desc) {
	r.total.Describe(ch)
	r.overhead.Describe(ch)
}

func (r *roundTrips) Collect(ch chan<- prometheus.Metric) {
	r.total.Collect(ch)
	r.overhead.Collect(ch)
}

func (r *roundTrips) start(id string, at time.Time) {
	r.mu.Lock()
	if len(r.sent) < maxTimed {
		r.sent[id] = at
	}
	r.mu.Unlock()
}

// done observes attempt id's round trip if its assignment was timed here;
// ran is the agent's measured run time (zero when unknown).
func (r *roundTrips) done(id string, now time.Time, ran time.Duration) {
	r.mu.Lock()
	at, ok := r.sent[id]
	delete(r.sent, id)
	r.mu.Unlock()
	if !ok {
		return
	}
	rt := now.Sub(at)
	r.total.Observe(rt.Seconds())
	if ran > 0 && ran < rt {
		r.overhead.Observe((rt - ran).Seconds())
	}
}

func (r *roundTrips) forget(id string) {
	r.mu.Lock()
	delete(r.sent, id)
	r.mu.Unlock()
}

// Metrics returns the service's collectors for the controller's registry.
func (s *Service) Metrics() prometheus.Collector {
	return &serviceMetrics{s: s,
		agents:  prometheus.NewDesc("opsconductor_agents", "Enrolled agents by status (replicated, so every server reports the same).", []string{"status"}, nil),
		streams: prometheus.NewDesc("opsconductor_agent_streams_connected", "Agent streams open on this server (only the leader holds any).", nil, nil),
		// cert is a constant label: the cluster package reports its
		// certificates under the same name from another collector.
		caExpiry:       certExpiryDesc("agent_ca"),
		listenerExpiry: certExpiryDesc("agent_listener"),
	}
}

// serviceMetrics reads the agents table and the stream registry when
// scraped: gauges kept in step with them by hand would drift.
type serviceMetrics struct {
	s              *Service
	agents         *prometheus.Desc
	streams        *prometheus.Desc
	caExpiry       *prometheus.Desc
	listenerExpiry *prometheus.Desc
}

func certExpiryDesc(cert string) *prometheus.Desc {
	return prometheus.NewDesc("opsconductor_cert_expiry_timestamp_seconds", "When a certificate this server uses expires (Unix time).",
		nil, prometheus.Labels{"cert": cert})
}

func (m *serviceMetrics) Describe(ch chan<- *prometheus.Desc) {
	m.s.trips.Describe(ch)
	ch <- m.agents
	ch <- m.streams
	ch <- m.caExpiry
	ch <- m.listenerExpiry
}

func (m *serviceMetrics) Collect(ch chan<- prometheus.Metric) {
	m.s.trips.Collect(ch)
	byStatus := map[string]int{StatusEnrolled: 0, StatusUp: 0, StatusDown: 0, StatusRevoked: 0}
	it, err := m.s.txn().Get(tableAgents, "id")
	if err == nil {
		for obj := it.Next(); obj != nil; obj = it.Next() {
			a := obj.(*Agent)
			st := a.Status
			if a.Revoked {
				st = StatusRevoked
			}
			if _, known := byStatus[st]; known { // a bounded label set whatever the table holds
				byStatus[st]++
			}
		}
	}
	for st, n := range byStatus {
		ch <- prometheus.MustNewConstMetric(m.agents, prometheus.GaugeValue, float64(n), st)
	}
	ch <- prometheus.MustNewConstMetric(m.streams, prometheus.GaugeValue, float64(m.s.reg.connectedCount()))
	// Only what this server has opened: a scrape must not open the CA.
	m.s.mu.Lock()
	a := m.s.ca
	m.s.mu.Unlock()
	if a != nil {
		ch <- prometheus.MustNewConstMetric(m.caExpiry, prometheus.GaugeValue, float64(a.cert.NotAfter.Unix()))
		ch <- prometheus.MustNewConstMetric(m.listenerExpiry, prometheus.GaugeValue, float64(a.server.Leaf.NotAfter.Unix()))
	}
}
