// Package history stores what happened: run and step records, log lines,
// discovery results, notification deliveries and the audit log. It is
// append-heavy and grows without bound, so it lives outside the Raft FSM.
//
// One small, domain-neutral interface (Store) has two backends: embedded
// (bbolt in the data dir, the single-node default) and postgres (pgx, for
// clusters). A Writer in front of either batches appends and tells each
// producer when its records are durable. This package never interprets a
// record's Data and never reads the replicated state.
package history

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/opsconductor/opsconductor/controller/problem"
)

// Domains partition history the way the PostgreSQL backend partitions its
// schemas. Every stream name and record kind starts with one of them. The
// list is fixed by the PostgreSQL migrations; a new domain needs one.
func Domains() []string { return []string{"identity", "assets", "automation", "communication"} }

// MaxSeq is the largest sequence number: PostgreSQL's bigint.
const MaxSeq = 1<<63 - 1

// Record is one entry of a stream. (Stream, Seq) identifies it: appending a
// record whose stream and sequence are already stored is a no-op, so a
// producer may resend after a failure without creating duplicates.
type Record struct {
	// Stream names an ordered sequence of records: "<domain>/<name>", for
	// example "automation/run/7f3a/attempt/2/log" or "communication/audit".
	Stream string `json:"stream"`
	// Seq orders records within the stream; the producer assigns it.
	Seq uint64 `json:"seq"`
	// Time is when the event happened, as the producer saw it. Stores keep
	// it to the microsecond (PostgreSQL's precision), in UTC.
	Time time.Time `json:"time"`
	// Kind is "<domain>.<type>" ("automation.log", "communication.audit").
	Kind string `json:"kind"`
	// Fields are the indexed attributes queries filter on (actor, run_id,
	// status …); keep them few and small.
	Fields map[string]string `json:"fields,omitempty"`
	// Data is the payload, opaque to the store (usually JSON).
	Data []byte `json:"data,omitempty"`
}

// Limits on a record, so that one producer cannot fill the store with a
// single write and the backends can size their keys.
const (
	MaxStreamLen   = 512
	MaxKindLen     = 128
	MaxFields      = 16
	MaxFieldKeyLen = 64
	MaxFieldValLen = 256
	MaxDataLen     = 1 << 20
)

func isDomain(d string) bool {
	for _, known := range Domains() {
		if d == known {
			return true
		}
	}
	return false
}

// Domain returns the domain a stream name belongs to.
func Domain(stream string) (string, bool) {
	d, _, ok := strings.Cut(stream, "/")
	if !ok || !isDomain(d) {
		return "", false
	}
	return d, true
}

// Validate checks a record; path prefixes every problem ("records[3]").
func (r Record) Validate(path string) error {
	return r.validate(func() string { return path })
}

// validate names fields under pathOf(), which it calls only when a record
// is bad: building "records[i]" for every valid record of a large batch
// cost a fifth of an append's CPU.
func (r Record) validate(pathOf func() string) error {
	var l problem.List
	bad := func(field, format string, args ...any) { l.Add(pathOf()+field, format, args...) }
	d, ok := Domain(r.Stream)
	switch {
	case r.Stream == "" || len(r.Stream) > MaxStreamLen || !utf8.ValidString(r.Stream) || strings.ContainsRune(r.Stream, 0):
		bad(".stream", "must be 1-%d bytes of UTF-8 without NUL", MaxStreamLen)
	case !ok:
		bad(".stream", "%q must start with a domain (%s) and a slash", r.Stream, strings.Join(Domains(), ", "))
	}
	if kd, _, found := strings.Cut(r.Kind, "."); !found || len(r.Kind) > MaxKindLen || !utf8.ValidString(r.Kind) || strings.ContainsRune(r.Kind, 0) {
		bad(".kind", "%q must be <domain>.<type>, at most %d bytes", r.Kind, MaxKindLen)
	} else if ok && kd != d {
		bad(".kind", "%q is not in the stream's domain %q", r.Kind, d)
	}
	if r.Seq > MaxSeq {
		bad(".seq", "%d exceeds %d", r.Seq, uint64(MaxSeq))
	}
	if r.Time.IsZero() {
		bad(".time", "must be set")
	} else if y := r.Time.UTC().Year(); y < 1 || y > 9999 {
		bad(".time", "year %d is outside 1-9999", y)
	}
	if len(r.Fields) > MaxFields {
		bad(".fields", "has %d fields, at most %d", len(r.Fields), MaxFields)
	}
	for k, v := range r.Fields {
		if k == "" || len(k) > MaxFieldKeyLen || len(v) > MaxFieldValLen || !utf8.ValidString(k) || !utf8.ValidString(v) ||
			strings.ContainsRune(k, 0) || strings.ContainsRune(v, 0) || strings.ContainsRune(k, '=') {
			bad(".fields", "field %q: keys 1-%d bytes without '=', values at most %d bytes, UTF-8 without NUL", k, MaxFieldKeyLen, MaxFieldValLen)
		}
	}
	if len(r.Data) > MaxDataLen {
		bad(".data", "is %d bytes, at most %d", len(r.Data), MaxDataLen)
	}
	return l.Err()
}

// ValidateBatch checks every record of a batch and reports all problems.
func ValidateBatch(recs []Record) error {
	var errs []error
	for i, r := range recs {
		if err := r.validate(func() string { return fmt.Sprintf("records[%d]", i) }); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	if len(errs) == 1 {
		return errs[0]
	}
	var l problem.List
	for _, e := range errs {
		if p, ok := problem.As(e); ok {
			if len(p.Details) > 0 {
				for i := range p.Details {
					l = append(l, &p.Details[i])
				}
			} else {
				l = append(l, p)
			}
		}
	}
	return l.Err()
}

// Query selects records of one kind, newest first.
type Query struct {
	Kind string
	// Fields must all match exactly (AND).
	Fields map[string]string
	// Since and Until bound Time: Since <= Time < Until; zero = unbounded.
	Since, Until time.Time
	// Cursor continues from a previous Page.Next.
	Cursor string
	// Limit is the page size (1..MaxPage).
	Limit int
}

// MaxPage bounds one Query or Read.
const MaxPage = 10000

// Page is one page of a query, newest first.
type Page struct {
	Records []Record
	// Next is the cursor for the following page; empty on the last.
	Next string
}

// Stats describes what a store holds.
type Stats struct {
	Records int64 `json:"records"`
	// Bytes is the logical size: stream, kind, fields and data of every
	// record plus a small per-record overhead. It shrinks as soon as
	// records are deleted, unlike file or table sizes, which is what a
	// size-based retention policy needs.
	Bytes  int64     `json:"bytes"`
	Oldest time.Time `json:"oldest,omitzero"`
}

// Store is a history backend. Every method is safe for concurrent use.
type Store interface {
	// Append stores recs durably (committed and synced) before returning.
	// Records whose (stream, seq) are already stored are skipped. A batch
	// is stored whole or not at all.
	Append(ctx context.Context, recs []Record) error
	// Read returns records of one stream with from <= Seq <= to, in
	// sequence order, at most limit.
	Read(ctx context.Context, stream string, from, to uint64, limit int) ([]Record, error)
	// Tail returns the last n records of a stream, in sequence order.
	Tail(ctx context.Context, stream string, n int) ([]Record, error)
	// Query returns one page of records of a kind, newest first.
	Query(ctx context.Context, q Query) (Page, error)
	// DeleteBefore removes records whose Time is before t and reports how
	// many it removed. Retention calls it; so may an operator.
	DeleteBefore(ctx context.Context, t time.Time) (int64, error)
	// Stats reports the store's size.
	Stats(ctx context.Context) (Stats, error)
	// Ping reports whether the store can take writes now.
	Ping(ctx context.Context) error
	// Close releases the store; a second call is harmless. Every other
	// method returns ErrClosed afterwards.
	Close() error
}

// Exporter streams every record a store holds, domain by domain and in
// (stream, seq) order within each, for `operator history export`. Both
// backends implement it; fn returning an error stops the walk.
type Exporter interface {
	Each(ctx context.Context, fn func(Record) error) error
}

// ErrClosed is returned by a store or writer used after Close.
var ErrClosed = errors.New("history store closed")

// CheckQuery validates a query.
func CheckQuery(q Query) error {
	var l problem.List
	if d, _, ok := strings.Cut(q.Kind, "."); !ok || !isDomain(d) {
		l.Add("kind", "%q must be <domain>.<type> with a domain of %s", q.Kind, strings.Join(Domains(), ", "))
	}
	if q.Limit < 1 || q.Limit > MaxPage {
		l.Add("limit", "%d: must be 1-%d", q.Limit, MaxPage)
	}
	if strings.ContainsRune(q.Kind, 0) {
		l.Add("kind", "must not contain NUL")
	}
	for k, v := range q.Fields {
		// The same rules as Validate: no stored record can have such a
		// field, and a backend building keys from it could match another.
		if k == "" || strings.ContainsRune(k, '=') || strings.ContainsRune(k, 0) || strings.ContainsRune(v, 0) {
			l.Add("fields", "field %q: keys must be non-empty without '=' or NUL, values without NUL", k)
		}
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && !q.Since.Before(q.Until) {
		l.Add("since", "must be before until")
	}
	return l.Err()
}

// CheckRead validates Read and Tail arguments.
func CheckRead(stream string, limit int) error {
	var l problem.List
	if _, ok := Domain(stream); !ok || strings.ContainsRune(stream, 0) {
		l.Add("stream", "%q must start with a domain (%s) and a slash, without NUL", stream, strings.Join(Domains(), ", "))
	}
	if limit < 1 || limit > MaxPage {
		l.Add("limit", "%d: must be 1-%d", limit, MaxPage)
	}
	return l.Err()
}
