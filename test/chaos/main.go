// Command chaos runs a three-controller OpsConductor cluster with a private
// PostgreSQL history store and a fleet of agent processes, keeps a workload
// of ledger-writing runs going, and injects random faults for a set time:
// SIGKILL of the leader, of a follower and of agents, cut and healed links
// (a faultproxy in front of every controller listener) and PostgreSQL
// restarts. Then it heals everything, lets the work drain and checks what
// must hold whatever happened: every run reached a terminal state, no step
// ran twice, every stored log line is there exactly once, the controllers'
// state is identical, the audit chain verifies, and the processes that
// lived through it did not leak goroutines or file descriptors.
//
// The fault schedule is drawn from one seed, printed at the start; running
// again with -seed (CHAOS_SEED) replays the same schedule. What the faults
// hit at run time (which node leads when the leader is killed) depends on
// the cluster, so a replay is the same storm, not the same interleaving.
//
// It never touches the shared PostgreSQL on 127.0.0.1:5432: it runs its own
// server from the Debian binaries under /usr/lib/postgresql, as the
// postgres user, in the run's directory.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// config is everything the command line sets.
type config struct {
	seed     int64
	duration time.Duration
	agents   int
	binDir   string
	dir      string
	runEvery time.Duration
}

func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	cfg := config{}
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	seed := fs.String("seed", getenv("CHAOS_SEED"), "seed of the fault schedule (env CHAOS_SEED; default: from the clock, printed)")
	dur := fs.String("duration", envOr(getenv, "CHAOS_DURATION", "5m"), "how long faults are injected (env CHAOS_DURATION)")
	fs.IntVar(&cfg.agents, "agents", 50, "agent processes")
	fs.StringVar(&cfg.binDir, "bin", "bin", "directory holding opsconductor and opsconductor-agent (make build)")
	fs.StringVar(&cfg.dir, "dir", "", "directory for the run's data and logs (default: a new one under $TMPDIR, kept and printed)")
	fs.DurationVar(&cfg.runEvery, "run-every", 5*time.Second, "how often the workload starts a run over the whole fleet")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *seed == "" {
		cfg.seed = time.Now().UnixNano() % 1_000_000_000
	} else {
		s, err := strconv.ParseInt(*seed, 10, 64)
		if err != nil {
			return cfg, fmt.Errorf("-seed (CHAOS_SEED) %q: want an integer", *seed)
		}
		cfg.seed = s
	}
	d, err := time.ParseDuration(*dur)
	if err != nil || d < 10*time.Second {
		return cfg, fmt.Errorf("-duration (CHAOS_DURATION) %q: want a duration of at least 10s, such as 60s or 5m", *dur)
	}
	cfg.duration = d
	if cfg.agents < 1 || cfg.agents > 500 {
		return cfg, fmt.Errorf("-agents %d: want 1 to 500", cfg.agents)
	}
	if cfg.runEvery < 500*time.Millisecond {
		return cfg, fmt.Errorf("-run-every %v: want at least 500ms", cfg.runEvery)
	}
	return cfg, nil
}

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}

func main() {
	cfg, err := parseConfig(os.Args[1:], os.Getenv, os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ok, err := run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(1)
	}
	if !ok {
		os.Exit(1)
	}
}

// run sets the rig up, runs the storm and the checks, and tears the rig
// down. It reports whether every check passed; err is a failure to run at
// all.
func run(ctx context.Context, cfg config) (bool, error) {
	bin, err := filepath.Abs(cfg.binDir)
	if err != nil {
		return false, err
	}
	for _, b := range []string{"opsconductor", "opsconductor-agent"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			return false, fmt.Errorf("-bin %s: %w (run `make build` first)", cfg.binDir, err)
		}
	}
	dir := cfg.dir
	if dir == "" {
		dir, err = os.MkdirTemp("", fmt.Sprintf("opsconductor-chaos-%d-", cfg.seed))
		if err != nil {
			return false, err
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, err
	}
	// The private PostgreSQL runs as the postgres user, who must reach
	// its data directory inside this one.
	if err := os.Chmod(dir, 0o755); err != nil {
		return false, err
	}
	logf, err := os.Create(filepath.Join(dir, "chaos.log"))
	if err != nil {
		return false, err
	}
	defer logf.Close()
	out := newLogger(io.MultiWriter(os.Stdout, logf))
	out.printf("seed %d (rerun with CHAOS_SEED=%d), fault period %v, %d agents, artefacts in %s", cfg.seed, cfg.seed, cfg.duration, cfg.agents, dir)

	start := time.Now()
	r := &rig{bin: bin, dir: dir, log: out, agentsN: cfg.agents}
	defer func() {
		r.teardown()
		out.printf("total wall time %v; artefacts (logs of every process) in %s", time.Since(start).Round(time.Second), dir)
	}()
	if err := r.setup(ctx); err != nil {
		r.tailLogs()
		return false, fmt.Errorf("setup: %w", err)
	}
	out.printf("setup done in %v", time.Since(start).Round(time.Millisecond))

	st := &storm{rig: r, cfg: cfg}
	if err := st.run(ctx); err != nil {
		r.tailLogs()
		return false, fmt.Errorf("storm: %w", err)
	}
	results := checkAll(ctx, r, st)
	ok := printResults(out, results)
	if !ok {
		r.tailLogs()
		out.printf("FAIL: rerun the same schedule with CHAOS_SEED=%d", cfg.seed)
	} else {
		out.printf("PASS: every check held (seed %d)", cfg.seed)
	}
	return ok, nil
}

// logger prints timestamped lines for people; every fault and step of the
// run goes through it, so chaos.log is the run's timeline.
type logger struct {
	w     io.Writer
	start time.Time
	mu    sync.Mutex
}

func newLogger(w io.Writer) *logger { return &logger{w: w, start: time.Now()} }

func (l *logger) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	fmt.Fprintf(l.w, "%s +%7.2fs  %s\n", now.UTC().Format("15:04:05.000"), now.Sub(l.start).Seconds(), fmt.Sprintf(format, args...))
}
