// Command runs measures issue 8's run figures against real controller
// processes and simulated agents (bench/runs/simagent: agent/enroll and
// agent/session over real gRPC and mutual TLS, answering each noop at
// once from memory):
//
//   - fan-out: one run of one noop step over -agents agents, from the
//     POST that starts it until the run is succeeded (target <= 2 s for
//     1,000 agents);
//   - throughput: -workers clients each starting a run over the
//     -tp-agents agents and waiting for it to end, again and again, for
//     -duration; the figure is attempts of succeeded runs per second
//     (target >= 2,000/s on one node, >= 1,000/s on three nodes with
//     PostgreSQL history).
//
// -cluster runs the same on a three-node cluster (deploy/local/cluster.sh,
// PostgreSQL history) instead of one embedded node.
//
// `make bench` runs it. The exit status is non-zero only when the
// benchmark could not do its job; a missed target is "not met" in the
// table.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/opsconductor/opsconductor/bench/internal/figure"
	"github.com/opsconductor/opsconductor/bench/internal/profile"
	"github.com/opsconductor/opsconductor/bench/internal/serverproc"
	"github.com/opsconductor/opsconductor/bench/runs/simagent"
	"github.com/opsconductor/opsconductor/controller/apiclient"
	"github.com/opsconductor/opsconductor/test/e2e/localcluster"
)

// Targets from issue 8.
const (
	targetFanout         = 2 * time.Second
	targetThroughput     = 2000.0 // attempts/s, one node
	targetThroughputHA   = 1000.0 // attempts/s, three nodes with PostgreSQL history
	fanoutTag, tpTag     = "fanout", "throughput"
	fanoutJob, tpJob     = "bench-fanout", "bench-throughput"
	defaultAgentCapacity = 32
)

type options struct {
	bin        string
	agents     int
	tpAgents   int
	workers    int
	duration   time.Duration
	fanoutRuns int
	capacity   int
	inFlight   int
	cluster    bool
	historyDSN string
	agentDir   string
	cpuProfile string
	keep       bool
	jsonPath   string
}

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "bin/opsconductor", "controller binary (make build)")
	flag.IntVar(&o.agents, "agents", 1000, "simulated agents; the fan-out run targets all of them")
	flag.IntVar(&o.tpAgents, "tp-agents", 100, "agents each throughput run targets (the first of -agents)")
	flag.IntVar(&o.workers, "workers", 8, "throughput clients, each starting a run and waiting for it to end, again and again")
	flag.DurationVar(&o.duration, "duration", 20*time.Second, "throughput window (after a warm-up of a quarter of it)")
	flag.IntVar(&o.fanoutRuns, "fanout-runs", 3, "fan-out runs, one after another")
	flag.IntVar(&o.capacity, "agent-capacity", 0, "the controller's --agent-capacity (0: enough for every worker's run at once)")
	flag.IntVar(&o.inFlight, "enrol-in-flight", 32, "enrolments in flight at once")
	flag.BoolVar(&o.cluster, "cluster", false, "three nodes with PostgreSQL history (deploy/local/cluster.sh) instead of one embedded node")
	flag.StringVar(&o.historyDSN, "history-dsn", "", "with -cluster: PostgreSQL server for the history database (default: cluster.sh's, the local test database)")
	flag.StringVar(&o.agentDir, "agent-dir", "", "parent of the agents' data dirs (default: the temporary directory); a tmpfs such as /dev/shm keeps the agents' fsyncs at enrolment off the controller's disk")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write this driver's CPU profile to the file (to tell the driver's cost from the controller's)")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory (controller logs, agent identities)")
	flag.StringVar(&o.jsonPath, "json", "", "also write the figures as JSON to this file (for bench/report)")
	flag.Parse()
	if o.agents < 1 || o.tpAgents < 1 || o.tpAgents > o.agents || o.workers < 1 || o.fanoutRuns < 0 || o.duration <= 0 {
		fmt.Fprintln(os.Stderr, "runs: want -agents >= 1, 1 <= -tp-agents <= -agents, -workers >= 1, -fanout-runs >= 0, -duration > 0")
		os.Exit(2)
	}
	if o.capacity == 0 {
		o.capacity = max(defaultAgentCapacity, 2*o.workers)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	stopProfile, err := profile.StartCPU("runs", o.cpuProfile)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	defer stopProfile()
	if err := run(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "runs:", err)
		stop()
		stopProfile()
		os.Exit(1)
	}
}

// controller is what the scenarios need of the controller under test.
type controller struct {
	admin *apiclient.Client
	// httpAddr is the leader's API address, for /metrics.
	httpAddr   string
	agentAddrs []string
	pids       func() []int // for CPU figures
	setup      string
}

func run(ctx context.Context, o options, out io.Writer) (err error) {
	dir, err := os.MkdirTemp("", "bench-runs-")
	if err != nil {
		return err
	}
	defer func() {
		if o.keep || err != nil {
			fmt.Fprintf(os.Stderr, "runs: kept %s\n", dir)
			return
		}
		os.RemoveAll(dir)
	}()
	if o.bin, err = filepath.Abs(o.bin); err != nil {
		return err
	}
	// Rate limits off (this measures runs, not the API's per-client
	// limit); warn-level logs, since info lines per run and per agent
	// would measure the log writer.
	flags := []string{"--rate-read", "inf", "--rate-write", "inf", "--log-level", "warn",
		"--agent-capacity", strconv.Itoa(o.capacity), "--max-active-runs", strconv.Itoa(max(500, 4*o.workers))}
	var c controller
	setupCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if o.cluster {
		stopCluster, cerr := startCluster(setupCtx, o, dir, flags, &c)
		if cerr != nil {
			return cerr
		}
		defer func() { err = errors.Join(err, stopCluster(err)) }()
	} else {
		srv, serr := serverproc.Start(serverproc.Config{Bin: o.bin, Dir: dir, Args: flags})
		if serr != nil {
			return serr
		}
		defer func() {
			if serr := srv.Stop(30 * time.Second); serr != nil {
				err = errors.Join(err, serr)
			}
		}()
		fmt.Fprintf(os.Stderr, "waiting for the controller at %s…\n", srv.HTTPAddr)
		if c.admin, err = srv.Admin(setupCtx); err != nil {
			return err
		}
		c.httpAddr = srv.HTTPAddr
		c.agentAddrs, c.pids, c.setup = []string{srv.AgentAddr}, func() []int { return []int{srv.Pid()} }, "1 node, embedded history"
	}

	agentsDir := filepath.Join(dir, "agents")
	if o.agentDir != "" {
		if agentsDir, err = os.MkdirTemp(o.agentDir, "bench-runs-agents-"); err != nil {
			return err
		}
		defer os.RemoveAll(agentsDir)
	}
	fmt.Fprintf(os.Stderr, "enrolling %d agents…\n", o.agents)
	fl, err := simagent.Enrol(ctx, simagent.Config{Admin: c.admin, Addrs: c.agentAddrs, Dir: agentsDir, N: o.agents, InFlight: o.inFlight,
		Name: func(i int) string { return fmt.Sprintf("bench-%05d", i) },
		Tags: func(i int) map[string]string {
			t := map[string]string{"bench": fanoutTag}
			if i < o.tpAgents {
				t["load"] = tpTag
			}
			return t
		}})
	if err != nil {
		return err
	}
	defer fl.Close()
	fmt.Fprintf(os.Stderr, "enrolled %d in %.1f s; connecting…\n", o.agents, fl.Enrolled.Seconds())
	if err := fl.Connect(ctx, c.agentAddrs, 250, 2*time.Minute); err != nil {
		return err
	}
	if err := waitConnected(ctx, c, o.agents); err != nil {
		return err
	}

	for _, j := range []struct{ name, tags string }{{fanoutJob, "{bench: " + fanoutTag + "}"}, {tpJob, "{load: " + tpTag + "}"}} {
		def := fmt.Sprintf("name: %s\ntargets: {tags: %s}\nsteps:\n  - id: noop\n    uses: noop\n", j.name, j.tags)
		if _, err := c.admin.PutJob(ctx, j.name, []byte(def)); err != nil {
			return fmt.Errorf("put job %s: %w", j.name, err)
		}
	}

	var fan []runTiming
	fanRaft0, err := scrapeRaft(ctx, c.httpAddr)
	if err != nil {
		return err
	}
	for i := range o.fanoutRuns {
		fl.ResetAnswerTimes()
		t0 := time.Now()
		t, err := oneRun(ctx, c.admin, fanoutJob, o.agents)
		if err != nil {
			return fmt.Errorf("fan-out run %d: %w", i+1, err)
		}
		first, last := fl.AnswerTimes()
		t.firstAnswer, t.lastAnswer = first.Sub(t0), last.Sub(t0)
		fmt.Fprintf(os.Stderr, "fan-out run %d/%d over %d agents: %.0f ms (created %.0f ms, first answer %.0f ms, last answer %.0f ms, finished_at %.0f ms)\n",
			i+1, o.fanoutRuns, o.agents, ms(t.seen), ms(t.created), ms(t.firstAnswer), ms(t.lastAnswer), ms(t.finished))
		fan = append(fan, t)
	}
	fanRaft1, err := scrapeRaft(ctx, c.httpAddr)
	if err != nil {
		return err
	}
	tp, err := throughput(ctx, c, fl, o)
	if err != nil {
		return err
	}
	if n := fl.Refused(); n > 0 {
		return fmt.Errorf("the agents were sent %d assignments of a kind other than noop", n)
	}

	target, tpTarget := "1 node", targetThroughput
	if o.cluster {
		target, tpTarget = "3 nodes", targetThroughputHA
	}
	var figs []figure.Figure
	fmt.Fprintln(out, "| figure | value | target |")
	fmt.Fprintln(out, "|---|---|---|")
	fmt.Fprintf(out, "| setup | %s; %d simulated agents over gRPC/mTLS (enrolled in %.1f s); --agent-capacity %d | — |\n",
		c.setup, o.agents, fl.Enrolled.Seconds(), o.capacity)
	if len(fan) > 0 {
		seen := make([]time.Duration, len(fan))
		var cells, phases []string
		for i, t := range fan {
			seen[i] = t.seen
			cells = append(cells, fmt.Sprintf("%.0f", ms(t.seen)))
			phases = append(phases, fmt.Sprintf("%.0f / %.0f / %.0f / %.0f", ms(t.created), ms(t.firstAnswer), ms(t.lastAnswer), ms(t.finished)))
		}
		// The verdict is on the median run: the first run of a fresh
		// controller also pays one-off costs (the job version parsed,
		// the agents' first assignments), shown beside it.
		med := slices.Sorted(slices.Values(seen))[(len(seen)-1)/2]
		// The bound is for 1,000 agents; a smaller run (make
		// bench QUICK=1) is reported without one.
		var fanTarget *figure.Target
		if o.agents >= 1000 {
			fanTarget = figure.AtMost(targetFanout.Seconds())
		}
		figs = append(figs, figure.New(fmt.Sprintf("fan-out: one run over %d agents, POST → succeeded, median", o.agents), med.Seconds(), "s", fanTarget).
			WithNote("%d runs: %s ms", len(fan), strings.Join(cells, ", ")))
		fmt.Fprintf(out, "| fan-out: one run, one noop step over %d agents, POST → run succeeded seen on its stream (each run) | %s ms (median %.2f s) | <= 2 s for 1,000: %s |\n",
			o.agents, strings.Join(cells, ", "), med.Seconds(), verdict(o.agents >= 1000 && med <= targetFanout))
		fmt.Fprintf(out, "| fan-out: the leader's Raft entries per run / commands per entry / mean Apply wait | %s | — |\n",
			fanRaft1.sub(fanRaft0).per(len(fan)))
		fmt.Fprintf(out, "| fan-out phases since the POST: created / first agent answered / last agent answered / run finished_at (ms, each run) | %s | — |\n",
			strings.Join(phases, "; "))
	}
	fmt.Fprintf(out, "| throughput (%s): %d clients × runs over %d agents, 1 noop step, for %s | %.0f attempts/s (%d runs, %d attempts; agents answered %.0f/s) | >= %.0f/s: %s |\n",
		target, o.workers, o.tpAgents, o.duration, tp.rate, tp.runs, tp.attempts, tp.answeredRate, tpTarget, verdict(tp.rate >= tpTarget))
	fmt.Fprintf(out, "| run latency under that load: POST → succeeded | p50 %.0f ms, p99 %.0f ms | — |\n", ms(tp.p50), ms(tp.p99))
	fmt.Fprintf(out, "| throughput: the leader's Raft entries per run / commands per entry / mean Apply wait | %s | — |\n", tp.raft.per(tp.runs))
	fmt.Fprintf(out, "| controller CPU during the window | %.0f%% of one core (this driver and its agents: %.0f%%) | — |\n", tp.cpu, tp.driverCPU)
	figs = append(figs,
		figure.New(fmt.Sprintf("sustained throughput, %s", target), tp.rate, "attempts/s", figure.AtLeast(tpTarget)).
			WithNote("%d clients × runs over %d agents for %s; %s", o.workers, o.tpAgents, o.duration, c.setup),
		figure.New(fmt.Sprintf("run latency under sustained load (%s), p50", target), ms(tp.p50), "ms", nil),
		figure.New(fmt.Sprintf("run latency under sustained load (%s), p99", target), ms(tp.p99), "ms", nil),
		figure.New(fmt.Sprintf("controller CPU under sustained load (%s)", target), tp.cpu, "% of a core", nil))
	return figure.Write(o.jsonPath, figs)
}

// startCluster brings up three nodes with cluster.sh, PostgreSQL history.
func startCluster(ctx context.Context, o options, dir string, flags []string, c *controller) (func(error) error, error) {
	root, err := localcluster.RepoRoot(ctx)
	if err != nil {
		return nil, err
	}
	base, err := localcluster.FreeBasePort(rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0)))
	if err != nil {
		return nil, err
	}
	cdir := filepath.Join(dir, "cluster")
	lc, err := localcluster.New(root, o.bin, cdir, base, nil)
	if err != nil {
		return nil, err
	}
	lc.ServerFlags, lc.HistoryDSN = strings.Join(flags, " "), o.historyDSN
	fmt.Fprintf(os.Stderr, "starting a 3-node cluster in %s (ports %d-%d)…\n", cdir, base, base+22)
	stop := func(runErr error) error {
		dctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if runErr == nil && !o.keep {
			return lc.Purge(dctx)
		}
		return lc.Down(dctx)
	}
	if err := lc.Up(ctx); err != nil {
		return nil, errors.Join(err, stop(err))
	}
	leader, err := lc.WaitLeader(ctx, localcluster.All())
	if err != nil {
		return nil, errors.Join(err, stop(err))
	}
	c.admin, c.httpAddr = lc.Client(leader), lc.HTTPAddr(leader)
	for i := range 3 {
		c.agentAddrs = append(c.agentAddrs, net.JoinHostPort("127.0.0.1", strconv.Itoa(base+10*i+1)))
	}
	c.setup = "3 nodes, PostgreSQL history"
	c.pids = func() []int {
		var pids []int
		for _, n := range localcluster.All() {
			raw, err := os.ReadFile(filepath.Join(cdir, fmt.Sprintf("node%d.pid", n)))
			if p, perr := strconv.Atoi(strings.TrimSpace(string(raw))); err == nil && perr == nil {
				pids = append(pids, p)
			}
		}
		return pids
	}
	return stop, nil
}

// waitConnected waits until the leader lists every agent up.
func waitConnected(ctx context.Context, c controller, n int) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		agents, err := c.admin.AllAgents(ctx)
		up := 0
		for _, a := range agents {
			if a.Status == "up" {
				up++
			}
		}
		if err == nil && up >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d agents up (last error: %v): %w", up, n, err, ctx.Err())
		case <-t.C:
		}
	}
}

// runTiming is one run: until the client saw it succeeded, and until
// the controller's finished_at (driver and controller share this
// machine's clock).
type runTiming struct {
	created, seen, finished time.Duration
	// firstAnswer and lastAnswer are the fleet's first and last noop
	// answered since the POST (fan-out runs only; zero otherwise).
	firstAnswer, lastAnswer time.Duration
}

// oneRun starts a run of job and waits on its stream until it ends; it
// must succeed with every one of its want targets.
func oneRun(ctx context.Context, c *apiclient.Client, job string, want int) (runTiming, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	t0 := time.Now()
	r, err := c.StartRun(ctx, job, apiclient.RunRequest{})
	if err != nil {
		return runTiming{}, fmt.Errorf("start a run of %s: %w", job, err)
	}
	created := time.Since(t0)
	st, err := c.WaitRunEnd(ctx, r)
	seen := time.Since(t0)
	if err != nil {
		return runTiming{}, err
	}
	if st.Status != apiclient.RunSucceeded {
		return runTiming{}, fmt.Errorf("run %s ended %s (%s)", r.ID, st.Status, st.Reason)
	}
	if r.Summary.Targets != want {
		return runTiming{}, fmt.Errorf("run %s has %d targets, want %d", r.ID, r.Summary.Targets, want)
	}
	t := runTiming{seen: seen, created: created}
	if st.FinishedAt != nil {
		t.finished = st.FinishedAt.Sub(t0)
	}
	return t, nil
}

type tpFigures struct {
	raft               raftStats
	rate, answeredRate float64
	runs, attempts     int
	p50, p99           time.Duration
	cpu, driverCPU     float64
}

// throughput keeps o.workers runs going for a warm-up and then for
// o.duration, and counts the attempts of the runs that ended inside
// the window.
func throughput(ctx context.Context, c controller, fl *simagent.Fleet, o options) (tpFigures, error) {
	warm := o.duration / 4
	fmt.Fprintf(os.Stderr, "throughput: %d clients, runs over %d agents, %s warm-up then %s…\n", o.workers, o.tpAgents, warm, o.duration)
	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		mu        sync.Mutex
		lat       []time.Duration
		runs      int
		measuring atomic.Bool
	)
	var wg sync.WaitGroup
	for range o.workers {
		wg.Go(func() {
			for wctx.Err() == nil {
				counted := measuring.Load()
				t, err := oneRun(wctx, c.admin, tpJob, o.tpAgents)
				if err != nil {
					if wctx.Err() == nil {
						cancel(err)
					}
					return
				}
				// A run counts when it both started and ended inside
				// the window: the figure then never credits the warm-up.
				if counted && measuring.Load() {
					mu.Lock()
					lat = append(lat, t.seen)
					runs++
					mu.Unlock()
				}
			}
		})
	}
	wait := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-wctx.Done():
			return false
		case <-t.C:
			return true
		}
	}
	if !wait(warm) {
		cancel(nil)
		wg.Wait()
		return tpFigures{}, context.Cause(wctx)
	}
	cpu0, err := cpuTimes(c.pids())
	if err != nil {
		cancel(nil)
		wg.Wait()
		return tpFigures{}, err
	}
	self0, _ := serverproc.CPUTime(os.Getpid())
	raft0, rerr := scrapeRaft(ctx, c.httpAddr)
	a0 := fl.Answered()
	t0 := time.Now()
	measuring.Store(true)
	ok := wait(o.duration)
	measuring.Store(false)
	window := time.Since(t0)
	a1 := fl.Answered()
	cpu1, cerr := cpuTimes(c.pids())
	self1, _ := serverproc.CPUTime(os.Getpid())
	raft1, rerr1 := scrapeRaft(ctx, c.httpAddr)
	cancel(nil)
	wg.Wait()
	if !ok {
		return tpFigures{}, context.Cause(wctx)
	}
	if err := errors.Join(cerr, rerr, rerr1); err != nil {
		return tpFigures{}, err
	}
	slices.Sort(lat)
	f := tpFigures{raft: raft1.sub(raft0), runs: runs, attempts: runs * o.tpAgents, answeredRate: float64(a1-a0) / window.Seconds(),
		cpu: 100 * float64(cpu1-cpu0) / float64(window), driverCPU: 100 * float64(self1-self0) / float64(window)}
	f.rate = float64(f.attempts) / window.Seconds()
	if len(lat) > 0 {
		f.p50, f.p99 = lat[(len(lat)-1)/2], lat[(len(lat)-1)*99/100]
	}
	return f, nil
}

// raftStats are the leader's Raft write counters from /metrics: entries
// the batcher formed, the commands in them, and Apply calls with the
// seconds they waited (batching, fsync and FSM apply included).
type raftStats struct {
	entries, commands, applies, applySeconds float64
}

func (a raftStats) sub(b raftStats) raftStats {
	return raftStats{a.entries - b.entries, a.commands - b.commands, a.applies - b.applies, a.applySeconds - b.applySeconds}
}

// per renders the counters per run.
func (a raftStats) per(runs int) string {
	if runs == 0 || a.entries == 0 || a.applies == 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f entries / %.0f commands / %.1f ms (%d runs: %.0f entries, %.0f Apply calls)",
		a.entries/float64(runs), a.commands/a.entries, 1000*a.applySeconds/a.applies, runs, a.entries, a.applies)
}

// scrapeRaft reads the Raft write counters from a node's /metrics.
func scrapeRaft(ctx context.Context, addr string) (raftStats, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return raftStats{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return raftStats{}, fmt.Errorf("GET /metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return raftStats{}, fmt.Errorf("GET /metrics: status %d", resp.StatusCode)
	}
	var st raftStats
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			continue
		}
		// Labels (the apply outcome) are summed over.
		if i := strings.IndexByte(name, '{'); i >= 0 {
			name = name[:i]
		}
		switch name {
		case "opsconductor_raft_batch_commands_count":
			st.entries += v
		case "opsconductor_raft_batch_commands_sum":
			st.commands += v
		case "opsconductor_raft_apply_duration_seconds_count":
			st.applies += v
		case "opsconductor_raft_apply_duration_seconds_sum":
			st.applySeconds += v
		}
	}
	if err := sc.Err(); err != nil {
		return raftStats{}, fmt.Errorf("read /metrics: %w", err)
	}
	return st, nil
}

// cpuTimes sums the CPU time of pids.
func cpuTimes(pids []int) (time.Duration, error) {
	var sum time.Duration
	for _, p := range pids {
		d, err := serverproc.CPUTime(p)
		if err != nil {
			return 0, err
		}
		sum += d
	}
	return sum, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "not met"
}
