package cluster

// Status is this node's view of the Raft cluster, the "raft" section of
// /health (the node's ID is at the top of that document).
type Status struct {
	State        string `json:"state"` // leader, follower, candidate, shutdown
	LeaderID     string `json:"leader_id"`
	LeaderAddr   string `json:"leader_addr"`
	Term         uint64 `json:"term"`
	LastIndex    uint64 `json:"last_index"`
	CommitIndex  uint64 `json:"commit_index"`
	AppliedIndex uint64 `json:"applied_index"`
	// LastContactMillis is the age of the last message from the leader as a
	// follower saw it; 0 on the leader, -1 when never heard from.
	LastContactMillis int64  `json:"last_contact_ms"`
	Peers             []Peer `json:"peers"`
}

// Peer is one server in the Raft configuration.
type Peer struct {
	ID       string `json:"id"`
	Address  string `json:"address"`
	Suffrage string `json:"suffrage"` // voter, nonvoter
	Leader   bool   `json:"leader"`
}

// PeerProgress is a peer as `operator raft list-peers` shows it: its own
// report of how far its log goes, asked over RPC.
type PeerProgress struct {
	Peer
	// Reachable is false when the peer did not answer in time; the
	// numbers below are then zero.
	Reachable    bool   `json:"reachable"`
	Term         uint64 `json:"term"`
	LastIndex    uint64 `json:"last_index"`
	AppliedIndex uint64 `json:"applied_index"`
	// TrailsLeaderBy is how many log entries the peer's log is behind the
	// leader's, as both reported them just now.
	TrailsLeaderBy uint64 `json:"trails_leader_by"`
}
