package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/opsconductor/opsconductor/controller/apiclient"
)

func newScheduleCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "schedule",
		Short: "Run jobs on a cron schedule in a time zone, as their owner (needs jobs:read; jobs:write and jobs:run to create or change one)"}
	f := addAPIFlags(cmd)
	cmd.AddCommand(newScheduleListCmd(f), newScheduleShowCmd(f), newScheduleCreateCmd(f), newScheduleUpdateCmd(f),
		newScheduleDeleteCmd(f), newScheduleEnableCmd(f, true), newScheduleEnableCmd(f, false))
	return cmd
}

// scheduleFlags are the flags create and update share.
type scheduleFlags struct {
	job, cron, timezone, overlap, catchUp, description string
	params                                             []string
	disabled                                           bool
}

func (sf *scheduleFlags) add(cmd *cobra.Command, update bool) {
	fl := cmd.Flags()
	fl.StringVar(&sf.job, "job", "", "the job to run")
	fl.StringVar(&sf.cron, "cron", "", `when: 5 fields ("30 2 * * *"), 6 with seconds first, or @daily, @hourly, "@every 5m"`)
	fl.StringVar(&sf.timezone, "timezone", "", "the IANA time zone the spec is read in, e.g. Europe/Berlin (default UTC)")
	fl.StringArrayVarP(&sf.params, "param", "p", nil, `NAME=VALUE, one job parameter (repeatable); VALUE is JSON when it parses as JSON (5, true, ["a"]), else a string`)
	fl.StringVar(&sf.overlap, "overlap", "", "while the previous run still goes: skip the tick (default) or allow another run")
	fl.StringVar(&sf.catchUp, "catch-up", "", "after downtime: skip missed ticks (default) or run once for the latest")
	fl.StringVar(&sf.description, "description", "", "what the schedule is for")
	if !update {
		fl.BoolVar(&sf.disabled, "disabled", false, "create it turned off")
	}
}

// parseScheduleParams reads -p NAME=VALUE values into params.
func parseScheduleParams(values []string, into map[string]any) error {
	for _, kv := range values {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return usageError{fmt.Errorf("--param %q: want NAME=VALUE", kv)}
		}
		var val any
		if err := json.Unmarshal([]byte(v), &val); err != nil {
			val = v
		}
		into[strings.TrimSpace(k)] = val
	}
	return nil
}

func newScheduleCreateCmd(f *apiFlags) *cobra.Command {
	var sf scheduleFlags
	cmd := &cobra.Command{
		Use:   "create NAME --job JOB --cron SPEC",
		Short: "Create a schedule; its runs act for you",
		Args:  exactArgs(1, "the schedule name"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			if sf.job == "" || sf.cron == "" {
				return usageError{errors.New("give the --job to run and its --cron spec")}
			}
			in := apiclient.ScheduleInput{Name: args[0], Job: sf.job, Cron: sf.cron, Timezone: sf.timezone, Overlap: sf.overlap,
				CatchUp: sf.catchUp, Description: sf.description}
			if len(sf.params) > 0 {
				in.Params = map[string]any{}
				if err := parseScheduleParams(sf.params, in.Params); err != nil {
					return err
				}
			}
			if sf.disabled {
				off := false
				in.Enabled = &off
			}
			s, err := c.CreateSchedule(cmd.Context(), in)
			if err != nil {
				return err
			}
			return printSchedule(cmd.OutOrStdout(), f, s)
		}),
	}
	sf.add(cmd, false)
	return cmd
}

func newScheduleUpdateCmd(f *apiFlags) *cobra.Command {
	var sf scheduleFlags
	var replaceParams bool
	var unset []string
	cmd := &cobra.Command{
		Use:   "update NAME [flags]",
		Short: "Change a schedule: the flags given replace those settings, the rest stay; you become its owner",
		Args:  exactArgs(1, "the schedule name"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			// Bad flags are refused before anything is read.
			given := map[string]any{}
			if err := parseScheduleParams(sf.params, given); err != nil {
				return err
			}
			cur, err := c.GetSchedule(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			// Read, change, write at the revision read: a concurrent
			// change is refused (409) rather than silently undone.
			in := cur.Input()
			in.Enabled = nil
			fl := cmd.Flags()
			set := func(flag string, dst *string, v string) {
				if fl.Changed(flag) {
					*dst = v
				}
			}
			set("job", &in.Job, sf.job)
			set("cron", &in.Cron, sf.cron)
			set("timezone", &in.Timezone, sf.timezone)
			set("overlap", &in.Overlap, sf.overlap)
			set("catch-up", &in.CatchUp, sf.catchUp)
			set("description", &in.Description, sf.description)
			params := maps.Clone(in.Params)
			if params == nil || replaceParams {
				params = map[string]any{}
			}
			for _, k := range unset {
				delete(params, k)
			}
			maps.Copy(params, given)
			in.Params = params
			if len(params) == 0 {
				in.Params = nil
			}
			s, err := c.UpdateSchedule(cmd.Context(), args[0], in)
			if err != nil {
				return err
			}
			return printSchedule(cmd.OutOrStdout(), f, s)
		}),
	}
	sf.add(cmd, true)
	cmd.Flags().BoolVar(&replaceParams, "replace-params", false, "drop the stored parameters; only the -p given are kept")
	cmd.Flags().StringArrayVar(&unset, "unset-param", nil, "drop one stored parameter (repeatable)")
	return cmd
}

func newScheduleListCmd(f *apiFlags) *cobra.Command {
	return &cobra.Command{
		Use: "list", Short: "List schedules with their next and last ticks", Args: exactArgs(0, ""),
		RunE: f.run(func(cmd *cobra.Command, _ []string, c *apiclient.Client) error {
			ss, err := c.ListSchedules(cmd.Context())
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), ss)
			}
			rows := make([][]string, 0, len(ss))
			for _, s := range ss {
				next := "-"
				if len(s.NextFires) > 0 {
					next = s.NextFires[0]
				}
				rows = append(rows, []string{s.Name, s.Job, s.Cron, s.Timezone, onOff(s.Enabled), next, lastTick(s)})
			}
			return table(cmd.OutOrStdout(), "NAME\tJOB\tCRON\tTIMEZONE\tENABLED\tNEXT\tLAST", rows)
		}),
	}
}

func newScheduleShowCmd(f *apiFlags) *cobra.Command {
	return &cobra.Command{
		Use: "show NAME", Short: "Show a schedule and its next five ticks", Args: exactArgs(1, "the schedule name"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			s, err := c.GetSchedule(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printSchedule(cmd.OutOrStdout(), f, s)
		}),
	}
}

func newScheduleDeleteCmd(f *apiFlags) *cobra.Command {
	return &cobra.Command{
		Use: "delete NAME", Short: "Delete a schedule (runs it started go on)", Args: exactArgs(1, "the schedule name"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			s, err := c.DeleteSchedule(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), s)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "deleted %s\n", s.Name)
			return err
		}),
	}
}

func newScheduleEnableCmd(f *apiFlags, on bool) *cobra.Command {
	use, short := "enable NAME", "Turn a schedule on: it fires from its next tick (ticks while it was off are not caught up)"
	if !on {
		use, short = "disable NAME", "Turn a schedule off (a run it started goes on)"
	}
	return &cobra.Command{
		Use: use, Short: short, Args: exactArgs(1, "the schedule name"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			s, err := c.SetScheduleEnabled(cmd.Context(), args[0], on)
			if err != nil {
				return err
			}
			return printSchedule(cmd.OutOrStdout(), f, s)
		}),
	}
}

func onOff(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// lastTick says what the last tick did: "2026-11-02T10:00:00Z started".
func lastTick(s apiclient.Schedule) string {
	if s.LastFireTime == nil {
		return "never"
	}
	return s.LastFireTime.Format(time.RFC3339) + " " + s.LastOutcome
}

func printSchedule(w io.Writer, f *apiFlags, s apiclient.Schedule) error {
	if f.json {
		return printJSON(w, s)
	}
	state := "enabled"
	if !s.Enabled {
		state = "disabled"
	}
	owner := s.OwnerName
	if owner == "" {
		owner = s.Owner
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s  job %s  cron %q in %s  %s\n", s.Name, s.Job, s.Cron, s.Timezone, state)
	fmt.Fprintf(&b, "overlap %s, catch-up %s, runs as %s, revision %d\n", s.Overlap, s.CatchUp, owner, s.Revision)
	if s.Description != "" {
		fmt.Fprintf(&b, "%s\n", s.Description)
	}
	if len(s.Params) > 0 {
		parts := make([]string, 0, len(s.Params))
		for _, k := range slices.Sorted(maps.Keys(s.Params)) {
			v, _ := json.Marshal(s.Params[k])
			parts = append(parts, k+"="+string(v))
		}
		fmt.Fprintf(&b, "params %s\n", strings.Join(parts, " "))
	}
	fmt.Fprintf(&b, "last tick %s", lastTick(s))
	if s.LastRunID != "" {
		fmt.Fprintf(&b, " (last run %s)", s.LastRunID)
	}
	b.WriteString("\n")
	if len(s.NextFires) == 0 {
		b.WriteString("next ticks: none\n")
	} else {
		b.WriteString("next ticks:\n")
		for _, n := range s.NextFires {
			fmt.Fprintf(&b, "  %s\n", n)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
