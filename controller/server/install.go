package server

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/opsconductor/opsconductor/controller/config"
	"github.com/opsconductor/opsconductor/controller/install"
)

// newInstall serves the agent install script and the release's agents.
// It says at start what it will serve, so that an operator learns of an
// empty release directory from the log rather than from a failed install.
func newInstall(cfg config.Server, agentAddr net.Addr, log *slog.Logger) (*install.Service, error) {
	dir := cfg.ReleaseDir
	if dir == "" {
		dir = defaultReleaseDir(cfg.DataDir, os.Executable)
	}
	tcp, ok := agentAddr.(*net.TCPAddr)
	if !ok {
		return nil, fmt.Errorf("agent listener %s is not TCP", agentAddr)
	}
	svc, err := install.New(install.Config{ReleaseDir: dir, ExternalURL: cfg.ExternalURL, AgentPort: tcp.Port})
	if err != nil {
		return nil, err
	}
	log = log.With("component", "install", "release_dir", dir)
	if platforms, err := svc.Platforms(); err != nil || len(platforms) == 0 {
		log.Warn("no agent release to serve: /install/agent.sh cannot install agents until --release-dir holds the output of make release", "error", err)
	} else {
		log.Info("serving the agent install script", "platforms", strings.Join(platforms, ","), "external_url", cfg.ExternalURL)
	}
	return svc, nil
}

// defaultReleaseDir is the running binary's own directory when it holds a
// release (the controller started straight from dist/), else DATA/release,
// where a packaged install puts one.
func defaultReleaseDir(dataDir string, executable func() (string, error)) string {
	if exe, err := executable(); err == nil {
		dir := filepath.Dir(exe)
		if _, err := os.Stat(filepath.Join(dir, install.SumsFile)); err == nil {
			return dir
		}
	}
	return filepath.Join(dataDir, "release")
}
