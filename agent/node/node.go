// Package node assembles one running agent from its parts: the outbox,
// the plugin host, the executor and the stream to the controllers, wired
// so that a plugin an assignment names is fetched from the controller on
// first use and the installed plugins are reported in every hello.
//
// It owns the parts' lifetimes and nothing else: `opsconductor-agent run`
// and the controller's built-in dev agent both start agents through it.
package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"runtime"

	"github.com/opsconductor/opsconductor/agent/enroll"
	"github.com/opsconductor/opsconductor/agent/executor"
	"github.com/opsconductor/opsconductor/agent/facts"
	"github.com/opsconductor/opsconductor/agent/outbox"
	"github.com/opsconductor/opsconductor/agent/pluginhost"
	"github.com/opsconductor/opsconductor/agent/session"
	agentv1 "github.com/opsconductor/opsconductor/proto/agent/v1"
)

// Config configures an agent.
type Config struct {
	Identity *enroll.Identity
	// DataDir holds the outbox and the plugin download cache.
	DataDir string
	// Controllers overrides the addresses the enrolment stored.
	Controllers []string
	// PluginDir holds plugins the operator installed (read only; may be
	// empty or missing).
	PluginDir string
	// OutboxMax and MaxConcurrent: zero takes the defaults.
	OutboxMax     int64
	MaxConcurrent int
	Version       string
	Logger        *slog.Logger
	Progress      func(msg string)
}

// Node is one agent's parts.
type Node struct {
	Outbox   *outbox.Outbox
	Plugins  *pluginhost.Host
	Executor *executor.Executor
	Session  *session.Session
}

// Open opens the outbox and the plugin host and builds the executor and
// the session; nothing runs until Session.Run.
func Open(cfg Config) (*Node, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	box, err := outbox.Open(filepath.Join(cfg.DataDir, "outbox.db"), outbox.Options{MaxBytes: cfg.OutboxMax, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	host, err := pluginhost.New(pluginhost.Config{PluginDir: cfg.PluginDir, CacheDir: filepath.Join(cfg.DataDir, "plugin-cache"),
		Logger: cfg.Logger.With("component", "pluginhost")})
	if err != nil {
		box.Close()
		return nil, fmt.Errorf("plugin host: %w", err)
	}
	n := &Node{Outbox: box, Plugins: host}
	ex, err := executor.New(executor.Config{Outbox: box, Logger: cfg.Logger, MaxConcurrent: cfg.MaxConcurrent,
		Plugins: host, NotInstalled: pluginhost.ErrNotInstalled, Fetch: n.fetch})
	if err != nil {
		host.Close()
		box.Close()
		return nil, err
	}
	n.Executor = ex
	sess, err := session.New(session.Config{Identity: cfg.Identity, Controllers: cfg.Controllers, Version: cfg.Version,
		Facts: facts.Gather, Logger: cfg.Logger, Executor: ex, Plugins: n.installed, Progress: cfg.Progress})
	if err != nil {
		n.Close()
		return nil, err
	}
	n.Session = sess
	return n, nil
}

// fetch downloads name@version from a controller into the plugin cache;
// the host checks the bytes against the controller's sha256 as it writes
// them and installs nothing that does not match.
func (n *Node) fetch(ctx context.Context, name, version string) error {
	if n.Session == nil {
		return errors.New("no stream to a controller yet")
	}
	return n.Session.FetchPlugin(ctx, name, version, runtime.GOOS, runtime.GOARCH, func(exact, sum string, r io.Reader) error {
		_, err := n.Plugins.Install(name, exact, sum, r)
		return err
	})
}

func (n *Node) installed() []*agentv1.PluginInfo {
	var out []*agentv1.PluginInfo
	for _, p := range n.Plugins.Installed() {
		out = append(out, &agentv1.PluginInfo{Name: p.Name, Version: p.Version, Sha256: p.SHA256})
	}
	return out
}

// Close kills what still runs (its output is replayed from the outbox on
// the next start), stops the plugin processes and closes the outbox.
func (n *Node) Close() {
	if n.Executor != nil {
		n.Executor.Close()
	}
	n.Plugins.Close()
	n.Outbox.Close()
}
