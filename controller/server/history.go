package server

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/opsconductor/opsconductor/controller/config"
	"github.com/opsconductor/opsconductor/controller/history"
	"github.com/opsconductor/opsconductor/controller/history/embedded"
	"github.com/opsconductor/opsconductor/controller/history/postgres"
)

// historyBackend is what /health reports as the backend.
func historyBackend(cfg config.Server) string {
	if cfg.EmbeddedHistory() {
		return "embedded"
	}
	return "postgres"
}

// OpenHistory opens the configured history store: the embedded file in the
// data dir, or the shared PostgreSQL database (migrated on open). The
// operator's history commands use it too.
func OpenHistory(ctx context.Context, cfg config.Server, log *slog.Logger) (history.Store, error) {
	if cfg.EmbeddedHistory() {
		path := filepath.Join(cfg.DataDir, "history", "history.db")
		s, err := embedded.Open(path, embedded.Options{
			Retention: embedded.Retention{MaxAge: cfg.HistoryRetention, MaxBytes: cfg.HistoryMaxBytes},
			Logger:    log.With("component", "history"),
		})
		if err != nil {
			return nil, fmt.Errorf("--history embedded: %w", err)
		}
		return s, nil
	}
	s, err := postgres.Open(ctx, cfg.History, postgres.Options{
		Logger: log.With("component", "history"), PasswordFile: cfg.HistoryPasswordFile,
	})
	if err != nil {
		return nil, fmt.Errorf("--history postgres: %w", err)
	}
	return s, nil
}

// historyHealth is the "history" section of /health.
type historyHealth struct {
	Backend   string `json:"backend"`
	Reachable bool   `json:"reachable"`
	history.WriterStatus
	PingError string `json:"ping_error,omitempty"`
}

// historyMonitor pings the store in the background so that /health and
// /health/ready answer from memory: a liveness probe must never wait on
// PostgreSQL.
type historyMonitor struct {
	backend string
	store   history.Store
	writer  *history.Writer

	mu      sync.Mutex
	pingErr error
}

func (m *historyMonitor) run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, every)
		err := m.store.Ping(pctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		m.mu.Lock()
		m.pingErr = err
		m.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (m *historyMonitor) section(context.Context) any {
	m.mu.Lock()
	err := m.pingErr
	m.mu.Unlock()
	h := historyHealth{Backend: m.backend, Reachable: err == nil, WriterStatus: m.writer.Status()}
	if err != nil {
		h.PingError = err.Error()
	}
	h.Reachable = h.Reachable && !h.Failing
	return h
}

// ready fails while the store cannot take writes.
func (m *historyMonitor) ready(context.Context) error {
	m.mu.Lock()
	err := m.pingErr
	m.mu.Unlock()
	if err != nil {
		return fmt.Errorf("%s store unreachable: %w", m.backend, err)
	}
	if st := m.writer.Status(); st.Failing {
		return fmt.Errorf("%s store failing writes (%d records buffered): %s", m.backend, st.Buffered, st.LastError)
	}
	return nil
}

// MigrateHistory applies the PostgreSQL history migrations and returns the
// versions it applied.
func MigrateHistory(ctx context.Context, cfg config.Server, log *slog.Logger) ([]int64, error) {
	if cfg.EmbeddedHistory() {
		return nil, fmt.Errorf("--history: migrations are for a postgres:// history store; the embedded store needs none")
	}
	applied, err := postgres.Migrate(ctx, cfg.History, postgres.Options{Logger: log, PasswordFile: cfg.HistoryPasswordFile})
	if err != nil {
		return nil, fmt.Errorf("--history postgres: %w", err)
	}
	return applied, nil
}

// LockDataDirForTool takes the data dir's lock for an offline tool, so
// that it never opens the embedded store under a running controller.
func LockDataDirForTool(dir string) (release func(), err error) {
	l, err := lockDataDir(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: stop the controller first", err)
	}
	return l.release, nil
}
