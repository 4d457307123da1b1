package cluster

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestMetricsReportWhenTheClusterCertificatesExpire(t *testing.T) {
	before := time.Now()
	c := newTestCluster(t, 1)
	after := time.Now()
	got := certExpiries(t, c.nodes[0].Metrics())
	if want := c.ca.Cert.NotAfter.Unix(); got["cluster_ca"] != want {
		t.Errorf("cluster_ca expiry = %d, want %d", got["cluster_ca"], want)
	}
	// The node certificate is issued as the node opens.
	lo, hi := before.Add(nodeValidity).Unix()-1, after.Add(nodeValidity).Unix()+1
	if v := got["raft_node"]; v < lo || v > hi {
		t.Errorf("raft_node expiry = %d, want between %d and %d", v, lo, hi)
	}
	if len(got) != 2 {
		t.Errorf("expiry series = %v, want cluster_ca and raft_node", got)
	}
}

// certExpiries scrapes opsconductor_cert_expiry_timestamp_seconds by cert.
func certExpiries(t *testing.T, c prometheus.Collector) map[string]int64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, mf := range families {
		if mf.GetName() != "opsconductor_cert_expiry_timestamp_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "cert" {
					out[l.GetValue()] = int64(m.GetGauge().GetValue())
				}
			}
		}
	}
	return out
}
