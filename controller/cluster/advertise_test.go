package cluster

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"
)

func TestResolveAdvertiseWaitsForTheName(t *testing.T) {
	notYet := &net.DNSError{Err: "no such host", Name: "oc-0.peers", IsNotFound: true}
	want := &net.TCPAddr{IP: net.IPv4(10, 0, 0, 7), Port: 3002}
	tests := []struct {
		name     string
		fails    int   // answers before the name resolves
		err      error // what each failure is
		wait     time.Duration
		wantErr  string
		wantCall int
	}{
		{name: "a name published a moment late is waited for", fails: 2, err: notYet, wait: 5 * time.Second, wantCall: 3},
		{name: "a name that never appears fails after the wait", fails: 1000, err: notYet, wait: 250 * time.Millisecond, wantErr: "no such host"},
		{name: "a malformed address fails at once", fails: 1000, err: errors.New("missing port in address"), wait: 5 * time.Second, wantErr: "missing port", wantCall: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			got, err := resolveAdvertise(context.Background(), "oc-0.peers:3002", tt.wait, func(string) (*net.TCPAddr, error) {
				calls++
				if calls <= tt.fails {
					return nil, tt.err
				}
				return want, nil
			}, slog.New(slog.DiscardHandler))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
			} else if err != nil || !got.IP.Equal(want.IP) {
				t.Fatalf("got %v, %v", got, err)
			}
			if tt.wantCall != 0 && calls != tt.wantCall {
				t.Fatalf("%d lookups, want %d", calls, tt.wantCall)
			}
		})
	}
}
