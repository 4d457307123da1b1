package identity

import (
	"context"
	"crypto/subtle"
	"encoding/base32"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/opsconductor/opsconductor/controller/problem"
)

// --- roles --------------------------------------------------------------

// ListRoles returns the built-in roles then the custom ones, by name.
func (s *Service) ListRoles(context.Context) ([]Role, error) {
	out := BuiltinRoles()
	it, err := s.txn().Get(tableRoles, "id")
	if err != nil {
		return nil, fmt.Errorf("list roles: %w", err)
	}
	for obj := it.Next(); obj != nil; obj = it.Next() {
		out = append(out, obj.(*customRole).role())
	}
	return out, nil
}

// GetRole returns one role.
func (s *Service) GetRole(_ context.Context, name string) (Role, error) {
	r, ok := roleLookup(s.txn())(name)
	if !ok {
		return Role{}, problem.NotFound("role", name)
	}
	return r, nil
}

func validateRole(r Role) error {
	var errs problem.List
	if !namePattern.MatchString(r.Name) {
		errs.Add("name", "must be 2 to 63 characters of a-z, 0-9, '_', '.' or '-', starting with a letter (got %q)", truncate(r.Name, 80))
	}
	validateText(&errs, "description", r.Description, 512)
	if len(r.Permissions) == 0 {
		errs.Add("permissions", "a role needs at least one permission")
	}
	seen := map[Permission]bool{}
	for i, p := range r.Permissions {
		if !knownPermission(p) {
			errs.Add(fmt.Sprintf("permissions[%d]", i), "unknown permission %q", p)
		}
		if seen[p] {
			errs.Add(fmt.Sprintf("permissions[%d]", i), "permission %q is listed twice", p)
		}
		seen[p] = true
	}
	return errs.Err()
}

// PutRole creates (create true) or replaces a custom role. The caller
// must hold every permission it puts in the role.
func (s *Service) PutRole(ctx context.Context, actor *Principal, r Role, create bool) (Role, error) {
	r.Builtin = false
	if err := validateRole(r); err != nil {
		return Role{}, err
	}
	for i, p := range r.Permissions {
		if scopes, ok := actor.Scopes(p); !ok || scopes != nil {
			return Role{}, &problem.Error{Kind: problem.KindForbidden, Code: "exceeds_own_roles", Field: fmt.Sprintf("permissions[%d]", i),
				Message: fmt.Sprintf("you cannot put %q in a role: you do not hold it unscoped", p)}
		}
	}
	slices.Sort(r.Permissions)
	var out Role
	err := s.apply(ctx, cmdRolePut, rolePutPayload{Role: r, Create: create}, &out)
	s.auditChange(ctx, actor, "role.put", r.Name, err)
	return out, err
}

// DeleteRole removes a custom role that nothing is bound to.
func (s *Service) DeleteRole(ctx context.Context, actor *Principal, name string) error {
	err := s.apply(ctx, cmdRoleDelete, namePayload{Name: name}, nil)
	s.auditChange(ctx, actor, "role.delete", name, err)
	return err
}

// --- sessions -----------------------------------------------------------

// ListSessions lists a user's sessions, newest first; only active ones
// unless all is set.
func (s *Service) ListSessions(_ context.Context, p *Principal, userRef string, all bool) ([]SessionView, error) {
	userID, username := p.UserID, p.Username
	if userRef != "" {
		u, err := s.resolveUser(userRef)
		if err != nil {
			return nil, err
		}
		if u.ID != p.UserID && !p.Can(PermUsersAdmin) {
			return nil, problem.New(problem.KindForbidden, "forbidden", "listing another user's sessions needs %s", PermUsersAdmin)
		}
		userID, username = u.ID, u.Username
	}
	it, err := s.txn().Get(tableSessions, "user", userID)
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	now := s.now()
	out := []SessionView{}
	for obj := it.Next(); obj != nil; obj = it.Next() {
		ss := obj.(*Session)
		if !all && !ss.Active(now) {
			continue
		}
		out = append(out, sessionView(ss, username, p.SessionID, now))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.After(out[j].CreatedAt) })
	return out, nil
}

func sessionView(ss *Session, username, current string, now time.Time) SessionView {
	v := SessionView{ID: ss.ID, UserID: ss.UserID, Username: username, CreatedAt: ss.CreatedAt, LastUsedAt: ss.LastUsedAt,
		ExpiresAt: ss.ExpiresAt(), SourceIP: ss.SourceIP, UserAgent: ss.UserAgent, Current: ss.ID == current, Active: ss.Active(now),
		RevokedReason: ss.RevokedReason}
	if ss.Revoked {
		t := ss.RevokedAt
		v.RevokedAt = &t
	}
	return v
}

// RevokeSession ends one session: the caller's own, or anyone's for an
// admin. Another user's session is reported as not found to a non-admin.
func (s *Service) RevokeSession(ctx context.Context, p *Principal, id string) error {
	ss, err := getSession(s.txn(), id)
	if err != nil {
		return err
	}
	if ss.UserID != p.UserID && !p.Can(PermUsersAdmin) {
		return problem.NotFound("session", id)
	}
	err = s.apply(ctx, cmdSessionRevoke, revokePayload{IDs: []string{id}, Reason: "revoked"}, nil)
	s.auditChange(ctx, p, "session.revoke", id, err)
	return err
}

// RevokeOtherSessions ends every session of the caller but the current one.
func (s *Service) RevokeOtherSessions(ctx context.Context, p *Principal) ([]string, error) {
	var res revokeResult
	err := s.apply(ctx, cmdSessionRevoke, revokePayload{UserID: p.UserID, Except: p.SessionID, Reason: "revoked"}, &res)
	s.auditChange(ctx, p, "session.revoke_others", p.Username, err)
	return res.Revoked, err
}

// RevokeUserSessions ends every session of a user (admin).
func (s *Service) RevokeUserSessions(ctx context.Context, actor *Principal, ref string) ([]string, error) {
	u, err := s.resolveUser(ref)
	if err != nil {
		return nil, err
	}
	var res revokeResult
	err = s.apply(ctx, cmdSessionRevoke, revokePayload{UserID: u.ID, Reason: "revoked"}, &res)
	s.auditChange(ctx, actor, "session.revoke_all", u.Username, err)
	return res.Revoked, err
}

// --- API tokens ---------------------------------------------------------

// CreateToken is a request for an API token.
type CreateToken struct {
	Name        string    `json:"name"`
	Description string    `json:"description"`
	Roles       []Binding `json:"roles"`
	// ExpiresIn is a Go duration ("720h"); empty means never.
	ExpiresIn string `json:"expires_in"`
}

// maxTokenLifetime caps API tokens; a token that never expires must be
// asked for explicitly by leaving expires_in empty.
const maxTokenLifetime = 5 * 365 * 24 * time.Hour

// CreateToken makes an API token for the caller and returns its secret,
// which is shown this once.
func (s *Service) CreateToken(ctx context.Context, p *Principal, req CreateToken) (TokenView, string, error) {
	var errs problem.List
	if strings.TrimSpace(req.Name) == "" {
		errs.Add("name", "is required")
	}
	validateText(&errs, "name", req.Name, 128)
	validateText(&errs, "description", req.Description, 512)
	if len(req.Roles) == 0 {
		errs.Add("roles", "a token needs at least one role")
	}
	validateBindings("roles", req.Roles, roleLookup(s.txn()), &errs)
	var expires time.Time
	if req.ExpiresIn != "" {
		d, err := time.ParseDuration(req.ExpiresIn)
		if err != nil || d < time.Minute || d > maxTokenLifetime {
			errs.Add("expires_in", "must be a duration from 1m to %s such as \"720h\" (got %q)", maxTokenLifetime, truncate(req.ExpiresIn, 40))
		} else {
			expires = s.now().Add(d).UTC()
		}
	}
	if err := errs.Err(); err != nil {
		return TokenView{}, "", err
	}
	if p.TokenID != "" {
		return TokenView{}, "", problem.New(problem.KindForbidden, "token_cannot_create_tokens", "an API token cannot create API tokens; log in as a user")
	}
	if err := s.requireCovers(p, "roles", req.Roles); err != nil {
		return TokenView{}, "", err
	}
	id, err := newID("")
	if err != nil {
		return TokenView{}, "", err
	}
	secret, err := randomSecret(secretBytes)
	if err != nil {
		return TokenView{}, "", err
	}
	t := APIToken{ID: "tok_" + id, Name: req.Name, Description: req.Description, OwnerID: p.UserID, Roles: req.Roles,
		SecretHash: hashSecret(secret), ExpiresAt: expires}
	var view TokenView
	err = s.apply(ctx, cmdTokenCreate, tokenCreatePayload{Token: t}, &view)
	s.auditChange(ctx, p, "token.create", t.ID, err)
	if err != nil {
		return TokenView{}, "", err
	}
	return view, apiTokenPrefix + id + "_" + secret, nil
}

// ListTokens lists the caller's tokens, or everyone's for an admin who
// asks for all.
func (s *Service) ListTokens(_ context.Context, p *Principal, all bool) ([]TokenView, error) {
	if all && !p.Can(PermUsersAdmin) {
		return nil, problem.New(problem.KindForbidden, "forbidden", "listing every user's tokens needs %s", PermUsersAdmin)
	}
	txn := s.txn()
	var err error
	var it interface{ Next() any }
	if all {
		it, err = txn.Get(tableTokens, "id")
	} else {
		it, err = txn.Get(tableTokens, "owner", p.UserID)
	}
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	now := s.now()
	out := []TokenView{}
	for obj := it.Next(); obj != nil; obj = it.Next() {
		out = append(out, obj.(*APIToken).view(now))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.After(out[j].CreatedAt) })
	return out, nil
}

// RevokeToken revokes one of the caller's tokens, or any for an admin.
func (s *Service) RevokeToken(ctx context.Context, p *Principal, id string) (TokenView, error) {
	raw, err := s.txn().First(tableTokens, "id", id)
	if err != nil {
		return TokenView{}, fmt.Errorf("read token: %w", err)
	}
	if raw == nil || (raw.(*APIToken).OwnerID != p.UserID && !p.Can(PermUsersAdmin)) {
		return TokenView{}, problem.NotFound("token", id)
	}
	var view TokenView
	err = s.apply(ctx, cmdTokenRevoke, idPayload{ID: id}, &view)
	s.auditChange(ctx, p, "token.revoke", id, err)
	return view, err
}

// --- TOTP ---------------------------------------------------------------

const (
	totpPeriod        = 30
	totpIssuer        = "OpsConductor"
	recoveryCodeCount = 10
)

var totpOpts = totp.ValidateOpts{Period: totpPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// TOTPEnrolment is what a user scans: the otpauth:// URI (render it as a
// QR code) and the same secret for typing in by hand.
type TOTPEnrolment struct {
	Secret string `json:"secret"`
	URI    string `json:"uri"`
}

// BeginTOTP starts enrolment; it needs the current password.
func (s *Service) BeginTOTP(ctx context.Context, p *Principal, pw string) (TOTPEnrolment, error) {
	u, err := s.checkOwnPassword(ctx, p, pw)
	if err != nil {
		return TOTPEnrolment{}, err
	}
	key, err := totp.Generate(totp.GenerateOpts{Issuer: totpIssuer, AccountName: u.Username, Period: totpPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		return TOTPEnrolment{}, fmt.Errorf("generate TOTP key: %w", err)
	}
	sealed, err := s.keyring.Seal([]byte(key.Secret()), totpAAD(u.ID))
	if err != nil {
		return TOTPEnrolment{}, err
	}
	if err := s.apply(ctx, cmdUserTOTP, totpPayload{ID: u.ID, Op: "enroll", TOTP: TOTP{Pending: sealed}}, nil); err != nil {
		return TOTPEnrolment{}, err
	}
	return TOTPEnrolment{Secret: key.Secret(), URI: key.URL()}, nil
}

// ConfirmTOTP proves the enrolment with a current code and turns the
// second factor on. It returns the recovery codes, shown this once.
func (s *Service) ConfirmTOTP(ctx context.Context, p *Principal, code string) ([]string, error) {
	u, err := getUser(s.txn(), p.UserID)
	if err != nil {
		return nil, err
	}
	if u.TOTP.Pending.IsZero() {
		return nil, problem.New(problem.KindConflict, "totp_not_enrolled", "start enrolment first (POST /api/v1/me/totp)")
	}
	secret, err := s.keyring.Open(u.TOTP.Pending, totpAAD(u.ID))
	if err != nil {
		return nil, fmt.Errorf("open TOTP seed: %w", err)
	}
	step, ok := s.matchCode(string(secret), code)
	if !ok {
		return nil, &problem.Error{Kind: problem.KindInvalid, Code: "invalid_totp", Field: "code", Message: "the code does not match; check the device's clock"}
	}
	codes := make([]string, recoveryCodeCount)
	hashes := make([]string, recoveryCodeCount)
	for i := range codes {
		raw, err := randomSecret(10)
		if err != nil {
			return nil, err
		}
		c := strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString([]byte(raw)))[:10]
		codes[i] = c[:5] + "-" + c[5:]
		hashes[i] = hashSecret(normalizeRecovery(codes[i]))
	}
	err = s.apply(ctx, cmdUserTOTP, totpPayload{ID: u.ID, Op: "activate", RecoveryHashes: hashes, Step: step}, nil)
	s.auditChange(ctx, p, "user.totp_enable", u.Username, err)
	if err != nil {
		return nil, err
	}
	return codes, nil
}

// DisableTOTP turns the caller's second factor off; it needs the password.
func (s *Service) DisableTOTP(ctx context.Context, p *Principal, pw string) error {
	u, err := s.checkOwnPassword(ctx, p, pw)
	if err != nil {
		return err
	}
	err = s.apply(ctx, cmdUserTOTP, totpPayload{ID: u.ID, Op: "disable"}, nil)
	s.auditChange(ctx, p, "user.totp_disable", u.Username, err)
	return err
}

func (s *Service) checkOwnPassword(ctx context.Context, p *Principal, pw string) (*User, error) {
	u, err := getUser(s.txn(), p.UserID)
	if err != nil {
		return nil, err
	}
	ok, _, err := s.hasher.Verify(ctx, pw, u.PasswordHash)
	if err != nil {
		return nil, fmt.Errorf("verify password: %w", err)
	}
	if !ok {
		return nil, &problem.Error{Kind: problem.KindForbidden, Code: "wrong_password", Field: "password", Message: "the password is wrong"}
	}
	return u, nil
}

// checkSecondFactor accepts a current TOTP code (returning its time step,
// which the FSM refuses to accept twice) or an unused recovery code
// (returning its hash, which the FSM consumes).
func (s *Service) checkSecondFactor(u *User, code string) (step uint64, recoveryHash string, err error) {
	bad := problem.New(problem.KindUnauthenticated, "invalid_totp", "invalid two-factor code")
	code = strings.TrimSpace(code)
	if len(code) == 6 {
		secret, err := s.keyring.Open(u.TOTP.Secret, totpAAD(u.ID))
		if err != nil {
			return 0, "", fmt.Errorf("open TOTP seed: %w", err)
		}
		if step, ok := s.matchCode(string(secret), code); ok {
			return step, "", nil
		}
		return 0, "", bad
	}
	h := hashSecret(normalizeRecovery(code))
	for _, rh := range u.TOTP.RecoveryHashes {
		if subtle.ConstantTimeCompare([]byte(rh), []byte(h)) == 1 {
			return 0, h, nil
		}
	}
	return 0, "", bad
}

// matchCode checks code against the previous, current and next 30-second
// steps (RFC 6238's recommended tolerance) and returns the matching step.
func (s *Service) matchCode(secret, code string) (uint64, bool) {
	now := s.now()
	for _, skew := range []int{0, -1, 1} {
		t := now.Add(time.Duration(skew*totpPeriod) * time.Second)
		want, err := totp.GenerateCodeCustom(secret, t, totpOpts)
		if err != nil {
			return 0, false
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			return uint64(t.Unix()) / totpPeriod, true
		}
	}
	return 0, false
}

func normalizeRecovery(code string) string {
	return strings.ToLower(strings.ReplaceAll(strings.TrimSpace(code), "-", ""))
}
