package notify

import (
	"context"
	"errors"
	"fmt"

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
	var cmds []state.Command
	var failed error
	err := s.each(tableChannels, func(obj any) {
		c := obj.(*Channel)
		if failed != nil || len(cmds) >= limit || c.Secret.IsZero() || c.Secret.KeyID == active {
			return
		}
		sealed, err := s.d.Sealer.Rewrap(c.Secret, secretAAD(c.Name))
		if err != nil {
			failed = fmt.Errorf("channel %s: %w", c.Name, err)
			return
		}
		cmd, err := state.NewCommand(cmdChannelRewrap, 1, channelRewrapPayload{Name: c.Name, From: c.Secret.KeyID, Sealed: sealed})
		if err != nil {
			failed = err
			return
		}
		cmds = append(cmds, cmd)
	})
	if err != nil || failed != nil {
		return 0, fmt.Errorf("re-wrap channel secrets: %w", errors.Join(err, failed))
	}
	if len(cmds) == 0 {
		return 0, nil
	}
	res, err := s.d.Applier.Apply(ctx, cmds...)
	if err != nil {
		return 0, fmt.Errorf("re-wrap channel secrets: %w", err)
	}
	n := 0
	for _, r := range res {
		if r.Err == nil {
			n++
		}
	}
	return n, nil
}
