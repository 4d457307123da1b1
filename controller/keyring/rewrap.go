package keyring

import (
	"context"
	"fmt"

	"github.com/opsconductor/opsconductor/controller/state"
)

// Stale is one of a holder's envelopes that the active key does not wrap,
// with the command that stores its re-wrapped form (a holder's command
// checks that the envelope is still the one it read).
type Stale struct {
	What    string
	Sealed  Sealed
	AAD     []byte
	Command func(rewrapped Sealed) (state.Command, error)
}

// RewrapStale re-wraps envelopes under the active key and commits their
// commands in one entry, returning how many committed. Holders'
// RewrapEnvelopes collect their stale envelopes and call it.
func RewrapStale(ctx context.Context, s Sealer, a Applier, stale []Stale) (int, error) {
	if len(stale) == 0 {
		return 0, nil
	}
	cmds := make([]state.Command, 0, len(stale))
	for _, st := range stale {
		sealed, err := s.Rewrap(st.Sealed, st.AAD)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", st.What, err)
		}
		c, err := st.Command(sealed)
		if err != nil {
			return 0, err
		}
		cmds = append(cmds, c)
	}
	res, err := a.Apply(ctx, cmds...)
	if err != nil {
		return 0, fmt.Errorf("re-wrap envelopes: %w", err)
	}
	n := 0
	for _, r := range res {
		if r.Err == nil {
			n++
		}
	}
	return n, nil
}
