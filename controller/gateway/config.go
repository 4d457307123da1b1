package gateway

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"sort"
	"strconv"
	"time"
)

// RouteClass groups routes that share a rate limit.
type RouteClass string

// Route classes. Health is never rate limited: a load balancer or Prometheus
// that is throttled would take a healthy node out of service.
const (
	ClassHealth   RouteClass = "health"
	ClassRead     RouteClass = "read"
	ClassWrite    RouteClass = "write"
	ClassOperator RouteClass = "operator"
	// ClassLogin is password login, limited per source address so that
	// guessing is slow before the per-user lockout even starts.
	ClassLogin RouteClass = "login"
)

// Limit is a token bucket: RPS tokens per second, at most Burst at once. An
// RPS of math.Inf(1) means unlimited (Burst is then ignored).
type Limit struct {
	RPS   float64
	Burst int
}

func (l Limit) unlimited() bool { return math.IsInf(l.RPS, 1) }

// Defaults for Config fields left at their zero value.
const (
	DefaultAddr             = ":3000"
	DefaultMaxBodyBytes     = 1 << 20 // 1 MiB
	DefaultMaxSnapshotBytes = 1 << 30 // 1 GiB
	DefaultShutdownTimeout  = 10 * time.Second
)

// DefaultRateLimits are per client (source IP, and identity once there is
// one). They are sized for people and scripts, not for load tests: a
// benchmark sets its own.
func DefaultRateLimits() map[RouteClass]Limit {
	return map[RouteClass]Limit{
		ClassRead:     {RPS: 100, Burst: 200},
		ClassWrite:    {RPS: 20, Burst: 40},
		ClassOperator: {RPS: 5, Burst: 10},
		ClassLogin:    {RPS: 0.2, Burst: 10},
	}
}

// Config is the gateway's part of the controller configuration.
type Config struct {
	// Addr is the listen address used by ListenAndServe.
	Addr string
	// MaxBodyBytes bounds every request body except snapshot restores and
	// plugin uploads (plugins.MaxBinary plus the form's small parts).
	MaxBodyBytes int64
	// MaxSnapshotBytes bounds the body of PUT /api/v1/operator/snapshot,
	// which is streamed into the cluster rather than buffered.
	MaxSnapshotBytes int64
	// RateLimits per route class; a class left out gets its default.
	RateLimits map[RouteClass]Limit
	// CORSAllowedOrigins lists origins ("https://ops.example.com") allowed
	// to call the API from a browser, or "*" for any. Empty turns CORS off:
	// the UI is served from the same origin and needs none.
	CORSAllowedOrigins []string
	// ShutdownTimeout bounds how long Serve waits for requests in flight
	// once its context ends.
	ShutdownTimeout time.Duration
}

// withDefaults returns a copy with zero values replaced by defaults. The
// caller's map is copied, never written.
func (c Config) withDefaults() Config {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.MaxSnapshotBytes == 0 {
		c.MaxSnapshotBytes = DefaultMaxSnapshotBytes
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	limits := DefaultRateLimits()
	for class, l := range c.RateLimits {
		limits[class] = l
	}
	c.RateLimits = limits
	c.CORSAllowedOrigins = append([]string(nil), c.CORSAllowedOrigins...)
	return c
}

// validate reports every problem at once, each naming its field.
func (c Config) validate() error {
	var errs []error
	if _, port, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fieldErrorf("Addr", "%q is not host:port: %w", c.Addr, err))
	} else if n, err := strconv.ParseUint(port, 10, 16); err != nil || (n == 0 && port != "0") {
		errs = append(errs, fieldErrorf("Addr", "port %q is not a number from 0 to 65535", port))
	}
	if c.MaxBodyBytes < 0 {
		errs = append(errs, fieldErrorf("MaxBodyBytes", "must be positive, got %d", c.MaxBodyBytes))
	}
	if c.MaxSnapshotBytes < 0 {
		errs = append(errs, fieldErrorf("MaxSnapshotBytes", "must be positive, got %d", c.MaxSnapshotBytes))
	}
	if c.ShutdownTimeout < 0 {
		errs = append(errs, fieldErrorf("ShutdownTimeout", "must be positive, got %s", c.ShutdownTimeout))
	}
	errs = append(errs, validateRateLimits(c.RateLimits)...)
	for i, o := range c.CORSAllowedOrigins {
		if err := validateOrigin(o); err != nil {
			errs = append(errs, fieldErrorf(fmt.Sprintf("CORSAllowedOrigins[%d]", i), "%w", err))
		}
	}
	return errors.Join(errs...)
}

func validateRateLimits(limits map[RouteClass]Limit) []error {
	classes := make([]string, 0, len(limits))
	for class := range limits {
		classes = append(classes, string(class))
	}
	sort.Strings(classes) // stable error order for people and tests
	var errs []error
	for _, name := range classes {
		class := RouteClass(name)
		l := limits[class]
		field := fmt.Sprintf("RateLimits[%q]", name)
		switch {
		case !isLimitedClass(class):
			errs = append(errs, fieldErrorf(field, "unknown route class (want %q, %q, %q or %q)", ClassRead, ClassWrite, ClassOperator, ClassLogin))
		case l.unlimited():
		case math.IsNaN(l.RPS) || l.RPS <= 0:
			errs = append(errs, fieldErrorf(field+".RPS", "must be positive or +Inf for unlimited, got %v", l.RPS))
		case l.Burst < 1:
			errs = append(errs, fieldErrorf(field+".Burst", "must be at least 1, got %d", l.Burst))
		}
	}
	return errs
}

// isLimitedClass reports whether Config.RateLimits may configure c.
func isLimitedClass(c RouteClass) bool {
	switch c {
	case ClassRead, ClassWrite, ClassOperator, ClassLogin:
		return true
	}
	return false
}

// validateOrigin accepts "*" or a bare origin: scheme://host[:port], the
// exact form a browser sends in the Origin header.
func validateOrigin(o string) error {
	if o == "*" {
		return nil
	}
	u, err := url.Parse(o)
	if err != nil {
		return fmt.Errorf("%q is not a URL: %w", o, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q must be http(s)://host[:port]", o)
	}
	if u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("%q must be an origin without path, query or user info", o)
	}
	return nil
}

// fieldErrorf prefixes a configuration problem with the field to blame, as
// a person would look it up: "RateLimits[\"read\"].Burst: must be at least 1".
func fieldErrorf(field, format string, args ...any) error {
	return fmt.Errorf("%s: %w", field, fmt.Errorf(format, args...))
}
