package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/opsconductor/opsconductor/controller/identity"
)

// HeaderRequestID carries the request ID in both directions.
const HeaderRequestID = "X-Request-ID"

// maxRequestIDLen bounds an incoming ID: it lands in every log line.
const maxRequestIDLen = 128

// routeUnmatched labels requests that matched no route, so that scanners
// probing random paths cannot blow up metric cardinality.
const routeUnmatched = "unmatched"

type stateKey struct{}

// requestState is per-request data the middleware shares. The outermost
// middleware creates it; the route wrapper fills in route once the mux has
// matched, which the access log and metrics (wrapped around the mux) need.
type requestState struct {
	id        string
	log       *slog.Logger
	route     string
	principal *identity.Principal // nil until authenticated
}

func stateFrom(ctx context.Context) *requestState {
	st, _ := ctx.Value(stateKey{}).(*requestState)
	return st
}

// RequestID returns the ID of the request ctx belongs to, or "" outside one.
// Domain services use it to correlate their own log lines.
func RequestID(ctx context.Context) string {
	if st := stateFrom(ctx); st != nil {
		return st.id
	}
	return ""
}

// withRequestID accepts a sane incoming X-Request-ID (so that a proxy's or
// client's ID follows the request through our logs) or makes one, echoes it,
// and puts it in the context and in the request's logger.
func (s *Server) withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(HeaderRequestID)
		if !validRequestID(id) {
			id = newRequestID()
		}
		w.Header().Set(HeaderRequestID, id)
		st := &requestState{id: id, log: s.log.With("request_id", id)}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), stateKey{}, st)))
	})
}

// validRequestID allows the characters of UUIDs, ULIDs and trace IDs and
// nothing that could forge a log line or a header.
func validRequestID(id string) bool {
	if id == "" || len(id) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '_' || c == '.' || c == ':'
		if !ok {
			return false
		}
	}
	return true
}

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

// instrument wraps everything below the request ID: it recovers panics into
// a 500 envelope, then writes one access log line and the HTTP metrics. Both
// are recorded in a deferred call so that a request that aborts (a panic
// re-raised as http.ErrAbortHandler) is still counted.
func (s *Server) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		st := stateFrom(r.Context())
		rec := &recorder{ResponseWriter: w}
		s.metrics.inFlight.Inc()
		defer func() {
			s.metrics.inFlight.Dec()
			v := recover()
			if v != nil && v != http.ErrAbortHandler {
				st.log.Error("panic serving request", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				if !rec.wroteHeader {
					writeError(rec, r, errors.New("panic"))
					v = nil
				} else {
					// Headers are gone: aborting the connection is the only
					// way left to tell the client the body is incomplete.
					v = http.ErrAbortHandler
				}
			}
			s.observe(r, st, rec, time.Since(start))
			if v != nil {
				panic(v)
			}
		}()
		next.ServeHTTP(rec, r)
	})
}

func (s *Server) observe(r *http.Request, st *requestState, rec *recorder, d time.Duration) {
	status := rec.status
	if !rec.wroteHeader {
		status = http.StatusOK // net/http's implicit status for an empty reply
	}
	route := st.route
	if route == "" {
		route = routeUnmatched
	}
	actor := ""
	if st.principal != nil {
		actor = st.principal.Name()
	}
	method := metricMethod(r.Method)
	code := strconv.Itoa(status)
	s.metrics.requests.WithLabelValues(route, method, code).Inc()
	s.metrics.duration.WithLabelValues(route, method, code).Observe(d.Seconds())
	st.log.LogAttrs(r.Context(), slog.LevelInfo, "http request",
		slog.String("method", r.Method),
		slog.String("route", route),
		slog.String("path", r.URL.Path),
		slog.Int("status", status),
		slog.Int64("bytes", rec.bytes),
		slog.Duration("duration", d),
		slog.String("remote", r.RemoteAddr),
		slog.String("actor", actor),
	)
}

// metricMethod keeps the method label bounded: any method can be sent.
func metricMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return m
	}
	return "OTHER"
}

// recorder notes the status and the bytes that went to the client.
type recorder struct {
	http.ResponseWriter
	status      int
	bytes       int64
	wroteHeader bool
}

func (rw *recorder) WriteHeader(code int) {
	if !rw.wroteHeader && code >= 200 {
		rw.status, rw.wroteHeader = code, true
	}
	rw.ResponseWriter.WriteHeader(code)
}

func (rw *recorder) Write(b []byte) (int, error) {
	if !rw.wroteHeader {
		rw.status, rw.wroteHeader = http.StatusOK, true
	}
	n, err := rw.ResponseWriter.Write(b)
	rw.bytes += int64(n)
	return n, err
}

// Flush keeps streaming responses streaming through the wrapper.
func (rw *recorder) Flush() {
	if !rw.wroteHeader {
		rw.status, rw.wroteHeader = http.StatusOK, true
	}
	_ = http.NewResponseController(rw.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the connection (deadlines).
func (rw *recorder) Unwrap() http.ResponseWriter { return rw.ResponseWriter }
