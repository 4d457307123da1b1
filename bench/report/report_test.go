package main

import (
	"context"
	"strings"
	"testing"

	"github.com/opsconductor/opsconductor/bench/internal/figure"
)

// driverScript is a stand-in driver: it writes one figure, 2 s against a
// ceiling of 1 s, to the file named after -json.
func driverScript(*env) []string {
	return []string{"sh", "-c", `[ "$1" = -json ] && printf '%s' '{"figures":[{"name":"took","value":2,"unit":"s","target":{"op":"<=","limit":1},"verdict":"fail"}]}' > "$2"`, "driver"}
}

func TestRunStep(t *testing.T) {
	tests := []struct {
		name        string
		quick       bool
		step        step
		wantErr     string
		wantOutput  string
		wantVerdict figure.Verdict
		wantNote    string
	}{
		{
			name:       "a failing command is recorded as an error with the end of its output",
			step:       step{name: "broken", argv: func(*env) []string { return []string{"sh", "-c", "echo boom >&2; exit 3"} }, parse: fromJSON},
			wantErr:    "exit status 3",
			wantOutput: "boom",
		},
		{
			name: "a command that reports nothing is an error, not an empty pass",
			step: step{name: "silent", argv: func(*env) []string { return []string{"true"} },
				parse: fromBench(func(*env, []benchResult) []figure.Figure { return nil })},
			wantErr: "no benchmark results",
		},
		{
			name:        "a driver's figures are read from its -json file with their verdict",
			step:        step{name: "driver", argv: driverScript, jsonOut: true, parse: fromJSON, scaledDown: true},
			wantVerdict: figure.Fail,
		},
		{
			name:        "QUICK does not judge a step run below its target's scale",
			quick:       true,
			step:        step{name: "driver", argv: driverScript, jsonOut: true, parse: fromJSON, scaledDown: true},
			wantVerdict: figure.NoTarget,
			wantNote:    "QUICK: reduced scale, not judged",
		},
		{
			name:  "go test -bench output goes through the step's picker",
			quick: true,
			step: step{name: "bench", argv: func(*env) []string { return []string{"echo", "BenchmarkX-2 10 0.5 p99-ms"} },
				parse: fromBench(func(_ *env, rs []benchResult) []figure.Figure {
					return []figure.Figure{figure.New("x p99", rs[0].Metrics["p99-ms"], "ms", figure.AtMost(1))}
				})},
			wantVerdict: figure.Pass,
		},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := &env{quick: tc.quick, dir: t.TempDir()}
			r := e.runStep(context.Background(), i, tc.step)
			if tc.wantErr != "" {
				if !strings.Contains(r.Error, tc.wantErr) || !strings.Contains(r.Output, tc.wantOutput) {
					t.Fatalf("error %q, output %q; want an error containing %q and output containing %q", r.Error, r.Output, tc.wantErr, tc.wantOutput)
				}
				if len(r.Figures) != 0 {
					t.Errorf("a failed step has figures: %+v", r.Figures)
				}
				return
			}
			if r.Error != "" {
				t.Fatalf("error %q, output %q", r.Error, r.Output)
			}
			if len(r.Figures) != 1 || r.Figures[0].Verdict != tc.wantVerdict || !strings.Contains(r.Figures[0].Note, tc.wantNote) {
				t.Errorf("figures %+v, want one with verdict %s and a note containing %q", r.Figures, tc.wantVerdict, tc.wantNote)
			}
		})
	}
}

func TestMarkdownShowsFailuresAndErrors(t *testing.T) {
	r := report{Steps: []stepResult{
		{Name: "a", Command: "go test ./a", Figures: []figure.Figure{figure.New("rate", 400, "deliveries/s", figure.AtLeast(500))}},
		{Name: "b", Command: "go run ./bench/b", Error: "exit status 1", Output: "driver: no controller"},
		{Name: "c", Command: "ansible", Skipped: "ansible is not installed"},
	}}
	md := r.markdown()
	for _, want := range []string{
		"| a | rate | 400 deliveries/s | >= 500 deliveries/s | **FAIL** |  |",
		"| b | — | — | — | **error** | exit status 1 |",
		"driver: no controller",
		"Skipped: ansible is not installed",
		"0 figures met their target, 1 missed, 1 steps failed",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("the report lacks %q:\n%s", want, md)
		}
	}
}

// TestEveryStepHasACommand keeps the table well formed: a name, a
// command in both modes, a parser.
func TestEveryStepHasACommand(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range allSteps() {
		if s.name == "" || s.parse == nil || seen[s.name] {
			t.Errorf("step %q: empty, duplicate or without a parser", s.name)
		}
		seen[s.name] = true
		for _, quick := range []bool{false, true} {
			if argv := s.argv(&env{quick: quick, bin: "bin"}); len(argv) == 0 {
				t.Errorf("step %q: no command (quick %t)", s.name, quick)
			}
		}
	}
}

func TestCommandHidesADSNPassword(t *testing.T) {
	s := step{argv: func(*env) []string { return []string{"go", "test"} },
		env: []string{"OPSCONDUCTOR_TEST_POSTGRES=postgres://bench:s3cret@127.0.0.1:5432/test", "PLAIN=postgres://postgres@127.0.0.1/test"}}
	got := s.command(&env{})
	if strings.Contains(got, "s3cret") || !strings.Contains(got, "bench:REDACTED@") || !strings.Contains(got, "PLAIN=postgres://postgres@127.0.0.1/test") {
		t.Errorf("command = %q: want the password hidden and the rest as it was", got)
	}
}
