// Command agent measures the agent figures issue 5 names that one machine
// can show without thousands of simulated agents: the stripped agent
// binary's size, the idle RSS of `opsconductor-agent run`, and the command
// round trip (the API call that dispatches `true` → the result committed),
// through a single-node controller. `make bench` runs it.
//
// The client's round trip includes the create commit, starting the `true`
// process on the agent and the client's polling of the attempt (every
// millisecond), so it is an upper bound. The figure (assignment
// sent → result committed, excluding process start) comes from the
// leader's own summaries on /metrics, which time exactly that span.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/opsconductor/opsconductor/bench/internal/figure"
	"github.com/opsconductor/opsconductor/controller/apiclient"
)

const password = "bench-Harbour-lantern-42"

func main() {
	bin := flag.String("bin", "bin", "directory holding opsconductor and opsconductor-agent (make build)")
	n := flag.Int("n", 200, "round trips to time")
	outMiB := flag.Int("output-mib", 256, "MiB of output the throughput attempt prints")
	jsonPath := flag.String("json", "", "also write the figures as JSON to this file (for bench/report)")
	flag.Parse()
	if *n < 1 || *outMiB < 1 {
		fmt.Fprintln(os.Stderr, "agent bench: -n and -output-mib must be at least 1")
		os.Exit(2)
	}
	if err := run(*bin, *n, *outMiB, *jsonPath); err != nil {
		fmt.Fprintln(os.Stderr, "agent bench:", err)
		os.Exit(1)
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func run(bin string, n, outMiB int, jsonPath string) error {
	agentBin := filepath.Join(bin, "opsconductor-agent")
	info, err := os.Stat(agentBin)
	if err != nil {
		return fmt.Errorf("%w (run make build)", err)
	}
	dir, err := os.MkdirTemp("", "agentbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var ports [3]int
	for i := range ports {
		if ports[i], err = freePort(); err != nil {
			return err
		}
	}
	httpAddr := "127.0.0.1:" + strconv.Itoa(ports[0])
	agentAddr := "127.0.0.1:" + strconv.Itoa(ports[1])
	ctl := exec.Command(filepath.Join(bin, "opsconductor"), "server", "--data-dir", filepath.Join(dir, "data"), "--http-addr", httpAddr,
		"--agent-addr", agentAddr, "--raft-addr", "127.0.0.1:"+strconv.Itoa(ports[2]),
		"--rate-read", "inf", "--rate-write", "inf", "--log-level", "warn")
	ctl.Env = append(os.Environ(), "OPSCONDUCTOR_BOOTSTRAP_ADMIN_PASSWORD="+password)
	if err := startLogged(ctl, filepath.Join(dir, "controller.log")); err != nil {
		return err
	}
	defer stop(ctl)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	anon, err := apiclient.New(httpAddr)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "waiting for the controller at %s…\n", httpAddr)
	if err := anon.WaitReady(ctx, nil); err != nil {
		return err
	}
	tok, err := anon.Login(ctx, apiclient.LoginRequest{Username: "admin", Password: password})
	if err != nil {
		return err
	}
	c, err := apiclient.New(httpAddr, apiclient.WithToken(tok.AccessToken))
	if err != nil {
		return err
	}
	var jt apiclient.CreatedJoinToken
	for {
		if jt, err = c.CreateJoinToken(ctx, apiclient.CreateJoinTokenRequest{TTL: "10m"}); err == nil {
			break
		}
		if ctx.Err() != nil {
			return fmt.Errorf("create a join token: %w", err)
		}
		time.Sleep(100 * time.Millisecond) // the leader creates the agent CA just after start
	}
	agentDir := filepath.Join(dir, "agent")
	join := exec.CommandContext(ctx, agentBin, "join", "--controller", agentAddr, "--token", jt.Token, "--ca-pin", jt.CAPin,
		"--data-dir", agentDir, "--name", "bench")
	if out, err := join.CombinedOutput(); err != nil {
		return fmt.Errorf("join: %w\n%s", err, out)
	}
	agent := exec.Command(agentBin, "run", "--data-dir", agentDir, "--log-level", "warn")
	if err := startLogged(agent, filepath.Join(dir, "agent.log")); err != nil {
		return err
	}
	defer stop(agent)

	var id string
	fmt.Fprintln(os.Stderr, "waiting for the agent to be up…")
	for id == "" {
		page, err := c.ListAgents(ctx, "", 10)
		if err != nil {
			return err
		}
		for _, a := range page.Items {
			if a.Status == "up" {
				id = a.ID
			}
		}
		if id == "" {
			select {
			case <-ctx.Done():
				return errors.New("the agent never came up")
			case <-time.After(50 * time.Millisecond):
			}
		}
	}

	// Idle RSS: connected, heartbeating, nothing run yet.
	fmt.Fprintln(os.Stderr, "letting the agent idle for 5 s…")
	time.Sleep(5 * time.Second) // idle on purpose: this measures the resting footprint
	idle, err := rssKB(agent.Process.Pid)
	if err != nil {
		return err
	}

	fmt.Fprintf(os.Stderr, "timing %d round trips of `true`…\n", n)
	var rts []time.Duration
	for i := range n + 10 {
		start := time.Now()
		at, err := c.RunCommand(ctx, id, apiclient.CommandSpec{Argv: []string{"true"}})
		if err != nil {
			return err
		}
		for {
			got, err := c.GetAttempt(ctx, at.ID)
			if err != nil {
				return err
			}
			if got.Status == "succeeded" {
				break
			}
			if got.Status != "pending" && got.Status != "running" {
				return fmt.Errorf("attempt %s ended %s: %s", at.ID, got.Status, got.Error)
			}
			time.Sleep(time.Millisecond) // polling the API, as a client would
		}
		if i >= 10 { // the first few warm connections and caches
			rts = append(rts, time.Since(start))
		}
	}
	slices.Sort(rts)
	p50, p99 := rts[len(rts)/2], rts[len(rts)*99/100]

	after, err := rssKB(agent.Process.Pid)
	if err != nil {
		return err
	}
	verdict := func(ok bool) string {
		if ok {
			return "PASS"
		}
		return "FAIL"
	}
	size := float64(info.Size()) / (1 << 20)
	fmt.Println("| figure | value | target |")
	fmt.Println("|---|---|---|")
	fmt.Printf("| agent binary (stripped) | %.1f MB | <= 25 MB: %s |\n", size, verdict(size <= 25))
	fmt.Printf("| idle RSS of opsconductor-agent run (connected, nothing run yet) | %.1f MB | <= 20 MB: %s |\n", float64(idle)/1024, verdict(idle <= 20*1024))
	fmt.Printf("| RSS of opsconductor-agent run after the round trips | %.1f MB | — |\n", float64(after)/1024)
	fmt.Printf("| command round trip for `true` seen by an API client (POST → result committed, includes the create commit, process start and 1 ms polling), %d runs | p50 %.2f ms, p99 %.2f ms | — |\n",
		n, ms(p50), ms(p99))
	mbs, err := outputThroughput(ctx, c, id, outMiB)
	if err != nil {
		return err
	}
	fmt.Printf("| step output throughput, agent → controller → history (a command printing %d MiB in 1 KiB lines as fast as it can; dispatch → result committed, every line durable) | %.1f MB/s | >= 50 MB/s: %s |\n",
		outMiB, mbs, verdict(mbs >= 50))
	q, err := leaderQuantiles(ctx, httpAddr)
	if err != nil {
		return err
	}
	rt, ov := q["opsconductor_attempt_round_trip_seconds"], q["opsconductor_attempt_overhead_seconds"]
	fmt.Printf("| round trip on the leader (assignment queued → result committed), %d runs | p50 %.2f ms, p99 %.2f ms | — |\n",
		n, rt["0.5"]*1000, rt["0.99"]*1000)
	fmt.Printf("| the same excluding the step's run time (process start included in it) | p50 %.2f ms, p99 %.2f ms | p50 <= 5 ms: %s |\n",
		ov["0.5"]*1000, ov["0.99"]*1000, verdict(ov["0.5"] > 0 && ov["0.5"] <= 0.005))
	overhead := figure.New("agent command round trip excluding the step's run time, p50", ov["0.5"]*1000, "ms", figure.AtMost(5))
	if ov["0.5"] <= 0 { // the leader timed nothing: not a pass
		overhead.Verdict = figure.Fail
	}
	return figure.Write(jsonPath, []figure.Figure{
		figure.New("agent binary size (stripped)", size, "MB", figure.AtMost(25)),
		figure.New("agent idle RSS", float64(idle)/1024, "MB", figure.AtMost(20)),
		figure.New("agent RSS after the round trips", float64(after)/1024, "MB", nil),
		figure.New("agent command round trip seen by an API client, p50", ms(p50), "ms", nil).WithNote("%d runs; includes the create commit, process start and 1 ms polling", n),
		figure.New("agent command round trip seen by an API client, p99", ms(p99), "ms", nil),
		figure.New("step output throughput agent → controller → history", mbs, "MB/s", figure.AtLeast(50)).WithNote("%d MiB in 1 KiB lines", outMiB),
		figure.New("agent round trip on the leader, p50", rt["0.5"]*1000, "ms", nil),
		figure.New("agent round trip on the leader, p99", rt["0.99"]*1000, "ms", nil),
		overhead,
		figure.New("agent command round trip excluding the step's run time, p99", ov["0.99"]*1000, "ms", nil),
	})
}

// outputThroughput runs a command that writes outMiB of 1 KiB lines
// and returns MB/s from dispatch to the committed result, which the
// controller commits only once every line is durable in history.
func outputThroughput(ctx context.Context, c *apiclient.Client, agentID string, outMiB int) (float64, error) {
	fmt.Fprintf(os.Stderr, "streaming %d MiB of output through the agent…\n", outMiB)
	// yes writes in large buffers, so the generator is not the bottleneck
	// (fold and tr manage about 70 MB/s on their own).
	shell := fmt.Sprintf("yes \"$(printf '%%01023d' 0)\" | head -c %d", outMiB<<20)
	start := time.Now()
	at, err := c.RunCommand(ctx, agentID, apiclient.CommandSpec{Shell: shell, Timeout: "10m"})
	if err != nil {
		return 0, err
	}
	for {
		got, err := c.GetAttempt(ctx, at.ID)
		if err != nil {
			return 0, err
		}
		if got.Status == "succeeded" {
			break
		}
		if got.Status != "pending" && got.Status != "running" {
			return 0, fmt.Errorf("throughput attempt %s ended %s: %s", at.ID, got.Status, got.Error)
		}
		time.Sleep(20 * time.Millisecond) // polling the API, as a client would; 20 ms is noise at this size
	}
	return float64(outMiB<<20) / 1e6 / time.Since(start).Seconds(), nil
}

// leaderQuantiles reads the attempt timing summaries from the leader's
// /metrics: metric name → quantile → seconds.
func leaderQuantiles(ctx context.Context, httpAddr string) (map[string]map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+httpAddr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("read /metrics: %w", err)
	}
	defer resp.Body.Close()
	out := map[string]map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		name, rest, ok := strings.Cut(line, `{quantile="`)
		if !ok || !strings.HasPrefix(name, "opsconductor_attempt_") {
			continue
		}
		qs, val, ok := strings.Cut(rest, `"} `)
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(val, 64)
		if err != nil {
			return nil, fmt.Errorf("/metrics: %s: %w", line, err)
		}
		if out[name] == nil {
			out[name] = map[string]float64{}
		}
		out[name][qs] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read /metrics: %w", err)
	}
	if len(out) == 0 {
		return nil, errors.New("/metrics has no opsconductor_attempt_ summaries")
	}
	return out, nil
}

func startLogged(cmd *exec.Cmd, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	return nil
}

func stop(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

var rssLine = regexp.MustCompile(`^VmRSS:\s+(\d+) kB`)

func rssKB(pid int) (int, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := rssLine.FindStringSubmatch(strings.TrimSpace(sc.Text())); m != nil {
			return strconv.Atoi(m[1])
		}
	}
	return 0, errors.New("no VmRSS in /proc status")
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
