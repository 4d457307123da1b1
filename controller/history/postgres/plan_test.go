package postgres

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opsconductor/opsconductor/controller/history"
)

// TestPlansUseIndexes asks PostgreSQL how it would run every statement the
// Store reads, checks or deletes with, on a table large enough (and analyzed) for
// the planner to prefer an index where one fits, and fails on any plan
// that reads the chunks table whole. It pins that dropping or changing
// an index left no API call on a sequential scan.
func TestPlansUseIndexes(t *testing.T) {
	ctx := context.Background()
	dsn := newDatabase(t)
	s := openStore(t, dsn, Options{})
	conn := connect(t, dsn)
	// 200 streams of 500 records, two kinds, in time order as appends
	// arrive (a stream's records 200 ms apart, so five or six to a chunk),
	// with the fields a run log carries.
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	batch := make([]history.Record, 0, 1000)
	for g := range 100000 {
		st := g % 200
		kind, level := "automation.log", "info"
		if st%10 == 0 {
			kind = "automation.run"
		}
		if st%100 == 0 {
			level = "error"
		}
		batch = append(batch, history.Record{Stream: "automation/run/" + strconv.Itoa(st) + "/log", Seq: uint64(g/200 + 1),
			Time: base.Add(time.Duration(g) * time.Millisecond), Kind: kind,
			Fields: map[string]string{"run_id": strconv.Itoa(st), "level": level}, Data: []byte(strings.Repeat("x", 100))})
		if len(batch) == cap(batch) {
			if err := s.Append(ctx, batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if _, err := conn.Exec(ctx, `VACUUM ANALYZE automation.chunks`); err != nil {
		t.Fatal(err)
	}
	dom, _ := s.domainOf("automation")
	mid := base.Add(50 * time.Second)
	after := cursor{time: mid, stream: "automation/run/0/log", seq: 250}.encode()

	type plan struct {
		sql  string
		args []any
	}
	query := func(q history.Query, continued bool) plan {
		qs, err := s.newQueryState(q)
		if err != nil {
			t.Fatal(err)
		}
		if continued {
			qs.after = &chunkKey{maxTime: mid, stream: "automation/run/7/log", first: 250}
		}
		sql, args := qs.sql(8)
		return plan{sql, args}
	}
	streams, los, his := []string{"automation/run/7/log"}, []int64{100}, []int64{200}
	// One chunk of one record, as insertOnce sends it.
	insertOnce := plan{s.insertUnlessOverlapping[1<<slices.Index(history.Domains(), "automation")], []any{
		streams, los, his, []int32{1}, []time.Time{base}, []time.Time{base}, []string{"automation.log"}, []string{"{}"},
		[]int32{1}, []int32{4}, []byte{chunkVersion, 0, 0, 0}}}
	for _, c := range []struct {
		name  string
		plan  plan
		index string // the index the plan must use
		cond  string // where set, text of its index condition
	}{
		{"Read scans the primary key", plan{dom.read, []any{"automation/run/7/log", int64(100), int64(200), 1000}}, "chunks_pkey", ""},
		{"Tail scans the primary key backwards", plan{dom.tail, []any{"automation/run/7/log", 1000}}, "chunks_pkey", ""},
		{"Each pages through the primary key", plan{dom.each, []any{"automation/run/7/log", int64(100), eachPage}}, "chunks_pkey", "ROW(stream, first_seq) >"},
		{"Append's overlap check probes the primary key", plan{dom.overlapping, []any{streams, los, his}}, "chunks_pkey", "first_seq >="},
		{"Append's one round trip probes the primary key", insertOnce, "chunks_pkey", "first_seq >="},
		{"Append's merge takes chunks through the primary key", plan{dom.take, []any{"automation/run/7/log", int64(100), int64(200)}}, "chunks_pkey", "first_seq <="},
		{"Query by kind scans chunks_kind_time", query(history.Query{Kind: "automation.run", Limit: 100}, false), "chunks_kind_time", ""},
		{"Query with a cursor scans chunks_kind_time", query(history.Query{Kind: "automation.run", Cursor: after, Limit: 100}, false), "chunks_kind_time", "max_time <="},
		{"Query's next chunks scan chunks_kind_time", query(history.Query{Kind: "automation.run", Cursor: after, Limit: 100}, true), "chunks_kind_time", "max_time <="},
		{"Query within times scans chunks_kind_time", query(history.Query{Kind: "automation.log", Since: mid.Add(-time.Second), Until: mid, Limit: 100}, false), "chunks_kind_time", "max_time >="},
		{"Query by a rare field uses chunks_fields", query(history.Query{Kind: "automation.log", Fields: map[string]string{"run_id": "7", "level": "error"}, Limit: 100}, false), "chunks_fields", ""},
		{"Query by a common field uses an index", query(history.Query{Kind: "automation.log", Fields: map[string]string{"level": "info"}, Limit: 100}, false), "chunks_", ""},
		// Retention's conditions are on time alone: the planner takes
		// chunks_time_brin or, on tables this small, the time columns of
		// chunks_kind_time, both in index order with LIMIT stopping early.
		{"retention finds old chunks through an index on time", plan{dom.deleteWhole, []any{base.Add(time.Second)}}, "chunks_", "max_time <"},
		{"retention finds straddling chunks through an index on time", plan{dom.straddling, []any{base.Add(time.Second), base.Add(2 * time.Second)}}, "chunks_", "max_time >="},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out []byte
			if err := conn.QueryRow(ctx, "EXPLAIN (FORMAT JSON) "+c.plan.sql, c.plan.args...).Scan(&out); err != nil {
				t.Fatal(err)
			}
			var nodes []planNode
			walkPlan(t, out, &nodes)
			var used, conds []string
			for _, n := range nodes {
				if n.Type == "Seq Scan" && n.Relation == "chunks" {
					t.Fatalf("plan reads the table whole:\n%s", out)
				}
				if n.Index != "" {
					used, conds = append(used, n.Index), append(conds, n.IndexCond)
				}
			}
			if !strings.Contains(strings.Join(used, " "), c.index) {
				t.Fatalf("plan uses indexes %v, want %s:\n%s", used, c.index, out)
			}
			if !strings.Contains(strings.Join(conds, " "), c.cond) {
				t.Fatalf("index conditions %q lack %s:\n%s", conds, c.cond, out)
			}
		})
	}
}

type planNode struct {
	Type      string     `json:"Node Type"`
	Relation  string     `json:"Relation Name"`
	Index     string     `json:"Index Name"`
	IndexCond string     `json:"Index Cond"`
	Plans     []planNode `json:"Plans"`
}

// walkPlan flattens EXPLAIN (FORMAT JSON) output into its nodes.
func walkPlan(t *testing.T, out []byte, nodes *[]planNode) {
	t.Helper()
	var top []struct {
		Plan planNode `json:"Plan"`
	}
	if err := json.Unmarshal(out, &top); err != nil || len(top) != 1 {
		t.Fatalf("EXPLAIN output %s: %v", out, err)
	}
	var walk func(n planNode)
	walk = func(n planNode) {
		*nodes = append(*nodes, n)
		for _, c := range n.Plans {
			walk(c)
		}
	}
	walk(top[0].Plan)
}
