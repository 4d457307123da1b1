package channel

import (
	"encoding/json"
	"maps"
	"slices"
	"time"
)

// Message is one rendered notification. The communication service renders
// templates into it; the channel kind decides which fields it uses: email
// sends Subject with Text and/or HTML, a webhook POSTs JSON (or, when JSON is
// empty, a small envelope of the other fields), chat builds its payload from
// Subject and Text.
type Message struct {
	Subject string
	Text    string
	HTML    string
	// JSON is the webhook body; it must be valid JSON when set.
	JSON json.RawMessage
	// DeliveryID identifies the delivery across its attempts: it is the
	// webhook Idempotency-Key and the mail Message-ID, so a receiver can drop
	// the duplicates that at-least-once delivery allows.
	DeliveryID string
	// Event is the event type ("run.failed"), sent as X-OpsConductor-Event.
	Event string
}

// Result is the outcome of one attempt.
type Result struct {
	// Code is the HTTP status or the SMTP reply code; 0 when the attempt
	// failed before the peer answered.
	Code int
	// Err is nil when the peer accepted the message.
	Err error
	// Retryable says that a later attempt may succeed (timeouts, 408, 429,
	// 5xx, SMTP 4xx, network errors). A failure that is not retryable goes
	// straight to the dead letter.
	Retryable bool
	// RetryAfter is the wait the peer asked for (HTTP Retry-After); the
	// caller waits at least this long before the next attempt.
	RetryAfter time.Duration
	// Response is the start of the peer's answer, for the delivery record.
	Response string
	// Duration is how long the attempt took.
	Duration time.Duration
}

// OK reports whether the attempt delivered the message.
func (r Result) OK() bool { return r.Err == nil }

func sortedKeys(m map[string]string) []string {
	return slices.Sorted(maps.Keys(m))
}
