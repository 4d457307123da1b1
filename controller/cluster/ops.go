package cluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/opsconductor/opsconductor/controller/problem"
	"github.com/opsconductor/opsconductor/controller/state"
)

// MaxRestoreBytes bounds a snapshot given to SnapshotRestore: a follower
// forwards it to the leader base64-encoded in one RPC frame.
const MaxRestoreBytes = rpcMaxFrame/4*3 - 1<<20

// Status is this node's local view; it never touches the network.
func (n *Node) Status() Status {
	addr, id := n.raft.LeaderWithID()
	st := Status{
		State:             stateName(n.raft.State()),
		LeaderID:          string(id),
		LeaderAddr:        string(addr),
		LastIndex:         n.raft.LastIndex(),
		CommitIndex:       n.raft.CommitIndex(),
		AppliedIndex:      n.raft.AppliedIndex(),
		LastContactMillis: -1,
		Peers:             []Peer{},
	}
	if t, err := strconv.ParseUint(n.raft.Stats()["term"], 10, 64); err == nil {
		st.Term = t
	}
	if st.State == "leader" {
		st.LastContactMillis = 0
	} else if lc := n.raft.LastContact(); !lc.IsZero() {
		st.LastContactMillis = time.Since(lc).Milliseconds()
	}
	if f := n.raft.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			st.Peers = append(st.Peers, Peer{
				ID: string(s.ID), Address: string(s.Address), Suffrage: suffrageName(s.Suffrage), Leader: s.ID == id,
			})
		}
	}
	return st
}

func stateName(s raft.RaftState) string {
	switch s {
	case raft.Leader:
		return "leader"
	case raft.Follower:
		return "follower"
	case raft.Candidate:
		return "candidate"
	}
	return "shutdown"
}

func suffrageName(s raft.ServerSuffrage) string {
	if s == raft.Voter {
		return "voter"
	}
	return "nonvoter"
}

// PeerProgress asks every server in the configuration how far its log
// goes, in parallel, each bounded by ctx and a second, and reports how far
// each trails the leader. Unreachable peers are listed as such.
func (n *Node) PeerProgress(ctx context.Context) []PeerProgress {
	peers := n.Status().Peers
	out := make([]PeerProgress, len(peers))
	var wg sync.WaitGroup
	for i, p := range peers {
		out[i].Peer = p
		wg.Add(1)
		go func() {
			defer wg.Done()
			var st discoverStatus
			if p.ID == n.cfg.NodeID {
				st = n.localDiscoverStatus()
			} else {
				cctx, cancel := context.WithTimeout(ctx, time.Second)
				defer cancel()
				if err := n.rpc.call(cctx, p.Address, "status", struct{}{}, &st); err != nil {
					return
				}
			}
			out[i].Reachable, out[i].Term, out[i].LastIndex, out[i].AppliedIndex = true, st.Term, st.LastIndex, st.AppliedIndex
		}()
	}
	wg.Wait()
	for _, l := range out {
		if !l.Leader || !l.Reachable {
			continue
		}
		for i := range out {
			if out[i].Reachable && out[i].LastIndex < l.LastIndex {
				out[i].TrailsLeaderBy = l.LastIndex - out[i].LastIndex
			}
		}
	}
	return out
}

// Ready reports whether this node can serve: it knows a leader and has
// applied everything up to the commit index it last heard of.
func (n *Node) Ready() error {
	// After a restart the store holds only the last snapshot: hashicorp/raft
	// applies the logged entries after it once a leader's AppendEntries
	// carries the commit index, which its heartbeats do not. Until then the
	// commit index this node knows is as old as its store, so the check
	// below passes, and a node serving from it rejected API tokens created
	// since the snapshot as invalid (found by make chaos).
	if applied := n.raft.AppliedIndex(); applied < n.startLastIndex {
		return problem.Unavailable("catching_up", "applied index %d is behind the index %d this node had logged before it started", applied, n.startLastIndex)
	}
	if addr, _ := n.raft.LeaderWithID(); addr == "" {
		return problem.Unavailable("no_leader", "no known cluster leader")
	}
	if applied, commit := n.raft.AppliedIndex(), n.raft.CommitIndex(); applied < commit {
		return problem.Unavailable("catching_up", "applied index %d is behind commit index %d", applied, commit)
	}
	if n.raft.State() == raft.Leader && !n.readsReady.Load() {
		return problem.Unavailable("establishing_leadership", "new leader is applying earlier terms' entries")
	}
	return nil
}

// ConsistentRead makes the next local read linearizable: the leader proves
// it still leads with a barrier (a committed entry), then a follower waits
// until its store has applied what the leader had (the read-index method).
func (n *Node) ConsistentRead(ctx context.Context) error {
	var idx uint64
	err := n.onLeader(ctx, "read_index", struct{}{}, &idx, func(context.Context) error {
		var err error
		idx, err = n.localReadIndex()
		return err
	})
	if err != nil {
		return err
	}
	return n.store.WaitForIndex(ctx, idx)
}

func (n *Node) localReadIndex() (uint64, error) {
	if err := n.raft.Barrier(n.cfg.ApplyTimeout).Error(); err != nil {
		return 0, applyError(err)
	}
	return n.store.LastIndex(), nil
}

// RemovePeer removes a server from the Raft configuration.
func (n *Node) RemovePeer(ctx context.Context, id string) error {
	if id == "" {
		return problem.Invalid("id", "must not be empty")
	}
	return n.onLeader(ctx, "remove_peer", id, nil, func(context.Context) error {
		return n.localRemovePeer(id)
	})
}

func (n *Node) localRemovePeer(id string) error {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return applyError(err)
	}
	found := false
	for _, s := range f.Configuration().Servers {
		found = found || string(s.ID) == id
	}
	if !found {
		return problem.NotFound("peer", id)
	}
	n.log.Info("removing peer", "peer_id", id)
	if err := n.raft.RemoveServer(raft.ServerID(id), 0, n.cfg.ApplyTimeout).Error(); err != nil {
		return applyError(err)
	}
	return nil
}

// TransferLeadership hands leadership to another voter.
func (n *Node) TransferLeadership(ctx context.Context) error {
	return n.onLeader(ctx, "transfer_leadership", struct{}{}, nil, func(context.Context) error {
		return n.localTransfer()
	})
}

func (n *Node) localTransfer() error {
	if n.voters() < 2 {
		return &problem.Error{Kind: problem.KindConflict, Code: "no_other_voter", Message: "there is no other voter to take leadership"}
	}
	if err := n.raft.LeadershipTransfer().Error(); err != nil {
		return applyError(err)
	}
	return nil
}

// SnapshotSave streams a linearizable snapshot of the whole state store.
func (n *Node) SnapshotSave(ctx context.Context, w io.Writer) error {
	if err := n.ConsistentRead(ctx); err != nil {
		return err
	}
	return n.SnapshotSaveLocal(w)
}

// SnapshotSaveLocal streams this node's store as it is, without asking the
// leader: two nodes at the same applied index write identical bytes.
func (n *Node) SnapshotSaveLocal(w io.Writer) error {
	return n.store.WriteSnapshot(n.store.View(), w)
}

// SnapshotRestore replaces the state of the whole cluster with a snapshot
// made by SnapshotSave. The snapshot is checked completely before anything
// is replaced; a bad file changes nothing.
func (n *Node) SnapshotRestore(ctx context.Context, r io.Reader) error {
	data, err := io.ReadAll(io.LimitReader(r, MaxRestoreBytes+1))
	if err != nil {
		return fmt.Errorf("read snapshot: %w", err)
	}
	if len(data) > MaxRestoreBytes {
		return &problem.Error{Kind: problem.KindTooLarge, Code: "snapshot_too_large", Message: fmt.Sprintf("snapshot exceeds %d bytes", MaxRestoreBytes)}
	}
	if err := n.store.VerifySnapshot(bytes.NewReader(data)); err != nil {
		return problem.Invalid("snapshot", "%v", err)
	}
	return n.onLeader(ctx, "restore", data, nil, func(context.Context) error {
		return n.localRestore(data)
	})
}

func (n *Node) localRestore(data []byte) error {
	if n.raft.State() != raft.Leader {
		return raft.ErrNotLeader
	}
	n.log.Warn("restoring state from an operator snapshot", "bytes", len(data))
	meta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Size: int64(len(data))}
	if err := n.raft.Restore(meta, bytes.NewReader(data), n.cfg.ApplyTimeout); err != nil {
		return applyError(err)
	}
	return nil
}

// rpcHandlers are the methods peers may call. Every caller has proved with
// its certificate that it is a server of this cluster.
func (n *Node) rpcHandlers() map[string]rpcHandler {
	leaderOnly := func(h rpcHandler) rpcHandler {
		return func(ctx context.Context, peer string, body json.RawMessage) (any, error) {
			if n.raft.State() != raft.Leader {
				return nil, errNotLeader()
			}
			return h(ctx, peer, body)
		}
	}
	return map[string]rpcHandler{
		"apply": leaderOnly(func(ctx context.Context, _ string, body json.RawMessage) (any, error) {
			var cmds []state.Command
			if err := json.Unmarshal(body, &cmds); err != nil {
				return nil, fmt.Errorf("decode commands: %w", err)
			}
			if len(cmds) == 0 || len(cmds) > state.MaxCommandsPerEntry {
				return nil, problem.Invalid("commands", "%d commands in one write", len(cmds))
			}
			res, err := n.applyLocal(ctx, cmds)
			if errors.Is(err, raft.ErrNotLeader) {
				return nil, errNotLeader()
			}
			return res, err
		}),
		"read_index": leaderOnly(func(context.Context, string, json.RawMessage) (any, error) {
			return n.localReadIndex()
		}),
		"remove_peer": leaderOnly(func(_ context.Context, _ string, body json.RawMessage) (any, error) {
			var id string
			if err := json.Unmarshal(body, &id); err != nil {
				return nil, fmt.Errorf("decode peer id: %w", err)
			}
			return nil, n.localRemovePeer(id)
		}),
		"transfer_leadership": leaderOnly(func(context.Context, string, json.RawMessage) (any, error) {
			return nil, n.localTransfer()
		}),
		"restore": leaderOnly(func(_ context.Context, _ string, body json.RawMessage) (any, error) {
			var data []byte
			if err := json.Unmarshal(body, &data); err != nil {
				return nil, fmt.Errorf("decode snapshot: %w", err)
			}
			if err := n.store.VerifySnapshot(bytes.NewReader(data)); err != nil {
				return nil, problem.Invalid("snapshot", "%v", err)
			}
			err := n.localRestore(data)
			if errors.Is(err, raft.ErrNotLeader) {
				return nil, errNotLeader()
			}
			return nil, err
		}),
		"join":   leaderOnly(n.handleJoin),
		"status": n.handleDiscoverStatus,
	}
}

func newClusterID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate cluster id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}
