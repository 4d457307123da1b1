package agentrpc

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// A join token is "ocj_<id>_<secret>": id is 8 random bytes and secret 32
// (256 bits), both lowercase hex. Only SHA-256(secret) is stored.
const (
	tokenPrefix    = "ocj_"
	tokenIDLen     = 16
	tokenSecretLen = 64
)

func newJoinToken() (id, secret string, err error) {
	b := make([]byte, 8+32)
	if _, err := rand.Read(b); err != nil {
		return "", "", fmt.Errorf("generate join token: %w", err)
	}
	return hex.EncodeToString(b[:8]), hex.EncodeToString(b[8:]), nil
}

func formatJoinToken(id, secret string) string { return tokenPrefix + id + "_" + secret }

func hashSecret(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}

// parseJoinToken splits a join token from outside into its ID and secret.
func parseJoinToken(s string) (id, secret string, err error) {
	rest, ok := strings.CutPrefix(s, tokenPrefix)
	if !ok {
		return "", "", errors.New("no ocj_ prefix")
	}
	id, secret, ok = strings.Cut(rest, "_")
	switch {
	case !ok:
		return "", "", errors.New("no secret part")
	case len(id) != tokenIDLen || !isHex(id):
		return "", "", errors.New("malformed id")
	case len(secret) != tokenSecretLen || !isHex(secret):
		return "", "", errors.New("malformed secret")
	}
	return id, secret, nil
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Tag limits.
const (
	maxTags        = 64
	maxTagKeyLen   = 63
	maxTagValueLen = 255
)

// validateTags reports every bad tag, each with its path.
func validateTags(path string, tags map[string]string) []string {
	var errs []string
	if len(tags) > maxTags {
		errs = append(errs, fmt.Sprintf("%s: %d tags, at most %d", path, len(tags), maxTags))
	}
	keys := make([]string, 0, len(tags))
	for k := range tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k == "" || len(k) > maxTagKeyLen || strings.IndexFunc(k, func(r rune) bool { return !tagKeyRune(r) }) >= 0 {
			errs = append(errs, fmt.Sprintf("%s[%q]: a key is 1 to %d letters, digits, '.', '_', '-' or '/'", path, k, maxTagKeyLen))
		}
		if v := tags[k]; len(v) > maxTagValueLen || strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			errs = append(errs, fmt.Sprintf("%s[%q]: a value is at most %d characters without control characters", path, k, maxTagValueLen))
		}
	}
	return errs
}

func tagKeyRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-' || r == '/'
}

// maxNameLen bounds an agent name.
const maxNameLen = 63

// sanitizeName turns a requested name or hostname into an agent name:
// lowercase letters, digits and '-', no leading or trailing '-'.
func sanitizeName(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		ok := r >= 'a' && r <= 'z' || r >= '0' && r <= '9'
		switch {
		case ok:
			b.WriteRune(r)
			dash = false
		case b.Len() > 0 && !dash:
			b.WriteByte('-')
			dash = true
		}
		if b.Len() >= maxNameLen {
			break
		}
	}
	return strings.Trim(b.String(), "-")
}
