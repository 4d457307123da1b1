package gateway

import (
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"

	"github.com/opsconductor/opsconductor/controller/identity"
	"github.com/opsconductor/opsconductor/controller/plugins"
	"github.com/opsconductor/opsconductor/controller/problem"
)

// RouteInfo describes one route. The table is data so that tests can check
// every route against the OpenAPI document.
type RouteInfo struct {
	Method string
	// Path is a net/http ServeMux path pattern, e.g.
	// "/api/v1/operator/probes/{id}".
	Path  string
	Class RouteClass
	// MaxBodyBytes bounds the request body.
	MaxBodyBytes int64
	// Consistent routes honour ?consistent=true: the read waits for
	// Cluster.ConsistentRead before it touches the local store.
	Consistent bool
	// Access says who may call the route; every route sets it.
	Access Access
	// DuringPasswordChange lets a user who must change their password
	// call the route (only what changing it needs).
	DuringPasswordChange bool
	// WebSocket routes upgrade the connection. They also take the bearer
	// token from Sec-WebSocket-Protocol (a browser cannot set
	// Authorization on a websocket), and succeed with 101, not 2xx.
	WebSocket bool
}

// Pattern is the ServeMux pattern, "METHOD /path".
func (ri RouteInfo) Pattern() string { return ri.Method + " " + ri.Path }

// handlerFunc returns its error rather than writing it, so that exactly one
// function (writeError) turns errors into responses.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

type route struct {
	RouteInfo
	handle handlerFunc
}

// Routes lists every route the server answers.
func (s *Server) Routes() []RouteInfo {
	out := make([]RouteInfo, len(s.routes))
	for i, rt := range s.routes {
		out[i] = rt.RouteInfo
	}
	return out
}

// routeTable is the whole API surface. Health and metrics are in their own
// class, which is never rate limited. Every route names its Access: a test
// walks the table and fails on any route without one.
func (s *Server) routeTable() []route {
	r := s.newRoute
	var (
		public        = AccessPublic
		authenticated = AccessAuthenticated
		clusterAdmin  = perm(identity.PermClusterAdmin)
		usersRead     = perm(identity.PermUsersRead)
		usersAdmin    = perm(identity.PermUsersAdmin)
		agentsRead    = perm(identity.PermAgentsRead)
		agentsAdmin   = perm(identity.PermAgentsAdmin)
		pluginsWrite  = perm(identity.PermPluginsWrite)
		// Job authors need the plugins and the step catalog to write
		// jobs, so reading them takes jobs:read.
		jobsRead = perm(identity.PermJobsRead)
	)
	snapshotRestore := r(http.MethodPut, "/api/v1/operator/snapshot", ClassOperator, clusterAdmin, s.restoreSnapshot)
	snapshotRestore.MaxBodyBytes = s.cfg.MaxSnapshotBytes
	// A plugin upload streams its binary to disk, so it may be as large as
	// the registry takes, whatever MaxBodyBytes says for JSON bodies.
	pluginPush := r(http.MethodPost, "/api/v1/plugins", ClassWrite, pluginsWrite, s.pushPlugin)
	pluginPush.MaxBodyBytes = plugins.MaxBinary + pluginFormOverhead
	core := []route{
		r(http.MethodGet, "/health", ClassHealth, public, s.health),
		r(http.MethodGet, "/health/ready", ClassHealth, public, s.ready),
		r(http.MethodGet, "/metrics", ClassHealth, public, s.serveMetrics),
		r(http.MethodGet, "/api/v1/openapi.json", ClassRead, public, s.openAPI),

		consistent(r(http.MethodGet, "/api/v1/operator/raft/peers", ClassOperator, clusterAdmin, s.listPeers)),
		r(http.MethodDelete, "/api/v1/operator/raft/peers/{id}", ClassOperator, clusterAdmin, s.removePeer),
		r(http.MethodPost, "/api/v1/operator/raft/transfer-leadership", ClassOperator, clusterAdmin, s.transferLeadership),
		r(http.MethodGet, "/api/v1/operator/snapshot", ClassOperator, clusterAdmin, s.saveSnapshot),
		snapshotRestore,

		r(http.MethodPost, "/api/v1/operator/probes", ClassWrite, clusterAdmin, s.writeProbe),
		consistent(r(http.MethodGet, "/api/v1/operator/probes", ClassRead, clusterAdmin, s.listProbes)),
		consistent(r(http.MethodGet, "/api/v1/operator/probes/{id}", ClassRead, clusterAdmin, s.getProbe)),

		r(http.MethodPost, "/api/v1/auth/login", ClassLogin, public, s.login),
		r(http.MethodPost, "/api/v1/auth/refresh", ClassWrite, public, s.refresh),
		pwChange(r(http.MethodPost, "/api/v1/auth/logout", ClassWrite, public, s.logout)),
		r(http.MethodGet, "/api/v1/auth/keys", ClassOperator, clusterAdmin, s.listSigningKeys),
		r(http.MethodPost, "/api/v1/auth/keys/rotate", ClassOperator, clusterAdmin, s.rotateSigningKey),

		pwChange(r(http.MethodGet, "/api/v1/me", ClassRead, authenticated, s.getMe)),
		r(http.MethodPatch, "/api/v1/me", ClassWrite, authenticated, s.patchMe),
		pwChange(r(http.MethodPost, "/api/v1/me/password", ClassWrite, authenticated, s.changePassword)),
		r(http.MethodPost, "/api/v1/me/totp", ClassWrite, authenticated, s.beginTOTP),
		r(http.MethodPost, "/api/v1/me/totp/confirm", ClassWrite, authenticated, s.confirmTOTP),
		r(http.MethodPost, "/api/v1/me/totp/disable", ClassWrite, authenticated, s.disableTOTP),

		consistent(r(http.MethodGet, "/api/v1/users", ClassRead, usersRead, s.listUsers)),
		r(http.MethodPost, "/api/v1/users", ClassWrite, usersAdmin, s.createUser),
		consistent(r(http.MethodGet, "/api/v1/users/{user}", ClassRead, usersRead, s.getUser)),
		r(http.MethodPatch, "/api/v1/users/{user}", ClassWrite, usersAdmin, s.patchUser),
		r(http.MethodDelete, "/api/v1/users/{user}", ClassWrite, usersAdmin, s.deleteUser),
		r(http.MethodPost, "/api/v1/users/{user}/password", ClassWrite, usersAdmin, s.resetPassword),
		r(http.MethodPost, "/api/v1/users/{user}/unlock", ClassWrite, usersAdmin, s.unlockUser),
		r(http.MethodDelete, "/api/v1/users/{user}/totp", ClassWrite, usersAdmin, s.resetUserTOTP),
		consistent(r(http.MethodGet, "/api/v1/users/{user}/sessions", ClassRead, usersAdmin, s.listUserSessions)),
		r(http.MethodDelete, "/api/v1/users/{user}/sessions", ClassWrite, usersAdmin, s.revokeUserSessions),

		consistent(r(http.MethodGet, "/api/v1/roles", ClassRead, authenticated, s.listRoles)),
		r(http.MethodPost, "/api/v1/roles", ClassWrite, usersAdmin, s.createRole),
		consistent(r(http.MethodGet, "/api/v1/roles/{name}", ClassRead, authenticated, s.getRole)),
		r(http.MethodPut, "/api/v1/roles/{name}", ClassWrite, usersAdmin, s.putRole),
		r(http.MethodDelete, "/api/v1/roles/{name}", ClassWrite, usersAdmin, s.deleteRole),
		r(http.MethodGet, "/api/v1/permissions", ClassRead, authenticated, s.listPermissions),

		consistent(r(http.MethodGet, "/api/v1/sessions", ClassRead, authenticated, s.listSessions)),
		r(http.MethodDelete, "/api/v1/sessions/{id}", ClassWrite, authenticated, s.revokeSession),
		r(http.MethodPost, "/api/v1/sessions/revoke-others", ClassWrite, authenticated, s.revokeOtherSessions),

		consistent(r(http.MethodGet, "/api/v1/tokens", ClassRead, authenticated, s.listTokens)),
		r(http.MethodPost, "/api/v1/tokens", ClassWrite, authenticated, s.createToken),
		r(http.MethodDelete, "/api/v1/tokens/{id}", ClassWrite, authenticated, s.revokeToken),

		r(http.MethodPost, "/api/v1/agents/join-tokens", ClassWrite, agentsAdmin, s.createJoinToken),
		consistent(r(http.MethodGet, "/api/v1/agents/join-tokens", ClassRead, agentsAdmin, s.listJoinTokens)),
		r(http.MethodDelete, "/api/v1/agents/join-tokens/{id}", ClassWrite, agentsAdmin, s.revokeJoinToken),
		consistent(r(http.MethodGet, "/api/v1/agents", ClassRead, agentsRead, s.listAgents)),
		consistent(r(http.MethodGet, "/api/v1/agents/{id}", ClassRead, agentsRead, s.getAgent)),
		r(http.MethodDelete, "/api/v1/agents/{id}", ClassWrite, agentsAdmin, s.revokeAgent),
		r(http.MethodPost, "/api/v1/agents/{id}/drain", ClassWrite, agentsAdmin, s.drainAgent(true)),
		r(http.MethodPost, "/api/v1/agents/{id}/undrain", ClassWrite, agentsAdmin, s.drainAgent(false)),
		r(http.MethodPost, "/api/v1/agents/{id}/commands", ClassWrite, agentsAdmin, s.runCommand),
		r(http.MethodPost, "/api/v1/agents/{id}/steps", ClassWrite, agentsAdmin, s.runStep),
		consistent(r(http.MethodGet, "/api/v1/attempts/{id}", ClassRead, agentsRead, s.getAttempt)),
		r(http.MethodGet, "/api/v1/attempts/{id}/log", ClassRead, agentsRead, s.attemptLog),
		r(http.MethodPost, "/api/v1/attempts/{id}/cancel", ClassWrite, agentsAdmin, s.cancelAttempt),

		pluginPush,
		consistent(r(http.MethodGet, "/api/v1/plugins", ClassRead, jobsRead, s.listPlugins)),
		consistent(r(http.MethodGet, "/api/v1/plugins/{name}/{version}", ClassRead, jobsRead, s.getPlugin)),
		r(http.MethodDelete, "/api/v1/plugins/{name}/{version}", ClassWrite, pluginsWrite, s.deletePlugin),
		consistent(r(http.MethodGet, "/api/v1/steps", ClassRead, jobsRead, s.stepCatalog)),
	}
	// Each domain keeps its routes next to its handlers.
	return slices.Concat(core, s.assetRoutes(), s.relationshipRoutes(), s.credentialRoutes(), s.discoveryRoutes(), s.runStreamRoutes(), s.jobRoutes(),
		s.scheduleRoutes(), s.auditRoutes(), s.eventRoutes(), s.notifyRoutes(), s.triggerRoutes(), s.installRoutes())
}

// newRoute builds a route with the server's default body limit.
func (s *Server) newRoute(method, path string, class RouteClass, access Access, h handlerFunc) route {
	return route{RouteInfo: RouteInfo{Method: method, Path: path, Class: class, MaxBodyBytes: s.cfg.MaxBodyBytes, Access: access}, handle: h}
}

// consistent marks a read route as honouring ?consistent=true.
func consistent(rt route) route { rt.Consistent = true; return rt }

// pwChange lets a user who must change their password call the route.
func pwChange(rt route) route { rt.DuringPasswordChange = true; return rt }

// wrapRoute is the per-route middleware: label, limit, bound the body, wait
// for a consistent read if asked, run the handler, write its error.
func (s *Server) wrapRoute(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if st := stateFrom(r.Context()); st != nil {
			st.route = rt.Path
		}
		// Authenticate before the rate limit, so that the limit applies per
		// principal as well as per address; refuse only after it, so that
		// a flood of bad tokens is limited like anything else.
		p, authErr := s.authenticate(r)
		if rt.WebSocket && p == nil && authErr == nil {
			p, authErr = s.authenticateSubprotocol(r)
		}
		if authErr != nil && rt.Access == AccessPublic {
			// A public route does not need the credential, so a stale one
			// must not break it: a health probe with an old token, or a
			// browser logging out with an expired access token and a
			// valid refresh cookie.
			p, authErr = nil, nil
		}
		if d, limited := s.limits.check(rt.Class, r); limited {
			d.setHeaders(w.Header())
			if !d.allowed {
				writeError(w, r, d.err())
				return
			}
		}
		if r.ContentLength > rt.MaxBodyBytes {
			// Refuse before reading: with Expect: 100-continue the client
			// never even sends the body.
			writeError(w, r, tooLargeProblem(rt.MaxBodyBytes))
			return
		}
		if authErr == nil {
			authErr = authorize(rt, p)
		}
		if authErr != nil {
			if problem.Is(authErr, problem.KindUnauthenticated) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="opsconductor"`)
			}
			writeError(w, r, authErr)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, rt.MaxBodyBytes)
		if rt.Consistent {
			if err := s.consistentRead(r); err != nil {
				writeError(w, r, err)
				return
			}
		}
		if err := rt.handle(w, r); err != nil {
			writeError(w, r, err)
		}
	})
}

// boolParam reads an optional true/false query parameter.
func boolParam(r *http.Request, name string) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return false, nil
	}
	on, err := strconv.ParseBool(v)
	if err != nil {
		return false, problem.Invalid(name, "must be true or false, got %q", v)
	}
	return on, nil
}

// consistentRead honours ?consistent=true on any read route.
func (s *Server) consistentRead(r *http.Request) error {
	on, err := boolParam(r, "consistent")
	if err != nil || !on {
		return err
	}
	if err := s.cluster.ConsistentRead(r.Context()); err != nil {
		return fmt.Errorf("consistent read: %w", err)
	}
	return nil
}

// dispatch routes r, answering unknown paths (404) and known paths with the
// wrong method (405, with Allow) in the error envelope rather than the
// ServeMux's plain text.
func (s *Server) dispatch(w http.ResponseWriter, r *http.Request) {
	h, pattern := s.mux.Handler(r)
	if pattern != "" {
		s.mux.ServeHTTP(w, r)
		return
	}
	if s.ui != nil && uiPath(r) {
		s.ui.ServeHTTP(w, r)
		return
	}
	fallback := &headerRecorder{header: http.Header{}}
	h.ServeHTTP(fallback, r)
	if fallback.status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", fallback.header.Get("Allow"))
		writeError(w, r, &statusError{status: http.StatusMethodNotAllowed, p: problem.New(problem.KindInvalid,
			"method_not_allowed", "method %s is not allowed on %s (allowed: %s)", r.Method, r.URL.Path, fallback.header.Get("Allow"))})
		return
	}
	writeError(w, r, problem.New(problem.KindNotFound, "route_not_found", "no route for %s %s", r.Method, r.URL.Path))
}

// headerRecorder captures what the ServeMux's fallback handlers would send.
type headerRecorder struct {
	header http.Header
	status int
}

func (h *headerRecorder) Header() http.Header         { return h.header }
func (h *headerRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (h *headerRecorder) WriteHeader(code int)        { h.status = code }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
