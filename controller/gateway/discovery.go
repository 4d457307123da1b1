package gateway

import (
	"net/http"

	"github.com/opsconductor/opsconductor/controller/assets/discovery"
	"github.com/opsconductor/opsconductor/controller/identity"
	"github.com/opsconductor/opsconductor/controller/problem"
)

// discoveryRoutes lists the discovery routes: profiles, scans and their
// results, imports, and the ranges each agent may scan.
func (s *Server) discoveryRoutes() []route {
	r := func(method, path string, class RouteClass, access Access, h handlerFunc) route {
		return s.newRoute(method, path, class, access, s.needDiscovery(h))
	}
	read, write := perm(identity.PermAssetsRead), perm(identity.PermAssetsWrite)
	admin := perm(identity.PermAgentsAdmin)
	return []route{
		r(http.MethodPost, "/api/v1/discovery/profiles", ClassWrite, write, s.createDiscoveryProfile),
		consistent(r(http.MethodGet, "/api/v1/discovery/profiles", ClassRead, read, s.listDiscoveryProfiles)),
		consistent(r(http.MethodGet, "/api/v1/discovery/profiles/{name}", ClassRead, read, s.getDiscoveryProfile)),
		r(http.MethodPut, "/api/v1/discovery/profiles/{name}", ClassWrite, write, s.putDiscoveryProfile),
		r(http.MethodDelete, "/api/v1/discovery/profiles/{name}", ClassWrite, write, s.deleteDiscoveryProfile),
		r(http.MethodPost, "/api/v1/discovery/profiles/{name}/run", ClassWrite, write, s.runDiscoveryProfile),
		consistent(r(http.MethodGet, "/api/v1/discovery/scans", ClassRead, read, s.listDiscoveryScans)),
		consistent(r(http.MethodGet, "/api/v1/discovery/scans/{id}", ClassRead, read, s.getDiscoveryScan)),
		r(http.MethodPost, "/api/v1/discovery/scans/{id}/cancel", ClassWrite, write, s.cancelDiscoveryScan),
		consistent(r(http.MethodGet, "/api/v1/discovery/scans/{id}/hosts", ClassRead, read, s.discoveryScanHosts)),
		r(http.MethodPost, "/api/v1/discovery/scans/{id}/import", ClassWrite, write, s.importDiscoveryScan),
		consistent(r(http.MethodGet, "/api/v1/discovery/agents/{agent}/ranges", ClassRead, read, s.getDiscoveryRanges)),
		r(http.MethodPut, "/api/v1/discovery/agents/{agent}/ranges", ClassWrite, admin, s.putDiscoveryRanges),
	}
}

// needDiscovery answers 503 while no discovery service is wired.
func (s *Server) needDiscovery(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if s.discovery == nil {
			return problem.Unavailable("discovery_unavailable", "this controller does not serve discovery: it is not wired")
		}
		return h(w, r)
	}
}

func (s *Server) createDiscoveryProfile(w http.ResponseWriter, r *http.Request) error {
	var in discovery.ProfileInput
	if err := decodeJSON(r, &in); err != nil {
		return err
	}
	p, err := s.discovery.CreateProfile(r.Context(), principal(r), in)
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusCreated, p)
	return nil
}

func (s *Server) listDiscoveryProfiles(w http.ResponseWriter, r *http.Request) error {
	ps, err := s.discovery.ListProfiles(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, map[string]any{"items": ps})
	return nil
}

func (s *Server) getDiscoveryProfile(w http.ResponseWriter, r *http.Request) error {
	p, err := s.discovery.GetProfile(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, p)
	return nil
}

func (s *Server) putDiscoveryProfile(w http.ResponseWriter, r *http.Request) error {
	var in discovery.ProfileInput
	if err := decodeJSON(r, &in); err != nil {
		return err
	}
	p, err := s.discovery.UpdateProfile(r.Context(), principal(r), r.PathValue("name"), in)
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, p)
	return nil
}

func (s *Server) deleteDiscoveryProfile(w http.ResponseWriter, r *http.Request) error {
	p, err := s.discovery.DeleteProfile(r.Context(), principal(r), r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, p)
	return nil
}

func (s *Server) runDiscoveryProfile(w http.ResponseWriter, r *http.Request) error {
	sc, err := s.discovery.RunProfile(r.Context(), principal(r), r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusAccepted, sc)
	return nil
}

func (s *Server) listDiscoveryScans(w http.ResponseWriter, r *http.Request) error {
	limit, err := limitParam(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	page, err := s.discovery.ListScans(r.Context(), q.Get("profile"), q.Get("after"), limit)
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, page)
	return nil
}

func (s *Server) getDiscoveryScan(w http.ResponseWriter, r *http.Request) error {
	sc, err := s.discovery.GetScan(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, sc)
	return nil
}

func (s *Server) cancelDiscoveryScan(w http.ResponseWriter, r *http.Request) error {
	sc, err := s.discovery.Cancel(r.Context(), principal(r), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusAccepted, sc)
	return nil
}

func (s *Server) discoveryScanHosts(w http.ResponseWriter, r *http.Request) error {
	limit, err := limitParam(r)
	if err != nil {
		return err
	}
	proposed, err := boolParam(r, "proposed")
	if err != nil {
		return err
	}
	page, err := s.discovery.Hosts(r.Context(), principal(r), r.PathValue("id"), r.URL.Query().Get("after"), limit, proposed)
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, page)
	return nil
}

func (s *Server) importDiscoveryScan(w http.ResponseWriter, r *http.Request) error {
	var req discovery.ImportRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	res, err := s.discovery.Import(r.Context(), principal(r), r.PathValue("id"), req)
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, res)
	return nil
}

func (s *Server) getDiscoveryRanges(w http.ResponseWriter, r *http.Request) error {
	rg, err := s.discovery.GetRanges(r.Context(), r.PathValue("agent"))
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, rg)
	return nil
}

func (s *Server) putDiscoveryRanges(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		CIDRs []string `json:"cidrs"`
	}
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	rg, err := s.discovery.SetRanges(r.Context(), principal(r), r.PathValue("agent"), req.CIDRs)
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, rg)
	return nil
}
