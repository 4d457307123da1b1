package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/opsconductor/opsconductor/controller/config"
	"github.com/opsconductor/opsconductor/controller/history"
	"github.com/opsconductor/opsconductor/controller/history/postgres/pgtest"
	"github.com/opsconductor/opsconductor/internal/faultproxy"
)

func TestTransientPG(t *testing.T) {
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := closed.Addr().String()
	closed.Close()
	_, refused := pgconn.Connect(context.Background(), "postgres://postgres@"+addr+"/x?sslmode=disable&connect_timeout=5")
	if refused == nil {
		t.Fatal("connected to a closed port")
	}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"a server that is not listening yet", fmt.Errorf("migrate: failed to initialize: %w", refused), true},
		{"a server shutting down", fmt.Errorf("migrate: %w", &pgconn.PgError{Code: "57P01"}), true},
		{"a server starting or recovering", &pgconn.PgError{Code: "57P03"}, true},
		{"a full server", &pgconn.PgError{Code: "53300"}, true},
		{"a connection cut mid-handshake", fmt.Errorf("read: %w", io.ErrUnexpectedEOF), true},
		{"a wrong password", fmt.Errorf("connect: %w", &pgconn.PgError{Code: "28P01"}), false},
		{"a missing database", &pgconn.PgError{Code: "3D000"}, false},
		{"a misspelt host", &net.DNSError{Err: "no such host", Name: "pg.example.invalid", IsNotFound: true}, false},
		{"any other error", errors.New("migration 7 failed"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := transientPG(tt.err); got != tt.want {
				t.Fatalf("transientPG(%v) = %v; want %v", tt.err, got, tt.want)
			}
		})
	}
}

// signalHandler is a slog handler that passes each warning on a channel,
// so that a test can act between two retries without guessing at time.
type signalHandler struct {
	slog.Handler
	warned chan string
}

func (h signalHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h signalHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h signalHandler) WithGroup(string) slog.Handler            { return h }

func (h signalHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level == slog.LevelWarn {
		select {
		case h.warned <- r.Message:
		default:
		}
	}
	return h.Handler.Handle(ctx, r)
}

// TestOpenHistoryWaitsForPostgreSQL starts a server's history store while
// PostgreSQL cannot be reached (a proxy in front of it refuses every
// connection), lets it retry, and then lets the database through: the
// store opens instead of the server exiting.
func TestOpenHistoryWaitsForPostgreSQL(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	u, ok := pgtest.ParseURL(dsn)
	if !ok {
		t.Skip("the retry test needs a URL-form OPSCONDUCTOR_TEST_POSTGRES")
	}
	px, err := faultproxy.Listen("127.0.0.1:0", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	px.Cut(faultproxy.Refuse)
	u.Host = px.Addr()

	h := signalHandler{Handler: slog.DiscardHandler, warned: make(chan string, 1)}
	cfg := config.Server{History: u.String(), DataDir: t.TempDir()}
	type opened struct {
		s   history.Store
		err error
	}
	done := make(chan opened, 1)
	go func() {
		s, err := OpenHistory(context.Background(), cfg, slog.New(h))
		done <- opened{s, err}
	}()
	select {
	case msg := <-h.warned:
		if !strings.Contains(msg, "retrying") {
			t.Fatalf("first warning %q", msg)
		}
	case o := <-done:
		t.Fatalf("OpenHistory returned while PostgreSQL was unreachable: %v", o.err)
	case <-time.After(time.Minute):
		t.Fatal("no retry warning within a minute")
	}
	px.Heal()
	select {
	case o := <-done:
		if o.err != nil {
			t.Fatalf("OpenHistory after PostgreSQL came back: %v", o.err)
		}
		o.s.Close()
	case <-time.After(time.Minute):
		t.Fatal("OpenHistory did not return within a minute of PostgreSQL coming back")
	}
	if st := px.Stats(); st.Refused == 0 {
		t.Fatalf("the proxy refused nothing: %+v", st)
	}
}

func TestOpenHistoryFailsAtOnceOnAWrongDatabase(t *testing.T) {
	dsn := pgtest.AdminDSN(t)
	u, ok := pgtest.ParseURL(dsn)
	if !ok {
		t.Skip("needs a URL-form OPSCONDUCTOR_TEST_POSTGRES")
	}
	u.Path = "/oc_no_such_database_" + strings.ReplaceAll(t.Name(), "/", "_")
	began := time.Now()
	_, err := OpenHistory(context.Background(), config.Server{History: u.String(), DataDir: t.TempDir()}, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "--history postgres") {
		t.Fatalf("err = %v; want a --history error", err)
	}
	// No retries: the answer comes from the first attempt. The bound is
	// far below the first backoff sequence's total, not a timing guess.
	if d := time.Since(began); d > 30*time.Second {
		t.Fatalf("took %v: a missing database was retried", d)
	}
}
