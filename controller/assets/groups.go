package assets

import (
	"context"
	"fmt"
	"sort"

	"github.com/opsconductor/opsconductor/controller/identity"
	"github.com/opsconductor/opsconductor/controller/problem"
)

// ListGroups returns every group, by name. Group names are not secret:
// which targets are in one is what scopes govern (see Members).
func (s *Service) ListGroups(ctx context.Context) ([]Group, error) {
	v, err := s.view(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Group, 0, len(v.groups))
	for _, g := range v.groups {
		out = append(out, *g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// GetGroup returns one group.
func (s *Service) GetGroup(ctx context.Context, name string) (Group, error) {
	v, err := s.view(ctx)
	if err != nil {
		return Group{}, err
	}
	g, ok := v.groups[name]
	if !ok {
		return Group{}, problem.NotFound("group", name)
	}
	return *g, nil
}

// Members returns one page of the group's members that p may read,
// evaluated now.
func (s *Service) Members(ctx context.Context, p *identity.Principal, name string, q Query) (Page, error) {
	q.Group = name
	return s.List(ctx, p, q)
}

// requireUnscopedWrite refuses group changes to a principal whose
// assets:write is scoped: groups define scopes, so a scoped writer could
// otherwise widen its own reach.
func requireUnscopedWrite(p *identity.Principal) error {
	scopes, ok := p.Scopes(identity.PermAssetsWrite)
	if !ok || scopes != nil {
		return problem.New(problem.KindForbidden, "scoped_write",
			"changing groups needs assets:write without a scope: groups are what scopes are made of")
	}
	return nil
}

// CreateGroup adds a group.
func (s *Service) CreateGroup(ctx context.Context, p *identity.Principal, in GroupInput) (Group, error) {
	return s.putGroup(ctx, p, in, true)
}

// UpdateGroup replaces a group's kind, selector and description and, for
// a static group given Members, its member list.
func (s *Service) UpdateGroup(ctx context.Context, p *identity.Principal, name string, in GroupInput) (Group, error) {
	if in.Name == "" {
		in.Name = name
	}
	if in.Name != name {
		return Group{}, problem.Invalid("name", "groups cannot be renamed (%q in the body, %q in the path)", in.Name, name)
	}
	return s.putGroup(ctx, p, in, false)
}

func (s *Service) putGroup(ctx context.Context, p *identity.Principal, in GroupInput, create bool) (Group, error) {
	if err := requireUnscopedWrite(p); err != nil {
		return Group{}, err
	}
	var errs problem.List
	sel, _ := checkGroup(in, &errs)
	if err := errs.Err(); err != nil {
		return Group{}, err
	}
	g := Group{Name: in.Name, Kind: in.Kind, Description: in.Description}
	if in.Kind == GroupDynamic {
		g.Selector = sel.String()
	}
	payload := groupPutPayload{Group: g, Create: create, Actor: p.Name()}
	if in.Members != nil {
		v, err := s.view(ctx)
		if err != nil {
			return Group{}, err
		}
		ids := make([]string, 0, len(*in.Members))
		seen := map[string]bool{}
		for i, m := range *in.Members {
			t, err := v.lookup(m)
			if problem.Is(err, problem.KindNotFound) {
				errs.Add(fmt.Sprintf("members[%d]", i), "no target %q", m)
				continue
			}
			if err != nil {
				return Group{}, err
			}
			if seen[t.ID] {
				continue
			}
			seen[t.ID] = true
			ids = append(ids, t.ID)
			if t.overlay() {
				payload.AgentMembers = append(payload.AgentMembers, t.ID)
			}
		}
		if err := errs.Err(); err != nil {
			return Group{}, err
		}
		payload.Members = &ids
	}
	var out Group
	if err := s.apply(ctx, cmdGroupPut, payload, &out); err != nil {
		return Group{}, err
	}
	s.d.Logger.Info("stored a group", "group", out.Name, "kind", out.Kind, "created", create, "actor", p.Name())
	return out, nil
}

// DeleteGroup removes a group; its static members stay, without it.
func (s *Service) DeleteGroup(ctx context.Context, p *identity.Principal, name string) (Group, error) {
	if err := requireUnscopedWrite(p); err != nil {
		return Group{}, err
	}
	var out Group
	if err := s.apply(ctx, cmdGroupDelete, groupDeletePayload{Name: name}, &out); err != nil {
		return Group{}, err
	}
	s.d.Logger.Info("deleted a group", "group", name, "actor", p.Name())
	return out, nil
}
