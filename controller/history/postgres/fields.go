package postgres

import (
	"encoding/json"
	"strings"
	"unicode/utf8"
)

// decodeFields parses a record's fields as PostgreSQL prints a jsonb
// object of strings: {"key": "value", "key2": "value2"}. Reads decode
// every record's fields, and encoding/json took more than half of Tail's
// Go time (a map allocation, reflection and a validity pre-pass per
// record), so the form jsonb always prints is parsed by hand, and anything
// else (a value that is not a string, a \u escape, spacing from another
// printer) goes to encoding/json, which is also what decides every error.
// FuzzDecodeFields checks that both agree.
func decodeFields(b []byte) (map[string]string, error) {
	if m, ok := parseFields(b); ok {
		return m, nil
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return m, nil
}

// parseFields is the fast path of decodeFields; ok is false when b is not
// in the form it handles, never when it is.
func parseFields(b []byte) (m map[string]string, ok bool) {
	s := string(b) // one copy, shared by the keys and values sliced from it
	if len(s) < 2 || s[0] != '{' || s[len(s)-1] != '}' {
		return nil, false
	}
	s = s[1 : len(s)-1]
	if s == "" {
		return map[string]string{}, true
	}
	m = make(map[string]string, strings.Count(s, `", "`)+1)
	for {
		var k, v string
		if k, s, ok = parseString(s); !ok || !strings.HasPrefix(s, ": ") {
			return nil, false
		}
		if v, s, ok = parseString(s[2:]); !ok {
			return nil, false
		}
		if _, dup := m[k]; dup {
			return nil, false // jsonb never prints one; leave it to encoding/json
		}
		m[k] = v
		if s == "" {
			return m, true
		}
		if !strings.HasPrefix(s, ", ") {
			return nil, false
		}
		s = s[2:]
	}
}

// parseString parses a JSON string at the start of s and returns it and
// what follows. It takes the escapes jsonb prints except \u, and refuses
// what JSON forbids inside a string (control characters, invalid UTF-8).
func parseString(s string) (string, string, bool) {
	if s == "" || s[0] != '"' {
		return "", "", false
	}
	s = s[1:]
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			if !utf8.ValidString(s[:i]) {
				return "", "", false
			}
			return s[:i], s[i+1:], true
		case c == '\\':
			return parseEscaped(s, i)
		case c < 0x20:
			return "", "", false
		}
	}
	return "", "", false
}

// parseEscaped continues parseString from the first backslash, at i.
func parseEscaped(s string, i int) (string, string, bool) {
	var out strings.Builder
	out.Grow(len(s))
	out.WriteString(s[:i])
	for ; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			if !utf8.ValidString(out.String()) {
				return "", "", false
			}
			return out.String(), s[i+1:], true
		case c < 0x20:
			return "", "", false
		case c != '\\':
			out.WriteByte(c)
			continue
		}
		if i++; i == len(s) {
			return "", "", false
		}
		switch s[i] {
		case '"', '\\', '/':
			out.WriteByte(s[i])
		case 'b':
			out.WriteByte('\b')
		case 'f':
			out.WriteByte('\f')
		case 'n':
			out.WriteByte('\n')
		case 'r':
			out.WriteByte('\r')
		case 't':
			out.WriteByte('\t')
		default: // \u and anything invalid
			return "", "", false
		}
	}
	return "", "", false
}

// appendFieldsJSON appends fields as a JSON object. Key order does not
// matter: jsonb keeps its keys sorted whatever order they arrive in.
// history.Record.Validate has checked that keys and values are UTF-8.
func appendFieldsJSON(b []byte, fields map[string]string) []byte {
	b = append(b, '{')
	first := true
	for k, v := range fields {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendJSONString(b, k)
		b = append(b, ':')
		b = appendJSONString(b, v)
	}
	return append(b, '}')
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string: quote, backslash and the
// control characters escaped, everything else as it is. Invalid UTF-8
// becomes U+FFFD, as encoding/json does, so the output is always valid
// JSON (Validate refuses such strings before they get here).
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				b = append(b, s[start:i]...)
				b = append(b, "\ufffd"...)
				i++
				start = i
				continue
			}
			i += size
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		i++
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
