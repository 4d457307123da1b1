package assets

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/opsconductor/opsconductor/controller/identity"
)

// BenchmarkInventory builds an inventory of 100,000 targets through
// Import (batches of 1,000 per command, as over Raft) and measures single
// list calls the way the API makes them: a page of 100 filtered by one or
// two tags, by a dynamic group, a page deep into a tag filter by cursor,
// and lists by readers whose scope is a tag or a dynamic group. It reports the import time and the p99 of each list.
func BenchmarkInventory(b *testing.B) {
	const n = 100_000
	e := newEnv(b)
	ctx := context.Background()
	envs, roles := []string{"prod", "staging", "dev", "test"}, []string{"web", "db", "cache", "queue", "batch"}
	rows := make([]TargetInput, n)
	for i := range rows {
		rows[i] = TargetInput{Name: fmt.Sprintf("host-%06d", (i*7919)%n), Addresses: []string{fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&255, i&255)},
			Connection: ssh("relay-1"), Tags: map[string]string{"env": envs[i%4], "role": roles[i%5], "rack": fmt.Sprintf("r%03d", i%500)}}
	}
	start := time.Now()
	rep, err := e.svc.Import(ctx, e.admin, rows, ImportOptions{})
	if err != nil || rep.Created != n {
		b.Fatalf("import: %+v, %v", rep, err)
	}
	b.Logf("imported %d targets in %s", n, time.Since(start).Round(time.Millisecond))
	b.ReportMetric(time.Since(start).Seconds(), "import-s")
	if _, err := e.svc.CreateGroup(ctx, e.admin, GroupInput{Name: "prod-web", Kind: GroupDynamic, Selector: "env=prod,role=web"}); err != nil {
		b.Fatal(err)
	}
	deep, err := e.svc.List(ctx, e.admin, Query{Tags: map[string]string{"env": "prod"}, Limit: 1000})
	if err != nil {
		b.Fatal(err)
	}
	// A reader bound to env=staging, and one bound to a dynamic group.
	stager := e.user(b, "stager", identity.Binding{Role: "viewer", Scope: &identity.Scope{Tags: map[string]string{"env": "staging"}}})
	grouped := e.user(b, "grouped", identity.Binding{Role: "viewer", Scope: &identity.Scope{Groups: []string{"prod-web"}}})
	for _, bc := range []struct {
		name string
		q    Query
		p    *identity.Principal
	}{
		{"tag", Query{Tags: map[string]string{"env": "prod"}}, nil},
		{"two-tags", Query{Tags: map[string]string{"env": "prod", "role": "web"}}, nil},
		{"rare-tag", Query{Tags: map[string]string{"rack": "r042"}}, nil},
		{"common-and-rare-tags", Query{Tags: map[string]string{"env": "prod", "rack": "r040"}}, nil},
		{"dynamic-group", Query{Group: "prod-web"}, nil},
		{"tag-next-page", Query{Tags: map[string]string{"env": "prod"}, Cursor: deep.Next}, nil},
		{"tag-desc", Query{Tags: map[string]string{"env": "staging"}, Sort: SortNameDesc}, nil},
		{"scoped-by-tag", Query{}, stager},
		{"scoped-by-tag-with-filter", Query{Tags: map[string]string{"role": "db"}}, stager},
		{"scoped-by-group", Query{}, grouped},
	} {
		if bc.p == nil {
			bc.p = e.admin
		}
		b.Run(bc.name, func(b *testing.B) {
			var lat []time.Duration
			for b.Loop() {
				t0 := time.Now()
				page, err := e.svc.List(ctx, bc.p, bc.q)
				lat = append(lat, time.Since(t0))
				if err != nil || len(page.Items) == 0 {
					b.Fatalf("list: %d items, %v", len(page.Items), err)
				}
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}
