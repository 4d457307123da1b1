package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/opsconductor/opsconductor/controller/history"
	"github.com/opsconductor/opsconductor/controller/problem"
)

// domainOf returns the statements of a domain by name.
func (s *Store) domainOf(name string) (*domainSQL, bool) {
	for i := range s.domains {
		if s.domains[i].name == name {
			return &s.domains[i], true
		}
	}
	return nil, false
}

// chunks runs a statement selecting chunkColumns and decodes every row.
func (s *Store) chunks(ctx context.Context, sql string, args ...any) ([]storedChunk, error) {
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []storedChunk
	for rows.Next() {
		c, err := scanChunk(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// record returns the chunk's i-th record, with a Fields map of its own as
// a store of a row per record gave, so that a caller changing one
// record's fields does not change its neighbours'.
func (c *storedChunk) ownRecord(i int) history.Record {
	r := c.record(i)
	if r.Fields != nil {
		r.Fields = maps.Clone(r.Fields)
	}
	return r
}

// Read returns records of stream with from <= Seq <= to in sequence order.
func (s *Store) Read(ctx context.Context, stream string, from, to uint64, limit int) ([]history.Record, error) {
	if err := s.checkOpen("read"); err != nil {
		return nil, err
	}
	if err := history.CheckRead(stream, limit); err != nil {
		return nil, err
	}
	// No stored seq exceeds MaxInt64 (Append refuses them), so a range
	// beyond it is empty and an end beyond it means "to the end".
	to = min(to, math.MaxInt64)
	if from > to {
		return nil, nil
	}
	d, _ := history.Domain(stream)
	dsql, _ := s.domainOf(d)
	cs, err := s.chunks(ctx, dsql.read, stream, int64(from), int64(to), limit)
	if err != nil {
		return nil, s.fail("read", err)
	}
	var out []history.Record
	for i := range cs {
		for j, r := range cs[i].recs {
			if r.seq >= int64(from) && r.seq <= int64(to) && len(out) < limit {
				out = append(out, cs[i].ownRecord(j))
			}
		}
	}
	return out, nil
}

// Tail returns the last n records of stream in sequence order.
func (s *Store) Tail(ctx context.Context, stream string, n int) ([]history.Record, error) {
	if err := s.checkOpen("tail"); err != nil {
		return nil, err
	}
	if err := history.CheckRead(stream, n); err != nil {
		return nil, err
	}
	d, _ := history.Domain(stream)
	dsql, _ := s.domainOf(d)
	cs, err := s.chunks(ctx, dsql.tail, stream, n)
	if err != nil {
		return nil, s.fail("tail", err)
	}
	total := 0
	for _, c := range cs {
		total += len(c.recs)
	}
	skip := max(total-n, 0)
	out := make([]history.Record, 0, min(total, n))
	for i := range cs {
		for j := range cs[i].recs {
			if skip > 0 {
				skip--
				continue
			}
			out = append(out, cs[i].ownRecord(j))
		}
	}
	return out, nil
}

// Query returns one page of records of q.Kind, newest first. The page
// order (time, stream, seq) descending is total, so the cursor, the last
// record's key, says exactly where the next page starts even when many
// records share a time.
//
// Chunks are read newest max_time first, a few at a time (pages of
// chunks growing as needed), and their records merged: once the chunks
// read reach down to max_time M, every record newer than M that matches
// is in hand, since no chunk not yet read holds a record newer than its
// max_time. The page is complete when Limit+1 such records are.
func (s *Store) Query(ctx context.Context, q history.Query) (history.Page, error) {
	if err := s.checkOpen("query"); err != nil {
		return history.Page{}, err
	}
	if err := history.CheckQuery(q); err != nil {
		return history.Page{}, err
	}
	qs, err := s.newQueryState(q)
	if err != nil {
		return history.Page{}, err
	}
	var cands []history.Record
	pageSize := 8
	for {
		sql, args := qs.sql(pageSize)
		cs, err := s.chunks(ctx, sql, args...)
		if err != nil {
			return history.Page{}, s.fail("query", err)
		}
		for i := range cs {
			for j, r := range cs[i].recs {
				if qs.wants(&cs[i], r) {
					cands = append(cands, cs[i].record(j))
				}
			}
		}
		if len(cs) < pageSize {
			break
		}
		last := cs[len(cs)-1]
		frontier := last.maxTime
		sure := 0
		for _, r := range cands {
			if r.Time.After(frontier) {
				sure++
			}
		}
		if sure > q.Limit {
			// Everything newer than the frontier is here, and those are
			// the newest matches of all: drop the rest.
			cands = slices.DeleteFunc(cands, func(r history.Record) bool { return !r.Time.After(frontier) })
			break
		}
		qs.after = &chunkKey{maxTime: last.maxTime, stream: last.stream, first: last.first}
		pageSize = min(pageSize*2, 1024)
	}
	slices.SortFunc(cands, func(a, b history.Record) int { return compareKeys(b, a) })
	p := history.Page{Records: cands}
	if len(cands) > q.Limit {
		p.Records = cands[:q.Limit]
		last := p.Records[q.Limit-1]
		p.Next = cursor{time: last.Time, stream: last.Stream, seq: last.Seq}.encode()
	}
	for i := range p.Records {
		if p.Records[i].Fields != nil {
			p.Records[i].Fields = maps.Clone(p.Records[i].Fields)
		}
	}
	return p, nil
}

// compareKeys orders records by (time, stream, seq), streams as bytes.
func compareKeys(a, b history.Record) int {
	if c := a.Time.Compare(b.Time); c != 0 {
		return c
	}
	if c := strings.Compare(a.Stream, b.Stream); c != 0 {
		return c
	}
	switch {
	case a.Seq < b.Seq:
		return -1
	case a.Seq > b.Seq:
		return 1
	}
	return 0
}

// chunkKey is a chunk's position in Query's chunk order.
type chunkKey struct {
	maxTime time.Time
	stream  string
	first   int64
}

// queryState is one Query: its bounds in µs and the chunk to continue
// after.
type queryState struct {
	dsql   *domainSQL
	q      history.Query
	fields string // JSON, when q.Fields is set
	since  int64  // records at or after, µs; math.MinInt64 when unbounded
	until  int64  // records before, µs; math.MaxInt64 when unbounded
	cur    *cursor
	after  *chunkKey
}

func (s *Store) newQueryState(q history.Query) (*queryState, error) {
	d, _, dotted := strings.Cut(q.Kind, ".")
	dsql, known := s.domainOf(d)
	if !dotted || !known {
		return nil, problem.Invalid("kind", "%q must start with a domain (%s) and a dot", q.Kind, strings.Join(history.Domains(), ", "))
	}
	qs := &queryState{dsql: dsql, q: q, since: math.MinInt64, until: math.MaxInt64}
	if q.Cursor != "" {
		c, err := decodeCursor(q.Cursor)
		if err != nil {
			return nil, err
		}
		qs.cur = &c
	}
	if len(q.Fields) > 0 {
		b, err := json.Marshal(q.Fields)
		if err != nil {
			return nil, problem.Invalid("fields", "cannot be encoded: %v", err)
		}
		qs.fields = string(b)
	}
	// Stored times are whole microseconds, and for a whole microsecond x,
	// x >= s iff x >= ceil(s) and x < u iff x < ceil(u).
	if !q.Since.IsZero() {
		qs.since = clampTime(ceilMicro(q.Since)).UnixMicro()
	}
	if !q.Until.IsZero() {
		qs.until = clampTime(ceilMicro(q.Until)).UnixMicro()
	}
	return qs, nil
}

// wants reports whether record r of chunk c belongs in the query's result
// (the chunk matched kind and fields already).
func (qs *queryState) wants(c *storedChunk, r chunkRec) bool {
	if r.time < qs.since || r.time >= qs.until {
		return false
	}
	if qs.cur == nil {
		return true
	}
	ct := qs.cur.time.UnixMicro()
	switch {
	case r.time != ct:
		return r.time < ct
	case c.stream != qs.cur.stream:
		return c.stream < qs.cur.stream
	}
	return uint64(r.seq) < qs.cur.seq
}

// sql is the statement for the next page of at most n chunks. Every bound
// on max_time is an index condition on chunks_kind_time: a chunk spans at
// most maxChunkSpan, so one holding a record before time T has max_time
// below T + maxChunkSpan, which keeps a page deep in the history as cheap
// as the first.
func (qs *queryState) sql(n int) (string, []any) {
	var sql strings.Builder
	sql.WriteString(qs.dsql.query)
	args := []any{qs.q.Kind}
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if qs.fields != "" {
		fmt.Fprintf(&sql, " AND fields @> %s::jsonb", arg(qs.fields))
	}
	if qs.since != math.MinInt64 {
		fmt.Fprintf(&sql, " AND max_time >= %s", arg(time.UnixMicro(qs.since).UTC()))
	}
	// The newest record wanted is before until, or at or before the
	// cursor's time.
	upper, upperIncl := qs.until, false
	if qs.cur != nil {
		if ct := qs.cur.time.UnixMicro(); ct < upper {
			upper, upperIncl = ct, true
		}
	}
	if upper != math.MaxInt64 {
		op := "<"
		if upperIncl {
			op = "<="
		}
		ut := time.UnixMicro(upper).UTC()
		fmt.Fprintf(&sql, " AND min_time %s %s AND max_time %s %s", op, arg(ut), op, arg(clampTime(ut.Add(maxChunkSpan))))
	}
	if qs.after != nil {
		fmt.Fprintf(&sql, ` AND (max_time, stream, first_seq) < (%s, %s COLLATE "C", %s)`,
			arg(qs.after.maxTime), arg(qs.after.stream), arg(qs.after.first))
	}
	fmt.Fprintf(&sql, " ORDER BY max_time DESC, stream DESC, first_seq DESC LIMIT %s", arg(n))
	return sql.String(), args
}

// eachPage is how many chunks one Each statement reads: keyset pages keep
// memory flat and no statement long, however large the table.
const eachPage = 1000

// Each calls fn for every record, schema by schema in history.Domains
// order and (stream, seq) order within each.
func (s *Store) Each(ctx context.Context, fn func(history.Record) error) error {
	if err := s.checkOpen("each"); err != nil {
		return err
	}
	for _, d := range s.domains {
		stream, first := "", int64(-1)
		for {
			cs, err := s.chunks(ctx, d.each, stream, first, eachPage)
			if err != nil {
				return s.fail("each", err)
			}
			for i := range cs {
				for j := range cs[i].recs {
					if err := fn(cs[i].ownRecord(j)); err != nil {
						return err
					}
				}
			}
			if len(cs) < eachPage {
				break
			}
			last := cs[len(cs)-1]
			stream, first = last.stream, last.first
		}
	}
	return nil
}
