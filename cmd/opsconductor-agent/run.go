package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/opsconductor/opsconductor/agent/enroll"
	"github.com/opsconductor/opsconductor/agent/executor"
	"github.com/opsconductor/opsconductor/agent/health"
	"github.com/opsconductor/opsconductor/agent/node"
	"github.com/opsconductor/opsconductor/agent/outbox"
	"github.com/opsconductor/opsconductor/agent/runner"
	"github.com/opsconductor/opsconductor/agent/session"
	"github.com/opsconductor/opsconductor/controller/config"
	"github.com/opsconductor/opsconductor/internal/buildinfo"
)

// envPrefix names the agent's environment variables: --data-dir is
// OPSCONDUCTOR_AGENT_DATA_DIR.
const envPrefix = "OPSCONDUCTOR_AGENT_"

// agentEnv maps the controller's OPSCONDUCTOR_<FLAG> names, which
// config.Layer asks for, to the agent's own OPSCONDUCTOR_AGENT_<FLAG>, so
// that an agent on a controller host never picks up the controller's
// settings.
func agentEnv(name string) (string, bool) {
	return os.LookupEnv(envPrefix + strings.TrimPrefix(name, config.EnvPrefix))
}

// stopFlushTimeout bounds how long a stopping agent waits for the
// controller to acknowledge the results of its last attempts.
const stopFlushTimeout = 2 * time.Second

func newRunCmd() *cobra.Command {
	var (
		configFile, dataDir, logLevel, pluginDir string
		controllers                              []string
		maxConcurrent                            int
		outboxMax                                int64
		grace                                    time.Duration
	)
	cmd := &cobra.Command{
		Use:   "run --data-dir D [--controller HOST:3001,…] [--config FILE]",
		Short: "Keep the stream to the controllers open and run what they assign",
		Long: `run connects to the controller leader with the identity 'join' stored in
--data-dir and stays connected, reconnecting with backoff over every
configured controller when the stream breaks. It runs the commands the
controller assigns, keeping their output and results in DATA/outbox.db until
the controller acknowledges them (replayed after a reconnect or a restart).

On SIGTERM or SIGINT it takes no new work, lets running attempts finish for
up to --shutdown-grace (10s), then cancels the rest; their results stay in
the outbox and go out on the next start if the stream is down by then.

Settings come from flags, then OPSCONDUCTOR_AGENT_<FLAG_NAME> environment
variables (OPSCONDUCTOR_AGENT_DATA_DIR, OPSCONDUCTOR_AGENT_CONTROLLER=a,b …),
then the --config YAML file (keys are the flag names; its path may also come
from OPSCONDUCTOR_AGENT_CONFIG), then the defaults.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if configFile == "" {
				configFile = os.Getenv(envPrefix + "CONFIG")
			}
			if err := config.Layer(cmd.Flags(), configFile, agentEnv, "config"); err != nil {
				return usageError{err}
			}
			log, err := newLogger(cmd.ErrOrStderr(), logLevel)
			if err != nil {
				return usageError{err}
			}
			out := cmd.OutOrStdout()
			if err := runner.BecomeSubreaper(); err != nil {
				// Steps still run; orphans of killed steps go to init instead.
				log.Warn("cannot become a child subreaper", "error", err)
			}
			id, err := enroll.LoadIdentity(dataDir)
			if err != nil {
				return err
			}
			if len(controllers) == 0 && len(id.Controllers) == 0 {
				return usageError{fmt.Errorf("no controller: give --controller (the enrolment in %s names none)", dataDir)}
			}
			n, err := node.Open(node.Config{Identity: id, DataDir: dataDir, Controllers: controllers, PluginDir: pluginDir,
				OutboxMax: outboxMax, MaxConcurrent: maxConcurrent, Version: buildinfo.Version(), Logger: log,
				Progress: func(msg string) { fmt.Fprintln(out, msg) }})
			if err != nil {
				return err
			}
			defer n.Close()
			ex, s := n.Executor, n.Session
			fmt.Fprintf(out, "agent %s (%s) starting\n", id.Name, id.AgentID)
			// The stream outlives the signal by the grace period, so that
			// results of attempts finishing in it still go out at once.
			sctx, stopSession := context.WithCancel(context.WithoutCancel(cmd.Context()))
			defer stopSession()
			done := make(chan error, 1)
			go func() { done <- s.Run(sctx) }()
			go releaseStartupMemory(sctx, s)
			statusDone := make(chan struct{})
			go func() {
				defer close(statusDone)
				if err := health.Keep(sctx, s, filepath.Join(dataDir, health.FileName), nil); err != nil {
					log.Warn("cannot keep the status file for `opsconductor-agent health`", "error", err)
				}
			}()
			<-cmd.Context().Done()
			if n := ex.RunningCount(); n > 0 {
				fmt.Fprintf(out, "stopping: letting %d running attempt(s) finish for up to %s\n", n, grace)
			}
			ex.Shutdown(grace)
			// Give the stream a moment to deliver the last results; what it
			// cannot deliver stays in the outbox for the next start.
			wctx, cancelWait := context.WithTimeout(sctx, stopFlushTimeout)
			_ = ex.WaitAcked(wctx)
			cancelWait()
			stopSession()
			<-statusDone
			if err := <-done; err != nil {
				return err
			}
			fmt.Fprintln(out, "stopped")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&configFile, "config", "", "YAML config file; keys are the flag names (flags and "+envPrefix+"* variables override it)")
	f.StringVar(&dataDir, "data-dir", "/var/lib/opsconductor-agent", "where 'join' stored the agent's identity")
	f.StringSliceVar(&controllers, "controller", nil, "agent listener address(es) host:port (default: those the agent enrolled with)")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&pluginDir, "plugin-dir", "/usr/lib/opsconductor/plugins", "step plugins installed by hand (<name>/<version>/<os>_<arch>/ with a manifest.json); plugins fetched from the controller go to DATA/plugin-cache")
	f.IntVar(&maxConcurrent, "max-concurrent", executor.DefaultMaxConcurrent, "attempts run at once; more are refused")
	f.Int64Var(&outboxMax, "outbox-max-bytes", outbox.DefaultMaxBytes, "output held unacknowledged before steps are slowed")
	f.DurationVar(&grace, "shutdown-grace", 10*time.Second, "how long running attempts may finish after SIGTERM before they are canceled")
	return cmd
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", level, err)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: lvl})), nil
}

// releaseStartupMemory returns the heap left over from starting up (the
// configuration, enrolment files, the first TLS handshake) to the OS once
// the stream is up. The runtime would release it too, but slowly, and an
// idle agent is what most hosts run; after this its resident set is what
// it actually uses.
func releaseStartupMemory(ctx context.Context, s *session.Session) {
	for !s.Status().Connected {
		select {
		case <-s.Changed():
		case <-ctx.Done():
			return
		}
	}
	debug.FreeOSMemory()
}
