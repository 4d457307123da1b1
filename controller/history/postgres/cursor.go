package postgres

import (
	"encoding/base64"
	"encoding/binary"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/opsconductor/opsconductor/controller/history"
	"github.com/opsconductor/opsconductor/controller/problem"
)

// cursor is the position of the last record of a page in Query's order
// (time, stream, seq), newest first. The next page starts strictly after it.
//
// On the wire it is base64url (no padding, strict) of
//
//	version (1 byte, 1) | time, Unix µs (8 bytes) | seq (8 bytes) | stream
//
// with integers big-endian. It is opaque to callers; the version byte lets
// a later layout coexist with cursors handed out before an upgrade.
type cursor struct {
	time   time.Time
	stream string
	seq    uint64
}

const (
	cursorVersion   = 1
	cursorHeaderLen = 1 + 8 + 8
)

// cursorEncoding is strict so that every cursor has exactly one spelling:
// decode(encode(c)) == c and encode(decode(s)) == s.
var cursorEncoding = base64.RawURLEncoding.Strict()

func (c cursor) encode() string {
	b := make([]byte, cursorHeaderLen, cursorHeaderLen+len(c.stream))
	b[0] = cursorVersion
	binary.BigEndian.PutUint64(b[1:], uint64(c.time.UnixMicro()))
	binary.BigEndian.PutUint64(b[9:], c.seq)
	b = append(b, c.stream...)
	return cursorEncoding.EncodeToString(b)
}

// decodeCursor parses a cursor from outside; whatever is wrong with it is
// the caller's fault, so every failure is an invalid-input problem on
// "cursor". It must never panic (FuzzCursor).
func decodeCursor(s string) (cursor, error) {
	// A stream is at most MaxStreamLen bytes, so a longer cursor cannot be
	// ours; refuse it before decoding an arbitrary amount of input.
	// The decoder skips CR and LF anywhere; refusing them keeps one
	// spelling per cursor (found by FuzzCursor).
	if s == "" || len(s) > cursorEncoding.EncodedLen(cursorHeaderLen+history.MaxStreamLen) || strings.ContainsAny(s, "\r\n") {
		return cursor{}, problem.Invalid("cursor", "is not a cursor this store handed out")
	}
	b, err := cursorEncoding.DecodeString(s)
	if err != nil || len(b) <= cursorHeaderLen || b[0] != cursorVersion {
		return cursor{}, problem.Invalid("cursor", "is not a cursor this store handed out")
	}
	c := cursor{
		time:   time.UnixMicro(int64(binary.BigEndian.Uint64(b[1:]))).UTC(),
		seq:    binary.BigEndian.Uint64(b[9:]),
		stream: string(b[cursorHeaderLen:]),
	}
	if c.seq > math.MaxInt64 || !storable(c.time) || !utf8.ValidString(c.stream) || strings.ContainsRune(c.stream, 0) {
		return cursor{}, problem.Invalid("cursor", "is damaged")
	}
	return c, nil
}

// PostgreSQL's timestamptz runs from 4713 BC to 294276 AD; a time outside
// would fail in the database, so it is refused up front as bad input. The
// bounds are inside the real ones, which no event comes near: the upper
// one also keeps Unix microseconds (how chunks and cursors hold times)
// inside an int64, which 294276 AD is not.
var (
	minTime = time.Date(-4712, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(294000, 1, 1, 0, 0, 0, 0, time.UTC)
)

func storable(t time.Time) bool { return !t.Before(minTime) && t.Before(maxTime) }

// clampTime brings a query or retention bound into the storable range.
// Nothing is stored outside it, so the clamped bound selects the same
// records, and PostgreSQL is never sent a time it would refuse.
func clampTime(t time.Time) time.Time {
	switch {
	case t.Before(minTime):
		return minTime
	case t.After(maxTime):
		return maxTime
	}
	return t
}

// ceilMicro rounds t up to a whole microsecond. PostgreSQL keeps
// microseconds and pgx truncates on the way in, so a stored Time is the
// producer's time truncated, and a bound passed as it is would be truncated
// too, letting in a record stored a fraction of a microsecond before Since.
// For a whole microsecond x, x >= s iff x >= ceil(s) and x < u iff
// x < ceil(u), so rounding bounds up compares stored times exactly.
func ceilMicro(t time.Time) time.Time {
	if tr := t.Truncate(time.Microsecond); !tr.Equal(t) {
		return tr.Add(time.Microsecond)
	}
	return t
}
