package mask

import (
	"bytes"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
)

// chunks records every Write it receives.
type chunks struct{ got [][]byte }

func (c *chunks) Write(p []byte) (int, error) {
	c.got = append(c.got, bytes.Clone(p))
	return len(p), nil
}

func (c *chunks) joined() string { return string(bytes.Join(c.got, nil)) }

func writeSplit(t *testing.T, w *Writer, s string, cuts ...int) {
	t.Helper()
	prev := 0
	for _, c := range append(cuts, len(s)) {
		if _, err := w.Write([]byte(s[prev:c])); err != nil {
			t.Fatal(err)
		}
		prev = c
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
}

func TestWriterMasksSecretsCutAcrossWrites(t *testing.T) {
	const secret = "s3cr3t-value"
	m := New(map[string]string{"pw": secret, "key": "line-one-xyz\nline-two-xyz"})
	line := "token=" + secret + " done\n"
	// Every cut point through the secret, including between its bytes.
	for cut := 1; cut < len(line); cut++ {
		var c chunks
		writeSplit(t, NewWriter(&c, m), line, cut)
		if got, want := c.joined(), "token=*** done\n"; got != want {
			t.Fatalf("cut at %d: got %q, want %q", cut, got, want)
		}
	}
	tests := []struct {
		name   string
		in     string
		cuts   []int
		want   string
		writes int
	}{
		{"whole lines pass as they complete", "a\nb\n", []int{1, 3}, "a\nb\n", 2},
		{"a last line without newline is flushed", "abc", nil, "abc", 1},
		{"each line of a multi-line secret is masked", "line-one-xyz\nline-two-xyz\n", []int{5, 15}, "***\n***\n", 2},
		{"a secret split over three writes is masked", "x s3cr3t-value y\n", []int{4, 8}, "x *** y\n", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c chunks
			writeSplit(t, NewWriter(&c, m), tt.in, tt.cuts...)
			if got := c.joined(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if len(c.got) != tt.writes {
				t.Errorf("%d writes downstream, want %d: %q", len(c.got), tt.writes, c.got)
			}
		})
	}
}

func TestWriterCutsLongLinesOutsideSecrets(t *testing.T) {
	const secret = "0123456789abcdef-secret"
	m := New(map[string]string{"s": secret})
	// Place the secret across the MaxLine boundary at every offset near
	// it, in a line far longer than MaxLine, written in odd chunk sizes.
	for off := MaxLine - len(secret) - 2; off <= MaxLine+2; off++ {
		in := strings.Repeat("x", off) + secret + strings.Repeat("y", 2*MaxLine)
		var c chunks
		w := NewWriter(&c, m)
		rng := rand.New(rand.NewPCG(uint64(off), 1))
		var cuts []int
		for p := rng.IntN(5000) + 1; p < len(in); p += rng.IntN(5000) + 1 {
			cuts = append(cuts, p)
		}
		writeSplit(t, w, in, cuts...)
		got := c.joined()
		if strings.Contains(got, secret) || strings.Count(got, Replacement) != 1 {
			t.Fatalf("offset %d: secret not masked exactly once", off)
		}
		for i, ch := range c.got {
			if len(ch) > MaxLine {
				t.Fatalf("offset %d: chunk %d is %d bytes, over MaxLine", off, i, len(ch))
			}
		}
	}
}

func TestWriterWithoutSecretsPassesOutputThrough(t *testing.T) {
	var c chunks
	w := NewWriter(&c, nil)
	writeSplit(t, w, "plain\n"+strings.Repeat("z", MaxLine+10), 3)
	if got := c.joined(); got != "plain\n"+strings.Repeat("z", MaxLine+10) {
		t.Fatalf("output changed: %d bytes", len(got))
	}
}

// FuzzWriter feeds arbitrary output in arbitrary chunks: whatever the
// cuts, no secret survives, and nothing but secrets changes.
func FuzzWriter(f *testing.F) {
	f.Add([]byte("token=s3cr3t-value\n"), []byte{3, 9})
	f.Add([]byte("tok-1234tok-1234"), []byte{1, 1, 1})
	f.Add(bytes.Repeat([]byte("s3cr3t-value"), 7000), []byte{200, 100})
	secrets := map[string]string{"a": "s3cr3t-value", "b": "tok-1234"}
	m := New(secrets)
	f.Fuzz(func(t *testing.T, in, cuts []byte) {
		var c chunks
		w := NewWriter(&c, m)
		rest := in
		for i := 0; len(rest) > 0; i++ {
			n := len(rest)
			if i < len(cuts) {
				n = min(n, int(cuts[i])*37+1)
			}
			if _, err := w.Write(rest[:n]); err != nil {
				t.Fatal(err)
			}
			rest = rest[n:]
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		got := c.joined()
		// Compare with masking each line whole, which is what the Writer
		// must match whenever no line is longer than MaxLine.
		var want []byte
		long := false
		for l := range bytes.SplitAfterSeq(in, []byte("\n")) {
			long = long || len(l) > MaxLine
			want = append(want, m.Mask(bytes.Clone(l))...)
		}
		if !long && got != string(want) {
			t.Fatalf("got %q, want %q", got, want)
		}
		if long {
			for _, s := range secrets {
				if strings.Contains(got, s) {
					t.Fatalf("secret %q survived in a long line", s)
				}
			}
		}
	})
}

// BenchmarkWriter is masking's cost on the output path: 32 KiB chunks (a
// plugin's Output message) of short lines, with two secrets to find.
func BenchmarkWriter(b *testing.B) {
	m := New(map[string]string{"a": "s3cr3t-value", "b": "tok-1234"})
	chunk := bytes.Repeat([]byte("a line of step output\n"), 32*1024/22)
	w := NewWriter(io.Discard, m)
	b.SetBytes(int64(len(chunk)))
	for b.Loop() {
		if _, err := w.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
}
