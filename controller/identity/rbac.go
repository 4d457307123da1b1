package identity

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/opsconductor/opsconductor/controller/problem"
)

// Permission is a "resource:verb" string. The set is closed: a role may only
// hold permissions listed in Permissions, so a typo fails at save time
// instead of silently granting nothing.
type Permission string

// The permissions every route and domain check is written against.
const (
	PermJobsRead           Permission = "jobs:read"
	PermJobsWrite          Permission = "jobs:write"
	PermJobsRun            Permission = "jobs:run"
	PermRunsCancel         Permission = "runs:cancel"
	PermAssetsRead         Permission = "assets:read"
	PermAssetsWrite        Permission = "assets:write"
	PermCredentialsRead    Permission = "credentials:read"
	PermCredentialsWrite   Permission = "credentials:write"
	PermCredentialsUse     Permission = "credentials:use"
	PermAgentsRead         Permission = "agents:read"
	PermAgentsAdmin        Permission = "agents:admin"
	PermPluginsWrite       Permission = "plugins:write"
	PermNotificationsRead  Permission = "notifications:read"
	PermNotificationsWrite Permission = "notifications:write"
	PermUsersRead          Permission = "users:read"
	PermUsersAdmin         Permission = "users:admin"
	PermAuditRead          Permission = "audit:read"
	PermClusterAdmin       Permission = "cluster:admin"
)

// Permissions lists every permission, in a stable order.
var Permissions = []Permission{
	PermJobsRead, PermJobsWrite, PermJobsRun, PermRunsCancel,
	PermAssetsRead, PermAssetsWrite,
	PermCredentialsRead, PermCredentialsWrite, PermCredentialsUse,
	PermAgentsRead, PermAgentsAdmin, PermPluginsWrite, PermNotificationsRead, PermNotificationsWrite,
	PermUsersRead, PermUsersAdmin, PermAuditRead, PermClusterAdmin,
}

func knownPermission(p Permission) bool { return slices.Contains(Permissions, p) }

// Role is a named set of permissions. Built-in roles live in code, so every
// controller version agrees on them and nobody can edit them away; custom
// roles live in the replicated state.
type Role struct {
	Name        string       `json:"name"`
	Description string       `json:"description,omitempty"`
	Permissions []Permission `json:"permissions"`
	Builtin     bool         `json:"builtin"`
}

// BuiltinRoles are admin, operator, viewer and auditor. The caller owns
// the returned slice.
func BuiltinRoles() []Role {
	out := slices.Clone(builtinRoles())
	for i := range out {
		out[i].Permissions = slices.Clone(out[i].Permissions)
	}
	return out
}

// builtinRoles is computed once and never modified: role lookups happen on
// every request.
var builtinRoles = sync.OnceValue(func() []Role {
	return []Role{
		{Name: "admin", Builtin: true, Description: "Everything, including users, cluster operations and the audit log.",
			Permissions: slices.Clone(Permissions)},
		{Name: "operator", Builtin: true, Description: "Runs and edits jobs, manages inventory and uses credentials; no user or cluster administration.",
			Permissions: []Permission{PermJobsRead, PermJobsWrite, PermJobsRun, PermRunsCancel, PermAssetsRead, PermAssetsWrite,
				PermCredentialsRead, PermCredentialsUse, PermAgentsRead, PermNotificationsRead, PermNotificationsWrite}},
		{Name: "viewer", Builtin: true, Description: "Reads jobs, runs, inventory and agents.",
			Permissions: []Permission{PermJobsRead, PermAssetsRead, PermCredentialsRead, PermAgentsRead, PermNotificationsRead}},
		{Name: "auditor", Builtin: true, Description: "Reads everything, including users and the audit log; changes nothing.",
			Permissions: []Permission{PermJobsRead, PermAssetsRead, PermCredentialsRead, PermAgentsRead, PermNotificationsRead, PermUsersRead, PermAuditRead}},
	}
})

// builtinRole returns a built-in role; its Permissions must not be changed.
func builtinRole(name string) (Role, bool) {
	for _, r := range builtinRoles() {
		if r.Name == name {
			return r, true
		}
	}
	return Role{}, false
}

// Scope narrows a role binding to part of the inventory: targets carrying
// all the given tags, or members of any of the given groups. The assets and
// automation domains enforce it; identity only stores and reports it. A nil
// scope is the whole inventory.
type Scope struct {
	Tags   map[string]string `json:"tags,omitempty"`
	Groups []string          `json:"groups,omitempty"`
}

func (s *Scope) empty() bool { return s == nil || (len(s.Tags) == 0 && len(s.Groups) == 0) }

// key is a canonical form for comparing scopes.
func (s *Scope) key() string {
	if s.empty() {
		return ""
	}
	tags := make([]string, 0, len(s.Tags))
	for k, v := range s.Tags {
		tags = append(tags, k+"="+v)
	}
	sort.Strings(tags)
	groups := slices.Clone(s.Groups)
	sort.Strings(groups)
	return strings.Join(tags, ",") + "|" + strings.Join(groups, ",")
}

// Binding grants a role, optionally within a scope. In JSON a binding is
// either the role name ("viewer") or an object with role and scope.
type Binding struct {
	Role  string `json:"role"`
	Scope *Scope `json:"scope,omitempty"`
}

// UnmarshalJSON accepts "role" as shorthand for {"role":"role"}.
func (b *Binding) UnmarshalJSON(data []byte) error {
	var name string
	if err := json.Unmarshal(data, &name); err == nil {
		*b = Binding{Role: name}
		return nil
	}
	type plain Binding
	var p plain
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return fmt.Errorf("a role binding is a role name or {\"role\": …, \"scope\": {\"tags\": …, \"groups\": …}}: %w", err)
	}
	*b = Binding(p)
	return nil
}

var namePattern = regexp.MustCompile(`^[a-z][a-z0-9_.-]{1,62}$`)

// validateBindings checks bindings against the known roles, reporting each
// problem with its path under field.
func validateBindings(field string, bindings []Binding, roles func(string) (Role, bool), errs *problem.List) {
	seen := map[string]bool{}
	for i, b := range bindings {
		path := fmt.Sprintf("%s[%d]", field, i)
		if _, ok := roles(b.Role); !ok {
			errs.Add(path+".role", "unknown role %q", b.Role)
			continue
		}
		k := b.Role + "#" + b.Scope.key()
		if seen[k] {
			errs.Add(path, "role %q is bound twice with the same scope", b.Role)
		}
		seen[k] = true
		if b.Scope != nil {
			for tk := range b.Scope.Tags {
				if tk == "" || len(tk) > 128 {
					errs.Add(path+".scope.tags", "tag keys must be 1 to 128 characters")
				}
			}
			for gi, g := range b.Scope.Groups {
				if g == "" || len(g) > 128 {
					errs.Add(fmt.Sprintf("%s.scope.groups[%d]", path, gi), "group names must be 1 to 128 characters")
				}
			}
		}
	}
}

// grantSet is what a principal holds: a bit per permission in Permissions
// order, held anywhere and held unscoped, plus the scopes of permissions
// held only within scopes. It is computed on every request, so it avoids
// maps in the common unscoped case.
type grantSet struct {
	held, unscoped uint64
	scopes         map[Permission][]*Scope
}

func permBit(p Permission) (uint64, bool) {
	i := slices.Index(Permissions, p)
	if i < 0 {
		return 0, false
	}
	return 1 << i, true
}

// scopesFor returns where perm is held: ok false when nowhere, scopes nil
// when everywhere.
func (g grantSet) scopesFor(perm Permission) (scopes []*Scope, ok bool) {
	bit, known := permBit(perm)
	if !known || g.held&bit == 0 {
		return nil, false
	}
	if g.unscoped&bit != 0 {
		return nil, true
	}
	return g.scopes[perm], true
}

// grants expands bindings into permissions. A permission granted unscoped
// by any binding is unscoped; otherwise it carries every scope it was
// granted in.
func grants(bindings []Binding, roles func(string) (Role, bool)) grantSet {
	var g grantSet
	for _, b := range bindings {
		role, ok := roles(b.Role)
		if !ok {
			continue // a deleted custom role grants nothing
		}
		for _, p := range role.Permissions {
			bit, known := permBit(p)
			if !known {
				continue
			}
			g.held |= bit
			if b.Scope.empty() {
				g.unscoped |= bit
				continue
			}
			if g.scopes == nil {
				g.scopes = map[Permission][]*Scope{}
			}
			g.scopes[p] = append(g.scopes[p], b.Scope)
		}
	}
	return g
}

// covers reports whether the holder of have may hand out want: the role
// must be held unscoped, or with exactly the same scope. This keeps API
// tokens and role assignments from ever exceeding their creator.
func covers(have []Binding, want Binding, roles func(string) (Role, bool)) bool {
	wantRole, ok := roles(want.Role)
	if !ok {
		return false
	}
	held := grants(have, roles)
	for _, p := range wantRole.Permissions {
		scopes, ok := held.scopesFor(p)
		if !ok {
			return false
		}
		if scopes == nil {
			continue
		}
		if want.Scope.empty() {
			return false
		}
		match := false
		for _, s := range scopes {
			if s.key() == want.Scope.key() {
				match = true
			}
		}
		if !match {
			return false
		}
	}
	return true
}
