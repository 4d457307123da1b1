package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/opsconductor/opsconductor/controller/problem"
)

// statusClientClosed is nginx's convention for "the client went away before
// the response": nobody reads it, but it keeps cancellations out of the 5xx
// rate in metrics and the access log.
const statusClientClosed = 499

// envelope is the body of every error response.
type envelope struct {
	Error envelopeError `json:"error"`
}

type envelopeError struct {
	Code    string           `json:"code"`
	Message string           `json:"message"`
	Field   string           `json:"field,omitempty"`
	Details []envelopeDetail `json:"details,omitempty"`
}

type envelopeDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

// statusError carries a status that no problem kind has, because it is
// about the route table rather than any domain: 405 Method Not Allowed.
type statusError struct {
	status int
	p      *problem.Error
}

func (e *statusError) Error() string { return e.p.Error() }

// statusFor maps a problem kind to its HTTP status. It is the only place
// that does: domains speak in kinds, never in status codes.
func statusFor(k problem.Kind) (int, bool) {
	switch k {
	case problem.KindInvalid:
		return http.StatusBadRequest, true
	case problem.KindUnauthenticated:
		return http.StatusUnauthorized, true
	case problem.KindForbidden:
		return http.StatusForbidden, true
	case problem.KindNotFound:
		return http.StatusNotFound, true
	case problem.KindConflict:
		return http.StatusConflict, true
	case problem.KindTooLarge:
		return http.StatusRequestEntityTooLarge, true
	case problem.KindUnsupported:
		return http.StatusUnsupportedMediaType, true
	case problem.KindRateLimited:
		return http.StatusTooManyRequests, true
	case problem.KindUnavailable:
		return http.StatusServiceUnavailable, true
	case problem.KindTimeout:
		return http.StatusGatewayTimeout, true
	}
	return 0, false
}

// classify turns any error into a status and the envelope to send. Errors
// that are not problems become a 500 whose message says nothing about the
// cause: internal errors can carry paths, addresses or worse.
func classify(r *http.Request, err error) (int, envelope) {
	var (
		tooLarge *http.MaxBytesError
		routeErr *statusError
	)
	switch p, ok := problem.As(err); {
	case errors.As(err, &routeErr):
		return routeErr.status, envelopeFor(routeErr.p)
	case ok:
		if status, known := statusFor(p.Kind); known {
			return status, envelopeFor(p)
		}
	case errors.As(err, &tooLarge):
		return http.StatusRequestEntityTooLarge, envelopeFor(tooLargeProblem(tooLarge.Limit))
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout, envelope{Error: envelopeError{
			Code: string(problem.KindTimeout), Message: "the request timed out"}}
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		return statusClientClosed, envelope{Error: envelopeError{
			Code: "client_closed_request", Message: "the client closed the request"}}
	}
	return http.StatusInternalServerError, envelope{Error: envelopeError{
		Code: "internal", Message: "internal server error"}}
}

func envelopeFor(p *problem.Error) envelope {
	e := envelopeError{Code: p.Code, Message: p.Message, Field: p.Field}
	if e.Code == "" {
		e.Code = string(p.Kind)
	}
	for _, d := range p.Details {
		code := d.Code
		if code == "" {
			code = string(d.Kind)
		}
		e.Details = append(e.Details, envelopeDetail{Code: code, Message: d.Message, Field: d.Field})
	}
	return envelope{Error: e}
}

func tooLargeProblem(limit int64) *problem.Error {
	p := problem.New(problem.KindTooLarge, "body_too_large", "request body is larger than %d bytes", limit)
	p.Field = "body"
	return p
}

// writeError is the one function that writes an error response. The real
// error goes to the log (with the request ID) when it is the server's fault;
// the client sees only the envelope.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, body := classify(r, err)
	log := loggerFrom(r.Context())
	switch {
	case status == statusClientClosed:
		log.Debug("client closed request", "error", err)
	case status >= http.StatusInternalServerError:
		log.Error("request failed", "status", status, "error", err)
	default:
		log.Debug("request rejected", "status", status, "code", body.Error.Code, "error", err)
	}
	// A handler may have set headers for the success it expected.
	h := w.Header()
	for _, k := range []string{"Content-Length", "Content-Encoding", "Content-Disposition", "Location", "Etag", "Last-Modified"} {
		h.Del(k)
	}
	if p, ok := problem.As(err); ok && p.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(p.RetryAfter))
	}
	writeJSON(w, r, status, body)
}

// writeJSON encodes v as the whole response body.
func writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only a programming error gets here (an unencodable type).
		loggerFrom(r.Context()).Error("encode response", "error", err)
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"code":"internal","message":"internal server error"}}`)
	}
	b = append(b, '\n')
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if _, err := w.Write(b); err != nil {
		loggerFrom(r.Context()).Debug("write response", "error", err)
	}
}

// loggerFrom returns the request's logger (which carries request_id), or a
// logger that discards when called outside a request.
func loggerFrom(ctx context.Context) *slog.Logger {
	if st := stateFrom(ctx); st != nil && st.log != nil {
		return st.log
	}
	return slog.New(slog.DiscardHandler)
}

func asMaxBytes(err error) (*http.MaxBytesError, bool) {
	var e *http.MaxBytesError
	ok := errors.As(err, &e)
	return e, ok
}
