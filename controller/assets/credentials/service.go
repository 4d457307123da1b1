package credentials

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/opsconductor/opsconductor/controller/history"
	"github.com/opsconductor/opsconductor/controller/identity"
	"github.com/opsconductor/opsconductor/controller/keyring"
	"github.com/opsconductor/opsconductor/controller/problem"
	"github.com/opsconductor/opsconductor/controller/state"
)

// Applier commits commands through Raft (cluster.Node in production).
type Applier interface {
	Apply(ctx context.Context, cmds ...state.Command) ([]state.Result, error)
}

// HistoryWriter stores use records durably (history.Writer).
type HistoryWriter interface {
	Write(ctx context.Context, recs []history.Record) error
}

// Inventory is what credentials need of the inventory: the groups a
// target belongs to (static and dynamic), for scope checks, and whether a
// target or group exists, for attachments.
type Inventory interface {
	GroupsOf(ctx context.Context, target string) ([]string, error)
	// Exists returns nil, or a not-found problem naming the target
	// (scope "target") or group (scope "group").
	Exists(ctx context.Context, scope, name string) error
}

// Deps are what the service needs. Inventory may be nil: then a
// credentials:use scope that names groups matches only credentials
// attached to those groups directly.
type Deps struct {
	Applier   Applier
	Store     *state.Store
	Sealer    keyring.Sealer
	History   HistoryWriter
	Inventory Inventory
	IsLeader  func() bool
	Logger    *slog.Logger
	// Now is the clock for use records (time.Now when nil).
	Now func() time.Time
}

// Service manages credentials on one controller.
type Service struct {
	d Deps

	mu      sync.Mutex
	used    map[string]time.Time // last uses not yet committed
	lastSeq uint64               // of use records, strictly increasing
}

// New builds the service.
func New(d Deps) (*Service, error) {
	if d.Applier == nil || d.Store == nil || d.Sealer == nil || d.History == nil || d.IsLeader == nil || d.Logger == nil {
		return nil, errors.New("credentials: Applier, Store, Sealer, History, IsLeader and Logger are required")
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	return &Service{d: d, used: map[string]time.Time{}}, nil
}

func newID() (string, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("credential id: %w", err)
	}
	return "cred_" + hex.EncodeToString(b[:]), nil
}

// lookup finds a credential by name, or by ID.
func lookup(txn state.Reader, nameOrID string) (*row, error) {
	raw, err := txn.First(tableCredentials, "name", nameOrID)
	if err == nil && raw == nil && strings.HasPrefix(nameOrID, "cred_") {
		raw, err = txn.First(tableCredentials, "id", nameOrID)
	}
	if err != nil {
		return nil, fmt.Errorf("read credential: %w", err)
	}
	if raw == nil {
		return nil, problem.NotFound("credential", nameOrID)
	}
	return raw.(*row), nil
}

// seal encrypts the secret for credential id of kind.
func (s *Service) seal(id, kind string, sec *Secret) (keyring.Sealed, error) {
	pt, err := encodeSecret(sec)
	if err != nil {
		return keyring.Sealed{}, err
	}
	sealed, err := s.d.Sealer.Seal(pt, aad(id, kind))
	clear(pt)
	if err != nil {
		return keyring.Sealed{}, fmt.Errorf("seal credential %s: %w", id, err)
	}
	return sealed, nil
}

// Create stores a new credential. Nothing is stored unless every field is
// valid and the secret parses as its kind.
func (s *Service) Create(ctx context.Context, p *identity.Principal, in Input) (Credential, error) {
	d, err := in.check(true)
	if err != nil {
		return Credential{}, err
	}
	// A scoped writer may only create credentials inside its scope.
	if err := s.allowed(ctx, s.d.Store.ReadTxn(), p, identity.PermCredentialsWrite, &row{Credential: Credential{Name: in.Name, Tags: in.Tags}}); err != nil {
		return Credential{}, err
	}
	actor := p.Name()
	id, err := newID()
	if err != nil {
		return Credential{}, err
	}
	sealed, err := s.seal(id, in.Kind, in.Secret)
	if err != nil {
		return Credential{}, err
	}
	r := rowFrom(id, in, d, sealed)
	c, err := s.put(ctx, putPayload{Create: true, Row: r, Actor: actor})
	if err != nil {
		return Credential{}, err
	}
	s.d.Logger.Info("created a credential", "credential", c.Name, "credential_id", c.ID, "kind", c.Kind, "actor", actor)
	return c, nil
}

// Replace changes a credential's metadata and, when in.Secret is set, its
// secret (a new envelope with a new data key). in.Name may rename it.
func (s *Service) Replace(ctx context.Context, p *identity.Principal, nameOrID string, in Input) (Credential, error) {
	txn := s.d.Store.ReadTxn()
	old, err := lookup(txn, nameOrID)
	if err != nil {
		return Credential{}, err
	}
	if err := s.allowed(ctx, txn, p, identity.PermCredentialsWrite, old); err != nil {
		return Credential{}, err
	}
	actor := p.Name()
	if in.Name == "" {
		in.Name = old.Name
	}
	if in.Kind == "" {
		in.Kind = old.Kind
	}
	d, err := in.check(false)
	if err != nil {
		return Credential{}, err
	}
	if err := s.allowed(ctx, txn, p, identity.PermCredentialsWrite, &row{Credential: Credential{ID: old.ID, Name: in.Name, Tags: in.Tags}}); err != nil {
		return Credential{}, err
	}
	put := putPayload{Actor: actor}
	var sealed keyring.Sealed
	if in.Secret != nil {
		if sealed, err = s.seal(old.ID, in.Kind, in.Secret); err != nil {
			return Credential{}, err
		}
	} else {
		put.KeepSecret = true
	}
	put.Row = rowFrom(old.ID, in, d, sealed)
	c, err := s.put(ctx, put)
	if err != nil {
		return Credential{}, err
	}
	s.d.Logger.Info("replaced a credential", "credential", c.Name, "credential_id", c.ID, "kind", c.Kind,
		"secret_replaced", in.Secret != nil, "actor", actor)
	return c, nil
}

func rowFrom(id string, in Input, d derived, sealed keyring.Sealed) row {
	tags := maps.Clone(in.Tags)
	if len(tags) == 0 {
		tags = nil
	}
	return row{Credential: Credential{ID: id, Name: in.Name, Description: in.Description, Kind: in.Kind, Username: in.Username,
		Tags: tags, Fingerprint: d.Fingerprint, PublicKey: d.PublicKey, Subject: d.Subject, NotAfter: d.NotAfter}, Secret: sealed}
}

func (s *Service) put(ctx context.Context, p putPayload) (Credential, error) {
	var c Credential
	if err := s.apply(ctx, cmdPut, p, &c); err != nil {
		return Credential{}, err
	}
	return c, nil
}

func (s *Service) apply(ctx context.Context, typ string, payload, out any) error {
	return state.ApplyOne(ctx, s.d.Applier, typ, payload, out)
}

// Get describes one credential: metadata and attachments, never the
// secret.
func (s *Service) Get(ctx context.Context, p *identity.Principal, nameOrID string) (Credential, error) {
	txn := s.d.Store.ReadTxn()
	r, err := lookup(txn, nameOrID)
	if err != nil {
		return Credential{}, err
	}
	if err := s.allowed(ctx, txn, p, identity.PermCredentialsRead, r); err != nil {
		if pr, ok := problem.As(err); ok && pr.Code == "credential_out_of_scope" {
			// As the inventory does: outside the reader's scope a
			// credential does not exist, so its name does not leak.
			return Credential{}, problem.NotFound("credential", nameOrID)
		}
		return Credential{}, err
	}
	c := r.clone().Credential
	atts, err := attachmentsOf(txn, r.ID)
	if err != nil {
		return Credential{}, err
	}
	for i := range atts {
		atts[i].Credential = r.Name
	}
	c.Attachments = atts
	return c, nil
}

// Filter narrows List.
type Filter struct {
	Kind string
	// Tags must all be on the credential.
	Tags map[string]string
}

// List returns the metadata of the credentials p may read, sorted by name.
func (s *Service) List(ctx context.Context, p *identity.Principal, f Filter) ([]Credential, error) {
	txn := s.d.Store.ReadTxn()
	it, err := txn.Get(tableCredentials, "name")
	if err != nil {
		return nil, fmt.Errorf("list credentials: %w", err)
	}
	out := []Credential{}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		r := raw.(*row)
		if (f.Kind != "" && r.Kind != f.Kind) || !hasTags(r.Tags, f.Tags) {
			continue
		}
		if err := s.allowed(ctx, txn, p, identity.PermCredentialsRead, r); err != nil {
			if problem.Is(err, problem.KindForbidden) {
				continue
			}
			return nil, err
		}
		out = append(out, r.clone().Credential)
	}
	return out, nil
}

func hasTags(have, want map[string]string) bool {
	for k, v := range want {
		if hv, ok := have[k]; !ok || hv != v {
			return false
		}
	}
	return true
}

// Delete removes a credential and its attachments.
func (s *Service) Delete(ctx context.Context, p *identity.Principal, nameOrID string) error {
	txn := s.d.Store.ReadTxn()
	r, err := lookup(txn, nameOrID)
	if err != nil {
		return err
	}
	if err := s.allowed(ctx, txn, p, identity.PermCredentialsWrite, r); err != nil {
		return err
	}
	actor := p.Name()
	if err := s.apply(ctx, cmdDelete, idPayload{ID: r.ID}, nil); err != nil {
		return err
	}
	s.d.Logger.Info("deleted a credential", "credential", r.Name, "credential_id", r.ID, "actor", actor)
	return nil
}

func attachmentsOf(txn state.Reader, credID string) ([]Attachment, error) {
	it, err := txn.Get(tableAttachments, "credential", credID)
	if err != nil {
		return nil, fmt.Errorf("read attachments: %w", err)
	}
	var out []Attachment
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, *raw.(*Attachment))
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		return a.Scope+"/"+a.Name+"/"+a.Role < b.Scope+"/"+b.Name+"/"+b.Role
	})
	return out, nil
}

func checkAttachment(scope, name, role string) error {
	var errs problem.List
	if scope != ScopeTarget && scope != ScopeGroup {
		errs.Add("scope", "must be target or group, got %q", scope)
	}
	if name == "" || len(name) > 253 || strings.ContainsAny(name, "/\x00") {
		errs.Add("name", "must be a target or group name (1 to 253 characters, no '/')")
	}
	if !roleRE.MatchString(role) {
		errs.Add("role", "must be lower case letters, digits, '_' and '-' (such as ssh or default), got %q", role)
	}
	return errs.Err()
}

// Attach makes the credential the default for a target or group in role,
// replacing the one attached there before.
func (s *Service) Attach(ctx context.Context, p *identity.Principal, nameOrID, scope, name, role string) (Attachment, error) {
	if err := checkAttachment(scope, name, role); err != nil {
		return Attachment{}, err
	}
	txn := s.d.Store.ReadTxn()
	r, err := lookup(txn, nameOrID)
	if err != nil {
		return Attachment{}, err
	}
	if err := s.allowed(ctx, txn, p, identity.PermCredentialsWrite, r); err != nil {
		return Attachment{}, err
	}
	if s.d.Inventory != nil {
		if err := s.d.Inventory.Exists(ctx, scope, name); err != nil {
			return Attachment{}, err
		}
	}
	actor := p.Name()
	var a Attachment
	if err := s.apply(ctx, cmdAttach, attachPayload{Attachment: Attachment{Scope: scope, Name: name, Role: role,
		CredentialID: r.ID, CreatedBy: actor}}, &a); err != nil {
		return Attachment{}, err
	}
	a.Credential = r.Name
	return a, nil
}

// Detach removes the credential's attachment to (scope, name, role).
func (s *Service) Detach(ctx context.Context, p *identity.Principal, nameOrID, scope, name, role string) error {
	if err := checkAttachment(scope, name, role); err != nil {
		return err
	}
	txn := s.d.Store.ReadTxn()
	r, err := lookup(txn, nameOrID)
	if err != nil {
		return err
	}
	if err := s.allowed(ctx, txn, p, identity.PermCredentialsWrite, r); err != nil {
		return err
	}
	return s.apply(ctx, cmdDetach, detachPayload{Scope: scope, Name: name, Role: role, CredentialID: r.ID}, nil)
}

// Default is the credential attached for role to target, else to the
// first of groups (in the order given) that has one, else not found.
func (s *Service) Default(_ context.Context, target string, groups []string, role string) (Credential, error) {
	txn := s.d.Store.ReadTxn()
	try := func(scope, name string) (*row, error) {
		raw, err := txn.First(tableAttachments, "id", scope, name, role)
		if err != nil || raw == nil {
			return nil, err
		}
		return lookup(txn, raw.(*Attachment).CredentialID)
	}
	if r, err := try(ScopeTarget, target); err != nil || r != nil {
		if err != nil {
			return Credential{}, err
		}
		return r.clone().Credential, nil
	}
	for _, g := range groups {
		if r, err := try(ScopeGroup, g); err != nil || r != nil {
			if err != nil {
				return Credential{}, err
			}
			return r.clone().Credential, nil
		}
	}
	return Credential{}, problem.NotFound("default credential", target+"/"+role)
}

// Use says what a secret is decrypted for; it goes into the use record.
type Use struct {
	RunID      string
	AttemptID  string
	TargetID   string
	TargetName string
}

// errNotLeader: secrets are decrypted on the leader only, where the
// attempt that needs them is dispatched.
var errNotLeader = problem.Unavailable("not_leader", "credentials are resolved on the leader only")

// Resolve decrypts a credential for use: only on the leader, only for a
// principal holding credentials:use on it, and only after the use is
// durably recorded in history (stream assets/credentials/<id>/uses). The
// map has the username and the secret's fields by their JSON names
// (password, private_key, passphrase, token, certificate, key, value).
func (s *Service) Resolve(ctx context.Context, p *identity.Principal, credName string, use Use) (map[string]string, error) {
	if !s.d.IsLeader() {
		return nil, errNotLeader
	}
	txn := s.d.Store.ReadTxn()
	r, err := lookup(txn, credName)
	if err != nil {
		return nil, err
	}
	if err := s.allowed(ctx, txn, p, identity.PermCredentialsUse, r); err != nil {
		return nil, err
	}
	pt, err := s.d.Sealer.Open(r.Secret, aad(r.ID, r.Kind))
	if err != nil {
		// Never silently: a credential that cannot be opened means a
		// wrong or missing key, which an operator must see.
		s.d.Logger.Error("a credential cannot be decrypted", "credential", r.Name, "credential_id", r.ID, "key", r.Secret.KeyID, "error", err)
		return nil, fmt.Errorf("decrypt credential %s: %w", r.Name, err)
	}
	var sec Secret
	err = json.Unmarshal(pt, &sec)
	clear(pt)
	if err != nil {
		return nil, fmt.Errorf("decode credential %s: %w", r.Name, err)
	}
	if err := s.recordUse(ctx, p, r, use); err != nil {
		return nil, err
	}
	out := sec.fields()
	if r.Username != "" {
		out["username"] = r.Username
	}
	return out, nil
}

// allowed checks that p holds perm (credentials:read, :write or :use) on
// the credential: a scope's tags must all be on the credential, and a
// scope that names groups needs the credential attached to one of them or
// to a target in one of them.
func (s *Service) allowed(ctx context.Context, txn state.Reader, p *identity.Principal, perm identity.Permission, r *row) error {
	if p == nil {
		return problem.New(problem.KindUnauthenticated, "unauthenticated", "no caller")
	}
	scopes, ok := p.Scopes(perm)
	if !ok {
		return problem.New(problem.KindForbidden, "forbidden", "credential %q needs the %s permission", r.Name, perm)
	}
	if scopes == nil {
		return nil
	}
	var atts []Attachment
	for _, sc := range scopes {
		if sc == nil {
			return nil
		}
		if !hasTags(r.Tags, sc.Tags) {
			continue
		}
		if len(sc.Groups) == 0 {
			return nil
		}
		if atts == nil {
			var err error
			if atts, err = attachmentsOf(txn, r.ID); err != nil {
				return err
			}
		}
		for _, a := range atts {
			switch a.Scope {
			case ScopeGroup:
				if slices.Contains(sc.Groups, a.Name) {
					return nil
				}
			case ScopeTarget:
				if s.d.Inventory == nil {
					continue
				}
				groups, err := s.d.Inventory.GroupsOf(ctx, a.Name)
				if err != nil {
					if problem.Is(err, problem.KindNotFound) {
						continue
					}
					return fmt.Errorf("groups of target %s: %w", a.Name, err)
				}
				for _, g := range groups {
					if slices.Contains(sc.Groups, g) {
						return nil
					}
				}
			}
		}
	}
	return problem.New(problem.KindForbidden, "credential_out_of_scope",
		"credential %q is outside the scope of your %s permission", r.Name, perm)
}

// UseStream is the history stream of a credential's uses.
func UseStream(credID string) string { return "assets/credentials/" + credID + "/uses" }

// UseRecord is the Data of a use record.
type UseRecord struct {
	Credential string    `json:"credential"`
	Actor      string    `json:"actor"`
	RunID      string    `json:"run_id,omitempty"`
	AttemptID  string    `json:"attempt_id,omitempty"`
	TargetID   string    `json:"target_id,omitempty"`
	TargetName string    `json:"target,omitempty"`
	Time       time.Time `json:"time"`
}

func (s *Service) recordUse(ctx context.Context, p *identity.Principal, r *row, use Use) error {
	now := s.d.Now().UTC()
	s.mu.Lock()
	// Sequence numbers follow the clock, kept strictly increasing so that
	// two uses in one tick are two records, not one.
	seq := max(uint64(now.UnixNano()), s.lastSeq+1)
	s.lastSeq = seq
	s.mu.Unlock()
	rec := UseRecord{Credential: r.Name, Actor: p.Name(), RunID: use.RunID, AttemptID: use.AttemptID,
		TargetID: use.TargetID, TargetName: use.TargetName, Time: now}
	data, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode use record: %w", err)
	}
	fields := map[string]string{"credential": r.Name, "actor": rec.Actor}
	for k, v := range map[string]string{"run_id": use.RunID, "attempt_id": use.AttemptID, "target": use.TargetName} {
		if v != "" {
			fields[k] = v
		}
	}
	if err := s.d.History.Write(ctx, []history.Record{{Stream: UseStream(r.ID), Seq: seq, Time: now,
		Kind: "assets.credential_use", Fields: fields, Data: data}}); err != nil {
		return fmt.Errorf("record the use of credential %s: %w", r.Name, err)
	}
	s.mu.Lock()
	s.used[r.ID] = now
	s.mu.Unlock()
	return nil
}

// FlushUses commits the last-use times gathered since the last flush, as
// one write.
func (s *Service) FlushUses(ctx context.Context) error {
	s.mu.Lock()
	pending := s.used
	s.used = map[string]time.Time{}
	s.mu.Unlock()
	if len(pending) == 0 {
		return nil
	}
	var p usedPayload
	for _, id := range slices.Sorted(maps.Keys(pending)) {
		p.Items = append(p.Items, usedItem{ID: id, At: pending[id]})
	}
	if err := s.apply(ctx, cmdUsed, p, nil); err != nil {
		// Keep them for the next flush unless newer uses replaced them.
		s.mu.Lock()
		for id, at := range pending {
			if cur, ok := s.used[id]; !ok || cur.Before(at) {
				s.used[id] = at
			}
		}
		s.mu.Unlock()
		return err
	}
	return nil
}

// Run flushes last-use times every interval, and once more on the way out.
func (s *Service) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			if err := s.FlushUses(fctx); err != nil {
				s.d.Logger.Debug("last-use times not committed on the way out", "error", err)
			}
			cancel()
			return
		case <-t.C:
		}
		if err := s.FlushUses(ctx); err != nil && ctx.Err() == nil {
			s.d.Logger.Warn("commit credential last-use times", "error", err)
		}
	}
}

// EnvelopeCounts implements keyring.Holder.
func (s *Service) EnvelopeCounts() (map[string]int, error) {
	it, err := s.d.Store.ReadTxn().Get(tableCredentials, "id")
	if err != nil {
		return nil, fmt.Errorf("count credential envelopes: %w", err)
	}
	out := map[string]int{}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out[raw.(*row).Secret.KeyID]++
	}
	return out, nil
}

// RewrapEnvelopes implements keyring.Holder: it re-wraps up to limit
// credentials' data keys under the active key in one write.
func (s *Service) RewrapEnvelopes(ctx context.Context, limit int) (int, error) {
	active := s.d.Sealer.ActiveKeyID()
	it, err := s.d.Store.ReadTxn().Get(tableCredentials, "id")
	if err != nil {
		return 0, fmt.Errorf("read credentials: %w", err)
	}
	var p rewrapPayload
	for raw := it.Next(); raw != nil && len(p.Items) < limit; raw = it.Next() {
		r := raw.(*row)
		if r.Secret.KeyID == active {
			continue
		}
		sealed, err := s.d.Sealer.Rewrap(r.Secret, aad(r.ID, r.Kind))
		if err != nil {
			return 0, fmt.Errorf("credential %s: %w", r.Name, err)
		}
		p.Items = append(p.Items, rewrapItem{ID: r.ID, From: r.Secret.KeyID, Sealed: sealed})
	}
	if len(p.Items) == 0 {
		return 0, nil
	}
	var n int
	if err := s.apply(ctx, cmdRewrap, p, &n); err != nil {
		return 0, err
	}
	return n, nil
}

// ResolveStep resolves the credentials a step declared (alias → name) for
// one attempt: each needs credentials:use and each use is recorded. Each
// credential's fields become the secrets alias.field; a step's only
// credential's fields go in unprefixed as well, which is how built-in
// steps such as ssh read theirs (password, private_key …).
func (s *Service) ResolveStep(ctx context.Context, p *identity.Principal, creds map[string]string, use Use) (map[string]string, error) {
	out := map[string]string{}
	for _, alias := range slices.Sorted(maps.Keys(creds)) {
		values, err := s.Resolve(ctx, p, creds[alias], use)
		if err != nil {
			if pr, ok := problem.As(err); ok && pr.Field == "" && pr.Kind != problem.KindUnavailable {
				moved := *pr
				moved.Field = "credentials." + alias
				return nil, &moved
			}
			return nil, err
		}
		for k, v := range values {
			out[alias+"."+k] = v
		}
		if len(creds) == 1 {
			maps.Copy(out, values)
		}
	}
	return out, nil
}
