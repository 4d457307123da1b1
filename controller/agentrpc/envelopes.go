package agentrpc

import (
	"bytes"
	"context"
	"fmt"

	"github.com/opsconductor/opsconductor/controller/keyring"
	"github.com/opsconductor/opsconductor/controller/state"
)

// cmdCARewrap swaps the CA key's envelope for a re-wrapped one. Appended,
// never renamed.
const cmdCARewrap = "agentrpc.ca.rewrap"

type caRewrapPayload struct {
	// From is the key the envelope named when the leader re-wrapped it;
	// an envelope changed since is left alone.
	From   string         `json:"from"`
	Sealed keyring.Sealed `json:"sealed"`
}

func applyCARewrap(ctx *state.ApplyContext, p caRewrapPayload) (any, error) {
	row, err := getCA(ctx.Txn)
	if err != nil || row == nil {
		return 0, err
	}
	if row.KeySealed.KeyID != p.From || !bytes.Equal(row.KeySealed.Ciphertext, p.Sealed.Ciphertext) {
		return 0, nil
	}
	c := *row
	c.KeySealed = p.Sealed
	return 1, ctx.Txn.Insert(tableCA, &c)
}

// EnvelopeCounts implements keyring.Holder: the agent CA's key.
func (s *Service) EnvelopeCounts() (map[string]int, error) {
	row, err := getCA(s.txn())
	if err != nil || row == nil {
		return map[string]int{}, err
	}
	return map[string]int{row.KeySealed.KeyID: 1}, nil
}

// RewrapEnvelopes implements keyring.Holder: it re-wraps the CA key under
// the active key.
func (s *Service) RewrapEnvelopes(ctx context.Context, _ int) (int, error) {
	row, err := getCA(s.txn())
	if err != nil || row == nil || row.KeySealed.KeyID == s.kr.ActiveKeyID() {
		return 0, err
	}
	sealed, err := s.kr.Rewrap(row.KeySealed, []byte(caAAD))
	if err != nil {
		return 0, fmt.Errorf("agent CA key: %w", err)
	}
	var n int
	if err := s.apply(ctx, cmdCARewrap, caRewrapPayload{From: row.KeySealed.KeyID, Sealed: sealed}, &n); err != nil {
		return 0, err
	}
	return n, nil
}
