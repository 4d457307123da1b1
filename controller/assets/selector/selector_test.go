package selector

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

type labels struct{ tags, facts map[string]string }

func (l labels) Tag(k string) (string, bool)  { v, ok := l.tags[k]; return v, ok }
func (l labels) Fact(k string) (string, bool) { v, ok := l.facts[k]; return v, ok }

func TestParse(t *testing.T) {
	tests := []struct {
		name, in string
		want     []Requirement
		errPos   int
		errMsg   string
	}{
		{name: "the empty selector has no requirements", in: "  "},
		{name: "an equality", in: "env=prod", want: []Requirement{{Key: "env", Op: OpEquals, Values: []string{"prod"}}}},
		{name: "a double equals is an equality", in: "env==prod", want: []Requirement{{Key: "env", Op: OpEquals, Values: []string{"prod"}}}},
		{name: "an inequality", in: "env != prod", want: []Requirement{{Key: "env", Op: OpNotEquals, Values: []string{"prod"}}}},
		{name: "a set with spaces", in: "role in ( web , api )", want: []Requirement{{Key: "role", Op: OpIn, Values: []string{"web", "api"}}}},
		{name: "a negated set", in: "role notin (db)", want: []Requirement{{Key: "role", Op: OpNotIn, Values: []string{"db"}}}},
		{name: "existence and absence", in: "ready, !decommissioned", want: []Requirement{
			{Key: "ready", Op: OpExists}, {Key: "decommissioned", Op: OpNotExists}}},
		{name: "a fact", in: "facts.os=linux", want: []Requirement{{Key: "os", Fact: true, Op: OpEquals, Values: []string{"linux"}}}},
		{name: "the example from the docs", in: "env=prod,role in (web,api),!decommissioned,facts.os=linux", want: []Requirement{
			{Key: "env", Op: OpEquals, Values: []string{"prod"}}, {Key: "role", Op: OpIn, Values: []string{"web", "api"}},
			{Key: "decommissioned", Op: OpNotExists}, {Key: "os", Fact: true, Op: OpEquals, Values: []string{"linux"}}}},
		{name: "a quoted value may hold anything", in: `facts.os_version="22.04 LTS, (jammy)"`, want: []Requirement{
			{Key: "os_version", Fact: true, Op: OpEquals, Values: []string{"22.04 LTS, (jammy)"}}}},
		{name: "an empty value", in: "env=", want: []Requirement{{Key: "env", Op: OpEquals, Values: []string{""}}}},
		{name: "a key named like an operator", in: "in=1", want: []Requirement{{Key: "in", Op: OpEquals, Values: []string{"1"}}}},

		{name: "a missing key is refused at its position", in: "env=prod,=x", errPos: 9, errMsg: "expected a key"},
		{name: "a trailing comma is refused", in: "env=prod,", errPos: 9, errMsg: "expected a requirement"},
		{name: "an unknown operator is refused", in: "env>3", errPos: 3, errMsg: "expected an operator"},
		{name: "an unclosed list is refused", in: "role in (web,api", errPos: 16, errMsg: "expected ')'"},
		{name: "an empty list is refused", in: "role in ()", errPos: 9, errMsg: "must not be empty"},
		{name: "a list without parentheses is refused", in: "role in web", errPos: 8, errMsg: "expected '('"},
		{name: "an unterminated quote is refused", in: `env="prod`, errPos: 4, errMsg: "unterminated"},
		{name: "a stray character in a value is refused", in: "env=pr(od", errPos: 6, errMsg: "unexpected"},
		{name: "facts without a name is refused", in: "facts.=x", errPos: 0, errMsg: "fact name"},
		{name: "two requirements without a comma are refused", in: "a=1 b=2", errPos: 4, errMsg: "expected ','"},
		{name: "a negated equality is refused", in: "!env=prod", errPos: 4, errMsg: "expected ','"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			if tt.errMsg != "" {
				var pe *Error
				if !errors.As(err, &pe) {
					t.Fatalf("Parse(%q) error = %v, want a parse error", tt.in, err)
				}
				if pe.Pos != tt.errPos || !strings.Contains(pe.Msg, tt.errMsg) {
					t.Fatalf("Parse(%q) error = %v, want at %d containing %q", tt.in, err, tt.errPos, tt.errMsg)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if !slices.EqualFunc(got.Requirements, tt.want, func(a, b Requirement) bool {
				return a.Key == b.Key && a.Fact == b.Fact && a.Op == b.Op && slices.Equal(a.Values, b.Values)
			}) {
				t.Fatalf("Parse(%q) = %+v, want %+v", tt.in, got.Requirements, tt.want)
			}
		})
	}
}

func TestMatch(t *testing.T) {
	web := labels{tags: map[string]string{"env": "prod", "role": "web"}, facts: map[string]string{"os": "linux"}}
	db := labels{tags: map[string]string{"env": "prod", "role": "db", "decommissioned": ""}, facts: map[string]string{"os": "freebsd"}}
	bare := labels{}
	tests := []struct {
		name, sel string
		matches   []labels
		misses    []labels
	}{
		{name: "everything matches the empty selector", sel: "", matches: []labels{web, db, bare}},
		{name: "equality needs the tag", sel: "env=prod", matches: []labels{web, db}, misses: []labels{bare}},
		{name: "inequality matches an absent tag", sel: "role!=db", matches: []labels{web, bare}, misses: []labels{db}},
		{name: "in needs one of the values", sel: "role in (web,api)", matches: []labels{web}, misses: []labels{db, bare}},
		{name: "notin matches an absent tag", sel: "role notin (web)", matches: []labels{db, bare}, misses: []labels{web}},
		{name: "existence ignores the value", sel: "decommissioned", matches: []labels{db}, misses: []labels{web, bare}},
		{name: "absence", sel: "!decommissioned", matches: []labels{web, bare}, misses: []labels{db}},
		{name: "facts are read with the prefix", sel: "facts.os=linux", matches: []labels{web}, misses: []labels{db, bare}},
		{name: "a tag named like a fact is not a fact", sel: "os=linux", misses: []labels{web}},
		{name: "every requirement must hold", sel: "env=prod,role in (web,db),!decommissioned,facts.os=linux", matches: []labels{web}, misses: []labels{db, bare}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := MustParse(tt.sel)
			for _, l := range tt.matches {
				if !s.Match(l) {
					t.Errorf("%q does not match %+v", tt.sel, l)
				}
			}
			for _, l := range tt.misses {
				if s.Match(l) {
					t.Errorf("%q matches %+v", tt.sel, l)
				}
			}
		})
	}
}

func TestTagEquals(t *testing.T) {
	got := MustParse("env=prod,facts.os=linux,role in (web),tier=1").TagEquals()
	if len(got) != 2 || got["env"] != "prod" || got["tier"] != "1" {
		t.Fatalf("TagEquals = %v, want env=prod and tier=1 only", got)
	}
}

func TestLimits(t *testing.T) {
	t.Run("a selector over the length limit is refused", func(t *testing.T) {
		if _, err := Parse(strings.Repeat("a", MaxLength+1)); err == nil {
			t.Fatal("no error")
		}
	})
	t.Run("a key over the limit is refused", func(t *testing.T) {
		if _, err := Parse(strings.Repeat("k", MaxKey+1)); err == nil {
			t.Fatal("no error")
		}
	})
	t.Run("a value over the limit is refused", func(t *testing.T) {
		if _, err := Parse("k=" + strings.Repeat("v", MaxValue+1)); err == nil {
			t.Fatal("no error")
		}
	})
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"", "env=prod", "env=prod,role in (web,api),!decommissioned,facts.os=linux",
		`facts.v="a\"b"`, "role notin (a,,b)", "a!=b", "!x", "x in (", `k="\xff"`, "facts.=", "a==b,c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s, err := Parse(in)
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) || pe.Pos < 0 || pe.Pos > len(in) {
				t.Fatalf("Parse(%q) error %v has no position inside the input", in, err)
			}
			return
		}
		for _, r := range s.Requirements {
			if r.Key == "" {
				t.Fatalf("Parse(%q) gave an empty key", in)
			}
			if (r.Op == OpIn || r.Op == OpNotIn || r.Op == OpEquals || r.Op == OpNotEquals) && len(r.Values) == 0 {
				t.Fatalf("Parse(%q) gave %s without values", in, r.Op)
			}
		}
		// Parsing what was accepted again gives the same requirements.
		again, err := Parse(s.String())
		if err != nil || len(again.Requirements) != len(s.Requirements) {
			t.Fatalf("reparse of %q: %v, %d requirements, want %d", s.String(), err, len(again.Requirements), len(s.Requirements))
		}
		s.Match(labels{tags: map[string]string{"env": "prod"}})
	})
}
