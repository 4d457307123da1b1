package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/opsconductor/opsconductor/controller/apiclient"
	"github.com/opsconductor/opsconductor/internal/faultproxy"
	"github.com/opsconductor/opsconductor/test/e2e/localcluster"
)

// nodes is the cluster size; node n (1-based) is "noden".
const nodes = 3

// runAgentWait is the servers' --run-agent-wait: a step whose agent is
// down (killed, or its link cut) waits this long for it. Agents come back
// well within it, so a step fails for this only if an agent never does.
const runAgentWait = 45 * time.Second

// The address plan. Every controller listens on its own loopback address,
// 127.0.0.(10+n), and advertises 127.0.0.1 with the same ports, where a
// faultproxy forwards to it. Other controllers and the agents know only
// the advertised addresses, so every byte between processes crosses a
// proxy, and no server flag beyond --advertise is needed to route it. The
// chaos driver's own API calls go straight to the real address.
func realHost(n int) string { return fmt.Sprintf("127.0.0.%d", 10+n) }

const publicHost = "127.0.0.1"

// controller is one server process and the proxies in front of it.
type controller struct {
	n                         int
	httpPort, agentPort, raft int
	proc                      *proc
	client                    *apiclient.Client
	// raftProxy and httpProxy carry controller-to-controller traffic
	// (Raft, RPC forwarding, a follower's proxying to the leader's API);
	// agentProxy carries the agents' streams and enrolment.
	raftProxy, httpProxy, agentProxy *faultproxy.Proxy
}

func (c *controller) id() string { return fmt.Sprintf("node%d", c.n) }
func (c *controller) apiAddr() string {
	return net.JoinHostPort(realHost(c.n), strconv.Itoa(c.httpPort))
}
func (c *controller) agentAddr() string {
	return net.JoinHostPort(publicHost, strconv.Itoa(c.agentPort))
}

// agent is one agent process.
type agent struct {
	name string
	dir  string
	proc *proc
}

// rig is the whole system under test.
type rig struct {
	bin, dir string
	log      *logger
	agentsN  int

	pg          *postgres
	controllers [nodes]*controller
	agents      []*agent
	token       string
	ledgerDir   string

	mu sync.Mutex
	// exits are the processes that exited without the driver asking;
	// closing stops the supervisor from restarting them at teardown.
	exits   []string
	closing bool
}

// supervise is every process's onExit: it records the exit and, as
// systemd with Restart=always would, starts the process again a second
// later, so that the storm goes on. The exit itself fails the run.
func (r *rig) supervise(p *proc) func(string, error) {
	return func(name string, err error) {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.closing {
			return
		}
		r.exits = append(r.exits, fmt.Sprintf("%s at %s (%v)", name, time.Now().UTC().Format("15:04:05.000"), err))
		r.log.printf("UNEXPECTED EXIT: %s exited by itself (%v); restarting it in 1s, see %s", name, err, p.logPath)
		time.AfterFunc(time.Second, func() {
			r.mu.Lock()
			closing := r.closing
			r.mu.Unlock()
			if closing || p.running() {
				return
			}
			if err := p.start(); err != nil {
				r.log.printf("restart %s: %v", name, err)
			}
		})
	}
}

func (r *rig) ctl(n int) *controller { return r.controllers[n-1] }

func (r *rig) setup(ctx context.Context) error {
	base, err := freeBase()
	if err != nil {
		return err
	}
	r.pg = &postgres{dir: filepath.Join(r.dir, "pg"), port: base + 30, log: r.log}
	if err := r.pg.start(ctx); err != nil {
		return fmt.Errorf("private PostgreSQL: %w", err)
	}
	r.log.printf("PostgreSQL %s running on 127.0.0.1:%d (data %s)", r.pg.version, r.pg.port, r.pg.dir)

	tlsDir := filepath.Join(r.dir, "tls")
	if err := r.cli(ctx, nil, "operator", "tls", "init", "--dir", tlsDir); err != nil {
		return err
	}
	if err := r.cli(ctx, nil, "operator", "keyring", "init", "--file", filepath.Join(r.dir, "keyring.key")); err != nil {
		return err
	}
	password := fmt.Sprintf("chaos-%x", rand.Uint64())
	if err := os.WriteFile(filepath.Join(r.dir, "admin-password"), []byte(password+"\n"), 0o600); err != nil {
		return err
	}
	for n := 1; n <= nodes; n++ {
		p := base + 10*(n-1)
		c := &controller{n: n, httpPort: p, agentPort: p + 1, raft: p + 2}
		for _, lp := range []struct {
			port int
			dst  **faultproxy.Proxy
		}{{c.httpPort, &c.httpProxy}, {c.agentPort, &c.agentProxy}, {c.raft, &c.raftProxy}} {
			px, err := faultproxy.Listen(net.JoinHostPort(publicHost, strconv.Itoa(lp.port)), net.JoinHostPort(realHost(n), strconv.Itoa(lp.port)))
			if err != nil {
				return err
			}
			*lp.dst = px
		}
		c.proc = &proc{name: c.id(), bin: filepath.Join(r.bin, "opsconductor"), args: r.serverArgs(c, base), logPath: filepath.Join(r.dir, c.id()+".log")}
		c.proc.onExit = r.supervise(c.proc)
		r.controllers[n-1] = c
	}
	for _, c := range r.controllers {
		if err := c.proc.start(); err != nil {
			return err
		}
	}
	leader, err := r.waitLeader(ctx, 60*time.Second)
	if err != nil {
		return err
	}
	if err := poll(ctx, 60*time.Second, 100*time.Millisecond, func(ctx context.Context) error {
		return r.ctl(leader).anon().Ready(ctx)
	}); err != nil {
		return fmt.Errorf("node%d ready: %w", leader, err)
	}
	if err := r.createToken(ctx, leader); err != nil {
		return err
	}
	for _, c := range r.controllers {
		c.client, err = apiclient.New("http://"+c.apiAddr(), apiclient.WithToken(r.token))
		if err != nil {
			return err
		}
	}
	r.log.printf("cluster up: node%d leads; controllers on %s, %s, %s behind proxies on %s", leader,
		realHost(1), realHost(2), realHost(3), publicHost)
	return r.startAgents(ctx, leader)
}

func (c *controller) anon() *apiclient.Client {
	cl, _ := apiclient.New("http://" + c.apiAddr())
	return cl
}

func (r *rig) serverArgs(c *controller, base int) []string {
	host := realHost(c.n)
	args := []string{"server",
		"--node-id", c.id(),
		"--data-dir", filepath.Join(r.dir, c.id()),
		"--http-addr", net.JoinHostPort(host, strconv.Itoa(c.httpPort)),
		"--agent-addr", net.JoinHostPort(host, strconv.Itoa(c.agentPort)),
		"--raft-addr", net.JoinHostPort(host, strconv.Itoa(c.raft)),
		"--advertise", publicHost,
		"--bootstrap-expect", strconv.Itoa(nodes),
		"--tls-ca-cert", filepath.Join(r.dir, "tls", "cluster-ca.pem"),
		"--tls-ca-key", filepath.Join(r.dir, "tls", "cluster-ca-key.pem"),
		"--keyring-file", filepath.Join(r.dir, "keyring.key"),
		"--bootstrap-admin-password-file", filepath.Join(r.dir, "admin-password"),
		"--rate-write", "inf", "--rate-read", "inf", "--rate-operator", "inf",
		"--run-agent-wait", runAgentWait.String(),
		"--history", r.pg.dsn(),
	}
	for m := 1; m <= nodes; m++ {
		if m != c.n {
			args = append(args, "--retry-join", net.JoinHostPort(publicHost, strconv.Itoa(base+10*(m-1)+2)))
		}
	}
	return args
}

// cli runs the opsconductor CLI with its own login store in the run's
// directory.
func (r *rig) cli(ctx context.Context, stdin []byte, args ...string) error {
	_, err := r.cliOut(ctx, stdin, args...)
	return err
}

func (r *rig) cliOut(ctx context.Context, stdin []byte, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(r.bin, "opsconductor"), args...)
	cmd.Env = append(os.Environ(), "OPSCONDUCTOR_CONFIG_DIR="+filepath.Join(r.dir, "cli"), "OPSCONDUCTOR_TOKEN=", "OPSCONDUCTOR_ADDR=")
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("opsconductor %s: %w: %s", strings.Join(args[:min(len(args), 3)], " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// createToken logs in as the first admin and creates the API token the
// driver uses: it verifies on every node and never expires mid-run.
func (r *rig) createToken(ctx context.Context, leader int) error {
	pw, err := os.ReadFile(filepath.Join(r.dir, "admin-password"))
	if err != nil {
		return err
	}
	addr := "http://" + r.ctl(leader).apiAddr()
	if err := r.cli(ctx, pw, "login", "--address", addr, "--username", "admin", "--password-stdin"); err != nil {
		return err
	}
	tok, err := r.cliOut(ctx, nil, "token", "create", "--address", addr, "--name", "chaos", "--role", "admin")
	if err != nil {
		return err
	}
	r.token = tok
	return nil
}

// leader checks once that every live controller names the same leader and
// that it leads, and returns its number.
func (r *rig) leader(ctx context.Context, among []int) (int, map[int]apiclient.Health, error) {
	hs := map[int]apiclient.Health{}
	var views []string
	id := ""
	agreed := true
	for _, n := range among {
		hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		h, err := r.ctl(n).anon().Health(hctx)
		cancel()
		if err != nil {
			return 0, nil, fmt.Errorf("node%d: %w", n, err)
		}
		hs[n] = h
		views = append(views, fmt.Sprintf("node%d=%s(leader=%q applied=%d)", n, h.Raft.State, h.Raft.LeaderID, h.Raft.AppliedIndex))
		switch {
		case h.Raft.LeaderID == "":
			agreed = false
		case id == "":
			id = h.Raft.LeaderID
		case h.Raft.LeaderID != id:
			agreed = false
		}
	}
	l, ok := localcluster.NodeNumber(id)
	if !agreed || !ok || hs[l].Raft.State != "leader" {
		return 0, hs, fmt.Errorf("no agreed leader: %s", strings.Join(views, " "))
	}
	return l, hs, nil
}

func allNodes() []int { return []int{1, 2, 3} }

func (r *rig) waitLeader(ctx context.Context, limit time.Duration) (int, error) {
	var l int
	err := poll(ctx, limit, 100*time.Millisecond, func(ctx context.Context) error {
		var err error
		l, _, err = r.leader(ctx, allNodes())
		return err
	})
	return l, err
}

// poll calls cond every interval until it returns nil or limit passes,
// and then fails with cond's last error: every wait has a deadline and
// says what it was still waiting for.
func poll(ctx context.Context, limit, interval time.Duration, cond func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	return localcluster.Poll(ctx, interval, cond)
}

// startAgents enrols the fleet with one join token, a few at a time, then
// starts every agent process.
func (r *rig) startAgents(ctx context.Context, leader int) error {
	r.ledgerDir = filepath.Join(r.dir, "ledgers")
	if err := os.MkdirAll(r.ledgerDir, 0o755); err != nil {
		return err
	}
	var tok apiclient.CreatedJoinToken
	err := poll(ctx, 30*time.Second, 200*time.Millisecond, func(ctx context.Context) error {
		var err error
		tok, err = r.ctl(leader).client.CreateJoinToken(ctx, apiclient.CreateJoinTokenRequest{TTL: "30m", MaxUses: r.agentsN, Tags: map[string]string{"pool": "chaos"}})
		return err
	})
	if err != nil {
		return fmt.Errorf("create a join token: %w", err)
	}
	var ctlAddrs []string
	for _, c := range r.controllers {
		ctlAddrs = append(ctlAddrs, c.agentAddr())
	}
	controllers := strings.Join(ctlAddrs, ",")
	r.agents = make([]*agent, r.agentsN)
	errs := make([]error, r.agentsN)
	sem := make(chan struct{}, 6)
	var wg sync.WaitGroup
	for i := range r.agentsN {
		a := &agent{name: fmt.Sprintf("chaos-%02d", i), dir: filepath.Join(r.dir, "agents", fmt.Sprintf("chaos-%02d", i))}
		r.agents[i] = a
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			cmd := exec.CommandContext(ctx, filepath.Join(r.bin, "opsconductor-agent"), "join", "--controller", controllers,
				"--token", tok.Token, "--ca-pin", tok.CAPin, "--data-dir", a.dir, "--name", a.name)
			if out, err := cmd.CombinedOutput(); err != nil {
				errs[i] = fmt.Errorf("join %s: %w\n%s", a.name, err, out)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, a := range r.agents {
		a.proc = &proc{name: a.name, bin: filepath.Join(r.bin, "opsconductor-agent"),
			args:    []string{"run", "--data-dir", a.dir, "--log-level", "warn"},
			logPath: filepath.Join(r.dir, "agents", a.name+".log")}
		a.proc.onExit = r.supervise(a.proc)
		if err := a.proc.start(); err != nil {
			return err
		}
	}
	if err := r.waitAgentsUp(ctx, 60*time.Second); err != nil {
		return err
	}
	r.log.printf("%d agents enrolled and connected", r.agentsN)
	return nil
}

// waitAgentsUp waits until every agent is connected as the cluster sees it.
func (r *rig) waitAgentsUp(ctx context.Context, limit time.Duration) error {
	return poll(ctx, limit, 250*time.Millisecond, func(ctx context.Context) error {
		var errs []string
		for _, c := range r.controllers {
			actx, cancel := context.WithTimeout(ctx, 5*time.Second)
			list, err := c.client.AllAgents(actx)
			cancel()
			if err != nil {
				errs = append(errs, err.Error())
				continue
			}
			up := 0
			for _, a := range list {
				if a.Status == "up" {
					up++
				}
			}
			if up == r.agentsN {
				return nil
			}
			errs = append(errs, fmt.Sprintf("node%d sees %d of %d agents up", c.n, up, r.agentsN))
		}
		return errors.New(strings.Join(errs, "; "))
	})
}

// teardown stops every process and the proxies. Data and logs stay.
func (r *rig) teardown() {
	r.mu.Lock()
	r.closing = true
	r.mu.Unlock()
	var procs []*proc
	for _, a := range r.agents {
		if a != nil && a.proc != nil {
			procs = append(procs, a.proc)
		}
	}
	for _, c := range r.controllers {
		if c != nil && c.proc != nil {
			procs = append(procs, c.proc)
		}
	}
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Add(1)
		go func() { defer wg.Done(); p.stop(15 * time.Second) }()
	}
	wg.Wait()
	for _, c := range r.controllers {
		if c == nil {
			continue
		}
		for _, px := range []*faultproxy.Proxy{c.raftProxy, c.httpProxy, c.agentProxy} {
			if px != nil {
				px.Close()
			}
		}
	}
	if r.pg != nil {
		r.pg.stop()
	}
}

// tailLogs prints the end of every controller's log and of the
// PostgreSQL log, for a failed run.
func (r *rig) tailLogs() {
	paths := []string{}
	for n := 1; n <= nodes; n++ {
		paths = append(paths, filepath.Join(r.dir, fmt.Sprintf("node%d.log", n)))
	}
	if r.pg != nil {
		paths = append(paths, r.pg.logPath())
	}
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
		if len(lines) > 15 {
			lines = lines[len(lines)-15:]
		}
		r.log.printf("----- last lines of %s -----\n%s", p, strings.Join(lines, "\n"))
	}
}

// proc is one child process that can be killed and started again with
// the same arguments; its output is appended to one log across restarts.
type proc struct {
	name, bin, logPath string
	args               []string
	// onExit, when set, hears of every exit the driver did not cause.
	onExit func(name string, err error)

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	stopped bool // the driver killed or stopped the current process
	starts  int
}

func (p *proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		select {
		case <-p.done:
			// It exited by itself (onExit has heard): start it again.
		default:
			return fmt.Errorf("%s is already running", p.name)
		}
	}
	f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(f, "===== chaos: starting %s at %s =====\n", p.name, time.Now().UTC().Format(time.RFC3339Nano))
	cmd := exec.Command(p.bin, p.args...)
	cmd.Stdout, cmd.Stderr = f, f
	// Its own process group: a Ctrl-C meant for the driver must not
	// reach the children, which the driver stops itself.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	f.Close()
	done := make(chan struct{})
	p.cmd, p.done, p.stopped = cmd, done, false
	p.starts++
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		expected := p.stopped || p.cmd != cmd
		p.mu.Unlock()
		close(done)
		if !expected && p.onExit != nil {
			p.onExit(p.name, err)
		}
	}()
	return nil
}

func (p *proc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL and waits until the process is gone.
func (p *proc) kill() int {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.stopped = true
	p.mu.Unlock()
	if cmd == nil {
		return 0
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
	return cmd.Process.Pid
}

// stop sends SIGTERM, then SIGKILL after grace.
func (p *proc) stop(grace time.Duration) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.stopped = true
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-done
	}
}

// freeBase finds a base port whose ports are free on the public and every
// real address. Servers take fixed ports from flags, so the kernel cannot
// hand them out; the range is below the ephemeral one, so that outgoing
// connections never take a port a restarted server needs back.
func freeBase() (int, error) {
	for range 200 {
		base := 20000 + rand.IntN(8000)
		if portsFree(base) {
			return base, nil
		}
	}
	return 0, errors.New("no free range of ports found in 20000-28031")
}

func portsFree(base int) bool {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	hosts := []string{publicHost, realHost(1), realHost(2), realHost(3)}
	ports := []int{base + 30}
	for n := range nodes {
		ports = append(ports, base+10*n, base+10*n+1, base+10*n+2)
	}
	for _, h := range hosts {
		for _, p := range ports {
			l, err := net.Listen("tcp", net.JoinHostPort(h, strconv.Itoa(p)))
			if err != nil {
				return false
			}
			ls = append(ls, l)
		}
	}
	return true
}

// postgres is the run's private PostgreSQL server.
type postgres struct {
	dir, binDir, version string
	port                 int
	log                  *logger
}

func (p *postgres) dataDir() string { return filepath.Join(p.dir, "data") }
func (p *postgres) logPath() string { return filepath.Join(p.dir, "postgresql.log") }
func (p *postgres) dsn() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", p.port)
}

// findPGBin picks the newest server under /usr/lib/postgresql.
func findPGBin() (string, string, error) {
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	if len(matches) == 0 {
		return "", "", errors.New("no PostgreSQL server binaries under /usr/lib/postgresql (apt-get install postgresql)")
	}
	sort.Slice(matches, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(matches[i]))))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(matches[j]))))
		return vi > vj
	})
	bin := filepath.Dir(matches[0])
	return bin, filepath.Base(filepath.Dir(bin)), nil
}

// asPostgres runs a PostgreSQL tool as the postgres user when the driver
// is root (the server refuses to run as root), else as the driver's user.
func (p *postgres) asPostgres(ctx context.Context, tool string, args ...string) error {
	path := filepath.Join(p.binDir, tool)
	var cmd *exec.Cmd
	if os.Geteuid() == 0 {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, path, args...)
	}
	cmd.Dir = p.dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", tool, strings.Join(args, " "), err, out)
	}
	return nil
}

func (p *postgres) start(ctx context.Context) error {
	var err error
	p.binDir, p.version, err = findPGBin()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		return err
	}
	if os.Geteuid() == 0 {
		if err := chownPostgres(p.dir); err != nil {
			return err
		}
	}
	if err := p.asPostgres(ctx, "initdb", "-D", p.dataDir(), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"); err != nil {
		return err
	}
	return p.asPostgres(ctx, "pg_ctl", "-D", p.dataDir(), "-l", p.logPath(), "-w", "-t", "60", "-o", p.opts(), "start")
}

func (p *postgres) opts() string {
	return fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -c unix_socket_directories=%s -c max_connections=200", p.port, p.dir)
}

// restart stops the server (fast: sessions are ended; immediate: a crash,
// recovered from the WAL at start) and starts it again.
func (p *postgres) restart(ctx context.Context, mode string) error {
	if err := p.asPostgres(ctx, "pg_ctl", "-D", p.dataDir(), "-m", mode, "-w", "-t", "60", "stop"); err != nil {
		return err
	}
	return p.asPostgres(ctx, "pg_ctl", "-D", p.dataDir(), "-l", p.logPath(), "-w", "-t", "60", "-o", p.opts(), "start")
}

func (p *postgres) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.asPostgres(ctx, "pg_ctl", "-D", p.dataDir(), "-m", "fast", "-w", "stop"); err != nil {
		p.log.printf("stopping PostgreSQL: %v", err)
	}
}

func chownPostgres(dir string) error {
	out, err := exec.Command("id", "-u", "postgres").Output()
	if err != nil {
		return fmt.Errorf("no postgres user to run PostgreSQL as: %w", err)
	}
	uid, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	out, err = exec.Command("id", "-g", "postgres").Output()
	if err != nil {
		return err
	}
	gid, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	return os.Chown(dir, uid, gid)
}
