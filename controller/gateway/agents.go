package gateway

import (
	"net/http"

	"github.com/opsconductor/opsconductor/controller/agentrpc"
)

// --- join tokens ----------------------------------------------------------

func (s *Server) createJoinToken(w http.ResponseWriter, r *http.Request) error {
	var req agentrpc.CreateJoinToken
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	created, err := s.agents.CreateJoinToken(r.Context(), principal(r).Name(), req)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, r, http.StatusCreated, created)
	return nil
}

func (s *Server) listJoinTokens(w http.ResponseWriter, r *http.Request) error {
	list, err := s.agents.ListJoinTokens(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, list)
	return nil
}

func (s *Server) revokeJoinToken(w http.ResponseWriter, r *http.Request) error {
	view, err := s.agents.RevokeJoinToken(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, view)
	return nil
}

// --- agents ---------------------------------------------------------------

func (s *Server) listAgents(w http.ResponseWriter, r *http.Request) error {
	limit, err := limitParam(r)
	if err != nil {
		return err
	}
	page, err := s.agents.ListAgents(r.Context(), r.URL.Query().Get("after"), limit)
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, page)
	return nil
}

func (s *Server) getAgent(w http.ResponseWriter, r *http.Request) error {
	a, err := s.agents.GetAgent(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, a)
	return nil
}

func (s *Server) revokeAgent(w http.ResponseWriter, r *http.Request) error {
	a, err := s.agents.RevokeAgent(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, a)
	return nil
}

// drainAgent sets (drain) or clears (undrain) an agent's draining flag; the
// leader tells the agent over its live stream.
func (s *Server) drainAgent(draining bool) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		a, err := s.agents.DrainAgent(r.Context(), r.PathValue("id"), draining)
		if err != nil {
			return err
		}
		writeJSON(w, r, http.StatusOK, a)
		return nil
	}
}
