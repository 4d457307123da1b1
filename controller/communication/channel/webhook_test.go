package channel

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// delivery is what a receiver saw of one request.
type delivery struct {
	header http.Header
	body   []byte
	err    error // the receiver's signature check
}

// signedReceiver is a real HTTP receiver that checks every request the way
// the docs tell integrators to.
func signedReceiver(t *testing.T, secret string) (*httptest.Server, <-chan delivery) {
	t.Helper()
	got := make(chan delivery, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("read body: %v", err)
		}
		verr := VerifySignature(secret, r.Header.Get(HeaderTimestamp), body, r.Header.Get(HeaderSignature), time.Now(), 5*time.Minute)
		got <- delivery{header: r.Header.Clone(), body: body, err: verr}
		if verr != nil {
			http.Error(w, verr.Error(), http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

func webhookConfig(url string) Config {
	return Config{Kind: KindWebhook, Webhook: &WebhookConfig{URL: url, Headers: map[string]string{"X-Team": "platform"}}}
}

func TestWebhookReceiverVerifiesSignatureAndSeesIdempotencyKey(t *testing.T) {
	cases := []struct {
		name     string
		msg      Message
		wantBody string
	}{
		{name: "the message JSON is sent as the body",
			msg:      Message{JSON: json.RawMessage(`{"event":"run.failed","run":{"id":"r-1"}}`), DeliveryID: "dlv-1", Event: "run.failed"},
			wantBody: `{"event":"run.failed","run":{"id":"r-1"}}`},
		{name: "a message without JSON is sent as an envelope",
			msg:      Message{Subject: "Run failed", Text: "exit 2", DeliveryID: "dlv-2", Event: "run.failed"},
			wantBody: `{"event":"run.failed","delivery_id":"dlv-2","subject":"Run failed","text":"exit 2"}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv, got := signedReceiver(t, "whsec-1")
			s := newTestSender(t)
			r := s.Send(context.Background(), webhookConfig(srv.URL+"/hook"), "whsec-1", tc.msg)
			if r.Err != nil || r.Code != http.StatusAccepted || r.Response != `{"ok":true}` {
				t.Fatalf("Send = %+v, want 202 delivered", r)
			}
			d := <-got
			if d.err != nil {
				t.Fatalf("receiver refused the signature: %v", d.err)
			}
			if string(d.body) != tc.wantBody {
				t.Errorf("body = %s, want %s", d.body, tc.wantBody)
			}
			for h, want := range map[string]string{
				HeaderIdempotencyKey: tc.msg.DeliveryID,
				HeaderEvent:          "run.failed",
				"Content-Type":       "application/json",
				"User-Agent":         DefaultUserAgent,
				"X-Team":             "platform",
			} {
				if v := d.header.Get(h); v != want {
					t.Errorf("header %s = %q, want %q", h, v, want)
				}
			}
		})
	}
}

func TestWebhookWithTheWrongSecretIsRefusedByTheReceiver(t *testing.T) {
	srv, got := signedReceiver(t, "receiver-secret")
	r := newTestSender(t).Send(context.Background(), webhookConfig(srv.URL), "other-secret", Message{Text: "x", DeliveryID: "d"})
	if r.Code != http.StatusUnauthorized || r.Retryable || r.Err == nil {
		t.Errorf("Send = %+v, want a permanent 401", r)
	}
	if d := <-got; d.err != ErrSignatureMismatch {
		t.Errorf("receiver error = %v, want ErrSignatureMismatch", d.err)
	}
}

func TestWebhookStatusMapping(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name           string
		status         int
		retryAfter     string
		hang           bool
		wantCode       int
		wantOK         bool
		wantRetry      bool
		wantRetryAfter time.Duration
	}{
		{name: "200 is delivered", status: 200, wantCode: 200, wantOK: true},
		{name: "204 is delivered", status: 204, wantCode: 204, wantOK: true},
		{name: "429 with Retry-After seconds is retried after that wait", status: 429, retryAfter: "7",
			wantCode: 429, wantRetry: true, wantRetryAfter: 7 * time.Second},
		{name: "503 with a Retry-After date is retried after that date", status: 503,
			retryAfter: now.Add(90 * time.Second).Format(http.TimeFormat),
			wantCode:   503, wantRetry: true, wantRetryAfter: 90 * time.Second},
		{name: "429 with an absurd Retry-After waits at most an hour", status: 429, retryAfter: "99999999",
			wantCode: 429, wantRetry: true, wantRetryAfter: time.Hour},
		{name: "500 is retried", status: 500, wantCode: 500, wantRetry: true},
		{name: "408 is retried", status: 408, wantCode: 408, wantRetry: true},
		{name: "404 is permanent", status: 404, wantCode: 404},
		{name: "400 is permanent", status: 400, wantCode: 400},
		{name: "a redirect is not followed and is permanent", status: 302, wantCode: 302},
		{name: "no answer within the timeout is retried", hang: true, wantRetry: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var hits atomic.Int32
			release := make(chan struct{})
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				hits.Add(1)
				if tc.hang {
					// The server notices a client hanging up only once the
					// body is read; release frees the handler regardless.
					_, _ = io.Copy(io.Discard, r.Body)
					select {
					case <-r.Context().Done():
					case <-release:
					}
					return
				}
				if tc.retryAfter != "" {
					w.Header().Set("Retry-After", tc.retryAfter)
				}
				if tc.status == 302 {
					w.Header().Set("Location", "/elsewhere")
				}
				w.WriteHeader(tc.status)
			}))
			defer srv.Close()
			defer close(release)
			cfg := webhookConfig(srv.URL)
			cfg.Webhook.Timeout = Duration(200 * time.Millisecond)
			s := newTestSender(t)
			s.Now = func() time.Time { return now }
			r := s.Send(context.Background(), cfg, "k", Message{JSON: json.RawMessage(`{}`), DeliveryID: "d-1"})
			if r.OK() != tc.wantOK || r.Code != tc.wantCode || r.Retryable != tc.wantRetry || r.RetryAfter != tc.wantRetryAfter {
				t.Errorf("Send = ok %v code %d retryable %v retry-after %s (%v), want ok %v code %d retryable %v retry-after %s",
					r.OK(), r.Code, r.Retryable, r.RetryAfter, r.Err, tc.wantOK, tc.wantCode, tc.wantRetry, tc.wantRetryAfter)
			}
			if n := hits.Load(); n != 1 {
				t.Errorf("receiver saw %d requests, want exactly 1 (no retries, no redirects)", n)
			}
			if tc.hang && r.Duration > 5*time.Second {
				t.Errorf("attempt took %s despite a 200ms timeout", r.Duration)
			}
		})
	}
}

func TestWebhookSendRefusesWhatItCannotSign(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	defer srv.Close()
	cases := []struct {
		name   string
		secret string
		msg    Message
	}{
		{name: "an empty secret", secret: "", msg: Message{JSON: json.RawMessage(`{}`)}},
		{name: "a body that is not JSON", secret: "k", msg: Message{JSON: json.RawMessage(`{"a":`)}},
		{name: "an event name that would split a header", secret: "k", msg: Message{Event: "run.failed\r\nX-Evil: 1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newTestSender(t).Send(context.Background(), webhookConfig(srv.URL), tc.secret, tc.msg)
			if r.Err == nil || r.Retryable {
				t.Errorf("Send = %+v, want a permanent error", r)
			}
		})
	}
	if hits.Load() != 0 {
		t.Errorf("receiver saw %d requests, want none", hits.Load())
	}
}

func TestNetworkErrorsAreRetriedAndDoNotLeakTheURL(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	cfg := Config{Kind: KindChat, Chat: &ChatConfig{Flavor: FlavorSlack, URL: "http://" + addr + "/services/T000/B000/XXXXSECRETXXXX"}}
	r := newTestSender(t).Send(context.Background(), cfg, "", Message{Text: "hi"})
	if r.Err == nil || !r.Retryable || r.Code != 0 {
		t.Fatalf("Send = %+v, want a retryable network error", r)
	}
	if strings.Contains(r.Err.Error(), "XXXXSECRETXXXX") {
		t.Errorf("error %q contains the webhook URL's secret path", r.Err)
	}
}

func TestAnInvalidConfigIsAPermanentFailure(t *testing.T) {
	r := newTestSender(t).Send(context.Background(), Config{Kind: KindWebhook, Webhook: &WebhookConfig{URL: "ftp://x"}}, "k", Message{})
	if r.Err == nil || r.Retryable || !strings.Contains(r.Err.Error(), "webhook.url") {
		t.Errorf("Send = %+v, want a permanent error naming webhook.url", r)
	}
}

// BenchmarkWebhookDeliveries measures signed webhook deliveries to a local
// receiver that verifies each signature, one attempt after another as the
// delivery worker makes them. The target is ≥ 500/s.
func BenchmarkWebhookDeliveries(b *testing.B) {
	var bad atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if VerifySignature("bench-secret", r.Header.Get(HeaderTimestamp), body, r.Header.Get(HeaderSignature), time.Now(), time.Minute) != nil {
			bad.Add(1)
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	s := newTestSender(b)
	cfg := webhookConfig(srv.URL)
	msg := Message{JSON: json.RawMessage(`{"event":"run.failed","run":{"id":"r-1","job":"nightly-backup","status":"failed"}}`),
		DeliveryID: "dlv-bench", Event: "run.failed"}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		if r := s.Send(ctx, cfg, "bench-secret", msg); r.Err != nil {
			b.Fatalf("delivery failed: %v", r.Err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "deliveries/s")
	if bad.Load() != 0 {
		b.Fatalf("%d deliveries failed signature verification", bad.Load())
	}
}
