package apiclient

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// The credentials and keyring APIs' documents, mirroring the controller's
// JSON. (credentials.go is the CLI's own login store, not this.)

// Credential is a stored credential's metadata; the API never returns a
// secret value.
type Credential struct {
	ID          string               `json:"id"`
	Name        string               `json:"name"`
	Description string               `json:"description,omitempty"`
	Kind        string               `json:"kind"`
	Username    string               `json:"username,omitempty"`
	Tags        map[string]string    `json:"tags,omitempty"`
	Fingerprint string               `json:"fingerprint,omitempty"`
	PublicKey   string               `json:"public_key,omitempty"`
	Subject     string               `json:"subject,omitempty"`
	NotAfter    time.Time            `json:"not_after,omitzero"`
	CreatedAt   time.Time            `json:"created_at"`
	CreatedBy   string               `json:"created_by"`
	UpdatedAt   time.Time            `json:"updated_at"`
	UpdatedBy   string               `json:"updated_by"`
	LastUsedAt  time.Time            `json:"last_used_at,omitzero"`
	Attachments []CredentialAttached `json:"attachments,omitempty"`
}

// CredentialAttached makes a credential the default for a target or group
// in a role.
type CredentialAttached struct {
	Scope        string    `json:"scope"` // target or group
	Name         string    `json:"name"`
	Role         string    `json:"role"`
	CredentialID string    `json:"credential_id"`
	Credential   string    `json:"credential,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
	CreatedBy    string    `json:"created_by"`
}

// CredentialSecret is the secret part of a create or replace; which
// fields a kind takes is fixed by the controller.
type CredentialSecret struct {
	Password    string `json:"password,omitempty"`
	PrivateKey  string `json:"private_key,omitempty"`
	Passphrase  string `json:"passphrase,omitempty"`
	Token       string `json:"token,omitempty"`
	Certificate string `json:"certificate,omitempty"`
	Key         string `json:"key,omitempty"`
	Value       string `json:"value,omitempty"`
}

// CredentialInput is the body of a create (Secret required) or a replace
// (Secret nil keeps the stored one; empty Name and Kind keep theirs).
type CredentialInput struct {
	Name        string            `json:"name,omitempty"`
	Description string            `json:"description,omitempty"`
	Kind        string            `json:"kind,omitempty"`
	Username    string            `json:"username,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
	Secret      *CredentialSecret `json:"secret,omitempty"`
}

// CredentialFilter narrows ListCredentials.
type CredentialFilter struct {
	Kind string
	Tags []string // key=value, all must match
}

// CreateCredential stores a new credential.
func (c *Client) CreateCredential(ctx context.Context, in CredentialInput) (Credential, error) {
	var out Credential
	err := c.do(ctx, http.MethodPost, "/api/v1/credentials", in, &out)
	return out, err
}

// ReplaceCredential replaces a credential's metadata and, with a secret,
// its secret.
func (c *Client) ReplaceCredential(ctx context.Context, name string, in CredentialInput) (Credential, error) {
	var out Credential
	err := c.do(ctx, http.MethodPut, "/api/v1/credentials/"+url.PathEscape(name), in, &out)
	return out, err
}

// ListCredentials lists credentials' metadata.
func (c *Client) ListCredentials(ctx context.Context, f CredentialFilter) ([]Credential, error) {
	q := url.Values{}
	if f.Kind != "" {
		q.Set("kind", f.Kind)
	}
	for _, t := range f.Tags {
		q.Add("tag", t)
	}
	path := "/api/v1/credentials"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out struct {
		Items []Credential `json:"items"`
	}
	err := c.do(ctx, http.MethodGet, path, nil, &out)
	return out.Items, err
}

// GetCredential describes one credential.
func (c *Client) GetCredential(ctx context.Context, name string) (Credential, error) {
	var out Credential
	err := c.do(ctx, http.MethodGet, "/api/v1/credentials/"+url.PathEscape(name), nil, &out)
	return out, err
}

// DeleteCredential deletes a credential and its attachments.
func (c *Client) DeleteCredential(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/api/v1/credentials/"+url.PathEscape(name), nil, nil)
}

func attachmentPath(name, scope, object, role string) string {
	return "/api/v1/credentials/" + url.PathEscape(name) + "/attachments/" + url.PathEscape(scope) + "/" +
		url.PathEscape(object) + "/" + url.PathEscape(role)
}

// AttachCredential makes a credential the default for a target or group
// (scope "targets" or "groups") in role.
func (c *Client) AttachCredential(ctx context.Context, name, scope, object, role string) (CredentialAttached, error) {
	var out CredentialAttached
	err := c.do(ctx, http.MethodPut, attachmentPath(name, scope, object, role), nil, &out)
	return out, err
}

// DetachCredential removes that default.
func (c *Client) DetachCredential(ctx context.Context, name, scope, object, role string) error {
	return c.do(ctx, http.MethodDelete, attachmentPath(name, scope, object, role), nil, nil)
}

// KeyringKey is one key as `operator keyring list` shows it.
type KeyringKey struct {
	ID        string         `json:"id"`
	Tier      string         `json:"tier"` // root or kek
	State     string         `json:"state"`
	CreatedAt time.Time      `json:"created_at,omitzero"`
	CreatedBy string         `json:"created_by,omitempty"`
	RetiredAt time.Time      `json:"retired_at,omitzero"`
	Envelopes map[string]int `json:"envelopes"`
	Total     int            `json:"total"`
	Removable bool           `json:"removable"`
}

// KeyringRewrap is the background re-wrap's progress on the controller
// that answered.
type KeyringRewrap struct {
	Running   bool      `json:"running"`
	StartedAt time.Time `json:"started_at,omitzero"`
	EndedAt   time.Time `json:"ended_at,omitzero"`
	Rewrapped int       `json:"rewrapped"`
	Error     string    `json:"error,omitempty"`
}

// KeyringStatus is GET /api/v1/operator/keyring.
type KeyringStatus struct {
	Active  string        `json:"active"`
	Keys    []KeyringKey  `json:"keys"`
	Pending int           `json:"pending"`
	Rewrap  KeyringRewrap `json:"rewrap"`
}

// Keyring lists the keys and what each still wraps.
func (c *Client) Keyring(ctx context.Context, consistent bool) (KeyringStatus, error) {
	path := "/api/v1/operator/keyring"
	if consistent {
		path += "?consistent=true"
	}
	var out KeyringStatus
	err := c.do(ctx, http.MethodGet, path, nil, &out)
	return out, err
}

// RotateKeyring adds a new active key-encryption key; the leader re-wraps
// every envelope under it in the background.
func (c *Client) RotateKeyring(ctx context.Context) (KeyringKey, error) {
	var out KeyringKey
	err := c.do(ctx, http.MethodPost, "/api/v1/operator/keyring/rotate", nil, &out)
	return out, err
}

// RemoveKeyringKey removes a key-encryption key that wraps nothing.
func (c *Client) RemoveKeyringKey(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/api/v1/operator/keyring/keys/"+url.PathEscape(id), nil, nil)
}
