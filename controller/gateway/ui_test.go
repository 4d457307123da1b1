package gateway

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

// testUI is a small Vite-shaped build: an index, a hashed script big
// enough to be compressed, a stylesheet and a dotfile that is not served.
func testUI() fstest.MapFS {
	return fstest.MapFS{
		"index.html":              {Data: []byte(`<!doctype html><script type="module" src="/assets/index-abc123.js"></script>`)},
		"assets/index-abc123.js":  {Data: []byte(strings.Repeat("console.log('opsconductor');\n", 200))},
		"assets/index-def456.css": {Data: []byte("body{margin:0}")},
		"favicon.svg":             {Data: []byte(`<svg xmlns="http://www.w3.org/2000/svg"/>`)},
		".keep":                   {Data: []byte("placeholder")},
	}
}

func TestUI(t *testing.T) {
	f := newFixture(t, Config{}, func(d *Deps) { d.UI = testUI() })
	index := string(testUI()["index.html"].Data)
	script := string(testUI()["assets/index-abc123.js"].Data)
	const immutable, noCache = "public, max-age=31536000, immutable", "no-cache"
	tests := []struct {
		name, method, target, acceptEncoding string
		wantStatus                           int
		wantType, wantCache, wantEncoding    string
		wantBody                             string // "" skips the check
		wantJSONError                        string // the error code of a JSON answer
	}{
		{name: "the root answers index.html", method: "GET", target: "/", wantStatus: 200,
			wantType: "text/html; charset=utf-8", wantCache: noCache, wantBody: index},
		{name: "a client-side route answers index.html", method: "GET", target: "/jobs/deploy/edit", wantStatus: 200,
			wantType: "text/html; charset=utf-8", wantCache: noCache, wantBody: index},
		{name: "a hashed asset is cached for a year", method: "GET", target: "/assets/index-def456.css", wantStatus: 200,
			wantType: "text/css; charset=utf-8", wantCache: immutable, wantBody: "body{margin:0}"},
		{name: "a script is sent gzip'd to a client that accepts it", method: "GET", target: "/assets/index-abc123.js",
			acceptEncoding: "gzip, deflate, br", wantStatus: 200, wantType: "text/javascript; charset=utf-8",
			wantCache: immutable, wantEncoding: "gzip", wantBody: script},
		{name: "a script is sent plain to a client that refuses gzip", method: "GET", target: "/assets/index-abc123.js",
			acceptEncoding: "gzip;q=0", wantStatus: 200, wantType: "text/javascript; charset=utf-8",
			wantCache: immutable, wantBody: script},
		{name: "a file at the root of the build is served with its type", method: "GET", target: "/favicon.svg", wantStatus: 200,
			wantType: "image/svg+xml", wantCache: noCache},
		{name: "a HEAD answers the headers without the body", method: "HEAD", target: "/", wantStatus: 200,
			wantType: "text/html; charset=utf-8", wantCache: noCache},
		{name: "an asset that is not in the build is a 404, not the app", method: "GET", target: "/assets/index-old999.js",
			wantStatus: 404, wantCache: noCache},
		{name: "a dotfile of the build is not served as itself", method: "GET", target: "/.keep", wantStatus: 200,
			wantType: "text/html; charset=utf-8", wantCache: noCache, wantBody: index},
		{name: "an unknown API path keeps its JSON 404", method: "GET", target: "/api/v1/nothing-here", wantStatus: 404,
			wantJSONError: "route_not_found"},
		{name: "the bare API prefix keeps its JSON 404", method: "GET", target: "/api", wantStatus: 404,
			wantJSONError: "route_not_found"},
		{name: "an unknown health path keeps its JSON 404", method: "GET", target: "/health/nope", wantStatus: 404,
			wantJSONError: "route_not_found"},
		{name: "a POST to a UI path is a JSON 404", method: "POST", target: "/jobs", wantStatus: 404,
			wantJSONError: "route_not_found"},
		{name: "the API still answers", method: "GET", target: "/health", wantStatus: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := newRequest(tt.method, tt.target, "", "")
			req.Header.Set("Accept-Encoding", tt.acceptEncoding)
			rec := f.do(t, req)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %q", rec.Code, tt.wantStatus, rec.Body.String())
			}
			if tt.wantJSONError != "" {
				if e := decodeEnvelope(t, rec); e.Code != tt.wantJSONError {
					t.Fatalf("error code = %q, want %q", e.Code, tt.wantJSONError)
				}
				if rec.Header().Get("Content-Security-Policy") != "" {
					t.Errorf("an API answer carries the UI's CSP")
				}
				return
			}
			if tt.target == "/health" {
				return
			}
			h := rec.Header()
			for name, want := range map[string]string{
				"Content-Security-Policy": uiCSP,
				"X-Content-Type-Options":  "nosniff",
				"Referrer-Policy":         "no-referrer",
				"X-Frame-Options":         "DENY",
				"Cache-Control":           tt.wantCache,
			} {
				if got := h.Get(name); got != want {
					t.Errorf("%s = %q, want %q", name, got, want)
				}
			}
			if tt.wantType != "" && h.Get("Content-Type") != tt.wantType {
				t.Errorf("Content-Type = %q, want %q", h.Get("Content-Type"), tt.wantType)
			}
			if vary := h.Values("Vary"); len(slices.DeleteFunc(slices.Clone(vary), func(v string) bool { return v != "Accept-Encoding" })) > 1 {
				t.Errorf("Vary names Accept-Encoding twice: %q", vary)
			}
			if got := h.Get("Content-Encoding"); got != tt.wantEncoding {
				t.Errorf("Content-Encoding = %q, want %q", got, tt.wantEncoding)
			}
			body := rec.Body.Bytes()
			if tt.method == "HEAD" && len(body) != 0 {
				t.Errorf("HEAD sent a %d-byte body", len(body))
			}
			if tt.wantEncoding == "gzip" {
				zr, err := gzip.NewReader(bytes.NewReader(body))
				if err != nil {
					t.Fatalf("gzip body: %v", err)
				}
				if body, err = io.ReadAll(zr); err != nil {
					t.Fatalf("gzip body: %v", err)
				}
				if rec.Body.Len() >= len(body) {
					t.Errorf("the gzip'd body (%d bytes) is not smaller than the file (%d bytes)", rec.Body.Len(), len(body))
				}
			}
			if tt.wantBody != "" && string(body) != tt.wantBody {
				t.Errorf("body = %.80q…, want %.80q…", body, tt.wantBody)
			}
		})
	}
}

func TestUIRevalidation(t *testing.T) {
	f := newFixture(t, Config{}, func(d *Deps) { d.UI = testUI() })
	first := f.do(t, newRequest("GET", "/", "", ""))
	etag := first.Header().Get("ETag")
	if etag == "" {
		t.Fatal("index.html has no ETag")
	}
	tests := []struct {
		name, ifNoneMatch string
		want              int
	}{
		{name: "the current tag is not modified", ifNoneMatch: etag, want: http.StatusNotModified},
		{name: "a list holding the current tag is not modified", ifNoneMatch: `"old", ` + etag, want: http.StatusNotModified},
		{name: "a weak form of the current tag is not modified", ifNoneMatch: "W/" + etag, want: http.StatusNotModified},
		{name: "another tag gets the file", ifNoneMatch: `"old"`, want: http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := newRequest("GET", "/runs/r1", "", "")
			req.Header.Set("If-None-Match", tt.ifNoneMatch)
			rec := f.do(t, req)
			if rec.Code != tt.want {
				t.Fatalf("status = %d, want %d", rec.Code, tt.want)
			}
			if tt.want == http.StatusNotModified && rec.Body.Len() != 0 {
				t.Fatalf("a 304 has a body")
			}
		})
	}
}

func TestUINotBuilt(t *testing.T) {
	f := newFixture(t, Config{}, func(d *Deps) { d.UI = fstest.MapFS{".keep": {Data: []byte("placeholder")}} })
	for _, target := range []string{"/", "/jobs"} {
		rec := f.do(t, newRequest("GET", target, "", ""))
		if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "UI is not built: run <code>make web</code>") {
			t.Fatalf("GET %s = %d %q, want 200 with how to build the UI", target, rec.Code, rec.Body.String())
		}
	}
}

func TestNoUIKeepsJSON404(t *testing.T) {
	f := newFixture(t, Config{})
	rec := f.do(t, newRequest("GET", "/", "", ""))
	if rec.Code != http.StatusNotFound || decodeEnvelope(t, rec).Code != "route_not_found" {
		t.Fatalf("GET / without a UI = %d %q, want the JSON 404", rec.Code, rec.Body.String())
	}
}
