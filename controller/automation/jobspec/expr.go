package jobspec

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/vm"

	"github.com/opsconductor/opsconductor/controller/problem"
)

// maxExprNodes bounds one expression's syntax tree; a condition or a
// template needs a few dozen nodes at most.
const maxExprNodes = 2000

// Env is what expressions see. Every field is read-only for an expression.
type Env struct {
	Params map[string]any     `expr:"params" json:"params"`
	Target TargetEnv          `expr:"target" json:"target"`
	Steps  map[string]StepEnv `expr:"steps" json:"steps"`
	Run    RunEnv             `expr:"run" json:"run"`
}

// TargetEnv is the target a step runs for.
type TargetEnv struct {
	Name    string            `expr:"name" json:"name"`
	Address string            `expr:"address" json:"address"`
	Tags    map[string]string `expr:"tags" json:"tags,omitempty"`
	Facts   map[string]any    `expr:"facts" json:"facts,omitempty"`
}

// StepEnv is an earlier step's result on the same target.
type StepEnv struct {
	Status  string            `expr:"status" json:"status"`
	Outputs map[string]string `expr:"outputs" json:"outputs,omitempty"`
	Changed bool              `expr:"changed" json:"changed"`
}

// RunEnv describes the run.
type RunEnv struct {
	ID          string `expr:"id" json:"id"`
	Job         string `expr:"job" json:"job"`
	Version     int    `expr:"version" json:"version"`
	TriggeredBy string `expr:"triggered_by" json:"triggered_by"`
}

// StepsEnv builds Env.Steps from one target's step states, with an entry for
// every step of the job (pending when it has no state yet), so that
// `steps.x.status` reads "pending" rather than failing on a missing key.
func (j *Job) StepsEnv(states map[string]StepState) map[string]StepEnv {
	out := make(map[string]StepEnv, len(j.Steps))
	for i := range j.Steps {
		id := j.Steps[i].ID
		st := states[id]
		status := st.Status
		if status == "" {
			status = Pending
		}
		out[id] = StepEnv{Status: string(status), Outputs: st.Outputs, Changed: st.Changed}
	}
	return out
}

// programs caches compiled expressions by their source text. It is filled
// once (Compile) and then only read, so sharing it between goroutines needs
// no lock; a source missing from it (a Job built in code and never
// compiled) is compiled on each use instead.
type programs struct {
	templates map[string]*template
	conds     map[string]*vm.Program
	// vms recycles expr's virtual machines: a VM is reset by each Run,
	// and reusing one saves its stack and scope allocations on every
	// evaluation.
	vms sync.Pool
}

// run evaluates prog against env on a recycled VM. p may be nil.
func (p *programs) run(prog *vm.Program, env *Env) (any, error) {
	if p == nil {
		return expr.Run(prog, env)
	}
	m, _ := p.vms.Get().(*vm.VM)
	if m == nil {
		m = &vm.VM{}
	}
	out, err := m.Run(prog, env)
	p.vms.Put(m)
	return out, err
}

// template is a string split into literal text and expressions.
type template struct {
	parts []part
}

type part struct {
	lit  string
	src  string // the expression, when prog is set
	prog *vm.Program
}

// whole reports whether the string is exactly one ${{ }}: its value then
// keeps its type instead of becoming text.
func (t *template) whole() bool { return len(t.parts) == 1 && t.parts[0].prog != nil }

// Compile compiles every expression of the job and keeps the programs in
// the job for Render, ShouldRun and BatchSize. Parse and UnmarshalJSON call
// it; call it yourself only for a Job built in code, before sharing it
// between goroutines. Expressions that do not compile are left out (they
// are compiled, and fail, on use); Validate reports them.
func (j *Job) Compile() {
	p := &programs{templates: map[string]*template{}, conds: map[string]*vm.Program{}}
	addTemplate := func(s string) {
		if _, done := p.templates[s]; done || !hasTemplate(s) {
			return
		}
		if t, err := compileTemplate(s); err == nil {
			p.templates[s] = t
		}
	}
	addTemplate(j.Rollout.BatchSize)
	for i := range j.Steps {
		s := &j.Steps[i]
		s.path = fmt.Sprintf("steps[%d]", i)
		s.progs = p
		walkStrings(s.With, addTemplate)
		if src, ok := conditionSource(s.When); ok && src != "" {
			if _, done := p.conds[s.When]; !done {
				if prog, err := compileExpr(src, true); err == nil {
					p.conds[s.When] = prog
				}
			}
		}
	}
	j.progs = p
}

func (p *programs) template(s string) (*template, error) {
	if p != nil {
		if t, ok := p.templates[s]; ok {
			return t, nil
		}
	}
	return compileTemplate(s)
}

func (p *programs) cond(when string) (*vm.Program, error) {
	if p != nil {
		if prog, ok := p.conds[when]; ok {
			return prog, nil
		}
	}
	src, ok := conditionSource(when)
	if !ok {
		return nil, errors.New("must be one expression, with or without ${{ }}, not text around an expression")
	}
	return compileExpr(src, true)
}

func compileExpr(src string, asBool bool) (*vm.Program, error) {
	opts := []expr.Option{expr.Env(Env{}), expr.MaxNodes(maxExprNodes)}
	if asBool {
		opts = append(opts, expr.AsBool())
	}
	prog, err := expr.Compile(src, opts...)
	if err != nil {
		return nil, fmt.Errorf("%s", firstLine(err))
	}
	return prog, nil
}

// firstLine drops the source excerpt that expr appends to its errors: the
// path already says which expression it is, and problem messages are one
// line.
func firstLine(err error) string {
	msg, _, _ := strings.Cut(err.Error(), "\n")
	return msg
}

func compileTemplate(s string) (*template, error) {
	segs, err := splitTemplate(s)
	if err != nil {
		return nil, err
	}
	t := &template{parts: make([]part, 0, len(segs))}
	for _, sg := range segs {
		if !sg.isExpr {
			t.parts = append(t.parts, part{lit: sg.text})
			continue
		}
		prog, err := compileExpr(sg.text, false)
		if err != nil {
			return nil, fmt.Errorf("${{ %s }}: %w", sg.text, err)
		}
		t.parts = append(t.parts, part{src: sg.text, prog: prog})
	}
	return t, nil
}

func (t *template) eval(progs *programs, env *Env) (any, error) {
	if t.whole() {
		v, err := progs.run(t.parts[0].prog, env)
		if err != nil {
			return nil, fmt.Errorf("${{ %s }}: %s", t.parts[0].src, firstLine(err))
		}
		return v, nil
	}
	var b strings.Builder
	for _, part := range t.parts {
		if part.prog == nil {
			b.WriteString(part.lit)
			continue
		}
		v, err := progs.run(part.prog, env)
		if err != nil {
			return nil, fmt.Errorf("${{ %s }}: %s", part.src, firstLine(err))
		}
		b.WriteString(textOf(v))
	}
	return b.String(), nil
}

type segment struct {
	text   string
	isExpr bool
}

func hasTemplate(s string) bool { return strings.Contains(s, "${{") }

// splitTemplate cuts s into literal text and the sources of its ${{ }}
// expressions. Only the delimiters are found here; the expressions are
// expr's to parse. A "}}" inside a quoted string does not close the
// expression.
func splitTemplate(s string) ([]segment, error) {
	var segs []segment
	for {
		i := strings.Index(s, "${{")
		if i < 0 {
			if s != "" {
				segs = append(segs, segment{text: s})
			}
			return segs, nil
		}
		if i > 0 {
			segs = append(segs, segment{text: s[:i]})
		}
		rest := s[i+3:]
		end := closing(rest)
		if end < 0 {
			return nil, errors.New("${{ is not closed with }}")
		}
		src := strings.TrimSpace(rest[:end])
		if src == "" {
			return nil, errors.New("empty ${{ }}")
		}
		segs = append(segs, segment{text: src, isExpr: true})
		s = rest[end+2:]
	}
}

func closing(s string) int {
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		if quote != 0 {
			switch {
			case c == '\\' && quote != '`':
				i++
			case c == quote:
				quote = 0
			}
			continue
		}
		switch c {
		case '"', '\'', '`':
			quote = c
		case '}':
			if i+1 < len(s) && s[i+1] == '}' {
				return i
			}
		}
	}
	return -1
}

// conditionSource returns the expression of a when: the text itself, or
// the inside of a ${{ }} that is the whole text. ok is false when text
// surrounds an expression, which would always be a non-empty string.
func conditionSource(when string) (string, bool) {
	w := strings.TrimSpace(when)
	if !hasTemplate(w) {
		return w, true
	}
	segs, err := splitTemplate(w)
	if err != nil || len(segs) != 1 || !segs[0].isExpr {
		return "", false
	}
	return segs[0].text, true
}

// walkStrings calls fn on every string inside v (maps, lists, strings).
func walkStrings(v any, fn func(string)) {
	switch x := v.(type) {
	case string:
		fn(x)
	case map[string]any:
		for _, e := range x {
			walkStrings(e, fn)
		}
	case []any:
		for _, e := range x {
			walkStrings(e, fn)
		}
	}
}

func (s *Step) prefix() string {
	if s.path != "" {
		return s.path
	}
	return "steps[" + strconv.Quote(s.ID) + "]"
}

// Render returns the step's With as a JSON object with every ${{ expr }}
// evaluated against env. A string that is exactly one ${{ }} takes the
// value's type (an integer stays an integer, a list a list); any other
// string gets each value interpolated as text. Errors name the value's
// path (`steps[1].with.name`), and all of them are reported at once.
func (s *Step) Render(env Env) (json.RawMessage, error) {
	if len(s.With) == 0 {
		return json.RawMessage(`{}`), nil
	}
	var probs problem.List
	out := s.renderValue(s.prefix()+".with", s.With, &env, &probs)
	if err := probs.Err(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, problem.Invalid(s.prefix()+".with", "the rendered parameters are not JSON: %v", err)
	}
	return b, nil
}

func (s *Step) renderValue(path string, v any, env *Env, probs *problem.List) any {
	switch x := v.(type) {
	case string:
		if !hasTemplate(x) {
			return x
		}
		t, err := s.progs.template(x)
		if err != nil {
			probs.Add(path, "%v", err)
			return nil
		}
		out, err := t.eval(s.progs, env)
		if err != nil {
			probs.Add(path, "%v", err)
			return nil
		}
		if f, ok := out.(float64); ok && (math.IsNaN(f) || math.IsInf(f, 0)) {
			probs.Add(path, "evaluates to %v, which JSON cannot carry", f)
			return nil
		}
		return out
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = s.renderValue(joinKey(path, k), e, env, probs)
		}
		return m
	case []any:
		l := make([]any, len(x))
		for i, e := range x {
			l[i] = s.renderValue(fmt.Sprintf("%s[%d]", path, i), e, env, probs)
		}
		return l
	}
	return v
}

// ShouldRun evaluates the step's When against env; an empty When is true.
// Errors name `steps[i].when`.
func (s *Step) ShouldRun(env Env) (bool, error) {
	if strings.TrimSpace(s.When) == "" {
		return true, nil
	}
	prog, err := s.progs.cond(s.When)
	if err != nil {
		return false, problem.Invalid(s.prefix()+".when", "%v", err)
	}
	v, err := s.progs.run(prog, &env)
	if err != nil {
		return false, problem.Invalid(s.prefix()+".when", "%s", firstLine(err))
	}
	b, ok := v.(bool)
	if !ok {
		return false, problem.Invalid(s.prefix()+".when", "must evaluate to true or false, not %s", kindOf(v))
	}
	return b, nil
}

// BatchSize resolves Rollout.BatchSize for n targets: empty or 0 means all
// n; a percentage rounds up and is at least 1; a count larger than n is n.
// An expression is evaluated with params only. Errors name
// `rollout.batch_size`.
func (j *Job) BatchSize(params map[string]any, n int) (int, error) {
	if n <= 0 {
		return 0, nil
	}
	var v any = j.Rollout.BatchSize
	if hasTemplate(j.Rollout.BatchSize) {
		t, err := j.progs.template(j.Rollout.BatchSize)
		if err != nil {
			return 0, problem.Invalid("rollout.batch_size", "%v", err)
		}
		if v, err = t.eval(j.progs, &Env{Params: params}); err != nil {
			return 0, problem.Invalid("rollout.batch_size", "%v", err)
		}
	}
	count, pct, err := batchValue(v)
	if err != nil {
		return 0, problem.Invalid("rollout.batch_size", "%v", err)
	}
	if pct > 0 {
		count = int(math.Ceil(float64(n) * pct / 100))
		count = max(count, 1)
	}
	if count == 0 || count > n {
		return n, nil
	}
	return count, nil
}

// batchValue reads a batch size: a count (0 = all) or a percentage in
// (0, 100].
func batchValue(v any) (count int, pct float64, err error) {
	switch x := v.(type) {
	case nil:
		return 0, 0, nil
	case int:
		if x < 0 {
			return 0, 0, fmt.Errorf("must not be negative, got %d", x)
		}
		return x, 0, nil
	case float64:
		if x < 0 || x != math.Trunc(x) || x > math.MaxInt32 {
			return 0, 0, fmt.Errorf("must be a whole number of targets or a percentage, got %v", x)
		}
		return int(x), 0, nil
	case string:
		s := strings.TrimSpace(x)
		if s == "" {
			return 0, 0, nil
		}
		if num, ok := strings.CutSuffix(s, "%"); ok {
			p, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
			if err != nil || math.IsNaN(p) || p <= 0 || p > 100 {
				return 0, 0, fmt.Errorf("a percentage must be above 0%% and at most 100%%, got %q", s)
			}
			return 0, p, nil
		}
		c, err := strconv.Atoi(s)
		if err != nil || c < 0 {
			return 0, 0, fmt.Errorf("must be a count such as 5, a percentage such as 25%%, or ${{ expression }}, got %q", s)
		}
		return c, 0, nil
	}
	return 0, 0, fmt.Errorf("must be a count or a percentage, not %s", kindOf(v))
}

// refs lists what an expression reads from the environment, for
// validation: the roots it uses, the parameters and the steps (with the
// outputs read from them).
type refs struct {
	roots   map[string]bool
	params  []string
	steps   []string
	outputs [][2]string // step, output
}

func collectRefs(prog *vm.Program) refs {
	r := refs{roots: map[string]bool{}}
	node := prog.Node()
	ast.Walk(&node, &r)
	return r
}

// Visit implements ast.Visitor.
func (r *refs) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.IdentifierNode:
		r.roots[n.Value] = true
	case *ast.MemberNode:
		root, ok := n.Node.(*ast.IdentifierNode)
		prop, isStr := n.Property.(*ast.StringNode)
		if ok && isStr {
			switch root.Value {
			case "params":
				r.params = append(r.params, prop.Value)
			case "steps":
				r.steps = append(r.steps, prop.Value)
			}
			return
		}
		// steps.<id>.outputs.<name>
		outer, ok := n.Node.(*ast.MemberNode)
		if !ok || !isStr {
			return
		}
		mid, ok := outer.Property.(*ast.StringNode)
		if !ok || mid.Value != "outputs" {
			return
		}
		stepNode, ok := outer.Node.(*ast.MemberNode)
		if !ok {
			return
		}
		root, ok = stepNode.Node.(*ast.IdentifierNode)
		id, isStr := stepNode.Property.(*ast.StringNode)
		if ok && isStr && root.Value == "steps" {
			r.outputs = append(r.outputs, [2]string{id.Value, prop.Value})
		}
	}
}

// Path is the step's place in its job ("steps[2]"), for problems other
// packages report about it.
func (s *Step) Path() string { return s.prefix() }
