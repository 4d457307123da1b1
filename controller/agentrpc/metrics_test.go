package agentrpc

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestMetricsCountAgentsByStatusAndTheStreamsOfThisServer(t *testing.T) {
	e := newEnvWith(t, fastStreams, nil)
	m := e.svc.Metrics()

	gone, _ := e.connectAgent(t, "gone")
	if err := gone.stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the agent marked down", func() bool { return e.agent(t, gone.id).Status == StatusDown })
	up, _ := e.connectAgent(t, "up")
	// The lease is short here, so the live agent heartbeats as a real one does.
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if up.stream.Send(heartbeat()) != nil {
					return
				}
			}
		}
	}()
	defer func() { close(stop); <-stopped }()
	doomed, _ := e.enrolled(t, "doomed")
	if _, err := e.svc.RevokeAgent(context.Background(), doomed); err != nil {
		t.Fatal(err)
	}
	e.enrolled(t, "quiet")

	got := gathered(t, m)
	for key, want := range map[string]float64{
		`opsconductor_agents{status="up"}`: 1, `opsconductor_agents{status="down"}`: 1,
		`opsconductor_agents{status="revoked"}`: 1, `opsconductor_agents{status="enrolled"}`: 1,
		`opsconductor_agent_streams_connected`: 1,
	} {
		if got[key] != want {
			t.Errorf("%s = %v, want %v", key, got[key], want)
		}
	}
}

func TestMetricsReportWhenTheAgentCertificatesExpire(t *testing.T) {
	e := newEnvWith(t, nil, nil)
	m := e.svc.Metrics()
	a, err := e.svc.authority()
	if err != nil {
		t.Fatal(err)
	}
	got := gathered(t, m)
	for cert, want := range map[string]time.Time{"agent_ca": a.cert.NotAfter, "agent_listener": a.server.Leaf.NotAfter} {
		key := `opsconductor_cert_expiry_timestamp_seconds{cert="` + cert + `"}`
		if got[key] != float64(want.Unix()) {
			t.Errorf("%s = %v, want %v", key, got[key], want.Unix())
		}
	}
}

// gathered scrapes c as /metrics would and returns every gauge and counter
// by name{label="value",…}, labels in the order the registry sorts them.
func gathered(t *testing.T, c prometheus.Collector) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range families {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+`="`+l.GetValue()+`"`)
			}
			key := mf.GetName()
			if len(labels) > 0 {
				key += "{" + strings.Join(labels, ",") + "}"
			}
			out[key] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	return out
}
