// Package identity owns users, roles and permissions, password hashing,
// access, refresh and API tokens, sessions and the optional TOTP second
// factor. Its tables live in the replicated state; every change goes
// through a command applied by the FSM, and every secret it stores is a
// hash (passwords, refresh and API tokens, recovery codes) or sealed by the
// keyring (signing keys, TOTP seeds).
//
// It must never log, return or store a password, a token or a secret in
// the clear, and never let a principal hand out more than it holds.
package identity

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hashicorp/go-memdb"

	"github.com/opsconductor/opsconductor/controller/identity/password"
	"github.com/opsconductor/opsconductor/controller/keyring"
	"github.com/opsconductor/opsconductor/controller/problem"
	"github.com/opsconductor/opsconductor/controller/state"
)

// Config tunes tokens, sessions and lockout. Zero fields take defaults.
type Config struct {
	Issuer      string
	Audience    string
	AccessTTL   time.Duration // access-token lifetime (15 min)
	RefreshIdle time.Duration // a session unused this long ends (7 days)
	RefreshMax  time.Duration // a session ends this long after login (30 days)
	KeyRotation time.Duration // signing-key age that triggers rotation (24 h)
	Leeway      time.Duration // clock skew allowed on exp and iat (30 s)
	Lockout     LockoutPolicy
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if c.Issuer == "" {
		c.Issuer = "opsconductor"
	}
	if c.Audience == "" {
		c.Audience = "opsconductor-api"
	}
	def(&c.AccessTTL, 15*time.Minute)
	def(&c.RefreshIdle, 7*24*time.Hour)
	def(&c.RefreshMax, 30*24*time.Hour)
	def(&c.KeyRotation, 24*time.Hour)
	def(&c.Leeway, 30*time.Second)
	if c.Lockout.Threshold <= 0 {
		c.Lockout.Threshold = 5
	}
	def(&c.Lockout.Base, time.Second)
	def(&c.Lockout.Max, 15*time.Minute)
	return c
}

// Applier commits commands through the cluster (forwarding to the leader).
type Applier interface {
	Apply(ctx context.Context, cmds ...state.Command) ([]state.Result, error)
}

// AuditEvent is something an auditor must be able to find later: logins,
// failures, refresh-token reuse, every change to users, roles and tokens.
type AuditEvent struct {
	Action   string `json:"action"` // "auth.login", "user.create" …
	Actor    string `json:"actor"`  // username, or "" when anonymous
	Target   string `json:"target,omitempty"`
	SourceIP string `json:"source_ip,omitempty"`
	Outcome  string `json:"outcome"` // "success", "failure", "denied"
	Detail   string `json:"detail,omitempty"`
}

// Deps are the service's collaborators.
type Deps struct {
	Applier Applier
	Store   *state.Store
	Keyring keyring.Sealer
	Hasher  *password.Hasher
	Logger  *slog.Logger
	// Audit receives audit events; the communication domain's hash-chained
	// log plugs in here.
	Audit func(ctx context.Context, e AuditEvent)
	// Now is the clock for token lifetimes checked outside the FSM.
	Now func() time.Time
}

// Service is the identity domain.
type Service struct {
	cfg     Config
	applier Applier
	store   *state.Store
	keyring keyring.Sealer
	hasher  *password.Hasher
	log     *slog.Logger
	audit   func(ctx context.Context, e AuditEvent)
	now     func() time.Time
	verify  *verifier
	policy  password.Policy

	// signing caches decrypted private keys by kid; they are opened once.
	mu      sync.Mutex
	signing map[string]ed25519.PrivateKey
}

// New returns the identity service.
func New(cfg Config, deps Deps) (*Service, error) {
	if deps.Applier == nil || deps.Store == nil || deps.Keyring == nil || deps.Hasher == nil || deps.Logger == nil {
		return nil, errors.New("identity: Applier, Store, Keyring, Hasher and Logger are required")
	}
	s := &Service{
		cfg: cfg.withDefaults(), applier: deps.Applier, store: deps.Store, keyring: deps.Keyring, hasher: deps.Hasher,
		log: deps.Logger, audit: deps.Audit, now: deps.Now, policy: password.DefaultPolicy, signing: map[string]ed25519.PrivateKey{},
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.audit == nil {
		s.audit = func(ctx context.Context, e AuditEvent) {
			s.log.LogAttrs(ctx, slog.LevelInfo, "audit", slog.String("action", e.Action), slog.String("actor", e.Actor),
				slog.String("target", e.Target), slog.String("source_ip", e.SourceIP), slog.String("outcome", e.Outcome),
				slog.String("detail", e.Detail))
		}
	}
	s.verify = newVerifier(s.cfg.Issuer, s.cfg.Audience, s.cfg.Leeway, s.now, s.publicKey)
	return s, nil
}

// Config returns the effective configuration.
func (s *Service) Config() Config { return s.cfg }

// apply commits one command and decodes its result into out (may be nil).
func (s *Service) apply(ctx context.Context, typ string, payload, out any) error {
	return state.ApplyOne(ctx, s.applier, typ, payload, out)
}

func (s *Service) txn() *memdb.Txn { return s.store.ReadTxn() }

// --- validation ---------------------------------------------------------

var usernamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{2,63}$`)

func validateUsername(errs *problem.List, field, name string) {
	if !usernamePattern.MatchString(name) {
		errs.Add(field, "must be 3 to 64 characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit (got %q)", truncate(name, 80))
	}
}

func validateEmail(errs *problem.List, field, email string) {
	if email == "" {
		return
	}
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Address != email || len(email) > 254 {
		errs.Add(field, "must be a plain address such as ops@example.com (got %q)", truncate(email, 80))
	}
}

func validateText(errs *problem.List, field, v string, max int) {
	if !utf8.ValidString(v) || utf8.RuneCountInString(v) > max || strings.IndexFunc(v, unicode.IsControl) >= 0 {
		errs.Add(field, "must be at most %d characters of printable UTF-8", max)
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// checkPassword applies the password policy, naming the rule broken.
func (s *Service) checkPassword(field, username, pw string) error {
	if err := s.policy.Check(username, pw); err != nil {
		var pe *password.PolicyError
		if errors.As(err, &pe) {
			return &problem.Error{Kind: problem.KindInvalid, Code: "password_" + pe.Rule, Field: field, Message: pe.Message}
		}
		return problem.Invalid(field, "%v", err)
	}
	return nil
}

// --- lookups ------------------------------------------------------------

// resolveUser finds a user by ID ("usr_…") or username.
func (s *Service) resolveUser(ref string) (*User, error) {
	txn := s.txn()
	if strings.HasPrefix(ref, "usr_") {
		return getUser(txn, ref)
	}
	u, err := userByName(txn, ref)
	if err != nil {
		return nil, err
	}
	if u == nil {
		return nil, problem.NotFound("user", ref)
	}
	return u, nil
}

func (s *Service) publicKey(kid string) (ed25519.PublicKey, bool) {
	raw, err := s.txn().First(tableKeys, "id", kid)
	if err != nil || raw == nil {
		return nil, false
	}
	k := raw.(*SigningKey)
	if len(k.Public) != ed25519.PublicKeySize {
		return nil, false
	}
	return ed25519.PublicKey(k.Public), true
}

// activeKey returns the signing key that signs new tokens, opening it from
// the keyring the first time.
func (s *Service) activeKey() (string, ed25519.PrivateKey, error) {
	it, err := s.txn().Get(tableKeys, "id")
	if err != nil {
		return "", nil, fmt.Errorf("read signing keys: %w", err)
	}
	var active *SigningKey
	for obj := it.Next(); obj != nil; obj = it.Next() {
		if k := obj.(*SigningKey); k.RetiredAt.IsZero() && (active == nil || k.CreatedAt.After(active.CreatedAt)) {
			active = k
		}
	}
	if active == nil {
		return "", nil, problem.Unavailable("no_signing_key", "the cluster has no token signing key yet; retry in a moment")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if priv, ok := s.signing[active.KID]; ok {
		return active.KID, priv, nil
	}
	seed, err := s.keyring.Open(active.Private, signingKeyAAD(active.KID))
	if err != nil {
		return "", nil, fmt.Errorf("open signing key %s: %w", active.KID, err)
	}
	if len(seed) != ed25519.SeedSize {
		return "", nil, fmt.Errorf("signing key %s: seed is %d bytes", active.KID, len(seed))
	}
	priv := ed25519.NewKeyFromSeed(seed)
	s.signing[active.KID] = priv
	return active.KID, priv, nil
}

func signingKeyAAD(kid string) []byte { return []byte("identity/signing-key/" + kid) }
func totpAAD(userID string) []byte    { return []byte("identity/totp/" + userID) }

// --- principals ---------------------------------------------------------

// Principal is an authenticated caller: a user (through an access token)
// or an API token acting for its owner.
type Principal struct {
	UserID    string
	Username  string
	SessionID string // access tokens only
	TokenID   string // API tokens only
	Roles     []Binding
	// MustChangePassword confines the principal to changing it.
	MustChangePassword bool
	grants             grantSet
}

// Name is how logs and audit entries name the principal.
func (p *Principal) Name() string {
	if p.TokenID != "" {
		return p.Username + "/" + p.TokenID
	}
	return p.Username
}

// Can reports whether the principal holds perm in any scope.
func (p *Principal) Can(perm Permission) bool {
	_, ok := p.grants.scopesFor(perm)
	return ok
}

// Scopes returns where the principal holds perm: ok false when nowhere,
// scopes nil when everywhere. Domains that filter by inventory use it.
func (p *Principal) Scopes(perm Permission) (scopes []*Scope, ok bool) {
	return p.grants.scopesFor(perm)
}

// Permissions lists what the principal holds, sorted.
func (p *Principal) Permissions() []Permission {
	out := []Permission{}
	for i, perm := range Permissions {
		if p.grants.held&(1<<i) != 0 {
			out = append(out, perm)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Authenticate turns a bearer credential (access JWT or API token) into a
// principal. It reads only the local store, so it is fast and works on
// every node. A revoked session, a disabled or deleted user, or a revoked
// or expired API token fails at once: access tokens are checked against
// their session on every request instead of living out their 15 minutes.
func (s *Service) Authenticate(ctx context.Context, bearer string) (*Principal, error) {
	if strings.HasPrefix(bearer, apiTokenPrefix) {
		return s.authenticateAPIToken(ctx, bearer)
	}
	claims, err := s.verify.verify(bearer)
	if err != nil {
		s.log.Debug("access token rejected", "reason", err.Error())
		return nil, errBadToken
	}
	txn := s.txn()
	raw, err := txn.First(tableSessions, "id", claims.SessionID)
	if err != nil {
		return nil, fmt.Errorf("read session: %w", err)
	}
	now := s.now()
	if raw == nil || !raw.(*Session).Active(now) || raw.(*Session).UserID != claims.Subject {
		return nil, problem.New(problem.KindUnauthenticated, "session_ended", "the session has ended; log in again")
	}
	u, err := getUser(txn, claims.Subject)
	if err != nil || u.Disabled {
		return nil, problem.New(problem.KindUnauthenticated, "session_ended", "the account is disabled or deleted")
	}
	// Roles come from the user as it is now, not from the token, so that a
	// role taken away stops working at once.
	return &Principal{
		UserID: u.ID, Username: u.Username, SessionID: claims.SessionID, Roles: u.Roles,
		MustChangePassword: u.MustChangePassword, grants: grants(u.Roles, roleLookup(txn)),
	}, nil
}

func (s *Service) authenticateAPIToken(_ context.Context, bearer string) (*Principal, error) {
	bad := problem.New(problem.KindUnauthenticated, "invalid_token", "the API token is invalid, revoked or expired")
	id, secret, ok := splitToken(bearer, apiTokenPrefix, '_')
	if !ok {
		return nil, bad
	}
	txn := s.txn()
	raw, err := txn.First(tableTokens, "id", "tok_"+id)
	if err != nil {
		return nil, fmt.Errorf("read token: %w", err)
	}
	if raw == nil {
		hashSecret(secret) // same work either way
		return nil, bad
	}
	t := raw.(*APIToken)
	if !equalHashes(hashSecret(secret), t.SecretHash) || t.Revoked || (!t.ExpiresAt.IsZero() && !s.now().Before(t.ExpiresAt)) {
		return nil, bad
	}
	owner, err := getUser(txn, t.OwnerID)
	if err != nil || owner.Disabled {
		return nil, bad
	}
	// A token keeps only the bindings its owner still covers.
	roles := roleLookup(txn)
	var eff []Binding
	for _, b := range t.Roles {
		if covers(owner.Roles, b, roles) {
			eff = append(eff, b)
		}
	}
	return &Principal{UserID: owner.ID, Username: owner.Username, TokenID: t.ID, Roles: eff, grants: grants(eff, roles)}, nil
}

// Acting returns the principal that work started by a person acts as
// later (a run, a scheduled run): the user as they are now, holding only
// those of roles (the bindings they had when they started it) that they
// still cover; nil roles means all they hold now (a schedule acts for its
// owner as the owner is). A disabled or deleted user acts as nobody.
func (s *Service) Acting(_ context.Context, userID string, roles []Binding) (*Principal, error) {
	txn := s.txn()
	u, err := getUser(txn, userID)
	if err != nil || u.Disabled {
		return nil, problem.New(problem.KindForbidden, "user_gone", "user %s is disabled or deleted: work started by them stops", userID)
	}
	lookup := roleLookup(txn)
	if roles == nil {
		return &Principal{UserID: u.ID, Username: u.Username, Roles: u.Roles, grants: grants(u.Roles, lookup)}, nil
	}
	var eff []Binding
	for _, b := range roles {
		if covers(u.Roles, b, lookup) {
			eff = append(eff, b)
		}
	}
	return &Principal{UserID: u.ID, Username: u.Username, Roles: eff, grants: grants(eff, lookup)}, nil
}

// --- login, refresh, logout ---------------------------------------------

// LoginRequest is a password login.
type LoginRequest struct {
	Username  string
	Password  string
	TOTP      string // a 6-digit code or a recovery code
	SourceIP  string
	UserAgent string
}

// Tokens is what a login or refresh hands out.
type Tokens struct {
	AccessToken        string    `json:"access_token"`
	RefreshToken       string    `json:"refresh_token,omitempty"`
	ExpiresIn          int       `json:"expires_in"`
	TokenType          string    `json:"token_type"`
	SessionID          string    `json:"session_id"`
	MustChangePassword bool      `json:"must_change_password,omitempty"`
	RefreshExpiresAt   time.Time `json:"refresh_expires_at"`
}

var errInvalidCredentials = problem.New(problem.KindUnauthenticated, "invalid_credentials", "invalid username or password")

// Login checks a password (and second factor) and opens a session. A
// failure costs the same argon2id work whether or not the user exists.
func (s *Service) Login(ctx context.Context, req LoginRequest) (*Tokens, error) {
	ev := AuditEvent{Action: "auth.login", Actor: truncate(req.Username, 64), SourceIP: req.SourceIP, Outcome: "failure"}
	defer func() { s.audit(ctx, ev) }()
	u, err := userByName(s.txn(), req.Username)
	if err != nil {
		return nil, err
	}
	if u == nil || len(req.Password) > 1024 {
		if _, err := s.hasher.VerifyDummy(ctx, req.Password); err != nil {
			return nil, fmt.Errorf("verify password: %w", err)
		}
		ev.Detail = "unknown user"
		return nil, errInvalidCredentials
	}
	if wait := u.LockedUntil.Sub(s.now()); wait > 0 {
		ev.Detail = "locked"
		return nil, problem.RateLimited("account_locked", wait, "too many failed logins: this account is locked for %s (an admin can unlock it)", wait.Round(time.Second))
	}
	ok, rehash, err := s.hasher.Verify(ctx, req.Password, u.PasswordHash)
	if err != nil {
		return nil, fmt.Errorf("verify password: %w", err)
	}
	if !ok {
		ev.Detail = "wrong password"
		return nil, s.loginFailed(ctx, u, errInvalidCredentials)
	}
	if u.Disabled {
		ev.Detail = "disabled"
		return nil, problem.New(problem.KindUnauthenticated, "account_disabled", "this account is disabled")
	}
	create := sessionCreatePayload{ExpectHash: u.PasswordHash}
	if u.TOTP.Enabled {
		if req.TOTP == "" {
			ev.Detail = "second factor required"
			return nil, problem.New(problem.KindUnauthenticated, "totp_required", "this account needs a two-factor code: send it as totp")
		}
		step, recovery, err := s.checkSecondFactor(u, req.TOTP)
		if err != nil {
			ev.Detail = "wrong second factor"
			return nil, s.loginFailed(ctx, u, err)
		}
		create.Step, create.RecoveryHash = step, recovery
	}
	if rehash {
		if h, err := s.hasher.Hash(ctx, req.Password); err == nil {
			create.Rehash = h
		}
	}
	tokens, err := s.openSession(ctx, u, create, req.SourceIP, req.UserAgent)
	if err != nil {
		return nil, err
	}
	ev.Outcome, ev.Target = "success", tokens.SessionID
	return tokens, nil
}

// loginFailed counts a failure against u (which may lock it) and returns
// the error for the client.
func (s *Service) loginFailed(ctx context.Context, u *User, cause error) error {
	var res loginFailedResult
	if err := s.apply(ctx, cmdLoginFailed, loginFailedPayload{ID: u.ID, Policy: s.cfg.Lockout}, &res); err != nil {
		s.log.Warn("record failed login", "user_id", u.ID, "error", err)
	}
	return cause
}

func (s *Service) openSession(ctx context.Context, u *User, p sessionCreatePayload, ip, ua string) (*Tokens, error) {
	id, err := newID("ses_")
	if err != nil {
		return nil, err
	}
	secret, err := randomSecret(secretBytes)
	if err != nil {
		return nil, err
	}
	p.Session = Session{ID: id, UserID: u.ID, IdleTimeout: s.cfg.RefreshIdle, MaxLifetime: s.cfg.RefreshMax,
		SourceIP: truncate(ip, 64), UserAgent: truncate(ua, 256), RefreshHash: hashSecret(secret)}
	var res sessionResult
	if err := s.apply(ctx, cmdSessionCreate, p, &res); err != nil {
		return nil, err
	}
	return s.issue(res.Session, res.User, refreshTokenPrefix+id+"."+secret)
}

// issue signs an access token for a session.
func (s *Service) issue(sess Session, u UserView, refresh string) (*Tokens, error) {
	kid, key, err := s.activeKey()
	if err != nil {
		return nil, err
	}
	jti, err := randomSecret(16)
	if err != nil {
		return nil, err
	}
	now := s.now()
	roles := make([]string, 0, len(u.Roles))
	for _, b := range u.Roles {
		roles = append(roles, b.Role)
	}
	access, err := signAccess(key, kid, accessClaims{
		RegisteredClaims: jwtClaims(s.cfg.Issuer, s.cfg.Audience, u.ID, jti, now, now.Add(s.cfg.AccessTTL)),
		SessionID:        sess.ID, Username: u.Username, Roles: roles, PwdChange: u.MustChangePassword,
	})
	if err != nil {
		return nil, err
	}
	return &Tokens{AccessToken: access, RefreshToken: refresh, ExpiresIn: int(s.cfg.AccessTTL / time.Second), TokenType: "Bearer",
		SessionID: sess.ID, MustChangePassword: u.MustChangePassword, RefreshExpiresAt: sess.ExpiresAt()}, nil
}

// Refresh rotates a refresh token. Presenting one that was already rotated
// revokes the whole session (its family) and is audited: either the
// client or an attacker holds a stolen copy, and we cannot tell which.
func (s *Service) Refresh(ctx context.Context, token, ip, ua string) (*Tokens, error) {
	bad := problem.New(problem.KindUnauthenticated, "invalid_refresh_token", "the refresh token is invalid, used or expired; log in again")
	id, secret, ok := splitToken(token, refreshTokenPrefix, '.')
	if !ok {
		return nil, bad
	}
	next, err := randomSecret(secretBytes)
	if err != nil {
		return nil, err
	}
	var res refreshResult
	if err := s.apply(ctx, cmdSessionRotate, refreshPayload{ID: id, Presented: hashSecret(secret), Next: hashSecret(next)}, &res); err != nil {
		return nil, err
	}
	switch res.Outcome {
	case refreshOK:
		return s.issue(res.Session, res.User, refreshTokenPrefix+id+"."+next)
	case refreshReused:
		actor := ""
		if u, err := getUser(s.txn(), res.Session.UserID); err == nil {
			actor = u.Username
		}
		s.log.Warn("refresh token reused: session revoked", "session_id", id, "user_id", res.Session.UserID, "source_ip", ip)
		s.audit(ctx, AuditEvent{Action: "auth.refresh_reuse", Actor: actor, Target: id, SourceIP: ip, Outcome: "denied",
			Detail: "an already-used refresh token was presented; the session and all its tokens are revoked"})
		return nil, problem.New(problem.KindUnauthenticated, "refresh_token_reused", "this refresh token was already used: the session is revoked; log in again")
	default:
		s.log.Debug("refresh rejected", "session_id", id, "reason", res.Reason)
		return nil, bad
	}
}

// Logout ends the caller's session: the one its access token names, or
// the one a refresh token names when there is no access token.
func (s *Service) Logout(ctx context.Context, p *Principal, refresh, ip string) error {
	id := ""
	switch {
	case p != nil && p.SessionID != "":
		id = p.SessionID
	case refresh != "":
		sid, secret, ok := splitToken(refresh, refreshTokenPrefix, '.')
		if !ok {
			return problem.New(problem.KindUnauthenticated, "invalid_refresh_token", "the refresh token is invalid")
		}
		sess, err := getSession(s.txn(), sid)
		if err != nil || !equalHashes(sess.RefreshHash, hashSecret(secret)) {
			return problem.New(problem.KindUnauthenticated, "invalid_refresh_token", "the refresh token is invalid")
		}
		id = sid
	default:
		return problem.New(problem.KindUnauthenticated, "not_logged_in", "send an access token or a refresh token to log out")
	}
	if err := s.apply(ctx, cmdSessionRevoke, revokePayload{IDs: []string{id}, Reason: "logout"}, nil); err != nil {
		return err
	}
	actor := ""
	if p != nil {
		actor = p.Username
	}
	s.audit(ctx, AuditEvent{Action: "auth.logout", Actor: actor, Target: id, SourceIP: ip, Outcome: "success"})
	return nil
}

// --- bootstrap, keys and maintenance -------------------------------------

// BootstrapResult says what Bootstrap did.
type BootstrapResult struct {
	Created bool     `json:"created"`
	User    UserView `json:"user"`
}

// Bootstrap creates the first admin with the given password unless the
// cluster already has one. generated marks a password the operator has
// not chosen, which must be changed at first login.
func (s *Service) Bootstrap(ctx context.Context, pw string, generated bool) (BootstrapResult, error) {
	if raw, err := s.txn().First(tableMeta, "id", "bootstrap"); err == nil && raw != nil && raw.(*metaRow).Done {
		return BootstrapResult{}, nil
	}
	if !generated {
		if err := s.checkPassword("bootstrap admin password", "admin", pw); err != nil {
			return BootstrapResult{}, err
		}
	}
	hash, err := s.hasher.Hash(ctx, pw)
	if err != nil {
		return BootstrapResult{}, err
	}
	id, err := newID("usr_")
	if err != nil {
		return BootstrapResult{}, err
	}
	u := User{ID: id, Username: "admin", DisplayName: "Administrator", Roles: []Binding{{Role: "admin"}}, PasswordHash: hash, MustChangePassword: generated}
	var res BootstrapResult
	err = s.apply(ctx, cmdBootstrap, bootstrapPayload{User: u}, &res)
	return res, err
}

// Bootstrapped reports whether the first admin exists.
func (s *Service) Bootstrapped() bool {
	raw, err := s.txn().First(tableMeta, "id", "bootstrap")
	return err == nil && raw != nil && raw.(*metaRow).Done
}

// Ready returns nil once logins can succeed: an admin exists and a signing
// key is active.
func (s *Service) Ready(context.Context) error {
	if !s.Bootstrapped() {
		return errors.New("the first admin has not been created yet")
	}
	if _, _, err := s.activeKey(); err != nil {
		return err
	}
	return nil
}

// RotateSigningKey makes a new signing key active now. Tokens signed by
// the old key stay valid until they expire.
func (s *Service) RotateSigningKey(ctx context.Context) (string, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", fmt.Errorf("generate signing key: %w", err)
	}
	kid, err := randomSecret(9)
	if err != nil {
		return "", err
	}
	sealed, err := s.keyring.Seal(priv.Seed(), signingKeyAAD(kid))
	if err != nil {
		return "", err
	}
	if err := s.apply(ctx, cmdKeyAdd, keyAddPayload{Key: SigningKey{KID: kid, Public: pub, Private: sealed}}, nil); err != nil {
		return "", err
	}
	s.log.Info("token signing key rotated", "kid", kid)
	return kid, nil
}

// SigningKeys lists the keys' public metadata, newest first.
func (s *Service) SigningKeys() ([]SigningKeyView, error) {
	it, err := s.txn().Get(tableKeys, "id")
	if err != nil {
		return nil, fmt.Errorf("read signing keys: %w", err)
	}
	out := []SigningKeyView{}
	for obj := it.Next(); obj != nil; obj = it.Next() {
		k := obj.(*SigningKey)
		v := SigningKeyView{KID: k.KID, CreatedAt: k.CreatedAt, Active: k.RetiredAt.IsZero()}
		if !k.RetiredAt.IsZero() {
			t := k.RetiredAt
			v.RetiredAt = &t
		}
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.After(out[j].CreatedAt) })
	return out, nil
}

// SigningKeyView is a signing key without its private half.
type SigningKeyView struct {
	KID       string     `json:"kid"`
	CreatedAt time.Time  `json:"created_at"`
	RetiredAt *time.Time `json:"retired_at,omitempty"`
	Active    bool       `json:"active"`
}

// Maintain does the leader's periodic work once: create the first signing
// key, rotate it when old, prune keys no token can still use and sessions
// long over.
func (s *Service) Maintain(ctx context.Context) error {
	keys, err := s.SigningKeys()
	if err != nil {
		return err
	}
	now := s.now()
	if len(keys) == 0 || !keys[0].Active || now.Sub(keys[0].CreatedAt) >= s.cfg.KeyRotation {
		if _, err := s.RotateSigningKey(ctx); err != nil {
			return err
		}
	}
	retain := s.cfg.AccessTTL + 2*s.cfg.Leeway
	for _, k := range keys {
		if k.RetiredAt != nil && now.Sub(*k.RetiredAt) > retain {
			if err := s.apply(ctx, cmdKeyPrune, keyPrunePayload{RetiredFor: retain}, nil); err != nil {
				return err
			}
			break
		}
	}
	return s.apply(ctx, cmdSessionPrune, prunePayload{KeepFor: 24 * time.Hour}, nil)
}

// sortedUsers returns every user sorted by username.
func (s *Service) sortedUsers(txn *memdb.Txn) ([]*User, error) {
	it, err := txn.Get(tableUsers, "username")
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	var out []*User
	for obj := it.Next(); obj != nil; obj = it.Next() {
		out = append(out, obj.(*User))
	}
	return out, nil
}

func containsFold(hay, needle string) bool {
	return strings.Contains(strings.ToLower(hay), strings.ToLower(needle))
}

func bindingNames(bs []Binding) []string {
	out := make([]string, 0, len(bs))
	for _, b := range bs {
		out = append(out, b.Role)
	}
	return slices.Compact(out)
}
