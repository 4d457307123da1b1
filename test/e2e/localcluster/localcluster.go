// Package localcluster drives deploy/local/cluster.sh: it starts, kills and
// restarts the servers of a three-node controller cluster running as real
// processes on 127.0.0.1, and watches them through the REST API. The
// end-to-end tests (test/e2e) and the failover benchmark (bench/failover)
// share it so that both exercise the same script an operator uses.
//
// It learns everything about a node from its HTTP API and never reads a
// server's data directory; process control goes through the script alone.
// Its requests authenticate with the admin API token that `cluster.sh up`
// leaves in DIR/token: API tokens verify on every node, so the same token
// keeps working across leader failures.
package localcluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/opsconductor/opsconductor/controller/apiclient"
)

// Size is the number of servers; they are numbered 1 to Size, with node IDs
// "node1" to "node3" as the script names them.
const Size = 3

// portSpan is how many consecutive ports from the base one cluster uses:
// node N takes base+10(N-1) .. base+10(N-1)+2.
const portSpan = 10*(Size-1) + 3

// Cluster is one cluster directory managed by cluster.sh.
type Cluster struct {
	// Script is the path of deploy/local/cluster.sh.
	Script string
	// Bin is the controller binary (OPSCONDUCTOR_BIN); empty lets the
	// script use its default, bin/opsconductor in the repository.
	Bin string
	// Dir holds the cluster: CA, data dirs, logs and pid files.
	Dir string
	// BasePort is the first of the cluster's ports (BASE_PORT); 0 lets the
	// script decide.
	BasePort int
	// ServerFlags are extra server flags (OPSCONDUCTOR_SERVER_FLAGS).
	ServerFlags string
	// HistoryDSN is the PostgreSQL server on which cluster.sh creates the
	// cluster's history database (OPSCONDUCTOR_HISTORY_DSN); empty takes
	// the script's default, the local test database.
	HistoryDSN string
	// Out receives the script's output as it runs; nil discards it. A
	// failing command's output is also part of its error.
	Out io.Writer

	clients [Size]*apiclient.Client
	addrs   [Size]string
	token   *fileToken
}

// TokenFile is where `cluster.sh up` writes the cluster's admin API token.
const TokenFile = "token"

// fileToken reads DIR/token on first use, after `up` has created it, and
// keeps it.
type fileToken struct {
	path  string
	mu    sync.Mutex
	token string
}

func (f *fileToken) Token(context.Context) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.token != "" {
		return f.token, nil
	}
	raw, err := os.ReadFile(f.path)
	if err != nil {
		return "", fmt.Errorf("the cluster's API token (cluster.sh up creates it): %w", err)
	}
	f.token = strings.TrimSpace(string(raw))
	if f.token == "" {
		return "", fmt.Errorf("%s is empty", f.path)
	}
	return f.token, nil
}

// Token is the cluster's admin API token, for requests made without Client.
func (c *Cluster) Token(ctx context.Context) (string, error) { return c.token.Token(ctx) }

// New describes the cluster in dir. basePort must be the one the cluster
// was (or will be) created with; 0 means the script's default, 3010.
func New(root, bin, dir string, basePort int, out io.Writer) (*Cluster, error) {
	c := &Cluster{
		Script:   filepath.Join(root, "deploy", "local", "cluster.sh"),
		Bin:      bin,
		Dir:      dir,
		BasePort: basePort,
		Out:      out,
		token:    &fileToken{path: filepath.Join(dir, TokenFile)},
	}
	base := basePort
	if base == 0 {
		base = 3010
	}
	for i := range Size {
		c.addrs[i] = net.JoinHostPort("127.0.0.1", strconv.Itoa(base+10*i))
		cl, err := apiclient.New("http://"+c.addrs[i], apiclient.WithTokenSource(c.token))
		if err != nil {
			return nil, err
		}
		c.clients[i] = cl
	}
	return c, nil
}

// HTTPAddr is node n's REST API address (host:port).
func (c *Cluster) HTTPAddr(n int) string { return c.addrs[n-1] }

// Client talks to node n.
func (c *Cluster) Client(n int) *apiclient.Client { return c.clients[n-1] }

// All lists the node numbers.
func All() []int { return []int{1, 2, 3} }

// Others lists every node number except n.
func Others(n int) []int {
	var out []int
	for _, m := range All() {
		if m != n {
			out = append(out, m)
		}
	}
	return out
}

// NodeNumber turns a node ID ("node2") into its number.
func NodeNumber(id string) (int, bool) {
	n, err := strconv.Atoi(strings.TrimPrefix(id, "node"))
	if err != nil || !strings.HasPrefix(id, "node") || n < 1 || n > Size {
		return 0, false
	}
	return n, true
}

// Up starts every node that is not running and returns once all three
// agree on a leader (the script's own 30 s deadline applies).
func (c *Cluster) Up(ctx context.Context) error { return c.run(ctx, "up", c.Dir) }

// Down stops every node: SIGTERM, then SIGKILL after 15 s.
func (c *Cluster) Down(ctx context.Context) error { return c.run(ctx, "down", c.Dir) }

// Purge stops the cluster, drops its history database and removes Dir.
func (c *Cluster) Purge(ctx context.Context) error { return c.run(ctx, "purge", c.Dir) }

// Start (re)starts node n and returns once it serves /health.
func (c *Cluster) Start(ctx context.Context, n int) error {
	return c.run(ctx, "start", strconv.Itoa(n), c.Dir)
}

// Kill kills node n with SIGKILL and returns once the process is gone,
// with when the signal was sent.
func (c *Cluster) Kill(ctx context.Context, n int) (KillTime, error) {
	kt := KillTime{From: time.Now()}
	var buf bytes.Buffer
	if err := c.runTo(ctx, &buf, "kill", strconv.Itoa(n), c.Dir); err != nil {
		return kt, err
	}
	kt.To = time.Now()
	if t, ok := killTime(buf.String()); ok {
		kt.From, kt.To = t, t
	}
	return kt, nil
}

// KillTime bounds the moment of a SIGKILL. The script reports it to the
// microsecond (bash 5's EPOCHREALTIME), and then From and To are that
// moment. Otherwise they are the start and end of the script, which take
// hundreds of milliseconds on a busy machine: time from From to overstate
// an outage rather than understate it, and count as "after the kill" only
// what happened after To, when the process was surely dead.
type KillTime struct{ From, To time.Time }

var killLine = regexp.MustCompile(`sent SIGKILL to node\d+ \(pid \d+\) at (\d+)[.,](\d{6})\b`)

// killTime reads the kill moment from cluster.sh's output. The decimal
// separator of EPOCHREALTIME follows the locale, hence [.,].
func killTime(out string) (time.Time, bool) {
	m := killLine.FindStringSubmatch(out)
	if m == nil {
		return time.Time{}, false
	}
	sec, err1 := strconv.ParseInt(m[1], 10, 64)
	usec, err2 := strconv.ParseInt(m[2], 10, 64)
	if err1 != nil || err2 != nil {
		return time.Time{}, false
	}
	return time.Unix(sec, usec*1000), true
}

// Status runs `cluster.sh status` and returns its table.
func (c *Cluster) Status(ctx context.Context) (string, error) {
	var buf bytes.Buffer
	err := c.runTo(ctx, &buf, "status", c.Dir)
	return buf.String(), err
}

func (c *Cluster) run(ctx context.Context, args ...string) error {
	return c.runTo(ctx, nil, args...)
}

func (c *Cluster) runTo(ctx context.Context, extra io.Writer, args ...string) error {
	// bash is named explicitly so that the script need not keep its
	// executable bit (a zip download or some checkouts lose it).
	cmd := exec.CommandContext(ctx, "bash", append([]string{c.Script}, args...)...)
	cmd.Env = os.Environ()
	if c.Bin != "" {
		cmd.Env = append(cmd.Env, "OPSCONDUCTOR_BIN="+c.Bin)
	}
	if c.BasePort != 0 {
		cmd.Env = append(cmd.Env, "BASE_PORT="+strconv.Itoa(c.BasePort))
	}
	if c.ServerFlags != "" {
		cmd.Env = append(cmd.Env, "OPSCONDUCTOR_SERVER_FLAGS="+c.ServerFlags)
	}
	if c.HistoryDSN != "" {
		cmd.Env = append(cmd.Env, "OPSCONDUCTOR_HISTORY_DSN="+c.HistoryDSN)
	}
	var out bytes.Buffer
	w := []io.Writer{&out}
	if c.Out != nil {
		w = append(w, c.Out)
	}
	if extra != nil {
		w = append(w, extra)
	}
	cmd.Stdout = io.MultiWriter(w...)
	cmd.Stderr = cmd.Stdout
	// The servers the script starts must not inherit its output pipe, or
	// Wait would block until they exit. The script redirects them to their
	// logs; WaitDelay is the backstop should that ever regress.
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("cluster.sh %s: %w\n%s", strings.Join(args, " "), err, lastLines(out.String(), 60))
	}
	return nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Poll calls cond every interval until it returns nil, and fails with
// cond's last error once ctx ends. It is the only way this package and its
// users wait for the cluster: every wait has a deadline and says what it
// was still waiting for.
func Poll(ctx context.Context, interval time.Duration, cond func(context.Context) error) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		err := cond(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w; still: %v", ctx.Err(), err)
		case <-t.C:
		}
	}
}

// Health reads node n's /health with a short timeout of its own, so that a
// node that is down or stuck costs a poll one interval, not the deadline.
func (c *Cluster) Health(ctx context.Context, n int) (apiclient.Health, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	h, err := c.Client(n).Health(ctx)
	if err != nil {
		return h, fmt.Errorf("node%d: %w", n, err)
	}
	return h, nil
}

// Leader checks once that every node in nodes reports the same leader,
// that the leader is one of them and that it says it leads; it returns the
// leader's number and the health documents by node number.
func (c *Cluster) Leader(ctx context.Context, nodes []int) (int, map[int]apiclient.Health, error) {
	hs := map[int]apiclient.Health{}
	var views []string
	leaderID := ""
	agreed := true
	for _, n := range nodes {
		h, err := c.Health(ctx, n)
		if err != nil {
			return 0, nil, err
		}
		hs[n] = h
		views = append(views, fmt.Sprintf("node%d=%s(leader=%q term=%d applied=%d)", n, h.Raft.State, h.Raft.LeaderID, h.Raft.Term, h.Raft.AppliedIndex))
		switch {
		case h.Raft.LeaderID == "":
			agreed = false
		case leaderID == "":
			leaderID = h.Raft.LeaderID
		case h.Raft.LeaderID != leaderID:
			agreed = false
		}
	}
	if !agreed {
		return 0, hs, fmt.Errorf("no agreed leader: %s", strings.Join(views, " "))
	}
	l, ok := NodeNumber(leaderID)
	if _, in := hs[l]; !ok || !in {
		return 0, hs, fmt.Errorf("leader %q is not among the nodes asked: %s", leaderID, strings.Join(views, " "))
	}
	if hs[l].Raft.State != "leader" {
		return 0, hs, fmt.Errorf("%s is named leader but is %s: %s", leaderID, hs[l].Raft.State, strings.Join(views, " "))
	}
	return l, hs, nil
}

// WaitLeader waits until the nodes agree on a leader among them.
func (c *Cluster) WaitLeader(ctx context.Context, nodes []int) (int, error) {
	var leader int
	err := Poll(ctx, 50*time.Millisecond, func(ctx context.Context) error {
		l, _, err := c.Leader(ctx, nodes)
		leader = l
		return err
	})
	return leader, err
}

// WaitSameApplied waits until the nodes agree on a leader and all report
// the same applied index, which it returns. With writes stopped, equal
// applied indexes mean equal state.
func (c *Cluster) WaitSameApplied(ctx context.Context, nodes []int) (uint64, error) {
	var index uint64
	err := Poll(ctx, 50*time.Millisecond, func(ctx context.Context) error {
		_, hs, err := c.Leader(ctx, nodes)
		if err != nil {
			return err
		}
		index = hs[nodes[0]].Raft.AppliedIndex
		for _, n := range nodes {
			if got := hs[n].Raft.AppliedIndex; got != index {
				return fmt.Errorf("applied indexes differ: node%d=%d node%d=%d", nodes[0], index, n, got)
			}
		}
		return nil
	})
	return index, err
}

// WaitCaughtUp waits until node n follows the leader of the whole cluster
// and has applied as far as the leader has.
func (c *Cluster) WaitCaughtUp(ctx context.Context, n int) error {
	return Poll(ctx, 50*time.Millisecond, func(ctx context.Context) error {
		l, hs, err := c.Leader(ctx, All())
		if err != nil {
			return err
		}
		if got, want := hs[n].Raft.AppliedIndex, hs[l].Raft.AppliedIndex; got != want {
			return fmt.Errorf("node%d applied index %d, leader node%d %d", n, got, l, want)
		}
		return nil
	})
}

// WaitReady waits until every node answers /health/ready with 200.
func (c *Cluster) WaitReady(ctx context.Context, nodes []int) error {
	return Poll(ctx, 50*time.Millisecond, func(ctx context.Context) error {
		for _, n := range nodes {
			rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			err := c.Client(n).Ready(rctx)
			cancel()
			if err != nil {
				return fmt.Errorf("node%d not ready: %w", n, err)
			}
		}
		return nil
	})
}

// ListProbes pages through every probe on node n in commit order, pageSize
// at a time. consistent asks the node to catch up with the leader before
// the first page (?consistent=true), so the list holds every write
// acknowledged before the call; later pages come from the same or a newer
// state. apiclient.ListProbes has no consistent option, hence raw HTTP.
func (c *Cluster) ListProbes(ctx context.Context, n int, pageSize int, consistent bool) ([]Probe, error) {
	var all []Probe
	after := ""
	for page := 0; ; page++ {
		q := url.Values{"limit": {strconv.Itoa(pageSize)}}
		if after != "" {
			q.Set("after", after)
		}
		if consistent && page == 0 {
			q.Set("consistent", "true")
		}
		u := "http://" + c.HTTPAddr(n) + "/api/v1/operator/probes?" + q.Encode()
		var p struct {
			Items []Probe `json:"items"`
			Next  string  `json:"next"`
		}
		if err := c.getJSON(ctx, u, &p); err != nil {
			return nil, fmt.Errorf("node%d: list probes page %d: %w", n, page, err)
		}
		all = append(all, p.Items...)
		if p.Next == "" {
			return all, nil
		}
		after = p.Next
	}
}

// Probe is the part of a probe record the tests compare.
type Probe struct {
	ID      string `json:"id"`
	Node    string `json:"node"`
	Payload string `json:"payload"`
	Index   uint64 `json:"index"`
}

func (c *Cluster) getJSON(ctx context.Context, u string, out any) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	token, err := c.Token(ctx)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("GET %s: read body: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: HTTP %d: %s", u, resp.StatusCode, bytes.TrimSpace(body))
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("GET %s: decode: %w", u, err)
	}
	return nil
}

// Snapshot downloads node n's own state (?stale=true: no round trip to the
// leader, so it shows exactly what this node has applied).
func (c *Cluster) Snapshot(ctx context.Context, n int) ([]byte, error) {
	var buf bytes.Buffer
	if _, err := c.Client(n).SnapshotSave(ctx, &buf, true); err != nil {
		return nil, fmt.Errorf("node%d: snapshot: %w", n, err)
	}
	return buf.Bytes(), nil
}

// RepoRoot is the directory of the main module's go.mod, from `go env GOMOD`.
func RepoRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("go env GOMOD: not inside the opsconductor module")
	}
	return filepath.Dir(mod), nil
}

// Build compiles the controller into out.
func Build(ctx context.Context, root, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/opsconductor")
	cmd.Dir = root
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/opsconductor: %w\n%s", err, msg)
	}
	return nil
}

// FreeBasePort picks a base port whose nine ports can all be bound on
// 127.0.0.1 now. The servers are separate processes that take their ports
// from flags, so the kernel cannot hand them out with port 0; another
// process may still take one before the servers bind, which Up then
// reports as a node that exited.
func FreeBasePort(rng *rand.Rand) (int, error) {
	lo, hi := candidateRange()
	for range 200 {
		base := lo + rng.IntN(hi-lo-portSpan)
		if portsFree(base) {
			return base, nil
		}
	}
	return 0, fmt.Errorf("no free range of %d ports found in %d-%d", portSpan, lo, hi)
}

// candidateRange is 20000-60000 minus the kernel's ephemeral range where
// that is known: ports there are handed to outgoing connections (the
// servers' own connections to each other among them), which could take a
// port that a killed server needs back when it restarts.
func candidateRange() (lo, hi int) {
	lo, hi = 20000, 60000
	raw, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return lo, hi
	}
	f := strings.Fields(string(raw))
	if len(f) != 2 {
		return lo, hi
	}
	elo, err1 := strconv.Atoi(f[0])
	ehi, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil {
		return lo, hi
	}
	// Keep the larger part of 20000-60000 that lies outside [elo, ehi].
	below, above := elo-lo, hi-ehi
	switch {
	case below >= above && below > 10*portSpan:
		return lo, elo
	case above > 10*portSpan:
		return ehi + 1, hi
	}
	return lo, hi
}

func portsFree(base int) bool {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for i := range Size {
		for off := range 3 {
			l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(base+10*i+off)))
			if err != nil {
				return false
			}
			ls = append(ls, l)
		}
	}
	return true
}

// CheckNumbered checks one attempt's stored output from a step that prints
// "line 1" … "line n": chunks numbered 1, 2 … without a gap or a repeat,
// holding those lines in order, each once. It returns how many lines were
// good (all n when err is nil).
func CheckNumbered(chunks []apiclient.RunLogLine) (int, error) {
	var data strings.Builder
	for i, l := range chunks {
		if l.Seq != uint64(i+1) {
			return 0, fmt.Errorf("chunk %d of %d has seq %d", i+1, len(chunks), l.Seq)
		}
		data.WriteString(l.Data)
	}
	n := 0
	for line := range strings.Lines(data.String()) {
		n++
		if want := fmt.Sprintf("line %d\n", n); line != want {
			return n - 1, fmt.Errorf("line %d is %q; want %q", n, line, want)
		}
	}
	return n, nil
}
