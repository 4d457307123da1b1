package schema

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/big"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"

	"github.com/opsconductor/opsconductor/controller/problem"
)

// FieldError is one problem with one parameter.
type FieldError struct {
	// Path names the parameter from the root: "params.port",
	// "params.headers.Accept", "params.args[2]", `params["a b"]`.
	Path string `json:"path"`
	// Rule is the JSON Schema keyword that failed ("required", "maximum",
	// "enum", "type", …), or "json" and "size" for a document that could
	// not be read at all.
	Rule string `json:"rule"`
	// Message says what is wrong in words, without the path.
	Message string `json:"message"`
}

func (f FieldError) String() string { return f.Path + ": " + f.Message }

// ValidationError carries every problem found at once, sorted by path.
//
// It unwraps to a *problem.Error of kind invalid, so that the gateway maps it
// to a 400 whose details list each field, without knowing this package.
type ValidationError struct {
	Fields []FieldError
}

func (e *ValidationError) Error() string {
	msgs := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		msgs[i] = f.String()
	}
	return strings.Join(msgs, "; ")
}

// Unwrap returns the problem form of e (see the type's comment).
func (e *ValidationError) Unwrap() error {
	if len(e.Fields) == 0 {
		return nil
	}
	p := &problem.Error{Kind: problem.KindInvalid, Code: "invalid_params", Field: e.Fields[0].Path,
		Message: e.Fields[0].Message}
	if len(e.Fields) > 1 {
		p.Message = fmt.Sprintf("%s (and %d more problems)", p.Message, len(e.Fields)-1)
		for _, f := range e.Fields {
			p.Details = append(p.Details, problem.Error{Kind: problem.KindInvalid, Code: f.Rule,
				Field: f.Path, Message: f.Message})
		}
	}
	return p
}

func newValidationError(fields []FieldError) *ValidationError {
	sort.SliceStable(fields, func(i, j int) bool { return fields[i].Path < fields[j].Path })
	out := fields[:0]
	for i, f := range fields {
		if i > 0 && f == fields[i-1] {
			continue
		}
		out = append(out, f)
	}
	return &ValidationError{Fields: out}
}

// fieldErrors flattens the library's tree of errors into one FieldError per
// failed rule. Wrapper kinds (the root, allOf, $ref) only group their causes
// and add nothing a reader needs; anyOf and oneOf are reported once, at their
// own path, with each alternative's problems, because listing the branches'
// failures as separate problems would ask the user to fix all of them.
func fieldErrors(ve *jsonschema.ValidationError, root string, doc any) []FieldError {
	var out []FieldError
	collect(ve, root, doc, &out)
	return out
}

func collect(ve *jsonschema.ValidationError, root string, doc any, out *[]FieldError) {
	loc := ve.InstanceLocation
	at := func(extra ...string) string {
		return pathOf(root, doc, append(append([]string(nil), loc...), extra...))
	}
	add := func(path, rule, msg string) { *out = append(*out, FieldError{Path: path, Rule: rule, Message: msg}) }
	switch k := ve.ErrorKind.(type) {
	case *kind.Schema, *kind.Group, *kind.AllOf, *kind.Reference:
		for _, c := range ve.Causes {
			collect(c, root, doc, out)
		}
		return
	case *kind.AnyOf:
		add(at(), "anyOf", "must match at least one of: "+alternatives(ve.Causes, root, doc))
	case *kind.OneOf:
		if len(k.Subschemas) == 0 {
			add(at(), "oneOf", "must match exactly one of: "+alternatives(ve.Causes, root, doc))
		} else {
			add(at(), "oneOf", fmt.Sprintf("must match exactly one of the allowed forms, but matches forms %d and %d",
				k.Subschemas[0]+1, k.Subschemas[1]+1))
		}
	case *kind.Not:
		add(at(), "not", "must not match the excluded form")
	case *kind.FalseSchema:
		add(at(), "false", "not allowed")
	case *kind.Required:
		for _, m := range k.Missing {
			add(at(m), "required", "required")
		}
	case *kind.DependentRequired:
		for _, m := range k.Missing {
			add(at(m), "dependentRequired", fmt.Sprintf("required when %s is set", k.Prop))
		}
	case *kind.Dependency:
		for _, m := range k.Missing {
			add(at(m), "dependencies", fmt.Sprintf("required when %s is set", k.Prop))
		}
	case *kind.AdditionalProperties:
		msg := "unknown field"
		if len(loc) == 0 && root == "params" {
			msg = "unknown parameter"
		}
		for _, p := range k.Properties {
			add(at(p), "additionalProperties", msg)
		}
	case *kind.Type:
		add(at(), "type", fmt.Sprintf("must be %s, not %s", strings.Join(k.Want, " or "), k.Got))
	case *kind.Enum:
		add(at(), "enum", enumMessage(k.Want))
	case *kind.Const:
		add(at(), "const", "must be "+display(k.Want))
	case *kind.Minimum:
		add(at(), "minimum", "must be >= "+rat(k.Want))
	case *kind.Maximum:
		add(at(), "maximum", "must be <= "+rat(k.Want))
	case *kind.ExclusiveMinimum:
		add(at(), "exclusiveMinimum", "must be > "+rat(k.Want))
	case *kind.ExclusiveMaximum:
		add(at(), "exclusiveMaximum", "must be < "+rat(k.Want))
	case *kind.MultipleOf:
		add(at(), "multipleOf", "must be a multiple of "+rat(k.Want))
	case *kind.MinLength:
		add(at(), "minLength", fmt.Sprintf("must be at least %d characters long", k.Want))
	case *kind.MaxLength:
		add(at(), "maxLength", fmt.Sprintf("must be at most %d characters long", k.Want))
	case *kind.Pattern:
		add(at(), "pattern", "must match the pattern "+k.Want)
	case *kind.Format:
		msg := "must be a valid " + k.Want
		if k.Err != nil {
			msg += ": " + k.Err.Error()
		}
		add(at(), "format", msg)
	case *kind.MinItems:
		add(at(), "minItems", fmt.Sprintf("must have at least %d items", k.Want))
	case *kind.MaxItems:
		add(at(), "maxItems", fmt.Sprintf("must have at most %d items", k.Want))
	case *kind.UniqueItems:
		add(at(), "uniqueItems", fmt.Sprintf("items must be unique, but items %d and %d are equal",
			k.Duplicates[0], k.Duplicates[1]))
	case *kind.MinProperties:
		add(at(), "minProperties", fmt.Sprintf("must have at least %d fields", k.Want))
	case *kind.MaxProperties:
		add(at(), "maxProperties", fmt.Sprintf("must have at most %d fields", k.Want))
	case *kind.PropertyNames:
		loc = objectWithKey(doc, loc, k.Property)
		add(at(k.Property), "propertyNames", "is not an allowed name")
	case *kind.Contains:
		add(at(), "contains", "must contain an item of the required form")
	case *kind.MinContains:
		add(at(), "minContains", fmt.Sprintf("must contain at least %d items of the required form", k.Want))
	case *kind.MaxContains:
		add(at(), "maxContains", fmt.Sprintf("must contain at most %d items of the required form", k.Want))
	case *kind.ContentEncoding:
		add(at(), "contentEncoding", "must be "+k.Want+" encoded")
	case *kind.ContentMediaType:
		add(at(), "contentMediaType", "must be of media type "+k.Want)
	default:
		// The kinds left (reference cycles, values that are not JSON)
		// describe the schema or the decoder rather than a parameter;
		// naming the rule is all a reader can act on.
		rule := "schema"
		if kp := ve.ErrorKind.KeywordPath(); len(kp) > 0 {
			rule = kp[0]
		}
		add(at(), rule, fmt.Sprintf("fails the %s rule", rule))
	}
}

// alternatives describes why each branch of an anyOf or oneOf failed.
func alternatives(causes []*jsonschema.ValidationError, root string, doc any) string {
	alts := make([]string, 0, len(causes))
	for _, c := range causes {
		fs := fieldErrors(c, root, doc)
		msgs := make([]string, len(fs))
		for i, f := range fs {
			msgs[i] = f.String()
		}
		alts = append(alts, "("+strings.Join(msgs, "; ")+")")
	}
	return strings.Join(alts, " or ")
}

func enumMessage(want []any) string {
	if len(want) == 1 {
		return "must be " + display(want[0])
	}
	vals := make([]string, len(want))
	for i, v := range want {
		vals[i] = display(v)
	}
	return "must be one of " + strings.Join(vals, ", ")
}

// display shows strings bare (GET, not "GET") and everything else as JSON.
func display(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

func rat(r *big.Rat) string {
	if r == nil {
		return "?"
	}
	if r.IsInt() {
		return r.Num().String()
	}
	f, _ := r.Float64()
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// objectWithKey repairs the location of a propertyNames error.
// jsonschema v6.0.3 stores that error's instance location without copying
// it (validator.go, propertyNames), so validating a sibling field later may
// overwrite its tokens: {"env": {"A=B": …}, "command": …} could report
// the bad name under "command". Only the length is reliable, so look for
// the object at that depth that holds the key: loc itself if it does, else
// the first such object in key order.
func objectWithKey(doc any, loc []string, key string) []string {
	if obj, ok := valueAt(doc, loc).(map[string]any); ok {
		if _, has := obj[key]; has {
			return loc
		}
	}
	var found []string
	var walk func(v any, path []string)
	walk = func(v any, path []string) {
		if found != nil {
			return
		}
		if len(path) == len(loc) {
			if obj, ok := v.(map[string]any); ok {
				if _, has := obj[key]; has {
					found = slices.Clone(path)
				}
			}
			return
		}
		switch x := v.(type) {
		case map[string]any:
			keys := slices.Sorted(maps.Keys(x))
			for _, k := range keys {
				walk(x[k], append(path, k))
			}
		case []any:
			for i, item := range x {
				walk(item, append(path, strconv.Itoa(i)))
			}
		}
	}
	walk(doc, make([]string, 0, len(loc)))
	if found == nil {
		return loc
	}
	return found
}

// valueAt follows JSON pointer tokens into doc; nil when they lead nowhere.
func valueAt(doc any, tokens []string) any {
	v := doc
	for _, t := range tokens {
		switch x := v.(type) {
		case map[string]any:
			v = x[t]
		case []any:
			i, err := strconv.Atoi(t)
			if err != nil || i < 0 || i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}

// pathOf renders a JSON pointer's tokens as a path a person reads:
// params.headers.Accept, params.args[2], params["content-type"]. It walks
// the document alongside, because only the document says whether "2" is an
// array index or an object key.
func pathOf(root string, doc any, tokens []string) string {
	var b strings.Builder
	b.WriteString(root)
	v := doc
	for _, t := range tokens {
		switch x := v.(type) {
		case []any:
			if i, err := strconv.Atoi(t); err == nil && i >= 0 {
				fmt.Fprintf(&b, "[%d]", i)
				v = nil
				if i < len(x) {
					v = x[i]
				}
				continue
			}
			v = nil
		case map[string]any:
			v = x[t]
		default:
			v = nil
		}
		if isIdent(t) {
			b.WriteByte('.')
			b.WriteString(t)
		} else {
			fmt.Fprintf(&b, "[%s]", strconv.Quote(t))
		}
	}
	return b.String()
}

// isIdent reports whether a key can be shown after a dot without ambiguity.
func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case i > 0 && (r >= '0' && r <= '9' || r == '-'):
		default:
			return false
		}
	}
	return true
}
