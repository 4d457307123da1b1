package gateway

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkAuthenticatedMe is GET /api/v1/me through the whole middleware
// chain without a network: the server's own cost per authenticated request.
// bench/authload measures the same over loopback HTTP.
func BenchmarkAuthenticatedMe(b *testing.B) {
	ti := newTestIdentity(b)
	f := newFixture(b, Config{RateLimits: unlimited()}, func(d *Deps) { d.Identity = ti.svc })
	h := f.srv.Handler()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest(http.MethodGet, "/api/v1/me", nil)
			req.Header.Set("Authorization", "Bearer "+ti.adminToken)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				b.Fatalf("status %d", rec.Code)
			}
		}
	})
}
