// Command report is `make bench`: it runs every benchmark and load driver
// that measures a figure the issues name, one step at a time with a
// progress line each, and writes bench/report.md and bench/report.json
// (each figure with its unit, target and verdict, the command behind it,
// the machine, the Go version and the git revision).
//
// A step that fails is recorded as an error with the end of its output,
// and the run goes on: one broken driver must not hide every other
// figure. -quick runs each step at reduced parameters (make bench
// QUICK=1); figures measured below the scale their target is set for are
// reported without a verdict.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"syscall"
	"time"
)

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "bin", "directory holding opsconductor and opsconductor-agent (make build)")
	flag.BoolVar(&o.quick, "quick", false, "reduced parameters: the whole run in under 3 minutes (make bench QUICK=1)")
	flag.StringVar(&o.md, "md", "bench/report.md", "markdown report to write")
	flag.StringVar(&o.json, "json", "bench/report.json", "JSON report to write")
	flag.StringVar(&o.only, "only", "", "run only the steps whose name matches this regular expression")
	flag.BoolVar(&o.list, "list", false, "list the steps with their commands and exit")
	flag.BoolVar(&o.keep, "keep", false, "keep the steps' output directory")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench/report:", err)
		os.Exit(1)
	}
}

type options struct {
	bin, md, json, only string
	quick, list, keep   bool
}

func run(ctx context.Context, o options) error {
	var only *regexp.Regexp
	if o.only != "" {
		var err error
		if only, err = regexp.Compile(o.only); err != nil {
			return fmt.Errorf("-only: %w", err)
		}
	}
	bin, err := filepath.Abs(o.bin)
	if err != nil {
		return fmt.Errorf("-bin: %w", err)
	}
	dir, err := os.MkdirTemp("", "bench-report-")
	if err != nil {
		return err
	}
	e := &env{bin: bin, quick: o.quick, dir: dir}
	var steps []step
	for _, s := range allSteps() {
		if only == nil || only.MatchString(s.name) {
			steps = append(steps, s)
		}
	}
	if len(steps) == 0 {
		return fmt.Errorf("-only %q matches no step (-list shows them)", o.only)
	}
	if o.list {
		os.RemoveAll(dir)
		for i, s := range steps {
			fmt.Printf("%2d. %s\n    $ %s\n", i+1, s.name, s.command(e))
		}
		return nil
	}
	if _, err := os.Stat(filepath.Join(bin, "opsconductor")); err != nil {
		return fmt.Errorf("%w: run make build first", err)
	}

	rep := report{Quick: o.quick, Machine: readMachine(ctx), Start: time.Now().UTC()}
	for i, s := range steps {
		if ctx.Err() != nil {
			break
		}
		fmt.Fprintf(os.Stderr, "[%d/%d] %s…\n", i+1, len(steps), s.name)
		r := e.runStep(ctx, i, s)
		rep.Steps = append(rep.Steps, r)
		status := fmt.Sprintf("%d figures", len(r.Figures))
		switch {
		case r.Skipped != "":
			status = "skipped: " + r.Skipped
		case r.Error != "":
			status = "ERROR (see the report)"
		}
		fmt.Fprintf(os.Stderr, "[%d/%d] %s… %.0f s, %s\n", i+1, len(steps), s.name, r.Seconds, status)
	}
	rep.Seconds = time.Since(rep.Start).Seconds()
	rep.Machine.LoadAfter = loadAvg()
	if err := rep.write(o.md, o.json); err != nil {
		return err
	}
	if o.keep {
		fmt.Fprintf(os.Stderr, "steps' output kept in %s\n", dir)
	} else {
		os.RemoveAll(dir)
	}
	pass, fail, errs := rep.counts()
	fmt.Fprintf(os.Stderr, "%d figures met their target, %d missed, %d steps failed; %s and %s written in %.0f s\n",
		pass, fail, errs, o.md, o.json, rep.Seconds)
	if ctx.Err() != nil {
		return errors.New("interrupted: the report holds the steps that ran")
	}
	return nil
}
