package main

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHealthProbe(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/health":
			_, _ = w.Write([]byte(`{"status":"ok"}`))
		case "/health/ready":
			http.Error(w, `{"status":"no leader"}`, http.StatusServiceUnavailable)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	stopped := httptest.NewServer(http.NotFoundHandler())
	stopped.Close()

	tests := []struct {
		name      string
		args      []string
		wantOut   string
		wantErr   string
		wantUsage bool
	}{
		{name: "a live controller is healthy", args: []string{"health", "--address", srv.URL}, wantOut: "healthy: " + srv.URL + "/health: 200 OK"},
		{name: "a trailing slash is fine", args: []string{"health", "--address", srv.URL + "/"}, wantOut: "healthy: "},
		{name: "a controller without a leader is not ready", args: []string{"health", "--address", srv.URL, "--ready"}, wantErr: "503 Service Unavailable: {\"status\":\"no leader\"}"},
		{name: "nothing listening is unhealthy", args: []string{"health", "--address", stopped.URL}, wantErr: "connection refused"},
		{name: "a bad address names the flag", args: []string{"health", "--address", "localhost:3000"}, wantErr: "--address", wantUsage: true},
		{name: "a zero timeout names the flag", args: []string{"health", "--address", srv.URL, "--timeout", "0s"}, wantErr: "--timeout", wantUsage: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := run(t, tt.args...)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("error %v", err)
				}
				if !strings.Contains(out, tt.wantOut) {
					t.Fatalf("output %q, want %q", out, tt.wantOut)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
			var ue usageError
			if errors.As(err, &ue) != tt.wantUsage {
				t.Fatalf("usage error %v, want %v", errors.As(err, &ue), tt.wantUsage)
			}
		})
	}
}
