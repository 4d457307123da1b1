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
	// auth supplies the bearer credential; nil sends none.
	auth TokenSource
}

// Option configures a Client.
type Option func(*Client)

// WithToken authenticates every request with a fixed credential: an API
// token ("oct_…") or an access JWT. A rejected token is reported, never
// refreshed.
func WithToken(token string) Option {
	return func(c *Client) {
		if token != "" {
			c.auth = staticToken(token)
		}
	}
}

// WithTokenSource authenticates every request with ts's credential. When
// ts also implements Refresher, a 401 makes the client ask it for a new
// credential once and repeat the request.
func WithTokenSource(ts TokenSource) Option {
	return func(c *Client) { c.auth = ts }
}

// WithStoredCredentials authenticates with the login saved in store for
// this client's address (by `opsconductor login`), refreshing it when the
// server rejects the access token.
func WithStoredCredentials(store *CredentialStore) Option {
	return func(c *Client) { c.auth = &storedSource{store: store, client: c} }
}

// New returns a client for the controller at address (scheme://host:port).
// Without an option it sends no credential, which only the public routes
// (health, metrics, login) accept.
func New(address string, opts ...Option) (*Client, error) {
	if !strings.Contains(address, "://") {
		address = "http://" + address
	}
	u, err := url.Parse(address)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("--address %q: not a URL like http://127.0.0.1:3000", address)
	}
	c := &Client{base: u, http: &http.Client{Timeout: 0}}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// Address is the controller's address in the canonical form that keys
// stored credentials: scheme://host:port, lower case, no trailing slash.
func (c *Client) Address() string {
	return canonicalAddress(c.base)
}

func canonicalAddress(u *url.URL) string {
	return strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Host) + strings.TrimRight(u.Path, "/")
}

// Error is the controller's JSON error envelope.
type Error struct {
	Status int `json:"-"`
	// RetryAfter is the server's Retry-After on 429 and 503 answers.
	RetryAfter time.Duration `json:"-"`
	Code       string        `json:"code"`
	Message    string        `json:"message"`
	Field      string        `json:"field,omitempty"`
	// Details lists every problem of a validation error, each with its
	// field path.
	Details []ErrorDetail `json:"details,omitempty"`
}

// ErrorDetail is one problem of a validation error.
type ErrorDetail struct {
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

func (e *Error) Error() string {
	s := fmt.Sprintf("%s (HTTP %d, %s)", e.Message, e.Status, e.Code)
	if e.Field != "" {
		s = e.Field + ": " + s
	}
	for _, d := range e.Details {
		if d.Field != "" && d.Field == e.Field && d.Message == e.Message {
			continue
		}
		s += "\n  " + d.Field + ": " + d.Message
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
	resp, err := c.roundTrip(ctx, http.MethodGet, path, noBody, "")
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

// SnapshotRestore replaces the cluster's state with a saved snapshot. When
// r is also an io.Seeker (a file), a request refused before the server
// read it (an expired access token, a rate limit) is sent again from the
// same offset; any other reader is sent once.
func (c *Client) SnapshotRestore(ctx context.Context, r io.Reader) error {
	body := func() (io.Reader, bool) { return r, true }
	if s, ok := r.(io.Seeker); ok {
		if start, err := s.Seek(0, io.SeekCurrent); err == nil {
			body = func() (io.Reader, bool) {
				_, err := s.Seek(start, io.SeekStart)
				// Hide Close: net/http closes a request body it is given,
				// and this one must stay open to be sent again.
				return struct{ io.Reader }{r}, err == nil
			}
		}
	} else {
		sent := false
		body = func() (io.Reader, bool) {
			if sent {
				return nil, false
			}
			sent = true
			return r, true
		}
	}
	resp, err := c.roundTrip(ctx, http.MethodPut, "/api/v1/operator/snapshot", body, "application/octet-stream")
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// maxRateLimitWaits bounds how often one call waits out a 429.
const maxRateLimitWaits = 5

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	return c.call(ctx, method, path, in, out, true)
}

// doAnonymous is do without a credential, for login and refresh.
func (c *Client) doAnonymous(ctx context.Context, method, path string, in, out any) error {
	return c.call(ctx, method, path, in, out, false)
}

func (c *Client) call(ctx context.Context, method, path string, in, out any, auth bool) error {
	body, ctype := noBody, ""
	if in != nil {
		payload, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = func() (io.Reader, bool) { return bytes.NewReader(payload), true }
		ctype = "application/json"
	}
	var (
		resp *http.Response
		err  error
	)
	if auth {
		resp, err = c.roundTrip(ctx, method, path, body, ctype)
	} else {
		resp, err = c.attempts(ctx, method, path, body, ctype, "")
	}
	if err != nil {
		return err
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

// bodyFunc returns the request body for one attempt, or false when the
// body cannot be sent again.
type bodyFunc func() (io.Reader, bool)

func noBody() (io.Reader, bool) { return nil, true }

// roundTrip sends an authenticated request. A 401 for a credential that
// the token source can refresh is answered by refreshing once and sending
// the request again: the server refused it before doing anything.
func (c *Client) roundTrip(ctx context.Context, method, path string, body bodyFunc, ctype string) (*http.Response, error) {
	token := ""
	if c.auth != nil {
		var err error
		if token, err = c.auth.Token(ctx); err != nil {
			return nil, err
		}
	}
	resp, err := c.attempts(ctx, method, path, body, ctype, token)
	var apiErr *Error
	if token == "" || !errors.As(err, &apiErr) || apiErr.Status != http.StatusUnauthorized {
		return resp, err
	}
	r, ok := c.auth.(Refresher)
	if !ok {
		return nil, err
	}
	if _, replayable := body(); !replayable {
		return nil, err
	}
	fresh, rerr := r.Refresh(ctx, token)
	if rerr != nil {
		return nil, rerr
	}
	return c.attempts(ctx, method, path, body, ctype, fresh)
}

// attempts sends a request, waiting out rate limits and controllers that
// are not ready yet: neither request was processed, so it is safe to send
// it again after the server's Retry-After.
func (c *Client) attempts(ctx context.Context, method, path string, body bodyFunc, ctype, token string) (*http.Response, error) {
	for waits := 0; ; waits++ {
		b, ok := body()
		if !ok {
			return nil, fmt.Errorf("%s %s: the request body cannot be sent again", method, path)
		}
		resp, err := c.send(ctx, method, path, b, ctype, token)
		var apiErr *Error
		if errors.As(err, &apiErr) && retryable(apiErr) && waits < maxRateLimitWaits {
			if _, replayable := body(); !replayable {
				return nil, err
			}
			t := time.NewTimer(min(max(apiErr.RetryAfter, 100*time.Millisecond), 10*time.Second))
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, err
			case <-t.C:
			}
			continue
		}
		return resp, err
	}
}

func (c *Client) send(ctx context.Context, method, path string, body io.Reader, ctype, token string) (*http.Response, error) {
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
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
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

// retryable reports whether the server refused a request before handling
// it, for a reason that waiting cures: a rate limit (but not a locked
// account, which seconds do not unlock), or a controller that cannot check
// credentials until it has caught up with its leader.
func retryable(e *Error) bool {
	switch e.Status {
	case http.StatusTooManyRequests:
		return e.Code != "account_locked"
	case http.StatusServiceUnavailable:
		return e.Code == "not_ready"
	}
	return false
}
