package channel

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DefaultUserAgent is sent on every HTTP delivery unless Sender.UserAgent
// says otherwise.
const DefaultUserAgent = "OpsConductor-Notifier/1"

// maxRetryAfter bounds the wait a receiver can ask for, so that one odd
// Retry-After header cannot park a delivery for days.
const maxRetryAfter = time.Hour

// maxResponseKept is how much of a peer's answer goes into Result.Response.
const maxResponseKept = 512

// Sender makes single delivery attempts. It is safe for concurrent use; the
// HTTP client's connection pool is shared by all attempts, which is what lets
// one worker sustain hundreds of webhook deliveries a second.
type Sender struct {
	// HTTP posts webhooks and chat messages. It must not follow redirects
	// (NewSender's does not): a redirected POST either loses its body or
	// replays it somewhere the channel's owner did not name.
	HTTP *http.Client
	// SMTPTLS is the base TLS configuration for SMTP (nil: system roots,
	// TLS 1.2 or later). ServerName is always set to the channel's host.
	SMTPTLS *tls.Config
	// UserAgent for HTTP deliveries; empty means DefaultUserAgent.
	UserAgent string
	// Now stamps webhook timestamps; nil means time.Now.
	Now func() time.Time
}

// NewSender returns a Sender with its own HTTP transport (proxy from the
// environment, pooled keep-alive connections, no redirects).
func NewSender() *Sender {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 16
	return &Sender{HTTP: &http.Client{Transport: tr, CheckRedirect: noRedirect}}
}

func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// CloseIdle closes the kept-alive HTTP connections (and so their
// goroutines); the delivery worker calls it when it stops.
func (s *Sender) CloseIdle() {
	if s.HTTP != nil {
		s.HTTP.CloseIdleConnections()
	}
}

func (s *Sender) httpClient() *http.Client {
	if s.HTTP != nil {
		return s.HTTP
	}
	// A zero Sender shares the default transport's pool but, like
	// NewSender's, never follows a redirect.
	return &http.Client{Transport: http.DefaultTransport, CheckRedirect: noRedirect}
}

func (s *Sender) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Sender) userAgent() string {
	if s.UserAgent != "" {
		return s.UserAgent
	}
	return DefaultUserAgent
}

// Send makes one attempt to deliver m over the channel cfg describes, within
// the channel's timeout and ctx. secret is the SMTP password (email, when a
// username is set) or the HMAC key (webhook); chat ignores it. Send never
// retries: the Result says whether a retry may help.
func (s *Sender) Send(ctx context.Context, cfg Config, secret string, m Message) Result {
	start := time.Now()
	var r Result
	if err := cfg.Validate(); err != nil {
		r = Result{Err: fmt.Errorf("channel configuration: %w", err)}
	} else {
		ctx, cancel := context.WithTimeout(ctx, cfg.Timeout())
		switch cfg.Kind {
		case KindEmail:
			r = s.sendEmail(ctx, cfg.Email, secret, m)
		case KindWebhook:
			r = s.sendWebhook(ctx, cfg.Webhook, secret, m)
		case KindChat:
			r = s.sendChat(ctx, cfg.Chat, m)
		}
		cancel()
	}
	r.Duration = time.Since(start)
	return r
}

// webhookEnvelope is the body of a webhook whose message carries no JSON of
// its own.
type webhookEnvelope struct {
	Event      string `json:"event,omitempty"`
	DeliveryID string `json:"delivery_id,omitempty"`
	Subject    string `json:"subject,omitempty"`
	Text       string `json:"text,omitempty"`
}

func (s *Sender) sendWebhook(ctx context.Context, cfg *WebhookConfig, secret string, m Message) Result {
	if secret == "" {
		// An unsigned delivery cannot be told apart from a forged one;
		// the controller always keeps a secret for a webhook channel.
		return Result{Err: errors.New("webhook: the channel has no signing secret")}
	}
	if !validHeaderValue(m.Event) || !validHeaderValue(m.DeliveryID) {
		return Result{Err: errors.New("webhook: event or delivery ID contains control characters")}
	}
	body := []byte(m.JSON)
	if len(body) == 0 {
		var err error
		body, err = json.Marshal(webhookEnvelope{Event: m.Event, DeliveryID: m.DeliveryID, Subject: m.Subject, Text: m.Text})
		if err != nil {
			return Result{Err: fmt.Errorf("webhook: encode body: %w", err)}
		}
	} else if !json.Valid(body) {
		return Result{Err: errors.New("webhook: message body is not valid JSON")}
	}
	ts := strconv.FormatInt(s.now().Unix(), 10)
	h := http.Header{}
	for _, k := range sortedKeys(cfg.Headers) {
		h.Set(k, cfg.Headers[k])
	}
	h.Set(HeaderTimestamp, ts)
	h.Set(HeaderSignature, Sign(secret, ts, body))
	if m.DeliveryID != "" {
		h.Set(HeaderIdempotencyKey, m.DeliveryID)
	}
	if m.Event != "" {
		h.Set(HeaderEvent, m.Event)
	}
	return s.post(ctx, "webhook", cfg.URL, h, body)
}

func (s *Sender) sendChat(ctx context.Context, cfg *ChatConfig, m Message) Result {
	body, err := ChatPayload(cfg.Flavor, m)
	if err != nil {
		return Result{Err: fmt.Errorf("chat: %w", err)}
	}
	return s.post(ctx, "chat "+string(cfg.Flavor), cfg.URL, http.Header{}, body)
}

// post sends body and maps the answer: 2xx delivered; 408, 425, 429 and 5xx
// retryable (honouring Retry-After); other statuses, 3xx included, permanent.
func (s *Sender) post(ctx context.Context, what, target string, h http.Header, body []byte) Result {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return Result{Err: fmt.Errorf("%s: build request: %w", what, err)}
	}
	req.Header = h
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", s.userAgent())
	resp, err := s.httpClient().Do(req)
	if err != nil {
		// Connection refused, reset, DNS failure, TLS handshake, timeout:
		// all may pass. A bad certificate will not, but the dead letter
		// after the configured number of tries bounds the cost.
		return Result{Err: fmt.Errorf("%s: %w", what, redactURL(err)), Retryable: true}
	}
	defer resp.Body.Close()
	kept, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseKept))
	// Drain a little more so the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	r := Result{Code: resp.StatusCode, Response: strings.ToValidUTF8(string(kept), "")}
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		return r
	case c == http.StatusRequestTimeout, c == http.StatusTooEarly, c == http.StatusTooManyRequests, c >= 500:
		r.Retryable = true
		r.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), s.now())
	}
	r.Err = fmt.Errorf("%s: receiver answered %s", what, resp.Status)
	return r
}

// redactURL drops the URL from a *url.Error: chat webhook URLs carry their
// credential in the path, and errors end up in delivery records.
func redactURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("no answer within the timeout: %w", err)
	}
	return err
}

// parseRetryAfter reads delta-seconds or an HTTP date (RFC 9110 §10.2.3).
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0
		}
		if secs > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), maxRetryAfter)
}
