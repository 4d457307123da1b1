package gateway

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"slices"
	"strings"
)

// The web console (package web) is served at "/" for every GET or HEAD that
// no API route matches and that is not under /api/, /health or /metrics:
// an unknown path there keeps its JSON 404, because a client of the API
// must never get an HTML page it cannot parse.
//
// Files are read once at start: the embedded build is immutable, so each
// file is hashed (ETag) and, when it is text, gzip'd at the best level once
// rather than per request. The gateway's gzip middleware leaves a response
// that already has Content-Encoding alone.

// uiRoute labels UI responses in the HTTP metrics and logs: one label for
// every path, so that the SPA's free-form URLs add no cardinality.
const uiRoute = "/ (ui)"

// uiCSP is the Content-Security-Policy of every UI response. Scripts and
// styles come only from the controller itself: Vite emits no inline script
// or style, and React and @xyflow/react set style properties through the
// CSSOM (element.style), which CSP does not govern, so no 'unsafe-inline'
// is needed (the e2e suite fails on any CSP violation, which Chromium logs
// as a console error). connect-src 'self' covers same-origin ws:/wss: in
// current browsers (CSP Level 3), which the live-update socket relies on.
const uiCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; " +
	"connect-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// notBuiltPage answers when the binary was built without the UI.
const notBuiltPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>OpsConductor</title></head>
<body><h1>OpsConductor</h1>
<p>The UI is not built: run <code>make web</code> and then rebuild the controller (<code>make build</code>), or use
<code>make dev</code>, which does both. The API is at <code>/api/v1</code>.</p></body></html>
`

// uiFile is one file of the build, ready to send.
type uiFile struct {
	body        []byte
	gz          []byte // nil when compressing does not pay
	contentType string
	etag        string
	immutable   bool // under assets/: content-hashed names
}

// uiHandler serves the built console.
type uiHandler struct {
	files map[string]*uiFile // by path without the leading slash
	index *uiFile
}

// newUIHandler reads every file of the build. When fsys holds no
// index.html (the UI was not built) every UI path answers notBuiltPage.
func newUIHandler(fsys fs.FS) (*uiHandler, error) {
	h := &uiHandler{files: map[string]*uiFile{}}
	if _, err := fs.Stat(fsys, "index.html"); err != nil {
		h.index = newUIFile("index.html", []byte(notBuiltPage))
		return h, nil
	}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if strings.HasPrefix(path.Base(p), ".") {
			return nil // dist/.keep and the like are not part of the UI
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		h.files[p] = newUIFile(p, b)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the embedded UI: %w", err)
	}
	h.index = h.files["index.html"]
	return h, nil
}

func newUIFile(name string, b []byte) *uiFile {
	sum := sha256.Sum256(b)
	f := &uiFile{
		body:        b,
		contentType: uiContentType(name),
		etag:        `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`,
		immutable:   strings.HasPrefix(name, "assets/"),
	}
	if compressibleType(f.contentType) && len(b) >= minGzipBytes {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression) // the level is valid
		_, _ = zw.Write(b)                                       // a bytes.Buffer does not fail
		_ = zw.Close()
		if buf.Len() < len(b)*9/10 {
			f.gz = buf.Bytes()
		}
	}
	return f
}

// uiContentType names the type by extension, with the types a Vite build
// emits spelled out so that they do not depend on the host's mime tables.
func uiContentType(name string) string {
	switch path.Ext(name) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js", ".mjs":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".json", ".map":
		return "application/json"
	case ".svg":
		return "image/svg+xml"
	case ".png":
		return "image/png"
	case ".ico":
		return "image/x-icon"
	case ".woff2":
		return "font/woff2"
	case ".txt":
		return "text/plain; charset=utf-8"
	}
	if t := mime.TypeByExtension(path.Ext(name)); t != "" {
		return t
	}
	return "application/octet-stream"
}

func compressibleType(ct string) bool {
	return strings.HasPrefix(ct, "text/") || strings.HasPrefix(ct, "application/json") || strings.HasPrefix(ct, "image/svg")
}

// uiPath reports whether r is for the UI: a GET or HEAD outside the API,
// health and metrics paths.
func uiPath(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	p := r.URL.Path
	for _, prefix := range []string{"/api", "/health", "/metrics"} {
		if p == prefix || strings.HasPrefix(p, prefix+"/") {
			return false
		}
	}
	return true
}

func (h *uiHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if st := stateFrom(r.Context()); st != nil {
		st.route = uiRoute
	}
	name := strings.TrimPrefix(path.Clean(r.URL.Path), "/")
	f, ok := h.files[name]
	switch {
	case ok:
	case strings.HasPrefix(name, "assets/"):
		// A hashed file that is not in this build (an old tab asking for
		// a chunk of the previous version): a real 404, never index.html,
		// which the browser would try to run as a script.
		setUIHeaders(w.Header())
		w.Header().Set("Cache-Control", "no-cache")
		http.Error(w, "not found: this file is not part of the running UI build (reload the page)", http.StatusNotFound)
		return
	default:
		// Client-side routes (/jobs/x/edit …) all answer the app.
		f = h.index
	}
	hdr := w.Header()
	setUIHeaders(hdr)
	hdr.Set("Content-Type", f.contentType)
	hdr.Set("ETag", f.etag)
	if f.immutable {
		hdr.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		// Revalidated every time: a new release takes effect on reload.
		hdr.Set("Cache-Control", "no-cache")
	}
	if f.gz != nil && !slices.Contains(hdr.Values("Vary"), "Accept-Encoding") {
		hdr.Add("Vary", "Accept-Encoding") // the gzip middleware usually has
	}
	if etagMatches(r.Header.Get("If-None-Match"), f.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	body := f.body
	if f.gz != nil && acceptsGzip(r.Header.Values("Accept-Encoding")) {
		hdr.Set("Content-Encoding", "gzip")
		body = f.gz
	}
	hdr.Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// setUIHeaders sets the security headers of every UI response.
func setUIHeaders(h http.Header) {
	h.Set("Content-Security-Policy", uiCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
}

// etagMatches implements If-None-Match for strong tags: a list or "*".
func etagMatches(header, etag string) bool {
	if header == "" {
		return false
	}
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}
