package agentrpc

import (
	"context"
	"testing"
	"time"

	"github.com/opsconductor/opsconductor/internal/metricstest"
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

	got := metricstest.Gather(t, m)
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
	got := metricstest.Gather(t, m)
	for cert, want := range map[string]time.Time{"agent_ca": a.cert.NotAfter, "agent_listener": a.server.Leaf.NotAfter} {
		key := `opsconductor_cert_expiry_timestamp_seconds{cert="` + cert + `"}`
		if got[key] != float64(want.Unix()) {
			t.Errorf("%s = %v, want %v", key, got[key], want.Unix())
		}
	}
}
