// Package serverproc runs one `opsconductor server` process for the load
// drivers under bench/: a fresh data dir, loopback ports from the kernel,
// the bootstrap admin's password, SIGTERM and restart on the same data dir
// and ports, and the process's footprint read from /proc.
//
// It is for benchmarks only: it never touches a process it did not start.
package serverproc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/opsconductor/opsconductor/controller/apiclient"
)

// AdminPassword is the bootstrap admin's password in every bench controller.
const AdminPassword = "bench-Harbour-lantern-42"

// FreePort asks the kernel for a free loopback port. Another process may
// take it before the server binds it; on this single-user bench machine
// that has not been seen.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Config says which server to run.
type Config struct {
	// Bin is the opsconductor binary (make build).
	Bin string
	// Dir holds the data dir ("data") and the log ("controller.log").
	Dir string
	// Args are added to the server's command line (for example
	// "--rate-read", "inf").
	Args []string
}

// Server is one running (or stopped) controller process.
type Server struct {
	cfg       Config
	HTTPAddr  string
	AgentAddr string
	RaftAddr  string
	cmd       *exec.Cmd
	logf      *os.File
	exited    chan struct{} // closed once cmd.Wait returned
}

// Start picks three loopback ports and starts the server.
func Start(cfg Config) (*Server, error) {
	var ports [3]int
	for i := range ports {
		p, err := FreePort()
		if err != nil {
			return nil, err
		}
		ports[i] = p
	}
	s := &Server{cfg: cfg,
		HTTPAddr:  "127.0.0.1:" + strconv.Itoa(ports[0]),
		AgentAddr: "127.0.0.1:" + strconv.Itoa(ports[1]),
		RaftAddr:  "127.0.0.1:" + strconv.Itoa(ports[2]),
	}
	if err := s.start(); err != nil {
		return nil, err
	}
	return s, nil
}

// LogPath is where the server's output goes (appended across restarts).
func (s *Server) LogPath() string { return filepath.Join(s.cfg.Dir, "controller.log") }

func (s *Server) start() error {
	logf, err := os.OpenFile(s.LogPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open the controller log: %w", err)
	}
	args := append([]string{"server", "--data-dir", filepath.Join(s.cfg.Dir, "data"),
		"--http-addr", s.HTTPAddr, "--agent-addr", s.AgentAddr, "--raft-addr", s.RaftAddr}, s.cfg.Args...)
	cmd := exec.Command(s.cfg.Bin, args...)
	cmd.Env = append(os.Environ(), "OPSCONDUCTOR_BOOTSTRAP_ADMIN_PASSWORD="+AdminPassword)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", s.cfg.Bin, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait() // the exit status of a signalled server says nothing new
		logf.Close()
		close(exited)
	}()
	s.cmd, s.logf, s.exited = cmd, logf, exited
	return nil
}

// Pid is the running process's ID.
func (s *Server) Pid() int { return s.cmd.Process.Pid }

// Stop sends SIGTERM and waits for the process to exit, killing it if it
// takes longer than grace.
func (s *Server) Stop(grace time.Duration) error {
	select {
	case <-s.exited:
		return nil
	default:
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal the controller: %w", err)
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-s.exited:
		return nil
	case <-t.C:
		_ = s.cmd.Process.Kill()
		<-s.exited
		return fmt.Errorf("%w: not within %s of SIGTERM", ErrKilled, grace)
	}
}

// ErrKilled is returned by Stop when the server outlived the grace
// period and was killed.
var ErrKilled = errors.New("the controller did not exit in time and was killed")

// Launch starts a stopped server again on the same data dir and ports (a
// restart is Stop, then Launch).
func (s *Server) Launch() error {
	select {
	case <-s.exited:
	default:
		return errors.New("the controller is still running: Stop it first")
	}
	return s.start()
}

// Anonymous is a client without credentials (health, login).
func (s *Server) Anonymous() (*apiclient.Client, error) {
	return apiclient.New(s.HTTPAddr)
}

// WaitReady waits for /health/ready.
func (s *Server) WaitReady(ctx context.Context) error {
	c, err := s.Anonymous()
	if err != nil {
		return err
	}
	if err := c.WaitReady(ctx, nil); err != nil {
		return fmt.Errorf("controller at %s not ready (log in %s): %w", s.HTTPAddr, s.LogPath(), err)
	}
	return nil
}

// Admin waits for the server to be ready, logs in as the bootstrap admin
// and returns a client holding the access token.
func (s *Server) Admin(ctx context.Context) (*apiclient.Client, error) {
	if err := s.WaitReady(ctx); err != nil {
		return nil, err
	}
	anon, err := s.Anonymous()
	if err != nil {
		return nil, err
	}
	tok, err := anon.Login(ctx, apiclient.LoginRequest{Username: "admin", Password: AdminPassword})
	if err != nil {
		return nil, fmt.Errorf("log in as the bootstrap admin: %w", err)
	}
	return apiclient.New(s.HTTPAddr, apiclient.WithToken(tok.AccessToken))
}

// CreateJoinToken creates a join token, retrying while the new leader has
// not made the agent CA yet (it does so just after it starts leading).
func CreateJoinToken(ctx context.Context, c *apiclient.Client, req apiclient.CreateJoinTokenRequest) (apiclient.CreatedJoinToken, error) {
	for {
		jt, err := c.CreateJoinToken(ctx, req)
		if err == nil {
			return jt, nil
		}
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return apiclient.CreatedJoinToken{}, fmt.Errorf("create a join token: %w", err)
		case <-t.C:
		}
	}
}

// Memory is a process's resident set from /proc/PID/status.
type Memory struct {
	RSSKB  int // VmRSS: resident now
	PeakKB int // VmHWM: the most ever resident
}

// ReadMemory reads VmRSS and VmHWM of pid.
func ReadMemory(pid int) (Memory, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Memory{}, fmt.Errorf("read memory: %w", err)
	}
	defer f.Close()
	var m Memory
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		if err != nil {
			return Memory{}, fmt.Errorf("/proc/%d/status %s: %w", pid, k, err)
		}
		if k == "VmRSS" {
			m.RSSKB = kb
		} else {
			m.PeakKB = kb
		}
	}
	if err := sc.Err(); err != nil {
		return Memory{}, fmt.Errorf("read /proc/%d/status: %w", pid, err)
	}
	if m.RSSKB == 0 {
		return Memory{}, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
	}
	return m, nil
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat;
// it is 100 on every Linux architecture Go supports.
const clockTicks = 100

// CPUTime is the CPU time (user + system) pid has used so far.
func CPUTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read cpu time: %w", err)
	}
	// The command name (field 2) may hold spaces; the fields after its
	// closing parenthesis start with the state (field 3).
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields after the name", pid, len(f))
	}
	// utime and stime are fields 14 and 15, f[11] and f[12] here.
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}
