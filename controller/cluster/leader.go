package cluster

import (
	"context"
	"sync"
)

// LeaderInfo is the current leader and the addresses it advertises.
type LeaderInfo struct {
	ID        string `json:"id"`
	RaftAddr  string `json:"raft_addr"`
	HTTPAddr  string `json:"http_addr"`
	AgentAddr string `json:"agent_addr"`
}

// leaderCache remembers the last leader's advertised addresses: they only
// change when the leader does, so a follower asks the leader once per term
// rather than once per redirected agent.
type leaderCache struct {
	mu   sync.Mutex
	info LeaderInfo
}

// Leader returns the current leader's addresses. The zero LeaderInfo and
// no error mean there is no leader now. On a follower the first call after
// a change of leader asks the leader over the cluster RPC ("status").
func (n *Node) Leader(ctx context.Context) (LeaderInfo, error) {
	addr, id := n.raft.LeaderWithID()
	if id == "" {
		return LeaderInfo{}, nil
	}
	if string(id) == n.cfg.NodeID {
		return LeaderInfo{ID: n.cfg.NodeID, RaftAddr: n.cfg.RaftAdvertise, HTTPAddr: n.cfg.HTTPAdvertise, AgentAddr: n.cfg.AgentAdvertise}, nil
	}
	n.leaderInfo.mu.Lock()
	cached := n.leaderInfo.info
	n.leaderInfo.mu.Unlock()
	if cached.ID == string(id) && cached.RaftAddr == string(addr) {
		return cached, nil
	}
	var st discoverStatus
	if err := n.rpc.call(ctx, string(addr), "status", nil, &st); err != nil {
		return LeaderInfo{ID: string(id), RaftAddr: string(addr)}, err
	}
	info := LeaderInfo{ID: st.ID, RaftAddr: string(addr), HTTPAddr: st.HTTPAddr, AgentAddr: st.AgentAddr}
	if st.ID == string(id) {
		n.leaderInfo.mu.Lock()
		n.leaderInfo.info = info
		n.leaderInfo.mu.Unlock()
	}
	return info, nil
}
