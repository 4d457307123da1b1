// Package health lets a probe outside the agent process tell whether the
// agent is alive and connected. The running agent keeps a small status
// file in its data dir; `opsconductor-agent health` reads it. A file rather
// than a local HTTP port: the agent listens on nothing, and a container
// healthcheck or a Kubernetes exec probe can read a file in the same
// filesystem without any credentials.
package health

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/opsconductor/opsconductor/agent/session"
)

// FileName is the status file's name in the agent's data dir.
const FileName = "status.json"

// Refresh is how often the running agent rewrites the file when nothing
// changes, so that a hung agent shows up as a stale file.
const Refresh = 15 * time.Second

// staleAfter is how old the file may be before the agent counts as hung:
// a few missed refreshes, so that a busy host is not flagged.
const staleAfter = 4 * Refresh

// Report is the status file's content.
type Report struct {
	PID       int       `json:"pid"`
	Connected bool      `json:"connected"`
	Address   string    `json:"address,omitempty"`
	NodeID    string    `json:"node_id,omitempty"`
	Since     time.Time `json:"since"` // when Connected last changed
	LastError string    `json:"last_error,omitempty"`
	Updated   time.Time `json:"updated"`
}

// Source is what Keep watches: a session.Session.
type Source interface {
	Status() session.Status
	Changed() <-chan struct{}
}

// Keep writes the status file at path whenever the session's status
// changes, and at least every Refresh, until ctx ends; then it removes the
// file, so that a stopped agent reads as stopped rather than stale.
func Keep(ctx context.Context, src Source, path string, now func() time.Time) error {
	if now == nil {
		now = time.Now
	}
	rep := Report{PID: os.Getpid(), Since: now()}
	tick := time.NewTicker(Refresh)
	defer tick.Stop()
	defer os.Remove(path)
	for {
		changed := src.Changed() // before reading, so that no change is missed
		st := src.Status()
		if st.Connected != rep.Connected {
			rep.Since = now()
		}
		rep.Connected, rep.Address, rep.NodeID, rep.LastError = st.Connected, st.Address, st.NodeID, st.LastError
		rep.Updated = now()
		if err := Write(path, rep); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-tick.C:
		}
	}
}

// Write replaces the file at path atomically (rename), so that a reader
// never sees half a report. It does not fsync: after a crash a missing or
// old file reads as unhealthy, which is right.
func Write(path string, rep Report) error {
	b, err := json.Marshal(rep)
	if err != nil {
		return fmt.Errorf("agent status: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".status-*.json")
	if err != nil {
		return fmt.Errorf("agent status: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("agent status: writing %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("agent status: writing %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("agent status: %w", err)
	}
	return nil
}

// Read reads and decodes the status file at path.
func Read(path string) (Report, error) {
	var rep Report
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return rep, fmt.Errorf("the agent is not running: no status file at %s", path)
	}
	if err != nil {
		return rep, fmt.Errorf("agent status: %w", err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		return rep, fmt.Errorf("agent status %s: %w", path, err)
	}
	if rep.PID <= 0 {
		return rep, fmt.Errorf("agent status %s: pid %d is not a process ID", path, rep.PID)
	}
	return rep, nil
}

// Check judges a report: healthy when the process lives, the report is
// fresh and the agent is connected or has been down for at most maxDown
// (a controller failover or a short network cut is not worth a restart).
// alive reports whether a PID runs; nil uses kill(pid, 0).
func Check(rep Report, now time.Time, maxDown time.Duration, alive func(pid int) bool) (string, error) {
	if alive == nil {
		alive = processAlive
	}
	if !alive(rep.PID) {
		return "", fmt.Errorf("the agent (pid %d) is not running", rep.PID)
	}
	if age := now.Sub(rep.Updated); age > staleAfter {
		return "", fmt.Errorf("the agent (pid %d) has not updated its status for %s: it may be hung", rep.PID, age.Round(time.Second))
	}
	down := now.Sub(rep.Since).Round(time.Second)
	if rep.Connected {
		return fmt.Sprintf("connected to leader %s at %s for %s", rep.NodeID, rep.Address, down), nil
	}
	why := ""
	if rep.LastError != "" {
		why = ": " + rep.LastError
	}
	if down > maxDown {
		return "", fmt.Errorf("the agent has not been connected to a controller for %s (more than %s)%s", down, maxDown, why)
	}
	return fmt.Sprintf("reconnecting for %s (healthy up to %s)%s", down, maxDown, why), nil
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	// EPERM: it exists but belongs to someone else, which still counts.
	return err == nil || errors.Is(err, syscall.EPERM)
}
