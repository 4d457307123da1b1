package tmpl

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"net/url"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"
)

// errTooLarge is returned by a function whose result would exceed
// MaxOutput; a template cannot grow a value past that by doubling it in a
// loop ({{$x = print $x $x}}).
var errTooLarge = fmt.Errorf("value exceeds %d bytes", MaxOutput)

// maxWidth bounds printf widths and precisions: "%0999999999d" would
// otherwise allocate a gigabyte before any output limit could see it.
const maxWidth = 1000

// funcs is the function map every template gets. It deliberately holds no
// exec, env, file or network access, and it replaces the text/template
// built-ins that format (print, printf, println, html, js, urlquery) with
// versions whose results are bounded. guard is the per-render step counter
// (see guard.go); at compile time it is a no-op.
func funcs(guard func() (bool, error)) map[string]any {
	return map[string]any{
		guardFunc:     guard,
		callGuardFunc: guard,

		"print":    safePrint,
		"println":  safePrintln,
		"printf":   safePrintf,
		"html":     escaper(htmltemplate.HTMLEscapeString),
		"js":       escaper(htmltemplate.JSEscapeString),
		"urlquery": escaper(url.QueryEscape),

		"upper":        func(s string) (string, error) { return bounded(strings.ToUpper(s)) },
		"lower":        func(s string) (string, error) { return bounded(strings.ToLower(s)) },
		"trim":         strings.TrimSpace,
		"trunc":        trunc,
		"join":         join,
		"default":      defaultValue,
		"duration":     duration,
		"time":         formatTime,
		"json":         toJSON,
		"slack_escape": slackEscape,
	}
}

func bounded(s string) (string, error) {
	if len(s) > MaxOutput {
		return "", errTooLarge
	}
	return s, nil
}

// capBuffer is a buffer that refuses to grow past MaxOutput.
type capBuffer struct{ bytes.Buffer }

func (b *capBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > MaxOutput {
		return 0, errTooLarge
	}
	return b.Buffer.Write(p)
}

// safePrint is fmt.Sprint, formatting one operand at a time so that the
// result is refused as soon as it grows too large rather than after it has
// been built.
func safePrint(args ...any) (string, error) {
	var b capBuffer
	for i, a := range args {
		_, isStr := a.(string)
		if i > 0 && !isStr {
			if _, prevStr := args[i-1].(string); !prevStr {
				if _, err := b.WriteString(" "); err != nil {
					return "", err
				}
			}
		}
		if _, err := fmt.Fprint(&b, a); err != nil {
			return "", err
		}
	}
	return b.String(), nil
}

func safePrintln(args ...any) (string, error) {
	var b capBuffer
	for i, a := range args {
		if i > 0 {
			if _, err := b.WriteString(" "); err != nil {
				return "", err
			}
		}
		if _, err := fmt.Fprint(&b, a); err != nil {
			return "", err
		}
	}
	if _, err := b.WriteString("\n"); err != nil {
		return "", err
	}
	return b.String(), nil
}

// safePrintf is fmt.Sprintf without '*' widths, explicit argument indexes
// (which would let one large argument be repeated) or widths and precisions
// above maxWidth. With each argument used at most once, the result is at
// most the format plus the arguments plus maxWidth per verb, and that is
// checked before formatting.
func safePrintf(format string, args ...any) (string, error) {
	verbs := 0
	for i := 0; i < len(format); i++ {
		if format[i] != '%' {
			continue
		}
		i++
		num := 0
		for ; i < len(format); i++ {
			c := format[i]
			switch {
			case c == '*' || c == '[':
				return "", fmt.Errorf("printf: %q: '*' and argument indexes are not allowed", format)
			case c >= '0' && c <= '9':
				num = num*10 + int(c-'0')
				if num > maxWidth {
					return "", fmt.Errorf("printf: %q: width or precision above %d", format, maxWidth)
				}
				continue
			case c == '.':
				num = 0
				continue
			case strings.IndexByte("+-# ", c) >= 0:
				continue
			}
			break
		}
		verbs++
	}
	size := len(format) + verbs*maxWidth
	for _, a := range args {
		size += approxSize(a)
	}
	// %q and %x may double or sextuple an operand; refuse what could
	// not fit even before those.
	if size > 8*MaxOutput {
		return "", errTooLarge
	}
	return bounded(fmt.Sprintf(format, args...))
}

// approxSize is the length of a printed operand: strings and byte slices by
// length, anything else by printing it (event data is bounded, so that is
// cheap).
func approxSize(a any) int {
	switch v := a.(type) {
	case string:
		return len(v)
	case []byte:
		return len(v)
	case htmltemplate.HTML:
		return len(v)
	}
	s, err := safePrint(a)
	if err != nil {
		return MaxOutput + 1
	}
	return len(s)
}

func escaper(esc func(string) string) func(args ...any) (string, error) {
	return func(args ...any) (string, error) {
		s, err := safePrint(args...)
		if err != nil {
			return "", err
		}
		return bounded(esc(s))
	}
}

func trunc(n int, s string) string {
	if n < 0 {
		n = 0
	}
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	i, count := 0, 0
	for i = range s {
		if count == n {
			break
		}
		count++
	}
	return s[:i] + "…"
}

func join(sep string, list any) (string, error) {
	v := reflect.ValueOf(list)
	if !v.IsValid() {
		return "", nil
	}
	if v.Kind() != reflect.Slice && v.Kind() != reflect.Array {
		return "", fmt.Errorf("join: want a list, got %s", v.Type())
	}
	var b capBuffer
	for i := range v.Len() {
		if i > 0 {
			if _, err := b.WriteString(sep); err != nil {
				return "", err
			}
		}
		if _, err := fmt.Fprint(&b, v.Index(i).Interface()); err != nil {
			return "", err
		}
	}
	return b.String(), nil
}

// defaultValue returns v, or def when v is missing or the zero value of its
// type (so "default \"-\" .Run.Reason" shows "-" for an empty reason).
func defaultValue(def, v any) any {
	rv := reflect.ValueOf(v)
	if !rv.IsValid() || rv.IsZero() {
		return def
	}
	return v
}

// duration renders a duration for people: whole seconds from a minute up,
// milliseconds below.
func duration(v any) (string, error) {
	var d time.Duration
	switch x := v.(type) {
	case time.Duration:
		d = x
	case int:
		d = time.Duration(x)
	case int64:
		d = time.Duration(x)
	default:
		return "", fmt.Errorf("duration: want a duration, got %T", v)
	}
	switch {
	case d >= time.Minute || d <= -time.Minute:
		d = d.Round(time.Second)
	case d >= time.Second || d <= -time.Second:
		d = d.Round(100 * time.Millisecond)
	default:
		d = d.Round(time.Millisecond)
	}
	return d.String(), nil
}

var namedLayouts = map[string]string{
	"RFC3339":  time.RFC3339,
	"RFC1123":  time.RFC1123,
	"RFC822":   time.RFC822,
	"Kitchen":  time.Kitchen,
	"DateTime": time.DateTime,
	"DateOnly": time.DateOnly,
	"TimeOnly": time.TimeOnly,
}

// formatTime is "time T" (RFC3339 in UTC) or "time LAYOUT T"; a zero time
// renders as the empty string, so an unfinished run shows nothing rather
// than the year 1.
func formatTime(args ...any) (string, error) {
	layout := time.RFC3339
	switch len(args) {
	case 1:
	case 2:
		l, ok := args[0].(string)
		if !ok {
			return "", fmt.Errorf("time: layout must be a string, got %T", args[0])
		}
		if named, ok := namedLayouts[l]; ok {
			l = named
		}
		if len(l) > 100 {
			return "", errors.New("time: layout longer than 100 bytes")
		}
		layout = l
	default:
		return "", fmt.Errorf("time: want [LAYOUT] TIME, got %d arguments", len(args))
	}
	t, ok := args[len(args)-1].(time.Time)
	if !ok {
		return "", fmt.Errorf("time: want a time, got %T", args[len(args)-1])
	}
	if t.IsZero() {
		return "", nil
	}
	return t.UTC().Format(layout), nil
}

// toJSON encodes v for a JSON document; strings come out quoted, so
// {"text": {{json .Summary}}} is valid whatever the summary holds.
func toJSON(v any) (string, error) {
	var b capBuffer
	enc := json.NewEncoder(&b)
	if err := enc.Encode(v); err != nil {
		if errors.Is(err, errTooLarge) {
			return "", errTooLarge
		}
		return "", fmt.Errorf("json: %w", err)
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}

var slackReplacer = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// slackEscape escapes the three characters Slack (and Mattermost's Slack
// compatibility) treat as markup in message text.
func slackEscape(v any) (string, error) {
	s, err := safePrint(v)
	if err != nil {
		return "", err
	}
	return bounded(slackReplacer.Replace(s))
}
