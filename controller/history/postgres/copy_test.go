package postgres

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"maps"
	"testing"
	"testing/iotest"
	"time"
	"unicode/utf8"
)

func copyRows() []row {
	at := time.Date(2026, 1, 1, 0, 0, 0, 1500, time.UTC)
	return []row{
		{dom: 2, stream: "automation/a", seq: 1, time: at, kind: "automation.log", fields: map[string]string{"run_id": "r1"}, data: []byte("hello")},
		{dom: 2, stream: "automation/a", seq: 2, time: at, kind: "automation.log"},
		{dom: 2, stream: "automation/b", seq: 3, time: at, kind: "automation.log", data: bytes.Repeat([]byte{'x'}, 3000)},
		{dom: 2, stream: "automation/c", seq: 4, time: at, kind: "automation.log", data: []byte{}},
	}
}

func TestCopyReader(t *testing.T) {
	whole, err := io.ReadAll(newCopyReader(copyRows(), false))
	if err != nil {
		t.Fatal(err)
	}

	t.Run("reads of any size give the same stream", func(t *testing.T) {
		for _, r := range []io.Reader{iotest.OneByteReader(newCopyReader(copyRows(), false)), iotest.HalfReader(newCopyReader(copyRows(), false))} {
			got, err := io.ReadAll(r)
			if err != nil || !bytes.Equal(got, whole) {
				t.Fatalf("got %d bytes, %v; want the %d of one read", len(got), err, len(whole))
			}
		}
		if err := iotest.TestReader(newCopyReader(copyRows(), true), mustReadAll(t, newCopyReader(copyRows(), true))); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("the stream is the PostgreSQL binary COPY layout", func(t *testing.T) {
		b := whole
		if !bytes.HasPrefix(b, []byte(copySignature)) || !bytes.HasSuffix(b, []byte{0xff, 0xff}) {
			t.Fatalf("no signature or trailer: % x", b)
		}
		b = b[len(copySignature)+8 : len(b)-2]
		for i, r := range copyRows() {
			if n := binary.BigEndian.Uint16(b); n != 6 {
				t.Fatalf("row %d has %d fields", i, n)
			}
			b = b[2:]
			var cols [][]byte
			for range 6 {
				n := int32(binary.BigEndian.Uint32(b))
				b = b[4:]
				if n < 0 {
					cols = append(cols, nil)
					continue
				}
				cols = append(cols, b[:n])
				b = b[n:]
			}
			var fields map[string]string
			if cols[4][0] != jsonbVersion || json.Unmarshal(cols[4][1:], &fields) != nil {
				t.Fatalf("row %d: fields %q", i, cols[4])
			}
			if want := time.Date(2026, 1, 1, 0, 0, 0, 1000, time.UTC); int64(binary.BigEndian.Uint64(cols[2])) != want.UnixMicro()-pgEpochMicros {
				t.Fatalf("row %d: time %x", i, cols[2])
			}
			if string(cols[0]) != r.stream || int64(binary.BigEndian.Uint64(cols[1])) != r.seq || string(cols[3]) != r.kind ||
				!maps.Equal(fields, r.fields) || !bytes.Equal(cols[5], r.data) || (cols[5] == nil) != (r.data == nil) {
				t.Fatalf("row %d decodes as %q", i, cols)
			}
		}
		if len(b) != 0 {
			t.Fatalf("%d bytes left over", len(b))
		}
	})
}

func mustReadAll(t *testing.T, r io.Reader) []byte {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzFieldsJSON checks the hand-written JSON of a record's fields:
// whatever the strings, PostgreSQL must get valid JSON, and for the valid
// UTF-8 that Validate lets through, JSON meaning the same object.
func FuzzFieldsJSON(f *testing.F) {
	f.Add("run_id", "r1", "level", "info")
	f.Add("quote\"", "back\\slash", "ctl\x01\x1f\n\r\t", "\u2028<>&")
	f.Add("bad\xff", "utf8\xc3", "é", "日本")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string) {
		in := map[string]string{k1: v1, k2: v2}
		got := appendFieldsJSON(nil, in)
		var back map[string]string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("%q is not JSON: %v", got, err)
		}
		if !utf8.ValidString(k1) || !utf8.ValidString(v1) || !utf8.ValidString(k2) || !utf8.ValidString(v2) {
			// Validate refuses such fields; two keys that both become
			// U+FFFD would collide, so only validity is checked.
			return
		}
		if want := in; !maps.Equal(back, want) {
			t.Fatalf("%q decodes as %q, want %q", got, back, want)
		}
	})
}
