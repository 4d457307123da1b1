package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/opsconductor/opsconductor/controller/config"
	"github.com/opsconductor/opsconductor/controller/history"
	"github.com/opsconductor/opsconductor/controller/server"
)

// historyFlags are the store-selecting flags the history commands share
// with `server`, layered from OPSCONDUCTOR_* the same way.
func historyFlags(fs *pflag.FlagSet, cfg *config.Server) {
	fs.StringVar(&cfg.History, "history", "embedded", "history store: embedded (in --data-dir) or a postgres:// URL (env also OPSCONDUCTOR_HISTORY_DSN)")
	fs.StringVar(&cfg.HistoryPasswordFile, "history-password-file", "", "file holding the PostgreSQL password")
	fs.StringVar(&cfg.DataDir, "data-dir", "", "the controller's data dir, for the embedded store (the controller must be stopped)")
}

func newHistoryCmd() *cobra.Command {
	h := &cobra.Command{Use: "history", Short: "Migrate, export and import the history store"}

	var migCfg config.Server
	migrate := &cobra.Command{
		Use: "migrate", Short: "Apply the PostgreSQL history schema migrations (controllers also do this at start)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := config.Layer(cmd.Flags(), "", lookupEnv); err != nil {
				return usageError{err}
			}
			fmt.Fprintln(cmd.ErrOrStderr(), "Migrating (waits for any controller migrating the same database)…")
			applied, err := server.MigrateHistory(cmd.Context(), migCfg, slog.New(slog.DiscardHandler))
			if err != nil {
				return err
			}
			if len(applied) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "History schema is up to date")
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Applied history migrations %v\n", applied)
			return nil
		},
	}
	historyFlags(migrate.Flags(), &migCfg)

	var exCfg config.Server
	var out string
	export := &cobra.Command{
		Use: "export", Short: "Write every history record as JSON Lines", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := config.Layer(cmd.Flags(), "", lookupEnv); err != nil {
				return usageError{err}
			}
			return withHistory(cmd, exCfg, func(s history.Store) error {
				w := cmd.OutOrStdout()
				if out != "-" {
					f, err := os.Create(out)
					if err != nil {
						return usageError{fmt.Errorf("--out: %w", err)}
					}
					defer f.Close()
					w = f
				}
				n, err := history.Export(cmd.Context(), s, w, progress(cmd, "exported"))
				if err != nil {
					return fmt.Errorf("export after %d records: %w", n, err)
				}
				return nil
			})
		},
	}
	historyFlags(export.Flags(), &exCfg)
	export.Flags().StringVar(&out, "out", "-", "file to write (- for standard output)")

	var imCfg config.Server
	var in string
	importCmd := &cobra.Command{
		Use: "import", Short: "Append JSON Lines from 'history export' to a history store (safe to rerun)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := config.Layer(cmd.Flags(), "", lookupEnv); err != nil {
				return usageError{err}
			}
			return withHistory(cmd, imCfg, func(s history.Store) error {
				var r io.Reader = cmd.InOrStdin()
				if in != "-" {
					f, err := os.Open(in)
					if err != nil {
						return usageError{fmt.Errorf("--in: %w", err)}
					}
					defer f.Close()
					r = f
				}
				n, err := history.Import(cmd.Context(), s, r, progress(cmd, "imported"))
				if err != nil {
					return fmt.Errorf("import after %d records: %w", n, err)
				}
				return nil
			})
		},
	}
	historyFlags(importCmd.Flags(), &imCfg)
	importCmd.Flags().StringVar(&in, "in", "-", "file to read (- for standard input)")

	h.AddCommand(migrate, export, importCmd)
	return h
}

// withHistory opens the store for an offline tool; the embedded store only
// with the data dir locked, so never under a running controller.
func withHistory(cmd *cobra.Command, cfg config.Server, fn func(history.Store) error) error {
	if cfg.EmbeddedHistory() {
		if cfg.DataDir == "" {
			return usageError{fmt.Errorf("--data-dir is required for the embedded history store")}
		}
		release, err := server.LockDataDirForTool(cfg.DataDir)
		if err != nil {
			return err
		}
		defer release()
	}
	s, err := server.OpenHistory(cmd.Context(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer s.Close()
	return fn(s)
}

// progress reports counts on stderr, so that stdout can carry the export.
func progress(cmd *cobra.Command, verb string) func(int64) {
	start := time.Now()
	return func(n int64) {
		fmt.Fprintf(cmd.ErrOrStderr(), "%s %d records (%s)\n", verb, n, time.Since(start).Round(time.Millisecond))
	}
}
