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
func (s *Service) Metrics() prometheus.Collector { return s.trips }
