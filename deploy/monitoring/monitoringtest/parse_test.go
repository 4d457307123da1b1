package monitoringtest

import (
	"slices"
	"testing"

	"github.com/prometheus/common/model"
)

// The checks above are only as good as the name extraction: these cases
// show that it finds every selector and refuses what it cannot check.
func TestSelectedNames(t *testing.T) {
	for _, tc := range []struct {
		name, expr string
		want       []string
		wantErr    bool
	}{
		{name: "a bare selector", expr: `up`, want: []string{"up"}},
		{name: "a range selector inside a function", expr: `rate(a_total{code=~"5.."}[5m])`, want: []string{"a_total"}},
		{name: "both sides of a binary operation with matching", expr: `max by (job) (x) - on (job) group_right y`, want: []string{"x", "y"}},
		{name: "a histogram quantile over buckets", expr: `histogram_quantile(0.99, sum by (le) (rate(h_bucket[5m])))`, want: []string{"h_bucket"}},
		{name: "a subquery", expr: `max_over_time(rate(c_total[1m])[10m:1m])`, want: []string{"c_total"}},
		{name: "a name given as a __name__ matcher", expr: `{__name__="n", job="j"}`, want: []string{"n"}},
		{name: "a selector by regex on __name__ is refused", expr: `{__name__=~"opsconductor_.*"}`, wantErr: true},
		{name: "a syntax error is refused", expr: `rate(x[5m]`, wantErr: true},
		{name: "an unknown function is refused", expr: `ratez(x[5m])`, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := selectedNames(tc.expr)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("selectedNames(%q) = %v, want an error", tc.expr, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("selectedNames(%q): %v", tc.expr, err)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("selectedNames(%q) = %v, want %v", tc.expr, got, tc.want)
			}
		})
	}
}

func TestGrafanaVariablesBecomePromQL(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"the rate interval becomes a duration", `rate(x[$__rate_interval])`, `rate(x[5m])`},
		{"a braced variable with a format matches everything", `x{job=~"${job:regex}"}`, `x{job=~".*"}`},
		{"a plain variable matches everything", `x{instance=~"$instance"}`, `x{instance=~".*"}`},
		{"the old bracket syntax matches everything", `x{job=~"[[job]]"}`, `x{job=~".*"}`},
		{"a query without variables is unchanged", `sum(up)`, `sum(up)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := toPromQL(tc.in); got != tc.want {
				t.Fatalf("toPromQL(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestSeriesNamesOfFamilies(t *testing.T) {
	got := sortedKeys(seriesNames(map[string]model.MetricType{
		"h": model.MetricTypeHistogram, "s": model.MetricTypeSummary, "c_total": model.MetricTypeCounter, "g": model.MetricTypeGauge,
	}))
	want := []string{"c_total", "g", "h_bucket", "h_count", "h_sum", "s", "s_count", "s_sum"}
	if !slices.Equal(got, want) {
		t.Fatalf("seriesNames = %v, want %v", got, want)
	}
}
