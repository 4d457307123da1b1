package postgres

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/opsconductor/opsconductor/controller/history"
)

// A chunk is one row of a domain's chunks table: consecutive records of one
// stream (in seq order, none missing between them that is stored
// elsewhere) that share a kind and fields. PostgreSQL's cost of a row is
// mostly fixed (tuple header, WAL record, one entry in each index), so
// packing tens of records into one row divides it by as many; the columns
// the API filters on (stream and seq range, kind, fields, time range) stay
// real columns with real indexes, and the per-record part (seq, time,
// data) is the body, encoded here.
//
// Invariants every chunk row keeps, which the reads rely on:
//   - a stream's chunks never overlap in seq: [first_seq, last_seq] ranges
//     are disjoint, so ordering chunks by first_seq orders their records;
//   - max_time - min_time <= maxChunkSpan, so a query for records at or
//     before time T needs only chunks with max_time <= T + maxChunkSpan,
//     an index range rather than a scan from the newest chunk;
//   - the body decodes to exactly n records from first_seq to last_seq,
//     their times within [min_time, max_time].
//
// Body format, version 1:
//
//	version byte (1)
//	per record: uvarint seq - previous seq (the first record's previous is first_seq, so 0)
//	            zigzag varint time µs - previous time µs (the first's previous is min_time)
//	            uvarint data length (0 = no data), data
//
// A record stored alone (migration 4 turns every old row into one) is
// 0x01 0x00 0x00 uvarint(len) data, which SQL can build.
const chunkVersion = 1

// chunkRowTarget is the size a chunk row is filled to: a heap tuple of
// at most 8160 bytes (PostgreSQL's MaxHeapTupleSize, also the
// toast_tuple_target migration 4 sets) fits in a page of its own without
// TOAST. The body column is STORAGE EXTERNAL, so a row under the target is
// neither compressed nor moved out of line (compression, TOAST rows and
// their index would bring a per-2-KB cost back); a row that overshoots
// the estimate below is moved out of line, which is slower, not wrong. A
// page holds one such row, so filling it is what divides the per-row
// cost (a new page, its WAL, an entry per index) among the most records.
const chunkRowTarget = 8160

// maxChunkBody is the body a chunk of stream, kind and fields (as JSON)
// may grow to: chunkRowTarget less the tuple header, the fixed columns and
// their alignment (100 bytes, generously), the texts, and the fields twice
// (jsonb's binary form takes more room than its text). A single record
// larger than this is a chunk of its own.
func maxChunkBody(stream, kind string, fieldsJSON int) int {
	return max(chunkRowTarget-100-len(stream)-len(kind)-2*fieldsJSON, 1024)
}

// maxChunkSpan bounds max_time - min_time of a chunk.
const maxChunkSpan = time.Second

// chunk is one chunk row, decoded or about to be encoded.
type chunk struct {
	dom      int
	stream   string
	kind     string
	fields   map[string]string
	first    int64 // seq of the first record
	last     int64
	minTime  int64 // Unix µs
	maxTime  int64
	recs     []chunkRec
	body     []byte // encoded recs, set by encode or read from the row
	jsonText []byte // fields as JSON, for the jsonb parameter
}

// chunkRec is the per-record part of a chunk.
type chunkRec struct {
	seq  int64
	time int64 // Unix µs
	data []byte
}

// sameFields compares two field sets; the common case is one map shared
// by a producer's records, which compares without a lookup.
func sameFields(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	if len(a) == 0 {
		return true
	}
	return maps.Equal(a, b)
}

// uvarintLen is the length of v as a uvarint.
func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// varintLen is the length of v as a zigzag varint.
func varintLen(v int64) int { return uvarintLen(uint64(v<<1) ^ uint64(v>>63)) }

// buildChunks packs rows (sorted by domain, stream, seq, without two of one
// (stream, seq)) into chunks: a new chunk starts at a new stream, kind or
// field set, when the body would pass maxChunkBody, or when the time span
// would pass maxChunkSpan. It leaves the bodies to encodeBodies or to
// copyReader, which encodes each into a buffer it reuses: a batch's bodies
// are as large as its data, and allocating them afresh for every batch
// cost more client CPU in allocation, zeroing and returning memory to the
// OS than the encoding itself.
func buildChunks(rows []row) []chunk {
	var out []chunk
	var cur *chunk
	size, limit := 0, 0
	var prevSeq, prevTime int64
	for i := range rows {
		r := &rows[i]
		t := r.time.UnixMicro()
		var rs int
		if cur != nil {
			rs = uvarintLen(uint64(r.seq-prevSeq)) + varintLen(t-prevTime) + uvarintLen(uint64(len(r.data))) + len(r.data)
		}
		if cur == nil || cur.dom != r.dom || cur.stream != r.stream || cur.kind != r.kind || !sameFields(cur.fields, r.fields) ||
			size+rs > limit || max(cur.maxTime, t)-min(cur.minTime, t) > maxChunkSpan.Microseconds() {
			out = append(out, chunk{dom: r.dom, stream: r.stream, kind: r.kind, fields: r.fields, first: r.seq, minTime: t, maxTime: t})
			cur = &out[len(out)-1]
			cur.jsonText = appendFieldsJSON(nil, r.fields)
			limit = maxChunkBody(r.stream, r.kind, len(cur.jsonText))
			// The first record's time is stored against min_time, which
			// a later record may lower by up to maxChunkSpan: 2 more bytes.
			rs = 1 + 1 + 3 + uvarintLen(uint64(len(r.data))) + len(r.data)
			size = 0
		}
		cur.recs = append(cur.recs, chunkRec{seq: r.seq, time: t, data: r.data})
		cur.last = r.seq
		cur.minTime, cur.maxTime = min(cur.minTime, t), max(cur.maxTime, t)
		prevSeq, prevTime = r.seq, t
		size += rs
	}
	return out
}

// encodeBodies sets the body of every chunk, in one allocation.
func encodeBodies(cs []chunk) {
	total := 0
	for i := range cs {
		total += bodyLen(&cs[i])
	}
	buf := make([]byte, 0, total)
	for i := range cs {
		buf = cs[i].encodeTo(buf)
	}
}

// bodyLen is the length of c's body.
func bodyLen(c *chunk) int {
	n := 1
	prevSeq, prevTime := c.first, c.minTime
	for _, r := range c.recs {
		n += uvarintLen(uint64(r.seq-prevSeq)) + varintLen(r.time-prevTime) + uvarintLen(uint64(len(r.data))) + len(r.data)
		prevSeq, prevTime = r.seq, r.time
	}
	return n
}

// encode sets c.body and c.jsonText from c.recs and c.fields.
func (c *chunk) encode() {
	c.encodeTo(nil)
	c.jsonText = appendFieldsJSON(nil, c.fields)
}

// encodeTo appends c's body to buf, sets c.body to it and returns buf.
// min_time is the first record's time base, so within a chunk every time
// delta is small.
func (c *chunk) encodeTo(buf []byte) []byte {
	start := len(buf)
	buf = appendBody(buf, c)
	c.body = buf[start:len(buf):len(buf)]
	return buf
}

// appendBody appends c's body to buf.
func appendBody(buf []byte, c *chunk) []byte {
	buf = append(buf, chunkVersion)
	prevSeq, prevTime := c.first, c.minTime
	for _, r := range c.recs {
		buf = binary.AppendUvarint(buf, uint64(r.seq-prevSeq))
		buf = binary.AppendVarint(buf, r.time-prevTime)
		buf = binary.AppendUvarint(buf, uint64(len(r.data)))
		buf = append(buf, r.data...)
		prevSeq, prevTime = r.seq, r.time
	}
	return buf
}

var errChunk = errors.New("damaged chunk")

// decodeBody decodes a chunk row's body, checking it against the row's
// columns: n records, seqs strictly increasing from first to last, times
// within [minTime, maxTime]. Data slices alias body. It must never panic,
// whatever body holds (FuzzChunkBody): it decodes what the database
// returns, which a bug, an operator or a damaged disk may have changed.
func decodeBody(body []byte, first, last int64, n int, minTime, maxTime int64) ([]chunkRec, error) {
	if len(body) < 1 || body[0] != chunkVersion {
		return nil, fmt.Errorf("%w: unknown body version", errChunk)
	}
	if first > last || minTime > maxTime {
		return nil, fmt.Errorf("%w: seqs %d-%d, times %d-%d", errChunk, first, last, minTime, maxTime)
	}
	if n < 1 || n > len(body) {
		return nil, fmt.Errorf("%w: %d records in %d bytes", errChunk, n, len(body))
	}
	// A record takes at least 3 bytes, so that bounds what a damaged n
	// can make this allocate.
	out := make([]chunkRec, 0, min(n, len(body)/3))
	b := body[1:]
	seq, tm := first, minTime
	for len(b) > 0 {
		ds, k := binary.Uvarint(b)
		if k <= 0 || (len(out) > 0) != (ds > 0) || ds > uint64(last-seq) {
			return nil, fmt.Errorf("%w: record %d: bad seq", errChunk, len(out))
		}
		b = b[k:]
		dt, k := binary.Varint(b)
		if k <= 0 {
			return nil, fmt.Errorf("%w: record %d: bad time", errChunk, len(out))
		}
		b = b[k:]
		// Both times are in [minTime, maxTime] once checked, so a delta
		// outside the span is damage, and checking it first keeps the
		// addition from overflowing.
		if dt < minTime-maxTime || dt > maxTime-minTime {
			return nil, fmt.Errorf("%w: record %d: time out of range", errChunk, len(out))
		}
		dl, k := binary.Uvarint(b)
		if k <= 0 || dl > uint64(len(b)-k) {
			return nil, fmt.Errorf("%w: record %d: bad data length", errChunk, len(out))
		}
		b = b[k:]
		seq += int64(ds)
		tm += dt
		if tm < minTime || tm > maxTime {
			return nil, fmt.Errorf("%w: record %d: time out of range", errChunk, len(out))
		}
		r := chunkRec{seq: seq, time: tm}
		if dl > 0 {
			r.data = b[:dl:dl]
		}
		b = b[dl:]
		if len(out) == n {
			return nil, fmt.Errorf("%w: more than %d records", errChunk, n)
		}
		out = append(out, r)
	}
	if len(out) != n || seq != last {
		return nil, fmt.Errorf("%w: %d records ending at %d, want %d ending at %d", errChunk, len(out), seq, n, last)
	}
	return out, nil
}

// chunkColumns are selected in this order wherever chunks are read.
const chunkColumns = "stream, first_seq, last_seq, n, min_time, max_time, kind, fields, body"

// storedChunk is a chunk row as read, decoded.
type storedChunk struct {
	stream  string
	first   int64
	last    int64
	minTime time.Time
	maxTime time.Time
	kind    string
	fields  map[string]string
	recs    []chunkRec
}

// scanner is what pgx.Rows and pgx.Row have in common.
type scanner interface{ Scan(dest ...any) error }

// scanChunk reads one row of chunkColumns and decodes its body.
func scanChunk(s scanner) (storedChunk, error) {
	var (
		c      storedChunk
		n      int32
		fields []byte
		body   []byte
	)
	if err := s.Scan(&c.stream, &c.first, &c.last, &n, &c.minTime, &c.maxTime, &c.kind, &fields, &body); err != nil {
		return c, fmt.Errorf("scan chunk: %w", err)
	}
	// pgx returns times in the local zone; history times are UTC.
	c.minTime, c.maxTime = c.minTime.UTC(), c.maxTime.UTC()
	var err error
	if c.recs, err = decodeBody(body, c.first, c.last, int(n), c.minTime.UnixMicro(), c.maxTime.UnixMicro()); err != nil {
		return c, fmt.Errorf("chunk %s/%d: %w", c.stream, c.first, err)
	}
	if len(fields) > 2 { // not "{}"
		if c.fields, err = decodeFields(fields); err != nil {
			return c, fmt.Errorf("decode fields of chunk %s/%d: %w", c.stream, c.first, err)
		}
	}
	return c, nil
}

// record returns the chunk's i-th record. Records of one chunk share its
// Fields map: callers get records to read, and history.Record's Fields is
// never changed in place by this package or its users.
func (c *storedChunk) record(i int) history.Record {
	r := c.recs[i]
	return history.Record{Stream: c.stream, Seq: uint64(r.seq), Time: time.UnixMicro(r.time).UTC(), Kind: c.kind, Fields: c.fields, Data: r.data}
}
