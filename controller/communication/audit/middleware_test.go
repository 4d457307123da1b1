package audit

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// fakeAppender records entries, or fails with err.
type fakeAppender struct {
	mu      sync.Mutex
	entries []Entry
	err     error
}

func (f *fakeAppender) Append(ctx context.Context, e Entry) (Entry, error) {
	if ctx.Err() != nil {
		return Entry{}, ctx.Err()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return Entry{}, f.err
	}
	f.entries = append(f.entries, e)
	return e, nil
}

func TestMiddleware(t *testing.T) {
	var ran sync.Map // paths whose handler ran
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ran.Store(r.URL.Path, true)
		switch r.URL.Path {
		case "/forbidden":
			http.Error(w, "no", http.StatusForbidden)
		case "/broken":
			http.Error(w, "boom", http.StatusInternalServerError)
		default:
			w.Header().Set("X-Done", "yes")
			w.WriteHeader(http.StatusCreated)
			_, _ = io.WriteString(w, `{"id":"u1"}`)
		}
	})
	describe := func(r *http.Request, _ int) (Entry, bool) {
		if r.URL.Path == "/skip" {
			return Entry{}, false
		}
		return Entry{Actor: "alice", ActorType: ActorUser, Action: "user.create", Resource: r.URL.Path}, true
	}
	tests := []struct {
		name        string
		method      string
		path        string
		appendErr   error
		readyErr    error
		wantStatus  int
		wantBody    string
		wantOutcome string // "" = no entry
	}{
		{"a successful mutation is recorded before its response is sent", "POST", "/users", nil, nil, 201, `{"id":"u1"}`, OutcomeSuccess},
		{"a forbidden mutation is recorded as denied", "DELETE", "/forbidden", nil, nil, 403, "no\n", OutcomeDenied},
		{"a failed mutation is recorded as a failure", "PUT", "/broken", nil, nil, 500, "boom\n", OutcomeFailure},
		{"a read is not recorded", "GET", "/users", nil, nil, 201, `{"id":"u1"}`, ""},
		{"a request Describe skips is not recorded", "POST", "/skip", nil, nil, 201, `{"id":"u1"}`, ""},
		{"a client that hung up does not take the entry with it", "POST", "/gone", nil, nil, 201, `{"id":"u1"}`, OutcomeSuccess},
		{"a mutation whose entry cannot be recorded is not acknowledged", "POST", "/users", errors.New("disk full"), nil, 503,
			"the audit log cannot record this request\n", ""},
		{"a mutation while the store is known to be down is refused before it runs", "POST", "/users", nil, errors.New("store unreachable"), 503,
			"the audit log cannot record this request\n", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			app := &fakeAppender{err: tc.appendErr}
			ready := func(context.Context) error { return tc.readyErr }
			h := Middleware(MiddlewareConfig{Log: app, Describe: describe, Ready: ready})(handler)
			ran.Delete(tc.path)
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(tc.method, tc.path, strings.NewReader("{}"))
			if tc.path == "/gone" {
				ctx, cancel := context.WithCancel(req.Context())
				cancel()
				req = req.WithContext(ctx)
			}
			h.ServeHTTP(rec, req)
			if rec.Code != tc.wantStatus || rec.Body.String() != tc.wantBody {
				t.Fatalf("response %d %q, want %d %q", rec.Code, rec.Body.String(), tc.wantStatus, tc.wantBody)
			}
			if tc.appendErr != nil && rec.Header().Get("X-Done") != "" {
				t.Fatal("the handler's headers leaked into the refusal")
			}
			if _, didRun := ran.Load(tc.path); didRun != (tc.readyErr == nil) {
				t.Fatalf("handler ran: %v, want %v", didRun, tc.readyErr == nil)
			}
			switch {
			case tc.wantOutcome == "" && len(app.entries) != 0:
				t.Fatalf("recorded %+v", app.entries)
			case tc.wantOutcome != "" && (len(app.entries) != 1 || app.entries[0].Outcome != tc.wantOutcome):
				t.Fatalf("recorded %+v, want one %s", app.entries, tc.wantOutcome)
			}
		})
	}
}

// TestMiddlewareWithALog runs the middleware over a real Log: the entry is
// in the chain by the time the response is written.
func TestMiddlewareWithALog(t *testing.T) {
	s := newEmbedded(t)
	l := openLog(t, s, "n1")
	defer closeLog(t, l)
	h := Middleware(MiddlewareConfig{Log: l, Describe: func(r *http.Request, _ int) (Entry, bool) {
		return Entry{ActorType: ActorToken, Actor: "tok-1", Action: "job.update", Resource: "job/build",
			Diff: map[string]any{"secret_param": "x"}}, true
	}})(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("PATCH", "/api/v1/jobs/build", nil))
	if rec.Code != http.StatusNoContent {
		t.Fatalf("status %d", rec.Code)
	}
	p, err := Query(context.Background(), s, Filter{Resource: "job/build"})
	if err != nil || len(p.Entries) != 1 || p.Entries[0].Outcome != OutcomeSuccess || p.Entries[0].Diff["secret_param"] != Redacted {
		t.Fatalf("%+v %v", p, err)
	}
}
