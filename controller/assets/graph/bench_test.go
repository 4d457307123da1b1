package graph

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/opsconductor/opsconductor/controller/state"
)

// BenchmarkImpact measures "what depends on X" (dependents, depth 5, at
// most 1,000 nodes) on 100,000 targets joined by 300,000 edges: two
// depends_on edges from each target to older ones and a runs_on edge to
// one of 1,000 hosts. It reports the p99 of single queries.
func BenchmarkImpact(b *testing.B) {
	const (
		nodes = 100_000
		hosts = 1_000
	)
	e := newTestEnv(b)
	rng := rand.New(rand.NewPCG(7, 7))
	ids := make([]string, nodes)
	for i := range nodes {
		ids[i] = e.targets.add(fmt.Sprintf("t%06d", i))
	}
	// Built through a raw insert: 300,000 creates through Apply would
	// spend the benchmark's time on cycle checks it does not measure.
	var batch []Edge
	flush := func() {
		cmd, err := state.NewCommand("test.bulk_edges", 1, batch)
		if err != nil {
			b.Fatal(err)
		}
		res, err := e.applier.Apply(context.Background(), cmd)
		if err != nil || res[0].Decode(nil) != nil {
			b.Fatal(err, res)
		}
		batch = batch[:0]
	}
	n := 0
	add := func(from, typ, to string) {
		n++
		batch = append(batch, Edge{ID: fmt.Sprintf("rel_%07d", n), From: from, Type: typ, To: to})
		if len(batch) == 10_000 {
			flush()
		}
	}
	for i := hosts; i < nodes; i++ {
		a, c := rng.IntN(i), rng.IntN(i)
		add(ids[i], DependsOn, ids[a])
		if c != a {
			add(ids[i], DependsOn, ids[c])
		}
		add(ids[i], RunsOn, ids[rng.IntN(hosts)])
	}
	flush()
	b.Logf("%d targets, %d edges", nodes, n)

	ctx := context.Background()
	for _, bc := range []struct {
		name  string
		roots []string
	}{
		// Most targets have few dependents; a host has ~100 direct ones
		// and its walk usually reaches the 1,000-node bound.
		{"random-target", ids},
		{"host", ids[:hosts]},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var (
				lat              []time.Duration
				sizes, truncated int
			)
			for b.Loop() {
				root := bc.roots[rng.IntN(len(bc.roots))]
				start := time.Now()
				g, err := e.svc.Graph(ctx, e.admin, root, Query{Direction: Dependents})
				lat = append(lat, time.Since(start))
				if err != nil {
					b.Fatal(err)
				}
				sizes += len(g.Nodes)
				if g.Truncated {
					truncated++
				}
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(sizes)/float64(len(lat)), "nodes/query")
			b.ReportMetric(float64(truncated)/float64(len(lat)), "truncated/query")
		})
	}
}
