package apiclient

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The identity API's documents. They mirror the JSON the controller sends
// rather than importing controller/identity, so that the client depends on
// the wire format only.

// LoginRequest is the body of POST /api/v1/auth/login.
type LoginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
	TOTP     string `json:"totp,omitempty"`
}

// Tokens is what a login or refresh returns.
type Tokens struct {
	AccessToken        string    `json:"access_token"`
	RefreshToken       string    `json:"refresh_token"`
	ExpiresIn          int       `json:"expires_in"`
	TokenType          string    `json:"token_type"`
	SessionID          string    `json:"session_id"`
	MustChangePassword bool      `json:"must_change_password"`
	RefreshExpiresAt   time.Time `json:"refresh_expires_at"`
}

// Scope narrows a role binding to targets with all the tags, or in any of
// the groups.
type Scope struct {
	Tags   map[string]string `json:"tags,omitempty"`
	Groups []string          `json:"groups,omitempty"`
}

// RoleBinding grants a role, optionally within a scope. In JSON it is the
// role name when unscoped, else {"role", "scope"}.
type RoleBinding struct {
	Role  string `json:"role"`
	Scope *Scope `json:"scope,omitempty"`
}

// MarshalJSON writes an unscoped binding as its role name.
func (b RoleBinding) MarshalJSON() ([]byte, error) {
	if b.Scope == nil || (len(b.Scope.Tags) == 0 && len(b.Scope.Groups) == 0) {
		return json.Marshal(b.Role)
	}
	type plain RoleBinding
	return json.Marshal(plain(b))
}

// UnmarshalJSON reads either form.
func (b *RoleBinding) UnmarshalJSON(data []byte) error {
	var name string
	if err := json.Unmarshal(data, &name); err == nil {
		*b = RoleBinding{Role: name}
		return nil
	}
	type plain RoleBinding
	var p plain
	if err := json.Unmarshal(data, &p); err != nil {
		return err
	}
	*b = RoleBinding(p)
	return nil
}

// String is "role" or "role{tags k=v,…; groups g,…}".
func (b RoleBinding) String() string {
	if b.Scope == nil || (len(b.Scope.Tags) == 0 && len(b.Scope.Groups) == 0) {
		return b.Role
	}
	var parts []string
	if len(b.Scope.Tags) > 0 {
		var tags []string
		for k, v := range b.Scope.Tags {
			tags = append(tags, k+"="+v)
		}
		slices.Sort(tags)
		parts = append(parts, "tags "+strings.Join(tags, ","))
	}
	if len(b.Scope.Groups) > 0 {
		parts = append(parts, "groups "+strings.Join(b.Scope.Groups, ","))
	}
	return b.Role + "{" + strings.Join(parts, "; ") + "}"
}

// User is a user account as the API shows it.
type User struct {
	ID                 string        `json:"id"`
	Username           string        `json:"username"`
	DisplayName        string        `json:"display_name"`
	Email              string        `json:"email"`
	Roles              []RoleBinding `json:"roles"`
	Disabled           bool          `json:"disabled"`
	MustChangePassword bool          `json:"must_change_password"`
	TOTPEnabled        bool          `json:"totp_enabled"`
	LockedUntil        *time.Time    `json:"locked_until,omitempty"`
	LastLoginAt        *time.Time    `json:"last_login_at,omitempty"`
	PasswordChangedAt  time.Time     `json:"password_changed_at"`
	CreatedAt          time.Time     `json:"created_at"`
	UpdatedAt          time.Time     `json:"updated_at"`
}

// CreatedUser is a new user, with the password the server generated when
// the request named none (shown only here).
type CreatedUser struct {
	User
	InitialPassword string `json:"initial_password,omitempty"`
}

// Me is GET /api/v1/me: the caller, its effective permissions, and the
// session or API token it authenticated with.
type Me struct {
	User        User     `json:"user"`
	Permissions []string `json:"permissions"`
	SessionID   string   `json:"session_id,omitempty"`
	TokenID     string   `json:"token_id,omitempty"`
}

// UserPage is one page of users; Next is the cursor of the following page
// ("" after the last).
type UserPage struct {
	Items []User `json:"items"`
	Next  string `json:"next"`
}

// UserFilter selects users for ListUsers; zero fields do not filter.
type UserFilter struct {
	Query    string
	Role     string
	Disabled *bool
	Limit    int
	After    string
}

// CreateUserRequest is the body of POST /api/v1/users. An empty Password
// makes the server generate one (returned once), which the user must
// change at first login.
type CreateUserRequest struct {
	Username           string        `json:"username"`
	DisplayName        string        `json:"display_name,omitempty"`
	Email              string        `json:"email,omitempty"`
	Roles              []RoleBinding `json:"roles"`
	Password           string        `json:"password,omitempty"`
	MustChangePassword *bool         `json:"must_change_password,omitempty"`
}

// UpdateUserRequest is the body of PATCH /api/v1/users/{user}; nil fields
// stay as they are.
type UpdateUserRequest struct {
	DisplayName *string        `json:"display_name,omitempty"`
	Email       *string        `json:"email,omitempty"`
	Roles       *[]RoleBinding `json:"roles,omitempty"`
	Disabled    *bool          `json:"disabled,omitempty"`
}

// UpdateProfileRequest is the body of PATCH /api/v1/me.
type UpdateProfileRequest struct {
	DisplayName *string `json:"display_name,omitempty"`
	Email       *string `json:"email,omitempty"`
}

// TOTPEnrolment is a pending second factor: the secret and the otpauth://
// URI to show as a QR code.
type TOTPEnrolment struct {
	Secret string `json:"secret"`
	URI    string `json:"uri"`
}

// Role is a built-in or custom role.
type Role struct {
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	Permissions []string `json:"permissions"`
	Builtin     bool     `json:"builtin"`
}

// Session is one login session.
type Session struct {
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

// APIToken is an API token's metadata.
type APIToken struct {
	ID          string        `json:"id"`
	Name        string        `json:"name"`
	Description string        `json:"description,omitempty"`
	OwnerID     string        `json:"owner_id"`
	Roles       []RoleBinding `json:"roles"`
	CreatedAt   time.Time     `json:"created_at"`
	ExpiresAt   *time.Time    `json:"expires_at,omitempty"`
	Revoked     bool          `json:"revoked"`
	Expired     bool          `json:"expired"`
}

// CreatedToken is a new API token with its secret, shown only here.
type CreatedToken struct {
	APIToken
	Token string `json:"token"`
}

// CreateTokenRequest is the body of POST /api/v1/tokens. ExpiresIn is a
// Go duration ("720h"); empty means the token never expires.
type CreateTokenRequest struct {
	Name        string        `json:"name"`
	Description string        `json:"description,omitempty"`
	Roles       []RoleBinding `json:"roles"`
	ExpiresIn   string        `json:"expires_in,omitempty"`
}

// SigningKey is an access-token signing key's public metadata.
type SigningKey struct {
	KID       string     `json:"kid"`
	CreatedAt time.Time  `json:"created_at"`
	RetiredAt *time.Time `json:"retired_at,omitempty"`
	Active    bool       `json:"active"`
}

type items[T any] struct {
	Items []T `json:"items"`
}

type revokedIDs struct {
	Revoked []string `json:"revoked"`
}

func userPath(ref string, rest ...string) string {
	return "/api/v1/users/" + url.PathEscape(ref) + strings.Join(rest, "")
}

// --- authentication ---------------------------------------------------------

// Login exchanges a password (and TOTP code) for tokens. It sends no
// credential of its own and does not store the result.
func (c *Client) Login(ctx context.Context, req LoginRequest) (Tokens, error) {
	var t Tokens
	err := c.doAnonymous(ctx, http.MethodPost, "/api/v1/auth/login", req, &t)
	return t, err
}

// Refresh spends a refresh token for a new access token and a new refresh
// token (the old one stops working).
func (c *Client) Refresh(ctx context.Context, refreshToken string) (Tokens, error) {
	var t Tokens
	err := c.doAnonymous(ctx, http.MethodPost, "/api/v1/auth/refresh", map[string]string{"refresh_token": refreshToken}, &t)
	return t, err
}

// Logout ends the session of the client's access token.
func (c *Client) Logout(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/api/v1/auth/logout", nil, nil)
}

// LogoutRefreshToken ends the session a refresh token belongs to, without
// an access token.
func (c *Client) LogoutRefreshToken(ctx context.Context, refreshToken string) error {
	return c.doAnonymous(ctx, http.MethodPost, "/api/v1/auth/logout", map[string]string{"refresh_token": refreshToken}, nil)
}

// SigningKeys lists the access-token signing keys.
func (c *Client) SigningKeys(ctx context.Context) ([]SigningKey, error) {
	var out items[SigningKey]
	err := c.do(ctx, http.MethodGet, "/api/v1/auth/keys", nil, &out)
	return out.Items, err
}

// RotateSigningKey makes a new signing key active and returns its ID.
func (c *Client) RotateSigningKey(ctx context.Context) (string, error) {
	var out struct {
		KID string `json:"kid"`
	}
	err := c.do(ctx, http.MethodPost, "/api/v1/auth/keys/rotate", nil, &out)
	return out.KID, err
}

// --- the caller -------------------------------------------------------------

// Me returns the authenticated caller.
func (c *Client) Me(ctx context.Context) (Me, error) {
	var out Me
	err := c.do(ctx, http.MethodGet, "/api/v1/me", nil, &out)
	return out, err
}

// UpdateMe changes the caller's display name or email.
func (c *Client) UpdateMe(ctx context.Context, req UpdateProfileRequest) (User, error) {
	var out User
	err := c.do(ctx, http.MethodPatch, "/api/v1/me", req, &out)
	return out, err
}

// ChangePassword changes the caller's password; the current session
// stays, the user's other sessions end.
func (c *Client) ChangePassword(ctx context.Context, current, next string) error {
	return c.do(ctx, http.MethodPost, "/api/v1/me/password",
		map[string]string{"current_password": current, "new_password": next}, nil)
}

// BeginTOTP starts enrolling a second factor.
func (c *Client) BeginTOTP(ctx context.Context, password string) (TOTPEnrolment, error) {
	var out TOTPEnrolment
	err := c.do(ctx, http.MethodPost, "/api/v1/me/totp", map[string]string{"password": password}, &out)
	return out, err
}

// ConfirmTOTP finishes enrolment with a code from the authenticator and
// returns the one-time recovery codes.
func (c *Client) ConfirmTOTP(ctx context.Context, code string) ([]string, error) {
	var out struct {
		RecoveryCodes []string `json:"recovery_codes"`
	}
	err := c.do(ctx, http.MethodPost, "/api/v1/me/totp/confirm", map[string]string{"code": code}, &out)
	return out.RecoveryCodes, err
}

// DisableTOTP removes the caller's second factor.
func (c *Client) DisableTOTP(ctx context.Context, password string) error {
	return c.do(ctx, http.MethodPost, "/api/v1/me/totp/disable", map[string]string{"password": password}, nil)
}

// --- users ------------------------------------------------------------------

// ListUsers returns one page of users.
func (c *Client) ListUsers(ctx context.Context, f UserFilter) (UserPage, error) {
	q := url.Values{}
	if f.Query != "" {
		q.Set("q", f.Query)
	}
	if f.Role != "" {
		q.Set("role", f.Role)
	}
	if f.Disabled != nil {
		q.Set("disabled", strconv.FormatBool(*f.Disabled))
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	if f.After != "" {
		q.Set("after", f.After)
	}
	path := "/api/v1/users"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out UserPage
	err := c.do(ctx, http.MethodGet, path, nil, &out)
	return out, err
}

// AllUsers pages through every user the filter selects.
func (c *Client) AllUsers(ctx context.Context, f UserFilter) ([]User, error) {
	var all []User
	for {
		page, err := c.ListUsers(ctx, f)
		if err != nil {
			return nil, err
		}
		all = append(all, page.Items...)
		if page.Next == "" || len(page.Items) == 0 {
			return all, nil
		}
		f.After = page.Next
	}
}

// CreateUser creates a user.
func (c *Client) CreateUser(ctx context.Context, req CreateUserRequest) (CreatedUser, error) {
	if req.Roles == nil {
		req.Roles = []RoleBinding{}
	}
	var out CreatedUser
	err := c.do(ctx, http.MethodPost, "/api/v1/users", req, &out)
	return out, err
}

// GetUser returns a user by ID ("usr_…") or username.
func (c *Client) GetUser(ctx context.Context, ref string) (User, error) {
	var out User
	err := c.do(ctx, http.MethodGet, userPath(ref), nil, &out)
	return out, err
}

// UpdateUser changes the given fields of a user.
func (c *Client) UpdateUser(ctx context.Context, ref string, req UpdateUserRequest) (User, error) {
	var out User
	err := c.do(ctx, http.MethodPatch, userPath(ref), req, &out)
	return out, err
}

// DeleteUser deletes a user and ends its sessions.
func (c *Client) DeleteUser(ctx context.Context, ref string) error {
	return c.do(ctx, http.MethodDelete, userPath(ref), nil, nil)
}

// ResetUserPassword sets a user's password (empty: the server generates
// one, returned here) and makes them change it at next login.
func (c *Client) ResetUserPassword(ctx context.Context, ref, password string) (string, error) {
	var in any
	if password != "" {
		in = map[string]string{"password": password}
	}
	var out struct {
		Password string `json:"password"`
	}
	err := c.do(ctx, http.MethodPost, userPath(ref, "/password"), in, &out)
	return out.Password, err
}

// UnlockUser ends a user's login lockout.
func (c *Client) UnlockUser(ctx context.Context, ref string) (User, error) {
	var out User
	err := c.do(ctx, http.MethodPost, userPath(ref, "/unlock"), nil, &out)
	return out, err
}

// ResetUserTOTP removes a user's second factor.
func (c *Client) ResetUserTOTP(ctx context.Context, ref string) (User, error) {
	var out User
	err := c.do(ctx, http.MethodDelete, userPath(ref, "/totp"), nil, &out)
	return out, err
}

// UserSessions lists a user's sessions.
func (c *Client) UserSessions(ctx context.Context, ref string) ([]Session, error) {
	var out items[Session]
	err := c.do(ctx, http.MethodGet, userPath(ref, "/sessions"), nil, &out)
	return out.Items, err
}

// RevokeUserSessions ends every session of a user.
func (c *Client) RevokeUserSessions(ctx context.Context, ref string) ([]string, error) {
	var out revokedIDs
	err := c.do(ctx, http.MethodDelete, userPath(ref, "/sessions"), nil, &out)
	return out.Revoked, err
}

// --- roles ------------------------------------------------------------------

// ListRoles lists the built-in and custom roles.
func (c *Client) ListRoles(ctx context.Context) ([]Role, error) {
	var out items[Role]
	err := c.do(ctx, http.MethodGet, "/api/v1/roles", nil, &out)
	return out.Items, err
}

// GetRole returns a role by name.
func (c *Client) GetRole(ctx context.Context, name string) (Role, error) {
	var out Role
	err := c.do(ctx, http.MethodGet, "/api/v1/roles/"+url.PathEscape(name), nil, &out)
	return out, err
}

type roleRequest struct {
	Name        string   `json:"name,omitempty"`
	Description string   `json:"description,omitempty"`
	Permissions []string `json:"permissions"`
}

// CreateRole creates a custom role.
func (c *Client) CreateRole(ctx context.Context, r Role) (Role, error) {
	var out Role
	err := c.do(ctx, http.MethodPost, "/api/v1/roles", roleRequest{Name: r.Name, Description: r.Description, Permissions: nonNil(r.Permissions)}, &out)
	return out, err
}

// UpdateRole replaces a custom role's description and permissions.
func (c *Client) UpdateRole(ctx context.Context, r Role) (Role, error) {
	var out Role
	err := c.do(ctx, http.MethodPut, "/api/v1/roles/"+url.PathEscape(r.Name), roleRequest{Description: r.Description, Permissions: nonNil(r.Permissions)}, &out)
	return out, err
}

// DeleteRole deletes a custom role.
func (c *Client) DeleteRole(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/api/v1/roles/"+url.PathEscape(name), nil, nil)
}

// Permissions lists every permission a role may grant.
func (c *Client) Permissions(ctx context.Context) ([]string, error) {
	var out items[string]
	err := c.do(ctx, http.MethodGet, "/api/v1/permissions", nil, &out)
	return out.Items, err
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// --- sessions ---------------------------------------------------------------

// ListSessions lists the caller's sessions; all adds ended ones, and user
// (an admin's query) names another user.
func (c *Client) ListSessions(ctx context.Context, user string, all bool) ([]Session, error) {
	q := url.Values{}
	if all {
		q.Set("all", "true")
	}
	if user != "" {
		q.Set("user", user)
	}
	path := "/api/v1/sessions"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out items[Session]
	err := c.do(ctx, http.MethodGet, path, nil, &out)
	return out.Items, err
}

// RevokeSession ends one session.
func (c *Client) RevokeSession(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/api/v1/sessions/"+url.PathEscape(id), nil, nil)
}

// RevokeOtherSessions ends every session of the caller except the current
// one.
func (c *Client) RevokeOtherSessions(ctx context.Context) ([]string, error) {
	var out revokedIDs
	err := c.do(ctx, http.MethodPost, "/api/v1/sessions/revoke-others", nil, &out)
	return out.Revoked, err
}

// --- API tokens -------------------------------------------------------------

// ListTokens lists the caller's API tokens (all: everyone's, for admins).
func (c *Client) ListTokens(ctx context.Context, all bool) ([]APIToken, error) {
	path := "/api/v1/tokens"
	if all {
		path += "?all=true"
	}
	var out items[APIToken]
	err := c.do(ctx, http.MethodGet, path, nil, &out)
	return out.Items, err
}

// CreateToken creates an API token; its secret is in the answer only.
func (c *Client) CreateToken(ctx context.Context, req CreateTokenRequest) (CreatedToken, error) {
	if req.Roles == nil {
		req.Roles = []RoleBinding{}
	}
	var out CreatedToken
	err := c.do(ctx, http.MethodPost, "/api/v1/tokens", req, &out)
	return out, err
}

// RevokeToken revokes an API token.
func (c *Client) RevokeToken(ctx context.Context, id string) (APIToken, error) {
	var out APIToken
	err := c.do(ctx, http.MethodDelete, "/api/v1/tokens/"+url.PathEscape(id), nil, &out)
	return out, err
}
