package graph

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/opsconductor/opsconductor/controller/problem"
	"github.com/opsconductor/opsconductor/controller/state"
)

// Command types. Appended, never renamed or reused.
const (
	cmdCreate = "assets.graph.create"
	cmdUpdate = "assets.graph.update"
	cmdDelete = "assets.graph.delete"
)

// The built-in edge types. Any other lower_snake_case name is a custom
// type; only DependsOn is kept free of cycles.
const (
	DependsOn  = "depends_on"
	RunsOn     = "runs_on"
	MemberOf   = "member_of"
	ConnectsTo = "connects_to"
)

// BuiltinTypes lists the built-in edge types.
var BuiltinTypes = []string{DependsOn, RunsOn, MemberOf, ConnectsTo}

// Bounds on an edge's attributes: they describe the edge ("port",
// "protocol"), they are not a document store, and every edge is held in
// memory on every controller.
const (
	MaxAttributes = 32
	MaxAttrKey    = 63
	MaxAttrValue  = 1024
	maxTypeLen    = 63
)

var (
	typeRE    = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)
	attrKeyRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)
)

// checkType validates an edge type under field.
func checkType(field, typ string, errs *problem.List) {
	if len(typ) > maxTypeLen || !typeRE.MatchString(typ) {
		errs.Add(field, "must be depends_on, runs_on, member_of, connects_to or a custom lower_snake_case name (at most %d characters), got %q", maxTypeLen, typ)
	}
}

// checkAttributes validates a whole attribute map under field.
func checkAttributes(field string, attrs map[string]string, errs *problem.List) {
	if len(attrs) > MaxAttributes {
		errs.Add(field, "at most %d attributes, got %d", MaxAttributes, len(attrs))
		return
	}
	for _, k := range slices.Sorted(maps.Keys(attrs)) {
		checkAttribute(field, k, attrs[k], errs)
	}
}

func checkAttribute(field, k, v string, errs *problem.List) {
	path := field + "." + k
	switch {
	case len(k) > MaxAttrKey || !attrKeyRE.MatchString(k):
		errs.Add(path, "attribute names are letters, digits, '_', '.' and '-', starting with a letter or digit (at most %d)", MaxAttrKey)
	case len(v) > MaxAttrValue:
		errs.Add(path, "must be at most %d bytes", MaxAttrValue)
	case !utf8.ValidString(v):
		errs.Add(path, "must be valid UTF-8")
	}
}

// Option adjusts the domain.
type Option func(*domain)

// NodeExists reports, inside an Apply transaction, whether a target with
// the given ID exists. The inventory provides it; with it, creating an
// edge in the same moment its target is deleted cannot leave an edge that
// RemoveNode already missed.
type NodeExists func(txn state.Reader, id string) (bool, error)

// WithNodeCheck makes create refuse an edge whose endpoint does not exist
// at the moment the command applies.
func WithNodeCheck(exists NodeExists) Option { return func(d *domain) { d.exists = exists } }

type domain struct {
	exists NodeExists
}

// Domain returns the graph's table and commands for the state registry.
func Domain(opts ...Option) state.Domain {
	d := &domain{}
	for _, o := range opts {
		o(d)
	}
	return state.Domain{
		Name:   "assets.graph",
		Tables: []state.Table{edgesTable()},
		Commands: map[string]state.Handler{
			cmdCreate: state.V1(d.applyCreate),
			cmdUpdate: state.V1(applyUpdate),
			cmdDelete: state.V1(applyDelete),
		},
	}
}

type createPayload struct {
	Edge Edge `json:"edge"`
}

// applyCreate adds an edge. Every rule is checked here, against the
// committed graph, as well as by the service beforehand: two requests that
// each pass the service's check cannot both commit, since Raft applies
// them one after the other and the second sees the first.
func (d *domain) applyCreate(ctx *state.ApplyContext, p createPayload) (any, error) {
	e := p.Edge
	var errs problem.List
	if e.ID == "" {
		errs.Add("id", "is required")
	}
	checkType("type", e.Type, &errs)
	checkAttributes("attributes", e.Attributes, &errs)
	if e.From == "" {
		errs.Add("from", "is required")
	}
	if e.To == "" {
		errs.Add("to", "is required")
	}
	if err := errs.Err(); err != nil {
		return nil, err
	}
	if e.From == e.To {
		return nil, problem.Invalid("to", "an edge cannot lead from a target to itself")
	}
	if d.exists != nil {
		for _, end := range []struct{ field, id string }{{"from", e.From}, {"to", e.To}} {
			ok, err := d.exists(ctx.Txn, end.id)
			if err != nil {
				return nil, fmt.Errorf("check target %s: %w", end.id, err)
			}
			if !ok {
				return nil, problem.NotFound("target", end.id)
			}
		}
	}
	if raw, err := ctx.Txn.First(tableEdges, "id", e.ID); err != nil {
		return nil, fmt.Errorf("read edge: %w", err)
	} else if raw != nil {
		return nil, problem.New(problem.KindConflict, "relationship_exists", "relationship %s already exists", e.ID)
	}
	dup, err := ctx.Txn.First(tableEdges, "out", e.From, e.Type, e.To)
	if err != nil {
		return nil, fmt.Errorf("read edge: %w", err)
	}
	if dup != nil {
		return nil, duplicateProblem(dup.(*Edge))
	}
	if e.Type == DependsOn {
		path, err := pathBetween(ctx.Txn, e.To, e.From, DependsOn)
		if err != nil {
			return nil, err
		}
		if path != nil {
			return nil, cycleProblem(append([]string{e.From}, path...))
		}
	}
	if len(e.Attributes) == 0 {
		e.Attributes = nil
	}
	e.CreatedAt, e.UpdatedAt, e.UpdatedBy = ctx.Time, ctx.Time, e.CreatedBy
	if err := ctx.Txn.Insert(tableEdges, &e); err != nil {
		return nil, err
	}
	return e, nil
}

// codeCycle marks a refused depends_on cycle; the service renders the
// path with target names, which the FSM does not know.
const codeCycle = "relationship_cycle"

func cycleProblem(path []string) *problem.Error {
	p := problem.New(problem.KindConflict, codeCycle, "depends_on would close a cycle: %s", strings.Join(path, " → "))
	p.Field = "to"
	return p
}

func duplicateProblem(e *Edge) *problem.Error {
	return problem.New(problem.KindConflict, "relationship_duplicate",
		"the relationship %s %s %s already exists (%s)", e.From, e.Type, e.To, e.ID)
}

// pathBetween returns the shortest path from → … → to along edges of typ,
// both ends included, or nil when to is not reachable. Breadth first, with
// neighbours in index order, so every node finds the same path.
func pathBetween(txn state.Reader, from, to, typ string) ([]string, error) {
	parent := map[string]string{from: ""}
	queue := []string{from}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		it, err := txn.Get(tableEdges, "out_prefix", n, typ, "")
		if err != nil {
			return nil, fmt.Errorf("walk %s edges: %w", typ, err)
		}
		for obj := it.Next(); obj != nil; obj = it.Next() {
			next := obj.(*Edge).To
			if _, seen := parent[next]; seen {
				continue
			}
			parent[next] = n
			if next == to {
				var path []string
				for c := to; c != ""; c = parent[c] {
					path = append(path, c)
				}
				slices.Reverse(path)
				return path, nil
			}
			queue = append(queue, next)
		}
	}
	return nil, nil
}

type updatePayload struct {
	ID string `json:"id"`
	// Set adds or replaces attributes; Remove deletes them.
	Set       map[string]string `json:"set,omitempty"`
	Remove    []string          `json:"remove,omitempty"`
	UpdatedBy string            `json:"updated_by"`
}

// applyUpdate changes an edge's attributes; its ends and type are its
// identity and never change (delete it and create another).
func applyUpdate(ctx *state.ApplyContext, p updatePayload) (any, error) {
	cur, err := state.ByID[Edge](ctx.Txn, tableEdges, "relationship", p.ID)
	if err != nil {
		return nil, err
	}
	e := cur.clone()
	if e.Attributes == nil {
		e.Attributes = map[string]string{}
	}
	for _, k := range p.Remove {
		delete(e.Attributes, k)
	}
	maps.Copy(e.Attributes, p.Set)
	var errs problem.List
	checkAttributes("attributes", e.Attributes, &errs)
	if err := errs.Err(); err != nil {
		return nil, err
	}
	if len(e.Attributes) == 0 {
		e.Attributes = nil
	}
	e.UpdatedAt, e.UpdatedBy = ctx.Time, p.UpdatedBy
	if err := ctx.Txn.Insert(tableEdges, e); err != nil {
		return nil, err
	}
	return *e, nil
}

type deletePayload struct {
	ID string `json:"id"`
}

func applyDelete(ctx *state.ApplyContext, p deletePayload) (any, error) {
	e, err := state.ByID[Edge](ctx.Txn, tableEdges, "relationship", p.ID)
	if err != nil {
		return nil, err
	}
	if err := ctx.Txn.Delete(tableEdges, e); err != nil {
		return nil, err
	}
	return *e, nil
}
