package postgres

import (
	"encoding/json"
	"maps"
	"testing"
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
