package cluster

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics exposes the node's Raft state to Prometheus. Gauges are read from
// Raft when scraped, so they cost nothing between scrapes.
type Metrics struct {
	n         *Node
	apply     *prometheus.HistogramVec
	batchSize prometheus.Histogram
	forwarded prometheus.Counter

	state       *prometheus.Desc
	term        *prometheus.Desc
	commitIndex *prometheus.Desc
	applied     *prometheus.Desc
	lastIndex   *prometheus.Desc
	lastContact *prometheus.Desc
	peers       *prometheus.Desc
	caExpiry    *prometheus.Desc
	nodeExpiry  *prometheus.Desc
}

// certExpiryDesc describes one certificate's expiry. The cert label is
// constant per Desc because agentrpc reports its certificates under the
// same name from its own collector, and a registry accepts two collectors
// of one name only when their constant labels differ.
func certExpiryDesc(cert string) *prometheus.Desc {
	return prometheus.NewDesc("opsconductor_cert_expiry_timestamp_seconds", "When a certificate this server uses expires (Unix time).",
		nil, prometheus.Labels{"cert": cert})
}

func newMetrics(n *Node) *Metrics {
	return &Metrics{
		n: n,
		apply: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "opsconductor_raft_apply_duration_seconds",
			Help:    "Time from Apply to the FSM result, forwarding included, by outcome.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"outcome"}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "opsconductor_raft_batch_commands",
			Help:    "Commands per Raft log entry formed by the leader's batcher.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512},
		}),
		forwarded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "opsconductor_raft_forwarded_total",
			Help: "Requests this node forwarded to the leader.",
		}),
		state:       prometheus.NewDesc("opsconductor_raft_state", "1 for this node's current Raft state.", []string{"state"}, nil),
		term:        prometheus.NewDesc("opsconductor_raft_term", "Current Raft term.", nil, nil),
		commitIndex: prometheus.NewDesc("opsconductor_raft_commit_index", "Highest log index known committed.", nil, nil),
		applied:     prometheus.NewDesc("opsconductor_raft_applied_index", "Highest log index applied to the FSM.", nil, nil),
		lastIndex:   prometheus.NewDesc("opsconductor_raft_last_index", "Highest log index stored.", nil, nil),
		lastContact: prometheus.NewDesc("opsconductor_raft_last_contact_seconds", "Age of the last contact with the leader (0 on the leader).", nil, nil),
		peers:       prometheus.NewDesc("opsconductor_raft_peers", "Servers in the Raft configuration, by suffrage.", []string{"suffrage"}, nil),
		caExpiry:    certExpiryDesc("cluster_ca"),
		nodeExpiry:  certExpiryDesc("raft_node"),
	}
}

func (m *Metrics) observeApply(d time.Duration, err error) {
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	m.apply.WithLabelValues(outcome).Observe(d.Seconds())
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	m.apply.Describe(ch)
	m.batchSize.Describe(ch)
	m.forwarded.Describe(ch)
	for _, d := range []*prometheus.Desc{m.state, m.term, m.commitIndex, m.applied, m.lastIndex, m.lastContact, m.peers, m.caExpiry, m.nodeExpiry} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.apply.Collect(ch)
	m.batchSize.Collect(ch)
	m.forwarded.Collect(ch)
	st := m.n.Status()
	for _, s := range []string{"leader", "follower", "candidate", "shutdown"} {
		v := 0.0
		if s == st.State {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(m.state, prometheus.GaugeValue, v, s)
	}
	ch <- prometheus.MustNewConstMetric(m.term, prometheus.GaugeValue, float64(st.Term))
	ch <- prometheus.MustNewConstMetric(m.commitIndex, prometheus.GaugeValue, float64(st.CommitIndex))
	ch <- prometheus.MustNewConstMetric(m.applied, prometheus.GaugeValue, float64(st.AppliedIndex))
	ch <- prometheus.MustNewConstMetric(m.lastIndex, prometheus.GaugeValue, float64(st.LastIndex))
	lc := 0.0
	if st.LastContactMillis > 0 {
		lc = float64(st.LastContactMillis) / 1000
	}
	ch <- prometheus.MustNewConstMetric(m.lastContact, prometheus.GaugeValue, lc)
	counts := map[string]int{"voter": 0, "nonvoter": 0}
	for _, p := range st.Peers {
		counts[p.Suffrage]++
	}
	for s, c := range counts {
		ch <- prometheus.MustNewConstMetric(m.peers, prometheus.GaugeValue, float64(c), s)
	}
	// The cluster CA is a file the operator replaces by hand; the node
	// certificate is reissued at every start but a controller can run longer
	// than its validity.
	ch <- prometheus.MustNewConstMetric(m.caExpiry, prometheus.GaugeValue, float64(m.n.cfg.CA.Cert.NotAfter.Unix()))
	ch <- prometheus.MustNewConstMetric(m.nodeExpiry, prometheus.GaugeValue, float64(m.n.certExpiry.Unix()))
}
