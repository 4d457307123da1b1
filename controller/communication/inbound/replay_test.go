package inbound

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestDeliveryID(t *testing.T) {
	tests := []struct {
		name    string
		headers map[string]string
		want    string
	}{
		{name: "GitHub's delivery header is read", headers: map[string]string{"X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958"}, want: "72d3162e-cc78-11e3-81ab-4c9367dc0958"},
		{name: "our delivery header is read", headers: map[string]string{"X-OpsConductor-Delivery": "d-1"}, want: "d-1"},
		{name: "an Idempotency-Key is read", headers: map[string]string{"Idempotency-Key": "k-1"}, want: "k-1"},
		{name: "GitHub's header wins over the others", headers: map[string]string{"X-GitHub-Delivery": "g", "Idempotency-Key": "k"}, want: "g"},
		{name: "no header gives no ID", want: ""},
		{name: "an ID too long to be real is ignored", headers: map[string]string{"Idempotency-Key": strings.Repeat("x", maxDeliveryIDLen+1)}, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "/", nil)
			for k, v := range tt.headers {
				req.Header.Set(k, v)
			}
			if got := DeliveryID(req); got != tt.want {
				t.Fatalf("DeliveryID = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestMemorySeen(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	remember := func(t *testing.T, s *MemorySeen, trig, id string, ttl time.Duration, want bool) {
		t.Helper()
		got, err := s.Remember(ctx, trig, id, c.Now().Add(ttl))
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("Remember(%s, %s) first = %v, want %v", trig, id, got, want)
		}
	}

	t.Run("a delivery is new once, per trigger", func(t *testing.T) {
		s := NewMemorySeen(10, c.Now)
		remember(t, s, "t1", "d", time.Hour, true)
		remember(t, s, "t1", "d", time.Hour, false)
		remember(t, s, "t2", "d", time.Hour, true)
	})
	t.Run("an expired delivery is new again", func(t *testing.T) {
		s := NewMemorySeen(10, c.Now)
		remember(t, s, "t", "d", time.Minute, true)
		c.Advance(time.Minute)
		remember(t, s, "t", "d", time.Minute, true)
		remember(t, s, "t", "d", time.Minute, false)
	})
	t.Run("the set stays within its bound, dropping the oldest", func(t *testing.T) {
		s := NewMemorySeen(3, c.Now)
		for i := range 5 {
			remember(t, s, "t", fmt.Sprint(i), time.Hour, true)
		}
		if s.Len() != 3 {
			t.Fatalf("holds %d entries, want 3", s.Len())
		}
		remember(t, s, "t", "4", time.Hour, false)
		remember(t, s, "t", "0", time.Hour, true) // dropped, so new again
	})
	t.Run("expired entries go before live ones", func(t *testing.T) {
		s := NewMemorySeen(2, c.Now)
		remember(t, s, "t", "short", time.Second, true)
		remember(t, s, "t", "long", time.Hour, true)
		c.Advance(2 * time.Second)
		remember(t, s, "t", "new", time.Hour, true)
		remember(t, s, "t", "long", time.Hour, false)
	})
}

func TestLimiter(t *testing.T) {
	c := newClock()
	take := func(l *Limiter, trig string, perMinute int) bool {
		_, _, ok := l.Reserve(trig, perMinute, c.Now())
		return ok
	}
	t.Run("a bucket holds a minute's worth and refills steadily", func(t *testing.T) {
		l := NewLimiter(10)
		for i := range 6 {
			if !take(l, "t", 6) {
				t.Fatalf("delivery %d refused", i)
			}
		}
		_, wait, ok := l.Reserve("t", 6, c.Now())
		if ok || wait != 10*time.Second {
			t.Fatalf("seventh: ok=%v wait=%v, want refused for 10s", ok, wait)
		}
		c.Advance(10 * time.Second)
		if !take(l, "t", 6) || take(l, "t", 6) {
			t.Fatal("after 10 s exactly one more is allowed")
		}
	})
	t.Run("triggers have separate buckets", func(t *testing.T) {
		l := NewLimiter(10)
		if !take(l, "a", 1) || take(l, "a", 1) || !take(l, "b", 1) {
			t.Fatal("buckets are shared")
		}
	})
	t.Run("raising a trigger's limit does not refill its bucket", func(t *testing.T) {
		l := NewLimiter(10)
		if !take(l, "t", 1) {
			t.Fatal("first refused")
		}
		if take(l, "t", 60) {
			t.Fatal("an edit refilled the bucket")
		}
		c.Advance(time.Second)
		if !take(l, "t", 60) {
			t.Fatal("the new rate does not apply")
		}
	})
	t.Run("a cancelled reservation gives its token back", func(t *testing.T) {
		l := NewLimiter(10)
		res, _, ok := l.Reserve("t", 1, c.Now())
		if !ok {
			t.Fatal("refused")
		}
		res.Cancel()
		if !take(l, "t", 1) {
			t.Fatal("the token did not come back")
		}
	})
	t.Run("buckets are bounded", func(t *testing.T) {
		l := NewLimiter(2)
		for _, trig := range []string{"a", "b", "c"} {
			take(l, trig, 1)
		}
		if len(l.buckets) != 2 {
			t.Fatalf("%d buckets, want 2", len(l.buckets))
		}
	})
}
