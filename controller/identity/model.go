package identity

import (
	"slices"
	"time"

	"github.com/opsconductor/opsconductor/controller/keyring"
)

// User is one person's account. PasswordHash is a PHC argon2id string and
// never leaves the package: View is what the API returns.
type User struct {
	ID           string    `json:"id"`
	Username     string    `json:"username"`
	DisplayName  string    `json:"display_name,omitempty"`
	Email        string    `json:"email,omitempty"`
	Roles        []Binding `json:"roles"`
	Disabled     bool      `json:"disabled"`
	PasswordHash string    `json:"password_hash"`
	// MustChangePassword limits the user's tokens to changing it (set by an
	// admin reset or a generated bootstrap password).
	MustChangePassword bool      `json:"must_change_password"`
	PasswordChangedAt  time.Time `json:"password_changed_at"`
	// FailedLogins counts consecutive failures; LockedUntil is when the
	// current lockout ends (zero when none).
	FailedLogins int       `json:"failed_logins"`
	LockedUntil  time.Time `json:"locked_until"`
	LastLoginAt  time.Time `json:"last_login_at"`
	TOTP         TOTP      `json:"totp"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// TOTP is a user's second factor. The seed is sealed by the keyring; the
// recovery codes are stored as SHA-256 hashes (they are random, so a fast
// hash is enough) and each works once.
type TOTP struct {
	Enabled bool           `json:"enabled"`
	Pending keyring.Sealed `json:"pending"` // enrolled, not yet verified
	Secret  keyring.Sealed `json:"secret"`
	// LastStep is the last time step accepted, so that a code is never
	// accepted twice (RFC 6238 §5.2).
	LastStep       uint64   `json:"last_step"`
	RecoveryHashes []string `json:"recovery_hashes,omitempty"`
}

func (u *User) clone() *User {
	c := *u
	c.Roles = slices.Clone(u.Roles)
	c.TOTP.RecoveryHashes = slices.Clone(u.TOTP.RecoveryHashes)
	return &c
}

// UserView is a user as the API shows it.
type UserView struct {
	ID                 string     `json:"id"`
	Username           string     `json:"username"`
	DisplayName        string     `json:"display_name"`
	Email              string     `json:"email"`
	Roles              []Binding  `json:"roles"`
	Disabled           bool       `json:"disabled"`
	MustChangePassword bool       `json:"must_change_password"`
	TOTPEnabled        bool       `json:"totp_enabled"`
	LockedUntil        *time.Time `json:"locked_until,omitempty"`
	LastLoginAt        *time.Time `json:"last_login_at,omitempty"`
	PasswordChangedAt  time.Time  `json:"password_changed_at"`
	CreatedAt          time.Time  `json:"created_at"`
	UpdatedAt          time.Time  `json:"updated_at"`
}

// View returns the user without secrets. now decides whether a lockout is
// still current.
func (u *User) View(now time.Time) UserView {
	v := UserView{
		ID: u.ID, Username: u.Username, DisplayName: u.DisplayName, Email: u.Email,
		Roles: slices.Clone(u.Roles), Disabled: u.Disabled, MustChangePassword: u.MustChangePassword,
		TOTPEnabled: u.TOTP.Enabled, PasswordChangedAt: u.PasswordChangedAt, CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt,
	}
	if v.Roles == nil {
		v.Roles = []Binding{}
	}
	if u.LockedUntil.After(now) {
		t := u.LockedUntil
		v.LockedUntil = &t
	}
	if !u.LastLoginAt.IsZero() {
		t := u.LastLoginAt
		v.LastLoginAt = &t
	}
	return v
}

// Session is one login: the family of refresh tokens it hands out, and the
// access tokens signed for it (they carry its ID as "sid").
type Session struct {
	ID         string    `json:"id"`
	UserID     string    `json:"user_id"`
	CreatedAt  time.Time `json:"created_at"`
	LastUsedAt time.Time `json:"last_used_at"`
	// IdleTimeout and MaxLifetime are fixed at login so that a config
	// change never shortens sessions retroactively in surprising ways.
	IdleTimeout time.Duration `json:"idle_timeout"`
	MaxLifetime time.Duration `json:"max_lifetime"`
	SourceIP    string        `json:"source_ip"`
	UserAgent   string        `json:"user_agent"`
	// RefreshHash is the SHA-256 of the current refresh secret; UsedHashes
	// are the most recent ones already rotated away, kept to recognise a
	// replay (RFC 9700 §4.14.2) rather than a mere forgery.
	RefreshHash string    `json:"refresh_hash"`
	UsedHashes  []string  `json:"used_hashes,omitempty"`
	Revoked     bool      `json:"revoked"`
	RevokedAt   time.Time `json:"revoked_at"`
	// RevokedReason is "logout", "revoked", "refresh_token_reused",
	// "password_changed", "user_disabled" or "user_deleted".
	RevokedReason string `json:"revoked_reason,omitempty"`
}

// maxUsedHashes bounds what a session remembers of its rotated tokens. A
// token older than this is rejected as unknown rather than as a replay.
const maxUsedHashes = 64

func (s *Session) clone() *Session {
	c := *s
	c.UsedHashes = slices.Clone(s.UsedHashes)
	return &c
}

// ExpiresAt is when the session ends if nothing else happens: the sooner
// of its idle and absolute limits.
func (s *Session) ExpiresAt() time.Time {
	idle := s.LastUsedAt.Add(s.IdleTimeout)
	abs := s.CreatedAt.Add(s.MaxLifetime)
	if idle.Before(abs) {
		return idle
	}
	return abs
}

// Active reports whether the session may still be used at now.
func (s *Session) Active(now time.Time) bool {
	return !s.Revoked && now.Before(s.ExpiresAt())
}

// SessionView is a session as the API shows it.
type SessionView struct {
	ID            string     `json:"id"`
	UserID        string     `json:"user_id"`
	Username      string     `json:"username"`
	CreatedAt     time.Time  `json:"created_at"`
	LastUsedAt    time.Time  `json:"last_used_at"`
	ExpiresAt     time.Time  `json:"expires_at"`
	SourceIP      string     `json:"source_ip"`
	UserAgent     string     `json:"user_agent"`
	Current       bool       `json:"current"`
	Active        bool       `json:"active"`
	RevokedAt     *time.Time `json:"revoked_at,omitempty"`
	RevokedReason string     `json:"revoked_reason,omitempty"`
}

// APIToken is a machine credential: "oct_<id>_<secret>", of which only the
// SHA-256 of the secret is stored. Its roles never exceed its owner's, at
// creation or at use.
type APIToken struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	OwnerID     string    `json:"owner_id"`
	Roles       []Binding `json:"roles"`
	SecretHash  string    `json:"secret_hash"`
	CreatedAt   time.Time `json:"created_at"`
	ExpiresAt   time.Time `json:"expires_at"` // zero: never
	Revoked     bool      `json:"revoked"`
	RevokedAt   time.Time `json:"revoked_at"`
	Description string    `json:"description,omitempty"`
}

// TokenView is an API token's metadata as the API shows it.
type TokenView struct {
	ID          string     `json:"id"`
	Name        string     `json:"name"`
	Description string     `json:"description,omitempty"`
	OwnerID     string     `json:"owner_id"`
	Roles       []Binding  `json:"roles"`
	CreatedAt   time.Time  `json:"created_at"`
	ExpiresAt   *time.Time `json:"expires_at,omitempty"`
	Revoked     bool       `json:"revoked"`
	Expired     bool       `json:"expired"`
}

func (t *APIToken) view(now time.Time) TokenView {
	v := TokenView{ID: t.ID, Name: t.Name, Description: t.Description, OwnerID: t.OwnerID, Roles: slices.Clone(t.Roles),
		CreatedAt: t.CreatedAt, Revoked: t.Revoked}
	if v.Roles == nil {
		v.Roles = []Binding{}
	}
	if !t.ExpiresAt.IsZero() {
		e := t.ExpiresAt
		v.ExpiresAt = &e
		v.Expired = !now.Before(e)
	}
	return v
}

// SigningKey is an Ed25519 key for access tokens. The private half is
// sealed by the keyring. A retired key no longer signs but keeps verifying
// until every token it signed has expired; then it is pruned.
type SigningKey struct {
	KID       string         `json:"kid"`
	Public    []byte         `json:"public"`
	Private   keyring.Sealed `json:"private"`
	CreatedAt time.Time      `json:"created_at"`
	RetiredAt time.Time      `json:"retired_at"` // zero while active
}

// customRole is a role kept in the replicated state.
type customRole struct {
	Name        string       `json:"name"`
	Description string       `json:"description,omitempty"`
	Permissions []Permission `json:"permissions"`
	CreatedAt   time.Time    `json:"created_at"`
	UpdatedAt   time.Time    `json:"updated_at"`
}

func (r *customRole) role() Role {
	return Role{Name: r.Name, Description: r.Description, Permissions: slices.Clone(r.Permissions)}
}

// metaRow records one-time facts such as "bootstrapped".
type metaRow struct {
	Key   string    `json:"key"`
	Done  bool      `json:"done"`
	At    time.Time `json:"at"`
	Value string    `json:"value,omitempty"`
}
