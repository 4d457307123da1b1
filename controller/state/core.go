package state

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/opsconductor/opsconductor/controller/problem"
)

// The state package's own tables.
const (
	tableIndexes = "index"
	tableMeta    = "cluster_meta"
)

// SchemaVersion is the version of the replicated state layout. A node
// refuses a snapshot from a newer layout than it knows.
const SchemaVersion = 1

// CmdMetaInit records the cluster's identity; the first leader applies it once.
const CmdMetaInit = "cluster.meta.init"

// IndexEntry is the Raft index that last changed a table; blocking queries
// compare it with the caller's ?index=.
type IndexEntry struct {
	Table string `json:"table"`
	Index uint64 `json:"index"`
}

// Meta is the single row of cluster_meta.
type Meta struct {
	ClusterID     string    `json:"cluster_id"`
	CreatedAt     time.Time `json:"created_at"`
	SchemaVersion int       `json:"schema_version"`
}

// metaKey is the one primary key of cluster_meta.
const metaKey = "cluster"

type metaRow struct {
	Key  string `json:"key"`
	Meta Meta   `json:"meta"`
}

func coreDomain() Domain {
	return Domain{
		Name: "state",
		Tables: []Table{
			{
				Schema: &memdb.TableSchema{Name: tableIndexes, Indexes: map[string]*memdb.IndexSchema{
					"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Table"}},
				}},
				New: func() any { return &IndexEntry{} },
			},
			{
				Schema: &memdb.TableSchema{Name: tableMeta, Indexes: map[string]*memdb.IndexSchema{
					"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Key"}},
				}},
				New: func() any { return &metaRow{} },
			},
		},
		Commands: map[string]Handler{CmdMetaInit: applyMetaInit},
	}
}

// MetaInit is the payload of CmdMetaInit.
type MetaInit struct {
	ClusterID string `json:"cluster_id"`
}

func applyMetaInit(ctx *ApplyContext, version uint16, payload json.RawMessage) (any, error) {
	if version != 1 {
		return nil, fmt.Errorf("%s version %d not supported", CmdMetaInit, version)
	}
	var in MetaInit
	if err := json.Unmarshal(payload, &in); err != nil {
		return nil, problem.Invalid("payload", "decode %s: %v", CmdMetaInit, err)
	}
	if in.ClusterID == "" {
		return nil, problem.Invalid("cluster_id", "must not be empty")
	}
	existing, err := ctx.Txn.First(tableMeta, "id", metaKey)
	if err != nil {
		return nil, fmt.Errorf("read cluster meta: %w", err)
	}
	if existing != nil {
		// Two leaders racing to initialise (one deposed mid-way) is fine:
		// the first one committed wins and the second is a no-op.
		return existing.(*metaRow).Meta, nil
	}
	m := Meta{ClusterID: in.ClusterID, CreatedAt: ctx.Time, SchemaVersion: SchemaVersion}
	if err := ctx.Txn.Insert(tableMeta, &metaRow{Key: metaKey, Meta: m}); err != nil {
		return nil, err
	}
	return m, nil
}

// ClusterMeta returns the cluster's identity, if it has been initialised.
func ClusterMeta(txn *memdb.Txn) (Meta, bool) {
	raw, err := txn.First(tableMeta, "id", metaKey)
	if err != nil || raw == nil {
		return Meta{}, false
	}
	return raw.(*metaRow).Meta, true
}
