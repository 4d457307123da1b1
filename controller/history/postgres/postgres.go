// Package postgres is the history backend for clusters: a history.Store
// over PostgreSQL through a pgx pool, so that every controller of a cluster
// writes to and reads from one shared history.
//
// It owns the schemas named by history.Domains() (identity, assets,
// automation, communication), each holding one chunks table (records
// packed many to a row, see chunk.go), and the migrations that create
// them (embedded, applied with goose under an advisory lock). A record
// lives in the schema of its stream's domain and a query reads the schema
// of its kind's domain, so the domains never share a table. The package
// never interprets a record's Data, never reads the replicated state and
// never touches a table outside those schemas.
package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/opsconductor/opsconductor/controller/history"
	"github.com/opsconductor/opsconductor/controller/problem"
)

// Options tune a Store. The zero value is a working default.
type Options struct {
	// Logger receives start-up and migration messages; nil discards them.
	// Nothing this package logs contains the DSN or a password.
	Logger *slog.Logger
	// MaxConns bounds the pool; 0 keeps the DSN's pool_max_conns or
	// pgxpool's default (the larger of 4 and the number of CPUs).
	MaxConns int32
	// PasswordFile names a file holding only the password (a mounted
	// secret). It is read once, surrounding white space trimmed, and
	// overrides any password in the DSN or the environment.
	PasswordFile string
	// SkipMigrate leaves the schema as it is: Open then only checks that
	// it is current. Set it where controllers run without DDL rights and an
	// operator runs Migrate (`operator history migrate`) instead.
	SkipMigrate bool
}

func (o Options) logger() *slog.Logger {
	if o.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Logger
}

// Store is the PostgreSQL history.Store. It is safe for concurrent use.
type Store struct {
	pool   *pgxpool.Pool
	closed atomic.Bool
	// domains holds each domain's statements in history.Domains() order: the
	// order Append writes in, part of the lock ordering that keeps
	// concurrent batches from deadlocking.
	domains []domainSQL
	// insertUnlessOverlapping holds insertUnlessOverlapping's statement
	// for each set of domains, by bit mask (bit i: domains[i]).
	insertUnlessOverlapping []string
	// bodies holds *[]byte, insertOnce's buffers for chunk bodies: a
	// batch's bodies are as large as its data, and allocating them afresh
	// for every batch cost more client CPU in allocation, zeroing and
	// returning memory to the OS than encoding them.
	bodies sync.Pool
}

var _ history.Store = (*Store)(nil)

// Open connects to the database at dsn, migrates it to the latest schema
// version (unless opts.SkipMigrate) and returns a Store.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	pcfg, err := poolConfig(dsn, opts)
	if err != nil {
		return nil, err
	}
	log := opts.logger()
	if opts.SkipMigrate {
		err = checkCurrent(ctx, pcfg.ConnConfig.Copy(), log)
	} else {
		_, err = migrate(ctx, pcfg.ConnConfig.Copy(), log, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("open postgres history: %w", err)
	}
	pcfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error { return ensureDurableCommit(ctx, c, log) }
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres history: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open postgres history: %w", err)
	}
	s := &Store{pool: pool}
	for _, d := range history.Domains() {
		s.domains = append(s.domains, newDomainSQL(d))
	}
	s.insertUnlessOverlapping = make([]string, 1<<len(s.domains))
	for mask := 1; mask < len(s.insertUnlessOverlapping); mask++ {
		var doms []int
		for d := range s.domains {
			if mask&(1<<d) != 0 {
				doms = append(doms, d)
			}
		}
		s.insertUnlessOverlapping[mask] = insertUnlessOverlapping(s.domains, doms)
	}
	log.Info("history store open", "backend", "postgres", "host", pcfg.ConnConfig.Host, "port", pcfg.ConnConfig.Port,
		"database", pcfg.ConnConfig.Database, "user", pcfg.ConnConfig.User, "max_conns", pcfg.MaxConns)
	return s, nil
}

// poolConfig parses dsn and applies opts. pgxpool's parser is used for
// Migrate too: it strips the pool_* settings, which plain pgx would send
// to the server as unknown run-time parameters.
func poolConfig(dsn string, opts Options) (*pgxpool.Config, error) {
	// pgx redacts the password from its parse errors.
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres history DSN: %w", err)
	}
	if opts.PasswordFile != "" {
		b, err := os.ReadFile(opts.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("postgres history PasswordFile: %w", err)
		}
		pw := strings.TrimSpace(string(b))
		if pw == "" {
			return nil, fmt.Errorf("postgres history PasswordFile %s: is empty", opts.PasswordFile)
		}
		cfg.ConnConfig.Password = pw
	}
	if opts.MaxConns < 0 {
		return nil, fmt.Errorf("postgres history MaxConns %d: must not be negative", opts.MaxConns)
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		// Without a bound a dial into a black hole waits for the kernel's
		// TCP timeout (minutes) when the caller's context has none.
		cfg.ConnConfig.ConnectTimeout = 10 * time.Second
	}
	// Idle connections are checked and recycled well inside the usual
	// firewall and load-balancer idle timeouts. These replace pgxpool's
	// defaults and any pool_max_conn_idle_time or pool_health_check_period
	// in the DSN.
	cfg.MaxConnIdleTime = 5 * time.Minute
	cfg.HealthCheckPeriod = 30 * time.Second
	cfg.MaxConnLifetimeJitter = cfg.MaxConnLifetime / 10
	return cfg, nil
}

// ensureDurableCommit turns synchronous_commit back on for our sessions
// when the server or database has it off: Append promises that a batch
// is durable when it returns, and with it off a crash can lose commits the
// caller was told about. Stronger settings (remote_write, remote_apply) and
// local are left alone.
func ensureDurableCommit(ctx context.Context, c *pgx.Conn, log *slog.Logger) error {
	var mode string
	if err := c.QueryRow(ctx, "SHOW synchronous_commit").Scan(&mode); err != nil {
		return fmt.Errorf("read synchronous_commit: %w", err)
	}
	if mode != "off" {
		return nil
	}
	log.Warn("synchronous_commit is off on the server; history sessions turn it on so that appends are durable")
	if _, err := c.Exec(ctx, "SET synchronous_commit = on"); err != nil {
		return fmt.Errorf("set synchronous_commit: %w", err)
	}
	return nil
}

// fail wraps err with the operation's name. A store closed while the call
// was running reports ErrClosed rather than the pool's own error.
func (s *Store) fail(op string, err error) error {
	if err == nil {
		return nil
	}
	if s.closed.Load() {
		return fmt.Errorf("postgres history %s: %w", op, history.ErrClosed)
	}
	return fmt.Errorf("postgres history %s: %w", op, err)
}

func (s *Store) checkOpen(op string) error {
	if s.closed.Load() {
		return fmt.Errorf("postgres history %s: %w", op, history.ErrClosed)
	}
	return nil
}

// row is a record ready for the database.
type row struct {
	dom    int // index in history.Domains() and s.domains
	stream string
	seq    int64
	time   time.Time
	kind   string
	fields map[string]string
	data   []byte
}

// checkStorable refuses what history.Record allows but a bigint and a
// timestamptz cannot hold, as the caller's fault and before any I/O.
func checkStorable(recs []history.Record) error {
	var l problem.List
	for i, r := range recs {
		if r.Seq > math.MaxInt64 {
			l.Add(fmt.Sprintf("records[%d].seq", i), "%d: this store keeps sequences up to %d", r.Seq, int64(math.MaxInt64))
		}
		if !storable(r.Time) {
			l.Add(fmt.Sprintf("records[%d].time", i), "%s: this store keeps times from 4713 BC to 294000 AD",
				r.Time.Format(time.RFC3339))
		}
	}
	return l.Err()
}

// rows converts recs and sorts them by (domain, stream, seq), keeping the
// batch order of duplicates: the lock order every transaction follows.
// Streams compare as bytes, as the "C" collation of the stream column does.
func (s *Store) rows(recs []history.Record) []row {
	domains := history.Domains()
	out := make([]row, len(recs))
	for i, r := range recs {
		d, _ := history.Domain(r.Stream) // ValidateBatch checked it
		out[i] = row{dom: slices.Index(domains, d), stream: r.Stream, seq: int64(r.Seq),
			time: r.Time, kind: r.Kind, fields: r.Fields, data: r.Data}
	}
	// Producers send a stream's records in sequence order, so a batch is
	// usually sorted already and this is one pass.
	if !slices.IsSortedFunc(out, compareRows) {
		slices.SortStableFunc(out, compareRows)
	}
	return out
}

func compareRows(a, b row) int {
	return cmp.Or(cmp.Compare(a.dom, b.dom), strings.Compare(a.stream, b.stream), cmp.Compare(a.seq, b.seq))
}

// pingTimeout bounds Ping when the caller's context has no deadline, so a
// health check against a black-holed server answers rather than hangs.
const pingTimeout = 5 * time.Second

// Ping reports whether the store can take writes now: the server answers
// and is a primary, not a read-only standby (after a failover a pooled
// address can point at one).
func (s *Store) Ping(ctx context.Context) error {
	if err := s.checkOpen("ping"); err != nil {
		return err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, pingTimeout)
		defer cancel()
	}
	var standby bool
	if err := s.pool.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&standby); err != nil {
		return s.fail("ping", err)
	}
	if standby {
		return s.fail("ping", errors.New("the server is a read-only standby"))
	}
	return nil
}

// Close releases the pool, waiting for calls in flight to give their
// connections back. It is idempotent; afterwards every method returns
// history.ErrClosed.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.pool.Close()
	return nil
}
