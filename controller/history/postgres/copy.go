package postgres

import (
	"encoding/binary"
	"io"
)

// This file encodes chunk rows for COPY … FROM STDIN (FORMAT binary) by
// hand. Sent as array parameters of an INSERT, a batch's bodies were
// copied three times over by pgx (each array element appended to a
// growing buffer, then the whole into the Bind message): at 1 KiB records
// that cost more client CPU than the server spent storing them. Here a
// body goes from the chunk straight into pgconn's 64 KiB writes.
//
// The format (PostgreSQL docs, "COPY", Binary Format): an 11-byte signature,
// a flags word and a header-extension length; per row a field count (int16)
// and per field its length (int32) and bytes in the type's binary send
// format; a trailer of int16 -1.

// copySignature starts every binary COPY stream.
const copySignature = "PGCOPY\n\xff\r\n\x00"

// pgEpochMicros is 2000-01-01 00:00:00 UTC, PostgreSQL's timestamp epoch,
// in Unix microseconds.
const pgEpochMicros = 946_684_800_000_000

// jsonbVersion is the only version of jsonb's binary format: a version
// byte followed by the JSON text.
const jsonbVersion = 1

// copyChunkColumns is the column list of the COPY, in the order
// appendCopyChunk writes them.
const copyChunkColumns = "stream, first_seq, last_seq, n, min_time, max_time, kind, fields, body"

// appendCopyChunk appends one chunk row up to its body's length, n: the
// body's bytes follow.
func appendCopyChunk(b []byte, c *chunk, n int) []byte {
	b = binary.BigEndian.AppendUint16(b, 9)
	b = appendText(b, c.stream)
	b = appendInt8(b, c.first)
	b = appendInt8(b, c.last)
	b = binary.BigEndian.AppendUint32(b, 4)
	b = binary.BigEndian.AppendUint32(b, uint32(len(c.recs)))
	b = appendInt8(b, c.minTime-pgEpochMicros)
	b = appendInt8(b, c.maxTime-pgEpochMicros)
	b = appendText(b, c.kind)
	b = binary.BigEndian.AppendUint32(b, uint32(1+len(c.jsonText)))
	b = append(b, jsonbVersion)
	b = append(b, c.jsonText...)
	return binary.BigEndian.AppendUint32(b, uint32(n))
}

func appendInt8(b []byte, v int64) []byte {
	b = binary.BigEndian.AppendUint32(b, 8)
	return binary.BigEndian.AppendUint64(b, uint64(v))
}

func appendText(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// copyReader streams chunks in the binary COPY format as pgconn asks for
// data, encoding each chunk's body into a buffer it reuses.
type copyReader struct {
	chunks  []chunk
	next    int    // the next chunk to encode
	buf     []byte // encoded, not yet read
	off     int    // read position in buf
	body    []byte // the rest of the current chunk's body, after buf
	scratch []byte // the current chunk's body
	done    bool   // the trailer has been encoded
}

func newCopyReader(chunks []chunk) *copyReader {
	b := append(make([]byte, 0, 1<<10), copySignature...)
	return &copyReader{chunks: chunks, buf: binary.BigEndian.AppendUint64(b, 0)} // flags, extension length
}

func (c *copyReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		switch {
		case c.off < len(c.buf):
			m := copy(p[n:], c.buf[c.off:])
			c.off += m
			n += m
		case len(c.body) > 0:
			m := copy(p[n:], c.body)
			c.body = c.body[m:]
			n += m
		case c.done:
			if n == 0 {
				return 0, io.EOF
			}
			return n, nil
		case c.next == len(c.chunks):
			c.buf, c.off, c.done = binary.BigEndian.AppendUint16(c.buf[:0], 0xffff), 0, true
		default:
			ch := &c.chunks[c.next]
			c.scratch = appendBody(c.scratch[:0], ch)
			c.buf, c.off, c.body = appendCopyChunk(c.buf[:0], ch, len(c.scratch)), 0, c.scratch
			c.next++
		}
	}
	return n, nil
}
