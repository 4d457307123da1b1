package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/opsconductor/opsconductor/controller/apiclient"
	"github.com/opsconductor/opsconductor/controller/config"
)

// newHealthCmd is the probe container runtimes and service managers run
// (Docker's HEALTHCHECK, Kubernetes exec probes): images built FROM
// scratch have no curl, so the binary checks itself. It needs no login:
// /health and /health/ready are public.
func newHealthCmd() *cobra.Command {
	var (
		address string
		ready   bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "health [--address URL] [--ready]",
		Short: "Check that a controller answers (exit 0) or not (exit 1), for health probes",
		Long: `health asks a controller's /health endpoint (the process is up and serving)
or, with --ready, /health/ready (it has a leader and its stores are reachable,
so it should get traffic). It prints one line and exits 0 when the answer is
200 OK, 1 otherwise, within --timeout.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("address") {
				if v := os.Getenv(config.EnvName("addr")); v != "" {
					address = v
				}
			}
			u, err := url.Parse(address)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return usageError{fmt.Errorf("--address %q: want http://host:port or https://host:port", address)}
			}
			if timeout <= 0 {
				return usageError{fmt.Errorf("--timeout %s: want a positive duration", timeout)}
			}
			path := "/health"
			if ready {
				path = "/health/ready"
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			return probe(ctx, cmd.OutOrStdout(), strings.TrimRight(address, "/")+path)
		},
	}
	f := cmd.Flags()
	f.StringVar(&address, "address", apiclient.DefaultAddress, "controller HTTP address (env "+config.EnvName("addr")+")")
	f.BoolVar(&ready, "ready", false, "check readiness (/health/ready) instead of liveness (/health)")
	f.DurationVar(&timeout, "timeout", 3*time.Second, "give up and report unhealthy after this long")
	return cmd
}

func probe(ctx context.Context, out io.Writer, target string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("health: %s: %w", target, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health: %s: %s: %s", target, resp.Status, strings.TrimSpace(string(body)))
	}
	_, err = fmt.Fprintf(out, "healthy: %s: %s\n", target, resp.Status)
	return err
}
