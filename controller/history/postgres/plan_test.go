package postgres

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/opsconductor/opsconductor/controller/history"
)

// TestPlansUseIndexes asks PostgreSQL how it would run every statement the
// Store reads or deletes with, on a table large enough (and analyzed) for
// the planner to prefer an index where one fits, and fails on any plan
// that reads the records table whole. It pins that dropping or changing
// an index (records_time became BRIN in version 3) left no API call on a
// sequential scan.
func TestPlansUseIndexes(t *testing.T) {
	ctx := context.Background()
	dsn := newDatabase(t)
	s := openStore(t, dsn, Options{})
	conn := connect(t, dsn)
	// 200 streams of 500 records, two kinds, in time order as appends
	// arrive, with the fields a run log carries.
	if _, err := conn.Exec(ctx, `INSERT INTO automation.records (stream, seq, time, kind, fields, data)
		SELECT 'automation/run/' || (g % 200) || '/log', g / 200 + 1,
			timestamptz '2026-01-01 00:00:00Z' + g * interval '1 second',
			CASE WHEN g % 10 = 0 THEN 'automation.run' ELSE 'automation.log' END,
			jsonb_build_object('run_id', (g % 200)::text, 'level', CASE WHEN g % 100 = 0 THEN 'error' ELSE 'info' END),
			convert_to(repeat('x', 100), 'UTF8')
		FROM generate_series(0, 99999) g`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `VACUUM ANALYZE automation.records`); err != nil {
		t.Fatal(err)
	}
	dom, _ := s.domainOf("automation")
	mid := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(50000 * time.Second)
	after := cursor{time: mid, stream: "automation/run/0/log", seq: 250}.encode()

	// cond, where set, must be part of the index condition: the cursor
	// must bound the scan, not just filter it.
	type plan struct {
		sql  string
		args []any
	}
	query := func(q history.Query) plan {
		sql, args, err := s.querySQL(q)
		if err != nil {
			t.Fatal(err)
		}
		return plan{sql, args}
	}
	for _, c := range []struct {
		name  string
		plan  plan
		index string // the index the plan must use
		cond  string // where set, text of its index condition
	}{
		{"Read scans the primary key", plan{dom.read, []any{"automation/run/7/log", int64(100), int64(200), 1000}}, "records_pkey", ""},
		{"Tail scans the primary key backwards", plan{dom.tail, []any{"automation/run/7/log", 1000}}, "records_pkey", ""},
		{"Each pages through the primary key", plan{dom.each, []any{"automation/run/7/log", int64(100), eachPage}}, "records_pkey", "ROW(stream, seq) >"},
		{"Query by kind scans records_kind_time", query(history.Query{Kind: "automation.run", Limit: 100}), "records_kind_time", ""},
		{"Query with a cursor scans records_kind_time", query(history.Query{Kind: "automation.run", Cursor: after, Limit: 100}), "records_kind_time", `"time" <=`},
		{"Query within times scans records_kind_time", query(history.Query{Kind: "automation.log", Since: mid.Add(-time.Hour), Until: mid, Limit: 100}), "records_kind_time", `"time" >=`},
		{"Query by a rare field uses records_fields", query(history.Query{Kind: "automation.log", Fields: map[string]string{"run_id": "7", "level": "error"}, Limit: 100}), "records_fields", ""},
		{"Query by a common field uses an index", query(history.Query{Kind: "automation.log", Fields: map[string]string{"level": "info"}, Limit: 100}), "records_", ""},
		{"retention finds old rows through records_time_brin", plan{dom.delete, []any{time.Date(2026, 1, 1, 1, 0, 0, 0, time.UTC)}}, "records_time_brin", ""},
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
				if n.Type == "Seq Scan" && n.Relation == "records" {
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
