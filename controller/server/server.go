// Package server assembles one controller process: data directory, node
// identity, cluster CA, the state registry with every domain, the Raft
// node and the HTTP gateway, and runs them until the context ends. It holds
// wiring only; behaviour lives in the packages it wires.
package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/opsconductor/opsconductor/controller/agentrpc"
	"github.com/opsconductor/opsconductor/controller/assets"
	"github.com/opsconductor/opsconductor/controller/assets/credentials"
	"github.com/opsconductor/opsconductor/controller/assets/discovery"
	"github.com/opsconductor/opsconductor/controller/assets/graph"
	"github.com/opsconductor/opsconductor/controller/automation"
	"github.com/opsconductor/opsconductor/controller/automation/schedule"
	"github.com/opsconductor/opsconductor/controller/cluster"
	"github.com/opsconductor/opsconductor/controller/communication/audit"
	"github.com/opsconductor/opsconductor/controller/communication/notify"
	"github.com/opsconductor/opsconductor/controller/communication/trigger"
	"github.com/opsconductor/opsconductor/controller/config"
	"github.com/opsconductor/opsconductor/controller/gateway"
	"github.com/opsconductor/opsconductor/controller/history"
	"github.com/opsconductor/opsconductor/controller/identity"
	"github.com/opsconductor/opsconductor/controller/keyring"
	"github.com/opsconductor/opsconductor/controller/plugins"
	"github.com/opsconductor/opsconductor/controller/probe"
	"github.com/opsconductor/opsconductor/controller/state"
	"github.com/opsconductor/opsconductor/internal/buildinfo"
	"github.com/opsconductor/opsconductor/web"
)

// Ready is reported once the HTTP listener is bound and the node runs.
type Ready struct {
	NodeID   string
	HTTPAddr string
	// AgentAddr is the agent gRPC listener's bound address.
	AgentAddr string
	RaftAddr  string
}

// Run runs a controller until ctx ends, then shuts down gracefully: a
// leader hands over leadership first. onReady (optional) is called once the
// listeners are bound.
//
// console receives what a person starting the server must see once, such
// as a generated first-admin password; it is not the log.
func Run(ctx context.Context, cfg config.Server, log *slog.Logger, console io.Writer, onReady func(Ready)) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("--data-dir %s: %w", cfg.DataDir, err)
	}
	lock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return err
	}
	defer lock.release()

	nodeID, err := loadNodeID(cfg.DataDir, cfg.NodeID)
	if err != nil {
		return err
	}
	log = log.With("node_id", nodeID)

	ca, err := loadCA(cfg)
	if err != nil {
		return err
	}

	kr, err := loadKeyring(cfg, log)
	if err != nil {
		return err
	}

	reg := state.NewRegistry()
	reg.MustRegister(probe.Domain())
	reg.MustRegister(identity.DomainWithEvents(notify.Emit))
	// The run engine hears of attempt and run changes as they commit.
	autoHooks := automation.NewHooks()
	// Notification events are routed inside the Apply that raises them.
	reg.MustRegister(agentrpc.Domain(agentrpc.Hooks{Attempt: autoHooks.Attempt, AgentUp: autoHooks.AgentUp, Emit: notify.Emit}))
	reg.MustRegister(plugins.Domain())
	reg.MustRegister(assets.Domain())
	reg.MustRegister(graph.Domain(graph.WithNodeCheck(targetExists)))
	reg.MustRegister(keyring.Domain())
	reg.MustRegister(credentials.DomainWithEvents(notify.Emit))
	reg.MustRegister(discovery.DomainWithEvents(notify.Emit))
	reg.MustRegister(automation.DomainWithEvents(autoHooks.RunChanged, notify.Emit))
	reg.MustRegister(notify.Domain())
	reg.MustRegister(trigger.Domain())
	reg.MustRegister(schedule.Domain())
	store, err := state.NewStore(reg, log)
	if err != nil {
		return err
	}

	httpLn, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("--http-addr %s: %w", cfg.HTTPAddr, err)
	}
	defer httpLn.Close()
	agentLn, err := net.Listen("tcp", cfg.AgentAddr)
	if err != nil {
		return fmt.Errorf("--agent-addr %s: %w", cfg.AgentAddr, err)
	}
	defer agentLn.Close()

	single := cfg.BootstrapExpect <= 1 && len(cfg.RetryJoin) == 0
	advertise, err := advertiseHost(cfg.RaftAddr, cfg.Advertise, single, net.InterfaceAddrs)
	if err != nil {
		return err
	}
	raftAdvertise, err := replaceHost(cfg.RaftAddr, advertise)
	if err != nil {
		return fmt.Errorf("--raft-addr: %w", err)
	}
	httpAdvertise, _ := replaceHost(httpLn.Addr().String(), advertise)
	agentAdvertise, _ := replaceHost(agentLn.Addr().String(), advertise)

	node, err := cluster.New(cluster.Config{
		NodeID: nodeID, DataDir: cfg.DataDir,
		RaftBind: cfg.RaftAddr, RaftAdvertise: raftAdvertise, HTTPAdvertise: httpAdvertise, AgentAdvertise: agentAdvertise,
		BootstrapExpect: cfg.BootstrapExpect, RetryJoin: cfg.RetryJoin, RefuseJoins: refuseJoins(cfg),
		CA: ca, ApplyHold: cfg.ApplyHold, Batching: cfg.Batching, Logger: log,
	}, state.NewFSM(store, log))
	if err != nil {
		return err
	}
	// Shut the node down however Run ends, leader handing over first.
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := node.Shutdown(sctx); err != nil {
			log.Error("cluster shutdown", "error", err)
		}
	}()

	hist, err := OpenHistory(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer hist.Close()
	// Batches of up to 8,192 records: one store commit (an fsync) per
	// batch is what bounds a fast step's output, and agents' log lines
	// arrive by the thousand.
	writer := history.NewWriter(hist, history.WriterConfig{MaxBatch: 8192, Logger: log.With("component", "history")})
	defer func() {
		wctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := writer.Close(wctx); err != nil {
			log.Error("history writer", "error", err)
		}
	}()
	// Every mutating request and every login is recorded in this
	// controller's hash chain in the history store (communication/audit).
	auditLog, err := audit.Open(ctx, audit.Config{Store: hist, Node: nodeID, Logger: log.With("component", "audit")})
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	defer func() {
		actx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := auditLog.Close(actx); err != nil {
			log.Error("audit log", "error", err)
		}
	}()
	monitor := &historyMonitor{backend: historyBackend(cfg), store: hist, writer: writer}
	bg, stopBG := context.WithCancel(ctx)
	var bgWG sync.WaitGroup
	defer func() { stopBG(); bgWG.Wait() }()
	bgWG.Add(1)
	go func() { defer bgWG.Done(); monitor.run(bg, 2*time.Second) }()
	if !cfg.EmbeddedHistory() {
		bgWG.Add(1)
		go func() {
			defer bgWG.Done()
			history.RunRetention(bg, hist, cfg.HistoryRetention, time.Minute, node.IsLeader, log.With("component", "history"))
		}()
	}

	// The replicated keyring: the key file's root keys open the KEKs in
	// the state. The KEKs a restored snapshot holds are checked now; the
	// rest as the log replays, and a failure stops the controller.
	ring, err := newKeyring(kr, node, store, node.IsLeader, log)
	if err != nil {
		return err
	}
	if err := ring.Check(); err != nil {
		return fmt.Errorf("keyring: %w; start this controller with the cluster's key file (--keyring-file or %s)", err, keyring.EnvKey)
	}
	serveCtx, failServe := context.WithCancelCause(ctx)
	defer failServe(nil)
	bgWG.Add(1)
	go func() {
		defer bgWG.Done()
		if err := checkKeyringAtStart(bg, ring, node.Ready); err != nil {
			log.Error("refusing to run: the key file cannot open the cluster's keys", "error", err)
			failServe(err)
			return
		}
		watchKeyring(bg, ring, log.With("component", "keyring"))
	}()

	ident, err := newIdentity(cfg, node, store, ring, auditLog, log)
	if err != nil {
		return err
	}
	maint := &identityMaintainer{svc: ident, cfg: cfg, isLeader: node.IsLeader, log: log.With("component", "identity"), console: console}
	bgWG.Add(1)
	go func() { defer bgWG.Done(); maint.run(bg) }()

	pluginReg, err := plugins.New(plugins.Deps{Applier: node, Store: store, Logger: log.With("component", "plugins"),
		Dir: filepath.Join(cfg.DataDir, "plugins"), NodeID: nodeID})
	if err != nil {
		return err
	}
	agents, err := agentrpc.New(agentrpc.Config{NodeID: nodeID, Advertise: agentAdvertise},
		agentrpc.Deps{Applier: node, Store: store, Keyring: ring, Logger: log.With("component", "agentrpc"),
			Leadership: clusterLeadership{node}, History: writer, HistoryReader: hist, Plugins: pluginBuilds{pluginReg},
			Steps: pluginReg, Ready: node.Ready, RunLog: autoHooks.RunLog})
	if err != nil {
		return err
	}
	// Both keep envelopes: the keyring counts them before a key may go and
	// has them re-wrapped after a rotation.
	ring.Register("identity", ident)
	ring.Register("agents", agents)
	agentMaint := &agentMaintainer{svc: agents, isLeader: node.IsLeader, log: log.With("component", "agentrpc")}
	bgWG.Add(3)
	go func() { defer bgWG.Done(); agentMaint.run(bg) }()
	go func() { defer bgWG.Done(); agents.Run(bg) }()
	go func() {
		defer bgWG.Done()
		if err := agents.Serve(bg, agentLn, 5*time.Second); err != nil {
			log.Error("agent listener", "error", err, "agent_addr", agentLn.Addr().String())
		}
	}()

	if cfg.Dev {
		local := &localAgent{agents: agents, addr: agentLn.Addr().String(), dir: filepath.Join(cfg.DataDir, "local-agent"),
			log: log.With("component", "local-agent")}
		bgWG.Add(1)
		go func() { defer bgWG.Done(); local.run(bg) }()
	}

	// The inventory reads agents live through agentrpc, so every enrolled
	// agent is a target without a write of its own.
	inv, err := assets.New(assets.Deps{Applier: node, Store: store, Agents: agentDirectory{agents}, Logger: log.With("component", "assets")})
	if err != nil {
		return err
	}
	rels, err := newRelationships[assets.Target](node, store, inv,
		func(t assets.Target) graph.Node { return graph.Node{ID: t.ID, Name: t.Name} }, log)
	if err != nil {
		return err
	}

	creds, err := newCredentials(node, store, ring, writer, inv, node.IsLeader, log)
	if err != nil {
		return err
	}
	bgWG.Add(1)
	go func() { defer bgWG.Done(); creds.Run(bg, 30*time.Second) }()

	disc, err := newDiscovery(node, store, agents, inv, ident, writer, hist, node.IsLeader, nodeID, cfg.Dev, log)
	if err != nil {
		return err
	}
	bgWG.Add(1)
	go func() { defer bgWG.Done(); disc.Run(bg, 10*time.Second) }()

	notifier, err := newNotify(node, store, ring, hist, writer, nodeID, "http://"+httpAdvertise, log)
	if err != nil {
		return err
	}
	bgWG.Add(1)
	go func() { defer bgWG.Done(); notifier.Run(bg) }()

	registry := prometheus.NewRegistry()
	auto, err := newAutomation(cfg, node, store, autoHooks, newHub(registry, log), agents, inv, creds, ident, ring, pluginReg, writer, hist, log)
	if err != nil {
		return err
	}
	triggers, err := newTriggers(node, store, ring, auto.svc, writer, hist, log)
	if err != nil {
		return err
	}
	bgWG.Add(1)
	go func() { defer bgWG.Done(); triggers.Run(bg, time.Minute) }()
	// The re-wrap starts once every holder (the last are automation and
	// the triggers) is registered: a pass that missed one would retire a key that still
	// wraps its envelopes.
	bgWG.Add(3)
	go func() { defer bgWG.Done(); ring.Run(bg, 30*time.Second) }()
	go func() { defer bgWG.Done(); auto.svc.Run(bg) }()
	go func() { defer bgWG.Done(); auto.schedules.Run(bg) }()
	if cfg.Dev {
		bgWG.Add(1)
		go func() {
			defer bgWG.Done()
			ensureExampleJob(bg, auto.svc, node.Ready, log.With("component", "automation"))
		}()
	}
	installer, err := newInstall(cfg, agentLn.Addr(), log)
	if err != nil {
		return err
	}
	if err := registry.Register(node.Metrics()); err != nil {
		return fmt.Errorf("register raft metrics: %w", err)
	}
	if err := registry.Register(agents.Metrics()); err != nil {
		return fmt.Errorf("register agent metrics: %w", err)
	}
	if err := registry.Register(newHistoryMetrics(monitor)); err != nil {
		return fmt.Errorf("register history metrics: %w", err)
	}
	if err := registry.Register(auto.svc.Metrics()); err != nil {
		return fmt.Errorf("register run metrics: %w", err)
	}
	if err := registry.Register(auditLog.Metrics()); err != nil {
		return fmt.Errorf("register audit metrics: %w", err)
	}
	if err := registry.Register(notifier.Metrics()); err != nil {
		return fmt.Errorf("register notify metrics: %w", err)
	}
	gw, err := gateway.New(gateway.Config{
		Addr:               cfg.HTTPAddr,
		MaxBodyBytes:       cfg.MaxBodyBytes,
		CORSAllowedOrigins: cfg.CORSOrigins,
		RateLimits: map[gateway.RouteClass]gateway.Limit{
			gateway.ClassRead:     limit(cfg.RateRead),
			gateway.ClassWrite:    limit(cfg.RateWrite),
			gateway.ClassOperator: limit(cfg.RateOperator),
			gateway.ClassLogin:    loginLimit(cfg.RateLogin),
		},
	}, gateway.Deps{
		Logger: log, Cluster: node, Probes: probe.NewService(nodeID, node, store), Identity: ident, Agents: agents, Plugins: pluginReg,
		Assets: inv, Credentials: creds, Keyring: ring, Relationships: rels, Discovery: disc,
		Automation: auto.svc, Schedules: auto.schedules, Notify: notifier, Triggers: triggers, RunStream: auto.stream, Audit: auditLog, AuditStore: hist, Install: installer,
		Registry: registry, Version: buildinfo.Version(), NodeID: nodeID, UI: webUI(log), Events: &gateway.Events{Source: store},
		HealthSections: map[string]gateway.HealthSection{"history": monitor.section, "agents": agents.HealthSection},
		ReadyChecks:    map[string]func(context.Context) error{"history": monitor.ready, "identity": ident.Ready},
	})
	if err != nil {
		return err
	}

	log.Info("controller started", "version", buildinfo.Version(), "http_addr", httpLn.Addr().String(),
		"raft_addr", node.RaftAddr(), "agent_addr", agentLn.Addr().String(), "data_dir", cfg.DataDir, "bootstrap_expect", cfg.BootstrapExpect,
		"history", historyBackend(cfg))
	if onReady != nil {
		onReady(Ready{NodeID: nodeID, HTTPAddr: httpLn.Addr().String(), AgentAddr: agentLn.Addr().String(), RaftAddr: node.RaftAddr()})
	}
	if err := gw.Serve(serveCtx, httpLn); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("http server: %w", err)
	}
	if cause := context.Cause(serveCtx); ctx.Err() == nil && cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	log.Info("controller stopping")
	return nil
}

// loginLimit allows a burst of ten attempts, refilled at rps (0: one
// every five seconds).
func loginLimit(rps float64) gateway.Limit {
	if rps == 0 {
		rps = 0.2
	}
	return gateway.Limit{RPS: rps, Burst: 10}
}

// limit turns a per-second rate into a token bucket with a two-second burst.
func limit(rps float64) gateway.Limit {
	if math.IsInf(rps, 1) {
		return gateway.Limit{RPS: rps}
	}
	return gateway.Limit{RPS: rps, Burst: max(1, int(math.Ceil(rps*2)))}
}

func loadCA(cfg config.Server) (*cluster.CA, error) {
	if cfg.TLSCACert != "" {
		ca, err := cluster.LoadCA(cfg.TLSCACert, cfg.TLSCAKey)
		if err != nil {
			return nil, fmt.Errorf("--tls-ca-cert: %w", err)
		}
		return ca, nil
	}
	if cfg.BootstrapExpect > 1 || len(cfg.RetryJoin) > 0 {
		return nil, errors.New("--tls-ca-cert and --tls-ca-key are required for a multi-server cluster: create them once with `opsconductor operator tls init` and give every server the same files")
	}
	ca, err := cluster.LoadOrCreateCA(filepath.Join(cfg.DataDir, "tls"))
	if err != nil {
		return nil, fmt.Errorf("cluster CA in --data-dir: %w", err)
	}
	return ca, nil
}

// loadNodeID returns the configured node ID, or the one this data dir was
// first started with, or a new random one persisted for next time. A
// configured ID that contradicts the stored one is refused: Raft would see
// a stranger with this server's log.
func loadNodeID(dataDir, configured string) (string, error) {
	path := filepath.Join(dataDir, "node-id")
	raw, err := os.ReadFile(path)
	switch {
	case err == nil:
		stored := strings.TrimSpace(string(raw))
		if configured != "" && configured != stored {
			return "", fmt.Errorf("--node-id %q: this data dir belongs to node %q (%s)", configured, stored, path)
		}
		return stored, nil
	case !errors.Is(err, os.ErrNotExist):
		return "", fmt.Errorf("read node id: %w", err)
	}
	id := configured
	if id == "" {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", fmt.Errorf("generate node id: %w", err)
		}
		host, _ := os.Hostname()
		id = sanitizeID(host) + "-" + hex.EncodeToString(b[:4])
	}
	if err := os.WriteFile(path, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write node id: %w", err)
	}
	return id, nil
}

func sanitizeID(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' {
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 {
		return "server"
	}
	return b.String()[:min(b.Len(), 40)]
}

// advertiseHost is the host other servers dial. An explicit --advertise
// wins, then a specific bind host. A wildcard bind (the default 0.0.0.0)
// advertises the host's only private IPv4 address, as Consul does; with no
// private address a lone server advertises loopback, and a cluster member
// must be told.
func advertiseHost(bind, advertise string, single bool, addrs func() ([]net.Addr, error)) (string, error) {
	if advertise != "" {
		return advertise, nil
	}
	host, _, err := net.SplitHostPort(bind)
	if err != nil {
		return "", fmt.Errorf("--raft-addr %q is not host:port: %w", bind, err)
	}
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		return host, nil
	}
	all, err := addrs()
	if err != nil {
		return "", fmt.Errorf("--advertise: list interface addresses: %w", err)
	}
	var private []string
	for _, a := range all {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsPrivate() {
			private = append(private, n.IP.String())
		}
	}
	switch {
	case len(private) == 1:
		return private[0], nil
	case len(private) == 0 && single:
		return "127.0.0.1", nil
	case len(private) == 0:
		return "", errors.New("--advertise: --raft-addr listens on every interface and this host has no private IPv4 address; set --advertise to the address other servers should dial")
	}
	return "", fmt.Errorf("--advertise: --raft-addr listens on every interface and this host has several private addresses (%s); set --advertise to the one other servers should dial", strings.Join(private, ", "))
}

// replaceHost puts host into a host:port address.
func replaceHost(addr, host string) (string, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("%q is not host:port: %w", addr, err)
	}
	return net.JoinHostPort(host, port), nil
}

// webUI is the console embedded in the binary; without a build (`make web`
// before `make build`) the gateway answers "/" with how to build it.
func webUI(log *slog.Logger) fs.FS {
	ui, built := web.Dist()
	if !built {
		log.Warn("this binary has no web UI: run make web, then rebuild it")
	}
	return ui
}
