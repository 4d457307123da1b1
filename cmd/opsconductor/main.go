// Command opsconductor is the controller (server, dev) and the operator's
// command line. It parses flags into configuration and calls into
// controller/...; no behaviour lives here.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRoot()
	if err := root.ExecuteContext(ctx); err != nil {
		var ee exitCodeError
		if errors.As(err, &ee) {
			os.Exit(ee.code) // the command's own exit code, already reported
		}
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintln(os.Stderr, "Error:", err)
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
}

// usageError marks bad flags or arguments (exit code 2).
type usageError struct{ error }

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "opsconductor",
		Short:         "OpsConductor: IT-operations automation (controller and CLI)",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w (see '%s --help')", err, c.CommandPath())}
	})
	root.AddCommand(newServerCmd(), newDevCmd(), newOperatorCmd(), newVersionCmd(), newHealthCmd(),
		newLoginCmd(), newLogoutCmd(), newWhoamiCmd(), newPasswordCmd(),
		newUserCmd(), newRoleCmd(), newTokenCmd(), newSessionCmd(), newAgentCmd(), newAttemptCmd(),
		newPluginCmd(), newStepsCmd(), newRelationshipCmd(), newCredentialCmd())
	// Relationships are part of the inventory (`asset rel …`); the
	// top-level `relationship` stays for scripts.
	asset := newAssetCmd()
	asset.AddCommand(newRelationshipCmd())
	root.AddCommand(asset)
	root.AddCommand(newDiscoveryCmd())
	root.AddCommand(newScheduleCmd())
	root.AddCommand(newJobCmd(), newRunCmd())
	root.AddCommand(newAuditCmd())
	root.AddCommand(newNotifyCmd())
	return root
}
