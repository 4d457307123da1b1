package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/opsconductor/opsconductor/agent/enroll"
)

func newRunCmd() *cobra.Command {
	var dataDir string
	cmd := &cobra.Command{
		Use:   "run --data-dir D",
		Short: "Run the agent (needs a prior join)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			id, err := enroll.LoadIdentity(dataDir)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "agent %s (%s), controllers %v\n", id.Name, id.AgentID, id.Controllers)
			return errors.New("the controller stream (Connect) is not implemented yet")
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "/var/lib/opsconductor-agent", "where join stored the agent's identity")
	return cmd
}
