package history

import (
	"context"
	"log/slog"
	"time"
)

// RunRetention deletes records older than maxAge every interval until ctx
// ends, but only while leads() is true: in a cluster sharing one PostgreSQL
// store, one controller (the Raft leader) is enough, and several would only
// contend for the same rows. The embedded store enforces its own retention.
func RunRetention(ctx context.Context, s Store, maxAge, interval time.Duration, leads func() bool, log *slog.Logger) {
	if maxAge <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !leads() {
			continue
		}
		cut := time.Now().Add(-maxAge)
		start := time.Now()
		n, err := s.DeleteBefore(ctx, cut)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("history retention failed", "error", err)
		case n > 0:
			log.Info("history retention", "deleted", n, "older_than", cut.Format(time.RFC3339), "took", time.Since(start).Round(time.Millisecond).String())
		}
	}
}
