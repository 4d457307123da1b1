package notify

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/opsconductor/opsconductor/controller/communication/channel"
)

// deliveryAttempts counts the attempts this server's worker made (only
// the leader runs one), by the channel's kind and whether the receiver
// took it: per-channel or per-rule labels would grow with the config.
func newDeliveryAttempts() *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "opsconductor_notify_deliveries_total",
		Help: "Notification delivery attempts made by this server, by channel kind and outcome (delivered or failed)."},
		[]string{"channel_kind", "outcome"})
	// Every series exists from the start, so an alert on the failed
	// share reads 0, not nothing, before the first delivery.
	for _, kind := range []channel.Kind{channel.KindEmail, channel.KindWebhook, channel.KindChat} {
		for _, outcome := range []string{"delivered", "failed"} {
			c.WithLabelValues(string(kind), outcome)
		}
	}
	return c
}

// Metrics returns the service's collectors for the controller's registry.
func (s *Service) Metrics() prometheus.Collector {
	return &outboxMetrics{s: s,
		pending: prometheus.NewDesc("opsconductor_notify_outbox_pending", "Deliveries waiting to be sent or retried (replicated).", nil, nil),
		dead:    prometheus.NewDesc("opsconductor_notify_dead_letters", "Deliveries that gave up and wait for a redeliver or their expiry (replicated).", nil, nil),
	}
}

// outboxMetrics counts the outbox when scraped, so it cannot drift from
// the replicated state.
type outboxMetrics struct {
	s             *Service
	pending, dead *prometheus.Desc
}

func (m *outboxMetrics) Describe(ch chan<- *prometheus.Desc) {
	m.s.attempts.Describe(ch)
	ch <- m.pending
	ch <- m.dead
}

func (m *outboxMetrics) Collect(ch chan<- prometheus.Metric) {
	m.s.attempts.Collect(ch)
	txn := m.s.d.Store.ReadTxn()
	for desc, st := range map[*prometheus.Desc]string{m.pending: StatePending, m.dead: StateDead} {
		it, err := txn.Get(tableDeliveries, "state", st)
		if err != nil {
			ch <- prometheus.NewInvalidMetric(desc, err)
			continue
		}
		n := 0
		for obj := it.Next(); obj != nil; obj = it.Next() {
			n++
		}
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, float64(n))
	}
}

// countAttempt records one attempt's outcome under its channel's kind.
func (s *Service) countAttempt(d *Delivery, r result) {
	kind := "unknown" // the channel was deleted under the delivery
	if ch, err := getChannel(s.d.Store.ReadTxn(), d.Channel); err == nil {
		kind = string(ch.Config.Kind)
	}
	outcome := "failed"
	if r.OK {
		outcome = "delivered"
	}
	s.attempts.WithLabelValues(kind, outcome).Inc()
}
