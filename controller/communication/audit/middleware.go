package audit

import (
	"bytes"
	"context"
	"net/http"
)

// Appender records an entry durably; *Log is one. The gateway may pass a
// fake in its tests.
type Appender interface {
	Append(ctx context.Context, e Entry) (Entry, error)
}

// Mutating reports whether an HTTP method changes state, which is what
// the audit log must record every time.
func Mutating(method string) bool {
	switch method {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		return true
	}
	return false
}

// OutcomeOf maps a response status to an outcome: 401 and 403 are denied,
// other 4xx and 5xx failures, the rest success.
func OutcomeOf(status int) string {
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return OutcomeDenied
	case status >= 400:
		return OutcomeFailure
	}
	return OutcomeSuccess
}

// MiddlewareConfig configures Middleware.
type MiddlewareConfig struct {
	Log Appender
	// Describe returns the entry for a request once its handler has run,
	// from what the gateway knows of it (principal, route, request ID,
	// source IP, a diff summary); Outcome is filled from the status when
	// left empty. ok false skips the request (a read that happens to be a
	// POST, a login the identity service audits itself). Required.
	Describe func(r *http.Request, status int) (e Entry, ok bool)
	// Fail writes the response when the entry cannot be recorded, in the
	// gateway's error envelope; default a bare 503. changed tells whether
	// the handler ran (its change may stand) or the request was refused
	// before it (nothing changed).
	Fail func(w http.ResponseWriter, r *http.Request, err error, changed bool)
	// Ready, when set, is asked before the handler runs: while it fails
	// (the store behind Log is known to be down) the request is refused
	// untouched rather than applied and then left without its entry.
	Ready func(ctx context.Context) error
}

// Middleware records an entry for every mutating request, and makes the
// audit write part of the request's outcome: the handler's response is
// held until the entry is durable, and replaced by Fail's when it cannot
// be recorded, so a mutation is never acknowledged without its entry.
// With Ready it also refuses, before the handler runs, requests that come
// while the store is known to be down, so that an outage does not leave
// changes without entries (one that starts mid-request still can). It
// holds the whole response, so it is for ordinary JSON routes, not for
// streams or websockets (which are not mutating requests).
func Middleware(cfg MiddlewareConfig) func(http.Handler) http.Handler {
	fail := cfg.Fail
	if fail == nil {
		fail = func(w http.ResponseWriter, _ *http.Request, _ error, _ bool) {
			http.Error(w, "the audit log cannot record this request", http.StatusServiceUnavailable)
		}
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !Mutating(r.Method) {
				next.ServeHTTP(w, r)
				return
			}
			if cfg.Ready != nil {
				if err := cfg.Ready(r.Context()); err != nil {
					fail(w, r, err, false)
					return
				}
			}
			held := &heldResponse{header: http.Header{}}
			next.ServeHTTP(held, r)
			status := held.status
			if status == 0 {
				status = http.StatusOK
			}
			if e, ok := cfg.Describe(r, status); ok {
				if e.Outcome == "" {
					e.Outcome = OutcomeOf(status)
				}
				// The mutation has happened whether or not the client is
				// still there, so a client that hangs up must not take the
				// entry with it; the Log's WriteTimeout bounds the wait.
				if _, err := cfg.Log.Append(context.WithoutCancel(r.Context()), e); err != nil {
					fail(w, r, err, true)
					return
				}
			}
			for k, v := range held.header {
				w.Header()[k] = v
			}
			w.WriteHeader(status)
			_, _ = w.Write(held.body.Bytes())
		})
	}
}

// heldResponse keeps what a handler writes until the entry is recorded.
type heldResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (h *heldResponse) Header() http.Header { return h.header }

func (h *heldResponse) WriteHeader(status int) {
	if h.status == 0 {
		h.status = status
	}
}

func (h *heldResponse) Write(b []byte) (int, error) {
	if h.status == 0 {
		h.status = http.StatusOK
	}
	return h.body.Write(b)
}
