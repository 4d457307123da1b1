package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/opsconductor/opsconductor/controller/apiclient"
)

func newRunCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "run",
		Short: "List and inspect runs of jobs, read and follow their output, cancel, rerun and approve them (needs jobs:read; jobs:run to rerun and approve; runs:cancel to cancel)"}
	f := addAPIFlags(cmd)
	cmd.AddCommand(newRunListCmd(f), newRunShowCmd(f), newRunLogsCmd(f), newRunCancelCmd(f), newRunRerunCmd(f),
		newRunDecideCmd(f, true), newRunDecideCmd(f, false))
	return cmd
}

func newRunListCmd(f *apiFlags) *cobra.Command {
	var (
		q     apiclient.RunQuery
		since string
	)
	cmd := &cobra.Command{
		Use: "list [--job NAME] [--status STATUS] [--target NAME] [--limit N]", Short: "List runs, newest first",
		Args: exactArgs(0, ""),
		RunE: f.run(func(cmd *cobra.Command, _ []string, c *apiclient.Client) error {
			if since != "" {
				t, err := parseSince(since, time.Now())
				if err != nil {
					return err
				}
				q.Since = t
			}
			page, err := c.ListRuns(cmd.Context(), q)
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), page)
			}
			rows := make([][]string, 0, len(page.Items))
			for _, r := range page.Items {
				rows = append(rows, []string{r.ID, r.Job + "@" + strconv.Itoa(r.Version), withReason(r.Status, r.Reason),
					summaryText(r.Summary), r.CreatedAt.UTC().Format(time.RFC3339), r.Trigger.By})
			}
			if err := table(cmd.OutOrStdout(), "ID\tJOB\tSTATUS\tTARGETS\tCREATED\tBY", rows); err != nil {
				return err
			}
			if page.Next != "" {
				fmt.Fprintf(cmd.ErrOrStderr(), "more runs: add --cursor %s\n", page.Next)
			}
			return nil
		}),
	}
	cmd.Flags().StringVar(&q.Job, "job", "", "only runs of this job")
	cmd.Flags().StringVar(&q.Status, "status", "", "only runs in this state (queued, waiting, running, succeeded, failed, canceled)")
	cmd.Flags().StringVar(&q.Target, "target", "", "only runs on this target")
	cmd.Flags().StringVar(&since, "since", "", "only runs created since this RFC 3339 time, or this long ago (24h)")
	cmd.Flags().IntVar(&q.Limit, "limit", 0, "at most this many runs (default 50)")
	cmd.Flags().StringVar(&q.Cursor, "cursor", "", "continue a list after the cursor the previous one printed")
	return cmd
}

// parseSince reads an RFC 3339 time or a duration back from now.
func parseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, usageError{fmt.Errorf("--since %q: want an RFC 3339 time (2026-11-27T10:00:00Z) or a duration (24h)", s)}
}

func withReason(status, reason string) string {
	if reason == "" {
		return status
	}
	return status + " (" + reason + ")"
}

// summaryText counts a run's targets by state, leaving out empty counts.
func summaryText(s apiclient.RunSummary) string {
	parts := []string{strconv.Itoa(s.Targets)}
	for _, c := range []struct {
		n    int
		name string
	}{{s.Succeeded, "succeeded"}, {s.Failed, "failed"}, {s.Running, "running"}, {s.Waiting, "waiting"},
		{s.Pending, "pending"}, {s.Canceled, "canceled"}, {s.Skipped, "skipped"}} {
		if c.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c.n, c.name))
		}
	}
	if len(parts) == 1 {
		return parts[0]
	}
	return parts[0] + " (" + strings.Join(parts[1:], ", ") + ")"
}

func newRunShowCmd(f *apiFlags) *cobra.Command {
	return &cobra.Command{
		Use: "show ID", Short: "Show a run: each target's steps, why anything waits, and its approvals",
		Args: exactArgs(1, "the run ID (run_…)"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			r, err := c.GetRun(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), r)
			}
			return printRun(cmd.OutOrStdout(), r)
		}),
	}
}

func timeText(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// printRun writes a run as text: its head, its approvals, a table of
// targets by steps, and then what each waiting, skipped or failed step
// says about itself.
func printRun(w io.Writer, r apiclient.Run) error {
	fmt.Fprintf(w, "run %s  job %s version %d  %s\n", r.ID, r.Job, r.Version, withReason(r.Status, r.Reason))
	trig := r.Trigger.Kind + " by " + r.Trigger.By
	switch {
	case r.Trigger.RerunOf != "":
		trig += ", rerun of " + r.Trigger.RerunOf
	case r.Trigger.Schedule != "":
		trig += ", schedule " + r.Trigger.Schedule
	}
	fmt.Fprintf(w, "triggered %s; created %s, started %s, finished %s\n", trig, r.CreatedAt.UTC().Format(time.RFC3339),
		timeText(r.StartedAt), timeText(r.FinishedAt))
	if r.CancelRequested != nil {
		fmt.Fprintf(w, "cancel requested %s by %s\n", timeText(r.CancelRequested), r.CanceledBy)
	}
	if m, ok := r.Params.(map[string]any); ok && len(m) > 0 {
		parts := make([]string, 0, len(m))
		for _, k := range slices.Sorted(maps.Keys(m)) {
			v, _ := json.Marshal(m[k])
			parts = append(parts, k+"="+string(v))
		}
		fmt.Fprintf(w, "params %s\n", strings.Join(parts, " "))
	}
	fmt.Fprintf(w, "targets %s\n", summaryText(r.Summary))
	if r.Hidden > 0 {
		fmt.Fprintf(w, "(%d more targets you may not see)\n", r.Hidden)
	}
	for _, a := range r.Approvals {
		line := fmt.Sprintf("approval %s: %s", a.Step, a.Status)
		if a.Status == "pending" {
			line += ", until " + a.Deadline.UTC().Format(time.RFC3339)
		}
		if a.DecidedBy != "" {
			line += " by " + a.DecidedBy
		}
		if a.Comment != "" {
			line += fmt.Sprintf(" (%q)", a.Comment)
		}
		if a.Message != "" {
			line += " — " + a.Message
		}
		fmt.Fprintln(w, line)
	}
	if len(r.Targets) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	if err := stepTable(w, r.Targets, 0); err != nil {
		return err
	}
	var notes []string
	for _, t := range r.Targets {
		for _, s := range t.Steps {
			if d := stepDetails(s); d != "" {
				notes = append(notes, fmt.Sprintf("  %s %s: %s: %s", t.Name, s.ID, s.Status, d))
			}
		}
	}
	if len(notes) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, strings.Join(notes, "\n"))
	}
	return nil
}

// stepDetails says what a step says about itself beyond its status and
// try: its error or exit code, why it waits or was skipped.
func stepDetails(s apiclient.RunStep) string {
	var parts []string
	if s.Error != "" {
		parts = append(parts, s.Error)
	}
	if s.ExitCode != nil && *s.ExitCode != 0 {
		parts = append(parts, fmt.Sprintf("exit code %d", *s.ExitCode))
	}
	if s.Reason != "" && s.Reason != "ready" {
		parts = append(parts, s.Reason)
	}
	if s.RetryAt != nil {
		parts = append(parts, "next try "+timeText(s.RetryAt))
	}
	return strings.Join(parts, "; ")
}

// stepTable writes a table of targets (rows) by steps (columns); limit
// > 0 shows at most that many targets and counts the rest.
func stepTable(w io.Writer, targets []apiclient.RunTarget, limit int) error {
	var steps []string
	for _, t := range targets {
		for _, s := range t.Steps {
			if !slices.Contains(steps, s.ID) {
				steps = append(steps, s.ID)
			}
		}
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TARGET\tSTATUS\t"+strings.Join(steps, "\t"))
	shown := targets
	if limit > 0 && len(shown) > limit {
		shown = shown[:limit]
	}
	for _, t := range shown {
		cells := []string{t.Name, t.Status}
		for _, id := range steps {
			cell := "-"
			for _, s := range t.Steps {
				if s.ID == id {
					cell = s.Status
					if s.Try > 1 {
						cell += fmt.Sprintf(" (try %d)", s.Try)
					}
				}
			}
			cells = append(cells, cell)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(shown) < len(targets) {
		_, err := fmt.Fprintf(w, "… and %d more targets\n", len(targets)-len(shown))
		return err
	}
	return nil
}

func newRunLogsCmd(f *apiFlags) *cobra.Command {
	var (
		q      apiclient.RunLogQuery
		follow followFlags
	)
	cmd := &cobra.Command{
		Use: "logs ID [--target NAME] [--step ID] [-f]", Short: "Print a run's output as \"target step | line\"; -f follows it live until the run ends",
		Args: exactArgs(1, "the run ID (run_…)"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			id := args[0]
			lp := newLogPrinter(cmd.OutOrStdout(), q.Target, q.Step)
			if !follow.follow {
				lines, err := c.AllRunLogs(cmd.Context(), id, q)
				if err != nil {
					return err
				}
				if f.json {
					if lines == nil {
						lines = []apiclient.RunLogLine{}
					}
					return printJSON(cmd.OutOrStdout(), lines)
				}
				for _, l := range lines {
					lp.print(l)
				}
				return nil
			}
			if f.json {
				return usageError{errors.New("--json and --follow do not go together: read the stream with the API instead")}
			}
			// What is stored first, then the live lines; the printer drops
			// lines it has printed already.
			lines, err := c.AllRunLogs(cmd.Context(), id, q)
			if err != nil {
				return err
			}
			for _, l := range lines {
				lp.print(l)
			}
			wt := &watcher{c: c, id: id, poll: follow.poll, note: cmd.ErrOrStderr(), onView: func(apiclient.Run) {}, onLog: lp.print,
				pollLogs: func(ctx context.Context) error {
					lines, err := c.AllRunLogs(ctx, id, q)
					for _, l := range lines {
						lp.print(l)
					}
					return err
				}}
			r, err := wt.watch(cmd.Context())
			if err != nil {
				return err
			}
			// Lines the stream skipped (a gap) are stored by now: the run
			// ends only once its output is.
			if lines, err = c.AllRunLogs(cmd.Context(), id, q); err != nil {
				return err
			}
			for _, l := range lines {
				lp.print(l)
			}
			return runExit(cmd.ErrOrStderr(), r)
		}),
	}
	cmd.Flags().StringVar(&q.Target, "target", "", "only this target's output")
	cmd.Flags().StringVar(&q.Step, "step", "", "only this step's output")
	cmd.Flags().BoolVarP(&follow.follow, "follow", "f", false, "follow the output live until the run ends, then exit 0 if it succeeded, 1 if it failed, 2 if it was canceled")
	cmd.Flags().DurationVar(&follow.poll, "poll", time.Second, "how often to ask for the run when the live stream is unavailable")
	return cmd
}

func newRunCancelCmd(f *apiFlags) *cobra.Command {
	var targets []string
	cmd := &cobra.Command{
		Use: "cancel ID [--target NAME]…", Short: "Cancel a run, or only some of its targets; running steps are killed",
		Args: exactArgs(1, "the run ID (run_…)"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			r, err := c.CancelRun(cmd.Context(), args[0], targets)
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), r)
			}
			what := "run " + r.ID
			if len(targets) > 0 {
				what = fmt.Sprintf("%s of run %s", strings.Join(targets, ", "), r.ID)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "cancel requested for %s; the run is %s\n", what, r.Status)
			return err
		}),
	}
	cmd.Flags().StringArrayVar(&targets, "target", nil, "cancel only this target (repeatable)")
	return cmd
}

func newRunRerunCmd(f *apiFlags) *cobra.Command {
	var (
		failed, resume bool
		follow         followFlags
	)
	cmd := &cobra.Command{
		Use:   "rerun ID [--failed | --resume] [--follow]",
		Short: "Run a finished run again with the same version and parameters: all targets, only those that did not succeed (--failed), or those from the step that failed (--resume)",
		Args:  exactArgs(1, "the run ID (run_…)"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			mode := apiclient.RerunAll
			switch {
			case failed && resume:
				return usageError{errors.New("--failed and --resume do not go together")}
			case failed:
				mode = apiclient.RerunFailed
			case resume:
				mode = apiclient.RerunResume
			}
			r, err := c.Rerun(cmd.Context(), args[0], mode)
			if err != nil {
				return err
			}
			return startedRun(cmd, f, c, r, args[0], follow)
		}),
	}
	cmd.Flags().BoolVar(&failed, "failed", false, "only the targets that did not succeed")
	cmd.Flags().BoolVar(&resume, "resume", false, "only the targets that did not succeed, from the step that failed, keeping earlier steps' results")
	follow.add(cmd)
	return cmd
}

func newRunDecideCmd(f *apiFlags, approve bool) *cobra.Command {
	var comment string
	use, short, done := "approve", "Approve a run's approval step, on every target", "approved"
	if !approve {
		use, short, done = "reject", "Reject a run's approval step: the step fails on every target", "rejected"
	}
	cmd := &cobra.Command{
		Use: use + " ID STEP [--comment TEXT]", Short: short, Args: exactArgs(2, "the run ID and the approval step's ID"),
		RunE: f.run(func(cmd *cobra.Command, args []string, c *apiclient.Client) error {
			a, err := c.DecideApproval(cmd.Context(), args[0], args[1], approve, comment)
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), a)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s step %s of run %s\n", done, a.Step, args[0])
			return err
		}),
	}
	cmd.Flags().StringVar(&comment, "comment", "", "why (kept with the decision)")
	return cmd
}

// --- following a run -----------------------------------------------------------

// followFlags are --follow and --poll of the commands that start runs.
type followFlags struct {
	follow bool
	poll   time.Duration
}

func (ff *followFlags) add(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&ff.follow, "follow", false, "show the run's progress until it ends, then its output; exit 0 if it succeeded, 1 if it failed, 2 if it was canceled")
	cmd.Flags().DurationVar(&ff.poll, "poll", time.Second, "how often to ask for the run when the live stream is unavailable")
}

// startedRun reports a run just started and, with --follow, follows it
// to its end and exits with its outcome.
func startedRun(cmd *cobra.Command, f *apiFlags, c *apiclient.Client, r apiclient.Run, rerunOf string, ff followFlags) error {
	out := cmd.OutOrStdout()
	if f.json && !ff.follow {
		return printJSON(out, r)
	}
	if !f.json {
		of := ""
		if rerunOf != "" {
			of = " (rerun of " + rerunOf + ")"
		}
		fmt.Fprintf(out, "run %s started%s; follow with opsconductor run logs -f %s\n", r.ID, of, r.ID)
	}
	if !ff.follow {
		return nil
	}
	var view func(apiclient.Run)
	if f.json {
		view = func(apiclient.Run) {}
	} else {
		view = newRunProgress(out, isTerminal(out)).update
	}
	wt := &watcher{c: c, id: r.ID, poll: ff.poll, note: cmd.ErrOrStderr(), onView: view}
	final, err := wt.watch(cmd.Context())
	if err != nil {
		return fmt.Errorf("stopped following run %s (it goes on; opsconductor run cancel %s stops it): %w", r.ID, r.ID, err)
	}
	if f.json {
		if err := printJSON(out, final); err != nil {
			return err
		}
		return runExit(io.Discard, final)
	}
	lines, err := c.AllRunLogs(cmd.Context(), r.ID, apiclient.RunLogQuery{})
	if err != nil {
		return err
	}
	if len(lines) > 0 {
		fmt.Fprintln(out)
		lp := newLogPrinter(out, "", "")
		for _, l := range lines {
			lp.print(l)
		}
	}
	return runExit(out, final)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// runExit says how a run ended and turns it into the exit code: 0 when
// it succeeded, 1 when it failed, 2 when it was canceled.
func runExit(w io.Writer, r apiclient.Run) error {
	fmt.Fprintf(w, "run %s %s: %s\n", r.ID, withReason(r.Status, r.Reason), summaryText(r.Summary))
	switch r.Status {
	case apiclient.RunSucceeded:
		return nil
	case apiclient.RunCanceled:
		return exitCodeError{2}
	default:
		return exitCodeError{1}
	}
}

// watcher follows one run to its end: over the live stream when it can,
// resuming it when it breaks, else by asking for the run every poll.
type watcher struct {
	c    *apiclient.Client
	id   string
	poll time.Duration
	// note receives what the watcher has to say about itself (stderr).
	note io.Writer
	// onView receives the run whenever what it shows may have changed.
	onView func(apiclient.Run)
	// onLog, when set, receives output lines from the stream; pollLogs
	// reads them over REST when polling instead.
	onLog    func(apiclient.RunLogLine)
	pollLogs func(ctx context.Context) error
}

// refreshEvery bounds how often the run is read again while stream
// events say it changed: an attempt event changes one step, but what
// follows from it (skips, the next batch) is decided by the server.
const refreshEvery = 200 * time.Millisecond

// maxStreamResumes is how often a broken stream is reopened before the
// watcher falls back to polling.
const maxStreamResumes = 3

func (w *watcher) watch(ctx context.Context) (apiclient.Run, error) {
	r, err := w.c.GetRun(ctx, w.id)
	if err != nil {
		return r, err
	}
	w.onView(r)
	if r.Finished() {
		return r, nil
	}
	r, err = w.stream(ctx, r)
	if err == nil {
		return r, nil
	}
	if ctx.Err() != nil {
		return r, ctx.Err()
	}
	poll := max(w.poll, 10*time.Millisecond)
	fmt.Fprintf(w.note, "live output unavailable (%v); asking for the run every %s\n", err, poll)
	return w.pollRun(ctx, r, poll)
}

func (w *watcher) pollRun(ctx context.Context, r apiclient.Run, every time.Duration) (apiclient.Run, error) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if w.pollLogs != nil {
			if err := w.pollLogs(ctx); err != nil {
				return r, err
			}
		}
		if r.Finished() {
			return r, nil
		}
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-t.C:
		}
		next, err := w.c.GetRun(ctx, w.id)
		if err != nil {
			return r, err
		}
		r = next
		w.onView(r)
	}
}

// stream follows the run over its live stream until the run ends; an
// error means the stream could not be opened or kept open.
func (w *watcher) stream(ctx context.Context, r apiclient.Run) (apiclient.Run, error) {
	var (
		after uint64
		epoch string
	)
	for resumes := 0; ; resumes++ {
		s, err := w.c.StreamRun(ctx, w.id, after, epoch)
		if err != nil {
			return r, err
		}
		var done bool
		r, after, epoch, done, err = w.consume(ctx, s, r, after, epoch)
		if done {
			return r, nil
		}
		if ctx.Err() != nil || resumes >= maxStreamResumes {
			return r, err
		}
	}
}

// consume reads one opened stream until the run ends (done), the stream
// breaks or ctx ends; it returns where to resume.
func (w *watcher) consume(ctx context.Context, s *apiclient.RunStream, r apiclient.Run, after uint64, epoch string) (
	_ apiclient.Run, _ uint64, _ string, done bool, _ error) {
	events := make(chan apiclient.RunEvent)
	readErr := make(chan error, 1)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			ev, err := s.Next()
			if err != nil {
				readErr <- err
				return
			}
			select {
			case events <- ev:
			case <-stop:
				return
			}
		}
	}()
	defer func() {
		close(stop)
		_ = s.Close() // ends a Next in progress
		wg.Wait()
	}()
	refresh := func() error {
		next, err := w.c.GetRun(ctx, w.id)
		if err != nil {
			return err
		}
		r = next
		w.onView(r)
		return nil
	}
	tick := time.NewTicker(refreshEvery)
	defer tick.Stop()
	dirty := false
	for {
		select {
		case <-ctx.Done():
			return r, after, epoch, false, ctx.Err()
		case err := <-readErr:
			// A stream that closes without "end" (the leader stepped
			// down): the run says whether anything is left to wait for.
			if rerr := refresh(); rerr != nil {
				return r, after, epoch, false, rerr
			}
			if r.Finished() {
				return r, after, epoch, true, nil
			}
			if errors.Is(err, io.EOF) {
				err = errors.New("the live stream closed before the run ended")
			}
			return r, after, epoch, false, err
		case <-tick.C:
			if dirty {
				if err := refresh(); err != nil {
					return r, after, epoch, false, err
				}
				dirty = false
			}
		case ev := <-events:
			// A gap's Seq is the last event it skipped, a hello's the one
			// the stream starts after: resuming after Seq is always right.
			after = ev.Seq
			switch ev.Type {
			case apiclient.EventHello:
				var h apiclient.RunStreamHello
				if json.Unmarshal(ev.Data, &h) == nil {
					epoch = h.Epoch
					dirty = dirty || h.Restarted
				}
			case apiclient.EventRun:
				var st apiclient.RunEventState
				// The stream replays from the run's start, so an event may be
				// older than the run as first read: a run never goes back
				// to queued, nor leaves a final state.
				if json.Unmarshal(ev.Data, &st) == nil && st.Status != "" && st.Status != r.Status &&
					!(st.Status == apiclient.RunQueued && r.Status != apiclient.RunQueued) && !apiclient.RunFinal(r.Status) {
					r.Status, r.Reason = st.Status, st.Reason
					w.onView(r)
				}
				dirty = true
			case apiclient.EventAttempt:
				var a apiclient.AttemptEvent
				if json.Unmarshal(ev.Data, &a) == nil && applyAttempt(&r, a) {
					w.onView(r)
				}
				dirty = true
			case apiclient.EventLog:
				var l apiclient.RunLogLine
				if w.onLog != nil && json.Unmarshal(ev.Data, &l) == nil {
					w.onLog(l)
				}
			case apiclient.EventGap:
				dirty = true
			case apiclient.EventEnd:
				if err := refresh(); err != nil {
					return r, after, epoch, false, err
				}
				return r, after, epoch, true, nil
			}
		}
	}
}

// applyAttempt shows an attempt event in the run at once, the way the
// server derives a step's status from its attempt; it reports whether
// anything shown changed.
func applyAttempt(r *apiclient.Run, a apiclient.AttemptEvent) bool {
	status := a.Status
	switch status {
	case "pending", "running":
		status = "running"
	case "error":
		status = "failed"
	}
	for i := range r.Targets {
		t := &r.Targets[i]
		if t.Name != a.Target {
			continue
		}
		for j := range t.Steps {
			s := &t.Steps[j]
			if s.ID != a.Step {
				continue
			}
			changed := s.Status != status || s.Try != a.Try
			s.Status, s.AttemptID, s.Try, s.ExitCode, s.Error = status, a.AttemptID, a.Try, a.ExitCode, a.Error
			s.StartedAt, s.FinishedAt, s.Reason = a.StartedAt, a.FinishedAt, ""
			if status == "running" && t.Status != "running" {
				t.Status, changed = "running", true
			}
			return changed
		}
	}
	return false
}

// runProgress shows a run's progress: on a terminal, a table of targets by
// steps redrawn in place; elsewhere, one line per change, for logs.
type runProgress struct {
	w   io.Writer
	tty bool
	// last is what was shown: the run's status under "", each step's under
	// "target step".
	last map[string]string
	// drawn counts the lines of the table on screen.
	drawn int
}

// maxDrawnTargets bounds the targets the terminal table shows.
const maxDrawnTargets = 30

func newRunProgress(w io.Writer, tty bool) *runProgress {
	return &runProgress{w: w, tty: tty, last: map[string]string{}}
}

func (p *runProgress) update(r apiclient.Run) {
	if p.tty {
		var b bytes.Buffer
		fmt.Fprintf(&b, "run %s  %s@%d  %s  targets %s\n", r.ID, r.Job, r.Version, withReason(r.Status, r.Reason), summaryText(r.Summary))
		_ = stepTable(&b, r.Targets, maxDrawnTargets)
		if p.drawn > 0 {
			// Up to the table's first line, then clear to the end.
			fmt.Fprintf(p.w, "\x1b[%dA\x1b[J", p.drawn)
		}
		p.drawn = bytes.Count(b.Bytes(), []byte("\n"))
		_, _ = p.w.Write(b.Bytes())
		return
	}
	if st := withReason(r.Status, r.Reason); p.last[""] != st {
		p.last[""] = st
		fmt.Fprintf(p.w, "run %s: %s\n", r.ID, st)
	}
	for _, t := range r.Targets {
		for _, s := range t.Steps {
			key := t.Name + " " + s.ID
			shown := s.Status
			if s.Try > 1 {
				shown += fmt.Sprintf(" (try %d)", s.Try)
			}
			prev, seen := p.last[key]
			if prev == shown || (!seen && s.Status == "pending") {
				p.last[key] = shown
				continue
			}
			p.last[key] = shown
			if d := stepDetails(s); d != "" {
				shown += " (" + d + ")"
			}
			fmt.Fprintf(p.w, "%s: %s\n", key, shown)
		}
	}
}

// logPrinter prints output lines as "target step | line", once each
// (the stream and REST may both deliver a line), keeping to one target
// and step when asked.
type logPrinter struct {
	w            io.Writer
	target, step string
	seen         map[string]map[uint64]bool
}

func newLogPrinter(w io.Writer, target, step string) *logPrinter {
	return &logPrinter{w: w, target: target, step: step, seen: map[string]map[uint64]bool{}}
}

func (lp *logPrinter) print(l apiclient.RunLogLine) {
	if (lp.target != "" && l.Target != lp.target) || (lp.step != "" && l.Step != lp.step) {
		return
	}
	s := lp.seen[l.AttemptID]
	if s == nil {
		s = map[uint64]bool{}
		lp.seen[l.AttemptID] = s
	}
	if s[l.Seq] {
		return
	}
	s[l.Seq] = true
	for _, line := range strings.Split(strings.TrimSuffix(l.Data, "\n"), "\n") {
		fmt.Fprintf(lp.w, "%s %s | %s\n", l.Target, l.Step, line)
	}
}
