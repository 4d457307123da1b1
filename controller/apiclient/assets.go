package apiclient

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// The inventory's documents, mirroring the controller's JSON.

// TargetConnection says how a target is reached.
type TargetConnection struct {
	Type          string `json:"type"`
	AgentID       string `json:"agent_id,omitempty"`
	Via           string `json:"via,omitempty"`
	Port          int    `json:"port,omitempty"`
	Username      string `json:"username,omitempty"`
	HostKey       string `json:"host_key,omitempty"`
	HostKeyPolicy string `json:"host_key_policy,omitempty"`
}

// RunOutcome is the last run on a target.
type RunOutcome struct {
	RunID   string    `json:"run_id"`
	Outcome string    `json:"outcome"`
	At      time.Time `json:"at"`
}

// TargetStatus is a target's health.
type TargetStatus struct {
	Agent    string      `json:"agent"`
	LastSeen *time.Time  `json:"last_seen,omitempty"`
	LastRun  *RunOutcome `json:"last_run,omitempty"`
}

// Target is one inventory target.
type Target struct {
	ID            string            `json:"id"`
	Name          string            `json:"name"`
	Addresses     []string          `json:"addresses"`
	Connection    TargetConnection  `json:"connection"`
	Tags          map[string]string `json:"tags"`
	Groups        []string          `json:"groups"`
	DynamicGroups []string          `json:"dynamic_groups,omitempty"`
	Owner         string            `json:"owner,omitempty"`
	Notes         string            `json:"notes,omitempty"`
	Facts         map[string]string `json:"facts"`
	Status        TargetStatus      `json:"status"`
	CreatedAt     time.Time         `json:"created_at"`
	CreatedBy     string            `json:"created_by,omitempty"`
	UpdatedAt     time.Time         `json:"updated_at"`
	Revision      uint64            `json:"revision"`
}

// TargetPage is one page of targets.
type TargetPage struct {
	Items []Target `json:"items"`
	Next  string   `json:"next"`
}

// TargetInput is a target to create.
type TargetInput struct {
	Name       string            `json:"name"`
	Addresses  []string          `json:"addresses,omitempty"`
	Connection *TargetConnection `json:"connection,omitempty"`
	Tags       map[string]string `json:"tags,omitempty"`
	Groups     []string          `json:"groups,omitempty"`
	Owner      string            `json:"owner,omitempty"`
	Notes      string            `json:"notes,omitempty"`
}

// TargetPatch changes the fields it sets.
type TargetPatch struct {
	Name       *string            `json:"name,omitempty"`
	Addresses  *[]string          `json:"addresses,omitempty"`
	Connection *TargetConnection  `json:"connection,omitempty"`
	Tags       *map[string]string `json:"tags,omitempty"`
	Groups     *[]string          `json:"groups,omitempty"`
	Owner      *string            `json:"owner,omitempty"`
	Notes      *string            `json:"notes,omitempty"`
	Revision   *uint64            `json:"revision,omitempty"`
}

// TargetQuery filters and pages a target list (and an export, which
// ignores Sort, Limit and Cursor).
type TargetQuery struct {
	Tags       map[string]string
	Group      string
	Selector   string
	Q          string
	Connection string
	Sort       string
	Limit      int
	Cursor     string
}

func (q TargetQuery) values() url.Values {
	v := url.Values{}
	for k, val := range q.Tags {
		v.Add("tag", k+"="+val)
	}
	set := func(k, val string) {
		if val != "" {
			v.Set(k, val)
		}
	}
	set("group", q.Group)
	set("selector", q.Selector)
	set("q", q.Q)
	set("connection", q.Connection)
	set("sort", q.Sort)
	set("cursor", q.Cursor)
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	return v
}

func withQuery(path string, v url.Values) string {
	if len(v) == 0 {
		return path
	}
	return path + "?" + v.Encode()
}

// ListTargets returns one page of targets.
func (c *Client) ListTargets(ctx context.Context, q TargetQuery) (TargetPage, error) {
	var page TargetPage
	err := c.do(ctx, http.MethodGet, withQuery("/api/v1/targets", q.values()), nil, &page)
	return page, err
}

// AllTargets follows the cursor through every page.
func (c *Client) AllTargets(ctx context.Context, q TargetQuery) ([]Target, error) {
	var out []Target
	q.Limit = 1000
	for {
		page, err := c.ListTargets(ctx, q)
		if err != nil {
			return nil, err
		}
		out = append(out, page.Items...)
		if page.Next == "" {
			return out, nil
		}
		q.Cursor = page.Next
	}
}

// GetTarget returns a target by ID or name.
func (c *Client) GetTarget(ctx context.Context, idOrName string) (Target, error) {
	var t Target
	err := c.do(ctx, http.MethodGet, "/api/v1/targets/"+url.PathEscape(idOrName), nil, &t)
	return t, err
}

// CreateTarget adds an SSH target.
func (c *Client) CreateTarget(ctx context.Context, in TargetInput) (Target, error) {
	var t Target
	err := c.do(ctx, http.MethodPost, "/api/v1/targets", in, &t)
	return t, err
}

// UpdateTarget changes a target.
func (c *Client) UpdateTarget(ctx context.Context, idOrName string, patch TargetPatch) (Target, error) {
	var t Target
	err := c.do(ctx, http.MethodPatch, "/api/v1/targets/"+url.PathEscape(idOrName), patch, &t)
	return t, err
}

// DeleteTarget removes an SSH target.
func (c *Client) DeleteTarget(ctx context.Context, idOrName string) (Target, error) {
	var t Target
	err := c.do(ctx, http.MethodDelete, "/api/v1/targets/"+url.PathEscape(idOrName), nil, &t)
	return t, err
}

// ImportRowError is one problem with one import row.
type ImportRowError struct {
	Row     int    `json:"row"`
	Field   string `json:"field"`
	Message string `json:"message"`
}

// ImportReport is what an import did or would do.
type ImportReport struct {
	Mode          string           `json:"mode"`
	DryRun        bool             `json:"dry_run"`
	Partial       bool             `json:"partial"`
	Rows          int              `json:"rows"`
	Valid         int              `json:"valid"`
	Invalid       int              `json:"invalid"`
	Created       int              `json:"created"`
	Updated       int              `json:"updated"`
	Written       bool             `json:"written"`
	Errors        []ImportRowError `json:"errors"`
	ErrorsOmitted int              `json:"errors_omitted,omitempty"`
}

// ImportOptions are an import's query parameters.
type ImportOptions struct {
	// Format is "csv" or "json": the body's media type.
	Format  string
	Mode    string // create (default) or upsert
	DryRun  bool
	Partial bool
}

// ImportTargets sends a CSV file or a JSON array of targets. The body
// is read once, as it is sent.
func (c *Client) ImportTargets(ctx context.Context, body io.Reader, opts ImportOptions) (ImportReport, error) {
	ctype := map[string]string{"csv": "text/csv", "json": "application/json"}[opts.Format]
	if ctype == "" {
		return ImportReport{}, fmt.Errorf("import format must be csv or json, got %q", opts.Format)
	}
	v := url.Values{}
	if opts.Mode != "" {
		v.Set("mode", opts.Mode)
	}
	if opts.DryRun {
		v.Set("dry_run", "true")
	}
	if opts.Partial {
		v.Set("partial", "true")
	}
	sent := false
	once := func() (io.Reader, bool) {
		if sent {
			return nil, false
		}
		sent = true
		return body, true
	}
	resp, err := c.roundTrip(ctx, http.MethodPost, withQuery("/api/v1/targets/import", v), once, ctype)
	if err != nil {
		return ImportReport{}, err
	}
	defer resp.Body.Close()
	var rep ImportReport
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		return ImportReport{}, fmt.Errorf("import: decode response: %w", err)
	}
	return rep, nil
}

// ExportTargets writes every matching target to w as csv or json.
func (c *Client) ExportTargets(ctx context.Context, w io.Writer, format string, q TargetQuery) error {
	v := q.values()
	v.Del("sort")
	v.Del("limit")
	v.Del("cursor")
	v.Set("format", format)
	resp, err := c.roundTrip(ctx, http.MethodGet, withQuery("/api/v1/targets/export", v), noBody, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return nil
}

// Group is a static or dynamic group.
type Group struct {
	Name        string    `json:"name"`
	Kind        string    `json:"kind"`
	Selector    string    `json:"selector,omitempty"`
	Description string    `json:"description,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	CreatedBy   string    `json:"created_by,omitempty"`
	UpdatedAt   time.Time `json:"updated_at"`
	Revision    uint64    `json:"revision"`
}

// GroupInput creates or replaces a group.
type GroupInput struct {
	Name        string    `json:"name,omitempty"`
	Kind        string    `json:"kind"`
	Selector    string    `json:"selector,omitempty"`
	Description string    `json:"description,omitempty"`
	Members     *[]string `json:"members,omitempty"`
}

// ListGroups returns every group.
func (c *Client) ListGroups(ctx context.Context) ([]Group, error) {
	var out struct {
		Items []Group `json:"items"`
	}
	err := c.do(ctx, http.MethodGet, "/api/v1/groups", nil, &out)
	return out.Items, err
}

// GetGroup returns one group.
func (c *Client) GetGroup(ctx context.Context, name string) (Group, error) {
	var g Group
	err := c.do(ctx, http.MethodGet, "/api/v1/groups/"+url.PathEscape(name), nil, &g)
	return g, err
}

// CreateGroup adds a group.
func (c *Client) CreateGroup(ctx context.Context, in GroupInput) (Group, error) {
	var g Group
	err := c.do(ctx, http.MethodPost, "/api/v1/groups", in, &g)
	return g, err
}

// PutGroup replaces a group.
func (c *Client) PutGroup(ctx context.Context, name string, in GroupInput) (Group, error) {
	var g Group
	err := c.do(ctx, http.MethodPut, "/api/v1/groups/"+url.PathEscape(name), in, &g)
	return g, err
}

// DeleteGroup removes a group.
func (c *Client) DeleteGroup(ctx context.Context, name string) (Group, error) {
	var g Group
	err := c.do(ctx, http.MethodDelete, "/api/v1/groups/"+url.PathEscape(name), nil, &g)
	return g, err
}

// GroupMembers returns one page of a group's members.
func (c *Client) GroupMembers(ctx context.Context, name string, q TargetQuery) (TargetPage, error) {
	var page TargetPage
	err := c.do(ctx, http.MethodGet, withQuery("/api/v1/groups/"+url.PathEscape(name)+"/members", q.values()), nil, &page)
	return page, err
}
