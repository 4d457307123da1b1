package monitoringtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

var (
	rulesFile     = filepath.Join("..", "prometheus-rules.yml")
	dashboardFile = filepath.Join("..", "grafana-dashboard.json")
)

// scraperSeries are the series Prometheus adds to every target itself; the
// rules may use them although no controller exports them.
var scraperSeries = []string{"up"}

var promqlParser = parser.NewParser(parser.Options{})

// loadRules loads the rules file the way Prometheus does at start (strict
// YAML fields, every expression parsed, every annotation template parsed).
func loadRules(t *testing.T) *rulefmt.RuleGroups {
	t.Helper()
	groups, errs := rulefmt.ParseFile(rulesFile, false, model.UTF8Validation, promqlParser, slog.New(slog.DiscardHandler))
	if len(errs) > 0 {
		t.Fatalf("%s does not load: %v", rulesFile, errors.Join(errs...))
	}
	return groups
}

func TestRulesLoadAsPrometheusLoadsThem(t *testing.T) {
	groups := loadRules(t)
	var alerts, records int
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				alerts++
			} else {
				records++
			}
		}
	}
	if alerts == 0 || records == 0 {
		t.Fatalf("%s has %d alerts and %d recording rules; want both", rulesFile, alerts, records)
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Logf("promtool is not installed: the rules were checked with Prometheus's own loader (rulefmt) only")
		return
	}
	if out, err := exec.Command(promtool, "check", "rules", rulesFile).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
}

// TestAlertsCarryWhatOnCallNeeds: every alert is routable by severity and
// says what broke and where to look.
func TestAlertsCarryWhatOnCallNeeds(t *testing.T) {
	seen := map[string]bool{}
	for _, g := range loadRules(t).Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				if !strings.HasPrefix(r.Record, "opsconductor:") {
					t.Errorf("recording rule %q: name it opsconductor:<metric>:<operation> (level:metric:operations)", r.Record)
				}
				continue
			}
			if seen[r.Alert] {
				t.Errorf("alert %s is defined twice", r.Alert)
			}
			seen[r.Alert] = true
			if !strings.HasPrefix(r.Alert, "OpsConductor") {
				t.Errorf("alert %s: name it OpsConductor…", r.Alert)
			}
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("alert %s: severity %q, want critical or warning", r.Alert, s)
			}
			for _, a := range []string{"summary", "description"} {
				if strings.TrimSpace(r.Annotations[a]) == "" {
					t.Errorf("alert %s: no %s annotation", r.Alert, a)
				}
			}
		}
	}
}

// TestQueriesAgainstALiveController starts a real controller, makes it do
// some work and scrapes it several times. Every series name the rules and
// the dashboard select must be one it exports (or a recording rule's), and
// every query must evaluate, and the cluster alerts fire when they should,
// over those samples presented as a three-controller cluster.
func TestQueriesAgainstALiveController(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a controller")
	}
	c := startController(t)
	var scrapes []map[string]*dto.MetricFamily
	for range scrapeCount {
		c.exercise(t)
		scrapes = append(scrapes, c.scrape(t))
	}
	groups := loadRules(t)
	dq, err := dashboardQueries(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("every selected metric is exported", func(t *testing.T) {
		checkSelectedNames(t, seriesNames(familyTypes(scrapes[len(scrapes)-1])), groups, dq)
	})
	t.Run("every query evaluates and the cluster alerts fire when they should", func(t *testing.T) {
		checkEvaluation(t, scrapes, groups, dq)
	})
}

func checkSelectedNames(t *testing.T, exported map[string]bool, groups *rulefmt.RuleGroups, dashboard map[string]string) {
	t.Logf("the controller exports %d series names", len(exported))
	known := maps.Clone(exported)
	for _, n := range scraperSeries {
		known[n] = true
	}
	queries := map[string]string{} // where → PromQL
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				known[r.Record] = true
				queries["recording rule "+r.Record] = r.Expr
			} else {
				queries["alert "+r.Alert] = r.Expr
			}
		}
	}
	maps.Copy(queries, dashboard)
	used := map[string]bool{}
	for _, where := range sortedKeys(queries) {
		names, err := selectedNames(queries[where])
		if err != nil {
			t.Errorf("%s: %v", where, err)
			continue
		}
		for _, n := range names {
			used[n] = true
			if !known[n] {
				t.Errorf("%s selects %s, which the controller does not export", where, n)
			}
		}
	}
	if len(used) == 0 {
		t.Fatal("no metric names found in the rules and the dashboard")
	}
	t.Logf("the rules and the dashboard use %d series names", len(used))
}

func TestDashboardImports(t *testing.T) {
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	// Grafana's import asks for each __inputs datasource and substitutes
	// ${NAME} everywhere, so the dashboard must name no datasource of ours.
	if !slices.ContainsFunc(d.Inputs, func(in input) bool {
		return in.Name == "DS_PROMETHEUS" && in.Type == "datasource" && in.PluginID == "prometheus"
	}) {
		t.Errorf("__inputs has no prometheus datasource DS_PROMETHEUS: %+v", d.Inputs)
	}
	if d.ID != nil {
		t.Errorf("id is %v: an exported dashboard has a null id, or the import overwrites another", *d.ID)
	}
	if d.UID == "" || d.Title == "" {
		t.Errorf("uid %q, title %q: both are needed to import and to link", d.UID, d.Title)
	}
	const ds = "${DS_PROMETHEUS}"
	ids := map[int]string{}
	for _, p := range d.all() {
		where := fmt.Sprintf("panel %d %q", p.ID, p.Title)
		if prev, dup := ids[p.ID]; dup {
			t.Errorf("%s: id also used by %q", where, prev)
		}
		ids[p.ID] = p.Title
		if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("%s: gridPos %+v outside the 24-column grid", where, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != ds {
			t.Errorf("%s: datasource %+v, want uid %s", where, p.Datasource, ds)
		}
		if len(p.Targets) == 0 {
			t.Errorf("%s: no queries", where)
		}
		for _, tg := range p.Targets {
			if tg.Datasource == nil || tg.Datasource.UID != ds {
				t.Errorf("%s target %s: datasource %+v, want uid %s", where, tg.RefID, tg.Datasource, ds)
			}
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("%s target %s: empty expr", where, tg.RefID)
			}
		}
	}
	for _, v := range d.Templating.List {
		if v.Type == "query" && (v.Datasource == nil || v.Datasource.UID != ds) {
			t.Errorf("variable %s: datasource %+v, want uid %s", v.Name, v.Datasource, ds)
		}
	}
	if len(ids) < 10 {
		t.Errorf("%d panels; the dashboard should cover Raft, API, dispatch and process", len(ids))
	}
}

// selectedNames parses a PromQL expression and returns the metric names of
// its selectors, sorted. A selector without a metric name is refused: the
// check could not vouch for it.
func selectedNames(expr string) ([]string, error) {
	node, err := promqlParser.ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	set := map[string]bool{}
	var unnamed []string
	parser.Inspect(node, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		if name == "" {
			for _, m := range vs.LabelMatchers {
				if m.Name == model.MetricNameLabel && m.Type.String() == "=" {
					name = m.Value
				}
			}
		}
		if name == "" {
			unnamed = append(unnamed, vs.String())
			return nil
		}
		set[name] = true
		return nil
	})
	if len(unnamed) > 0 {
		return nil, fmt.Errorf("selector %s names no metric", strings.Join(unnamed, ", "))
	}
	return sortedKeys(set), nil
}

// grafanaVariable matches Grafana's variable syntaxes: $name, ${name},
// ${name:format} and the deprecated [[name]].
var grafanaVariable = regexp.MustCompile(`\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]`)

// toPromQL replaces Grafana variables so that the query parses as PromQL:
// interval variables by a duration, the others by ".*" (they appear only in
// regex label matchers, as "All" would, so the query selects every series).
func toPromQL(q string) string {
	return grafanaVariable.ReplaceAllStringFunc(q, func(v string) string {
		m := grafanaVariable.FindStringSubmatch(v)
		name := m[1] + m[2] + m[3]
		switch name {
		case "__rate_interval", "__interval", "__range":
			return "5m"
		case "__interval_ms", "__range_ms", "__range_s":
			return "300000"
		}
		return ".*"
	})
}

// labelValues matches a templating query label_values(SELECTOR, label).
var labelValues = regexp.MustCompile(`^label_values\((.+),\s*\w+\)$`)

// dashboardQueries returns every PromQL query of the dashboard's panels and
// query variables, Grafana variables replaced, keyed by where it is.
func dashboardQueries(path string) (map[string]string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	out := map[string]string{}
	for _, p := range d.all() {
		for _, tg := range p.Targets {
			out[fmt.Sprintf("dashboard panel %q target %s", p.Title, tg.RefID)] = toPromQL(tg.Expr)
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		m := labelValues.FindStringSubmatch(strings.TrimSpace(v.Query.Query))
		if m == nil {
			return nil, fmt.Errorf("%s: variable %s: query %q is not label_values(selector, label)", path, v.Name, v.Query.Query)
		}
		out["dashboard variable "+v.Name] = toPromQL(m[1])
	}
	return out, nil
}

// dashboard is the part of Grafana's dashboard JSON model the tests read.
type dashboard struct {
	Inputs     []input  `json:"__inputs"`
	ID         *float64 `json:"id"`
	UID        string   `json:"uid"`
	Title      string   `json:"title"`
	Panels     []panel  `json:"panels"`
	Templating struct {
		List []struct {
			Name       string      `json:"name"`
			Type       string      `json:"type"`
			Datasource *datasource `json:"datasource"`
			Query      varQuery    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

// all returns the panels, those inside collapsed rows included.
func (d dashboard) all() []panel {
	var out []panel
	for _, p := range d.Panels {
		out = append(out, p)
		out = append(out, p.Panels...)
	}
	return out
}

type input struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	PluginID string `json:"pluginId"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *datasource `json:"datasource"`
	GridPos    struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		RefID      string      `json:"refId"`
		Expr       string      `json:"expr"`
		Datasource *datasource `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

// varQuery is a query variable's query: a string in old dashboards, an
// object with the string in "query" in new ones.
type varQuery struct{ Query string }

func (q *varQuery) UnmarshalJSON(b []byte) error {
	if err := json.Unmarshal(b, &q.Query); err == nil {
		return nil
	}
	var obj struct {
		Query string `json:"query"`
	}
	if err := json.Unmarshal(b, &obj); err != nil {
		return fmt.Errorf("variable query: %w", err)
	}
	q.Query = obj.Query
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
