package gateway

import (
	"net/http"
	"strings"

	"github.com/opsconductor/opsconductor/controller/identity"
	"github.com/opsconductor/opsconductor/controller/problem"
)

// Access is who may call a route: nobody needs to be known (AccessPublic),
// any authenticated principal (AccessAuthenticated), or a principal holding
// a permission (any identity.Permission). Every route states one; there is
// no default, so a new route cannot be left open by accident.
type Access string

// The two access levels that are not permissions.
const (
	AccessPublic        Access = "public"
	AccessAuthenticated Access = "authenticated"
)

func perm(p identity.Permission) Access { return Access(p) }

// Cookie names for the browser session. The refresh cookie is HttpOnly and
// scoped to the auth endpoints; the CSRF cookie is readable by the page,
// which echoes it in X-CSRF-Token (double submit).
const (
	cookieRefresh = "opsconductor_refresh"
	cookieCSRF    = "opsconductor_csrf"
	headerCSRF    = "X-CSRF-Token"
	authPath      = "/api/v1/auth"
)

// bearer returns the credential of an "Authorization: Bearer …" header.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, cred, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(cred) == "" {
		return "", false
	}
	return strings.TrimSpace(cred), true
}

// authenticate resolves the request's principal, if it sends a
// credential. A bad credential is an error even on a public route: a
// client that sends a token expects it to count.
func (s *Server) authenticate(r *http.Request) (*identity.Principal, error) {
	cred, ok := bearer(r)
	if !ok {
		if r.Header.Get("Authorization") != "" {
			return nil, problem.New(problem.KindUnauthenticated, "invalid_authorization", "the Authorization header must be \"Bearer <token>\"")
		}
		return nil, nil
	}
	p, err := s.identity.Authenticate(r.Context(), cred)
	if err != nil {
		// A node that has just started, or lags, may not have applied the
		// command that created this token or session yet. A 401 would tell
		// the client to throw a good credential away; "try again" is true.
		if problem.Is(err, problem.KindUnauthenticated) {
			if notReady := s.cluster.Ready(); notReady != nil {
				e := problem.Unavailable("not_ready", "this controller cannot check credentials yet (%v): retry, or use another controller", notReady)
				e.RetryAfter = 1
				return nil, e
			}
		}
		return nil, err
	}
	if st := stateFrom(r.Context()); st != nil {
		st.principal = p
	}
	return p, nil
}

// authorize applies the route's access rule to the principal.
func authorize(rt route, p *identity.Principal) error {
	if rt.Access == AccessPublic {
		return nil
	}
	if p == nil {
		return problem.New(problem.KindUnauthenticated, "unauthenticated", "this route needs a bearer token: log in (POST /api/v1/auth/login) or use an API token")
	}
	if p.MustChangePassword && !rt.DuringPasswordChange {
		return problem.New(problem.KindForbidden, "password_change_required", "change your password first (POST /api/v1/me/password)")
	}
	if rt.Access == AccessAuthenticated {
		return nil
	}
	if !p.Can(identity.Permission(rt.Access)) {
		return problem.New(problem.KindForbidden, "forbidden", "this needs the %s permission", rt.Access)
	}
	return nil
}

// principal returns the authenticated caller of a route that required one.
func principal(r *http.Request) *identity.Principal {
	if st := stateFrom(r.Context()); st != nil {
		return st.principal
	}
	return nil
}

// checkCSRF guards the cookie-authenticated auth endpoints: the page must
// echo the CSRF cookie in a header, which another site's form or fetch
// cannot do. SameSite=Strict on both cookies is the first line; this is
// the second.
func checkCSRF(r *http.Request) error {
	c, err := r.Cookie(cookieCSRF)
	h := r.Header.Get(headerCSRF)
	if err != nil || c.Value == "" || h == "" || !constantTimeEqual(c.Value, h) {
		return problem.New(problem.KindForbidden, "csrf_failed", "cookie-authenticated requests must send the %s cookie's value in %s", cookieCSRF, headerCSRF)
	}
	return nil
}
