package charttest

import (
	"strings"
	"testing"
)

// FuzzValues: whatever values pass the schema and the templates' checks
// render into objects Kubernetes can decode, with the replicas and ports
// asked for; whatever does not fails with a message about the values, never
// with broken YAML in the output.
func FuzzValues(f *testing.F) {
	f.Add(3, 3000, "postgres://oc@db:5432/oc", "env=prod,team=ops", "info", "10Gi")
	f.Add(5, 8080, "postgresql://oc:p%40ss@db/oc?sslmode=require", "", "debug", "1Ti")
	f.Add(1, 1, "postgres://x\ny", "a=b\n- c", "warn", "0")
	f.Add(4, 70000, "mysql://db", "k=\"v\"", "verbose", "ten gigs")
	f.Add(3, 3001, "postgres://oc@db/oc", "k=v: w", "error", "1.5Gi")
	f.Fuzz(func(t *testing.T, replicas, httpPort int, dsn, tags, logLevel, size string) {
		vals := map[string]any{
			"replicas":    replicas,
			"ports":       map[string]any{"http": httpPort},
			"history":     map[string]any{"dsn": dsn},
			"server":      map[string]any{"logLevel": logLevel},
			"persistence": map[string]any{"size": size},
			"agent":       map[string]any{"enabled": true, "joinSecret": "join", "tags": tags},
		}
		r, err := render(vals)
		if err != nil {
			msg := err.Error()
			if strings.Contains(msg, "YAML parse error") || strings.Contains(msg, "error converting YAML") ||
				!(strings.Contains(msg, "values don't meet the specifications") || strings.Contains(msg, "execution error")) {
				t.Fatalf("values %v: not a clear values error: %v", vals, err)
			}
			return
		}
		sts := r.statefulSets[0]
		if int(*sts.Spec.Replicas) != replicas {
			t.Errorf("replicas %d rendered as %d", replicas, *sts.Spec.Replicas)
		}
		ctr := sts.Spec.Template.Spec.Containers[0]
		if containerPort(ctr, "http") != httpPort {
			t.Errorf("http port %d rendered as %d", httpPort, containerPort(ctr, "http"))
		}
		if got := string(r.secrets["oc-opsconductor-history"].Data["dsn"]); got != dsn {
			t.Errorf("history URL %q stored as %q", dsn, got)
		}
		if got, _ := envValue(r.daemonSets[0].Spec.Template.Spec.Containers[0], "OPSCONDUCTOR_JOIN_TAGS"); got != tags {
			t.Errorf("tags %q rendered as %q", tags, got)
		}
	})
}
