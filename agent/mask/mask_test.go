package mask

import (
	"encoding/base64"
	"testing"
)

func TestMask(t *testing.T) {
	secrets := map[string]string{
		"pw":    "hunter22",
		"short": "abc",
		"key":   "-----BEGIN KEY-----\nMIIBsecretline\n-----END KEY-----",
		"inner": "hunter2222",
	}
	m := New(secrets)
	tests := []struct{ name, in, want string }{
		{"a plain value is masked", "password is hunter22\n", "password is ***\n"},
		{"every occurrence is masked", "hunter22 hunter22", "*** ***"},
		{"a longer value containing a shorter one is masked whole", "x hunter2222 y", "x *** y"},
		{"values under four characters are left alone", "abc abc", "abc abc"},
		{"each line of a multi-line secret is masked", "MIIBsecretline\n", "***\n"},
		{"the base64 of a value is masked", "b64: " + base64.StdEncoding.EncodeToString([]byte("hunter22")), "b64: ***"},
		{"url-safe unpadded base64 is masked", base64.RawURLEncoding.EncodeToString([]byte(secrets["key"])), "***"},
		{"output without secrets is unchanged", "hello\n", "hello\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(m.Mask([]byte(tt.in))); got != tt.want {
				t.Errorf("Mask(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestNilMaskerMasksNothing(t *testing.T) {
	var m *Masker
	if got := string(m.Mask([]byte("x"))); got != "x" {
		t.Fatal(got)
	}
}
