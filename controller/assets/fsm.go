package assets

import (
	"bytes"
	"fmt"
	"maps"
	"slices"

	"github.com/hashicorp/go-memdb"

	"github.com/opsconductor/opsconductor/controller/assets/graph"
	"github.com/opsconductor/opsconductor/controller/problem"
	"github.com/opsconductor/opsconductor/controller/state"
)

// Tables. Their indexes:
//
//	assets_targets  id     unique  ID
//	                name   unique  Name (agent overlays have none)
//	                group          each static group in Groups
//	                facet          sorted-by-name keys per tag, group,
//	                               connection and "all" (see facetIndex)
//	assets_groups   id     unique  Name
const (
	tableTargets = "assets_targets"
	tableGroups  = "assets_groups"
)

// Command types. Appended, never renamed or reused.
const (
	cmdTargetsPut    = "assets.targets_put"
	cmdTargetsDelete = "assets.targets_delete"
	cmdTargetRun     = "assets.target_run"
	cmdGroupPut      = "assets.group_put"
	cmdGroupDelete   = "assets.group_delete"
	cmdTargetFacts   = "assets.target_facts"
	cmdTargetHostKey = "assets.target_host_key"
)

// Domain returns the inventory's tables and commands for the state
// registry.
func Domain() state.Domain {
	return state.Domain{
		Name: "assets",
		Tables: []state.Table{
			{Schema: &memdb.TableSchema{Name: tableTargets, Indexes: map[string]*memdb.IndexSchema{
				"id":    {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
				"name":  {Name: "name", Unique: true, AllowMissing: true, Indexer: &memdb.StringFieldIndex{Field: "Name"}},
				"group": {Name: "group", AllowMissing: true, Indexer: &memdb.StringSliceFieldIndex{Field: "Groups"}},
				"facet": {Name: "facet", AllowMissing: true, Indexer: facetIndex{}},
			}}, New: func() any { return &Target{} }},
			{Schema: &memdb.TableSchema{Name: tableGroups, Indexes: map[string]*memdb.IndexSchema{
				"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Name"}},
			}}, New: func() any { return &Group{} }},
		},
		Commands: map[string]state.Handler{
			cmdTargetsPut:    state.V1(applyTargetsPut),
			cmdTargetsDelete: state.V1(applyTargetsDelete),
			cmdTargetRun:     state.V1(applyTargetRun),
			cmdGroupPut:      state.V1(applyGroupPut),
			cmdGroupDelete:   state.V1(applyGroupDelete),
			cmdTargetFacts:   state.V1(applyTargetFacts),
			cmdTargetHostKey: state.V1(applyTargetHostKey),
		},
	}
}

// facetIndex keys every stored (non-overlay) target once per way a list
// can be narrowed, each key ending in the target's name, so that one
// LowerBound walks the targets with a tag (or in a group, or of a
// connection type, or all of them) in name order from any cursor:
//
//	"n" 0 name 0                  every target
//	"t" 0 key 0 value 0 name 0    per tag
//	"g" 0 group 0 name 0          per static group
//	"c" 0 type 0 name 0           per connection type
//
// A filtered, sorted page then costs its own length, not the inventory's.
type facetIndex struct{}

// Facet prefixes.
func facetAll() []byte                { return []byte("n\x00") }
func facetTag(k, v string) []byte     { return []byte("t\x00" + k + "\x00" + v + "\x00") }
func facetGroup(g string) []byte      { return []byte("g\x00" + g + "\x00") }
func facetConnection(c string) []byte { return []byte("c\x00" + c + "\x00") }

// facetKey is the key of t under prefix (memdb then appends the ID).
func facetKey(prefix []byte, name string) []byte {
	k := make([]byte, 0, len(prefix)+len(name)+1)
	k = append(append(k, prefix...), name...)
	return append(k, 0)
}

func (facetIndex) FromObject(raw any) (bool, [][]byte, error) {
	t, ok := raw.(*Target)
	if !ok {
		return false, nil, fmt.Errorf("facet index: %T is not a target", raw)
	}
	if t.overlay() || t.Name == "" {
		return false, nil, nil
	}
	keys := [][]byte{facetKey(facetAll(), t.Name), facetKey(facetConnection(t.Connection.Type), t.Name)}
	for k, v := range t.Tags {
		keys = append(keys, facetKey(facetTag(k, v), t.Name))
	}
	for _, g := range t.Groups {
		keys = append(keys, facetKey(facetGroup(g), t.Name))
	}
	return true, keys, nil
}

// FromArgs takes one already-built key (a []byte), as LowerBound needs.
func (facetIndex) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("facet index takes one argument, got %d", len(args))
	}
	b, ok := args[0].([]byte)
	if !ok {
		return nil, fmt.Errorf("facet index argument must be []byte, got %T", args[0])
	}
	return b, nil
}

// hasFacet reports whether t is keyed under prefix. It parses the prefix
// rather than building t's keys: list walks call it once per row.
func hasFacet(t *Target, prefix []byte) bool {
	if len(prefix) < 2 || prefix[1] != 0 {
		return false
	}
	body := prefix[2:]
	switch prefix[0] {
	case 'n':
		return len(body) == 0
	case 'c':
		return len(body) > 0 && t.Connection.Type == string(body[:len(body)-1])
	case 'g':
		return len(body) > 0 && slices.Contains(t.Groups, string(body[:len(body)-1]))
	case 't':
		i := bytes.IndexByte(body, 0)
		if i < 0 || len(body) < i+2 {
			return false
		}
		v, ok := t.Tags[string(body[:i])]
		return ok && v == string(body[i+1:len(body)-1])
	}
	return false
}

// Put modes.
const (
	putCreate  = "create"  // every name must be new
	putUpsert  = "upsert"  // a known name is replaced in place
	putUpdate  = "update"  // by ID; the target must exist
	putOverlay = "overlay" // an agent's annotations, by agent ID
)

type targetsPutPayload struct {
	Mode    string   `json:"mode"`
	Actor   string   `json:"actor"`
	Targets []Target `json:"targets"`
	// Revisions, when given for a target ID, must match its current
	// revision (optimistic concurrency for updates).
	Revisions map[string]uint64 `json:"revisions,omitempty"`
}

// putResult says, per target, its ID and whether it was created or
// updated. It leaves the targets out: a 250-target import batch would
// otherwise encode them all again for nobody.
type putResult struct {
	IDs     []string `json:"ids"`
	Created []bool   `json:"created"`
}

func applyTargetsPut(ctx *state.ApplyContext, p targetsPutPayload) (any, error) {
	res := putResult{IDs: make([]string, 0, len(p.Targets)), Created: make([]bool, 0, len(p.Targets))}
	for i, in := range p.Targets {
		field := fmt.Sprintf("targets[%d]", i)
		var old *Target
		switch p.Mode {
		case putCreate, putUpsert:
			raw, err := ctx.Txn.First(tableTargets, "name", in.Name)
			if err != nil {
				return nil, err
			}
			if raw != nil {
				if p.Mode == putCreate {
					return nil, &problem.Error{Kind: problem.KindConflict, Code: "target_exists", Field: field + ".name",
						Message: fmt.Sprintf("a target named %q already exists", in.Name)}
				}
				old = raw.(*Target)
			}
		case putUpdate, putOverlay:
			raw, err := ctx.Txn.First(tableTargets, "id", in.ID)
			if err != nil {
				return nil, err
			}
			if raw != nil {
				old = raw.(*Target)
			} else if p.Mode == putUpdate {
				return nil, problem.NotFound("target", in.ID)
			}
			if p.Mode == putUpdate && in.Name != old.Name {
				other, err := ctx.Txn.First(tableTargets, "name", in.Name)
				if err != nil {
					return nil, err
				}
				if other != nil {
					return nil, &problem.Error{Kind: problem.KindConflict, Code: "target_exists", Field: field + ".name",
						Message: fmt.Sprintf("a target named %q already exists", in.Name)}
				}
			}
		default:
			return nil, problem.Invalid("mode", "unknown put mode %q", p.Mode)
		}
		if want, ok := p.Revisions[in.ID]; ok && (old == nil || old.Revision != want) {
			have := uint64(0)
			if old != nil {
				have = old.Revision
			}
			return nil, &problem.Error{Kind: problem.KindConflict, Code: "revision_mismatch", Field: "revision",
				Message: fmt.Sprintf("target %s is at revision %d, not %d: it changed since you read it", in.Name, have, want)}
		}
		t := in.clone()
		t.DynamicGroups = nil
		// Facts have one writer (assets.target_facts) and the last run
		// another (assets.target_run): a put keeps both. A host key
		// learnt on first contact stays unless a new one is given, so
		// that re-importing an inventory does not reopen trust on first
		// use.
		t.Facts, t.Status = nil, Status{}
		if old != nil {
			t.ID, t.CreatedAt, t.CreatedBy = old.ID, old.CreatedAt, old.CreatedBy
			t.Facts, t.Status.LastRun = maps.Clone(old.Facts), old.Status.LastRun
			if t.Connection.HostKey == "" && old.Connection.Type == t.Connection.Type {
				t.Connection.HostKey = old.Connection.HostKey
			}
		} else {
			t.CreatedAt, t.CreatedBy = ctx.Time, p.Actor
		}
		t.UpdatedAt, t.Revision = ctx.Time, ctx.Index
		t.Groups = sortedUnique(t.Groups)
		if err := ensureStaticGroups(ctx, field+".groups", t.Groups, p.Actor); err != nil {
			return nil, err
		}
		t.normalize()
		if err := ctx.Txn.Insert(tableTargets, t); err != nil {
			return nil, err
		}
		res.IDs = append(res.IDs, t.ID)
		res.Created = append(res.Created, old == nil)
	}
	return res, nil
}

// ensureStaticGroups creates the static groups a target lists that do not
// exist yet, and refuses listing a target in a dynamic group.
func ensureStaticGroups(ctx *state.ApplyContext, field string, groups []string, actor string) error {
	for i, name := range groups {
		raw, err := ctx.Txn.First(tableGroups, "id", name)
		if err != nil {
			return err
		}
		if raw == nil {
			g := &Group{Name: name, Kind: GroupStatic, CreatedAt: ctx.Time, CreatedBy: actor, UpdatedAt: ctx.Time, Revision: ctx.Index}
			if err := ctx.Txn.Insert(tableGroups, g); err != nil {
				return err
			}
			continue
		}
		if g := raw.(*Group); g.Kind == GroupDynamic {
			return problem.Invalid(fmt.Sprintf("%s[%d]", field, i), "%q is a dynamic group: its members follow its selector (%s)", name, g.Selector)
		}
	}
	return nil
}

type targetsDeletePayload struct {
	IDs []string `json:"ids"`
}

func applyTargetsDelete(ctx *state.ApplyContext, p targetsDeletePayload) (any, error) {
	out := make([]Target, 0, len(p.IDs))
	for _, id := range p.IDs {
		t, err := state.ByID[Target](ctx.Txn, tableTargets, "target", id)
		if err != nil {
			return nil, err
		}
		if err := ctx.Txn.Delete(tableTargets, t); err != nil {
			return nil, err
		}
		// An agent's overlay goes, but the agent's target stays; its
		// relationships go only with the agent itself.
		if !t.overlay() {
			if err := graph.RemoveNode(ctx.Txn, id); err != nil {
				return nil, fmt.Errorf("delete target %s: %w", id, err)
			}
		}
		out = append(out, *t)
	}
	return out, nil
}

type targetRunPayload struct {
	ID string `json:"id"`
	// Agent is set when ID is an agent's: the run is kept on its overlay,
	// created if needed.
	Agent bool       `json:"agent,omitempty"`
	Run   RunOutcome `json:"run"`
}

func applyTargetRun(ctx *state.ApplyContext, p targetRunPayload) (any, error) {
	raw, err := ctx.Txn.First(tableTargets, "id", p.ID)
	if err != nil {
		return nil, err
	}
	var t *Target
	switch {
	case raw != nil:
		t = raw.(*Target).clone()
	case p.Agent:
		t = &Target{ID: p.ID, Connection: Connection{Type: ConnAgent, AgentID: p.ID}, CreatedAt: ctx.Time}
		t.normalize()
	default:
		return nil, problem.NotFound("target", p.ID)
	}
	// Runs may report out of order; keep the latest.
	if last := t.Status.LastRun; last != nil && last.At.After(p.Run.At) {
		return *t, nil
	}
	run := p.Run
	t.Status.LastRun = &run
	t.Revision = ctx.Index
	if err := ctx.Txn.Insert(tableTargets, t); err != nil {
		return nil, err
	}
	return *t, nil
}

type groupPutPayload struct {
	Group  Group `json:"group"`
	Create bool  `json:"create"`
	// Members, when set (static groups), is the complete set of target
	// IDs to list in the group; AgentMembers are those that are agents'
	// targets (their overlays are created as needed).
	Members      *[]string `json:"members,omitempty"`
	AgentMembers []string  `json:"agent_members,omitempty"`
	Actor        string    `json:"actor"`
}

func applyGroupPut(ctx *state.ApplyContext, p groupPutPayload) (any, error) {
	raw, err := ctx.Txn.First(tableGroups, "id", p.Group.Name)
	if err != nil {
		return nil, err
	}
	g := p.Group
	g.UpdatedAt, g.Revision = ctx.Time, ctx.Index
	switch {
	case raw != nil && p.Create:
		return nil, &problem.Error{Kind: problem.KindConflict, Code: "group_exists", Field: "name",
			Message: fmt.Sprintf("a group named %q already exists", g.Name)}
	case raw == nil && !p.Create:
		return nil, problem.NotFound("group", g.Name)
	case raw != nil:
		old := raw.(*Group)
		g.CreatedAt, g.CreatedBy = old.CreatedAt, old.CreatedBy
	default:
		g.CreatedAt, g.CreatedBy = ctx.Time, p.Actor
	}
	current, err := staticMembers(ctx.Txn, g.Name)
	if err != nil {
		return nil, err
	}
	if g.Kind == GroupDynamic && len(current) > 0 {
		return nil, &problem.Error{Kind: problem.KindConflict, Code: "group_has_members", Field: "kind",
			Message: fmt.Sprintf("group %q lists %d targets statically; empty it (members: []) before making it dynamic", g.Name, len(current))}
	}
	if err := ctx.Txn.Insert(tableGroups, &g); err != nil {
		return nil, err
	}
	if p.Members != nil {
		want := map[string]bool{}
		for _, id := range *p.Members {
			want[id] = true
		}
		for _, t := range current {
			if !want[t.ID] {
				if err := setMembership(ctx, t, g.Name, false); err != nil {
					return nil, err
				}
			}
		}
		have := map[string]bool{}
		for _, t := range current {
			have[t.ID] = true
		}
		for i, id := range *p.Members {
			if have[id] {
				continue
			}
			raw, err := ctx.Txn.First(tableTargets, "id", id)
			if err != nil {
				return nil, err
			}
			var t *Target
			switch {
			case raw != nil:
				t = raw.(*Target)
			case slices.Contains(p.AgentMembers, id):
				t = &Target{ID: id, Connection: Connection{Type: ConnAgent, AgentID: id}, CreatedAt: ctx.Time, CreatedBy: p.Actor}
				t.normalize()
			default:
				return nil, problem.Invalid(fmt.Sprintf("members[%d]", i), "target %s no longer exists", id)
			}
			if err := setMembership(ctx, t, g.Name, true); err != nil {
				return nil, err
			}
		}
	}
	return g, nil
}

// staticMembers returns the stored rows listing group.
func staticMembers(txn state.Reader, group string) ([]*Target, error) {
	it, err := txn.Get(tableTargets, "group", group)
	if err != nil {
		return nil, fmt.Errorf("read members of %s: %w", group, err)
	}
	var out []*Target
	for obj := it.Next(); obj != nil; obj = it.Next() {
		out = append(out, obj.(*Target))
	}
	return out, nil
}

// setMembership adds or removes group from a copy of t and stores it.
func setMembership(ctx *state.ApplyContext, t *Target, group string, in bool) error {
	c := t.clone()
	if in {
		c.Groups = sortedUnique(append(c.Groups, group))
	} else {
		c.Groups = slices.DeleteFunc(c.Groups, func(g string) bool { return g == group })
	}
	c.UpdatedAt, c.Revision = ctx.Time, ctx.Index
	return ctx.Txn.Insert(tableTargets, c)
}

type groupDeletePayload struct {
	Name string `json:"name"`
}

func applyGroupDelete(ctx *state.ApplyContext, p groupDeletePayload) (any, error) {
	g, err := state.ByID[Group](ctx.Txn, tableGroups, "group", p.Name)
	if err != nil {
		return nil, err
	}
	members, err := staticMembers(ctx.Txn, p.Name)
	if err != nil {
		return nil, err
	}
	for _, t := range members {
		if err := setMembership(ctx, t, p.Name, false); err != nil {
			return nil, err
		}
	}
	if err := ctx.Txn.Delete(tableGroups, g); err != nil {
		return nil, err
	}
	return *g, nil
}

type targetFactsPayload struct {
	ID    string            `json:"id"`
	Facts map[string]string `json:"facts"`
}

// applyTargetFacts replaces an SSH target's facts (an agent's come from
// the agent and are never stored).
func applyTargetFacts(ctx *state.ApplyContext, p targetFactsPayload) (any, error) {
	old, err := state.ByID[Target](ctx.Txn, tableTargets, "target", p.ID)
	if err != nil {
		return nil, err
	}
	if old.overlay() {
		return nil, problem.Invalid("id", "%s is an agent's target: its facts are the agent's", p.ID)
	}
	t := old.clone()
	t.Facts = maps.Clone(p.Facts)
	t.Revision = ctx.Index
	t.normalize()
	if err := ctx.Txn.Insert(tableTargets, t); err != nil {
		return nil, err
	}
	return *t, nil
}

type targetHostKeyPayload struct {
	ID  string `json:"id"`
	Key string `json:"key"`
}

// applyTargetHostKey is the SSH host key check, decided in Apply so that
// two first contacts racing each other cannot both be trusted: the first
// key recorded under tofu wins, and any other key is a mismatch (as it is
// always under pinned).
func applyTargetHostKey(ctx *state.ApplyContext, p targetHostKeyPayload) (any, error) {
	old, err := state.ByID[Target](ctx.Txn, tableTargets, "target", p.ID)
	if err != nil {
		return nil, err
	}
	if old.Connection.Type != ConnSSH {
		return nil, problem.Invalid("id", "%s is not an ssh target", p.ID)
	}
	switch {
	case old.Connection.HostKey == p.Key:
		return *old, nil
	case old.Connection.HostKey == "" && old.Connection.HostKeyPolicy != HostKeyPinned:
		t := old.clone()
		t.Connection.HostKey = p.Key
		t.Revision, t.UpdatedAt = ctx.Index, ctx.Time
		if err := ctx.Txn.Insert(tableTargets, t); err != nil {
			return nil, err
		}
		return *t, nil
	}
	return nil, &problem.Error{Kind: problem.KindConflict, Code: "host_key_mismatch", Field: "host_key",
		Message: fmt.Sprintf("%s presented a host key that is not the one recorded for it (%s): refusing to connect; if the host was rebuilt, update the target's host_key",
			old.Name, old.Connection.HostKeyPolicy)}
}
