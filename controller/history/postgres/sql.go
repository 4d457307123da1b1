package postgres

import (
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// domainSQL is the SQL for one domain's chunks table, built once at Open
// so that every statement text is fixed and pgx can cache its plan.
type domainSQL struct {
	name string
	// insert writes chunks sent as nine array parameters, one element per
	// chunk, for batches under copyThreshold: a handful of chunk rows, for
	// which arrays cost less than a COPY's extra round trips.
	insert string
	copyIn string // COPY … FROM STDIN in the layout appendCopyChunk writes
	// overlapping returns the ordinals of the (stream, lo, hi) spans that
	// some stored chunk overlaps. A stream's chunks are disjoint, so those
	// are the chunks starting inside [lo, hi] and the one starting last
	// before lo if it reaches lo: two index probes per span, however long
	// the stream.
	overlapping string
	// take deletes and returns the chunks of a stream overlapping [lo, hi],
	// for Append to merge with the records it brings. DELETE … RETURNING
	// hands back the rows as they are when deleted, after waiting for any
	// retention rewrite of them, so nothing is merged from a stale copy.
	take  string
	read  string
	tail  string
	each  string // one keyset page of Each
	query string // prefix: WHERE kind = $1 follows
	// deleteWhole removes up to deleteBatch chunks entirely before $1 and
	// reports how many chunks and records it removed.
	deleteWhole string
	// straddling locks the chunks holding records on both sides of $1
	// (whose max_time is then below $2 = $1 + maxChunkSpan), for retention
	// to rewrite without their older records.
	straddling string
	rewrite    string
	stats      string
}

// deleteBatch bounds the chunks one statement of DeleteBefore removes or
// rewrites, so that retention holds locks and produces WAL in bounded
// slices and never one huge transaction that stalls replication and
// vacuum.
const deleteBatch = 1000

// rowOverhead is what Stats adds per record for what the chunk's columns
// do not show per record: the seq and time, and a share of the row and
// index entries. It is an estimate; Stats.Bytes is meant to compare and
// trend, not to bill.
const rowOverhead = 64

func newDomainSQL(name string) domainSQL {
	t := pgx.Identifier{name, "chunks"}.Sanitize()
	return domainSQL{
		name: name,
		insert: fmt.Sprintf(`INSERT INTO %s (stream, first_seq, last_seq, n, min_time, max_time, kind, fields, body)
SELECT * FROM unnest($1::text[], $2::int8[], $3::int8[], $4::int4[], $5::timestamptz[], $6::timestamptz[], $7::text[], $8::jsonb[], $9::bytea[])`, t),
		copyIn: fmt.Sprintf(`COPY %s (%s) FROM STDIN (FORMAT binary)`, t, copyChunkColumns),
		overlapping: fmt.Sprintf(`SELECT b.i FROM unnest($1::text[], $2::int8[], $3::int8[]) WITH ORDINALITY AS b(stream, lo, hi, i)
WHERE EXISTS (SELECT 1 FROM %[1]s c WHERE c.stream = b.stream AND c.first_seq BETWEEN b.lo AND b.hi)
	OR (SELECT c.last_seq FROM %[1]s c WHERE c.stream = b.stream AND c.first_seq < b.lo ORDER BY c.first_seq DESC LIMIT 1) >= b.lo`, t),
		take: fmt.Sprintf(`DELETE FROM %[1]s WHERE stream = $1 AND last_seq >= $2 AND first_seq <= $3
	AND first_seq >= coalesce((SELECT max(first_seq) FROM %[1]s WHERE stream = $1 AND first_seq <= $2), $2)
RETURNING %[2]s`, t, chunkColumns),
		// The chunks from the one holding $2 on, up to the first at which
		// those after $2 hold $4 records: the running sum is computed as
		// the primary key is walked and the walk stops there, so a Read
		// costs the chunks it returns, not the stream's length.
		read: fmt.Sprintf(`SELECT %[2]s FROM %[1]s WHERE stream = $1 AND last_seq >= $2 AND first_seq <= $3
	AND first_seq >= coalesce((SELECT max(first_seq) FROM %[1]s WHERE stream = $1 AND first_seq <= $2), $2)
	AND first_seq <= coalesce((SELECT first_seq FROM (
		SELECT first_seq, sum(n) OVER (ORDER BY first_seq ROWS UNBOUNDED PRECEDING) AS acc
		FROM %[1]s WHERE stream = $1 AND first_seq > $2 AND first_seq <= $3 ORDER BY first_seq) w
		WHERE acc >= $4 LIMIT 1), $3)
ORDER BY first_seq`, t, chunkColumns),
		// The newest chunks that together hold at least $2 records, found
		// as read finds its end, walking the primary key backwards.
		tail: fmt.Sprintf(`SELECT %[2]s FROM %[1]s WHERE stream = $1
	AND first_seq >= coalesce((SELECT first_seq FROM (
		SELECT first_seq, sum(n) OVER (ORDER BY first_seq DESC ROWS UNBOUNDED PRECEDING) AS acc
		FROM %[1]s WHERE stream = $1 ORDER BY first_seq DESC) w
		WHERE acc >= $2 LIMIT 1), 0)
ORDER BY first_seq`, t, chunkColumns),
		each:  fmt.Sprintf(`SELECT %s FROM %s WHERE (stream, first_seq) > ($1, $2) ORDER BY stream, first_seq LIMIT $3`, chunkColumns, t),
		query: fmt.Sprintf(`SELECT %s FROM %s WHERE kind = $1`, chunkColumns, t),
		// ctid = ANY(ARRAY(…)) makes the outer DELETE a TID scan of exactly
		// the rows the LIMITed sub-select found through the time index.
		deleteWhole: fmt.Sprintf(`WITH d AS (
	DELETE FROM %[1]s WHERE ctid = ANY (ARRAY(SELECT ctid FROM %[1]s WHERE max_time < $1 LIMIT %[2]d)) RETURNING n)
SELECT count(*), coalesce(sum(n), 0) FROM d`, t, deleteBatch),
		straddling: fmt.Sprintf(`SELECT %s FROM %s WHERE max_time >= $1 AND max_time < $2 AND min_time < $1
ORDER BY stream, first_seq LIMIT %d FOR UPDATE`, chunkColumns, t, deleteBatch),
		rewrite: fmt.Sprintf(`UPDATE %s SET first_seq = $3, last_seq = $4, n = $5, min_time = $6, max_time = $7, body = $8
WHERE stream = $1 AND first_seq = $2`, t),
		stats: fmt.Sprintf(`SELECT coalesce(sum(n), 0),
	coalesce(sum(octet_length(body) + n * (octet_length(stream) + octet_length(kind) + pg_column_size(fields) + %d)), 0),
	min(min_time)
FROM %s`, rowOverhead, t),
	}
}

// insertUnlessOverlapping builds the statement of Append's one round trip
// for a batch whose chunks go to the domains doms (indexes into domains,
// ascending): it inserts every domain's chunks if no stored chunk overlaps
// any of the batch's streams' seqs, inserts nothing otherwise, and
// returns whether one did. One statement, so that the batch is stored
// whole or not at all whichever domains it spans: its check and its
// inserts share a snapshot, taken after the stream locks.
//
// Each domain takes insertParams parameters, the chunks as arrays: stream,
// first_seq, last_seq, n, min_time, max_time, kind, fields, and each
// body's start (from 1) and length in the last, all the domain's bodies
// as one bytea. pgx copies a bytea once, into the Bind message, where an
// array of them was copied three times over (see copy.go).
func insertUnlessOverlapping(domains []domainSQL, doms []int) string {
	var with, overlap, inserts []string
	for i, d := range doms {
		p := i * insertParams
		t := pgx.Identifier{domains[d].name, "chunks"}.Sanitize()
		with = append(with, fmt.Sprintf(`c%d AS (SELECT * FROM unnest($%d::text[], $%d::int8[], $%d::int8[], $%d::int4[], $%d::timestamptz[], $%d::timestamptz[], $%d::text[], $%d::jsonb[], $%d::int4[], $%d::int4[])
	AS c(stream, first_seq, last_seq, n, min_time, max_time, kind, fields, body_start, body_len))`,
			i, p+1, p+2, p+3, p+4, p+5, p+6, p+7, p+8, p+9, p+10))
		// As domainSQL.overlapping: a stream's chunks are disjoint, so two
		// index probes per stream of the batch.
		overlap = append(overlap, fmt.Sprintf(`EXISTS (SELECT 1 FROM (SELECT stream, min(first_seq) AS lo, max(last_seq) AS hi FROM c%[1]d GROUP BY stream) b
	WHERE EXISTS (SELECT 1 FROM %[2]s x WHERE x.stream = b.stream AND x.first_seq BETWEEN b.lo AND b.hi)
		OR (SELECT x.last_seq FROM %[2]s x WHERE x.stream = b.stream AND x.first_seq < b.lo ORDER BY x.first_seq DESC LIMIT 1) >= b.lo)`, i, t))
		inserts = append(inserts, fmt.Sprintf(`i%[1]d AS (INSERT INTO %[2]s (stream, first_seq, last_seq, n, min_time, max_time, kind, fields, body)
	SELECT stream, first_seq, last_seq, n, min_time, max_time, kind, fields, substring($%[3]d::bytea FROM body_start FOR body_len)
	FROM c%[1]d WHERE NOT (SELECT hit FROM ov))`, i, t, p+insertParams))
	}
	return "WITH " + strings.Join(with, ",\n") + ",\nov AS (SELECT " + strings.Join(overlap, "\n\tOR ") + " AS hit),\n" +
		strings.Join(inserts, ",\n") + "\nSELECT hit FROM ov"
}

// insertParams is how many parameters insertUnlessOverlapping takes per
// domain.
const insertParams = 11
