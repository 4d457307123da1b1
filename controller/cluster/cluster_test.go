package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/goleak"

	"github.com/opsconductor/opsconductor/controller/probe"
	"github.com/opsconductor/opsconductor/controller/problem"
	"github.com/opsconductor/opsconductor/controller/state"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testNode is one in-process controller on real TCP loopback sockets.
type testNode struct {
	*Node
	faults *Faults
	dir    string
	probes *probe.Service
}

type testCluster struct {
	t     testing.TB
	ca    *CA
	nodes []*testNode
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("OPSCONDUCTOR_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
}

func newTestNode(t testing.TB, ca *CA, id, dir, bind string, mut func(*Config)) *testNode {
	t.Helper()
	log := testLogger(t).With("node_id", id)
	reg := state.NewRegistry()
	reg.MustRegister(probe.Domain())
	store, err := state.NewStore(reg, log)
	if err != nil {
		t.Fatal(err)
	}
	faults := NewFaults()
	cfg := Config{
		NodeID: id, DataDir: dir, RaftBind: bind, CA: ca, Faults: faults, Logger: log,
		Batching: true, ApplyHold: 3 * time.Second, ApplyTimeout: 3 * time.Second,
	}
	if mut != nil {
		mut(&cfg)
	}
	n, err := New(cfg, state.NewFSM(store, log))
	if err != nil {
		t.Fatalf("start %s: %v", id, err)
	}
	return &testNode{Node: n, faults: faults, dir: dir, probes: probe.NewService(id, n, store)}
}

// newTestCluster starts node 1 as a single-node cluster and joins the rest
// through it, the path `--retry-join` takes against a running cluster.
func newTestCluster(t testing.TB, size int) *testCluster {
	return newTestClusterWith(t, size, nil)
}

// newTestClusterWith is newTestCluster with a change to every node's config.
func newTestClusterWith(t testing.TB, size int, mut func(*Config)) *testCluster {
	t.Helper()
	ca, err := CreateCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c := &testCluster{t: t, ca: ca}
	first := newTestNode(t, ca, "node1", t.TempDir(), "127.0.0.1:0", mut)
	c.nodes = append(c.nodes, first)
	c.waitLeader(nil)
	for i := 2; i <= size; i++ {
		c.nodes = append(c.nodes, newTestNode(t, ca, "node"+strconv.Itoa(i), t.TempDir(), "127.0.0.1:0", func(cfg *Config) {
			if mut != nil {
				mut(cfg)
			}
			cfg.RetryJoin = []string{first.RaftAddr()}
			cfg.RetryInterval = 50 * time.Millisecond
		}))
	}
	c.waitVoters(size)
	t.Cleanup(c.shutdown)
	return c
}

func (c *testCluster) shutdown() {
	var wg sync.WaitGroup
	for _, n := range c.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = n.Shutdown(ctx)
		}()
	}
	wg.Wait()
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		ok, why := cond()
		if ok {
			return
		}
		last = why
		time.Sleep(10 * time.Millisecond) // polling with a deadline
	}
	t.Fatalf("timed out after %s waiting for %s: %s", timeout, what, last)
}

// waitLeader waits until exactly one of nodes (all when nil) leads and the
// others agree on it, and returns it.
func (c *testCluster) waitLeader(nodes []*testNode) *testNode {
	c.t.Helper()
	if nodes == nil {
		nodes = c.nodes
	}
	var leader *testNode
	waitFor(c.t, 10*time.Second, "a leader", func() (bool, string) {
		leader = nil
		for _, n := range nodes {
			if n.IsLeader() {
				if leader != nil {
					return false, "two leaders"
				}
				leader = n
			}
		}
		if leader == nil {
			return false, "no leader"
		}
		for _, n := range nodes {
			if _, id := n.raft.LeaderWithID(); string(id) != leader.NodeID() {
				return false, n.NodeID() + " does not know the leader yet"
			}
		}
		return leader.Ready() == nil, "leader not ready"
	})
	return leader
}

func (c *testCluster) waitVoters(n int) {
	c.t.Helper()
	waitFor(c.t, 15*time.Second, fmt.Sprintf("%d voters", n), func() (bool, string) {
		for _, node := range c.nodes {
			if len(node.Status().Peers) != n {
				return false, fmt.Sprintf("%s sees %d peers", node.NodeID(), len(node.Status().Peers))
			}
		}
		return true, ""
	})
}

// partition cuts the links between group and everyone else, both ways.
func (c *testCluster) partition(group ...*testNode) {
	in := map[string]bool{}
	for _, n := range group {
		in[n.NodeID()] = true
	}
	for _, a := range c.nodes {
		for _, b := range c.nodes {
			if in[a.NodeID()] != in[b.NodeID()] {
				a.faults.Block(b.NodeID())
			}
		}
	}
}

func (c *testCluster) heal() {
	for _, n := range c.nodes {
		n.faults.Heal()
	}
}

func (c *testCluster) others(n *testNode) []*testNode {
	var out []*testNode
	for _, o := range c.nodes {
		if o != n {
			out = append(out, o)
		}
	}
	return out
}

// ensureSame waits until every node has applied the same index and then
// asserts that their logs and FSM snapshots are byte-identical, as
// hashicorp/raft's own EnsureSame does.
func (c *testCluster) ensureSame() {
	c.t.Helper()
	waitFor(c.t, 10*time.Second, "all nodes to apply the same index", func() (bool, string) {
		want := c.nodes[0].raft.AppliedIndex()
		for _, n := range c.nodes[1:] {
			if got := n.raft.AppliedIndex(); got != want {
				return false, fmt.Sprintf("%s at %d, %s at %d", c.nodes[0].NodeID(), want, n.NodeID(), got)
			}
		}
		// Raft counts an entry applied when it hands it to the FSM
		// goroutine, so the stores themselves must agree too: every one.
		for _, n := range c.nodes[1:] {
			if n.store.LastIndex() != c.nodes[0].store.LastIndex() {
				return false, fmt.Sprintf("store of %s at %d, %s at %d", c.nodes[0].NodeID(), c.nodes[0].store.LastIndex(), n.NodeID(), n.store.LastIndex())
			}
		}
		return true, ""
	})
	ref := c.nodes[0]
	var refSnap bytes.Buffer
	if err := ref.SnapshotSaveLocal(&refSnap); err != nil {
		c.t.Fatal(err)
	}
	for _, n := range c.nodes[1:] {
		var snap bytes.Buffer
		if err := n.SnapshotSaveLocal(&snap); err != nil {
			c.t.Fatal(err)
		}
		if !bytes.Equal(refSnap.Bytes(), snap.Bytes()) {
			c.t.Fatalf("FSM snapshot of %s differs from %s (%d vs %d bytes)", n.NodeID(), ref.NodeID(), snap.Len(), refSnap.Len())
		}
		c.compareLogs(ref, n)
	}
}

func (c *testCluster) compareLogs(a, b *testNode) {
	c.t.Helper()
	aFirst, _ := a.boltStore.FirstIndex()
	bFirst, _ := b.boltStore.FirstIndex()
	aLast, _ := a.boltStore.LastIndex()
	bLast, _ := b.boltStore.LastIndex()
	if aLast != bLast {
		c.t.Fatalf("last log index: %s has %d, %s has %d", a.NodeID(), aLast, b.NodeID(), bLast)
	}
	// Compaction may have removed different prefixes; compare the overlap.
	for i := max(aFirst, bFirst); i <= aLast && i > 0; i++ {
		var la, lb raft.Log
		if err := a.boltStore.GetLog(i, &la); err != nil {
			c.t.Fatalf("%s log %d: %v", a.NodeID(), i, err)
		}
		if err := b.boltStore.GetLog(i, &lb); err != nil {
			c.t.Fatalf("%s log %d: %v", b.NodeID(), i, err)
		}
		if la.Term != lb.Term || la.Type != lb.Type || !bytes.Equal(la.Data, lb.Data) {
			c.t.Fatalf("log %d differs between %s (term %d) and %s (term %d)", i, a.NodeID(), la.Term, b.NodeID(), lb.Term)
		}
	}
}

func writeProbes(t testing.TB, n *testNode, count int) []probe.Record {
	t.Helper()
	var out []probe.Record
	for i := range count {
		rec, err := n.probes.Write(context.Background(), fmt.Sprintf("write %d via %s", i, n.NodeID()))
		if err != nil {
			t.Fatalf("write %d via %s: %v", i, n.NodeID(), err)
		}
		out = append(out, rec)
	}
	return out
}

func TestClusterFailover(t *testing.T) {
	c := newTestCluster(t, 3)
	leader := c.waitLeader(nil)
	oldTerm := leader.Status().Term

	// Writes through a follower are forwarded and return the leader's result.
	follower := c.others(leader)[0]
	before := writeProbes(t, follower, 20)
	if before[0].Index == 0 {
		t.Fatal("forwarded write returned no index")
	}
	// …and the follower reads them back at once: Apply waits for its own
	// store, so a client reads its writes from the node it wrote through.
	for _, rec := range before {
		if _, err := follower.probes.Get(context.Background(), rec.ID); err != nil {
			t.Fatalf("the follower does not have its own forwarded write %s yet: %v", rec.ID, err)
		}
	}

	t.Run("a partitioned leader is replaced by one with a higher term", func(t *testing.T) {
		c.partition(leader)
		majority := c.others(leader)
		newLeader := c.waitLeader(majority)
		if got := newLeader.Status().Term; got <= oldTerm {
			t.Fatalf("new leader's term %d is not above the old %d", got, oldTerm)
		}
		// The majority keeps accepting writes.
		writeProbes(t, majority[1], 5)
	})

	t.Run("the old leader's pending write fails cleanly and is never acknowledged", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := leader.probes.Write(ctx, "minority write")
		if err == nil {
			t.Fatal("a write on the minority side was acknowledged")
		}
		if !problem.Is(err, problem.KindUnavailable) && !problem.Is(err, problem.KindTimeout) {
			t.Fatalf("minority write failed with %v, want an unavailable problem", err)
		}
	})

	t.Run("after healing every node has identical logs and state", func(t *testing.T) {
		c.heal()
		c.waitLeader(nil)
		writeProbes(t, c.nodes[2], 5)
		c.ensureSame()
		for _, n := range c.nodes {
			recs, err := n.probes.List(context.Background(), "", 1000)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				if r.Payload == "minority write" {
					t.Fatalf("%s holds the write the minority side never acknowledged", n.NodeID())
				}
			}
			if len(recs) != 30 {
				t.Fatalf("%s holds %d probes, want 30", n.NodeID(), len(recs))
			}
		}
	})
}

func TestMinorityNeverAcknowledges(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("OPSCONDUCTOR_TEST_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (rerun with OPSCONDUCTOR_TEST_SEED=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed))

	c := newTestCluster(t, 3)
	leader := c.waitLeader(nil)
	c.partition(leader)

	// Hammer the isolated leader from several writers while the majority
	// elects a new leader; none of these writes may be acknowledged.
	var wg sync.WaitGroup
	acked := make(chan probe.Record, 100)
	for w := range 4 {
		writes := 1 + rng.IntN(5) // drawn here: the generator is not goroutine-safe
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			for i := range writes {
				if rec, err := leader.probes.Write(ctx, fmt.Sprintf("minority %d/%d", w, i)); err == nil {
					acked <- rec
				}
			}
		}()
	}
	newLeader := c.waitLeader(c.others(leader))
	writeProbes(t, newLeader, 3)
	wg.Wait()
	close(acked)
	for rec := range acked {
		t.Errorf("minority side acknowledged write %q at index %d", rec.Payload, rec.Index)
	}
	c.heal()
	c.ensureSame()
}

func TestBootstrapExpect(t *testing.T) {
	ca, err := CreateCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	addrs := freeAddrs(t, 3)
	c := &testCluster{t: t, ca: ca}
	for i, addr := range addrs {
		var join []string
		for j, other := range addrs {
			if j != i {
				join = append(join, other)
			}
		}
		c.nodes = append(c.nodes, newTestNode(t, ca, "node"+strconv.Itoa(i+1), t.TempDir(), addr, func(cfg *Config) {
			cfg.BootstrapExpect = 3
			cfg.RetryJoin = join
			cfg.RetryInterval = 50 * time.Millisecond
		}))
	}
	t.Cleanup(c.shutdown)
	c.waitVoters(3)
	leader := c.waitLeader(nil)
	writeProbes(t, leader, 3)
	waitFor(t, 5*time.Second, "cluster meta", func() (bool, string) {
		_, ok := state.ClusterMeta(leader.Store().ReadTxn())
		return ok, "cluster meta not initialised"
	})
	c.ensureSame()
}

func TestConsistentReadOnFollower(t *testing.T) {
	c := newTestCluster(t, 3)
	leader := c.waitLeader(nil)
	follower := c.others(leader)[1]
	recs := writeProbes(t, leader, 10)
	if err := follower.ConsistentRead(context.Background()); err != nil {
		t.Fatal(err)
	}
	// After a consistent read the follower must see the last write.
	if _, err := follower.probes.Get(context.Background(), recs[len(recs)-1].ID); err != nil {
		t.Fatalf("follower does not see a write committed before its consistent read: %v", err)
	}
}

func TestNoLeaderFailsWithinHold(t *testing.T) {
	c := newTestCluster(t, 3)
	leader := c.waitLeader(nil)
	lonely := c.others(leader)[0]
	// Isolate every node from every other: nobody can win an election.
	for _, n := range c.nodes {
		c.partition(n)
	}
	start := time.Now()
	_, err := lonely.probes.Write(context.Background(), "nobody home")
	if !problem.Is(err, problem.KindUnavailable) {
		t.Fatalf("write without a leader: got %v, want unavailable", err)
	}
	if held := time.Since(start); held > 6*time.Second {
		t.Fatalf("write waited %s, longer than the hold time", held)
	}
}

func TestRemovePeerAndTransferLeadership(t *testing.T) {
	c := newTestCluster(t, 3)
	leader := c.waitLeader(nil)
	follower := c.others(leader)[0]
	if err := follower.TransferLeadership(context.Background()); err != nil {
		t.Fatalf("transfer leadership via a follower: %v", err)
	}
	newLeader := c.waitLeader(nil)
	if newLeader == leader {
		t.Fatal("leadership did not move")
	}
	if err := follower.RemovePeer(context.Background(), "nope"); !problem.Is(err, problem.KindNotFound) {
		t.Fatalf("remove unknown peer: got %v, want not found", err)
	}
	victim := c.others(newLeader)[0]
	if err := follower.RemovePeer(context.Background(), victim.NodeID()); err != nil {
		t.Fatalf("remove peer: %v", err)
	}
	waitFor(t, 5*time.Second, "two voters", func() (bool, string) {
		return len(newLeader.Status().Peers) == 2, "still three"
	})
}

func freeAddrs(t testing.TB, n int) []string {
	t.Helper()
	var out []string
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().String())
	}
	for _, ln := range lns {
		ln.Close()
	}
	return out
}

func TestLeaderHandsOverOnShutdown(t *testing.T) {
	c := newTestCluster(t, 3)
	leader := c.waitLeader(nil)
	term := leader.Status().Term
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := leader.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	// Without a handover the others would first wait out a heartbeat
	// timeout (600 ms or more); with it a new leader is already elected
	// when Shutdown returns.
	rest := c.others(leader)
	waitFor(t, 400*time.Millisecond, "a leader right after shutdown", func() (bool, string) {
		for _, n := range rest {
			if n.IsLeader() && n.Status().Term > term {
				return true, ""
			}
		}
		return false, "no new leader yet"
	})
	c.nodes = rest // the cleanup must not shut the old leader down twice
}

func TestPeerProgress(t *testing.T) {
	c := newTestCluster(t, 3)
	leader := c.waitLeader(nil)
	writeProbes(t, leader, 5)
	c.ensureSame()
	cut := c.others(leader)[0]
	c.partition(cut)
	writeProbes(t, leader, 5)
	byID := map[string]PeerProgress{}
	for _, p := range leader.PeerProgress(context.Background()) {
		byID[p.ID] = p
	}
	if len(byID) != 3 {
		t.Fatalf("got %d peers, want 3", len(byID))
	}
	if p := byID[cut.NodeID()]; p.Reachable {
		t.Fatalf("partitioned peer reported reachable: %+v", p)
	}
	if p := byID[leader.NodeID()]; !p.Reachable || !p.Leader || p.TrailsLeaderBy != 0 || p.LastIndex == 0 {
		t.Fatalf("leader: %+v", p)
	}
	other := c.others(leader)[1]
	if p := byID[other.NodeID()]; !p.Reachable || p.LastIndex == 0 || p.LastIndex+p.TrailsLeaderBy != byID[leader.NodeID()].LastIndex {
		t.Fatalf("follower %s: %+v (leader %+v)", other.NodeID(), p, byID[leader.NodeID()])
	}
	c.heal()
}

// TestChaosPartitions cuts random links while writers keep writing through
// random nodes, then heals and checks the invariants that matter: every
// acknowledged write is on every node exactly once, and all logs and
// states are identical. Rerun a failure with OPSCONDUCTOR_TEST_SEED.
func TestChaosPartitions(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("OPSCONDUCTOR_TEST_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (rerun with OPSCONDUCTOR_TEST_SEED=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))

	c := newTestCluster(t, 3)
	c.waitLeader(nil)

	var mu sync.Mutex
	acked := map[string]bool{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 3 {
		// Each writer draws its own targets up front: the generator is not
		// goroutine-safe, and this keeps a seed's run reproducible.
		targets := make([]int, 400)
		for i := range targets {
			targets[i] = rng.IntN(len(c.nodes))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				n := c.nodes[targets[i%len(targets)]]
				payload := fmt.Sprintf("w%d-%d", w, i)
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				_, err := n.probes.Write(ctx, payload)
				cancel()
				if err == nil {
					mu.Lock()
					acked[payload] = true
					mu.Unlock()
				}
			}
		}()
	}

	for round := range 6 {
		switch rng.IntN(3) {
		case 0: // isolate one node, often the leader
			victim := c.nodes[rng.IntN(len(c.nodes))]
			t.Logf("round %d: isolate %s", round, victim.NodeID())
			c.partition(victim)
		case 1: // cut one link only: both ends still reach the third node
			a, b := rng.IntN(3), rng.IntN(3)
			for b == a {
				b = rng.IntN(3)
			}
			t.Logf("round %d: cut %s <-> %s", round, c.nodes[a].NodeID(), c.nodes[b].NodeID())
			c.nodes[a].faults.Block(c.nodes[b].NodeID())
			c.nodes[b].faults.Block(c.nodes[a].NodeID())
		default:
			t.Logf("round %d: healthy", round)
		}
		// Let the cluster work under the fault until a few more writes
		// are acknowledged (or a while passes, if no quorum can form).
		mu.Lock()
		before := len(acked)
		mu.Unlock()
		deadline := time.Now().Add(1500 * time.Millisecond)
		for time.Now().Before(deadline) {
			mu.Lock()
			n := len(acked)
			mu.Unlock()
			if n >= before+20 {
				break
			}
			time.Sleep(20 * time.Millisecond) // pacing the fault schedule, not synchronising
		}
		c.heal()
		c.waitLeader(nil)
	}
	close(stop)
	wg.Wait()
	c.ensureSame()

	mu.Lock()
	defer mu.Unlock()
	if len(acked) == 0 {
		t.Fatal("no write was acknowledged at all")
	}
	for _, n := range c.nodes {
		seen := map[string]int{}
		recs, err := n.probes.List(context.Background(), "", probe.MaxRecords)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			seen[r.Payload]++
		}
		for p := range acked {
			if seen[p] != 1 {
				t.Fatalf("%s holds acknowledged write %q %d times, want once", n.NodeID(), p, seen[p])
			}
		}
		for p, k := range seen {
			if k != 1 {
				t.Fatalf("%s holds write %q %d times", n.NodeID(), p, k)
			}
		}
	}
	t.Logf("%d writes acknowledged across 6 fault rounds", len(acked))
}

func TestLeaderReportsItsAdvertisedAddressesToFollowers(t *testing.T) {
	c := newTestClusterWith(t, 3, func(cfg *Config) {
		cfg.HTTPAdvertise = "http-" + cfg.NodeID + ":8080"
		cfg.AgentAdvertise = "agent-" + cfg.NodeID + ":3001"
	})
	leader := c.waitLeader(nil)
	want := LeaderInfo{ID: leader.NodeID(), RaftAddr: leader.RaftAddr(),
		HTTPAddr: "http-" + leader.NodeID() + ":8080", AgentAddr: "agent-" + leader.NodeID() + ":3001"}
	for _, n := range c.nodes {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		got, err := n.Leader(ctx)
		cancel()
		if err != nil || got != want {
			t.Fatalf("%s: Leader() = %+v, %v; want %+v", n.NodeID(), got, err, want)
		}
	}
	// A second ask on a follower is answered from the cache.
	follower := c.others(leader)[0]
	if got, err := follower.Leader(context.Background()); err != nil || got != want {
		t.Fatalf("cached Leader() = %+v, %v", got, err)
	}
}

// A single server whose history is a local file takes nobody in, even
// though it was started without cluster flags.
func TestRefuseJoins(t *testing.T) {
	ca, err := CreateCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c := &testCluster{t: t, ca: ca}
	c.nodes = append(c.nodes, newTestNode(t, ca, "node1", t.TempDir(), "127.0.0.1:0", func(cfg *Config) {
		cfg.RefuseJoins = "its history is embedded"
	}))
	t.Cleanup(c.shutdown)
	leader := c.waitLeader(nil)
	body, _ := json.Marshal(joinRequest{ID: "node2", Addr: "127.0.0.1:1"})
	_, err = leader.handleJoin(context.Background(), "node2", body)
	if p, ok := problem.As(err); !ok || p.Code != "join_refused" || !strings.Contains(p.Message, "its history is embedded") {
		t.Fatalf("join answered %v, want join_refused with the reason", err)
	}
	if n := len(leader.Status().Peers); n != 1 {
		t.Fatalf("%d peers after a refused join, want 1", n)
	}
}
