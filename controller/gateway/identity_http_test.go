package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/opsconductor/opsconductor/controller/identity"
	"github.com/opsconductor/opsconductor/controller/problem"
)

// publicRoutes is every route that answers without a token. Adding a route
// here is a security decision; the test below fails on any other route
// that does not demand authentication.
var publicRoutes = []string{
	"GET /health",
	"GET /health/ready",
	"GET /metrics",
	"GET /api/v1/openapi.json",
	"POST /api/v1/auth/login",
	"POST /api/v1/auth/refresh",
	"POST /api/v1/auth/logout",
	// A webhook sender has no session: the hook authenticates it by the
	// trigger's HMAC signature or bearer secret instead.
	"POST /api/v1/hooks/{id}",
	// A host being installed has no credential yet; the script and the
	// agent binaries are not secret (the join token given to the script
	// is, and the CA pin guards enrolment).
	"GET /install/agent.sh",
	"GET /install/agent/{os}/{arch}",
	"GET /install/agent/{os}/{arch}/sha256",
}

func TestEveryRouteIsProtected(t *testing.T) {
	f := newFixture(t, Config{})
	for _, rt := range f.srv.Routes() {
		t.Run(rt.Pattern(), func(t *testing.T) {
			switch rt.Access {
			case AccessPublic:
				if !slices.Contains(publicRoutes, rt.Pattern()) {
					t.Fatalf("%s is public but not in publicRoutes", rt.Pattern())
				}
				return
			case AccessAuthenticated:
			case "":
				t.Fatalf("%s states no access rule", rt.Pattern())
			default:
				if !slices.Contains(identity.Permissions, identity.Permission(rt.Access)) {
					t.Fatalf("%s needs unknown permission %q", rt.Pattern(), rt.Access)
				}
			}
			path := strings.NewReplacer("{id}", "x", "{user}", "x", "{name}", "x").Replace(rt.Path)
			req := newRequest(rt.Method, path, "application/json", "{}")
			req.Header.Set(headerAnonymous, "1")
			rec := f.do(t, req)
			if rec.Code != http.StatusUnauthorized {
				t.Fatalf("anonymous %s %s: status %d, want 401", rt.Method, path, rec.Code)
			}
			if rec.Header().Get("WWW-Authenticate") == "" {
				t.Fatal("a 401 without WWW-Authenticate")
			}
		})
	}
}

// roleFixture is a fresh identity with one logged-in user per built-in role.
type roleFixture struct {
	f      *fixture
	ti     *testIdentity
	tokens map[string]string // role → access token
}

func newRoleFixture(t *testing.T) *roleFixture {
	t.Helper()
	ti := newTestIdentity(t)
	rf := &roleFixture{ti: ti, tokens: map[string]string{"admin": ti.adminToken}}
	rf.f = newFixture(t, Config{}, func(d *Deps) { d.Identity = ti.svc })
	admin, err := ti.svc.Authenticate(context.Background(), ti.adminToken)
	if err != nil {
		t.Fatal(err)
	}
	no := false
	for _, role := range []string{"operator", "viewer", "auditor"} {
		name := "user-" + role
		if _, _, err := ti.svc.CreateUser(context.Background(), admin, identity.CreateUser{Username: name, Password: testAdminPassword,
			Roles: []identity.Binding{{Role: role}}, MustChangePassword: &no}); err != nil {
			t.Fatal(err)
		}
		tok, err := ti.svc.Login(context.Background(), identity.LoginRequest{Username: name, Password: testAdminPassword})
		if err != nil {
			t.Fatal(err)
		}
		rf.tokens[role] = tok.AccessToken
	}
	return rf
}

func (rf *roleFixture) as(t *testing.T, role, method, target, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := newRequest(method, target, "application/json", body)
	req.Header.Set("Authorization", "Bearer "+rf.tokens[role])
	return rf.f.do(t, req)
}

func TestRBACMatrix(t *testing.T) {
	rf := newRoleFixture(t)
	// A 400 means the request got past authorization to validation: the
	// matrix probes writes with invalid bodies so that nothing changes.
	type want map[string]int
	tests := []struct {
		method, target, body string
		want                 want
	}{
		{"GET", "/api/v1/me", "", want{"admin": 200, "operator": 200, "viewer": 200, "auditor": 200}},
		{"GET", "/api/v1/users", "", want{"admin": 200, "operator": 403, "viewer": 403, "auditor": 200}},
		{"POST", "/api/v1/users", `{"username":""}`, want{"admin": 400, "operator": 403, "viewer": 403, "auditor": 403}},
		{"POST", "/api/v1/roles", `{"name":""}`, want{"admin": 400, "operator": 403, "viewer": 403, "auditor": 403}},
		{"GET", "/api/v1/roles", "", want{"admin": 200, "operator": 200, "viewer": 200, "auditor": 200}},
		{"GET", "/api/v1/operator/raft/peers", "", want{"admin": 200, "operator": 403, "viewer": 403, "auditor": 403}},
		{"POST", "/api/v1/operator/probes", `{"payload":"x"}`, want{"admin": 201, "operator": 403, "viewer": 403, "auditor": 403}},
		{"GET", "/api/v1/auth/keys", "", want{"admin": 200, "operator": 403, "viewer": 403, "auditor": 403}},
		{"GET", "/api/v1/sessions", "", want{"admin": 200, "operator": 200, "viewer": 200, "auditor": 200}},
		{"GET", "/api/v1/tokens?all=true", "", want{"admin": 200, "operator": 403, "viewer": 403, "auditor": 403}},
		{"POST", "/api/v1/tokens", `{"name":"t","roles":["admin"]}`, want{"admin": 201, "operator": 403, "viewer": 403, "auditor": 403}},
		{"POST", "/api/v1/tokens", `{"name":"t","roles":["viewer"]}`, want{"admin": 201, "operator": 201, "viewer": 201, "auditor": 201}},
	}
	for _, tt := range tests {
		for _, role := range []string{"admin", "operator", "viewer", "auditor"} {
			t.Run(role+" "+tt.method+" "+tt.target+" "+tt.body, func(t *testing.T) {
				rec := rf.as(t, role, tt.method, tt.target, tt.body)
				if rec.Code != tt.want[role] {
					t.Fatalf("status %d, want %d: %s", rec.Code, tt.want[role], rec.Body)
				}
			})
		}
	}
}

func TestCookieSessionFlow(t *testing.T) {
	ti := newTestIdentity(t)
	f := newFixture(t, Config{}, func(d *Deps) { d.Identity = ti.svc })
	login := newRequest("POST", "/api/v1/auth/login", "application/json", `{"username":"admin","password":"`+testAdminPassword+`","cookie":true}`)
	login.Header.Set(headerAnonymous, "1")
	rec := f.do(t, login)
	if rec.Code != 200 {
		t.Fatalf("login: %d %s", rec.Code, rec.Body)
	}
	var body map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if _, ok := body["refresh_token"]; ok {
		t.Fatal("a cookie login put the refresh token in the body")
	}
	cookies := map[string]*http.Cookie{}
	for _, c := range rec.Result().Cookies() {
		cookies[c.Name] = c
	}
	refresh, csrf := cookies[cookieRefresh], cookies[cookieCSRF]
	if refresh == nil || !refresh.HttpOnly || !refresh.Secure || refresh.SameSite != http.SameSiteStrictMode || refresh.Path != authPath {
		t.Fatalf("refresh cookie = %+v", refresh)
	}
	if csrf == nil || csrf.HttpOnly || csrf.SameSite != http.SameSiteStrictMode {
		t.Fatalf("csrf cookie = %+v", csrf)
	}
	send := func(path string, withHeader bool, r, c *http.Cookie) *httptest.ResponseRecorder {
		req := httptest.NewRequest("POST", path, nil)
		req.Header.Set(headerAnonymous, "1")
		req.AddCookie(r)
		req.AddCookie(c)
		if withHeader {
			req.Header.Set(headerCSRF, c.Value)
		}
		return f.do(t, req)
	}

	t.Run("a refresh without the CSRF header is refused", func(t *testing.T) {
		if rec := send("/api/v1/auth/refresh", false, refresh, csrf); rec.Code != http.StatusForbidden {
			t.Fatalf("status %d, want 403: %s", rec.Code, rec.Body)
		}
	})
	t.Run("a refresh with it rotates the cookie", func(t *testing.T) {
		rec := send("/api/v1/auth/refresh", true, refresh, csrf)
		if rec.Code != 200 {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		for _, c := range rec.Result().Cookies() {
			switch c.Name {
			case cookieRefresh:
				if c.Value == refresh.Value {
					t.Fatal("the refresh cookie did not rotate")
				}
				refresh = c
			case cookieCSRF:
				csrf = c
			}
		}
	})
	t.Run("logout with the cookie ends the session and clears the cookies", func(t *testing.T) {
		rec := send("/api/v1/auth/logout", true, refresh, csrf)
		if rec.Code != http.StatusNoContent {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		cleared := 0
		for _, c := range rec.Result().Cookies() {
			if c.MaxAge < 0 {
				cleared++
			}
		}
		if cleared != 2 {
			t.Fatalf("%d cookies cleared, want 2", cleared)
		}
		if rec := send("/api/v1/auth/refresh", true, refresh, csrf); rec.Code != http.StatusUnauthorized {
			t.Fatalf("refresh after logout: %d", rec.Code)
		}
	})
}

func TestLoginIsRateLimitedPerAddress(t *testing.T) {
	limits := unlimited()
	limits[ClassLogin] = Limit{RPS: 0.001, Burst: 3}
	f := newFixture(t, Config{RateLimits: limits})
	codes := []int{}
	for range 4 {
		req := newRequest("POST", "/api/v1/auth/login", "application/json", `{"username":"nobody","password":"not-the-password"}`)
		req.Header.Set(headerAnonymous, "1")
		req.RemoteAddr = "198.51.100.9:4000"
		rec := f.do(t, req)
		codes = append(codes, rec.Code)
		if rec.Code == http.StatusTooManyRequests && rec.Header().Get("Retry-After") == "" {
			t.Fatal("429 without Retry-After")
		}
	}
	if !slices.Equal(codes, []int{401, 401, 401, 429}) {
		t.Fatalf("statuses %v, want three 401s then 429", codes)
	}
}

func TestPasswordChangeRequiredConfinesTheToken(t *testing.T) {
	ti := newTestIdentity(t)
	f := newFixture(t, Config{}, func(d *Deps) { d.Identity = ti.svc })
	admin, _ := ti.svc.Authenticate(context.Background(), ti.adminToken)
	if _, _, err := ti.svc.CreateUser(context.Background(), admin, identity.CreateUser{Username: "newbie", Password: testAdminPassword,
		Roles: []identity.Binding{{Role: "viewer"}}}); err != nil {
		t.Fatal(err)
	}
	tok, err := ti.svc.Login(context.Background(), identity.LoginRequest{Username: "newbie", Password: testAdminPassword})
	if err != nil || !tok.MustChangePassword {
		t.Fatalf("login: %+v %v", tok, err)
	}
	as := func(method, target, body string) int {
		req := newRequest(method, target, "application/json", body)
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		return f.do(t, req).Code
	}
	if code := as("GET", "/api/v1/roles", ""); code != http.StatusForbidden {
		t.Fatalf("GET /roles before the change: %d, want 403", code)
	}
	if code := as("GET", "/api/v1/me", ""); code != 200 {
		t.Fatalf("GET /me: %d", code)
	}
	if code := as("POST", "/api/v1/me/password", `{"current_password":"`+testAdminPassword+`","new_password":"another-Long-passphrase-9"}`); code != http.StatusNoContent {
		t.Fatalf("change: %d", code)
	}
	if code := as("GET", "/api/v1/roles", ""); code != 200 {
		t.Fatalf("GET /roles after the change: %d", code)
	}
}

func FuzzDecodeLogin(f *testing.F) {
	f.Add(`{"username":"admin","password":"x","totp":"123456","cookie":true}`)
	f.Add(`{"username":"","password":""}`)
	f.Add(`{"username":"a"} {"x":1}`)
	f.Add(`[]`)
	f.Add(`{"username":"a","password":"b","extra":1}`)
	f.Add("\x00")
	f.Fuzz(func(t *testing.T, body string) {
		req := newRequest("POST", "/api/v1/auth/login", "application/json", body)
		got, err := decodeLogin(req)
		if err != nil {
			if _, ok := problem.As(err); !ok {
				t.Fatalf("%q: error %v is not a problem", body, err)
			}
			return
		}
		if got.Username == "" || got.Password == "" || len(got.Password) > 1024 {
			t.Fatalf("%q accepted as %+v", body, got)
		}
	})
}
