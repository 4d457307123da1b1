package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
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
		newJoinTokenCmd(f), newExecCmd(f), newStepCmd(f))
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

// exitCodeError ends the CLI with a command's exit code; what happened
// was already printed.
type exitCodeError struct{ code int }

func (e exitCodeError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func newExecCmd(f *apiFlags) *cobra.Command {
	var spec apiclient.CommandSpec
	var env, creds []string
	var poll time.Duration
	cmd := &cobra.Command{
		Use:   "exec ID [--shell LINE | -- ARGV...]",
		Short: "Run a command on a connected agent, print its output as it arrives and exit with its exit code (needs agents:admin)",
		Args:  cobra.MinimumNArgs(1),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			spec.Argv = args[1:]
			if len(env) > 0 {
				spec.Env = map[string]string{}
				for _, kv := range env {
					k, v, ok := strings.Cut(kv, "=")
					if !ok {
						return usageError{fmt.Errorf("--env %q: want NAME=VALUE", kv)}
					}
					spec.Env[k] = v
				}
			}
			if (len(spec.Argv) == 0) == (spec.Shell == "") {
				return usageError{fmt.Errorf("give the command either after -- or with --shell, not both")}
			}
			var err error
			if spec.Credentials, err = credentialFlags(creds); err != nil {
				return err
			}
			att, err := c.RunCommand(cmd.Context(), args[0], spec)
			if err != nil {
				return err
			}
			return followAttempt(cmd, c, att, poll)
		}),
	}
	cmd.Flags().StringVar(&spec.Shell, "shell", "", "a command line run with /bin/sh -c instead of argv")
	cmd.Flags().StringArrayVar(&env, "env", nil, "NAME=VALUE for the command's environment (repeatable)")
	cmd.Flags().StringArrayVar(&creds, "credential", nil, "ALIAS=NAME: the command reads the credential's fields from OPSCONDUCTOR_SECRET_<ALIAS>_<FIELD> (repeatable; needs credentials:use)")
	cmd.Flags().StringVar(&spec.Dir, "dir", "", "the working directory on the agent")
	cmd.Flags().StringVar(&spec.Timeout, "timeout", "", "kill the command after this long (default 1h on the agent)")
	cmd.Flags().DurationVar(&poll, "poll", 250*time.Millisecond, "how often to ask for new output")
	return cmd
}

func newStepCmd(f *apiFlags) *cobra.Command {
	var spec apiclient.StepSpec
	var with string
	var params, creds []string
	var poll time.Duration
	cmd := &cobra.Command{
		Use:   "step ID STEP [--with JSON | --param NAME=VALUE...]",
		Short: "Run a built-in step or a plugin (name or name@version) on a connected agent and follow it (needs agents:admin)",
		Long: `step runs one step on an agent: a built-in step ("http", "noop@1") or a
registered plugin ("disk-usage@1", the newest 1.x). Its parameters come from
--with (a JSON object) or --param NAME=VALUE (repeatable; a VALUE that is valid
JSON, such as 3 or true, is taken as that value, anything else as a string).
The controller checks them against the step's schema before sending it.
'opsconductor steps' lists the steps and their parameters.`,
		Args: exactArgs(2, "the agent ID and the step (name or name@version)"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			spec.Uses = args[1]
			switch {
			case with != "" && len(params) > 0:
				return usageError{fmt.Errorf("give the parameters with --with or with --param, not both")}
			case with != "":
				if !json.Valid([]byte(with)) {
					return usageError{fmt.Errorf("--with: not valid JSON")}
				}
				spec.With = json.RawMessage(with)
			case len(params) > 0:
				m := map[string]json.RawMessage{}
				for _, kv := range params {
					k, v, ok := strings.Cut(kv, "=")
					if !ok || k == "" {
						return usageError{fmt.Errorf("--param %q: want NAME=VALUE", kv)}
					}
					if json.Valid([]byte(v)) {
						m[k] = json.RawMessage(v)
					} else {
						m[k], _ = json.Marshal(v)
					}
				}
				spec.With, _ = json.Marshal(m)
			}
			var err error
			if spec.Credentials, err = credentialFlags(creds); err != nil {
				return err
			}
			att, err := c.RunStep(cmd.Context(), args[0], spec)
			if err != nil {
				return err
			}
			return followAttempt(cmd, c, att, poll)
		}),
	}
	cmd.Flags().StringVar(&with, "with", "", "the step's parameters as a JSON object")
	cmd.Flags().StringArrayVar(&params, "param", nil, "NAME=VALUE, one parameter (repeatable)")
	cmd.Flags().StringArrayVar(&creds, "credential", nil, "ALIAS=NAME: the step gets the credential's fields as secrets ALIAS.FIELD (repeatable; needs credentials:use)")
	cmd.Flags().StringVar(&spec.Timeout, "timeout", "", "end the step after this long (default 1h)")
	cmd.Flags().DurationVar(&poll, "poll", 250*time.Millisecond, "how often to ask for new output")
	return cmd
}

// followAttempt prints an attempt's output as it becomes durable, saying
// on stderr what it waits for, until the attempt is decided; it returns
// the command's exit code as an exitCodeError.
func followAttempt(cmd *cobra.Command, c *apiclient.Client, att apiclient.Attempt, poll time.Duration) error {
	ctx, stdout, stderr := cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr()
	fmt.Fprintf(stderr, "attempt %s on agent %s: waiting for the agent to take it\n", att.ID, att.AgentID)
	status, after := att.Status, uint64(0)
	for {
		page, err := c.AttemptLog(ctx, att.ID, after, 0)
		if err != nil {
			return err
		}
		for _, l := range page.Items {
			w := stdout
			if l.Stream == "stderr" {
				w = stderr
			}
			fmt.Fprint(w, l.Data)
		}
		after = page.Next
		if len(page.Items) > 0 {
			continue
		}
		a, err := c.GetAttempt(ctx, att.ID)
		if err != nil {
			return err
		}
		if a.Status != status && a.Status == "running" {
			fmt.Fprintf(stderr, "attempt %s: running; waiting for its output and result\n", a.ID)
		}
		status = a.Status
		if a.Finished() && after >= a.LastSeq {
			return attemptExit(stderr, a)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stopped waiting; the command goes on (opsconductor attempt cancel %s stops it): %w", a.ID, ctx.Err())
		case <-time.After(poll):
		}
	}
}

func attemptExit(w io.Writer, a apiclient.Attempt) error {
	code := 0
	if a.ExitCode != nil {
		code = *a.ExitCode
	}
	msg := fmt.Sprintf("attempt %s %s", a.ID, a.Status)
	if a.ExitCode != nil {
		msg += fmt.Sprintf(" (exit code %d)", code)
	}
	if a.Error != "" {
		msg += ": " + a.Error
	}
	fmt.Fprintln(w, msg)
	if a.Changed {
		fmt.Fprintln(w, "changed: true")
	}
	for _, k := range slices.Sorted(maps.Keys(a.Outputs)) {
		fmt.Fprintf(w, "output %s=%s\n", k, a.Outputs[k])
	}
	switch {
	case a.Status == "succeeded":
		return nil
	case code > 0 && code < 256:
		return exitCodeError{code}
	default:
		return exitCodeError{1}
	}
}

func newAttemptCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "attempt", Short: "Show, read the output of and cancel attempts run on agents"}
	f := addAPIFlags(cmd)
	show := &cobra.Command{
		Use: "show ID", Short: "Show one attempt (needs agents:read)", Args: exactArgs(1, "the attempt ID (att_…)"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			a, err := c.GetAttempt(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printAttempt(cmd, f, a)
		}),
	}
	var after uint64
	logCmd := &cobra.Command{
		Use: "log ID", Short: "Print an attempt's stored output (needs agents:read)", Args: exactArgs(1, "the attempt ID (att_…)"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			var all []apiclient.LogLine
			for {
				page, err := c.AttemptLog(cmd.Context(), args[0], after, 0)
				if err != nil {
					return err
				}
				if len(page.Items) == 0 {
					break
				}
				if f.json {
					all = append(all, page.Items...)
				} else {
					for _, l := range page.Items {
						w := cmd.OutOrStdout()
						if l.Stream == "stderr" {
							w = cmd.ErrOrStderr()
						}
						fmt.Fprint(w, l.Data)
					}
				}
				after = page.Next
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), all)
			}
			return nil
		}),
	}
	logCmd.Flags().Uint64Var(&after, "after", 0, "print only output after this sequence number")
	cancel := &cobra.Command{
		Use: "cancel ID", Short: "Ask an attempt's agent to stop it (needs agents:admin)", Args: exactArgs(1, "the attempt ID (att_…)"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			a, err := c.CancelAttempt(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), a)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Asked agent %s to cancel attempt %s (%s)\n", a.AgentID, a.ID, a.Status)
			return nil
		}),
	}
	cmd.AddCommand(show, logCmd, cancel)
	return cmd
}

func printAttempt(cmd *cobra.Command, f *apiFlags, a apiclient.Attempt) error {
	if f.json {
		return printJSON(cmd.OutOrStdout(), a)
	}
	exit := "-"
	if a.ExitCode != nil {
		exit = strconv.Itoa(*a.ExitCode)
	}
	late := "-"
	if a.LateResult != nil {
		late = fmt.Sprintf("%s (exit code %d) at %s", a.LateResult.Status, a.LateResult.ExitCode, when(&a.LateResult.ReportedAt))
	}
	return table(cmd.OutOrStdout(), "FIELD\tVALUE", [][]string{
		{"id", a.ID}, {"agent", a.AgentID}, {"kind", a.Kind}, {"params", string(a.Params)}, {"timeout", orDash(a.Timeout)},
		{"status", a.Status}, {"exit code", exit}, {"error", orDash(a.Error)}, {"created", when(&a.CreatedAt)},
		{"created by", a.CreatedBy}, {"started", when(a.StartedAt)}, {"finished", when(a.FinishedAt)},
		{"output lines", strconv.FormatUint(a.LastSeq, 10)}, {"cancel requested", when(a.CancelAt)}, {"late result", late},
	})
}

// credentialFlags reads --credential ALIAS=NAME flags.
func credentialFlags(flags []string) (map[string]string, error) {
	if len(flags) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, f := range flags {
		alias, name, ok := strings.Cut(f, "=")
		if !ok || alias == "" || name == "" {
			return nil, usageError{fmt.Errorf("--credential %q: want ALIAS=NAME", f)}
		}
		out[alias] = name
	}
	return out, nil
}
