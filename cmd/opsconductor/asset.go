package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/opsconductor/opsconductor/controller/apiclient"
)

func newAssetCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "asset", Aliases: []string{"assets", "target"},
		Short: "The inventory: targets, groups, import and export (needs assets:read or assets:write)"}
	f := addAPIFlags(cmd)

	var q targetFilters
	var all bool
	list := &cobra.Command{
		Use: "list", Short: "List targets, filtered (agents' targets included)", Args: cobra.NoArgs,
		RunE: f.run(func(cmd *cobra.Command, _ []string, c *apiclient.Client) error {
			query, err := q.query()
			if err != nil {
				return err
			}
			var items []apiclient.Target
			next := ""
			if all {
				items, err = c.AllTargets(cmd.Context(), query)
			} else {
				var page apiclient.TargetPage
				page, err = c.ListTargets(cmd.Context(), query)
				items, next = page.Items, page.Next
			}
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), apiclient.TargetPage{Items: nonNilSlice(items), Next: next})
			}
			if err := targetTable(cmd.OutOrStdout(), items); err != nil {
				return err
			}
			if next != "" {
				fmt.Fprintf(cmd.ErrOrStderr(), "More targets follow: --cursor %s (or --all)\n", next)
			}
			return nil
		}),
	}
	q.add(list, true)
	list.Flags().BoolVar(&all, "all", false, "follow every page")

	show := &cobra.Command{
		Use: "show NAME|ID", Short: "Show one target", Args: exactArgs(1, "the target's name or ID"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			t, err := c.GetTarget(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printTarget(cmd, f, t)
		}),
	}

	var in targetFlags
	create := &cobra.Command{
		Use: "create NAME", Short: "Add an SSH target reached through a relay agent", Args: exactArgs(1, "the target's name"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			tags, err := parseTags(in.tags)
			if err != nil {
				return err
			}
			conn := in.connection()
			t, err := c.CreateTarget(cmd.Context(), apiclient.TargetInput{Name: args[0], Addresses: in.addresses, Connection: &conn,
				Tags: tags, Groups: in.groups, Owner: in.owner, Notes: in.notes})
			if err != nil {
				return err
			}
			return printTarget(cmd, f, t)
		}),
	}
	in.add(create)

	var up targetFlags
	var name string
	var revision uint64
	update := &cobra.Command{
		Use:   "update NAME|ID",
		Short: "Change a target: only the flags given change (--tag and --group replace the whole set; --tag= clears it)",
		Args:  exactArgs(1, "the target's name or ID"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			var p apiclient.TargetPatch
			fl := cmd.Flags()
			if fl.Changed("name") {
				p.Name = &name
			}
			if fl.Changed("host") {
				p.Addresses = &up.addresses
			}
			if fl.Changed("tag") {
				tags, err := parseTags(slices.DeleteFunc(slices.Clone(up.tags), func(s string) bool { return s == "" }))
				if err != nil {
					return err
				}
				p.Tags = &tags
			}
			if fl.Changed("group") {
				groups := slices.DeleteFunc(slices.Clone(up.groups), func(s string) bool { return s == "" })
				p.Groups = &groups
			}
			if fl.Changed("owner") {
				p.Owner = &up.owner
			}
			if fl.Changed("notes") {
				p.Notes = &up.notes
			}
			if fl.Changed("revision") {
				p.Revision = &revision
			}
			if fl.Changed("via") || fl.Changed("port") || fl.Changed("username") || fl.Changed("host-key") || fl.Changed("host-key-policy") {
				cur, err := c.GetTarget(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				conn := cur.Connection
				up.merge(fl.Changed, &conn)
				p.Connection = &conn
			}
			t, err := c.UpdateTarget(cmd.Context(), args[0], p)
			if err != nil {
				return err
			}
			return printTarget(cmd, f, t)
		}),
	}
	up.add(update)
	update.Flags().StringVar(&name, "name", "", "rename the target")
	update.Flags().Uint64Var(&revision, "revision", 0, "refuse the change unless the target is at this revision")

	del := &cobra.Command{
		Use: "delete NAME|ID", Short: "Delete an SSH target and its relationships", Args: exactArgs(1, "the target's name or ID"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			t, err := c.DeleteTarget(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), t)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Deleted target %s (%s)\n", t.Name, t.ID)
			return nil
		}),
	}

	var imp apiclient.ImportOptions
	importCmd := &cobra.Command{
		Use:   "import FILE|-",
		Short: "Import targets from a CSV file or a JSON array (- reads stdin); nothing is written unless every row is valid",
		Long: "Import targets in bulk. A CSV file has a header naming its columns: name, addresses (or address), connection, via,\n" +
			"port, username, host_key, host_key_policy, tags (k=v;k2=v2), groups (g1;g2), owner, notes. A JSON file is an\n" +
			"array of target objects. Every problem is printed with its row (from 1, the header not counted) and column.",
		Args: exactArgs(1, "the file to import, or - for stdin"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			var r io.Reader = cmd.InOrStdin()
			if args[0] != "-" {
				file, err := os.Open(args[0])
				if err != nil {
					return err
				}
				defer file.Close()
				r = file
				if imp.Format == "" {
					imp.Format = strings.TrimPrefix(strings.ToLower(filepath.Ext(args[0])), ".")
				}
			}
			if imp.Format != "csv" && imp.Format != "json" {
				return usageError{fmt.Errorf("say --format csv or --format json (the file name does not tell)")}
			}
			rep, err := c.ImportTargets(cmd.Context(), r, imp)
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), rep)
			}
			out := cmd.OutOrStdout()
			for _, e := range rep.Errors {
				field := e.Field
				if field == "" {
					field = "(row)"
				}
				fmt.Fprintf(out, "row %d, %s: %s\n", e.Row, field, e.Message)
			}
			if rep.ErrorsOmitted > 0 {
				fmt.Fprintf(out, "… and %d more problems\n", rep.ErrorsOmitted)
			}
			verb := "Imported"
			if rep.DryRun {
				verb = "Dry run: would import"
			}
			fmt.Fprintf(out, "%s %d of %d rows (%d created, %d updated); %d invalid\n", verb, rep.Valid, rep.Rows, rep.Created, rep.Updated, rep.Invalid)
			if rep.Invalid > 0 {
				// A script sees the bad rows by the exit code too.
				return exitCodeError{code: 1}
			}
			return nil
		}),
	}
	importCmd.Flags().StringVar(&imp.Format, "format", "", "csv or json (default: from the file name)")
	importCmd.Flags().StringVar(&imp.Mode, "mode", "create", "create (every name must be new) or upsert (a known name is replaced)")
	importCmd.Flags().BoolVar(&imp.DryRun, "dry-run", false, "check every row and write nothing")
	importCmd.Flags().BoolVar(&imp.Partial, "partial", false, "write the valid rows even if some are not")

	var eq targetFilters
	var format, output string
	export := &cobra.Command{
		Use: "export", Short: "Export targets (filtered) as CSV or JSON that import reads back", Args: cobra.NoArgs,
		RunE: f.run(func(cmd *cobra.Command, _ []string, c *apiclient.Client) error {
			query, err := eq.query()
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if output != "" && output != "-" {
				file, err := os.OpenFile(output, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
				if err != nil {
					return err
				}
				defer file.Close()
				w = file
			}
			return c.ExportTargets(cmd.Context(), w, format, query)
		}),
	}
	eq.add(export, false)
	export.Flags().StringVar(&format, "format", "csv", "csv or json")
	export.Flags().StringVarP(&output, "output", "f", "-", "file to write (- for stdout)")

	cmd.AddCommand(list, show, create, update, del, importCmd, export, newAssetGroupCmd(f))
	return cmd
}

// targetFilters are the list and export filters.
type targetFilters struct {
	tags                                []string
	group, selector, q, connection, srt string
	limit                               int
	cursor                              string
}

func (t *targetFilters) add(cmd *cobra.Command, paged bool) {
	fl := cmd.Flags()
	fl.StringArrayVar(&t.tags, "tag", nil, "key=value the targets carry (repeat: all must hold)")
	fl.StringVar(&t.group, "group", "", "only members of this group (static or dynamic)")
	fl.StringVar(&t.selector, "selector", "", `a selector, e.g. "env=prod,role in (web,api),!decommissioned,facts.os=linux"`)
	fl.StringVarP(&t.q, "query", "q", "", "text in the name, ID, an address, owner or notes")
	fl.StringVar(&t.connection, "connection", "", "ssh or agent")
	if paged {
		fl.StringVar(&t.srt, "sort", "name", "name, -name, updated or -updated")
		fl.IntVar(&t.limit, "limit", 100, "page size (1 to 1000)")
		fl.StringVar(&t.cursor, "cursor", "", "continue after the page that printed this cursor")
	}
}

func (t *targetFilters) query() (apiclient.TargetQuery, error) {
	q := apiclient.TargetQuery{Group: t.group, Selector: t.selector, Q: t.q, Connection: t.connection, Sort: t.srt,
		Limit: t.limit, Cursor: t.cursor}
	if len(t.tags) > 0 {
		tags, err := parseTags(t.tags)
		if err != nil {
			return q, err
		}
		q.Tags = tags
	}
	return q, nil
}

// targetFlags are a target's writable fields.
type targetFlags struct {
	addresses, tags, groups []string
	via, username, hostKey  string
	policy, owner, notes    string
	port                    int
}

func (t *targetFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	// Not --address: every API command has that flag for the controller.
	fl.StringArrayVar(&t.addresses, "host", nil, "the target's IP address or host name (repeat for several)")
	fl.StringVar(&t.via, "via", "", "the agent (name or ID) that relays the SSH connection")
	fl.IntVar(&t.port, "port", 0, "SSH port (default 22)")
	fl.StringVar(&t.username, "username", "", "SSH user name")
	fl.StringVar(&t.hostKey, "host-key", "", `expected host key, "ssh-ed25519 AAAA…"`)
	fl.StringVar(&t.policy, "host-key-policy", "", "tofu (record the key on first contact, the default) or pinned (only --host-key)")
	fl.StringArrayVar(&t.tags, "tag", nil, "tag k=v (repeat)")
	fl.StringArrayVar(&t.groups, "group", nil, "static group (repeat; created if new)")
	fl.StringVar(&t.owner, "owner", "", "who owns the target")
	fl.StringVar(&t.notes, "notes", "", "free text")
}

func (t *targetFlags) connection() apiclient.TargetConnection {
	return apiclient.TargetConnection{Type: "ssh", Via: t.via, Port: t.port, Username: t.username, HostKey: t.hostKey, HostKeyPolicy: t.policy}
}

// merge applies the connection flags that were given to conn.
func (t *targetFlags) merge(changed func(string) bool, conn *apiclient.TargetConnection) {
	if changed("via") {
		conn.Via = t.via
	}
	if changed("port") {
		conn.Port = t.port
	}
	if changed("username") {
		conn.Username = t.username
	}
	if changed("host-key") {
		conn.HostKey = t.hostKey
	}
	if changed("host-key-policy") {
		conn.HostKeyPolicy = t.policy
	}
}

func targetTable(w io.Writer, items []apiclient.Target) error {
	rows := make([][]string, 0, len(items))
	for _, t := range items {
		rows = append(rows, []string{t.Name, t.ID, t.Connection.Type, t.Status.Agent, orDash(strings.Join(t.Addresses, ",")),
			formatTags(t.Tags), orDash(strings.Join(slices.Concat(t.Groups, t.DynamicGroups), ","))})
	}
	return table(w, "NAME\tID\tCONNECTION\tSTATUS\tADDRESSES\tTAGS\tGROUPS", rows)
}

func printTarget(cmd *cobra.Command, f *apiFlags, t apiclient.Target) error {
	if f.json {
		return printJSON(cmd.OutOrStdout(), t)
	}
	w := cmd.OutOrStdout()
	conn := t.Connection.Type
	switch t.Connection.Type {
	case "ssh":
		conn = "ssh via " + t.Connection.Via
		if t.Connection.Username != "" {
			conn += " as " + t.Connection.Username
		}
		if t.Connection.Port != 0 {
			conn += " port " + strconv.Itoa(t.Connection.Port)
		}
		conn += " (host key " + orDash(t.Connection.HostKeyPolicy) + ")"
	case "agent":
		conn = "agent " + t.Connection.AgentID
	}
	lastRun := "-"
	if r := t.Status.LastRun; r != nil {
		lastRun = fmt.Sprintf("%s %s at %s", r.RunID, r.Outcome, when(&r.At))
	}
	facts := make([]string, 0, len(t.Facts))
	for _, k := range slices.Sorted(mapKeys(t.Facts)) {
		facts = append(facts, k+"="+t.Facts[k])
	}
	fmt.Fprintf(w, "Name:        %s\nID:          %s\nConnection:  %s\nAddresses:   %s\nStatus:      %s (last seen %s)\nLast run:    %s\n"+
		"Tags:        %s\nGroups:      %s\nDynamic:     %s\nOwner:       %s\nNotes:       %s\nFacts:       %s\nRevision:    %d, updated %s\n",
		t.Name, t.ID, conn, orDash(strings.Join(t.Addresses, ", ")), t.Status.Agent, when(t.Status.LastSeen), lastRun,
		formatTags(t.Tags), orDash(strings.Join(t.Groups, ", ")), orDash(strings.Join(t.DynamicGroups, ", ")), orDash(t.Owner),
		orDash(t.Notes), orDash(strings.Join(facts, " ")), t.Revision, when(&t.UpdatedAt))
	return nil
}

func mapKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func newAssetGroupCmd(f *apiFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "group", Short: "Static and dynamic groups of targets"}
	list := &cobra.Command{
		Use: "list", Short: "List groups", Args: cobra.NoArgs,
		RunE: f.run(func(cmd *cobra.Command, _ []string, c *apiclient.Client) error {
			gs, err := c.ListGroups(cmd.Context())
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), nonNilSlice(gs))
			}
			rows := make([][]string, 0, len(gs))
			for _, g := range gs {
				rows = append(rows, []string{g.Name, g.Kind, orDash(g.Selector), orDash(g.Description)})
			}
			return table(cmd.OutOrStdout(), "NAME\tKIND\tSELECTOR\tDESCRIPTION", rows)
		}),
	}
	show := &cobra.Command{
		Use: "show NAME", Short: "Show one group", Args: exactArgs(1, "the group's name"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			g, err := c.GetGroup(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printGroup(cmd, f, g)
		}),
	}
	var in groupFlags
	create := &cobra.Command{
		Use: "create NAME", Short: "Create a group: --selector makes it dynamic, else it is static (--member …)",
		Args: exactArgs(1, "the group's name"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			g, err := c.CreateGroup(cmd.Context(), in.input(args[0], cmd.Flags().Changed("member")))
			if err != nil {
				return err
			}
			return printGroup(cmd, f, g)
		}),
	}
	in.add(create)
	var up groupFlags
	update := &cobra.Command{
		Use: "update NAME", Short: "Replace a group's definition (and, with --member, a static group's members)",
		Args: exactArgs(1, "the group's name"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			g, err := c.PutGroup(cmd.Context(), args[0], up.input(args[0], cmd.Flags().Changed("member")))
			if err != nil {
				return err
			}
			return printGroup(cmd, f, g)
		}),
	}
	up.add(update)
	del := &cobra.Command{
		Use: "delete NAME", Short: "Delete a group (its targets stay)", Args: exactArgs(1, "the group's name"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			g, err := c.DeleteGroup(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), g)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Deleted group %s\n", g.Name)
			return nil
		}),
	}
	var q targetFilters
	members := &cobra.Command{
		Use: "members NAME", Short: "List a group's members as of now", Args: exactArgs(1, "the group's name"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			query, err := q.query()
			if err != nil {
				return err
			}
			page, err := c.GroupMembers(cmd.Context(), args[0], query)
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), page)
			}
			if err := targetTable(cmd.OutOrStdout(), page.Items); err != nil {
				return err
			}
			if page.Next != "" {
				fmt.Fprintf(cmd.ErrOrStderr(), "More members follow: --cursor %s\n", page.Next)
			}
			return nil
		}),
	}
	q.add(members, true)
	cmd.AddCommand(list, show, create, update, del, members)
	return cmd
}

type groupFlags struct {
	selector, description string
	members               []string
}

func (g *groupFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&g.selector, "selector", "", `dynamic group: e.g. "env=prod,role in (web,api)"`)
	fl.StringVar(&g.description, "description", "", "what the group is for")
	fl.StringArrayVar(&g.members, "member", nil, "static group: a target's name or ID (repeat; the list replaces the members)")
}

func (g *groupFlags) input(name string, withMembers bool) apiclient.GroupInput {
	in := apiclient.GroupInput{Name: name, Kind: "static", Selector: g.selector, Description: g.description}
	if g.selector != "" {
		in.Kind = "dynamic"
	}
	if withMembers {
		m := slices.DeleteFunc(slices.Clone(g.members), func(s string) bool { return s == "" })
		in.Members = &m
	}
	return in
}

func printGroup(cmd *cobra.Command, f *apiFlags, g apiclient.Group) error {
	if f.json {
		return printJSON(cmd.OutOrStdout(), g)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "Name:        %s\nKind:        %s\nSelector:    %s\nDescription: %s\nCreated:     %s by %s\n",
		g.Name, g.Kind, orDash(g.Selector), orDash(g.Description), when(&g.CreatedAt), orDash(g.CreatedBy))
	return nil
}
