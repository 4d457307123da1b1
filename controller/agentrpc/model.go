package agentrpc

import (
	"maps"
	"slices"
	"time"

	"github.com/opsconductor/opsconductor/controller/keyring"
)

// Agent statuses. An agent is "enrolled" until its first stream, then
// "up" or "down" as the leader commits them; "revoked" is final. Draining
// is a separate flag: a draining agent can be up or down.
const (
	StatusEnrolled = "enrolled"
	StatusUp       = "up"
	StatusDown     = "down"
	StatusRevoked  = "revoked"
)

// Plugin is a step plugin an agent reported having.
type Plugin struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
	SHA256  string `json:"sha256,omitempty"`
}

// Facts describe an agent's host, as the agent reported them.
type Facts struct {
	Hostname    string            `json:"hostname,omitempty"`
	OS          string            `json:"os,omitempty"`
	OSVersion   string            `json:"os_version,omitempty"`
	Kernel      string            `json:"kernel,omitempty"`
	Arch        string            `json:"arch,omitempty"`
	CPUs        int               `json:"cpus,omitempty"`
	MemoryBytes uint64            `json:"memory_bytes,omitempty"`
	Addresses   []string          `json:"addresses,omitempty"`
	Extra       map[string]string `json:"extra,omitempty"`
}

// Agent is an enrolled agent. It holds nothing secret and is what the API
// returns.
type Agent struct {
	ID           string            `json:"id"`
	Name         string            `json:"name"`
	Tags         map[string]string `json:"tags"`
	Facts        Facts             `json:"facts"`
	Version      string            `json:"version,omitempty"`
	CertSerial   string            `json:"cert_serial"`
	CertNotAfter time.Time         `json:"cert_not_after"`
	EnrolledAt   time.Time         `json:"enrolled_at"`
	JoinTokenID  string            `json:"join_token_id"`
	Status       string            `json:"status"`
	Revoked      bool              `json:"revoked"`
	RevokedAt    *time.Time        `json:"revoked_at,omitempty"`
	// Draining agents take no new work.
	Draining bool     `json:"draining"`
	Plugins  []Plugin `json:"plugins,omitempty"`
	// LastSeen is committed at status changes only (up, down), never per
	// heartbeat: between them the leader tracks liveness in memory.
	LastSeen *time.Time `json:"last_seen,omitempty"`
	// ConnectedTo is the controller node holding the agent's stream while
	// it is up.
	ConnectedTo string `json:"connected_to,omitempty"`
}

func (a *Agent) clone() *Agent {
	c := *a
	c.Tags = maps.Clone(a.Tags)
	c.Facts.Addresses = slices.Clone(a.Facts.Addresses)
	c.Facts.Extra = maps.Clone(a.Facts.Extra)
	c.Plugins = slices.Clone(a.Plugins)
	return &c
}

// JoinToken is a stored join token: its secret only as a SHA-256 hash.
type JoinToken struct {
	ID         string            `json:"id"`
	SecretHash []byte            `json:"secret_hash"`
	CreatedAt  time.Time         `json:"created_at"`
	CreatedBy  string            `json:"created_by"`
	ExpiresAt  time.Time         `json:"expires_at"`
	MaxUses    int               `json:"max_uses"`
	Uses       int               `json:"uses"`
	Tags       map[string]string `json:"tags"`
	Revoked    bool              `json:"revoked"`
}

// JoinTokenView is a join token's metadata, as listed.
type JoinTokenView struct {
	ID        string            `json:"id"`
	CreatedAt time.Time         `json:"created_at"`
	CreatedBy string            `json:"created_by"`
	ExpiresAt time.Time         `json:"expires_at"`
	MaxUses   int               `json:"max_uses"`
	Uses      int               `json:"uses"`
	Tags      map[string]string `json:"tags"`
	Revoked   bool              `json:"revoked"`
}

func (t *JoinToken) view() JoinTokenView {
	tags := maps.Clone(t.Tags)
	if tags == nil {
		tags = map[string]string{}
	}
	return JoinTokenView{ID: t.ID, CreatedAt: t.CreatedAt, CreatedBy: t.CreatedBy, ExpiresAt: t.ExpiresAt,
		MaxUses: t.MaxUses, Uses: t.Uses, Tags: tags, Revoked: t.Revoked}
}

// caRow is the one agent CA: its certificate and its key sealed by the
// keyring.
type caRow struct {
	Key       string         `json:"key"` // always "ca"
	CertDER   []byte         `json:"cert_der"`
	KeySealed keyring.Sealed `json:"key_sealed"`
	CreatedAt time.Time      `json:"created_at"`
}
