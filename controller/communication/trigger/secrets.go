package trigger

import (
	"context"
	"fmt"

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
	var cmds []state.Command
	for obj := it.Next(); obj != nil && len(cmds) < limit; obj = it.Next() {
		t := obj.(*Stored)
		if t.Secret.IsZero() || t.Secret.KeyID == active {
			continue
		}
		sealed, err := s.d.Sealer.Rewrap(t.Secret, secretAAD(t.ID))
		if err != nil {
			return 0, fmt.Errorf("trigger %s: %w", t.ID, err)
		}
		c, err := state.NewCommand(cmdRewrap, 1, rewrapPayload{ID: t.ID, From: t.Secret.KeyID, Sealed: sealed})
		if err != nil {
			return 0, err
		}
		cmds = append(cmds, c)
	}
	if len(cmds) == 0 {
		return 0, nil
	}
	res, err := s.d.Applier.Apply(ctx, cmds...)
	if err != nil {
		return 0, fmt.Errorf("re-wrap trigger secrets: %w", err)
	}
	n := 0
	for _, r := range res {
		if r.Err == nil {
			n++
		}
	}
	return n, nil
}
