package agentrpc

import (
	"crypto/subtle"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/opsconductor/opsconductor/controller/communication/notify"
	"github.com/opsconductor/opsconductor/controller/communication/tmpl"
	"github.com/opsconductor/opsconductor/controller/problem"
	"github.com/opsconductor/opsconductor/controller/state"
)

// Tables owned by agentrpc.
const (
	tableCA     = "agentrpc_ca"
	tableTokens = "agentrpc_join_tokens"
	tableAgents = "agentrpc_agents"
	// tableAttempts is agentrpc's until the automation domain owns runs.
	tableAttempts = "agentrpc_attempts"
)

// Command types. Appended, never renamed or reused.
const (
	cmdCACreate    = "agentrpc.ca.create"
	cmdTokenCreate = "agentrpc.join_token.create"
	cmdTokenRevoke = "agentrpc.join_token.revoke"
	cmdEnroll      = "agentrpc.agent.enroll"
	cmdAgentRevoke = "agentrpc.agent.revoke"
	cmdAgentUp     = "agentrpc.agent.up"
	cmdAgentDown   = "agentrpc.agent.down"
	cmdAgentDrain  = "agentrpc.agent.drain"

	cmdAttemptCreate   = "agentrpc.attempt.create"
	cmdAttemptStarted  = "agentrpc.attempt.started"
	cmdAttemptFinished = "agentrpc.attempt.finished"
	cmdAttemptsLost    = "agentrpc.attempt.lost"
	cmdAttemptCancel   = "agentrpc.attempt.cancel"

	cmdAgentCert = "agentrpc.agent.cert"

	cmdAttemptsForget = "agentrpc.attempt.forget"
)

// Domain returns agentrpc's tables and commands for the state registry,
// telling hk (if given) of the changes it watches.
func Domain(hk ...Hooks) state.Domain {
	var h hooks
	if len(hk) > 0 {
		h = hooks(hk[0])
	}
	id := func(field string) *memdb.IndexSchema {
		return &memdb.IndexSchema{Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: field}}
	}
	table := func(name string, newRow func() any, idx ...*memdb.IndexSchema) state.Table {
		m := map[string]*memdb.IndexSchema{}
		for _, ix := range idx {
			m[ix.Name] = ix
		}
		return state.Table{Schema: &memdb.TableSchema{Name: name, Indexes: m}, New: newRow}
	}
	return state.Domain{
		Name: "agentrpc",
		Tables: []state.Table{
			table(tableCA, func() any { return &caRow{} }, id("Key")),
			table(tableTokens, func() any { return &JoinToken{} }, id("ID")),
			table(tableAgents, func() any { return &Agent{} }, id("ID"),
				&memdb.IndexSchema{Name: "name", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Name", Lowercase: true}}),
			table(tableAttempts, func() any { return &Attempt{} }, id("ID"),
				&memdb.IndexSchema{Name: "agent", Indexer: &memdb.StringFieldIndex{Field: "AgentID"}},
				&memdb.IndexSchema{Name: "run", AllowMissing: true, Indexer: &memdb.StringFieldIndex{Field: "RunID"}}),
		},
		Commands: map[string]state.Handler{
			cmdCACreate:    state.V1(applyCACreate),
			cmdTokenCreate: state.V1(applyTokenCreate),
			cmdTokenRevoke: state.V1(applyTokenRevoke),
			cmdEnroll:      state.V1(applyEnroll),
			cmdAgentRevoke: state.V1(h.applyAgentRevoke),
			cmdAgentUp:     state.V1(h.applyAgentUp),
			cmdAgentDown:   state.V1(h.applyAgentDown),
			cmdAgentDrain:  state.V1(applyAgentDrain),

			cmdAttemptCreate:   state.V1(h.applyAttemptCreate),
			cmdAttemptStarted:  state.V1(h.applyAttemptStarted),
			cmdAttemptFinished: state.V1(h.applyAttemptFinished),
			cmdAttemptsLost:    state.V1(h.applyAttemptsLost),
			cmdAttemptCancel:   state.V1(h.applyAttemptCancel),

			cmdAgentCert:      state.V1(applyAgentCert),
			cmdAttemptsForget: state.V1(applyAttemptsForget),
			cmdCARewrap:       state.V1(applyCARewrap),
		},
	}
}

// reader is any transaction the lookups below can read from.
type reader = state.Reader

func getCA(txn reader) (*caRow, error) {
	raw, err := txn.First(tableCA, "id", "ca")
	if err != nil || raw == nil {
		return nil, err
	}
	return raw.(*caRow), nil
}

func getAgent(txn reader, id string) (*Agent, error) {
	return state.ByID[Agent](txn, tableAgents, "agent", id)
}

func getToken(txn reader, id string) (*JoinToken, error) {
	return state.ByID[JoinToken](txn, tableTokens, "join token", id)
}

type caCreatePayload struct {
	CA caRow `json:"ca"`
}

type caCreateResult struct {
	Created bool `json:"created"`
}

// applyCACreate stores the agent CA once. Two leaders in a row may both
// propose one; the first entry wins and the later learns it exists.
func applyCACreate(ctx *state.ApplyContext, p caCreatePayload) (any, error) {
	existing, err := getCA(ctx.Txn)
	if err != nil {
		return nil, err
	}
	if existing != nil {
		return caCreateResult{}, nil
	}
	row := p.CA
	row.Key, row.CreatedAt = "ca", ctx.Time
	if err := ctx.Txn.Insert(tableCA, &row); err != nil {
		return nil, err
	}
	return caCreateResult{Created: true}, nil
}

type tokenCreatePayload struct {
	Token JoinToken     `json:"token"`
	TTL   time.Duration `json:"ttl"`
}

func applyTokenCreate(ctx *state.ApplyContext, p tokenCreatePayload) (any, error) {
	t := p.Token
	t.CreatedAt, t.ExpiresAt, t.Uses, t.Revoked = ctx.Time, ctx.Time.Add(p.TTL), 0, false
	if err := ctx.Txn.Insert(tableTokens, &t); err != nil {
		return nil, err
	}
	return t.view(), nil
}

type idPayload struct {
	ID string `json:"id"`
}

func applyTokenRevoke(ctx *state.ApplyContext, p idPayload) (any, error) {
	before, err := getToken(ctx.Txn, p.ID)
	if err != nil {
		return nil, err
	}
	t := *before
	t.Tags = maps.Clone(before.Tags)
	t.Revoked = true
	if err := ctx.Txn.Insert(tableTokens, &t); err != nil {
		return nil, err
	}
	return t.view(), nil
}

type enrollPayload struct {
	TokenID    string `json:"token_id"`
	SecretHash []byte `json:"secret_hash"`
	// Agent is the new row; the FSM fills in the name (unique), the merged
	// tags and the enrolment time.
	Agent Agent `json:"agent"`
}

// Enrol outcomes. Only enrollOK commits anything.
const (
	enrollOK      = "ok"
	enrollRefused = "refused"
)

type enrollResult struct {
	Outcome string `json:"outcome"`
	// Reason says why a token was refused, for the log only: the caller
	// gets one message for every reason so that tokens cannot be probed.
	Reason string `json:"reason,omitempty"`
	Agent  Agent  `json:"agent"`
}

// maxNameSuffix bounds the search for a free name.
const maxNameSuffix = 10000

// applyEnroll checks the join token and counts its use in the same
// transaction that adds the agent, so that concurrent enrolments are
// serialised here and never exceed max_uses.
func applyEnroll(ctx *state.ApplyContext, p enrollPayload) (any, error) {
	raw, err := ctx.Txn.First(tableTokens, "id", p.TokenID)
	if err != nil {
		return nil, err
	}
	refuse := func(reason string) (any, error) { return enrollResult{Outcome: enrollRefused, Reason: reason}, nil }
	if raw == nil {
		return refuse("unknown token")
	}
	before := raw.(*JoinToken)
	switch {
	case subtle.ConstantTimeCompare(before.SecretHash, p.SecretHash) != 1:
		return refuse("wrong secret")
	case before.Revoked:
		return refuse("token revoked")
	case !ctx.Time.Before(before.ExpiresAt):
		return refuse("token expired")
	case before.Uses >= before.MaxUses:
		return refuse("token used up")
	}
	if _, err := getAgent(ctx.Txn, p.Agent.ID); err == nil {
		return nil, problem.New(problem.KindConflict, "agent_exists", "agent %s already exists", p.Agent.ID)
	}
	a := p.Agent.clone()
	tags := maps.Clone(a.Tags)
	if tags == nil {
		tags = map[string]string{}
	}
	// The token's tags were chosen by an admin: they win over the agent's.
	maps.Copy(tags, before.Tags)
	a.Tags = tags
	name, err := freeName(ctx.Txn, a.Name)
	if err != nil {
		return nil, err
	}
	a.Name, a.EnrolledAt, a.JoinTokenID, a.Status, a.Revoked, a.RevokedAt = name, ctx.Time, before.ID, StatusEnrolled, false, nil
	if err := ctx.Txn.Insert(tableAgents, a); err != nil {
		return nil, err
	}
	t := *before
	t.Tags = maps.Clone(before.Tags)
	t.Uses++
	if err := ctx.Txn.Insert(tableTokens, &t); err != nil {
		return nil, err
	}
	return enrollResult{Outcome: enrollOK, Agent: *a}, nil
}

// freeName returns base, or base-2, base-3 … whichever no agent holds.
func freeName(txn reader, base string) (string, error) {
	for i := 1; i <= maxNameSuffix; i++ {
		name := base
		if i > 1 {
			name = base + "-" + strconv.Itoa(i)
		}
		raw, err := txn.First(tableAgents, "name", strings.ToLower(name))
		if err != nil {
			return "", err
		}
		if raw == nil {
			return name, nil
		}
	}
	return "", problem.New(problem.KindConflict, "name_exhausted", "too many agents are named %q: ask for another name", base)
}

func (h hooks) applyAgentRevoke(ctx *state.ApplyContext, p idPayload) (any, error) {
	before, err := getAgent(ctx.Txn, p.ID)
	if err != nil {
		return nil, err
	}
	if before.Revoked {
		return *before, nil
	}
	a := before.clone()
	at := ctx.Time
	a.Revoked, a.RevokedAt, a.Status, a.ConnectedTo = true, &at, StatusRevoked, ""
	if err := ctx.Txn.Insert(tableAgents, a); err != nil {
		return nil, err
	}
	// A revoked agent is never heard from again, and never marked down:
	// what it was running is lost now. (Entries from before attempts
	// existed find none, so replaying them is unchanged.)
	if _, err := h.loseAttempts(ctx, p.ID, "the agent was revoked"); err != nil {
		return nil, err
	}
	return *a, nil
}

// agentUpPayload is what the leader commits when an agent says hello: the
// node holding its stream and what it reported.
type agentUpPayload struct {
	ID      string   `json:"id"`
	NodeID  string   `json:"node_id"`
	Version string   `json:"version"`
	Facts   Facts    `json:"facts"`
	Plugins []Plugin `json:"plugins"`
}

// applyAgentUp marks an agent up on a node. A revoked agent stays revoked:
// its hello may have raced the revocation.
func (h hooks) applyAgentUp(ctx *state.ApplyContext, p agentUpPayload) (any, error) {
	before, err := getAgent(ctx.Txn, p.ID)
	if err != nil {
		return nil, err
	}
	if before.Revoked {
		return nil, problem.New(problem.KindForbidden, "agent_revoked", "agent %s is revoked", p.ID)
	}
	a := before.clone()
	at := ctx.Time
	a.Status, a.ConnectedTo, a.LastSeen, a.Version = StatusUp, p.NodeID, &at, p.Version
	a.Facts = p.Facts
	a.Facts.Addresses, a.Facts.Extra = slices.Clone(p.Facts.Addresses), maps.Clone(p.Facts.Extra)
	a.Plugins = slices.Clone(p.Plugins)
	if err := ctx.Txn.Insert(tableAgents, a); err != nil {
		return nil, err
	}
	if h.AgentUp != nil {
		ctx.Txn.AfterCommit(func() { h.AgentUp(p.ID) })
	}
	if before.Status != StatusUp {
		if err := h.agentEvent(ctx, a, tmpl.EventAgentUp); err != nil {
			return nil, err
		}
	}
	return *a, nil
}

type agentDownPayload struct {
	ID string `json:"id"`
	// LastSeen is when the leader last heard from the agent.
	LastSeen time.Time `json:"last_seen"`
}

// applyAgentDown marks an up agent down; any other status is left alone
// (a revoked agent stays revoked).
func (h hooks) applyAgentDown(ctx *state.ApplyContext, p agentDownPayload) (any, error) {
	before, err := getAgent(ctx.Txn, p.ID)
	if err != nil {
		return nil, err
	}
	if before.Status != StatusUp {
		return *before, nil
	}
	a := before.clone()
	seen := p.LastSeen
	a.Status, a.ConnectedTo, a.LastSeen = StatusDown, "", &seen
	if err := ctx.Txn.Insert(tableAgents, a); err != nil {
		return nil, err
	}
	if err := h.agentEvent(ctx, a, tmpl.EventAgentDown); err != nil {
		return nil, err
	}
	return *a, nil
}

type agentDrainPayload struct {
	ID       string `json:"id"`
	Draining bool   `json:"draining"`
}

func applyAgentDrain(ctx *state.ApplyContext, p agentDrainPayload) (any, error) {
	before, err := getAgent(ctx.Txn, p.ID)
	if err != nil {
		return nil, err
	}
	if before.Draining == p.Draining {
		return *before, nil
	}
	a := before.clone()
	a.Draining = p.Draining
	if err := ctx.Txn.Insert(tableAgents, a); err != nil {
		return nil, err
	}
	return *a, nil
}

// agentCertPayload records a certificate renewed over the live stream.
type agentCertPayload struct {
	ID           string    `json:"id"`
	CertSerial   string    `json:"cert_serial"`
	CertNotAfter time.Time `json:"cert_not_after"`
}

// applyAgentCert records an agent's renewed certificate. A revoked agent
// keeps its row as it was: the renewal raced the revocation and its
// certificate is never sent.
func applyAgentCert(ctx *state.ApplyContext, p agentCertPayload) (any, error) {
	before, err := getAgent(ctx.Txn, p.ID)
	if err != nil {
		return nil, err
	}
	if before.Revoked {
		return nil, problem.New(problem.KindForbidden, "agent_revoked", "agent %s is revoked", p.ID)
	}
	a := before.clone()
	a.CertSerial, a.CertNotAfter = p.CertSerial, p.CertNotAfter
	if err := ctx.Txn.Insert(tableAgents, a); err != nil {
		return nil, err
	}
	return *a, nil
}

// agentEvent raises agent.up or agent.down.
func (h hooks) agentEvent(ctx *state.ApplyContext, a *Agent, t tmpl.EventType) error {
	if h.Emit == nil {
		return nil
	}
	sev, verb := tmpl.SeverityInfo, "is up"
	if t == tmpl.EventAgentDown {
		sev, verb = tmpl.SeverityCritical, "is down"
	}
	e := tmpl.Event{Type: t, Severity: sev, Summary: fmt.Sprintf("agent %s %s", a.Name, verb),
		Agent: &tmpl.Agent{ID: a.ID, Name: a.Name, Status: a.Status, Version: a.Version}}
	return h.Emit(ctx, e, notify.Match{Targets: []string{a.Name}, Tags: maps.Clone(a.Tags)})
}
