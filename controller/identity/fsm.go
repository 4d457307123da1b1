package identity

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/opsconductor/opsconductor/controller/communication/notify"
	"github.com/opsconductor/opsconductor/controller/communication/tmpl"
	"github.com/opsconductor/opsconductor/controller/problem"
	"github.com/opsconductor/opsconductor/controller/state"
)

// Tables owned by identity.
const (
	tableUsers    = "identity_users"
	tableRoles    = "identity_roles"
	tableSessions = "identity_sessions"
	tableTokens   = "identity_tokens"
	tableKeys     = "identity_keys"
	tableMeta     = "identity_meta"
)

// Command types. Appended, never renamed or reused.
const (
	cmdBootstrap     = "identity.bootstrap"
	cmdUserCreate    = "identity.user.create"
	cmdUserUpdate    = "identity.user.update"
	cmdUserDelete    = "identity.user.delete"
	cmdUserPassword  = "identity.user.password"
	cmdLoginFailed   = "identity.user.login_failed"
	cmdUserUnlock    = "identity.user.unlock"
	cmdUserTOTP      = "identity.user.totp"
	cmdSessionCreate = "identity.session.create"
	cmdSessionRotate = "identity.session.refresh"
	cmdSessionRevoke = "identity.session.revoke"
	cmdSessionPrune  = "identity.session.prune"
	cmdTokenCreate   = "identity.token.create"
	cmdTokenRevoke   = "identity.token.revoke"
	cmdRolePut       = "identity.role.put"
	cmdRoleDelete    = "identity.role.delete"
	cmdKeyAdd        = "identity.key.add"
	cmdKeyPrune      = "identity.key.prune"
)

// Domain returns identity's tables and commands for the state registry.
func Domain() state.Domain { return DomainWithEvents(nil) }

// DomainWithEvents is Domain that raises login.failures when a user's
// consecutive failed logins reach the lockout threshold.
func DomainWithEvents(emit notify.Emitter) state.Domain {
	id := func(field string) *memdb.IndexSchema {
		return &memdb.IndexSchema{Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: field}}
	}
	table := func(name string, newRow func() any, extra ...*memdb.IndexSchema) state.Table {
		idx := map[string]*memdb.IndexSchema{}
		for _, ix := range extra {
			idx[ix.Name] = ix
		}
		return state.Table{Schema: &memdb.TableSchema{Name: name, Indexes: idx}, New: newRow}
	}
	return state.Domain{
		Name: "identity",
		Tables: []state.Table{
			table(tableUsers, func() any { return &User{} }, id("ID"),
				&memdb.IndexSchema{Name: "username", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Username", Lowercase: true}}),
			table(tableRoles, func() any { return &customRole{} }, id("Name")),
			table(tableSessions, func() any { return &Session{} }, id("ID"),
				&memdb.IndexSchema{Name: "user", Indexer: &memdb.StringFieldIndex{Field: "UserID"}}),
			table(tableTokens, func() any { return &APIToken{} }, id("ID"),
				&memdb.IndexSchema{Name: "owner", Indexer: &memdb.StringFieldIndex{Field: "OwnerID"}}),
			table(tableKeys, func() any { return &SigningKey{} }, id("KID")),
			table(tableMeta, func() any { return &metaRow{} }, id("Key")),
		},
		Commands: map[string]state.Handler{
			cmdBootstrap:     state.V1(applyBootstrap),
			cmdUserCreate:    state.V1(applyUserCreate),
			cmdUserUpdate:    state.V1(applyUserUpdate),
			cmdUserDelete:    state.V1(applyUserDelete),
			cmdUserPassword:  state.V1(applyUserPassword),
			cmdLoginFailed:   state.V1(loginFailedWithEvents(emit)),
			cmdUserUnlock:    state.V1(applyUserUnlock),
			cmdUserTOTP:      state.V1(applyUserTOTP),
			cmdSessionCreate: state.V1(applySessionCreate),
			cmdSessionRotate: state.V1(applySessionRefresh),
			cmdSessionRevoke: state.V1(applySessionRevoke),
			cmdSessionPrune:  state.V1(applySessionPrune),
			cmdTokenCreate:   state.V1(applyTokenCreate),
			cmdTokenRevoke:   state.V1(applyTokenRevoke),
			cmdRolePut:       state.V1(applyRolePut),
			cmdRoleDelete:    state.V1(applyRoleDelete),
			cmdKeyAdd:        state.V1(applyKeyAdd),
			cmdKeyPrune:      state.V1(applyKeyPrune),
			cmdRewrap:        state.V1(applyRewrap),
		},
	}
}

// reader is any transaction the lookups below can read from.
type reader = state.Reader

func getUser(txn reader, id string) (*User, error) {
	return state.ByID[User](txn, tableUsers, "user", id)
}

func userByName(txn reader, name string) (*User, error) {
	raw, err := txn.First(tableUsers, "username", strings.ToLower(name))
	if err != nil {
		return nil, fmt.Errorf("read user: %w", err)
	}
	if raw == nil {
		return nil, nil
	}
	return raw.(*User), nil
}

func getSession(txn reader, id string) (*Session, error) {
	return state.ByID[Session](txn, tableSessions, "session", id)
}

// roleLookup resolves built-in roles first, then custom ones in txn.
func roleLookup(txn reader) func(string) (Role, bool) {
	return func(name string) (Role, bool) {
		if r, ok := builtinRole(name); ok {
			return r, true
		}
		raw, err := txn.First(tableRoles, "id", name)
		if err != nil || raw == nil {
			return Role{}, false
		}
		return raw.(*customRole).role(), true
	}
}

// isAdmin reports whether u holds the admin role unscoped and is enabled:
// the kind of user the cluster must never run out of.
func isAdmin(u *User) bool {
	if u.Disabled {
		return false
	}
	for _, b := range u.Roles {
		if b.Role == "admin" && b.Scope.empty() {
			return true
		}
	}
	return false
}

// keepsAnAdmin refuses a change that would leave no enabled, unscoped admin.
func keepsAnAdmin(txn *state.Txn, before, after *User) error {
	if before == nil || !isAdmin(before) || (after != nil && isAdmin(after)) {
		return nil
	}
	it, err := txn.Get(tableUsers, "id")
	if err != nil {
		return fmt.Errorf("list users: %w", err)
	}
	for obj := it.Next(); obj != nil; obj = it.Next() {
		if u := obj.(*User); u.ID != before.ID && isAdmin(u) {
			return nil
		}
	}
	return problem.New(problem.KindConflict, "last_admin", "user %q is the last enabled admin: make another user admin first", before.Username)
}

type bootstrapPayload struct {
	User User `json:"user"`
}

// applyBootstrap creates the first admin once. Several nodes may race to
// propose it; the first entry wins and the others learn that it exists.
func applyBootstrap(ctx *state.ApplyContext, p bootstrapPayload) (any, error) {
	raw, err := ctx.Txn.First(tableMeta, "id", "bootstrap")
	if err != nil {
		return nil, err
	}
	if raw != nil && raw.(*metaRow).Done {
		existing, err := getUser(ctx.Txn, raw.(*metaRow).Value)
		if err != nil {
			return BootstrapResult{}, nil
		}
		return BootstrapResult{User: existing.View(ctx.Time)}, nil
	}
	u := p.User
	u.CreatedAt, u.UpdatedAt, u.PasswordChangedAt = ctx.Time, ctx.Time, ctx.Time
	if err := ctx.Txn.Insert(tableUsers, &u); err != nil {
		return nil, err
	}
	if err := ctx.Txn.Insert(tableMeta, &metaRow{Key: "bootstrap", Done: true, At: ctx.Time, Value: u.ID}); err != nil {
		return nil, err
	}
	return BootstrapResult{Created: true, User: u.View(ctx.Time)}, nil
}

type userCreatePayload struct {
	User User `json:"user"`
}

func applyUserCreate(ctx *state.ApplyContext, p userCreatePayload) (any, error) {
	u := p.User
	if existing, err := userByName(ctx.Txn, u.Username); err != nil {
		return nil, err
	} else if existing != nil {
		pr := problem.New(problem.KindConflict, "username_taken", "username %q is taken", u.Username)
		pr.Field = "username"
		return nil, pr
	}
	var errs problem.List
	validateBindings("roles", u.Roles, roleLookup(ctx.Txn), &errs)
	if err := errs.Err(); err != nil {
		return nil, err
	}
	u.CreatedAt, u.UpdatedAt, u.PasswordChangedAt = ctx.Time, ctx.Time, ctx.Time
	if err := ctx.Txn.Insert(tableUsers, &u); err != nil {
		return nil, err
	}
	return u.View(ctx.Time), nil
}

type userUpdatePayload struct {
	ID          string     `json:"id"`
	DisplayName *string    `json:"display_name,omitempty"`
	Email       *string    `json:"email,omitempty"`
	Roles       *[]Binding `json:"roles,omitempty"`
	Disabled    *bool      `json:"disabled,omitempty"`
}

func applyUserUpdate(ctx *state.ApplyContext, p userUpdatePayload) (any, error) {
	before, err := getUser(ctx.Txn, p.ID)
	if err != nil {
		return nil, err
	}
	u := before.clone()
	if p.DisplayName != nil {
		u.DisplayName = *p.DisplayName
	}
	if p.Email != nil {
		u.Email = *p.Email
	}
	if p.Roles != nil {
		var errs problem.List
		validateBindings("roles", *p.Roles, roleLookup(ctx.Txn), &errs)
		if err := errs.Err(); err != nil {
			return nil, err
		}
		u.Roles = slices.Clone(*p.Roles)
	}
	if p.Disabled != nil {
		u.Disabled = *p.Disabled
	}
	if err := keepsAnAdmin(ctx.Txn, before, u); err != nil {
		return nil, err
	}
	u.UpdatedAt = ctx.Time
	if err := ctx.Txn.Insert(tableUsers, u); err != nil {
		return nil, err
	}
	if u.Disabled && !before.Disabled {
		if err := revokeUserSessions(ctx, u.ID, "", "user_disabled"); err != nil {
			return nil, err
		}
	}
	return u.View(ctx.Time), nil
}

type idPayload struct {
	ID string `json:"id"`
}

func applyUserDelete(ctx *state.ApplyContext, p idPayload) (any, error) {
	u, err := getUser(ctx.Txn, p.ID)
	if err != nil {
		return nil, err
	}
	if err := keepsAnAdmin(ctx.Txn, u, nil); err != nil {
		return nil, err
	}
	if err := ctx.Txn.Delete(tableUsers, u); err != nil {
		return nil, err
	}
	for _, table := range []struct{ name, index string }{{tableSessions, "user"}, {tableTokens, "owner"}} {
		it, err := ctx.Txn.Get(table.name, table.index, u.ID)
		if err != nil {
			return nil, err
		}
		var rows []any
		for obj := it.Next(); obj != nil; obj = it.Next() {
			rows = append(rows, obj)
		}
		for _, row := range rows {
			if err := ctx.Txn.Delete(table.name, row); err != nil {
				return nil, err
			}
		}
	}
	return u.View(ctx.Time), nil
}

type userPasswordPayload struct {
	ID         string `json:"id"`
	Hash       string `json:"hash"`
	MustChange bool   `json:"must_change"`
	// KeepSession survives a self-service change; every other session of
	// the user is revoked. Empty revokes them all (admin reset).
	KeepSession string `json:"keep_session,omitempty"`
	// ExpectHash guards a self-service change against a concurrent one:
	// the current password was checked against this hash.
	ExpectHash string `json:"expect_hash,omitempty"`
}

func applyUserPassword(ctx *state.ApplyContext, p userPasswordPayload) (any, error) {
	before, err := getUser(ctx.Txn, p.ID)
	if err != nil {
		return nil, err
	}
	if p.ExpectHash != "" && p.ExpectHash != before.PasswordHash {
		return nil, problem.New(problem.KindConflict, "password_changed_concurrently", "the password was changed by another request; try again")
	}
	u := before.clone()
	u.PasswordHash, u.MustChangePassword = p.Hash, p.MustChange
	u.PasswordChangedAt, u.UpdatedAt = ctx.Time, ctx.Time
	u.FailedLogins, u.LockedUntil = 0, time.Time{}
	if err := ctx.Txn.Insert(tableUsers, u); err != nil {
		return nil, err
	}
	if err := revokeUserSessions(ctx, u.ID, p.KeepSession, "password_changed"); err != nil {
		return nil, err
	}
	return u.View(ctx.Time), nil
}

// LockoutPolicy is the per-user failure lockout: after Threshold
// consecutive failures, each further failure locks the account for Base
// doubled per failure beyond the threshold, never longer than Max. The cap
// is what stops anyone from locking an admin out for good.
type LockoutPolicy struct {
	Threshold int           `json:"threshold"`
	Base      time.Duration `json:"base"`
	Max       time.Duration `json:"max"`
}

// lockFor is the lockout after the given number of consecutive failures.
func (l LockoutPolicy) lockFor(failures int) time.Duration {
	if failures < l.Threshold {
		return 0
	}
	d := l.Base
	for i := l.Threshold; i < failures && d < l.Max; i++ {
		d *= 2
	}
	return min(d, l.Max)
}

type loginFailedPayload struct {
	ID     string        `json:"id"`
	Policy LockoutPolicy `json:"policy"`
}

type loginFailedResult struct {
	Failures    int       `json:"failures"`
	LockedUntil time.Time `json:"locked_until"`
}

func applyLoginFailed(ctx *state.ApplyContext, p loginFailedPayload) (any, error) {
	before, err := getUser(ctx.Txn, p.ID)
	if err != nil {
		return nil, err
	}
	u := before.clone()
	u.FailedLogins++
	if d := p.Policy.lockFor(u.FailedLogins); d > 0 {
		u.LockedUntil = ctx.Time.Add(d)
	}
	if err := ctx.Txn.Insert(tableUsers, u); err != nil {
		return nil, err
	}
	return loginFailedResult{Failures: u.FailedLogins, LockedUntil: u.LockedUntil}, nil
}

func applyUserUnlock(ctx *state.ApplyContext, p idPayload) (any, error) {
	before, err := getUser(ctx.Txn, p.ID)
	if err != nil {
		return nil, err
	}
	u := before.clone()
	u.FailedLogins, u.LockedUntil, u.UpdatedAt = 0, time.Time{}, ctx.Time
	if err := ctx.Txn.Insert(tableUsers, u); err != nil {
		return nil, err
	}
	return u.View(ctx.Time), nil
}

type totpPayload struct {
	ID string `json:"id"`
	// Op is "enroll" (store a pending seed), "activate" (promote the pending
	// seed with recovery codes and the step that proved it), or "disable".
	Op             string   `json:"op"`
	TOTP           TOTP     `json:"totp"`
	RecoveryHashes []string `json:"recovery_hashes,omitempty"`
	Step           uint64   `json:"step,omitempty"`
}

func applyUserTOTP(ctx *state.ApplyContext, p totpPayload) (any, error) {
	before, err := getUser(ctx.Txn, p.ID)
	if err != nil {
		return nil, err
	}
	u := before.clone()
	switch p.Op {
	case "enroll":
		if u.TOTP.Enabled {
			return nil, problem.New(problem.KindConflict, "totp_enabled", "two-factor authentication is already enabled; disable it first")
		}
		u.TOTP.Pending = p.TOTP.Pending
	case "activate":
		if u.TOTP.Pending.IsZero() {
			return nil, problem.New(problem.KindConflict, "totp_not_enrolled", "start enrolment first")
		}
		u.TOTP = TOTP{Enabled: true, Secret: u.TOTP.Pending, LastStep: p.Step, RecoveryHashes: slices.Clone(p.RecoveryHashes)}
	case "disable":
		u.TOTP = TOTP{}
	default:
		return nil, problem.Invalid("op", "unknown TOTP operation %q", p.Op)
	}
	u.UpdatedAt = ctx.Time
	if err := ctx.Txn.Insert(tableUsers, u); err != nil {
		return nil, err
	}
	return u.View(ctx.Time), nil
}

type sessionCreatePayload struct {
	Session Session `json:"session"`
	// Step is the TOTP time step used, if any; RecoveryHash the recovery
	// code used instead, if any. Both are single-use.
	Step         uint64 `json:"step,omitempty"`
	RecoveryHash string `json:"recovery_hash,omitempty"`
	// Rehash replaces the password hash when its parameters are outdated.
	Rehash string `json:"rehash,omitempty"`
	// ExpectHash is the hash the password was verified against, so that a
	// login racing a password change does not win with the old password.
	ExpectHash string `json:"expect_hash"`
}

type sessionResult struct {
	Session Session  `json:"session"`
	User    UserView `json:"user"`
}

func applySessionCreate(ctx *state.ApplyContext, p sessionCreatePayload) (any, error) {
	before, err := getUser(ctx.Txn, p.Session.UserID)
	if err != nil {
		return nil, err
	}
	if before.Disabled {
		return nil, problem.New(problem.KindUnauthenticated, "account_disabled", "this account is disabled")
	}
	if before.PasswordHash != p.ExpectHash {
		return nil, problem.New(problem.KindUnauthenticated, "invalid_credentials", "invalid username or password")
	}
	u := before.clone()
	if p.Step != 0 {
		if p.Step <= u.TOTP.LastStep {
			return nil, problem.New(problem.KindUnauthenticated, "totp_reused", "this code was already used; wait for the next one")
		}
		u.TOTP.LastStep = p.Step
	}
	if p.RecoveryHash != "" {
		i := slices.Index(u.TOTP.RecoveryHashes, p.RecoveryHash)
		if i < 0 {
			return nil, problem.New(problem.KindUnauthenticated, "invalid_totp", "invalid two-factor code")
		}
		u.TOTP.RecoveryHashes = slices.Delete(u.TOTP.RecoveryHashes, i, i+1)
	}
	if p.Rehash != "" {
		u.PasswordHash = p.Rehash
	}
	u.FailedLogins, u.LockedUntil, u.LastLoginAt = 0, time.Time{}, ctx.Time
	if err := ctx.Txn.Insert(tableUsers, u); err != nil {
		return nil, err
	}
	s := p.Session
	s.CreatedAt, s.LastUsedAt = ctx.Time, ctx.Time
	if err := ctx.Txn.Insert(tableSessions, &s); err != nil {
		return nil, err
	}
	return sessionResult{Session: s, User: u.View(ctx.Time)}, nil
}

type refreshPayload struct {
	ID        string `json:"id"`
	Presented string `json:"presented"`
	Next      string `json:"next"`
}

// Refresh outcomes. Only refreshOK hands out tokens.
const (
	refreshOK      = "ok"
	refreshReused  = "reused"  // a rotated token came back: the family is revoked
	refreshInvalid = "invalid" // unknown token, revoked or expired session, disabled user
)

type refreshResult struct {
	Outcome string   `json:"outcome"`
	Reason  string   `json:"reason,omitempty"`
	Session Session  `json:"session"`
	User    UserView `json:"user"`
}

// applySessionRefresh rotates a session's refresh token. Because it runs in
// the FSM, concurrent refreshes of one token are serialised: the first
// rotates it and every later one presents a used token.
func applySessionRefresh(ctx *state.ApplyContext, p refreshPayload) (any, error) {
	before, err := getSession(ctx.Txn, p.ID)
	if err != nil {
		return refreshResult{Outcome: refreshInvalid, Reason: "unknown session"}, nil
	}
	s := before.clone()
	if s.RefreshHash != p.Presented {
		if !slices.Contains(s.UsedHashes, p.Presented) {
			return refreshResult{Outcome: refreshInvalid, Reason: "unknown refresh token"}, nil
		}
		if s.Revoked {
			return refreshResult{Outcome: refreshInvalid, Reason: "session revoked", Session: *s}, nil
		}
		s.Revoked, s.RevokedAt, s.RevokedReason = true, ctx.Time, "refresh_token_reused"
		if err := ctx.Txn.Insert(tableSessions, s); err != nil {
			return nil, err
		}
		return refreshResult{Outcome: refreshReused, Session: *s}, nil
	}
	if !s.Active(ctx.Time) {
		return refreshResult{Outcome: refreshInvalid, Reason: "session expired or revoked", Session: *s}, nil
	}
	u, err := getUser(ctx.Txn, s.UserID)
	if err != nil || u.Disabled {
		return refreshResult{Outcome: refreshInvalid, Reason: "account disabled or deleted", Session: *s}, nil
	}
	s.UsedHashes = append(s.UsedHashes, s.RefreshHash)
	if len(s.UsedHashes) > maxUsedHashes {
		s.UsedHashes = s.UsedHashes[len(s.UsedHashes)-maxUsedHashes:]
	}
	s.RefreshHash, s.LastUsedAt = p.Next, ctx.Time
	if err := ctx.Txn.Insert(tableSessions, s); err != nil {
		return nil, err
	}
	return refreshResult{Outcome: refreshOK, Session: *s, User: u.View(ctx.Time)}, nil
}

type revokePayload struct {
	// IDs revokes these sessions; UserID revokes all of that user's
	// sessions except Except.
	IDs    []string `json:"ids,omitempty"`
	UserID string   `json:"user_id,omitempty"`
	Except string   `json:"except,omitempty"`
	Reason string   `json:"reason"`
}

type revokeResult struct {
	Revoked []string `json:"revoked"`
}

func applySessionRevoke(ctx *state.ApplyContext, p revokePayload) (any, error) {
	res := revokeResult{Revoked: []string{}}
	for _, id := range p.IDs {
		s, err := getSession(ctx.Txn, id)
		if err != nil {
			return nil, err
		}
		if s.Revoked {
			continue
		}
		c := s.clone()
		c.Revoked, c.RevokedAt, c.RevokedReason = true, ctx.Time, p.Reason
		if err := ctx.Txn.Insert(tableSessions, c); err != nil {
			return nil, err
		}
		res.Revoked = append(res.Revoked, id)
	}
	if p.UserID != "" {
		ids, err := revokeUserSessionsList(ctx, p.UserID, p.Except, p.Reason)
		if err != nil {
			return nil, err
		}
		res.Revoked = append(res.Revoked, ids...)
	}
	return res, nil
}

func revokeUserSessions(ctx *state.ApplyContext, userID, except, reason string) error {
	_, err := revokeUserSessionsList(ctx, userID, except, reason)
	return err
}

func revokeUserSessionsList(ctx *state.ApplyContext, userID, except, reason string) ([]string, error) {
	it, err := ctx.Txn.Get(tableSessions, "user", userID)
	if err != nil {
		return nil, err
	}
	var todo []*Session
	for obj := it.Next(); obj != nil; obj = it.Next() {
		if s := obj.(*Session); !s.Revoked && s.ID != except {
			todo = append(todo, s)
		}
	}
	ids := []string{}
	for _, s := range todo {
		c := s.clone()
		c.Revoked, c.RevokedAt, c.RevokedReason = true, ctx.Time, reason
		if err := ctx.Txn.Insert(tableSessions, c); err != nil {
			return nil, err
		}
		ids = append(ids, c.ID)
	}
	return ids, nil
}

type prunePayload struct {
	// KeepFor is how long a finished session stays listed after it ended,
	// long enough to outlive every access token signed for it.
	KeepFor time.Duration `json:"keep_for"`
}

func applySessionPrune(ctx *state.ApplyContext, p prunePayload) (any, error) {
	it, err := ctx.Txn.Get(tableSessions, "id")
	if err != nil {
		return nil, err
	}
	var gone []*Session
	for obj := it.Next(); obj != nil; obj = it.Next() {
		s := obj.(*Session)
		ended := s.ExpiresAt()
		if s.Revoked && s.RevokedAt.Before(ended) {
			ended = s.RevokedAt
		}
		if ctx.Time.Sub(ended) > p.KeepFor {
			gone = append(gone, s)
		}
	}
	for _, s := range gone {
		if err := ctx.Txn.Delete(tableSessions, s); err != nil {
			return nil, err
		}
	}
	return len(gone), nil
}

type tokenCreatePayload struct {
	Token APIToken `json:"token"`
}

func applyTokenCreate(ctx *state.ApplyContext, p tokenCreatePayload) (any, error) {
	owner, err := getUser(ctx.Txn, p.Token.OwnerID)
	if err != nil {
		return nil, err
	}
	roles := roleLookup(ctx.Txn)
	var errs problem.List
	validateBindings("roles", p.Token.Roles, roles, &errs)
	for i, b := range p.Token.Roles {
		if _, ok := roles(b.Role); ok && !covers(owner.Roles, b, roles) {
			errs.Add(fmt.Sprintf("roles[%d]", i), "role %q is more than you hold: a token cannot exceed its creator", b.Role)
		}
	}
	if err := errs.Err(); err != nil {
		return nil, err
	}
	t := p.Token
	t.CreatedAt = ctx.Time
	if err := ctx.Txn.Insert(tableTokens, &t); err != nil {
		return nil, err
	}
	return t.view(ctx.Time), nil
}

func applyTokenRevoke(ctx *state.ApplyContext, p idPayload) (any, error) {
	raw, err := ctx.Txn.First(tableTokens, "id", p.ID)
	if err != nil {
		return nil, err
	}
	if raw == nil {
		return nil, problem.NotFound("token", p.ID)
	}
	t := *raw.(*APIToken)
	t.Roles = slices.Clone(t.Roles)
	if !t.Revoked {
		t.Revoked, t.RevokedAt = true, ctx.Time
		if err := ctx.Txn.Insert(tableTokens, &t); err != nil {
			return nil, err
		}
	}
	return t.view(ctx.Time), nil
}

type rolePutPayload struct {
	Role   Role `json:"role"`
	Create bool `json:"create"`
}

func applyRolePut(ctx *state.ApplyContext, p rolePutPayload) (any, error) {
	if _, ok := builtinRole(p.Role.Name); ok {
		pr := problem.New(problem.KindConflict, "builtin_role", "role %q is built in and cannot be changed", p.Role.Name)
		pr.Field = "name"
		return nil, pr
	}
	raw, err := ctx.Txn.First(tableRoles, "id", p.Role.Name)
	if err != nil {
		return nil, err
	}
	r := &customRole{Name: p.Role.Name, Description: p.Role.Description, Permissions: slices.Clone(p.Role.Permissions), CreatedAt: ctx.Time, UpdatedAt: ctx.Time}
	switch {
	case raw != nil && p.Create:
		pr := problem.New(problem.KindConflict, "role_exists", "role %q already exists", p.Role.Name)
		pr.Field = "name"
		return nil, pr
	case raw == nil && !p.Create:
		return nil, problem.NotFound("role", p.Role.Name)
	case raw != nil:
		r.CreatedAt = raw.(*customRole).CreatedAt
	}
	if err := ctx.Txn.Insert(tableRoles, r); err != nil {
		return nil, err
	}
	return r.role(), nil
}

type namePayload struct {
	Name string `json:"name"`
}

func applyRoleDelete(ctx *state.ApplyContext, p namePayload) (any, error) {
	if _, ok := builtinRole(p.Name); ok {
		return nil, problem.New(problem.KindConflict, "builtin_role", "role %q is built in and cannot be deleted", p.Name)
	}
	raw, err := ctx.Txn.First(tableRoles, "id", p.Name)
	if err != nil {
		return nil, err
	}
	if raw == nil {
		return nil, problem.NotFound("role", p.Name)
	}
	var users []string
	it, err := ctx.Txn.Get(tableUsers, "id")
	if err != nil {
		return nil, err
	}
	for obj := it.Next(); obj != nil; obj = it.Next() {
		u := obj.(*User)
		if slices.ContainsFunc(u.Roles, func(b Binding) bool { return b.Role == p.Name }) {
			users = append(users, u.Username)
		}
	}
	it, err = ctx.Txn.Get(tableTokens, "id")
	if err != nil {
		return nil, err
	}
	tokens := 0
	for obj := it.Next(); obj != nil; obj = it.Next() {
		t := obj.(*APIToken)
		if !t.Revoked && slices.ContainsFunc(t.Roles, func(b Binding) bool { return b.Role == p.Name }) {
			tokens++
		}
	}
	if len(users) > 0 || tokens > 0 {
		return nil, problem.New(problem.KindConflict, "role_in_use", "role %q is bound to %d users (%s) and %d API tokens: remove those bindings first",
			p.Name, len(users), strings.Join(users, ", "), tokens)
	}
	if err := ctx.Txn.Delete(tableRoles, raw); err != nil {
		return nil, err
	}
	return raw.(*customRole).role(), nil
}

type keyAddPayload struct {
	Key SigningKey `json:"key"`
}

// applyKeyAdd makes a new signing key active and retires the previous one,
// which keeps verifying until pruned.
func applyKeyAdd(ctx *state.ApplyContext, p keyAddPayload) (any, error) {
	it, err := ctx.Txn.Get(tableKeys, "id")
	if err != nil {
		return nil, err
	}
	var active []*SigningKey
	for obj := it.Next(); obj != nil; obj = it.Next() {
		if k := obj.(*SigningKey); k.RetiredAt.IsZero() {
			active = append(active, k)
		}
	}
	for _, k := range active {
		c := *k
		c.RetiredAt = ctx.Time
		if err := ctx.Txn.Insert(tableKeys, &c); err != nil {
			return nil, err
		}
	}
	k := p.Key
	k.CreatedAt, k.RetiredAt = ctx.Time, time.Time{}
	if err := ctx.Txn.Insert(tableKeys, &k); err != nil {
		return nil, err
	}
	return k.KID, nil
}

type keyPrunePayload struct {
	// RetiredFor is how long a retired key keeps verifying: the longest
	// access-token lifetime plus clock skew.
	RetiredFor time.Duration `json:"retired_for"`
}

func applyKeyPrune(ctx *state.ApplyContext, p keyPrunePayload) (any, error) {
	it, err := ctx.Txn.Get(tableKeys, "id")
	if err != nil {
		return nil, err
	}
	var gone []*SigningKey
	for obj := it.Next(); obj != nil; obj = it.Next() {
		if k := obj.(*SigningKey); !k.RetiredAt.IsZero() && ctx.Time.Sub(k.RetiredAt) > p.RetiredFor {
			gone = append(gone, k)
		}
	}
	for _, k := range gone {
		if err := ctx.Txn.Delete(tableKeys, k); err != nil {
			return nil, err
		}
	}
	return len(gone), nil
}

// loginFailureAlarm is the failure count that raises login.failures when
// no lockout threshold is set.
const loginFailureAlarm = 5

func loginFailedWithEvents(emit notify.Emitter) func(*state.ApplyContext, loginFailedPayload) (any, error) {
	return func(ctx *state.ApplyContext, p loginFailedPayload) (any, error) {
		res, err := applyLoginFailed(ctx, p)
		if err != nil || emit == nil {
			return res, err
		}
		threshold := p.Policy.Threshold
		if threshold <= 0 {
			threshold = loginFailureAlarm
		}
		r := res.(loginFailedResult)
		if r.Failures != threshold {
			return res, nil
		}
		u, err := getUser(ctx.Txn, p.ID)
		if err != nil {
			return nil, err
		}
		e := tmpl.Event{Type: tmpl.EventLoginFailures, Severity: tmpl.SeverityWarning,
			Summary: fmt.Sprintf("%d failed logins in a row for %s", r.Failures, u.Username),
			Login:   &tmpl.Login{Username: u.Username, Failures: r.Failures}}
		return res, emit(ctx, e, notify.Match{})
	}
}
