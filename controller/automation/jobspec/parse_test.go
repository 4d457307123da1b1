package jobspec

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/opsconductor/opsconductor/controller/problem"
)

func readExample(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/rolling-restart.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// exampleJSON is the issue's example written as JSON, with batch_size
// given as the expression and max_fail_percent as an integer.
const exampleJSON = `{
  "name": "rolling-restart",
  "description": "Restart the web tier one batch at a time",
  "params": [
    {"name": "service", "type": "string", "default": "nginx", "pattern": "^[a-z0-9@._-]+$"},
    {"name": "batch", "type": "integer", "default": 2, "min": 1}
  ],
  "targets": {"tags": {"role": "web"}},
  "rollout": {"batch_size": "${{ params.batch }}", "max_fail_percent": 0},
  "concurrency": "forbid",
  "steps": [
    {"id": "drain", "uses": "http@1", "with": {"method": "POST", "url": "http://lb.internal/drain/${{ target.name }}"}},
    {"id": "restart", "uses": "service@1", "needs": ["drain"], "with": {"name": "${{ params.service }}", "action": "restart"},
     "retries": {"count": 2, "backoff": "5s"}, "timeout": "2m"},
    {"id": "check", "uses": "wait@1", "needs": ["restart"], "with": {"http": "http://${{ target.address }}/healthz", "timeout": "60s"}},
    {"id": "undrain", "uses": "http@1", "needs": ["check"]},
    {"id": "page", "uses": "http@1", "on_failure": true}
  ]
}`

func TestParseReadsTheIssueExample(t *testing.T) {
	j, err := Parse(readExample(t))
	if err != nil {
		t.Fatal(err)
	}
	if j.Name != "rolling-restart" || j.ConcurrencyPolicy() != ConcurrencyForbid {
		t.Errorf("name %q, concurrency %q", j.Name, j.Concurrency)
	}
	if len(j.Params) != 2 || j.Params[1].Default != 2 || *j.Params[1].Min != 1 || j.Params[0].Default != "nginx" {
		t.Errorf("params = %+v", j.Params)
	}
	if j.Rollout.BatchSize != "${{ params.batch }}" || j.Rollout.MaxFailPercent == nil || *j.Rollout.MaxFailPercent != 0 {
		t.Errorf("rollout = %+v", j.Rollout)
	}
	if j.Targets.Tags["role"] != "web" {
		t.Errorf("targets = %+v", j.Targets)
	}
	ids := make([]string, len(j.Steps))
	for i, s := range j.Steps {
		ids[i] = s.ID
	}
	if !slices.Equal(ids, []string{"drain", "restart", "check", "undrain", "page"}) {
		t.Errorf("step ids = %v", ids)
	}
	r := j.Steps[1]
	if r.Retries.Count != 2 || r.Backoff() != 5*time.Second || r.Timeout.Std() != 2*time.Minute || !slices.Equal(r.Needs, []string{"drain"}) {
		t.Errorf("restart = %+v", r)
	}
	if !j.Steps[4].OnFailure || j.Steps[0].Backoff() != DefaultBackoff {
		t.Errorf("page = %+v", j.Steps[4])
	}
}

func TestParseRoundTrips(t *testing.T) {
	orig, err := Parse(readExample(t))
	if err != nil {
		t.Fatal(err)
	}
	y, err := yaml.Marshal(orig)
	if err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(orig)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"yaml": y, "json": js} {
		t.Run("through "+name, func(t *testing.T) {
			back, err := Parse(data)
			if err != nil {
				t.Fatalf("parse %s: %v\n%s", name, err, data)
			}
			if !equalJobs(orig, back) {
				t.Errorf("round trip changed the job:\n%s", data)
			}
		})
	}
	t.Run("through json.Unmarshal", func(t *testing.T) {
		var back Job
		if err := json.Unmarshal(js, &back); err != nil {
			t.Fatal(err)
		}
		if !equalJobs(orig, &back) {
			t.Errorf("json.Unmarshal differs from Parse")
		}
		if back.progs == nil || back.Steps[0].progs == nil {
			t.Errorf("json.Unmarshal did not compile the expressions")
		}
	})
}

func TestParseGivesTheSameJobFromJSONAndYAML(t *testing.T) {
	fromYAML := mustParse(t, string(readExample(t)))
	fromJSON := mustParse(t, exampleJSON)
	if !equalJobs(fromYAML, fromJSON) {
		a, _ := json.Marshal(fromYAML)
		b, _ := json.Marshal(fromJSON)
		t.Errorf("YAML and JSON differ:\n%s\n%s", a, b)
	}
}

func TestParseKeepsNumberTypesInWith(t *testing.T) {
	for name, src := range map[string]string{
		"yaml": "name: x\nsteps:\n- id: a\n  uses: noop\n  with: {n: 3, f: 1.5, b: true, s: \"3\", l: [1, 2.5], z: null}\n",
		"json": `{"name": "x", "steps": [{"id": "a", "uses": "noop", "with": {"n": 3, "f": 1.5, "b": true, "s": "3", "l": [1, 2.5], "z": null}}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			j := mustParse(t, src)
			w := j.Steps[0].With
			want := map[string]any{"n": 3, "f": 1.5, "b": true, "s": "3", "l": []any{1, 2.5}, "z": nil}
			for k, v := range want {
				got, ok := w[k]
				if !ok || !equalPlain(got, v) {
					t.Errorf("with.%s = %#v, want %#v", k, got, v)
				}
			}
		})
	}
}

func equalPlain(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb) && sameKinds(a, b)
}

func sameKinds(a, b any) bool {
	switch x := a.(type) {
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !sameKinds(x[i], y[i]) {
				return false
			}
		}
		return true
	}
	switch a.(type) {
	case int:
		_, ok := b.(int)
		return ok
	case float64:
		_, ok := b.(float64)
		return ok
	}
	return true
}

func TestParseAcceptsBatchSizeAsANumber(t *testing.T) {
	for name, src := range map[string]string{
		"yaml number": "name: x\nrollout: {batch_size: 5}\nsteps: [{id: a, uses: noop}]\n",
		"yaml string": "name: x\nrollout: {batch_size: \"5\"}\nsteps: [{id: a, uses: noop}]\n",
		"json number": `{"name": "x", "rollout": {"batch_size": 5}, "steps": [{"id": "a", "uses": "noop"}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			j := mustParse(t, src)
			if j.Rollout.BatchSize != "5" {
				t.Errorf("batch_size = %q", j.Rollout.BatchSize)
			}
		})
	}
	t.Run("through encoding/json and yaml", func(t *testing.T) {
		var r Rollout
		if err := json.Unmarshal([]byte(`{"batch_size": 25, "max_fail_percent": 10}`), &r); err != nil || r.BatchSize != "25" || *r.MaxFailPercent != 10 {
			t.Errorf("json: %+v %v", r, err)
		}
		var r2 Rollout
		if err := yaml.Unmarshal([]byte("batch_size: 25%\n"), &r2); err != nil || r2.BatchSize != "25%" {
			t.Errorf("yaml: %+v %v", r2, err)
		}
		var r3 Rollout
		if err := yaml.Unmarshal([]byte("batch_size: 7\n"), &r3); err != nil || r3.BatchSize != "7" {
			t.Errorf("yaml number: %+v %v", r3, err)
		}
	})
}

func TestDurationMarshalsAsText(t *testing.T) {
	d := Duration(90 * time.Minute)
	b, err := json.Marshal(d)
	if err != nil || string(b) != `"1h30m0s"` {
		t.Fatalf("marshal = %s, %v", b, err)
	}
	var back Duration
	if err := json.Unmarshal([]byte(`"1h30m"`), &back); err != nil || back != d {
		t.Fatalf("unmarshal = %v, %v", back, err)
	}
	if err := json.Unmarshal([]byte(`90`), &back); err == nil {
		t.Error("a bare number was accepted as a duration")
	}
	var y struct {
		D Duration `yaml:"d"`
	}
	if err := yaml.Unmarshal([]byte("d: 2m\n"), &y); err != nil || y.D.Std() != 2*time.Minute {
		t.Errorf("yaml = %v, %v", y.D, err)
	}
}

func TestParseReportsEveryProblemWithItsPath(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{
			name: "a misspelt step field is an unknown field at its path",
			src:  "name: x\nsteps:\n- id: a\n  uses: noop\n- id: b\n  uses: noop\n  retires: {count: 1}\n",
			want: []string{"steps[1].retires: unknown field"},
		},
		{
			name: "every problem is reported, not just the first",
			src: "name: x\nbogus: 1\nparams: [{name: p, kind: string}]\ntimeout: soon\n" +
				"steps:\n- id: a\n  uses: noop\n  needs: a\n  retries: {count: two, backoff: 5}\n  on_failure: yes please\n",
			want: []string{
				"bogus: unknown field",
				"params[0].kind: unknown field",
				`steps[0].needs: must be a list, not a string`,
				`steps[0].on_failure: must be true or false, not a string`,
				`steps[0].retries.backoff: must be a duration string such as 30s or 1h30m`,
				`steps[0].retries.count: must be an integer, not a string`,
				`timeout: not a duration such as 30s or 1h30m: "soon"`,
			},
		},
		{
			name: "json unknown fields are named too",
			src:  `{"name": "x", "targets": {"tag": {"a": "b"}}, "steps": [{"id": "a", "uses": "noop", "with": {"a": 1}, "when": true}]}`,
			want: []string{"steps[0].when: must be a string, not a boolean", "targets.tag: unknown field"},
		},
		{
			name: "tags must be strings",
			src:  "name: x\ntargets: {tags: {tier: 1}}\nsteps: [{id: a, uses: noop}]\n",
			want: []string{"targets.tags.tier: must be a string, not an integer"},
		},
		{
			name: "a document that is not a mapping",
			src:  "- a\n- b\n",
			want: []string{"must be an object, not a list"},
		},
		{
			name: "broken yaml",
			src:  "name: x\nsteps: [\n",
			want: []string{"not valid YAML: yaml: line 2: did not find expected node content"},
		},
		{
			name: "broken json",
			src:  `{"name": "x",}`,
			want: []string{"not valid JSON: invalid character '}' looking for beginning of object key string"},
		},
		{
			name: "trailing json",
			src:  `{"name": "x"} {}`,
			want: []string{"not valid JSON: data after the job object"},
		},
		{
			name: "two yaml documents",
			src:  "name: x\n---\nname: y\n",
			want: []string{"not valid YAML: a job definition is one document"},
		},
		{
			name: "a key given twice",
			src:  "name: x\nsteps: [{id: a, uses: noop, id: b}]\n",
			want: []string{"steps[0].id: line 2: key given twice"},
		},
		{
			name: "merge keys are refused",
			src:  "base: &b {uses: noop}\nname: x\nsteps: [{<<: *b, id: a}]\n",
			want: []string{"steps[0]: line 3: keys must be plain strings (merge keys are not supported)"},
		},
		{
			name: "an alias inside its own anchor",
			src:  "a: &a [x, *a]\n",
			want: []string{"a[1][1]: line 1: alias *a refers to a value that contains it"},
		},
		{
			name: "nesting without end",
			src:  `{"name": "x", "steps": [{"id": "a", "uses": "noop", "with": {"a": ` + strings.Repeat("[", 80) + strings.Repeat("]", 80) + `}}]}`,
			want: []string{"nested more than 64 levels deep"},
		},
		{
			name: "empty",
			src:  "",
			want: []string{"empty job definition"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.src))
			if err == nil {
				t.Fatal("Parse succeeded")
			}
			if !problem.Is(err, problem.KindInvalid) {
				t.Errorf("not an invalid-input problem: %v", err)
			}
			got := problems(t, err)
			if !slices.Equal(got, tt.want) {
				t.Errorf("problems:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestParseRefusesHugeDocuments(t *testing.T) {
	big := make([]byte, MaxJobSize+1)
	for i := range big {
		big[i] = ' '
	}
	if _, err := Parse(big); !problem.Is(err, problem.KindTooLarge) {
		t.Errorf("err = %v", err)
	}
	// A billion-laughs document must be refused by counting, not by
	// exhausting memory.
	laughs := "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n" +
		"c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n" +
		"e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
	_, err := Parse([]byte(laughs))
	if err == nil {
		t.Fatal("Parse succeeded")
	}
}
