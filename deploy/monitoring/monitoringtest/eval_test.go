package monitoringtest

import (
	"context"
	"math"
	"slices"
	"sort"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
)

const (
	// scrapeCount scrapes, scrapeInterval apart in the samples' time: enough
	// points for rate() and the 15-minute term window.
	scrapeCount    = 6
	scrapeInterval = 15 * time.Second
	job            = "opsconductor"
)

// evalStart is the time of the first scrape's samples. It is fixed so
// that the certificate scenarios do not depend on today's date; the
// controller's own certificates, issued when the test starts, expire long
// after it.
var evalStart = time.Unix(1_800_000_000, 0)

// instances are the three controllers the scraped samples are presented
// as. The real controller is a lone leader; the other two are its copies
// turned into followers, so that every query meets several series per job,
// as it does in production.
var instances = []string{"ctl1:3000", "ctl2:3000", "ctl3:3000"}

// clusterAlerts are the alerts whose firing the scenarios decide. The
// others depend on load and latency, which one short test run does not fix.
var clusterAlerts = []string{
	"OpsConductorControllerDown", "OpsConductorNoLeader", "OpsConductorSeveralLeaders",
	"OpsConductorQuorumAtRisk", "OpsConductorLeaderFlapping", "OpsConductorFollowerLostLeader",
	"OpsConductorHistoryUnreachable", "OpsConductorHistoryBacklog", "OpsConductorHistoryAppendErrors",
	"OpsConductorAuditAppendErrors", "OpsConductorAgentsDown", "OpsConductorLeaderHasNoAgentStreams",
	"OpsConductorRunFailureRateHigh", "OpsConductorRunsPiling", "OpsConductorNotifyOutboxBacklog",
	"OpsConductorNotifyDeadLetters", "OpsConductorNotifyDeliveriesFailing",
	"OpsConductorCertExpiresSoon", "OpsConductorCertExpiresVerySoon",
}

// sampleEdit changes one sample of the synthetic cluster: scrape k of
// instance, series name with labels lset. It returns the new value.
type sampleEdit func(k int, instance, name string, lset map[string]string, v float64) float64

// healthy makes ctl2 and ctl3 followers in contact with the leader, and the
// cluster a three-voter one.
func healthy(_ int, instance, name string, lset map[string]string, v float64) float64 {
	switch name {
	case "opsconductor_raft_peers":
		if lset["suffrage"] == "voter" {
			return 3
		}
	case "opsconductor_raft_state":
		if instance != instances[0] {
			return b2f(lset["state"] == "follower")
		}
	case "opsconductor_raft_last_contact_seconds":
		if instance != instances[0] {
			return 0.05
		}
	case "opsconductor_agent_streams_connected":
		if instance != instances[0] { // only the leader holds streams
			return 0
		}
	}
	return v
}

func checkEvaluation(t *testing.T, scrapes []map[string]*dto.MetricFamily, groups *rulefmt.RuleGroups, dashboard map[string]string) {
	last := len(scrapes) - 1
	for _, tc := range []struct {
		name string
		edit sampleEdit
		want []string
	}{
		{name: "a healthy cluster fires none", edit: healthy},
		{
			name: "the leader's controller gone: down, no leader, quorum at risk",
			edit: func(k int, instance, name string, lset map[string]string, v float64) float64 {
				if k == last && instance == instances[0] {
					if name == "up" {
						return 0
					}
					return math.Float64frombits(value.StaleNaN)
				}
				return healthy(k, instance, name, lset, v)
			},
			want: []string{"OpsConductorControllerDown", "OpsConductorNoLeader", "OpsConductorQuorumAtRisk"},
		},
		{
			name: "two controllers that claim to lead",
			edit: func(k int, instance, name string, lset map[string]string, v float64) float64 {
				if name == "opsconductor_raft_state" && instance == instances[1] {
					return b2f(lset["state"] == "leader")
				}
				return healthy(k, instance, name, lset, v)
			},
			want: []string{"OpsConductorSeveralLeaders"},
		},
		{
			name: "an election every scrape",
			edit: func(k int, instance, name string, lset map[string]string, v float64) float64 {
				if name == "opsconductor_raft_term" {
					return v + float64(k)
				}
				return healthy(k, instance, name, lset, v)
			},
			want: []string{"OpsConductorLeaderFlapping"},
		},
		{
			name: "a follower cut off from the leader",
			edit: func(k int, instance, name string, lset map[string]string, v float64) float64 {
				if name == "opsconductor_raft_last_contact_seconds" && instance == instances[2] {
					return 30
				}
				return healthy(k, instance, name, lset, v)
			},
			want: []string{"OpsConductorFollowerLostLeader"},
		},
		{
			name: "a follower that cannot reach the history store",
			edit: func(k int, instance, name string, lset map[string]string, v float64) float64 {
				if instance == instances[1] {
					switch name {
					case "opsconductor_history_reachable":
						return 0
					case "opsconductor_history_oldest_buffered_seconds":
						return 600 + float64(k)*scrapeInterval.Seconds()
					case "opsconductor_history_append_errors_total", "opsconductor_audit_append_errors_total":
						return v + float64(k)
					}
				}
				return healthy(k, instance, name, lset, v)
			},
			want: []string{"OpsConductorHistoryUnreachable", "OpsConductorHistoryBacklog",
				"OpsConductorHistoryAppendErrors", "OpsConductorAuditAppendErrors"},
		},
		{
			name: "no agent reaches the leader",
			edit: func(k int, instance, name string, lset map[string]string, v float64) float64 {
				switch {
				case name == "opsconductor_agent_streams_connected":
					return 0
				case name == "opsconductor_agents" && lset["status"] == "down":
					return 5
				case name == "opsconductor_runs_active" && lset["status"] == "queued":
					return 150
				}
				return healthy(k, instance, name, lset, v)
			},
			want: []string{"OpsConductorAgentsDown", "OpsConductorLeaderHasNoAgentStreams", "OpsConductorRunsPiling"},
		},
		{
			name: "runs and webhook deliveries failing on the leader",
			edit: func(k int, instance, name string, lset map[string]string, v float64) float64 {
				leader := instance == instances[0]
				switch {
				case name == "opsconductor_runs_finished_total" && lset["status"] == "failed" && leader:
					return v + 2*float64(k)
				case name == "opsconductor_notify_deliveries_total" && lset["channel_kind"] == "webhook" &&
					lset["outcome"] == "failed" && leader:
					return v + float64(k)
				case name == "opsconductor_notify_outbox_pending":
					return 200
				case name == "opsconductor_notify_dead_letters":
					return 3
				}
				return healthy(k, instance, name, lset, v)
			},
			want: []string{"OpsConductorRunFailureRateHigh", "OpsConductorNotifyDeliveriesFailing",
				"OpsConductorNotifyOutboxBacklog", "OpsConductorNotifyDeadLetters"},
		},
		{
			name: "a node certificate that expires in five days",
			edit: func(k int, instance, name string, lset map[string]string, v float64) float64 {
				if name == "opsconductor_cert_expiry_timestamp_seconds" && lset["cert"] == "raft_node" && instance == instances[2] {
					return float64(evalStart.Add(5 * 24 * time.Hour).Unix())
				}
				return healthy(k, instance, name, lset, v)
			},
			want: []string{"OpsConductorCertExpiresSoon", "OpsConductorCertExpiresVerySoon"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, times := clusterSamples(t, scrapes, tc.edit)
			firing := evaluate(t, st, times, groups, dashboard)
			var got []string
			for _, a := range clusterAlerts {
				if firing[a] {
					got = append(got, a)
				}
			}
			want := slices.Clone(tc.want)
			sort.Strings(got)
			sort.Strings(want)
			if !slices.Equal(got, want) {
				t.Errorf("cluster alerts firing: %v, want %v", got, want)
			}
		})
	}
}

// evaluate runs the recording rules at every scrape time (storing what
// they record, as Prometheus does), then every alert and dashboard query at
// the last one. Any evaluation error fails the test. It returns the alerts
// whose expression has a result (their `for` left aside).
func evaluate(t *testing.T, st *memStorage, times []time.Time, groups *rulefmt.RuleGroups, dashboard map[string]string) map[string]bool {
	t.Helper()
	engine := promql.NewEngine(promql.EngineOpts{
		MaxSamples: 10_000_000, Timeout: time.Minute, LookbackDelta: 5 * time.Minute, Parser: promqlParser,
	})
	eval := func(where, expr string, at time.Time) promql.Vector {
		q, err := engine.NewInstantQuery(context.Background(), st, nil, expr, at)
		if err != nil {
			t.Errorf("%s: %v", where, err)
			return nil
		}
		defer q.Close()
		res := q.Exec(context.Background())
		if res.Err != nil {
			t.Errorf("%s: %v", where, res.Err)
			return nil
		}
		switch v := res.Value.(type) {
		case promql.Vector:
			return v
		case promql.Scalar:
			return promql.Vector{{T: v.T, F: v.V}}
		}
		t.Errorf("%s: result of type %s, want a vector", where, res.Value.Type())
		return nil
	}
	for _, at := range times {
		for _, g := range groups.Groups {
			for _, r := range g.Rules {
				if r.Record == "" {
					continue
				}
				for _, s := range eval("recording rule "+r.Record, r.Expr, at) {
					b := labels.NewBuilder(s.Metric)
					b.Set(model.MetricNameLabel, r.Record)
					st.add(b.Labels(), at, s.F)
				}
			}
		}
	}
	at := times[len(times)-1]
	firing := map[string]bool{}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" && len(eval("alert "+r.Alert, r.Expr, at)) > 0 {
				firing[r.Alert] = true
			}
		}
	}
	for _, where := range sortedKeys(dashboard) {
		eval(where, dashboard[where], at)
	}
	return firing
}

// clusterSamples turns the scrapes into the samples Prometheus would hold
// for three controllers of job "opsconductor" (up included), edited by edit.
func clusterSamples(t *testing.T, scrapes []map[string]*dto.MetricFamily, edit sampleEdit) (*memStorage, []time.Time) {
	t.Helper()
	st := newMemStorage()
	start := evalStart
	var times []time.Time
	for k, fams := range scrapes {
		at := start.Add(time.Duration(k) * scrapeInterval)
		times = append(times, at)
		list := make([]*dto.MetricFamily, 0, len(fams)+1)
		for _, f := range fams {
			list = append(list, f)
		}
		vec, err := expfmt.ExtractSamples(&expfmt.DecodeOptions{Timestamp: model.TimeFromUnixNano(at.UnixNano())}, list...)
		if err != nil {
			t.Fatalf("samples of scrape %d: %v", k, err)
		}
		vec = append(vec, &model.Sample{Metric: model.Metric{model.MetricNameLabel: "up"}, Value: 1})
		for _, inst := range instances {
			for _, s := range vec {
				lset := map[string]string{}
				for n, v := range s.Metric {
					lset[string(n)] = string(v)
				}
				name := lset[model.MetricNameLabel]
				lset["job"], lset["instance"] = job, inst
				st.add(labels.FromMap(lset), at, edit(k, inst, name, lset, float64(s.Value)))
			}
		}
	}
	return st, times
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// memStorage is the smallest storage.Queryable the PromQL engine runs on:
// float samples in memory, in time order per series. (Prometheus's test
// storage is a whole TSDB, which would double this module's build time.)
type memStorage struct {
	series map[string]*memSeries
}

type memSeries struct {
	lset    labels.Labels
	samples []chunks.Sample
}

func newMemStorage() *memStorage { return &memStorage{series: map[string]*memSeries{}} }

func (m *memStorage) add(lset labels.Labels, at time.Time, v float64) {
	key := lset.String()
	s := m.series[key]
	if s == nil {
		s = &memSeries{lset: lset}
		m.series[key] = s
	}
	s.samples = append(s.samples, floatSample{t: at.UnixMilli(), f: v})
}

func (m *memStorage) Querier(mint, maxt int64) (storage.Querier, error) {
	return &storage.MockQuerier{SelectMockFunction: func(_ bool, _ *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
		var out []storage.Series
		for _, key := range sortedKeys(m.series) {
			s := m.series[key]
			if !matches(s.lset, ms) {
				continue
			}
			var in []chunks.Sample
			for _, smp := range s.samples {
				if smp.T() >= mint && smp.T() <= maxt {
					in = append(in, smp)
				}
			}
			out = append(out, storage.NewListSeries(s.lset, in))
		}
		return &sliceSeriesSet{series: out, i: -1}
	}}, nil
}

func matches(lset labels.Labels, ms []*labels.Matcher) bool {
	for _, m := range ms {
		if !m.Matches(lset.Get(m.Name)) {
			return false
		}
	}
	return true
}

type sliceSeriesSet struct {
	series []storage.Series
	i      int
}

func (s *sliceSeriesSet) Next() bool                        { s.i++; return s.i < len(s.series) }
func (s *sliceSeriesSet) At() storage.Series                { return s.series[s.i] }
func (s *sliceSeriesSet) Err() error                        { return nil }
func (s *sliceSeriesSet) Warnings() annotations.Annotations { return nil }

type floatSample struct {
	t int64
	f float64
}

func (s floatSample) T() int64                      { return s.t }
func (s floatSample) ST() int64                     { return 0 }
func (s floatSample) F() float64                    { return s.f }
func (s floatSample) H() *histogram.Histogram       { return nil }
func (s floatSample) FH() *histogram.FloatHistogram { return nil }
func (s floatSample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s floatSample) Copy() chunks.Sample           { return s }
