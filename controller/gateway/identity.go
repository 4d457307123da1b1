package gateway

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/opsconductor/opsconductor/controller/identity"
	"github.com/opsconductor/opsconductor/controller/problem"
)

// loginRequest is the body of POST /api/v1/auth/login.
type loginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
	TOTP     string `json:"totp"`
	// Cookie asks for the refresh token in an HttpOnly cookie instead of
	// the body: what the web UI does, so that page scripts never see it.
	Cookie bool `json:"cookie"`
}

// decodeLogin reads and checks a login body; it is fuzzed.
func decodeLogin(r *http.Request) (loginRequest, error) {
	var req loginRequest
	if err := decodeJSON(r, &req); err != nil {
		return req, err
	}
	var errs problem.List
	if req.Username == "" {
		errs.Add("username", "is required")
	} else if len(req.Username) > 256 {
		errs.Add("username", "must be at most 256 bytes")
	}
	if req.Password == "" {
		errs.Add("password", "is required")
	} else if len(req.Password) > 1024 {
		errs.Add("password", "must be at most 1024 bytes")
	}
	if len(req.TOTP) > 64 {
		errs.Add("totp", "must be at most 64 bytes")
	}
	return req, errs.Err()
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) error {
	req, err := decodeLogin(r)
	if err != nil {
		return err
	}
	tokens, err := s.identity.Login(r.Context(), identity.LoginRequest{
		Username: req.Username, Password: req.Password, TOTP: req.TOTP, SourceIP: clientAddr(r), UserAgent: r.UserAgent(),
	})
	if err != nil {
		return err
	}
	if req.Cookie {
		if err := s.setSessionCookies(w, tokens); err != nil {
			return err
		}
		tokens.RefreshToken = ""
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, r, http.StatusOK, tokens)
	return nil
}

type refreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

// refreshFrom returns the refresh token of a request: from the JSON body,
// or, when the body is empty, from the cookie (with the CSRF check).
func refreshFrom(r *http.Request) (token string, viaCookie bool, err error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return "", false, err
	}
	if len(strings.TrimSpace(string(body))) > 0 {
		if err := requireMediaType(r, "application/json"); err != nil {
			return "", false, err
		}
		var req refreshRequest
		if err := decodeStrict(strings.NewReader(string(body)), &req); err != nil {
			return "", false, err
		}
		if req.RefreshToken == "" {
			return "", false, problem.Invalid("refresh_token", "is required (or send the session cookie with an empty body)")
		}
		return req.RefreshToken, false, nil
	}
	c, err := r.Cookie(cookieRefresh)
	if err != nil || c.Value == "" {
		return "", false, nil
	}
	if err := checkCSRF(r); err != nil {
		return "", false, err
	}
	return c.Value, true, nil
}

func (s *Server) refresh(w http.ResponseWriter, r *http.Request) error {
	token, viaCookie, err := refreshFrom(r)
	if err != nil {
		return err
	}
	if token == "" {
		return problem.Invalid("refresh_token", "is required (or send the session cookie with an empty body)")
	}
	tokens, err := s.identity.Refresh(r.Context(), token, clientAddr(r), r.UserAgent())
	if err != nil {
		if viaCookie && problem.Is(err, problem.KindUnauthenticated) {
			clearSessionCookies(w)
		}
		return err
	}
	if viaCookie {
		if err := s.setSessionCookies(w, tokens); err != nil {
			return err
		}
		tokens.RefreshToken = ""
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, r, http.StatusOK, tokens)
	return nil
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) error {
	p := principal(r)
	token, viaCookie := "", false
	if p == nil {
		var err error
		if token, viaCookie, err = refreshFrom(r); err != nil {
			return err
		}
	}
	if err := s.identity.Logout(r.Context(), p, token, clientAddr(r)); err != nil {
		return err
	}
	if viaCookie || hasCookie(r, cookieRefresh) {
		clearSessionCookies(w)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func hasCookie(r *http.Request, name string) bool {
	_, err := r.Cookie(name)
	return err == nil
}

func (s *Server) setSessionCookies(w http.ResponseWriter, t *identity.Tokens) error {
	csrf := make([]byte, 32)
	if _, err := rand.Read(csrf); err != nil {
		return err
	}
	maxAge := int(time.Until(t.RefreshExpiresAt) / time.Second)
	http.SetCookie(w, &http.Cookie{Name: cookieRefresh, Value: t.RefreshToken, Path: authPath, MaxAge: maxAge,
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
	http.SetCookie(w, &http.Cookie{Name: cookieCSRF, Value: base64.RawURLEncoding.EncodeToString(csrf), Path: "/", MaxAge: maxAge,
		Secure: true, SameSite: http.SameSiteStrictMode})
	return nil
}

func clearSessionCookies(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: cookieRefresh, Path: authPath, MaxAge: -1, HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
	http.SetCookie(w, &http.Cookie{Name: cookieCSRF, Path: "/", MaxAge: -1, Secure: true, SameSite: http.SameSiteStrictMode})
}

func constantTimeEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// --- me -------------------------------------------------------------------

func (s *Server) getMe(w http.ResponseWriter, r *http.Request) error {
	me, err := s.identity.Me(r.Context(), principal(r))
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, me)
	return nil
}

func (s *Server) patchMe(w http.ResponseWriter, r *http.Request) error {
	var req identity.UpdateProfile
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	u, err := s.identity.UpdateMe(r.Context(), principal(r), req)
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, u)
	return nil
}

type changePasswordRequest struct {
	CurrentPassword string `json:"current_password"`
	NewPassword     string `json:"new_password"`
}

func (s *Server) changePassword(w http.ResponseWriter, r *http.Request) error {
	var req changePasswordRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	var errs problem.List
	if req.CurrentPassword == "" {
		errs.Add("current_password", "is required")
	}
	if req.NewPassword == "" {
		errs.Add("new_password", "is required")
	}
	if err := errs.Err(); err != nil {
		return err
	}
	if err := s.identity.ChangePassword(r.Context(), principal(r), req.CurrentPassword, req.NewPassword); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type passwordRequest struct {
	Password string `json:"password"`
}

func (s *Server) beginTOTP(w http.ResponseWriter, r *http.Request) error {
	var req passwordRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	enr, err := s.identity.BeginTOTP(r.Context(), principal(r), req.Password)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, r, http.StatusOK, enr)
	return nil
}

type codeRequest struct {
	Code string `json:"code"`
}

type recoveryCodes struct {
	RecoveryCodes []string `json:"recovery_codes"`
}

func (s *Server) confirmTOTP(w http.ResponseWriter, r *http.Request) error {
	var req codeRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	codes, err := s.identity.ConfirmTOTP(r.Context(), principal(r), req.Code)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, r, http.StatusOK, recoveryCodes{RecoveryCodes: codes})
	return nil
}

func (s *Server) disableTOTP(w http.ResponseWriter, r *http.Request) error {
	var req passwordRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if err := s.identity.DisableTOTP(r.Context(), principal(r), req.Password); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// --- users ----------------------------------------------------------------

const (
	defaultPageLimit = 100
	maxPageLimit     = 1000
)

func limitParam(r *http.Request) (int, error) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return defaultPageLimit, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxPageLimit {
		return 0, problem.Invalid("limit", "must be an integer from 1 to %d, got %q", maxPageLimit, v)
	}
	return n, nil
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) error {
	limit, err := limitParam(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	f := identity.UserFilter{Query: q.Get("q"), Role: q.Get("role"), After: q.Get("after"), Limit: limit}
	if q.Get("disabled") != "" {
		d, err := boolParam(r, "disabled")
		if err != nil {
			return err
		}
		f.Disabled = &d
	}
	page, err := s.identity.ListUsers(r.Context(), f)
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, page)
	return nil
}

type createdUser struct {
	identity.UserView
	// InitialPassword is set only when the server generated it.
	InitialPassword string `json:"initial_password,omitempty"`
}

func (s *Server) createUser(w http.ResponseWriter, r *http.Request) error {
	var req identity.CreateUser
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	u, pw, err := s.identity.CreateUser(r.Context(), principal(r), req)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/users/"+u.ID)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, r, http.StatusCreated, createdUser{UserView: u, InitialPassword: pw})
	return nil
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request) error {
	u, err := s.identity.GetUser(r.Context(), r.PathValue("user"))
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, u)
	return nil
}

func (s *Server) patchUser(w http.ResponseWriter, r *http.Request) error {
	var req identity.UpdateUser
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	u, err := s.identity.UpdateUser(r.Context(), principal(r), r.PathValue("user"), req)
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, u)
	return nil
}

func (s *Server) deleteUser(w http.ResponseWriter, r *http.Request) error {
	if err := s.identity.DeleteUser(r.Context(), principal(r), r.PathValue("user")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type resetPasswordResponse struct {
	// Password is set only when the server generated it.
	Password string `json:"password,omitempty"`
}

func (s *Server) resetPassword(w http.ResponseWriter, r *http.Request) error {
	var req passwordRequest
	if r.ContentLength != 0 {
		if err := decodeJSON(r, &req); err != nil {
			return err
		}
	}
	pw, err := s.identity.ResetPassword(r.Context(), principal(r), r.PathValue("user"), req.Password)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, r, http.StatusOK, resetPasswordResponse{Password: pw})
	return nil
}

func (s *Server) unlockUser(w http.ResponseWriter, r *http.Request) error {
	u, err := s.identity.Unlock(r.Context(), principal(r), r.PathValue("user"))
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, u)
	return nil
}

func (s *Server) resetUserTOTP(w http.ResponseWriter, r *http.Request) error {
	u, err := s.identity.ResetTOTP(r.Context(), principal(r), r.PathValue("user"))
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, u)
	return nil
}

type revokedSessions struct {
	Revoked []string `json:"revoked"`
}

func (s *Server) revokeUserSessions(w http.ResponseWriter, r *http.Request) error {
	ids, err := s.identity.RevokeUserSessions(r.Context(), principal(r), r.PathValue("user"))
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, revokedSessions{Revoked: ids})
	return nil
}

// --- roles ----------------------------------------------------------------

type roleList struct {
	Items []identity.Role `json:"items"`
}

func (s *Server) listRoles(w http.ResponseWriter, r *http.Request) error {
	roles, err := s.identity.ListRoles(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, roleList{Items: roles})
	return nil
}

func (s *Server) getRole(w http.ResponseWriter, r *http.Request) error {
	role, err := s.identity.GetRole(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, role)
	return nil
}

type roleRequest struct {
	Name        string                `json:"name"`
	Description string                `json:"description"`
	Permissions []identity.Permission `json:"permissions"`
}

func (s *Server) createRole(w http.ResponseWriter, r *http.Request) error {
	var req roleRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	role, err := s.identity.PutRole(r.Context(), principal(r), identity.Role{Name: req.Name, Description: req.Description, Permissions: req.Permissions}, true)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/roles/"+role.Name)
	writeJSON(w, r, http.StatusCreated, role)
	return nil
}

func (s *Server) putRole(w http.ResponseWriter, r *http.Request) error {
	var req roleRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	name := r.PathValue("name")
	if req.Name != "" && req.Name != name {
		return problem.Invalid("name", "must match the path (%q) or be omitted; roles are not renamed", name)
	}
	role, err := s.identity.PutRole(r.Context(), principal(r), identity.Role{Name: name, Description: req.Description, Permissions: req.Permissions}, false)
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, role)
	return nil
}

func (s *Server) deleteRole(w http.ResponseWriter, r *http.Request) error {
	if err := s.identity.DeleteRole(r.Context(), principal(r), r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type permissionList struct {
	Items []identity.Permission `json:"items"`
}

func (s *Server) listPermissions(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, r, http.StatusOK, permissionList{Items: identity.Permissions})
	return nil
}

// --- sessions -------------------------------------------------------------

type sessionList struct {
	Items []identity.SessionView `json:"items"`
}

func (s *Server) listSessions(w http.ResponseWriter, r *http.Request) error {
	all, err := boolParam(r, "all")
	if err != nil {
		return err
	}
	items, err := s.identity.ListSessions(r.Context(), principal(r), r.URL.Query().Get("user"), all)
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, sessionList{Items: items})
	return nil
}

func (s *Server) listUserSessions(w http.ResponseWriter, r *http.Request) error {
	all, err := boolParam(r, "all")
	if err != nil {
		return err
	}
	items, err := s.identity.ListSessions(r.Context(), principal(r), r.PathValue("user"), all)
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, sessionList{Items: items})
	return nil
}

func (s *Server) revokeSession(w http.ResponseWriter, r *http.Request) error {
	if err := s.identity.RevokeSession(r.Context(), principal(r), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) revokeOtherSessions(w http.ResponseWriter, r *http.Request) error {
	ids, err := s.identity.RevokeOtherSessions(r.Context(), principal(r))
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, revokedSessions{Revoked: ids})
	return nil
}

// --- API tokens -----------------------------------------------------------

type tokenList struct {
	Items []identity.TokenView `json:"items"`
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) error {
	all, err := boolParam(r, "all")
	if err != nil {
		return err
	}
	items, err := s.identity.ListTokens(r.Context(), principal(r), all)
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, tokenList{Items: items})
	return nil
}

type createdToken struct {
	identity.TokenView
	// Token is the secret, shown only in this response.
	Token string `json:"token"`
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request) error {
	var req identity.CreateToken
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	view, secret, err := s.identity.CreateToken(r.Context(), principal(r), req)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, r, http.StatusCreated, createdToken{TokenView: view, Token: secret})
	return nil
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) error {
	view, err := s.identity.RevokeToken(r.Context(), principal(r), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, view)
	return nil
}

// --- signing keys ---------------------------------------------------------

type signingKeyList struct {
	Items []identity.SigningKeyView `json:"items"`
}

func (s *Server) listSigningKeys(w http.ResponseWriter, r *http.Request) error {
	keys, err := s.identity.SigningKeys()
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, signingKeyList{Items: keys})
	return nil
}

type rotatedKey struct {
	KID string `json:"kid"`
}

func (s *Server) rotateSigningKey(w http.ResponseWriter, r *http.Request) error {
	kid, err := s.identity.RotateSigningKey(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, rotatedKey{KID: kid})
	return nil
}
