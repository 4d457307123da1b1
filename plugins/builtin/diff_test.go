package builtin

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The diff is checked against GNU diff -u: the hunks must be the same.
func TestUnifiedDiffMatchesDiffU(t *testing.T) {
	diffBin, err := exec.LookPath("diff")
	if err != nil {
		t.Skip("GNU diff is not installed; it is the reference this test compares against")
	}
	lines := func(n int, f func(i int) string) string {
		var b strings.Builder
		for i := 1; i <= n; i++ {
			b.WriteString(f(i) + "\n")
		}
		return b.String()
	}
	base := lines(30, func(i int) string { return "line " + string(rune('a'+i%26)) })
	tests := []struct{ name, a, b string }{
		{"one line changed in the middle", base, strings.Replace(base, "line k\n", "line K\n", 1)},
		{"changes far apart make two hunks", base, strings.Replace(strings.Replace(base, "line c\n", "C\n", 1), "line z\n", "Z\n", 1)},
		{"changes close together make one hunk", base, strings.Replace(strings.Replace(base, "line c\n", "C\n", 1), "line g\n", "G\n", 1)},
		{"lines added at the end", "a\nb\n", "a\nb\nc\nd\n"},
		{"lines removed at the start", "a\nb\nc\n", "c\n"},
		{"from empty", "", "x\ny\n"},
		{"to empty", "x\ny\n", ""},
		{"a missing final newline", "a\nb\n", "a\nb"},
		{"everything different", "a\nb\n", "c\nd\ne\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			pa, pb := filepath.Join(dir, "a"), filepath.Join(dir, "b")
			if err := os.WriteFile(pa, []byte(tt.a), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(pb, []byte(tt.b), 0o600); err != nil {
				t.Fatal(err)
			}
			out, _ := exec.Command(diffBin, "-u", pa, pb).Output()
			want := hunks(string(out))
			got := hunks(unifiedDiff("a", "b", tt.a, tt.b))
			if got != want {
				t.Errorf("diff:\n%s\nwant (diff -u):\n%s", got, want)
			}
		})
	}
	if d := unifiedDiff("a", "b", "same\n", "same\n"); d != "" {
		t.Errorf("equal content: diff %q, want none", d)
	}
}

// hunks drops the ---/+++ header lines, which carry names and times.
func hunks(d string) string {
	var keep []string
	for _, l := range strings.SplitAfter(d, "\n") {
		if strings.HasPrefix(l, "--- ") || strings.HasPrefix(l, "+++ ") {
			continue
		}
		keep = append(keep, l)
	}
	return strings.Join(keep, "")
}
