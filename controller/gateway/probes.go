package gateway

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/opsconductor/opsconductor/controller/probe"
	"github.com/opsconductor/opsconductor/controller/problem"
)

// Probe list paging.
const (
	maxProbePayload   = 1024
	defaultProbeLimit = 100
	maxProbeLimit     = 1000
)

type probeWriteRequest struct {
	Payload string `json:"payload"`
}

type probeList struct {
	Items []probe.Record `json:"items"`
	// Next is the "after" for the following page, "" on the last page.
	Next string `json:"next"`
}

func (s *Server) writeProbe(w http.ResponseWriter, r *http.Request) error {
	var req probeWriteRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if len(req.Payload) > maxProbePayload {
		return problem.Invalid("payload", "must be at most %d bytes, got %d", maxProbePayload, len(req.Payload))
	}
	rec, err := s.probes.Write(r.Context(), req.Payload)
	if err != nil {
		return err // the probe service names the operation
	}
	w.Header().Set("Location", "/api/v1/operator/probes/"+url.PathEscape(rec.ID))
	writeJSON(w, r, http.StatusCreated, rec)
	return nil
}

func (s *Server) getProbe(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	rec, err := s.probes.Get(r.Context(), id)
	if err != nil {
		return fmt.Errorf("get probe %q: %w", id, err)
	}
	writeJSON(w, r, http.StatusOK, rec)
	return nil
}

func (s *Server) listProbes(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	limit := defaultProbeLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxProbeLimit {
			return problem.Invalid("limit", "must be an integer from 1 to %d, got %q", maxProbeLimit, v)
		}
		limit = n
	}
	after := q.Get("after")
	// One more than asked tells us whether another page exists, so the last
	// page says so instead of leaving the client to fetch an empty one.
	items, err := s.probes.List(r.Context(), after, limit+1)
	if err != nil {
		return fmt.Errorf("list probes after %q: %w", after, err)
	}
	page := probeList{Items: items}
	if len(items) > limit {
		page.Items = items[:limit]
		page.Next = items[limit-1].ID
	}
	if page.Items == nil {
		page.Items = []probe.Record{}
	}
	writeJSON(w, r, http.StatusOK, page)
	return nil
}
