package jobspec

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"

	"github.com/opsconductor/opsconductor/controller/problem"
)

// ResolveParams checks the parameters given for a run and applies defaults.
// Unknown names are refused; a string is converted to the declared type
// (`-p batch=5` on the command line gives "5" for an integer; arrays and
// objects are read as JSON); numbers from a JSON body become int for
// integer parameters. Pattern, min, max, enum and required are enforced.
// Every problem is reported at once, each named `params.<name>`.
func (j *Job) ResolveParams(in map[string]any) (map[string]any, error) {
	var probs problem.List
	declared := make(map[string]*Param, len(j.Params))
	for i := range j.Params {
		declared[j.Params[i].Name] = &j.Params[i]
	}
	for _, name := range sortedKeys(in) {
		if _, ok := declared[name]; !ok {
			probs.Add(joinKey("params", name), "unknown parameter")
		}
	}
	out := make(map[string]any, len(j.Params))
	for i := range j.Params {
		p := &j.Params[i]
		path := joinKey("params", p.Name)
		v, given := in[p.Name]
		if !given || v == nil {
			if p.Default == nil {
				if p.Required {
					probs.Add(path, "required")
				}
				continue
			}
			// A run gets its own copy: a list or object default must not
			// be shared between runs and the job definition.
			v = clonePlain(p.Default)
		}
		val, err := p.coerce(v)
		if err != nil {
			if p.Secret {
				// The message would quote the value; a secret is never
				// echoed, not even back to the one who typed it.
				probs.Add(path, "is not a valid %s", p.TypeName())
				continue
			}
			probs.Add(path, "%v", err)
			continue
		}
		if err := p.check(val); err != nil {
			probs.Add(path, "%v", err)
			continue
		}
		out[p.Name] = val
	}
	if err := probs.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// coerce converts v to the parameter's type: int for integer, float64 for
// number, bool, string, []any or map[string]any. Strings are parsed, since
// the command line and query strings carry only text.
func (p *Param) coerce(v any) (any, error) {
	if n, ok := v.(json.Number); ok {
		v = normaliseJSON("", n, &problem.List{})
	}
	if i, ok := v.(int64); ok {
		v = int(i)
	}
	s, isStr := v.(string)
	switch p.TypeName() {
	case TypeString:
		if !isStr {
			return nil, fmt.Errorf("must be a string, not %s", kindOf(v))
		}
		return s, nil
	case TypeInteger:
		switch x := v.(type) {
		case int:
			return x, nil
		case float64:
			if x == math.Trunc(x) && math.Abs(x) <= 1<<53 {
				return int(x), nil
			}
		case string:
			if i, err := strconv.Atoi(strings.TrimSpace(x)); err == nil {
				return i, nil
			}
		}
		return nil, fmt.Errorf("must be an integer, not %s", describe(v))
	case TypeNumber:
		if f, ok := toFloat(v); ok {
			return f, nil
		}
		if isStr {
			f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
			if err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
				return f, nil
			}
		}
		return nil, fmt.Errorf("must be a number, not %s", describe(v))
	case TypeBoolean:
		if b, ok := v.(bool); ok {
			return b, nil
		}
		if isStr {
			if b, err := strconv.ParseBool(strings.TrimSpace(s)); err == nil {
				return b, nil
			}
		}
		return nil, fmt.Errorf("must be true or false, not %s", describe(v))
	case TypeArray:
		if isStr {
			v = fromJSONText(s)
		}
		if l, ok := v.([]any); ok {
			return l, nil
		}
		return nil, fmt.Errorf("must be a list (JSON on the command line), not %s", describe(v))
	case TypeObject:
		if isStr {
			v = fromJSONText(s)
		}
		if m, ok := v.(map[string]any); ok {
			return m, nil
		}
		return nil, fmt.Errorf("must be an object (JSON on the command line), not %s", describe(v))
	}
	return nil, fmt.Errorf("has unknown type %q", p.Type)
}

// fromJSONText reads s as JSON, returning s itself when it is not JSON so
// that the caller's type error shows what was given.
func fromJSONText(s string) any {
	v, err := decodeJSONValue(s)
	if err != nil {
		return s
	}
	return v
}

func decodeJSONValue(s string) (any, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	var probs problem.List
	v = normaliseJSON("", v, &probs)
	return v, probs.Err()
}

// check enforces pattern, min, max and enum on a value of the right type.
func (p *Param) check(v any) error {
	if p.Pattern != "" {
		if s, ok := v.(string); ok {
			re, err := regexp.Compile(p.Pattern)
			if err != nil {
				return fmt.Errorf("the parameter's pattern does not compile: %v", err)
			}
			if !re.MatchString(s) {
				return fmt.Errorf("must match the pattern %s", p.Pattern)
			}
		}
	}
	if f, ok := toFloat(v); ok {
		if p.Min != nil && f < *p.Min {
			return fmt.Errorf("must be >= %s", textOf(*p.Min))
		}
		if p.Max != nil && f > *p.Max {
			return fmt.Errorf("must be <= %s", textOf(*p.Max))
		}
	}
	if len(p.Enum) > 0 {
		for _, e := range p.Enum {
			if equalValues(e, v) {
				return nil
			}
		}
		vals := make([]string, len(p.Enum))
		for i, e := range p.Enum {
			vals[i] = textOf(e)
		}
		return fmt.Errorf("must be one of %s", strings.Join(vals, ", "))
	}
	return nil
}

// equalValues compares plain values, numbers by value (1 == 1.0).
func equalValues(a, b any) bool {
	fa, oka := toFloat(a)
	fb, okb := toFloat(b)
	if oka && okb {
		return fa == fb
	}
	if oka != okb {
		return false
	}
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}

// describe shows a rejected value briefly.
func describe(v any) string {
	if s, ok := v.(string); ok {
		if len(s) > 40 {
			s = s[:40] + "…"
		}
		return strconv.Quote(s)
	}
	return kindOf(v)
}

// clonePlain deep-copies lists and objects of plain values.
func clonePlain(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = clonePlain(e)
		}
		return m
	case []any:
		l := make([]any, len(x))
		for i, e := range x {
			l[i] = clonePlain(e)
		}
		return l
	}
	return v
}
