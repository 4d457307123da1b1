package builtin

import (
	"strings"
	"testing"
)

// FuzzCheckJSON feeds arbitrary response bodies and paths to the http
// step's JSON check: it must never panic, and a path that does not parse
// must be refused by parseJSONPath before checkJSON sees it.
func FuzzCheckJSON(f *testing.F) {
	f.Add([]byte(`{"a":{"b":[1,{"c":true}]}}`), "a.b[1].c")
	f.Add([]byte(`[[[]]]`), "[0][0][0]")
	f.Add([]byte(`{"":1}`), "$.")
	f.Add([]byte(`not json`), "a")
	f.Add([]byte(`{"a":null}`), "a[99999999999999999999]")
	f.Fuzz(func(t *testing.T, body []byte, path string) {
		if _, err := parseJSONPath(path); err != nil {
			return
		}
		_ = checkJSON(body, path, true)
	})
}

// FuzzUnifiedDiff checks the diff's invariants on arbitrary text: no
// output for equal inputs, and otherwise the - and context lines rebuild
// the old text's lines and the + and context lines the new text's.
func FuzzUnifiedDiff(f *testing.F) {
	f.Add("a\nb\nc\n", "a\nc\n")
	f.Add("", "x")
	f.Add("x\n", "x")
	f.Add("1\n2\n3\n4\n5\n6\n7\n8\n9\n", "1\n2\nX\n4\n5\n6\n7\n8\nY\n")
	f.Fuzz(func(t *testing.T, a, b string) {
		if len(a) > 4096 || len(b) > 4096 {
			return
		}
		d := unifiedDiff("a", "b", a, b)
		if (d == "") != (a == b) {
			t.Fatalf("diff of %q and %q = %q", a, b, d)
		}
		if d == "" {
			return
		}
		// With every line in one hunk (a context as large as the
		// inputs), the hunk is the whole of both texts.
		var old, nw strings.Builder
		for _, op := range diffLines(splitLines(a), splitLines(b)) {
			if op.kind != '+' {
				old.WriteString(op.line)
			}
			if op.kind != '-' {
				nw.WriteString(op.line)
			}
		}
		if old.String() != a || nw.String() != b {
			t.Fatalf("diff ops of %q and %q rebuild %q and %q", a, b, old.String(), nw.String())
		}
	})
}
