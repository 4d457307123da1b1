package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/opsconductor/opsconductor/controller/apiclient"
)

func TestRelationshipGraphPrintsAnIndentedTree(t *testing.T) {
	// Impact of host-1: db-1 and vm-1 run on it, web-1 depends on both.
	g := apiclient.Graph{Root: "h", Direction: "dependents", Depth: 5, Truncated: true,
		Nodes: []apiclient.GraphNode{{ID: "h", Name: "host-1"}, {ID: "d", Name: "db-1", Depth: 1}, {ID: "v", Name: "vm-1", Depth: 1},
			{ID: "w", Name: "web-1", Depth: 2}},
		Edges: []apiclient.Relationship{{ID: "r1", From: "d", To: "h", Type: "runs_on"}, {ID: "r2", From: "v", To: "h", Type: "runs_on"},
			{ID: "r3", From: "w", To: "d", Type: "depends_on"}, {ID: "r4", From: "w", To: "v", Type: "depends_on"}}}
	var out bytes.Buffer
	if err := printGraph(&out, g); err != nil {
		t.Fatal(err)
	}
	want := `host-1
  ← runs_on db-1
      ← depends_on web-1
  ← runs_on vm-1
      ← depends_on web-1 (above)
4 targets, 4 relationships (dependents, depth 5)
truncated: more lies within this depth; narrow with --type or raise --limit
`
	if out.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", out.String(), want)
	}
}

func TestRelationshipGraphShowsOutgoingEdgesWithArrows(t *testing.T) {
	g := apiclient.Graph{Root: "w", Direction: "both", Depth: 1,
		Nodes: []apiclient.GraphNode{{ID: "w", Name: "web-1"}, {ID: "d", Name: "db-1", Depth: 1}},
		Edges: []apiclient.Relationship{{ID: "r1", From: "w", To: "d", Type: "depends_on"}}}
	var out bytes.Buffer
	if err := printGraph(&out, g); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "web-1\n  → depends_on db-1\n") {
		t.Fatalf("got\n%s", out.String())
	}
}

func TestRelationshipAttrFlags(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flags []string
		want  map[string]string
		bad   bool
	}{
		{"no flags give no attributes", nil, nil, false},
		{"pairs become attributes and a value may hold '='", []string{"port=5432", "dsn=a=b"}, map[string]string{"port": "5432", "dsn": "a=b"}, false},
		{"an empty value is kept", []string{"note="}, map[string]string{"note": ""}, false},
		{"a flag without '=' is a usage error", []string{"port"}, nil, true},
		{"a flag without a key is a usage error", []string{"=1"}, nil, true},
		{"a key given twice is a usage error", []string{"a=1", "a=2"}, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseAttrs(tc.flags)
			var ue usageError
			if tc.bad != (err != nil && errors.As(err, &ue)) {
				t.Fatalf("err = %v, want a usage error: %v", err, tc.bad)
			}
			if !tc.bad && formatAttrs(got) != formatAttrs(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRelationshipCommandsCheckTheirArguments(t *testing.T) {
	cliEnv(t)
	for _, args := range [][]string{{"rel", "add", "web-1", "depends_on"}, {"relationship", "delete"}, {"rel", "graph"}} {
		_, _, err := runIn(t, "", args...)
		var ue usageError
		if !errors.As(err, &ue) {
			t.Errorf("%v: err = %v, want a usage error", args, err)
		}
	}
}
