package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/opsconductor/opsconductor/controller/apiclient"
)

func newRelationshipCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "relationship", Aliases: []string{"rel"},
		Short: "Relate targets (depends_on, runs_on, member_of, connects_to or a custom type) and walk the graph (needs assets:read, assets:write to change)"}
	f := addAPIFlags(cmd)

	var attrs []string
	add := &cobra.Command{
		Use:   "add FROM TYPE TO",
		Short: "Relate two targets, named by name or ID (e.g. add web-1 depends_on db-1 --attr port=5432)",
		Args:  exactArgs(3, "FROM, TYPE and TO"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			a, err := parseAttrs(attrs)
			if err != nil {
				return err
			}
			e, err := c.CreateRelationship(cmd.Context(), apiclient.CreateRelationshipRequest{From: args[0], Type: args[1], To: args[2], Attributes: a})
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), e)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s  %s %s %s\n", e.ID, e.FromName, e.Type, e.ToName)
			return err
		}),
	}
	add.Flags().StringArrayVar(&attrs, "attr", nil, "an attribute KEY=VALUE (repeatable)")

	var filter apiclient.RelationshipFilter
	list := &cobra.Command{
		Use:   "list",
		Short: "List relationships, optionally from or to one target or of one type",
		Args:  exactArgs(0, ""),
		RunE: f.run(func(cmd *cobra.Command, _ []string, c *apiclient.Client) error {
			page, err := listRelationships(cmd.Context(), c, filter)
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), page)
			}
			rows := make([][]string, 0, len(page.Items))
			for _, e := range page.Items {
				rows = append(rows, []string{e.ID, e.FromName, e.Type, e.ToName, formatAttrs(e.Attributes)})
			}
			if err := table(cmd.OutOrStdout(), "ID\tFROM\tTYPE\tTO\tATTRIBUTES", rows); err != nil {
				return err
			}
			if page.Next != "" {
				fmt.Fprintf(cmd.ErrOrStderr(), "more: add --after %s\n", page.Next)
			}
			return nil
		}),
	}
	list.Flags().StringVar(&filter.From, "from", "", "only relationships from this target")
	list.Flags().StringVar(&filter.To, "to", "", "only relationships to this target")
	list.Flags().StringVar(&filter.Type, "type", "", "only relationships of this type")
	list.Flags().StringVar(&filter.After, "after", "", "start after this relationship ID (the previous page's last)")
	list.Flags().IntVar(&filter.Limit, "limit", 100, "page size (1 to 1000)")

	del := &cobra.Command{
		Use:   "delete ID",
		Short: "Delete a relationship",
		Args:  exactArgs(1, "the relationship ID"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			e, err := c.DeleteRelationship(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), e)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "deleted %s  %s %s %s\n", e.ID, e.FromName, e.Type, e.ToName)
			return err
		}),
	}

	var q apiclient.GraphQuery
	graphCmd := &cobra.Command{
		Use:   "graph TARGET",
		Short: "Show the graph around a target: its neighbours, what depends on it (--direction dependents) or what it depends on (--direction dependencies)",
		Args:  exactArgs(1, "the target"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			g, err := c.TargetGraph(cmd.Context(), args[0], q)
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), g)
			}
			return printGraph(cmd.OutOrStdout(), g)
		}),
	}
	graphCmd.Flags().StringVar(&q.Direction, "direction", "both", "both, dependents (impact) or dependencies")
	graphCmd.Flags().IntVar(&q.Depth, "depth", 0, "hops to follow, 1 to 10 (default 1 for both, 5 otherwise)")
	graphCmd.Flags().StringArrayVar(&q.Types, "type", nil, "follow only this edge type (repeatable)")
	graphCmd.Flags().IntVar(&q.Limit, "limit", 0, "at most this many targets (default 1000)")

	cmd.AddCommand(add, list, del, graphCmd)
	return cmd
}

// listRelationships fills a page of up to f.Limit: the controller may end
// a page short (it bounds the edges one request looks at), so follow Next
// until the page is full or the list ends.
func listRelationships(ctx context.Context, c *apiclient.Client, f apiclient.RelationshipFilter) (apiclient.RelationshipPage, error) {
	out, want := apiclient.RelationshipPage{Items: []apiclient.Relationship{}}, f.Limit
	for {
		f.Limit = want - len(out.Items)
		page, err := c.ListRelationships(ctx, f)
		if err != nil {
			return apiclient.RelationshipPage{}, err
		}
		out.Items = append(out.Items, page.Items...)
		out.Next = page.Next
		if page.Next == "" || len(out.Items) >= want {
			return out, nil
		}
		f.After = page.Next
	}
}

// parseAttrs reads --attr KEY=VALUE flags.
func parseAttrs(flags []string) (map[string]string, error) {
	if len(flags) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, kv := range flags {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usageError{fmt.Errorf("--attr %q: want KEY=VALUE", kv)}
		}
		if _, dup := out[k]; dup {
			return nil, usageError{fmt.Errorf("--attr %s is given twice", k)}
		}
		out[k] = v
	}
	return out, nil
}

func formatAttrs(a map[string]string) string {
	parts := make([]string, 0, len(a))
	for _, k := range slices.Sorted(maps.Keys(a)) {
		parts = append(parts, k+"="+a[k])
	}
	return strings.Join(parts, ",")
}

// printGraph draws the walk as an indented tree from the root: each
// target under the one it was reached from, with the edge between them
// ("→ depends_on db-1" for an edge out of the parent, "← runs_on vm-1"
// for one into it). A target reached along several paths is drawn once;
// later mentions say "(above)".
func printGraph(w io.Writer, g apiclient.Graph) error {
	names := map[string]string{}
	depth := map[string]int{}
	for _, n := range g.Nodes {
		names[n.ID], depth[n.ID] = n.Name, n.Depth
	}
	if _, ok := names[g.Root]; !ok {
		return errors.New("the answer does not hold its root")
	}
	// Children of a node are the nodes one hop deeper joined to it.
	type link struct {
		to    string
		label string
	}
	children := map[string][]link{}
	for _, e := range g.Edges {
		switch {
		case depth[e.To] == depth[e.From]+1:
			children[e.From] = append(children[e.From], link{e.To, "→ " + e.Type})
		case depth[e.From] == depth[e.To]+1:
			children[e.To] = append(children[e.To], link{e.From, "← " + e.Type})
		}
	}
	for id := range children {
		slices.SortFunc(children[id], func(a, b link) int {
			return strings.Compare(names[a.to]+a.label, names[b.to]+b.label)
		})
	}
	var b strings.Builder
	b.WriteString(names[g.Root] + "\n")
	drawn := map[string]bool{g.Root: true}
	var walk func(id, indent string)
	walk = func(id, indent string) {
		for _, l := range children[id] {
			if drawn[l.to] {
				fmt.Fprintf(&b, "%s%s %s (above)\n", indent, l.label, names[l.to])
				continue
			}
			drawn[l.to] = true
			fmt.Fprintf(&b, "%s%s %s\n", indent, l.label, names[l.to])
			walk(l.to, indent+"    ")
		}
	}
	walk(g.Root, "  ")
	fmt.Fprintf(&b, "%d targets, %d relationships (%s, depth %d)\n", len(g.Nodes), len(g.Edges), g.Direction, g.Depth)
	if g.Truncated {
		b.WriteString("truncated: more lies within this depth; narrow with --type or raise --limit\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}
