package gateway

import (
	"container/list"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/opsconductor/opsconductor/controller/problem"
)

const (
	// maxLimiterKeys bounds each class's limiter map. Past it, the least
	// recently seen client is evicted and will start again with a full
	// bucket: the price of bounded memory when more addresses than this are
	// active at once, which a per-address limit cannot stop anyway.
	maxLimiterKeys = 10000
	// maxLimiterIdle caps idle eviction for very slow limits.
	maxLimiterIdle = 24 * time.Hour
)

// rateLimiter applies each class's token bucket per source address and, once
// requests carry one, per client identity: a request must pass both, so
// neither a shared NAT address nor one identity spread over many addresses
// escapes its limit.
type rateLimiter struct {
	now      func() time.Time
	identity func(*http.Request) string
	classes  map[RouteClass]*limiterSet
}

func newRateLimiter(limits map[RouteClass]Limit, identity func(*http.Request) string) *rateLimiter {
	rl := &rateLimiter{now: time.Now, identity: identity, classes: map[RouteClass]*limiterSet{}}
	for class, l := range limits {
		if !l.unlimited() {
			rl.classes[class] = newLimiterSet(l, maxLimiterKeys)
		}
	}
	return rl
}

// decision is the outcome of one check, enough to fill the headers.
type decision struct {
	allowed    bool
	limit      int           // bucket size
	remaining  int           // whole tokens left
	reset      time.Duration // until the bucket is full again
	retryAfter time.Duration // until one token is back (rejections only)
}

// check takes one token from every bucket that applies to r, or none. ok is
// false when the class is not limited at all.
func (rl *rateLimiter) check(class RouteClass, r *http.Request) (d decision, ok bool) {
	set := rl.classes[class]
	if set == nil {
		return decision{}, false
	}
	now := rl.now()
	keys := []string{"ip:" + clientAddr(r)}
	if rl.identity != nil {
		if id := rl.identity(r); id != "" {
			keys = append(keys, "id:"+id)
		}
	}
	d = decision{allowed: true, limit: set.limit.Burst, remaining: set.limit.Burst}
	taken := make([]*rate.Reservation, 0, len(keys))
	for _, key := range keys {
		lim := set.limiter(key, now)
		res := lim.ReserveN(now, 1)
		if delay := res.DelayFrom(now); !res.OK() || delay > 0 {
			// Give back what this request took so that a rejected
			// request costs the client nothing in any bucket.
			res.CancelAt(now)
			for _, t := range taken {
				t.CancelAt(now)
			}
			d.allowed, d.remaining, d.retryAfter = false, 0, delay
			d.reset = max(d.reset, set.untilFull(lim.TokensAt(now)))
			return d, true
		}
		taken = append(taken, res)
		tokens := lim.TokensAt(now)
		d.remaining = min(d.remaining, max(0, int(math.Floor(tokens))))
		d.reset = max(d.reset, set.untilFull(tokens))
	}
	return d, true
}

// setHeaders writes the RateLimit-* fields (draft-ietf-httpapi-ratelimit-
// headers) on every limited response and Retry-After on rejections.
func (d decision) setHeaders(h http.Header) {
	h.Set("RateLimit-Limit", strconv.Itoa(d.limit))
	h.Set("RateLimit-Remaining", strconv.Itoa(d.remaining))
	h.Set("RateLimit-Reset", strconv.FormatInt(ceilSeconds(d.reset), 10))
	if !d.allowed {
		h.Set("Retry-After", strconv.FormatInt(max(1, ceilSeconds(d.retryAfter)), 10))
	}
}

func (d decision) err() error {
	return problem.New(problem.KindRateLimited, "rate_limited",
		"too many requests; retry in %d seconds", max(1, ceilSeconds(d.retryAfter)))
}

func ceilSeconds(d time.Duration) int64 {
	return int64(math.Ceil(d.Seconds()))
}

// clientAddr is the key for the per-address limit: the peer address, never a
// forwarding header, which any client can forge (trusting one needs a
// configured proxy list; add it with the proxy). IPv6 clients are keyed by
// their /64 because one host usually owns the whole prefix.
func clientAddr(r *http.Request) string {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	addr := ap.Addr().Unmap()
	if addr.Is6() {
		if p, err := addr.Prefix(64); err == nil {
			return p.String()
		}
	}
	return addr.String()
}

// limiterSet holds one class's buckets, bounded by LRU and idle eviction.
// Eviction happens inline on each lookup, so no goroutine owns the map.
type limiterSet struct {
	limit   Limit
	maxKeys int
	// idle is how long a bucket takes to refill completely: a bucket left
	// alone that long is indistinguishable from a new one, so evicting it
	// loses nothing.
	idle time.Duration

	mu    sync.Mutex
	byKey map[string]*list.Element
	lru   *list.List // of *limiterEntry, most recently seen at the front
}

type limiterEntry struct {
	key      string
	lim      *rate.Limiter
	lastSeen time.Time
}

func newLimiterSet(l Limit, maxKeys int) *limiterSet {
	idle := maxLimiterIdle
	if secs := float64(l.Burst) / l.RPS; secs < maxLimiterIdle.Seconds() {
		idle = time.Duration(secs * float64(time.Second))
	}
	return &limiterSet{limit: l, maxKeys: maxKeys, idle: idle, byKey: map[string]*list.Element{}, lru: list.New()}
}

func (ls *limiterSet) untilFull(tokens float64) time.Duration {
	missing := float64(ls.limit.Burst) - tokens
	if missing <= 0 {
		return 0
	}
	return time.Duration(missing / ls.limit.RPS * float64(time.Second))
}

func (ls *limiterSet) limiter(key string, now time.Time) *rate.Limiter {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	for el := ls.lru.Back(); el != nil; el = ls.lru.Back() {
		if now.Sub(el.Value.(*limiterEntry).lastSeen) < ls.idle {
			break
		}
		ls.remove(el)
	}
	if el, ok := ls.byKey[key]; ok {
		e := el.Value.(*limiterEntry)
		e.lastSeen = now
		ls.lru.MoveToFront(el)
		return e.lim
	}
	if ls.lru.Len() >= ls.maxKeys {
		ls.remove(ls.lru.Back())
	}
	e := &limiterEntry{key: key, lim: rate.NewLimiter(rate.Limit(ls.limit.RPS), ls.limit.Burst), lastSeen: now}
	ls.byKey[key] = ls.lru.PushFront(e)
	return e.lim
}

func (ls *limiterSet) remove(el *list.Element) {
	delete(ls.byKey, el.Value.(*limiterEntry).key)
	ls.lru.Remove(el)
}

func (ls *limiterSet) len() int {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.lru.Len()
}
