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
	// value is the handler's return before EncodeResults.
	value   any
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
	if r.Value == nil && r.value != nil {
		r = EncodeResults([]Result{r})[0]
		if r.Err != nil {
			return r.Err
		}
	}
	if v == nil || len(r.Value) == 0 {
		return nil
	}
	if err := json.Unmarshal(r.Value, v); err != nil {
		return fmt.Errorf("decode command result: %w", err)
	}
	return nil
}

// Apply applies one decoded entry at index. A rejected command leaves no
// partial write. It returns ErrUnknownCommand (wrapped) when the entry
// cannot be applied faithfully; the caller must stop the node then.
//
// The fast path runs the whole entry in one memdb transaction, which is
// far cheaper than one per command when the leader batches. A handler that
// rejects its command after writing forces the slow path: the entry is
// discarded and replayed with one transaction per command. Both paths give
// the same result on every node, so the choice stays deterministic.
func (s *Store) Apply(index uint64, e Entry) ([]Result, error) {
	for i, c := range e.Commands {
		if _, ok := s.reg.handlers[c.Type]; !ok && !c.IgnoreUnknown {
			return nil, fmt.Errorf("entry %d commands[%d]: %w %q (version %d); upgrade this node", index, i, ErrUnknownCommand, c.Type, c.Version)
		}
	}
	s.mu.RLock()
	db := s.db
	s.mu.RUnlock()
	results := make([]Result, len(e.Commands))
	txn := newTxn(db, index)
	for i, c := range e.Commands {
		before := txn.writes
		results[i] = s.applyOne(txn, index, e, c)
		if results[i].Err != nil && txn.writes != before {
			txn.abort()
			for i, c := range e.Commands {
				one := newTxn(db, index)
				results[i] = s.applyOne(one, index, e, c)
				if results[i].Err != nil {
					one.abort()
				} else {
					one.commit()
				}
			}
			s.setIndex(index)
			return results, nil
		}
	}
	txn.commit()
	s.setIndex(index)
	return results, nil
}

func (s *Store) applyOne(txn *Txn, index uint64, e Entry, c Command) Result {
	h, ok := s.reg.handlers[c.Type]
	if !ok {
		s.log.Warn("skipping unknown command marked ignore_unknown", "type", c.Type, "version", c.Version, "index", index)
		return Result{Index: index, Ignored: true}
	}
	value, err := h(&ApplyContext{Index: index, Time: e.Time, Txn: txn}, c.Version, c.Payload)
	if err != nil {
		p, ok := problem.As(err)
		if !ok {
			// A handler failing without a problem is a bug in the handler,
			// but it failed the same way on every node, so state agrees.
			s.log.Error("command handler failed", "type", c.Type, "index", index, "error", err)
			p = &problem.Error{Kind: problem.KindInternal, Code: "apply_failed", Message: fmt.Sprintf("%s: %v", c.Type, err)}
		}
		return Result{Index: index, Err: p}
	}
	return Result{Index: index, value: value}
}

// EncodeResults turns handler values into JSON. Only the node that answers
// the caller (the leader) pays for it; followers discard their results.
func EncodeResults(results []Result) []Result {
	for i := range results {
		r := &results[i]
		if r.value == nil || r.Value != nil {
			continue
		}
		raw, err := json.Marshal(r.value)
		if err != nil {
			r.Err = &problem.Error{Kind: problem.KindInternal, Code: "encode_failed", Message: fmt.Sprintf("encode result: %v", err)}
			continue
		}
		r.Value, r.value = raw, nil
	}
	return results
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

// Txn is a handler's write transaction. It exposes only reads and tracked
// writes, so the store knows which tables' modify indexes to move and
// whether a rejected command wrote anything.
type Txn struct {
	txn     *memdb.Txn
	index   uint64
	touched map[string]struct{}
	writes  int
}

func newTxn(db *memdb.MemDB, index uint64) *Txn {
	return &Txn{txn: db.Txn(true), index: index, touched: map[string]struct{}{}}
}

// First returns the first object matching the index and arguments.
func (t *Txn) First(table, index string, args ...any) (any, error) {
	return t.txn.First(table, index, args...)
}

// Last returns the last object matching the index and arguments.
func (t *Txn) Last(table, index string, args ...any) (any, error) {
	return t.txn.Last(table, index, args...)
}

// Get iterates the objects matching the index and arguments.
func (t *Txn) Get(table, index string, args ...any) (memdb.ResultIterator, error) {
	return t.txn.Get(table, index, args...)
}

// LowerBound iterates from the first object at or after the arguments.
func (t *Txn) LowerBound(table, index string, args ...any) (memdb.ResultIterator, error) {
	return t.txn.LowerBound(table, index, args...)
}

// Insert inserts or replaces obj in table. Objects read from the store are
// shared with readers: copy before changing, never mutate in place.
func (t *Txn) Insert(table string, obj any) error {
	t.touched[table] = struct{}{}
	t.writes++
	if err := t.txn.Insert(table, obj); err != nil {
		return fmt.Errorf("insert into %s: %w", table, err)
	}
	return nil
}

// Delete removes obj from table.
func (t *Txn) Delete(table string, obj any) error {
	t.touched[table] = struct{}{}
	t.writes++
	if err := t.txn.Delete(table, obj); err != nil {
		return fmt.Errorf("delete from %s: %w", table, err)
	}
	return nil
}

// AfterCommit runs fn once the transaction has committed, so that what
// fn tells others about is already readable; an aborted transaction (a
// rejected command, or an entry replayed command by command) drops it.
// fn must not block: it runs inside the FSM's Apply.
func (t *Txn) AfterCommit(fn func()) { t.txn.Defer(fn) }

func (t *Txn) abort() { t.txn.Abort() }

func (t *Txn) commit() {
	for table := range t.touched {
		// Inserting into the index table cannot fail: its schema is ours.
		_ = t.txn.Insert(tableIndexes, &IndexEntry{Table: table, Index: t.index})
	}
	t.txn.Commit()
}
