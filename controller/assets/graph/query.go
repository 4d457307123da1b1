package graph

import (
	"context"
	"fmt"
	"slices"

	"github.com/opsconductor/opsconductor/controller/identity"
	"github.com/opsconductor/opsconductor/controller/problem"
)

// Directions of a graph query.
const (
	// Both is the neighbourhood: edges of any type, either way.
	Both = "both"
	// Dependents is the impact of a target: who depends on it or runs on
	// it, and who depends on those (incoming depends_on and runs_on).
	Dependents = "dependents"
	// Dependencies is what a target needs: outgoing depends_on and
	// runs_on, followed on.
	Dependencies = "dependencies"
)

// Bounds of a graph query.
const (
	MaxDepth = 10
	// DefaultNodes and MaxNodes bound the nodes a query returns. The
	// edges between them are bounded at EdgesPerNode times as many.
	DefaultNodes = 1000
	MaxNodes     = 5000
	EdgesPerNode = 4
)

// Query asks for the graph around one target.
type Query struct {
	Direction string
	// Depth is how many hops to follow; 0 means the direction's default
	// (1 for Both, 5 otherwise).
	Depth int
	// Types restricts the edges followed; empty means every type for Both
	// and depends_on with runs_on otherwise.
	Types []string
	// Limit bounds the nodes returned; 0 means DefaultNodes.
	Limit int
}

// GraphNode is a target in a query's answer and how many hops it is from
// the root (0 for the root).
type GraphNode struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Depth int    `json:"depth"`
}

// Graph is a query's answer in the shape a graph view draws: every node
// once, every edge between the nodes returned once. Truncated says the
// node or edge bound cut the walk short, so more exists within Depth.
type Graph struct {
	Root      string      `json:"root"`
	Direction string      `json:"direction"`
	Depth     int         `json:"depth"`
	Nodes     []GraphNode `json:"nodes"`
	Edges     []Edge      `json:"edges"`
	Truncated bool        `json:"truncated"`
}

// check validates q under the query parameters' names and fills defaults.
func (q *Query) check() error {
	var errs problem.List
	switch q.Direction {
	case "":
		q.Direction = Both
	case Both, Dependents, Dependencies:
	default:
		errs.Add("direction", "must be both, dependents or dependencies, got %q", q.Direction)
	}
	switch {
	case q.Depth == 0 && q.Direction == Both:
		q.Depth = 1
	case q.Depth == 0:
		q.Depth = 5
	case q.Depth < 1 || q.Depth > MaxDepth:
		errs.Add("depth", "must be from 1 to %d, got %d", MaxDepth, q.Depth)
	}
	switch {
	case q.Limit == 0:
		q.Limit = DefaultNodes
	case q.Limit < 1 || q.Limit > MaxNodes:
		errs.Add("limit", "must be from 1 to %d, got %d", MaxNodes, q.Limit)
	}
	for i, t := range q.Types {
		checkType(fmt.Sprintf("type[%d]", i), t, &errs)
	}
	if len(q.Types) == 0 && q.Direction != Both {
		q.Types = []string{DependsOn, RunsOn}
	}
	return errs.Err()
}

// Graph walks from the target named by root (ID or name), breadth first,
// up to q.Depth hops. A principal whose assets:read is scoped sees only
// targets in scope: the walk neither returns nor passes through the
// others, so a path through a hidden target does not reveal what lies
// beyond it.
func (s *Service) Graph(ctx context.Context, p *identity.Principal, root string, q Query) (Graph, error) {
	if err := q.check(); err != nil {
		return Graph{}, err
	}
	v := s.viewer(p)
	start, err := v.resolve(ctx, "target", root)
	if err != nil {
		if pr, ok := problem.As(err); ok && pr.Kind == problem.KindInvalid {
			return Graph{}, problem.NotFound("target", root)
		}
		return Graph{}, err
	}
	g, err := s.walk(v, start.ID, q)
	if err != nil {
		return Graph{}, err
	}
	for i := range g.Nodes {
		g.Nodes[i].Name = s.name(ctx, g.Nodes[i].ID)
	}
	return g, nil
}

// walk is the traversal, on IDs only.
func (s *Service) walk(v *viewer, root string, q Query) (Graph, error) {
	txn := s.d.Store.ReadTxn()
	g := Graph{Root: root, Direction: q.Direction, Depth: q.Depth, Nodes: []GraphNode{{ID: root}}, Edges: []Edge{}}
	depth := map[string]int{root: 0}
	seenEdge := map[string]bool{}
	maxEdges := q.Limit * EdgesPerNode
	types := q.Types

	// scan yields the edges of node in the query's direction, with the
	// node at their other end.
	type step struct {
		index string
		other func(*Edge) string
	}
	var steps []step
	out := step{"out_prefix", func(e *Edge) string { return e.To }}
	in := step{"in_prefix", func(e *Edge) string { return e.From }}
	switch q.Direction {
	case Both:
		steps = []step{out, in}
	case Dependents:
		steps = []step{in}
	case Dependencies:
		steps = []step{out}
	}
	queue := []string{root}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		d := depth[n]
		// A node at the last depth adds no nodes, but its edges to nodes
		// already found are drawn: the breadth-first queue reaches it only
		// after every node of the answer is known.
		last := d >= q.Depth
		for _, st := range steps {
			// With no type filter one prefix scan takes every type; with
			// one, a scan per type keeps to the edges asked for.
			scans := [][]any{prefixArgs(n, "")}
			if len(types) > 0 {
				scans = scans[:0]
				for _, t := range types {
					scans = append(scans, prefixArgs(n, t))
				}
			}
			for _, args := range scans {
				it, err := txn.Get(tableEdges, st.index, args...)
				if err != nil {
					return Graph{}, fmt.Errorf("walk the graph from %s: %w", n, err)
				}
				for obj := it.Next(); obj != nil; obj = it.Next() {
					e := obj.(*Edge)
					other := st.other(e)
					if seenEdge[e.ID] || !v.sees(other) {
						continue
					}
					if _, known := depth[other]; !known {
						if last {
							continue
						}
						if len(g.Nodes) >= q.Limit {
							g.Truncated = true
							continue
						}
						depth[other] = d + 1
						g.Nodes = append(g.Nodes, GraphNode{ID: other, Depth: d + 1})
						queue = append(queue, other)
					}
					if len(g.Edges) >= maxEdges {
						g.Truncated = true
						continue
					}
					seenEdge[e.ID] = true
					g.Edges = append(g.Edges, *e.clone())
				}
			}
		}
	}
	// Deterministic order for callers that compare answers: nodes by
	// depth, in the walk's (index) order within one depth; edges by ID.
	slices.SortStableFunc(g.Nodes, func(a, b GraphNode) int { return a.Depth - b.Depth })
	slices.SortFunc(g.Edges, func(a, b Edge) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return g, nil
}
