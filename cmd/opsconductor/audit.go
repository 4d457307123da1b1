package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/opsconductor/opsconductor/controller/apiclient"
)

func newAuditCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "audit",
		Short: "Read, export and verify the tamper-evident audit log (needs audit:read)"}
	f := addAPIFlags(cmd)
	cmd.AddCommand(newAuditListCmd(f), newAuditExportCmd(f), newAuditVerifyCmd(f))
	return cmd
}

// auditFilterFlags are the filters list and export share.
type auditFilterFlags struct {
	node, actor, actorType, action, resource, outcome, since, until, cursor string
}

func (af *auditFilterFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&af.actor, "actor", "", "only entries by this actor (user name, or anonymous)")
	fl.StringVar(&af.actorType, "actor-type", "", "only entries by user, token, agent or system actors")
	fl.StringVar(&af.action, "action", "", "only this action, e.g. jobs.runs.post or auth.login")
	fl.StringVar(&af.resource, "resource", "", "only entries about this resource (an API path such as /api/v1/jobs/backup)")
	fl.StringVar(&af.outcome, "outcome", "", "only success, failure or denied")
	fl.StringVar(&af.node, "node", "", "only the chain of this controller (node ID)")
	fl.StringVar(&af.since, "since", "", "only entries at or after this RFC 3339 time, or this long ago (24h)")
	fl.StringVar(&af.until, "until", "", "only entries before this RFC 3339 time, or this long ago (1h)")
	fl.StringVar(&af.cursor, "cursor", "", "continue after the cursor a previous list printed")
}

// filter builds the API filter; times are read against now.
func (af *auditFilterFlags) filter(now time.Time) (apiclient.AuditFilter, error) {
	f := apiclient.AuditFilter{Node: af.node, Actor: af.actor, ActorType: af.actorType, Action: af.action,
		Resource: af.resource, Outcome: af.outcome, Cursor: af.cursor}
	var errs []error
	var err error
	if f.Since, err = auditTime("since", af.since, now); err != nil {
		errs = append(errs, err)
	}
	if f.Until, err = auditTime("until", af.until, now); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return f, usageError{err}
	}
	return f, nil
}

// auditTime reads an RFC 3339 time or a duration back from now; "" is
// unbounded.
func auditTime(flag, s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("--%s %q: want an RFC 3339 time (2026-11-27T10:00:00Z) or a duration (24h)", flag, s)
}

func newAuditListCmd(f *apiFlags) *cobra.Command {
	var af auditFilterFlags
	var limit int
	cmd := &cobra.Command{
		Use: "list", Short: "List audit entries, newest first, from every controller's chain", Args: exactArgs(0, ""),
		RunE: f.run(func(cmd *cobra.Command, _ []string, c *apiclient.Client) error {
			q, err := af.filter(time.Now())
			if err != nil {
				return err
			}
			q.Limit = limit
			page, err := c.AuditList(cmd.Context(), q)
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), page)
			}
			rows := make([][]string, 0, len(page.Items))
			for _, e := range page.Items {
				rows = append(rows, []string{e.Time.UTC().Format(time.RFC3339), e.Node + "/" + strconv.FormatUint(e.Seq, 10),
					orDash(e.Actor), e.ActorType, e.Action, orDash(e.Resource), e.Outcome, orDash(e.SourceIP)})
			}
			if err := table(cmd.OutOrStdout(), "TIME\tENTRY\tACTOR\tTYPE\tACTION\tRESOURCE\tOUTCOME\tSOURCE", rows); err != nil {
				return err
			}
			if page.Undecodable > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "%d stored records of this page are not audit entries: run 'opsconductor audit verify'\n", page.Undecodable)
			}
			if page.Next != "" {
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "more: --cursor %s\n", page.Next)
			}
			return err
		}),
	}
	af.add(cmd)
	cmd.Flags().IntVar(&limit, "limit", 0, "entries per page (default 100, at most 10000)")
	return cmd
}

func newAuditExportCmd(f *apiFlags) *cobra.Command {
	var af auditFilterFlags
	var format, output string
	cmd := &cobra.Command{
		Use:   "export [--format jsonl|csv] [-o FILE]",
		Short: "Write every matching entry, newest first: JSON Lines exactly as stored (checkable against each hash) or CSV",
		Args:  exactArgs(0, ""),
		RunE: f.run(func(cmd *cobra.Command, _ []string, c *apiclient.Client) error {
			if format != apiclient.AuditFormatJSONL && format != apiclient.AuditFormatCSV {
				return usageError{fmt.Errorf("--format %q: want jsonl or csv", format)}
			}
			q, err := af.filter(time.Now())
			if err != nil {
				return err
			}
			if output == "" || output == "-" {
				_, err := c.AuditExport(cmd.Context(), format, q, cmd.OutOrStdout())
				return err
			}
			return writeFileAtomically(output, func(w io.Writer) error {
				_, err := c.AuditExport(cmd.Context(), format, q, w)
				return err
			})
		}),
	}
	af.add(cmd)
	cmd.Flags().StringVar(&format, "format", apiclient.AuditFormatJSONL, "jsonl or csv")
	cmd.Flags().StringVarP(&output, "output", "o", "-", "file to write (- for standard output); written whole or not at all")
	return cmd
}

// writeFileAtomically writes path through a temporary file in its
// directory, renamed into place only when write succeeds: an export that
// fails half way must not leave a file that looks like the whole log.
func writeFileAtomically(path string, write func(io.Writer) error) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("--output: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := write(tmp); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("--output: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("--output: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("--output: %w", err)
	}
	return nil
}

func newAuditVerifyCmd(f *apiFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "verify",
		Short: "Walk every controller's hash chain and name the first broken link; exit status 1 when one is broken",
		Args:  exactArgs(0, ""),
		RunE: f.run(func(cmd *cobra.Command, _ []string, c *apiclient.Client) error {
			v, err := c.AuditVerify(cmd.Context())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if f.json {
				if err := printJSON(out, v); err != nil {
					return err
				}
			} else if err := printAuditVerification(out, v); err != nil {
				return err
			}
			if !v.OK {
				return exitCodeError{1}
			}
			return nil
		}),
	}
}

// printAuditVerification prints one line per chain:
//
//	n1  1204 entries  seq 1..1204  OK
//	n2  88 entries  seq 1..88  BROKEN at seq 41: hash mismatch (2 problems)
func printAuditVerification(w io.Writer, v apiclient.AuditVerification) error {
	var b strings.Builder
	for _, ch := range v.Chains {
		fmt.Fprintf(&b, "%s  %d entries", ch.Node, ch.Entries)
		if ch.Entries > 0 {
			fmt.Fprintf(&b, "  seq %d..%d", ch.FirstSeq, ch.LastSeq)
		}
		if ch.FirstBroken != nil {
			fmt.Fprintf(&b, "  BROKEN at seq %d: %s", ch.FirstBroken.Seq, ch.FirstBroken.Reason)
			if ch.Problems > 1 {
				fmt.Fprintf(&b, " (%d problems)", ch.Problems)
			}
		} else {
			b.WriteString("  OK")
		}
		if ch.Truncated {
			// Not a break: retention removed the head. The auditor
			// compares the oldest time with the retention configured.
			fmt.Fprintf(&b, "  (head removed by retention; oldest entry %s)", ch.FirstTime.UTC().Format(time.RFC3339))
		}
		b.WriteString("\n")
	}
	if len(v.Chains) == 0 {
		b.WriteString("no audit chains\n")
	}
	if v.OK {
		b.WriteString("audit log intact\n")
	} else if fb := v.FirstBroken; fb != nil {
		fmt.Fprintf(&b, "audit log BROKEN: first broken link is %s seq %d (%s)\n", fb.Node, fb.Seq, fb.Reason)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
