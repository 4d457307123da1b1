// Package probe is the write check: a tiny replicated record that operators
// (`opsconductor operator check write`), readiness tooling and the benchmarks
// commit through Raft to prove the whole write path, follower forwarding
// included. It keeps only the newest MaxRecords records so that it never
// grows the FSM. It must never be used to store anything of value.
package probe

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/hashicorp/go-memdb"

	"github.com/opsconductor/opsconductor/controller/problem"
	"github.com/opsconductor/opsconductor/controller/state"
)

const (
	table    = "probes"
	tableSeq = "probe_seq"
	// CmdWrite commits one probe record.
	CmdWrite = "probe.write"
	// MaxPayload bounds the caller's payload.
	MaxPayload = 1024
	// MaxRecords is how many records are kept; older ones are trimmed in
	// the same Apply that adds a new one.
	MaxRecords = 10000
)

// seqRow holds the last sequence number handed out. Records are numbered
// in Apply, so every node numbers them alike, and the number is both the
// ID and the commit order: one index, the cheapest write memdb can do.
type seqRow struct {
	Key  string `json:"key"`
	Last uint64 `json:"last"`
}

// Domain returns the probe tables and command for the state registry.
func Domain() state.Domain {
	return state.Domain{
		Name: "probe",
		Tables: []state.Table{
			{
				Schema: &memdb.TableSchema{Name: table, Indexes: map[string]*memdb.IndexSchema{
					"id": {Name: "id", Unique: true, Indexer: &memdb.UintFieldIndex{Field: "Seq"}},
				}},
				New: func() any { return &Record{} },
			},
			{
				Schema: &memdb.TableSchema{Name: tableSeq, Indexes: map[string]*memdb.IndexSchema{
					"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Key"}},
				}},
				New: func() any { return &seqRow{} },
			},
		},
		Commands: map[string]state.Handler{CmdWrite: applyWrite},
	}
}

type writePayload struct {
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
	if len(in.Payload) > MaxPayload {
		return nil, problem.Invalid("payload", "is %d bytes, at most %d", len(in.Payload), MaxPayload)
	}
	var last uint64
	if raw, err := ctx.Txn.First(tableSeq, "id", "seq"); err != nil {
		return nil, fmt.Errorf("read probe sequence: %w", err)
	} else if raw != nil {
		last = raw.(*seqRow).Last
	}
	seq := last + 1
	rec := &Record{Seq: seq, ID: strconv.FormatUint(seq, 10), Node: in.Node, Payload: in.Payload, CreatedAt: ctx.Time, Index: ctx.Index}
	if err := ctx.Txn.Insert(table, rec); err != nil {
		return nil, err
	}
	if err := ctx.Txn.Insert(tableSeq, &seqRow{Key: "seq", Last: seq}); err != nil {
		return nil, err
	}
	if seq > MaxRecords {
		if old, err := ctx.Txn.First(table, "id", seq-MaxRecords); err != nil {
			return nil, fmt.Errorf("find oldest probe: %w", err)
		} else if old != nil {
			if err := ctx.Txn.Delete(table, old); err != nil {
				return nil, err
			}
		}
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
	cmd, err := state.NewCommand(CmdWrite, 1, writePayload{Node: s.node, Payload: payload})
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
	seq, err := strconv.ParseUint(id, 10, 64)
	if err != nil {
		return Record{}, problem.NotFound("probe", id)
	}
	raw, err := s.store.ReadTxn().First(table, "id", seq)
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
	var from uint64
	if after != "" {
		seq, err := strconv.ParseUint(after, 10, 64)
		if err != nil {
			return nil, problem.Invalid("after", "%q is not a probe ID", after)
		}
		from = seq + 1
	}
	it, err := s.store.ReadTxn().LowerBound(table, "id", from)
	if err != nil {
		return nil, fmt.Errorf("list probes: %w", err)
	}
	out := []Record{}
	for obj := it.Next(); obj != nil && len(out) < limit; obj = it.Next() {
		out = append(out, *obj.(*Record))
	}
	return out, nil
}
