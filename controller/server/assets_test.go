package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opsconductor/opsconductor/controller/apiclient"
)

// TestInventoryThroughTheAPI runs a dev controller (one Raft node and
// its built-in agent) and drives the inventory over HTTP: the agent is a
// target by itself, a CSV import is checked and written through Raft,
// and an operator bound to env=staging sees only staging targets in
// list, get, export and group members.
func TestInventoryThroughTheAPI(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.Dev = true
	r := start(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	local := waitLocalAgent(ctx, t, r)

	t.Run("the enrolled agent is a target with its facts and status", func(t *testing.T) {
		tg, err := r.client.GetTarget(ctx, local.Name)
		if err != nil {
			t.Fatal(err)
		}
		if tg.ID != local.ID || tg.Connection.Type != "agent" || tg.Status.Agent != "up" || tg.Facts["arch"] != runtime.GOARCH || tg.Facts["hostname"] == "" {
			t.Fatalf("agent target = %+v", tg)
		}
	})

	csv := "name,address,via,tags,groups\n" +
		"web-p1,10.0.0.1," + local.Name + ",env=prod;role=web,web\n" +
		"web-s1,10.0.0.2," + local.Name + ",env=staging;role=web,web\n" +
		"db-s1,10.0.0.3," + local.Name + ",env=staging;role=db,\n"
	t.Run("a dry run reports and writes nothing", func(t *testing.T) {
		bad := csv + "oops,not a host!," + local.Name + ",,\n"
		rep, err := r.client.ImportTargets(ctx, strings.NewReader(bad), apiclient.ImportOptions{Format: "csv", DryRun: true})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Valid != 3 || rep.Invalid != 1 || rep.Errors[0].Row != 4 || rep.Errors[0].Field != "addresses" || rep.Written {
			t.Fatalf("report %+v", rep)
		}
		page, err := r.client.ListTargets(ctx, apiclient.TargetQuery{Connection: "ssh"})
		if err != nil || len(page.Items) != 0 {
			t.Fatalf("after a dry run: %d ssh targets, %v", len(page.Items), err)
		}
		_, err = r.client.ImportTargets(ctx, strings.NewReader(bad), apiclient.ImportOptions{Format: "csv"})
		var apiErr *apiclient.Error
		if !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadRequest || apiErr.Field != "rows[4].addresses" {
			t.Fatalf("import with a bad row: %v", err)
		}
	})
	t.Run("an import writes every row through Raft", func(t *testing.T) {
		rep, err := r.client.ImportTargets(ctx, strings.NewReader(csv), apiclient.ImportOptions{Format: "csv"})
		if err != nil || rep.Created != 3 {
			t.Fatalf("report %+v, %v", rep, err)
		}
		page, err := r.client.ListTargets(ctx, apiclient.TargetQuery{Tags: map[string]string{"role": "web"}})
		if err != nil || targetNames(page.Items) != "web-p1,web-s1" {
			t.Fatalf("role=web: %s, %v", targetNames(page.Items), err)
		}
	})

	if _, err := r.client.CreateUser(ctx, apiclient.CreateUserRequest{Username: "stager", Password: "stager-Tangerine-Pylon-7",
		Roles:              []apiclient.RoleBinding{{Role: "operator", Scope: &apiclient.Scope{Tags: map[string]string{"env": "staging"}}}},
		MustChangePassword: new(bool)}); err != nil {
		t.Fatal(err)
	}
	tok, err := r.client.Login(ctx, apiclient.LoginRequest{Username: "stager", Password: "stager-Tangerine-Pylon-7"})
	if err != nil {
		t.Fatal(err)
	}
	stager, err := apiclient.New(r.ready.HTTPAddr, apiclient.WithToken(tok.AccessToken))
	if err != nil {
		t.Fatal(err)
	}
	t.Run("an operator bound to env=staging sees only staging targets", func(t *testing.T) {
		all, err := stager.AllTargets(ctx, apiclient.TargetQuery{})
		if err != nil || targetNames(all) != "db-s1,web-s1" {
			t.Fatalf("list: %s, %v", targetNames(all), err)
		}
		_, err = stager.GetTarget(ctx, "web-p1")
		var apiErr *apiclient.Error
		if !errors.As(err, &apiErr) || apiErr.Status != http.StatusNotFound {
			t.Fatalf("get an env=prod target: %v, want 404", err)
		}
		var buf bytes.Buffer
		if err := stager.ExportTargets(ctx, &buf, "csv", apiclient.TargetQuery{}); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(buf.String(), "web-p1") || !strings.Contains(buf.String(), "db-s1") {
			t.Fatalf("export:\n%s", buf.String())
		}
		page, err := stager.GroupMembers(ctx, "web", apiclient.TargetQuery{})
		if err != nil || targetNames(page.Items) != "web-s1" {
			t.Fatalf("members of web: %s, %v", targetNames(page.Items), err)
		}
	})
	t.Run("a revoked agent's target says revoked", func(t *testing.T) {
		if _, err := r.client.RevokeAgent(ctx, local.ID); err != nil {
			t.Fatal(err)
		}
		tg, err := r.client.GetTarget(ctx, local.ID)
		if err != nil || tg.Status.Agent != "revoked" {
			t.Fatalf("after revoking: %+v, %v", tg.Status, err)
		}
	})
}

func targetNames(ts []apiclient.Target) string {
	var n []string
	for _, t := range ts {
		n = append(n, t.Name)
	}
	slices.Sort(n)
	return strings.Join(n, ",")
}

// BenchmarkInventoryHTTP is the inventory's figures end to end on a dev
// controller (one Raft node with its fsync'd log, HTTP on loopback):
// importing 100,000 CSV rows in one request, then listing a page of 100
// filtered by a tag over HTTP. It reports the import time and the list's
// p99.
func BenchmarkInventoryHTTP(b *testing.B) {
	cfg := testConfig(b.TempDir())
	cfg.Dev = true
	cfg.RateRead = 1e6
	r := start(b, cfg)
	ctx := context.Background()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	local := waitLocalAgent(wctx, b, r)
	const n = 100_000
	envs, roles := []string{"prod", "staging", "dev", "test"}, []string{"web", "db", "cache", "queue", "batch"}
	var csv bytes.Buffer
	csv.WriteString("name,address,via,tags\n")
	for i := range n {
		fmt.Fprintf(&csv, "host-%06d,10.%d.%d.%d,%s,env=%s;role=%s;rack=r%03d\n", (i*7919)%n, i>>16, (i>>8)&255, i&255, local.Name,
			envs[i%4], roles[i%5], i%500)
	}
	start := time.Now()
	rep, err := r.client.ImportTargets(ctx, &csv, apiclient.ImportOptions{Format: "csv"})
	if err != nil || rep.Created != n {
		b.Fatalf("import: %+v, %v", rep, err)
	}
	imported := time.Since(start)
	b.Logf("imported %d rows over HTTP in %s", n, imported.Round(time.Millisecond))
	// The lists measure steady state: the import leaves a large heap for
	// the collector, which a warm-up and one GC settle first.
	for range 20 {
		if _, err := r.client.ListTargets(ctx, apiclient.TargetQuery{Tags: map[string]string{"env": "dev"}}); err != nil {
			b.Fatal(err)
		}
	}
	runtime.GC()
	for _, bc := range []struct {
		name string
		q    apiclient.TargetQuery
	}{
		{"tag", apiclient.TargetQuery{Tags: map[string]string{"env": "prod"}}},
		{"two-tags", apiclient.TargetQuery{Tags: map[string]string{"env": "prod", "role": "web"}}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var lat []time.Duration
			for b.Loop() {
				t0 := time.Now()
				page, err := r.client.ListTargets(ctx, bc.q)
				lat = append(lat, time.Since(t0))
				if err != nil || len(page.Items) != 100 {
					b.Fatalf("list: %d items, %v", len(page.Items), err)
				}
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			b.ReportMetric(imported.Seconds(), "import-s")
		})
	}
}
