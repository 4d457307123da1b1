package jobspec

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/opsconductor/opsconductor/controller/assets/selector"
	"github.com/opsconductor/opsconductor/controller/problem"
	"github.com/opsconductor/opsconductor/plugins/schema"
	"github.com/opsconductor/opsconductor/plugins/sdk"
)

// Catalog describes the steps a job may use: the built-ins and the
// registered plugins. Describe resolves a `uses` ("http", "http@1",
// "disk-usage@1.2.0"); an unknown step or version is a *problem.Error (the
// controller's plugin service returns an invalid-input or not-found
// problem), any other error is the catalog's own failure.
type Catalog interface {
	Describe(ctx context.Context, uses string) (sdk.Description, error)
}

var (
	jobNameRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
	stepIDRE    = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`)
	paramNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)
	stepNameRE  = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)
	versionRE   = regexp.MustCompile(`^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*)){0,2}(-[0-9A-Za-z.-]+)?$`)
)

// Validate checks the job's meaning and reports every problem at once, each
// with its path (`steps[2].needs[0]: unknown step "chek"`), as a
// *problem.Error. It checks the name; the parameters (unique names, types,
// defaults against type, pattern, min, max and enum); the targets; the
// rollout; the concurrency policy; durations and retries; step IDs; that
// each `uses` is known to cat and that `with` satisfies the step's JSON
// Schema (values holding ${{ }} are not type-checked, but they count as
// present); needs (known, no cycles, which are named a → b → a); that every
// expression compiles, that a when is boolean, and that expressions read
// only declared parameters and steps the step needs; and that step
// credentials are job credentials.
//
// cat may be nil: `uses` is then checked for syntax only. An error that is
// not about the job (the catalog failing, ctx ending) is returned as is.
func (j *Job) Validate(ctx context.Context, cat Catalog) error {
	v := &validator{j: j, ctx: ctx, cat: cat, descs: map[string]*sdk.Description{}}
	v.job()
	if v.fatal != nil {
		return v.fatal
	}
	return v.probs.Err()
}

type validator struct {
	j     *Job
	ctx   context.Context
	cat   Catalog
	probs problem.List
	fatal error

	descs   map[string]*sdk.Description // by uses; nil when unknown
	stepIdx map[string]int              // first index of each step ID
	params  map[string]bool
	// ancestors[i] holds the steps that steps[i] needs, directly or not.
	ancestors []map[string]bool
}

func (v *validator) add(path, format string, args ...any) { v.probs.Add(path, format, args...) }

func (v *validator) job() {
	j := v.j
	switch {
	case j.Name == "":
		v.add("name", "required")
	case !jobNameRE.MatchString(j.Name):
		v.add("name", "must be 1 to 63 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit")
	}
	if len(j.Description) > 4096 {
		v.add("description", "must be at most 4096 characters long")
	}
	v.validateParams()
	v.validateTargets()
	v.validateRollout()
	switch j.Concurrency {
	case "", ConcurrencyAllow, ConcurrencyQueue, ConcurrencyForbid:
	default:
		v.add("concurrency", "must be allow, queue or forbid, not %q", j.Concurrency)
	}
	if j.Timeout < 0 {
		v.add("timeout", "must not be negative")
	}
	creds := map[string]bool{}
	for i, c := range j.Credentials {
		path := fmt.Sprintf("credentials[%d]", i)
		switch {
		case strings.TrimSpace(c) == "":
			v.add(path, "must not be empty")
		case creds[c]:
			v.add(path, "%q is listed twice", c)
		}
		creds[c] = true
	}
	from := len(v.probs)
	v.validateSteps(creds)
	// Steps are checked in phases (ids, needs, cycles, each step); a
	// reader wants them step by step.
	slices.SortStableFunc(v.probs[from:], func(a, b *problem.Error) int {
		return stepIndex(a.Field) - stepIndex(b.Field)
	})
}

// stepIndex reads i from a path "steps[i]…"; -1 for any other path.
func stepIndex(path string) int {
	rest, ok := strings.CutPrefix(path, "steps[")
	if !ok {
		return -1
	}
	n := 0
	for _, c := range rest {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int(c-'0')
	}
	return n
}

func (v *validator) validateParams() {
	v.params = map[string]bool{}
	if len(v.j.Params) > MaxParams {
		v.add("params", "at most %d parameters are allowed", MaxParams)
	}
	for i := range v.j.Params {
		p := &v.j.Params[i]
		path := fmt.Sprintf("params[%d]", i)
		switch {
		case p.Name == "":
			v.add(path+".name", "required")
		case !paramNameRE.MatchString(p.Name):
			v.add(path+".name", "must be letters, digits and '_', starting with a letter or '_' (expressions read it as params.%s)", p.Name)
		case v.params[p.Name]:
			v.add(path+".name", "%q is declared twice", p.Name)
		}
		v.params[p.Name] = true
		typ := p.TypeName()
		switch typ {
		case TypeString, TypeInteger, TypeNumber, TypeBoolean, TypeArray, TypeObject:
		default:
			v.add(path+".type", "must be string, integer, number, boolean, array or object, not %q", p.Type)
			continue
		}
		if p.Pattern != "" {
			if typ != TypeString {
				v.add(path+".pattern", "applies only to string parameters")
			} else if _, err := regexp.Compile(p.Pattern); err != nil {
				v.add(path+".pattern", "does not compile: %v", err)
			}
		}
		numeric := typ == TypeInteger || typ == TypeNumber
		if (p.Min != nil || p.Max != nil) && !numeric {
			v.add(path, "min and max apply only to integer and number parameters")
		}
		if p.Min != nil && p.Max != nil && *p.Min > *p.Max {
			v.add(path+".max", "must not be below min")
		}
		for k, e := range p.Enum {
			if _, err := p.typeCheck(e); err != nil {
				v.add(fmt.Sprintf("%s.enum[%d]", path, k), "%v", err)
			}
		}
		if p.Default != nil {
			if p.Secret {
				v.add(path+".default", "a secret parameter must not have a default: it would be stored in the job definition")
				continue
			}
			val, err := p.typeCheck(p.Default)
			if err == nil {
				err = p.check(val)
			}
			if err != nil {
				v.add(path+".default", "%v", err)
			}
		}
	}
}

// typeCheck is coerce without reading strings: a job definition says 5,
// not "5", for an integer.
func (p *Param) typeCheck(val any) (any, error) {
	if s, ok := val.(string); ok && p.TypeName() != TypeString {
		return nil, fmt.Errorf("must be %s, not a string (%q)", article(p.TypeName()), s)
	}
	return p.coerce(val)
}

func article(typ string) string {
	switch typ {
	case TypeInteger, TypeArray, TypeObject:
		return "an " + typ
	}
	return "a " + typ
}

func (v *validator) validateTargets() {
	t := v.j.Targets
	if t.IsZero() {
		v.add("targets", "required: give names, tags, groups, a selector or all: true")
		return
	}
	if t.All && (len(t.Names) > 0 || len(t.Tags) > 0 || len(t.Groups) > 0 || t.Selector != "") {
		v.add("targets.all", "cannot be combined with names, tags, groups or selector")
	}
	checkList := func(field string, list []string) {
		seen := map[string]bool{}
		for i, n := range list {
			path := fmt.Sprintf("targets.%s[%d]", field, i)
			switch {
			case strings.TrimSpace(n) == "":
				v.add(path, "must not be empty")
			case seen[n]:
				v.add(path, "%q is listed twice", n)
			}
			seen[n] = true
		}
	}
	checkList("names", t.Names)
	checkList("groups", t.Groups)
	for _, k := range sortedKeys(t.Tags) {
		if strings.TrimSpace(k) == "" {
			v.add("targets.tags", "a tag key must not be empty")
		}
	}
	if t.Selector != "" {
		if _, err := selector.Parse(t.Selector); err != nil {
			v.add("targets.selector", "%v", err)
		}
	}
}

func (v *validator) validateRollout() {
	r := v.j.Rollout
	if hasTemplate(r.BatchSize) {
		t, err := compileTemplate(r.BatchSize)
		if err != nil {
			v.add("rollout.batch_size", "%v", err)
		} else {
			for _, p := range t.parts {
				if p.prog != nil {
					v.checkRefs("rollout.batch_size", p.src, collectRefs(p.prog), -1)
				}
			}
		}
	} else if _, _, err := batchValue(r.BatchSize); err != nil {
		v.add("rollout.batch_size", "%v", err)
	}
	if r.MaxFailPercent != nil && (*r.MaxFailPercent < 0 || *r.MaxFailPercent > 100 || math.IsNaN(*r.MaxFailPercent)) {
		v.add("rollout.max_fail_percent", "must be between 0 and 100")
	}
}

func (v *validator) validateSteps(creds map[string]bool) {
	steps := v.j.Steps
	switch {
	case len(steps) == 0:
		v.add("steps", "at least one step is required")
		return
	case len(steps) > MaxSteps:
		v.add("steps", "at most %d steps are allowed, not %d", MaxSteps, len(steps))
	}
	v.stepIdx = map[string]int{}
	for i := range steps {
		s := &steps[i]
		path := fmt.Sprintf("steps[%d].id", i)
		switch {
		case s.ID == "":
			v.add(path, "required")
		case !stepIDRE.MatchString(s.ID):
			v.add(path, "must be lower-case letters, digits, '_' or '-', starting with a letter (at most 63)")
		}
		if first, dup := v.stepIdx[s.ID]; dup && s.ID != "" {
			v.add(path, "%q is also the id of steps[%d]", s.ID, first)
			continue
		}
		v.stepIdx[s.ID] = i
	}
	for i := range steps {
		v.validateNeeds(i)
	}
	v.findCycles()
	v.computeAncestors()
	// Every step's description is needed before any expression is
	// checked: a step may read the outputs of a step listed after it.
	descs := make([]*sdk.Description, len(steps))
	for i := range steps {
		descs[i] = v.validateUses(i)
	}
	for i := range steps {
		v.validateStep(i, descs[i], creds)
	}
}

func (v *validator) validateNeeds(i int) {
	s := &v.j.Steps[i]
	seen := map[string]bool{}
	for k, n := range s.Needs {
		path := fmt.Sprintf("steps[%d].needs[%d]", i, k)
		idx, known := v.stepIdx[n]
		switch {
		case n == s.ID:
			v.add(path, "a step cannot need itself")
		case !known:
			v.add(path, "unknown step %q", n)
		case seen[n]:
			v.add(path, "%q is listed twice", n)
		case v.j.Steps[idx].OnFailure && !s.OnFailure:
			// A handler waits for every other step to end, so a
			// normal step waiting for a handler would wait forever.
			v.add(path, "%q is an on_failure handler; only another handler may need it", n)
		}
		seen[n] = true
	}
}

// findCycles reports each cycle in needs once, at the first step on it,
// naming its path: a → b → a.
func (v *validator) findCycles() {
	steps := v.j.Steps
	const (
		white = iota
		grey
		black
	)
	color := make([]int, len(steps))
	var stack []int
	reported := map[string]bool{}
	var visit func(i int)
	visit = func(i int) {
		color[i] = grey
		stack = append(stack, i)
		for _, n := range steps[i].Needs {
			k, ok := v.stepIdx[n]
			if !ok || k == i {
				continue
			}
			switch color[k] {
			case white:
				visit(k)
			case grey:
				at := slices.Index(stack, k)
				cycle := slices.Clone(stack[at:])
				// Name the cycle from its first step in job order, so
				// that the same cycle reads the same however it was
				// found.
				lo := slices.Index(cycle, slices.Min(cycle))
				cycle = append(cycle[lo:], cycle[:lo]...)
				names := make([]string, 0, len(cycle)+1)
				for _, c := range cycle {
					names = append(names, steps[c].ID)
				}
				key := strings.Join(names, "\x00")
				if !reported[key] {
					reported[key] = true
					names = append(names, steps[cycle[0]].ID)
					v.add(fmt.Sprintf("steps[%d].needs", cycle[0]), "needs form a cycle: %s", strings.Join(names, " → "))
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[i] = black
	}
	for i := range steps {
		if color[i] == white {
			visit(i)
		}
	}
}

func (v *validator) computeAncestors() {
	steps := v.j.Steps
	v.ancestors = make([]map[string]bool, len(steps))
	for i := range steps {
		seen := map[string]bool{}
		queue := slices.Clone(steps[i].Needs)
		for len(queue) > 0 {
			n := queue[0]
			queue = queue[1:]
			k, ok := v.stepIdx[n]
			if !ok || seen[n] {
				continue
			}
			seen[n] = true
			queue = append(queue, steps[k].Needs...)
		}
		v.ancestors[i] = seen
	}
}

func (v *validator) validateStep(i int, desc *sdk.Description, creds map[string]bool) {
	s := &v.j.Steps[i]
	path := fmt.Sprintf("steps[%d]", i)
	if len(s.Name) > 200 {
		v.add(path+".name", "must be at most 200 characters long")
	}
	if s.IsApproval() {
		v.validateApproval(i)
	} else if desc != nil {
		v.validateWith(i, desc)
	}
	walkPaths(path+".with", s.With, func(p, str string) {
		if !hasTemplate(str) {
			return
		}
		segs, err := splitTemplate(str)
		if err != nil {
			v.add(p, "%v", err)
			return
		}
		for _, sg := range segs {
			if !sg.isExpr {
				continue
			}
			prog, err := compileExpr(sg.text, false)
			if err != nil {
				v.add(p, "${{ %s }}: %v", sg.text, err)
				continue
			}
			v.checkRefs(p, sg.text, collectRefs(prog), i)
		}
	})
	if strings.TrimSpace(s.When) != "" {
		src, ok := conditionSource(s.When)
		if !ok {
			v.add(path+".when", "must be one expression, with or without ${{ }}, not text around an expression")
		} else if prog, err := compileExpr(src, true); err != nil {
			v.add(path+".when", "%v", err)
		} else {
			v.checkRefs(path+".when", src, collectRefs(prog), i)
		}
	}
	if s.Retries.Count < 0 || s.Retries.Count > MaxRetries {
		v.add(path+".retries.count", "must be between 0 and %d", MaxRetries)
	}
	if s.Retries.Backoff < 0 {
		v.add(path+".retries.backoff", "must not be negative")
	}
	if s.Timeout < 0 {
		v.add(path+".timeout", "must not be negative")
	}
	aliases := map[string]string{}
	for k, c := range s.Credentials {
		cp := fmt.Sprintf("%s.credentials[%d]", path, k)
		if !creds[c] {
			v.add(cp, "%q is not one of the job's credentials", c)
			continue
		}
		alias := CredentialAlias(c)
		if other, dup := aliases[alias]; dup {
			if other == c {
				v.add(cp, "%q is listed twice", c)
			} else {
				v.add(cp, "%q and %q would both reach the step as %s", other, c, alias)
			}
			continue
		}
		aliases[alias] = c
	}
}

// validateUses checks the step reference and returns the step's
// description, or nil when it is unknown (or there is no catalog).
func (v *validator) validateUses(i int) *sdk.Description {
	s := &v.j.Steps[i]
	path := fmt.Sprintf("steps[%d].uses", i)
	if s.Uses == "" {
		v.add(path, "required")
		return nil
	}
	name, version, hasVersion := strings.Cut(s.Uses, "@")
	if name == ApprovalStep {
		if hasVersion {
			v.add(path, "approval is built into the controller and takes no version")
		}
		return nil
	}
	ok := true
	if !stepNameRE.MatchString(name) {
		v.add(path, "%q is not a step name (lower-case letters, digits and '-')", name)
		ok = false
	}
	if hasVersion && !versionRE.MatchString(version) {
		v.add(path, "%q is not a version such as 1, 1.2 or 1.2.3", version)
		ok = false
	}
	if !ok || v.cat == nil || v.fatal != nil {
		return nil
	}
	if d, done := v.descs[s.Uses]; done {
		return d
	}
	d, err := v.cat.Describe(v.ctx, s.Uses)
	if err != nil {
		v.descs[s.Uses] = nil
		if p, isProblem := problem.As(err); isProblem && p.Kind != problem.KindInternal && p.Kind != problem.KindUnavailable {
			v.add(path, "%s", p.Message)
			return nil
		}
		v.fatal = fmt.Errorf("describe step %q: %w", s.Uses, err)
		return nil
	}
	v.descs[s.Uses] = &d
	return &d
}

func (v *validator) validateApproval(i int) {
	s := &v.j.Steps[i]
	path := fmt.Sprintf("steps[%d].with", i)
	for _, k := range sortedKeys(s.With) {
		val := s.With[k]
		switch k {
		case "timeout":
			str, ok := val.(string)
			if !ok {
				v.add(path+".timeout", "must be a duration string such as 1h")
				break
			}
			if d, err := time.ParseDuration(str); err != nil || d <= 0 {
				v.add(path+".timeout", "must be a positive duration such as 1h, not %q", str)
			}
		case "message":
			if _, ok := val.(string); !ok {
				v.add(path+".message", "must be a string")
			}
		default:
			v.add(joinKey(path, k), "unknown field (an approval takes timeout and message)")
		}
	}
}

// validateWith checks the literal values of with against the step's JSON
// Schema. A value holding ${{ }} is only known at run time: it is left out
// of the type check, but it still counts as present for "required" and
// must still be a field the step knows.
func (v *validator) validateWith(i int, desc *sdk.Description) {
	s := &v.j.Steps[i]
	prefix := fmt.Sprintf("steps[%d].with", i)
	with := s.With
	if with == nil {
		with = map[string]any{}
	}
	templated := map[string]bool{}
	literal := stripTemplated("params", with, templated, false)
	placeholder := stripTemplated("params", with, nil, true)
	errsA, fatal := schemaErrors(desc.Params, literal)
	if fatal != nil {
		v.add(fmt.Sprintf("steps[%d].uses", i), "the step's parameter schema is broken: %v", fatal)
		return
	}
	errsB := []schema.FieldError(nil)
	if len(templated) > 0 {
		errsB, _ = schemaErrors(desc.Params, placeholder)
	}
	for _, f := range errsA {
		if f.Rule == "required" && templated[f.Path] {
			continue
		}
		v.add(withPath(prefix, f.Path), "%s", f.Message)
	}
	for _, f := range errsB {
		if templated[f.Path] && (f.Rule == "additionalProperties" || f.Rule == "false" || f.Rule == "propertyNames") {
			v.add(withPath(prefix, f.Path), "%s", f.Message)
		}
	}
}

func withPath(prefix, schemaPath string) string {
	return prefix + strings.TrimPrefix(schemaPath, "params")
}

// stripTemplated copies a with value, dropping (or, with placeholder,
// nulling) every value that holds ${{ }}; a list holding one is treated as
// templated as a whole, since its length and order are then unknown.
// Dropped paths go to templated, in plugins/schema's path form.
func stripTemplated(path string, v any, templated map[string]bool, placeholder bool) any {
	if !containsTemplate(v) {
		return v
	}
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			p := joinKey(path, k)
			if !containsTemplate(e) {
				out[k] = e
				continue
			}
			if _, isMap := e.(map[string]any); isMap {
				out[k] = stripTemplated(p, e, templated, placeholder)
				continue
			}
			if templated != nil {
				templated[p] = true
			}
			if placeholder {
				out[k] = nil
			}
		}
		return out
	}
	return v
}

func containsTemplate(v any) bool {
	found := false
	walkStrings(v, func(s string) {
		if hasTemplate(s) {
			found = true
		}
	})
	return found
}

// schemaErrors validates doc against a step's schema; fatal reports a
// schema that cannot be used at all.
func schemaErrors(sch json.RawMessage, doc any) (fields []schema.FieldError, fatal error) {
	raw, err := json.Marshal(doc)
	if err != nil {
		return []schema.FieldError{{Path: "params", Rule: "json", Message: err.Error()}}, nil
	}
	compiled, err := schema.Compile(sch)
	if err != nil {
		return nil, err
	}
	err = compiled.Validate(raw)
	var ve *schema.ValidationError
	switch {
	case err == nil:
		return nil, nil
	case errors.As(err, &ve):
		return ve.Fields, nil
	}
	return []schema.FieldError{{Path: "params", Rule: "schema", Message: err.Error()}}, nil
}

// checkRefs checks what an expression reads. step is the index of the step
// it belongs to, or -1 for the rollout (which sees params and run only).
func (v *validator) checkRefs(path, src string, r refs, step int) {
	for _, name := range r.params {
		if !v.params[name] {
			v.add(path, "${{ %s }}: params.%s is not a parameter of this job", src, name)
		}
	}
	if step < 0 {
		for _, root := range []string{"target", "steps"} {
			if r.roots[root] {
				v.add(path, "${{ %s }}: the batch size is decided before any target runs; only params and run are available", src)
				break
			}
		}
		return
	}
	self := &v.j.Steps[step]
	for _, id := range r.steps {
		k, known := v.stepIdx[id]
		switch {
		case !known:
			v.add(path, "${{ %s }}: unknown step %q", src, id)
		case id == self.ID:
			v.add(path, "${{ %s }}: a step cannot read its own result", src)
		case v.ancestors[step][id]:
		case self.OnFailure && !v.j.Steps[k].OnFailure:
			// Handlers run after every other step has ended.
		default:
			v.add(path, "${{ %s }}: reads steps.%s, which this step does not need (add it to needs)", src, id)
		}
	}
	for _, ref := range r.outputs {
		k, known := v.stepIdx[ref[0]]
		if !known {
			continue
		}
		d := v.descs[v.j.Steps[k].Uses]
		if d == nil || len(d.Outputs) == 0 {
			// Steps that declare no outputs may still set some (noop
			// sets whatever it is given).
			continue
		}
		if !slices.ContainsFunc(d.Outputs, func(o sdk.OutputSpec) bool { return o.Name == ref[1] || o.Name == "*" }) {
			v.add(path, "${{ %s }}: step %q (%s) has no output %q", src, ref[0], v.j.Steps[k].Uses, ref[1])
		}
	}
}

// walkPaths calls fn on every string inside v with its path.
func walkPaths(path string, v any, fn func(path, s string)) {
	switch x := v.(type) {
	case string:
		fn(path, x)
	case map[string]any:
		for _, k := range sortedKeys(x) {
			walkPaths(joinKey(path, k), x[k], fn)
		}
	case []any:
		for i, e := range x {
			walkPaths(fmt.Sprintf("%s[%d]", path, i), e, fn)
		}
	}
}
