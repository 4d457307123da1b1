package jobspec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/opsconductor/opsconductor/controller/problem"
)

// maxNodes bounds the values a document may expand to, so that YAML
// aliases cannot turn a small document into a huge one; maxDepth bounds
// nesting, which no job needs beyond a few levels and which would make
// building error paths quadratic.
const (
	maxNodes = 100_000
	maxDepth = 64
)

// Parse decodes a job definition from YAML or JSON (JSON when the first
// non-space byte is '{'). Decoding is strict: an unknown key, a value of the
// wrong type or a malformed duration is an error naming its path
// (`steps[1].retires: unknown field`), and every such problem is reported
// at once as a *problem.Error (see problem.List.Err). Parse does not
// validate the job's meaning; call Validate for that.
//
// The returned Job has its expressions compiled (see Compile).
func Parse(data []byte) (*Job, error) {
	tree, err := decodeTree(data)
	if err != nil {
		return nil, err
	}
	j := &Job{}
	if err := fromTree(tree, j); err != nil {
		return nil, err
	}
	j.Compile()
	return j, nil
}

// ParsePartial is Parse that also returns what did decode when some
// values did not (nil only when the document itself is unreadable), so
// that a caller can validate the rest and report every problem at once.
func ParsePartial(data []byte) (*Job, error) {
	tree, err := decodeTree(data)
	if err != nil {
		return nil, err
	}
	j := &Job{}
	err = fromTree(tree, j)
	j.Compile()
	return j, err
}

// UnmarshalJSON decodes a job exactly as Parse does, so that a job read back
// from storage equals the one that was parsed (numbers keep their integer
// or float type) and has its expressions compiled.
func (j *Job) UnmarshalJSON(data []byte) error {
	tree, err := decodeJSON(data)
	if err != nil {
		return err
	}
	var out Job
	if err := fromTree(tree, &out); err != nil {
		return err
	}
	out.Compile()
	*j = out
	return nil
}

func fromTree(tree any, j *Job) error {
	var probs problem.List
	d := decoder{probs: &probs}
	d.decode("", tree, reflect.ValueOf(j).Elem())
	return probs.Err()
}

// decodeTree turns YAML or JSON into plain values: map[string]any, []any,
// string, bool, int, float64 and nil. Both formats normalise to the same
// values, so a job reads the same whichever was used.
func decodeTree(data []byte) (any, error) {
	if len(data) > MaxJobSize {
		return nil, problem.New(problem.KindTooLarge, "job_too_large", "a job definition is limited to %d bytes", MaxJobSize)
	}
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) > 0 && trimmed[0] == '{' {
		return decodeJSON(data)
	}
	return decodeYAML(data)
}

func decodeJSON(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, problem.Invalid("", "not valid JSON: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, problem.Invalid("", "not valid JSON: data after the job object")
	}
	if d := depthOf(v, 0); d > maxDepth {
		return nil, problem.Invalid("", "nested more than %d levels deep", maxDepth)
	}
	var probs problem.List
	v = normaliseJSON("", v, &probs)
	if err := probs.Err(); err != nil {
		return nil, err
	}
	return v, nil
}

// depthOf measures nesting, stopping early once past maxDepth.
func depthOf(v any, d int) int {
	if d > maxDepth {
		return d
	}
	deepest := d
	switch x := v.(type) {
	case map[string]any:
		for _, e := range x {
			deepest = max(deepest, depthOf(e, d+1))
		}
	case []any:
		for _, e := range x {
			deepest = max(deepest, depthOf(e, d+1))
		}
	}
	return deepest
}

func normaliseJSON(path string, v any, probs *problem.List) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return int(i)
		}
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil || math.IsInf(f, 0) {
			probs.Add(path, "number %s is out of range", x)
			return nil
		}
		return f
	case map[string]any:
		for _, k := range sortedKeys(x) {
			x[k] = normaliseJSON(joinKey(path, k), x[k], probs)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = normaliseJSON(fmt.Sprintf("%s[%d]", path, i), e, probs)
		}
		return x
	}
	return v
}

func decodeYAML(data []byte) (any, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, problem.Invalid("", "empty job definition")
		}
		return nil, problem.Invalid("", "not valid YAML: %v", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, problem.Invalid("", "not valid YAML: a job definition is one document")
	}
	var probs problem.List
	c := yamlConverter{probs: &probs}
	v := c.convert("", &doc)
	if err := probs.Err(); err != nil {
		return nil, err
	}
	return v, nil
}

type yamlConverter struct {
	probs *problem.List
	nodes int
	depth int
	// active holds the aliased nodes being converted, to refuse an alias
	// that refers to a node containing it.
	active map[*yaml.Node]bool
	failed bool
}

func (c *yamlConverter) convert(path string, n *yaml.Node) any {
	if c.failed {
		return nil
	}
	c.nodes++
	switch {
	case c.nodes > maxNodes:
		c.probs.Add(path, "the document expands to more than %d values", maxNodes)
		c.failed = true
		return nil
	case c.depth > maxDepth:
		c.probs.Add(path, "nested more than %d levels deep", maxDepth)
		c.failed = true
		return nil
	}
	c.depth++
	defer func() { c.depth-- }()
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil
		}
		return c.convert(path, n.Content[0])
	case yaml.AliasNode:
		if n.Alias == nil {
			return nil
		}
		if c.active == nil {
			c.active = map[*yaml.Node]bool{}
		}
		if c.active[n.Alias] {
			c.probs.Add(path, "line %d: alias *%s refers to a value that contains it", n.Line, n.Value)
			c.failed = true
			return nil
		}
		c.active[n.Alias] = true
		defer delete(c.active, n.Alias)
		return c.convert(path, n.Alias)
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for i, e := range n.Content {
			out = append(out, c.convert(fmt.Sprintf("%s[%d]", path, i), e))
		}
		return out
	case yaml.MappingNode:
		out := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind == yaml.AliasNode && k.Alias != nil {
				k = k.Alias
			}
			if k.Kind != yaml.ScalarNode || k.ShortTag() == "!!merge" || k.ShortTag() == "!!null" {
				c.probs.Add(path, "line %d: keys must be plain strings (merge keys are not supported)", k.Line)
				continue
			}
			key := k.Value
			if _, dup := out[key]; dup {
				c.probs.Add(joinKey(path, key), "line %d: key given twice", k.Line)
				continue
			}
			out[key] = c.convert(joinKey(path, key), v)
		}
		return out
	case yaml.ScalarNode:
		return c.scalar(path, n)
	}
	return nil
}

func (c *yamlConverter) scalar(path string, n *yaml.Node) any {
	switch n.ShortTag() {
	case "!!null":
		return nil
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			c.probs.Add(path, "line %d: %v", n.Line, err)
			return nil
		}
		return b
	case "!!int":
		var i int64
		if err := n.Decode(&i); err != nil {
			c.probs.Add(path, "line %d: integer %s is out of range", n.Line, n.Value)
			return nil
		}
		return int(i)
	case "!!float":
		var f float64
		if err := n.Decode(&f); err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			c.probs.Add(path, "line %d: %s is not a finite number", n.Line, n.Value)
			return nil
		}
		return f
	}
	// Strings, and everything else YAML can tag (timestamps, binary) kept
	// as the text written: a job means what it says, not what a YAML
	// resolver guesses.
	return n.Value
}

// joinKey appends an object key to a path the way people read it:
// steps[1].with.url, with["Content-Type"].
func joinKey(path, key string) string {
	if isIdent(key) {
		if path == "" {
			return key
		}
		return path + "." + key
	}
	return path + "[" + strconv.Quote(key) + "]"
}

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

// decoder fills Go values from plain values by their json tags, reporting
// each mismatch at its path and carrying on, so that a user sees every
// problem in one go.
type decoder struct {
	probs *problem.List
}

var (
	durationType = reflect.TypeFor[Duration]()
	anyType      = reflect.TypeFor[any]()
)

func (d *decoder) decode(path string, v any, rv reflect.Value) {
	d.decodeOpt(path, v, rv, false)
}

// decodeOpt decodes v into rv; numstr lets a string field take a number
// (batch_size: 5).
func (d *decoder) decodeOpt(path string, v any, rv reflect.Value, numstr bool) {
	if v == nil {
		// null means "not given": the field keeps its zero value.
		return
	}
	t := rv.Type()
	if t == durationType {
		s, ok := v.(string)
		if !ok {
			d.probs.Add(path, "must be a duration string such as 30s or 1h30m")
			return
		}
		dur, err := parseDuration(s)
		if err != nil {
			d.probs.Add(path, "%v", err)
			return
		}
		rv.Set(reflect.ValueOf(dur))
		return
	}
	switch t.Kind() {
	case reflect.String:
		switch x := v.(type) {
		case string:
			rv.SetString(x)
		case int, float64:
			if !numstr {
				d.probs.Add(path, "must be a string, not %s", kindOf(v))
				return
			}
			rv.SetString(textOf(x))
		default:
			d.probs.Add(path, "must be a string, not %s", kindOf(v))
		}
	case reflect.Bool:
		b, ok := v.(bool)
		if !ok {
			d.probs.Add(path, "must be true or false, not %s", kindOf(v))
			return
		}
		rv.SetBool(b)
	case reflect.Int:
		switch x := v.(type) {
		case int:
			rv.SetInt(int64(x))
		case float64:
			if x != math.Trunc(x) || math.Abs(x) > 1<<53 {
				d.probs.Add(path, "must be an integer")
				return
			}
			rv.SetInt(int64(x))
		default:
			d.probs.Add(path, "must be an integer, not %s", kindOf(v))
		}
	case reflect.Float64:
		f, ok := toFloat(v)
		if !ok {
			d.probs.Add(path, "must be a number, not %s", kindOf(v))
			return
		}
		rv.SetFloat(f)
	case reflect.Pointer:
		p := reflect.New(t.Elem())
		n := len(*d.probs)
		d.decodeOpt(path, v, p.Elem(), numstr)
		if len(*d.probs) == n {
			rv.Set(p)
		}
	case reflect.Interface:
		if t == anyType {
			rv.Set(reflect.ValueOf(v))
		}
	case reflect.Slice:
		items, ok := v.([]any)
		if !ok {
			d.probs.Add(path, "must be a list, not %s", kindOf(v))
			return
		}
		if len(items) == 0 {
			// Empty and absent mean the same; keeping them apart would
			// make a job differ from itself after a JSON round trip
			// (omitempty drops the empty one).
			return
		}
		s := reflect.MakeSlice(t, len(items), len(items))
		for i, item := range items {
			d.decode(fmt.Sprintf("%s[%d]", path, i), item, s.Index(i))
		}
		rv.Set(s)
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			d.probs.Add(path, "must be an object, not %s", kindOf(v))
			return
		}
		if len(m) == 0 {
			return // as for an empty list
		}
		out := reflect.MakeMapWithSize(t, len(m))
		for _, k := range sortedKeys(m) {
			e := reflect.New(t.Elem()).Elem()
			d.decode(joinKey(path, k), m[k], e)
			out.SetMapIndex(reflect.ValueOf(k), e)
		}
		rv.Set(out)
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			d.probs.Add(path, "must be an object, not %s", kindOf(v))
			return
		}
		fields := fieldsOf(t)
		for _, k := range sortedKeys(m) {
			f, ok := fields[k]
			if !ok {
				d.probs.Add(joinKey(path, k), "unknown field")
				continue
			}
			d.decodeOpt(joinKey(path, k), m[k], rv.Field(f.index), f.numstr)
		}
	default:
		d.probs.Add(path, "cannot be decoded")
	}
}

type fieldInfo struct {
	index  int
	numstr bool
}

// fieldsOf maps the json names of t's exported fields to their indexes.
func fieldsOf(t reflect.Type) map[string]fieldInfo {
	out := make(map[string]fieldInfo, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		out[name] = fieldInfo{index: i, numstr: f.Tag.Get("jobspec") == "numstr"}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// kindOf names a plain value's type the way the job's author thinks of it.
func kindOf(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case int:
		return "an integer"
	case float64:
		return "a number"
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case float64:
		return x, true
	}
	return 0, false
}
