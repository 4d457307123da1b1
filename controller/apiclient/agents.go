package apiclient

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// The agent API's documents, mirroring the controller's JSON.

// CreateJoinTokenRequest is the body of POST /api/v1/agents/join-tokens.
type CreateJoinTokenRequest struct {
	TTL     string            `json:"ttl,omitempty"`
	MaxUses int               `json:"max_uses,omitempty"`
	Tags    map[string]string `json:"tags,omitempty"`
}

// JoinToken is a join token's metadata.
type JoinToken struct {
	ID        string            `json:"id"`
	CreatedAt time.Time         `json:"created_at"`
	CreatedBy string            `json:"created_by"`
	ExpiresAt time.Time         `json:"expires_at"`
	MaxUses   int               `json:"max_uses"`
	Uses      int               `json:"uses"`
	Tags      map[string]string `json:"tags"`
	Revoked   bool              `json:"revoked"`
}

// CreatedJoinToken is a new join token with its secret, shown once.
type CreatedJoinToken struct {
	JoinToken
	Token       string `json:"token"`
	CAPin       string `json:"ca_pin"`
	JoinCommand string `json:"join_command"`
}

// AgentFacts describe an agent's host.
type AgentFacts struct {
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

// Agent is an enrolled agent.
type Agent struct {
	ID           string            `json:"id"`
	Name         string            `json:"name"`
	Tags         map[string]string `json:"tags"`
	Facts        AgentFacts        `json:"facts"`
	Version      string            `json:"version,omitempty"`
	CertSerial   string            `json:"cert_serial"`
	CertNotAfter time.Time         `json:"cert_not_after"`
	EnrolledAt   time.Time         `json:"enrolled_at"`
	JoinTokenID  string            `json:"join_token_id"`
	Status       string            `json:"status"`
	Revoked      bool              `json:"revoked"`
	RevokedAt    *time.Time        `json:"revoked_at,omitempty"`
	Draining     bool              `json:"draining"`
	Plugins      []AgentPlugin     `json:"plugins,omitempty"`
	// LastSeen changes only with the status, not per heartbeat.
	LastSeen    *time.Time `json:"last_seen,omitempty"`
	ConnectedTo string     `json:"connected_to,omitempty"`
}

// AgentPlugin is a step plugin an agent reported.
type AgentPlugin struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	SHA256  string `json:"sha256,omitempty"`
}

// DrainAgent stops new work going to an agent; UndrainAgent resumes it.
func (c *Client) DrainAgent(ctx context.Context, id string) (Agent, error) {
	var a Agent
	err := c.do(ctx, http.MethodPost, "/api/v1/agents/"+url.PathEscape(id)+"/drain", nil, &a)
	return a, err
}

// UndrainAgent lets an agent take work again.
func (c *Client) UndrainAgent(ctx context.Context, id string) (Agent, error) {
	var a Agent
	err := c.do(ctx, http.MethodPost, "/api/v1/agents/"+url.PathEscape(id)+"/undrain", nil, &a)
	return a, err
}

// AgentPage is one page of agents; Next is the cursor, "" on the last.
type AgentPage struct {
	Items []Agent `json:"items"`
	Next  string  `json:"next"`
}

// CreateJoinToken creates a join token.
func (c *Client) CreateJoinToken(ctx context.Context, req CreateJoinTokenRequest) (CreatedJoinToken, error) {
	var out CreatedJoinToken
	err := c.do(ctx, http.MethodPost, "/api/v1/agents/join-tokens", req, &out)
	return out, err
}

// ListJoinTokens lists join tokens, newest first.
func (c *Client) ListJoinTokens(ctx context.Context) ([]JoinToken, error) {
	var out struct {
		Items []JoinToken `json:"items"`
	}
	err := c.do(ctx, http.MethodGet, "/api/v1/agents/join-tokens", nil, &out)
	return out.Items, err
}

// RevokeJoinToken revokes a join token.
func (c *Client) RevokeJoinToken(ctx context.Context, id string) (JoinToken, error) {
	var out JoinToken
	err := c.do(ctx, http.MethodDelete, "/api/v1/agents/join-tokens/"+url.PathEscape(id), nil, &out)
	return out, err
}

// ListAgents returns one page of agents after the given ID.
func (c *Client) ListAgents(ctx context.Context, after string, limit int) (AgentPage, error) {
	q := url.Values{}
	if after != "" {
		q.Set("after", after)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	path := "/api/v1/agents"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out AgentPage
	err := c.do(ctx, http.MethodGet, path, nil, &out)
	return out, err
}

// AllAgents pages through every agent.
func (c *Client) AllAgents(ctx context.Context) ([]Agent, error) {
	all := []Agent{}
	after := ""
	for {
		page, err := c.ListAgents(ctx, after, 1000)
		if err != nil {
			return nil, err
		}
		all = append(all, page.Items...)
		if page.Next == "" {
			return all, nil
		}
		after = page.Next
	}
}

// GetAgent returns one agent.
func (c *Client) GetAgent(ctx context.Context, id string) (Agent, error) {
	var out Agent
	err := c.do(ctx, http.MethodGet, "/api/v1/agents/"+url.PathEscape(id), nil, &out)
	return out, err
}

// RevokeAgent revokes an agent: its certificate is refused from then on.
func (c *Client) RevokeAgent(ctx context.Context, id string) (Agent, error) {
	var out Agent
	err := c.do(ctx, http.MethodDelete, "/api/v1/agents/"+url.PathEscape(id), nil, &out)
	return out, err
}

// CommandSpec is the body of POST /api/v1/agents/{id}/commands: exactly
// one of Argv and Shell.
type CommandSpec struct {
	Argv    []string          `json:"argv,omitempty"`
	Shell   string            `json:"shell,omitempty"`
	Env     map[string]string `json:"env,omitempty"`
	Dir     string            `json:"dir,omitempty"`
	Timeout string            `json:"timeout,omitempty"`
	// Credentials maps an alias to a credential name; the command reads
	// each field from OPSCONDUCTOR_SECRET_<ALIAS>_<FIELD>.
	Credentials map[string]string `json:"credentials,omitempty"`
}

// LateResult is what an agent reported for an attempt already lost.
type LateResult struct {
	Status     string    `json:"status"`
	ExitCode   int       `json:"exit_code"`
	Error      string    `json:"error,omitempty"`
	LastSeq    uint64    `json:"last_seq"`
	ReportedAt time.Time `json:"reported_at"`
}

// Attempt is one execution on one agent.
type Attempt struct {
	ID         string            `json:"id"`
	AgentID    string            `json:"agent_id"`
	Kind       string            `json:"kind"`
	Params     json.RawMessage   `json:"params"`
	Timeout    string            `json:"timeout"`
	Status     string            `json:"status"`
	CreatedAt  time.Time         `json:"created_at"`
	CreatedBy  string            `json:"created_by"`
	StartedAt  *time.Time        `json:"started_at,omitempty"`
	FinishedAt *time.Time        `json:"finished_at,omitempty"`
	ExitCode   *int              `json:"exit_code,omitempty"`
	Error      string            `json:"error,omitempty"`
	LastSeq    uint64            `json:"last_seq"`
	Outputs    map[string]string `json:"outputs,omitempty"`
	Changed    bool              `json:"changed"`
	CancelAt   *time.Time        `json:"cancel_requested_at,omitempty"`
	Late       bool              `json:"late"`
	LateResult *LateResult       `json:"late_result,omitempty"`
	// Credentials names the credentials the attempt declared (alias →
	// credential name); their values are never returned.
	Credentials map[string]string `json:"credentials,omitempty"`
}

// Finished reports whether the attempt's outcome is decided.
func (a Attempt) Finished() bool { return a.Status != "pending" && a.Status != "running" }

// LogLine is one chunk of an attempt's output.
type LogLine struct {
	Seq    uint64    `json:"seq"`
	Stream string    `json:"stream"`
	Data   string    `json:"data"`
	Time   time.Time `json:"time"`
}

// AttemptLog is output after a sequence number; Next is the after to ask
// with next time.
type AttemptLog struct {
	Items []LogLine `json:"items"`
	Next  uint64    `json:"next"`
}

// RunCommand sends a command to a connected agent.
func (c *Client) RunCommand(ctx context.Context, agentID string, spec CommandSpec) (Attempt, error) {
	var out Attempt
	err := c.do(ctx, http.MethodPost, "/api/v1/agents/"+url.PathEscape(agentID)+"/commands", spec, &out)
	return out, err
}

// StepSpec is a built-in step or a plugin to run on an agent.
type StepSpec struct {
	Uses    string          `json:"uses"`
	With    json.RawMessage `json:"with,omitempty"`
	Timeout string          `json:"timeout,omitempty"`
	// Credentials maps an alias to a credential name; the step gets each
	// credential's fields as masked secrets alias.field.
	Credentials map[string]string `json:"credentials,omitempty"`
}

// RunStep sends a step to a connected agent; the controller checks its
// parameters against the step's schema first.
func (c *Client) RunStep(ctx context.Context, agentID string, spec StepSpec) (Attempt, error) {
	var out Attempt
	err := c.do(ctx, http.MethodPost, "/api/v1/agents/"+url.PathEscape(agentID)+"/steps", spec, &out)
	return out, err
}

// GetAttempt returns one attempt.
func (c *Client) GetAttempt(ctx context.Context, id string) (Attempt, error) {
	var out Attempt
	err := c.do(ctx, http.MethodGet, "/api/v1/attempts/"+url.PathEscape(id), nil, &out)
	return out, err
}

// AttemptLog returns output with seq > after, at most limit (0: the
// server's default).
func (c *Client) AttemptLog(ctx context.Context, id string, after uint64, limit int) (AttemptLog, error) {
	q := url.Values{"after": {strconv.FormatUint(after, 10)}}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out AttemptLog
	err := c.do(ctx, http.MethodGet, "/api/v1/attempts/"+url.PathEscape(id)+"/log?"+q.Encode(), nil, &out)
	return out, err
}

// CancelAttempt asks the attempt's agent to stop it.
func (c *Client) CancelAttempt(ctx context.Context, id string) (Attempt, error) {
	var out Attempt
	err := c.do(ctx, http.MethodPost, "/api/v1/attempts/"+url.PathEscape(id)+"/cancel", nil, &out)
	return out, err
}
