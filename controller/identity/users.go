package identity

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/opsconductor/opsconductor/controller/problem"
)

func jwtClaims(iss, aud, sub, jti string, iat, exp time.Time) jwt.RegisteredClaims {
	return jwt.RegisteredClaims{Issuer: iss, Audience: jwt.ClaimStrings{aud}, Subject: sub, ID: jti,
		IssuedAt: jwt.NewNumericDate(iat), ExpiresAt: jwt.NewNumericDate(exp)}
}

// requireCovers refuses to let actor grant bindings it does not hold
// itself: users:admin alone does not make anyone admin.
func (s *Service) requireCovers(actor *Principal, field string, bindings []Binding) error {
	roles := roleLookup(s.txn())
	var errs problem.List
	for i, b := range bindings {
		if _, ok := roles(b.Role); ok && !covers(actor.Roles, b, roles) {
			errs = append(errs, &problem.Error{Kind: problem.KindForbidden, Code: "exceeds_own_roles", Field: fmt.Sprintf("%s[%d]", field, i),
				Message: fmt.Sprintf("you cannot grant role %q: you do not hold it with that scope yourself", b.Role)})
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return errs[0]
}

// UserFilter selects users for List.
type UserFilter struct {
	Query    string // substring of username, display name or email
	Role     string
	Disabled *bool
	After    string // username cursor
	Limit    int
}

// UserPage is one page of users.
type UserPage struct {
	Items []UserView `json:"items"`
	Next  string     `json:"next"`
}

// ListUsers pages through users sorted by username.
func (s *Service) ListUsers(_ context.Context, f UserFilter) (UserPage, error) {
	users, err := s.sortedUsers(s.txn())
	if err != nil {
		return UserPage{}, err
	}
	now := s.now()
	page := UserPage{Items: []UserView{}}
	for _, u := range users {
		if f.After != "" && u.Username <= f.After {
			continue
		}
		if f.Query != "" && !containsFold(u.Username, f.Query) && !containsFold(u.DisplayName, f.Query) && !containsFold(u.Email, f.Query) {
			continue
		}
		if f.Role != "" && !slices.Contains(bindingNames(u.Roles), f.Role) {
			continue
		}
		if f.Disabled != nil && u.Disabled != *f.Disabled {
			continue
		}
		if len(page.Items) == f.Limit {
			page.Next = page.Items[len(page.Items)-1].Username
			break
		}
		page.Items = append(page.Items, u.View(now))
	}
	return page, nil
}

// GetUser returns one user by ID or username.
func (s *Service) GetUser(_ context.Context, ref string) (UserView, error) {
	u, err := s.resolveUser(ref)
	if err != nil {
		return UserView{}, err
	}
	return u.View(s.now()), nil
}

// CreateUser is an admin's request for a new account.
type CreateUser struct {
	Username    string    `json:"username"`
	DisplayName string    `json:"display_name"`
	Email       string    `json:"email"`
	Roles       []Binding `json:"roles"`
	// Password is optional: without one a random password is generated and
	// returned once. Either way the user must change it at first login
	// unless MustChangePassword is explicitly false.
	Password           string `json:"password"`
	MustChangePassword *bool  `json:"must_change_password"`
}

// CreateUser adds a user. It returns the generated password when none was
// given.
func (s *Service) CreateUser(ctx context.Context, actor *Principal, req CreateUser) (UserView, string, error) {
	var errs problem.List
	req.Username = strings.ToLower(strings.TrimSpace(req.Username))
	validateUsername(&errs, "username", req.Username)
	validateText(&errs, "display_name", req.DisplayName, 128)
	validateEmail(&errs, "email", req.Email)
	validateBindings("roles", req.Roles, roleLookup(s.txn()), &errs)
	generated := ""
	if req.Password == "" {
		pw, err := randomSecret(15)
		if err != nil {
			return UserView{}, "", err
		}
		generated, req.Password = pw, pw
	} else if err := s.checkPassword("password", req.Username, req.Password); err != nil {
		errs = append(errs, err.(*problem.Error))
	}
	if err := errs.Err(); err != nil {
		return UserView{}, "", err
	}
	if err := s.requireCovers(actor, "roles", req.Roles); err != nil {
		return UserView{}, "", err
	}
	hash, err := s.hasher.Hash(ctx, req.Password)
	if err != nil {
		return UserView{}, "", err
	}
	id, err := newID("usr_")
	if err != nil {
		return UserView{}, "", err
	}
	mustChange := req.MustChangePassword == nil || *req.MustChangePassword
	u := User{ID: id, Username: req.Username, DisplayName: req.DisplayName, Email: req.Email, Roles: req.Roles,
		PasswordHash: hash, MustChangePassword: mustChange}
	if u.Roles == nil {
		u.Roles = []Binding{}
	}
	var view UserView
	err = s.apply(ctx, cmdUserCreate, userCreatePayload{User: u}, &view)
	s.auditChange(ctx, actor, "user.create", req.Username, err)
	return view, generated, err
}

// UpdateUser is a partial update; nil fields stay as they are.
type UpdateUser struct {
	DisplayName *string    `json:"display_name"`
	Email       *string    `json:"email"`
	Roles       *[]Binding `json:"roles"`
	Disabled    *bool      `json:"disabled"`
}

// UpdateUser changes a user's profile, roles or disabled flag. Disabling
// a user ends all their sessions at once.
func (s *Service) UpdateUser(ctx context.Context, actor *Principal, ref string, req UpdateUser) (UserView, error) {
	u, err := s.resolveUser(ref)
	if err != nil {
		return UserView{}, err
	}
	var errs problem.List
	if req.DisplayName != nil {
		validateText(&errs, "display_name", *req.DisplayName, 128)
	}
	if req.Email != nil {
		validateEmail(&errs, "email", *req.Email)
	}
	if req.Roles != nil {
		validateBindings("roles", *req.Roles, roleLookup(s.txn()), &errs)
	}
	if err := errs.Err(); err != nil {
		return UserView{}, err
	}
	if req.Roles != nil {
		// Only the bindings being added need covering: an admin with a
		// scoped role can still remove a role it does not hold.
		var added []Binding
		for _, b := range *req.Roles {
			if !slices.ContainsFunc(u.Roles, func(o Binding) bool { return o.Role == b.Role && o.Scope.key() == b.Scope.key() }) {
				added = append(added, b)
			}
		}
		if err := s.requireCovers(actor, "roles", added); err != nil {
			return UserView{}, err
		}
	}
	if req.Disabled != nil && *req.Disabled && u.ID == actor.UserID {
		return UserView{}, &problem.Error{Kind: problem.KindConflict, Code: "cannot_disable_self", Field: "disabled", Message: "you cannot disable your own account"}
	}
	var view UserView
	err = s.apply(ctx, cmdUserUpdate, userUpdatePayload{ID: u.ID, DisplayName: req.DisplayName, Email: req.Email, Roles: req.Roles, Disabled: req.Disabled}, &view)
	s.auditChange(ctx, actor, "user.update", u.Username, err)
	return view, err
}

// DeleteUser removes a user with their sessions and API tokens.
func (s *Service) DeleteUser(ctx context.Context, actor *Principal, ref string) error {
	u, err := s.resolveUser(ref)
	if err != nil {
		return err
	}
	if u.ID == actor.UserID {
		return problem.New(problem.KindConflict, "cannot_delete_self", "you cannot delete your own account")
	}
	err = s.apply(ctx, cmdUserDelete, idPayload{ID: u.ID}, nil)
	s.auditChange(ctx, actor, "user.delete", u.Username, err)
	return err
}

// ResetPassword is an admin's reset: the user must change the password at
// next login and every session of theirs ends. An empty password is
// generated and returned.
func (s *Service) ResetPassword(ctx context.Context, actor *Principal, ref, pw string) (string, error) {
	u, err := s.resolveUser(ref)
	if err != nil {
		return "", err
	}
	generated := ""
	if pw == "" {
		if generated, err = randomSecret(15); err != nil {
			return "", err
		}
		pw = generated
	} else if err := s.checkPassword("password", u.Username, pw); err != nil {
		return "", err
	}
	hash, err := s.hasher.Hash(ctx, pw)
	if err != nil {
		return "", err
	}
	err = s.apply(ctx, cmdUserPassword, userPasswordPayload{ID: u.ID, Hash: hash, MustChange: true}, nil)
	s.auditChange(ctx, actor, "user.password_reset", u.Username, err)
	return generated, err
}

// Unlock clears a user's failed-login lockout.
func (s *Service) Unlock(ctx context.Context, actor *Principal, ref string) (UserView, error) {
	u, err := s.resolveUser(ref)
	if err != nil {
		return UserView{}, err
	}
	var view UserView
	err = s.apply(ctx, cmdUserUnlock, idPayload{ID: u.ID}, &view)
	s.auditChange(ctx, actor, "user.unlock", u.Username, err)
	return view, err
}

// ResetTOTP turns off a user's second factor (they lost the device).
func (s *Service) ResetTOTP(ctx context.Context, actor *Principal, ref string) (UserView, error) {
	u, err := s.resolveUser(ref)
	if err != nil {
		return UserView{}, err
	}
	var view UserView
	err = s.apply(ctx, cmdUserTOTP, totpPayload{ID: u.ID, Op: "disable"}, &view)
	s.auditChange(ctx, actor, "user.totp_reset", u.Username, err)
	return view, err
}

func (s *Service) auditChange(ctx context.Context, actor *Principal, action, target string, err error) {
	ev := AuditEvent{Action: action, Target: target, Outcome: "success"}
	if actor != nil {
		ev.Actor = actor.Name()
	}
	if err != nil {
		ev.Outcome, ev.Detail = "failure", err.Error()
	}
	s.audit(ctx, ev)
}

// --- self service -------------------------------------------------------

// Me is the caller's own view: the user, what they may do and their
// session.
type Me struct {
	User        UserView     `json:"user"`
	Permissions []Permission `json:"permissions"`
	SessionID   string       `json:"session_id,omitempty"`
	TokenID     string       `json:"token_id,omitempty"`
}

// Me returns the caller's profile and effective permissions.
func (s *Service) Me(_ context.Context, p *Principal) (Me, error) {
	u, err := getUser(s.txn(), p.UserID)
	if err != nil {
		return Me{}, err
	}
	return Me{User: u.View(s.now()), Permissions: p.Permissions(), SessionID: p.SessionID, TokenID: p.TokenID}, nil
}

// UpdateProfile is what users may change about themselves.
type UpdateProfile struct {
	DisplayName *string `json:"display_name"`
	Email       *string `json:"email"`
}

// UpdateMe changes the caller's display name or email.
func (s *Service) UpdateMe(ctx context.Context, p *Principal, req UpdateProfile) (UserView, error) {
	var errs problem.List
	if req.DisplayName != nil {
		validateText(&errs, "display_name", *req.DisplayName, 128)
	}
	if req.Email != nil {
		validateEmail(&errs, "email", *req.Email)
	}
	if err := errs.Err(); err != nil {
		return UserView{}, err
	}
	var view UserView
	err := s.apply(ctx, cmdUserUpdate, userUpdatePayload{ID: p.UserID, DisplayName: req.DisplayName, Email: req.Email}, &view)
	return view, err
}

// ChangePassword is the self-service change: it needs the current
// password, keeps the caller's session and ends every other one.
func (s *Service) ChangePassword(ctx context.Context, p *Principal, current, next string) error {
	u, err := getUser(s.txn(), p.UserID)
	if err != nil {
		return err
	}
	ok, _, err := s.hasher.Verify(ctx, current, u.PasswordHash)
	if err != nil {
		return fmt.Errorf("verify password: %w", err)
	}
	if !ok {
		return &problem.Error{Kind: problem.KindForbidden, Code: "wrong_password", Field: "current_password", Message: "the current password is wrong"}
	}
	if current == next {
		return &problem.Error{Kind: problem.KindInvalid, Code: "password_unchanged", Field: "new_password", Message: "the new password must differ from the current one"}
	}
	if err := s.checkPassword("new_password", u.Username, next); err != nil {
		return err
	}
	hash, err := s.hasher.Hash(ctx, next)
	if err != nil {
		return err
	}
	err = s.apply(ctx, cmdUserPassword, userPasswordPayload{ID: u.ID, Hash: hash, KeepSession: p.SessionID, ExpectHash: u.PasswordHash}, nil)
	s.auditChange(ctx, p, "user.password_change", u.Username, err)
	return err
}
