package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/opsconductor/opsconductor/controller/apiclient"
	agentv1 "github.com/opsconductor/opsconductor/proto/agent/v1"
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

// enrollAgents enrols agents under the given names; each is a target the
// moment it is enrolled.
func enrollAgents(t *testing.T, addr string, names ...string) {
	t.Helper()
	var line string
	// The leader makes the agent CA just after it starts leading.
	deadline := time.Now().Add(15 * time.Second)
	for {
		out, errOut, err := runIn(t, "", "agent", "join-token", "create", addr, "--ttl", "1h", "--max-uses", "10")
		if err == nil {
			line = strings.TrimSpace(out)
			break
		}
		if time.Now().After(deadline) || !strings.Contains(errOut+err.Error(), "agent_ca_missing") && !strings.Contains(errOut+err.Error(), "agent CA") {
			t.Fatalf("join-token create: %v\n%s", err, errOut)
		}
		time.Sleep(100 * time.Millisecond)
	}
	controller, token, pin := joinFlags(t, line)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, name := range names {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
		if _, err := pinnedDial(t, controller, pin, nil).Enroll(ctx, &agentv1.EnrollRequest{Token: token, CsrDer: csr, Name: name,
			Facts: &agentv1.Facts{Hostname: name + ".example.com", Os: "linux"}}); err != nil {
			t.Fatalf("enroll %s: %v", name, err)
		}
	}
}

func TestRelationshipCommandsAgainstAController(t *testing.T) {
	cliEnv(t)
	ctl := startController(t, adminPassword)
	addr := "--address=" + ctl.addr
	must(t, adminPassword+"\n", "login", addr, "--username", "admin", "--password-stdin")
	enrollAgents(t, addr, "web-1", "db-1", "host-1")

	out := must(t, "", "rel", "add", "web-1", "depends_on", "db-1", "--attr", "port=5432", addr)
	if !strings.HasPrefix(out, "rel_") || !strings.HasSuffix(out, "  web-1 depends_on db-1\n") {
		t.Fatalf("add: %q", out)
	}
	id := strings.Fields(out)[0]
	_, errOut, err := runIn(t, "", "relationship", "add", "db-1", "depends_on", "web-1", addr)
	if err == nil || !strings.Contains(errOut+err.Error(), "depends_on would close a cycle: db-1 → web-1 → db-1") {
		t.Fatalf("a cycle: %v\n%s", err, errOut)
	}
	must(t, "", "asset", "rel", "add", "db-1", "runs_on", "host-1", addr)

	if out := must(t, "", "rel", "list", "--from", "web-1", addr); !strings.Contains(out, id) || !strings.Contains(out, "port=5432") ||
		strings.Contains(out, "runs_on") {
		t.Fatalf("list --from web-1:\n%s", out)
	}
	want := `host-1
  ← runs_on db-1
      ← depends_on web-1
3 targets, 2 relationships (dependents, depth 5)
`
	if out := must(t, "", "rel", "graph", "host-1", "--direction", "dependents", addr); out != want {
		t.Fatalf("graph:\n%s\nwant\n%s", out, want)
	}
	var g apiclient.Graph
	if err := json.Unmarshal([]byte(must(t, "", "rel", "graph", "web-1", "--json", addr)), &g); err != nil {
		t.Fatal(err)
	}
	if len(g.Nodes) != 2 || g.Nodes[1].Name != "db-1" || g.Nodes[1].Depth != 1 || len(g.Edges) != 1 || g.Edges[0].Attributes["port"] != "5432" {
		t.Fatalf("graph --json: %+v", g)
	}
	if out := must(t, "", "rel", "delete", id, addr); !strings.HasPrefix(out, "deleted "+id) {
		t.Fatalf("delete: %q", out)
	}
	if out := must(t, "", "rel", "list", "--json", addr); strings.Contains(out, id) {
		t.Fatalf("listed after delete:\n%s", out)
	}
}
