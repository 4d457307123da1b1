package gateway

import (
	"compress/gzip"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// minGzipBytes is the smallest body worth compressing: below about a
// kilobyte the gzip header and CPU cost more than they save.
const minGzipBytes = 1024

// gzipper compresses responses for clients that accept gzip. Writers are
// pooled per Server because each one allocates a few hundred kilobytes.
type gzipper struct {
	pool sync.Pool
}

func newGzipper() *gzipper {
	return &gzipper{pool: sync.Pool{New: func() any { return gzip.NewWriter(nil) }}}
}

func (g *gzipper) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Vary", "Accept-Encoding")
		if r.Method == http.MethodHead || !acceptsGzip(r.Header.Values("Accept-Encoding")) {
			next.ServeHTTP(w, r)
			return
		}
		gw := &gzipWriter{ResponseWriter: w, pool: &g.pool}
		next.ServeHTTP(gw, r)
		// Not deferred: after a panic the buffered body must be dropped so
		// that the recovery middleware can still write the error envelope.
		gw.finish()
	})
}

// acceptsGzip reads Accept-Encoding, honouring q=0 ("not acceptable").
func acceptsGzip(values []string) bool {
	star := false
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			q := 1.0
			if name, val, ok := strings.Cut(strings.TrimSpace(params), "="); ok && strings.EqualFold(strings.TrimSpace(name), "q") {
				if f, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
					q = f
				}
			}
			switch strings.ToLower(strings.TrimSpace(coding)) {
			case "gzip", "x-gzip":
				return q > 0
			case "*":
				star = q > 0
			}
		}
	}
	return star
}

// gzipWriter holds back the first minGzipBytes of the body: a response that
// ends within them is sent as is (with its Content-Length), a longer one is
// compressed and sent chunked. Flush commits to whatever is decided so far,
// so streaming handlers keep streaming.
type gzipWriter struct {
	http.ResponseWriter
	pool *sync.Pool

	status  int
	buf     []byte
	decided bool
	gz      *gzip.Writer // nil unless compressing
}

func (w *gzipWriter) WriteHeader(code int) {
	if w.decided {
		w.ResponseWriter.WriteHeader(code)
		return
	}
	if code < 200 { // informational: pass through, the real one follows
		w.ResponseWriter.WriteHeader(code)
		return
	}
	if w.status == 0 {
		w.status = code
	}
}

func (w *gzipWriter) Write(b []byte) (int, error) {
	if !w.decided {
		if w.status == 0 {
			w.status = http.StatusOK
		}
		if !w.compressible() {
			w.commit(false)
		} else if len(w.buf)+len(b) < minGzipBytes {
			w.buf = append(w.buf, b...)
			return len(b), nil
		} else {
			w.commit(true)
		}
	}
	if w.gz != nil {
		return w.gz.Write(b)
	}
	return w.ResponseWriter.Write(b)
}

// compressible is false when compressing would be wrong or wasted: an
// explicit short length, an existing encoding, a status without a body, or
// a type that is already dense (snapshots are octet streams).
func (w *gzipWriter) compressible() bool {
	h := w.Header()
	if h.Get("Content-Encoding") != "" {
		return false
	}
	if n, err := strconv.Atoi(h.Get("Content-Length")); err == nil && n < minGzipBytes {
		return false
	}
	if w.status == http.StatusNoContent || w.status == http.StatusNotModified || w.status < 200 {
		return false
	}
	mt, _, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil {
		return false
	}
	return strings.HasPrefix(mt, "text/") || mt == "application/json" || strings.HasSuffix(mt, "+json") ||
		mt == "application/openmetrics-text"
}

// commit sends the header (compressed or not) and any held-back bytes.
func (w *gzipWriter) commit(compress bool) {
	w.decided = true
	if compress {
		h := w.Header()
		h.Set("Content-Encoding", "gzip")
		h.Del("Content-Length") // the compressed length is not known yet
		w.gz = w.pool.Get().(*gzip.Writer)
		w.gz.Reset(w.ResponseWriter)
	}
	if w.status != 0 {
		w.ResponseWriter.WriteHeader(w.status)
	}
	if len(w.buf) > 0 {
		if w.gz != nil {
			_, _ = w.gz.Write(w.buf)
		} else {
			_, _ = w.ResponseWriter.Write(w.buf)
		}
	}
	w.buf = nil
}

// Flush commits to the current decision (small so far: uncompressed) and
// pushes everything written to the client.
func (w *gzipWriter) Flush() {
	if !w.decided {
		w.commit(false)
	}
	if w.gz != nil {
		_ = w.gz.Flush()
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// finish runs after the handler returns normally.
func (w *gzipWriter) finish() {
	if !w.decided {
		if w.status != 0 && len(w.buf) > 0 && w.Header().Get("Content-Length") == "" {
			w.Header().Set("Content-Length", strconv.Itoa(len(w.buf)))
		}
		w.commit(false)
		return
	}
	if w.gz != nil {
		_ = w.gz.Close()
		w.gz.Reset(nil) // drop the reference to the connection before pooling
		w.pool.Put(w.gz)
		w.gz = nil
	}
}

// Unwrap lets http.ResponseController reach the connection (deadlines).
func (w *gzipWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
