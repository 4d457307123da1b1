package postgres

import (
	"encoding/json"
	"maps"
	"testing"
	"unicode/utf8"
)

// FuzzDecodeFields checks the hand-written parser of jsonb's output
// against encoding/json: where it accepts the input it must decode it as
// encoding/json does, and decodeFields as a whole must always agree.
func FuzzDecodeFields(f *testing.F) {
	for _, seed := range []string{
		`{}`, `{"level": "info", "run_id": "automation/bench/1/log"}`,
		`{"q\"uote": "back\\slash", "ctl": "\n\r\t\b\f\u0001", "sl": "\/"}`,
		`{"é": "日本"}`, `{"n": 1}`, `{"a":"b"}`, `{"a": "b",  "c": "d"}`, `{"a": "b", "a": "c"}`,
		"{\"bad\": \"\xff\"}", `{"a": "\ud83d\ude00"}`, `{"a": "b"`, `[]`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var want map[string]string
		wantErr := json.Unmarshal(b, &want)
		if got, ok := parseFields(b); ok && (wantErr != nil || !maps.Equal(got, want)) {
			t.Fatalf("parseFields(%q) = %q; encoding/json: %q, %v", b, got, want, wantErr)
		}
		got, err := decodeFields(b)
		if (err != nil) != (wantErr != nil) || (err == nil && !maps.Equal(got, want)) {
			t.Fatalf("decodeFields(%q) = %q, %v; encoding/json: %q, %v", b, got, err, want, wantErr)
		}
	})
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
