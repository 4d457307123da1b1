package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

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

// refuseJoins is why this server may not take other servers in: the
// embedded history store is a file only this server can read, so a second
// server would see none of the runs, logs and audit entries. The flags of
// the joining server are checked at its start; this covers a single server
// started without cluster flags that others try to join.
func refuseJoins(cfg config.Server) string {
	if !cfg.EmbeddedHistory() {
		return ""
	}
	return "this server keeps its history in the embedded store (a file on this server only); restart it with --history postgres://… (env OPSCONDUCTOR_HISTORY_DSN) and move its history with `opsconductor operator history export` and `import` before adding servers"
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
	s, err := openRetrying(ctx, historyStartWait, log, func(ctx context.Context) (history.Store, error) {
		return postgres.Open(ctx, cfg.History, postgres.Options{
			Logger: log.With("component", "history"), PasswordFile: cfg.HistoryPasswordFile,
		})
	})
	if err != nil {
		return nil, fmt.Errorf("--history postgres: %w", err)
	}
	return s, nil
}

// historyStartWait bounds how long a starting server waits for PostgreSQL.
// A controller restarted by its supervisor while the database restarts too
// (a host reboot, a failover of a managed database) would otherwise exit at
// once and leave the cluster a voter short; the chaos suite found this.
const historyStartWait = 2 * time.Minute

// openRetrying calls open until it succeeds, fails for a reason that
// waiting cannot cure, or wait has passed.
func openRetrying(ctx context.Context, wait time.Duration, log *slog.Logger, open func(context.Context) (history.Store, error)) (history.Store, error) {
	deadline := time.Now().Add(wait)
	backoff := 250 * time.Millisecond
	for attempt := 1; ; attempt++ {
		s, err := open(ctx)
		if err == nil {
			return s, nil
		}
		if !transientPG(err) || time.Now().Add(backoff).After(deadline) {
			return nil, err
		}
		log.Warn("history store not reachable yet; retrying", "attempt", attempt, "retry_in", backoff, "error", err)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("%w while waiting for the history store (last error: %w)", ctx.Err(), err)
		case <-t.C:
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// transientPG reports whether a PostgreSQL error is one that goes away by
// itself: the server is not listening yet, is starting, recovering or
// shutting down, or is full. A wrong password, a missing database or a
// bad TLS setting is reported at once instead.
func transientPG(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "57P01", "57P02", "57P03", "53300": // admin_shutdown, crash_shutdown, cannot_connect_now, too_many_connections
			return true
		}
		return false
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
		return false // a misspelt host name does not appear by waiting
	}
	var ne net.Error
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &ne)
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
