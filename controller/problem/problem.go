// Package problem carries the errors that are the caller's fault (or the
// cluster's momentary state) from a domain to the edge. Domains return them,
// the FSM serialises them across leader forwarding, and the gateway alone maps
// them to HTTP statuses and the JSON error envelope. It must never import a
// domain or the gateway.
package problem

import (
	"errors"
	"fmt"
	"time"
)

// Kind classifies a problem; the gateway turns each kind into one HTTP status.
type Kind string

// Kinds are part of the forwarding wire format: append, never rename.
const (
	KindInvalid         Kind = "invalid"         // 400
	KindUnauthenticated Kind = "unauthenticated" // 401
	KindForbidden       Kind = "forbidden"       // 403
	KindNotFound        Kind = "not_found"       // 404
	KindConflict        Kind = "conflict"        // 409
	KindTooLarge        Kind = "too_large"       // 413
	KindUnsupported     Kind = "unsupported"     // 415
	KindRateLimited     Kind = "rate_limited"    // 429
	KindUnavailable     Kind = "unavailable"     // 503
	KindTimeout         Kind = "timeout"         // 504
	KindInternal        Kind = "internal"        // 500
)

// Error is a problem with a stable machine-readable code, a message for
// people and, when one input is to blame, the path of that input
// (`steps[2].needs[0]`, `--data-dir`, `body`).
type Error struct {
	Kind    Kind   `json:"kind"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
	// Details lists further problems when a validation found several at once.
	Details []Error `json:"details,omitempty"`
	// RetryAfter, in whole seconds, tells a throttled or locked-out client
	// when to try again (the gateway sends it as Retry-After).
	RetryAfter int `json:"retry_after,omitempty"`
}

func (e *Error) Error() string {
	if e.Field != "" {
		return e.Field + ": " + e.Message
	}
	return e.Message
}

// New builds a problem of the given kind.
func New(kind Kind, code, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Invalid reports bad input in one field.
func Invalid(field, format string, args ...any) *Error {
	return &Error{Kind: KindInvalid, Code: "invalid_input", Field: field, Message: fmt.Sprintf(format, args...)}
}

// NotFound reports a missing object of a kind ("job", "peer") by its ID.
func NotFound(what, id string) *Error {
	return &Error{Kind: KindNotFound, Code: what + "_not_found", Message: fmt.Sprintf("%s %q not found", what, id)}
}

// Unavailable reports that the cluster cannot serve the request right now
// (no leader, leadership lost mid-write); callers may retry.
func Unavailable(code, format string, args ...any) *Error {
	return &Error{Kind: KindUnavailable, Code: code, Message: fmt.Sprintf(format, args...)}
}

// List gathers validation problems so that a caller sees all of them at once.
type List []*Error

// Add appends a problem for one field.
func (l *List) Add(field, format string, args ...any) {
	*l = append(*l, Invalid(field, format, args...))
}

// Err returns nil when empty, the single problem when there is one, and
// otherwise an invalid-input problem whose details hold every entry.
func (l List) Err() error {
	switch len(l) {
	case 0:
		return nil
	case 1:
		return l[0]
	}
	e := &Error{Kind: KindInvalid, Code: "invalid_input", Field: l[0].Field,
		Message: fmt.Sprintf("%s (and %d more problems)", l[0].Message, len(l)-1)}
	for _, p := range l {
		e.Details = append(e.Details, *p)
	}
	return e
}

// RateLimited reports that the caller must wait retryAfter before trying
// again (rounded up to whole seconds, at least one).
func RateLimited(code string, retryAfter time.Duration, format string, args ...any) *Error {
	secs := int((retryAfter + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	return &Error{Kind: KindRateLimited, Code: code, Message: fmt.Sprintf(format, args...), RetryAfter: secs}
}

// As returns the problem inside err, if there is one.
func As(err error) (*Error, bool) {
	var p *Error
	if errors.As(err, &p) {
		return p, true
	}
	return nil, false
}

// Is reports whether err carries a problem of the given kind.
func Is(err error, kind Kind) bool {
	p, ok := As(err)
	return ok && p.Kind == kind
}
