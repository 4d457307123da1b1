package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/opsconductor/opsconductor/controller/apiclient"
	"github.com/opsconductor/opsconductor/internal/faultproxy"
)

// faultKind is one kind of fault the storm injects.
type faultKind int

const (
	killLeader    faultKind = iota // SIGKILL the leader; restart it after hold
	killFollower                   // SIGKILL a follower; restart it after hold
	cutController                  // cut one controller's Raft and API proxies for hold
	partitionAll                   // cut every controller-to-controller link for hold
	killAgents                     // SIGKILL a few agents; restart them after hold
	cutAgentLink                   // cut one controller's agent proxy for hold
	restartPG                      // restart the private PostgreSQL
)

func (k faultKind) String() string {
	return [...]string{"kill-leader", "kill-follower", "cut-controller", "partition-all", "kill-agents", "cut-agent-link", "restart-postgres"}[k]
}

// controllerFault says whether a kind takes a controller out. The plan
// keeps at most one such fault at a time, so that two of three servers
// always remain able to form a quorum once the fault in progress heals:
// the storm tests recovery, not a cluster that cannot have a leader.
func (k faultKind) controllerFault() bool { return k <= partitionAll }

// fault is one planned fault.
type fault struct {
	at   time.Duration // from the start of the fault period
	kind faultKind
	hold time.Duration // how long the process stays down or the link cut
	node int           // cutController, cutAgentLink: 1..3
	pick int           // killFollower: which of the live followers
	// agents are the indexes of the agents killAgents kills.
	agents []int
	mode   faultproxy.Mode
	pgMode string // restartPG: "fast" or "immediate"
}

func (f fault) String() string {
	switch f.kind {
	case killLeader:
		return fmt.Sprintf("%s, restart after %v", f.kind, f.hold)
	case killFollower:
		return fmt.Sprintf("%s #%d, restart after %v", f.kind, f.pick, f.hold)
	case cutController, cutAgentLink:
		return fmt.Sprintf("%s node%d (%s) for %v", f.kind, f.node, f.mode, f.hold)
	case partitionAll:
		return fmt.Sprintf("%s (%s) for %v", f.kind, f.mode, f.hold)
	case killAgents:
		return fmt.Sprintf("%s %v, restart after %v", f.kind, f.agents, f.hold)
	case restartPG:
		return fmt.Sprintf("%s -m %s", f.kind, f.pgMode)
	}
	return f.kind.String()
}

// plan draws the whole fault schedule from the seed, before anything
// runs, so that a seed names one schedule whatever the cluster does.
func plan(seed int64, period time.Duration, agents int) []fault {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x6f7073636f6e64)) // "opscond"
	between := func(lo, hi time.Duration) time.Duration {
		return lo + time.Duration(rng.Int64N(int64(hi-lo)+1)).Truncate(100*time.Millisecond)
	}
	weights := []struct {
		kind faultKind
		w    int
	}{{killLeader, 2}, {killFollower, 2}, {cutController, 2}, {partitionAll, 1}, {killAgents, 3}, {cutAgentLink, 2}, {restartPG, 1}}
	var out []fault
	var ctlBusy, agentLinkBusy time.Duration
	// The first fault comes after the workload has had a few seconds;
	// the last one starts early enough to end inside the period.
	for at := between(2*time.Second, 4*time.Second); at < period-2*time.Second; at += between(2*time.Second, 6*time.Second) {
		var choices []faultKind
		for _, w := range weights {
			if w.kind.controllerFault() && at < ctlBusy || w.kind == cutAgentLink && at < agentLinkBusy {
				continue
			}
			for range w.w {
				choices = append(choices, w.kind)
			}
		}
		f := fault{at: at, kind: choices[rng.IntN(len(choices))]}
		f.mode = faultproxy.Mode(rng.IntN(2))
		switch f.kind {
		case killLeader, killFollower:
			f.hold = between(2*time.Second, 8*time.Second)
			f.pick = rng.IntN(2)
		case cutController:
			f.hold = between(2*time.Second, 8*time.Second)
			f.node = 1 + rng.IntN(nodes)
		case partitionAll:
			f.hold = between(2*time.Second, 5*time.Second)
		case killAgents:
			f.hold = between(1*time.Second, 6*time.Second)
			f.agents = append(f.agents, rng.Perm(agents)[:min(agents, 1+rng.IntN(3))]...)
			slices.Sort(f.agents)
		case cutAgentLink:
			f.hold = between(2*time.Second, 8*time.Second)
			f.node = 1 + rng.IntN(nodes)
		case restartPG:
			f.pgMode = []string{"fast", "immediate"}[rng.IntN(2)]
		}
		if f.kind.controllerFault() {
			// A restarted server needs a moment to rejoin before the next
			// controller fault may land.
			ctlBusy = at + f.hold + 3*time.Second
		}
		if f.kind == cutAgentLink {
			agentLinkBusy = at + f.hold
		}
		out = append(out, f)
	}
	return out
}

// storm runs the workload and the faults, then heals everything.
type storm struct {
	rig *rig
	cfg config

	mu sync.Mutex
	// acked are the runs the API acknowledged; startErrors counts the
	// start requests that failed (the run may or may not exist: the checks
	// list the job's runs to find every one).
	acked       []string
	startErrors int
	errSamples  []string
	// refused are start requests answered with a 4xx: with valid
	// credentials and a valid job, no fault may turn a request into a
	// client error (a node that does not know the token yet must say it
	// is unavailable, not that the token is invalid).
	refused []string
	faults  map[faultKind]int
	// killed records every controller process that was killed.
	killed map[int]bool
	// baseline is the protected node's figures after the warm-up.
	baseline procFigures
	// protected is the one server never killed, so that the leak check
	// has a process that lived through the whole storm.
	protected int
	// afterHeal is a run started once everything was healed: a cluster
	// that recovered runs it on every agent.
	afterHeal string
}

const ledgerJobName = "chaos-ledger"

// ledgerLines is how many numbered lines each attempt prints.
const ledgerLines = 50

// ledgerJob appends its run and target to the target's ledger file before
// anything else, then prints numbered lines over about 2.5 s, so that
// kills and cuts land mid-step. The step is not idempotent (the default),
// so the controllers must never run it twice for one run and target,
// whatever fails.
func ledgerJob(dir string) string {
	return fmt.Sprintf(`name: %s
targets: {tags: {pool: chaos}}
steps:
  - id: work
    uses: shell
    timeout: 2m
    with:
      command: >-
        echo "${{ run.id }} ${{ target.name }}" >> '%s/${{ target.name }}.ledger';
        i=1; while [ $i -le %d ]; do echo "line $i"; if [ $((i %% 10)) -eq 0 ]; then sleep 0.5; fi; i=$((i+1)); done
`, ledgerJobName, dir, ledgerLines)
}

func (s *storm) run(ctx context.Context) error {
	r := s.rig
	s.faults = map[faultKind]int{}
	s.killed = map[int]bool{}
	leader, err := r.waitLeader(ctx, 30*time.Second)
	if err != nil {
		return err
	}
	if _, err := r.ctl(leader).client.PutJob(ctx, ledgerJobName, []byte(ledgerJob(r.ledgerDir))); err != nil {
		return fmt.Errorf("save job %s: %w", ledgerJobName, err)
	}
	// Warm-up: one run over the whole fleet, so that every pool, stream
	// and cache a busy node keeps exists before the leak baseline.
	warm, err := r.ctl(leader).client.StartRun(ctx, ledgerJobName, apiclient.RunRequest{})
	if err != nil {
		return fmt.Errorf("start the warm-up run: %w", err)
	}
	s.acked = append(s.acked, warm.ID)
	if err := s.waitRuns(ctx, []string{warm.ID}, 2*time.Minute); err != nil {
		return fmt.Errorf("warm-up run: %w", err)
	}
	s.protected = 1 + int(uint64(s.cfg.seed)%nodes)
	if s.baseline, err = s.quietFigures(ctx, s.protected); err != nil {
		return fmt.Errorf("leak baseline: %w", err)
	}
	r.log.printf("warm-up run %s finished; node%d's baseline: %d goroutines, %d open fds", warm.ID, s.protected,
		s.baseline.goroutines, s.baseline.fds)
	faults := plan(s.cfg.seed, s.cfg.duration, r.agentsN)
	r.log.printf("node%d is never killed (its links are cut like the others'): the leak check compares it with that baseline", s.protected)
	r.log.printf("fault period starts: %d faults planned over %v, a run every %v", len(faults), s.cfg.duration, s.cfg.runEvery)
	periodCtx, endPeriod := context.WithTimeout(ctx, s.cfg.duration)
	defer endPeriod()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); s.workload(periodCtx) }()

	start := time.Now()
	var restores sync.WaitGroup
	for _, f := range faults {
		if err := sleepUntil(periodCtx, start.Add(f.at)); err != nil {
			break
		}
		s.inject(ctx, f, &restores)
	}
	<-periodCtx.Done()
	wg.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	r.log.printf("fault period over: waiting for pending restores, then healing everything")
	restores.Wait()
	if err := s.healAll(ctx); err != nil {
		return err
	}
	err = poll(ctx, 30*time.Second, time.Second, func(ctx context.Context) error {
		run, err := r.anyClient(ctx).StartRun(ctx, ledgerJobName, apiclient.RunRequest{})
		if err == nil {
			s.afterHeal = run.ID
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("start a run after healing: %w", err)
	}
	s.mu.Lock()
	s.acked = append(s.acked, s.afterHeal)
	s.mu.Unlock()
	s.mu.Lock()
	r.log.printf("workload: %d runs acknowledged, %d start requests failed (samples: %s)", len(s.acked), s.startErrors, strings.Join(s.errSamples, " | "))
	r.log.printf("faults injected: %v", s.faults)
	s.mu.Unlock()
	return nil
}

func sleepUntil(ctx context.Context, t time.Time) error {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// workload starts a run over the whole fleet every runEvery, on a random
// controller, until ctx ends.
func (s *storm) workload(ctx context.Context) {
	rng := rand.New(rand.NewPCG(uint64(s.cfg.seed), 1))
	t := time.NewTicker(s.cfg.runEvery)
	defer t.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n := 1 + rng.IntN(nodes)
		wg.Add(1)
		// A start may wait out an election (--apply-hold), so each runs
		// on its own and the cadence holds.
		go func() {
			defer wg.Done()
			rctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			run, err := s.rig.ctl(n).client.StartRun(rctx, ledgerJobName, apiclient.RunRequest{})
			s.mu.Lock()
			defer s.mu.Unlock()
			if err != nil {
				s.startErrors++
				var apiErr *apiclient.Error
				if errors.As(err, &apiErr) && apiErr.Status >= 400 && apiErr.Status < 500 {
					s.refused = append(s.refused, fmt.Sprintf("%s node%d: %v", time.Now().UTC().Format("15:04:05.000"), n, err))
				}
				if len(s.errSamples) < 3 {
					s.errSamples = append(s.errSamples, fmt.Sprintf("node%d: %v", n, err))
				}
				return
			}
			s.acked = append(s.acked, run.ID)
		}()
	}
}

// inject carries out one fault and schedules its end.
func (s *storm) inject(ctx context.Context, f fault, restores *sync.WaitGroup) {
	r := s.rig
	s.mu.Lock()
	s.faults[f.kind]++
	s.mu.Unlock()
	later := func(what string, do func()) {
		restores.Add(1)
		go func() {
			defer restores.Done()
			t := time.NewTimer(f.hold)
			defer t.Stop()
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			do()
			r.log.printf("  end of fault: %s", what)
		}()
	}
	switch f.kind {
	case killLeader, killFollower:
		live := r.liveControllers()
		lctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		l, _, err := r.leader(lctx, live)
		cancel()
		if err != nil {
			r.log.printf("FAULT %s: skipped, no agreed leader (%v)", f, err)
			return
		}
		victim := l
		if f.kind == killLeader && l == s.protected {
			// Hand leadership on first, so that a leader is still what dies.
			nl, err := s.transferFrom(ctx, l)
			if err != nil {
				r.log.printf("FAULT %s: skipped, node%d (never killed) leads and would not hand over: %v", f, l, err)
				return
			}
			r.log.printf("  node%d (never killed) led: leadership handed to node%d first", l, nl)
			victim = nl
		}
		if f.kind == killFollower {
			var followers []int
			for _, n := range live {
				if n != l && n != s.protected {
					followers = append(followers, n)
				}
			}
			if len(followers) == 0 {
				r.log.printf("FAULT %s: skipped, no live follower", f)
				return
			}
			victim = followers[f.pick%len(followers)]
		}
		c := r.ctl(victim)
		pid := c.proc.kill()
		s.mu.Lock()
		s.killed[victim] = true
		s.mu.Unlock()
		r.log.printf("FAULT %s: SIGKILL node%d (pid %d, leader was node%d)", f, victim, pid, l)
		later(fmt.Sprintf("restart node%d", victim), func() { s.restartController(c) })
	case cutController:
		c := r.ctl(f.node)
		c.raftProxy.Cut(f.mode)
		c.httpProxy.Cut(f.mode)
		r.log.printf("FAULT %s: node%d's Raft and API proxies cut", f, f.node)
		later(fmt.Sprintf("heal node%d's controller links", f.node), func() { c.raftProxy.Heal(); c.httpProxy.Heal() })
	case partitionAll:
		for _, c := range r.controllers {
			c.raftProxy.Cut(f.mode)
			c.httpProxy.Cut(f.mode)
		}
		r.log.printf("FAULT %s: every controller-to-controller link cut", f)
		later("heal every controller link", func() {
			for _, c := range r.controllers {
				c.raftProxy.Heal()
				c.httpProxy.Heal()
			}
		})
	case cutAgentLink:
		c := r.ctl(f.node)
		c.agentProxy.Cut(f.mode)
		r.log.printf("FAULT %s: node%d's agent proxy cut", f, f.node)
		later(fmt.Sprintf("heal node%d's agent link", f.node), c.agentProxy.Heal)
	case killAgents:
		var killed []*agent
		for _, i := range f.agents {
			a := r.agents[i]
			if a.proc.running() {
				a.proc.kill()
				killed = append(killed, a)
			}
		}
		var names []string
		for _, a := range killed {
			names = append(names, a.name)
		}
		r.log.printf("FAULT %s: SIGKILL %s", f, strings.Join(names, ", "))
		later("restart "+strings.Join(names, ", "), func() {
			for _, a := range killed {
				if err := a.proc.start(); err != nil {
					r.log.printf("restart %s: %v", a.name, err)
				}
			}
		})
	case restartPG:
		r.log.printf("FAULT %s: restarting PostgreSQL", f)
		began := time.Now()
		if err := r.pg.restart(ctx, f.pgMode); err != nil {
			r.log.printf("PostgreSQL restart failed: %v", err)
			return
		}
		r.log.printf("  end of fault: PostgreSQL back after %v", time.Since(began).Round(time.Millisecond))
	}
}

func (r *rig) liveControllers() []int {
	var out []int
	for _, c := range r.controllers {
		if c.proc.running() {
			out = append(out, c.n)
		}
	}
	return out
}

// quietFigures measures node n's goroutines and open files in the same
// conditions each time, so that the figures before and after the storm
// compare: n a follower (a leader runs replication and dispatch that a
// follower does not), no agent connected anywhere (streams are long-lived
// and land on whichever node), and the counts settled. The agents are
// started again afterwards.
func (s *storm) quietFigures(ctx context.Context, n int) (procFigures, error) {
	r := s.rig
	l, err := r.waitLeader(ctx, 30*time.Second)
	if err != nil {
		return procFigures{}, err
	}
	if l == n {
		if _, err := s.transferFrom(ctx, n); err != nil {
			return procFigures{}, fmt.Errorf("move leadership off node%d: %w", n, err)
		}
	}
	var wg sync.WaitGroup
	for _, a := range r.agents {
		wg.Add(1)
		go func() { defer wg.Done(); a.proc.stop(15 * time.Second) }()
	}
	wg.Wait()
	// Settled: the same goroutine count on three reads a second apart.
	var f procFigures
	last, same := -1, 0
	err = poll(ctx, 30*time.Second, time.Second, func(ctx context.Context) error {
		var err error
		if f, err = r.figures(ctx, n); err != nil {
			return err
		}
		if f.leader {
			return fmt.Errorf("node%d leads again", n)
		}
		if f.goroutines == last {
			same++
		} else {
			last, same = f.goroutines, 0
		}
		if same < 2 {
			return fmt.Errorf("node%d's goroutines still moving (%d)", n, f.goroutines)
		}
		return nil
	})
	if err != nil {
		return f, err
	}
	for _, a := range r.agents {
		if err := a.proc.start(); err != nil {
			return f, err
		}
	}
	return f, r.waitAgentsUp(ctx, 60*time.Second)
}

// transferFrom asks leader n to hand leadership to another server and
// returns the new leader.
func (s *storm) transferFrom(ctx context.Context, n int) (int, error) {
	r := s.rig
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := r.ctl(n).client.TransferLeadership(tctx); err != nil {
		return 0, err
	}
	var nl int
	err := poll(ctx, 10*time.Second, 100*time.Millisecond, func(ctx context.Context) error {
		l, _, err := r.leader(ctx, r.liveControllers())
		if err == nil && l == n {
			err = fmt.Errorf("node%d still leads", n)
		}
		nl = l
		return err
	})
	return nl, err
}

// restartController starts a killed server again and waits until it
// answers /health, retrying a start that fails at once (its ports may
// take a moment to be free again).
func (s *storm) restartController(c *controller) {
	err := poll(context.Background(), 30*time.Second, 500*time.Millisecond, func(ctx context.Context) error {
		if !c.proc.running() {
			if err := c.proc.start(); err != nil {
				return err
			}
		}
		hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, err := c.anon().Health(hctx)
		return err
	})
	if err != nil {
		s.rig.log.printf("node%d does not come back: %v", c.n, err)
	}
}

// healAll heals every link, starts every process that is down, and waits
// for a leader all three agree on and for every agent to be connected.
func (s *storm) healAll(ctx context.Context) error {
	r := s.rig
	for _, c := range r.controllers {
		for _, px := range []*faultproxy.Proxy{c.raftProxy, c.httpProxy, c.agentProxy} {
			px.Heal()
		}
		if !c.proc.running() {
			s.restartController(c)
		}
	}
	for _, a := range r.agents {
		if !a.proc.running() {
			if err := a.proc.start(); err != nil {
				return err
			}
		}
	}
	l, err := r.waitLeader(ctx, 60*time.Second)
	if err != nil {
		return fmt.Errorf("after healing: %w", err)
	}
	if err := r.waitAgentsUp(ctx, 90*time.Second); err != nil {
		return fmt.Errorf("after healing, agents: %w", err)
	}
	r.log.printf("healed: node%d leads, every agent is up", l)
	return nil
}

// waitRuns waits until each run is in a terminal state.
func (s *storm) waitRuns(ctx context.Context, ids []string, limit time.Duration) error {
	done := map[string]bool{}
	return poll(ctx, limit, 500*time.Millisecond, func(ctx context.Context) error {
		var pending []string
		for _, id := range ids {
			if done[id] {
				continue
			}
			run, err := s.rig.anyClient(ctx).GetRun(ctx, id)
			if err != nil {
				return err
			}
			if run.Finished() {
				done[id] = true
				continue
			}
			pending = append(pending, fmt.Sprintf("%s %s (%s)", id, run.Status, run.Reason))
		}
		if len(pending) > 0 {
			if len(pending) > 3 {
				pending = append(pending[:3], fmt.Sprintf("and %d more", len(pending)-3))
			}
			return errors.New("runs not finished: " + strings.Join(pending, ", "))
		}
		return nil
	})
}

// anyClient returns the client of a live controller that answers /health.
func (r *rig) anyClient(ctx context.Context) *apiclient.Client {
	for _, n := range r.liveControllers() {
		hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := r.ctl(n).anon().Health(hctx)
		cancel()
		if err == nil {
			return r.ctl(n).client
		}
	}
	return r.ctl(1).client
}
