package inbound

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/opsconductor/opsconductor/controller/problem"
)

// clock is a settable clock for deterministic windows and buckets.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type secretMap map[string]string

func (m secretMap) Secret(_ context.Context, ref string) (string, error) {
	s, ok := m[ref]
	if !ok {
		return "", fmt.Errorf("no secret %q", ref)
	}
	return s, nil
}

// syncBuffer collects log output from the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// githubSignature computes X-Hub-Signature-256 the way GitHub documents it:
// "sha256=" + lower-case hex of HMAC-SHA256(key=secret, message=raw body).
func githubSignature(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// opsSignature computes our scheme independently of SignOpsConductor:
// HMAC-SHA256 of "<unix seconds>.<body>".
func opsSignature(secret string, ts time.Time, body []byte) (sig, stamp string) {
	stamp = strconv.FormatInt(ts.Unix(), 10)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(stamp + "." + string(body)))
	return "sha256=" + hex.EncodeToString(m.Sum(nil)), stamp
}

// statusOf maps Handle's errors the way the gateway does, for the test
// server.
func statusOf(err error) int {
	p, ok := problem.As(err)
	if !ok {
		return http.StatusInternalServerError
	}
	return map[problem.Kind]int{
		problem.KindInvalid:         http.StatusBadRequest,
		problem.KindUnauthenticated: http.StatusUnauthorized,
		problem.KindForbidden:       http.StatusForbidden,
		problem.KindConflict:        http.StatusConflict,
		problem.KindTooLarge:        http.StatusRequestEntityTooLarge,
		problem.KindUnsupported:     http.StatusUnsupportedMediaType,
		problem.KindRateLimited:     http.StatusTooManyRequests,
	}[p.Kind]
}

// env is a running test server: POST /hooks/{id} handles a delivery for
// the trigger of that ID and answers with the outcome or the problem.
type env struct {
	t       *testing.T
	clock   *clock
	logs    *syncBuffer
	h       *Handler
	srv     *httptest.Server
	mu      sync.Mutex
	trigger map[string]Trigger
	// last holds the last error Handle returned, for assertions on the
	// reason that the sender never sees.
	last error
}

type response struct {
	Status  int
	Outcome struct {
		Params     map[string]any `json:"params"`
		Skipped    bool           `json:"skipped"`
		DeliveryID string         `json:"delivery_id"`
	}
	Problem    problem.Error
	RetryAfter string
}

func newEnv(t *testing.T, secrets secretMap, triggers ...Trigger) *env {
	t.Helper()
	e := &env{t: t, clock: newClock(), logs: &syncBuffer{}, trigger: map[string]Trigger{}}
	for _, tr := range triggers {
		e.trigger[tr.ID] = tr
	}
	h, err := NewHandler(Config{
		Secrets: secrets,
		Now:     e.clock.Now,
		Logger:  slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	e.h = h
	mux := http.NewServeMux()
	mux.HandleFunc("POST /hooks/{id}", func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		tr, ok := e.trigger[r.PathValue("id")]
		e.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		out, err := e.h.Handle(r.Context(), tr, r)
		e.mu.Lock()
		e.last = err
		e.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if err != nil {
			p, _ := problem.As(err)
			if p == nil {
				p = problem.New(problem.KindInternal, "internal", "internal server error")
			}
			if p.RetryAfter > 0 {
				w.Header().Set("Retry-After", strconv.Itoa(p.RetryAfter))
			}
			w.WriteHeader(statusOf(err))
			_ = json.NewEncoder(w).Encode(p)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"params": out.Params, "skipped": out.Skipped, "delivery_id": out.DeliveryID})
	})
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	return e
}

func (e *env) lastErr() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.last
}

func (e *env) setTrigger(tr Trigger) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.trigger[tr.ID] = tr
}

// post sends body to the trigger's URL with the given headers.
func (e *env) post(path string, headers map[string]string, body []byte) response {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	r := response{Status: resp.StatusCode, RetryAfter: resp.Header.Get("Retry-After")}
	target := any(&r.Outcome)
	if resp.StatusCode != http.StatusOK {
		target = &r.Problem
	}
	if err := json.Unmarshal(raw, target); err != nil {
		e.t.Fatalf("decode %d response %q: %v", resp.StatusCode, raw, err)
	}
	return r
}

func mustStatus(t *testing.T, r response, want int) {
	t.Helper()
	if r.Status != want {
		t.Fatalf("status %d (%+v), want %d", r.Status, r.Problem, want)
	}
}
