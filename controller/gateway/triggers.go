package gateway

import (
	"net/http"
	"strconv"

	"github.com/opsconductor/opsconductor/controller/communication/inbound"
	"github.com/opsconductor/opsconductor/controller/communication/trigger"
	"github.com/opsconductor/opsconductor/controller/identity"
	"github.com/opsconductor/opsconductor/controller/problem"
)

// triggerRoutes lists the inbound webhook routes: triggers are managed
// with jobs:read and jobs:write (a trigger's runs act for its creator, who
// must also hold jobs:run), and senders post to /api/v1/hooks/{id}, which
// authenticates by the trigger's signature or bearer secret instead of a
// session.
func (s *Server) triggerRoutes() []route {
	r := func(method, path string, class RouteClass, access Access, h handlerFunc) route {
		return s.newRoute(method, path, class, access, s.needTriggers(h))
	}
	read, write := perm(identity.PermJobsRead), perm(identity.PermJobsWrite)
	hook := r(http.MethodPost, "/api/v1/hooks/{id}", ClassWrite, AccessPublic, s.hook)
	hook.MaxBodyBytes = inbound.MaxBodySize
	return []route{
		consistent(r(http.MethodGet, "/api/v1/triggers", ClassRead, read, s.listTriggers)),
		r(http.MethodPost, "/api/v1/triggers", ClassWrite, write, s.createTrigger),
		consistent(r(http.MethodGet, "/api/v1/triggers/{ref}", ClassRead, read, s.getTrigger)),
		r(http.MethodPut, "/api/v1/triggers/{ref}", ClassWrite, write, s.putTrigger),
		r(http.MethodDelete, "/api/v1/triggers/{ref}", ClassWrite, write, s.deleteTrigger),
		r(http.MethodPost, "/api/v1/triggers/{ref}/rotate-secret", ClassWrite, write, s.rotateTriggerSecret),
		r(http.MethodGet, "/api/v1/triggers/{ref}/deliveries", ClassRead, read, s.triggerDeliveries),
		hook,
	}
}

func (s *Server) needTriggers(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if s.triggers == nil {
			return problem.Unavailable("triggers_unavailable", "this controller does not serve webhook triggers: it is not wired")
		}
		return h(w, r)
	}
}

func (s *Server) listTriggers(w http.ResponseWriter, r *http.Request) error {
	vs, err := s.triggers.List()
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, map[string]any{"items": vs})
	return nil
}

func (s *Server) createTrigger(w http.ResponseWriter, r *http.Request) error {
	var req trigger.Request
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	v, err := s.triggers.Create(r.Context(), principal(r), req)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Location", "/api/v1/triggers/"+v.ID)
	writeJSON(w, r, http.StatusCreated, v)
	return nil
}

func (s *Server) getTrigger(w http.ResponseWriter, r *http.Request) error {
	v, err := s.triggers.Get(r.PathValue("ref"))
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, v)
	return nil
}

func (s *Server) putTrigger(w http.ResponseWriter, r *http.Request) error {
	var req trigger.Request
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	v, err := s.triggers.Update(r.Context(), principal(r), r.PathValue("ref"), req)
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, v)
	return nil
}

func (s *Server) deleteTrigger(w http.ResponseWriter, r *http.Request) error {
	if err := s.triggers.Delete(r.Context(), r.PathValue("ref")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) rotateTriggerSecret(w http.ResponseWriter, r *http.Request) error {
	v, err := s.triggers.RotateSecret(r.Context(), principal(r), r.PathValue("ref"))
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, r, http.StatusOK, v)
	return nil
}

func (s *Server) triggerDeliveries(w http.ResponseWriter, r *http.Request) error {
	limit := 0
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return problem.Invalid("limit", "must be a number from 1 to 1000")
		}
		limit = n
	}
	ds, err := s.triggers.Deliveries(r.Context(), r.PathValue("ref"), limit)
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, map[string]any{"items": ds})
	return nil
}

// hook is the sender's endpoint: 202 with the run it started, 200 when
// the trigger's filter skipped the delivery.
func (s *Server) hook(w http.ResponseWriter, r *http.Request) error {
	out, err := s.triggers.Handle(r.Context(), r.PathValue("id"), r, clientAddr(r))
	if err != nil {
		return err
	}
	status := http.StatusAccepted
	if out.Outcome == "skipped" {
		status = http.StatusOK
	}
	writeJSON(w, r, status, out)
	return nil
}
