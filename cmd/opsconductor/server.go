package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/opsconductor/opsconductor/controller/config"
	"github.com/opsconductor/opsconductor/controller/server"
)

// serverFlags binds every server setting to a flag. The same names are the
// config file keys and, as OPSCONDUCTOR_<NAME>, the environment variables.
func serverFlags(fs *pflag.FlagSet, cfg *config.Server, dev bool) *string {
	httpAddr, agentAddr, raftAddr, dataDir, logFormat := "0.0.0.0:3000", "0.0.0.0:3001", "0.0.0.0:3002", "", "json"
	rateRead, rateWrite, rateOperator, rateLogin := 100.0, 20.0, 5.0, 0.2
	if dev {
		// One person on loopback: limits that scripts and the UI never hit.
		httpAddr, agentAddr, raftAddr, dataDir, logFormat = "127.0.0.1:3000", "127.0.0.1:3001", "127.0.0.1:3002", ".opsconductor-dev", "text"
		rateRead, rateWrite, rateOperator, rateLogin = 2000, 1000, 200, 50
	}
	configFile := fs.String("config", "", "YAML config file; keys are the flag names below (flags and OPSCONDUCTOR_* variables override it)")
	fs.StringVar(&cfg.DataDir, "data-dir", dataDir, "directory for Raft log, snapshots, keys and the node ID (required)")
	fs.StringVar(&cfg.NodeID, "node-id", "", "this server's ID (default: generated on first start and kept in the data dir)")
	fs.StringVar(&cfg.HTTPAddr, "http-addr", httpAddr, "address for the REST API, UI, /health and /metrics")
	fs.StringVar(&cfg.AgentAddr, "agent-addr", agentAddr, "address for agent gRPC streams (TLS)")
	fs.StringVar(&cfg.RaftAddr, "raft-addr", raftAddr, "address for Raft and controller-to-controller RPC (mutual TLS)")
	fs.StringVar(&cfg.Advertise, "advertise", "", "host or IP other servers use to reach this one (required when listening on 0.0.0.0)")
	fs.IntVar(&cfg.BootstrapExpect, "bootstrap-expect", 0, "wait for this many servers (3 or 5) and bootstrap a new cluster with them")
	fs.StringSliceVar(&cfg.RetryJoin, "retry-join", nil, "Raft address (host:port) of another server to discover or join; repeat or comma-separate")
	fs.StringVar(&cfg.TLSCACert, "tls-ca-cert", "", "cluster CA certificate (from 'operator tls init'); default: a CA created in the data dir (single server only)")
	fs.StringVar(&cfg.TLSCAKey, "tls-ca-key", "", "cluster CA private key, used to issue this server's certificate")
	fs.StringVar(&cfg.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&cfg.LogFormat, "log-format", logFormat, "json or text")
	fs.StringSliceVar(&cfg.CORSOrigins, "cors-origin", nil, "browser origin allowed to call the API (CORS is off when empty)")
	fs.Int64Var(&cfg.MaxBodyBytes, "max-body-bytes", 1<<20, "largest accepted request body, except snapshot restores")
	fs.DurationVar(&cfg.ApplyHold, "apply-hold", 7*time.Second, "how long a write waits for a cluster leader before failing with 503")
	fs.Float64Var(&cfg.RateRead, "rate-read", rateRead, "read requests per second per client (inf = unlimited)")
	fs.Float64Var(&cfg.RateWrite, "rate-write", rateWrite, "write requests per second per client (inf = unlimited)")
	fs.Float64Var(&cfg.RateOperator, "rate-operator", rateOperator, "operator requests per second per client (inf = unlimited)")
	fs.BoolVar(&cfg.Batching, "raft-batching", true, "coalesce concurrent writes into one Raft log entry")
	fs.StringVar(&cfg.History, "history", "embedded", "history store: embedded (a file in the data dir; single server only) or a postgres:// URL shared by the cluster (env also OPSCONDUCTOR_HISTORY_DSN)")
	fs.StringVar(&cfg.HistoryPasswordFile, "history-password-file", "", "file holding the PostgreSQL password, for a --history URL without one")
	fs.DurationVar(&cfg.HistoryRetention, "history-retention", 30*24*time.Hour, "delete history older than this (0 keeps everything)")
	fs.Int64Var(&cfg.HistoryMaxBytes, "history-max-bytes", 10<<30, "embedded store only: delete the oldest history beyond this many bytes (0 = no limit)")
	fs.Float64Var(&cfg.RateLogin, "rate-login", rateLogin, "login attempts per second per source address, burst 10 (the per-user lockout applies as well)")
	fs.StringVar(&cfg.KeyringFile, "keyring-file", "", "key-encryption keys for secrets in the state (default: DATA/keyring.key, created on first start; a cluster shares one file from 'operator keyring init'; env OPSCONDUCTOR_KEYRING_KEY holds the content instead)")
	fs.StringVar(&cfg.BootstrapAdminPasswordFile, "bootstrap-admin-password-file", "", "file holding the first admin's password (default: generated, printed once and written to DATA/bootstrap-admin-password; env OPSCONDUCTOR_BOOTSTRAP_ADMIN_PASSWORD)")
	fs.DurationVar(&cfg.AccessTokenTTL, "access-token-ttl", 15*time.Minute, "lifetime of access tokens (JWTs)")
	fs.DurationVar(&cfg.SessionIdleTimeout, "session-idle-timeout", 7*24*time.Hour, "a login session unused this long ends (its refresh token stops working)")
	fs.DurationVar(&cfg.SessionMaxLifetime, "session-max-lifetime", 30*24*time.Hour, "a login session ends this long after login however it is used")
	fs.DurationVar(&cfg.SigningKeyRotation, "signing-key-rotation", 24*time.Hour, "rotate the token signing key this often (old keys verify until their tokens expire)")
	fs.DurationVar(&cfg.RunRetention, "run-retention", time.Hour, "a finished run stays in the replicated state this long, then is read from the history store")
	fs.DurationVar(&cfg.RunAgentWait, "run-agent-wait", 10*time.Minute, "a step waits this long for its target's agent to connect before it fails")
	fs.IntVar(&cfg.MaxActiveRuns, "max-active-runs", 500, "runs running at once; more wait queued")
	fs.IntVar(&cfg.AgentCapacity, "agent-capacity", 32, "step attempts one agent runs at once")
	fs.StringVar(&cfg.ExternalURL, "external-url", "", "address hosts and browsers reach this controller at, e.g. https://ops.example.com; the agent install script downloads from it (default: each request's Host)")
	fs.StringVar(&cfg.ReleaseDir, "release-dir", "", "directory holding the output of make release (opsconductor-agent_<os>_<arch> files and SHA256SUMS) that /install/agent.sh installs from (default: the opsconductor binary's directory when it holds SHA256SUMS, else DATA/release)")
	return configFile
}

func newServerCmd() *cobra.Command {
	return controllerCmd("server", "Run a controller server", `Run one controller of an OpsConductor cluster.

A single server bootstraps itself. For a highly available cluster start 3 or
5 servers with --bootstrap-expect and --retry-join; they find each other and
elect a leader. Settings come from flags, then OPSCONDUCTOR_<FLAG_NAME>
environment variables (OPSCONDUCTOR_DATA_DIR, OPSCONDUCTOR_RETRY_JOIN=a,b …),
then the --config file, then the defaults.`, false)
}

func newDevCmd() *cobra.Command {
	return controllerCmd("dev", "Run an all-in-one development controller", `Run a single-node controller for development: data in ./.opsconductor-dev
(or --data-dir), the API and UI on http://127.0.0.1:3000, readable logs.`, true)
}

func controllerCmd(use, short, long string, dev bool) *cobra.Command {
	var cfg config.Server
	cmd := &cobra.Command{Use: use, Short: short, Long: long, Args: cobra.NoArgs}
	configFile := serverFlags(cmd.Flags(), &cfg, dev)
	cmd.Long += "\n\nConfig file keys: " + strings.Join(config.SettingNames(cmd.Flags(), "config"), ", ")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := config.Layer(cmd.Flags(), *configFile, lookupEnv, "config"); err != nil {
			return usageError{err}
		}
		cfg.Dev = dev
		cfg.KeyringEnv = os.Getenv("OPSCONDUCTOR_KEYRING_KEY")
		cfg.BootstrapAdminPassword = os.Getenv("OPSCONDUCTOR_BOOTSTRAP_ADMIN_PASSWORD")
		if err := cfg.Validate(); err != nil {
			return usageError{err}
		}
		log, err := newLogger(cmd.ErrOrStderr(), cfg.LogLevel, cfg.LogFormat)
		if err != nil {
			return usageError{err}
		}
		return server.Run(cmd.Context(), cfg, log, cmd.ErrOrStderr(), func(r server.Ready) {
			if dev {
				fmt.Fprintf(cmd.OutOrStdout(), "OpsConductor dev controller %s is up: http://%s (data in %s)\n", r.NodeID, r.HTTPAddr, cfg.DataDir)
			}
		})
	}
	return cmd
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return slog.New(slog.NewJSONHandler(w, opts)), nil
}

// lookupEnv is os.LookupEnv plus OPSCONDUCTOR_HISTORY_DSN, the name
// deployments use for the history URL, as an alias of OPSCONDUCTOR_HISTORY.
func lookupEnv(name string) (string, bool) {
	if v, ok := os.LookupEnv(name); ok {
		return v, true
	}
	if name == config.EnvName("history") {
		return os.LookupEnv("OPSCONDUCTOR_HISTORY_DSN")
	}
	return "", false
}
