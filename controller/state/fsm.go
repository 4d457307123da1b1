package state

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/hashicorp/raft"
)

// FSM adapts the store to hashicorp/raft. Raft calls Apply, Snapshot and
// Restore from one goroutine, in log order.
type FSM struct {
	store *Store
	log   *slog.Logger
	// fatal is called when an entry cannot be applied faithfully. The
	// default panics: a node that skipped a command would silently diverge
	// from its peers, which is worse than stopping.
	fatal func(error)
}

// NewFSM returns the FSM for store.
func NewFSM(store *Store, log *slog.Logger) *FSM {
	return &FSM{store: store, log: log, fatal: func(err error) {
		log.Error("stopping: cannot apply replicated log", "error", err)
		panic(err)
	}}
}

// Store returns the store the FSM writes.
func (f *FSM) Store() *Store { return f.store }

// Apply applies one committed log entry. It returns []Result for command
// entries; raft hands that back to the ApplyFuture on the leader.
func (f *FSM) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	e, err := DecodeEntry(l.Data)
	if err != nil {
		f.fatal(fmt.Errorf("apply index %d: %w", l.Index, err))
		return nil
	}
	results, err := f.store.Apply(l.Index, e)
	if err != nil {
		f.fatal(fmt.Errorf("apply index %d: %w", l.Index, err))
		return nil
	}
	return results
}

// Snapshot captures a point-in-time view cheaply (memdb transactions are
// immutable trees); Persist streams it while Apply carries on.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	return &fsmSnapshot{store: f.store, view: f.store.View()}, nil
}

// Restore replaces the whole store with the snapshot in rc.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	if err := f.store.Restore(rc); err != nil {
		return fmt.Errorf("restore state: %w", err)
	}
	f.log.Info("state restored from snapshot", "index", f.store.LastIndex())
	return nil
}

type fsmSnapshot struct {
	store *Store
	view  ReadView
}

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.store.WriteSnapshot(s.view, sink); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("persist snapshot: %w", err)
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() {}
