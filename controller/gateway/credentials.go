package gateway

import (
	"net/http"
	"strings"

	"github.com/opsconductor/opsconductor/controller/assets/credentials"
	"github.com/opsconductor/opsconductor/controller/identity"
	"github.com/opsconductor/opsconductor/controller/keyring"
	"github.com/opsconductor/opsconductor/controller/problem"
)

// credentialRoutes lists the credentials routes and the keyring's
// operator routes that rotate the keys wrapping them. No route ever
// answers with a secret value: credentials go in, metadata comes out.
func (s *Server) credentialRoutes() []route {
	r := func(method, path string, class RouteClass, access Access, h handlerFunc) route {
		return s.newRoute(method, path, class, access, s.needCredentials(h))
	}
	read, write := perm(identity.PermCredentialsRead), perm(identity.PermCredentialsWrite)
	clusterAdmin := perm(identity.PermClusterAdmin)
	const attachment = "/api/v1/credentials/{name}/attachments/{scope}/{object}/{role}"
	return []route{
		r(http.MethodPost, "/api/v1/credentials", ClassWrite, write, s.createCredential),
		consistent(r(http.MethodGet, "/api/v1/credentials", ClassRead, read, s.listCredentials)),
		consistent(r(http.MethodGet, "/api/v1/credentials/{name}", ClassRead, read, s.getCredential)),
		r(http.MethodPut, "/api/v1/credentials/{name}", ClassWrite, write, s.replaceCredential),
		r(http.MethodDelete, "/api/v1/credentials/{name}", ClassWrite, write, s.deleteCredential),
		r(http.MethodPut, attachment, ClassWrite, write, s.attachCredential),
		r(http.MethodDelete, attachment, ClassWrite, write, s.detachCredential),

		consistent(r(http.MethodGet, "/api/v1/operator/keyring", ClassOperator, clusterAdmin, s.listKeyring)),
		r(http.MethodPost, "/api/v1/operator/keyring/rotate", ClassOperator, clusterAdmin, s.rotateKeyring),
		r(http.MethodDelete, "/api/v1/operator/keyring/keys/{id}", ClassOperator, clusterAdmin, s.removeKey),
	}
}

// needCredentials answers 503 while no credentials service or keyring is
// wired.
func (s *Server) needCredentials(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if s.credentials == nil || s.keyring == nil {
			return problem.Unavailable("credentials_unavailable", "this controller does not serve credentials: the keyring is not wired")
		}
		return h(w, r)
	}
}

// credentialList is GET /api/v1/credentials.
type credentialList struct {
	Items []credentials.Credential `json:"items"`
}

func (s *Server) createCredential(w http.ResponseWriter, r *http.Request) error {
	var in credentials.Input
	if err := decodeJSON(r, &in); err != nil {
		return err
	}
	c, err := s.credentials.Create(r.Context(), principal(r), in)
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusCreated, c)
	return nil
}

func (s *Server) listCredentials(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	f := credentials.Filter{Kind: q.Get("kind")}
	if f.Kind != "" && !isKind(f.Kind) {
		return problem.Invalid("kind", "must be one of %s, got %q", strings.Join(credentials.Kinds, ", "), f.Kind)
	}
	for _, t := range q["tag"] {
		k, v, ok := strings.Cut(t, "=")
		if !ok || k == "" {
			return problem.Invalid("tag", "must be key=value, got %q", t)
		}
		if f.Tags == nil {
			f.Tags = map[string]string{}
		}
		f.Tags[k] = v
	}
	items, err := s.credentials.List(r.Context(), principal(r), f)
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, credentialList{Items: items})
	return nil
}

func isKind(k string) bool {
	for _, known := range credentials.Kinds {
		if k == known {
			return true
		}
	}
	return false
}

func (s *Server) getCredential(w http.ResponseWriter, r *http.Request) error {
	c, err := s.credentials.Get(r.Context(), principal(r), r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, c)
	return nil
}

// replaceCredential is PUT: the body replaces the metadata; a body with a
// secret replaces the secret too, one without keeps it.
func (s *Server) replaceCredential(w http.ResponseWriter, r *http.Request) error {
	var in credentials.Input
	if err := decodeJSON(r, &in); err != nil {
		return err
	}
	c, err := s.credentials.Replace(r.Context(), principal(r), r.PathValue("name"), in)
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, c)
	return nil
}

func (s *Server) deleteCredential(w http.ResponseWriter, r *http.Request) error {
	if err := s.credentials.Delete(r.Context(), principal(r), r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// attachmentScope maps the path's plural ("targets", "groups") to the
// attachment scope.
func attachmentScope(r *http.Request) (string, error) {
	switch v := r.PathValue("scope"); v {
	case "targets":
		return credentials.ScopeTarget, nil
	case "groups":
		return credentials.ScopeGroup, nil
	default:
		return "", problem.Invalid("scope", "must be targets or groups, got %q", v)
	}
}

func (s *Server) attachCredential(w http.ResponseWriter, r *http.Request) error {
	scope, err := attachmentScope(r)
	if err != nil {
		return err
	}
	a, err := s.credentials.Attach(r.Context(), principal(r), r.PathValue("name"), scope, r.PathValue("object"), r.PathValue("role"))
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, a)
	return nil
}

func (s *Server) detachCredential(w http.ResponseWriter, r *http.Request) error {
	scope, err := attachmentScope(r)
	if err != nil {
		return err
	}
	if err := s.credentials.Detach(r.Context(), principal(r), r.PathValue("name"), scope, r.PathValue("object"), r.PathValue("role")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) listKeyring(w http.ResponseWriter, r *http.Request) error {
	st, err := s.keyring.List(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, st)
	return nil
}

// rotateKeyring answers with the new key's public description; its
// sealed material stays in the state.
func (s *Server) rotateKeyring(w http.ResponseWriter, r *http.Request) error {
	k, err := s.keyring.Rotate(r.Context(), principal(r).Name())
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusCreated, keyring.KeyInfo{ID: k.ID, Tier: "kek", State: k.State, CreatedAt: k.CreatedAt,
		CreatedBy: k.CreatedBy, Envelopes: map[string]int{}})
	return nil
}

func (s *Server) removeKey(w http.ResponseWriter, r *http.Request) error {
	if err := s.keyring.Remove(r.Context(), r.PathValue("id"), principal(r).Name()); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
