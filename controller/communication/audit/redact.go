package audit

import (
	"strings"
)

// Redacted replaces every secret value in a diff.
const Redacted = "[redacted]"

// secretParts are what a key contains, once lower-cased and stripped of
// '_', '-', '.' and spaces, when its value is a secret. The list errs on
// the side of hiding: a diff is a summary for people, and a redacted field
// that was not secret costs less than a password kept forever in a log
// nobody may edit.
var secretParts = []string{
	"password", "passwd", "passphrase", "secret", "token", "privatekey", "apikey", "accesskey",
	"authorization", "cookie", "credential", "dsn", "signingkey", "sealkey", "masterkey",
}

// secretKeys are whole keys too short to look for inside others ("otp"
// is in "footprint").
var secretKeys = []string{"pass", "pwd", "otp", "totp", "pin", "key", "cert_key", "seed", "mfa", "recovery"}

func normaliseKey(k string) string {
	k = strings.ToLower(k)
	return strings.Map(func(r rune) rune {
		switch r {
		case '_', '-', '.', ' ':
			return -1
		}
		return r
	}, k)
}

// SecretKey reports whether a diff key names a secret.
func SecretKey(k string) bool {
	n := normaliseKey(k)
	for _, p := range secretParts {
		if strings.Contains(n, p) {
			return true
		}
	}
	lk := strings.ToLower(k)
	for _, w := range secretKeys {
		if lk == w || n == normaliseKey(w) {
			return true
		}
	}
	return false
}

// secretValue catches what no key names: a PEM private key pasted into a
// field called "data" or "value".
func secretValue(s string) bool {
	return strings.Contains(s, "PRIVATE KEY-----")
}

// Redact returns v with the value under every secret-looking key replaced
// by Redacted, recursively through maps and slices. It copies what it
// changes and leaves v as it was. Values are what encoding/json decodes
// into any: maps, slices, strings, numbers, booleans and nil.
func Redact[T any](v T) T {
	out, _ := redact(any(v)).(T)
	return out
}

func redact(v any) any {
	switch x := v.(type) {
	case map[string]any:
		if x == nil {
			return x
		}
		out := make(map[string]any, len(x))
		for k, val := range x {
			if SecretKey(k) {
				out[k] = Redacted
				continue
			}
			out[k] = redact(val)
		}
		return out
	case []any:
		if x == nil {
			return x
		}
		out := make([]any, len(x))
		for i, val := range x {
			out[i] = redact(val)
		}
		return out
	case string:
		if secretValue(x) {
			return Redacted
		}
		return x
	default:
		return v
	}
}
