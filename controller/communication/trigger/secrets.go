package trigger

import (
	"context"
	"fmt"

	"github.com/opsconductor/opsconductor/controller/keyring"
	"github.com/opsconductor/opsconductor/controller/state"
)

// EnvelopeCounts implements keyring.Holder: trigger secrets by the key
// that wraps them.
func (s *Service) EnvelopeCounts() (map[string]int, error) {
	it, err := s.d.Store.ReadTxn().Get(tableTriggers, "id")
	if err != nil {
		return nil, fmt.Errorf("count trigger envelopes: %w", err)
	}
	out := map[string]int{}
	for obj := it.Next(); obj != nil; obj = it.Next() {
		if t := obj.(*Stored); !t.Secret.IsZero() {
			out[t.Secret.KeyID]++
		}
	}
	return out, nil
}

// RewrapEnvelopes implements keyring.Holder.
func (s *Service) RewrapEnvelopes(ctx context.Context, limit int) (int, error) {
	if s.d.Sealer == nil {
		return 0, nil
	}
	active := s.d.Sealer.ActiveKeyID()
	it, err := s.d.Store.ReadTxn().Get(tableTriggers, "id")
	if err != nil {
		return 0, fmt.Errorf("read triggers: %w", err)
	}
	var stale []keyring.Stale
	for obj := it.Next(); obj != nil && len(stale) < limit; obj = it.Next() {
		t := obj.(*Stored)
		if t.Secret.IsZero() || t.Secret.KeyID == active {
			continue
		}
		stale = append(stale, keyring.Stale{What: "trigger " + t.ID, Sealed: t.Secret, AAD: secretAAD(t.ID),
			Command: func(sealed keyring.Sealed) (state.Command, error) {
				return state.NewCommand(cmdRewrap, 1, rewrapPayload{ID: t.ID, From: t.Secret.KeyID, Sealed: sealed})
			}})
	}
	return keyring.RewrapStale(ctx, s.d.Sealer, s.d.Applier, stale)
}
