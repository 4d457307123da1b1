package mask

import (
	"bytes"
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
