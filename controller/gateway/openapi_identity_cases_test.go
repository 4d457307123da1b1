package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/opsconductor/opsconductor/controller/identity"
	"github.com/opsconductor/opsconductor/controller/problem"
)

// casePassword is what the users these cases create log in with; the
// policy accepts it for any of their usernames.
const (
	casePassword    = "amber-Quarry-signal-77"
	caseNewPassword = "cobalt-Meadow-ferry-58"
)

// caseIdentity is a fresh identity that a group of cases shares because
// they change identity state (users, sessions, tokens, TOTP), which the
// shared identity must never see. It is built when the first case of the
// group runs, so listing the cases costs nothing; argon2id makes each
// build, user and login cost tens of milliseconds. Every case makes what
// it needs in its prepare hook, so the cases of a group pass in any order
// and one at a time (-run).
type caseIdentity struct {
	once sync.Once
	ti   *testIdentity
	seq  atomic.Int64

	viewerOnce, pendingOnce, totpOnce sync.Once
	viewer, pending, totpUser         string // access tokens, made on first use
}

func (c *caseIdentity) get(t testing.TB) *testIdentity {
	t.Helper()
	c.once.Do(func() { c.ti = newTestIdentity(t) })
	if c.ti == nil {
		t.Fatal("the case identity failed to build")
	}
	return c.ti
}

// name returns a name not used before in this identity.
func (c *caseIdentity) name(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, c.seq.Add(1))
}

// user creates a user bound to role, with casePassword, and returns its
// username.
func (c *caseIdentity) user(t *testing.T, role string, mustChange bool) string {
	t.Helper()
	name := c.name(role)
	caseCreateUser(t, c.get(t), name, role, mustChange)
	return name
}

// caseMemo runs build once and returns what it made, failing every later
// caller if it failed.
func caseMemo(t *testing.T, once *sync.Once, v *string, build func() string) string {
	t.Helper()
	once.Do(func() { *v = build() })
	if *v == "" {
		t.Fatal("an earlier case failed to make this")
	}
	return *v
}

// viewerToken is the access token of a user who holds only viewer.
func (c *caseIdentity) viewerToken(t *testing.T) string {
	return caseMemo(t, &c.viewerOnce, &c.viewer, func() string {
		return caseLogin(t, c.get(t), c.user(t, "viewer", false), casePassword).AccessToken
	})
}

// pendingToken is the access token of an admin who must change their
// password first.
func (c *caseIdentity) pendingToken(t *testing.T) string {
	return caseMemo(t, &c.pendingOnce, &c.pending, func() string {
		return caseLogin(t, c.get(t), c.user(t, "admin", true), casePassword).AccessToken
	})
}

// totpToken is the access token of the user the TOTP cases enrol, so that
// the group's admin never needs a second factor to log in.
func (c *caseIdentity) totpToken(t *testing.T) string {
	return caseMemo(t, &c.totpOnce, &c.totpUser, func() string {
		return caseLogin(t, c.get(t), c.user(t, "operator", false), casePassword).AccessToken
	})
}

func caseCreateUser(t *testing.T, ti *testIdentity, name, role string, mustChange bool) {
	t.Helper()
	_, _, err := ti.svc.CreateUser(context.Background(), casePrincipal(t, ti, ti.adminToken), identity.CreateUser{
		Username: name, Roles: []identity.Binding{{Role: role}}, Password: casePassword, MustChangePassword: &mustChange})
	if err != nil {
		t.Fatalf("create user %s: %v", name, err)
	}
}

func caseLogin(t *testing.T, ti *testIdentity, username, password string) *identity.Tokens {
	t.Helper()
	tok, err := ti.svc.Login(context.Background(), identity.LoginRequest{Username: username, Password: password})
	if err != nil {
		t.Fatalf("log in as %s: %v", username, err)
	}
	return tok
}

func casePrincipal(t *testing.T, ti *testIdentity, token string) *identity.Principal {
	t.Helper()
	p, err := ti.svc.Authenticate(context.Background(), token)
	if err != nil {
		t.Fatalf("authenticate: %v", err)
	}
	return p
}

// caseSetTOTP turns the token's user's second factor on or off through the
// service, unless it already is.
func caseSetTOTP(t *testing.T, ti *testIdentity, token string, on bool) {
	t.Helper()
	ctx, p := context.Background(), casePrincipal(t, ti, token)
	me, err := ti.svc.Me(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case me.User.TOTPEnabled == on:
	case on:
		enr, err := ti.svc.BeginTOTP(ctx, p, casePassword)
		if err != nil {
			t.Fatalf("begin TOTP: %v", err)
		}
		if _, err := ti.svc.ConfirmTOTP(ctx, p, caseTOTPCode(t, enr.Secret)); err != nil {
			t.Fatalf("confirm TOTP: %v", err)
		}
	default:
		if err := ti.svc.DisableTOTP(ctx, p, casePassword); err != nil {
			t.Fatalf("disable TOTP: %v", err)
		}
	}
}

// caseBeginTOTP starts a fresh enrolment and returns its secret.
func caseBeginTOTP(t *testing.T, ti *testIdentity, token string) string {
	t.Helper()
	caseSetTOTP(t, ti, token, false)
	enr, err := ti.svc.BeginTOTP(context.Background(), casePrincipal(t, ti, token), casePassword)
	if err != nil {
		t.Fatalf("begin TOTP: %v", err)
	}
	return enr.Secret
}

func caseTOTPCode(t *testing.T, secret string) string {
	t.Helper()
	code, err := totp.GenerateCode(secret, time.Now())
	if err != nil {
		t.Fatalf("TOTP code: %v", err)
	}
	return code
}

func caseBearer(token string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + token}
}

// caseCookies is what a browser sends after a login with cookie: true.
func caseCookies(refresh string) map[string]string {
	return map[string]string{headerAnonymous: "1", "Cookie": cookieRefresh + "=" + refresh + "; " + cookieCSRF + "=csrf-1",
		headerCSRF: "csrf-1"}
}

var anonymousHeader = map[string]string{headerAnonymous: "1"}

func caseVars(kv ...string) prepared {
	p := prepared{vars: map[string]string{}}
	for i := 0; i+1 < len(kv); i += 2 {
		p.vars[kv[i]] = kv[i+1]
	}
	return p
}

// wantError checks the envelope's code and, if given, the field it blames.
func wantError(code, field string) func(*testing.T, *responseUnderTest) {
	return func(t *testing.T, rec *responseUnderTest) {
		t.Helper()
		var env envelope
		if err := json.Unmarshal(rec.body, &env); err != nil {
			t.Fatalf("error body: %v", err)
		}
		if env.Error.Code != code || env.Error.Field != field {
			t.Errorf("error code %q field %q, want %q and %q: %s", env.Error.Code, env.Error.Field, code, field, rec.body)
		}
	}
}

// wantTokens checks where a login or refresh put the refresh token: in the
// body, or in the cookies (and then not in the body).
func wantTokens(inCookie bool) func(*testing.T, *responseUnderTest) {
	return func(t *testing.T, rec *responseUnderTest) {
		t.Helper()
		var tok identity.Tokens
		if err := json.Unmarshal(rec.body, &tok); err != nil {
			t.Fatal(err)
		}
		cookies := map[string]*http.Cookie{}
		for _, c := range (&http.Response{Header: rec.header}).Cookies() {
			cookies[c.Name] = c
		}
		if rec.header.Get("Cache-Control") != "no-store" {
			t.Errorf("Cache-Control = %q, want no-store", rec.header.Get("Cache-Control"))
		}
		if !inCookie {
			if tok.RefreshToken == "" || len(cookies) != 0 {
				t.Errorf("want the refresh token in the body and no cookies, got %q and %v", tok.RefreshToken, rec.header["Set-Cookie"])
			}
			return
		}
		refresh, csrf := cookies[cookieRefresh], cookies[cookieCSRF]
		switch {
		case tok.RefreshToken != "":
			t.Errorf("the body holds the refresh token although it went into a cookie")
		case refresh == nil || !refresh.HttpOnly || !refresh.Secure || refresh.SameSite != http.SameSiteStrictMode || refresh.Path != authPath:
			t.Errorf("refresh cookie = %+v, want HttpOnly, Secure, SameSite=Strict, Path=%s", refresh, authPath)
		case csrf == nil || csrf.HttpOnly || csrf.Value == "" || csrf.Path != "/":
			t.Errorf("CSRF cookie = %+v, want one the page can read, Path=/", csrf)
		}
	}
}

func wantCookiesCleared(t *testing.T, rec *responseUnderTest) {
	t.Helper()
	cleared := map[string]bool{}
	for _, c := range (&http.Response{Header: rec.header}).Cookies() {
		cleared[c.Name] = c.MaxAge < 0
	}
	if !cleared[cookieRefresh] || !cleared[cookieCSRF] {
		t.Errorf("Set-Cookie = %v, want both session cookies cleared", rec.header["Set-Cookie"])
	}
}

// identityCases drive every auth, me, user, role, session and token route
// to a success and to its representative errors. Cases that only read, or
// that fail validation before anything is applied, use the shared
// identity; the rest use one of three fresh ones.
func identityCases() []routeCase {
	var (
		auth  = &caseIdentity{} // logins, refreshes, logouts, key rotation
		users = &caseIdentity{} // user administration
		self  = &caseIdentity{} // me, TOTP, sessions, tokens, roles, refusals
	)
	const js = "application/json"
	noCSRFHeader := caseCookies("ocr_x.y")
	delete(noCSRFHeader, headerCSRF)
	adminLogin := `{"username":"admin","password":"` + testAdminPassword + `"}`
	loginAdmin := func(t *testing.T, f *fixture) *identity.Tokens {
		return caseLogin(t, f.ident, "admin", testAdminPassword)
	}
	newRole := func(t *testing.T, f *fixture) prepared {
		name := self.name("role")
		_, err := f.ident.svc.PutRole(context.Background(), casePrincipal(t, f.ident, f.ident.adminToken),
			identity.Role{Name: name, Permissions: []identity.Permission{identity.PermJobsRead}}, true)
		if err != nil {
			t.Fatalf("create role: %v", err)
		}
		return caseVars("role", name)
	}
	newToken := func(role string) func(t *testing.T, f *fixture) prepared {
		return func(t *testing.T, f *fixture) prepared {
			view, secret, err := f.ident.svc.CreateToken(context.Background(), casePrincipal(t, f.ident, f.ident.adminToken),
				identity.CreateToken{Name: "ci", Roles: []identity.Binding{{Role: role}}})
			if err != nil {
				t.Fatalf("create token: %v", err)
			}
			p := caseVars("id", view.ID)
			p.header = caseBearer(secret)
			return p
		}
	}
	asViewer := func(t *testing.T, _ *fixture) prepared { return prepared{header: caseBearer(self.viewerToken(t))} }
	asPending := func(t *testing.T, _ *fixture) prepared { return prepared{header: caseBearer(self.pendingToken(t))} }
	asTOTPUser := func(on bool) func(t *testing.T, f *fixture) prepared {
		return func(t *testing.T, f *fixture) prepared {
			tok := self.totpToken(t)
			caseSetTOTP(t, f.ident, tok, on)
			return prepared{header: caseBearer(tok)}
		}
	}
	enrolling := func(t *testing.T, f *fixture) prepared {
		tok := self.totpToken(t)
		p := caseVars("code", caseTOTPCode(t, caseBeginTOTP(t, f.ident, tok)))
		p.header = caseBearer(tok)
		return p
	}

	return []routeCase{
		// Reads and refusals on the shared identity.
		{name: "the caller sees who they are and what they may do", method: "GET", target: "/api/v1/me", want: 200},
		{name: "me without a token is a 401", method: "GET", target: "/api/v1/me", header: anonymousHeader, want: 401,
			check: wantError("unauthenticated", "")},
		{name: "an Authorization header that is not Bearer is a 401", method: "GET", target: "/api/v1/me",
			header: map[string]string{"Authorization": "Basic YWRtaW46YWRtaW4="}, want: 401, check: wantError("invalid_authorization", "")},
		{name: "a forged access token is a 401", method: "GET", target: "/api/v1/me",
			header: caseBearer("eyJhbGciOiJub25lIn0.e30."), want: 401, check: wantError("invalid_token", "")},
		{name: "a token a node that is not ready cannot find yet is a 503, not a 401", method: "GET", target: "/api/v1/me",
			header: caseBearer("eyJhbGciOiJub25lIn0.e30."), want: 503, check: wantError("not_ready", ""),
			setup: func(f *fixture) {
				f.cluster.readyErr = problem.Unavailable("catching_up", "applied index 3 is behind commit index 9")
			}},
		{name: "operator routes need a token", method: "GET", target: "/api/v1/operator/raft/peers", header: anonymousHeader, want: 401},
		{name: "the signing keys are listed", method: "GET", target: "/api/v1/auth/keys", want: 200},
		{name: "users are listed", method: "GET", target: "/api/v1/users", want: 200},
		{name: "users are listed consistently with every filter", method: "GET",
			target: "/api/v1/users?consistent=true&q=adm&role=admin&disabled=false&limit=1", want: 200},
		{name: "a user page size of zero is a 400 naming limit", method: "GET", target: "/api/v1/users?limit=0", want: 400,
			check: wantError("invalid_input", "limit")},
		{name: "a user is read by username", method: "GET", target: "/api/v1/users/admin", want: 200},
		{name: "an unknown user is a 404", method: "GET", target: "/api/v1/users/nobody", want: 404},
		{name: "an admin lists a user's sessions, ended ones too", method: "GET", target: "/api/v1/users/admin/sessions?all=true", want: 200},
		{name: "roles are listed", method: "GET", target: "/api/v1/roles", want: 200},
		{name: "a built-in role is read", method: "GET", target: "/api/v1/roles/operator", want: 200},
		{name: "an unknown role is a 404", method: "GET", target: "/api/v1/roles/nope", want: 404},
		{name: "permissions are listed", method: "GET", target: "/api/v1/permissions", want: 200},
		{name: "the caller's sessions are listed", method: "GET", target: "/api/v1/sessions", want: 200},
		{name: "an unknown user's sessions are a 404", method: "GET", target: "/api/v1/sessions?user=nobody", want: 404},
		{name: "every API token is listed for an admin", method: "GET", target: "/api/v1/tokens?all=true", want: 200},
		{name: "a bad username is a 400 naming username", method: "POST", target: "/api/v1/users", contentType: js,
			body: `{"username":"No Spaces!"}`, want: 400, check: wantError("invalid_input", "username")},
		{name: "a role with an unknown permission is a 400 naming it", method: "POST", target: "/api/v1/roles", contentType: js,
			body: `{"name":"typo","permissions":["jobs:reed"]}`, want: 400, check: wantError("invalid_input", "permissions[0]")},
		{name: "an API token without roles is a 400 naming roles", method: "POST", target: "/api/v1/tokens", contentType: js,
			body: `{"name":"ci"}`, want: 400, check: wantError("invalid_input", "roles")},
		{name: "a bad email on one's own profile is a 400 naming email", method: "PATCH", target: "/api/v1/me", contentType: js,
			body: `{"email":"not-an-address"}`, want: 400, check: wantError("invalid_input", "email")},
		{name: "an admin cannot delete themselves", method: "DELETE", target: "/api/v1/users/admin", want: 409,
			check: wantError("cannot_delete_self", "")},
		{name: "an admin cannot disable themselves", method: "PATCH", target: "/api/v1/users/admin", contentType: js,
			body: `{"disabled":true}`, want: 409, check: wantError("cannot_disable_self", "disabled")},
		{name: "a login without a password is a 400 naming password", method: "POST", target: "/api/v1/auth/login", contentType: js,
			body: `{"username":"admin"}`, header: anonymousHeader, want: 400, check: wantError("invalid_input", "password")},
		{name: "an unknown user cannot log in", method: "POST", target: "/api/v1/auth/login", contentType: js,
			body: `{"username":"nobody","password":"` + casePassword + `"}`, header: anonymousHeader, want: 401,
			check: wantError("invalid_credentials", "")},
		{name: "logins are rate limited per address", method: "POST", target: "/api/v1/auth/login", contentType: js,
			body: `{"username":"nobody","password":"` + casePassword + `"}`, header: anonymousHeader, want: 429,
			cfg: Config{RateLimits: map[RouteClass]Limit{ClassLogin: {RPS: 0.001, Burst: 1}}}, repeat: 2},
		{name: "a refresh without a token is a 400 naming refresh_token", method: "POST", target: "/api/v1/auth/refresh",
			header: anonymousHeader, want: 400, check: wantError("invalid_input", "refresh_token")},
		{name: "a refresh from the cookie without the CSRF header is a 403", method: "POST", target: "/api/v1/auth/refresh",
			header: noCSRFHeader, want: 403, check: wantError("csrf_failed", "")},
		{name: "a logout with no credential at all is a 401", method: "POST", target: "/api/v1/auth/logout", header: anonymousHeader,
			want: 401, check: wantError("not_logged_in", "")},

		// Logins, refreshes and logouts on their own identity.
		{name: "an admin logs in and gets the refresh token in the body", identity: auth, method: "POST", target: "/api/v1/auth/login",
			contentType: js, body: adminLogin, header: anonymousHeader, want: 200, check: wantTokens(false)},
		{name: "a browser logs in and gets the refresh token in cookies", identity: auth, method: "POST", target: "/api/v1/auth/login",
			contentType: js, body: `{"username":"admin","password":"` + testAdminPassword + `","cookie":true}`, header: anonymousHeader,
			want: 200, check: wantTokens(true)},
		{name: "a refresh token from the body is swapped for a new pair", identity: auth, method: "POST", target: "/api/v1/auth/refresh",
			contentType: js, body: `{"refresh_token":"$refresh"}`, header: anonymousHeader, want: 200, check: wantTokens(false),
			prepare: func(t *testing.T, f *fixture) prepared { return caseVars("refresh", loginAdmin(t, f).RefreshToken) }},
		{name: "a refresh token from the cookie is swapped with the CSRF header", identity: auth, method: "POST",
			target: "/api/v1/auth/refresh", want: 200, check: wantTokens(true),
			prepare: func(t *testing.T, f *fixture) prepared {
				return prepared{header: caseCookies(loginAdmin(t, f).RefreshToken)}
			}},
		{name: "an unknown refresh token is a 401", identity: auth, method: "POST", target: "/api/v1/auth/refresh", contentType: js,
			body: `{"refresh_token":"ocr_0123.abcd"}`, header: anonymousHeader, want: 401, check: wantError("invalid_refresh_token", "")},
		{name: "a session logs out with its access token", identity: auth, method: "POST", target: "/api/v1/auth/logout", want: 204,
			prepare: func(t *testing.T, f *fixture) prepared {
				return prepared{header: caseBearer(loginAdmin(t, f).AccessToken)}
			}},
		{name: "a browser logs out with the refresh cookie and loses its cookies", identity: auth, method: "POST",
			target: "/api/v1/auth/logout", want: 204, check: wantCookiesCleared,
			prepare: func(t *testing.T, f *fixture) prepared {
				return prepared{header: caseCookies(loginAdmin(t, f).RefreshToken)}
			}},
		{name: "the signing key is rotated on demand", identity: auth, method: "POST", target: "/api/v1/auth/keys/rotate", want: 200},

		// User administration on its own identity.
		{name: "a user is created with a generated password and scoped roles", identity: users, method: "POST", target: "/api/v1/users",
			contentType: js, want: 201, prepare: func(*testing.T, *fixture) prepared { return caseVars("name", users.name("created")) },
			body: `{"username":"$name","email":"$name@example.com",` +
				`"roles":["viewer",{"role":"operator","scope":{"tags":{"env":"prod"},"groups":["web"]}}]}`,
			check: func(t *testing.T, rec *responseUnderTest) {
				var u createdUser
				if err := json.Unmarshal(rec.body, &u); err != nil || u.InitialPassword == "" || !u.MustChangePassword {
					t.Errorf("want a generated initial_password and must_change_password: %s", rec.body)
				}
				if loc := rec.header.Get("Location"); loc != "/api/v1/users/"+u.ID {
					t.Errorf("Location = %q", loc)
				}
			}},
		{name: "a user is created with a chosen password", identity: users, method: "POST", target: "/api/v1/users", contentType: js,
			body: `{"username":"$name","display_name":"Chosen","password":"` + casePassword + `","must_change_password":false}`, want: 201,
			prepare: func(*testing.T, *fixture) prepared { return caseVars("name", users.name("chosen")) }},
		{name: "a taken username is a 409", identity: users, method: "POST", target: "/api/v1/users", contentType: js,
			body: `{"username":"admin"}`, want: 409, check: wantError("username_taken", "username")},
		{name: "a user's profile is updated", identity: users, method: "PATCH", target: "/api/v1/users/admin", contentType: js,
			body: `{"display_name":"Root","email":"root@example.com","roles":["admin"]}`, want: 200},
		{name: "an unknown role in an update is a 400 naming it", identity: users, method: "PATCH", target: "/api/v1/users/admin",
			contentType: js, body: `{"roles":["nope"]}`, want: 400, check: wantError("invalid_input", "roles[0].role")},
		{name: "a user is deleted", identity: users, method: "DELETE", target: "/api/v1/users/$user", want: 204,
			prepare: func(t *testing.T, _ *fixture) prepared { return caseVars("user", users.user(t, "viewer", false)) }},
		{name: "deleting an unknown user is a 404", identity: users, method: "DELETE", target: "/api/v1/users/nobody", want: 404},
		{name: "an admin resets a user's password to a generated one", identity: users, method: "POST",
			target: "/api/v1/users/$user/password", want: 200,
			prepare: func(t *testing.T, _ *fixture) prepared { return caseVars("user", users.user(t, "viewer", false)) },
			check: func(t *testing.T, rec *responseUnderTest) {
				if !strings.Contains(string(rec.body), `"password":`) {
					t.Errorf("no generated password: %s", rec.body)
				}
			}},
		{name: "a reset password that breaks the policy is a 400 naming the rule", identity: users, method: "POST",
			target: "/api/v1/users/admin/password", contentType: js, body: `{"password":"short"}`, want: 400,
			check: wantError("password_min_length", "password")},
		{name: "a locked-out user is unlocked", identity: users, method: "POST", target: "/api/v1/users/admin/unlock", want: 200},
		{name: "a user's second factor is reset", identity: users, method: "DELETE", target: "/api/v1/users/admin/totp", want: 200},
		{name: "an admin ends every session of a user", identity: users, method: "DELETE", target: "/api/v1/users/$user/sessions",
			want: 200,
			prepare: func(t *testing.T, f *fixture) prepared {
				name := users.user(t, "viewer", false)
				caseLogin(t, f.ident, name, casePassword)
				return caseVars("user", name)
			},
			check: func(t *testing.T, rec *responseUnderTest) {
				var r revokedSessions
				if err := json.Unmarshal(rec.body, &r); err != nil || len(r.Revoked) != 1 {
					t.Errorf("want one session revoked: %s", rec.body)
				}
			}},
		{name: "ending the sessions of an unknown user is a 404", identity: users, method: "DELETE",
			target: "/api/v1/users/nobody/sessions", want: 404},

		// The caller's own profile, password and second factor.
		{name: "the caller changes their display name", identity: self, method: "PATCH", target: "/api/v1/me", contentType: js,
			body: `{"display_name":"Me, myself"}`, want: 200},
		{name: "a user changes the password they were told to change", identity: self, method: "POST", target: "/api/v1/me/password",
			contentType: js, body: `{"current_password":"` + casePassword + `","new_password":"` + caseNewPassword + `"}`, want: 204,
			prepare: func(t *testing.T, f *fixture) prepared {
				return prepared{header: caseBearer(caseLogin(t, f.ident, self.user(t, "viewer", true), casePassword).AccessToken)}
			}},
		{name: "a wrong current password is a 403 naming current_password", identity: self, method: "POST",
			target: "/api/v1/me/password", contentType: js,
			body: `{"current_password":"not-the-password-1","new_password":"` + caseNewPassword + `"}`, want: 403,
			check: wantError("wrong_password", "current_password")},
		{name: "a user who must change their password still sees who they are", identity: self, method: "GET", target: "/api/v1/me",
			want: 200, prepare: asPending},
		{name: "a user who must change their password can do nothing else", identity: self, method: "PATCH", target: "/api/v1/me",
			contentType: js, body: `{"display_name":"x"}`, want: 403, prepare: asPending, check: wantError("password_change_required", "")},
		{name: "TOTP enrolment starts with the password", identity: self, method: "POST", target: "/api/v1/me/totp", contentType: js,
			body: `{"password":"` + casePassword + `"}`, want: 200, prepare: asTOTPUser(false)},
		{name: "TOTP is turned on with a current code", identity: self, method: "POST", target: "/api/v1/me/totp/confirm",
			contentType: js, body: `{"code":"$code"}`, want: 200, prepare: enrolling},
		{name: "a TOTP code that does not match is a 400 naming code", identity: self, method: "POST",
			target: "/api/v1/me/totp/confirm", contentType: js, body: `{"code":"abcdef"}`, want: 400, check: wantError("invalid_totp", "code"),
			prepare: func(t *testing.T, f *fixture) prepared {
				tok := self.totpToken(t)
				caseBeginTOTP(t, f.ident, tok)
				return prepared{header: caseBearer(tok)}
			}},
		{name: "enrolling in TOTP twice is a 409", identity: self, method: "POST", target: "/api/v1/me/totp", contentType: js,
			body: `{"password":"` + casePassword + `"}`, want: 409, prepare: asTOTPUser(true), check: wantError("totp_enabled", "")},
		{name: "TOTP is turned off with the password", identity: self, method: "POST", target: "/api/v1/me/totp/disable",
			contentType: js, body: `{"password":"` + casePassword + `"}`, want: 204, prepare: asTOTPUser(true)},
		{name: "TOTP is not turned off with a wrong password", identity: self, method: "POST", target: "/api/v1/me/totp/disable",
			contentType: js, body: `{"password":"not-the-password-1"}`, want: 403, check: wantError("wrong_password", "password")},

		// Sessions and API tokens.
		{name: "one of the caller's sessions is ended", identity: self, method: "DELETE", target: "/api/v1/sessions/$id", want: 204,
			prepare: func(t *testing.T, f *fixture) prepared { return caseVars("id", loginAdmin(t, f).SessionID) }},
		{name: "ending an unknown session is a 404", identity: self, method: "DELETE", target: "/api/v1/sessions/ses_0000", want: 404},
		{name: "every other session of the caller is ended", identity: self, method: "POST", target: "/api/v1/sessions/revoke-others",
			want: 200},
		{name: "an API token is created and its secret shown once", identity: self, method: "POST", target: "/api/v1/tokens",
			contentType: js, body: `{"name":"ci","description":"pipelines","roles":["viewer"],"expires_in":"720h"}`, want: 201},
		{name: "an API token authenticates its owner", identity: self, method: "GET", target: "/api/v1/me", want: 200,
			prepare: newToken("viewer"),
			check: func(t *testing.T, rec *responseUnderTest) {
				var me identity.Me
				if err := json.Unmarshal(rec.body, &me); err != nil || me.TokenID == "" || me.SessionID != "" {
					t.Errorf("want a token_id and no session_id: %s", rec.body)
				}
			}},
		{name: "an API token cannot create API tokens", identity: self, method: "POST", target: "/api/v1/tokens", contentType: js,
			body: `{"name":"again","roles":["viewer"]}`, want: 403, prepare: newToken("viewer"),
			check: wantError("token_cannot_create_tokens", "")},
		{name: "an API token is revoked", identity: self, method: "DELETE", target: "/api/v1/tokens/$id", want: 200,
			prepare: func(t *testing.T, f *fixture) prepared {
				p := newToken("viewer")(t, f)
				p.header = nil
				return p
			}},
		{name: "revoking an unknown API token is a 404", identity: self, method: "DELETE", target: "/api/v1/tokens/tok_0000", want: 404},

		// Roles.
		{name: "a custom role is created", identity: self, method: "POST", target: "/api/v1/roles", contentType: js,
			body: `{"name":"$role","description":"Runs jobs","permissions":["jobs:read","jobs:run"]}`, want: 201,
			prepare: func(*testing.T, *fixture) prepared { return caseVars("role", self.name("deployer")) }},
		{name: "a custom role is replaced", identity: self, method: "PUT", target: "/api/v1/roles/$role", contentType: js,
			body: `{"description":"Reads and runs jobs","permissions":["jobs:read","jobs:run"]}`, want: 200, prepare: newRole},
		{name: "a custom role is deleted", identity: self, method: "DELETE", target: "/api/v1/roles/$role", want: 204, prepare: newRole},
		{name: "a role named differently in the body is a 400 naming name", identity: self, method: "PUT", target: "/api/v1/roles/$role",
			contentType: js, body: `{"name":"other","permissions":["jobs:read"]}`, want: 400, prepare: newRole,
			check: wantError("invalid_input", "name")},
		{name: "a built-in role cannot be replaced", identity: self, method: "PUT", target: "/api/v1/roles/viewer", contentType: js,
			body: `{"permissions":["jobs:read"]}`, want: 409, check: wantError("builtin_role", "name")},
		{name: "a built-in role cannot be deleted", identity: self, method: "DELETE", target: "/api/v1/roles/admin", want: 409},
		{name: "replacing an unknown role is a 404", identity: self, method: "PUT", target: "/api/v1/roles/nope", contentType: js,
			body: `{"permissions":["jobs:read"]}`, want: 404},

		// What a viewer may not do.
		{name: "a viewer cannot list users", identity: self, method: "GET", target: "/api/v1/users", want: 403, prepare: asViewer,
			check: wantError("forbidden", "")},
		{name: "a viewer cannot create roles", identity: self, method: "POST", target: "/api/v1/roles", contentType: js,
			body: `{"name":"sneaky","permissions":["users:admin"]}`, want: 403, prepare: asViewer},
		{name: "a viewer cannot see the signing keys", identity: self, method: "GET", target: "/api/v1/auth/keys", want: 403,
			prepare: asViewer},
		{name: "a viewer cannot run operator routes", identity: self, method: "GET", target: "/api/v1/operator/raft/peers", want: 403,
			prepare: asViewer},
		{name: "a viewer cannot list everyone's API tokens", identity: self, method: "GET", target: "/api/v1/tokens?all=true",
			want: 403, prepare: asViewer},
		{name: "a viewer cannot list the admin's sessions", identity: self, method: "GET", target: "/api/v1/sessions?user=admin",
			want: 403, prepare: asViewer},
		{name: "a viewer lists their own API tokens", identity: self, method: "GET", target: "/api/v1/tokens", want: 200,
			prepare: asViewer},
	}
}
