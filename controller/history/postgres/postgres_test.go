package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/opsconductor/opsconductor/controller/history"
	"github.com/opsconductor/opsconductor/controller/history/historytest"
	"github.com/opsconductor/opsconductor/controller/history/postgres/pgtest"
	"github.com/opsconductor/opsconductor/controller/problem"
)

// Every test gets a database of its own from pgtest and drops it at the
// end, so parallel tests and CI runs never see each other's rows.

// childDSNVar, when set, turns the test binary into a migrating "process"
// for TestMigrate's race between processes.
const childDSNVar = "OPSCONDUCTOR_HISTORY_MIGRATE_CHILD_DSN"

func TestMain(m *testing.M) {
	if dsn := os.Getenv(childDSNVar); dsn != "" {
		os.Exit(migrateChild(dsn))
	}
	goleak.VerifyTestMain(m)
}

// migrateChild runs Migrate and prints the versions it applied as JSON.
func migrateChild(dsn string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	applied, err := Migrate(ctx, dsn, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := json.NewEncoder(os.Stdout).Encode(applied); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func newDatabase(tb testing.TB) string { return pgtest.NewDatabase(tb) }

// withAddress returns dsn pointing at another host and port.
func withAddress(tb testing.TB, dsn, addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		tb.Fatal(err)
	}
	if u, ok := parseURL(dsn); ok {
		u.Host = addr
		return u.String()
	}
	return dsn + " host=" + host + " port=" + port
}

func parseURL(dsn string) (*url.URL, bool) { return pgtest.ParseURL(dsn) }

// serverAddress is host:port of the server a DSN names.
func serverAddress(tb testing.TB, dsn string) string {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		tb.Fatal(err)
	}
	return net.JoinHostPort(cfg.Host, fmt.Sprint(cfg.Port))
}

func connect(tb testing.TB, dsn string) *pgx.Conn {
	tb.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func openStore(tb testing.TB, dsn string, opts Options) *Store {
	tb.Helper()
	s, err := Open(context.Background(), dsn, opts)
	if err != nil {
		tb.Fatalf("open: %v", err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

// waitFor polls cond every few milliseconds until it holds or the deadline
// passes, in the manner of Nomad's testutil.WaitForResult.
func waitFor(tb testing.TB, timeout time.Duration, what string, cond func() (bool, error)) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, err := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not within %s (last error: %v)", what, timeout, err)
		}
		<-tick.C
	}
}

func TestConformance(t *testing.T) {
	historytest.Run(t, func(t *testing.T) historytest.Backend {
		dsn := newDatabase(t)
		return historytest.Backend{Open: func() (history.Store, error) {
			return Open(context.Background(), dsn, Options{})
		}}
	})
}

// schemaState describes what the migrations left in a database.
func schemaState(t *testing.T, conn *pgx.Conn, table string) (tables int, indexes []string) {
	t.Helper()
	ctx := context.Background()
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE tablename = $2 AND schemaname = ANY($1)`,
		history.Domains(), table).Scan(&tables); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.Query(ctx, `SELECT schemaname || '.' || indexname FROM pg_indexes
		WHERE tablename = $2 AND schemaname = ANY($1) ORDER BY 1`, history.Domains(), table)
	if err != nil {
		t.Fatal(err)
	}
	indexes, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return tables, indexes
}

func allIndexes(names ...string) []string {
	var out []string
	for _, d := range history.Domains() {
		for _, n := range names {
			out = append(out, d+"."+n)
		}
	}
	slices.Sort(out)
	return out
}

func TestMigrate(t *testing.T) {
	ctx := context.Background()

	t.Run("an empty database is brought to the latest version once", func(t *testing.T) {
		dsn := newDatabase(t)
		applied, err := Migrate(ctx, dsn, Options{})
		if err != nil || !slices.Equal(applied, []int64{1, 2, 3, 4}) {
			t.Fatalf("first migration applied %v, %v; want [1 2 3 4]", applied, err)
		}
		applied, err = Migrate(ctx, dsn, Options{})
		if err != nil || len(applied) != 0 {
			t.Fatalf("second migration applied %v, %v; want nothing", applied, err)
		}
		tables, indexes := schemaState(t, connect(t, dsn), "chunks")
		if want := allIndexes("chunks_fields", "chunks_kind_time", "chunks_pkey", "chunks_time_brin"); tables != 4 || !slices.Equal(indexes, want) {
			t.Fatalf("%d tables, indexes %v; want 4 tables and %v", tables, indexes, want)
		}
		if tables, _ := schemaState(t, connect(t, dsn), "records"); tables != 0 {
			t.Fatalf("%d records tables left", tables)
		}
	})

	t.Run("a database at version 1 keeps its rows through the upgrades", func(t *testing.T) {
		dsn := newDatabase(t)
		cfg, err := poolConfig(dsn, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if applied, err := migrate(ctx, cfg.ConnConfig, slog.New(slog.DiscardHandler), 1); err != nil || !slices.Equal(applied, []int64{1}) {
			t.Fatalf("migrating to version 1 applied %v, %v", applied, err)
		}
		conn := connect(t, dsn)
		if tables, indexes := schemaState(t, conn, "records"); tables != 4 || !slices.Equal(indexes, allIndexes("records_pkey")) {
			t.Fatalf("version 1 has %d tables and indexes %v", tables, indexes)
		}
		for _, d := range history.Domains() {
			if _, err := conn.Exec(ctx, fmt.Sprintf(`INSERT INTO %s.records (stream, seq, time, kind, fields, data)
				SELECT '%[1]s/old', g, timestamptz '2026-01-01 00:00:00Z' + g * interval '1 second', '%[1]s.old',
					jsonb_build_object('n', g::text), convert_to('{"n":' || g || '}', 'UTF8')
				FROM generate_series(1, 50) g`, d)); err != nil {
				t.Fatal(err)
			}
			// No data, and data whose length takes three bytes of varint
			// in a chunk body.
			if _, err := conn.Exec(ctx, fmt.Sprintf(`INSERT INTO %s.records (stream, seq, time, kind, data)
				VALUES ('%[1]s/old', 51, '2026-01-01 00:01:00Z', '%[1]s.old', NULL),
					('%[1]s/old', 52, '2026-01-01 00:01:01Z', '%[1]s.old', convert_to(repeat('y', 200000), 'UTF8')),
					('%[1]s/old', 53, '2026-01-01 00:01:02Z', '%[1]s.old', convert_to(repeat('z', 300), 'UTF8'))`, d)); err != nil {
				t.Fatal(err)
			}
		}
		if applied, err := Migrate(ctx, dsn, Options{}); err != nil || !slices.Equal(applied, []int64{2, 3, 4}) {
			t.Fatalf("upgrade applied %v, %v; want [2 3 4]", applied, err)
		}
		s := openStore(t, dsn, Options{SkipMigrate: true})
		for _, d := range history.Domains() {
			got, err := s.Read(ctx, d+"/old", 0, 100, 100)
			if err != nil || len(got) != 53 || string(got[9].Data) != `{"n":10}` || got[9].Fields["n"] != "10" ||
				!got[9].Time.Equal(time.Date(2026, 1, 1, 0, 0, 10, 0, time.UTC)) || got[9].Kind != d+".old" {
				t.Fatalf("%s after upgrade: %d records, %v", d, len(got), err)
			}
			if got[50].Data != nil || string(got[51].Data) != strings.Repeat("y", 200000) || string(got[52].Data) != strings.Repeat("z", 300) {
				t.Fatalf("%s after upgrade: data of 51-53 came back as %d, %d, %d bytes", d, len(got[50].Data), len(got[51].Data), len(got[52].Data))
			}
			// The moved records count for idempotency: resent, they are
			// stored once.
			if err := s.Append(ctx, recs(d+"/old", 40, 20, 5)); err != nil {
				t.Fatal(err)
			}
			if again, err := s.Read(ctx, d+"/old", 0, 100, 100); err != nil || len(again) != 59 || string(again[45].Data) != `{"n":46}` {
				t.Fatalf("%s after a resend over moved records: %d records, %v", d, len(again), err)
			}
			p, err := s.Query(ctx, history.Query{Kind: d + ".old", Fields: map[string]string{"n": "7"}, Limit: 10})
			if err != nil || len(p.Records) != 1 || p.Records[0].Seq != 7 {
				t.Fatalf("%s query after upgrade: %+v, %v", d, p.Records, err)
			}
		}
		// The rows written before the BRIN index existed are in its
		// summary: retention finds exactly the old ones.
		if n, err := s.DeleteBefore(ctx, time.Date(2026, 1, 1, 0, 0, 11, 0, time.UTC)); err != nil || n != 4*10 {
			t.Fatalf("retention after upgrade deleted %d, %v; want 40", n, err)
		}
	})

	t.Run("controllers migrating at once apply each version exactly once", func(t *testing.T) {
		dsn := newDatabase(t)
		conn := connect(t, dsn)
		// Holding the lock while every migrator starts makes the race
		// certain: all of them must be queued on it before any proceeds.
		if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrateLockKey); err != nil {
			t.Fatal(err)
		}
		const goroutines = 3
		type result struct {
			who     string
			applied []int64
			err     error
		}
		results := make(chan result, goroutines+1)
		var wg sync.WaitGroup
		for i := range goroutines {
			wg.Go(func() {
				applied, err := Migrate(ctx, dsn, Options{})
				results <- result{fmt.Sprintf("goroutine %d", i), applied, err}
			})
		}
		// And a real second process: the test binary run as a migrator.
		child := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
		child.Env = append(os.Environ(), childDSNVar+"="+dsn)
		var stdout, stderr bytes.Buffer
		child.Stdout, child.Stderr = &stdout, &stderr
		if err := child.Start(); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			err := child.Wait()
			var applied []int64
			if err == nil {
				err = json.Unmarshal(stdout.Bytes(), &applied)
			} else {
				err = fmt.Errorf("%w: %s", err, stderr.String())
			}
			results <- result{"process", applied, err}
		})
		waitFor(t, time.Minute, "all migrators waiting for the lock", func() (bool, error) {
			var waiting int
			err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_locks
				WHERE locktype = 'advisory' AND NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&waiting)
			return waiting == goroutines+1, err
		})
		if _, err := conn.Exec(ctx, "SELECT pg_advisory_unlock($1)", migrateLockKey); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		close(results)
		var all []int64
		for r := range results {
			if r.err != nil {
				t.Errorf("%s: %v", r.who, r.err)
			}
			t.Logf("%s applied %v", r.who, r.applied)
			all = append(all, r.applied...)
		}
		slices.Sort(all)
		if !slices.Equal(all, []int64{1, 2, 3, 4}) {
			t.Fatalf("versions applied across migrators: %v, want each of [1 2 3 4] once", all)
		}
		var rows int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+versionTable+" WHERE version_id > 0").Scan(&rows); err != nil || rows != 4 {
			t.Fatalf("version table holds %d applied versions, %v; want 4", rows, err)
		}
	})

	t.Run("a controller that may not migrate refuses a database that is behind", func(t *testing.T) {
		dsn := newDatabase(t)
		_, err := Open(ctx, dsn, Options{SkipMigrate: true})
		if err == nil || !strings.Contains(err.Error(), "operator history migrate") {
			t.Fatalf("open of an unmigrated database with SkipMigrate: %v, want advice to migrate", err)
		}
		if _, err := Migrate(ctx, dsn, Options{}); err != nil {
			t.Fatal(err)
		}
		openStore(t, dsn, Options{SkipMigrate: true})
	})
}

func TestOptions(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	const secret = "s3cret-hunter2-pw"
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pwFile := write("password", "  "+secret+"\n")

	t.Run("the password file is read and trimmed", func(t *testing.T) {
		cfg, err := poolConfig("postgres://oc@db.example:5432/oc", Options{PasswordFile: pwFile, MaxConns: 7})
		if err != nil || cfg.ConnConfig.Password != secret || cfg.MaxConns != 7 {
			t.Fatalf("config %v, %v; want the file's password and 7 connections", cfg, err)
		}
	})

	for _, c := range []struct {
		name    string
		dsn     string
		opts    Options
		mention string
	}{
		{"a missing password file is named in the error", "postgres://oc@db.example/oc",
			Options{PasswordFile: filepath.Join(dir, "absent")}, "PasswordFile"},
		{"an empty password file is refused naming the option", "postgres://oc@db.example/oc",
			Options{PasswordFile: write("empty", " \n")}, "PasswordFile"},
		{"a negative pool size is refused naming the option", "postgres://oc@db.example/oc",
			Options{MaxConns: -1}, "MaxConns"},
		{"a malformed DSN is refused without echoing its password", "postgres://oc:" + secret + "@db.example:notaport/oc",
			Options{}, "DSN"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Open(ctx, c.dsn, c.opts)
			if err == nil || !strings.Contains(err.Error(), c.mention) || strings.Contains(err.Error(), secret) {
				t.Fatalf("got %v, want an error naming %s and not the password", err, c.mention)
			}
		})
	}

	t.Run("neither logs nor connection errors contain the password", func(t *testing.T) {
		dsn := newDatabase(t)
		var logs bytes.Buffer
		log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		s := openStore(t, dsn, Options{PasswordFile: pwFile, Logger: log})
		if err := s.Ping(ctx); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(logs.String(), "history store open") {
			t.Fatalf("expected start-up logs, got %q", logs.String())
		}
		// A server that is not there: the error names where, never how.
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		_ = l.Close()
		_, err = Open(ctx, withAddress(t, dsn, addr), Options{PasswordFile: pwFile, Logger: log})
		if err == nil || strings.Contains(err.Error(), secret) {
			t.Fatalf("open of a closed port: %v", err)
		}
		if strings.Contains(logs.String(), secret) {
			t.Fatalf("the password was logged: %s", logs.String())
		}
	})
}

func TestDurableCommit(t *testing.T) {
	ctx := context.Background()
	dsn := newDatabase(t)
	name := connect(t, dsn).Config().Database
	if _, err := connect(t, dsn).Exec(ctx, "ALTER DATABASE "+name+" SET synchronous_commit = off"); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	s := openStore(t, dsn, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	var mode string
	if err := s.pool.QueryRow(ctx, "SHOW synchronous_commit").Scan(&mode); err != nil || mode != "on" {
		t.Fatalf("a database with synchronous_commit off gave store sessions %q, %v; want on", mode, err)
	}
	if !strings.Contains(logs.String(), "synchronous_commit is off") {
		t.Fatalf("no warning about synchronous_commit in %q", logs.String())
	}
}

func TestClose(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, newDatabase(t), Options{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	for _, c := range []struct {
		name string
		call func() error
	}{
		{"append", func() error { return s.Append(ctx, []history.Record{historytest.Rec("automation/x", 1, nil)}) }},
		{"read", func() error { _, err := s.Read(ctx, "automation/x", 0, 1, 1); return err }},
		{"tail", func() error { _, err := s.Tail(ctx, "automation/x", 1); return err }},
		{"query", func() error { _, err := s.Query(ctx, history.Query{Kind: "automation.test", Limit: 1}); return err }},
		{"delete", func() error { _, err := s.DeleteBefore(ctx, time.Now()); return err }},
		{"stats", func() error { _, err := s.Stats(ctx); return err }},
		{"ping", func() error { return s.Ping(ctx) }},
	} {
		t.Run(c.name+" after close returns ErrClosed", func(t *testing.T) {
			if err := c.call(); !errors.Is(err, history.ErrClosed) {
				t.Fatalf("got %v, want ErrClosed", err)
			}
		})
	}
}

// recs builds n records of stream starting at seq from, with data of size
// bytes.
func recs(stream string, from uint64, n, size int) []history.Record {
	out := make([]history.Record, n)
	for i := range out {
		r := historytest.Rec(stream, from+uint64(i), map[string]string{"n": fmt.Sprint(from + uint64(i))})
		if size > 0 {
			r.Data = bytes.Repeat([]byte{'x'}, size)
		}
		out[i] = r
	}
	return out
}

func TestAppend(t *testing.T) {
	ctx := context.Background()
	dsn := newDatabase(t)
	s := openStore(t, dsn, Options{})
	conn := connect(t, dsn)

	t.Run("a sequence beyond int64 is refused naming the record", func(t *testing.T) {
		r := historytest.Rec("automation/big", 1, nil)
		r.Seq = math.MaxInt64 + 1
		err := s.Append(ctx, []history.Record{historytest.Rec("automation/big", 1, nil), r})
		if p, ok := problem.As(err); !ok || p.Field != "records[1].seq" {
			t.Fatalf("got %v, want a problem on records[1].seq", err)
		}
	})

	t.Run("a time PostgreSQL cannot hold is refused naming the record", func(t *testing.T) {
		r := historytest.Rec("automation/far", 1, nil)
		r.Time = time.Date(300000, 1, 1, 0, 0, 0, 0, time.UTC)
		if p, ok := problem.As(s.Append(ctx, []history.Record{r})); !ok || p.Field != "records[0].time" {
			t.Fatalf("want a problem on records[0].time")
		}
	})

	for _, size := range []int{10, 2010} {
		t.Run(fmt.Sprintf("a batch of %d spanning every domain is stored whole, duplicates once", size), func(t *testing.T) {
			var batch []history.Record
			for _, d := range history.Domains() {
				stream := fmt.Sprintf("%s/mixed-%d", d, size)
				batch = append(batch, recs(stream, 1, size/4, 0)...)
				batch = append(batch, recs(stream, 1, 2, 0)...) // resent within the batch
			}
			if err := s.Append(ctx, batch); err != nil {
				t.Fatal(err)
			}
			for _, d := range history.Domains() {
				got, err := s.Read(ctx, fmt.Sprintf("%s/mixed-%d", d, size), 0, math.MaxUint64, history.MaxPage)
				if err != nil || len(got) != size/4 || got[0].Kind != d+".test" {
					t.Fatalf("%s: %d records, %v; want %d", d, len(got), err, size/4)
				}
			}
		})
	}

	for _, size := range []int{1, 500} {
		t.Run(fmt.Sprintf("fields of any text come back as written through a batch of %d", size), func(t *testing.T) {
			fields := map[string]string{
				`q"uote`: `back\slash`, "ctl\x01\x1f": "\n\r\t\b\f\x7f", "é/日本": "<>&\u2028", "empty": "", "sl/ash": "a/b",
			}
			stream := fmt.Sprintf("assets/fields-%d", size)
			batch := recs(stream, 1, size, 0)
			for i := range batch {
				batch[i].Fields = fields
			}
			if err := s.Append(ctx, batch); err != nil {
				t.Fatal(err)
			}
			got, err := s.Read(ctx, stream, 0, math.MaxUint64, history.MaxPage)
			if err != nil || len(got) != size {
				t.Fatalf("read %d records, %v", len(got), err)
			}
			for _, r := range got {
				if !maps.Equal(r.Fields, fields) {
					t.Fatalf("fields came back as %q, want %q", r.Fields, fields)
				}
			}
			p, err := s.Query(ctx, history.Query{Kind: "assets.test", Fields: map[string]string{`q"uote`: `back\slash`, "é/日本": "<>&\u2028"}, Limit: 1})
			if err != nil || len(p.Records) != 1 {
				t.Fatalf("query by those fields: %d records, %v", len(p.Records), err)
			}
		})
	}

	// A constraint that fails for one record of the last domain makes the
	// database refuse the batch after the other domains were written.
	if _, err := conn.Exec(ctx, `ALTER TABLE communication.chunks ADD CONSTRAINT test_poison CHECK (kind <> 'communication.poison')`); err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{10, 2010} {
		t.Run(fmt.Sprintf("a batch of %d the database refuses leaves no record in any domain", size), func(t *testing.T) {
			var batch []history.Record
			for _, d := range history.Domains() {
				batch = append(batch, recs(fmt.Sprintf("%s/refused-%d", d, size), 1, size/4, 0)...)
			}
			bad := historytest.Rec("communication/refused", 1, nil)
			bad.Kind = "communication.poison"
			if err := s.Append(ctx, append(batch, bad)); err == nil {
				t.Fatal("the poisoned batch was accepted")
			}
			for _, d := range history.Domains() {
				if got, err := s.Tail(ctx, fmt.Sprintf("%s/refused-%d", d, size), 10); err != nil || len(got) != 0 {
					t.Fatalf("%s kept %d records of a refused batch, %v", d, len(got), err)
				}
			}
		})
	}

	t.Run("times come back in UTC at microsecond precision and bounds compare exactly", func(t *testing.T) {
		base := time.Date(2026, 5, 1, 10, 0, 0, 0, time.FixedZone("CEST", 2*3600))
		r := historytest.Rec("assets/precise", 1, nil)
		r.Kind = "assets.precise"
		r.Time = base.Add(1500 * time.Nanosecond)
		if err := s.Append(ctx, []history.Record{r}); err != nil {
			t.Fatal(err)
		}
		got, err := s.Tail(ctx, "assets/precise", 1)
		if err != nil || len(got) != 1 {
			t.Fatalf("tail: %v %v", got, err)
		}
		if want := base.Add(time.Microsecond).UTC(); got[0].Time != want {
			t.Fatalf("time came back as %v, want %v", got[0].Time, want)
		}
		for _, c := range []struct {
			since, until time.Duration
			found        bool
		}{
			{since: 1000, found: true},
			{since: 1001},
			{until: 1001, found: true},
			{until: 1000},
		} {
			q := history.Query{Kind: "assets.precise", Limit: 1}
			if c.since != 0 {
				q.Since = base.Add(c.since)
			}
			if c.until != 0 {
				q.Until = base.Add(c.until)
			}
			p, err := s.Query(ctx, q)
			if err != nil || (len(p.Records) == 1) != c.found {
				t.Errorf("since +%dns until +%dns: %d records, %v; want found=%v", c.since, c.until, len(p.Records), err, c.found)
			}
		}
	})
}

func TestQuery(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, newDatabase(t), Options{})

	t.Run("records sharing one time are paged through once each in stream and sequence order", func(t *testing.T) {
		at := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
		var batch []history.Record
		for _, st := range []string{"identity/a", "identity/b", "identity/c"} {
			for i := uint64(1); i <= 5; i++ {
				batch = append(batch, history.Record{Stream: st, Seq: i, Time: at, Kind: "identity.login"})
			}
		}
		if err := s.Append(ctx, batch); err != nil {
			t.Fatal(err)
		}
		var got []string
		cursor := ""
		for range 10 {
			p, err := s.Query(ctx, history.Query{Kind: "identity.login", Cursor: cursor, Limit: 4})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range p.Records {
				got = append(got, fmt.Sprintf("%s/%d", r.Stream, r.Seq))
			}
			if cursor = p.Next; cursor == "" {
				break
			}
		}
		var want []string
		for _, st := range []string{"identity/c", "identity/b", "identity/a"} {
			for i := 5; i >= 1; i-- {
				want = append(want, fmt.Sprintf("%s/%d", st, i))
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("pages gave %v\nwant %v", got, want)
		}
	})

	t.Run("bounds beyond what PostgreSQL stores select as if unbounded or empty", func(t *testing.T) {
		far, past := time.Date(400000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-10000, 1, 1, 0, 0, 0, 0, time.UTC)
		for _, c := range []struct {
			since, until time.Time
			want         int
		}{{since: past, want: 15}, {until: far, want: 15}, {since: far}, {until: past}} {
			p, err := s.Query(ctx, history.Query{Kind: "identity.login", Since: c.since, Until: c.until, Limit: 100})
			if err != nil || len(p.Records) != c.want {
				t.Errorf("since %v until %v: %d records, %v; want %d", c.since, c.until, len(p.Records), err, c.want)
			}
		}
	})

	for _, c := range []struct {
		name  string
		q     history.Query
		field string
	}{
		{"a kind outside every domain is refused", history.Query{Kind: "nowhere.thing", Limit: 1}, "kind"},
		{"a kind without a dot is refused", history.Query{Kind: "identity", Limit: 1}, "kind"},
		{"a damaged cursor is refused", history.Query{Kind: "identity.login", Limit: 1,
			Cursor: cursor{time: time.Now(), stream: "identity/a", seq: 1}.encode() + "A"}, "cursor"},
		{"a page beyond the maximum is refused", history.Query{Kind: "identity.login", Limit: history.MaxPage + 1}, "limit"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := s.Query(ctx, c.q)
			if p, ok := problem.As(err); !ok || p.Kind != problem.KindInvalid || p.Field != c.field {
				t.Fatalf("got %v, want an invalid problem on %s", err, c.field)
			}
		})
	}
}

func TestDeleteBefore(t *testing.T) {
	ctx := context.Background()
	dsn := newDatabase(t)
	s := openStore(t, dsn, Options{})
	// More than two deleteBatch slices of chunks in one domain (records a
	// second apart go two to a chunk), a few in another.
	const n = 2 * (2*deleteBatch + 500)
	bulk := recs("automation/bulk", 1, n, 2)
	for i := range bulk {
		bulk[i].Time = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i+1) * time.Second)
		bulk[i].Kind, bulk[i].Fields = "automation.bulk", nil
	}
	for b := range slices.Chunk(bulk, 1000) {
		if err := s.Append(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Append(ctx, recs("identity/few", 1, 30, 10)); err != nil {
		t.Fatal(err)
	}
	before, err := s.Stats(ctx)
	if err != nil || before.Records != n+30 {
		t.Fatalf("stats before: %+v %v", before, err)
	}
	// Rec puts seq i at t0 + i seconds (2026-03-01 12:00:00): the cut-off
	// keeps identity/few from seq 11 on and removes all of automation/bulk.
	deleted, err := s.DeleteBefore(ctx, time.Date(2026, 3, 1, 12, 0, 11, 0, time.UTC))
	if err != nil || deleted != n+10 {
		t.Fatalf("deleted %d, %v; want %d", deleted, err, n+10)
	}
	after, err := s.Stats(ctx)
	if err != nil || after.Records != 20 || !after.Oldest.Equal(time.Date(2026, 3, 1, 12, 0, 11, 0, time.UTC)) || after.Bytes >= before.Bytes {
		t.Fatalf("stats after: %+v (before %+v), %v", after, before, err)
	}
	if deleted, err := s.DeleteBefore(ctx, time.Date(2026, 3, 1, 12, 0, 11, 0, time.UTC)); err != nil || deleted != 0 {
		t.Fatalf("second retention pass deleted %d, %v", deleted, err)
	}
	if deleted, err := s.DeleteBefore(ctx, time.Date(400000, 1, 1, 0, 0, 0, 0, time.UTC)); err != nil || deleted != 20 {
		t.Fatalf("a cut-off beyond PostgreSQL's range deleted %d, %v; want all 20", deleted, err)
	}

	t.Run("a chunk holding records on both sides of the cut-off keeps the newer ones", func(t *testing.T) {
		// Ten records 100 ms apart: one chunk.
		batch := recs("assets/straddle", 1, 10, 3)
		for i := range batch {
			batch[i].Time = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * 100 * time.Millisecond)
			batch[i].Fields = map[string]string{"run_id": "s"}
		}
		if err := s.Append(ctx, batch); err != nil {
			t.Fatal(err)
		}
		cut := batch[4].Time.Add(time.Nanosecond) // after seq 5
		if deleted, err := s.DeleteBefore(ctx, cut); err != nil || deleted != 5 {
			t.Fatalf("deleted %d, %v; want 5", deleted, err)
		}
		got, err := s.Read(ctx, "assets/straddle", 0, 100, 100)
		if err != nil || !slices.Equal(seqsOf(got), []uint64{6, 7, 8, 9, 10}) {
			t.Fatalf("left %v, %v", seqsOf(got), err)
		}
		p, err := s.Query(ctx, history.Query{Kind: "assets.test", Fields: map[string]string{"run_id": "s"}, Limit: 100})
		if err != nil || len(p.Records) != 5 || p.Records[0].Seq != 10 {
			t.Fatalf("query after the rewrite: %d records, %v", len(p.Records), err)
		}
		if st, err := s.Stats(ctx); err != nil || st.Records != 5 || !st.Oldest.Equal(batch[5].Time) {
			t.Fatalf("stats after the rewrite: %+v, %v", st, err)
		}
		// Deleted records sent again are stored again, as they were.
		if err := s.Append(ctx, batch); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Read(ctx, "assets/straddle", 0, 100, 100); err != nil || !slices.Equal(seqsOf(got), seqSpan(1, 10)) {
			t.Fatalf("after a resend: %v, %v", seqsOf(got), err)
		}
	})
}

func seqsOf(recs []history.Record) []uint64 {
	out := make([]uint64, len(recs))
	for i, r := range recs {
		out[i] = r.Seq
	}
	return out
}

func seqSpan(from, to uint64) []uint64 {
	var out []uint64
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

func FuzzCursor(f *testing.F) {
	f.Add("")
	f.Add("not a cursor")
	f.Add(cursor{time: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), stream: "automation/run/r1/log", seq: 42}.encode())
	f.Add(cursor{time: time.Unix(0, 0), stream: "a", seq: math.MaxInt64}.encode())
	f.Add("AQAAAAAAAAAAAAAAAAAAAAA")
	f.Add("AQ==")
	f.Add(strings.Repeat("A", 2000))
	f.Fuzz(func(t *testing.T, s string) {
		c, err := decodeCursor(s)
		if err != nil {
			if p, ok := problem.As(err); !ok || p.Field != "cursor" || p.Kind != problem.KindInvalid {
				t.Fatalf("decode %q: %v is not an invalid problem on cursor", s, err)
			}
			return
		}
		if again := c.encode(); again != s {
			t.Fatalf("decode %q then encode gave %q", s, again)
		}
	})
}

// faultProxy stands between the store and PostgreSQL on a loopback port so
// a test can cut the database off: cut closes every connection and makes
// new ones fail at once (accepted, then closed), as after a crash or a
// failover; restore lets connections through again.
type faultProxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]struct{}
}

func startProxy(tb testing.TB, target string) *faultProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &faultProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Go(p.serve)
	tb.Cleanup(p.close)
	return p
}

func (p *faultProxy) addr() string { return p.ln.Addr().String() }

func (p *faultProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Go(func() { p.forward(c) })
	}
}

// track registers c for cut; it refuses while the proxy is down.
func (p *faultProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		_ = c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *faultProxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
		_ = c.Close()
	}
}

func (p *faultProxy) forward(client net.Conn) {
	if !p.track(client) {
		return
	}
	server, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		p.untrack(client)
		return
	}
	if !p.track(server) {
		p.untrack(client)
		return
	}
	var pipes sync.WaitGroup
	pipes.Go(func() { _, _ = io.Copy(server, client); p.untrack(client, server) })
	pipes.Go(func() { _, _ = io.Copy(client, server); p.untrack(client, server) })
	pipes.Wait()
}

func (p *faultProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		_ = c.Close()
	}
	clear(p.conns)
}

func (p *faultProxy) restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
}

func (p *faultProxy) close() {
	_ = p.ln.Close()
	p.cut()
	p.wg.Wait()
}

// TestOutage cuts PostgreSQL off in the middle of a write burst. Writers
// retry failed batches as the history Writer does; afterwards every record
// a writer was told is stored must be there exactly once, and batches that
// were retried after an ambiguous failure (committed, answer lost) must not
// have left duplicates.
func TestOutage(t *testing.T) {
	ctx := context.Background()
	dsn := newDatabase(t)
	if _, err := Migrate(ctx, dsn, Options{}); err != nil {
		t.Fatal(err)
	}
	proxy := startProxy(t, serverAddress(t, dsn))
	s := openStore(t, withAddress(t, dsn, proxy.addr()), Options{MaxConns: 4, SkipMigrate: true})
	direct := openStore(t, dsn, Options{SkipMigrate: true}) // around the proxy

	const (
		writers = 6
		batches = 24
		cutAt   = 6 // the first writer to reach this batch cuts the line
		shared  = 5 // records per batch every writer also sends to one stream
		// The outage lasts until every writer has failed this often, so
		// the pool also fails to reconnect a few times before it succeeds.
		failuresEach = 3
	)
	// Small and large batches alternate, so transactions of one chunk per
	// stream and of several are cut off mid-way.
	size := func(b int) int {
		if b%2 == 0 {
			return 40
		}
		return 94
	}
	var (
		reached  = make(chan struct{})
		reachedO sync.Once
		cutDone  = make(chan struct{})
		failures = make(chan int, writers*batches)
		acked    = make([][]uint64, writers)
		retries  = make([]int, writers)
		// ambiguous counts batches whose failed append had committed.
		ambiguous = make([]int, writers)
		wg        sync.WaitGroup
	)
	wg.Go(func() {
		<-reached
		proxy.cut()
		close(cutDone)
		seen := map[int]int{}
		for len(seen) < writers || slices.Min(slices.Collect(maps.Values(seen))) < failuresEach {
			seen[<-failures]++
		}
		proxy.restore()
	})
	deadline := time.Now().Add(2 * time.Minute)
	for w := range writers {
		wg.Go(func() {
			stream := fmt.Sprintf("automation/run/w%d/log", w)
			next := uint64(1)
			for b := range batches {
				if b == cutAt {
					reachedO.Do(func() { close(reached) })
				}
				if b == cutAt+3 {
					<-cutDone // nobody finishes before the outage
				}
				batch := recs(stream, next, size(b), 64)
				for i := range shared {
					r := historytest.Rec("communication/shared", uint64(b*shared+i+1), nil)
					r.Kind = "communication.test"
					batch = append(batch, r)
				}
				backoff := 5 * time.Millisecond
				committed := false
				for {
					actx, cancel := context.WithTimeout(ctx, 15*time.Second)
					err := s.Append(actx, batch)
					cancel()
					if err == nil {
						break
					}
					select {
					case failures <- w:
					default: // the outage is over; nobody is counting
					}
					retries[w]++
					// A failed append is all or nothing at every moment; if
					// it is all, the commit went through and the answer was
					// lost, and the retry must not duplicate it.
					got, rerr := direct.Read(ctx, stream, next, next+uint64(size(b))-1, history.MaxPage)
					switch {
					case rerr != nil:
						t.Errorf("writer %d: check batch %d: %v", w, b, rerr)
					case len(got) == size(b) && !committed:
						committed = true
						ambiguous[w]++
					case len(got) == size(b):
					case len(got) != 0:
						t.Errorf("writer %d: failed batch %d is partly stored: %d of %d records", w, b, len(got), size(b))
					}
					if time.Now().After(deadline) {
						t.Errorf("writer %d: batch %d still failing at the deadline: %v", w, b, err)
						return
					}
					// Back off as a real writer would; this paces retries,
					// it does not wait for the outage to end.
					<-time.After(backoff)
					backoff = min(2*backoff, 200*time.Millisecond)
				}
				for _, r := range batch[:size(b)] {
					acked[w] = append(acked[w], r.Seq)
				}
				next += uint64(size(b))
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	t.Logf("retries per writer: %v; batches committed though the writer was told they failed: %v", retries, ambiguous)

	check := connect(t, dsn) // straight to PostgreSQL, around the proxy
	for w := range writers {
		stream := fmt.Sprintf("automation/run/w%d/log", w)
		stored := storedSeqs(t, check, "automation", stream)
		if len(stored) != len(acked[w]) {
			t.Errorf("writer %d: %d records stored, %d acknowledged", w, len(stored), len(acked[w]))
			continue
		}
		for i, seq := range acked[w] {
			if stored[i] != fmt.Sprintf("%s/%020d", stream, seq) {
				t.Errorf("writer %d: stored %s where %d was acknowledged", w, stored[i], seq)
				break
			}
		}
	}
	all := storedSeqs(t, check, "automation", "")
	total, distinct := int64(len(all)), int64(len(slices.Compact(slices.Clone(all))))
	sharedRows := int64(len(storedSeqs(t, check, "communication", "communication/shared")))
	if total != distinct || sharedRows != batches*shared {
		t.Fatalf("%d rows for %d records; shared stream %d rows, want %d", total, distinct, sharedRows, batches*shared)
	}
	st, err := s.Stats(ctx)
	if err != nil || st.Records != total+sharedRows {
		t.Fatalf("stats through the restored proxy: %+v %v; want %d records", st, err, total+sharedRows)
	}
}

// storedSeqs decodes, straight from a domain's chunks table, the keys of
// the records of one stream ("" for all), in (stream, seq) order, each
// as often as it is stored.
func storedSeqs(t *testing.T, conn *pgx.Conn, domain, stream string) []string {
	t.Helper()
	rows, err := conn.Query(context.Background(), "SELECT "+chunkColumns+" FROM "+domain+
		".chunks WHERE $1 = '' OR stream = $1 ORDER BY stream, first_seq", stream)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		c, err := scanChunk(rows)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range c.recs {
			out = append(out, fmt.Sprintf("%s/%020d", c.stream, r.seq))
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestEachWalksEveryRecordInOrder(t *testing.T) {
	s := openStore(t, newDatabase(t), Options{})
	ctx := context.Background()
	var want []string
	for _, d := range history.Domains() {
		var batch []history.Record
		for i := uint64(1); i <= eachPage+5; i++ { // more than one page
			batch = append(batch, historytest.Rec(d+"/s", i, nil))
		}
		if err := s.Append(ctx, batch); err != nil {
			t.Fatal(err)
		}
		for _, r := range batch {
			want = append(want, fmt.Sprintf("%s/%d", r.Stream, r.Seq))
		}
	}
	var got []string
	if err := s.Each(ctx, func(r history.Record) error {
		got = append(got, fmt.Sprintf("%s/%d", r.Stream, r.Seq))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("each visited %d records, want %d in domain, stream, seq order", len(got), len(want))
	}
	stop := errors.New("stop")
	n := 0
	if err := s.Each(ctx, func(history.Record) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Fatalf("a callback error must stop the walk: %v after %d", err, n)
	}
}
