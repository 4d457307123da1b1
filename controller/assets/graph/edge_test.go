package graph

import (
	"testing"

	"github.com/hashicorp/go-memdb"
)

func TestRemoveNodeDeletesEveryEdgeTouchingTheNodeAndNoOther(t *testing.T) {
	db, err := memdb.NewMemDB(&memdb.DBSchema{Tables: map[string]*memdb.TableSchema{tableEdges: edgesTable().Schema}})
	if err != nil {
		t.Fatal(err)
	}
	txn := db.Txn(true)
	for _, e := range []*Edge{
		{ID: "e1", From: "t1", To: "t2", Type: "depends_on"},
		{ID: "e2", From: "t3", To: "t1", Type: "runs_on"},
		{ID: "e3", From: "t1", To: "t3", Type: "connects_to"},
		// t10 and t11 share t1's prefix: a prefix scan must not take them.
		{ID: "e4", From: "t10", To: "t2", Type: "depends_on"},
		{ID: "e5", From: "t2", To: "t11", Type: "depends_on"},
	} {
		if err := txn.Insert(tableEdges, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := RemoveNode(txn, "t1"); err != nil {
		t.Fatal(err)
	}
	if err := RemoveNode(txn, "unknown"); err != nil {
		t.Fatalf("removing a node without edges: %v", err)
	}
	txn.Commit()

	it, err := db.Txn(false).Get(tableEdges, "id")
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for obj := it.Next(); obj != nil; obj = it.Next() {
		left = append(left, obj.(*Edge).ID)
	}
	if len(left) != 2 || left[0] != "e4" || left[1] != "e5" {
		t.Fatalf("edges left = %v, want [e4 e5]", left)
	}
}
