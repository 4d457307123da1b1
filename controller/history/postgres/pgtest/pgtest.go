// Package pgtest gives tests a fresh PostgreSQL database on the server named
// by OPSCONDUCTOR_TEST_POSTGRES, and skips them with a message where that
// is not set. CI (.ci/run) sets it, so there the tests always run.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// EnvVar names the admin DSN: a user that may CREATE DATABASE.
const EnvVar = "OPSCONDUCTOR_TEST_POSTGRES"

// AdminDSN returns the test server's DSN or skips the test.
func AdminDSN(tb testing.TB) string {
	tb.Helper()
	dsn := os.Getenv(EnvVar)
	if dsn == "" {
		tb.Skipf("%s is not set; set it to a PostgreSQL DSN whose user may CREATE DATABASE, e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable (.ci/run sets it)", EnvVar)
	}
	return dsn
}

// NewDatabase creates an empty database for one test and drops it (with
// any connections a failed test left open) when the test ends. It returns
// the database's DSN.
func NewDatabase(tb testing.TB) string {
	tb.Helper()
	admin := AdminDSN(tb)
	ctx := context.Background()
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	name := "oc_test_" + hex.EncodeToString(b)
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		tb.Fatalf("connect to %s: %v", EnvVar, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		tb.Fatalf("create test database: %v", err)
	}
	tb.Cleanup(func() {
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			tb.Errorf("connect to drop %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			tb.Errorf("drop %s: %v", name, err)
		}
	})
	return WithDatabase(admin, name)
}

// WithDatabase returns dsn pointing at another database; later keywords win
// in the keyword=value form.
func WithDatabase(dsn, name string) string {
	if u, ok := ParseURL(dsn); ok {
		u.Path = "/" + name
		return u.String()
	}
	return dsn + " dbname=" + name
}

// ParseURL parses a URL-form DSN; ok is false for the keyword=value form.
func ParseURL(dsn string) (*url.URL, bool) {
	if !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") {
		return nil, false
	}
	u, err := url.Parse(dsn)
	return u, err == nil
}
