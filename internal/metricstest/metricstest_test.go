package metricstest

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestGather(t *testing.T) {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "x_things", Help: "things"}, []string{"b", "a"})
	g.WithLabelValues("2", "1").Set(3)
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "x_total", Help: "events"})
	c.Add(4)
	got := Gather(t, both{g, c})
	want := map[string]float64{`x_things{a="1",b="2"}`: 3, "x_total": 4}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("%s = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
}

// both is one collector made of two, as a domain's Metrics() is.
type both [2]prometheus.Collector

func (b both) Describe(ch chan<- *prometheus.Desc) { b[0].Describe(ch); b[1].Describe(ch) }
func (b both) Collect(ch chan<- prometheus.Metric) { b[0].Collect(ch); b[1].Collect(ch) }
