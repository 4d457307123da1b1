// Package credentials keeps the secrets automation logs in with:
// passwords, SSH keys, tokens, certificates and opaque secrets. The
// replicated state holds each secret only as a keyring envelope (a random
// data key per secret, AES-256-GCM, bound to the credential's ID and kind,
// wrapped by the active key-encryption key); the API and CLI only ever see
// metadata. A secret is decrypted only on the leader, for a principal that
// holds credentials:use on it, and every such use is recorded in history.
//
// Credentials may be attached to targets and groups as defaults ("the SSH
// login for group web"); resolution goes target, then its groups.
package credentials

import (
	"bytes"
	"fmt"
	"maps"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/opsconductor/opsconductor/controller/communication/notify"
	"github.com/opsconductor/opsconductor/controller/communication/tmpl"
	"github.com/opsconductor/opsconductor/controller/keyring"
	"github.com/opsconductor/opsconductor/controller/problem"
	"github.com/opsconductor/opsconductor/controller/state"
)

const (
	tableCredentials = "credentials"
	tableAttachments = "credential_attachments"
)

// Command types. Appended, never renamed or reused.
const (
	cmdPut    = "credentials.put"
	cmdDelete = "credentials.delete"
	cmdRewrap = "credentials.rewrap"
	cmdUsed   = "credentials.used"
	cmdAttach = "credentials.attach"
	cmdDetach = "credentials.detach"
)

// Kinds of credential.
const (
	KindPassword    = "password"
	KindSSHKey      = "ssh_key"
	KindToken       = "token"
	KindCertificate = "certificate"
	KindSecret      = "secret"
)

// Kinds lists every kind, in a stable order.
var Kinds = []string{KindPassword, KindSSHKey, KindToken, KindCertificate, KindSecret}

// Credential is what the API shows of a credential: metadata only. The
// secret never leaves the service except through Resolve.
type Credential struct {
	ID          string            `json:"id"`
	Name        string            `json:"name"`
	Description string            `json:"description,omitempty"`
	Kind        string            `json:"kind"`
	Username    string            `json:"username,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
	// Fingerprint is the SSH public key's (SHA256:…) or the certificate's
	// SHA-256 fingerprint.
	Fingerprint string `json:"fingerprint,omitempty"`
	// PublicKey is an ssh_key's public half, in authorized_keys form.
	PublicKey string `json:"public_key,omitempty"`
	// Subject and NotAfter describe a certificate.
	Subject    string    `json:"subject,omitempty"`
	NotAfter   time.Time `json:"not_after,omitzero"`
	CreatedAt  time.Time `json:"created_at"`
	CreatedBy  string    `json:"created_by"`
	UpdatedAt  time.Time `json:"updated_at"`
	UpdatedBy  string    `json:"updated_by"`
	LastUsedAt time.Time `json:"last_used_at,omitzero"`
	// Attachments are the targets and groups this credential is a default
	// for (filled by the service on describe).
	Attachments []Attachment `json:"attachments,omitempty"`
}

// row is the stored credential: its metadata and the sealed secret.
type row struct {
	Credential
	Secret keyring.Sealed `json:"secret"`
}

func (r *row) clone() *row {
	c := *r
	c.Tags = maps.Clone(r.Tags)
	c.Attachments = nil
	return &c
}

// Attachment makes a credential the default for a target or a group in a
// role ("ssh", "default", …).
type Attachment struct {
	// Scope is "target" or "group".
	Scope        string    `json:"scope"`
	Name         string    `json:"name"`
	Role         string    `json:"role"`
	CredentialID string    `json:"credential_id"`
	Credential   string    `json:"credential,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
	CreatedBy    string    `json:"created_by"`
}

// Attachment scopes.
const (
	ScopeTarget = "target"
	ScopeGroup  = "group"
)

// Domain returns the credentials tables and commands for the state
// registry.
func Domain() state.Domain { return DomainWithEvents(nil) }

// DomainWithEvents is Domain that raises credential.rotated when a
// credential's secret is replaced and credential.used when a use is
// recorded.
func DomainWithEvents(emit notify.Emitter) state.Domain {
	return state.Domain{
		Name: "credentials",
		Tables: []state.Table{
			{
				Schema: &memdb.TableSchema{Name: tableCredentials, Indexes: map[string]*memdb.IndexSchema{
					"id":   {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
					"name": {Name: "name", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Name"}},
				}},
				New: func() any { return &row{} },
			},
			{
				Schema: &memdb.TableSchema{Name: tableAttachments, Indexes: map[string]*memdb.IndexSchema{
					"id": {Name: "id", Unique: true, Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{
						&memdb.StringFieldIndex{Field: "Scope"}, &memdb.StringFieldIndex{Field: "Name"}, &memdb.StringFieldIndex{Field: "Role"}}}},
					"credential": {Name: "credential", Indexer: &memdb.StringFieldIndex{Field: "CredentialID"}},
				}},
				New: func() any { return &Attachment{} },
			},
		},
		Commands: map[string]state.Handler{
			cmdPut:    state.V1(putWithEvents(emit)),
			cmdDelete: state.V1(applyDelete),
			cmdRewrap: state.V1(applyRewrap),
			cmdUsed:   state.V1(usedWithEvents(emit)),
			cmdAttach: state.V1(applyAttach),
			cmdDetach: state.V1(applyDetach),
		},
	}
}

type putPayload struct {
	// Create refuses an existing name; otherwise the row with ID must
	// exist (a replace).
	Create bool `json:"create"`
	Row    row  `json:"row"`
	// KeepSecret replaces metadata only: the stored envelope stays.
	KeepSecret bool   `json:"keep_secret,omitempty"`
	Actor      string `json:"actor"`
}

func applyPut(ctx *state.ApplyContext, p putPayload) (any, error) {
	byName, err := ctx.Txn.First(tableCredentials, "name", p.Row.Name)
	if err != nil {
		return nil, err
	}
	r := p.Row
	if p.Create {
		if byName != nil {
			return nil, problem.New(problem.KindConflict, "credential_exists", "a credential named %q already exists", p.Row.Name)
		}
		r.CreatedAt, r.CreatedBy = ctx.Time, p.Actor
	} else {
		old, err := state.ByID[row](ctx.Txn, tableCredentials, "credential", p.Row.ID)
		if err != nil {
			return nil, err
		}
		if byName != nil && byName.(*row).ID != r.ID {
			return nil, problem.New(problem.KindConflict, "credential_exists", "a credential named %q already exists", p.Row.Name)
		}
		r.CreatedAt, r.CreatedBy, r.LastUsedAt = old.CreatedAt, old.CreatedBy, old.LastUsedAt
		if p.KeepSecret {
			if old.Kind != r.Kind {
				return nil, problem.Invalid("secret", "is required to change the kind from %s to %s", old.Kind, r.Kind)
			}
			r.Secret = old.Secret
			r.Fingerprint, r.PublicKey, r.Subject, r.NotAfter = old.Fingerprint, old.PublicKey, old.Subject, old.NotAfter
		}
	}
	r.UpdatedAt, r.UpdatedBy = ctx.Time, p.Actor
	if err := ctx.Txn.Insert(tableCredentials, &r); err != nil {
		return nil, err
	}
	return r.Credential, nil
}

type idPayload struct {
	ID string `json:"id"`
}

// applyDelete removes a credential and every attachment naming it.
func applyDelete(ctx *state.ApplyContext, p idPayload) (any, error) {
	r, err := state.ByID[row](ctx.Txn, tableCredentials, "credential", p.ID)
	if err != nil {
		return nil, err
	}
	it, err := ctx.Txn.Get(tableAttachments, "credential", p.ID)
	if err != nil {
		return nil, err
	}
	var atts []*Attachment
	for raw := it.Next(); raw != nil; raw = it.Next() {
		atts = append(atts, raw.(*Attachment))
	}
	for _, a := range atts {
		if err := ctx.Txn.Delete(tableAttachments, a); err != nil {
			return nil, err
		}
	}
	if err := ctx.Txn.Delete(tableCredentials, r); err != nil {
		return nil, err
	}
	return r.Credential, nil
}

type rewrapPayload struct {
	Items []rewrapItem `json:"items"`
}

type rewrapItem struct {
	ID string `json:"id"`
	// From is the key the envelope named when the leader re-wrapped it;
	// an envelope replaced since is left alone.
	From   string         `json:"from"`
	Sealed keyring.Sealed `json:"sealed"`
}

// applyRewrap swaps in re-wrapped envelopes; the ciphertext is the same,
// so a row whose ciphertext changed meanwhile (a replace) is skipped.
func applyRewrap(ctx *state.ApplyContext, p rewrapPayload) (any, error) {
	n := 0
	for _, it := range p.Items {
		raw, err := ctx.Txn.First(tableCredentials, "id", it.ID)
		if err != nil {
			return nil, err
		}
		if raw == nil {
			continue
		}
		old := raw.(*row)
		if old.Secret.KeyID != it.From || !bytes.Equal(old.Secret.Ciphertext, it.Sealed.Ciphertext) {
			continue
		}
		c := old.clone()
		c.Secret = it.Sealed
		if err := ctx.Txn.Insert(tableCredentials, c); err != nil {
			return nil, err
		}
		n++
	}
	return n, nil
}

type usedPayload struct {
	Items []usedItem `json:"items"`
}

type usedItem struct {
	ID string    `json:"id"`
	At time.Time `json:"at"`
}

// applyUsed records when credentials were last used. The leader batches
// these: one write per flush, never one per use.
func applyUsed(ctx *state.ApplyContext, p usedPayload) (any, error) {
	for _, it := range p.Items {
		raw, err := ctx.Txn.First(tableCredentials, "id", it.ID)
		if err != nil {
			return nil, err
		}
		if raw == nil || !it.At.After(raw.(*row).LastUsedAt) {
			continue
		}
		c := raw.(*row).clone()
		c.LastUsedAt = it.At
		if err := ctx.Txn.Insert(tableCredentials, c); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

type attachPayload struct {
	Attachment Attachment `json:"attachment"`
}

// applyAttach sets the default credential for (scope, name, role),
// replacing any previous one.
func applyAttach(ctx *state.ApplyContext, p attachPayload) (any, error) {
	if _, err := state.ByID[row](ctx.Txn, tableCredentials, "credential", p.Attachment.CredentialID); err != nil {
		return nil, err
	}
	a := p.Attachment
	a.CreatedAt = ctx.Time
	if err := ctx.Txn.Insert(tableAttachments, &a); err != nil {
		return nil, err
	}
	return a, nil
}

type detachPayload struct {
	Scope        string `json:"scope"`
	Name         string `json:"name"`
	Role         string `json:"role"`
	CredentialID string `json:"credential_id"`
}

func applyDetach(ctx *state.ApplyContext, p detachPayload) (any, error) {
	raw, err := ctx.Txn.First(tableAttachments, "id", p.Scope, p.Name, p.Role)
	if err != nil {
		return nil, err
	}
	if raw == nil || raw.(*Attachment).CredentialID != p.CredentialID {
		return nil, problem.NotFound("attachment", p.Scope+"/"+p.Name+"/"+p.Role)
	}
	return *raw.(*Attachment), ctx.Txn.Delete(tableAttachments, raw)
}

func credentialEvent(ctx *state.ApplyContext, emit notify.Emitter, t tmpl.EventType, c *row, actor, verb string) error {
	e := tmpl.Event{Type: t, Severity: tmpl.SeverityInfo, Summary: fmt.Sprintf("credential %s %s by %s", c.Name, verb, actor),
		Credential: &tmpl.Credential{Name: c.Name, Kind: string(c.Kind), Actor: actor}}
	return emit(ctx, e, notify.Match{Tags: maps.Clone(c.Tags)})
}

// putWithEvents raises credential.rotated for a replace with a new secret.
func putWithEvents(emit notify.Emitter) func(*state.ApplyContext, putPayload) (any, error) {
	return func(ctx *state.ApplyContext, p putPayload) (any, error) {
		res, err := applyPut(ctx, p)
		if err != nil || emit == nil || p.Create || p.KeepSecret {
			return res, err
		}
		return res, credentialEvent(ctx, emit, tmpl.EventCredentialRotated, &p.Row, p.Actor, "rotated")
	}
}

// usedWithEvents raises credential.used for each use recorded.
func usedWithEvents(emit notify.Emitter) func(*state.ApplyContext, usedPayload) (any, error) {
	return func(ctx *state.ApplyContext, p usedPayload) (any, error) {
		res, err := applyUsed(ctx, p)
		if err != nil || emit == nil {
			return res, err
		}
		for _, it := range p.Items {
			raw, err := ctx.Txn.First(tableCredentials, "id", it.ID)
			if err != nil || raw == nil {
				continue
			}
			if err := credentialEvent(ctx, emit, tmpl.EventCredentialUsed, raw.(*row), "a run", "used"); err != nil {
				return nil, err
			}
		}
		return res, nil
	}
}
