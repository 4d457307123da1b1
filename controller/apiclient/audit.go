package apiclient

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// The audit log's documents, mirroring the controller's JSON.

// AuditEntry is one entry of a controller's hash chain.
type AuditEntry struct {
	Seq       uint64         `json:"seq"`
	Time      time.Time      `json:"time"`
	Node      string         `json:"node"`
	Actor     string         `json:"actor,omitempty"`
	ActorType string         `json:"actor_type"`
	SourceIP  string         `json:"source_ip,omitempty"`
	Action    string         `json:"action"`
	Resource  string         `json:"resource,omitempty"`
	Outcome   string         `json:"outcome"`
	RequestID string         `json:"request_id,omitempty"`
	Diff      map[string]any `json:"diff,omitempty"`
	PrevHash  string         `json:"prev_hash"`
	Hash      string         `json:"hash"`
}

// AuditFilter selects entries; empty fields match everything.
type AuditFilter struct {
	Node, Actor, ActorType, Action, Resource, Outcome string
	// Since <= time < Until; zero is unbounded.
	Since, Until time.Time
	// Cursor continues a previous page (AuditPage.Next).
	Cursor string
	// Limit is the page size; 0 is the server's default. Export ignores it.
	Limit int
}

func (f AuditFilter) values() url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"node": f.Node, "actor": f.Actor, "actor_type": f.ActorType, "action": f.Action,
		"resource": f.Resource, "outcome": f.Outcome, "cursor": f.Cursor} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if !f.Since.IsZero() {
		v.Set("since", f.Since.Format(time.RFC3339Nano))
	}
	if !f.Until.IsZero() {
		v.Set("until", f.Until.Format(time.RFC3339Nano))
	}
	if f.Limit != 0 {
		v.Set("limit", strconv.Itoa(f.Limit))
	}
	return v
}

// AuditPage is one page of entries, newest first.
type AuditPage struct {
	Items []AuditEntry `json:"items"`
	// Next continues the query; empty on the last page.
	Next string `json:"next"`
	// Undecodable counts stored records of the page that are not entries.
	Undecodable int `json:"undecodable,omitempty"`
}

// AuditBroken names the first entry at which a chain stops being intact.
type AuditBroken struct {
	// Node is set on AuditVerification.FirstBroken only.
	Node   string `json:"node,omitempty"`
	Seq    uint64 `json:"seq"`
	Reason string `json:"reason"`
}

// AuditChainReport is the outcome of walking one node's chain.
type AuditChainReport struct {
	Node      string    `json:"node"`
	Entries   int64     `json:"entries"`
	FirstSeq  uint64    `json:"first_seq"`
	FirstTime time.Time `json:"first_time,omitzero"`
	LastSeq   uint64    `json:"last_seq"`
	LastHash  string    `json:"last_hash,omitempty"`
	// Truncated: retention removed the chain's head (not a break).
	Truncated   bool         `json:"truncated"`
	FirstBroken *AuditBroken `json:"first_broken,omitempty"`
	Problems    int64        `json:"problems"`
}

// AuditVerification is every chain's report.
type AuditVerification struct {
	OK          bool               `json:"ok"`
	FirstBroken *AuditBroken       `json:"first_broken,omitempty"`
	Chains      []AuditChainReport `json:"chains"`
}

// Audit export formats.
const (
	AuditFormatJSONL = "jsonl"
	AuditFormatCSV   = "csv"
)

// AuditList returns one page of entries matching f, newest first.
func (c *Client) AuditList(ctx context.Context, f AuditFilter) (AuditPage, error) {
	var out AuditPage
	err := c.do(ctx, http.MethodGet, withQuery("/api/v1/audit", f.values()), nil, &out)
	return out, err
}

// AuditVerify walks every chain and reports the first broken link of each.
// A broken chain is a report with OK false, not an error.
func (c *Client) AuditVerify(ctx context.Context) (AuditVerification, error) {
	var out AuditVerification
	err := c.do(ctx, http.MethodGet, "/api/v1/audit/verify", nil, &out)
	return out, err
}

// AuditExport streams every entry matching f (from f.Cursor on; f.Limit
// is ignored) to w, as JSON Lines exactly as stored or as CSV.
func (c *Client) AuditExport(ctx context.Context, format string, f AuditFilter, w io.Writer) (int64, error) {
	v := f.values()
	v.Del("limit")
	if format != "" {
		v.Set("format", format)
	}
	resp, err := c.roundTrip(ctx, http.MethodGet, withQuery("/api/v1/audit/export", v), noBody, "")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("audit export: %w", err)
	}
	return n, nil
}
