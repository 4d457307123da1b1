package jobspec

import (
	"fmt"
	"slices"
	"sync"
	"testing"
)

const renderJob = `
name: render
targets: {all: true}
params: [{name: port, type: integer}, {name: service}, {name: hosts, type: array}, {name: ratio, type: number}]
steps:
  - id: build
    uses: noop
  - id: use
    uses: noop
    needs: [build]
    when: ${{ steps.build.status == "succeeded" }}
    with:
      port: "${{ params.port }}"
      port_text: "port ${{ params.port }}"
      url: "http://${{ target.address }}:${{ params.port }}/${{ target.tags.role }}"
      version: "${{ steps.build.outputs.version }}"
      changed: "${{ steps.build.changed }}"
      hosts: "${{ params.hosts }}"
      hosts_text: "${{ params.hosts }}!"
      ratio: "${{ params.ratio }}"
      big: "${{ 1000000.0 }}"
      nested: {list: ["${{ run.id }}", "run ${{ run.version }} by ${{ run.triggered_by }}", 3], plain: "no template"}
      quoted: "${{ \"}}\" + target.name }}"
      fact: "${{ target.facts.os }}"
      missing: "${{ params.service }}"
`

func renderEnv() Env {
	return Env{
		Params: map[string]any{"port": 8080, "hosts": []any{"a", "b"}, "ratio": 0.5},
		Target: TargetEnv{Name: "web1", Address: "10.0.0.1", Tags: map[string]string{"role": "web"}, Facts: map[string]any{"os": "linux"}},
		Steps: map[string]StepEnv{
			"build": {Status: "succeeded", Outputs: map[string]string{"version": "1.4.2"}, Changed: true},
			"use":   {Status: "pending"},
		},
		Run: RunEnv{ID: "r-1", Job: "render", Version: 3, TriggeredBy: "ann"},
	}
}

func TestRenderEvaluatesTemplatesKeepingTypes(t *testing.T) {
	j := mustParse(t, renderJob)
	got, err := j.Steps[1].Render(renderEnv())
	if err != nil {
		t.Fatal(err)
	}
	want := `{"big":1000000,"changed":true,"fact":"linux","hosts":["a","b"],"hosts_text":"[\"a\",\"b\"]!",` +
		`"missing":null,"nested":{"list":["r-1","run 3 by ann",3],"plain":"no template"},"port":8080,"port_text":"port 8080",` +
		`"quoted":"}}web1","ratio":0.5,"url":"http://10.0.0.1:8080/web","version":"1.4.2"}`
	if string(got) != want {
		t.Errorf("Render =\n%s\nwant\n%s", got, want)
	}
}

func TestRenderNamesTheFailingValue(t *testing.T) {
	tests := []struct {
		name string
		with string
		want []string
	}{
		{
			name: "a runtime error names the key",
			with: `{a: "${{ params.port % 0 }}", b: ok, c: "${{ params.port / 0 }}"}`,
			want: []string{
				"steps[0].with.a: ${{ params.port % 0 }}: runtime error: integer divide by zero (1:13)",
				"steps[0].with.c: evaluates to +Inf, which JSON cannot carry",
			},
		},
		{
			name: "nested keys and list items",
			with: `{h: {"a b": "${{ nope(1) }}"}, l: [1, "${{ params.port.x }}"]}`,
			want: []string{
				`steps[0].with.h["a b"]: ${{ nope(1) }}: unknown name nope (1:1)`,
				`steps[0].with.l[1]: ${{ params.port.x }}: cannot fetch x from int (1:13)`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := mustParse(t, "name: x\nsteps:\n- id: a\n  uses: noop\n  with: "+tt.with+"\n")
			_, err := j.Steps[0].Render(Env{Params: map[string]any{"port": 1}})
			got := problems(t, err)
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("problems:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestRenderOfAJobBuiltInCodeCompilesOnUse(t *testing.T) {
	s := Step{ID: "x", Uses: "noop", With: map[string]any{"n": "${{ params.n * 2 }}"}, When: "params.n > 1"}
	got, err := s.Render(Env{Params: map[string]any{"n": 2}})
	if err != nil || string(got) != `{"n":4}` {
		t.Errorf("Render = %s, %v", got, err)
	}
	ok, err := s.ShouldRun(Env{Params: map[string]any{"n": 2}})
	if err != nil || !ok {
		t.Errorf("ShouldRun = %v, %v", ok, err)
	}
	if _, err := (&Step{ID: "x", With: map[string]any{"n": "${{ nope }}"}}).Render(Env{}); err == nil ||
		problems(t, err)[0] != `steps["x"].with.n: ${{ nope }}: unknown name nope (1:1)` {
		t.Errorf("err = %v", err)
	}
}

func TestShouldRun(t *testing.T) {
	tests := []struct {
		when    string
		want    bool
		wantErr string
	}{
		{when: "", want: true},
		{when: "true", want: true},
		{when: "${{ false }}", want: false},
		{when: `target.tags.role == "web"`, want: true},
		{when: `steps.build.outputs.version startsWith "1."`, want: true},
		{when: `params.port > 9000 || run.triggered_by == "ann"`, want: true},
		{when: `"web" in target.tags.role`, wantErr: "steps[0].when: invalid operation: in (mismatched types string and string) (1:7)"},
		// A parameter that was not given reads as null, which is false.
		{when: "params.service", want: false},
		{when: "params.port", wantErr: "steps[0].when: invalid operation: bool(int) (1:1)"},
		{when: "text ${{ true }}", wantErr: "steps[0].when: must be one expression, with or without ${{ }}, not text around an expression"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("when %q", tt.when), func(t *testing.T) {
			j := mustParse(t, fmt.Sprintf("name: x\nsteps:\n- id: a\n  uses: noop\n  when: %q\n", tt.when))
			got, err := j.Steps[0].ShouldRun(renderEnv())
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err = %v, want %s", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("ShouldRun = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestBatchSize(t *testing.T) {
	tests := []struct {
		batch   string
		params  map[string]any
		n       int
		want    int
		wantErr string
	}{
		{batch: "", n: 7, want: 7},
		{batch: "0", n: 7, want: 7},
		{batch: "3", n: 7, want: 3},
		{batch: "30", n: 7, want: 7},
		{batch: "25%", n: 10, want: 3},
		{batch: "1%", n: 10, want: 1},
		{batch: "100%", n: 10, want: 10},
		{batch: "12.5%", n: 16, want: 2},
		{batch: "3", n: 0, want: 0},
		{batch: "${{ params.batch }}", params: map[string]any{"batch": 2}, n: 10, want: 2},
		{batch: "${{ params.batch }}", params: map[string]any{"batch": "50%"}, n: 10, want: 5},
		{batch: "${{ params.batch }}%", params: map[string]any{"batch": 20}, n: 10, want: 2},
		{batch: "${{ params.batch }}", params: map[string]any{"batch": 2.0}, n: 10, want: 2},
		{batch: "${{ params.batch }}", params: map[string]any{}, n: 10, want: 10},
		{batch: "${{ params.batch }}", params: map[string]any{"batch": -1}, n: 10,
			wantErr: "rollout.batch_size: must not be negative, got -1"},
		{batch: "${{ params.batch }}", params: map[string]any{"batch": true}, n: 10,
			wantErr: "rollout.batch_size: must be a count or a percentage, not a boolean"},
		{batch: "lots", n: 10,
			wantErr: `rollout.batch_size: must be a count such as 5, a percentage such as 25%, or ${{ expression }}, got "lots"`},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s of %d with %v", tt.batch, tt.n, tt.params), func(t *testing.T) {
			j := &Job{Rollout: Rollout{BatchSize: tt.batch}}
			j.Compile()
			got, err := j.BatchSize(tt.params, tt.n)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err = %v, want %s", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("BatchSize = %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}

func TestStepsEnvListsEveryStep(t *testing.T) {
	j := mustParse(t, renderJob)
	env := j.StepsEnv(map[string]StepState{"build": {Status: Succeeded, Outputs: map[string]string{"v": "1"}, Changed: true}})
	if env["build"].Status != "succeeded" || env["build"].Outputs["v"] != "1" || !env["build"].Changed {
		t.Errorf("build = %+v", env["build"])
	}
	if env["use"].Status != "pending" {
		t.Errorf("use = %+v", env["use"])
	}
}

// TestRenderIsSafeForConcurrentUse runs under -race: one parsed job serves
// many goroutines.
func TestRenderIsSafeForConcurrentUse(t *testing.T) {
	j := mustParse(t, renderJob)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			env := renderEnv()
			env.Target.Name = fmt.Sprintf("web%d", g)
			for range 50 {
				if _, err := j.Steps[1].Render(env); err != nil {
					errs <- err
					return
				}
				if _, err := j.Steps[1].ShouldRun(env); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// BenchmarkRenderAndShouldRun1000Targets measures a step's when and with
// for a 1,000-target run, the work the engine does per step per batch: the
// issue example's restart step (one template, no when) and a wide step (a
// when and thirteen templated values holding seventeen expressions).
func BenchmarkRenderAndShouldRun1000Targets(b *testing.B) {
	example, err := Parse(readExample(b))
	if err != nil {
		b.Fatal(err)
	}
	wide := mustParse(b, renderJob)
	for _, bc := range []struct {
		name string
		step *Step
	}{
		{"example restart step", &example.Steps[1]},
		{"wide step", &wide.Steps[1]},
	} {
		b.Run(bc.name, func(b *testing.B) {
			envs := make([]Env, 1000)
			for i := range envs {
				envs[i] = renderEnv()
				envs[i].Params["service"] = "nginx"
				envs[i].Target.Name = fmt.Sprintf("web%04d", i)
				envs[i].Target.Address = fmt.Sprintf("10.0.%d.%d", i/256, i%256)
			}
			b.ReportAllocs()
			for b.Loop() {
				for k := range envs {
					ok, err := bc.step.ShouldRun(envs[k])
					if err != nil || !ok {
						b.Fatal(ok, err)
					}
					if _, err := bc.step.Render(envs[k]); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1000, "ns/target")
		})
	}
}
