package builtin

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opsconductor/opsconductor/plugins/sdk"
)

func TestWait(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	// A port that was just closed is free and refuses connections.
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer ok.Close()
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) }))
	defer bad.Close()
	dir := t.TempDir()
	exists := filepath.Join(dir, "exists")
	if err := os.WriteFile(exists, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		params     obj
		wantStatus sdk.Status
		wantMsg    string
	}{
		{name: "a port that accepts is ready", params: obj{"tcp": ln.Addr().String()}},
		{name: "a closed port times out", params: obj{"tcp": closedAddr, "timeout": "100ms", "interval": "10ms"},
			wantStatus: sdk.StatusFailed, wantMsg: "connection refused"},
		{name: "a URL answering 2xx is ready", params: obj{"http": ok.URL}},
		{name: "a URL answering 500 times out", params: obj{"http": bad.URL, "timeout": "100ms", "interval": "10ms"},
			wantStatus: sdk.StatusFailed, wantMsg: "status 500"},
		{name: "a file that exists is ready", params: obj{"file": exists}},
		{name: "a file that never appears times out", params: obj{"file": filepath.Join(dir, "never"), "timeout": "50ms", "interval": "10ms"},
			wantStatus: sdk.StatusFailed, wantMsg: "does not exist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, _, err := run(t, context.Background(), Wait{}, tt.params)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if res.Status != tt.wantStatus || !strings.Contains(res.Message, tt.wantMsg) {
				t.Errorf("result = %+v, want status %v and a message containing %q", res, tt.wantStatus, tt.wantMsg)
			}
			if tt.wantStatus == sdk.StatusSucceeded && res.Outputs["waited"] == "" {
				t.Errorf("no waited output")
			}
		})
	}
}

// A file created while the step waits is noticed on the next check.
func TestWaitNoticesAFileThatAppears(t *testing.T) {
	path := filepath.Join(t.TempDir(), "flag")
	rec := &recorder{}
	go func() {
		<-rec.seen("waiting up to")
		_ = os.WriteFile(path, nil, 0o600)
	}()
	res, err := Wait{}.Run(context.Background(), reqWith(t, obj{"file": path, "timeout": "30s", "interval": "10ms"}), rec)
	if err != nil || res.Status != sdk.StatusSucceeded {
		t.Fatalf("Run: %+v %v", res, err)
	}
}

func TestWaitHonoursCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	rec := &recorder{}
	go func() { <-rec.seen("waiting up to"); cancel() }()
	_, err := Wait{}.Run(ctx, reqWith(t, obj{"file": "/nonexistent/flag", "timeout": "1h", "interval": "1h"}), rec)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}
