package gateway

import (
	"bufio"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/opsconductor/opsconductor/controller/automation"
	"github.com/opsconductor/opsconductor/controller/identity"
	"github.com/opsconductor/opsconductor/controller/problem"
)

// jobRoutes lists the job and run routes.
func (s *Server) jobRoutes() []route {
	r := func(method, path string, class RouteClass, access Access, h handlerFunc) route {
		return s.newRoute(method, path, class, access, s.needAutomation(h))
	}
	read, write := perm(identity.PermJobsRead), perm(identity.PermJobsWrite)
	run, cancel := perm(identity.PermJobsRun), perm(identity.PermRunsCancel)
	return []route{
		consistent(r(http.MethodGet, "/api/v1/jobs", ClassRead, read, s.listJobs)),
		consistent(r(http.MethodGet, "/api/v1/jobs/{name}", ClassRead, read, s.getJob)),
		r(http.MethodPut, "/api/v1/jobs/{name}", ClassWrite, write, s.putJob),
		r(http.MethodDelete, "/api/v1/jobs/{name}", ClassWrite, write, s.deleteJob),
		consistent(r(http.MethodGet, "/api/v1/jobs/{name}/versions", ClassRead, read, s.jobVersions)),
		r(http.MethodPost, "/api/v1/jobs/{name}/validate", ClassRead, write, s.validateJob),
		r(http.MethodPost, "/api/v1/jobs/{name}/runs", ClassWrite, run, s.startRun),
		consistent(r(http.MethodGet, "/api/v1/runs", ClassRead, read, s.listRuns)),
		consistent(r(http.MethodGet, "/api/v1/runs/{id}", ClassRead, read, s.getRun)),
		consistent(r(http.MethodGet, "/api/v1/runs/{id}/logs", ClassRead, read, s.runLogs)),
		r(http.MethodPost, "/api/v1/runs/{id}/cancel", ClassWrite, cancel, s.cancelRun),
		r(http.MethodPost, "/api/v1/runs/{id}/rerun", ClassWrite, run, s.rerun),
		r(http.MethodPost, "/api/v1/runs/{id}/approvals/{step}", ClassWrite, run, s.decideApproval),
	}
}

// needAutomation answers 503 while no automation service is wired.
func (s *Server) needAutomation(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if s.automation == nil {
			return problem.Unavailable("automation_unavailable", "this controller does not serve jobs and runs: it is not wired")
		}
		return h(w, r)
	}
}

// jobBody reads a job definition: YAML or JSON by Content-Type.
func jobBody(r *http.Request) ([]byte, error) {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	switch {
	case err != nil:
		return nil, unsupported("Content-Type must be application/yaml or application/json, got %q", ct)
	case mt == "application/json", mt == "application/yaml", mt == "application/x-yaml", mt == "text/yaml", mt == "text/x-yaml":
	default:
		return nil, unsupported("Content-Type must be application/yaml or application/json, got %s", mt)
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return nil, problem.Invalid("body", "is empty: send the job definition")
	}
	return body, nil
}

func (s *Server) listJobs(w http.ResponseWriter, r *http.Request) error {
	jobs, err := s.automation.ListJobs(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, map[string]any{"items": jobs})
	return nil
}

func (s *Server) getJob(w http.ResponseWriter, r *http.Request) error {
	version := 0
	if v := r.URL.Query().Get("version"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return problem.Invalid("version", "must be a version number (1, 2 …), got %q", v)
		}
		version = n
	}
	j, err := s.automation.GetJob(r.Context(), r.PathValue("name"), version)
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, j)
	return nil
}

func (s *Server) putJob(w http.ResponseWriter, r *http.Request) error {
	body, err := jobBody(r)
	if err != nil {
		return err
	}
	res, err := s.automation.PutJob(r.Context(), principal(r), r.PathValue("name"), body)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if res.Version.Version == 1 && !res.Unchanged {
		status = http.StatusCreated
	}
	writeJSON(w, r, status, res)
	return nil
}

func (s *Server) deleteJob(w http.ResponseWriter, r *http.Request) error {
	if err := s.automation.DeleteJob(r.Context(), r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) jobVersions(w http.ResponseWriter, r *http.Request) error {
	vs, err := s.automation.JobVersions(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, map[string]any{"items": vs})
	return nil
}

func (s *Server) validateJob(w http.ResponseWriter, r *http.Request) error {
	body, err := jobBody(r)
	if err != nil {
		return err
	}
	if _, err := s.automation.ParseJob(r.Context(), r.PathValue("name"), body); err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, map[string]any{"valid": true})
	return nil
}

func (s *Server) startRun(w http.ResponseWriter, r *http.Request) error {
	var req automation.RunRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	v, err := s.automation.StartRun(r.Context(), principal(r), r.PathValue("name"), req)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/runs/"+v.ID)
	writeJSON(w, r, http.StatusCreated, v)
	return nil
}

func (s *Server) listRuns(w http.ResponseWriter, r *http.Request) error {
	v := r.URL.Query()
	q := automation.RunQuery{Job: v.Get("job"), Status: v.Get("status"), Target: v.Get("target"), Cursor: v.Get("cursor")}
	var errs problem.List
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 {
			errs.Add("limit", "must be a positive number, got %q", l)
		}
		q.Limit = n
	}
	if since := v.Get("since"); since != "" {
		t, err := time.Parse(time.RFC3339, since)
		if err != nil {
			errs.Add("since", "must be an RFC 3339 time such as 2026-11-27T10:00:00Z, got %q", since)
		}
		q.Since = t
	}
	if err := errs.Err(); err != nil {
		return err
	}
	page, err := s.automation.ListRuns(r.Context(), principal(r), q)
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, page)
	return nil
}

func (s *Server) getRun(w http.ResponseWriter, r *http.Request) error {
	v, err := s.automation.GetRun(r.Context(), principal(r), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, v)
	return nil
}

// runLogs answers a page of JSON, or with format=text (or Accept:
// text/plain) the whole output as text for download.
func (s *Server) runLogs(w http.ResponseWriter, r *http.Request) error {
	v := r.URL.Query()
	q := automation.LogQuery{Target: v.Get("target"), Step: v.Get("step"), After: v.Get("after")}
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 {
			return problem.Invalid("limit", "must be a positive number, got %q", l)
		}
		q.Limit = n
	}
	text := v.Get("format") == "text" || (v.Get("format") == "" && strings.HasPrefix(r.Header.Get("Accept"), "text/plain"))
	id := r.PathValue("id")
	if !text {
		page, err := s.automation.RunLogs(r.Context(), principal(r), id, q)
		if err != nil {
			return err
		}
		writeJSON(w, r, http.StatusOK, page)
		return nil
	}
	// Text: read the first page before answering, so a refusal is still
	// a proper error, then stream the rest.
	q.Limit = 1000
	page, err := s.automation.RunLogs(r.Context(), principal(r), id, q)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", id+".log"))
	bw := bufio.NewWriter(w)
	for {
		for _, l := range page.Items {
			data := strings.TrimSuffix(l.Data, "\n")
			for _, line := range strings.Split(data, "\n") {
				fmt.Fprintf(bw, "%s %s | %s\n", l.Target, l.Step, line)
			}
		}
		if len(page.Items) < q.Limit {
			break
		}
		q.After = page.Next
		if page, err = s.automation.RunLogs(r.Context(), principal(r), id, q); err != nil {
			fmt.Fprintf(bw, "\n[log truncated: %v]\n", err)
			break
		}
	}
	return bw.Flush()
}

type cancelRequest struct {
	Targets []string `json:"targets,omitempty"`
}

func (s *Server) cancelRun(w http.ResponseWriter, r *http.Request) error {
	var req cancelRequest
	if r.ContentLength != 0 {
		if err := decodeJSON(r, &req); err != nil {
			return err
		}
	}
	v, err := s.automation.CancelRun(r.Context(), principal(r), r.PathValue("id"), req.Targets)
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, v)
	return nil
}

func (s *Server) rerun(w http.ResponseWriter, r *http.Request) error {
	var req automation.RerunRequest
	if r.ContentLength != 0 {
		if err := decodeJSON(r, &req); err != nil {
			return err
		}
	}
	v, err := s.automation.Rerun(r.Context(), principal(r), r.PathValue("id"), req)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/runs/"+v.ID)
	writeJSON(w, r, http.StatusCreated, v)
	return nil
}

func (s *Server) decideApproval(w http.ResponseWriter, r *http.Request) error {
	var req automation.ApprovalDecision
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	a, err := s.automation.Decide(r.Context(), principal(r), r.PathValue("id"), r.PathValue("step"), req)
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, a)
	return nil
}
