package jobspec

import (
	"context"
	"encoding/json"
	"os"
	"testing"

	"github.com/opsconductor/opsconductor/controller/problem"
)

// FuzzParse feeds arbitrary documents to Parse and, when they parse, to
// Validate, Plan and a JSON round trip: none may panic, every error must be
// a problem, and a parsed job must survive being stored and read back.
func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile("testdata/rolling-restart.yaml"); err == nil {
		f.Add(b)
	}
	f.Add([]byte(exampleJSON))
	f.Add([]byte(validJob))
	f.Add([]byte(renderJob))
	f.Add([]byte(planJob))
	f.Add([]byte("name: x\nsteps:\n- id: a\n  uses: noop\n  retires: 1\n"))
	f.Add([]byte("name: x\nsteps: [{id: a, uses: noop, needs: [b]}, {id: b, uses: noop, needs: [a]}]\n"))
	f.Add([]byte("a: &a [x, x]\nb: [*a, *a]\n"))
	f.Add([]byte(`{"name": "x", "rollout": {"batch_size": 1e400}}`))
	f.Add([]byte(`{"name": 1, "steps": {}}`))
	f.Add([]byte("name: x\nsteps: [{id: a, uses: noop, with: {a: \"${{ \"}}\" }}\"}}]\n"))
	f.Add([]byte("- 1\n"))
	f.Add([]byte("{"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, data []byte) {
		j, err := Parse(data)
		if err != nil {
			if _, ok := problem.As(err); !ok {
				t.Fatalf("Parse error is not a problem: %v", err)
			}
			return
		}
		if err := j.Validate(context.Background(), nil); err != nil {
			if _, ok := problem.As(err); !ok {
				t.Fatalf("Validate error is not a problem: %v", err)
			}
		}
		j.Plan(nil, false, func(*Step) (bool, error) { return true, nil })
		stored, err := json.Marshal(j)
		if err != nil {
			t.Fatalf("marshal a parsed job: %v", err)
		}
		back, err := Parse(stored)
		if err != nil {
			t.Fatalf("a stored job does not parse: %v\n%s", err, stored)
		}
		if !equalJobs(j, back) {
			t.Fatalf("a stored job reads back differently:\n%s", stored)
		}
	})
}

// FuzzRender renders arbitrary with values and conditions: no panic, and
// the output is always a JSON object.
func FuzzRender(f *testing.F) {
	f.Add("${{ params.port }}", "true")
	f.Add("http://${{ target.address }}:${{ params.port }}/", `target.tags.role == "web"`)
	f.Add("${{ steps.build.outputs.version }}", "${{ steps.build.changed }}")
	f.Add("${{ \"}}\" + target.name }}", "steps.build.status in ['succeeded']")
	f.Add("${{ 1 / 0 }}", "params.missing")
	f.Add("${{ map(1..3, # * 2) }}", "1 +")
	f.Add("${{", "${{ }}")
	f.Add("${{ }}", "text ${{ true }}")
	f.Add("${{ run.id + run.job }}", "run.version > 2")
	f.Fuzz(func(t *testing.T, with, when string) {
		s := &Step{ID: "x", Uses: "noop", With: map[string]any{"v": with, "l": []any{with, 1}}, When: when}
		env := renderEnv()
		out, err := s.Render(env)
		if err == nil {
			var m map[string]any
			if jerr := json.Unmarshal(out, &m); jerr != nil {
				t.Fatalf("Render gave %s, not a JSON object: %v", out, jerr)
			}
		} else if _, ok := problem.As(err); !ok {
			t.Fatalf("Render error is not a problem: %v", err)
		}
		if _, err := s.ShouldRun(env); err != nil {
			if _, ok := problem.As(err); !ok {
				t.Fatalf("ShouldRun error is not a problem: %v", err)
			}
		}
	})
}
