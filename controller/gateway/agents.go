package gateway

import (
	"context"
	"net/http"
	"strconv"

	"github.com/opsconductor/opsconductor/controller/agentrpc"
	"github.com/opsconductor/opsconductor/controller/assets/credentials"
	"github.com/opsconductor/opsconductor/controller/identity"
	"github.com/opsconductor/opsconductor/controller/problem"
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

// --- attempts -------------------------------------------------------------

// runCommand sends a command to a connected agent: 202 with the attempt,
// whose output and result arrive later.
func (s *Server) runCommand(w http.ResponseWriter, r *http.Request) error {
	var spec agentrpc.CommandSpec
	if err := decodeJSON(r, &spec); err != nil {
		return err
	}
	a, err := s.agents.RunCommandWith(r.Context(), r.PathValue("id"), spec, principal(r).Name(), s.stepSecrets(r, spec.Credentials))
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusAccepted, a)
	return nil
}

// runStep sends a built-in step or a plugin to a connected agent, its
// parameters checked against the step's schema first: 202 with the
// attempt.
func (s *Server) runStep(w http.ResponseWriter, r *http.Request) error {
	var spec agentrpc.StepSpec
	if err := decodeJSON(r, &spec); err != nil {
		return err
	}
	a, err := s.agents.RunStepWith(r.Context(), r.PathValue("id"), spec, principal(r).Name(), s.stepSecrets(r, spec.Credentials))
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusAccepted, a)
	return nil
}

// stepSecrets resolves a step's credentials for the calling principal once
// the attempt has its ID: each credential needs credentials:use on it, and
// each use is recorded against the attempt and the agent
// (credentials.Service.ResolveStep); the agent masks the values in every
// output.
func (s *Server) stepSecrets(r *http.Request, creds map[string]string) agentrpc.SecretsFunc {
	if len(creds) == 0 || s.credentials == nil {
		return nil
	}
	p, agentID := principal(r), r.PathValue("id")
	return func(ctx context.Context, attemptID string) (map[string]string, error) {
		use := credentials.Use{AttemptID: attemptID, TargetID: agentID}
		if a, err := s.agents.GetAgent(ctx, agentID); err == nil {
			use.TargetName = a.Name
		}
		// The agent is a target: a caller whose credentials:use is scoped
		// uses credentials only on targets inside that scope.
		if s.assets != nil {
			t, err := s.assets.Get(ctx, agentID)
			if err != nil {
				return nil, err
			}
			if !s.assets.Allowed(p, identity.PermCredentialsUse, t) {
				return nil, problem.New(problem.KindForbidden, "target_out_of_scope",
					"target %s is outside the scope of your credentials:use permission", t.Name)
			}
		}
		return s.credentials.ResolveStep(ctx, p, creds, use)
	}
}

func (s *Server) getAttempt(w http.ResponseWriter, r *http.Request) error {
	a, err := s.agents.GetAttempt(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, a)
	return nil
}

// maxLogPage bounds one page of an attempt's log.
const maxLogPage = 10000

func (s *Server) attemptLog(w http.ResponseWriter, r *http.Request) error {
	after, err := agentrpc.ParseSeq(r.URL.Query().Get("after"))
	if err != nil {
		return err
	}
	limit := 1000
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxLogPage {
			return problem.Invalid("limit", "must be an integer from 1 to %d, got %q", maxLogPage, v)
		}
		limit = n
	}
	page, err := s.agents.AttemptLog(r.Context(), r.PathValue("id"), after, limit)
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, page)
	return nil
}

func (s *Server) cancelAttempt(w http.ResponseWriter, r *http.Request) error {
	a, err := s.agents.CancelAttempt(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, a)
	return nil
}
