package probe

import "time"

// Record is one write check committed through Raft.
type Record struct {
	// Seq numbers records in commit order; ID is its decimal form.
	Seq       uint64    `json:"seq"`
	ID        string    `json:"id"`
	Node      string    `json:"node"`       // the node that accepted the request
	Payload   string    `json:"payload"`    // caller-chosen, at most MaxPayload bytes
	CreatedAt time.Time `json:"created_at"` // stamped by the leader
	Index     uint64    `json:"index"`      // Raft index that committed it
}
