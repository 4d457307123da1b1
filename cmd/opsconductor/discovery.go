package main

import (
	"context"
	"errors"
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

func newDiscoveryCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "discovery",
		Short: "Find hosts on the network: scan profiles on an agent, see what appeared, changed and disappeared, import found hosts (needs assets:read; assets:write to run and import; agents:admin to set ranges)"}
	f := addAPIFlags(cmd)
	cmd.AddCommand(newDiscoveryProfileCmd(f), newDiscoveryRunCmd(f), newDiscoveryScansCmd(f), newDiscoveryShowCmd(f),
		newDiscoveryImportCmd(f), newDiscoveryRangesCmd(f))
	return cmd
}

func newDiscoveryProfileCmd(f *apiFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "profile", Short: "Create, list, show and delete discovery profiles"}
	var (
		in         apiclient.DiscoveryProfileInput
		noResolve  bool
		autoPorts  []int
		autoTags   []string
		cidrs      []string
		ports      []string
		agent      string
		rate, conc int
	)
	create := &cobra.Command{
		Use:   "create NAME --cidr CIDR… --agent AGENT",
		Short: "Create a profile: what to scan (--cidr, --port) and which agent scans (it must be allowed those ranges)",
		Args:  exactArgs(1, "the profile name"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			if len(cidrs) == 0 || agent == "" {
				return usageError{errors.New("give at least one --cidr and the --agent that scans")}
			}
			in.Name, in.CIDRs, in.Ports, in.Agent, in.Rate, in.Concurrency = args[0], cidrs, ports, agent, rate, conc
			if noResolve {
				no := false
				in.Resolve = &no
			}
			if len(autoPorts) > 0 {
				tags, err := parseTags(autoTags)
				if err != nil {
					return err
				}
				in.AutoImport = &apiclient.DiscoveryAutoImport{Ports: autoPorts, Tags: tags}
			} else if len(autoTags) > 0 {
				return usageError{errors.New("--auto-import-tag needs --auto-import-port")}
			}
			p, err := c.CreateDiscoveryProfile(cmd.Context(), in)
			if err != nil {
				return err
			}
			return printProfile(cmd.OutOrStdout(), f, p)
		}),
	}
	create.Flags().StringArrayVar(&cidrs, "cidr", nil, "a range to scan, CIDR or address (repeatable)")
	create.Flags().StringArrayVar(&ports, "port", nil, "a port or range such as 8000-8010 (repeatable; default 22,80,443,3389,5432,8080,8443)")
	create.Flags().StringVar(&agent, "agent", "", "the agent that scans, by name or ID")
	create.Flags().IntVar(&rate, "rate", 0, "connection attempts per second (default and ceiling 2000)")
	create.Flags().IntVar(&conc, "concurrency", 0, "connections at once (default 256)")
	create.Flags().StringVar(&in.Timeout, "timeout", "", "connect timeout per port (default 1s)")
	create.Flags().StringVar(&in.BannerTimeout, "banner-timeout", "", "time to read a banner (default 2s)")
	create.Flags().BoolVar(&noResolve, "no-resolve", false, "do not look up the names of hosts found")
	create.Flags().StringVar(&in.Schedule, "schedule", "", "scan on this cron schedule too (\"0 3 * * *\", \"@hourly\")")
	create.Flags().StringVar(&in.TimeZone, "time-zone", "", "the schedule's IANA time zone (default UTC)")
	create.Flags().IntSliceVar(&autoPorts, "auto-import-port", nil, "import found hosts with this port open automatically (repeatable)")
	create.Flags().StringArrayVar(&autoTags, "auto-import-tag", nil, "tag KEY=VALUE for auto-imported hosts (repeatable)")

	list := &cobra.Command{
		Use: "list", Short: "List profiles", Args: exactArgs(0, ""),
		RunE: f.run(func(cmd *cobra.Command, _ []string, c *apiclient.Client) error {
			ps, err := c.ListDiscoveryProfiles(cmd.Context())
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), ps)
			}
			rows := make([][]string, 0, len(ps))
			for _, p := range ps {
				rows = append(rows, []string{p.Name, p.Agent, strings.Join(p.CIDRs, ","), strings.Join(p.Ports, ",")})
			}
			return table(cmd.OutOrStdout(), "NAME\tAGENT\tCIDRS\tPORTS", rows)
		}),
	}
	show := &cobra.Command{
		Use: "show NAME", Short: "Show a profile", Args: exactArgs(1, "the profile name"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			p, err := c.GetDiscoveryProfile(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printProfile(cmd.OutOrStdout(), f, p)
		}),
	}
	del := &cobra.Command{
		Use: "delete NAME", Short: "Delete a profile (its scans stay)", Args: exactArgs(1, "the profile name"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			p, err := c.DeleteDiscoveryProfile(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "deleted %s\n", p.Name)
			return err
		}),
	}
	cmd.AddCommand(create, list, show, del)
	return cmd
}

func printProfile(w io.Writer, f *apiFlags, p apiclient.DiscoveryProfile) error {
	if f.json {
		return printJSON(w, p)
	}
	ports := "default"
	if len(p.Ports) > 0 {
		ports = strings.Join(p.Ports, ",")
	}
	_, err := fmt.Fprintf(w, "%s  agent %s  cidrs %s  ports %s\n", p.Name, p.Agent, strings.Join(p.CIDRs, ","), ports)
	if err == nil && p.Schedule != "" {
		tz := p.TimeZone
		if tz == "" {
			tz = "UTC"
		}
		last := "never"
		if p.LastFire != nil {
			last = p.LastFire.Format(time.RFC3339)
		}
		_, err = fmt.Fprintf(w, "schedule %q in %s, last fired %s\n", p.Schedule, tz, last)
	}
	if err == nil && p.AutoImport != nil {
		_, err = fmt.Fprintf(w, "auto-import hosts with port %s open, tags %s\n", joinInts(p.AutoImport.Ports), formatTags(p.AutoImport.Tags))
	}
	return err
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

func newDiscoveryRunCmd(f *apiFlags) *cobra.Command {
	var wait bool
	var poll time.Duration
	cmd := &cobra.Command{
		Use:   "run PROFILE",
		Short: "Scan a profile now; with --wait, show progress and then what changed",
		Args:  exactArgs(1, "the profile name"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			sc, err := c.RunDiscoveryProfile(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if !wait {
				if f.json {
					return printJSON(cmd.OutOrStdout(), sc)
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", sc.ID, sc.Status)
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "scan %s started\n", sc.ID)
			d, err := waitScan(cmd.Context(), c, sc.ID, poll, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if err := printScan(cmd.OutOrStdout(), f, d); err != nil {
				return err
			}
			if d.Status != "succeeded" {
				return fmt.Errorf("scan %s ended %s: %s", d.ID, d.Status, d.Error)
			}
			return nil
		}),
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "wait for the scan to end, showing its progress")
	cmd.Flags().DurationVar(&poll, "poll", time.Second, "how often to ask for progress while waiting")
	return cmd
}

// waitScan polls a scan until it ends, printing its progress when it
// moves.
func waitScan(ctx context.Context, c *apiclient.Client, id string, every time.Duration, progress io.Writer) (apiclient.DiscoveryScanDetail, error) {
	t := time.NewTicker(every)
	defer t.Stop()
	var last apiclient.DiscoveryProgress
	for {
		d, err := c.GetDiscoveryScan(ctx, id)
		if err != nil {
			return d, err
		}
		if d.Progress != last && d.Progress.Total > 0 {
			last = d.Progress
			fmt.Fprintf(progress, "%s: %d/%d hosts probed, %d up\n", d.Status, d.Progress.Probed, d.Progress.Total, d.Progress.Up)
		}
		if d.Finished() {
			return d, nil
		}
		select {
		case <-ctx.Done():
			return d, ctx.Err()
		case <-t.C:
		}
	}
}

func printScan(w io.Writer, f *apiFlags, d apiclient.DiscoveryScanDetail) error {
	if f.json {
		return printJSON(w, d)
	}
	fmt.Fprintf(w, "%s  profile %s  %s", d.ID, d.Profile, d.Status)
	if d.Error != "" {
		fmt.Fprintf(w, ": %s", d.Error)
	}
	fmt.Fprintln(w)
	if s := d.Summary; s != nil {
		fmt.Fprintf(w, "%d hosts up, %d open ports; %d appeared, %d changed, %d disappeared; %d proposed, %d auto-imported\n",
			s.HostsUp, s.OpenPorts, s.Appeared, s.Changed, s.Disappeared, s.Proposed, s.AutoImported)
	}
	if d.Diff == nil {
		return nil
	}
	for _, h := range d.Diff.Appeared {
		fmt.Fprintf(w, "+ %s  %s\n", h.Address, describePorts(h.Ports))
	}
	for _, c := range d.Diff.Changed {
		var parts []string
		if len(c.Opened) > 0 {
			parts = append(parts, "opened "+joinInts(c.Opened))
		}
		if len(c.Closed) > 0 {
			parts = append(parts, "closed "+joinInts(c.Closed))
		}
		for _, p := range c.Changed {
			parts = append(parts, fmt.Sprintf("%d: %s → %s", p.Port, describePort(p.Before), describePort(p.After)))
		}
		fmt.Fprintf(w, "~ %s  %s\n", c.Address, strings.Join(parts, "; "))
	}
	for _, h := range d.Diff.Disappeared {
		fmt.Fprintf(w, "- %s  %s\n", h.Address, describePorts(h.Ports))
	}
	return nil
}

func describePorts(ps []apiclient.DiscoveredPort) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = describePort(p)
	}
	return strings.Join(s, ", ")
}

// describePort is "22/ssh SSH-2.0-OpenSSH_9.6", "443/https nginx \"Home\"".
func describePort(p apiclient.DiscoveredPort) string {
	s := strconv.Itoa(p.Port)
	if p.Service != "" {
		s += "/" + p.Service
	}
	switch {
	case p.HTTP != nil:
		if p.HTTP.Server != "" {
			s += " " + p.HTTP.Server
		}
		if p.HTTP.Title != "" {
			s += fmt.Sprintf(" %q", p.HTTP.Title)
		}
	case p.Banner != "":
		s += " " + p.Banner
	}
	if p.TLS != nil && p.TLS.Subject != "" {
		s += " cert " + p.TLS.Subject
	}
	return s
}

func newDiscoveryScansCmd(f *apiFlags) *cobra.Command {
	var profile, after string
	var limit int
	cmd := &cobra.Command{
		Use: "scans", Short: "List scans, newest first", Args: exactArgs(0, ""),
		RunE: f.run(func(cmd *cobra.Command, _ []string, c *apiclient.Client) error {
			page, err := c.ListDiscoveryScans(cmd.Context(), profile, after, limit)
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), page)
			}
			rows := make([][]string, 0, len(page.Items))
			for _, s := range page.Items {
				up := "-"
				if s.Summary != nil {
					up = strconv.Itoa(s.Summary.HostsUp)
				}
				rows = append(rows, []string{s.ID, s.Profile, s.Status, up, s.CreatedAt.Format(time.RFC3339)})
			}
			if err := table(cmd.OutOrStdout(), "ID\tPROFILE\tSTATUS\tHOSTS UP\tCREATED", rows); err != nil {
				return err
			}
			if page.Next != "" {
				fmt.Fprintf(cmd.ErrOrStderr(), "more: add --after %s\n", page.Next)
			}
			return nil
		}),
	}
	cmd.Flags().StringVar(&profile, "profile", "", "only this profile's scans")
	cmd.Flags().StringVar(&after, "after", "", "start after this scan ID (the previous page's last)")
	cmd.Flags().IntVar(&limit, "limit", 100, "page size (1 to 1000)")
	return cmd
}

func newDiscoveryShowCmd(f *apiFlags) *cobra.Command {
	var hosts bool
	cmd := &cobra.Command{
		Use:   "show SCAN",
		Short: "Show a scan: status, progress, and what appeared (+), changed (~) and disappeared (-); --hosts lists every host found",
		Args:  exactArgs(1, "the scan ID"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			d, err := c.GetDiscoveryScan(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if !hosts {
				return printScan(cmd.OutOrStdout(), f, d)
			}
			var all []apiclient.DiscoveryHost
			after := ""
			for {
				page, err := c.DiscoveryScanHosts(cmd.Context(), args[0], after, 1000, false)
				if err != nil {
					return err
				}
				all = append(all, page.Items...)
				if page.Next == "" {
					break
				}
				after = page.Next
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), all)
			}
			rows := make([][]string, 0, len(all))
			for _, h := range all {
				target := "(proposed)"
				if h.Target != "" {
					target = h.Target
				}
				rows = append(rows, []string{h.Address, strings.Join(h.Hostnames, ","), target, describePorts(h.Ports)})
			}
			return table(cmd.OutOrStdout(), "ADDRESS\tNAMES\tTARGET\tPORTS", rows)
		}),
	}
	cmd.Flags().BoolVar(&hosts, "hosts", false, "list the hosts found, and which the inventory holds")
	return cmd
}

func newDiscoveryImportCmd(f *apiFlags) *cobra.Command {
	var hosts, tags []string
	var all bool
	cmd := &cobra.Command{
		Use:   "import SCAN (--host ADDRESS…|--all)",
		Short: "Import found hosts as SSH targets relayed by the scanning agent (all or nothing; hosts already held are skipped)",
		Args:  exactArgs(1, "the scan ID"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			if all == (len(hosts) > 0) {
				return usageError{errors.New("give --host ADDRESS (repeatable) or --all")}
			}
			t, err := parseTags(tags)
			if err != nil {
				return err
			}
			res, err := c.ImportDiscoveryScan(cmd.Context(), args[0], apiclient.DiscoveryImportRequest{Hosts: hosts, All: all, Tags: t})
			if err != nil {
				return err
			}
			refused := error(nil)
			if len(res.Report.Errors) > 0 && !res.Report.Written {
				refused = fmt.Errorf("nothing imported: the inventory refused %d rows", res.Report.Invalid)
			}
			if f.json {
				if err := printJSON(cmd.OutOrStdout(), res); err != nil {
					return err
				}
				return refused
			}
			fmt.Fprintf(cmd.OutOrStdout(), "imported %d targets\n", res.Report.Created)
			for _, a := range slices.Sorted(maps.Keys(res.Skipped)) {
				fmt.Fprintf(cmd.OutOrStdout(), "skipped %s: the inventory holds it as %s\n", a, res.Skipped[a])
			}
			for _, e := range res.Report.Errors {
				fmt.Fprintf(cmd.ErrOrStderr(), "row %d %s: %s\n", e.Row, e.Field, e.Message)
			}
			return refused
		}),
	}
	cmd.Flags().StringArrayVar(&hosts, "host", nil, "the address of a host the scan found (repeatable)")
	cmd.Flags().BoolVar(&all, "all", false, "import every host the inventory does not hold")
	cmd.Flags().StringArrayVar(&tags, "tag", nil, "tag KEY=VALUE for the new targets (repeatable)")
	return cmd
}

func newDiscoveryRangesCmd(f *apiFlags) *cobra.Command {
	var set []string
	var clear bool
	cmd := &cobra.Command{
		Use:   "ranges AGENT [--set CIDR…|--clear]",
		Short: "Show, or set (needs agents:admin), the CIDR ranges an agent may scan",
		Args:  exactArgs(1, "the agent"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			var r apiclient.DiscoveryRanges
			var err error
			switch {
			case clear && len(set) > 0:
				return usageError{errors.New("give --set or --clear, not both")}
			case clear || len(set) > 0:
				r, err = c.SetDiscoveryRanges(cmd.Context(), args[0], set)
			default:
				r, err = c.DiscoveryRanges(cmd.Context(), args[0])
			}
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), r)
			}
			if len(r.CIDRs) == 0 {
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "agent %s may scan no ranges\n", r.Agent)
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "agent %s may scan %s\n", r.Agent, strings.Join(r.CIDRs, ", "))
			return err
		}),
	}
	cmd.Flags().StringArrayVar(&set, "set", nil, "replace the ranges with these (repeatable)")
	cmd.Flags().BoolVar(&clear, "clear", false, "allow no ranges")
	return cmd
}
