// Package probe is the write check: a tiny replicated record that operators
// (`opsconductor operator check write`), readiness tooling and the benchmarks
// commit through Raft to prove the whole write path, follower forwarding
// included. It keeps only the newest MaxRecords records so that it never
// grows the FSM. It must never be used to store anything of value.
package probe

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/hashicorp/go-memdb"

	"github.com/opsconductor/opsconductor/controller/problem"
	"github.com/opsconductor/opsconductor/controller/state"
)

const (
	table        = "probes"
	tableCounter = "probe_counter"
	// CmdWrite commits one probe record.
	CmdWrite = "probe.write"
	// MaxPayload bounds the caller's payload.
	MaxPayload = 1024
	// MaxRecords is how many records are kept; older ones are trimmed in
	// the same Apply that adds a new one.
	MaxRecords = 10000
)

type counter struct {
	Key string `json:"key"`
	N   int    `json:"n"`
}

// Domain returns the probe tables and command for the state registry.
func Domain() state.Domain {
	return state.Domain{
		Name: "probe",
		Tables: []state.Table{
			{
				Schema: &memdb.TableSchema{Name: table, Indexes: map[string]*memdb.IndexSchema{
					"id":  {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
					"seq": {Name: "seq", Unique: true, Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{&memdb.UintFieldIndex{Field: "Index"}, &memdb.StringFieldIndex{Field: "ID"}}}},
				}},
				New: func() any { return &Record{} },
			},
			{
				Schema: &memdb.TableSchema{Name: tableCounter, Indexes: map[string]*memdb.IndexSchema{
					"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Key"}},
				}},
				New: func() any { return &counter{} },
			},
		},
		Commands: map[string]state.Handler{CmdWrite: applyWrite},
	}
}

type writePayload struct {
	ID      string `json:"id"`
	Node    string `json:"node"`
	Payload string `json:"payload"`
}

func applyWrite(ctx *state.ApplyContext, version uint16, raw json.RawMessage) (any, error) {
	if version != 1 {
		return nil, fmt.Errorf("%s version %d not supported", CmdWrite, version)
	}
	var in writePayload
	if err := json.Unmarshal(raw, &in); err != nil {
		return nil, problem.Invalid("payload", "decode %s: %v", CmdWrite, err)
	}
	if in.ID == "" {
		return nil, problem.Invalid("id", "must not be empty")
	}
	if len(in.Payload) > MaxPayload {
		return nil, problem.Invalid("payload", "is %d bytes, at most %d", len(in.Payload), MaxPayload)
	}
	if existing, err := ctx.Txn.First(table, "id", in.ID); err != nil {
		return nil, fmt.Errorf("read probe: %w", err)
	} else if existing != nil {
		return nil, &problem.Error{Kind: problem.KindConflict, Code: "probe_exists", Message: fmt.Sprintf("probe %q already exists", in.ID), Field: "id"}
	}
	rec := &Record{ID: in.ID, Node: in.Node, Payload: in.Payload, CreatedAt: ctx.Time, Index: ctx.Index}
	if err := ctx.Txn.Insert(table, rec); err != nil {
		return nil, err
	}
	n := 1
	if raw, err := ctx.Txn.First(tableCounter, "id", "n"); err != nil {
		return nil, fmt.Errorf("read probe counter: %w", err)
	} else if raw != nil {
		n = raw.(*counter).N + 1
	}
	for ; n > MaxRecords; n-- {
		oldest, err := ctx.Txn.First(table, "seq")
		if err != nil {
			return nil, fmt.Errorf("find oldest probe: %w", err)
		}
		if err := ctx.Txn.Delete(table, oldest); err != nil {
			return nil, err
		}
	}
	if err := ctx.Txn.Insert(tableCounter, &counter{Key: "n", N: n}); err != nil {
		return nil, err
	}
	return rec, nil
}

// Applier commits commands through the cluster (forwarding to the leader).
type Applier interface {
	Apply(ctx context.Context, cmds ...state.Command) ([]state.Result, error)
}

// Service writes and reads probe records.
type Service struct {
	node    string
	applier Applier
	store   *state.Store
}

// NewService returns the probe service for this node.
func NewService(node string, applier Applier, store *state.Store) *Service {
	return &Service{node: node, applier: applier, store: store}
}

// Write commits a new probe record and returns it as committed.
func (s *Service) Write(ctx context.Context, payload string) (Record, error) {
	if len(payload) > MaxPayload {
		return Record{}, problem.Invalid("payload", "is %d bytes, at most %d", len(payload), MaxPayload)
	}
	id, err := newID()
	if err != nil {
		return Record{}, err
	}
	cmd, err := state.NewCommand(CmdWrite, 1, writePayload{ID: id, Node: s.node, Payload: payload})
	if err != nil {
		return Record{}, err
	}
	res, err := s.applier.Apply(ctx, cmd)
	if err != nil {
		return Record{}, fmt.Errorf("write probe: %w", err)
	}
	var rec Record
	if err := res[0].Decode(&rec); err != nil {
		return Record{}, fmt.Errorf("write probe: %w", err)
	}
	return rec, nil
}

// Get returns one record from the local store.
func (s *Service) Get(_ context.Context, id string) (Record, error) {
	raw, err := s.store.ReadTxn().First(table, "id", id)
	if err != nil {
		return Record{}, fmt.Errorf("read probe %s: %w", id, err)
	}
	if raw == nil {
		return Record{}, problem.NotFound("probe", id)
	}
	return *raw.(*Record), nil
}

// List returns up to limit records committed after the record with ID after.
func (s *Service) List(_ context.Context, after string, limit int) ([]Record, error) {
	txn := s.store.ReadTxn()
	var it memdb.ResultIterator
	var err error
	if after == "" {
		it, err = txn.Get(table, "seq")
	} else {
		raw, ferr := txn.First(table, "id", after)
		if ferr != nil {
			return nil, fmt.Errorf("read probe %s: %w", after, ferr)
		}
		if raw == nil {
			return nil, problem.Invalid("after", "no probe %q (it may have been trimmed)", after)
		}
		from := raw.(*Record)
		it, err = txn.LowerBound(table, "seq", from.Index, from.ID)
	}
	if err != nil {
		return nil, fmt.Errorf("list probes: %w", err)
	}
	out := []Record{}
	for obj := it.Next(); obj != nil && len(out) < limit; obj = it.Next() {
		r := obj.(*Record)
		if r.ID == after {
			continue
		}
		out = append(out, *r)
	}
	return out, nil
}

func newID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate probe id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}
