package embedded

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/opsconductor/opsconductor/controller/history"
)

// Keys. Every index entry ends with the record's position,
//
//	pos = time(8) stream 0x00 seq(8)
//
// and the records bucket is keyed by the tail of it, stream 0x00 seq(8).
// Streams, kinds and field keys and values never contain NUL
// (history.Record.Validate), so 0x00 ends a variable-length part without
// escaping, and byte order of a key is the order of its parts: the stream
// "a" sorts before "ab" because 0x00 sorts before every other byte.
//
// Time is Unix microseconds with the sign bit flipped, so that times before
// 1970 sort first, big-endian. Microseconds are what the contract keeps
// (history.Record.Time, PostgreSQL's precision), and Validate's years 1-9999
// fit an int64 of them many times over.
//
// The indexes store time ascending, not inverted: Query walks them backwards
// with a bbolt cursor, which yields exactly (Time desc, Stream desc, Seq
// desc). Inverting the time alone would leave stream and seq ascending
// within one instant, and a variable-length stream cannot be inverted.
const (
	timeKeyLen = 8
	seqLen     = 8
	// minPosLen is a position with a one-byte stream.
	minPosLen = timeKeyLen + 1 + 1 + seqLen
)

// appendTimeKey appends t's key, truncated to the microsecond. t must be
// within Validate's years (boundKey clamps a bound first).
func appendTimeKey(dst []byte, t time.Time) []byte {
	return binary.BigEndian.AppendUint64(dst, uint64(t.UnixMicro())^(1<<63))
}

func parseTimeKey(k []byte) (time.Time, bool) {
	if len(k) < timeKeyLen {
		return time.Time{}, false
	}
	return time.UnixMicro(int64(binary.BigEndian.Uint64(k) ^ (1 << 63))).UTC(), true
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
func boundKey(t time.Time) []byte {
	switch {
	case t.Before(minBound):
		t = minBound
	case t.After(maxBound):
		t = maxBound
	}
	if tr := t.Truncate(time.Microsecond); !tr.Equal(t) {
		t = tr.Add(time.Microsecond)
	}
	return appendTimeKey(nil, t)
}

func appendRecordKey(dst []byte, stream string, seq uint64) []byte {
	dst = append(dst, stream...)
	dst = append(dst, 0)
	return binary.BigEndian.AppendUint64(dst, seq)
}

// streamPrefix is the part of a records key shared by a whole stream.
func streamPrefix(stream string) []byte {
	return append([]byte(stream), 0)
}

func parseRecordKey(k []byte) (stream string, seq uint64, ok bool) {
	b, seq, ok := splitRecordKey(k)
	return string(b), seq, ok
}

// splitRecordKey is parseRecordKey without copying the stream.
func splitRecordKey(k []byte) (stream []byte, seq uint64, ok bool) {
	sep := len(k) - seqLen - 1
	if sep < 1 || k[sep] != 0 || bytes.IndexByte(k[:sep], 0) >= 0 {
		return nil, 0, false
	}
	return k[:sep], binary.BigEndian.Uint64(k[sep+1:]), true
}

// validPos reports whether p is a well-formed position.
func validPos(p []byte) bool {
	if len(p) < minPosLen {
		return false
	}
	_, _, ok := splitRecordKey(p[timeKeyLen:])
	return ok
}

// kindPrefix heads the byfield entries that list every record of a kind.
// Its empty field part cannot collide with a field's, since field keys are
// never empty.
func kindPrefix(kind string) []byte {
	return append([]byte(kind), 0, 0)
}

// fieldPrefix heads the byfield entries of records of kind whose field k is v.
// It also keys that index's size in the fieldcounts bucket.
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

// recordFormatV1 is the first byte of every stored record. A new format gets
// a new number, and decodeRecord keeps reading the old ones.
const recordFormatV1 = 1

// encodeRecord appends r's stored form to dst. Stream and Seq are in the key
// and not repeated; Time is kept to the microsecond (truncated), as the
// contract says; fields are sorted so that the encoding is deterministic.
//
//	0x01 uvarint(len kind) kind varint(unix microseconds)
//	uvarint(number of fields) { uvarint(len key) key uvarint(len value) value }
//	uvarint(len data) data
func encodeRecord(dst []byte, r history.Record) []byte {
	dst = append(dst, recordFormatV1)
	dst = appendString(dst, r.Kind)
	dst = binary.AppendVarint(dst, r.Time.UnixMicro())
	dst = binary.AppendUvarint(dst, uint64(len(r.Fields)))
	keys := make([]string, 0, len(r.Fields))
	for k := range r.Fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		dst = appendString(dst, k)
		dst = appendString(dst, r.Fields[k])
	}
	dst = binary.AppendUvarint(dst, uint64(len(r.Data)))
	return append(dst, r.Data...)
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

var errCorrupt = errors.New("corrupt record")

// decodeRecord rebuilds a record from its records-bucket key and value. The
// result shares no memory with key or val, which bbolt only lends for the
// life of a transaction. It must never panic, whatever the bytes.
func decodeRecord(key, val []byte) (history.Record, error) {
	stream, seq, ok := parseRecordKey(key)
	if !ok {
		return history.Record{}, fmt.Errorf("%w: malformed key %q", errCorrupt, key)
	}
	if len(val) == 0 {
		return history.Record{}, fmt.Errorf("%w: empty", errCorrupt)
	}
	if val[0] != recordFormatV1 {
		return history.Record{}, fmt.Errorf("%w: unknown format %d", errCorrupt, val[0])
	}
	d := decoder{b: val[1:]}
	r := history.Record{Stream: stream, Seq: seq}
	r.Kind = d.string()
	r.Time = time.UnixMicro(d.varint()).UTC()
	n := d.uvarint()
	// Each field takes at least two bytes; bounding n by what is left keeps
	// a corrupt count from allocating a huge map.
	if d.err == nil && n > uint64(len(d.b))/2 {
		d.fail("field count exceeds the record")
	}
	if d.err == nil && n > 0 {
		r.Fields = make(map[string]string, n)
		for range n {
			k := d.string()
			v := d.string()
			if d.err != nil {
				break
			}
			r.Fields[k] = v
		}
	}
	if data := d.bytes(); len(data) > 0 {
		r.Data = bytes.Clone(data)
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing bytes")
	}
	if d.err != nil {
		return history.Record{}, fmt.Errorf("%w %s/%d: %s", errCorrupt, stream, seq, d.err)
	}
	return r, nil
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

func (d *decoder) string() string {
	return string(d.bytes())
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
