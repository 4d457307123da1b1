package postgres

import (
	"bytes"
	"encoding/binary"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func chunkRows() []row {
	at := time.Date(2026, 1, 1, 0, 0, 0, 1500, time.UTC)
	f := map[string]string{"run_id": "r1"}
	rows := []row{
		{dom: 2, stream: "automation/a", seq: 1, time: at, kind: "automation.log", fields: f, data: []byte("hello")},
		{dom: 2, stream: "automation/a", seq: 2, time: at.Add(-time.Millisecond), kind: "automation.log", fields: map[string]string{"run_id": "r1"}},
		{dom: 2, stream: "automation/a", seq: 9, time: at.Add(time.Millisecond), kind: "automation.log", fields: f, data: []byte{}},
		// another kind, fields, stream, or too far in time: a new chunk
		{dom: 2, stream: "automation/a", seq: 10, time: at, kind: "automation.run", fields: f},
		{dom: 2, stream: "automation/a", seq: 11, time: at, kind: "automation.run", fields: map[string]string{"run_id": "r2"}},
		{dom: 2, stream: "automation/b", seq: 11, time: at, kind: "automation.run", fields: map[string]string{"run_id": "r2"}},
		{dom: 2, stream: "automation/b", seq: 12, time: at.Add(maxChunkSpan + time.Microsecond), kind: "automation.run", fields: map[string]string{"run_id": "r2"}},
	}
	// and enough data to pass a chunk's size
	for i := range int64(200) {
		rows = append(rows, row{dom: 3, stream: "communication/big", seq: 100 + i, time: at, kind: "communication.x", data: bytes.Repeat([]byte{'x'}, 100)})
	}
	return rows
}

func TestBuildChunks(t *testing.T) {
	rows := chunkRows()
	cs := buildChunks(rows)
	encodeBodies(cs)
	var got []row
	for _, c := range cs {
		if c.first != c.recs[0].seq || c.last != c.recs[len(c.recs)-1].seq || c.maxTime-c.minTime > maxChunkSpan.Microseconds() {
			t.Fatalf("chunk %s/%d: bounds %d-%d, times %d-%d", c.stream, c.first, c.first, c.last, c.minTime, c.maxTime)
		}
		if len(c.recs) > 1 && len(c.body) > maxChunkBody(c.stream, c.kind, len(c.jsonText)) {
			t.Fatalf("chunk %s/%d: body of %d bytes", c.stream, c.first, len(c.body))
		}
		recs, err := decodeBody(c.body, c.first, c.last, len(c.recs), c.minTime, c.maxTime)
		if err != nil {
			t.Fatalf("chunk %s/%d: %v", c.stream, c.first, err)
		}
		for _, r := range recs {
			got = append(got, row{dom: c.dom, stream: c.stream, seq: r.seq, time: time.UnixMicro(r.time).UTC(), kind: c.kind, fields: c.fields, data: r.data})
		}
	}
	if len(cs) < 7 || len(got) != len(rows) {
		t.Fatalf("%d chunks holding %d records, want more than 6 holding %d", len(cs), len(got), len(rows))
	}
	for i, r := range rows {
		g := got[i]
		if g.stream != r.stream || g.seq != r.seq || !g.time.Equal(r.time.Truncate(time.Microsecond)) || g.kind != r.kind ||
			!sameFields(g.fields, r.fields) || !bytes.Equal(g.data, r.data) || (len(r.data) == 0) != (g.data == nil) {
			t.Fatalf("record %d came back as %+v, want %+v", i, g, r)
		}
	}
}

func TestDecodeBodyRefusesDamage(t *testing.T) {
	cs := buildChunks(chunkRows()[:3])
	encodeBodies(cs)
	c := cs[0]
	for _, tc := range []struct {
		name        string
		body        []byte
		first, last int64
		n           int
	}{
		{"another version", append([]byte{2}, c.body[1:]...), c.first, c.last, 3},
		{"fewer records than the row says", c.body, c.first, c.last, 4},
		{"more records than the row says", c.body, c.first, c.last, 2},
		{"another last seq", c.body, c.first, c.last + 1, 3},
		{"cut short", c.body[:len(c.body)-1], c.first, c.last, 3},
		{"empty", nil, c.first, c.last, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := decodeBody(tc.body, tc.first, tc.last, tc.n, c.minTime, c.maxTime); err == nil {
				t.Fatal("decoded")
			}
		})
	}
	if _, err := decodeBody(c.body, c.first, c.last, 3, c.minTime+1, c.maxTime); err == nil {
		t.Fatal("a time outside the row's range decoded")
	}
}

// FuzzChunkBody feeds the decoder of stored chunk bodies arbitrary bytes
// and row columns: it must never panic, and what it accepts must be
// records in seq order within the row's bounds that encode back to the
// same body.
func FuzzChunkBody(f *testing.F) {
	seeds := buildChunks(chunkRows())
	encodeBodies(seeds)
	for _, c := range seeds {
		f.Add(c.body, c.first, c.last, len(c.recs), c.minTime, c.maxTime)
	}
	f.Add([]byte{1, 0, 0, 0}, int64(5), int64(5), 1, int64(0), int64(0))
	f.Add([]byte{1, 0, 0, 0x80}, int64(0), int64(0), 1, int64(0), int64(0))
	f.Add([]byte{1, 0, 0x7f, 1, 'x', 1, 1, 0}, int64(0), int64(1), 2, int64(-100), int64(100))
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0, 0}, int64(0), int64(1<<62), 1, int64(0), int64(0))
	f.Fuzz(func(t *testing.T, body []byte, first, last int64, n int, minTime, maxTime int64) {
		recs, err := decodeBody(body, first, last, n, minTime, maxTime)
		if err != nil {
			return
		}
		if len(recs) != n || recs[0].seq != first || recs[len(recs)-1].seq != last {
			t.Fatalf("%d records %d-%d, row says %d, %d-%d", len(recs), recs[0].seq, recs[len(recs)-1].seq, n, first, last)
		}
		c := chunk{first: first, minTime: minTime, recs: recs}
		for i, r := range recs {
			if i > 0 && r.seq <= recs[i-1].seq || r.time < minTime || r.time > maxTime {
				t.Fatalf("record %d: seq %d time %d", i, r.seq, r.time)
			}
		}
		// Varints have more than one spelling; the decoded records must
		// still encode to a body that decodes to the same records.
		c.encode()
		again, err := decodeBody(c.body, first, last, n, minTime, maxTime)
		if err != nil || len(again) != len(recs) {
			t.Fatalf("re-encoded body: %v", err)
		}
		for i := range recs {
			if again[i].seq != recs[i].seq || again[i].time != recs[i].time || !bytes.Equal(again[i].data, recs[i].data) {
				t.Fatalf("record %d: %+v then %+v", i, recs[i], again[i])
			}
		}
	})
}

func TestCopyReader(t *testing.T) {
	cs := buildChunks(chunkRows())
	whole, err := io.ReadAll(newCopyReader(cs))
	if err != nil {
		t.Fatal(err)
	}
	t.Run("reads of any size give the same stream", func(t *testing.T) {
		if err := iotest.TestReader(newCopyReader(cs), whole); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(iotest.OneByteReader(newCopyReader(cs)))
		if err != nil || !bytes.Equal(got, whole) {
			t.Fatalf("got %d bytes, %v; want the %d of one read", len(got), err, len(whole))
		}
	})
	t.Run("the stream is the PostgreSQL binary COPY layout", func(t *testing.T) {
		encodeBodies(cs)
		b := whole
		if !bytes.HasPrefix(b, []byte(copySignature)) || !bytes.HasSuffix(b, []byte{0xff, 0xff}) {
			t.Fatalf("no signature or trailer: % x", b[:20])
		}
		b = b[len(copySignature)+8 : len(b)-2]
		for i, c := range cs {
			if n := binary.BigEndian.Uint16(b); n != 9 {
				t.Fatalf("row %d has %d fields", i, n)
			}
			b = b[2:]
			var cols [][]byte
			for range 9 {
				n := int32(binary.BigEndian.Uint32(b))
				cols = append(cols, b[4:4+n])
				b = b[4+n:]
			}
			if string(cols[0]) != c.stream || int64(binary.BigEndian.Uint64(cols[1])) != c.first || int64(binary.BigEndian.Uint64(cols[2])) != c.last ||
				int(binary.BigEndian.Uint32(cols[3])) != len(c.recs) || int64(binary.BigEndian.Uint64(cols[4])) != c.minTime-pgEpochMicros ||
				int64(binary.BigEndian.Uint64(cols[5])) != c.maxTime-pgEpochMicros || string(cols[6]) != c.kind ||
				cols[7][0] != jsonbVersion || !strings.HasPrefix(string(cols[7][1:]), "{") || !bytes.Equal(cols[8], c.body) {
				t.Fatalf("row %d decodes as %q", i, cols)
			}
		}
		if len(b) != 0 {
			t.Fatalf("%d bytes left over", len(b))
		}
	})
}
