package agentrpc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/opsconductor/opsconductor/controller/keyring"
	"github.com/opsconductor/opsconductor/controller/problem"
	"github.com/opsconductor/opsconductor/controller/state"
)

// Join-token limits.
const (
	DefaultTokenTTL = time.Hour
	MaxTokenTTL     = 30 * 24 * time.Hour
	MaxTokenUses    = 1000
)

// Applier commits commands through Raft (cluster.Node in production).
type Applier interface {
	Apply(ctx context.Context, cmds ...state.Command) ([]state.Result, error)
}

// Config configures the service.
type Config struct {
	// NodeID names this controller in its listener certificate.
	NodeID string
	// Advertise is host:port of this controller's agent listener as
	// agents dial it; it goes into join commands and, its host, into the
	// listener certificate.
	Advertise string
	// CertTTL is how long an agent certificate lasts (DefaultCertTTL).
	CertTTL time.Duration
	// HeartbeatInterval is the shortest heartbeat interval, HeartbeatRate
	// the heartbeats a second the leader budgets for, MinLease the
	// shortest lease (see DefaultHeartbeatInterval for the formula).
	HeartbeatInterval time.Duration
	HeartbeatRate     float64
	MinLease          time.Duration
	// HelloTimeout bounds the wait for a new stream's hello.
	HelloTimeout time.Duration
}

// Deps are the collaborators the service needs.
type Deps struct {
	Applier Applier
	Store   *state.Store
	Keyring keyring.Sealer
	Logger  *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Leadership tells the stream whether this node leads and where the
	// leader is. Nil means this node always leads (a single node).
	Leadership Leadership
	// History takes attempt output and HistoryReader reads it back
	// (history.Writer and history.Store). Without them no work is sent.
	History       HistoryWriter
	HistoryReader HistoryReader
	// Plugins serves FetchPlugin; without it agents are told there is no
	// registry.
	Plugins PluginSource
	// Steps checks RunStep's parameters before dispatch (nil: the agent
	// checks them).
	Steps StepCatalog
	// Ready reports whether this node's state is current enough to judge
	// agents (cluster.Node.Ready); nil means always.
	Ready func() error
	// RunLog is told, on the leader, of each line of a run's attempt once
	// it is durable (for live output); it must not block.
	RunLog func(a *Attempt, line LogLine)
}

// Service is agent enrolment on one controller.
type Service struct {
	cfg     Config
	applier Applier
	store   *state.Store
	kr      keyring.Sealer
	log     *slog.Logger
	now     func() time.Time
	lead    Leadership
	reg     *registry

	hist     HistoryWriter
	histRead HistoryReader
	trackMu  sync.Mutex
	tracks   map[string]*tracker // by attempt ID; leader-local
	trips    *roundTrips
	plugins  PluginSource
	steps    StepCatalog
	ready    func() error
	runLog   func(*Attempt, LogLine)

	mu sync.Mutex
	ca *authority // opened once the CA exists; it never changes

	renewMu   sync.Mutex
	renewedAt map[string]time.Time // by agent ID; leader-local rate limit

	countMu sync.Mutex
	counts  agentCounts
	countAt uint64 // agents table index the counts were taken at
}

// New builds the service.
func New(cfg Config, deps Deps) (*Service, error) {
	if deps.Applier == nil || deps.Store == nil || deps.Keyring == nil || deps.Logger == nil {
		return nil, errors.New("agentrpc: Applier, Store, Keyring and Logger are required")
	}
	if cfg.CertTTL <= 0 {
		cfg.CertTTL = DefaultCertTTL
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if cfg.HeartbeatRate <= 0 {
		cfg.HeartbeatRate = DefaultHeartbeatRate
	}
	if cfg.MinLease <= 0 {
		cfg.MinLease = DefaultMinLease
	}
	if cfg.HelloTimeout <= 0 {
		cfg.HelloTimeout = DefaultHelloTimeout
	}
	return &Service{cfg: cfg, applier: deps.Applier, store: deps.Store, kr: deps.Keyring, log: deps.Logger, now: deps.Now,
		lead: deps.Leadership, reg: newRegistry(cfg, deps.Leadership == nil),
		hist: deps.History, histRead: deps.HistoryReader, tracks: map[string]*tracker{}, trips: newRoundTrips(), plugins: deps.Plugins, steps: deps.Steps, ready: deps.Ready, runLog: deps.RunLog, renewedAt: map[string]time.Time{}}, nil
}

func (s *Service) apply(ctx context.Context, typ string, payload, out any) error {
	return state.ApplyOne(ctx, s.applier, typ, payload, out)
}

func (s *Service) txn() *memdb.Txn { return s.store.ReadTxn() }

// EnsureCA creates the agent CA unless it exists. The leader calls it;
// a race between two leaders is settled in the FSM (first wins).
func (s *Service) EnsureCA(ctx context.Context) (created bool, err error) {
	if row, err := getCA(s.txn()); err != nil || row != nil {
		return false, err
	}
	row, err := newCARow(s.kr, s.now())
	if err != nil {
		return false, err
	}
	var res caCreateResult
	if err := s.apply(ctx, cmdCACreate, caCreatePayload{CA: row}, &res); err != nil {
		return false, err
	}
	if res.Created {
		s.log.Info("created the agent CA", "ca_pin", CAPin(mustParse(row.CertDER)))
	}
	return res.Created, nil
}

// errNoCA is returned until the leader has created the agent CA.
var errNoCA = problem.Unavailable("agent_ca_missing", "the agent CA does not exist yet: the leader creates it shortly after the cluster starts")

// authority returns the opened CA with this controller's listener
// certificate, opening it on first use.
func (s *Service) authority() (*authority, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ca != nil {
		return s.ca, nil
	}
	row, err := getCA(s.txn())
	if err != nil {
		return nil, err
	}
	if row == nil {
		return nil, errNoCA
	}
	a, err := openCA(row, s.kr)
	if err != nil {
		return nil, err
	}
	host, _, _ := net.SplitHostPort(s.cfg.Advertise)
	a.server, err = a.issueServerCert(s.cfg.NodeID, []string{host}, s.now())
	if err != nil {
		return nil, err
	}
	s.ca = a
	s.log.Info("issued the agent listener certificate", "ca_pin", a.pin, "not_after", a.server.Leaf.NotAfter)
	return a, nil
}

// Ready reports whether the CA exists and this controller can serve agents.
func (s *Service) Ready(context.Context) error {
	_, err := s.authority()
	return err
}

// CAPin returns the pin of the agent CA.
func (s *Service) CAPin() (string, error) {
	a, err := s.authority()
	if err != nil {
		return "", err
	}
	return a.pin, nil
}

// CreateJoinToken is the request to make a join token.
type CreateJoinToken struct {
	// TTL is a Go duration ("1h", "30m"); empty means DefaultTokenTTL.
	TTL string `json:"ttl,omitempty"`
	// MaxUses is how many agents may enrol with it; 0 means 1.
	MaxUses int               `json:"max_uses,omitempty"`
	Tags    map[string]string `json:"tags,omitempty"`
}

// CreatedJoinToken is a new join token with its secret, shown only once.
type CreatedJoinToken struct {
	JoinTokenView
	Token       string `json:"token"`
	CAPin       string `json:"ca_pin"`
	JoinCommand string `json:"join_command"`
}

// CreateJoinToken makes a join token. createdBy names the principal.
func (s *Service) CreateJoinToken(ctx context.Context, createdBy string, req CreateJoinToken) (CreatedJoinToken, error) {
	var errs problem.List
	ttl := DefaultTokenTTL
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		switch {
		case err != nil:
			errs.Add("ttl", "must be a duration such as 1h or 30m, got %q", req.TTL)
		case d < time.Minute || d > MaxTokenTTL:
			errs.Add("ttl", "must be from 1m to %s, got %s", MaxTokenTTL, d)
		default:
			ttl = d
		}
	}
	uses := req.MaxUses
	if uses == 0 {
		uses = 1
	}
	if uses < 1 || uses > MaxTokenUses {
		errs.Add("max_uses", "must be from 1 to %d, got %d", MaxTokenUses, req.MaxUses)
	}
	for _, msg := range validateTags("tags", req.Tags) {
		path, m, _ := strings.Cut(msg, ": ")
		errs.Add(path, "%s", m)
	}
	if err := errs.Err(); err != nil {
		return CreatedJoinToken{}, err
	}
	a, err := s.authority()
	if err != nil {
		return CreatedJoinToken{}, err
	}
	id, secret, err := newJoinToken()
	if err != nil {
		return CreatedJoinToken{}, err
	}
	tags := maps.Clone(req.Tags)
	if tags == nil {
		tags = map[string]string{}
	}
	t := JoinToken{ID: id, SecretHash: hashSecret(secret), CreatedBy: createdBy, MaxUses: uses, Tags: tags}
	var view JoinTokenView
	if err := s.apply(ctx, cmdTokenCreate, tokenCreatePayload{Token: t, TTL: ttl}, &view); err != nil {
		return CreatedJoinToken{}, err
	}
	token := formatJoinToken(id, secret)
	s.log.Info("created a join token", "join_token_id", id, "created_by", createdBy, "max_uses", uses, "expires_at", view.ExpiresAt)
	return CreatedJoinToken{JoinTokenView: view, Token: token, CAPin: a.pin,
		JoinCommand: fmt.Sprintf("opsconductor-agent join --controller %s --token %s --ca-pin %s --data-dir /var/lib/opsconductor-agent",
			s.cfg.Advertise, token, a.pin)}, nil
}

// JoinTokenList is every join token's metadata, newest first.
type JoinTokenList struct {
	Items []JoinTokenView `json:"items"`
}

// ListJoinTokens lists join tokens, newest first.
func (s *Service) ListJoinTokens(context.Context) (JoinTokenList, error) {
	it, err := s.txn().Get(tableTokens, "id")
	if err != nil {
		return JoinTokenList{}, err
	}
	out := JoinTokenList{Items: []JoinTokenView{}}
	for obj := it.Next(); obj != nil; obj = it.Next() {
		out.Items = append(out.Items, obj.(*JoinToken).view())
	}
	sortNewestFirst(out.Items)
	return out, nil
}

// RevokeJoinToken revokes a join token; agents it enrolled stay enrolled.
func (s *Service) RevokeJoinToken(ctx context.Context, id string) (JoinTokenView, error) {
	var view JoinTokenView
	if err := s.apply(ctx, cmdTokenRevoke, idPayload{ID: id}, &view); err != nil {
		return JoinTokenView{}, err
	}
	s.log.Info("revoked a join token", "join_token_id", id)
	return view, nil
}

// AgentPage is one page of agents sorted by ID; Next is the cursor for the
// next page, "" on the last.
type AgentPage struct {
	Items []Agent `json:"items"`
	Next  string  `json:"next"`
}

// ListAgents pages through agents by ID, starting after the given one.
func (s *Service) ListAgents(_ context.Context, after string, limit int) (AgentPage, error) {
	it, err := s.txn().LowerBound(tableAgents, "id", after)
	if err != nil {
		return AgentPage{}, err
	}
	page := AgentPage{Items: []Agent{}}
	for obj := it.Next(); obj != nil; obj = it.Next() {
		a := obj.(*Agent)
		if a.ID == after {
			continue
		}
		if len(page.Items) == limit {
			page.Next = page.Items[len(page.Items)-1].ID
			break
		}
		page.Items = append(page.Items, *a.clone())
	}
	return page, nil
}

// GetAgent returns one agent.
func (s *Service) GetAgent(_ context.Context, id string) (Agent, error) {
	a, err := getAgent(s.txn(), id)
	if err != nil {
		return Agent{}, err
	}
	return *a.clone(), nil
}

// DrainAgent sets or clears an agent's draining flag. The leader sends
// the change on the agent's live stream when it applies it.
func (s *Service) DrainAgent(ctx context.Context, id string, draining bool) (Agent, error) {
	var a Agent
	if err := s.apply(ctx, cmdAgentDrain, agentDrainPayload{ID: id, Draining: draining}, &a); err != nil {
		return Agent{}, err
	}
	s.log.Info("set an agent's draining flag", "agent_id", id, "draining", draining)
	return a, nil
}

// RevokeAgent marks an agent revoked: its certificate is refused from the
// next call on, and the leader closes its live stream at once.
func (s *Service) RevokeAgent(ctx context.Context, id string) (Agent, error) {
	var a Agent
	if err := s.apply(ctx, cmdAgentRevoke, idPayload{ID: id}, &a); err != nil {
		return Agent{}, err
	}
	s.log.Info("revoked an agent", "agent_id", id, "name", a.Name)
	return a, nil
}

type agentCounts struct {
	Enrolled int `json:"enrolled"`
	Revoked  int `json:"revoked"`
	// Down counts agents the leader marked down (replicated).
	Down int `json:"down"`
	// Connected counts live streams on this node (only the leader has any).
	Connected int `json:"connected"`
}

// HealthSection is the "agents" section of /health. It recounts only when
// the agents table changed since the last count.
func (s *Service) HealthSection(context.Context) any {
	txn := s.txn()
	idx := s.store.TableIndex(txn, tableAgents)
	s.countMu.Lock()
	defer s.countMu.Unlock()
	if idx != s.countAt || idx == 0 {
		var c agentCounts
		it, err := txn.Get(tableAgents, "id")
		if err == nil {
			for obj := it.Next(); obj != nil; obj = it.Next() {
				a := obj.(*Agent)
				if a.Revoked {
					c.Revoked++
				} else {
					c.Enrolled++
				}
				if a.Status == StatusDown {
					c.Down++
				}
			}
		}
		s.counts, s.countAt = c, idx
	}
	c := s.counts
	c.Connected = s.reg.connectedCount()
	return c
}

// agentKnown returns the agent a verified certificate names, refusing an
// unknown or revoked one.
func (s *Service) agentKnown(id string) (*Agent, error) {
	a, err := getAgent(s.txn(), id)
	if err != nil {
		return nil, err
	}
	if a.Revoked {
		return nil, errAgentRevoked
	}
	return a, nil
}

var errAgentRevoked = errors.New("agent revoked")

func newAgentID() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate agent id: %w", err)
	}
	return "agt_" + hex.EncodeToString(b), nil
}
