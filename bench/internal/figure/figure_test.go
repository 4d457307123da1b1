package figure

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNewJudgesAgainstTheTarget(t *testing.T) {
	tests := []struct {
		name   string
		value  float64
		target *Target
		want   Verdict
	}{
		{"a ceiling met at its limit", 60, AtMost(60), Pass},
		{"a ceiling exceeded", 60.1, AtMost(60), Fail},
		{"a floor met at its limit", 5000, AtLeast(5000), Pass},
		{"a floor missed", 4999, AtLeast(5000), Fail},
		{"no target, no verdict", 1, nil, NoTarget},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := New("x", tc.value, "u", tc.target).Verdict; got != tc.want {
				t.Errorf("verdict %s, want %s", got, tc.want)
			}
		})
	}
}

func TestWriteThenRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.json")
	in := []Figure{New("rss", 34.5, "MB", AtMost(60)).WithNote("after %s", "10s"), New("rate", 3, "x", nil)}
	if err := Write(path, in); err != nil {
		t.Fatal(err)
	}
	out, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 || out[0].Note != "after 10s" || out[0].Target.String() != "<= 60" || out[1].Verdict != NoTarget {
		t.Errorf("read back %+v", out)
	}
	if err := Write("", in); err != nil {
		t.Errorf("Write without a path: %v", err)
	}
}

func TestReadRejectsMalformedFigures(t *testing.T) {
	tests := []struct{ name, doc, want string }{
		{"a figure without a name", `{"figures":[{"value":1}]}`, "figures[0].name is empty"},
		{"an unknown comparison", `{"figures":[{"name":"x","target":{"op":"<","limit":1}}]}`, `figures[0].target.op "<"`},
		{"not JSON", `| figure | value |`, "decode figures"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "f.json")
			if err := os.WriteFile(path, []byte(tc.doc), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := Read(path); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}
