package inbound

import (
	"container/list"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limiter keeps a token bucket per trigger. A bucket holds a minute's worth
// of deliveries and refills continuously, so a trigger limited to 30 a
// minute takes a burst of 30 and then one every two seconds.
//
// Buckets live in this process only: after a leader change a trigger starts
// with a full bucket, at most one extra minute's worth, which is cheaper
// than replicating every token.
type Limiter struct {
	max int

	mu      sync.Mutex
	order   *list.List // of *bucket, most recently used at the front
	buckets map[string]*list.Element
}

type bucket struct {
	trigger   string
	perMinute int
	lim       *rate.Limiter
}

// NewLimiter returns a Limiter that keeps buckets for at most max triggers
// (at least one); the least recently used bucket is dropped past that, and
// its trigger starts again with a full bucket.
func NewLimiter(size int) *Limiter {
	return &Limiter{max: max(size, 1), order: list.New(), buckets: map[string]*list.Element{}}
}

// Reservation is one accepted delivery's token; Cancel gives it back when
// the delivery is refused after all (a replay), so that refusals do not use
// up the sender's budget.
type Reservation struct {
	r   *rate.Reservation
	now time.Time
}

// Cancel returns the token. It is safe on a nil Reservation.
func (r *Reservation) Cancel() {
	if r != nil {
		r.r.CancelAt(r.now)
	}
}

// Reserve takes one token from the trigger's bucket at now. When the
// bucket is empty it takes nothing and reports how long until a token is
// back.
func (l *Limiter) Reserve(triggerID string, perMinute int, now time.Time) (res *Reservation, retryAfter time.Duration, ok bool) {
	lim := l.bucket(triggerID, perMinute, now)
	r := lim.ReserveN(now, 1)
	if !r.OK() {
		return nil, time.Minute, false
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return nil, d, false
	}
	return &Reservation{r: r, now: now}, 0, true
}

func (l *Limiter) bucket(triggerID string, perMinute int, now time.Time) *rate.Limiter {
	perMinute = max(perMinute, 1)
	l.mu.Lock()
	defer l.mu.Unlock()
	if el, ok := l.buckets[triggerID]; ok {
		b := el.Value.(*bucket)
		l.order.MoveToFront(el)
		if b.perMinute != perMinute {
			// The trigger was edited: keep the tokens it has, so that
			// an edit is not a way to refill the bucket.
			b.perMinute = perMinute
			b.lim.SetLimitAt(now, perSecond(perMinute))
			b.lim.SetBurstAt(now, perMinute)
		}
		return b.lim
	}
	for l.order.Len() >= l.max {
		old := l.order.Back()
		l.order.Remove(old)
		delete(l.buckets, old.Value.(*bucket).trigger)
	}
	b := &bucket{trigger: triggerID, perMinute: perMinute, lim: rate.NewLimiter(perSecond(perMinute), perMinute)}
	// rate.NewLimiter starts full as of its first use; pinning that use
	// to now keeps the bucket on the caller's clock.
	b.lim.SetLimitAt(now, perSecond(perMinute))
	l.buckets[triggerID] = l.order.PushFront(b)
	return b.lim
}

func perSecond(perMinute int) rate.Limit { return rate.Limit(float64(perMinute) / 60) }
