package identity

import (
	"bytes"
	"context"
	"fmt"

	"github.com/opsconductor/opsconductor/controller/keyring"
	"github.com/opsconductor/opsconductor/controller/state"
)

// cmdRewrap swaps keyring envelopes for re-wrapped ones. Appended to the
// command list in fsm.go's order, never renamed.
const cmdRewrap = "identity.rewrap"

// Envelope kinds in identity's state.
const (
	envSigningKey  = "signing_key"  // SigningKey.Private, by KID
	envTOTPPending = "totp_pending" // User.TOTP.Pending, by user ID
	envTOTPSecret  = "totp_secret"  // User.TOTP.Secret, by user ID
)

type rewrapItem struct {
	Kind string `json:"kind"`
	ID   string `json:"id"`
	// From is the key the envelope named when the leader re-wrapped it;
	// an envelope changed since is left alone.
	From   string         `json:"from"`
	Sealed keyring.Sealed `json:"sealed"`
}

type rewrapPayload struct {
	Items []rewrapItem `json:"items"`
}

// sameEnvelope reports whether stored is the envelope the leader
// re-wrapped (a re-wrap keeps the ciphertext).
func sameEnvelope(stored keyring.Sealed, it rewrapItem) bool {
	return stored.KeyID == it.From && bytes.Equal(stored.Ciphertext, it.Sealed.Ciphertext)
}

func applyRewrap(ctx *state.ApplyContext, p rewrapPayload) (any, error) {
	n := 0
	for _, it := range p.Items {
		switch it.Kind {
		case envSigningKey:
			raw, err := ctx.Txn.First(tableKeys, "id", it.ID)
			if err != nil {
				return nil, err
			}
			if raw == nil || !sameEnvelope(raw.(*SigningKey).Private, it) {
				continue
			}
			c := *raw.(*SigningKey)
			c.Private = it.Sealed
			if err := ctx.Txn.Insert(tableKeys, &c); err != nil {
				return nil, err
			}
		case envTOTPPending, envTOTPSecret:
			raw, err := ctx.Txn.First(tableUsers, "id", it.ID)
			if err != nil {
				return nil, err
			}
			if raw == nil {
				continue
			}
			c := raw.(*User).clone()
			field := &c.TOTP.Secret
			if it.Kind == envTOTPPending {
				field = &c.TOTP.Pending
			}
			if !sameEnvelope(*field, it) {
				continue
			}
			*field = it.Sealed
			if err := ctx.Txn.Insert(tableUsers, c); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("rewrap: unknown envelope kind %q", it.Kind)
		}
		n++
	}
	return n, nil
}

// envelope is one sealed value in identity's state, with its context.
type envelope struct {
	kind, id string
	sealed   keyring.Sealed
	aad      []byte
}

// envelopes lists every envelope identity keeps.
func (s *Service) envelopes() ([]envelope, error) {
	txn := s.txn()
	var out []envelope
	it, err := txn.Get(tableKeys, "id")
	if err != nil {
		return nil, fmt.Errorf("read signing keys: %w", err)
	}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		k := raw.(*SigningKey)
		out = append(out, envelope{envSigningKey, k.KID, k.Private, signingKeyAAD(k.KID)})
	}
	it, err = txn.Get(tableUsers, "id")
	if err != nil {
		return nil, fmt.Errorf("read users: %w", err)
	}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		u := raw.(*User)
		if !u.TOTP.Pending.IsZero() {
			out = append(out, envelope{envTOTPPending, u.ID, u.TOTP.Pending, totpAAD(u.ID)})
		}
		if !u.TOTP.Secret.IsZero() {
			out = append(out, envelope{envTOTPSecret, u.ID, u.TOTP.Secret, totpAAD(u.ID)})
		}
	}
	return out, nil
}

// EnvelopeCounts implements keyring.Holder: signing keys and TOTP seeds by
// the key that wraps them.
func (s *Service) EnvelopeCounts() (map[string]int, error) {
	all, err := s.envelopes()
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, e := range all {
		out[e.sealed.KeyID]++
	}
	return out, nil
}

// RewrapEnvelopes implements keyring.Holder: it re-wraps up to limit
// envelopes under the active key in one write.
func (s *Service) RewrapEnvelopes(ctx context.Context, limit int) (int, error) {
	all, err := s.envelopes()
	if err != nil {
		return 0, err
	}
	active := s.keyring.ActiveKeyID()
	var p rewrapPayload
	for _, e := range all {
		if e.sealed.KeyID == active {
			continue
		}
		sealed, err := s.keyring.Rewrap(e.sealed, e.aad)
		if err != nil {
			return 0, fmt.Errorf("%s %s: %w", e.kind, e.id, err)
		}
		p.Items = append(p.Items, rewrapItem{Kind: e.kind, ID: e.id, From: e.sealed.KeyID, Sealed: sealed})
		if len(p.Items) == limit {
			break
		}
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
