package embedded

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/opsconductor/opsconductor/controller/history"
)

// Times. A stored time is Unix microseconds with the sign bit flipped, so
// that times before 1970 sort first, as a uint64 and big-endian in keys.
// Microseconds are what the contract keeps (history.Record.Time,
// PostgreSQL's precision), and Validate's years 1-9999 fit an int64 of them
// many times over.
const (
	timeKeyLen = 8
	seqLen     = 8
	// minPosLen is a position (a cursor's content) with a one-byte stream.
	minPosLen = timeKeyLen + 1 + 1 + seqLen
)

// timeKey is t's stored form, truncated to the microsecond. t must be
// within Validate's years (boundKey clamps a bound first).
func timeKey(t time.Time) uint64 {
	return uint64(t.UnixMicro()) ^ (1 << 63)
}

func timeOf(k uint64) time.Time {
	return time.UnixMicro(int64(k ^ (1 << 63))).UTC()
}

func appendTimeKey(dst []byte, t time.Time) []byte {
	return binary.BigEndian.AppendUint64(dst, timeKey(t))
}

// Bounds are clamped to this range, which holds every storable time and
// whose microseconds fit an int64.
var (
	minBound = time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)
	maxBound = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
)

// boundKey is the key to compare stored times with a bound t (Since, Until,
// DeleteBefore's cut-off) exactly. Stored times are whole microseconds, and
// for a whole microsecond x, x >= t iff x >= ceil(t) and x < t iff
// x < ceil(t), so the bound is rounded up rather than truncated.
func boundKey(t time.Time) uint64 {
	switch {
	case t.Before(minBound):
		t = minBound
	case t.After(maxBound):
		t = maxBound
	}
	if tr := t.Truncate(time.Microsecond); !tr.Equal(t) {
		t = tr.Add(time.Microsecond)
	}
	return timeKey(t)
}

// Chunk keys: stream 0x00 seq(8), the stream's name and the seq of the
// chunk's first record. Streams, kinds and field keys and values never
// contain NUL (history.Record.Validate), so 0x00 ends a variable-length
// part without escaping, and byte order of a key is the order of its parts:
// the stream "a" sorts before "ab" because 0x00 sorts before every other
// byte.
func appendRecordKey(dst []byte, stream string, seq uint64) []byte {
	dst = append(dst, stream...)
	dst = append(dst, 0)
	return binary.BigEndian.AppendUint64(dst, seq)
}

// streamPrefix is the part of a chunk key shared by a whole stream.
func streamPrefix(stream string) []byte {
	return append([]byte(stream), 0)
}

// splitRecordKey returns a chunk key's stream, without copying, and seq.
func splitRecordKey(k []byte) (stream []byte, seq uint64, ok bool) {
	sep := len(k) - seqLen - 1
	if sep < 1 || k[sep] != 0 || bytes.IndexByte(k[:sep], 0) >= 0 {
		return nil, 0, false
	}
	return k[:sep], binary.BigEndian.Uint64(k[sep+1:]), true
}

// A position names a record in the order queries return them:
//
//	pos = time(8) stream 0x00 seq(8)
//
// Cursors carry one; the indexes hold postings instead (postings.go),
// which name the stream by its id.
func appendPos(dst []byte, t uint64, stream string, seq uint64) []byte {
	dst = binary.BigEndian.AppendUint64(dst, t)
	return appendRecordKey(dst, stream, seq)
}

// validPos reports whether p is a well-formed position.
func validPos(p []byte) bool {
	if len(p) < minPosLen {
		return false
	}
	_, _, ok := splitRecordKey(p[timeKeyLen:])
	return ok
}

// kindPrefix heads the byfield leaves that list every record of a kind.
// Its empty field part cannot collide with a field's, since field keys are
// never empty.
func kindPrefix(kind string) []byte {
	return append([]byte(kind), 0, 0)
}

// fieldPrefix heads the byfield leaves of records of kind whose field k is
// v. It also keys that index's size in the fieldcounts bucket.
func fieldPrefix(kind, k, v string) []byte {
	b := make([]byte, 0, len(kind)+len(k)+len(v)+3)
	b = append(b, kind...)
	b = append(b, 0)
	b = append(b, k...)
	b = append(b, '=')
	b = append(b, v...)
	return append(b, 0)
}

// prefixEnd is the smallest key after every key that starts with prefix.
// Every prefix here ends in 0x00, so bumping that byte is enough.
func prefixEnd(prefix []byte) []byte {
	end := bytes.Clone(prefix)
	end[len(end)-1]++
	return end
}

// A record is stored in its chunk as its seq, its time, its head (kind
// and fields) and its data. The head is encoded as
//
//	uvarint(len kind) kind uvarint(number of fields)
//	{ uvarint(len key) key uvarint(len value) value }
//
// with fields sorted by key (see sortedFields), so that equal heads are
// equal bytes, which the chunk then stores once for a run of records.
func appendHead(dst []byte, kind string, fields [][2]string) []byte {
	dst = appendString(dst, kind)
	dst = binary.AppendUvarint(dst, uint64(len(fields)))
	for _, f := range fields {
		dst = appendString(dst, f[0])
		dst = appendString(dst, f[1])
	}
	return dst
}

// sortedFields returns r's fields sorted by key.
func sortedFields(r history.Record) [][2]string {
	fs := make([][2]string, 0, len(r.Fields))
	for k, v := range r.Fields {
		fs = append(fs, [2]string{k, v})
	}
	slices.SortFunc(fs, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
	return fs
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

var errCorrupt = errors.New("corrupt record")

// decodeRecord rebuilds the record (stream, cr.seq) from its chunk entry.
// The result shares no memory with cr, which bbolt only lends for the life
// of a transaction. It must never panic, whatever the bytes.
func decodeRecord(stream string, cr chunkRec, in *interner) (history.Record, error) {
	r := history.Record{Stream: stream, Seq: cr.seq, Time: time.UnixMicro(cr.time).UTC()}
	if in != nil && in.head != nil && bytes.Equal(cr.head, in.head) {
		// The previous record's head, as a chunk's records mostly repeat.
		r.Kind = in.kind
		if len(in.fields) > 0 {
			r.Fields = make(map[string]string, len(in.fields))
			for _, f := range in.fields {
				r.Fields[f[0]] = f[1]
			}
		}
		if len(cr.data) > 0 {
			r.Data = bytes.Clone(cr.data)
		}
		return r, nil
	}
	d := decoder{b: cr.head}
	r.Kind = in.string(d.bytes())
	n := d.uvarint()
	// Each field takes at least two bytes; bounding n by what is left keeps
	// a corrupt count from allocating a huge map.
	if d.err == nil && n > uint64(len(d.b))/2 {
		d.fail("field count exceeds the record")
	}
	if d.err == nil && n > 0 {
		r.Fields = make(map[string]string, n)
		for range n {
			k := in.string(d.bytes())
			v := in.string(d.bytes())
			if d.err != nil {
				break
			}
			r.Fields[k] = v
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing bytes")
	}
	if d.err != nil {
		return history.Record{}, fmt.Errorf("%w %s/%d: %s", errCorrupt, stream, cr.seq, d.err)
	}
	if in != nil {
		in.head, in.kind, in.fields = cr.head, r.Kind, in.fields[:0]
		for k, v := range r.Fields {
			in.fields = append(in.fields, [2]string{k, v})
		}
	}
	if len(cr.data) > 0 {
		r.Data = bytes.Clone(cr.data)
	}
	return r, nil
}

// chunkFormatV1 is the first byte of every chunk.
const chunkFormatV1 = 1

// A chunk holds records of one stream with increasing seqs, keyed by the
// stream and its first seq (appendRecordKey):
//
//	0x01 last seq(8) { uvarint(seq - previous seq) uvarint(len rest) rest }
//	rest = varint(time - previous time) uvarint(0 | len head + 1) [head] data
//
// Times are Unix microseconds. The first record's seq delta is from the
// key's seq, so it is 0, and its time delta from 0. A head length of 0
// means the previous record's head, so a stream whose records share kind
// and fields stores them once a chunk; with the time deltas that takes a
// 100-byte record from about 150 bytes to about 105. The last seq is also
// in the header so that an append can tell whether its records overlap
// the chunk without decoding it.
type chunkRec struct {
	seq  uint64
	time int64 // Unix microseconds
	head []byte
	data []byte
}

// recLen is what cr takes in a chunk after prev, nil for the chunk's
// first record: in all and after its length; and whether it repeats prev's
// head.
func recLen(cr, prev *chunkRec) (n, rest int, same bool) {
	base := chunkRec{seq: cr.seq}
	if prev != nil {
		base, same = *prev, bytes.Equal(cr.head, prev.head)
	}
	rest = varintLen(cr.time-base.time) + 1 + len(cr.data)
	if !same {
		rest += uvarintLen(uint64(len(cr.head))+1) - 1 + len(cr.head)
	}
	return uvarintLen(cr.seq-base.seq) + uvarintLen(uint64(rest)) + rest, rest, same
}

func varintLen(v int64) int {
	return uvarintLen(uint64(v<<1) ^ uint64(v>>63))
}

func encodeChunk(dst []byte, recs []chunkRec) []byte {
	dst = append(dst, chunkFormatV1)
	dst = binary.BigEndian.AppendUint64(dst, recs[len(recs)-1].seq)
	var prev *chunkRec
	base := chunkRec{seq: recs[0].seq}
	for i := range recs {
		cr := &recs[i]
		_, rest, same := recLen(cr, prev)
		dst = binary.AppendUvarint(dst, cr.seq-base.seq)
		dst = binary.AppendUvarint(dst, uint64(rest))
		dst = binary.AppendVarint(dst, cr.time-base.time)
		if same {
			dst = append(dst, 0)
		} else {
			dst = binary.AppendUvarint(dst, uint64(len(cr.head))+1)
			dst = append(dst, cr.head...)
		}
		dst = append(dst, cr.data...)
		prev, base = cr, *cr
	}
	return dst
}

// chunkHeaderLen is the format byte and the last seq.
const chunkHeaderLen = 1 + seqLen

// chunkLast returns a chunk's last seq from its header.
func chunkLast(val []byte) (uint64, bool) {
	if len(val) < chunkHeaderLen || val[0] != chunkFormatV1 {
		return 0, false
	}
	return binary.BigEndian.Uint64(val[1:]), true
}

// decodeChunk splits a chunk into its records, appending them to dst; their
// heads and data point into val. It checks what the layout promises: seqs
// increasing from the key's to the header's. It must never panic, whatever
// the bytes.
func decodeChunk(dst []chunkRec, key, val []byte) ([]chunkRec, error) {
	stream, first, ok := splitRecordKey(key)
	if !ok {
		return dst, fmt.Errorf("%w: malformed chunk key %q", errCorrupt, key)
	}
	last, ok := chunkLast(val)
	if !ok {
		return dst, fmt.Errorf("%w: chunk %s/%d has no header", errCorrupt, stream, first)
	}
	d := decoder{b: val[chunkHeaderLen:]}
	prev := chunkRec{seq: first}
	for n := 0; d.err == nil && len(d.b) > 0; n++ {
		delta := d.uvarint()
		rest := decoder{b: d.bytes()}
		td := rest.varint()
		h := rest.uvarint()
		cr := chunkRec{seq: prev.seq + delta, time: prev.time + td, head: prev.head}
		switch {
		case d.err != nil || rest.err != nil:
			d.fail("bad record")
		case n == 0 && delta != 0, n > 0 && delta == 0, cr.seq < prev.seq, cr.seq > last:
			d.fail("seqs out of order")
		case h == 0 && n == 0:
			d.fail("first record repeats a head")
		case h > uint64(len(rest.b))+1:
			d.fail("head exceeds the record")
		default:
			if h > 0 {
				cr.head, rest.b = rest.b[:h-1], rest.b[h-1:]
			}
			cr.data = rest.b
			dst = append(dst, cr)
			prev = cr
		}
	}
	if d.err == nil && (prev.seq != last || len(d.b) != 0) {
		d.fail("last seq does not match")
	}
	if d.err == nil && len(dst) == 0 {
		d.fail("empty")
	}
	if d.err != nil {
		return dst, fmt.Errorf("%w: chunk %s/%d: %s", errCorrupt, stream, first, d.err)
	}
	return dst, nil
}

// interner hands out strings for the kinds and fields of the records one
// read decodes, reusing the recent ones: a stream's records mostly repeat
// them, and a string each would be most of what decoding allocates. The
// nil interner allocates every string.
type interner struct {
	recent [8]string
	next   int
	// The last head decoded, to skip decoding it again. head points into
	// the transaction's memory and is only compared, never returned.
	head   []byte
	kind   string
	fields [][2]string
}

func (in *interner) string(b []byte) string {
	if in == nil {
		return string(b)
	}
	for _, s := range in.recent {
		if s == string(b) {
			return s
		}
	}
	s := string(b)
	in.recent[in.next] = s
	in.next = (in.next + 1) % len(in.recent)
	return s
}

// decoder reads a record's parts; the first failure sticks, and every later
// read returns zero values.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(msg string) {
	if d.err == nil {
		d.err = errors.New(msg)
	}
	d.b = nil
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad uvarint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail("length exceeds the record")
		return nil
	}
	out := d.b[:n]
	d.b = d.b[n:]
	return out
}

// cursorV1 heads every cursor. A cursor is the position of the last record
// of a page; it does not name the index the page was read from, so it stays
// valid when the next page picks another (every index of a kind orders by
// position) and when records are deleted in between.
const cursorV1 = 1

func encodeCursor(pos []byte) string {
	return base64.RawURLEncoding.EncodeToString(append([]byte{cursorV1}, pos...))
}

// decodeCursor returns the position a cursor holds. Cursors come from
// clients, so it must never panic, whatever the string.
func decodeCursor(s string) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("not base64: %w", err)
	}
	if len(b) == 0 || b[0] != cursorV1 {
		return nil, errors.New("unknown cursor version")
	}
	if !validPos(b[1:]) {
		return nil, errors.New("malformed position")
	}
	return b[1:], nil
}
