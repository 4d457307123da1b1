package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/opsconductor/opsconductor/controller/apiclient"
)

func newJobCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "job",
		Short: "Save, validate, list, compare and run job definitions (needs jobs:read; jobs:write to save and delete; jobs:run to run)"}
	f := addAPIFlags(cmd)
	cmd.AddCommand(newJobApplyCmd(f), newJobValidateCmd(f), newJobListCmd(f), newJobShowCmd(f), newJobVersionsCmd(f),
		newJobDiffCmd(f), newJobDeleteCmd(f), newJobRunCmd(f))
	return cmd
}

// readDefinition reads a job definition from a file ("-" for standard
// input) and works out the job's name: --name, else the definition's
// own name field.
func readDefinition(cmd *cobra.Command, file, name string) ([]byte, string, error) {
	if file == "" {
		return nil, "", usageError{errors.New("give the definition with -f FILE (- for standard input)")}
	}
	var (
		def []byte
		err error
	)
	if file == "-" {
		def, err = io.ReadAll(cmd.InOrStdin())
	} else {
		def, err = os.ReadFile(file)
	}
	if err != nil {
		return nil, "", fmt.Errorf("read the job definition: %w", err)
	}
	if name != "" {
		return def, name, nil
	}
	// Only the name is read here: the server parses and validates the
	// whole definition, and reports every problem with its path.
	var head struct {
		Name any `yaml:"name"`
	}
	if err := yaml.Unmarshal(def, &head); err != nil {
		return nil, "", usageError{fmt.Errorf("%s: cannot read the job's name (give it with --name): %w", file, err)}
	}
	n, ok := head.Name.(string)
	if !ok || strings.TrimSpace(n) == "" {
		return nil, "", usageError{fmt.Errorf("%s has no name: field; give the job's name with --name", file)}
	}
	return def, n, nil
}

func newJobApplyCmd(f *apiFlags) *cobra.Command {
	var file, name string
	cmd := &cobra.Command{
		Use:   "apply -f FILE [--name NAME]",
		Short: "Save a job definition (YAML or JSON) as the job's next version; an identical definition makes none",
		Args:  exactArgs(0, ""),
		RunE: f.run(func(cmd *cobra.Command, _ []string, c *apiclient.Client) error {
			def, n, err := readDefinition(cmd, file, name)
			if err != nil {
				return err
			}
			res, err := c.PutJob(cmd.Context(), n, def)
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), res)
			}
			if res.Unchanged {
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "unchanged (version %d)\n", res.Version.Version)
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "job %s version %d\n", res.Job.Name, res.Version.Version)
			return err
		}),
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "the definition file (- for standard input)")
	cmd.Flags().StringVar(&name, "name", "", "the job's name (default: the definition's name: field)")
	return cmd
}

func newJobValidateCmd(f *apiFlags) *cobra.Command {
	var file, name string
	cmd := &cobra.Command{
		Use:   "validate -f FILE [--name NAME]",
		Short: "Check a job definition without saving it; prints each problem as path: message and exits 1 when there are any",
		Args:  exactArgs(0, ""),
		RunE: f.run(func(cmd *cobra.Command, _ []string, c *apiclient.Client) error {
			def, n, err := readDefinition(cmd, file, name)
			if err != nil {
				return err
			}
			err = c.ValidateJob(cmd.Context(), n, def)
			if err == nil {
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "job %s: valid\n", n)
				return err
			}
			problems, ok := definitionProblems(err)
			if !ok {
				return err
			}
			if f.json {
				if perr := printJSON(cmd.OutOrStdout(), problems); perr != nil {
					return perr
				}
				return exitCodeError{1}
			}
			for _, p := range problems {
				if p.Field == "" {
					fmt.Fprintln(cmd.OutOrStdout(), p.Message)
				} else {
					fmt.Fprintf(cmd.OutOrStdout(), "%s: %s\n", p.Field, p.Message)
				}
			}
			return exitCodeError{1}
		}),
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "the definition file (- for standard input)")
	cmd.Flags().StringVar(&name, "name", "", "the job's name (default: the definition's name: field)")
	return cmd
}

// definitionProblems lists the problems of a refused definition, one per
// field, or reports false for an error that is not about the definition.
func definitionProblems(err error) ([]apiclient.ErrorDetail, bool) {
	var apiErr *apiclient.Error
	if !errors.As(err, &apiErr) || (apiErr.Status != http.StatusBadRequest && apiErr.Status != http.StatusUnprocessableEntity) {
		return nil, false
	}
	if len(apiErr.Details) > 0 {
		return apiErr.Details, true
	}
	return []apiclient.ErrorDetail{{Field: apiErr.Field, Message: apiErr.Message}}, true
}

func newJobListCmd(f *apiFlags) *cobra.Command {
	return &cobra.Command{
		Use: "list", Short: "List jobs", Args: exactArgs(0, ""),
		RunE: f.run(func(cmd *cobra.Command, _ []string, c *apiclient.Client) error {
			jobs, err := c.ListJobs(cmd.Context())
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), jobs)
			}
			rows := make([][]string, 0, len(jobs))
			for _, j := range jobs {
				rows = append(rows, []string{j.Name, strconv.Itoa(j.LatestVersion), j.UpdatedAt.UTC().Format(time.RFC3339), j.UpdatedBy, j.Description})
			}
			return table(cmd.OutOrStdout(), "NAME\tVERSION\tUPDATED\tBY\tDESCRIPTION", rows)
		}),
	}
}

func newJobShowCmd(f *apiFlags) *cobra.Command {
	var version int
	cmd := &cobra.Command{
		Use: "show NAME [--version N]", Short: "Print a job's definition as it was saved (the newest version, or --version)",
		Args: exactArgs(1, "the job name"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			d, err := c.GetJob(cmd.Context(), args[0], version)
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), d)
			}
			src := d.Version.Source
			if src != "" && !strings.HasSuffix(src, "\n") {
				src += "\n"
			}
			_, err = io.WriteString(cmd.OutOrStdout(), src)
			return err
		}),
	}
	cmd.Flags().IntVar(&version, "version", 0, "the version to show (default the newest)")
	return cmd
}

func newJobVersionsCmd(f *apiFlags) *cobra.Command {
	return &cobra.Command{
		Use: "versions NAME", Short: "List a job's saved versions, newest first", Args: exactArgs(1, "the job name"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			vs, err := c.JobVersions(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), vs)
			}
			rows := make([][]string, 0, len(vs))
			for _, v := range vs {
				digest := v.Digest
				if len(digest) > 12 {
					digest = digest[:12]
				}
				rows = append(rows, []string{strconv.Itoa(v.Version), v.CreatedAt.UTC().Format(time.RFC3339), v.CreatedBy, digest})
			}
			return table(cmd.OutOrStdout(), "VERSION\tCREATED\tBY\tDIGEST", rows)
		}),
	}
}

func newJobDiffCmd(f *apiFlags) *cobra.Command {
	return &cobra.Command{
		Use: "diff NAME V1 V2", Short: "Show how two versions of a job's definition differ, as a unified diff",
		Args: exactArgs(3, "the job name and two version numbers"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			var vs [2]int
			for i, a := range args[1:] {
				n, err := strconv.Atoi(a)
				if err != nil || n < 1 {
					return usageError{fmt.Errorf("version %q: want a version number (1, 2 …)", a)}
				}
				vs[i] = n
			}
			var src [2]string
			for i, v := range vs {
				d, err := c.GetJob(cmd.Context(), args[0], v)
				if err != nil {
					return err
				}
				src[i] = d.Version.Source
			}
			_, err := io.WriteString(cmd.OutOrStdout(), unifiedDiff(
				fmt.Sprintf("%s@%d", args[0], vs[0]), fmt.Sprintf("%s@%d", args[0], vs[1]), src[0], src[1], 3))
			return err
		}),
	}
}

func newJobDeleteCmd(f *apiFlags) *cobra.Command {
	return &cobra.Command{
		Use: "delete NAME", Short: "Delete a job and all its versions (runs keep the version they ran)", Args: exactArgs(1, "the job name"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			if err := c.DeleteJob(cmd.Context(), args[0]); err != nil {
				return err
			}
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "deleted job %s\n", args[0])
			return err
		}),
	}
}

// parseParams reads -p NAME=VALUE flags. Values stay strings: the server
// knows each parameter's type and converts them.
func parseParams(values []string) (map[string]any, error) {
	if len(values) == 0 {
		return nil, nil
	}
	out := make(map[string]any, len(values))
	for _, kv := range values {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, usageError{fmt.Errorf("-p %q: want NAME=VALUE", kv)}
		}
		k = strings.TrimSpace(k)
		if _, dup := out[k]; dup {
			return nil, usageError{fmt.Errorf("-p %s given twice", k)}
		}
		out[k] = v
	}
	return out, nil
}

func newJobRunCmd(f *apiFlags) *cobra.Command {
	var (
		params  []string
		req     apiclient.RunRequest
		follow  followFlags
		version int
	)
	cmd := &cobra.Command{
		Use:   "run NAME [-p NAME=VALUE]… [--target NAME]… [--version N] [--follow]",
		Short: "Start a run of a job; with --follow, show its progress, then its output, and exit 0 if it succeeded, 1 if it failed, 2 if it was canceled",
		Args:  exactArgs(1, "the job name"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			p, err := parseParams(params)
			if err != nil {
				return err
			}
			if version < 0 {
				return usageError{fmt.Errorf("--version %d: want a version number (1, 2 …)", version)}
			}
			req.Params, req.Version = p, version
			run, err := c.StartRun(cmd.Context(), args[0], req)
			if err != nil {
				return err
			}
			return startedRun(cmd, f, c, run, "", follow)
		}),
	}
	cmd.Flags().StringArrayVarP(&params, "param", "p", nil, "NAME=VALUE, one parameter (repeatable; the server converts the value to the parameter's type)")
	cmd.Flags().StringArrayVar(&req.Targets, "target", nil, "run only on this one of the job's targets (repeatable)")
	cmd.Flags().IntVar(&version, "version", 0, "run this version (default the newest)")
	follow.add(cmd)
	return cmd
}

// unifiedDiff renders how text b differs from text a, line by line, as a
// unified diff with ctx lines of context ("" when they are the same). It
// is a longest-common-subsequence diff: job definitions are small, and
// the common head and tail are cut off before the quadratic part.
func unifiedDiff(nameA, nameB, a, b string, ctx int) string {
	split := func(s string) []string {
		if s == "" {
			return nil
		}
		return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	}
	la, lb := split(a), split(b)
	type op struct {
		kind byte // ' ', '-' or '+'
		text string
	}
	pre := 0
	for pre < len(la) && pre < len(lb) && la[pre] == lb[pre] {
		pre++
	}
	suf := 0
	for suf < len(la)-pre && suf < len(lb)-pre && la[len(la)-1-suf] == lb[len(lb)-1-suf] {
		suf++
	}
	ma, mb := la[pre:len(la)-suf], lb[pre:len(lb)-suf]
	ops := make([]op, 0, len(la)+len(lb))
	for _, l := range la[:pre] {
		ops = append(ops, op{' ', l})
	}
	if n, m := len(ma), len(mb); n*m <= 16<<20 {
		// lcs[i][j] is the length of the longest common subsequence of
		// ma[i:] and mb[j:].
		lcs := make([][]int32, n+1)
		for i := range lcs {
			lcs[i] = make([]int32, m+1)
		}
		for i := n - 1; i >= 0; i-- {
			for j := m - 1; j >= 0; j-- {
				if ma[i] == mb[j] {
					lcs[i][j] = lcs[i+1][j+1] + 1
				} else {
					lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
				}
			}
		}
		i, j := 0, 0
		for i < n || j < m {
			switch {
			case i < n && j < m && ma[i] == mb[j]:
				ops = append(ops, op{' ', ma[i]})
				i, j = i+1, j+1
			case i < n && (j == m || lcs[i+1][j] >= lcs[i][j+1]):
				// Removals go before additions, as diff -u prints them.
				ops = append(ops, op{'-', ma[i]})
				i++
			default:
				ops = append(ops, op{'+', mb[j]})
				j++
			}
		}
	} else {
		// Too large to compare line by line: show a replacement.
		for _, l := range ma {
			ops = append(ops, op{'-', l})
		}
		for _, l := range mb {
			ops = append(ops, op{'+', l})
		}
	}
	for _, l := range la[len(la)-suf:] {
		ops = append(ops, op{' ', l})
	}

	var out strings.Builder
	span := func(start, count int) string {
		if count == 0 {
			start--
		}
		if count == 1 {
			return strconv.Itoa(start)
		}
		return fmt.Sprintf("%d,%d", start, count)
	}
	oldLine, newLine := 1, 1 // line numbers at ops[k]
	for k := 0; k < len(ops); {
		if ops[k].kind == ' ' {
			oldLine, newLine, k = oldLine+1, newLine+1, k+1
			continue
		}
		// A hunk: from ctx lines before this change to ctx lines after the
		// last change that is no more than 2*ctx equal lines further on.
		start := max(k-ctx, 0)
		for s := start; s < k; s++ {
			oldLine, newLine = oldLine-1, newLine-1
		}
		end, equal := k, 0
		for e := k; e < len(ops) && equal <= 2*ctx; e++ {
			if ops[e].kind == ' ' {
				equal++
				continue
			}
			end, equal = e, 0
		}
		end = min(end+ctx+1, len(ops))
		var oldN, newN int
		for _, o := range ops[start:end] {
			if o.kind != '+' {
				oldN++
			}
			if o.kind != '-' {
				newN++
			}
		}
		if out.Len() == 0 {
			fmt.Fprintf(&out, "--- %s\n+++ %s\n", nameA, nameB)
		}
		fmt.Fprintf(&out, "@@ -%s +%s @@\n", span(oldLine, oldN), span(newLine, newN))
		for _, o := range ops[start:end] {
			out.WriteByte(o.kind)
			out.WriteString(o.text)
			out.WriteByte('\n')
		}
		oldLine, newLine, k = oldLine+oldN, newLine+newN, end
	}
	return out.String()
}
