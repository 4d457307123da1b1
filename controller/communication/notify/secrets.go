package notify

import (
	"context"

	"github.com/opsconductor/opsconductor/controller/keyring"
	"github.com/opsconductor/opsconductor/controller/state"
)

// EnvelopeCounts implements keyring.Holder: channel secrets by the key
// that wraps them.
func (s *Service) EnvelopeCounts() (map[string]int, error) {
	out := map[string]int{}
	err := s.each(tableChannels, func(obj any) {
		if c := obj.(*Channel); !c.Secret.IsZero() {
			out[c.Secret.KeyID]++
		}
	})
	return out, err
}

// RewrapEnvelopes implements keyring.Holder.
func (s *Service) RewrapEnvelopes(ctx context.Context, limit int) (int, error) {
	if s.d.Sealer == nil {
		return 0, nil
	}
	active := s.d.Sealer.ActiveKeyID()
	var stale []keyring.Stale
	err := s.each(tableChannels, func(obj any) {
		c := obj.(*Channel)
		if len(stale) >= limit || c.Secret.IsZero() || c.Secret.KeyID == active {
			return
		}
		stale = append(stale, keyring.Stale{What: "channel " + c.Name, Sealed: c.Secret, AAD: secretAAD(c.Name),
			Command: func(sealed keyring.Sealed) (state.Command, error) {
				return state.NewCommand(cmdChannelRewrap, 1, channelRewrapPayload{Name: c.Name, From: c.Secret.KeyID, Sealed: sealed})
			}})
	})
	if err != nil {
		return 0, err
	}
	return keyring.RewrapStale(ctx, s.d.Sealer, s.d.Applier, stale)
}
