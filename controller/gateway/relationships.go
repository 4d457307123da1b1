package gateway

import (
	"net/http"
	"strconv"

	"github.com/opsconductor/opsconductor/controller/assets/graph"
	"github.com/opsconductor/opsconductor/controller/identity"
	"github.com/opsconductor/opsconductor/controller/problem"
)

// relationshipRoutes lists the relationships routes: typed edges between
// targets and the graph walks the UI's graph view draws.
func (s *Server) relationshipRoutes() []route {
	r := func(method, path string, class RouteClass, access Access, h handlerFunc) route {
		return s.newRoute(method, path, class, access, s.needRelationships(h))
	}
	read, write := perm(identity.PermAssetsRead), perm(identity.PermAssetsWrite)
	return []route{
		r(http.MethodPost, "/api/v1/relationships", ClassWrite, write, s.createRelationship),
		consistent(r(http.MethodGet, "/api/v1/relationships", ClassRead, read, s.listRelationships)),
		consistent(r(http.MethodGet, "/api/v1/relationships/{id}", ClassRead, read, s.getRelationship)),
		r(http.MethodPatch, "/api/v1/relationships/{id}", ClassWrite, write, s.patchRelationship),
		r(http.MethodDelete, "/api/v1/relationships/{id}", ClassWrite, write, s.deleteRelationship),
		consistent(r(http.MethodGet, "/api/v1/targets/{target}/graph", ClassRead, read, s.targetGraph)),
	}
}

// needRelationships answers 503 while no relationships service is wired.
func (s *Server) needRelationships(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if s.relationships == nil {
			return problem.Unavailable("relationships_unavailable", "this controller does not serve relationships: the inventory is not wired")
		}
		return h(w, r)
	}
}

func (s *Server) createRelationship(w http.ResponseWriter, r *http.Request) error {
	var req graph.CreateEdge
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	e, err := s.relationships.Create(r.Context(), principal(r), req)
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusCreated, e)
	return nil
}

func (s *Server) listRelationships(w http.ResponseWriter, r *http.Request) error {
	limit, err := limitParam(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	page, err := s.relationships.List(r.Context(), principal(r), graph.Filter{
		From: q.Get("from"), To: q.Get("to"), Type: q.Get("type"), After: q.Get("after"), Limit: limit})
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, page)
	return nil
}

func (s *Server) getRelationship(w http.ResponseWriter, r *http.Request) error {
	e, err := s.relationships.Get(r.Context(), principal(r), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, e)
	return nil
}

func (s *Server) patchRelationship(w http.ResponseWriter, r *http.Request) error {
	var patch graph.Patch
	if err := decodeJSON(r, &patch); err != nil {
		return err
	}
	e, err := s.relationships.Update(r.Context(), principal(r), r.PathValue("id"), patch)
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, e)
	return nil
}

func (s *Server) deleteRelationship(w http.ResponseWriter, r *http.Request) error {
	e, err := s.relationships.Delete(r.Context(), principal(r), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, e)
	return nil
}

// targetGraph is GET /api/v1/targets/{target}/graph: the neighbourhood,
// impact (dependents) or dependencies of one target, named by ID or name.
func (s *Server) targetGraph(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	query := graph.Query{Direction: q.Get("direction"), Types: q["type"]}
	for _, p := range []struct {
		name string
		dst  *int
	}{{"depth", &query.Depth}, {"limit", &query.Limit}} {
		v := q.Get(p.name)
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return problem.Invalid(p.name, "must be a positive integer, got %q", v)
		}
		*p.dst = n
	}
	g, err := s.relationships.Graph(r.Context(), principal(r), r.PathValue("target"), query)
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, g)
	return nil
}
