package postgres

import (
	"encoding/binary"
	"io"
	"unicode/utf8"
)

// This file encodes rows for COPY … FROM STDIN (FORMAT binary) by hand.
// pgx's CopyFrom boxes every value in an interface and looks up an encode
// plan for each, which at 1,000-record batches cost about as much Go CPU as
// the rest of Append together, on a machine whose cores PostgreSQL needs.
// Writing the wire format directly costs no allocation per record.
//
// The format (PostgreSQL docs, "COPY", Binary Format): an 11-byte signature,
// a flags word and a header-extension length; per row a field count (int16)
// and per field its length (int32, -1 for NULL) and bytes in the type's
// binary send format; a trailer of int16 -1.

// copySignature starts every binary COPY stream.
const copySignature = "PGCOPY\n\xff\r\n\x00"

// pgEpochMicros is 2000-01-01 00:00:00 UTC, PostgreSQL's timestamp epoch,
// in Unix microseconds.
const pgEpochMicros = 946_684_800_000_000

// jsonbVersion is the only version of jsonb's binary format: a version
// byte followed by the JSON text.
const jsonbVersion = 1

// appendCopyHeader appends the signature, flags and header extension.
func appendCopyHeader(b []byte) []byte {
	b = append(b, copySignature...)
	return binary.BigEndian.AppendUint64(b, 0) // flags, extension length
}

// appendCopyTrailer ends the stream.
func appendCopyTrailer(b []byte) []byte { return binary.BigEndian.AppendUint16(b, 0xffff) }

// appendCopyRow appends one record as the columns
// (stream, seq, time, kind, fields, data) of a records table, preceded by
// (ord, dom) when staged is set (the staging table's layout), up to the
// data's length: the data's bytes follow, and copyReader copies them
// from the record itself rather than through a buffer.
func appendCopyRow(b []byte, r *row, staged bool, ord int) []byte {
	if staged {
		b = binary.BigEndian.AppendUint16(b, 8)
		b = appendInt4(b, int32(ord))
		b = appendInt4(b, int32(r.dom))
	} else {
		b = binary.BigEndian.AppendUint16(b, 6)
	}
	b = appendText(b, r.stream)
	b = binary.BigEndian.AppendUint32(b, 8)
	b = binary.BigEndian.AppendUint64(b, uint64(r.seq))
	// pgx truncates to the microsecond on the way in, and so does this:
	// UnixMicro floors the nanoseconds, as the storable range is checked.
	b = binary.BigEndian.AppendUint32(b, 8)
	b = binary.BigEndian.AppendUint64(b, uint64(r.time.UnixMicro()-pgEpochMicros))
	b = appendText(b, r.kind)
	// jsonb: the length is patched once the JSON text is written.
	at := len(b)
	b = append(b, 0, 0, 0, 0, jsonbVersion)
	b = appendFieldsJSON(b, r.fields)
	binary.BigEndian.PutUint32(b[at:], uint32(len(b)-at-4))
	if r.data == nil {
		return binary.BigEndian.AppendUint32(b, 0xffffffff) // NULL, as pgx sends a nil []byte
	}
	return binary.BigEndian.AppendUint32(b, uint32(len(r.data)))
}

func appendInt4(b []byte, v int32) []byte {
	b = binary.BigEndian.AppendUint32(b, 4)
	return binary.BigEndian.AppendUint32(b, uint32(v))
}

func appendText(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// appendFieldsJSON appends fields as a JSON object. Key order does not
// matter: jsonb keeps its keys sorted whatever order they arrive in.
// history.Record.Validate has checked that keys and values are UTF-8.
func appendFieldsJSON(b []byte, fields map[string]string) []byte {
	b = append(b, '{')
	first := true
	for k, v := range fields {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendJSONString(b, k)
		b = append(b, ':')
		b = appendJSONString(b, v)
	}
	return append(b, '}')
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string: quote, backslash and the
// control characters escaped, everything else as it is. Invalid UTF-8
// becomes U+FFFD, as encoding/json does, so the output is always valid
// JSON (Validate refuses such strings before they get here).
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				b = append(b, s[start:i]...)
				b = append(b, "\ufffd"...)
				i++
				start = i
				continue
			}
			i += size
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		i++
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// copyReader streams rows in the binary COPY format. It encodes as pgconn
// asks for data (64 KiB at a time), so PostgreSQL is already inserting the
// first rows while later ones are being encoded, and the batch is never
// held twice in memory: buf holds one row's encoding up to its data, which
// is copied straight from the record.
type copyReader struct {
	rows   []row
	staged bool
	next   int    // the next row to encode
	buf    []byte // encoded, not yet read
	off    int    // read position in buf
	data   []byte // the rest of the current row's data, after buf
	done   bool   // the trailer has been encoded
}

func newCopyReader(rows []row, staged bool) *copyReader {
	return &copyReader{rows: rows, staged: staged, buf: appendCopyHeader(make([]byte, 0, 4<<10))}
}

func (c *copyReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		switch {
		case c.off < len(c.buf):
			m := copy(p[n:], c.buf[c.off:])
			c.off += m
			n += m
		case len(c.data) > 0:
			m := copy(p[n:], c.data)
			c.data = c.data[m:]
			n += m
		case c.done:
			if n == 0 {
				return 0, io.EOF
			}
			return n, nil
		case c.next == len(c.rows):
			c.buf, c.off, c.done = appendCopyTrailer(c.buf[:0]), 0, true
		default:
			r := &c.rows[c.next]
			c.buf, c.off, c.data = appendCopyRow(c.buf[:0], r, c.staged, c.next), 0, r.data
			c.next++
		}
	}
	return n, nil
}
