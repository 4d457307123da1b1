package gateway

import (
	"net/http"
	"strings"

	"github.com/opsconductor/opsconductor/controller/communication/audit"
	"github.com/opsconductor/opsconductor/controller/problem"
)

// auditRoute wraps a mutating route so that its entry in the audit log is
// part of its outcome: the response is held until the entry is durable,
// and a request whose entry cannot be recorded is answered 503 instead
// (its change may stand, but it is not acknowledged). While the history
// store is known to be down, mutating requests are refused before they
// change anything. Public routes
// (login, refresh, logout) are audited by the identity service itself,
// which knows the user they were for.
func (s *Server) auditRoute(rt route, h http.Handler) http.Handler {
	if s.audit == nil || !audit.Mutating(rt.Method) || rt.WebSocket || rt.Access == AccessPublic {
		return h
	}
	action := auditAction(rt.Method, rt.Path)
	return audit.Middleware(audit.MiddlewareConfig{
		Log: s.audit,
		Describe: func(r *http.Request, status int) (audit.Entry, bool) {
			e := audit.Entry{Action: action, Resource: r.URL.Path, SourceIP: clientAddr(r), ActorType: audit.ActorSystem}
			if st := stateFrom(r.Context()); st != nil {
				e.RequestID = st.id
				if p := st.principal; p != nil {
					e.Actor, e.ActorType = p.Name(), audit.ActorUser
					if p.TokenID != "" {
						e.ActorType = audit.ActorToken
					}
				}
			}
			if e.Actor == "" {
				e.Actor = "anonymous"
			}
			return e, true
		},
		Ready: s.checks["history"],
		Fail: func(w http.ResponseWriter, r *http.Request, err error, changed bool) {
			if !changed {
				s.log.Warn("a mutating request was refused: the audit log cannot record it now", "route", rt.Pattern(), "error", err)
				e := problem.Unavailable("audit_unavailable",
					"the audit log cannot record requests now (%v), so nothing was changed: retry later", err)
				e.RetryAfter = 5
				writeError(w, r, e)
				return
			}
			s.log.Error("a mutating request was not acknowledged: its audit entry could not be recorded",
				"route", rt.Pattern(), "error", err)
			writeError(w, r, problem.Unavailable("audit_unavailable",
				"the audit log could not record this request, so it is not acknowledged: check the result before retrying"))
		},
	})(h)
}

// auditAction names a route's action: "POST /api/v1/jobs/{name}/runs"
// becomes "jobs.runs.post", readable and stable for queries.
func auditAction(method, path string) string {
	var parts []string
	for _, seg := range strings.Split(strings.TrimPrefix(path, "/api/v1/"), "/") {
		if seg == "" || strings.HasPrefix(seg, "{") {
			continue
		}
		parts = append(parts, strings.ReplaceAll(seg, "-", "_"))
	}
	return strings.Join(append(parts, strings.ToLower(method)), ".")
}
