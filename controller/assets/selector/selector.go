// Package selector parses and evaluates inventory selectors: the one small
// syntax that dynamic groups, role-binding scopes and job targeting use to
// pick targets by their tags and facts. It follows Kubernetes label
// selectors:
//
//	env=prod                 tag env equals prod (also env==prod)
//	env!=prod                tag env is absent or not prod
//	role in (web,api)        tag role is one of the values
//	role notin (db)          tag role is absent or none of the values
//	decommissioned           tag decommissioned exists
//	!decommissioned          tag decommissioned does not exist
//	facts.os=linux           the target's fact os equals linux
//
// Requirements are separated by commas and must all hold; the empty
// selector matches everything. A value may be double-quoted (Go string
// syntax) when it holds a comma, a parenthesis, a space or another
// character a bare value may not. The package knows nothing about targets:
// it matches anything that can look up a tag and a fact, and it must never
// grow a dependency on the assets domain.
package selector

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Op is a requirement's operator.
type Op string

// Operators.
const (
	OpEquals    Op = "="
	OpNotEquals Op = "!="
	OpIn        Op = "in"
	OpNotIn     Op = "notin"
	OpExists    Op = "exists"
	OpNotExists Op = "!exists"
)

// FactsPrefix marks a key that reads a fact instead of a tag.
const FactsPrefix = "facts."

// Limits keep a hostile selector from costing much to parse or match.
const (
	MaxLength   = 4096
	MaxKey      = 128
	MaxValue    = 256
	maxValuesIn = 100
)

// Requirement is one condition.
type Requirement struct {
	// Key is a tag key, or a fact name when Fact is set (without the
	// "facts." prefix).
	Key    string   `json:"key"`
	Fact   bool     `json:"fact,omitempty"`
	Op     Op       `json:"op"`
	Values []string `json:"values,omitempty"`
}

// Selector is a parsed selector: every requirement must hold.
type Selector struct {
	Requirements []Requirement `json:"requirements"`
	src          string
}

// Labels is what a selector matches: anything with tags and facts.
type Labels interface {
	Tag(key string) (string, bool)
	Fact(name string) (string, bool)
}

// Error is a parse error at a byte offset of the input.
type Error struct {
	Pos int
	Msg string
}

func (e *Error) Error() string { return fmt.Sprintf("at position %d: %s", e.Pos, e.Msg) }

// Everything is the selector that matches every target.
func Everything() Selector { return Selector{} }

// Empty reports whether s matches everything.
func (s Selector) Empty() bool { return len(s.Requirements) == 0 }

// String is the selector as it was written (trimmed).
func (s Selector) String() string { return s.src }

// Match reports whether l satisfies every requirement.
func (s Selector) Match(l Labels) bool {
	for _, r := range s.Requirements {
		if !r.Match(l) {
			return false
		}
	}
	return true
}

// Match reports whether l satisfies r.
func (r Requirement) Match(l Labels) bool {
	var (
		v  string
		ok bool
	)
	if r.Fact {
		v, ok = l.Fact(r.Key)
	} else {
		v, ok = l.Tag(r.Key)
	}
	switch r.Op {
	case OpEquals:
		return ok && v == r.Values[0]
	case OpNotEquals:
		return !ok || v != r.Values[0]
	case OpIn:
		return ok && slices.Contains(r.Values, v)
	case OpNotIn:
		return !ok || !slices.Contains(r.Values, v)
	case OpExists:
		return ok
	case OpNotExists:
		return !ok
	}
	return false
}

// TagEquals returns the tag equalities every match must satisfy (key=value
// requirements on tags), which an index can answer before Match runs.
func (s Selector) TagEquals() map[string]string {
	var out map[string]string
	for _, r := range s.Requirements {
		if !r.Fact && r.Op == OpEquals {
			if out == nil {
				out = map[string]string{}
			}
			if prev, dup := out[r.Key]; dup && prev != r.Values[0] {
				// Contradictory: no target matches; keep the first, Match
				// rejects every candidate anyway.
				continue
			}
			out[r.Key] = r.Values[0]
		}
	}
	return out
}

// Parse reads a selector. Errors name the byte position of the problem.
func Parse(src string) (Selector, error) {
	if len(src) > MaxLength {
		return Selector{}, &Error{Pos: MaxLength, Msg: fmt.Sprintf("selector is longer than %d bytes", MaxLength)}
	}
	p := &parser{src: src}
	sel := Selector{src: strings.TrimSpace(src)}
	p.space()
	if p.eof() {
		return sel, nil
	}
	for {
		r, err := p.requirement()
		if err != nil {
			return Selector{}, err
		}
		sel.Requirements = append(sel.Requirements, r)
		p.space()
		if p.eof() {
			return sel, nil
		}
		if p.peek() != ',' {
			return Selector{}, p.errorf("expected ',' or the end, found %q", p.peek())
		}
		p.pos++
		p.space()
		if p.eof() {
			return Selector{}, p.errorf("expected a requirement after ','")
		}
	}
}

// MustParse is Parse for selectors written in code.
func MustParse(src string) Selector {
	s, err := Parse(src)
	if err != nil {
		panic(fmt.Sprintf("selector %q: %v", src, err))
	}
	return s
}

type parser struct {
	src string
	pos int
}

func (p *parser) eof() bool  { return p.pos >= len(p.src) }
func (p *parser) peek() byte { return p.src[p.pos] }

func (p *parser) space() {
	for !p.eof() && (p.peek() == ' ' || p.peek() == '\t') {
		p.pos++
	}
}

func (p *parser) errorf(format string, args ...any) *Error {
	return &Error{Pos: p.pos, Msg: fmt.Sprintf(format, args...)}
}

// IsKeyChar reports whether c may appear in a key.
func IsKeyChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' || c == '/'
}

// isBareChar reports whether c may appear in an unquoted value.
func isBareChar(c byte) bool { return IsKeyChar(c) || c == ':' || c == '@' || c == '+' || c == '*' }

func (p *parser) requirement() (Requirement, error) {
	if p.peek() == '!' {
		p.pos++
		p.space()
		key, fact, err := p.key()
		if err != nil {
			return Requirement{}, err
		}
		return Requirement{Key: key, Fact: fact, Op: OpNotExists}, nil
	}
	key, fact, err := p.key()
	if err != nil {
		return Requirement{}, err
	}
	r := Requirement{Key: key, Fact: fact}
	p.space()
	if p.eof() || p.peek() == ',' {
		r.Op = OpExists
		return r, nil
	}
	switch {
	case strings.HasPrefix(p.src[p.pos:], "!="):
		p.pos += 2
		r.Op = OpNotEquals
	case strings.HasPrefix(p.src[p.pos:], "=="):
		p.pos += 2
		r.Op = OpEquals
	case p.peek() == '=':
		p.pos++
		r.Op = OpEquals
	case p.word("notin"):
		r.Op = OpNotIn
	case p.word("in"):
		r.Op = OpIn
	default:
		return Requirement{}, p.errorf("expected an operator (=, !=, in, notin), ',' or the end after %q, found %q", key, p.peek())
	}
	p.space()
	if r.Op == OpIn || r.Op == OpNotIn {
		vals, err := p.set()
		if err != nil {
			return Requirement{}, err
		}
		r.Values = vals
		return r, nil
	}
	v, err := p.value()
	if err != nil {
		return Requirement{}, err
	}
	r.Values = []string{v}
	return r, nil
}

// word consumes w when it stands alone (followed by a space or '(').
func (p *parser) word(w string) bool {
	if !strings.HasPrefix(p.src[p.pos:], w) {
		return false
	}
	end := p.pos + len(w)
	if end < len(p.src) && p.src[end] != ' ' && p.src[end] != '\t' && p.src[end] != '(' {
		return false
	}
	p.pos = end
	return true
}

func (p *parser) key() (string, bool, error) {
	start := p.pos
	for !p.eof() && IsKeyChar(p.peek()) {
		p.pos++
	}
	key := p.src[start:p.pos]
	if key == "" {
		if p.eof() {
			return "", false, p.errorf("expected a key, found the end")
		}
		return "", false, p.errorf("expected a key, found %q", p.peek())
	}
	if len(key) > MaxKey {
		return "", false, &Error{Pos: start, Msg: fmt.Sprintf("key is longer than %d characters", MaxKey)}
	}
	if name, ok := strings.CutPrefix(key, FactsPrefix); ok {
		if name == "" {
			return "", false, &Error{Pos: start, Msg: `"facts." needs a fact name after it`}
		}
		return name, true, nil
	}
	return key, false, nil
}

func (p *parser) value() (string, error) {
	start := p.pos
	if !p.eof() && p.peek() == '"' {
		// Find the closing quote, honouring backslash escapes, and let
		// strconv decide what the escapes mean.
		i := p.pos + 1
		for i < len(p.src) && p.src[i] != '"' {
			if p.src[i] == '\\' {
				i++
			}
			i++
		}
		if i >= len(p.src) {
			return "", &Error{Pos: start, Msg: "unterminated quoted value"}
		}
		v, err := strconv.Unquote(p.src[start : i+1])
		if err != nil {
			return "", &Error{Pos: start, Msg: "malformed quoted value"}
		}
		p.pos = i + 1
		if len(v) > MaxValue {
			return "", &Error{Pos: start, Msg: fmt.Sprintf("value is longer than %d bytes", MaxValue)}
		}
		return v, nil
	}
	for !p.eof() && isBareChar(p.peek()) {
		p.pos++
	}
	v := p.src[start:p.pos]
	if len(v) > MaxValue {
		return "", &Error{Pos: start, Msg: fmt.Sprintf("value is longer than %d bytes", MaxValue)}
	}
	if !p.eof() && p.peek() != ',' && p.peek() != ' ' && p.peek() != '\t' && p.peek() != ')' {
		return "", p.errorf("unexpected %q in a value (quote the value to use it)", p.peek())
	}
	return v, nil
}

func (p *parser) set() ([]string, error) {
	if p.eof() || p.peek() != '(' {
		return nil, p.errorf("expected '(' to start a list of values")
	}
	p.pos++
	var vals []string
	for {
		p.space()
		if len(vals) == 0 && !p.eof() && p.peek() == ')' {
			return nil, p.errorf("a list of values must not be empty")
		}
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		vals = append(vals, v)
		if len(vals) > maxValuesIn {
			return nil, p.errorf("more than %d values in a list", maxValuesIn)
		}
		p.space()
		if p.eof() {
			return nil, p.errorf("expected ')' to close the list of values")
		}
		switch p.peek() {
		case ',':
			p.pos++
		case ')':
			p.pos++
			return vals, nil
		default:
			return nil, p.errorf("expected ',' or ')' in a list of values, found %q", p.peek())
		}
	}
}
