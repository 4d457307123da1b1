package graph

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"maps"
	"slices"
	"strings"

	"github.com/opsconductor/opsconductor/controller/identity"
	"github.com/opsconductor/opsconductor/controller/problem"
	"github.com/opsconductor/opsconductor/controller/state"
)

// Applier commits commands through Raft (cluster.Node in production).
type Applier interface {
	Apply(ctx context.Context, cmds ...state.Command) ([]state.Result, error)
}

// Node is a target as the graph shows it.
type Node struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Targets is what the graph needs of the inventory; the assets service
// satisfies it through a small adapter (controller/server).
type Targets interface {
	// Resolve finds a target by ID or name; an unknown one is a
	// not-found problem.
	Resolve(ctx context.Context, idOrName string) (Node, error)
	// Allowed reports whether p holds perm on the target with this ID,
	// honouring the scopes of p's role bindings.
	Allowed(p *identity.Principal, perm identity.Permission, id string) bool
}

// Deps are what the service needs.
type Deps struct {
	Applier Applier
	Store   *state.Store
	Targets Targets
	Logger  *slog.Logger
}

// Service is the relationships API on one controller.
type Service struct {
	d Deps
}

// New returns the service.
func New(d Deps) (*Service, error) {
	if d.Applier == nil || d.Store == nil || d.Targets == nil || d.Logger == nil {
		return nil, errors.New("graph: Applier, Store, Targets and Logger are required")
	}
	return &Service{d: d}, nil
}

// EdgeView is an edge as the API shows it: with its targets' current
// names, since targets may be renamed and edges store only IDs.
type EdgeView struct {
	Edge
	FromName string `json:"from_name"`
	ToName   string `json:"to_name"`
}

// CreateEdge is a request to relate two targets, each named by ID or name.
type CreateEdge struct {
	From       string            `json:"from"`
	Type       string            `json:"type"`
	To         string            `json:"to"`
	Attributes map[string]string `json:"attributes,omitempty"`
}

// Create adds an edge. The caller needs assets:write on both targets.
func (s *Service) Create(ctx context.Context, p *identity.Principal, req CreateEdge) (EdgeView, error) {
	var errs problem.List
	if req.From == "" {
		errs.Add("from", "is required")
	}
	if req.To == "" {
		errs.Add("to", "is required")
	}
	checkType("type", req.Type, &errs)
	checkAttributes("attributes", req.Attributes, &errs)
	if err := errs.Err(); err != nil {
		return EdgeView{}, err
	}
	v := s.viewer(p)
	from, err := v.resolve(ctx, "from", req.From)
	if err != nil {
		return EdgeView{}, err
	}
	to, err := v.resolve(ctx, "to", req.To)
	if err != nil {
		return EdgeView{}, err
	}
	if err := v.mayWrite(from, to); err != nil {
		return EdgeView{}, err
	}
	if from.ID == to.ID {
		return EdgeView{}, problem.Invalid("to", "an edge cannot lead from a target to itself (%s)", from.Name)
	}
	// The same checks Apply makes, here with names for the message. Apply
	// repeats them against the graph as committed, which is what decides.
	txn := s.d.Store.ReadTxn()
	if dup, err := txn.First(tableEdges, "out", from.ID, req.Type, to.ID); err != nil {
		return EdgeView{}, fmt.Errorf("read edge: %w", err)
	} else if dup != nil {
		return EdgeView{}, s.named(ctx, duplicateProblem(dup.(*Edge)), dup.(*Edge))
	}
	id, err := newID()
	if err != nil {
		return EdgeView{}, err
	}
	e := Edge{ID: id, From: from.ID, To: to.ID, Type: req.Type, Attributes: req.Attributes, CreatedBy: actor(p)}
	cmd, err := state.NewCommand(cmdCreate, 1, createPayload{Edge: e})
	if err != nil {
		return EdgeView{}, err
	}
	var out Edge
	res, err := s.d.Applier.Apply(ctx, cmd)
	if err == nil {
		err = res[0].Decode(&out)
	}
	if err != nil {
		return EdgeView{}, s.explain(ctx, err, e)
	}
	s.d.Logger.Info("related two targets", "relationship_id", out.ID, "from", from.Name, "type", out.Type, "to", to.Name, "actor", actor(p))
	return EdgeView{Edge: out, FromName: from.Name, ToName: to.Name}, nil
}

// explain rewrites Apply's refusals, which know only target IDs, with
// names: a cycle names its path as the store now holds it.
func (s *Service) explain(ctx context.Context, err error, e Edge) error {
	pr, ok := problem.As(err)
	if !ok {
		return fmt.Errorf("create relationship: %w", err)
	}
	switch pr.Code {
	case codeCycle:
		path, perr := pathBetween(s.d.Store.ReadTxn(), e.To, e.From, DependsOn)
		if perr != nil || path == nil {
			return pr
		}
		names := []string{s.name(ctx, e.From)}
		for _, id := range path {
			names = append(names, s.name(ctx, id))
		}
		return cycleProblem(names)
	case "relationship_duplicate":
		if dup, derr := s.d.Store.ReadTxn().First(tableEdges, "out", e.From, e.Type, e.To); derr == nil && dup != nil {
			return s.named(ctx, pr, dup.(*Edge))
		}
	}
	return pr
}

// named restates a duplicate problem with the targets' names.
func (s *Service) named(ctx context.Context, pr *problem.Error, e *Edge) *problem.Error {
	out := *pr
	out.Message = fmt.Sprintf("the relationship %s %s %s already exists (%s)", s.name(ctx, e.From), e.Type, s.name(ctx, e.To), e.ID)
	return &out
}

// name is a target's name for a message, or its ID if it has none.
func (s *Service) name(ctx context.Context, id string) string {
	if n, err := s.d.Targets.Resolve(ctx, id); err == nil && n.Name != "" {
		return n.Name
	}
	return id
}

// Get returns one edge; an edge whose targets the caller may not read is
// not found, so that its existence does not leak.
func (s *Service) Get(ctx context.Context, p *identity.Principal, id string) (EdgeView, error) {
	e, err := state.ByID[Edge](s.d.Store.ReadTxn(), tableEdges, "relationship", id)
	if err != nil {
		return EdgeView{}, err
	}
	v := s.viewer(p)
	view, ok := v.edgeView(ctx, e)
	if !ok {
		return EdgeView{}, problem.NotFound("relationship", id)
	}
	return view, nil
}

// Filter selects edges for List.
type Filter struct {
	From, To, Type string
	After          string
	Limit          int
}

// Page is one page of edges, by ID; Next is the After of the next page,
// empty on the last. A page may be short, even empty, while Next is set
// (see scanBudget).
type Page struct {
	Items []EdgeView `json:"items"`
	Next  string     `json:"next"`
}

// List pages through the edges the caller may read, by ID.
func (s *Service) List(ctx context.Context, p *identity.Principal, f Filter) (Page, error) {
	var errs problem.List
	if f.Type != "" {
		checkType("type", f.Type, &errs)
	}
	if f.Limit < 1 {
		errs.Add("limit", "must be at least 1")
	}
	if err := errs.Err(); err != nil {
		return Page{}, err
	}
	v := s.viewer(p)
	var fromID, toID string
	for _, end := range []struct {
		field, ref string
		id         *string
	}{{"from", f.From, &fromID}, {"to", f.To, &toID}} {
		if end.ref == "" {
			continue
		}
		n, err := v.resolve(ctx, end.field, end.ref)
		if err != nil {
			return Page{}, err
		}
		*end.id = n.ID
	}
	candidates, err := s.candidates(fromID, toID, f.Type, f.After)
	if err != nil {
		return Page{}, err
	}
	page := Page{Items: []EdgeView{}}
	// A filter or a scope that matches few edges must not make one request
	// walk the whole table: after the budget the page ends short, and Next
	// resumes after the last edge looked at.
	budget, last := max(scanBudget, 10*f.Limit), ""
	for e := range candidates {
		if budget == 0 {
			page.Next = last
			break
		}
		budget--
		match := (fromID == "" || e.From == fromID) && (toID == "" || e.To == toID) && (f.Type == "" || e.Type == f.Type)
		if match {
			if view, ok := v.edgeView(ctx, e); ok {
				if len(page.Items) == f.Limit {
					page.Next = last
					break
				}
				page.Items = append(page.Items, view)
			}
		}
		last = e.ID
	}
	return page, nil
}

// scanBudget is the least number of edges one List request looks at
// before it ends a page short.
const scanBudget = 10_000

// candidates returns the edges after the cursor, by ID, from the narrowest
// index the filter allows. A target's edges are collected and sorted
// (a node's degree is bounded by what the graph holds); the whole table is
// walked in ID order and stops as soon as the page is full.
func (s *Service) candidates(fromID, toID, typ, after string) (edgeSeq, error) {
	txn := s.d.Store.ReadTxn()
	var (
		index string
		args  []any
	)
	switch {
	case fromID != "":
		index, args = "out_prefix", prefixArgs(fromID, typ)
	case toID != "":
		index, args = "in_prefix", prefixArgs(toID, typ)
	default:
		it, err := txn.LowerBound(tableEdges, "id", after)
		if err != nil {
			return nil, fmt.Errorf("list relationships: %w", err)
		}
		return func(yield func(*Edge) bool) {
			for obj := it.Next(); obj != nil; obj = it.Next() {
				if e := obj.(*Edge); e.ID != after && !yield(e) {
					return
				}
			}
		}, nil
	}
	it, err := txn.Get(tableEdges, index, args...)
	if err != nil {
		return nil, fmt.Errorf("list relationships: %w", err)
	}
	var all []*Edge
	for obj := it.Next(); obj != nil; obj = it.Next() {
		if e := obj.(*Edge); e.ID > after {
			all = append(all, e)
		}
	}
	slices.SortFunc(all, func(a, b *Edge) int { return strings.Compare(a.ID, b.ID) })
	return slices.Values(all), nil
}

type edgeSeq = iter.Seq[*Edge]

// prefixArgs are the arguments of an out_prefix/in_prefix scan of one
// node's edges, of one type when typ is set.
func prefixArgs(node, typ string) []any {
	if typ == "" {
		return []any{node, ""}
	}
	return []any{node, typ, ""}
}

// Patch changes an edge's attributes: a key mapped to a value sets it, a
// key mapped to nil removes it.
type Patch struct {
	Attributes map[string]*string `json:"attributes"`
}

// Update applies a patch. The caller needs assets:write on both targets.
func (s *Service) Update(ctx context.Context, p *identity.Principal, id string, patch Patch) (EdgeView, error) {
	var (
		errs problem.List
		pl   = updatePayload{ID: id, Set: map[string]string{}, UpdatedBy: actor(p)}
	)
	if patch.Attributes == nil {
		errs.Add("attributes", "is required (an object: a value sets an attribute, null removes it)")
	}
	for _, k := range slices.Sorted(maps.Keys(patch.Attributes)) {
		if v := patch.Attributes[k]; v != nil {
			checkAttribute("attributes", k, *v, &errs)
			pl.Set[k] = *v
		} else {
			pl.Remove = append(pl.Remove, k)
		}
	}
	if err := errs.Err(); err != nil {
		return EdgeView{}, err
	}
	if _, err := s.writable(ctx, p, id); err != nil {
		return EdgeView{}, err
	}
	cmd, err := state.NewCommand(cmdUpdate, 1, pl)
	if err != nil {
		return EdgeView{}, err
	}
	var out Edge
	res, err := s.d.Applier.Apply(ctx, cmd)
	if err == nil {
		err = res[0].Decode(&out)
	}
	if err != nil {
		return EdgeView{}, fmt.Errorf("update relationship %s: %w", id, err)
	}
	view, _ := s.viewer(p).edgeView(ctx, &out)
	s.d.Logger.Info("changed a relationship's attributes", "relationship_id", id, "set", len(pl.Set), "removed", len(pl.Remove), "actor", actor(p))
	return view, nil
}

// Delete removes an edge. The caller needs assets:write on both targets.
func (s *Service) Delete(ctx context.Context, p *identity.Principal, id string) (EdgeView, error) {
	view, err := s.writable(ctx, p, id)
	if err != nil {
		return EdgeView{}, err
	}
	cmd, err := state.NewCommand(cmdDelete, 1, deletePayload{ID: id})
	if err != nil {
		return EdgeView{}, err
	}
	res, err := s.d.Applier.Apply(ctx, cmd)
	if err == nil {
		err = res[0].Decode(nil)
	}
	if err != nil {
		return EdgeView{}, fmt.Errorf("delete relationship %s: %w", id, err)
	}
	s.d.Logger.Info("deleted a relationship", "relationship_id", id, "from", view.FromName, "type", view.Type, "to", view.ToName, "actor", actor(p))
	return view, nil
}

// writable returns the edge if p may change it: not found when p cannot
// read both its targets, forbidden when p can read but not write them.
func (s *Service) writable(ctx context.Context, p *identity.Principal, id string) (EdgeView, error) {
	view, err := s.Get(ctx, p, id)
	if err != nil {
		return EdgeView{}, err
	}
	v := s.viewer(p)
	if err := v.mayWrite(Node{ID: view.From, Name: view.FromName}, Node{ID: view.To, Name: view.ToName}); err != nil {
		return EdgeView{}, err
	}
	return view, nil
}

// actor names who made a change: the principal, or the controller itself
// for a nil one (its own maintenance).
func actor(p *identity.Principal) string {
	if p == nil {
		return "controller"
	}
	return p.Name()
}

func newID() (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random id: %w", err)
	}
	return "rel_" + hex.EncodeToString(b), nil
}

// viewer answers, for one request, which targets its principal may see.
// A principal holding assets:read without a scope sees everything, with
// no per-target check; a scoped one is asked about each target once.
type viewer struct {
	s    *Service
	p    *identity.Principal
	all  bool
	memo map[string]bool
	// names caches target names for the request: a page of edges names
	// the same few targets many times.
	names map[string]string
}

func (s *Service) viewer(p *identity.Principal) *viewer {
	v := &viewer{s: s, p: p, memo: map[string]bool{}, names: map[string]string{}}
	if p == nil {
		v.all = true // the controller's own use
	} else if scopes, ok := p.Scopes(identity.PermAssetsRead); ok && scopes == nil {
		v.all = true
	}
	return v
}

func (v *viewer) sees(id string) bool {
	if v.all {
		return true
	}
	ok, known := v.memo[id]
	if !known {
		ok = v.s.d.Targets.Allowed(v.p, identity.PermAssetsRead, id)
		v.memo[id] = ok
	}
	return ok
}

// resolve finds the target a request names in field; one the caller may
// not see is as unknown as one that does not exist.
func (v *viewer) resolve(ctx context.Context, field, ref string) (Node, error) {
	n, err := v.s.d.Targets.Resolve(ctx, ref)
	if problem.Is(err, problem.KindNotFound) || (err == nil && !v.sees(n.ID)) {
		return Node{}, problem.Invalid(field, "no target %q", ref)
	}
	if err != nil {
		return Node{}, fmt.Errorf("resolve target %q: %w", ref, err)
	}
	return n, nil
}

// mayWrite refuses unless p holds assets:write on both ends.
func (v *viewer) mayWrite(ends ...Node) error {
	if v.p == nil {
		return nil
	}
	scopes, ok := v.p.Scopes(identity.PermAssetsWrite)
	if ok && scopes == nil {
		return nil
	}
	for _, n := range ends {
		if !ok || !v.s.d.Targets.Allowed(v.p, identity.PermAssetsWrite, n.ID) {
			return problem.New(problem.KindForbidden, "forbidden", "changing relationships of %s needs assets:write on it", n.Name)
		}
	}
	return nil
}

// edgeView names an edge's ends, or reports false when the caller may not
// see one of them.
func (v *viewer) edgeView(ctx context.Context, e *Edge) (EdgeView, bool) {
	if !v.sees(e.From) || !v.sees(e.To) {
		return EdgeView{}, false
	}
	return EdgeView{Edge: *e.clone(), FromName: v.name(ctx, e.From), ToName: v.name(ctx, e.To)}, true
}

// name is s.name, once per target per request.
func (v *viewer) name(ctx context.Context, id string) string {
	n, ok := v.names[id]
	if !ok {
		n = v.s.name(ctx, id)
		v.names[id] = n
	}
	return n
}
