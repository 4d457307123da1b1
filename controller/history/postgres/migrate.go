package postgres

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
)

// migrations are the schema versions, applied in order by goose. They are
// embedded so that the binary that writes the tables also carries the DDL
// that creates them: there is no migrations directory to ship or forget.
//
//go:embed *.sql
var migrations embed.FS

// versionTable is goose's bookkeeping table. It is named for this package
// rather than goose's default so that another component using goose on the
// same database cannot mistake our versions for its own.
const versionTable = "history_schema_versions"

// migrateLockKey is the pg_advisory_lock key every controller takes before
// migrating. It is fixed ("opschist" in ASCII) so that all versions of the
// binary agree on it; advisory locks are per database, so tests on separate
// databases never wait for each other.
const migrateLockKey int64 = 0x6f70_7363_6869_7374

// Migrate brings the history schemas of the database at dsn to the latest
// version and returns the versions it applied (none when the database was
// already current). It is what `operator history migrate` runs; Open calls
// it too unless Options.SkipMigrate is set.
//
// Several controllers may call it at once: each waits for a PostgreSQL
// advisory lock on a connection of its own, so one of them applies each
// version and the others find nothing left to do.
func Migrate(ctx context.Context, dsn string, opts Options) ([]int64, error) {
	cfg, err := poolConfig(dsn, opts)
	if err != nil {
		return nil, err
	}
	return migrate(ctx, cfg.ConnConfig, opts.logger(), 0)
}

// migrate applies versions up to target (0 = the latest) under the
// migration lock.
func migrate(ctx context.Context, cfg *pgx.ConnConfig, log *slog.Logger, target int64) (applied []int64, err error) {
	p, closeDB, err := newProvider(cfg, log, true)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, closeDB()) }()
	var results []*goose.MigrationResult
	if target == 0 {
		results, err = p.Up(ctx)
	} else {
		results, err = p.UpTo(ctx, target)
	}
	for _, r := range results {
		// An empty migration is still recorded as applied, so it counts.
		if r.Error == nil {
			applied = append(applied, r.Source.Version)
		}
	}
	if err != nil {
		return applied, fmt.Errorf("migrate history schema: %w", err)
	}
	if len(applied) > 0 {
		log.Info("history schema migrated", "versions", applied)
	}
	return applied, nil
}

// checkCurrent fails when the database lacks a version this binary needs,
// for controllers that leave migrating to the operator (SkipMigrate). It
// only reads: goose would create its version table on an empty database,
// which such a controller may have no right to do.
func checkCurrent(ctx context.Context, cfg *pgx.ConnConfig, log *slog.Logger) (err error) {
	p, closeDB, err := newProvider(cfg, log, false)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, closeDB()) }()
	sources := p.ListSources()
	latest := sources[len(sources)-1].Version // goose refuses an empty set
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("check history schema version: %w", err)
	}
	var installed bool
	err = conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", versionTable).Scan(&installed)
	err = errors.Join(err, conn.Close(ctx))
	if err != nil {
		return fmt.Errorf("check history schema version: %w", err)
	}
	if !installed {
		return fmt.Errorf("history schema is not installed, this binary needs version %d: run `opsconductor operator history migrate`", latest)
	}
	pending, err := p.HasPending(ctx)
	if err != nil {
		return fmt.Errorf("check history schema version: %w", err)
	}
	if pending {
		current, _, err := p.GetVersions(ctx)
		if err != nil {
			return fmt.Errorf("check history schema version: %w", err)
		}
		return fmt.Errorf("history schema is at version %d, this binary needs %d: run `opsconductor operator history migrate`", current, latest)
	}
	return nil
}

// newProvider returns a goose provider over a small database/sql pool of
// its own; closeDB releases it.
func newProvider(cfg *pgx.ConnConfig, log *slog.Logger, lock bool) (*goose.Provider, func() error, error) {
	db := stdlib.OpenDB(*cfg)
	// goose holds one connection for the whole run (the one with the lock);
	// a second covers its bookkeeping queries.
	db.SetMaxOpenConns(2)
	opts := []goose.ProviderOption{
		goose.WithTableName(versionTable),
		goose.WithSlog(log),
		// Go migrations registered globally by other packages are not ours.
		goose.WithDisableGlobalRegistry(true),
	}
	if lock {
		opts = append(opts, goose.WithSessionLocker(advisoryLocker{key: migrateLockKey}))
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations, opts...)
	if err != nil {
		return nil, nil, errors.Join(fmt.Errorf("load history migrations: %w", err), db.Close())
	}
	return p, db.Close, nil
}

// advisoryLocker is goose's session locker with a blocking
// pg_advisory_lock. goose's own PostgreSQL locker polls
// pg_try_advisory_lock every five seconds, which makes every controller
// but the first wait at least that long at start-up; blocking wakes the
// waiters the moment the migrating one finishes. A waiter gives up when
// its context ends: pgx then closes the connection, and PostgreSQL drops
// the wait with the session. A migrator that dies releases the lock the
// same way, so the lock can never be left behind.
type advisoryLocker struct{ key int64 }

func (l advisoryLocker) SessionLock(ctx context.Context, conn *sql.Conn) error {
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", l.key); err != nil {
		return fmt.Errorf("take the migration lock: %w", err)
	}
	return nil
}

func (l advisoryLocker) SessionUnlock(ctx context.Context, conn *sql.Conn) error {
	var released bool
	if err := conn.QueryRowContext(ctx, "SELECT pg_advisory_unlock($1)", l.key).Scan(&released); err != nil {
		return fmt.Errorf("release the migration lock: %w", err)
	}
	if !released {
		return errors.New("release the migration lock: this session did not hold it")
	}
	return nil
}
