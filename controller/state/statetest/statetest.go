// Package statetest gives domain tests a state store and an Applier that
// commits straight to it, as a one-node cluster does, without Raft.
package statetest

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/opsconductor/opsconductor/controller/state"
)

// NewStore returns an empty store with the domains registered.
func NewStore(t testing.TB, domains ...state.Domain) *state.Store {
	t.Helper()
	reg := state.NewRegistry()
	for _, d := range domains {
		reg.MustRegister(d)
	}
	store, err := state.NewStore(reg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return store
}

// Applier applies each call's commands as one entry, stamped by Now (the
// wall clock in UTC when nil), and counts them by type.
type Applier struct {
	Store *state.Store
	Now   func() time.Time

	mu     sync.Mutex
	index  uint64
	counts map[string]int
}

// Apply implements the domains' Applier interfaces.
func (a *Applier) Apply(_ context.Context, cmds ...state.Command) ([]state.Result, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.counts == nil {
		a.counts = map[string]int{}
	}
	for _, c := range cmds {
		a.counts[c.Type]++
	}
	a.index++
	now := time.Now().UTC()
	if a.Now != nil {
		now = a.Now()
	}
	res, err := a.Store.Apply(a.index, state.Entry{Time: now, Commands: cmds})
	if err != nil {
		return nil, err
	}
	return state.EncodeResults(res), nil
}

// Applied is how many commands of type typ were applied.
func (a *Applier) Applied(typ string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.counts[typ]
}

// Index is the number of entries applied.
func (a *Applier) Index() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.index
}
