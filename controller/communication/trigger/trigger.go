// Package trigger keeps inbound webhooks that start jobs: a trigger per
// job with its own URL and secret, stored in the replicated state. The
// secret is generated here, shown once, and sealed by the keyring; the
// delivery IDs seen are remembered in the state too, so a replay is
// refused by whichever controller the sender reaches, across failovers.
// Authentication, replay windows, rate limits and payload mapping are
// package inbound's; every delivery, accepted or refused, is recorded in
// the history store.
package trigger

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/opsconductor/opsconductor/controller/communication/inbound"
	"github.com/opsconductor/opsconductor/controller/history"
	"github.com/opsconductor/opsconductor/controller/identity"
	"github.com/opsconductor/opsconductor/controller/keyring"
	"github.com/opsconductor/opsconductor/controller/problem"
	"github.com/opsconductor/opsconductor/controller/state"
)

const (
	tableTriggers = "trigger_triggers"
	tableSeen     = "trigger_seen"

	cmdPut    = "trigger.put"
	cmdDelete = "trigger.delete"
	cmdSeen   = "trigger.seen"
	cmdExpire = "trigger.seen.expire"
	cmdRewrap = "trigger.rewrap"

	kindDelivery = "communication.trigger"
)

// Stored is a trigger as the state keeps it.
type Stored struct {
	inbound.Trigger
	Description string         `json:"description,omitempty"`
	Secret      keyring.Sealed `json:"secret"`
	// Owner is the user the trigger's runs act for (its creator).
	Owner     string    `json:"owner"`
	OwnerName string    `json:"owner_name"`
	Revision  uint64    `json:"revision"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

type seenRow struct {
	Key   string    `json:"key"`
	Until time.Time `json:"until"`
}

// Domain registers the trigger tables and commands.
func Domain() state.Domain {
	return state.Domain{
		Name: "trigger",
		Tables: []state.Table{
			{Schema: &memdb.TableSchema{Name: tableTriggers, Indexes: map[string]*memdb.IndexSchema{
				"id":   {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
				"name": {Name: "name", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Name"}},
			}}, New: func() any { return new(Stored) }},
			{Schema: &memdb.TableSchema{Name: tableSeen, Indexes: map[string]*memdb.IndexSchema{
				"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Key"}},
			}}, New: func() any { return new(seenRow) }},
		},
		Commands: map[string]state.Handler{
			cmdPut:    state.V1(applyPut),
			cmdDelete: state.V1(applyDelete),
			cmdSeen:   state.V1(applySeen),
			cmdExpire: state.V1(applyExpire),
			cmdRewrap: state.V1(applyRewrap),
		},
	}
}

type putPayload struct {
	Trigger  Stored  `json:"trigger"`
	Create   bool    `json:"create"`
	Revision *uint64 `json:"revision,omitempty"`
}

func applyPut(ctx *state.ApplyContext, p putPayload) (any, error) {
	t := p.Trigger
	byName, err := ctx.Txn.First(tableTriggers, "name", t.Name)
	if err != nil {
		return nil, err
	}
	if byName != nil && byName.(*Stored).ID != t.ID {
		return nil, problem.New(problem.KindConflict, "trigger_exists", "a trigger named %s already exists", t.Name)
	}
	raw, err := ctx.Txn.First(tableTriggers, "id", t.ID)
	if err != nil {
		return nil, err
	}
	switch {
	case raw != nil && p.Create:
		return nil, problem.New(problem.KindConflict, "trigger_exists", "trigger %s already exists", t.ID)
	case raw == nil && !p.Create:
		return nil, problem.NotFound("trigger", t.ID)
	}
	t.CreatedAt, t.UpdatedAt, t.Revision = ctx.Time, ctx.Time, 1
	if raw != nil {
		before := raw.(*Stored)
		if p.Revision != nil && *p.Revision != before.Revision {
			return nil, problem.New(problem.KindConflict, "revision_mismatch", "trigger %s is at revision %d, not %d: read it again", t.Name, before.Revision, *p.Revision)
		}
		t.CreatedAt, t.Revision = before.CreatedAt, before.Revision+1
		t.Owner, t.OwnerName = before.Owner, before.OwnerName
		if t.Secret.IsZero() {
			t.Secret = before.Secret
		}
	}
	if err := ctx.Txn.Insert(tableTriggers, &t); err != nil {
		return nil, err
	}
	return t, nil
}

type idPayload struct {
	ID string `json:"id"`
}

func applyDelete(ctx *state.ApplyContext, p idPayload) (any, error) {
	raw, err := ctx.Txn.First(tableTriggers, "id", p.ID)
	if err != nil {
		return nil, err
	}
	if raw == nil {
		return nil, problem.NotFound("trigger", p.ID)
	}
	return nil, ctx.Txn.Delete(tableTriggers, raw)
}

type seenPayload struct {
	Key   string    `json:"key"`
	Until time.Time `json:"until"`
}

// applySeen remembers a delivery; the result says whether it is new.
func applySeen(ctx *state.ApplyContext, p seenPayload) (any, error) {
	raw, err := ctx.Txn.First(tableSeen, "id", p.Key)
	if err != nil {
		return nil, err
	}
	if raw != nil && raw.(*seenRow).Until.After(ctx.Time) {
		return false, nil
	}
	return true, ctx.Txn.Insert(tableSeen, &seenRow{Key: p.Key, Until: p.Until})
}

type expirePayload struct {
	Keys []string `json:"keys"`
}

func applyExpire(ctx *state.ApplyContext, p expirePayload) (any, error) {
	for _, k := range p.Keys {
		raw, err := ctx.Txn.First(tableSeen, "id", k)
		if err != nil {
			return nil, err
		}
		if raw != nil && !raw.(*seenRow).Until.After(ctx.Time) {
			if err := ctx.Txn.Delete(tableSeen, raw); err != nil {
				return nil, err
			}
		}
	}
	return nil, nil
}

type rewrapPayload struct {
	ID     string         `json:"id"`
	From   string         `json:"from"`
	Sealed keyring.Sealed `json:"sealed"`
}

func applyRewrap(ctx *state.ApplyContext, p rewrapPayload) (any, error) {
	raw, err := ctx.Txn.First(tableTriggers, "id", p.ID)
	if err != nil || raw == nil {
		return nil, err
	}
	t := *raw.(*Stored)
	if t.Secret.KeyID != p.From {
		return nil, problem.New(problem.KindConflict, "rewrapped", "trigger %s is no longer under key %s", p.ID, p.From)
	}
	t.Secret = p.Sealed
	return nil, ctx.Txn.Insert(tableTriggers, &t)
}

// Runner starts the job of an accepted delivery.
type Runner interface {
	StartTriggered(ctx context.Context, owner, triggerID, deliveryID, job string, params map[string]any) (string, error)
	// CheckJob refuses a job that does not exist.
	CheckJob(ctx context.Context, job string, params map[string]any) error
}

// Deps are what the service needs.
type Deps struct {
	Applier  state.Applier
	Store    *state.Store
	Sealer   keyring.Sealer
	Runner   Runner
	History  *history.Writer
	Reader   history.Store
	Logger   *slog.Logger
	IsLeader func() bool
	Now      func() time.Time
}

// Service is the trigger API and the hook endpoint.
type Service struct {
	d       Deps
	handler *inbound.Handler
}

// New returns the service.
func New(d Deps) (*Service, error) {
	if d.Applier == nil || d.Store == nil || d.Runner == nil {
		return nil, errors.New("trigger: Applier, Store and Runner are required")
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.IsLeader == nil {
		d.IsLeader = func() bool { return true }
	}
	s := &Service{d: d}
	h, err := inbound.NewHandler(inbound.Config{Secrets: s, Seen: s, Logger: d.Logger, Now: d.Now})
	if err != nil {
		return nil, err
	}
	s.handler = h
	return s, nil
}

func secretAAD(id string) []byte { return []byte("communication/trigger/" + id) }

// Secret implements inbound.SecretSource; ref is the trigger ID.
func (s *Service) Secret(_ context.Context, ref string) (string, error) {
	t, err := s.get(ref)
	if err != nil {
		return "", err
	}
	if s.d.Sealer == nil {
		return "", errors.New("no keyring to open trigger secrets")
	}
	b, err := s.d.Sealer.Open(t.Secret, secretAAD(t.ID))
	if err != nil {
		return "", fmt.Errorf("open trigger secret: %w", err)
	}
	return string(b), nil
}

// Remember implements inbound.Seen through the state, so that every
// controller refuses a delivery any of them accepted.
func (s *Service) Remember(ctx context.Context, triggerID, deliveryID string, until time.Time) (bool, error) {
	var first bool
	err := state.ApplyOne(ctx, s.d.Applier, cmdSeen, seenPayload{Key: triggerID + "\x00" + deliveryID, Until: until}, &first)
	return first, err
}

// Request creates or replaces a trigger.
type Request struct {
	Name        string            `json:"name"`
	Description string            `json:"description"`
	Job         string            `json:"job"`
	Auth        inbound.Auth      `json:"auth"`
	ParamMap    map[string]string `json:"param_map"`
	Filter      string            `json:"filter"`
	RateLimit   int               `json:"rate_limit"`
	Enabled     *bool             `json:"enabled"`
	Revision    *uint64           `json:"revision"`
}

// View is a trigger as the API shows it: its URL path, never its secret.
type View struct {
	ID          string            `json:"id"`
	Name        string            `json:"name"`
	Description string            `json:"description,omitempty"`
	Job         string            `json:"job"`
	Auth        inbound.Auth      `json:"auth"`
	ParamMap    map[string]string `json:"param_map,omitempty"`
	Filter      string            `json:"filter,omitempty"`
	RateLimit   int               `json:"rate_limit"`
	Enabled     bool              `json:"enabled"`
	Path        string            `json:"path"`
	Owner       string            `json:"owner"`
	Revision    uint64            `json:"revision"`
	CreatedAt   time.Time         `json:"created_at"`
	UpdatedAt   time.Time         `json:"updated_at"`
	// Secret is set once, in the answer to a create or a rotate.
	Secret string `json:"secret,omitempty"`
}

// HookPath is where a trigger's sender posts.
func HookPath(id string) string { return "/api/v1/hooks/" + id }

func view(t *Stored) View {
	rl := t.RateLimit
	if rl == 0 {
		rl = inbound.DefaultRateLimit
	}
	return View{ID: t.ID, Name: t.Name, Description: t.Description, Job: t.Job, Auth: t.Auth, ParamMap: t.ParamMap, Filter: t.Filter,
		RateLimit: rl, Enabled: t.Enabled, Path: HookPath(t.ID), Owner: t.OwnerName, Revision: t.Revision, CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt}
}

func mayWrite(p *identity.Principal) error {
	if p == nil || !p.Can(identity.PermJobsWrite) || !p.Can(identity.PermJobsRun) {
		return problem.New(problem.KindForbidden, "owner_cannot_run",
			"a trigger's runs act for whoever creates it: that takes %s and %s", identity.PermJobsWrite, identity.PermJobsRun)
	}
	return nil
}

func newSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func newID() (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return "trg_" + strings.ToLower(base64.RawURLEncoding.EncodeToString(b)), nil
}

func (s *Service) build(ctx context.Context, req Request, id string) (Stored, error) {
	t := Stored{Trigger: inbound.Trigger{ID: id, Name: req.Name, Job: req.Job, Auth: req.Auth, SecretRef: id,
		ParamMap: req.ParamMap, Filter: req.Filter, RateLimit: req.RateLimit, Enabled: req.Enabled == nil || *req.Enabled},
		Description: req.Description}
	var errs problem.List
	if len(req.Description) > 1024 {
		errs.Add("description", "must be at most 1024 bytes")
	}
	if err := t.Validate(); err != nil {
		if p, ok := problem.As(err); ok && p.Kind == problem.KindInvalid {
			if len(p.Details) == 0 {
				errs = append(errs, p)
			}
			for i := range p.Details {
				errs = append(errs, &p.Details[i])
			}
		} else {
			return Stored{}, err
		}
	}
	if req.Job != "" {
		if err := s.d.Runner.CheckJob(ctx, req.Job, nil); err != nil && problem.Is(err, problem.KindNotFound) {
			errs.Add("job", "no job named %q", req.Job)
		}
	}
	return t, errs.Err()
}

// Create makes a trigger owned by p and returns it with its secret, the
// only time the secret is shown.
func (s *Service) Create(ctx context.Context, p *identity.Principal, req Request) (View, error) {
	if err := mayWrite(p); err != nil {
		return View{}, err
	}
	id, err := newID()
	if err != nil {
		return View{}, err
	}
	t, err := s.build(ctx, req, id)
	if err != nil {
		return View{}, err
	}
	t.Owner, t.OwnerName = p.UserID, p.Name()
	secret, err := s.seal(&t)
	if err != nil {
		return View{}, err
	}
	var out Stored
	if err := state.ApplyOne(ctx, s.d.Applier, cmdPut, putPayload{Trigger: t, Create: true}, &out); err != nil {
		return View{}, err
	}
	v := view(&out)
	v.Secret = secret
	return v, nil
}

func (s *Service) seal(t *Stored) (string, error) {
	if s.d.Sealer == nil {
		return "", problem.Unavailable("no_keyring", "this controller has no keyring to keep trigger secrets")
	}
	secret, err := newSecret()
	if err != nil {
		return "", err
	}
	sealed, err := s.d.Sealer.Seal([]byte(secret), secretAAD(t.ID))
	if err != nil {
		return "", fmt.Errorf("seal trigger secret: %w", err)
	}
	t.Secret = sealed
	return secret, nil
}

// Update replaces a trigger's settings (not its secret or owner).
func (s *Service) Update(ctx context.Context, p *identity.Principal, ref string, req Request) (View, error) {
	if err := mayWrite(p); err != nil {
		return View{}, err
	}
	cur, err := s.get(ref)
	if err != nil {
		return View{}, err
	}
	if req.Name == "" {
		req.Name = cur.Name
	}
	t, err := s.build(ctx, req, cur.ID)
	if err != nil {
		return View{}, err
	}
	var out Stored
	if err := state.ApplyOne(ctx, s.d.Applier, cmdPut, putPayload{Trigger: t, Revision: req.Revision}, &out); err != nil {
		return View{}, err
	}
	return view(&out), nil
}

// RotateSecret gives a trigger a new secret and shows it once.
func (s *Service) RotateSecret(ctx context.Context, p *identity.Principal, ref string) (View, error) {
	if err := mayWrite(p); err != nil {
		return View{}, err
	}
	cur, err := s.get(ref)
	if err != nil {
		return View{}, err
	}
	t := *cur
	secret, err := s.seal(&t)
	if err != nil {
		return View{}, err
	}
	var out Stored
	rev := cur.Revision
	if err := state.ApplyOne(ctx, s.d.Applier, cmdPut, putPayload{Trigger: t, Revision: &rev}, &out); err != nil {
		return View{}, err
	}
	v := view(&out)
	v.Secret = secret
	return v, nil
}

// Delete removes a trigger.
func (s *Service) Delete(ctx context.Context, ref string) error {
	cur, err := s.get(ref)
	if err != nil {
		return err
	}
	return state.ApplyOne(ctx, s.d.Applier, cmdDelete, idPayload{ID: cur.ID}, nil)
}

// Get reads a trigger by ID or name.
func (s *Service) Get(ref string) (View, error) {
	t, err := s.get(ref)
	if err != nil {
		return View{}, err
	}
	return view(t), nil
}

// List lists triggers.
func (s *Service) List() ([]View, error) {
	it, err := s.d.Store.ReadTxn().Get(tableTriggers, "name")
	if err != nil {
		return nil, err
	}
	out := []View{}
	for obj := it.Next(); obj != nil; obj = it.Next() {
		out = append(out, view(obj.(*Stored)))
	}
	return out, nil
}

func (s *Service) get(ref string) (*Stored, error) {
	txn := s.d.Store.ReadTxn()
	for _, idx := range []string{"id", "name"} {
		raw, err := txn.First(tableTriggers, idx, ref)
		if err != nil {
			return nil, err
		}
		if raw != nil {
			return raw.(*Stored), nil
		}
	}
	return nil, problem.NotFound("trigger", ref)
}

func (s *Service) exists(id string) bool {
	raw, err := s.d.Store.ReadTxn().First(tableTriggers, "id", id)
	return err == nil && raw != nil
}

// Delivery is the record of one inbound delivery.
type Delivery struct {
	Trigger    string         `json:"trigger"`
	Time       time.Time      `json:"time"`
	DeliveryID string         `json:"delivery_id,omitempty"`
	Outcome    string         `json:"outcome"`
	Reason     string         `json:"reason,omitempty"`
	RunID      string         `json:"run_id,omitempty"`
	Params     map[string]any `json:"params,omitempty"`
	Source     string         `json:"source"`
}

// Outcome is what the hook endpoint answers.
type Outcome struct {
	Outcome    string `json:"outcome"`
	RunID      string `json:"run_id,omitempty"`
	DeliveryID string `json:"delivery_id,omitempty"`
}

// Handle serves POST /api/v1/hooks/{id}: authenticate, refuse replays,
// map the payload, start the job, and record the delivery whatever its
// outcome. A sender sees 202 with the run, 200 when the filter skipped
// it, or the refusal.
func (s *Service) Handle(ctx context.Context, id string, r *http.Request, source string) (Outcome, error) {
	rec := Delivery{Trigger: id, Time: s.d.Now().UTC(), Source: source}
	out, err := s.handle(ctx, id, r, &rec)
	if problem.Is(err, problem.KindNotFound) && rec.Outcome == "" && !s.exists(id) {
		// No such hook: recording it would let anyone write history
		// records under stream names of their choosing.
		return out, err
	}
	if err != nil {
		rec.Outcome, rec.Reason = "refused", err.Error()
		if p, ok := problem.As(err); ok {
			rec.Reason = p.Code + ": " + p.Message
		}
	}
	s.record(ctx, rec)
	return out, err
}

func (s *Service) handle(ctx context.Context, id string, r *http.Request, rec *Delivery) (Outcome, error) {
	t, err := s.get(id)
	if err != nil || t.ID != id {
		// Only IDs are URLs: a name would let a sender guess a hook.
		return Outcome{}, problem.NotFound("hook", id)
	}
	res, err := s.handler.Handle(ctx, t.Trigger, r)
	if err != nil {
		return Outcome{}, err
	}
	rec.DeliveryID = res.DeliveryID
	if res.Skipped {
		rec.Outcome = "skipped"
		return Outcome{Outcome: "skipped", DeliveryID: res.DeliveryID}, nil
	}
	rec.Params = res.Params
	runID, err := s.d.Runner.StartTriggered(ctx, t.Owner, t.ID, res.DeliveryID, t.Job, res.Params)
	if err != nil {
		return Outcome{}, err
	}
	rec.Outcome, rec.RunID = "accepted", runID
	return Outcome{Outcome: "accepted", RunID: runID, DeliveryID: res.DeliveryID}, nil
}

// record writes a delivery to the history store; the sequence is the
// arrival time in nanoseconds, unique enough per trigger and ordered.
func (s *Service) record(ctx context.Context, d Delivery) {
	if s.d.History == nil {
		return
	}
	data, err := json.Marshal(d)
	if err != nil {
		return
	}
	rec := history.Record{Stream: "communication/trigger/" + d.Trigger, Seq: uint64(d.Time.UnixNano()), Time: d.Time, Kind: kindDelivery,
		Fields: map[string]string{"trigger": d.Trigger, "outcome": d.Outcome, "delivery_id": d.DeliveryID, "run_id": d.RunID}, Data: data}
	if _, err := s.d.History.Submit(context.WithoutCancel(ctx), []history.Record{rec}); err != nil {
		s.d.Logger.Warn("record trigger delivery", "trigger", d.Trigger, "error", err)
	}
}

// Deliveries lists a trigger's recorded deliveries, newest first.
func (s *Service) Deliveries(ctx context.Context, ref string, limit int) ([]Delivery, error) {
	t, err := s.get(ref)
	if err != nil {
		return nil, err
	}
	if s.d.Reader == nil {
		return []Delivery{}, nil
	}
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	page, err := s.d.Reader.Query(ctx, history.Query{Kind: kindDelivery, Fields: map[string]string{"trigger": t.ID}, Limit: limit})
	if err != nil {
		return nil, fmt.Errorf("read trigger deliveries: %w", err)
	}
	out := []Delivery{}
	for _, r := range page.Records {
		var d Delivery
		if json.Unmarshal(r.Data, &d) == nil {
			out = append(out, d)
		}
	}
	return out, nil
}

// Run expires remembered delivery IDs while this controller leads.
func (s *Service) Run(ctx context.Context, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if !s.d.IsLeader() {
			continue
		}
		it, err := s.d.Store.ReadTxn().Get(tableSeen, "id")
		if err != nil {
			continue
		}
		now := s.d.Now()
		var keys []string
		for obj := it.Next(); obj != nil && len(keys) < 4096; obj = it.Next() {
			if r := obj.(*seenRow); !r.Until.After(now) {
				keys = append(keys, r.Key)
			}
		}
		if len(keys) > 0 {
			if err := state.ApplyOne(ctx, s.d.Applier, cmdExpire, expirePayload{Keys: keys}, nil); err != nil {
				s.d.Logger.Warn("expire trigger deliveries", "error", err)
			}
		}
	}
}
