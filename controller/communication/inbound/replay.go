package inbound

import (
	"container/list"
	"context"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Delivery ID headers, in the order DeliveryID looks at them.
const (
	HeaderGitHubDelivery = "X-GitHub-Delivery"
	HeaderDelivery       = "X-OpsConductor-Delivery"
	HeaderIdempotencyKey = "Idempotency-Key"
)

// maxDeliveryIDLen bounds a delivery ID: it is stored per trigger, and
// GitHub's are 36-character UUIDs.
const maxDeliveryIDLen = 200

// DeliveryID returns the sender's ID for this delivery, or "" when it sent
// none (or one too long to be a real ID).
func DeliveryID(req *http.Request) string {
	for _, h := range []string{HeaderGitHubDelivery, HeaderDelivery, HeaderIdempotencyKey} {
		if v := strings.TrimSpace(req.Header.Get(h)); v != "" {
			if len(v) > maxDeliveryIDLen {
				return ""
			}
			return v
		}
	}
	return ""
}

// Seen remembers deliveries so that one is accepted once. The lead backs it
// with the FSM so that a failover does not forget; [MemorySeen] is the
// single-node and test implementation.
type Seen interface {
	// Remember records deliveryID for triggerID until the given time and
	// reports whether this is the first time it has been seen (an entry
	// whose time has passed counts as not seen).
	Remember(ctx context.Context, triggerID, deliveryID string, until time.Time) (firstTime bool, err error)
}

// MemorySeen is a bounded in-memory Seen: entries expire at their until
// time, and past max entries the least recently remembered is dropped.
// Dropping an unexpired entry re-opens that delivery to replay, the price
// of bounded memory; size max for the deliveries expected within the TTL.
type MemorySeen struct {
	now func() time.Time
	max int

	mu    sync.Mutex
	order *list.List // of *seenEntry, most recent at the front
	index map[seenKey]*list.Element
}

type seenKey struct{ trigger, delivery string }

type seenEntry struct {
	key   seenKey
	until time.Time
}

// NewMemorySeen returns a MemorySeen holding at most size entries (at least
// one). now is the clock expiry is judged by; nil means time.Now.
func NewMemorySeen(size int, now func() time.Time) *MemorySeen {
	if now == nil {
		now = time.Now
	}
	return &MemorySeen{now: now, max: max(size, 1), order: list.New(), index: map[seenKey]*list.Element{}}
}

// Remember implements Seen.
func (m *MemorySeen) Remember(_ context.Context, triggerID, deliveryID string, until time.Time) (bool, error) {
	now := m.now()
	k := seenKey{triggerID, deliveryID}
	m.mu.Lock()
	defer m.mu.Unlock()
	if el, ok := m.index[k]; ok {
		e := el.Value.(*seenEntry)
		if now.Before(e.until) {
			return false, nil
		}
		// Expired: this counts as a first delivery and starts a new
		// period.
		e.until = until
		m.order.MoveToFront(el)
		return true, nil
	}
	m.evict(now)
	m.index[k] = m.order.PushFront(&seenEntry{key: k, until: until})
	return true, nil
}

// evict makes room for one entry: expired entries go first, then, if the
// set is still full, the least recently remembered.
func (m *MemorySeen) evict(now time.Time) {
	// Expired entries are only dropped from the back: entries have
	// varied untils, so this is cheap rather than complete, and the
	// size bound is what guarantees memory.
	for el := m.order.Back(); el != nil && !now.Before(el.Value.(*seenEntry).until); el = m.order.Back() {
		m.remove(el)
	}
	for m.order.Len() >= m.max {
		m.remove(m.order.Back())
	}
}

func (m *MemorySeen) remove(el *list.Element) {
	m.order.Remove(el)
	delete(m.index, el.Value.(*seenEntry).key)
}

// Len reports how many entries are held, for tests and metrics.
func (m *MemorySeen) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.order.Len()
}
