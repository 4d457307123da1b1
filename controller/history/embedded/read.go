package embedded

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strings"

	"go.etcd.io/bbolt"

	"github.com/opsconductor/opsconductor/controller/history"
	"github.com/opsconductor/opsconductor/controller/problem"
)

// seekBefore moves c to the last key strictly before key.
func seekBefore(c *bbolt.Cursor, key []byte) ([]byte, []byte) {
	if k, _ := c.Seek(key); k == nil {
		return c.Last()
	}
	return c.Prev()
}

// seekChunk moves c to the first chunk of the stream prefix that holds a
// seq of at least seq: the chunk starting at or before seq if it reaches
// that far, else the first chunk after. The key it returns may belong to
// another stream or be nil; the caller checks.
func seekChunk(c *bbolt.Cursor, prefix []byte, seq uint64) ([]byte, []byte) {
	key := binary.BigEndian.AppendUint64(append(make([]byte, 0, len(prefix)+seqLen), prefix...), seq)
	k, v := c.Seek(key)
	if k != nil && bytes.Equal(k, key) {
		return k, v
	}
	if k == nil {
		k, v = c.Last()
	} else {
		k, v = c.Prev()
	}
	if isChunkOf(k, prefix) {
		if last, ok := chunkLast(v); !ok || last >= seq {
			// A chunk with a bad header is returned for decodeChunk to
			// report.
			return k, v
		}
	}
	return c.Seek(key)
}

// isChunkOf reports whether k is a chunk key of the stream prefix.
func isChunkOf(k, prefix []byte) bool {
	return len(k) == len(prefix)+seqLen && bytes.HasPrefix(k, prefix)
}

// Read returns records of one stream with from <= Seq <= to, in order.
func (s *Store) Read(ctx context.Context, stream string, from, to uint64, limit int) ([]history.Record, error) {
	if err := checkRead(stream, limit); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	var out []history.Record
	err := s.view(func(tx *bbolt.Tx) error {
		out = out[:0]
		prefix := streamPrefix(stream)
		c := tx.Bucket(bucketRecords).Cursor()
		var recs []chunkRec
		var in interner
		// No stream contains NUL, so the prefix holds only this stream's
		// chunks.
		for k, v := seekChunk(c, prefix, from); isChunkOf(k, prefix) && len(out) < limit; k, v = c.Next() {
			var err error
			if recs, err = decodeChunk(recs[:0], k, v); err != nil {
				return err
			}
			for _, cr := range recs {
				if cr.seq < from {
					continue
				}
				if cr.seq > to || len(out) == limit {
					return nil
				}
				r, err := decodeRecord(stream, cr, &in)
				if err != nil {
					return err
				}
				out = append(out, r)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", stream, err)
	}
	return out, nil
}

// Tail returns the last n records of a stream, in sequence order.
func (s *Store) Tail(ctx context.Context, stream string, n int) ([]history.Record, error) {
	if err := checkRead(stream, n); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("tail: %w", err)
	}
	var out []history.Record
	err := s.view(func(tx *bbolt.Tx) error {
		out = make([]history.Record, 0, min(n, 1000))
		prefix := streamPrefix(stream)
		c := tx.Bucket(bucketRecords).Cursor()
		var recs []chunkRec
		var in interner
		for k, v := seekBefore(c, prefixEnd(prefix)); isChunkOf(k, prefix) && len(out) < n; k, v = c.Prev() {
			var err error
			if recs, err = decodeChunk(recs[:0], k, v); err != nil {
				return err
			}
			for i := len(recs) - 1; i >= 0 && len(out) < n; i-- {
				r, err := decodeRecord(stream, recs[i], &in)
				if err != nil {
					return err
				}
				out = append(out, r)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("tail %s: %w", stream, err)
	}
	slices.Reverse(out)
	return out, nil
}

// recordReader finds records by stream id and seq, as postings name them,
// within one transaction. It keeps the names and chunks it has looked up.
type recordReader struct {
	b      buckets
	c      *bbolt.Cursor
	names  map[uint64]string
	chunks map[string][]chunkRec
}

func newRecordReader(b buckets) *recordReader {
	return &recordReader{b: b, c: b.records.Cursor(), names: make(map[uint64]string), chunks: make(map[string][]chunkRec)}
}

func (rr *recordReader) name(sid uint64) (string, error) {
	if n, ok := rr.names[sid]; ok {
		return n, nil
	}
	v := rr.b.streamIDs.Get(binary.BigEndian.AppendUint64(nil, sid))
	if v == nil {
		return "", fmt.Errorf("%w: no stream has id %d", errCorrupt, sid)
	}
	rr.names[sid] = string(v)
	return string(v), nil
}

// get returns the chunk entry of (stream, seq), which must exist.
func (rr *recordReader) get(stream string, seq uint64) (chunkRec, error) {
	prefix := streamPrefix(stream)
	k, v := seekChunk(rr.c, prefix, seq)
	if !isChunkOf(k, prefix) {
		return chunkRec{}, fmt.Errorf("%w: %s/%d is indexed but not stored", errCorrupt, stream, seq)
	}
	recs, ok := rr.chunks[string(k)]
	if !ok {
		if len(rr.chunks) >= 4096 {
			clear(rr.chunks)
		}
		var err error
		if recs, err = decodeChunk(nil, k, v); err != nil {
			return chunkRec{}, err
		}
		rr.chunks[string(k)] = recs
	}
	i, found := slices.BinarySearchFunc(recs, seq, func(r chunkRec, seq uint64) int { return cmp.Compare(r.seq, seq) })
	if !found {
		return chunkRec{}, fmt.Errorf("%w: %s/%d is indexed but not stored", errCorrupt, stream, seq)
	}
	return recs[i], nil
}

// checkRead is history.CheckRead plus what this layout needs and CheckRead
// lets through: a stream with a NUL, which no stored record has (Validate
// refuses it), would read as the end of a stream name in a key and match
// another stream's records.
func checkRead(stream string, limit int) error {
	if err := history.CheckRead(stream, limit); err != nil {
		return err
	}
	if strings.ContainsRune(stream, 0) {
		return problem.Invalid("stream", "must not contain NUL")
	}
	return nil
}

// checkQuery is history.CheckQuery plus, for the same reason as checkRead,
// the rules Validate sets for kinds and fields: no NUL, no '=' in a key.
func checkQuery(q history.Query) error {
	if err := history.CheckQuery(q); err != nil {
		return err
	}
	var l problem.List
	if strings.ContainsRune(q.Kind, 0) {
		l.Add("kind", "must not contain NUL")
	}
	for k, v := range q.Fields {
		if k == "" || strings.ContainsAny(k, "\x00=") || strings.ContainsRune(v, 0) {
			l.Add("fields", "field %q: keys must be non-empty without '=', keys and values without NUL", k)
		}
	}
	return l.Err()
}

// named is a posting with its stream's name, in Query's order.
type named struct {
	stream string
	seq    uint64
}

func (a named) compare(b named) int {
	return cmp.Or(strings.Compare(a.stream, b.stream), cmp.Compare(a.seq, b.seq))
}

// Query returns one page of records of a kind, newest first by (Time,
// Stream, Seq). It walks the smallest index among the kind's and the
// queried fields' (their sizes are kept in fieldcounts) and checks the
// other fields on each record it finds there.
//
// Postings order the records of one instant by stream id, not name, so the
// walk takes one instant's postings at a time and sorts them by name.
func (s *Store) Query(ctx context.Context, q history.Query) (history.Page, error) {
	if err := checkQuery(q); err != nil {
		return history.Page{}, err
	}
	var after []byte
	if q.Cursor != "" {
		pos, err := decodeCursor(q.Cursor)
		if err != nil {
			return history.Page{}, problem.Invalid("cursor", "is not a cursor from this store: %v", err)
		}
		after = pos
	}
	if err := ctx.Err(); err != nil {
		return history.Page{}, fmt.Errorf("query: %w", err)
	}
	// The walk starts below the smaller of Until and the cursor's instant,
	// and within the cursor's instant after the cursor.
	var upper *posting
	if !q.Until.IsZero() {
		upper = &posting{time: boundKey(q.Until)}
	}
	var cursorTime uint64
	var cursor named
	if after != nil {
		cursorTime = binary.BigEndian.Uint64(after)
		stream, seq, _ := splitRecordKey(after[timeKeyLen:])
		cursor = named{string(stream), seq}
		if cursorTime != math.MaxUint64 && (upper == nil || cursorTime+1 < upper.time) {
			upper = &posting{time: cursorTime + 1}
		}
	}
	var since uint64
	if !q.Since.IsZero() {
		since = boundKey(q.Since)
	}
	var page history.Page
	err := s.view(func(tx *bbolt.Tx) error {
		page = history.Page{}
		b := bucketsOf(tx)
		prefix, others, empty := chooseIndex(b.fieldCounts, q)
		if empty {
			return nil
		}
		rr := newRecordReader(b)
		it := postingIter{c: b.byField.Cursor(), prefix: prefix}
		it.seekBelow(upper)
		var last []byte
		var instant []named
		var in interner
		p, ok := it.prev()
		for ok && p.time >= since {
			t := p.time
			instant = instant[:0]
			for ; ok && p.time == t; p, ok = it.prev() {
				name, err := rr.name(p.sid)
				if err != nil {
					return err
				}
				instant = append(instant, named{name, p.seq})
			}
			slices.SortFunc(instant, func(a, b named) int { return b.compare(a) })
			for _, n := range instant {
				if after != nil && t == cursorTime && n.compare(cursor) >= 0 {
					continue
				}
				cr, err := rr.get(n.stream, n.seq)
				if err != nil {
					return err
				}
				if len(others) > 0 && !hasFields(cr.head, others) {
					continue
				}
				if len(page.Records) == q.Limit {
					// One more match exists, so this page is not the last.
					page.Next = encodeCursor(last)
					return nil
				}
				r, err := decodeRecord(n.stream, cr, &in)
				if err != nil {
					return err
				}
				page.Records = append(page.Records, r)
				last = appendPos(last[:0], t, n.stream, n.seq)
				if len(page.Records)%1024 == 0 {
					if err := ctx.Err(); err != nil {
						return err
					}
				}
			}
		}
		return it.err
	})
	if err != nil {
		return history.Page{}, fmt.Errorf("query %s: %w", q.Kind, err)
	}
	return page, nil
}

// chooseIndex picks the byfield prefix to walk for q: the kind's when q has
// no fields, else the field with the fewest entries. The other fields are
// returned to check each candidate against. empty reports that some field
// has no entries at all, so nothing can match.
func chooseIndex(counts *bbolt.Bucket, q history.Query) (prefix []byte, others [][2]string, empty bool) {
	if len(q.Fields) == 0 {
		return kindPrefix(q.Kind), nil, false
	}
	best := int64(-1)
	var bestField [2]string
	for k, v := range q.Fields {
		p := fieldPrefix(q.Kind, k, v)
		n := getUint(counts, p)
		if n == 0 {
			return nil, nil, true
		}
		if best < 0 || n < best {
			if prefix != nil {
				others = append(others, bestField)
			}
			prefix, best, bestField = p, n, [2]string{k, v}
		} else {
			others = append(others, [2]string{k, v})
		}
	}
	return prefix, others, false
}

// hasFields reports whether a record's head has every field of want,
// without decoding the record.
func hasFields(head []byte, want [][2]string) bool {
	d := decoder{b: head}
	d.bytes()
	n := d.uvarint()
	found := 0
	for i := uint64(0); i < n && d.err == nil; i++ {
		k, v := d.bytes(), d.bytes()
		for _, w := range want {
			if string(k) == w[0] {
				if string(v) != w[1] {
					return false
				}
				found++
			}
		}
	}
	return d.err == nil && found == len(want)
}

// Stats reports how many records the store holds, their logical size (see
// logicalSize) and the oldest record's time.
func (s *Store) Stats(ctx context.Context) (history.Stats, error) {
	if err := ctx.Err(); err != nil {
		return history.Stats{}, fmt.Errorf("stats: %w", err)
	}
	var st history.Stats
	err := s.view(func(tx *bbolt.Tx) error {
		b := bucketsOf(tx)
		st.Records = getUint(b.meta, metaRecords)
		st.Bytes = getUint(b.meta, metaBytes)
		t, ok, err := oldest(b.byField)
		if ok {
			st.Oldest = timeOf(t)
		}
		return err
	})
	if err != nil {
		return history.Stats{}, fmt.Errorf("stats: %w", err)
	}
	return st, nil
}
