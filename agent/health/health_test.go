package health

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opsconductor/opsconductor/agent/session"
)

func TestCheck(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	up := func(int) bool { return true }
	gone := func(int) bool { return false }
	tests := []struct {
		name    string
		rep     Report
		alive   func(int) bool
		want    string
		wantErr string
	}{
		{name: "connected", rep: Report{PID: 7, Connected: true, NodeID: "node1", Address: "10.0.0.1:3001", Since: now.Add(-time.Hour), Updated: now.Add(-time.Second)}, alive: up,
			want: "connected to leader node1 at 10.0.0.1:3001 for 1h0m0s"},
		{name: "down briefly is still healthy", rep: Report{PID: 7, Since: now.Add(-30 * time.Second), Updated: now, LastError: "connection refused"}, alive: up,
			want: "reconnecting for 30s (healthy up to 2m0s): connection refused"},
		{name: "down too long", rep: Report{PID: 7, Since: now.Add(-5 * time.Minute), Updated: now, LastError: "connection refused"}, alive: up,
			wantErr: "not been connected to a controller for 5m0s (more than 2m0s): connection refused"},
		{name: "a dead process", rep: Report{PID: 7, Connected: true, Since: now, Updated: now}, alive: gone,
			wantErr: "the agent (pid 7) is not running"},
		{name: "a stale report", rep: Report{PID: 7, Connected: true, Since: now.Add(-time.Hour), Updated: now.Add(-10 * time.Minute)}, alive: up,
			wantErr: "has not updated its status for 10m0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Check(tt.rep, now, 2*time.Minute, tt.alive)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestCheckRealProcesses(t *testing.T) {
	now := time.Now()
	if _, err := Check(Report{PID: os.Getpid(), Connected: true, Since: now, Updated: now}, now, time.Minute, nil); err != nil {
		t.Fatalf("this process counts as dead: %v", err)
	}
	// PIDs are below 2^22 on Linux, so this one never runs.
	if _, err := Check(Report{PID: 1 << 30, Connected: true, Since: now, Updated: now}, now, time.Minute, nil); err == nil {
		t.Fatal("a PID that cannot exist counts as alive")
	}
}

func TestReadRejects(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, content, wantErr string
	}{
		{name: "no file", wantErr: "the agent is not running: no status file"},
		{name: "not JSON", content: "{", wantErr: "unexpected end of JSON input"},
		{name: "no pid", content: `{"connected":true}`, wantErr: "pid 0 is not a process ID"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, "s"+string(rune('a'+i)))
			if tt.content != "" {
				if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := Read(path); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// source is a session's status as Keep sees it, changed by the test.
type source struct {
	mu      sync.Mutex
	st      session.Status
	changed chan struct{}
}

func (s *source) Status() session.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st
}

func (s *source) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

func (s *source) set(st session.Status) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st = st
	close(s.changed)
	s.changed = make(chan struct{})
}

func TestKeepFollowsTheSession(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	src := &source{changed: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Keep(ctx, src, path, nil) }()

	waitFor := func(what string, ok func(Report) bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			rep, err := Read(path)
			if err == nil && ok(rep) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("status file never showed %s (last: %+v, %v)", what, rep, err)
			}
			time.Sleep(5 * time.Millisecond) // polling a file another goroutine writes
		}
	}
	waitFor("a disconnected agent", func(r Report) bool { return !r.Connected && r.PID == os.Getpid() })
	src.set(session.Status{Connected: true, Address: "127.0.0.1:3001", NodeID: "node1"})
	waitFor("the connection", func(r Report) bool { return r.Connected && r.NodeID == "node1" })
	src.set(session.Status{Connected: false, LastError: "stream reset"})
	waitFor("the disconnection", func(r Report) bool { return !r.Connected && r.LastError == "stream reset" })

	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("the status file outlived the agent: %v", err)
	}
}
