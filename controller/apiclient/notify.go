package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The notification API's documents (/api/v1/notifications), mirroring the
// controller's JSON. Durations are kept as the text the controller
// writes ("10s", "1m0s").

const notifyBase = "/api/v1/notifications"

// NotifyChannelConfig is a channel's settings: the section Kind names.
type NotifyChannelConfig struct {
	Kind    string               `json:"kind"`
	Email   *NotifyEmailConfig   `json:"email,omitempty"`
	Webhook *NotifyWebhookConfig `json:"webhook,omitempty"`
	Chat    *NotifyChatConfig    `json:"chat,omitempty"`
}

// NotifyEmailConfig is an SMTP relay and the addresses of a mail channel;
// the password is the channel's secret.
type NotifyEmailConfig struct {
	Host     string   `json:"host"`
	Port     int      `json:"port"`
	TLS      string   `json:"tls"`
	Username string   `json:"username,omitempty"`
	From     string   `json:"from"`
	To       []string `json:"to"`
	Cc       []string `json:"cc,omitempty"`
	Template string   `json:"template,omitempty"`
	Timeout  string   `json:"timeout,omitempty"`
}

// NotifyWebhookConfig is an endpoint that receives signed JSON; the HMAC
// key is the channel's secret.
type NotifyWebhookConfig struct {
	URL      string            `json:"url"`
	Headers  map[string]string `json:"headers,omitempty"`
	Template string            `json:"template,omitempty"`
	Timeout  string            `json:"timeout,omitempty"`
}

// NotifyChatConfig is a chat service's incoming webhook. The controller
// shows its URL cut to scheme://host/… (the URL is the credential).
type NotifyChatConfig struct {
	Flavor   string `json:"flavor"`
	URL      string `json:"url"`
	Template string `json:"template,omitempty"`
	Timeout  string `json:"timeout,omitempty"`
}

// NotifyChannel is a channel as the controller shows it: no secret.
type NotifyChannel struct {
	Name        string              `json:"name"`
	Description string              `json:"description,omitempty"`
	Kind        string              `json:"kind"`
	Config      NotifyChannelConfig `json:"config"`
	HasSecret   bool                `json:"has_secret"`
	MaxAttempts int                 `json:"max_attempts"`
	Revision    uint64              `json:"revision"`
	CreatedBy   string              `json:"created_by,omitempty"`
	CreatedAt   time.Time           `json:"created_at"`
	UpdatedAt   time.Time           `json:"updated_at"`
}

// NotifyChannelInput creates or replaces a channel. On replace a nil
// Secret keeps the stored one and "" removes it; Revision, when set, must
// be the stored one.
type NotifyChannelInput struct {
	Name        string              `json:"name"`
	Description string              `json:"description,omitempty"`
	Config      NotifyChannelConfig `json:"config"`
	Secret      *string             `json:"secret,omitempty"`
	MaxAttempts int                 `json:"max_attempts,omitempty"`
	Revision    *uint64             `json:"revision,omitempty"`
}

// Input returns the channel as an input to replace it with, at its
// revision, keeping its secret.
func (c NotifyChannel) Input() NotifyChannelInput {
	rev := c.Revision
	return NotifyChannelInput{Name: c.Name, Description: c.Description, Config: c.Config, MaxAttempts: c.MaxAttempts, Revision: &rev}
}

// NotifyTemplate is a stored or built-in template.
type NotifyTemplate struct {
	Name        string    `json:"name"`
	Channel     string    `json:"channel"`
	Events      []string  `json:"events,omitempty"`
	Subject     string    `json:"subject,omitempty"`
	Text        string    `json:"text,omitempty"`
	HTML        string    `json:"html,omitempty"`
	Body        string    `json:"body,omitempty"`
	Description string    `json:"description,omitempty"`
	Revision    uint64    `json:"revision"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// NotifyTemplateInput creates or replaces a template.
type NotifyTemplateInput struct {
	Name        string   `json:"name"`
	Channel     string   `json:"channel"`
	Events      []string `json:"events,omitempty"`
	Subject     string   `json:"subject,omitempty"`
	Text        string   `json:"text,omitempty"`
	HTML        string   `json:"html,omitempty"`
	Body        string   `json:"body,omitempty"`
	Description string   `json:"description,omitempty"`
	Revision    *uint64  `json:"revision,omitempty"`
}

// Input returns the template as an input to replace it with, at its
// revision.
func (t NotifyTemplate) Input() NotifyTemplateInput {
	rev := t.Revision
	return NotifyTemplateInput{Name: t.Name, Channel: t.Channel, Events: t.Events, Subject: t.Subject, Text: t.Text, HTML: t.HTML,
		Body: t.Body, Description: t.Description, Revision: &rev}
}

// NotifyPreviewTemplate is the template part of a preview request.
type NotifyPreviewTemplate struct {
	Name    string   `json:"name,omitempty"`
	Channel string   `json:"channel"`
	Events  []string `json:"events,omitempty"`
	Subject string   `json:"subject,omitempty"`
	Text    string   `json:"text,omitempty"`
	HTML    string   `json:"html,omitempty"`
	Body    string   `json:"body,omitempty"`
}

// NotifyRendered is a template rendered with a sample event; parts the
// template does not have are empty.
type NotifyRendered struct {
	Subject string          `json:"subject,omitempty"`
	Text    string          `json:"text,omitempty"`
	HTML    string          `json:"html,omitempty"`
	Body    json.RawMessage `json:"body,omitempty"`
}

// NotifyRuleFilter narrows a rule's events; every set field must match.
type NotifyRuleFilter struct {
	Jobs        []string          `json:"jobs,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
	Groups      []string          `json:"groups,omitempty"`
	MinSeverity string            `json:"min_severity,omitempty"`
}

// NotifyThrottle caps a rule at Max notifications per Window ("1m"); the
// rest are folded into a digest.
type NotifyThrottle struct {
	Max    int    `json:"max"`
	Window string `json:"window"`
}

// NotifyRule sends the events it matches to its channels.
type NotifyRule struct {
	Name        string           `json:"name"`
	Description string           `json:"description,omitempty"`
	Events      []string         `json:"events"`
	Filter      NotifyRuleFilter `json:"filter,omitzero"`
	Channels    []string         `json:"channels"`
	Template    string           `json:"template,omitempty"`
	Throttle    NotifyThrottle   `json:"throttle,omitzero"`
	Enabled     bool             `json:"enabled"`
	Revision    uint64           `json:"revision"`
	CreatedAt   time.Time        `json:"created_at"`
	UpdatedAt   time.Time        `json:"updated_at"`
}

// NotifyRuleInput creates or replaces a rule.
type NotifyRuleInput struct {
	Name        string           `json:"name"`
	Description string           `json:"description,omitempty"`
	Events      []string         `json:"events"`
	Filter      NotifyRuleFilter `json:"filter,omitzero"`
	Channels    []string         `json:"channels"`
	Template    string           `json:"template,omitempty"`
	Throttle    NotifyThrottle   `json:"throttle,omitzero"`
	Enabled     bool             `json:"enabled"`
	Revision    *uint64          `json:"revision,omitempty"`
}

// Input returns the rule as an input to replace it with, at its revision.
func (r NotifyRule) Input() NotifyRuleInput {
	rev := r.Revision
	return NotifyRuleInput{Name: r.Name, Description: r.Description, Events: r.Events, Filter: r.Filter, Channels: r.Channels,
		Template: r.Template, Throttle: r.Throttle, Enabled: r.Enabled, Revision: &rev}
}

// NotifyEvent is the event a delivery carries. The fields every event has
// are decoded; the whole document is kept and written back as received.
type NotifyEvent struct {
	ID       string    `json:"id"`
	Type     string    `json:"type"`
	Time     time.Time `json:"time"`
	Severity string    `json:"severity"`
	Summary  string    `json:"summary"`
	raw      json.RawMessage
}

// UnmarshalJSON decodes the common fields and keeps the document.
func (e *NotifyEvent) UnmarshalJSON(b []byte) error {
	type plain NotifyEvent
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*e = NotifyEvent(p)
	e.raw = bytes.Clone(b)
	return nil
}

// MarshalJSON writes the document as received.
func (e NotifyEvent) MarshalJSON() ([]byte, error) {
	if len(e.raw) > 0 {
		return e.raw, nil
	}
	type plain NotifyEvent
	return json.Marshal(plain(e))
}

// NotifyAttempt is one try of a delivery.
type NotifyAttempt struct {
	At       time.Time `json:"at"`
	Code     int       `json:"code,omitempty"`
	Error    string    `json:"error,omitempty"`
	Response string    `json:"response,omitempty"`
	Duration string    `json:"duration"`
}

// Delivery states.
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryDead      = "dead"
)

// NotifyDelivery is one notification to one channel.
type NotifyDelivery struct {
	ID            string          `json:"id"`
	Rule          string          `json:"rule,omitempty"`
	Channel       string          `json:"channel"`
	Template      string          `json:"template,omitempty"`
	Event         NotifyEvent     `json:"event"`
	Test          bool            `json:"test,omitempty"`
	State         string          `json:"state"`
	Attempts      int             `json:"attempts"`
	MaxAttempts   int             `json:"max_attempts"`
	NextAttemptAt time.Time       `json:"next_attempt_at"`
	LastError     string          `json:"last_error,omitempty"`
	LastCode      int             `json:"last_code,omitempty"`
	History       []NotifyAttempt `json:"history,omitempty"`
	CreatedAt     time.Time       `json:"created_at"`
	UpdatedAt     time.Time       `json:"updated_at"`
	FinishedAt    *time.Time      `json:"finished_at,omitempty"`
	Round         int             `json:"round,omitempty"`
	Seq           uint64          `json:"seq"`
}

// NotifyDeliveryFilter selects deliveries; zero fields do not filter.
type NotifyDeliveryFilter struct {
	State, Rule, Channel string
	Limit                int
}

// NotifyEventType is one event type a rule can name, with the sample
// event templates are checked and previewed with.
type NotifyEventType struct {
	Type   string          `json:"type"`
	Sample json.RawMessage `json:"sample"`
}

func notifyPath(kind, name string) string {
	return notifyBase + "/" + kind + "/" + url.PathEscape(name)
}

// templatePath escapes each segment of a template name: built-in ones are
// "builtin/<event>/<kind>".
func templatePath(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return notifyBase + "/templates/" + strings.Join(parts, "/")
}

// NotifyEventTypes lists the event types rules can name.
func (c *Client) NotifyEventTypes(ctx context.Context) ([]NotifyEventType, error) {
	return list[NotifyEventType](ctx, c, notifyBase+"/events")
}

// ListNotifyChannels returns every channel, by name.
func (c *Client) ListNotifyChannels(ctx context.Context) ([]NotifyChannel, error) {
	return list[NotifyChannel](ctx, c, notifyBase+"/channels")
}

// GetNotifyChannel returns one channel.
func (c *Client) GetNotifyChannel(ctx context.Context, name string) (NotifyChannel, error) {
	return call[NotifyChannel](ctx, c, http.MethodGet, notifyPath("channels", name), nil)
}

// CreateNotifyChannel stores a new channel.
func (c *Client) CreateNotifyChannel(ctx context.Context, in NotifyChannelInput) (NotifyChannel, error) {
	return call[NotifyChannel](ctx, c, http.MethodPost, notifyBase+"/channels", in)
}

// UpdateNotifyChannel replaces a channel.
func (c *Client) UpdateNotifyChannel(ctx context.Context, name string, in NotifyChannelInput) (NotifyChannel, error) {
	return call[NotifyChannel](ctx, c, http.MethodPut, notifyPath("channels", name), in)
}

// DeleteNotifyChannel deletes a channel no rule uses.
func (c *Client) DeleteNotifyChannel(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, notifyPath("channels", name), nil, nil)
}

// NotifyTestInput chooses the sample event (default run.failed) and the
// template of a channel test.
type NotifyTestInput struct {
	Event    string `json:"event,omitempty"`
	Template string `json:"template,omitempty"`
}

// TestNotifyChannel sends a sample event through a channel. With wait
// the controller answers once the single attempt is over (or after 30 s,
// with the delivery still pending); without, at once.
func (c *Client) TestNotifyChannel(ctx context.Context, name string, in NotifyTestInput, wait bool) (NotifyDelivery, error) {
	return call[NotifyDelivery](ctx, c, http.MethodPost, notifyPath("channels", name)+"/test?wait="+strconv.FormatBool(wait), in)
}

// ListNotifyTemplates returns the stored templates and, with builtin, the
// built-in ones ("builtin/<event>/<kind>").
func (c *Client) ListNotifyTemplates(ctx context.Context, builtin bool) ([]NotifyTemplate, error) {
	var out items[NotifyTemplate]
	path := notifyBase + "/templates"
	if builtin {
		path += "?builtin=true"
	}
	err := c.do(ctx, http.MethodGet, path, nil, &out)
	return out.Items, err
}

// GetNotifyTemplate returns a stored or built-in template.
func (c *Client) GetNotifyTemplate(ctx context.Context, name string) (NotifyTemplate, error) {
	return call[NotifyTemplate](ctx, c, http.MethodGet, templatePath(name), nil)
}

// CreateNotifyTemplate validates (a trial render) and stores a template.
func (c *Client) CreateNotifyTemplate(ctx context.Context, in NotifyTemplateInput) (NotifyTemplate, error) {
	return call[NotifyTemplate](ctx, c, http.MethodPost, notifyBase+"/templates", in)
}

// UpdateNotifyTemplate validates and replaces a template.
func (c *Client) UpdateNotifyTemplate(ctx context.Context, name string, in NotifyTemplateInput) (NotifyTemplate, error) {
	return call[NotifyTemplate](ctx, c, http.MethodPut, templatePath(name), in)
}

// DeleteNotifyTemplate deletes a template no rule uses.
func (c *Client) DeleteNotifyTemplate(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, templatePath(name), nil, nil)
}

// PreviewNotifyTemplate renders a template with the sample of event (""
// means the template's first event, else run.failed). A template error is
// an *Error whose details name field and line ("line 3: …").
func (c *Client) PreviewNotifyTemplate(ctx context.Context, t NotifyPreviewTemplate, event string) (NotifyRendered, error) {
	var out NotifyRendered
	in := struct {
		Template NotifyPreviewTemplate `json:"template"`
		Event    string                `json:"event,omitempty"`
	}{t, event}
	err := c.do(ctx, http.MethodPost, notifyBase+"/templates/preview", in, &out)
	return out, err
}

// ListNotifyRules returns every rule, by name.
func (c *Client) ListNotifyRules(ctx context.Context) ([]NotifyRule, error) {
	return list[NotifyRule](ctx, c, notifyBase+"/rules")
}

// GetNotifyRule returns one rule.
func (c *Client) GetNotifyRule(ctx context.Context, name string) (NotifyRule, error) {
	return call[NotifyRule](ctx, c, http.MethodGet, notifyPath("rules", name), nil)
}

// CreateNotifyRule stores a new rule.
func (c *Client) CreateNotifyRule(ctx context.Context, in NotifyRuleInput) (NotifyRule, error) {
	return call[NotifyRule](ctx, c, http.MethodPost, notifyBase+"/rules", in)
}

// UpdateNotifyRule replaces a rule.
func (c *Client) UpdateNotifyRule(ctx context.Context, name string, in NotifyRuleInput) (NotifyRule, error) {
	return call[NotifyRule](ctx, c, http.MethodPut, notifyPath("rules", name), in)
}

// DeleteNotifyRule deletes a rule; events it held back go out as a digest.
func (c *Client) DeleteNotifyRule(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, notifyPath("rules", name), nil, nil)
}

// ListNotifyDeliveries returns deliveries, newest first.
func (c *Client) ListNotifyDeliveries(ctx context.Context, f NotifyDeliveryFilter) ([]NotifyDelivery, error) {
	q := url.Values{}
	for k, v := range map[string]string{"state": f.State, "rule": f.Rule, "channel": f.Channel} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	path := notifyBase + "/deliveries"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	return list[NotifyDelivery](ctx, c, path)
}

// GetNotifyDelivery returns one delivery with its attempt history.
func (c *Client) GetNotifyDelivery(ctx context.Context, id string) (NotifyDelivery, error) {
	return call[NotifyDelivery](ctx, c, http.MethodGet, notifyPath("deliveries", id), nil)
}

// RedeliverNotify sends a finished delivery again, from attempt one.
func (c *Client) RedeliverNotify(ctx context.Context, id string) (NotifyDelivery, error) {
	return call[NotifyDelivery](ctx, c, http.MethodPost, notifyPath("deliveries", id)+"/redeliver", nil)
}

// call makes one request and decodes its JSON answer into a T.
func call[T any](ctx context.Context, c *Client, method, path string, in any) (T, error) {
	var out T
	err := c.do(ctx, method, path, in, &out)
	return out, err
}

// list reads a {"items": [...]} answer.
func list[T any](ctx context.Context, c *Client, path string) ([]T, error) {
	out, err := call[items[T]](ctx, c, http.MethodGet, path, nil)
	return out.Items, err
}
