package apiclient

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

func TestRateLimitedCallsWaitAndRetry(t *testing.T) {
	tests := []struct {
		name      string
		limited   int32 // how many refusals the server answers first
		status    int
		code      string
		wantErr   bool
		wantCalls int32
	}{
		{"a call limited twice succeeds on the third try", 2, http.StatusTooManyRequests, "rate_limited", false, 3},
		{"a call limited past the retry budget reports the 429", maxRateLimitWaits + 10, http.StatusTooManyRequests, "rate_limited", true, maxRateLimitWaits + 1},
		{"a locked account is reported at once", 5, http.StatusTooManyRequests, "account_locked", true, 1},
		{"a controller catching up is asked again", 2, http.StatusServiceUnavailable, "not_ready", false, 3},
		{"no leader is reported at once: the write may have been applied", 5, http.StatusServiceUnavailable, "no_leader", true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if calls.Add(1) <= tt.limited {
					w.Header().Set("Retry-After", "0")
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(tt.status)
					_, _ = w.Write([]byte(`{"error":{"code":"` + tt.code + `","message":"not now"}}`))
					return
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusCreated)
				_, _ = w.Write([]byte(`{"seq":1,"id":"1","payload":"p"}`))
			}))
			defer srv.Close()
			c, err := New(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			rec, err := c.WriteProbe(ctx, "p")
			var apiErr *Error
			switch {
			case tt.wantErr && (!errors.As(err, &apiErr) || apiErr.Status != tt.status || apiErr.Code != tt.code):
				t.Fatalf("got %v, want the %d %s envelope", err, tt.status, tt.code)
			case !tt.wantErr && (err != nil || rec.ID != "1"):
				t.Fatalf("got %+v, %v", rec, err)
			}
			if calls.Load() != tt.wantCalls {
				t.Fatalf("server saw %d calls, want %d", calls.Load(), tt.wantCalls)
			}
		})
	}
}

func TestNewRejectsBadAddresses(t *testing.T) {
	for _, addr := range []string{"http://", "://x", "http://[::1"} {
		if _, err := New(addr); err == nil {
			t.Errorf("New(%q) accepted", addr)
		}
	}
	if _, err := New("127.0.0.1:3000"); err != nil {
		t.Errorf("a bare host:port was refused: %v", err)
	}
}
