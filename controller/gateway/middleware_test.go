package gateway

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func TestRequestID(t *testing.T) {
	generated := regexp.MustCompile(`^[0-9a-f]{32}$`)
	tests := []struct {
		name     string
		incoming string
		want     string // "" means a generated one
	}{
		{name: "a sane incoming ID is echoed", incoming: "req-123_abc.DEF:9", want: "req-123_abc.DEF:9"},
		{name: "a UUID is echoed", incoming: "0f8fad5b-d9cb-469f-a165-70867728950e", want: "0f8fad5b-d9cb-469f-a165-70867728950e"},
		{name: "a missing ID is generated"},
		{name: "an ID with spaces is replaced", incoming: "hello world"},
		{name: "an ID that could forge a log line is replaced", incoming: "a\"}\n{\"level\":\"ERROR\""},
		{name: "an overlong ID is replaced", incoming: strings.Repeat("a", maxRequestIDLen+1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, Config{})
			req := newRequest("GET", "/health", "", "")
			if tt.incoming != "" {
				req.Header.Set(HeaderRequestID, tt.incoming)
			}
			rec := f.do(t, req)
			got := rec.Header().Get(HeaderRequestID)
			if tt.want != "" && got != tt.want {
				t.Fatalf("X-Request-ID = %q, want %q", got, tt.want)
			}
			if tt.want == "" && !generated.MatchString(got) {
				t.Fatalf("X-Request-ID = %q, want a generated 32-hex ID", got)
			}
			lines := f.logs.lines(t)
			if len(lines) == 0 {
				t.Fatal("no log lines")
			}
			for _, l := range lines {
				if l["request_id"] != got {
					t.Errorf("log line %v has request_id %v, want %q", l["msg"], l["request_id"], got)
				}
			}
		})
	}
}

func TestRequestIDReachesHandlerContext(t *testing.T) {
	f := newFixture(t, Config{})
	var seen string
	h := f.srv.withRequestID(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = RequestID(r.Context())
	}))
	req := newRequest("GET", "/", "", "")
	req.Header.Set(HeaderRequestID, "abc")
	h.ServeHTTP(httptest.NewRecorder(), req)
	if seen != "abc" {
		t.Fatalf("RequestID(ctx) = %q, want abc", seen)
	}
}

func TestAccessLog(t *testing.T) {
	f := newFixture(t, Config{})
	f.probes.add(1)
	req := newRequest("GET", "/api/v1/operator/probes/p1", "", "")
	req.Header.Set(HeaderRequestID, "log-me")
	rec := f.do(t, req)
	var access map[string]any
	for _, l := range f.logs.lines(t) {
		if l["msg"] == "http request" {
			access = l
		}
	}
	if access == nil {
		t.Fatal("no access log line")
	}
	want := map[string]any{
		"method": "GET", "route": "/api/v1/operator/probes/{id}", "path": "/api/v1/operator/probes/p1",
		"status": float64(200), "bytes": float64(rec.Body.Len()), "remote": "192.0.2.1:1234", "request_id": "log-me",
	}
	for k, v := range want {
		if access[k] != v {
			t.Errorf("access log %s = %v, want %v", k, access[k], v)
		}
	}
	if _, ok := access["duration"]; !ok {
		t.Error("access log has no duration")
	}
}

func TestUnknownRoutesUseTheEnvelope(t *testing.T) {
	tests := []struct {
		name       string
		method     string
		target     string
		wantStatus int
		wantCode   string
		wantAllow  string
	}{
		{name: "an unknown path is a 404", method: "GET", target: "/nope", wantStatus: 404, wantCode: "route_not_found"},
		{name: "an unknown API path is a 404", method: "GET", target: "/api/v1/operator/unknown", wantStatus: 404, wantCode: "route_not_found"},
		{name: "a wrong method is a 405 with Allow", method: "DELETE", target: "/health", wantStatus: 405,
			wantCode: "method_not_allowed", wantAllow: "GET, HEAD"},
		{name: "a wrong method on a wildcard route is a 405", method: "PATCH", target: "/api/v1/operator/probes/p1",
			wantStatus: 405, wantCode: "method_not_allowed", wantAllow: "GET, HEAD"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, Config{})
			rec := f.do(t, newRequest(tt.method, tt.target, "", ""))
			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d", rec.Code, tt.wantStatus)
			}
			if e := decodeEnvelope(t, rec); e.Code != tt.wantCode {
				t.Errorf("code = %q, want %q", e.Code, tt.wantCode)
			}
			if got := rec.Header().Get("Allow"); got != tt.wantAllow {
				t.Errorf("Allow = %q, want %q", got, tt.wantAllow)
			}
		})
	}
}

func TestPanicsAreRecovered(t *testing.T) {
	f := newFixture(t, Config{})
	f.probes.panicGet = true
	req := newRequest("GET", "/api/v1/operator/probes/p1", "", "")
	req.Header.Set(HeaderRequestID, "boom")
	rec := f.do(t, req)
	if rec.Code != http.StatusInternalServerError {
		t.Fatalf("status = %d, want 500", rec.Code)
	}
	e := decodeEnvelope(t, rec)
	if e.Code != "internal" || strings.Contains(e.Message, "exploded") {
		t.Errorf("envelope = %+v: want the generic internal error, without the panic value", e)
	}
	var logged map[string]any
	for _, l := range f.logs.lines(t) {
		if l["msg"] == "panic serving request" {
			logged = l
		}
	}
	if logged == nil {
		t.Fatal("the panic was not logged")
	}
	if logged["request_id"] != "boom" || !strings.Contains(logged["panic"].(string), "exploded") ||
		!strings.Contains(logged["stack"].(string), "fakeProbes") {
		t.Errorf("panic log = %v, want request_id, panic value and stack", logged)
	}
	t.Run("and the server keeps serving", func(t *testing.T) {
		if rec := f.do(t, newRequest("GET", "/health", "", "")); rec.Code != http.StatusOK {
			t.Fatalf("status = %d after a panic", rec.Code)
		}
	})
}

func TestInternalErrorsStayInTheLog(t *testing.T) {
	f := newFixture(t, Config{})
	f.probes.err = io.ErrClosedPipe
	rec := f.do(t, newRequest("GET", "/api/v1/operator/probes", "", ""))
	if rec.Code != http.StatusInternalServerError {
		t.Fatalf("status = %d, want 500", rec.Code)
	}
	if strings.Contains(rec.Body.String(), "closed pipe") {
		t.Errorf("the internal error leaked to the client: %s", rec.Body)
	}
	found := false
	for _, l := range f.logs.lines(t) {
		if l["msg"] == "request failed" && strings.Contains(l["error"].(string), "closed pipe") {
			found = true
		}
	}
	if !found {
		t.Error("the internal error was not logged")
	}
}

func TestGzip(t *testing.T) {
	tests := []struct {
		name           string
		target         string
		acceptEncoding string
		probes         int
		wantGzip       bool
	}{
		{name: "a large JSON body is compressed for a gzip client", target: "/api/v1/operator/probes", acceptEncoding: "gzip", probes: 50, wantGzip: true},
		{name: "a large body is not compressed for a client that does not ask", target: "/api/v1/operator/probes", probes: 50},
		{name: "gzip refused with q=0 is respected", target: "/api/v1/operator/probes", acceptEncoding: "gzip;q=0, identity", probes: 50},
		{name: "a wildcard encoding allows gzip", target: "/api/v1/operator/probes", acceptEncoding: "br;q=1, *;q=0.5", probes: 50, wantGzip: true},
		{name: "a tiny body is never compressed", target: "/health/ready", acceptEncoding: "gzip"},
		{name: "metrics are compressed once, by the gateway", target: "/metrics", acceptEncoding: "gzip", wantGzip: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, Config{})
			f.probes.add(tt.probes)
			req := newRequest("GET", tt.target, "", "")
			if tt.acceptEncoding != "" {
				req.Header.Set("Accept-Encoding", tt.acceptEncoding)
			}
			rec := f.do(t, req)
			if rec.Code != http.StatusOK {
				t.Fatalf("status = %d", rec.Code)
			}
			if !strings.Contains(rec.Header().Get("Vary"), "Accept-Encoding") {
				t.Errorf("Vary = %q, want Accept-Encoding", rec.Header().Get("Vary"))
			}
			gotGzip := rec.Header().Get("Content-Encoding") == "gzip"
			if gotGzip != tt.wantGzip {
				t.Fatalf("Content-Encoding = %q, want gzip %v", rec.Header().Get("Content-Encoding"), tt.wantGzip)
			}
			body := rec.Body.Bytes()
			if gotGzip {
				if cl := rec.Header().Get("Content-Length"); cl != "" {
					t.Errorf("a compressed body has Content-Length %s", cl)
				}
				zr, err := gzip.NewReader(bytes.NewReader(body))
				if err != nil {
					t.Fatalf("gzip: %v", err)
				}
				if body, err = io.ReadAll(zr); err != nil {
					t.Fatalf("gunzip: %v", err)
				}
				if len(body) < minGzipBytes {
					t.Errorf("compressed a body of %d bytes", len(body))
				}
			} else if cl := rec.Header().Get("Content-Length"); cl != "" && cl != strconv.Itoa(len(body)) {
				t.Errorf("Content-Length = %s, body is %d bytes", cl, len(body))
			}
			if strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") && !json.Valid(body) {
				t.Errorf("body is not JSON after decoding: %.200s", body)
			}
		})
	}
}

func TestGzipSmallBodyKeepsContentLength(t *testing.T) {
	f := newFixture(t, Config{})
	req := newRequest("GET", "/health/ready", "", "")
	req.Header.Set("Accept-Encoding", "gzip")
	rec := f.do(t, req)
	if got, want := rec.Header().Get("Content-Length"), strconv.Itoa(rec.Body.Len()); got != want {
		t.Fatalf("Content-Length = %q, want %q", got, want)
	}
}

func TestGzipKeepsStreaming(t *testing.T) {
	tests := []struct {
		name     string
		first    []byte
		wantGzip bool
	}{
		{name: "a small first chunk is flushed uncompressed", first: []byte(`{"n":1}`)},
		{name: "a large first chunk is flushed compressed", first: bytes.Repeat([]byte(`{"n":1}`), 400), wantGzip: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			flushed := make(chan []byte, 1)
			var rec *httptest.ResponseRecorder
			h := newGzipper().wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write(tt.first)
				if err := http.NewResponseController(w).Flush(); err != nil {
					t.Errorf("Flush through the gzip writer: %v", err)
				}
				flushed <- append([]byte(nil), rec.Body.Bytes()...)
				_, _ = w.Write(tt.first)
			}))
			rec = httptest.NewRecorder()
			req := newRequest("GET", "/", "", "")
			req.Header.Set("Accept-Encoding", "gzip")
			h.ServeHTTP(rec, req)
			early := <-flushed
			if !rec.Flushed || len(early) == 0 {
				t.Fatalf("nothing reached the client at Flush (flushed %v, %d bytes)", rec.Flushed, len(early))
			}
			if got := rec.Header().Get("Content-Encoding") == "gzip"; got != tt.wantGzip {
				t.Fatalf("gzip = %v, want %v", got, tt.wantGzip)
			}
			body := rec.Body.Bytes()
			if tt.wantGzip {
				zr, err := gzip.NewReader(bytes.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				if body, err = io.ReadAll(zr); err != nil {
					t.Fatal(err)
				}
			}
			if want := append(append([]byte(nil), tt.first...), tt.first...); !bytes.Equal(body, want) {
				t.Fatalf("body = %d bytes, want %d", len(body), len(want))
			}
		})
	}
}

func TestAcceptsGzip(t *testing.T) {
	tests := []struct {
		name   string
		header []string
		want   bool
	}{
		{"no header means identity", nil, false},
		{"gzip is accepted", []string{"gzip"}, true},
		{"gzip among others is accepted", []string{"br, gzip, deflate"}, true},
		{"case does not matter", []string{"GZIP"}, true},
		{"q=0 refuses", []string{"gzip;q=0"}, false},
		{"spaces around q are fine", []string{"gzip ; q = 0.8"}, true},
		{"a star allows gzip", []string{"*"}, true},
		{"a star with q=0 does not", []string{"*;q=0"}, false},
		{"an explicit gzip beats the star", []string{"gzip;q=0, *"}, false},
		{"repeated headers are read together", []string{"br", "gzip"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := acceptsGzip(tt.header); got != tt.want {
				t.Errorf("acceptsGzip(%q) = %v, want %v", tt.header, got, tt.want)
			}
		})
	}
}

func TestCORS(t *testing.T) {
	const allowed = "https://ops.example.com"
	tests := []struct {
		name        string
		origins     []string
		method      string
		origin      string
		preflight   bool
		wantStatus  int
		wantAllowed string
	}{
		{name: "cors is off by default", method: "GET", origin: allowed, wantStatus: 200},
		{name: "a preflight with cors off falls through to a 405", method: "OPTIONS", origin: allowed, preflight: true, wantStatus: 405},
		{name: "an allowed origin may read the response", origins: []string{allowed}, method: "GET", origin: allowed,
			wantStatus: 200, wantAllowed: allowed},
		{name: "an allowed origin's preflight is answered", origins: []string{allowed}, method: "OPTIONS", origin: allowed,
			preflight: true, wantStatus: 204, wantAllowed: allowed},
		{name: "another origin gets no cors headers", origins: []string{allowed}, method: "GET", origin: "https://evil.example",
			wantStatus: 200},
		{name: "another origin's preflight is not answered", origins: []string{allowed}, method: "OPTIONS",
			origin: "https://evil.example", preflight: true, wantStatus: 405},
		{name: "a wildcard allows any origin", origins: []string{"*"}, method: "GET", origin: "https://any.example",
			wantStatus: 200, wantAllowed: "*"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, Config{CORSAllowedOrigins: tt.origins})
			req := newRequest(tt.method, "/health", "", "")
			req.Header.Set("Origin", tt.origin)
			if tt.preflight {
				req.Header.Set("Access-Control-Request-Method", "GET")
			}
			rec := f.do(t, req)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d", rec.Code, tt.wantStatus)
			}
			if got := rec.Header().Get("Access-Control-Allow-Origin"); got != tt.wantAllowed {
				t.Errorf("Access-Control-Allow-Origin = %q, want %q", got, tt.wantAllowed)
			}
			if tt.preflight && tt.wantAllowed != "" && !strings.Contains(rec.Header().Get("Access-Control-Allow-Methods"), "GET") {
				t.Errorf("preflight Access-Control-Allow-Methods = %q", rec.Header().Get("Access-Control-Allow-Methods"))
			}
			if !tt.preflight && tt.wantAllowed != "" && !strings.Contains(rec.Header().Get("Access-Control-Expose-Headers"), "X-Request-ID") {
				t.Errorf("Access-Control-Expose-Headers = %q, want X-Request-ID", rec.Header().Get("Access-Control-Expose-Headers"))
			}
			if tt.origins != nil && !strings.Contains(strings.Join(rec.Header().Values("Vary"), ","), "Origin") {
				t.Errorf("Vary = %q, want Origin", rec.Header().Values("Vary"))
			}
		})
	}
}

func TestMetricsAreLabelledByRoute(t *testing.T) {
	f := newFixture(t, Config{})
	f.probes.add(1)
	for _, target := range []string{"/api/v1/operator/probes/p1", "/api/v1/operator/probes/p2", "/no/such/path"} {
		f.do(t, newRequest("GET", target, "", ""))
	}
	rec := f.do(t, newRequest("GET", "/metrics", "", ""))
	if rec.Code != http.StatusOK {
		t.Fatalf("status = %d", rec.Code)
	}
	body := rec.Body.String()
	for _, want := range []string{
		`opsconductor_http_requests_total{code="200",method="GET",route="/api/v1/operator/probes/{id}"} 1`,
		`opsconductor_http_requests_total{code="404",method="GET",route="/api/v1/operator/probes/{id}"} 1`,
		`opsconductor_http_requests_total{code="404",method="GET",route="unmatched"} 1`,
		`opsconductor_http_request_duration_seconds_count{code="200",method="GET",route="/api/v1/operator/probes/{id}"} 1`,
		`opsconductor_http_requests_in_flight 1`, // this very scrape
		`go_goroutines`,
		`process_`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(body, `route="/api/v1/operator/probes/p1"`) {
		t.Error("a raw path leaked into a label")
	}
}
