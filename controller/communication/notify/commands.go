package notify

import (
	"strings"
	"time"

	"github.com/opsconductor/opsconductor/controller/communication/channel"
	"github.com/opsconductor/opsconductor/controller/communication/tmpl"
	"github.com/opsconductor/opsconductor/controller/keyring"
	"github.com/opsconductor/opsconductor/controller/problem"
	"github.com/opsconductor/opsconductor/controller/state"
)

type channelPutPayload struct {
	Channel Channel `json:"channel"`
	Create  bool    `json:"create"`
	// KeepSecret keeps the stored secret when the request sent none.
	KeepSecret bool    `json:"keep_secret"`
	Revision   *uint64 `json:"revision,omitempty"`
}

func applyChannelPut(ctx *state.ApplyContext, p channelPutPayload) (any, error) {
	c := p.Channel
	before, err := getChannel(ctx.Txn, c.Name)
	if err != nil && !problem.Is(err, problem.KindNotFound) {
		return nil, err
	}
	if before != nil && p.Create {
		return nil, problem.New(problem.KindConflict, "channel_exists", "channel %s already exists", c.Name)
	}
	if before == nil && !p.Create {
		return nil, problem.NotFound("channel", c.Name)
	}
	var have uint64
	if before != nil {
		have = before.Revision
	}
	if err := revisionCheck("channel", c.Name, have, before != nil, p.Revision); err != nil {
		return nil, err
	}
	c.CreatedAt, c.UpdatedAt, c.Revision = ctx.Time, ctx.Time, have+1
	if before != nil {
		c.CreatedAt, c.CreatedBy = before.CreatedAt, before.CreatedBy
		if p.KeepSecret {
			c.Secret = before.Secret
		}
	}
	// The sender signs every webhook: one without a key could only fail.
	if c.Config.Kind == channel.KindWebhook && c.Secret.IsZero() {
		return nil, problem.Invalid("secret", "a webhook channel needs a signing secret of at least 16 bytes")
	}
	if err := ctx.Txn.Insert(tableChannels, &c); err != nil {
		return nil, err
	}
	return c, nil
}

type namePayload struct {
	Name string `json:"name"`
}

func applyChannelDelete(ctx *state.ApplyContext, p namePayload) (any, error) {
	c, err := getChannel(ctx.Txn, p.Name)
	if err != nil {
		return nil, err
	}
	users, err := rulesUsing(ctx.Txn, func(r *Rule) bool {
		for _, ch := range r.Channels {
			if ch == p.Name {
				return true
			}
		}
		return false
	})
	if err != nil {
		return nil, err
	}
	if len(users) > 0 {
		return nil, problem.New(problem.KindConflict, "channel_in_use", "channel %s is used by rule %s: change the rules first", p.Name, strings.Join(users, ", "))
	}
	return nil, ctx.Txn.Delete(tableChannels, c)
}

type channelRewrapPayload struct {
	Name   string         `json:"name"`
	From   string         `json:"from"`
	Sealed keyring.Sealed `json:"sealed"`
}

func applyChannelRewrap(ctx *state.ApplyContext, p channelRewrapPayload) (any, error) {
	before, err := getChannel(ctx.Txn, p.Name)
	if err != nil {
		return nil, err
	}
	if before.Secret.KeyID != p.From {
		return nil, problem.New(problem.KindConflict, "rewrapped", "channel %s is no longer under key %s", p.Name, p.From)
	}
	c := *before
	c.Secret = p.Sealed
	return nil, ctx.Txn.Insert(tableChannels, &c)
}

type templatePutPayload struct {
	Template Template `json:"template"`
	Create   bool     `json:"create"`
	Revision *uint64  `json:"revision,omitempty"`
}

func applyTemplatePut(ctx *state.ApplyContext, p templatePutPayload) (any, error) {
	t := p.Template
	before, err := getTemplate(ctx.Txn, t.Name)
	if err != nil && !problem.Is(err, problem.KindNotFound) {
		return nil, err
	}
	if before != nil && p.Create {
		return nil, problem.New(problem.KindConflict, "template_exists", "template %s already exists", t.Name)
	}
	var have uint64
	if before != nil {
		have = before.Revision
	}
	if err := revisionCheck("template", t.Name, have, before != nil, p.Revision); err != nil {
		return nil, err
	}
	t.CreatedAt, t.UpdatedAt, t.Revision = ctx.Time, ctx.Time, have+1
	if before != nil {
		t.CreatedAt = before.CreatedAt
	}
	if err := ctx.Txn.Insert(tableTemplates, &t); err != nil {
		return nil, err
	}
	return t, nil
}

func applyTemplateDelete(ctx *state.ApplyContext, p namePayload) (any, error) {
	t, err := getTemplate(ctx.Txn, p.Name)
	if err != nil {
		return nil, err
	}
	users, err := rulesUsing(ctx.Txn, func(r *Rule) bool { return r.Template == p.Name })
	if err != nil {
		return nil, err
	}
	if len(users) > 0 {
		return nil, problem.New(problem.KindConflict, "template_in_use", "template %s is used by rule %s: change the rules first", p.Name, strings.Join(users, ", "))
	}
	return nil, ctx.Txn.Delete(tableTemplates, t)
}

type rulePutPayload struct {
	Rule     Rule    `json:"rule"`
	Create   bool    `json:"create"`
	Revision *uint64 `json:"revision,omitempty"`
}

func applyRulePut(ctx *state.ApplyContext, p rulePutPayload) (any, error) {
	r := p.Rule
	var errs problem.List
	for i, name := range r.Channels {
		if _, err := getChannel(ctx.Txn, name); err != nil {
			errs.Add(fieldIndex("channels", i), "unknown channel %q", name)
		}
	}
	if r.Template != "" {
		if _, err := getTemplate(ctx.Txn, r.Template); err != nil {
			errs.Add("template", "unknown template %q", r.Template)
		}
	}
	if err := errs.Err(); err != nil {
		return nil, err
	}
	before, err := getRule(ctx.Txn, r.Name)
	if err != nil && !problem.Is(err, problem.KindNotFound) {
		return nil, err
	}
	if before != nil && p.Create {
		return nil, problem.New(problem.KindConflict, "rule_exists", "rule %s already exists", r.Name)
	}
	var have uint64
	if before != nil {
		have = before.Revision
	}
	if err := revisionCheck("rule", r.Name, have, before != nil, p.Revision); err != nil {
		return nil, err
	}
	r.CreatedAt, r.UpdatedAt, r.Revision = ctx.Time, ctx.Time, have+1
	if before != nil {
		r.CreatedAt = before.CreatedAt
	}
	if err := ctx.Txn.Insert(tableRules, &r); err != nil {
		return nil, err
	}
	return r, nil
}

func applyRuleDelete(ctx *state.ApplyContext, p namePayload) (any, error) {
	r, err := getRule(ctx.Txn, p.Name)
	if err != nil {
		return nil, err
	}
	// Events already held back still reach the rule's channels.
	if row, err := getThrottle(ctx.Txn, p.Name); err != nil {
		return nil, err
	} else if row != nil {
		if err := flushDigest(ctx, r, row); err != nil {
			return nil, err
		}
	}
	return nil, ctx.Txn.Delete(tableRules, r)
}

type emitPayload struct {
	Event tmpl.Event `json:"event"`
	Match Match      `json:"match"`
}

func applyEmit(ctx *state.ApplyContext, p emitPayload) (any, error) {
	if !p.Event.Type.Valid() || p.Event.Type == tmpl.EventDigest {
		return nil, problem.Invalid("event.type", "unknown event type %q", p.Event.Type)
	}
	return nil, Emit(ctx, p.Event, p.Match)
}

type testPayload struct {
	Channel  string     `json:"channel"`
	Template string     `json:"template,omitempty"`
	Event    tmpl.Event `json:"event"`
}

func applyTest(ctx *state.ApplyContext, p testPayload) (any, error) {
	ch, err := getChannel(ctx.Txn, p.Channel)
	if err != nil {
		return nil, err
	}
	if p.Template != "" {
		if _, err := getTemplate(ctx.Txn, p.Template); err != nil {
			return nil, problem.Invalid("template", "unknown template %q", p.Template)
		}
	}
	n, err := next(ctx.Txn, "event")
	if err != nil {
		return nil, err
	}
	e := p.Event
	e.ID, e.Time = "evt_test_"+itoa(ctx.Index)+"_"+itoa(n), ctx.Time
	// A test delivery is tried once: its point is the answer, now.
	d := &Delivery{Channel: ch.Name, Template: p.Template, Event: tmpl.Bound(e), Test: true, MaxAttempts: 1}
	if err := insertDelivery(ctx, d); err != nil {
		return nil, err
	}
	return *d, nil
}

// result is one attempt's outcome as the leader's worker saw it.
type result struct {
	ID string `json:"id"`
	// After is the attempt count the worker read; a result for a delivery
	// that moved on meanwhile (redelivered, tried by another leader) is
	// dropped.
	After   int     `json:"after"`
	Attempt Attempt `json:"attempt"`
	OK      bool    `json:"ok"`
	// Retryable failures wait until NextAttemptAt (backoff with jitter,
	// chosen by the worker so that Apply stays deterministic).
	Retryable     bool      `json:"retryable"`
	NextAttemptAt time.Time `json:"next_attempt_at"`
}

type resultsPayload struct {
	Results []result `json:"results"`
}

func applyResults(ctx *state.ApplyContext, p resultsPayload) (any, error) {
	applied := 0
	for _, r := range p.Results {
		before, err := getDelivery(ctx.Txn, r.ID)
		if problem.Is(err, problem.KindNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if before.State != StatePending || before.Attempts != r.After {
			continue
		}
		d := before.clone()
		d.Attempts++
		d.UpdatedAt = ctx.Time
		d.LastCode, d.LastError = r.Attempt.Code, r.Attempt.Error
		d.History = append(d.History, r.Attempt)
		if len(d.History) > MaxHistory {
			d.History = d.History[len(d.History)-MaxHistory:]
		}
		switch {
		case r.OK:
			d.State, d.LastError = StateDelivered, ""
			at := ctx.Time
			d.FinishedAt = &at
		case r.Retryable && d.Attempts < d.MaxAttempts:
			d.NextAttemptAt = r.NextAttemptAt
		default:
			d.State = StateDead
			at := ctx.Time
			d.FinishedAt = &at
		}
		if err := ctx.Txn.Insert(tableDeliveries, d); err != nil {
			return nil, err
		}
		applied++
	}
	return applied, nil
}

type redeliverPayload struct {
	ID string `json:"id"`
}

func applyRedeliver(ctx *state.ApplyContext, p redeliverPayload) (any, error) {
	before, err := getDelivery(ctx.Txn, p.ID)
	if err != nil {
		return nil, err
	}
	if before.State == StatePending {
		return nil, problem.New(problem.KindConflict, "delivery_pending", "delivery %s is still pending (attempt %d of %d)", p.ID, before.Attempts+1, before.MaxAttempts)
	}
	d := before.clone()
	d.State, d.Attempts, d.FinishedAt = StatePending, 0, nil
	d.Round++
	d.NextAttemptAt, d.UpdatedAt = ctx.Time, ctx.Time
	if err := ctx.Txn.Insert(tableDeliveries, d); err != nil {
		return nil, err
	}
	return *d, nil
}

type archivePayload struct {
	IDs []string `json:"ids"`
}

// applyArchive drops finished deliveries whose history record the
// leader has stored.
func applyArchive(ctx *state.ApplyContext, p archivePayload) (any, error) {
	n := 0
	for _, id := range p.IDs {
		d, err := getDelivery(ctx.Txn, id)
		if problem.Is(err, problem.KindNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if d.State == StatePending {
			continue
		}
		if err := ctx.Txn.Delete(tableDeliveries, d); err != nil {
			return nil, err
		}
		n++
	}
	return n, nil
}

type digestFlushPayload struct {
	Rule        string    `json:"rule"`
	WindowStart time.Time `json:"window_start"`
}

func applyDigestFlush(ctx *state.ApplyContext, p digestFlushPayload) (any, error) {
	row, err := getThrottle(ctx.Txn, p.Rule)
	if err != nil || row == nil || !row.WindowStart.Equal(p.WindowStart) {
		return nil, err
	}
	if ctx.Time.Before(row.WindowStart.Add(row.Window.Std())) {
		return nil, nil
	}
	r, err := getRule(ctx.Txn, p.Rule)
	if err != nil {
		return nil, err
	}
	return nil, flushDigest(ctx, r, row)
}
