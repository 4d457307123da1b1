package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/opsconductor/opsconductor/controller/communication/channel"
	"github.com/opsconductor/opsconductor/controller/communication/tmpl"
	"github.com/opsconductor/opsconductor/controller/history"
	"github.com/opsconductor/opsconductor/controller/keyring"
	"github.com/opsconductor/opsconductor/controller/problem"
	"github.com/opsconductor/opsconductor/controller/state"
)

// Deps are what the service needs from the controller.
type Deps struct {
	Applier state.Applier
	Store   *state.Store
	// Sealer keeps channel secrets (the keyring).
	Sealer keyring.Sealer
	// History keeps finished deliveries; HistoryWriter writes them.
	History       history.Store
	HistoryWriter *history.Writer
	IsLeader      func() bool
	Logger        *slog.Logger
	// Sender makes delivery attempts; nil means channel.NewSender().
	Sender *channel.Sender
	Now    func() time.Time
	// LeaderID names the current leader ("" when none), so that a new
	// leader can say whom it took over from; NodeID is this controller.
	LeaderID func(ctx context.Context) string
	NodeID   string
}

// Config tunes the worker.
type Config struct {
	// Cluster names the cluster in events ("opsconductor" when empty).
	Cluster string
	// UIURL is the web UI's public base URL, for links in notifications.
	UIURL string
	// Concurrency bounds the attempts in flight.
	Concurrency int
	// Retention is how long dead deliveries stay in the state before they
	// are moved to the history store.
	Retention time.Duration
	// Backoff is the wait before a retry (nil: channel.Backoff, which is
	// exponential with full jitter from one second).
	Backoff func(attempt int) time.Duration
}

// Service is the notification domain on one controller.
type Service struct {
	cfg      Config
	d        Deps
	attempts *prometheus.CounterVec
}

// New returns the service.
func New(cfg Config, d Deps) (*Service, error) {
	if d.Applier == nil || d.Store == nil {
		return nil, errors.New("notify: Applier and Store are required")
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Sender == nil {
		d.Sender = channel.NewSender()
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.IsLeader == nil {
		d.IsLeader = func() bool { return true }
	}
	if cfg.Cluster == "" {
		cfg.Cluster = "opsconductor"
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 64
	}
	if cfg.Retention <= 0 {
		cfg.Retention = 7 * 24 * time.Hour
	}
	return &Service{cfg: cfg, d: d, attempts: newDeliveryAttempts()}, nil
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)

func checkName(l *problem.List, field, name string) {
	if !nameRE.MatchString(name) {
		l.Add(field, "must be 1-63 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit")
	}
}

func secretAAD(name string) []byte { return []byte("communication/channel/" + name) }

// ChannelRequest creates or replaces a channel.
type ChannelRequest struct {
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Config      json.RawMessage `json:"config"`
	// Secret is the webhook HMAC key or the SMTP password. On replace,
	// leaving it out keeps the stored one; "" removes it.
	Secret      *string `json:"secret"`
	MaxAttempts int     `json:"max_attempts"`
	Revision    *uint64 `json:"revision"`
}

// ChannelView is a channel as the API shows it: no secret, and a chat
// URL (the credential of incoming webhooks) cut to its host.
type ChannelView struct {
	Name        string         `json:"name"`
	Description string         `json:"description,omitempty"`
	Kind        channel.Kind   `json:"kind"`
	Config      channel.Config `json:"config"`
	HasSecret   bool           `json:"has_secret"`
	MaxAttempts int            `json:"max_attempts"`
	Revision    uint64         `json:"revision"`
	CreatedBy   string         `json:"created_by,omitempty"`
	CreatedAt   time.Time      `json:"created_at"`
	UpdatedAt   time.Time      `json:"updated_at"`
}

// cutURL is a chat URL as shown: scheme and host only.
func cutURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "…"
	}
	return u.Scheme + "://" + u.Host + "/…"
}

func viewChannel(c *Channel) ChannelView {
	cfg := c.Config
	if cfg.Chat != nil {
		cp := *cfg.Chat
		cp.URL = cutURL(cp.URL)
		cfg.Chat = &cp
	}
	return ChannelView{Name: c.Name, Description: c.Description, Kind: c.Config.Kind, Config: cfg, HasSecret: !c.Secret.IsZero(),
		MaxAttempts: c.MaxAttempts, Revision: c.Revision, CreatedBy: c.CreatedBy, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt}
}

// PutChannel creates (create true) or replaces a channel.
func (s *Service) PutChannel(ctx context.Context, actor string, req ChannelRequest, create bool) (ChannelView, error) {
	var errs problem.List
	checkName(&errs, "name", req.Name)
	if len(req.Description) > 1024 {
		errs.Add("description", "must be at most 1024 bytes")
	}
	var cfg channel.Config
	if len(req.Config) == 0 {
		errs.Add("config", "is required")
	} else if c, err := channel.DecodeConfig(req.Config); err != nil {
		if !addPrefixed(&errs, "config", err) {
			return ChannelView{}, err
		}
	} else {
		cfg = c
	}
	if req.MaxAttempts < 0 || req.MaxAttempts > 100 {
		errs.Add("max_attempts", "must be between 1 and 100 (0 means %d)", DefaultMaxAttempts)
	}
	if req.Secret != nil && len(*req.Secret) > 4096 {
		errs.Add("secret", "must be at most 4096 bytes")
	}
	if cfg.Kind == channel.KindWebhook && (create || req.Secret != nil) && (req.Secret == nil || len(*req.Secret) < 16) {
		errs.Add("secret", "a webhook channel needs a signing secret of at least 16 bytes")
	}
	if err := errs.Err(); err != nil {
		return ChannelView{}, err
	}
	// A chat URL is shown cut to its host (it is the credential), so a
	// client that sends back what it read keeps the stored one.
	if cfg.Chat != nil && !create {
		if cur, err := getChannel(s.txn(), req.Name); err == nil && cur.Config.Chat != nil && cfg.Chat.URL == cutURL(cur.Config.Chat.URL) {
			cfg.Chat.URL = cur.Config.Chat.URL
		}
	}
	c := Channel{Name: req.Name, Description: req.Description, Config: cfg, MaxAttempts: req.MaxAttempts, CreatedBy: actor}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	keep := req.Secret == nil && !create
	if req.Secret != nil && *req.Secret != "" {
		if s.d.Sealer == nil {
			return ChannelView{}, problem.Invalid("secret", "this controller has no keyring to keep channel secrets")
		}
		sealed, err := s.d.Sealer.Seal([]byte(*req.Secret), secretAAD(req.Name))
		if err != nil {
			return ChannelView{}, fmt.Errorf("seal channel secret: %w", err)
		}
		c.Secret = sealed
	}
	var out Channel
	err := state.ApplyOne(ctx, s.d.Applier, cmdChannelPut, channelPutPayload{Channel: c, Create: create, KeepSecret: keep, Revision: req.Revision}, &out)
	return viewChannel(&out), err
}

// DeleteChannel removes a channel no rule uses.
func (s *Service) DeleteChannel(ctx context.Context, name string) error {
	return state.ApplyOne(ctx, s.d.Applier, cmdChannelDelete, namePayload{Name: name}, nil)
}

// Channel reads one channel.
func (s *Service) Channel(name string) (ChannelView, error) {
	c, err := getChannel(s.txn(), name)
	if err != nil {
		return ChannelView{}, err
	}
	return viewChannel(c), nil
}

// Channels lists channels by name.
func (s *Service) Channels() ([]ChannelView, error) {
	out := []ChannelView{}
	err := s.each(tableChannels, func(obj any) { out = append(out, viewChannel(obj.(*Channel))) })
	return out, err
}

// TemplateRequest creates or replaces a template.
type TemplateRequest struct {
	tmpl.Template
	Description string  `json:"description"`
	Revision    *uint64 `json:"revision"`
}

func checkTemplate(ctx context.Context, req TemplateRequest) error {
	var errs problem.List
	checkName(&errs, "name", req.Name)
	if len(req.Description) > 1024 {
		errs.Add("description", "must be at most 1024 bytes")
	}
	if err := errs.Err(); err != nil {
		return err
	}
	_, err := tmpl.Validate(ctx, req.Template)
	return err
}

// PutTemplate validates (a trial render of every event the template is
// for) and stores a template.
func (s *Service) PutTemplate(ctx context.Context, req TemplateRequest, create bool) (Template, error) {
	if err := checkTemplate(ctx, req); err != nil {
		return Template{}, err
	}
	var out Template
	err := state.ApplyOne(ctx, s.d.Applier, cmdTemplatePut, templatePutPayload{
		Template: Template{Template: req.Template, Description: req.Description}, Create: create, Revision: req.Revision}, &out)
	return out, err
}

// DeleteTemplate removes a template no rule uses.
func (s *Service) DeleteTemplate(ctx context.Context, name string) error {
	return state.ApplyOne(ctx, s.d.Applier, cmdTemplateDelete, namePayload{Name: name}, nil)
}

// TemplateByName reads a stored template, or a built-in one named
// "builtin/<event>/<channel kind>".
func (s *Service) TemplateByName(name string) (Template, error) {
	if rest, ok := strings.CutPrefix(name, "builtin/"); ok {
		ev, kind, _ := strings.Cut(rest, "/")
		if !tmpl.EventType(ev).Valid() || !slices.Contains([]tmpl.ChannelKind{tmpl.ChannelEmail, tmpl.ChannelWebhook, tmpl.ChannelChat}, tmpl.ChannelKind(kind)) {
			return Template{}, problem.NotFound("template", name)
		}
		return Template{Template: tmpl.Builtin(tmpl.EventType(ev), tmpl.ChannelKind(kind)), Description: "built in"}, nil
	}
	t, err := getTemplate(s.txn(), name)
	if err != nil {
		return Template{}, err
	}
	return *t, nil
}

// Templates lists stored templates; builtins adds the built-in ones.
func (s *Service) Templates(builtins bool) ([]Template, error) {
	out := []Template{}
	err := s.each(tableTemplates, func(obj any) { out = append(out, *obj.(*Template)) })
	if builtins {
		for _, et := range tmpl.EventTypes() {
			for _, k := range []tmpl.ChannelKind{tmpl.ChannelEmail, tmpl.ChannelWebhook, tmpl.ChannelChat} {
				out = append(out, Template{Template: tmpl.Builtin(et, k), Description: "built in"})
			}
		}
	}
	return out, err
}

// PreviewRequest renders a template (stored or as sent) with the sample
// event of a type.
type PreviewRequest struct {
	Template tmpl.Template  `json:"template"`
	Event    tmpl.EventType `json:"event"`
}

// Preview renders without storing. Errors name field and line.
func (s *Service) Preview(ctx context.Context, req PreviewRequest) (tmpl.Rendered, error) {
	if req.Event == "" {
		if len(req.Template.Events) > 0 {
			req.Event = req.Template.Events[0]
		} else {
			req.Event = tmpl.EventRunFailed
		}
	}
	if !req.Event.Valid() {
		return tmpl.Rendered{}, problem.Invalid("event", "unknown event type %q; one of %s", req.Event, eventList())
	}
	return tmpl.Preview(ctx, req.Template, req.Event)
}

func eventList() string {
	var names []string
	for _, t := range tmpl.EventTypes() {
		names = append(names, string(t))
	}
	return strings.Join(names, ", ")
}

// RuleRequest creates or replaces a rule.
type RuleRequest struct {
	Rule
	Revision *uint64 `json:"revision"`
}

// PutRule stores a rule after checking it.
func (s *Service) PutRule(ctx context.Context, req RuleRequest, create bool) (Rule, error) {
	r := req.Rule
	var errs problem.List
	checkName(&errs, "name", r.Name)
	if len(r.Events) == 0 {
		errs.Add("events", "name at least one event type: %s", eventList())
	}
	for i, e := range r.Events {
		if !e.Valid() || e == tmpl.EventDigest {
			errs.Add(fieldIndex("events", i), "unknown event type %q; one of %s", e, eventList())
		}
	}
	if len(r.Channels) == 0 {
		errs.Add("channels", "name at least one channel")
	}
	for i, j := range r.Filter.Jobs {
		if _, err := matchPattern(j); err != nil {
			errs.Add(fieldIndex("filter.jobs", i), "bad pattern: %v", err)
		}
	}
	if r.Filter.MinSeverity != "" && !r.Filter.MinSeverity.Valid() {
		errs.Add("filter.min_severity", "must be info, warning or critical")
	}
	switch {
	case r.Throttle.Max < 0:
		errs.Add("throttle.max", "must not be negative")
	case r.Throttle.Max > 0 && r.Throttle.Window.Std() < time.Second:
		errs.Add("throttle.window", "must be at least 1s when throttle.max is set")
	case r.Throttle.Window.Std() > 24*time.Hour:
		errs.Add("throttle.window", "must be at most 24h")
	}
	if err := errs.Err(); err != nil {
		return Rule{}, err
	}
	slices.Sort(r.Events)
	r.Events = slices.Compact(r.Events)
	var out Rule
	err := state.ApplyOne(ctx, s.d.Applier, cmdRulePut, rulePutPayload{Rule: r, Create: create, Revision: req.Revision}, &out)
	return out, err
}

func matchPattern(p string) (bool, error) {
	if p == "" {
		return false, errors.New("is empty")
	}
	_, err := path.Match(p, "")
	return true, err
}

// DeleteRule removes a rule; events it held back go out as a digest.
func (s *Service) DeleteRule(ctx context.Context, name string) error {
	return state.ApplyOne(ctx, s.d.Applier, cmdRuleDelete, namePayload{Name: name}, nil)
}

// RuleByName reads one rule.
func (s *Service) RuleByName(name string) (Rule, error) {
	r, err := getRule(s.txn(), name)
	if err != nil {
		return Rule{}, err
	}
	return *r, nil
}

// Rules lists rules by name.
func (s *Service) Rules() ([]Rule, error) {
	out := []Rule{}
	err := s.each(tableRules, func(obj any) { out = append(out, *obj.(*Rule)) })
	return out, err
}

// Publish raises an event from outside an Apply (a leader change seen by
// the new leader, a threshold of failed logins).
func (s *Service) Publish(ctx context.Context, e tmpl.Event, m Match) error {
	if e.Cluster == "" {
		e.Cluster = s.cfg.Cluster
	}
	return state.ApplyOne(ctx, s.d.Applier, cmdEmit, emitPayload{Event: e, Match: m}, nil)
}

// TestRequest sends a sample event through one channel.
type TestRequest struct {
	Event    tmpl.EventType `json:"event"`
	Template string         `json:"template"`
}

// Test queues a one-try delivery of a sample event to a channel and
// returns it; the caller waits for its outcome with Delivery.
func (s *Service) Test(ctx context.Context, name string, req TestRequest) (Delivery, error) {
	if req.Event == "" {
		req.Event = tmpl.EventRunFailed
	}
	if !req.Event.Valid() || req.Event == tmpl.EventDigest {
		return Delivery{}, problem.Invalid("event", "unknown event type %q; one of %s", req.Event, eventList())
	}
	e := tmpl.Sample(req.Event)
	e.Cluster = s.cfg.Cluster
	e.Summary = "Test notification: " + e.Summary
	var out Delivery
	err := state.ApplyOne(ctx, s.d.Applier, cmdTest, testPayload{Channel: name, Template: req.Template, Event: e}, &out)
	return out, err
}

// WaitDelivery waits until a delivery is no longer pending (or ctx ends)
// and returns it.
func (s *Service) WaitDelivery(ctx context.Context, id string) (Delivery, error) {
	for {
		watch, obj, err := s.d.Store.ReadTxn().FirstWatch(tableDeliveries, "id", id)
		if err != nil {
			return Delivery{}, fmt.Errorf("read delivery %s: %w", id, err)
		}
		if obj == nil {
			return s.Delivery(ctx, id)
		}
		if d := obj.(*Delivery); d.State != StatePending {
			return *d, nil
		}
		select {
		case <-watch:
		case <-ctx.Done():
			return *obj.(*Delivery), ctx.Err()
		}
	}
}

// DeliveryFilter selects deliveries.
type DeliveryFilter struct {
	State   string
	Rule    string
	Channel string
	Limit   int
}

// Deliveries lists the deliveries still in the state (pending, dead and
// recently delivered), newest first, then, for delivered and dead ones,
// the history store's.
func (s *Service) Deliveries(ctx context.Context, f DeliveryFilter) ([]Delivery, error) {
	if f.Limit <= 0 || f.Limit > 1000 {
		f.Limit = 100
	}
	var out []Delivery
	seen := map[string]bool{}
	err := s.each(tableDeliveries, func(obj any) {
		d := obj.(*Delivery)
		if (f.State == "" || d.State == f.State) && (f.Rule == "" || d.Rule == f.Rule) && (f.Channel == "" || d.Channel == f.Channel) {
			out = append(out, *d)
			seen[d.ID] = true
		}
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Seq > out[j].Seq })
	if len(out) >= f.Limit || f.State == StatePending || s.d.History == nil {
		return trim(out, f.Limit), nil
	}
	fields := map[string]string{}
	for k, v := range map[string]string{"state": f.State, "rule": f.Rule, "channel": f.Channel} {
		if v != "" {
			fields[k] = v
		}
	}
	page, err := s.d.History.Query(ctx, history.Query{Kind: kindDelivery, Fields: fields, Limit: f.Limit})
	if err != nil {
		return nil, fmt.Errorf("read delivery history: %w", err)
	}
	for _, rec := range page.Records {
		var d Delivery
		if err := json.Unmarshal(rec.Data, &d); err != nil || seen[d.ID] {
			continue
		}
		out = append(out, d)
	}
	return trim(out, f.Limit), nil
}

func trim(ds []Delivery, n int) []Delivery {
	if ds == nil {
		return []Delivery{}
	}
	if len(ds) > n {
		return ds[:n]
	}
	return ds
}

// Delivery reads one delivery from the state or the history store.
func (s *Service) Delivery(ctx context.Context, id string) (Delivery, error) {
	d, err := getDelivery(s.txn(), id)
	if err == nil {
		return *d, nil
	}
	if !problem.Is(err, problem.KindNotFound) || s.d.History == nil {
		return Delivery{}, err
	}
	recs, herr := s.d.History.Tail(ctx, deliveryStream(id), 1)
	if herr != nil {
		return Delivery{}, fmt.Errorf("read delivery %s: %w", id, herr)
	}
	if len(recs) == 0 {
		return Delivery{}, err
	}
	var out Delivery
	if err := json.Unmarshal(recs[0].Data, &out); err != nil {
		return Delivery{}, fmt.Errorf("decode delivery %s: %w", id, err)
	}
	return out, nil
}

// Redeliver sends a dead (or delivered) delivery again, from attempt one.
// A delivery already moved to the history store is brought back first.
func (s *Service) Redeliver(ctx context.Context, id string) (Delivery, error) {
	if _, err := getDelivery(s.txn(), id); problem.Is(err, problem.KindNotFound) {
		old, err := s.Delivery(ctx, id)
		if err != nil {
			return Delivery{}, err
		}
		if err := state.ApplyOne(ctx, s.d.Applier, cmdRestore, restorePayload{Delivery: old}, nil); err != nil {
			return Delivery{}, err
		}
	}
	var out Delivery
	err := state.ApplyOne(ctx, s.d.Applier, cmdRedeliver, redeliverPayload{ID: id}, &out)
	return out, err
}

func (s *Service) txn() state.Reader { return s.d.Store.ReadTxn() }

func (s *Service) each(table string, fn func(any)) error {
	it, err := s.d.Store.ReadTxn().Get(table, "id")
	if err != nil {
		return fmt.Errorf("read %s: %w", table, err)
	}
	for obj := it.Next(); obj != nil; obj = it.Next() {
		fn(obj)
	}
	return nil
}

// addPrefixed adds a validation problem (or each of a list's) under
// prefix; false when err is not a validation problem.
func addPrefixed(l *problem.List, prefix string, err error) bool {
	p, ok := problem.As(err)
	if !ok || p.Kind != problem.KindInvalid {
		return false
	}
	items := []problem.Error{*p}
	if len(p.Details) > 0 {
		items = p.Details
	}
	for _, d := range items {
		field := prefix
		if d.Field != "" {
			field = prefix + "." + d.Field
		}
		l.Add(field, "%s", d.Message)
	}
	return true
}
