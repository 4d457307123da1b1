package audit

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/opsconductor/opsconductor/controller/history"
	"github.com/opsconductor/opsconductor/controller/problem"
)

// Filter selects entries across every node's chain, newest first. Empty
// fields match everything; set ones must all match exactly.
type Filter struct {
	Node, Actor, ActorType, Action, Resource, Outcome string
	// Since <= Time < Until; zero is unbounded.
	Since, Until time.Time
	// Cursor continues from a previous Page.Next.
	Cursor string
	// Limit is the page size, 1..history.MaxPage; 0 means DefaultLimit.
	Limit int
}

// DefaultLimit is a page's size when the filter does not say.
const DefaultLimit = 100

// Page is one page of entries, newest first.
type Page struct {
	Entries []Entry `json:"entries"`
	// Next continues the query; empty on the last page.
	Next string `json:"next,omitempty"`
	// Undecodable counts records of the page that are not audit entries
	// (Verify names them); they are left out rather than failing the page.
	Undecodable int `json:"undecodable,omitempty"`
}

// queryParams are the query string keys ParseFilter knows.
var queryParams = []string{"node", "actor", "actor_type", "action", "resource", "outcome", "since", "until", "cursor", "limit"}

// ParseFilter reads a filter from an API query string
// (?actor=&action=&resource=&outcome=&node=&actor_type=&since=&until=&cursor=&limit=),
// times in RFC 3339. It reports every problem at once, each named by its
// parameter.
func ParseFilter(q url.Values) (Filter, error) {
	var l problem.List
	var f Filter
	for k, vs := range q {
		if !knownParam(k) {
			l.Add(k, "unknown parameter; known: %s", strings.Join(queryParams, ", "))
			continue
		}
		if len(vs) > 1 {
			l.Add(k, "given %d times, at most once", len(vs))
		}
	}
	str := func(k string, dst *string) {
		v := q.Get(k)
		if len(v) > MaxFieldLen {
			l.Add(k, "is %d bytes, at most %d", len(v), MaxFieldLen)
			return
		}
		if strings.IndexByte(v, 0) >= 0 {
			l.Add(k, "must not contain NUL")
			return
		}
		*dst = v
	}
	str("node", &f.Node)
	str("actor", &f.Actor)
	str("actor_type", &f.ActorType)
	str("action", &f.Action)
	str("resource", &f.Resource)
	str("outcome", &f.Outcome)
	str("cursor", &f.Cursor)
	tm := func(k string, dst *time.Time) {
		if v := q.Get(k); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				l.Add(k, "%q is not an RFC 3339 time", v)
				return
			}
			*dst = t
		}
	}
	tm("since", &f.Since)
	tm("until", &f.Until)
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			l.Add("limit", "%q is not a number", v)
		} else {
			f.Limit = n
		}
	}
	// Validate what did parse too, so one answer names every problem; a
	// parameter already named for failing to parse is not named twice.
	if p, ok := problem.As(f.Validate()); ok {
		named := map[string]bool{}
		for _, e := range l {
			named[e.Field] = true
		}
		more := []*problem.Error{p}
		if len(p.Details) > 0 {
			more = more[:0]
			for i := range p.Details {
				more = append(more, &p.Details[i])
			}
		}
		for _, e := range more {
			if !named[e.Field] {
				l = append(l, e)
			}
		}
	}
	if err := l.Err(); err != nil {
		return Filter{}, err
	}
	return f, nil
}

func knownParam(k string) bool {
	for _, p := range queryParams {
		if p == k {
			return true
		}
	}
	return false
}

// Validate checks a filter, every problem at once.
func (f Filter) Validate() error {
	var l problem.List
	switch f.ActorType {
	case "", ActorUser, ActorToken, ActorAgent, ActorSystem:
	default:
		l.Add("actor_type", "%q must be one of user, token, agent, system", f.ActorType)
	}
	switch f.Outcome {
	case "", OutcomeSuccess, OutcomeFailure, OutcomeDenied:
	default:
		l.Add("outcome", "%q must be one of success, failure, denied", f.Outcome)
	}
	if f.Limit < 0 || f.Limit > history.MaxPage {
		l.Add("limit", "%d: must be 1-%d", f.Limit, history.MaxPage)
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		l.Add("since", "must be before until")
	}
	return l.Err()
}

// querier is what Query needs of a store.
type querier interface {
	Query(ctx context.Context, q history.Query) (history.Page, error)
}

// Query returns one page of entries matching f, newest first, from every
// node's chain.
func Query(ctx context.Context, s querier, f Filter) (Page, error) {
	if err := f.Validate(); err != nil {
		return Page{}, err
	}
	q := history.Query{Kind: Kind, Since: f.Since, Until: f.Until, Cursor: f.Cursor, Limit: f.Limit}
	if q.Limit == 0 {
		q.Limit = DefaultLimit
	}
	fields := map[string]string{}
	for k, v := range map[string]string{"node": f.Node, "actor": f.Actor, "actor_type": f.ActorType, "action": f.Action,
		"resource": f.Resource, "outcome": f.Outcome} {
		if v != "" {
			fields[k] = v
		}
	}
	if len(fields) > 0 {
		q.Fields = fields
	}
	hp, err := s.Query(ctx, q)
	if err != nil {
		return Page{}, fmt.Errorf("query audit log: %w", err)
	}
	p := Page{Entries: make([]Entry, 0, len(hp.Records)), Next: hp.Next}
	for _, r := range hp.Records {
		e, _, err := decode(r.Data)
		if err != nil {
			p.Undecodable++
			continue
		}
		p.Entries = append(p.Entries, e)
	}
	return p, nil
}

// EntryWriter writes entries in an export format.
type EntryWriter interface {
	Write(Entry) error
	// Flush writes what is buffered; call it once at the end.
	Flush() error
}

// Export writes every entry matching f (from f.Cursor on, ignoring
// f.Limit), newest first, and reports how many it wrote.
func Export(ctx context.Context, s querier, f Filter, w EntryWriter) (int64, error) {
	f.Limit = history.MaxPage
	var n int64
	for {
		p, err := Query(ctx, s, f)
		if err != nil {
			return n, err
		}
		for _, e := range p.Entries {
			if err := w.Write(e); err != nil {
				return n, err
			}
			n++
		}
		if p.Next == "" {
			return n, w.Flush()
		}
		f.Cursor = p.Next
	}
}

// JSONLWriter writes one entry per line exactly as stored (hash
// included), so an exported line can be checked against its hash.
type JSONLWriter struct {
	w *bufio.Writer
}

// NewJSONLWriter writes JSON Lines to w.
func NewJSONLWriter(w io.Writer) *JSONLWriter { return &JSONLWriter{w: bufio.NewWriter(w)} }

// Write writes one entry as a line.
func (j *JSONLWriter) Write(e Entry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode audit entry %s/%d: %w", e.Node, e.Seq, err)
	}
	b = append(b, '\n')
	if _, err := j.w.Write(b); err != nil {
		return fmt.Errorf("write audit export: %w", err)
	}
	return nil
}

// Flush writes what is buffered.
func (j *JSONLWriter) Flush() error {
	if err := j.w.Flush(); err != nil {
		return fmt.Errorf("write audit export: %w", err)
	}
	return nil
}

// CSVHeader is the first row CSVWriter writes.
var CSVHeader = []string{"node", "seq", "time", "actor", "actor_type", "source_ip", "action", "resource", "outcome",
	"request_id", "diff", "prev_hash", "hash"}

// CSVWriter writes entries as CSV rows under CSVHeader, the diff as JSON.
// A cell that a spreadsheet would run as a formula (starting with = + - @
// or a tab or carriage return; the actor of a failed login is whatever
// was typed) is prefixed with a single quote, so CSV is for reading:
// JSON Lines is the exact export.
type CSVWriter struct {
	w      *csv.Writer
	header bool
}

// NewCSVWriter writes CSV to w.
func NewCSVWriter(w io.Writer) *CSVWriter { return &CSVWriter{w: csv.NewWriter(w)} }

func csvCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// Write writes one entry as a row, after the header on the first call.
func (c *CSVWriter) Write(e Entry) error {
	if !c.header {
		c.header = true
		if err := c.w.Write(CSVHeader); err != nil {
			return fmt.Errorf("write audit export: %w", err)
		}
	}
	diff := ""
	if len(e.Diff) > 0 {
		b, err := json.Marshal(e.Diff)
		if err != nil {
			return fmt.Errorf("encode audit entry %s/%d: %w", e.Node, e.Seq, err)
		}
		diff = string(b)
	}
	row := []string{e.Node, strconv.FormatUint(e.Seq, 10), e.Time.Format(time.RFC3339Nano), e.Actor, e.ActorType, e.SourceIP,
		e.Action, e.Resource, e.Outcome, e.RequestID, diff, e.PrevHash, e.Hash}
	for i := range row {
		row[i] = csvCell(row[i])
	}
	if err := c.w.Write(row); err != nil {
		return fmt.Errorf("write audit export: %w", err)
	}
	return nil
}

// Flush writes what is buffered (the header alone when nothing matched).
func (c *CSVWriter) Flush() error {
	if !c.header {
		c.header = true
		if err := c.w.Write(CSVHeader); err != nil {
			return fmt.Errorf("write audit export: %w", err)
		}
	}
	c.w.Flush()
	if err := c.w.Error(); err != nil {
		return fmt.Errorf("write audit export: %w", err)
	}
	return nil
}
