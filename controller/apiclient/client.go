// Package apiclient is the Go client for the controller's REST API, used by
// the `opsconductor` CLI and by tests that drive real processes. It only
// speaks HTTP; it never reaches into controller packages' state.
package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/opsconductor/opsconductor/controller/cluster"
	"github.com/opsconductor/opsconductor/controller/probe"
)

// DefaultAddress is where a local controller listens.
const DefaultAddress = "http://127.0.0.1:3000"

// Client talks to one controller.
type Client struct {
	base *url.URL
	http *http.Client
}

// New returns a client for the controller at address (scheme://host:port).
func New(address string) (*Client, error) {
	if !strings.Contains(address, "://") {
		address = "http://" + address
	}
	u, err := url.Parse(address)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("--address %q: not a URL like http://127.0.0.1:3000", address)
	}
	return &Client{base: u, http: &http.Client{Timeout: 0}}, nil
}

// Error is the controller's JSON error envelope.
type Error struct {
	Status int `json:"-"`
	// RetryAfter is the server's Retry-After on 429 and 503 answers.
	RetryAfter time.Duration `json:"-"`
	Code       string        `json:"code"`
	Message    string        `json:"message"`
	Field      string        `json:"field,omitempty"`
}

func (e *Error) Error() string {
	s := fmt.Sprintf("%s (HTTP %d, %s)", e.Message, e.Status, e.Code)
	if e.Field != "" {
		s = e.Field + ": " + s
	}
	return s
}

// Health is GET /health.
type Health struct {
	Status  string         `json:"status"`
	NodeID  string         `json:"node_id"`
	Version string         `json:"version"`
	Raft    cluster.Status `json:"raft"`
}

// Health returns the node's health document.
func (c *Client) Health(ctx context.Context) (Health, error) {
	var h Health
	err := c.do(ctx, http.MethodGet, "/health", nil, &h)
	return h, err
}

// Ready returns nil when GET /health/ready answers 200.
func (c *Client) Ready(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, "/health/ready", nil, nil)
}

// PeerList is GET /api/v1/operator/raft/peers.
type PeerList struct {
	LeaderID string                 `json:"leader_id"`
	Peers    []cluster.PeerProgress `json:"peers"`
}

// Peers lists the Raft servers.
func (c *Client) Peers(ctx context.Context, consistent bool) (PeerList, error) {
	var out PeerList
	path := "/api/v1/operator/raft/peers"
	if consistent {
		path += "?consistent=true"
	}
	err := c.do(ctx, http.MethodGet, path, nil, &out)
	return out, err
}

// RemovePeer removes a server from the Raft configuration.
func (c *Client) RemovePeer(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/api/v1/operator/raft/peers/"+url.PathEscape(id), nil, nil)
}

// TransferLeadership asks the leader to step down in favour of another voter.
func (c *Client) TransferLeadership(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/api/v1/operator/raft/transfer-leadership", nil, nil)
}

// WriteProbe commits a write check.
func (c *Client) WriteProbe(ctx context.Context, payload string) (probe.Record, error) {
	var rec probe.Record
	err := c.do(ctx, http.MethodPost, "/api/v1/operator/probes", map[string]string{"payload": payload}, &rec)
	return rec, err
}

// ProbePage is one page of GET /api/v1/operator/probes.
type ProbePage struct {
	Items []probe.Record `json:"items"`
	Next  string         `json:"next"`
}

// ListProbes returns one page of write checks after the given ID.
func (c *Client) ListProbes(ctx context.Context, after string, limit int) (ProbePage, error) {
	var out ProbePage
	q := url.Values{"limit": {fmt.Sprint(limit)}}
	if after != "" {
		q.Set("after", after)
	}
	err := c.do(ctx, http.MethodGet, "/api/v1/operator/probes?"+q.Encode(), nil, &out)
	return out, err
}

// SnapshotSave streams a snapshot of the state store into w. stale serves
// this node's state as it is, without a round trip to the leader.
func (c *Client) SnapshotSave(ctx context.Context, w io.Writer, stale bool) (int64, error) {
	path := "/api/v1/operator/snapshot"
	if stale {
		path += "?stale=true"
	}
	resp, err := c.send(ctx, http.MethodGet, path, nil, "")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("download snapshot: %w", err)
	}
	return n, nil
}

// SnapshotRestore replaces the cluster's state with a saved snapshot.
func (c *Client) SnapshotRestore(ctx context.Context, r io.Reader) error {
	resp, err := c.send(ctx, http.MethodPut, "/api/v1/operator/snapshot", r, "application/octet-stream")
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// maxRateLimitWaits bounds how often one call waits out a 429.
const maxRateLimitWaits = 5

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var payload []byte
	ctype := ""
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		payload, ctype = b, "application/json"
	}
	var resp *http.Response
	for waits := 0; ; waits++ {
		var body io.Reader
		if payload != nil {
			body = bytes.NewReader(payload)
		}
		var err error
		resp, err = c.send(ctx, method, path, body, ctype)
		var apiErr *Error
		// A rate-limited request was not processed, so it is safe to send
		// again once the server says the bucket has refilled.
		if errors.As(err, &apiErr) && apiErr.Status == http.StatusTooManyRequests && waits < maxRateLimitWaits {
			t := time.NewTimer(min(max(apiErr.RetryAfter, 100*time.Millisecond), 10*time.Second))
			select {
			case <-ctx.Done():
				t.Stop()
				return err
			case <-t.C:
			}
			continue
		}
		if err != nil {
			return err
		}
		break
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode response: %w", method, path, err)
	}
	return nil
}

func (c *Client) send(ctx context.Context, method, path string, body io.Reader, ctype string) (*http.Response, error) {
	u := c.base.JoinPath()
	rel, err := url.Parse(path)
	if err != nil {
		return nil, fmt.Errorf("bad path %q: %w", path, err)
	}
	u = u.ResolveReference(rel)
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, u.Redacted(), err)
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		var env struct {
			Error Error `json:"error"`
		}
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(raw, &env) != nil || env.Error.Message == "" {
			env.Error = Error{Code: "http_error", Message: strings.TrimSpace(string(raw))}
		}
		env.Error.Status = resp.StatusCode
		if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs >= 0 {
			env.Error.RetryAfter = time.Duration(secs) * time.Second
		}
		return nil, &env.Error
	}
	return resp, nil
}

// WaitReady polls /health/ready until it answers 200 or ctx ends, calling
// progress with each reason it is not ready yet.
func (c *Client) WaitReady(ctx context.Context, progress func(reason string)) error {
	for {
		err := c.Ready(ctx)
		if err == nil {
			return nil
		}
		if progress != nil {
			progress(err.Error())
		}
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("waiting for ready: %w (last: %v)", ctx.Err(), err)
		case <-t.C:
		}
	}
}
