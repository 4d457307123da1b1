// Package cluster runs one controller's Raft node: storage, the mutual-TLS
// transport shared with controller-to-controller RPC, bootstrap and join,
// leader observation, and Apply with forwarding to the leader. It decides
// nothing about what commands mean (that is controller/state and the
// domains) and never writes replicated state except through Raft.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"

	"github.com/opsconductor/opsconductor/controller/problem"
	"github.com/opsconductor/opsconductor/controller/state"
	"github.com/opsconductor/opsconductor/internal/hclogslog"
)

// Config configures one node. Zero durations take the LAN defaults below.
type Config struct {
	NodeID  string
	DataDir string
	// RaftBind is the address the Raft/RPC port listens on; RaftAdvertise
	// is the address peers dial (defaults to RaftBind).
	RaftBind      string
	RaftAdvertise string
	// HTTPAdvertise is this node's API address, reported to peers and
	// operators.
	HTTPAdvertise string
	// AgentAdvertise is this node's agent gRPC address as agents dial it;
	// a follower redirects agents to the leader's (see Leader).
	AgentAdvertise string

	// BootstrapExpect is the number of servers to wait for before
	// bootstrapping a new cluster together. 0 or 1 with no RetryJoin
	// bootstraps a single-node cluster.
	BootstrapExpect int
	// RetryJoin lists Raft addresses of other servers to discover or join.
	RetryJoin     []string
	RetryInterval time.Duration
	// RefuseJoins, when set, is why this server must stay alone (its
	// history store is a local file): a server asking to join is refused
	// with it, even though this one was started without cluster flags.
	RefuseJoins string

	CA *CA

	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	// ApplyHold is how long a write waits for a leader before failing.
	ApplyHold time.Duration
	// ApplyTimeout bounds one write once a leader has it.
	ApplyTimeout time.Duration
	// Batching coalesces concurrent writes into one log entry.
	Batching bool
	// MaxBatch bounds the commands in one coalesced entry.
	MaxBatch int

	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	TrailingLogs      uint64

	// Faults cuts links in tests; nil in production.
	Faults *Faults
	// Logger should already carry node_id; the node adds nothing.
	Logger *slog.Logger
}

// LAN defaults: a kill -9 of the leader is noticed after one to two
// heartbeat timeouts and a new leader elected within about one more, inside
// the 3 s failover target. The leader lease (how long a leader keeps
// leading without hearing from a quorum) is kept at 500 ms: at 250 ms a new
// leader on a saturated 2-core host stepped down again and again because
// its followers' answers queued behind a backlog of forwarded writes.
func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.HeartbeatTimeout, 600*time.Millisecond)
	def(&c.ElectionTimeout, 600*time.Millisecond)
	def(&c.LeaderLeaseTimeout, 500*time.Millisecond)
	def(&c.CommitTimeout, 10*time.Millisecond)
	def(&c.ApplyHold, 7*time.Second)
	def(&c.ApplyTimeout, 10*time.Second)
	def(&c.RetryInterval, time.Second)
	def(&c.SnapshotInterval, 30*time.Second)
	if c.MaxBatch == 0 {
		c.MaxBatch = 512
	}
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = 8192
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = 10240
	}
	if c.RaftAdvertise == "" {
		c.RaftAdvertise = c.RaftBind
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

func (c *Config) validate() error {
	var errs []error
	if c.NodeID == "" {
		errs = append(errs, errors.New("node ID is empty"))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data dir is empty"))
	}
	if c.CA == nil {
		errs = append(errs, errors.New("cluster CA is missing"))
	}
	if c.BootstrapExpect < 0 {
		errs = append(errs, fmt.Errorf("bootstrap-expect %d is negative", c.BootstrapExpect))
	}
	if c.BootstrapExpect > 1 && len(c.RetryJoin) == 0 {
		errs = append(errs, fmt.Errorf("bootstrap-expect %d needs at least one retry-join address", c.BootstrapExpect))
	}
	if host, _, err := net.SplitHostPort(c.RaftAdvertise); err != nil {
		errs = append(errs, fmt.Errorf("raft advertise address %q: %w", c.RaftAdvertise, err))
	} else if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		errs = append(errs, fmt.Errorf("raft advertise address %q is unspecified; set --advertise", c.RaftAdvertise))
	}
	if c.MaxBatch > state.MaxCommandsPerEntry {
		errs = append(errs, fmt.Errorf("max batch %d exceeds %d", c.MaxBatch, state.MaxCommandsPerEntry))
	}
	return errors.Join(errs...)
}

// Node is one controller's Raft member.
type Node struct {
	cfg   Config
	log   *slog.Logger
	fsm   *state.FSM
	store *state.Store

	raft      *raft.Raft
	boltStore *raftboltdb.BoltStore
	mux       *mux
	rpc       *rpcClient
	observer  *raft.Observer
	batcher   *batcher
	metrics   *Metrics
	// certExpiry is when the node certificate issued at open expires; set
	// before New returns and never changed.
	certExpiry time.Time

	// leaderChanged is closed and replaced on every leadership change, so
	// writers waiting for a leader wake at once instead of polling.
	leaderMu      sync.Mutex
	leaderChanged chan struct{}
	// readsReady is true once this leader has applied everything committed
	// before its term (a barrier), as Consul's consistent reads require.
	readsReady atomic.Bool
	// startLastIndex is the last log index this node had on disk when it
	// started; set once before Raft runs, read only after.
	startLastIndex uint64

	leaderInfo leaderCache

	discoverMu sync.Mutex
	discovered map[string]string // node ID → raft address, before bootstrap

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New opens the node's storage and starts Raft, bootstrapping or joining as
// configured. The node runs until Shutdown.
func New(cfg Config, fsm *state.FSM) (*Node, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("cluster config: %w", err)
	}
	n := &Node{
		cfg: cfg, log: cfg.Logger, fsm: fsm, store: fsm.Store(),
		leaderChanged: make(chan struct{}), discovered: map[string]string{},
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.metrics = newMetrics(n)
	if err := n.open(); err != nil {
		n.cancel()
		n.closeStorage()
		return nil, err
	}
	return n, nil
}

func (n *Node) open() error {
	raftDir := filepath.Join(n.cfg.DataDir, "raft")
	if err := os.MkdirAll(raftDir, 0o700); err != nil {
		return fmt.Errorf("create raft dir: %w", err)
	}
	// The freelist is rebuilt on open instead of written on every commit
	// (as Consul offers with raft_boltdb.NoFreelistSync): one page fewer per
	// fsync'd append, and the hashmap freelist stays fast as the file grows.
	bs, err := raftboltdb.New(raftboltdb.Options{
		Path: filepath.Join(raftDir, "raft.db"),
		BoltOptions: &bbolt.Options{Timeout: time.Second, NoFreelistSync: true, FreelistType: bbolt.FreelistMapType,
			// Growing the file remaps it under bbolt's write lock, which
			// stalls appends; a generous initial mapping (address space,
			// not memory) keeps that off the hot path.
			InitialMmapSize: 256 << 20},
	})
	if err != nil {
		return fmt.Errorf("open raft log %s: %w", filepath.Join(raftDir, "raft.db"), err)
	}
	n.boltStore = bs
	hlog := hclogslog.New(n.log, hclogslog.Options{Level: hclog.Info})
	snaps, err := raft.NewFileSnapshotStoreWithLogger(raftDir, 3, hlog.Named("snapshot"))
	if err != nil {
		return fmt.Errorf("open snapshot store: %w", err)
	}

	advHost, _, _ := net.SplitHostPort(n.cfg.RaftAdvertise)
	var ips []net.IP
	if ip := net.ParseIP(advHost); ip != nil {
		ips = append(ips, ip)
	}
	ips = append(ips, net.IPv4(127, 0, 0, 1), net.IPv6loopback)
	serverTLS, clientTLS, err := n.cfg.CA.tlsConfigs(n.cfg.NodeID, ips)
	if err != nil {
		return err
	}
	n.certExpiry = serverTLS.Certificates[0].Leaf.NotAfter
	ln, err := net.Listen("tcp", n.cfg.RaftBind)
	if err != nil {
		return fmt.Errorf("listen on raft address %s: %w", n.cfg.RaftBind, err)
	}
	advertise, err := resolveAdvertise(n.ctx, n.cfg.RaftAdvertise, advertiseResolveWait, func(a string) (*net.TCPAddr, error) {
		return net.ResolveTCPAddr("tcp", a)
	}, n.log)
	if err != nil {
		ln.Close()
		return fmt.Errorf("resolve raft advertise address %s: %w", n.cfg.RaftAdvertise, err)
	}
	if advertise.Port == 0 { // bound to :0 in tests: advertise the real port
		advertise = ln.Addr().(*net.TCPAddr)
		n.cfg.RaftAdvertise = advertise.String()
	}
	n.mux = newMux(ln, advertise, serverTLS, clientTLS, n.cfg.Faults, n.log)
	n.rpc = newRPCClient(func(ctx context.Context, addr string) (net.Conn, error) {
		return n.mux.dial(ctx, addr, protoRPC)
	})
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: streamLayer{n.mux}, MaxPool: 3, Timeout: 10 * time.Second, Logger: hlog.Named("transport"),
	})

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(n.cfg.NodeID)
	rc.HeartbeatTimeout = n.cfg.HeartbeatTimeout
	rc.ElectionTimeout = n.cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = n.cfg.LeaderLeaseTimeout
	rc.CommitTimeout = n.cfg.CommitTimeout
	rc.SnapshotThreshold = n.cfg.SnapshotThreshold
	rc.SnapshotInterval = n.cfg.SnapshotInterval
	rc.TrailingLogs = n.cfg.TrailingLogs
	rc.BatchApplyCh = true
	rc.Logger = hlog.Named("raft")
	if err := raft.ValidateConfig(rc); err != nil {
		return fmt.Errorf("raft config: %w", err)
	}
	existing, err := raft.HasExistingState(bs, bs, snaps)
	if err != nil {
		return fmt.Errorf("inspect raft state: %w", err)
	}
	// Replication reads recent entries back; the cache serves them from
	// memory instead of a bbolt read transaction each (as Consul does).
	logs, err := raft.NewLogCache(512, bs)
	if err != nil {
		return fmt.Errorf("raft log cache: %w", err)
	}
	r, err := raft.NewRaft(rc, n.fsm, logs, bs, snaps, trans)
	if err != nil {
		return fmt.Errorf("start raft: %w", err)
	}
	n.raft = r
	n.startLastIndex = r.LastIndex()

	obsCh := make(chan raft.Observation, 16)
	n.observer = raft.NewObserver(obsCh, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	r.RegisterObserver(n.observer)
	n.batcher = newBatcher(n)

	n.mux.start(func(conn net.Conn, peerID string) { serveRPC(n.ctx, conn, peerID, n.rpcHandlers()) })
	n.goRun(func() { n.watchLeadership(obsCh) })
	n.goRun(n.batcher.run)

	switch {
	case existing:
		n.log.Info("raft state found; rejoining the existing cluster", "raft_addr", n.cfg.RaftAdvertise)
	case n.cfg.BootstrapExpect <= 1 && len(n.cfg.RetryJoin) == 0:
		if err := n.bootstrap([]raft.Server{n.self()}); err != nil {
			return err
		}
	default:
		n.goRun(n.discover)
	}
	return nil
}

func (n *Node) goRun(f func()) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f()
	}()
}

func (n *Node) self() raft.Server {
	return raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(n.cfg.NodeID), Address: raft.ServerAddress(n.cfg.RaftAdvertise)}
}

func (n *Node) bootstrap(servers []raft.Server) error {
	n.log.Info("bootstrapping a new cluster", "servers", len(servers))
	if err := n.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
		return fmt.Errorf("bootstrap cluster: %w", err)
	}
	return nil
}

// Store is the local replicated state store.
func (n *Node) Store() *state.Store { return n.store }

// Metrics returns the node's Prometheus collector.
func (n *Node) Metrics() *Metrics { return n.metrics }

// NodeID is this node's Raft server ID.
func (n *Node) NodeID() string { return n.cfg.NodeID }

// RaftAddr is the address peers dial (resolved when bound to port 0).
func (n *Node) RaftAddr() string { return n.cfg.RaftAdvertise }

// IsLeader reports whether this node is the leader now.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// LeaderChanged returns a channel closed at the next change of leader,
// this node gaining or losing leadership included. Take a new one after
// each close.
func (n *Node) LeaderChanged() <-chan struct{} { return n.leaderWait() }

func (n *Node) leaderWait() <-chan struct{} {
	n.leaderMu.Lock()
	defer n.leaderMu.Unlock()
	return n.leaderChanged
}

func (n *Node) watchLeadership(obsCh chan raft.Observation) {
	leaderCh := n.raft.LeaderCh()
	for {
		select {
		case <-n.ctx.Done():
			return
		case o := <-obsCh:
			lo := o.Data.(raft.LeaderObservation)
			n.log.Info("leader changed", "leader_id", string(lo.LeaderID), "leader_addr", string(lo.LeaderAddr))
			n.leaderMu.Lock()
			close(n.leaderChanged)
			n.leaderChanged = make(chan struct{})
			n.leaderMu.Unlock()
		case isLeader := <-leaderCh:
			n.readsReady.Store(false)
			if isLeader {
				n.goRun(n.establishLeadership)
			}
		}
	}
}

// establishLeadership runs once per term on the new leader: a barrier so
// that everything committed by earlier leaders is applied here before
// consistent reads are served, then the cluster's identity if it has none.
func (n *Node) establishLeadership() {
	if err := n.raft.Barrier(n.cfg.ApplyTimeout).Error(); err != nil {
		n.log.Warn("leadership barrier failed", "error", err)
		return
	}
	if n.raft.State() != raft.Leader {
		return
	}
	n.readsReady.Store(true)
	if _, ok := state.ClusterMeta(n.store.ReadTxn()); ok {
		return
	}
	id, err := newClusterID()
	if err != nil {
		n.log.Error("cannot create cluster ID", "error", err)
		return
	}
	cmd, err := state.NewCommand(state.CmdMetaInit, 1, state.MetaInit{ClusterID: id})
	if err != nil {
		n.log.Error("cannot encode cluster init", "error", err)
		return
	}
	if _, err := n.Apply(n.ctx, cmd); err != nil {
		n.log.Warn("cluster init not applied", "error", err)
	}
}

// Shutdown stops the node. A leader first hands leadership to another
// voter so the cluster does not wait out an election timeout.
func (n *Node) Shutdown(ctx context.Context) error {
	if n.raft != nil && n.raft.State() == raft.Leader && n.voters() > 1 {
		n.log.Info("transferring leadership before shutdown")
		fut := n.raft.LeadershipTransfer()
		done := make(chan error, 1)
		go func() { done <- fut.Error() }()
		select {
		case err := <-done:
			if err != nil {
				n.log.Warn("leadership transfer failed; shutting down anyway", "error", err)
			}
		case <-ctx.Done():
			n.log.Warn("leadership transfer timed out; shutting down anyway")
		}
	}
	n.cancel()
	var errs []error
	if n.raft != nil {
		n.raft.DeregisterObserver(n.observer)
		if err := n.raft.Shutdown().Error(); err != nil {
			errs = append(errs, fmt.Errorf("stop raft: %w", err))
		}
	}
	if n.batcher != nil {
		n.batcher.stop()
	}
	if n.mux != nil {
		n.mux.close()
	}
	if n.rpc != nil {
		n.rpc.close()
	}
	n.wg.Wait()
	n.closeStorage()
	return errors.Join(errs...)
}

func (n *Node) closeStorage() {
	if n.boltStore != nil {
		if err := n.boltStore.Close(); err != nil {
			n.log.Warn("close raft log", "error", err)
		}
		n.boltStore = nil
	}
}

func (n *Node) voters() int {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return 0
	}
	c := 0
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			c++
		}
	}
	return c
}

// errNotLeader is what a follower's RPC handler answers for leader-only
// methods; the caller retries against the new leader.
func errNotLeader() *problem.Error {
	return problem.Unavailable("not_leader", "this server is not the leader")
}

// ErrNoLeader is the problem returned when no leader appears in time.
func errNoLeader(hold time.Duration) *problem.Error {
	return problem.Unavailable("no_leader", "no cluster leader after waiting %s; the cluster may have lost quorum", hold)
}

// advertiseResolveWait is how long a start waits for the advertised name
// to resolve. In Kubernetes a pod's name under its headless Service is
// published a moment after the container starts; without the wait every
// fresh pod would exit once and come back after the kubelet's back-off.
const advertiseResolveWait = 30 * time.Second

// resolveAdvertise resolves addr, retrying DNS answers that may change
// (not found yet, timeouts) for up to wait; any other error is final.
func resolveAdvertise(ctx context.Context, addr string, wait time.Duration, resolve func(string) (*net.TCPAddr, error), log *slog.Logger) (*net.TCPAddr, error) {
	deadline := time.Now().Add(wait)
	delay := 100 * time.Millisecond
	for {
		a, err := resolve(addr)
		var dnsErr *net.DNSError
		if err == nil || !errors.As(err, &dnsErr) || !(dnsErr.IsNotFound || dnsErr.IsTemporary || dnsErr.IsTimeout) || time.Now().Add(delay).After(deadline) {
			return a, err
		}
		log.Warn("the raft advertise address does not resolve yet; retrying", "advertise", addr, "error", err, "retry_in", delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("%w (gave up: %w)", err, ctx.Err())
		case <-t.C:
		}
		delay = min(2*delay, 2*time.Second)
	}
}
