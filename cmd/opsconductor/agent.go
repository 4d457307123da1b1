package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/opsconductor/opsconductor/controller/apiclient"
)

func newAgentCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "agent", Short: "Enrol, list and revoke agents (needs agents:read or agents:admin)"}
	f := addAPIFlags(cmd)

	list := &cobra.Command{
		Use: "list", Short: "List enrolled agents", Args: cobra.NoArgs,
		RunE: f.run(func(cmd *cobra.Command, _ []string, c *apiclient.Client) error {
			agents, err := c.AllAgents(cmd.Context())
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), agents)
			}
			rows := make([][]string, 0, len(agents))
			for _, a := range agents {
				rows = append(rows, []string{a.ID, a.Name, agentState(a), orDash(a.Facts.Hostname), formatTags(a.Tags),
					when(&a.EnrolledAt), when(&a.CertNotAfter)})
			}
			return table(cmd.OutOrStdout(), "ID\tNAME\tSTATE\tHOSTNAME\tTAGS\tENROLLED\tCERT EXPIRES", rows)
		}),
	}
	show := &cobra.Command{
		Use: "show ID", Short: "Show one agent", Args: exactArgs(1, "the agent ID (agt_…)"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			a, err := c.GetAgent(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printAgent(cmd, f, a)
		}),
	}
	revoke := &cobra.Command{
		Use: "revoke ID", Short: "Revoke an agent: its certificate is refused from now on", Args: exactArgs(1, "the agent ID (agt_…)"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			a, err := c.RevokeAgent(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), a)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Revoked agent %s (%s)\n", a.ID, a.Name)
			return nil
		}),
	}
	drain := func(use, short, verb string, fn func(*apiclient.Client, context.Context, string) (apiclient.Agent, error)) *cobra.Command {
		return &cobra.Command{
			Use: use + " ID", Short: short, Args: exactArgs(1, "the agent ID (agt_…)"),
			RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
				a, err := fn(c, cmd.Context(), args[0])
				if err != nil {
					return err
				}
				if f.json {
					return printJSON(cmd.OutOrStdout(), a)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s agent %s (%s)\n", verb, a.ID, a.Name)
				return nil
			}),
		}
	}
	cmd.AddCommand(list, show, revoke,
		drain("drain", "Stop sending new work to an agent; what it runs finishes", "Draining", (*apiclient.Client).DrainAgent),
		drain("undrain", "Let a drained agent take work again", "Undrained", (*apiclient.Client).UndrainAgent),
		newJoinTokenCmd(f))
	return cmd
}

func newJoinTokenCmd(f *apiFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "join-token", Short: "Manage the tokens agents enrol with (needs agents:admin)"}

	var ttl time.Duration
	var maxUses int
	var tags []string
	create := &cobra.Command{
		Use: "create", Short: "Create a join token and print the command that enrols an agent with it", Args: cobra.NoArgs,
		RunE: f.run(func(cmd *cobra.Command, _ []string, c *apiclient.Client) error {
			parsed, err := parseTags(tags)
			if err != nil {
				return err
			}
			t, err := c.CreateJoinToken(cmd.Context(), apiclient.CreateJoinTokenRequest{TTL: ttl.String(), MaxUses: maxUses, Tags: parsed})
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), t)
			}
			fmt.Fprintln(cmd.OutOrStdout(), t.JoinCommand)
			fmt.Fprintf(cmd.ErrOrStderr(), "Created join token %s for %d agent(s), expires %s.\n"+
				"Run the line above on the host to enrol; the token is shown only now.\n",
				t.ID, t.MaxUses, when(&t.ExpiresAt))
			return nil
		}),
	}
	create.Flags().DurationVar(&ttl, "ttl", time.Hour, "how long the token can be used (at most 720h)")
	create.Flags().IntVar(&maxUses, "max-uses", 1, "how many agents may enrol with it (1 to 1000)")
	create.Flags().StringArrayVar(&tags, "tag", nil, "tag every agent enrolled with it gets, k=v (repeat)")

	list := &cobra.Command{
		Use: "list", Short: "List join tokens (metadata only; tokens are never shown again)", Args: cobra.NoArgs,
		RunE: f.run(func(cmd *cobra.Command, _ []string, c *apiclient.Client) error {
			toks, err := c.ListJoinTokens(cmd.Context())
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), nonNilSlice(toks))
			}
			now := time.Now()
			rows := make([][]string, 0, len(toks))
			for _, t := range toks {
				state := "active"
				switch {
				case t.Revoked:
					state = "revoked"
				case !now.Before(t.ExpiresAt):
					state = "expired"
				case t.Uses >= t.MaxUses:
					state = "used up"
				}
				rows = append(rows, []string{t.ID, fmt.Sprintf("%d/%d", t.Uses, t.MaxUses), formatTags(t.Tags), t.CreatedBy,
					when(&t.CreatedAt), when(&t.ExpiresAt), state})
			}
			return table(cmd.OutOrStdout(), "ID\tUSES\tTAGS\tCREATED BY\tCREATED\tEXPIRES\tSTATE", rows)
		}),
	}
	revoke := &cobra.Command{
		Use: "revoke ID", Short: "Revoke a join token; agents it enrolled stay enrolled", Args: exactArgs(1, "the join token ID"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			t, err := c.RevokeJoinToken(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), t)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Revoked join token %s\n", t.ID)
			return nil
		}),
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}

func printAgent(cmd *cobra.Command, f *apiFlags, a apiclient.Agent) error {
	if f.json {
		return printJSON(cmd.OutOrStdout(), a)
	}
	return table(cmd.OutOrStdout(), "FIELD\tVALUE", [][]string{
		{"id", a.ID}, {"name", a.Name}, {"state", agentState(a)}, {"tags", formatTags(a.Tags)},
		{"hostname", orDash(a.Facts.Hostname)}, {"os", orDash(strings.TrimSpace(a.Facts.OS + " " + a.Facts.OSVersion))},
		{"arch", orDash(a.Facts.Arch)}, {"version", orDash(a.Version)}, {"enrolled", when(&a.EnrolledAt)},
		{"join token", orDash(a.JoinTokenID)}, {"certificate serial", a.CertSerial}, {"certificate expires", when(&a.CertNotAfter)},
		{"draining", strconv.FormatBool(a.Draining)}, {"connected to", orDash(a.ConnectedTo)}, {"last seen", when(a.LastSeen)},
		{"revoked", when(a.RevokedAt)},
	})
}

func agentState(a apiclient.Agent) string {
	if a.Revoked {
		return "revoked"
	}
	return a.Status
}

// parseTags reads --tag k=v values.
func parseTags(values []string) (map[string]string, error) {
	out := map[string]string{}
	for _, v := range values {
		k, val, ok := strings.Cut(v, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, usageError{fmt.Errorf("--tag %q: want key=value", v)}
		}
		out[strings.TrimSpace(k)] = val
	}
	return out, nil
}

func formatTags(tags map[string]string) string {
	if len(tags) == 0 {
		return "-"
	}
	parts := make([]string, 0, len(tags))
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		parts = append(parts, k+"="+tags[k])
	}
	return strings.Join(parts, ",")
}
