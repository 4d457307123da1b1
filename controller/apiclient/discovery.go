package apiclient

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/opsconductor/opsconductor/plugins/builtin"
)

// The discovery API's documents, mirroring the controller's JSON. Hosts
// are the discover step's own types.

// DiscoveredHost is a host a scan found.
type DiscoveredHost = builtin.DiscoveredHost

// DiscoveredPort is one open port of a found host.
type DiscoveredPort = builtin.DiscoveredPort

// DiscoveryAutoImport imports hosts with one of Ports open, with Tags.
type DiscoveryAutoImport struct {
	Ports []int             `json:"ports"`
	Tags  map[string]string `json:"tags,omitempty"`
}

// DiscoveryProfileInput creates or replaces a profile; Agent names the
// scanning agent by name or ID.
type DiscoveryProfileInput struct {
	Name          string               `json:"name,omitempty"`
	CIDRs         []string             `json:"cidrs"`
	Ports         []string             `json:"ports,omitempty"`
	Agent         string               `json:"agent"`
	Concurrency   int                  `json:"concurrency,omitempty"`
	Rate          int                  `json:"rate,omitempty"`
	Timeout       string               `json:"timeout,omitempty"`
	BannerTimeout string               `json:"banner_timeout,omitempty"`
	Resolve       *bool                `json:"resolve,omitempty"`
	AutoImport    *DiscoveryAutoImport `json:"auto_import,omitempty"`
	Schedule      string               `json:"schedule,omitempty"`
	TimeZone      string               `json:"time_zone,omitempty"`
	Revision      uint64               `json:"revision,omitempty"`
}

// DiscoveryProfile is a stored profile; Agent is the agent's ID.
type DiscoveryProfile struct {
	DiscoveryProfileInput
	LastFire  *time.Time `json:"last_fire,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	CreatedBy string     `json:"created_by,omitempty"`
	UpdatedAt time.Time  `json:"updated_at"`
}

// DiscoveryProgress is how far a scan is: hosts probed of Total.
type DiscoveryProgress struct {
	Probed int64 `json:"probed"`
	Total  int64 `json:"total"`
	Up     int64 `json:"up"`
}

// DiscoverySummary counts a finished scan's findings.
type DiscoverySummary struct {
	HostsUp      int `json:"hosts_up"`
	OpenPorts    int `json:"open_ports"`
	Appeared     int `json:"appeared"`
	Changed      int `json:"changed"`
	Disappeared  int `json:"disappeared"`
	Proposed     int `json:"proposed"`
	AutoImported int `json:"auto_imported"`
}

// DiscoveryScan is one run of a profile.
type DiscoveryScan struct {
	ID         string            `json:"id"`
	Profile    string            `json:"profile"`
	Agent      string            `json:"agent"`
	AttemptID  string            `json:"attempt_id,omitempty"`
	Status     string            `json:"status"`
	Error      string            `json:"error,omitempty"`
	Progress   DiscoveryProgress `json:"progress"`
	Summary    *DiscoverySummary `json:"summary,omitempty"`
	Previous   string            `json:"previous,omitempty"`
	CreatedAt  time.Time         `json:"created_at"`
	CreatedBy  string            `json:"created_by,omitempty"`
	StartedAt  *time.Time        `json:"started_at,omitempty"`
	FinishedAt *time.Time        `json:"finished_at,omitempty"`
}

// Finished reports whether the scan is over.
func (s DiscoveryScan) Finished() bool {
	return s.Status == "succeeded" || s.Status == "failed" || s.Status == "canceled"
}

// DiscoveryPortChange is one port's service before and after.
type DiscoveryPortChange struct {
	Port   int            `json:"port"`
	Before DiscoveredPort `json:"before"`
	After  DiscoveredPort `json:"after"`
}

// DiscoveryHostChange is a host both scans found, changed.
type DiscoveryHostChange struct {
	Address string                `json:"address"`
	Opened  []int                 `json:"opened,omitempty"`
	Closed  []int                 `json:"closed,omitempty"`
	Changed []DiscoveryPortChange `json:"changed,omitempty"`
}

// DiscoveryDiff is what changed since the profile's previous scan.
type DiscoveryDiff struct {
	Appeared    []DiscoveredHost      `json:"appeared"`
	Changed     []DiscoveryHostChange `json:"changed"`
	Disappeared []DiscoveredHost      `json:"disappeared"`
}

// DiscoveryScanDetail is a scan with its diff (once it succeeded).
type DiscoveryScanDetail struct {
	DiscoveryScan
	Diff *DiscoveryDiff `json:"diff,omitempty"`
}

// DiscoveryScanPage is a page of scans, newest first.
type DiscoveryScanPage struct {
	Items []DiscoveryScan `json:"items"`
	Next  string          `json:"next,omitempty"`
}

// DiscoveryHost is a found host and the target holding it, if any.
type DiscoveryHost struct {
	DiscoveredHost
	Target string `json:"target,omitempty"`
}

// DiscoveryHostPage is a page of a scan's hosts, by address.
type DiscoveryHostPage struct {
	Items []DiscoveryHost `json:"items"`
	Next  string          `json:"next,omitempty"`
}

// DiscoveryImportRequest names the hosts to import, or All.
type DiscoveryImportRequest struct {
	Hosts []string          `json:"hosts,omitempty"`
	All   bool              `json:"all,omitempty"`
	Tags  map[string]string `json:"tags,omitempty"`
}

// DiscoveryImportResult is what an import did; Skipped maps addresses
// the inventory already holds to their target.
type DiscoveryImportResult struct {
	Report  ImportReport      `json:"report"`
	Skipped map[string]string `json:"skipped"`
}

// DiscoveryRanges are the CIDR ranges an agent may scan.
type DiscoveryRanges struct {
	Agent     string    `json:"agent"`
	CIDRs     []string  `json:"cidrs"`
	UpdatedAt time.Time `json:"updated_at"`
	UpdatedBy string    `json:"updated_by,omitempty"`
}

const discoveryBase = "/api/v1/discovery"

// CreateDiscoveryProfile stores a new profile.
func (c *Client) CreateDiscoveryProfile(ctx context.Context, in DiscoveryProfileInput) (DiscoveryProfile, error) {
	var out DiscoveryProfile
	err := c.do(ctx, http.MethodPost, discoveryBase+"/profiles", in, &out)
	return out, err
}

// ListDiscoveryProfiles returns every profile.
func (c *Client) ListDiscoveryProfiles(ctx context.Context) ([]DiscoveryProfile, error) {
	var out struct {
		Items []DiscoveryProfile `json:"items"`
	}
	err := c.do(ctx, http.MethodGet, discoveryBase+"/profiles", nil, &out)
	return out.Items, err
}

// GetDiscoveryProfile returns one profile.
func (c *Client) GetDiscoveryProfile(ctx context.Context, name string) (DiscoveryProfile, error) {
	var out DiscoveryProfile
	err := c.do(ctx, http.MethodGet, discoveryBase+"/profiles/"+url.PathEscape(name), nil, &out)
	return out, err
}

// DeleteDiscoveryProfile deletes a profile.
func (c *Client) DeleteDiscoveryProfile(ctx context.Context, name string) (DiscoveryProfile, error) {
	var out DiscoveryProfile
	err := c.do(ctx, http.MethodDelete, discoveryBase+"/profiles/"+url.PathEscape(name), nil, &out)
	return out, err
}

// RunDiscoveryProfile starts a scan of the profile.
func (c *Client) RunDiscoveryProfile(ctx context.Context, name string) (DiscoveryScan, error) {
	var out DiscoveryScan
	err := c.do(ctx, http.MethodPost, discoveryBase+"/profiles/"+url.PathEscape(name)+"/run", nil, &out)
	return out, err
}

// ListDiscoveryScans returns a page of scans, of one profile when set.
func (c *Client) ListDiscoveryScans(ctx context.Context, profile, after string, limit int) (DiscoveryScanPage, error) {
	q := url.Values{}
	if profile != "" {
		q.Set("profile", profile)
	}
	if after != "" {
		q.Set("after", after)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out DiscoveryScanPage
	err := c.do(ctx, http.MethodGet, relPath(discoveryBase+"/scans", q), nil, &out)
	return out, err
}

// GetDiscoveryScan returns a scan and its diff.
func (c *Client) GetDiscoveryScan(ctx context.Context, id string) (DiscoveryScanDetail, error) {
	var out DiscoveryScanDetail
	err := c.do(ctx, http.MethodGet, discoveryBase+"/scans/"+url.PathEscape(id), nil, &out)
	return out, err
}

// CancelDiscoveryScan stops a running scan.
func (c *Client) CancelDiscoveryScan(ctx context.Context, id string) (DiscoveryScan, error) {
	var out DiscoveryScan
	err := c.do(ctx, http.MethodPost, discoveryBase+"/scans/"+url.PathEscape(id)+"/cancel", nil, &out)
	return out, err
}

// DiscoveryScanHosts returns a page of a scan's hosts.
func (c *Client) DiscoveryScanHosts(ctx context.Context, id, after string, limit int, proposedOnly bool) (DiscoveryHostPage, error) {
	q := url.Values{}
	if after != "" {
		q.Set("after", after)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if proposedOnly {
		q.Set("proposed", "true")
	}
	var out DiscoveryHostPage
	err := c.do(ctx, http.MethodGet, relPath(discoveryBase+"/scans/"+url.PathEscape(id)+"/hosts", q), nil, &out)
	return out, err
}

// ImportDiscoveryScan imports a scan's hosts as targets.
func (c *Client) ImportDiscoveryScan(ctx context.Context, id string, req DiscoveryImportRequest) (DiscoveryImportResult, error) {
	var out DiscoveryImportResult
	err := c.do(ctx, http.MethodPost, discoveryBase+"/scans/"+url.PathEscape(id)+"/import", req, &out)
	return out, err
}

// DiscoveryRanges returns the ranges an agent may scan.
func (c *Client) DiscoveryRanges(ctx context.Context, agent string) (DiscoveryRanges, error) {
	var out DiscoveryRanges
	err := c.do(ctx, http.MethodGet, discoveryBase+"/agents/"+url.PathEscape(agent)+"/ranges", nil, &out)
	return out, err
}

// SetDiscoveryRanges replaces the ranges an agent may scan.
func (c *Client) SetDiscoveryRanges(ctx context.Context, agent string, cidrs []string) (DiscoveryRanges, error) {
	var out DiscoveryRanges
	if cidrs == nil {
		cidrs = []string{}
	}
	err := c.do(ctx, http.MethodPut, discoveryBase+"/agents/"+url.PathEscape(agent)+"/ranges", map[string][]string{"cidrs": cidrs}, &out)
	return out, err
}
