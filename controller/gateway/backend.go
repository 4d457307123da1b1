package gateway

import (
	"context"
	"io"

	"github.com/opsconductor/opsconductor/controller/cluster"
	"github.com/opsconductor/opsconductor/controller/probe"
)

// Cluster is what the gateway needs from the Raft node. Errors are
// *problem.Error where the caller can act on them (no leader: unavailable;
// unknown peer: not found).
type Cluster interface {
	// Status is this node's local view; it never blocks on the network.
	Status() cluster.Status
	// Ready returns nil when the node knows a leader and has applied up to the
	// commit index it last heard of, else a problem saying why not.
	Ready() error
	// ConsistentRead blocks until a read served from the local store reflects
	// every write committed before the call (leader barrier / read index).
	ConsistentRead(ctx context.Context) error
	// PeerProgress lists the servers with their own report of their log
	// and how far each trails the leader; it asks each over the network.
	PeerProgress(ctx context.Context) []cluster.PeerProgress
	// RemovePeer removes a server from the Raft configuration (via the leader).
	RemovePeer(ctx context.Context, id string) error
	// TransferLeadership asks the leader to hand leadership to another voter.
	TransferLeadership(ctx context.Context) error
	// SnapshotSave streams a consistent snapshot of the whole state store.
	SnapshotSave(ctx context.Context, w io.Writer) error
	// SnapshotSaveLocal streams this node's store as it is, without asking
	// the leader (`?stale=true`): two nodes at the same applied index write
	// identical bytes, which is how operators and tests compare replicas.
	SnapshotSaveLocal(w io.Writer) error
	// SnapshotRestore replaces the whole state store, cluster-wide, with a
	// snapshot made by SnapshotSave.
	SnapshotRestore(ctx context.Context, r io.Reader) error
}

// Probes is the write-check service: a small replicated write that operators
// and benchmarks use to prove the write path end to end.
type Probes interface {
	Write(ctx context.Context, payload string) (probe.Record, error)
	Get(ctx context.Context, id string) (probe.Record, error)
	// List returns records in commit order after the given ID ("" = first).
	List(ctx context.Context, after string, limit int) ([]probe.Record, error)
}
