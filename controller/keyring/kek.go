package keyring

import (
	"bytes"
	"context"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/opsconductor/opsconductor/controller/problem"
	"github.com/opsconductor/opsconductor/controller/state"
)

// Sealer is what a domain that keeps secrets needs of the keyring. Both
// the file keyring (*Keyring) and the replicated one (*Service) satisfy it.
type Sealer interface {
	// Seal encrypts plaintext in a new envelope bound to aad.
	Seal(plaintext, aad []byte) (Sealed, error)
	// Open decrypts an envelope made with the same aad.
	Open(s Sealed, aad []byte) ([]byte, error)
	// Rewrap returns s with its data key wrapped by the active key.
	Rewrap(s Sealed, aad []byte) (Sealed, error)
	// ActiveKeyID names the key that seals new envelopes.
	ActiveKeyID() string
}

// Holder is a domain that keeps envelopes in the replicated state. The
// keyring asks holders how many envelopes each key still wraps (a key that
// wraps nothing may be removed) and, after a rotation, has them re-wrap
// theirs under the active key through their own Raft commands.
type Holder interface {
	// EnvelopeCounts counts the holder's envelopes by the key that wraps
	// them (Sealed.KeyID).
	EnvelopeCounts() (map[string]int, error)
	// RewrapEnvelopes re-wraps and commits up to limit envelopes that the
	// active key does not wrap, returning how many it committed; 0 means
	// nothing is left.
	RewrapEnvelopes(ctx context.Context, limit int) (int, error)
}

// KEK states.
const (
	StateActive   = "active"   // seals new envelopes
	StateRetiring = "retiring" // still wraps envelopes being re-wrapped
	StateRetired  = "retired"  // wraps nothing; may be removed
)

const tableKEKs = "keyring_keks"

// Command types. Appended, never renamed or reused.
const (
	cmdKEKAdd    = "keyring.kek_add"
	cmdKEKRewrap = "keyring.kek_rewrap"
	cmdKEKRetire = "keyring.kek_retire"
	cmdKEKRemove = "keyring.kek_remove"
)

// KEK is a key-encryption key kept in the replicated state, its material
// sealed by a root key from the key file. It never leaves the controller
// unsealed: the JSON form carries only the envelope.
type KEK struct {
	ID        string    `json:"id"`
	State     string    `json:"state"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by"`
	RetiredAt time.Time `json:"retired_at,omitzero"`
	// Sealed is the key material, sealed by the root key it names.
	Sealed Sealed `json:"sealed"`
}

// Domain returns the keyring's table and commands for the state registry.
func Domain() state.Domain {
	return state.Domain{
		Name: "keyring",
		Tables: []state.Table{{
			Schema: &memdb.TableSchema{Name: tableKEKs, Indexes: map[string]*memdb.IndexSchema{
				"id":    {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
				"state": {Name: "state", Indexer: &memdb.StringFieldIndex{Field: "State"}},
			}},
			New: func() any { return &KEK{} },
		}},
		Commands: map[string]state.Handler{
			cmdKEKAdd:    state.V1(applyKEKAdd),
			cmdKEKRewrap: state.V1(applyKEKRewrap),
			cmdKEKRetire: state.V1(applyKEKRetire),
			cmdKEKRemove: state.V1(applyKEKRemove),
		},
	}
}

type kekAddPayload struct {
	ID        string `json:"id"`
	CreatedBy string `json:"created_by"`
	Sealed    Sealed `json:"sealed"`
}

// applyKEKAdd makes a new KEK active; the one it replaces starts retiring.
func applyKEKAdd(ctx *state.ApplyContext, p kekAddPayload) (any, error) {
	if existing, err := ctx.Txn.First(tableKEKs, "id", p.ID); err != nil {
		return nil, err
	} else if existing != nil {
		return nil, problem.New(problem.KindConflict, "kek_exists", "key-encryption key %s already exists", p.ID)
	}
	it, err := ctx.Txn.Get(tableKEKs, "state", StateActive)
	if err != nil {
		return nil, err
	}
	var previous []*KEK
	for raw := it.Next(); raw != nil; raw = it.Next() {
		previous = append(previous, raw.(*KEK))
	}
	for _, old := range previous {
		c := *old
		c.State = StateRetiring
		if err := ctx.Txn.Insert(tableKEKs, &c); err != nil {
			return nil, err
		}
	}
	k := &KEK{ID: p.ID, State: StateActive, CreatedAt: ctx.Time, CreatedBy: p.CreatedBy, Sealed: p.Sealed}
	if err := ctx.Txn.Insert(tableKEKs, k); err != nil {
		return nil, err
	}
	return *k, nil
}

type kekRewrapPayload struct {
	ID string `json:"id"`
	// From is the root key the material was sealed by when the leader
	// re-wrapped it; a row changed since is left alone.
	From   string `json:"from"`
	Sealed Sealed `json:"sealed"`
}

func applyKEKRewrap(ctx *state.ApplyContext, p kekRewrapPayload) (any, error) {
	k, err := state.ByID[KEK](ctx.Txn, tableKEKs, "key", p.ID)
	if err != nil {
		return nil, err
	}
	if k.Sealed.KeyID != p.From || !bytes.Equal(k.Sealed.Ciphertext, p.Sealed.Ciphertext) {
		return false, nil
	}
	c := *k
	c.Sealed = p.Sealed
	return true, ctx.Txn.Insert(tableKEKs, &c)
}

type kekIDPayload struct {
	ID string `json:"id"`
}

// applyKEKRetire marks a retiring KEK retired; the leader commits it once
// no holder's envelope names the key any more.
func applyKEKRetire(ctx *state.ApplyContext, p kekIDPayload) (any, error) {
	k, err := state.ByID[KEK](ctx.Txn, tableKEKs, "key", p.ID)
	if err != nil {
		return nil, err
	}
	if k.State != StateRetiring {
		return *k, nil
	}
	c := *k
	c.State, c.RetiredAt = StateRetired, ctx.Time
	return c, ctx.Txn.Insert(tableKEKs, &c)
}

func applyKEKRemove(ctx *state.ApplyContext, p kekIDPayload) (any, error) {
	k, err := state.ByID[KEK](ctx.Txn, tableKEKs, "key", p.ID)
	if err != nil {
		return nil, err
	}
	if k.State == StateActive {
		return nil, problem.New(problem.KindConflict, "kek_active", "key-encryption key %s is active: rotate first", p.ID)
	}
	return *k, ctx.Txn.Delete(tableKEKs, k)
}

// Applier commits commands through Raft (cluster.Node in production).
type Applier interface {
	Apply(ctx context.Context, cmds ...state.Command) ([]state.Result, error)
}

// Deps are what the replicated keyring needs.
type Deps struct {
	// Root is the key file's keyring: it seals the KEKs, and opens the
	// envelopes sealed before the first KEK existed.
	Root     *Keyring
	Applier  Applier
	Store    *state.Store
	Logger   *slog.Logger
	IsLeader func() bool
}

// Service is the two-tier keyring: root keys from the key file wrap KEKs
// kept in the replicated state, and the active KEK wraps every new data
// key. Rotating a KEK is one Raft write that reaches every controller at
// once, so a cluster rotates with one command and no restart; only a
// root-key change touches the key file.
//
// Opened KEKs are cached in memory. They are never logged, returned or
// written anywhere but sealed.
type Service struct {
	d Deps

	mu      sync.Mutex
	opened  map[string]cipher.AEAD
	holders map[string]Holder
	rewrap  RewrapStatus

	kick chan struct{}
}

// New builds the replicated keyring.
func New(d Deps) (*Service, error) {
	if d.Root == nil || d.Applier == nil || d.Store == nil || d.Logger == nil || d.IsLeader == nil {
		return nil, errors.New("keyring: Root, Applier, Store, Logger and IsLeader are required")
	}
	s := &Service{d: d, opened: map[string]cipher.AEAD{}, holders: map[string]Holder{}, kick: make(chan struct{}, 1)}
	s.holders["keyring"] = kekHolder{s}
	return s, nil
}

// Register adds a domain whose envelopes rotation re-wraps and whose
// counts decide when a key may go. Call it while wiring, before Run.
func (s *Service) Register(name string, h Holder) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.holders[name]; dup {
		panic(fmt.Sprintf("keyring: holder %q registered twice", name))
	}
	s.holders[name] = h
}

func kekAAD(id string) []byte { return []byte("keyring/kek/" + id) }

// activeKEK returns the active KEK, or ok false while none exists (a
// controller that has never rotated seals with its root key).
func (s *Service) activeKEK() (id string, aead cipher.AEAD, ok bool, err error) {
	raw, err := s.d.Store.ReadTxn().First(tableKEKs, "state", StateActive)
	if err != nil {
		return "", nil, false, fmt.Errorf("keyring: read the active key: %w", err)
	}
	if raw == nil {
		return "", nil, false, nil
	}
	k := raw.(*KEK)
	aead, err = s.openKEK(k)
	if err != nil {
		return "", nil, false, err
	}
	return k.ID, aead, true, nil
}

// kek returns the opened KEK id, from the cache or the state.
func (s *Service) kek(id string) (cipher.AEAD, error) {
	s.mu.Lock()
	aead, ok := s.opened[id]
	s.mu.Unlock()
	if ok {
		return aead, nil
	}
	k, err := state.ByID[KEK](s.d.Store.ReadTxn(), tableKEKs, "key", id)
	if err != nil {
		if _, nf := problem.As(err); nf {
			return nil, fmt.Errorf("%w: key %q is not in this keyring", ErrOpen, id)
		}
		return nil, err
	}
	return s.openKEK(k)
}

// openKEK unseals k with the root keyring. A failure names both keys: it
// means this controller runs with a key file other than the one that
// sealed the KEK.
func (s *Service) openKEK(k *KEK) (cipher.AEAD, error) {
	s.mu.Lock()
	aead, ok := s.opened[k.ID]
	s.mu.Unlock()
	if ok {
		return aead, nil
	}
	material, err := s.d.Root.Open(k.Sealed, kekAAD(k.ID))
	if err != nil || KeyID(material) != k.ID {
		return nil, fmt.Errorf("%w: key-encryption key %s is sealed by root key %s, which the key file does not hold (this controller's root keys: %s)",
			ErrOpen, k.ID, k.Sealed.KeyID, strings.Join(s.d.Root.KeyIDs(), ", "))
	}
	aead, err = newAEAD(material)
	clear(material)
	if err != nil {
		return nil, fmt.Errorf("keyring: key-encryption key %s: %w", k.ID, err)
	}
	s.mu.Lock()
	s.opened[k.ID] = aead
	s.mu.Unlock()
	return aead, nil
}

// Check opens every KEK in the state. The server runs it once the state
// is replayed and refuses to run when it fails: a controller with the
// wrong key file must stop at once, not fail secret by secret later.
func (s *Service) Check() error {
	it, err := s.d.Store.ReadTxn().Get(tableKEKs, "id")
	if err != nil {
		return fmt.Errorf("keyring: read keys: %w", err)
	}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		if _, err := s.openKEK(raw.(*KEK)); err != nil {
			return err
		}
	}
	return nil
}

// ActiveKeyID names the key that seals new envelopes: the active KEK, or
// the active root key before the first rotation.
func (s *Service) ActiveKeyID() string {
	raw, err := s.d.Store.ReadTxn().First(tableKEKs, "state", StateActive)
	if err != nil || raw == nil {
		return s.d.Root.ActiveKeyID()
	}
	return raw.(*KEK).ID
}

// Seal encrypts plaintext under the active key (see Keyring.Seal).
func (s *Service) Seal(plaintext, aad []byte) (Sealed, error) {
	id, aead, ok, err := s.activeKEK()
	if err != nil {
		return Sealed{}, err
	}
	if !ok {
		return s.d.Root.Seal(plaintext, aad)
	}
	return sealEnvelope(id, aead, plaintext, aad)
}

// Open decrypts an envelope sealed under a KEK or, for envelopes older
// than the first KEK, a root key.
func (s *Service) Open(sealed Sealed, aad []byte) ([]byte, error) {
	if s.d.Root.has(sealed.KeyID) {
		return s.d.Root.Open(sealed, aad)
	}
	aead, err := s.kek(sealed.KeyID)
	if err != nil {
		return nil, err
	}
	return openEnvelope(aead, sealed, aad)
}

// Rewrap moves an envelope's data key under the active key.
func (s *Service) Rewrap(sealed Sealed, aad []byte) (Sealed, error) {
	id, aead, ok, err := s.activeKEK()
	if err != nil {
		return Sealed{}, err
	}
	if !ok {
		return s.d.Root.Rewrap(sealed, aad)
	}
	if sealed.KeyID == id {
		return sealed, nil
	}
	var from cipher.AEAD
	if s.d.Root.has(sealed.KeyID) {
		from = s.d.Root.keys[sealed.KeyID]
	} else if from, err = s.kek(sealed.KeyID); err != nil {
		return Sealed{}, err
	}
	return rewrapEnvelope(from, id, aead, sealed, aad)
}

// Rotate adds a fresh active KEK, sealed by the active root key, and
// starts re-wrapping every envelope under it in the background (on the
// leader). The previous KEK keeps opening what it wraps until then.
func (s *Service) Rotate(ctx context.Context, actor string) (KEK, error) {
	material := make([]byte, KeySize)
	if _, err := rand.Read(material); err != nil {
		return KEK{}, fmt.Errorf("keyring rotate: generate key: %w", err)
	}
	id := KeyID(material)
	sealed, err := s.d.Root.Seal(material, kekAAD(id))
	clear(material)
	if err != nil {
		return KEK{}, fmt.Errorf("keyring rotate: %w", err)
	}
	cmd, err := state.NewCommand(cmdKEKAdd, 1, kekAddPayload{ID: id, CreatedBy: actor, Sealed: sealed})
	if err != nil {
		return KEK{}, err
	}
	var k KEK
	res, err := s.d.Applier.Apply(ctx, cmd)
	if err == nil {
		err = res[0].Decode(&k)
	}
	if err != nil {
		return KEK{}, fmt.Errorf("keyring rotate: %w", err)
	}
	s.d.Logger.Info("rotated the key-encryption key", "kek", k.ID, "actor", actor)
	s.Kick()
	return k, nil
}

// Kick asks the background re-wrap to run now.
func (s *Service) Kick() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// KeyInfo is one key as `keyring list` shows it.
type KeyInfo struct {
	ID string `json:"id"`
	// Tier is "root" (the key file) or "kek" (the replicated state).
	Tier      string    `json:"tier"`
	State     string    `json:"state"`
	CreatedAt time.Time `json:"created_at,omitzero"`
	CreatedBy string    `json:"created_by,omitempty"`
	RetiredAt time.Time `json:"retired_at,omitzero"`
	// Envelopes is how many envelopes the key still wraps, by holder.
	Envelopes map[string]int `json:"envelopes"`
	Total     int            `json:"total"`
	// Removable: a KEK that wraps nothing and is not active.
	Removable bool `json:"removable"`
}

// RewrapStatus is the background re-wrap's progress on this controller.
type RewrapStatus struct {
	Running   bool      `json:"running"`
	StartedAt time.Time `json:"started_at,omitzero"`
	EndedAt   time.Time `json:"ended_at,omitzero"`
	Rewrapped int       `json:"rewrapped"`
	Error     string    `json:"error,omitempty"`
}

// Status is the keyring as `keyring list` shows it.
type Status struct {
	Active string    `json:"active"`
	Keys   []KeyInfo `json:"keys"`
	// Pending counts the envelopes not yet under the active key.
	Pending int `json:"pending"`
	// Rewrap is the re-wrap's progress on the controller that answered;
	// only the leader runs it.
	Rewrap RewrapStatus `json:"rewrap"`
}

// counts sums every holder's envelope counts: key → holder → n.
func (s *Service) counts() (map[string]map[string]int, error) {
	s.mu.Lock()
	holders := make(map[string]Holder, len(s.holders))
	for n, h := range s.holders {
		holders[n] = h
	}
	s.mu.Unlock()
	out := map[string]map[string]int{}
	for name, h := range holders {
		c, err := h.EnvelopeCounts()
		if err != nil {
			return nil, fmt.Errorf("keyring: count %s envelopes: %w", name, err)
		}
		for kid, n := range c {
			if n == 0 {
				continue
			}
			if out[kid] == nil {
				out[kid] = map[string]int{}
			}
			out[kid][name] += n
		}
	}
	return out, nil
}

// List returns every key, root keys first, with what each still wraps.
func (s *Service) List(context.Context) (Status, error) {
	counts, err := s.counts()
	if err != nil {
		return Status{}, err
	}
	active := s.ActiveKeyID()
	st := Status{Active: active, Keys: []KeyInfo{}}
	info := func(k KeyInfo) KeyInfo {
		k.Envelopes = counts[k.ID]
		if k.Envelopes == nil {
			k.Envelopes = map[string]int{}
		}
		for _, n := range k.Envelopes {
			k.Total += n
		}
		if k.ID != active && k.ID != s.d.Root.ActiveKeyID() {
			st.Pending += k.Total
		}
		return k
	}
	// Root keys: the last is active for sealing KEKs; an older one is
	// retiring while a KEK or an old envelope still names it.
	for _, id := range s.d.Root.KeyIDs() {
		k := KeyInfo{ID: id, Tier: "root", State: StateRetired}
		if id == s.d.Root.ActiveKeyID() {
			k.State = StateActive
		}
		k = info(k)
		if k.State != StateActive && k.Total > 0 {
			k.State = StateRetiring
		}
		st.Keys = append(st.Keys, k)
	}
	// Envelopes (other than KEKs) under the active root key still need a
	// re-wrap once a KEK is active.
	if active != s.d.Root.ActiveKeyID() {
		for holder, n := range counts[s.d.Root.ActiveKeyID()] {
			if holder != "keyring" {
				st.Pending += n
			}
		}
	}
	keks, err := s.keks()
	if err != nil {
		return Status{}, err
	}
	for _, k := range keks {
		ki := info(KeyInfo{ID: k.ID, Tier: "kek", State: k.State, CreatedAt: k.CreatedAt, CreatedBy: k.CreatedBy, RetiredAt: k.RetiredAt})
		ki.Removable = k.State != StateActive && ki.Total == 0
		st.Keys = append(st.Keys, ki)
	}
	s.mu.Lock()
	st.Rewrap = s.rewrap
	s.mu.Unlock()
	return st, nil
}

// keks lists the KEKs, oldest first.
func (s *Service) keks() ([]KEK, error) {
	it, err := s.d.Store.ReadTxn().Get(tableKEKs, "id")
	if err != nil {
		return nil, fmt.Errorf("keyring: read keys: %w", err)
	}
	var out []KEK
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, *raw.(*KEK))
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out, nil
}

// Remove deletes a KEK that wraps nothing. Root keys live in the key
// file: removing one is an edit there, once `keyring list` shows it wraps
// nothing.
func (s *Service) Remove(ctx context.Context, id, actor string) error {
	if slices.Contains(s.d.Root.KeyIDs(), id) {
		return problem.New(problem.KindConflict, "root_key",
			"%s is a root key from the key file: once it wraps nothing, delete its line from the file on every controller", id)
	}
	k, err := state.ByID[KEK](s.d.Store.ReadTxn(), tableKEKs, "key", id)
	if err != nil {
		return err
	}
	if k.State == StateActive {
		return problem.New(problem.KindConflict, "kek_active", "key-encryption key %s is active: rotate first, then remove it once nothing uses it", id)
	}
	counts, err := s.counts()
	if err != nil {
		return err
	}
	if c := counts[id]; len(c) > 0 {
		var parts []string
		for _, h := range slices.Sorted(maps.Keys(c)) {
			parts = append(parts, fmt.Sprintf("%s: %d", h, c[h]))
		}
		return problem.New(problem.KindConflict, "kek_in_use",
			"key-encryption key %s still wraps envelopes (%s); wait for the re-wrap to finish (operator keyring list)", id, strings.Join(parts, ", "))
	}
	cmd, err := state.NewCommand(cmdKEKRemove, 1, kekIDPayload{ID: id})
	if err != nil {
		return err
	}
	res, err := s.d.Applier.Apply(ctx, cmd)
	if err == nil {
		err = res[0].Decode(nil)
	}
	if err != nil {
		return fmt.Errorf("keyring remove %s: %w", id, err)
	}
	s.mu.Lock()
	delete(s.opened, id)
	s.mu.Unlock()
	s.d.Logger.Info("removed a key-encryption key", "kek", id, "actor", actor)
	return nil
}

// rewrapBatch bounds one holder's Raft write during a re-wrap.
const rewrapBatch = 256

// Run re-wraps in the background on the leader: at once when a KEK is
// added (whichever controller took the rotation; the table's watch wakes
// the leader), and every interval in case a leader change interrupted one.
func (s *Service) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		// Watch before working: a key added during the pass, or before
		// the select, wakes the next one; one added before is this one's.
		changed := s.kekWatch()
		if s.d.IsLeader() {
			if err := s.RewrapAll(ctx); err != nil && ctx.Err() == nil {
				s.d.Logger.Warn("keyring re-wrap", "error", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		case <-changed:
		case <-t.C:
		}
	}
}

// kekWatch returns a channel closed when the KEK table next changes (nil,
// which never fires, when it cannot be read; the interval covers that).
func (s *Service) kekWatch() <-chan struct{} {
	it, err := s.d.Store.ReadTxn().Get(tableKEKs, "id")
	if err != nil {
		s.d.Logger.Warn("keyring: watch keys", "error", err)
		return nil
	}
	return it.WatchCh()
}

// RewrapAll has every holder re-wrap its envelopes under the active key,
// then retires the KEKs that wrap nothing any more. The status keeps the
// last pass that moved something (or failed), not the idle passes after.
func (s *Service) RewrapAll(ctx context.Context) (err error) {
	s.mu.Lock()
	names := slices.Sorted(maps.Keys(s.holders))
	holders := make([]Holder, len(names))
	for i, n := range names {
		holders[i] = s.holders[n]
	}
	s.mu.Unlock()
	started := time.Now().UTC()
	total := 0
	defer func() {
		if total == 0 && err == nil {
			return
		}
		s.mu.Lock()
		s.rewrap = RewrapStatus{StartedAt: started, EndedAt: time.Now().UTC(), Rewrapped: total}
		if err != nil {
			s.rewrap.Error = err.Error()
		}
		s.mu.Unlock()
		s.d.Logger.Info("keyring re-wrap finished", "rewrapped", total, "error", err)
	}()
	for i, h := range holders {
		for {
			n, err := h.RewrapEnvelopes(ctx, rewrapBatch)
			if err != nil {
				return fmt.Errorf("re-wrap %s: %w", names[i], err)
			}
			if n == 0 {
				break
			}
			total += n
			s.mu.Lock()
			s.rewrap = RewrapStatus{Running: true, StartedAt: started, Rewrapped: total}
			s.mu.Unlock()
		}
	}
	return s.retireUnused(ctx)
}

// retireUnused commits "retired" for each retiring KEK that wraps nothing.
func (s *Service) retireUnused(ctx context.Context) error {
	keks, err := s.keks()
	if err != nil {
		return err
	}
	counts, err := s.counts()
	if err != nil {
		return err
	}
	var cmds []state.Command
	for _, k := range keks {
		if k.State == StateRetiring && len(counts[k.ID]) == 0 {
			cmd, err := state.NewCommand(cmdKEKRetire, 1, kekIDPayload{ID: k.ID})
			if err != nil {
				return err
			}
			cmds = append(cmds, cmd)
		}
	}
	if len(cmds) == 0 {
		return nil
	}
	if _, err := s.d.Applier.Apply(ctx, cmds...); err != nil {
		return fmt.Errorf("retire keys: %w", err)
	}
	return nil
}

// kekHolder makes the KEKs themselves envelopes of the root keys, so that
// a root key added to the key file takes over sealing them and the old
// root key can leave the file once `keyring list` shows it wraps nothing.
type kekHolder struct{ s *Service }

func (h kekHolder) EnvelopeCounts() (map[string]int, error) {
	keks, err := h.s.keks()
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, k := range keks {
		out[k.Sealed.KeyID]++
	}
	return out, nil
}

func (h kekHolder) RewrapEnvelopes(ctx context.Context, limit int) (int, error) {
	keks, err := h.s.keks()
	if err != nil {
		return 0, err
	}
	root := h.s.d.Root
	var cmds []state.Command
	for _, k := range keks {
		if k.Sealed.KeyID == root.ActiveKeyID() {
			continue
		}
		sealed, err := root.Rewrap(k.Sealed, kekAAD(k.ID))
		if err != nil {
			return 0, fmt.Errorf("key-encryption key %s: %w", k.ID, err)
		}
		cmd, err := state.NewCommand(cmdKEKRewrap, 1, kekRewrapPayload{ID: k.ID, From: k.Sealed.KeyID, Sealed: sealed})
		if err != nil {
			return 0, err
		}
		cmds = append(cmds, cmd)
		if len(cmds) == limit {
			break
		}
	}
	if len(cmds) == 0 {
		return 0, nil
	}
	res, err := h.s.d.Applier.Apply(ctx, cmds...)
	if err != nil {
		return 0, err
	}
	for _, r := range res {
		if err := r.Decode(nil); err != nil {
			return 0, err
		}
	}
	return len(cmds), nil
}
