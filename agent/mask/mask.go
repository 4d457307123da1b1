// Package mask hides secret values in step output before it leaves the
// step: it owns the list of strings to hide for one attempt and nothing
// else. It must never log or return a secret it was given.
package mask

import (
	"bytes"
	"encoding/base64"
	"slices"
	"strings"
)

// Replacement stands in for every masked value.
const Replacement = "***"

// MinLen is the shortest value masked: masking "a" or "yes" everywhere
// would garble the output and tell an observer the secret anyway.
const MinLen = 4

// Masker replaces secret values in output. The zero value masks nothing.
type Masker struct {
	values [][]byte // longest first, so that a value containing another wins
}

// New returns a Masker for the values of secrets: each value, each line
// of a multi-line value (output arrives line by line), and the standard
// and URL-safe base64 encodings of each value.
func New(secrets map[string]string) *Masker {
	seen := map[string]bool{}
	var vals []string
	add := func(v string) {
		if len(v) >= MinLen && !seen[v] {
			seen[v] = true
			vals = append(vals, v)
		}
	}
	for _, v := range secrets {
		add(v)
		if strings.ContainsAny(v, "\r\n") {
			for l := range strings.SplitSeq(v, "\n") {
				add(strings.TrimSpace(l))
			}
		}
		if len(v) >= MinLen {
			for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
				add(enc.EncodeToString([]byte(v)))
			}
		}
	}
	slices.SortFunc(vals, func(a, b string) int { return len(b) - len(a) })
	m := &Masker{values: make([][]byte, len(vals))}
	for i, v := range vals {
		m.values[i] = []byte(v)
	}
	return m
}

// Mask returns data with every secret value replaced. It returns data
// itself when nothing matched.
func (m *Masker) Mask(data []byte) []byte {
	if m == nil {
		return data
	}
	for _, v := range m.values {
		if bytes.Contains(data, v) {
			data = bytes.ReplaceAll(data, v, []byte(Replacement))
		}
	}
	return data
}
