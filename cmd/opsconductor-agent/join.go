package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/opsconductor/opsconductor/agent/enroll"
	"github.com/opsconductor/opsconductor/agent/facts"
	"github.com/opsconductor/opsconductor/internal/buildinfo"
)

// tokenEnv lets the token stay out of the process list and shell history.
const tokenEnv = "OPSCONDUCTOR_JOIN_TOKEN"

func newJoinCmd() *cobra.Command {
	var (
		o           enroll.Options
		tags        string
		controllers []string
	)
	cmd := &cobra.Command{
		Use:   "join --controller HOST:3001[,HOST2:3001] --token T --ca-pin sha256:… --data-dir D",
		Short: "Enrol this host with a controller using a join token",
		Long: "join checks the controller's agent CA against --ca-pin before it sends the token,\n" +
			"then stores the agent's key and certificate in --data-dir.\n" +
			"The token may come from $" + tokenEnv + " instead of --token.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Token == "" {
				o.Token = os.Getenv(tokenEnv)
			}
			var missing []string
			for _, r := range []struct {
				flag  string
				unset bool
			}{{"--controller", len(controllers) == 0}, {"--token", o.Token == ""}, {"--ca-pin", o.CAPin == ""}, {"--data-dir", o.DataDir == ""}} {
				if r.unset {
					missing = append(missing, r.flag)
				}
			}
			if len(missing) > 0 {
				return usageError{fmt.Errorf("required: %s", strings.Join(missing, ", "))}
			}
			t, err := enroll.ParseTags(tags)
			if err != nil {
				return usageError{err}
			}
			out := cmd.OutOrStdout()
			o.Controllers, o.Tags = controllers, t
			o.Version = buildinfo.Version()
			o.Facts = facts.Gather()
			o.Progress = func(msg string) { fmt.Fprintln(out, msg) }
			res, err := enroll.Join(cmd.Context(), o)
			if errors.Is(err, enroll.ErrAlreadyEnrolled) || errors.Is(err, enroll.ErrInvalidOptions) {
				return usageError{err}
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "enrolled as %s (%s) with the controller at %s; certificate valid until %s\n",
				res.Name, res.AgentID, res.Controller, res.NotAfter.Format("2006-01-02 15:04 MST"))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&controllers, "controller", nil, "agent listener address(es) host:port, tried in order")
	f.StringVar(&o.Token, "token", "", "join token (ocj_…); or set $"+tokenEnv)
	f.StringVar(&o.CAPin, "ca-pin", "", "pin of the controller's agent CA (sha256:…)")
	f.StringVar(&o.DataDir, "data-dir", "/var/lib/opsconductor-agent", "where the agent keeps its identity")
	f.StringVar(&o.Name, "name", "", "agent name (default: the hostname)")
	f.StringVar(&tags, "tags", "", "tags as k=v,k2=v2")
	f.BoolVar(&o.Force, "force", false, "replace an existing enrolment in --data-dir")
	return cmd
}
