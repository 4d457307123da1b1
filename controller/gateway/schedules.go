package gateway

import (
	"net/http"

	"github.com/opsconductor/opsconductor/controller/automation/schedule"
	"github.com/opsconductor/opsconductor/controller/identity"
	"github.com/opsconductor/opsconductor/controller/problem"
)

// scheduleRoutes lists the job schedule routes. Reading takes jobs:read;
// writing jobs:write, and the service also wants jobs:run of whoever
// creates or replaces a schedule, since its runs act for them.
func (s *Server) scheduleRoutes() []route {
	r := func(method, path string, class RouteClass, access Access, h handlerFunc) route {
		return s.newRoute(method, path, class, access, s.needSchedules(h))
	}
	read, write := perm(identity.PermJobsRead), perm(identity.PermJobsWrite)
	return []route{
		consistent(r(http.MethodGet, "/api/v1/schedules", ClassRead, read, s.listSchedules)),
		r(http.MethodPost, "/api/v1/schedules", ClassWrite, write, s.createSchedule),
		consistent(r(http.MethodGet, "/api/v1/schedules/{name}", ClassRead, read, s.getSchedule)),
		r(http.MethodPut, "/api/v1/schedules/{name}", ClassWrite, write, s.putSchedule),
		r(http.MethodDelete, "/api/v1/schedules/{name}", ClassWrite, write, s.deleteSchedule),
		r(http.MethodPost, "/api/v1/schedules/{name}/enable", ClassWrite, write, s.enableSchedule(true)),
		r(http.MethodPost, "/api/v1/schedules/{name}/disable", ClassWrite, write, s.enableSchedule(false)),
	}
}

// needSchedules answers 503 while no schedule service is wired.
func (s *Server) needSchedules(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if s.schedules == nil {
			return problem.Unavailable("schedules_unavailable", "this controller does not serve schedules: it is not wired")
		}
		return h(w, r)
	}
}

func (s *Server) listSchedules(w http.ResponseWriter, r *http.Request) error {
	vs, err := s.schedules.List(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, map[string]any{"items": vs})
	return nil
}

func (s *Server) createSchedule(w http.ResponseWriter, r *http.Request) error {
	var in schedule.Input
	if err := decodeJSON(r, &in); err != nil {
		return err
	}
	v, err := s.schedules.Create(r.Context(), principal(r), in)
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusCreated, v)
	return nil
}

func (s *Server) getSchedule(w http.ResponseWriter, r *http.Request) error {
	v, err := s.schedules.Get(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, v)
	return nil
}

func (s *Server) putSchedule(w http.ResponseWriter, r *http.Request) error {
	var in schedule.Input
	if err := decodeJSON(r, &in); err != nil {
		return err
	}
	v, err := s.schedules.Update(r.Context(), principal(r), r.PathValue("name"), in)
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, v)
	return nil
}

func (s *Server) deleteSchedule(w http.ResponseWriter, r *http.Request) error {
	v, err := s.schedules.Delete(r.Context(), principal(r), r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, v)
	return nil
}

func (s *Server) enableSchedule(on bool) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		v, err := s.schedules.SetEnabled(r.Context(), principal(r), r.PathValue("name"), on)
		if err != nil {
			return err
		}
		writeJSON(w, r, http.StatusOK, v)
		return nil
	}
}
