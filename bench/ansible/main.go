// Command ansible compares OpsConductor with Ansible on the same work:
// one command (`hostname`) on N SSH targets, all of them inventory
// entries for one real OpenSSH server on a loopback port, with the same
// client key and the same pinned host key. `make bench` runs it.
//
// Ansible: `ansible all -i INVENTORY -m command -a hostname --forks N`
// (ansible-core from Debian). Each target has its own SSH control socket,
// as separate hosts would, and the sockets are closed after each
// repetition, so every repetition connects afresh; pipelining stays at
// Ansible's default (off), and the Python interpreter is named in the
// inventory so that no repetition pays for interpreter discovery.
//
// OpsConductor: a single-node controller (`opsconductor server`) and one
// real agent (`opsconductor-agent run`) acting as the SSH relay; the N
// targets are ssh targets via that agent with the host key recorded, the
// login an ssh_key credential attached to each; the job is one shell step
// running `hostname`. The time is from the POST that starts the run to
// the run's final state seen on its event stream.
//
// One untimed warm-up of each comes first; then the two alternate for
// -reps repetitions, and the medians and their ratio are reported.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/opsconductor/opsconductor/bench/internal/figure"
	"github.com/opsconductor/opsconductor/bench/internal/serverproc"
	"github.com/opsconductor/opsconductor/controller/apiclient"
	"github.com/opsconductor/opsconductor/internal/sshdtest"
)

type options struct {
	bin      string
	targets  int
	reps     int
	jsonPath string
	keep     bool
}

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "bin", "directory holding opsconductor and opsconductor-agent (make build)")
	flag.IntVar(&o.targets, "targets", 20, "SSH targets (inventory entries for the one loopback sshd); also Ansible's --forks")
	flag.IntVar(&o.reps, "reps", 5, "timed repetitions of each, after one warm-up")
	flag.StringVar(&o.jsonPath, "json", "", "also write the figures as JSON to this file (for bench/report)")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory (sshd, controller and agent logs, inventory)")
	flag.Parse()
	if o.targets < 1 || o.reps < 1 {
		fmt.Fprintln(os.Stderr, "ansible: -targets and -reps must be at least 1")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "ansible:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) (err error) {
	ansible, err := exec.LookPath("ansible")
	if err != nil {
		return fmt.Errorf("%w: install ansible-core (apt-get install ansible-core)", err)
	}
	dir, err := os.MkdirTemp("", "bench-ansible-")
	if err != nil {
		return err
	}
	defer func() {
		if o.keep || err != nil {
			fmt.Fprintf(os.Stderr, "ansible: kept %s\n", dir)
			return
		}
		os.RemoveAll(dir)
	}()

	srv, err := sshdtest.Start(ctx, dir, sshdtest.Options{Fanout: true})
	if err != nil {
		return err
	}
	defer srv.Stop()
	fmt.Fprintf(os.Stderr, "sshd on 127.0.0.1:%d, logging in %s by key\n", srv.Port, srv.User)
	names := make([]string, o.targets)
	for i := range names {
		names[i] = fmt.Sprintf("ssh-%02d", i+1)
	}

	oc, err := startOpsConductor(ctx, o.bin, dir, srv, names)
	if err != nil {
		return err
	}
	defer oc.stop()
	an := &ansibleRun{bin: ansible, dir: dir, srv: srv, names: names}

	fmt.Fprintln(os.Stderr, "warm-up: one untimed run of each…")
	if _, err := an.once(ctx, -1); err != nil {
		return err
	}
	runID, _, err := oc.once(ctx)
	if err != nil {
		return err
	}
	// Both must have done the same work: the first target's log is this
	// machine's host name, as ansible printed it for every target.
	if err := oc.checkOutput(ctx, runID, names[0]); err != nil {
		return err
	}
	var ours, theirs []time.Duration
	for i := range o.reps {
		a, err := an.once(ctx, i)
		if err != nil {
			return err
		}
		_, b, err := oc.once(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "repetition %d/%d: ansible %.2f s, opsconductor %.2f s\n", i+1, o.reps, a.Seconds(), b.Seconds())
		theirs, ours = append(theirs, a), append(ours, b)
	}
	mA, mO := median(theirs), median(ours)
	ratio := mA.Seconds() / mO.Seconds()
	fmt.Println("| figure | value |")
	fmt.Println("|---|---|")
	fmt.Printf("| ansible ad-hoc `hostname` on %d SSH targets, --forks %d (median of %d) | %.2f s (each: %s) |\n", o.targets, o.targets, o.reps, mA.Seconds(), secs(theirs))
	fmt.Printf("| OpsConductor job, one shell step `hostname` on %d SSH targets via a relay agent (median of %d) | %.2f s (each: %s) |\n", o.targets, o.reps, mO.Seconds(), secs(ours))
	fmt.Printf("| ratio ansible / OpsConductor | %.1f× |\n", ratio)
	return figure.Write(o.jsonPath, []figure.Figure{
		figure.New(fmt.Sprintf("ansible ad-hoc hostname on %d SSH targets, median", o.targets), mA.Seconds(), "s", nil).
			WithNote("--forks %d; each: %s", o.targets, secs(theirs)),
		figure.New(fmt.Sprintf("OpsConductor job hostname on %d SSH targets, median", o.targets), mO.Seconds(), "s", nil).
			WithNote("POST → run final on its stream; each: %s", secs(ours)),
		figure.New("wall time ratio ansible / OpsConductor", ratio, "×", nil).
			WithNote("above 1: OpsConductor is faster"),
	})
}

// ansibleRun runs the ad-hoc command.
type ansibleRun struct {
	bin   string
	dir   string
	srv   *sshdtest.Server
	names []string
}

// once runs ansible over every target and checks each answered. Each
// repetition gets control sockets of its own, closed afterwards, so no
// repetition reuses a connection from the one before.
func (a *ansibleRun) once(ctx context.Context, rep int) (time.Duration, error) {
	cp := filepath.Join(a.dir, fmt.Sprintf("cp%d", rep+1))
	if err := os.MkdirAll(cp, 0o700); err != nil {
		return 0, err
	}
	var inv strings.Builder
	inv.WriteString("[all]\n")
	for _, n := range a.names {
		fmt.Fprintf(&inv, "%s ansible_host=127.0.0.1 ansible_port=%d ansible_user=%s ansible_control_path=%s\n",
			n, a.srv.Port, a.srv.User, filepath.Join(cp, n))
	}
	fmt.Fprintf(&inv, "\n[all:vars]\nansible_ssh_private_key_file=%s\nansible_ssh_common_args='-o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes'\nansible_python_interpreter=/usr/bin/python3\n",
		a.srv.KeyPath, a.srv.KnownHosts)
	invPath := filepath.Join(a.dir, "inventory.ini")
	if err := os.WriteFile(invPath, []byte(inv.String()), 0o600); err != nil {
		return 0, err
	}
	cmd := exec.CommandContext(ctx, a.bin, "all", "-i", invPath, "-m", "command", "-a", "hostname", "--forks", fmt.Sprint(len(a.names)), "--one-line")
	cmd.Env = append(os.Environ(), "ANSIBLE_LOCAL_TEMP="+filepath.Join(a.dir, "ansible-local"), "ANSIBLE_NOCOLOR=1", "ANSIBLE_HOME="+filepath.Join(a.dir, "ansible-home"))
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	a.closeSockets(ctx, cp)
	if err != nil {
		return 0, fmt.Errorf("ansible: %w\n%s", err, tailOf(out))
	}
	if got := strings.Count(string(out), "| CHANGED | rc=0"); got != len(a.names) {
		return 0, fmt.Errorf("ansible: %d of %d targets answered:\n%s", got, len(a.names), tailOf(out))
	}
	return took, nil
}

// closeSockets asks each control master of a repetition to exit.
func (a *ansibleRun) closeSockets(ctx context.Context, cp string) {
	entries, _ := os.ReadDir(cp)
	for _, e := range entries {
		_ = exec.CommandContext(ctx, "ssh", "-o", "ControlPath="+filepath.Join(cp, e.Name()), "-O", "exit", "127.0.0.1").Run()
	}
}

// opsConductor is a controller with one relay agent and the job set up.
type opsConductor struct {
	srv   *serverproc.Server
	agent *exec.Cmd
	c     *apiclient.Client
	n     int
}

const job = "bench-ssh-hostname"

func startOpsConductor(ctx context.Context, bin, dir string, ssh *sshdtest.Server, names []string) (*opsConductor, error) {
	srv, err := serverproc.Start(serverproc.Config{Bin: filepath.Join(bin, "opsconductor"), Dir: dir,
		Args: []string{"--rate-read", "inf", "--rate-write", "inf", "--log-level", "warn"}})
	if err != nil {
		return nil, err
	}
	oc := &opsConductor{srv: srv, n: len(names)}
	if err := oc.setUp(ctx, bin, dir, ssh, names); err != nil {
		oc.stop()
		return nil, err
	}
	return oc, nil
}

func (oc *opsConductor) setUp(ctx context.Context, bin, dir string, ssh *sshdtest.Server, names []string) error {
	c, err := oc.srv.Admin(ctx)
	if err != nil {
		return err
	}
	oc.c = c
	jt, err := serverproc.CreateJoinToken(ctx, c, apiclient.CreateJoinTokenRequest{TTL: "10m"})
	if err != nil {
		return err
	}
	agentBin := filepath.Join(bin, "opsconductor-agent")
	agentDir := filepath.Join(dir, "agent")
	join := exec.CommandContext(ctx, agentBin, "join", "--controller", oc.srv.AgentAddr, "--token", jt.Token, "--ca-pin", jt.CAPin,
		"--data-dir", agentDir, "--name", "relay")
	if out, err := join.CombinedOutput(); err != nil {
		return fmt.Errorf("agent join: %w\n%s", err, out)
	}
	logf, err := os.Create(filepath.Join(dir, "agent.log"))
	if err != nil {
		return err
	}
	oc.agent = exec.Command(agentBin, "run", "--data-dir", agentDir, "--log-level", "warn")
	oc.agent.Stdout, oc.agent.Stderr = logf, logf
	if err := oc.agent.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start the agent: %w", err)
	}
	if err := oc.waitAgentUp(ctx); err != nil {
		return err
	}
	if _, err := c.CreateCredential(ctx, apiclient.CredentialInput{Name: "bench-ssh", Kind: "ssh_key", Username: ssh.User,
		Secret: &apiclient.CredentialSecret{PrivateKey: ssh.Key}}); err != nil {
		return fmt.Errorf("create the credential: %w", err)
	}
	for _, n := range names {
		if _, err := c.CreateTarget(ctx, apiclient.TargetInput{Name: n, Addresses: []string{"127.0.0.1"},
			Connection: &apiclient.TargetConnection{Type: "ssh", Via: "relay", Port: ssh.Port, HostKey: ssh.HostKeyLine()}}); err != nil {
			return fmt.Errorf("create target %s: %w", n, err)
		}
		if _, err := c.AttachCredential(ctx, "bench-ssh", "targets", n, "ssh"); err != nil {
			return fmt.Errorf("attach the credential to %s: %w", n, err)
		}
	}
	quoted, _ := json.Marshal(names)
	def := fmt.Sprintf("name: %s\ntargets: {names: %s}\nsteps:\n  - id: hostname\n    uses: shell\n    with: {command: hostname}\n", job, quoted)
	if _, err := c.PutJob(ctx, job, []byte(def)); err != nil {
		return fmt.Errorf("put the job: %w", err)
	}
	return nil
}

func (oc *opsConductor) waitAgentUp(ctx context.Context) error {
	for {
		page, err := oc.c.ListAgents(ctx, "", 10)
		if err != nil {
			return fmt.Errorf("list agents: %w", err)
		}
		for _, a := range page.Items {
			if a.Status == "up" {
				return nil
			}
		}
		t := time.NewTimer(50 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return errors.New("the relay agent never came up (log: agent.log)")
		case <-t.C:
		}
	}
}

// once runs the job and returns the run's ID and the time from the POST
// to the run's final state seen on its stream; every target must have
// succeeded.
func (oc *opsConductor) once(ctx context.Context) (string, time.Duration, error) {
	start := time.Now()
	run, err := oc.c.StartRun(ctx, job, apiclient.RunRequest{})
	if err != nil {
		return "", 0, fmt.Errorf("start a run: %w", err)
	}
	st, err := oc.c.WaitRunEnd(ctx, run)
	took := time.Since(start)
	if err != nil {
		return "", 0, err
	}
	full, err := oc.c.GetRun(ctx, run.ID)
	if err != nil {
		return "", 0, err
	}
	if st.Status != "succeeded" {
		return "", 0, fmt.Errorf("run %s ended %s (%s): %s", run.ID, st.Status, st.Reason, firstError(full))
	}
	if len(full.Targets) != oc.n {
		return "", 0, fmt.Errorf("run %s covered %d targets, want %d", run.ID, len(full.Targets), oc.n)
	}
	return run.ID, took, nil
}

// checkOutput compares target's log in the run with this host's name.
func (oc *opsConductor) checkOutput(ctx context.Context, runID, target string) error {
	host, err := os.Hostname()
	if err != nil {
		return err
	}
	logs, err := oc.c.AllRunLogs(ctx, runID, apiclient.RunLogQuery{Target: target, Step: "hostname"})
	if err != nil {
		return fmt.Errorf("read run %s's log: %w", runID, err)
	}
	var got strings.Builder
	for _, l := range logs {
		got.WriteString(l.Data)
	}
	if strings.TrimSpace(got.String()) != host {
		return fmt.Errorf("run %s printed %q on %s, want the host name %q", runID, got.String(), target, host)
	}
	return nil
}

func firstError(r apiclient.Run) string {
	for _, t := range r.Targets {
		for _, s := range t.Steps {
			if s.Error != "" {
				return t.Name + ": " + s.Error
			}
		}
	}
	return "no step error recorded"
}

func (oc *opsConductor) stop() {
	if oc.agent != nil && oc.agent.Process != nil {
		_ = oc.agent.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = oc.agent.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = oc.agent.Process.Kill()
			<-done
		}
	}
	_ = oc.srv.Stop(10 * time.Second)
}

func median(ds []time.Duration) time.Duration {
	s := slices.Sorted(slices.Values(ds))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func secs(ds []time.Duration) string {
	var parts []string
	for _, d := range ds {
		parts = append(parts, fmt.Sprintf("%.2f", d.Seconds()))
	}
	return strings.Join(parts, ", ") + " s"
}

func tailOf(b []byte) string {
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}
