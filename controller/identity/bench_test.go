package identity

import (
	"context"
	"runtime"
	"testing"
	"time"
)

// BenchmarkLogin is a full password login: argon2id verification at the
// production parameters, the session command and the JWT signature. It
// reports logins per second per core: a floor on the cost of guessing,
// not a figure to raise.
func BenchmarkLogin(b *testing.B) {
	e := newEnv(b)
	ctx := context.Background()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := e.svc.Login(ctx, LoginRequest{Username: "admin", Password: adminPassword}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	perSec := float64(b.N) / time.Since(start).Seconds()
	b.ReportMetric(perSec, "logins/s")
	b.ReportMetric(perSec/float64(runtime.GOMAXPROCS(0)), "logins/s/core")
}
