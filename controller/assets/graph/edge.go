// Package graph owns the relationships between targets: typed, directed
// edges ("web-1 depends_on db-1") with a few attributes, and the queries
// the UI's graph view draws (neighbours, what depends on a target, what a
// target depends on).
//
// Edges name their endpoints by target ID only. The package never reads
// the inventory's tables: it resolves names and checks scoped access
// through the small interfaces in service.go, which the inventory service
// satisfies. The inventory calls RemoveNode from its own target-delete
// Apply handler, so an edge never outlives either of its targets.
package graph

import (
	"fmt"
	"maps"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/opsconductor/opsconductor/controller/state"
)

// tableEdges holds every edge. Its indexes:
//
//	id  unique  ID
//	out unique  (From, Type, To): a node's outgoing edges, and the
//	            duplicate check
//	in  unique  (To, Type, From): a node's incoming edges
//
// Prefix scans pass an empty string as the last argument ("out_prefix",
// from, "") so that "t1" does not also match "t10": go-memdb terminates
// every argument but the last.
const tableEdges = "assets_edges"

// Edge is one typed, directed relationship between two targets.
type Edge struct {
	ID   string `json:"id"`
	From string `json:"from"`
	To   string `json:"to"`
	Type string `json:"type"`
	// Attributes describe the edge ("port": "5432"); bounded by
	// MaxAttributes, MaxAttrKey and MaxAttrValue.
	Attributes map[string]string `json:"attributes,omitempty"`
	CreatedAt  time.Time         `json:"created_at"`
	CreatedBy  string            `json:"created_by,omitempty"`
	UpdatedAt  time.Time         `json:"updated_at"`
	UpdatedBy  string            `json:"updated_by,omitempty"`
}

func (e *Edge) clone() *Edge {
	c := *e
	c.Attributes = maps.Clone(e.Attributes)
	return &c
}

func edgesTable() state.Table {
	return state.Table{
		Schema: &memdb.TableSchema{Name: tableEdges, Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
			"out": {Name: "out", Unique: true, Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{
				&memdb.StringFieldIndex{Field: "From"}, &memdb.StringFieldIndex{Field: "Type"}, &memdb.StringFieldIndex{Field: "To"}}}},
			"in": {Name: "in", Unique: true, Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{
				&memdb.StringFieldIndex{Field: "To"}, &memdb.StringFieldIndex{Field: "Type"}, &memdb.StringFieldIndex{Field: "From"}}}},
		}},
		New: func() any { return &Edge{} },
	}
}

// Txn is what RemoveNode needs of a write transaction. A domain's Apply
// handler passes its *state.Txn (so the store records the write); a
// *memdb.Txn satisfies it too.
type Txn interface {
	Get(table, index string, args ...any) (memdb.ResultIterator, error)
	Delete(table string, obj any) error
}

var (
	_ Txn = (*state.Txn)(nil)
	_ Txn = (*memdb.Txn)(nil)
)

// RemoveNode deletes every edge from or to nodeID. The inventory calls it
// inside its target-delete Apply handler, in the same transaction, so a
// deleted target never leaves an edge pointing at nothing. Removing a node
// that has no edges is not an error.
func RemoveNode(txn Txn, nodeID string) error {
	var doomed []*Edge
	for _, index := range []string{"out_prefix", "in_prefix"} {
		it, err := txn.Get(tableEdges, index, nodeID, "")
		if err != nil {
			return fmt.Errorf("remove edges of %s: %w", nodeID, err)
		}
		for obj := it.Next(); obj != nil; obj = it.Next() {
			doomed = append(doomed, obj.(*Edge))
		}
	}
	// Collected first: a memdb iterator must not outlive a write to its
	// table. A self-edge cannot exist, so no edge is listed twice.
	for _, e := range doomed {
		if err := txn.Delete(tableEdges, e); err != nil {
			return fmt.Errorf("remove edge %s of %s: %w", e.ID, nodeID, err)
		}
	}
	return nil
}
