package identity

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/pquerna/otp/totp"

	"github.com/opsconductor/opsconductor/controller/identity/password"
	"github.com/opsconductor/opsconductor/controller/keyring"
	"github.com/opsconductor/opsconductor/controller/problem"
	"github.com/opsconductor/opsconductor/controller/state"
	"github.com/opsconductor/opsconductor/controller/state/statetest"
)

const adminPassword = "violet-Harbour-lantern-42"

// clock is the test's time, shared by the FSM (entry times) and the service.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

// localApplier applies straight to the store, one entry per call and one
// call at a time, as a single-node leader would.
type env struct {
	svc    *Service
	clock  *clock
	audits *auditLog
	admin  *Principal
}

type auditLog struct {
	mu     sync.Mutex
	events []AuditEvent
}

func (l *auditLog) record(_ context.Context, e AuditEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
}

func (l *auditLog) has(action, outcome string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.events {
		if e.Action == action && e.Outcome == outcome {
			return true
		}
	}
	return false
}

var sharedHasher = sync.OnceValues(func() (*password.Hasher, error) {
	return password.NewHasher(password.DefaultParams, 4)
})

func newEnv(t testing.TB) *env {
	t.Helper()
	reg := state.NewRegistry()
	reg.MustRegister(Domain())
	store, err := state.NewStore(reg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	key, _ := keyring.NewKey()
	kr, err := keyring.Parse([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	hasher, err := sharedHasher()
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}
	audits := &auditLog{}
	svc, err := New(Config{}, Deps{Applier: &statetest.Applier{Store: store, Now: clk.now}, Store: store, Keyring: kr, Hasher: hasher,
		Logger: slog.New(slog.DiscardHandler), Audit: audits.record, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if res, err := svc.Bootstrap(ctx, adminPassword, false); err != nil || !res.Created {
		t.Fatalf("Bootstrap: %+v, %v", res, err)
	}
	if err := svc.Maintain(ctx); err != nil {
		t.Fatalf("Maintain: %v", err)
	}
	e := &env{svc: svc, clock: clk, audits: audits}
	e.admin = e.principal(t, e.login(t, "admin", adminPassword))
	return e
}

func (e *env) login(t testing.TB, user, pw string) *Tokens {
	t.Helper()
	tok, err := e.svc.Login(context.Background(), LoginRequest{Username: user, Password: pw, SourceIP: "192.0.2.1", UserAgent: "test"})
	if err != nil {
		t.Fatalf("Login(%s): %v", user, err)
	}
	return tok
}

func (e *env) principal(t testing.TB, tok *Tokens) *Principal {
	t.Helper()
	p, err := e.svc.Authenticate(context.Background(), tok.AccessToken)
	if err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	return p
}

func (e *env) createUser(t testing.TB, name string, roles ...Binding) {
	t.Helper()
	f := false
	if _, _, err := e.svc.CreateUser(context.Background(), e.admin, CreateUser{Username: name, Password: name + "-Tangerine-Pylon-7", Roles: roles, MustChangePassword: &f}); err != nil {
		t.Fatalf("CreateUser(%s): %v", name, err)
	}
}

func pw(name string) string { return name + "-Tangerine-Pylon-7" }

func wantProblem(t testing.TB, err error, kind problem.Kind, code string) {
	t.Helper()
	p, ok := problem.As(err)
	if !ok || p.Kind != kind || (code != "" && p.Code != code) {
		t.Fatalf("err = %v (%#v), want %s/%s", err, p, kind, code)
	}
}

func TestLoginRefreshLogout(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	tok := e.login(t, "admin", adminPassword)
	if tok.TokenType != "Bearer" || tok.ExpiresIn != 900 || !strings.HasPrefix(tok.RefreshToken, refreshTokenPrefix) {
		t.Fatalf("tokens = %+v", tok)
	}
	p := e.principal(t, tok)
	if p.Username != "admin" || !p.Can(PermClusterAdmin) || p.SessionID != tok.SessionID {
		t.Fatalf("principal = %+v", p)
	}

	next, err := e.svc.Refresh(ctx, tok.RefreshToken, "192.0.2.1", "test")
	if err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	if next.RefreshToken == tok.RefreshToken || next.SessionID != tok.SessionID {
		t.Fatal("refresh did not rotate the token within the session")
	}
	e.principal(t, next)

	t.Run("the rotated-away token revokes the family", func(t *testing.T) {
		_, err := e.svc.Refresh(ctx, tok.RefreshToken, "198.51.100.7", "attacker")
		wantProblem(t, err, problem.KindUnauthenticated, "refresh_token_reused")
		_, err = e.svc.Refresh(ctx, next.RefreshToken, "192.0.2.1", "test")
		wantProblem(t, err, problem.KindUnauthenticated, "invalid_refresh_token")
		_, err = e.svc.Authenticate(ctx, next.AccessToken)
		wantProblem(t, err, problem.KindUnauthenticated, "session_ended")
		if !e.audits.has("auth.refresh_reuse", "denied") {
			t.Fatal("the reuse was not audited")
		}
	})

	t.Run("logout ends the session", func(t *testing.T) {
		tok := e.login(t, "admin", adminPassword)
		p := e.principal(t, tok)
		if err := e.svc.Logout(ctx, p, "", "192.0.2.1"); err != nil {
			t.Fatal(err)
		}
		_, err := e.svc.Authenticate(ctx, tok.AccessToken)
		wantProblem(t, err, problem.KindUnauthenticated, "session_ended")
		_, err = e.svc.Refresh(ctx, tok.RefreshToken, "", "")
		wantProblem(t, err, problem.KindUnauthenticated, "invalid_refresh_token")
	})

	t.Run("a forged refresh token is rejected without revoking anything", func(t *testing.T) {
		tok := e.login(t, "admin", adminPassword)
		forged := refreshTokenPrefix + tok.SessionID + ".AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
		_, err := e.svc.Refresh(ctx, forged, "", "")
		wantProblem(t, err, problem.KindUnauthenticated, "invalid_refresh_token")
		if _, err := e.svc.Refresh(ctx, tok.RefreshToken, "", ""); err != nil {
			t.Fatalf("the genuine token stopped working: %v", err)
		}
	})
}

func TestSessionLimits(t *testing.T) {
	tests := []struct {
		name    string
		advance []time.Duration // between refreshes
		ok      bool
	}{
		{"a session used every six days lives past the idle timeout", []time.Duration{6 * 24 * time.Hour, 6 * 24 * time.Hour}, true},
		{"a session idle for eight days is over", []time.Duration{8 * 24 * time.Hour}, false},
		{"no session outlives thirty days however it is used", []time.Duration{6 * 24 * time.Hour, 6 * 24 * time.Hour, 6 * 24 * time.Hour, 6 * 24 * time.Hour, 6 * 24 * time.Hour, 6 * 24 * time.Hour}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			tok := e.login(t, "admin", adminPassword)
			var err error
			for _, d := range tt.advance {
				e.clock.advance(d)
				if err := e.svc.Maintain(context.Background()); err != nil { // keys rotate meanwhile
					t.Fatal(err)
				}
				var next *Tokens
				if next, err = e.svc.Refresh(context.Background(), tok.RefreshToken, "", ""); err != nil {
					break
				}
				tok = next
			}
			if tt.ok != (err == nil) {
				t.Fatalf("last refresh err = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestConcurrentRefreshesOneWins(t *testing.T) {
	e := newEnv(t)
	tok := e.login(t, "admin", adminPassword)
	const n = 8
	var wg sync.WaitGroup
	results := make(chan error, n)
	for range n {
		wg.Go(func() {
			_, err := e.svc.Refresh(context.Background(), tok.RefreshToken, "", "")
			results <- err
		})
	}
	wg.Wait()
	close(results)
	wins := 0
	for err := range results {
		if err == nil {
			wins++
		} else if !problem.Is(err, problem.KindUnauthenticated) {
			t.Fatalf("unexpected error: %v", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d refreshes of one token succeeded, want exactly 1", wins)
	}
}

// forge signs claims the way an attacker might.
func forge(t *testing.T, method jwt.SigningMethod, key any, header map[string]any, c accessClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, c)
	for k, v := range header {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("forge: %v", err)
	}
	return s
}

func TestAccessTokenRejections(t *testing.T) {
	e := newEnv(t)
	tok := e.login(t, "admin", adminPassword)
	valid, err := e.svc.verify.verify(tok.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	kid, _, err := e.svc.activeKey()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := e.svc.publicKey(kid)
	_, otherKey, _ := ed25519.GenerateKey(nil)
	parts := strings.Split(tok.AccessToken, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	tampered := strings.Replace(string(payload), `"roles":["admin"]`, `"roles":["admin","root"]`, 1)
	if tampered == string(payload) {
		t.Fatalf("payload has no roles claim to tamper with: %s", payload)
	}
	expired := *valid
	expired.ExpiresAt = jwt.NewNumericDate(e.clock.now().Add(-time.Hour))
	wrongAud := *valid
	wrongAud.Audience = jwt.ClaimStrings{"someone-else"}

	tests := []struct {
		name  string
		token string
	}{
		{"an expired token", forge(t, jwt.SigningMethodEdDSA, e.signer(t), map[string]any{"kid": kid}, expired)},
		{"a tampered payload", parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(tampered)) + "." + parts[2]},
		{"an unknown kid", forge(t, jwt.SigningMethodEdDSA, e.signer(t), map[string]any{"kid": "not-a-key"}, *valid)},
		{"no kid", forge(t, jwt.SigningMethodEdDSA, e.signer(t), nil, *valid)},
		{"a key the cluster never had", forge(t, jwt.SigningMethodEdDSA, otherKey, map[string]any{"kid": kid}, *valid)},
		{"alg none", forge(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, map[string]any{"kid": kid}, *valid)},
		{"HS256 keyed with the public key", forge(t, jwt.SigningMethodHS256, []byte(pub), map[string]any{"kid": kid}, *valid)},
		{"another audience", forge(t, jwt.SigningMethodEdDSA, e.signer(t), map[string]any{"kid": kid}, wrongAud)},
		{"garbage", "not.a.jwt"},
		{"an empty string", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is rejected", func(t *testing.T) {
			_, err := e.svc.Authenticate(context.Background(), tt.token)
			wantProblem(t, err, problem.KindUnauthenticated, "")
		})
	}
	t.Run("the genuine token passes", func(t *testing.T) {
		e.principal(t, tok)
	})
}

func (e *env) signer(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, key, err := e.svc.activeKey()
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func TestKeyRotationKeepsOldTokensUntilExpiry(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	old := e.login(t, "admin", adminPassword)
	keys, err := e.svc.SigningKeys()
	if err != nil {
		t.Fatal(err)
	}
	oldKid := keys[0].KID
	newKid, err := e.svc.RotateSigningKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fresh := e.login(t, "admin", adminPassword)
	if header := jwtHeader(t, fresh.AccessToken); header["kid"] != newKid {
		t.Fatalf("new tokens signed by %v, want %s", header["kid"], newKid)
	}
	e.principal(t, old) // still verifies with the retired key

	e.clock.advance(10 * time.Minute)
	if err := e.svc.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.svc.publicKey(oldKid); !ok {
		t.Fatal("the retired key was pruned while its tokens were still valid")
	}
	e.principal(t, old)

	e.clock.advance(10 * time.Minute)
	if err := e.svc.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.svc.publicKey(oldKid); ok {
		t.Fatal("the retired key outlived every token it signed")
	}
	if _, err := e.svc.Authenticate(ctx, old.AccessToken); err == nil {
		t.Fatal("an expired token signed by a pruned key passed")
	}
}

func jwtHeader(t *testing.T, token string) map[string]any {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatal(err)
	}
	return h
}

func TestLockout(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.createUser(t, "mallory-target", Binding{Role: "viewer"})
	try := func(p string) error {
		_, err := e.svc.Login(ctx, LoginRequest{Username: "mallory-target", Password: p})
		return err
	}
	for i := range 5 {
		wantProblem(t, try("wrong-password-"+string(rune('a'+i))), problem.KindUnauthenticated, "invalid_credentials")
	}
	err := try(pw("mallory-target"))
	wantProblem(t, err, problem.KindRateLimited, "account_locked")
	if p, _ := problem.As(err); p.RetryAfter < 1 {
		t.Fatalf("no Retry-After on a lockout: %+v", p)
	}

	t.Run("the lockout grows but is bounded", func(t *testing.T) {
		var last time.Duration
		for i := range 30 {
			e.clock.advance(16 * time.Minute)
			err := try("still-wrong-password")
			wantProblem(t, err, problem.KindUnauthenticated, "invalid_credentials")
			u, _ := e.svc.resolveUser("mallory-target")
			last = u.LockedUntil.Sub(e.clock.now())
			if last > 15*time.Minute {
				t.Fatalf("after %d more failures the lockout is %s, over the 15m cap", i+1, last)
			}
		}
		if last != 15*time.Minute {
			t.Fatalf("lockout after many failures = %s, want the 15m cap", last)
		}
	})

	t.Run("an admin unlocks at once", func(t *testing.T) {
		if _, err := e.svc.Unlock(ctx, e.admin, "mallory-target"); err != nil {
			t.Fatal(err)
		}
		if err := try(pw("mallory-target")); err != nil {
			t.Fatalf("login after unlock: %v", err)
		}
	})

	t.Run("an unknown user is answered like a wrong password", func(t *testing.T) {
		_, err := e.svc.Login(ctx, LoginRequest{Username: "nobody-here", Password: "whatever-it-is-123"})
		wantProblem(t, err, problem.KindUnauthenticated, "invalid_credentials")
	})
}

func TestDisabledUserCannotLogInOrRefresh(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.createUser(t, "carol", Binding{Role: "operator"})
	tok := e.login(t, "carol", pw("carol"))
	disabled := true
	if _, err := e.svc.UpdateUser(ctx, e.admin, "carol", UpdateUser{Disabled: &disabled}); err != nil {
		t.Fatal(err)
	}
	_, err := e.svc.Login(ctx, LoginRequest{Username: "carol", Password: pw("carol")})
	wantProblem(t, err, problem.KindUnauthenticated, "account_disabled")
	_, err = e.svc.Refresh(ctx, tok.RefreshToken, "", "")
	wantProblem(t, err, problem.KindUnauthenticated, "invalid_refresh_token")
	_, err = e.svc.Authenticate(ctx, tok.AccessToken)
	wantProblem(t, err, problem.KindUnauthenticated, "session_ended")
}

func TestPasswordPolicyErrorsNameTheRule(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name, username, password, code string
	}{
		{"too short", "dave", "Short-1", "password_min_length"},
		{"a common password", "dave", "password1234", "password_common_password"},
		{"the username itself", "dave-the-operator", "dave-the-operator", "password_equals_username"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := e.svc.CreateUser(context.Background(), e.admin, CreateUser{Username: tt.username, Password: tt.password, Roles: []Binding{{Role: "viewer"}}})
			p, ok := problem.As(err)
			if !ok || p.Code != tt.code || p.Field != "password" {
				t.Fatalf("err = %#v, want code %s on field password", p, tt.code)
			}
		})
	}
}

func TestUserValidationReportsEveryField(t *testing.T) {
	e := newEnv(t)
	_, _, err := e.svc.CreateUser(context.Background(), e.admin, CreateUser{Username: "X", Email: "not an email", Roles: []Binding{{Role: "wizard"}}})
	p, ok := problem.As(err)
	if !ok || p.Kind != problem.KindInvalid {
		t.Fatalf("err = %v", err)
	}
	fields := map[string]bool{}
	for _, d := range p.Details {
		fields[d.Field] = true
	}
	for _, f := range []string{"username", "email", "roles[0].role"} {
		if !fields[f] {
			t.Errorf("no problem reported for %s (got %v)", f, fields)
		}
	}
	page, _ := e.svc.ListUsers(context.Background(), UserFilter{Limit: 10})
	if len(page.Items) != 1 {
		t.Fatalf("a rejected create wrote a user: %d users", len(page.Items))
	}
}

func TestAPITokens(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.createUser(t, "ci-owner", Binding{Role: "operator"})
	owner := e.principal(t, e.login(t, "ci-owner", pw("ci-owner")))

	_, _, err := e.svc.CreateToken(ctx, owner, CreateToken{Name: "too much", Roles: []Binding{{Role: "admin"}}})
	wantProblem(t, err, problem.KindForbidden, "exceeds_own_roles")
	view, secret, err := e.svc.CreateToken(ctx, owner, CreateToken{Name: "deploys", Roles: []Binding{{Role: "viewer"}}, ExpiresIn: "24h"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := e.svc.Authenticate(ctx, secret)
	if err != nil {
		t.Fatalf("Authenticate(token): %v", err)
	}
	if !p.Can(PermJobsRead) || p.Can(PermJobsRun) || p.TokenID != view.ID {
		t.Fatalf("token principal = %+v, %v", p, p.Permissions())
	}
	list, _ := e.svc.ListTokens(ctx, owner, false)
	if len(list) != 1 || list[0].ID != view.ID {
		t.Fatalf("ListTokens = %+v", list)
	}
	if b, _ := json.Marshal(list); strings.Contains(string(b), "hash") || strings.Contains(string(b), secret[len(secret)-20:]) {
		t.Fatalf("token listing leaks the secret or its hash: %s", b)
	}

	t.Run("a token with a wrong secret fails", func(t *testing.T) {
		_, err := e.svc.Authenticate(ctx, secret[:len(secret)-2]+"xx")
		wantProblem(t, err, problem.KindUnauthenticated, "invalid_token")
	})
	t.Run("a token stops at expiry", func(t *testing.T) {
		e.clock.advance(25 * time.Hour)
		defer e.clock.advance(-25 * time.Hour)
		_, err := e.svc.Authenticate(ctx, secret)
		wantProblem(t, err, problem.KindUnauthenticated, "invalid_token")
	})
	t.Run("a token loses roles its owner loses", func(t *testing.T) {
		roles := []Binding{}
		if _, err := e.svc.UpdateUser(ctx, e.admin, "ci-owner", UpdateUser{Roles: &roles}); err != nil {
			t.Fatal(err)
		}
		p, err := e.svc.Authenticate(ctx, secret)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Permissions()) != 0 {
			t.Fatalf("token kept %v after its owner lost operator", p.Permissions())
		}
	})
	t.Run("a revoked token fails", func(t *testing.T) {
		if _, err := e.svc.RevokeToken(ctx, e.admin, view.ID); err != nil {
			t.Fatal(err)
		}
		_, err := e.svc.Authenticate(ctx, secret)
		wantProblem(t, err, problem.KindUnauthenticated, "invalid_token")
	})
}

func TestSessionsListAndRevoke(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a := e.login(t, "admin", adminPassword)
	b := e.login(t, "admin", adminPassword)
	pa := e.principal(t, a)
	list, err := e.svc.ListSessions(ctx, pa, "", false)
	if err != nil || len(list) != 3 { // newEnv's login, a and b
		t.Fatalf("ListSessions = %d, %v", len(list), err)
	}
	if err := e.svc.RevokeSession(ctx, pa, b.SessionID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Authenticate(ctx, b.AccessToken); err == nil {
		t.Fatal("a revoked session's access token still works")
	}
	revoked, err := e.svc.RevokeOtherSessions(ctx, pa)
	if err != nil || len(revoked) != 1 {
		t.Fatalf("RevokeOtherSessions = %v, %v", revoked, err)
	}
	e.principal(t, a)

	t.Run("another user's session is invisible to a non-admin", func(t *testing.T) {
		e.createUser(t, "erin", Binding{Role: "viewer"})
		erin := e.principal(t, e.login(t, "erin", pw("erin")))
		err := e.svc.RevokeSession(ctx, erin, a.SessionID)
		wantProblem(t, err, problem.KindNotFound, "")
		_, err = e.svc.ListSessions(ctx, erin, "admin", false)
		wantProblem(t, err, problem.KindForbidden, "")
	})
}

func TestTOTP(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.createUser(t, "frank", Binding{Role: "viewer"})
	frank := e.principal(t, e.login(t, "frank", pw("frank")))
	enr, err := e.svc.BeginTOTP(ctx, frank, pw("frank"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(enr.URI, "otpauth://totp/OpsConductor:frank?") {
		t.Fatalf("URI = %s", enr.URI)
	}
	code := func() string {
		c, err := totp.GenerateCode(enr.Secret, e.clock.now())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	codes, err := e.svc.ConfirmTOTP(ctx, frank, code())
	if err != nil || len(codes) != recoveryCodeCount {
		t.Fatalf("ConfirmTOTP = %v, %v", codes, err)
	}
	login := func(c string) error {
		_, err := e.svc.Login(ctx, LoginRequest{Username: "frank", Password: pw("frank"), TOTP: c})
		return err
	}
	wantProblem(t, login(""), problem.KindUnauthenticated, "totp_required")
	wantProblem(t, login("000000"), problem.KindUnauthenticated, "invalid_totp")
	e.clock.advance(30 * time.Second)
	c := code()
	if err := login(c); err != nil {
		t.Fatalf("login with a fresh code: %v", err)
	}
	wantProblem(t, login(c), problem.KindUnauthenticated, "totp_reused")
	if err := login(strings.ToUpper(codes[0])); err != nil {
		t.Fatalf("login with a recovery code: %v", err)
	}
	wantProblem(t, login(codes[0]), problem.KindUnauthenticated, "invalid_totp")
}

func TestRBAC(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	t.Run("a user admin cannot grant admin", func(t *testing.T) {
		if _, err := e.svc.PutRole(ctx, e.admin, Role{Name: "user-manager", Permissions: []Permission{PermUsersRead, PermUsersAdmin}}, true); err != nil {
			t.Fatal(err)
		}
		e.createUser(t, "grace", Binding{Role: "user-manager"})
		grace := e.principal(t, e.login(t, "grace", pw("grace")))
		roles := []Binding{{Role: "admin"}}
		_, err := e.svc.UpdateUser(ctx, grace, "grace", UpdateUser{Roles: &roles})
		wantProblem(t, err, problem.KindForbidden, "exceeds_own_roles")
	})
	t.Run("the last admin cannot be disabled, demoted or deleted", func(t *testing.T) {
		none := []Binding{{Role: "viewer"}}
		_, err := e.svc.UpdateUser(ctx, e.admin, "admin", UpdateUser{Roles: &none})
		wantProblem(t, err, problem.KindConflict, "last_admin")
		e.createUser(t, "heidi", Binding{Role: "admin"})
		heidi := e.principal(t, e.login(t, "heidi", pw("heidi")))
		if err := e.svc.DeleteUser(ctx, heidi, "admin"); err != nil {
			t.Fatalf("deleting one of two admins: %v", err)
		}
		yes := true
		_, err = e.svc.UpdateUser(ctx, heidi, "heidi", UpdateUser{Disabled: &yes})
		wantProblem(t, err, problem.KindConflict, "cannot_disable_self")
	})
	t.Run("a role in use cannot be deleted", func(t *testing.T) {
		err := e.svc.DeleteRole(ctx, e.admin, "user-manager")
		wantProblem(t, err, problem.KindConflict, "role_in_use")
	})
	t.Run("scoped bindings report their scope", func(t *testing.T) {
		e.createUser(t, "ivan", Binding{Role: "operator", Scope: &Scope{Tags: map[string]string{"env": "staging"}}}, Binding{Role: "viewer"})
		ivan := e.principal(t, e.login(t, "ivan", pw("ivan")))
		scopes, ok := ivan.Scopes(PermJobsRun)
		if !ok || len(scopes) != 1 || scopes[0].Tags["env"] != "staging" {
			t.Fatalf("jobs:run scopes = %v, %v", scopes, ok)
		}
		if scopes, ok := ivan.Scopes(PermJobsRead); !ok || scopes != nil {
			t.Fatalf("jobs:read should be unscoped through viewer: %v, %v", scopes, ok)
		}
		if ivan.Can(PermUsersAdmin) {
			t.Fatal("operator grants users:admin")
		}
	})
}

func FuzzAuthenticate(f *testing.F) {
	e := newEnv(f)
	tok := e.login(f, "admin", adminPassword)
	f.Add(tok.AccessToken)
	f.Add(tok.RefreshToken)
	f.Add("oct_0123456789abcdef01234567_secret")
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("")
	f.Fuzz(func(t *testing.T, bearer string) {
		p, err := e.svc.Authenticate(context.Background(), bearer)
		if err == nil && bearer != tok.AccessToken {
			t.Fatalf("%q authenticated as %+v", bearer, p)
		}
		if err != nil && !problem.Is(err, problem.KindUnauthenticated) {
			t.Fatalf("%q: %v is not a 401", bearer, err)
		}
	})
}
