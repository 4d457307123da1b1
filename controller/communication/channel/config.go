package channel

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/mail"
	"net/url"
	"strings"
	"time"

	"github.com/opsconductor/opsconductor/controller/problem"
)

// Kind names a channel type.
type Kind string

// Kinds are stored in replicated state: append, never rename.
const (
	KindEmail   Kind = "email"
	KindWebhook Kind = "webhook"
	KindChat    Kind = "chat"
)

// TLSMode says how an SMTP connection is protected.
type TLSMode string

// TLS modes for email channels.
const (
	// TLSStartTLS upgrades a plain connection with STARTTLS and refuses to
	// send when the server does not offer it (no silent downgrade).
	TLSStartTLS TLSMode = "starttls"
	// TLSImplicit speaks TLS from the first byte (SMTPS, usually port 465).
	TLSImplicit TLSMode = "implicit"
	// TLSNone sends in clear text; allowed only to a loopback relay, where
	// the mail leaves the host through a local MTA that does its own TLS.
	TLSNone TLSMode = "none"
)

// ChatFlavor names the incoming-webhook dialect of a chat service.
type ChatFlavor string

// Chat flavors.
const (
	FlavorSlack      ChatFlavor = "slack"
	FlavorMattermost ChatFlavor = "mattermost"
	FlavorTeams      ChatFlavor = "teams"
)

// Limits on configuration values. They keep one channel from holding a
// delivery worker for long or from fanning one event out to a mailing list.
const (
	DefaultTimeout   = 10 * time.Second
	MaxTimeout       = 2 * time.Minute
	MaxRecipients    = 100
	MaxHeaders       = 32
	maxHeaderValue   = 4096
	maxURLLength     = 2048
	maxTemplateName  = 128
	maxConfigBytes   = 64 << 10
	maxHostnameChars = 253
)

// Config is one channel's settings: exactly one of Email, Webhook and Chat is
// set, the one that Kind names. It holds no secret.
type Config struct {
	Kind    Kind           `json:"kind"`
	Email   *EmailConfig   `json:"email,omitempty"`
	Webhook *WebhookConfig `json:"webhook,omitempty"`
	Chat    *ChatConfig    `json:"chat,omitempty"`
}

// EmailConfig is an SMTP relay and the addresses of one mail channel. The
// password for Username is the channel's secret, passed to Send.
type EmailConfig struct {
	Host     string   `json:"host"`
	Port     int      `json:"port"`
	TLS      TLSMode  `json:"tls"`
	Username string   `json:"username,omitempty"`
	From     string   `json:"from"`
	To       []string `json:"to"`
	Cc       []string `json:"cc,omitempty"`
	// Template names the template that renders subject, text and HTML for
	// this channel; empty means the built-in one for the event. The
	// communication service renders it; Send receives the result.
	Template string   `json:"template,omitempty"`
	Timeout  Duration `json:"timeout,omitempty"`
}

// WebhookConfig is an HTTP endpoint that receives signed JSON. The HMAC key
// is the channel's secret, passed to Send.
type WebhookConfig struct {
	URL      string            `json:"url"`
	Headers  map[string]string `json:"headers,omitempty"`
	Template string            `json:"template,omitempty"`
	Timeout  Duration          `json:"timeout,omitempty"`
}

// ChatConfig is an incoming-webhook URL of a chat service. The URL itself is
// the credential for these services, so callers should treat it as sensitive
// when they show a channel.
type ChatConfig struct {
	Flavor   ChatFlavor `json:"flavor"`
	URL      string     `json:"url"`
	Template string     `json:"template,omitempty"`
	Timeout  Duration   `json:"timeout,omitempty"`
}

// Duration is a time.Duration written as text ("10s") in JSON.
type Duration time.Duration

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// MarshalJSON writes d as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// invalidDuration marks a timeout that did not parse. UnmarshalJSON keeps
// going with it so that Validate reports the problem under its field path
// (`webhook.timeout`), which encoding/json would not give an
// UnmarshalJSON error.
const invalidDuration = Duration(math.MinInt64)

// UnmarshalJSON reads a duration string such as "30s".
func (d *Duration) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		*d = invalidDuration
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		*d = invalidDuration
		return nil
	}
	*d = Duration(v)
	return nil
}

// Timeout returns the per-attempt timeout of the configured kind, or
// DefaultTimeout when none is set.
func (c Config) Timeout() time.Duration {
	var d Duration
	switch {
	case c.Kind == KindEmail && c.Email != nil:
		d = c.Email.Timeout
	case c.Kind == KindWebhook && c.Webhook != nil:
		d = c.Webhook.Timeout
	case c.Kind == KindChat && c.Chat != nil:
		d = c.Chat.Timeout
	}
	if d <= 0 {
		return DefaultTimeout
	}
	return d.Std()
}

// DecodeConfig reads a channel configuration from JSON (an API body or a
// stored record) and validates it. Unknown fields are refused so that a typo
// ("hots") is reported rather than ignored. Every problem is a
// problem.Invalid naming its field path.
func DecodeConfig(data []byte) (Config, error) {
	var c Config
	if len(data) > maxConfigBytes {
		return Config{}, problem.Invalid("", "channel configuration is %d bytes, more than the limit of %d", len(data), maxConfigBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Config{}, decodeProblem(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Config{}, problem.Invalid("", "channel configuration must be a single JSON object")
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// decodeProblem names the field a JSON decoding error is about, where the
// encoding/json error says so.
func decodeProblem(err error) error {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		return problem.Invalid(typeErr.Field, "must be a JSON %s, not %s", typeErr.Type.Kind(), typeErr.Value)
	}
	var syntaxErr *json.SyntaxError
	if errors.As(err, &syntaxErr) {
		return problem.Invalid("", "malformed JSON at byte %d: %v", syntaxErr.Offset, syntaxErr)
	}
	msg := err.Error()
	if field, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		return problem.Invalid(strings.Trim(field, `"`), "unknown field")
	}
	return problem.Invalid("", "%s", strings.TrimPrefix(msg, "json: "))
}

// Validate reports every problem with c at once, each naming its field path
// (`email.port`, `webhook.headers["Connection"]`).
func (c Config) Validate() error {
	var l problem.List
	set := 0
	for _, present := range []bool{c.Email != nil, c.Webhook != nil, c.Chat != nil} {
		if present {
			set++
		}
	}
	switch c.Kind {
	case KindEmail:
		if c.Email == nil {
			l.Add("email", "is required for a channel of kind email")
		} else {
			c.Email.validate(&l)
		}
	case KindWebhook:
		if c.Webhook == nil {
			l.Add("webhook", "is required for a channel of kind webhook")
		} else {
			c.Webhook.validate(&l)
		}
	case KindChat:
		if c.Chat == nil {
			l.Add("chat", "is required for a channel of kind chat")
		} else {
			c.Chat.validate(&l)
		}
	case "":
		l.Add("kind", "is required (email, webhook or chat)")
	default:
		l.Add("kind", "unknown kind %q (want email, webhook or chat)", c.Kind)
	}
	known := c.Kind == KindEmail || c.Kind == KindWebhook || c.Kind == KindChat
	if known && (set > 1 || (set == 1 && c.section(c.Kind) == nil)) {
		l.Add("kind", "only the %q section may be set for a channel of kind %q", c.Kind, c.Kind)
	}
	return l.Err()
}

func (c Config) section(k Kind) any {
	switch {
	case k == KindEmail && c.Email != nil:
		return c.Email
	case k == KindWebhook && c.Webhook != nil:
		return c.Webhook
	case k == KindChat && c.Chat != nil:
		return c.Chat
	}
	return nil
}

func (e *EmailConfig) validate(l *problem.List) {
	switch {
	case e.Host == "":
		l.Add("email.host", "is required")
	case len(e.Host) > maxHostnameChars || !validHost(e.Host):
		l.Add("email.host", "%q is not a host name or IP address", e.Host)
	}
	if e.Port < 1 || e.Port > 65535 {
		l.Add("email.port", "must be between 1 and 65535, not %d", e.Port)
	}
	switch e.TLS {
	case TLSStartTLS, TLSImplicit:
	case TLSNone:
		if e.Host != "" && !isLoopback(e.Host) {
			l.Add("email.tls", "\"none\" is allowed only for a loopback relay (localhost, 127.0.0.1, ::1), not %q", e.Host)
		}
	case "":
		l.Add("email.tls", "is required (starttls, implicit or none)")
	default:
		l.Add("email.tls", "unknown mode %q (want starttls, implicit or none)", e.TLS)
	}
	if strings.ContainsAny(e.Username, "\r\n\x00") {
		l.Add("email.username", "must not contain control characters")
	}
	if e.From == "" {
		l.Add("email.from", "is required")
	} else if err := checkAddress(e.From); err != nil {
		l.Add("email.from", "%v", err)
	}
	if len(e.To) == 0 {
		l.Add("email.to", "needs at least one recipient")
	}
	if n := len(e.To) + len(e.Cc); n > MaxRecipients {
		l.Add("email.to", "%d recipients with cc, more than the limit of %d", n, MaxRecipients)
	}
	for i, a := range e.To {
		if err := checkAddress(a); err != nil {
			l.Add(fmt.Sprintf("email.to[%d]", i), "%v", err)
		}
	}
	for i, a := range e.Cc {
		if err := checkAddress(a); err != nil {
			l.Add(fmt.Sprintf("email.cc[%d]", i), "%v", err)
		}
	}
	checkTemplateName(l, "email.template", e.Template)
	checkTimeout(l, "email.timeout", e.Timeout)
}

func (w *WebhookConfig) validate(l *problem.List) {
	checkURL(l, "webhook.url", w.URL)
	if len(w.Headers) > MaxHeaders {
		l.Add("webhook.headers", "%d headers, more than the limit of %d", len(w.Headers), MaxHeaders)
	}
	for _, name := range sortedKeys(w.Headers) {
		field := fmt.Sprintf("webhook.headers[%q]", name)
		if !validHeaderName(name) {
			l.Add(field, "is not a valid HTTP header name")
			continue
		}
		if reason := reservedHeader(name); reason != "" {
			l.Add(field, "may not be set: %s", reason)
			continue
		}
		if v := w.Headers[name]; len(v) > maxHeaderValue || !validHeaderValue(v) {
			l.Add(field, "value must be at most %d printable characters without line breaks", maxHeaderValue)
		}
	}
	checkTemplateName(l, "webhook.template", w.Template)
	checkTimeout(l, "webhook.timeout", w.Timeout)
}

func (c *ChatConfig) validate(l *problem.List) {
	switch c.Flavor {
	case FlavorSlack, FlavorMattermost, FlavorTeams:
	case "":
		l.Add("chat.flavor", "is required (slack, mattermost or teams)")
	default:
		l.Add("chat.flavor", "unknown flavor %q (want slack, mattermost or teams)", c.Flavor)
	}
	checkURL(l, "chat.url", c.URL)
	checkTemplateName(l, "chat.template", c.Template)
	checkTimeout(l, "chat.timeout", c.Timeout)
}

func checkURL(l *problem.List, field, raw string) {
	if raw == "" {
		l.Add(field, "is required")
		return
	}
	if len(raw) > maxURLLength {
		l.Add(field, "is longer than %d characters", maxURLLength)
		return
	}
	u, err := url.Parse(raw)
	if err != nil {
		l.Add(field, "is not a URL: %v", errors.Unwrap(err))
		return
	}
	switch u.Scheme {
	case "http", "https":
	default:
		l.Add(field, "scheme %q is not allowed (want http or https)", u.Scheme)
		return
	}
	if u.Host == "" || u.Hostname() == "" {
		l.Add(field, "has no host")
	}
	// Credentials in the URL would be shown wherever the channel is shown;
	// they belong in the channel's secret or a header.
	if u.User != nil {
		l.Add(field, "must not carry a user name or password")
	}
	if u.Fragment != "" {
		l.Add(field, "must not have a fragment")
	}
}

func checkTemplateName(l *problem.List, field, name string) {
	if name == "" {
		return
	}
	if len(name) > maxTemplateName {
		l.Add(field, "is longer than %d characters", maxTemplateName)
		return
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' || r == '/') {
			l.Add(field, "%q may contain only letters, digits, '-', '_', '.' and '/'", name)
			return
		}
	}
}

func checkTimeout(l *problem.List, field string, d Duration) {
	if d == invalidDuration {
		l.Add(field, "must be a duration such as \"30s\"")
		return
	}
	if d < 0 || d.Std() > MaxTimeout {
		l.Add(field, "must be between 0 (the default of %s) and %s, not %s", DefaultTimeout, MaxTimeout, d.Std())
	}
}

func checkAddress(a string) error {
	if strings.ContainsAny(a, "\r\n\x00") {
		return errors.New("must not contain control characters")
	}
	if _, err := mail.ParseAddress(a); err != nil {
		return fmt.Errorf("%q is not a mail address: %w", a, err)
	}
	return nil
}

func validHost(h string) bool {
	if net.ParseIP(h) != nil {
		return true
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}

func isLoopback(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// hopByHop are the headers that describe one connection, not the message
// (RFC 9110 §7.6.1), plus the ones net/http computes itself.
var hopByHop = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Authenticate": true, "Proxy-Authorization": true,
	"Proxy-Connection": true, "Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
	"Host": true, "Content-Length": true,
}

// reservedHeader explains why a custom header may not be set, or returns "".
func reservedHeader(name string) string {
	canon := canonicalHeader(name)
	switch {
	case hopByHop[canon]:
		return "it is a hop-by-hop or transport header"
	case strings.HasPrefix(canon, "X-Opsconductor-"):
		return "the X-OpsConductor- names are reserved for the signature, timestamp and event headers"
	case canon == "Idempotency-Key" || canon == "Content-Type":
		return "OpsConductor sets it on every delivery"
	}
	return ""
}

func canonicalHeader(name string) string {
	// http.CanonicalHeaderKey without importing net/http here.
	b := []byte(strings.ToLower(name))
	upper := true
	for i, c := range b {
		if upper && c >= 'a' && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
		upper = c == '-'
	}
	return string(b)
}

// validHeaderName reports whether name is an RFC 9110 token.
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validHeaderValue refuses control characters, which would let a value
// start a new header line.
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}
