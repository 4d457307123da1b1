package main

import (
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestPlanIsDrawnFromTheSeedAlone(t *testing.T) {
	a := plan(42, 5*time.Minute, 50)
	b := plan(42, 5*time.Minute, 50)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("the same seed gave two schedules")
	}
	if reflect.DeepEqual(a, plan(43, 5*time.Minute, 50)) {
		t.Fatal("seeds 42 and 43 gave the same schedule")
	}
}

func TestPlanKeepsAQuorumAndTheSchedule(t *testing.T) {
	for seed := int64(0); seed < 200; seed++ {
		period := 60 * time.Second
		faults := plan(seed, period, 50)
		if len(faults) < 8 {
			t.Fatalf("seed %d: only %d faults in %v", seed, len(faults), period)
		}
		var ctlUntil, linkUntil time.Duration
		kinds := map[faultKind]bool{}
		for i, f := range faults {
			kinds[f.kind] = true
			if i > 0 && f.at <= faults[i-1].at {
				t.Fatalf("seed %d: fault %d at %v is not after %v", seed, i, f.at, faults[i-1].at)
			}
			if f.at >= period {
				t.Fatalf("seed %d: fault %d at %v is past the period", seed, i, f.at)
			}
			if f.kind.controllerFault() {
				if f.at < ctlUntil {
					t.Fatalf("seed %d: controller fault %s at %v while another lasts until %v", seed, f, f.at, ctlUntil)
				}
				ctlUntil = f.at + f.hold
			}
			if f.kind == cutAgentLink {
				if f.at < linkUntil {
					t.Fatalf("seed %d: agent link cut %s at %v while another lasts until %v", seed, f, f.at, linkUntil)
				}
				linkUntil = f.at + f.hold
			}
			switch f.kind {
			case cutController, cutAgentLink:
				if f.node < 1 || f.node > nodes {
					t.Fatalf("seed %d: %s names node %d", seed, f, f.node)
				}
			case killAgents:
				if len(f.agents) == 0 || len(f.agents) > 3 {
					t.Fatalf("seed %d: %s kills %d agents", seed, f, len(f.agents))
				}
			case restartPG:
				if f.pgMode != "fast" && f.pgMode != "immediate" {
					t.Fatalf("seed %d: pg mode %q", seed, f.pgMode)
				}
			}
		}
		if seed == 0 {
			t.Logf("seed 0: %d faults, kinds %v", len(faults), kinds)
		}
	}
}

func TestParseConfig(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    config
		wantErr string
	}{
		{name: "the environment sets seed and duration", env: map[string]string{"CHAOS_SEED": "7", "CHAOS_DURATION": "60s"},
			want: config{seed: 7, duration: time.Minute, agents: 50, binDir: "bin", runEvery: 5 * time.Second}},
		{name: "flags override the environment", args: []string{"-seed", "9", "-duration", "2m", "-agents", "5"},
			env:  map[string]string{"CHAOS_SEED": "7", "CHAOS_DURATION": "60s"},
			want: config{seed: 9, duration: 2 * time.Minute, agents: 5, binDir: "bin", runEvery: 5 * time.Second}},
		{name: "a seed that is not a number is named", env: map[string]string{"CHAOS_SEED": "abc"}, wantErr: "CHAOS_SEED"},
		{name: "a bad duration is named", env: map[string]string{"CHAOS_DURATION": "soon"}, wantErr: "CHAOS_DURATION"},
		{name: "too short a period is refused", args: []string{"-duration", "1s"}, wantErr: "at least 10s"},
		{name: "no agents is refused", args: []string{"-agents", "0"}, wantErr: "-agents"},
		{name: "stray arguments are refused", args: []string{"extra"}, wantErr: "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseConfig(tt.args, env(tt.env), io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v; want one naming %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got %+v; want %+v", got, tt.want)
			}
		})
	}
}
