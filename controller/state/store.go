// Package state owns the replicated state store: go-memdb tables that
// domains register, the typed commands that change them, and the Raft FSM
// that applies those commands. It is the only writer of replicated state.
// It must never read a clock, draw randomness or do I/O while applying a
// command, and never know what a domain's rows mean.
package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/hashicorp/go-memdb"

	"github.com/opsconductor/opsconductor/controller/problem"
)

// ErrUnknownCommand means an entry holds a command type this node does not
// know and that was not marked IgnoreUnknown. Continuing would let this
// node's state diverge from the others', so the node must stop.
var ErrUnknownCommand = errors.New("unknown command type")

// Store is the in-memory replicated state. Reads take a memdb snapshot
// transaction and never block writers. Restore swaps the whole database
// atomically and closes the abandon channel so that blocked readers retry
// against the new one.
type Store struct {
	reg *Registry
	log *slog.Logger

	mu        sync.RWMutex
	db        *memdb.MemDB
	abandonCh chan struct{}
	// lastIndex is the Raft index of the last entry applied (or restored);
	// indexCh is closed and replaced whenever it moves.
	lastIndex uint64
	indexCh   chan struct{}
}

// NewStore builds an empty store for the registered domains.
func NewStore(reg *Registry, log *slog.Logger) (*Store, error) {
	db, err := memdb.NewMemDB(reg.schema())
	if err != nil {
		return nil, fmt.Errorf("build state schema: %w", err)
	}
	return &Store{reg: reg, log: log, db: db, abandonCh: make(chan struct{}), indexCh: make(chan struct{})}, nil
}

// ReadTxn returns a read-only snapshot of the whole store.
func (s *Store) ReadTxn() *memdb.Txn {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.db.Txn(false)
}

// AbandonCh is closed when the store is replaced by a restore.
func (s *Store) AbandonCh() <-chan struct{} {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.abandonCh
}

// LastIndex is the Raft index of the last applied entry.
func (s *Store) LastIndex() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.lastIndex
}

// WaitForIndex blocks until the store has applied index idx or ctx ends.
func (s *Store) WaitForIndex(ctx context.Context, idx uint64) error {
	for {
		s.mu.RLock()
		last, ch := s.lastIndex, s.indexCh
		s.mu.RUnlock()
		if last >= idx {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wait for state index %d (at %d): %w", idx, last, ctx.Err())
		}
	}
}

// TableIndex returns the Raft index that last changed table (0 if never).
func (s *Store) TableIndex(txn *memdb.Txn, table string) uint64 {
	raw, err := txn.First(tableIndexes, "id", table)
	if err != nil || raw == nil {
		return 0
	}
	return raw.(*IndexEntry).Index
}

// QueryFunc runs a read inside txn, adds what it read to ws, and returns the
// index of the data it read (usually TableIndex of its table).
type QueryFunc func(ws memdb.WatchSet, txn *memdb.Txn) (uint64, error)

// BlockingQuery runs fn until its index exceeds minIndex or ctx ends, the way
// Consul and Nomad serve `?index=` reads: it sleeps on the watch set, never
// polls. A restore wakes it because the abandon channel is in every set.
func (s *Store) BlockingQuery(ctx context.Context, minIndex uint64, fn QueryFunc) (uint64, error) {
	for {
		ws := memdb.NewWatchSet()
		s.mu.RLock()
		txn, abandon := s.db.Txn(false), s.abandonCh
		s.mu.RUnlock()
		ws.Add(abandon)
		idx, err := fn(ws, txn)
		if err != nil {
			return idx, err
		}
		if idx > minIndex || minIndex == 0 {
			return idx, nil
		}
		if err := ws.WatchCtx(ctx); err != nil {
			// The deadline is the normal end of a long poll: answer with
			// what is there now.
			return idx, nil
		}
	}
}

// Result is the outcome of one command: the handler's value as JSON, or the
// problem that rejected it. It crosses the wire when a follower forwards a
// write, so it holds only serialisable values.
type Result struct {
	Index   uint64          `json:"index"`
	Value   json.RawMessage `json:"value,omitempty"`
	Err     *problem.Error  `json:"error,omitempty"`
	Ignored bool            `json:"ignored,omitempty"`
}

// Decode unmarshals the handler's value into v, or returns its problem.
func (r Result) Decode(v any) error {
	if r.Err != nil {
		return r.Err
	}
	if v == nil || len(r.Value) == 0 {
		return nil
	}
	if err := json.Unmarshal(r.Value, v); err != nil {
		return fmt.Errorf("decode command result: %w", err)
	}
	return nil
}

// Apply applies one decoded entry at index. Each command runs in its own
// write transaction so that a rejected command leaves no partial write.
// It returns ErrUnknownCommand (wrapped) when the entry cannot be applied
// faithfully; the caller must stop the node then.
func (s *Store) Apply(index uint64, e Entry) ([]Result, error) {
	for i, c := range e.Commands {
		if _, ok := s.reg.handlers[c.Type]; !ok && !c.IgnoreUnknown {
			return nil, fmt.Errorf("entry %d commands[%d]: %w %q (version %d); upgrade this node", index, i, ErrUnknownCommand, c.Type, c.Version)
		}
	}
	results := make([]Result, len(e.Commands))
	s.mu.RLock()
	db := s.db
	s.mu.RUnlock()
	for i, c := range e.Commands {
		results[i] = s.applyOne(db, index, e, c)
	}
	s.setIndex(index)
	return results, nil
}

func (s *Store) applyOne(db *memdb.MemDB, index uint64, e Entry, c Command) Result {
	h, ok := s.reg.handlers[c.Type]
	if !ok {
		s.log.Warn("skipping unknown command marked ignore_unknown", "type", c.Type, "version", c.Version, "index", index)
		return Result{Index: index, Ignored: true}
	}
	txn := &Txn{Txn: db.Txn(true), index: index, touched: map[string]struct{}{}}
	value, err := h(&ApplyContext{Index: index, Time: e.Time, Txn: txn}, c.Version, c.Payload)
	if err == nil {
		err = txn.commit()
	}
	if err != nil {
		txn.Abort()
		p, ok := problem.As(err)
		if !ok {
			// A handler failing without a problem is a bug in the handler,
			// but it failed the same way on every node, so state agrees.
			s.log.Error("command handler failed", "type", c.Type, "index", index, "error", err)
			p = &problem.Error{Kind: problem.KindInternal, Code: "apply_failed", Message: fmt.Sprintf("%s: %v", c.Type, err)}
		}
		return Result{Index: index, Err: p}
	}
	if value == nil {
		return Result{Index: index}
	}
	raw, merr := json.Marshal(value)
	if merr != nil {
		return Result{Index: index, Err: &problem.Error{Kind: problem.KindInternal, Code: "apply_failed", Message: fmt.Sprintf("%s: encode result: %v", c.Type, merr)}}
	}
	return Result{Index: index, Value: raw}
}

func (s *Store) setIndex(index uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if index > s.lastIndex {
		s.lastIndex = index
		close(s.indexCh)
		s.indexCh = make(chan struct{})
	}
}

// replace swaps in a restored database and wakes every blocked reader.
func (s *Store) replace(db *memdb.MemDB, index uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.db = db
	close(s.abandonCh)
	s.abandonCh = make(chan struct{})
	s.lastIndex = index
	close(s.indexCh)
	s.indexCh = make(chan struct{})
}

// Txn is a write transaction that records which tables it changed so that
// their modify indexes move with the data, in the same transaction.
type Txn struct {
	*memdb.Txn
	index   uint64
	touched map[string]struct{}
}

// Insert inserts or replaces obj in table. Objects read from the store are
// shared with readers: copy before changing, never mutate in place.
func (t *Txn) Insert(table string, obj any) error {
	t.touched[table] = struct{}{}
	if err := t.Txn.Insert(table, obj); err != nil {
		return fmt.Errorf("insert into %s: %w", table, err)
	}
	return nil
}

// Delete removes obj from table.
func (t *Txn) Delete(table string, obj any) error {
	t.touched[table] = struct{}{}
	if err := t.Txn.Delete(table, obj); err != nil {
		return fmt.Errorf("delete from %s: %w", table, err)
	}
	return nil
}

func (t *Txn) commit() error {
	for table := range t.touched {
		if err := t.Txn.Insert(tableIndexes, &IndexEntry{Table: table, Index: t.index}); err != nil {
			return fmt.Errorf("update index of %s: %w", table, err)
		}
	}
	t.Txn.Commit()
	return nil
}
