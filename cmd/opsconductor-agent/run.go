package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/opsconductor/opsconductor/agent/enroll"
	"github.com/opsconductor/opsconductor/agent/facts"
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

func newRunCmd() *cobra.Command {
	var (
		configFile, dataDir, logLevel string
		controllers                   []string
	)
	cmd := &cobra.Command{
		Use:   "run --data-dir D [--controller HOST:3001,…] [--config FILE]",
		Short: "Keep the stream to the controllers open and run what they assign",
		Long: `run connects to the controller leader with the identity 'join' stored in
--data-dir and stays connected, reconnecting with backoff over every
configured controller when the stream breaks. It stops on SIGTERM or SIGINT.

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
			fmt.Fprintf(out, "agent %s (%s) starting\n", id.Name, id.AgentID)
			err = session.Run(cmd.Context(), session.Config{
				Identity: id, Controllers: controllers, Version: buildinfo.Version(),
				Facts: facts.Gather, Logger: log,
				Progress: func(msg string) { fmt.Fprintln(out, msg) },
			})
			if err != nil {
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
	return cmd
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", level, err)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: lvl})), nil
}
