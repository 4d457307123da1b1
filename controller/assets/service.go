// Package assets is the inventory: targets (the hosts steps run on, each
// reached through its own agent or over SSH from a relay agent), static
// and dynamic groups, bulk import and export, and the scoped access checks
// other domains ask before running on a target or using its credentials.
//
// Every enrolled agent is a target without anyone creating it: agentrpc
// owns agents, and this package reads them live through AgentDirectory,
// storing only what operators add to an agent's target (tags, groups,
// owner, notes) as an overlay row. Relationships (graph/), credentials
// (credentials/) and discovery (discovery/) are subpackages that consume
// this one; it must never read another domain's tables, and its FSM
// handlers never read a clock or draw randomness: IDs and times come in
// the command.
package assets

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/opsconductor/opsconductor/controller/assets/selector"
	"github.com/opsconductor/opsconductor/controller/identity"
	"github.com/opsconductor/opsconductor/controller/problem"
	"github.com/opsconductor/opsconductor/controller/state"
)

// Applier commits commands through Raft (cluster.Node in production).
type Applier interface {
	Apply(ctx context.Context, cmds ...state.Command) ([]state.Result, error)
}

// AgentFacts are an agent's host facts as it reported them.
type AgentFacts struct {
	Hostname    string
	OS          string
	OSVersion   string
	Kernel      string
	Arch        string
	CPUs        int
	MemoryBytes uint64
	Addresses   []string
	Extra       map[string]string
}

// AgentInfo is what the inventory needs of an enrolled agent.
type AgentInfo struct {
	ID         string
	Name       string
	Tags       map[string]string
	Facts      AgentFacts
	Status     string // enrolled, up, down, revoked
	LastSeen   *time.Time
	EnrolledAt time.Time
}

// AgentDirectory is the inventory's view of agentrpc: every enrolled
// agent, read live, so an agent's target appears the moment it enrols and
// its facts and status are never a stale copy.
type AgentDirectory interface {
	// Agents returns every agent, revoked ones included, in any order.
	Agents(ctx context.Context) ([]AgentInfo, error)
	// Agent returns one agent by ID or name, or a not-found problem.
	Agent(ctx context.Context, idOrName string) (AgentInfo, error)
}

// Deps are what the service needs.
type Deps struct {
	Applier Applier
	Store   *state.Store
	Agents  AgentDirectory
	Logger  *slog.Logger
}

// Service is the inventory on one controller.
type Service struct {
	d Deps

	// selectors caches parsed dynamic-group selectors by their text:
	// every read builds a view, and other domains read per target.
	selMu     sync.Mutex
	selectors map[string]selector.Selector
}

// maxCachedSelectors bounds the cache; past it, it starts over.
const maxCachedSelectors = 4096

func (s *Service) parseSelector(src string) (selector.Selector, error) {
	s.selMu.Lock()
	defer s.selMu.Unlock()
	if sel, ok := s.selectors[src]; ok {
		return sel, nil
	}
	sel, err := selector.Parse(src)
	if err != nil {
		return sel, err
	}
	if s.selectors == nil || len(s.selectors) >= maxCachedSelectors {
		s.selectors = map[string]selector.Selector{}
	}
	s.selectors[src] = sel
	return sel, nil
}

// New checks deps and returns the service.
func New(d Deps) (*Service, error) {
	if d.Applier == nil || d.Store == nil || d.Agents == nil || d.Logger == nil {
		return nil, errors.New("assets: Applier, Store, Agents and Logger are required")
	}
	return &Service{d: d}, nil
}

func newID(prefix string) (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random id: %w", err)
	}
	return prefix + hex.EncodeToString(b), nil
}

func (s *Service) apply(ctx context.Context, typ string, payload, out any) error {
	return state.ApplyOne(ctx, s.d.Applier, typ, payload, out)
}

// view is one consistent read of the inventory: a memdb snapshot, the
// groups, and (loaded on first need) the agents.
type view struct {
	s       *Service
	ctx     context.Context
	txn     *memdb.Txn
	groups  map[string]*Group
	dynamic []dynGroup
	agents  []AgentInfo
	loaded  bool
}

type dynGroup struct {
	name string
	sel  selector.Selector
}

func (s *Service) view(ctx context.Context) (*view, error) {
	v := &view{s: s, ctx: ctx, txn: s.d.Store.ReadTxn(), groups: map[string]*Group{}}
	it, err := v.txn.Get(tableGroups, "id")
	if err != nil {
		return nil, fmt.Errorf("read groups: %w", err)
	}
	for obj := it.Next(); obj != nil; obj = it.Next() {
		g := obj.(*Group)
		v.groups[g.Name] = g
		if g.Kind == GroupDynamic {
			sel, err := s.parseSelector(g.Selector)
			if err != nil {
				// Stored selectors were parsed when written; one that no
				// longer parses (a stricter parser) matches nothing.
				s.d.Logger.Warn("dynamic group selector does not parse", "group", g.Name, "error", err)
				sel = selector.MustParse("facts.__unparseable__")
			}
			v.dynamic = append(v.dynamic, dynGroup{name: g.Name, sel: sel})
		}
	}
	return v, nil
}

func (v *view) loadAgents() error {
	if v.loaded {
		return nil
	}
	a, err := v.s.d.Agents.Agents(v.ctx)
	if err != nil {
		return fmt.Errorf("read agents: %w", err)
	}
	v.agents, v.loaded = a, true
	return nil
}

// agentTarget is an agent's target: the agent merged with its overlay.
func (v *view) agentTarget(a AgentInfo) (*Target, error) {
	t := &Target{ID: a.ID, Name: a.Name, Connection: Connection{Type: ConnAgent, AgentID: a.ID}, CreatedAt: a.EnrolledAt, UpdatedAt: a.EnrolledAt}
	raw, err := v.txn.First(tableTargets, "id", a.ID)
	if err != nil {
		return nil, fmt.Errorf("read target %s: %w", a.ID, err)
	}
	tags := maps.Clone(a.Tags)
	if tags == nil {
		tags = map[string]string{}
	}
	if raw != nil {
		o := raw.(*Target)
		maps.Copy(tags, o.Tags)
		t.Groups, t.Owner, t.Notes = slices.Clone(o.Groups), o.Owner, o.Notes
		t.Status.LastRun = o.Status.LastRun
		t.CreatedBy, t.UpdatedAt, t.Revision = o.CreatedBy, o.UpdatedAt, o.Revision
	}
	t.Tags = tags
	t.Addresses = slices.Clone(a.Facts.Addresses)
	if len(t.Addresses) == 0 && a.Facts.Hostname != "" {
		t.Addresses = []string{a.Facts.Hostname}
	}
	t.Facts = flattenFacts(a.Facts)
	t.Status.Agent, t.Status.LastSeen = a.Status, a.LastSeen
	t.normalize()
	v.decorate(t)
	return t, nil
}

// stored returns a stored (non-overlay) target ready to hand out.
func (v *view) stored(row *Target) *Target {
	t := row.clone()
	t.Status.Agent = StatusUnknown
	t.normalize()
	v.decorate(t)
	return t
}

// decorate fills in the dynamic groups t belongs to.
func (v *view) decorate(t *Target) {
	t.DynamicGroups = nil
	for _, g := range v.dynamic {
		if g.sel.Match(t) {
			t.DynamicGroups = append(t.DynamicGroups, g.name)
		}
	}
}

// memberOf reports whether t is in the group, static or dynamic.
func (v *view) memberOf(t *Target, group string) bool {
	return t.InGroup(group) || slices.Contains(t.DynamicGroups, group)
}

// inScopes reports whether t lies in any of the scopes (nil: everywhere).
// A scope holds targets carrying all its tags or in any of its groups.
func (v *view) inScopes(scopes []*identity.Scope, t *Target) bool {
	if scopes == nil {
		return true
	}
	for _, sc := range scopes {
		if sc == nil {
			return true
		}
		if len(sc.Tags) > 0 {
			all := true
			for k, want := range sc.Tags {
				if got, ok := t.Tags[k]; !ok || got != want {
					all = false
					break
				}
			}
			if all {
				return true
			}
		}
		for _, g := range sc.Groups {
			if v.memberOf(t, g) {
				return true
			}
		}
	}
	return false
}

// allowed reports whether p holds perm on t.
func (v *view) allowed(p *identity.Principal, perm identity.Permission, t *Target) bool {
	if p == nil {
		return false
	}
	scopes, ok := p.Scopes(perm)
	return ok && v.inScopes(scopes, t)
}

// lookup finds a target by ID or name: a stored target first, then an
// agent's.
func (v *view) lookup(idOrName string) (*Target, error) {
	for _, index := range []string{"id", "name"} {
		raw, err := v.txn.First(tableTargets, index, idOrName)
		if err != nil {
			return nil, fmt.Errorf("read target: %w", err)
		}
		if raw != nil && !raw.(*Target).overlay() {
			return v.stored(raw.(*Target)), nil
		}
	}
	a, err := v.s.d.Agents.Agent(v.ctx, idOrName)
	if problem.Is(err, problem.KindNotFound) {
		return nil, problem.NotFound("target", idOrName)
	}
	if err != nil {
		return nil, fmt.Errorf("read agent %s: %w", idOrName, err)
	}
	return v.agentTarget(a)
}

// Get returns a target by ID or name, whoever asks. Other domains use it
// after their own access checks (see Allowed and Resolve).
func (s *Service) Get(ctx context.Context, idOrName string) (Target, error) {
	v, err := s.view(ctx)
	if err != nil {
		return Target{}, err
	}
	t, err := v.lookup(idOrName)
	if err != nil {
		return Target{}, err
	}
	return *t, nil
}

// GetFor returns a target p may read; one outside p's scope is not found,
// so that its existence does not leak.
func (s *Service) GetFor(ctx context.Context, p *identity.Principal, idOrName string) (Target, error) {
	v, err := s.view(ctx)
	if err != nil {
		return Target{}, err
	}
	t, err := v.lookup(idOrName)
	if err != nil {
		return Target{}, err
	}
	if !v.allowed(p, identity.PermAssetsRead, t) {
		return Target{}, problem.NotFound("target", idOrName)
	}
	return *t, nil
}

// Allowed reports whether p holds perm on t (within a scope that covers
// it, or unscoped). Automation asks it before running on a target and
// credentials before using a credential for one.
func (s *Service) Allowed(p *identity.Principal, perm identity.Permission, t Target) bool {
	v, err := s.view(context.Background())
	if err != nil {
		return false
	}
	v.decorate(&t)
	return v.allowed(p, perm, &t)
}

// GroupsOf lists every group t is in: its static groups and the dynamic
// groups whose selector matches it, sorted.
func (s *Service) GroupsOf(t Target) []string {
	v, err := s.view(context.Background())
	if err != nil {
		return slices.Clone(t.Groups)
	}
	v.decorate(&t)
	return sortedUnique(append(slices.Clone(t.Groups), t.DynamicGroups...))
}

// ResolveSpec names targets the way a job or a credential binding does:
// by a selector, a group, or names/IDs (any combination, united).
type ResolveSpec struct {
	Selector string   `json:"selector,omitempty"`
	Group    string   `json:"group,omitempty"`
	Names    []string `json:"names,omitempty"`
	// All adds every target the principal holds the permission on.
	All bool `json:"all,omitempty"`
}

// Resolve returns the targets spec names on which p holds perm, sorted by
// name. Targets matched by a selector or group that p may not use are
// left out; a name p may not use is refused as not found (naming the
// field names[i]), so a caller cannot probe for hidden targets.
func (s *Service) Resolve(ctx context.Context, p *identity.Principal, perm identity.Permission, spec ResolveSpec) ([]Target, error) {
	v, err := s.view(ctx)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []Target
	add := func(t *Target) {
		if !seen[t.ID] {
			seen[t.ID] = true
			out = append(out, *t)
		}
	}
	var errs problem.List
	for i, n := range spec.Names {
		t, err := v.lookup(n)
		if problem.Is(err, problem.KindNotFound) || (err == nil && !v.allowed(p, perm, t)) {
			errs = append(errs, &problem.Error{Kind: problem.KindNotFound, Code: "target_not_found", Field: fmt.Sprintf("names[%d]", i),
				Message: fmt.Sprintf("target %q not found", n)})
			continue
		}
		if err != nil {
			return nil, err
		}
		add(t)
	}
	if len(errs) > 0 {
		e := errs.Err()
		if pe, ok := problem.As(e); ok {
			pe.Kind = problem.KindNotFound
		}
		return nil, e
	}
	if spec.Selector != "" || spec.Group != "" || spec.All {
		q := Query{Group: spec.Group, Selector: spec.Selector, Sort: SortName}
		if err := s.each(ctx, v, p, perm, q, func(t *Target) error { add(t); return nil }); err != nil {
			return nil, err
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Name < out[j].Name || (out[i].Name == out[j].Name && out[i].ID < out[j].ID)
	})
	return out, nil
}

// checkWriteScope refuses a write that would leave p's assets:write scope.
func (v *view) checkWriteScope(p *identity.Principal, t *Target, field string) error {
	if v.allowed(p, identity.PermAssetsWrite, t) {
		return nil
	}
	return &problem.Error{Kind: problem.KindForbidden, Code: "outside_scope", Field: field,
		Message: fmt.Sprintf("target %q would be outside where you hold assets:write (your scope is set by your role bindings)", t.Name)}
}

// viaAgent checks that an SSH target's relay agent exists and is not
// revoked.
func (s *Service) viaAgent(ctx context.Context, via string) error {
	a, err := s.d.Agents.Agent(ctx, via)
	if problem.Is(err, problem.KindNotFound) {
		return fmt.Errorf("no agent named %q relays SSH connections: name an enrolled agent", via)
	}
	if err != nil {
		return err
	}
	if a.Status == "revoked" {
		return fmt.Errorf("agent %q is revoked", via)
	}
	return nil
}

// agentNameTaken reports whether an agent holds name, since an agent's
// target takes its agent's name.
func (s *Service) agentNameTaken(ctx context.Context, name string) (bool, error) {
	_, err := s.d.Agents.Agent(ctx, name)
	if problem.Is(err, problem.KindNotFound) {
		return false, nil
	}
	return err == nil, err
}

func fromInput(in TargetInput) Target {
	t := Target{Name: in.Name, Addresses: slices.Clone(in.Addresses), Tags: maps.Clone(in.Tags), Groups: sortedUnique(in.Groups),
		Owner: in.Owner, Notes: in.Notes}
	if in.Connection != nil {
		t.Connection = *in.Connection
		if t.Connection.Type == ConnSSH && t.Connection.HostKeyPolicy == "" {
			t.Connection.HostKeyPolicy = HostKeyTOFU
		}
	}
	t.normalize()
	return t
}

// Create adds one SSH target.
func (s *Service) Create(ctx context.Context, p *identity.Principal, in TargetInput) (Target, error) {
	var errs problem.List
	checkInput("", in, &errs)
	if err := errs.Err(); err != nil {
		return Target{}, err
	}
	if err := s.viaAgent(ctx, in.Connection.Via); err != nil {
		return Target{}, problem.Invalid("connection.via", "%v", err)
	}
	if taken, err := s.agentNameTaken(ctx, in.Name); err != nil {
		return Target{}, err
	} else if taken {
		return Target{}, &problem.Error{Kind: problem.KindConflict, Code: "target_exists", Field: "name",
			Message: fmt.Sprintf("an agent named %q is already a target", in.Name)}
	}
	v, err := s.view(ctx)
	if err != nil {
		return Target{}, err
	}
	t := fromInput(in)
	if err := v.checkDynamic("groups", t.Groups); err != nil {
		return Target{}, err
	}
	v.decorate(&t)
	if err := v.checkWriteScope(p, &t, "tags"); err != nil {
		return Target{}, err
	}
	if t.ID, err = newID("tgt_"); err != nil {
		return Target{}, err
	}
	var res putResult
	if err := s.apply(ctx, cmdTargetsPut, targetsPutPayload{Mode: putCreate, Actor: p.Name(), Targets: []Target{t}}, &res); err != nil {
		return Target{}, stripBatchField(err)
	}
	s.d.Logger.Info("created a target", "target_id", res.IDs[0], "name", t.Name, "actor", p.Name())
	return s.Get(ctx, res.IDs[0])
}

// stripBatchField turns "targets[0].name" into "name" for single writes.
func stripBatchField(err error) error {
	p, ok := problem.As(err)
	if !ok || !strings.HasPrefix(p.Field, "targets[0].") {
		return err
	}
	c := *p
	c.Field = strings.TrimPrefix(p.Field, "targets[0].")
	return &c
}

// checkDynamic refuses listing a target in a dynamic group.
func (v *view) checkDynamic(field string, groups []string) error {
	var errs problem.List
	for i, g := range groups {
		if grp, ok := v.groups[g]; ok && grp.Kind == GroupDynamic {
			errs.Add(fmt.Sprintf("%s[%d]", field, i), "%q is a dynamic group: its members follow its selector (%s)", g, grp.Selector)
		}
	}
	return errs.Err()
}

// writable finds a target p may change: one it cannot read is not found,
// so that existence does not leak; one it reads outside its write scope
// is refused.
func (s *Service) writable(ctx context.Context, p *identity.Principal, idOrName string) (*view, *Target, error) {
	v, err := s.view(ctx)
	if err != nil {
		return nil, nil, err
	}
	t, err := v.lookup(idOrName)
	if err != nil {
		return nil, nil, err
	}
	if !v.allowed(p, identity.PermAssetsRead, t) {
		return nil, nil, problem.NotFound("target", idOrName)
	}
	if err := v.checkWriteScope(p, t, ""); err != nil {
		return nil, nil, err
	}
	return v, t, nil
}

// Update changes a target. An agent's target takes only tags, groups,
// owner and notes: the rest is the agent's.
func (s *Service) Update(ctx context.Context, p *identity.Principal, idOrName string, patch TargetPatch) (Target, error) {
	v, old, err := s.writable(ctx, p, idOrName)
	if err != nil {
		return Target{}, err
	}
	mode := putUpdate
	next := old.clone()
	if old.overlay() {
		mode = putOverlay
		var errs problem.List
		if patch.Name != nil {
			errs.Add("name", "an agent's target takes its agent's name")
		}
		if patch.Addresses != nil {
			errs.Add("addresses", "an agent's target takes the addresses its agent reports")
		}
		if patch.Connection != nil {
			errs.Add("connection", "an agent's target is reached through its agent")
		}
		if err := errs.Err(); err != nil {
			return Target{}, err
		}
		// The overlay stores what operators add; the agent's own tags
		// stay whatever the agent carries.
		raw, err := v.txn.First(tableTargets, "id", old.ID)
		if err != nil {
			return Target{}, err
		}
		next = &Target{ID: old.ID, Connection: old.Connection, Tags: map[string]string{}, Groups: []string{}}
		if raw != nil {
			next = raw.(*Target).clone()
		}
	}
	if patch.Name != nil {
		next.Name = *patch.Name
	}
	if patch.Addresses != nil {
		next.Addresses = slices.Clone(*patch.Addresses)
	}
	if patch.Connection != nil {
		next.Connection = *patch.Connection
		if next.Connection.Type == ConnSSH && next.Connection.HostKeyPolicy == "" {
			next.Connection.HostKeyPolicy = HostKeyTOFU
		}
	}
	if patch.Tags != nil {
		next.Tags = maps.Clone(*patch.Tags)
	}
	if patch.Groups != nil {
		next.Groups = sortedUnique(*patch.Groups)
	}
	if patch.Owner != nil {
		next.Owner = *patch.Owner
	}
	if patch.Notes != nil {
		next.Notes = *patch.Notes
	}
	var errs problem.List
	if mode == putUpdate {
		conn := next.Connection
		checkInput("", TargetInput{Name: next.Name, Addresses: next.Addresses, Connection: &conn, Tags: next.Tags,
			Groups: next.Groups, Owner: next.Owner, Notes: next.Notes}, &errs)
	} else {
		checkTags("tags", next.Tags, &errs)
		checkGroupNames("groups", next.Groups, &errs)
		checkFreeText("", next.Owner, next.Notes, &errs)
	}
	if err := errs.Err(); err != nil {
		return Target{}, err
	}
	if err := v.checkDynamic("groups", next.Groups); err != nil {
		return Target{}, err
	}
	if mode == putUpdate && patch.Connection != nil && next.Connection.Via != old.Connection.Via {
		if err := s.viaAgent(ctx, next.Connection.Via); err != nil {
			return Target{}, problem.Invalid("connection.via", "%v", err)
		}
	}
	if mode == putUpdate && next.Name != old.Name {
		if taken, err := s.agentNameTaken(ctx, next.Name); err != nil {
			return Target{}, err
		} else if taken {
			return Target{}, &problem.Error{Kind: problem.KindConflict, Code: "target_exists", Field: "name",
				Message: fmt.Sprintf("an agent named %q is already a target", next.Name)}
		}
	}
	// The scope is judged on the target as it will read afterwards.
	after := next.clone()
	if old.overlay() {
		after = old.clone()
		after.Tags = maps.Clone(old.Tags)
		maps.Copy(after.Tags, next.Tags)
		after.Groups = next.Groups
	}
	v.decorate(after)
	if err := v.checkWriteScope(p, after, "tags"); err != nil {
		return Target{}, err
	}
	payload := targetsPutPayload{Mode: mode, Actor: p.Name(), Targets: []Target{*next}}
	if patch.Revision != nil {
		payload.Revisions = map[string]uint64{old.ID: *patch.Revision}
	}
	var res putResult
	if err := s.apply(ctx, cmdTargetsPut, payload, &res); err != nil {
		return Target{}, stripBatchField(err)
	}
	s.d.Logger.Info("updated a target", "target_id", old.ID, "name", after.Name, "actor", p.Name())
	return s.Get(ctx, old.ID)
}

// Delete removes an SSH target and its relationships. An agent's target
// cannot be deleted: it lasts as long as the agent's record (a revoked
// agent's target stays, marked revoked, so that history keeps naming it).
func (s *Service) Delete(ctx context.Context, p *identity.Principal, idOrName string) (Target, error) {
	_, t, err := s.writable(ctx, p, idOrName)
	if err != nil {
		return Target{}, err
	}
	if t.overlay() {
		return Target{}, problem.New(problem.KindConflict, "agent_target",
			"%s is an agent's target: it exists as long as the agent does (revoke the agent with `opsconductor agent revoke %s`)", t.Name, t.ID)
	}
	var out []Target
	if err := s.apply(ctx, cmdTargetsDelete, targetsDeletePayload{IDs: []string{t.ID}}, &out); err != nil {
		return Target{}, err
	}
	s.d.Logger.Info("deleted a target", "target_id", t.ID, "name", t.Name, "actor", p.Name())
	return *t, nil
}

// RecordRun stores the outcome of the latest run on a target; automation
// calls it when a run's attempt on the target ends.
func (s *Service) RecordRun(ctx context.Context, targetID string, run RunOutcome) error {
	t, err := s.Get(ctx, targetID)
	if err != nil {
		return err
	}
	var out Target
	return s.apply(ctx, cmdTargetRun, targetRunPayload{ID: t.ID, Agent: t.overlay(), Run: run}, &out)
}

// Limits on the facts RecordFacts keeps.
const (
	maxFacts     = 256
	maxFactKey   = 128
	maxFactValue = 1024
)

// RecordFacts replaces an SSH target's facts with what a step (the ssh
// step's fact gathering) or discovery found: selectors read them as
// facts.NAME. Agents report their own facts, so an agent's target
// refuses it.
func (s *Service) RecordFacts(ctx context.Context, targetID string, facts map[string]string) error {
	var errs problem.List
	if len(facts) > maxFacts {
		errs.Add("facts", "at most %d facts", maxFacts)
	}
	for k, v := range facts {
		ok := k != "" && len(k) <= maxFactKey
		for i := 0; ok && i < len(k); i++ {
			ok = selector.IsKeyChar(k[i])
		}
		if !ok {
			errs.Add("facts."+k, "fact names are 1 to %d letters, digits and _ . / -", maxFactKey)
		}
		if len(v) > maxFactValue {
			errs.Add("facts."+k, "fact values are at most %d bytes", maxFactValue)
		}
	}
	if err := errs.Err(); err != nil {
		return err
	}
	var out Target
	return s.apply(ctx, cmdTargetFacts, targetFactsPayload{ID: targetID, Facts: facts}, &out)
}

// CheckHostKey is what the ssh step asks on contact with an SSH target:
// key (authorized_keys form) is accepted when it is the recorded key, or,
// under the tofu policy, when none is recorded yet (it is recorded then).
// Any other key is a host_key_mismatch conflict.
func (s *Service) CheckHostKey(ctx context.Context, targetID, key string) (Target, error) {
	if f := strings.Fields(key); len(f) < 2 || len(key) > maxHostKey {
		return Target{}, problem.Invalid("host_key", "must be a public key in authorized_keys form (\"ssh-ed25519 AAAA…\")")
	}
	var out Target
	if err := s.apply(ctx, cmdTargetHostKey, targetHostKeyPayload{ID: targetID, Key: key}, &out); err != nil {
		return Target{}, err
	}
	return out, nil
}
