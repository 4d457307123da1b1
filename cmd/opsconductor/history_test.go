package main

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opsconductor/opsconductor/controller/config"
	"github.com/opsconductor/opsconductor/controller/history"
	"github.com/opsconductor/opsconductor/controller/history/postgres/pgtest"
	"github.com/opsconductor/opsconductor/controller/server"
)

func TestHistoryExportImportMovesEmbeddedIntoPostgres(t *testing.T) {
	dsn := pgtest.NewDatabase(t) // skips without OPSCONDUCTOR_TEST_POSTGRES
	ctx := context.Background()
	dataDir := t.TempDir()

	// A single server's embedded history …
	src, err := server.OpenHistory(ctx, config.Server{DataDir: dataDir, History: "embedded"}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	var want []history.Record
	for _, d := range history.Domains() {
		for i := uint64(1); i <= 300; i++ {
			want = append(want, history.Record{Stream: d + "/s", Seq: i, Time: time.Unix(1_700_000_000+int64(i), 1000).UTC(),
				Kind: d + ".test", Fields: map[string]string{"n": "x"}, Data: []byte{byte(i), 0, 255}})
		}
	}
	if err := src.Append(ctx, want); err != nil {
		t.Fatal(err)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}

	// … exported to a file …
	file := filepath.Join(t.TempDir(), "history.jsonl")
	if out, err := run(t, "operator", "history", "export", "--data-dir", dataDir, "--out", file); err != nil {
		t.Fatalf("export: %v\n%s", err, out)
	}

	// … and imported into a fresh PostgreSQL database, twice: the second
	// run (an interrupted import retried) must add nothing.
	for i := range 2 {
		out, err := run(t, "operator", "history", "import", "--history", dsn, "--in", file)
		if err != nil || !strings.Contains(out, "imported 1200 records") {
			t.Fatalf("import %d: %v\n%s", i, err, out)
		}
	}
	dst, err := server.OpenHistory(ctx, config.Server{History: dsn}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	st, err := dst.Stats(ctx)
	if err != nil || st.Records != int64(len(want)) {
		t.Fatalf("imported store holds %+v (%v), want %d records", st, err, len(want))
	}
	got, err := dst.Read(ctx, "communication/s", 1, 300, 1000)
	if err != nil || len(got) != 300 || got[41].Data[0] != 42 || !got[41].Time.Equal(want[3*300+41].Time) || got[41].Fields["n"] != "x" {
		t.Fatalf("imported records differ: %d records, %v", len(got), err)
	}

	t.Run("export refuses a data dir a controller is using", func(t *testing.T) {
		release, err := server.LockDataDirForTool(dataDir)
		if err != nil {
			t.Fatal(err)
		}
		defer release()
		if _, err := run(t, "operator", "history", "export", "--data-dir", dataDir, "--out", file); err == nil || !strings.Contains(err.Error(), "stop the controller first") {
			t.Fatalf("got %v", err)
		}
	})
}
