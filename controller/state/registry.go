package state

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/opsconductor/opsconductor/controller/problem"
)

// Table is one memdb table owned by a domain. New returns a pointer to a
// zero value of the table's row type, so that a snapshot can be decoded
// back into the same Go types it was written from.
type Table struct {
	Schema *memdb.TableSchema
	New    func() any
}

// Handler applies one command inside a write transaction. It must be
// deterministic: everything it needs is in the payload or in ctx (index and
// the leader's time), never a clock, randomness or I/O. A returned
// *problem.Error rejects this command only (its writes are discarded); the
// rest of the entry still applies.
type Handler func(ctx *ApplyContext, version uint16, payload json.RawMessage) (any, error)

// Domain is what a domain package registers: its tables and the commands it
// handles. Table names and command types must be unique across domains.
type Domain struct {
	Name     string
	Tables   []Table
	Commands map[string]Handler
}

// Registry collects domains before the store is built. It is filled once at
// start-up and read-only afterwards.
type Registry struct {
	tables   map[string]Table
	handlers map[string]Handler
	domains  []string
}

// NewRegistry returns a registry holding the state package's own tables.
func NewRegistry() *Registry {
	r := &Registry{tables: map[string]Table{}, handlers: map[string]Handler{}}
	r.MustRegister(coreDomain())
	return r
}

// Register adds a domain, refusing duplicate tables or command types.
func (r *Registry) Register(d Domain) error {
	if d.Name == "" {
		return fmt.Errorf("register domain: name is empty")
	}
	for _, t := range d.Tables {
		if t.Schema == nil || t.New == nil {
			return fmt.Errorf("register domain %s: table without schema or constructor", d.Name)
		}
		if _, dup := r.tables[t.Schema.Name]; dup {
			return fmt.Errorf("register domain %s: table %q already registered", d.Name, t.Schema.Name)
		}
	}
	for typ := range d.Commands {
		if _, dup := r.handlers[typ]; dup {
			return fmt.Errorf("register domain %s: command %q already registered", d.Name, typ)
		}
	}
	for _, t := range d.Tables {
		r.tables[t.Schema.Name] = t
	}
	for typ, h := range d.Commands {
		r.handlers[typ] = h
	}
	r.domains = append(r.domains, d.Name)
	return nil
}

// MustRegister is Register for start-up wiring, where a clash is a
// programming error.
func (r *Registry) MustRegister(d Domain) {
	if err := r.Register(d); err != nil {
		panic(err)
	}
}

func (r *Registry) schema() *memdb.DBSchema {
	s := &memdb.DBSchema{Tables: map[string]*memdb.TableSchema{}}
	for name, t := range r.tables {
		s.Tables[name] = t.Schema
	}
	return s
}

// tableNames returns every table in a fixed order; snapshots depend on it.
func (r *Registry) tableNames() []string {
	names := make([]string, 0, len(r.tables))
	for n := range r.tables {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ApplyContext is what a handler sees of the entry being applied.
type ApplyContext struct {
	Index uint64    // Raft index of the entry
	Time  time.Time // stamped by the leader
	Txn   *Txn
}

// V1 adapts a typed handler for a command that has only version 1: it
// refuses other versions and decodes the payload into P, rejecting a
// payload that does not decode as the command's problem.
func V1[P any](fn func(ctx *ApplyContext, p P) (any, error)) Handler {
	return func(ctx *ApplyContext, version uint16, raw json.RawMessage) (any, error) {
		if version != 1 {
			return nil, fmt.Errorf("version %d not supported", version)
		}
		var p P
		if err := json.Unmarshal(raw, &p); err != nil {
			return nil, problem.Invalid("payload", "decode: %v", err)
		}
		return fn(ctx, p)
	}
}

// Reader is what a lookup needs of a transaction: a handler's write
// transaction and a read-only memdb transaction both satisfy it, so one
// lookup serves the FSM and the domain's reads.
type Reader interface {
	First(table, index string, args ...any) (any, error)
	Get(table, index string, args ...any) (memdb.ResultIterator, error)
}

// ByID returns the row of table whose "id" index is id, or a not-found
// problem naming what ("user", "agent") when there is none.
func ByID[T any](txn Reader, table, what, id string) (*T, error) {
	raw, err := txn.First(table, "id", id)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	if raw == nil {
		return nil, problem.NotFound(what, id)
	}
	return raw.(*T), nil
}
