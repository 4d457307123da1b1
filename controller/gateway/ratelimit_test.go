package gateway

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"
)

// fakeClock is a clock the test moves by hand, so that no test sleeps.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestRateLimitHeaders(t *testing.T) {
	f := newFixture(t, Config{RateLimits: map[RouteClass]Limit{ClassRead: {RPS: 1, Burst: 2}}})
	clock := newFakeClock()
	f.srv.limits.now = clock.Now

	type want struct {
		status                       int
		remaining, reset, retryAfter string
	}
	steps := []struct {
		name    string
		advance time.Duration
		want    want
	}{
		{name: "the first request is allowed and leaves one token", want: want{200, "1", "1", ""}},
		{name: "the second request empties the bucket", want: want{200, "0", "2", ""}},
		{name: "the third request is refused with Retry-After", want: want{429, "0", "2", "1"}},
		{name: "a refused request costs nothing, so it is refused alike", want: want{429, "0", "2", "1"}},
		{name: "after a second one token is back", advance: time.Second, want: want{200, "0", "2", ""}},
		{name: "after the reset time the bucket is full again", advance: 2 * time.Second, want: want{200, "1", "1", ""}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			clock.Advance(s.advance)
			rec := f.do(t, newRequest("GET", "/api/v1/operator/probes", "", ""))
			h := rec.Header()
			got := want{rec.Code, h.Get("RateLimit-Remaining"), h.Get("RateLimit-Reset"), h.Get("Retry-After")}
			if got != s.want {
				t.Fatalf("got %+v, want %+v", got, s.want)
			}
			if h.Get("RateLimit-Limit") != "2" {
				t.Errorf("RateLimit-Limit = %q, want 2", h.Get("RateLimit-Limit"))
			}
			if rec.Code == http.StatusTooManyRequests {
				if e := decodeEnvelope(t, rec); e.Code != "rate_limited" {
					t.Errorf("code = %q, want rate_limited", e.Code)
				}
			}
		})
	}
}

func TestRateLimitScope(t *testing.T) {
	tight := Limit{RPS: 0.001, Burst: 1}
	tests := []struct {
		name     string
		identity func(*http.Request) string
		first    string // RemoteAddr of the request that uses the only token
		target   string
		second   string
		want     int
	}{
		{name: "another address has its own bucket", first: "192.0.2.1:1000", second: "192.0.2.2:1000",
			target: "/api/v1/operator/probes", want: 200},
		{name: "the same address shares its bucket across ports", first: "192.0.2.1:1000", second: "192.0.2.1:2000",
			target: "/api/v1/operator/probes", want: 429},
		{name: "an IPv6 /64 shares one bucket", first: "[2001:db8::1]:1000", second: "[2001:db8::2]:1000",
			target: "/api/v1/operator/probes", want: 429},
		{name: "one identity shares its bucket across addresses", first: "192.0.2.1:1000", second: "192.0.2.2:1000",
			identity: func(*http.Request) string { return "alice" }, target: "/api/v1/operator/probes", want: 429},
		{name: "classes have separate buckets", first: "192.0.2.1:1000", second: "192.0.2.1:1000",
			target: "/api/v1/operator/raft/peers", want: 200},
		{name: "health is never limited", first: "192.0.2.1:1000", second: "192.0.2.1:1000",
			target: "/health", want: 200},
		{name: "metrics are never limited", first: "192.0.2.1:1000", second: "192.0.2.1:1000",
			target: "/metrics", want: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			limits := map[RouteClass]Limit{ClassRead: tight, ClassWrite: tight, ClassOperator: tight}
			// Every fixture request carries the admin's token, so the
			// address cases name no client; the identity case names one.
			name := tt.identity
			if name == nil {
				name = func(*http.Request) string { return "" }
			}
			f := newFixture(t, Config{RateLimits: limits}, func(d *Deps) { d.ClientName = name })
			first := newRequest("GET", "/api/v1/operator/probes", "", "")
			first.RemoteAddr = tt.first
			if rec := f.do(t, first); rec.Code != http.StatusOK {
				t.Fatalf("first request: status %d", rec.Code)
			}
			second := newRequest("GET", tt.target, "", "")
			second.RemoteAddr = tt.second
			rec := f.do(t, second)
			if rec.Code != tt.want {
				t.Fatalf("second request: status %d, want %d", rec.Code, tt.want)
			}
			limited := rec.Header().Get("RateLimit-Limit") != ""
			if wantHeaders := tt.target != "/health" && tt.target != "/metrics"; limited != wantHeaders {
				t.Errorf("RateLimit-Limit present = %v, want %v", limited, wantHeaders)
			}
		})
	}
}

func TestRateLimitRefundsOtherBuckets(t *testing.T) {
	// The identity bucket refuses; the address bucket must not be charged,
	// or a throttled identity would also throttle its whole office.
	f := newFixture(t, Config{RateLimits: map[RouteClass]Limit{ClassRead: {RPS: 0.001, Burst: 1}}},
		func(d *Deps) {
			d.ClientName = func(r *http.Request) string { return r.Header.Get("X-Test-User") }
		})
	send := func(user, addr string) int {
		req := newRequest("GET", "/api/v1/operator/probes", "", "")
		req.RemoteAddr = addr
		req.Header.Set("X-Test-User", user)
		return f.do(t, req).Code
	}
	steps := []struct {
		name, user, addr string
		want             int
	}{
		{"alice uses her token from the office", "alice", "192.0.2.1:1", 200},
		{"alice from home is refused by her identity bucket", "alice", "198.51.100.7:1", 429},
		{"bob at home still has the home address's token", "bob", "198.51.100.7:2", 200},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if got := send(s.user, s.addr); got != s.want {
				t.Fatalf("status = %d, want %d", got, s.want)
			}
		})
	}
}

func TestClientAddr(t *testing.T) {
	tests := []struct {
		name, remote, want string
	}{
		{"an IPv4 peer is keyed by its address", "192.0.2.1:1234", "192.0.2.1"},
		{"an IPv6 peer is keyed by its /64", "[2001:db8:1:2:3:4:5:6]:443", "2001:db8:1:2::/64"},
		{"an IPv4-mapped IPv6 peer is keyed as IPv4", "[::ffff:192.0.2.1]:80", "192.0.2.1"},
		{"an unparsable address is used as it is", "pipe", "pipe"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRequest("GET", "/", "", "")
			r.RemoteAddr = tt.remote
			if got := clientAddr(r); got != tt.want {
				t.Errorf("clientAddr(%q) = %q, want %q", tt.remote, got, tt.want)
			}
		})
	}
}

func TestLimiterSetIsBounded(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	t.Run("the least recently seen key is evicted at capacity", func(t *testing.T) {
		ls := newLimiterSet(Limit{RPS: 0.001, Burst: 1}, 3)
		for i, key := range []string{"a", "b", "c", "a", "d"} {
			ls.limiter(key, t0.Add(time.Duration(i)*time.Millisecond))
		}
		if ls.len() != 3 {
			t.Fatalf("len = %d, want 3", ls.len())
		}
		if _, ok := ls.byKey["b"]; ok {
			t.Error(`"b" (least recently seen) is still there`)
		}
		for _, key := range []string{"a", "c", "d"} {
			if _, ok := ls.byKey[key]; !ok {
				t.Errorf("%q was evicted", key)
			}
		}
	})
	t.Run("keys idle long enough to refill are evicted", func(t *testing.T) {
		ls := newLimiterSet(Limit{RPS: 10, Burst: 20}, 1000) // refills in 2s
		for i := 0; i < 500; i++ {
			ls.limiter(fmt.Sprintf("k%d", i), t0)
		}
		ls.limiter("late", t0.Add(time.Second))
		if ls.len() != 501 {
			t.Fatalf("len = %d before the idle time, want 501", ls.len())
		}
		ls.limiter("later", t0.Add(2*time.Second))
		if ls.len() != 2 {
			t.Fatalf("len = %d after the idle time, want 2", ls.len())
		}
	})
	t.Run("an evicted key comes back with a full bucket, as it would have had", func(t *testing.T) {
		ls := newLimiterSet(Limit{RPS: 1, Burst: 1}, 10)
		if !ls.limiter("a", t0).AllowN(t0, 1) {
			t.Fatal("first token refused")
		}
		later := t0.Add(time.Second)
		ls.limiter("b", later) // evicts "a"
		if !ls.limiter("a", later).AllowN(later, 1) {
			t.Fatal("token refused after a full refill")
		}
	})
}
