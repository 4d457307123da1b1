package history

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestJSONLRoundTrip(t *testing.T) {
	in := []Record{
		{Stream: "automation/run/1/log", Seq: 1, Time: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC), Kind: "automation.log", Data: []byte{0, 1, 2, 255}},
		{Stream: "communication/audit", Seq: 9, Time: time.Unix(0, 0).UTC(), Kind: "communication.audit", Fields: map[string]string{"actor": "ana"}},
	}
	var buf bytes.Buffer
	for _, r := range in {
		if err := EncodeJSONL(&buf, r); err != nil {
			t.Fatal(err)
		}
	}
	var out []Record
	if err := DecodeJSONL(&buf, func(r Record) error { out = append(out, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 || !bytes.Equal(out[0].Data, in[0].Data) || !out[0].Time.Equal(in[0].Time) || out[1].Fields["actor"] != "ana" {
		t.Fatalf("round trip: %+v", out)
	}
}

func TestDecodeJSONLNamesTheLine(t *testing.T) {
	good := `{"stream":"automation/s","seq":1,"time":"2026-01-01T00:00:00Z","kind":"automation.log"}`
	tests := []struct {
		name, input, want string
	}{
		{"malformed JSON", good + "\n{", "line 2"},
		{"an unknown field", `{"stream":"automation/s","seq":1,"time":"2026-01-01T00:00:00Z","kind":"automation.log","x":1}`, "line 1: json: unknown field"},
		{"two values on a line", good + " {}", "line 1: more than one JSON value"},
		{"an invalid record", "\n" + `{"stream":"nope","seq":1,"time":"2026-01-01T00:00:00Z","kind":"automation.log"}`, "line 2.stream"},
	}
	for _, tt := range tests {
		t.Run("it reports "+tt.name, func(t *testing.T) {
			err := DecodeJSONL(strings.NewReader(tt.input), func(Record) error { return nil })
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func FuzzDecodeJSONL(f *testing.F) {
	f.Add([]byte(`{"stream":"automation/s","seq":1,"time":"2026-01-01T00:00:00Z","kind":"automation.log","data":"AAE="}` + "\n"))
	f.Add([]byte("\n\n{}\n"))
	f.Add([]byte(`{"stream":"assets/x","seq":18446744073709551615,"time":"0001-01-01T00:00:00Z","kind":"assets.y","fields":{"a":"b"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		_ = DecodeJSONL(bytes.NewReader(data), func(r Record) error {
			if err := r.Validate("r"); err != nil {
				t.Fatalf("decoder passed an invalid record: %v", err)
			}
			var buf bytes.Buffer
			return EncodeJSONL(&buf, r)
		})
	})
}
