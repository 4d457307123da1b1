package assets

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/opsconductor/opsconductor/controller/assets/selector"
	"github.com/opsconductor/opsconductor/controller/identity"
	"github.com/opsconductor/opsconductor/controller/problem"
)

// Sort orders.
const (
	SortName        = "name"
	SortNameDesc    = "-name"
	SortUpdated     = "updated"
	SortUpdatedDesc = "-updated"
)

// Page sizes.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// Query narrows and orders a target list. Every filter must hold.
type Query struct {
	// Tags must all be carried (key=value).
	Tags map[string]string
	// Group is a static or dynamic group the targets are in.
	Group string
	// Selector is a selector the targets match.
	Selector string
	// Q is text the name, an address, the ID, owner or notes contain
	// (case-insensitive).
	Q string
	// Connection is ssh or agent.
	Connection string
	Sort       string
	Limit      int
	// Cursor is the previous page's Next.
	Cursor string
}

// Page is one page of targets; Next is the cursor of the following page,
// "" on the last.
type Page struct {
	Items []Target `json:"items"`
	Next  string   `json:"next"`
}

// cursor is where a page ended, opaque to clients.
type cursor struct {
	Sort    string `json:"s"`
	Name    string `json:"n,omitempty"`
	ID      string `json:"i"`
	Updated int64  `json:"u,omitempty"`
}

func encodeCursor(c cursor) string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s, sortBy string) (*cursor, error) {
	if s == "" {
		return nil, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	var c cursor
	if err == nil {
		err = json.Unmarshal(raw, &c)
	}
	if err != nil || c.ID == "" {
		return nil, problem.Invalid("cursor", "is not a cursor this server returned")
	}
	if c.Sort != sortBy {
		return nil, problem.Invalid("cursor", "was returned for sort=%s; keep the sort while paging", c.Sort)
	}
	return &c, nil
}

// compiled is a query ready to test targets against.
type compiled struct {
	q      Query
	sel    selector.Selector
	group  *Group
	groupS selector.Selector
	text   string
	cur    *cursor
	// primary is the facet the index walk follows; nil when no stored
	// target can match (connection=agent).
	primary []byte
}

func (v *view) compile(q Query) (*compiled, error) {
	var errs problem.List
	c := &compiled{q: q, text: strings.ToLower(strings.TrimSpace(q.Q))}
	switch q.Sort {
	case "":
		c.q.Sort = SortName
	case SortName, SortNameDesc, SortUpdated, SortUpdatedDesc:
	default:
		errs.Add("sort", "must be name, -name, updated or -updated, got %q", q.Sort)
	}
	switch {
	case q.Limit == 0:
		c.q.Limit = DefaultLimit
	case q.Limit < 0 || q.Limit > MaxLimit:
		errs.Add("limit", "must be 1 to %d, got %d", MaxLimit, q.Limit)
	}
	for k := range q.Tags {
		if !ValidTagKey(k) {
			errs.Add("tag", "%q is not a valid tag key", k)
		}
	}
	if q.Selector != "" {
		sel, err := selector.Parse(q.Selector)
		if err != nil {
			errs.Add("selector", "%v", err)
		}
		c.sel = sel
	}
	switch q.Connection {
	case "", ConnSSH, ConnAgent:
	default:
		errs.Add("connection", "must be ssh or agent, got %q", q.Connection)
	}
	if err := errs.Err(); err != nil {
		return nil, err
	}
	cur, err := decodeCursor(q.Cursor, c.q.Sort)
	if err != nil {
		return nil, err
	}
	c.cur = cur
	if q.Group != "" {
		g, ok := v.groups[q.Group]
		if !ok {
			return nil, problem.NotFound("group", q.Group)
		}
		c.group = g
		if g.Kind == GroupDynamic {
			for _, d := range v.dynamic {
				if d.name == g.Name {
					c.groupS = d.sel
				}
			}
		}
	}
	// The walk follows the narrowest facet every match must be keyed
	// under: a tag equality (asked for, or in the group's or the query's
	// selector) or a static group; failing those, the connection type or
	// all targets. The narrowest is found by counting each candidate's
	// entries up to a small bound.
	var cands [][]byte
	addTags := func(m map[string]string) {
		for _, k := range slices.Sorted(mapsKeys(m)) {
			cands = append(cands, facetTag(k, m[k]))
		}
	}
	addTags(q.Tags)
	if c.group != nil && c.group.Kind == GroupStatic {
		cands = append(cands, facetGroup(c.group.Name))
	}
	addTags(c.groupS.TagEquals())
	addTags(c.sel.TagEquals())
	switch {
	case q.Connection == ConnAgent:
		c.primary = nil
	case len(cands) > 0:
		c.primary = v.narrowest(cands)
	case q.Connection == ConnSSH:
		c.primary = facetConnection(ConnSSH)
	default:
		c.primary = facetAll()
	}
	return c, nil
}

// facetProbe bounds how many entries narrowest counts per candidate.
const facetProbe = 256

// narrowest returns the candidate facet with the fewest entries, counting
// each only up to facetProbe: past that they are all "large", and the
// first such candidate serves.
func (v *view) narrowest(cands [][]byte) []byte {
	if len(cands) == 1 {
		return cands[0]
	}
	best, bestN := cands[0], facetProbe+1
	for _, f := range cands {
		n := v.countFacet(f, bestN)
		if n < bestN {
			best, bestN = f, n
		}
	}
	return best
}

// countFacet counts the targets keyed under prefix, stopping at limit.
func (v *view) countFacet(prefix []byte, limit int) int {
	n := 0
	_ = v.walkIndex(&compiled{q: Query{Sort: SortName}, primary: prefix}, func(*Target) bool {
		n++
		return n < limit
	})
	return n
}

func mapsKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// match reports whether t passes every filter (not the cursor).
func (c *compiled) match(v *view, t *Target) bool {
	for k, want := range c.q.Tags {
		if got, ok := t.Tags[k]; !ok || got != want {
			return false
		}
	}
	if c.q.Connection != "" && t.Connection.Type != c.q.Connection {
		return false
	}
	if c.group != nil {
		if c.group.Kind == GroupStatic && !t.InGroup(c.group.Name) {
			return false
		}
		if c.group.Kind == GroupDynamic && !c.groupS.Match(t) {
			return false
		}
	}
	if !c.sel.Empty() && !c.sel.Match(t) {
		return false
	}
	if c.text != "" && !containsText(t, c.text) {
		return false
	}
	return true
}

func containsText(t *Target, text string) bool {
	if strings.Contains(strings.ToLower(t.Name), text) || strings.Contains(strings.ToLower(t.ID), text) ||
		strings.Contains(strings.ToLower(t.Owner), text) || strings.Contains(strings.ToLower(t.Notes), text) {
		return true
	}
	for _, a := range t.Addresses {
		if strings.Contains(strings.ToLower(a), text) {
			return true
		}
	}
	return false
}

// less orders targets by (name, ID), as the facet index does.
func lessByName(a, b *Target) bool { return a.Name < b.Name || (a.Name == b.Name && a.ID < b.ID) }

func lessByUpdated(a, b *Target) bool {
	return a.UpdatedAt.Before(b.UpdatedAt) || (a.UpdatedAt.Equal(b.UpdatedAt) && a.ID < b.ID)
}

// afterCursor reports whether t comes after the cursor in the sort order.
func (c *compiled) afterCursor(t *Target) bool {
	if c.cur == nil {
		return true
	}
	at := &Target{Name: c.cur.Name, ID: c.cur.ID, UpdatedAt: time.Unix(0, c.cur.Updated).UTC()}
	switch c.q.Sort {
	case SortNameDesc:
		return lessByName(t, at)
	case SortUpdated:
		return lessByUpdated(at, t)
	case SortUpdatedDesc:
		return lessByUpdated(t, at)
	}
	return lessByName(at, t)
}

func (c *compiled) cursorOf(t *Target) string {
	cur := cursor{Sort: c.q.Sort, ID: t.ID}
	if c.q.Sort == SortName || c.q.Sort == SortNameDesc {
		cur.Name = t.Name
	} else {
		cur.Updated = t.UpdatedAt.UnixNano()
	}
	return encodeCursor(cur)
}

// walkIndex calls fn with the stored targets under c.primary in name
// order (descending for -name), starting after the cursor, until fn
// returns false. See facetIndex for why the keys are checked by hand.
func (v *view) walkIndex(c *compiled, fn func(*Target) bool) error {
	if c.primary == nil {
		return nil
	}
	prefix := c.primary
	reverse := c.q.Sort == SortNameDesc
	var bound []byte
	switch {
	case c.cur != nil && (c.q.Sort == SortName || reverse):
		bound = append(facetKey(prefix, c.cur.Name), append([]byte(c.cur.ID), 0)...)
	case reverse:
		bound = append(slices.Clone(prefix), 0xff)
	default:
		bound = prefix
	}
	var (
		it  interface{ Next() any }
		err error
	)
	if reverse {
		it, err = v.txn.ReverseLowerBound(tableTargets, "facet", bound)
	} else {
		it, err = v.txn.LowerBound(tableTargets, "facet", bound)
	}
	if err != nil {
		return fmt.Errorf("list targets: %w", err)
	}
	var last, key []byte
	for obj := it.Next(); obj != nil; obj = it.Next() {
		t := obj.(*Target)
		if !hasFacet(t, prefix) {
			return nil
		}
		// The entry's key, built in a buffer the two keys swap between.
		key = append(append(append(append(key[:0], prefix...), t.Name...), 0), t.ID...)
		key = append(key, 0)
		cmp := bytes.Compare(key, bound)
		if reverse {
			cmp = -cmp
		}
		switch {
		case cmp < 0:
			// The walk left the facet's range: this entry is another key
			// of a target keyed under the facet too.
			return nil
		case cmp == 0 && c.cur != nil:
			continue // the cursor's own target
		}
		if last != nil {
			d := bytes.Compare(key, last)
			if reverse {
				d = -d
			}
			if d <= 0 {
				return nil
			}
		}
		last, key = key, last
		if !fn(t) {
			return nil
		}
	}
	return nil
}

// agentTargets returns the agents' targets that pass c, in c's order.
func (v *view) agentTargets(c *compiled, p *identity.Principal, perm identity.Permission) ([]*Target, error) {
	if c.q.Connection == ConnSSH {
		return nil, nil
	}
	if err := v.loadAgents(); err != nil {
		return nil, err
	}
	var out []*Target
	for _, a := range v.agents {
		t, err := v.agentTarget(a)
		if err != nil {
			return nil, err
		}
		if c.match(v, t) && v.allowed(p, perm, t) && c.afterCursor(t) {
			out = append(out, t)
		}
	}
	sortTargets(out, c.q.Sort)
	return out, nil
}

func sortTargets(ts []*Target, by string) {
	sort.Slice(ts, func(i, j int) bool {
		switch by {
		case SortNameDesc:
			return lessByName(ts[j], ts[i])
		case SortUpdated:
			return lessByUpdated(ts[i], ts[j])
		case SortUpdatedDesc:
			return lessByUpdated(ts[j], ts[i])
		}
		return lessByName(ts[i], ts[j])
	})
}

// List returns one page of the targets p may read that pass q.
func (s *Service) List(ctx context.Context, p *identity.Principal, q Query) (Page, error) {
	v, err := s.view(ctx)
	if err != nil {
		return Page{}, err
	}
	return v.list(p, identity.PermAssetsRead, q)
}

func (v *view) list(p *identity.Principal, perm identity.Permission, q Query) (Page, error) {
	c, err := v.compile(q)
	if err != nil {
		return Page{}, err
	}
	agents, err := v.agentTargets(c, p, perm)
	if err != nil {
		return Page{}, err
	}
	v.narrowToScope(c, p, perm)
	limit := c.q.Limit
	byName := c.q.Sort == SortName || c.q.Sort == SortNameDesc
	if byName {
		// Merge the index walk with the (few) agents' targets, both
		// already in order; stop one past the page to know if more follow.
		var (
			out  []*Target
			ai   int
			less = lessByName
		)
		if c.q.Sort == SortNameDesc {
			less = func(a, b *Target) bool { return lessByName(b, a) }
		}
		err := v.walkIndex(c, func(row *Target) bool {
			if !c.match(v, row) || !v.allowedRow(p, perm, row) {
				return true
			}
			t := v.stored(row)
			for ai < len(agents) && less(agents[ai], t) && len(out) <= limit {
				out = append(out, agents[ai])
				ai++
			}
			out = append(out, t)
			return len(out) <= limit
		})
		if err != nil {
			return Page{}, err
		}
		for ai < len(agents) && len(out) <= limit {
			out = append(out, agents[ai])
			ai++
		}
		return v.page(c, out, limit), nil
	}
	// By update time: gather every match and sort. Slower on a large
	// inventory, which is why the default order is by name.
	out := agents
	err = v.walkIndex(&compiled{q: Query{Sort: SortName}, primary: c.primary}, func(row *Target) bool {
		t := v.stored(row)
		if c.match(v, t) && v.allowed(p, perm, t) && c.afterCursor(t) {
			out = append(out, t)
		}
		return true
	})
	if err != nil {
		return Page{}, err
	}
	sortTargets(out, c.q.Sort)
	return v.page(c, out, limit), nil
}

func (v *view) page(c *compiled, out []*Target, limit int) Page {
	page := Page{Items: make([]Target, 0, min(len(out), limit))}
	for i, t := range out {
		if i == limit {
			page.Next = c.cursorOf(out[limit-1])
			break
		}
		page.Items = append(page.Items, *t)
	}
	return page
}

// allowedRow is allowed for a stored row, without the deep copy that
// handing the row out needs: most rows a scoped walk sees are dropped.
func (v *view) allowedRow(p *identity.Principal, perm identity.Permission, row *Target) bool {
	shallow := *row // decorate sets only DynamicGroups, a new slice
	v.decorate(&shallow)
	return v.allowed(p, perm, &shallow)
}

// narrowToScope walks a tag of the caller's scope when nothing narrower
// was asked for and the caller holds perm in exactly one scope with tags:
// every target it may see carries that tag (unless the scope's groups
// admit it, so only scopes without groups qualify).
func (v *view) narrowToScope(c *compiled, p *identity.Principal, perm identity.Permission) {
	if p == nil || !bytes.Equal(c.primary, facetAll()) {
		return
	}
	scopes, ok := p.Scopes(perm)
	if !ok || len(scopes) != 1 || scopes[0] == nil || len(scopes[0].Tags) == 0 || len(scopes[0].Groups) > 0 {
		return
	}
	k := slices.Sorted(mapsKeys(scopes[0].Tags))[0]
	c.primary = facetTag(k, scopes[0].Tags[k])
}

// each calls fn with every target p holds perm on that passes q, page by
// page over one consistent view.
func (s *Service) each(_ context.Context, v *view, p *identity.Principal, perm identity.Permission, q Query, fn func(*Target) error) error {
	q.Limit = MaxLimit
	for {
		page, err := v.list(p, perm, q)
		if err != nil {
			return err
		}
		for i := range page.Items {
			if err := fn(&page.Items[i]); err != nil {
				return err
			}
		}
		if page.Next == "" {
			return nil
		}
		q.Cursor = page.Next
	}
}

// Each calls fn with every target p may read that passes q (Limit and
// Cursor ignored), over one consistent view: export uses it.
func (s *Service) Each(ctx context.Context, p *identity.Principal, q Query, fn func(Target) error) error {
	v, err := s.view(ctx)
	if err != nil {
		return err
	}
	q.Cursor = ""
	return s.each(ctx, v, p, identity.PermAssetsRead, q, func(t *Target) error { return fn(*t) })
}
