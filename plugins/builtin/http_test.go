package builtin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/opsconductor/opsconductor/plugins/sdk"
)

func TestHTTP(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/health":
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"status":"ok","checks":[{"name":"db","ok":true}],"version":"1.2.3"}`)
		case "/echo":
			b, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "%s %s %s", r.Method, r.Header.Get("X-Token"), b)
		case "/missing":
			http.NotFound(w, r)
		case "/big":
			fmt.Fprint(w, strings.Repeat("x", 5000))
		}
	}))
	defer srv.Close()
	tests := []struct {
		name       string
		params     obj
		wantStatus sdk.Status
		wantMsg    string
		wantOut    map[string]string
	}{
		{name: "a 2xx answer succeeds and is reported", params: obj{"url": srv.URL + "/health"},
			wantOut: map[string]string{"status": "200"}},
		{name: "method, headers and body are sent",
			params:  obj{"url": srv.URL + "/echo", "method": "POST", "headers": obj{"X-Token": "t0k"}, "body": "hello", "expect_body": "POST t0k hello"},
			wantOut: map[string]string{"status": "200", "body": "POST t0k hello"}},
		{name: "a status outside 2xx fails", params: obj{"url": srv.URL + "/missing"},
			wantStatus: sdk.StatusFailed, wantMsg: "status 404, want 2xx"},
		{name: "an expected status is accepted", params: obj{"url": srv.URL + "/missing", "expect_status": []int{404, 410}}},
		{name: "a status not in the list fails", params: obj{"url": srv.URL + "/health", "expect_status": []int{201}},
			wantStatus: sdk.StatusFailed, wantMsg: "status 200, want 201"},
		{name: "a missing body substring fails", params: obj{"url": srv.URL + "/health", "expect_body": "degraded"},
			wantStatus: sdk.StatusFailed, wantMsg: `the body does not contain "degraded"`},
		{name: "a JSON path that equals passes", params: obj{"url": srv.URL + "/health", "expect_json": obj{"path": "checks[0].ok", "equals": true}}},
		{name: "a JSON path with $ passes", params: obj{"url": srv.URL + "/health", "expect_json": obj{"path": "$.version", "equals": "1.2.3"}}},
		{name: "a JSON value that differs fails", params: obj{"url": srv.URL + "/health", "expect_json": obj{"path": "status", "equals": "down"}},
			wantStatus: sdk.StatusFailed, wantMsg: `status is "ok", want "down"`},
		{name: "a JSON path that is absent fails", params: obj{"url": srv.URL + "/health", "expect_json": obj{"path": "checks[3].ok", "equals": true}},
			wantStatus: sdk.StatusFailed, wantMsg: "checks[3].ok: index 3 out of range (length 1)"},
		{name: "a refused connection fails", params: obj{"url": "http://127.0.0.1:1/"}, wantStatus: sdk.StatusFailed},
		{name: "the body output is an excerpt", params: obj{"url": srv.URL + "/big"},
			wantOut: map[string]string{"status": "200", "body": strings.Repeat("x", 1024)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, _, err := run(t, context.Background(), HTTP{}, tt.params)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if res.Status != tt.wantStatus || (tt.wantMsg != "" && res.Message != tt.wantMsg) {
				t.Errorf("result = %+v, want status %v message %q", res, tt.wantStatus, tt.wantMsg)
			}
			for k, v := range tt.wantOut {
				if res.Outputs[k] != v {
					t.Errorf("output %s = %q, want %q", k, res.Outputs[k], v)
				}
			}
		})
	}
}

func TestHTTPRetriesUntilHealthy(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, "up")
	}))
	defer srv.Close()
	tests := []struct {
		name       string
		retries    int
		wantStatus sdk.Status
		wantCalls  int32
	}{
		{"enough retries reach the healthy answer", 5, sdk.StatusSucceeded, 3},
		{"too few retries fail with the last problem", 1, sdk.StatusFailed, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls.Store(0)
			res, rec, err := run(t, context.Background(), HTTP{}, obj{"url": srv.URL, "retries": tt.retries, "interval": "1ms"})
			if err != nil || res.Status != tt.wantStatus || calls.Load() != tt.wantCalls {
				t.Fatalf("result %+v err %v after %d calls, want %v after %d", res, err, calls.Load(), tt.wantStatus, tt.wantCalls)
			}
			if !strings.Contains(rec.stdout(), "try 1 of") {
				t.Errorf("stdout %q does not report the failed tries", rec.stdout())
			}
		})
	}
}

func TestHTTPCancelDuringRetries(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	rec := &recorder{}
	go func() { <-rec.seen("try 1 of"); cancel() }()
	_, err := HTTP{}.Run(ctx, reqWith(t, obj{"url": srv.URL, "retries": 100, "interval": "1h"}), rec)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestParseJSONPath(t *testing.T) {
	tests := []struct {
		path, want, wantErr string
	}{
		{"a", "a", ""},
		{"$.a.b", "a b", ""},
		{"a[0][2].b", "a [0] [2] b", ""},
		{"[1]", "[1]", ""},
		{"", "", "empty path"},
		{"a[x]", "", "bad index"},
		{"a[1", "", "missing ]"},
		{"a..b", "", "empty key"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			steps, err := parseJSONPath(tt.path)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			var got []string
			for _, s := range steps {
				got = append(got, s.String())
			}
			if strings.Join(got, " ") != tt.want || err != nil {
				t.Errorf("steps = %v %v, want %s", got, err, tt.want)
			}
		})
	}
}
