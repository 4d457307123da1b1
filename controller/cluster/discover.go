package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/hashicorp/raft"

	"github.com/opsconductor/opsconductor/controller/problem"
)

// Servers find each other without gossip: each asks the --retry-join
// addresses for their status over the mutual-TLS RPC. A server that finds a
// running cluster asks its leader to add it; servers that find no cluster
// collect each other (transitively, through the lists they return) until
// --bootstrap-expect of them are known, and then every one of them
// bootstraps with that same server set, which hashicorp/raft allows.

type discoverStatus struct {
	ID              string            `json:"id"`
	Addr            string            `json:"addr"`
	HasState        bool              `json:"has_state"`
	LeaderAddr      string            `json:"leader_addr"`
	BootstrapExpect int               `json:"bootstrap_expect"`
	Known           map[string]string `json:"known"`
	Term            uint64            `json:"term"`
	LastIndex       uint64            `json:"last_index"`
	AppliedIndex    uint64            `json:"applied_index"`
	// HTTPAddr and AgentAddr are the node's advertised API and agent
	// addresses, so that peers can point clients at the leader's.
	HTTPAddr  string `json:"http_addr,omitempty"`
	AgentAddr string `json:"agent_addr,omitempty"`
}

type joinRequest struct {
	ID   string `json:"id"`
	Addr string `json:"addr"`
}

func (n *Node) handleDiscoverStatus(context.Context, string, json.RawMessage) (any, error) {
	return n.localDiscoverStatus(), nil
}

func (n *Node) localDiscoverStatus() discoverStatus {
	leader, _ := n.raft.LeaderWithID()
	st := n.Status()
	return discoverStatus{
		ID: n.cfg.NodeID, Addr: n.cfg.RaftAdvertise, HasState: n.hasConfiguration(),
		LeaderAddr: string(leader), BootstrapExpect: n.cfg.BootstrapExpect, Known: n.knownServers(),
		Term: st.Term, LastIndex: st.LastIndex, AppliedIndex: st.AppliedIndex,
		HTTPAddr: n.cfg.HTTPAdvertise, AgentAddr: n.cfg.AgentAdvertise,
	}
}

// handleJoin adds the calling server as a voter. The caller proved with its
// certificate that it belongs to this cluster; the ID it asks for must be
// the one in that certificate, so a server cannot add or replace another.
func (n *Node) handleJoin(_ context.Context, peer string, body json.RawMessage) (any, error) {
	var req joinRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, fmt.Errorf("decode join request: %w", err)
	}
	if req.ID != peer {
		return nil, &problem.Error{Kind: problem.KindForbidden, Code: "join_id_mismatch", Message: fmt.Sprintf("server %q may not join as %q", peer, req.ID)}
	}
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, applyError(err)
	}
	if n.cfg.RefuseJoins != "" {
		n.log.Warn("refusing a server that asks to join", "peer_id", req.ID, "raft_addr", req.Addr, "reason", n.cfg.RefuseJoins)
		return nil, problem.New(problem.KindConflict, "join_refused", "server %q may not join: %s", req.ID, n.cfg.RefuseJoins)
	}
	for _, s := range f.Configuration().Servers {
		if string(s.ID) == req.ID && string(s.Address) == req.Addr {
			return nil, nil // already a member: a restart with lost data dir rejoining
		}
	}
	n.log.Info("adding server", "peer_id", req.ID, "raft_addr", req.Addr)
	if err := n.raft.AddVoter(raft.ServerID(req.ID), raft.ServerAddress(req.Addr), 0, n.cfg.ApplyTimeout).Error(); err != nil {
		return nil, applyError(err)
	}
	return nil, nil
}

func (n *Node) hasConfiguration() bool {
	f := n.raft.GetConfiguration()
	return f.Error() == nil && len(f.Configuration().Servers) > 0
}

// knownServers is what discovery has seen so far (only before bootstrap).
func (n *Node) knownServers() map[string]string {
	n.discoverMu.Lock()
	defer n.discoverMu.Unlock()
	out := map[string]string{n.cfg.NodeID: n.cfg.RaftAdvertise}
	for id, addr := range n.discovered {
		out[id] = addr
	}
	return out
}

// discover runs until this node is part of a cluster. It retries quickly
// at first, since servers of a new cluster usually start within moments of
// each other, and backs off to RetryInterval.
func (n *Node) discover() {
	wait := min(100*time.Millisecond, n.cfg.RetryInterval)
	for attempt := 1; ; attempt++ {
		if n.hasConfiguration() {
			n.log.Info("part of a cluster; discovery done")
			return
		}
		done, err := n.discoverOnce()
		if done {
			return
		}
		if err != nil && attempt%10 == 5 {
			n.log.Warn("waiting for other servers", "error", err, "retry_join", n.cfg.RetryJoin, "bootstrap_expect", n.cfg.BootstrapExpect)
		}
		t := time.NewTimer(wait)
		select {
		case <-n.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(wait*2, n.cfg.RetryInterval)
	}
}

func (n *Node) discoverOnce() (bool, error) {
	addrs := append([]string{}, n.cfg.RetryJoin...)
	for _, a := range n.knownServers() {
		addrs = append(addrs, a)
	}
	seen := map[string]bool{n.cfg.RaftAdvertise: true}
	var lastErr error
	for _, addr := range addrs {
		if seen[addr] {
			continue
		}
		seen[addr] = true
		ctx, cancel := context.WithTimeout(n.ctx, 2*time.Second)
		var st discoverStatus
		err := n.rpc.call(ctx, addr, "status", struct{}{}, &st)
		cancel()
		if err != nil {
			lastErr = err
			continue
		}
		if st.LeaderAddr != "" {
			return n.joinVia(st.LeaderAddr)
		}
		n.discoverMu.Lock()
		n.discovered[st.ID] = st.Addr
		for id, a := range st.Known {
			if id != n.cfg.NodeID {
				n.discovered[id] = a
			}
		}
		n.discoverMu.Unlock()
	}
	if n.cfg.BootstrapExpect <= 1 {
		if lastErr == nil {
			lastErr = fmt.Errorf("no leader found at %v", n.cfg.RetryJoin)
		}
		return false, lastErr
	}
	known := n.knownServers()
	if len(known) < n.cfg.BootstrapExpect {
		return false, fmt.Errorf("found %d of %d expected servers (last error: %v)", len(known), n.cfg.BootstrapExpect, lastErr)
	}
	if len(known) > n.cfg.BootstrapExpect {
		n.log.Error("found more servers than bootstrap-expect; not bootstrapping", "found", len(known), "expected", n.cfg.BootstrapExpect)
		return false, nil
	}
	ids := make([]string, 0, len(known))
	for id := range known {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	servers := make([]raft.Server, 0, len(ids))
	for _, id := range ids {
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(id), Address: raft.ServerAddress(known[id])})
	}
	if err := n.bootstrap(servers); err != nil {
		return false, err
	}
	return true, nil
}

func (n *Node) joinVia(leaderAddr string) (bool, error) {
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.ApplyTimeout)
	defer cancel()
	err := n.rpc.call(ctx, leaderAddr, "join", joinRequest{ID: n.cfg.NodeID, Addr: n.cfg.RaftAdvertise}, nil)
	if err != nil {
		return false, fmt.Errorf("join via leader %s: %w", leaderAddr, err)
	}
	n.log.Info("joined the cluster", "leader_addr", leaderAddr)
	return true, nil
}
