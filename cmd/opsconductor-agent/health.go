package main

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/opsconductor/opsconductor/agent/health"
)

func newHealthCmd() *cobra.Command {
	var (
		dataDir string
		maxDown time.Duration
	)
	cmd := &cobra.Command{
		Use:   "health [--data-dir D] [--max-disconnected 2m]",
		Short: "Check that the agent runs and is connected (exit 0) or not (exit 1), for health probes",
		Long: `health reads the status file the running agent keeps in --data-dir and
exits 0 when the agent process is alive, has updated the file recently and
is connected to a controller, or has been reconnecting for at most
--max-disconnected (a controller failover is no reason to restart agents).
Otherwise it prints why and exits 1. It needs no credentials and no network,
so it works as a container HEALTHCHECK or a Kubernetes exec probe.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if maxDown <= 0 {
				return usageError{fmt.Errorf("--max-disconnected %s: want a positive duration", maxDown)}
			}
			rep, err := health.Read(filepath.Join(dataDir, health.FileName))
			if err != nil {
				return err
			}
			msg, err := health.Check(rep, time.Now(), maxDown, nil)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), "healthy:", msg)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&dataDir, "data-dir", "/var/lib/opsconductor-agent", "the agent's data dir (where `run` keeps "+health.FileName+")")
	f.DurationVar(&maxDown, "max-disconnected", 2*time.Minute, "how long the agent may be without a controller and still count as healthy")
	return cmd
}
