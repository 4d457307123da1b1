// Command opsconductor-agent runs on each target host. This release only
// reports its version; enrolment and the controller stream come next.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/opsconductor/opsconductor/internal/buildinfo"
)

func main() {
	root := &cobra.Command{Use: "opsconductor-agent", Short: "OpsConductor agent", SilenceUsage: true, SilenceErrors: true}
	root.AddCommand(&cobra.Command{
		Use: "version", Short: "Print the version", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), buildinfo.String("opsconductor-agent"))
			return err
		},
	})
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(2)
	}
}
