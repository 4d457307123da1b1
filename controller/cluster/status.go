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
