package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/opsconductor/opsconductor/test/e2e/localcluster"
)

// heldReceiver answers no webhook until released, so that deliveries are
// in flight on the leader when it is killed; it records every request's
// Idempotency-Key.
type heldReceiver struct {
	mu       sync.Mutex
	keys     map[string]int
	requests int
	release  chan struct{}
}

func (h *heldReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	h.mu.Lock()
	h.keys[r.Header.Get("Idempotency-Key")]++
	h.requests++
	h.mu.Unlock()
	select {
	case <-h.release:
	case <-r.Context().Done():
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *heldReceiver) snapshot() (map[string]int, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]int, len(h.keys))
	for k, v := range h.keys {
		out[k] = v
	}
	return out, h.requests
}

// TestNotificationsSurviveLeaderKill: deliveries committed to the outbox
// are in flight on the leader when it is SIGKILLed. The next leader sends
// every one of them: nothing is lost, and only deliveries that were in
// flight at the kill reach the receiver twice (with the same
// Idempotency-Key, so the receiver can drop them).
func TestNotificationsSurviveLeaderKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-process cluster and kills its leader; skipped with -short")
	}
	ctx := testContext(t)
	c := startCluster(ctx, t)
	leader, err := c.WaitLeader(ctx, localcluster.All())
	if err != nil {
		t.Fatal(err)
	}
	rcv := &heldReceiver{keys: map[string]int{}, release: make(chan struct{})}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	released := false
	defer func() {
		if !released {
			close(rcv.release)
		}
	}()
	if err := apiJSON(ctx, c, leader, http.MethodPost, "/api/v1/notifications/channels", map[string]any{
		"name": "held", "secret": "a-signing-secret-for-the-e2e-test",
		"config": map[string]any{"kind": "webhook", "webhook": map[string]any{"url": srv.URL, "timeout": "30s"}},
	}, nil); err != nil {
		t.Fatal(err)
	}
	const n = 40
	ids := make([]string, 0, n)
	for range n {
		var d struct {
			ID string `json:"id"`
		}
		if err := apiJSON(ctx, c, leader, http.MethodPost, "/api/v1/notifications/channels/held/test?wait=false",
			map[string]any{"event": "run.failed"}, &d); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, d.ID)
	}
	// Every delivery is in flight (the leader sends up to 64 at once).
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = localcluster.Poll(pctx, 20*time.Millisecond, func(context.Context) error {
		if keys, _ := rcv.snapshot(); len(keys) < n {
			return fmt.Errorf("%d of %d deliveries in flight", len(keys), n)
		}
		return nil
	})
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	inFlight, _ := rcv.snapshot()
	if _, err := c.Kill(ctx, leader); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed the leader node%d with %d deliveries in flight", leader, len(inFlight))
	close(rcv.release)
	released = true

	var others []int
	for _, m := range localcluster.All() {
		if m != leader {
			others = append(others, m)
		}
	}
	next, err := c.WaitLeader(ctx, others)
	if err != nil {
		t.Fatal(err)
	}
	pctx, cancel = context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	err = localcluster.Poll(pctx, 50*time.Millisecond, func(ctx context.Context) error {
		for _, id := range ids {
			var d struct {
				State string `json:"state"`
			}
			if err := apiJSON(ctx, c, next, http.MethodGet, "/api/v1/notifications/deliveries/"+id, nil, &d); err != nil {
				return err
			}
			if d.State != "delivered" {
				return fmt.Errorf("delivery %s is %s", id, d.State)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("after the failover: %v", err)
	}
	keys, requests := rcv.snapshot()
	for _, id := range ids {
		if keys[id] == 0 {
			t.Errorf("delivery %s never reached the receiver", id)
		}
		if keys[id] > 1 && inFlight[id] == 0 {
			t.Errorf("delivery %s was sent %d times but was not in flight at the kill", id, keys[id])
		}
		if keys[id] > 2 {
			t.Errorf("delivery %s was sent %d times", id, keys[id])
		}
	}
	t.Logf("%d requests for %d deliveries (%d in flight at the kill)", requests, n, len(inFlight))
}
