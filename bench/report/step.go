package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/opsconductor/opsconductor/bench/internal/figure"
)

// env is what every step may use.
type env struct {
	bin   string // directory holding the built binaries
	quick bool
	dir   string // the steps' outputs
}

// step is one benchmark or driver run. argv builds its command line for
// the chosen parameters; parse turns its output (and the JSON figures
// file a driver wrote, when jsonOut is set) into figures.
type step struct {
	name string
	argv func(e *env) []string
	// jsonOut marks a bench/ driver that takes -json FILE.
	jsonOut bool
	parse   func(e *env, out []byte, jsonPath string) ([]figure.Figure, error)
	// scaledDown says the QUICK parameters are below the scale the
	// step's targets are set for, so its figures are not judged then.
	scaledDown bool
	// skip returns why the step cannot run on this machine, or "".
	skip func(e *env) string
	// fullOnly steps are too slow for QUICK at any useful scale.
	fullOnly bool
	// timeout bounds the step (full parameters; QUICK uses a third).
	timeout time.Duration
	// env is added to the command's environment.
	env []string
}

func (s step) command(e *env) string {
	argv := s.argv(e)
	if s.jsonOut {
		argv = append(argv, "-json", "FILE")
	}
	var env []string
	for _, kv := range s.env {
		env = append(env, redact(kv))
	}
	return strings.Join(append(env, quoteAll(argv)...), " ")
}

// redact hides the password of a URL-valued setting (a PostgreSQL DSN)
// in the command the report prints.
func redact(kv string) string {
	k, v, _ := strings.Cut(kv, "=")
	u, err := url.Parse(v)
	if err != nil || u.User == nil {
		return kv
	}
	if _, ok := u.User.Password(); !ok {
		return kv
	}
	u.User = url.UserPassword(u.User.Username(), "REDACTED")
	return k + "=" + u.String()
}

func quoteAll(argv []string) []string {
	out := make([]string, len(argv))
	for i, a := range argv {
		if a == "" || strings.ContainsAny(a, " '$|*?\"\\") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out[i] = a
	}
	return out
}

// stepResult is one step's record in the report.
type stepResult struct {
	Name    string          `json:"name"`
	Command string          `json:"command"`
	Seconds float64         `json:"seconds"`
	Figures []figure.Figure `json:"figures"`
	Error   string          `json:"error,omitempty"`
	// Output is the end of the step's output when it failed.
	Output  string `json:"output,omitempty"`
	Skipped string `json:"skipped,omitempty"`
}

// outputTail is how much of a failed step's output the report keeps.
const outputTail = 3000

func (e *env) runStep(ctx context.Context, i int, s step) (r stepResult) {
	r = stepResult{Name: s.name, Command: s.command(e), Figures: []figure.Figure{}}
	if e.quick && s.fullOnly {
		r.Skipped = "full run only (make bench without QUICK)"
		return r
	}
	if s.skip != nil {
		if why := s.skip(e); why != "" {
			r.Skipped = why
			return r
		}
	}
	start := time.Now()
	defer func() { r.Seconds = time.Since(start).Seconds() }()
	jsonPath := ""
	argv := s.argv(e)
	if s.jsonOut {
		jsonPath = filepath.Join(e.dir, fmt.Sprintf("step%02d.json", i+1))
		argv = append(argv, "-json", jsonPath)
	}
	timeout := s.timeout
	if timeout == 0 {
		timeout = 10 * time.Minute
	}
	if e.quick {
		timeout /= 3
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out, err := runLogged(ctx, argv, s.env, filepath.Join(e.dir, fmt.Sprintf("step%02d.log", i+1)))
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (the step's limit is %s)", ctx.Err(), timeout)
		}
		r.Error, r.Output = err.Error(), tail(out)
		return r
	}
	figs, err := s.parse(e, out, jsonPath)
	if err == nil && len(figs) == 0 {
		err = errors.New("the step ran but reported no figures")
	}
	if err != nil {
		r.Error, r.Output = err.Error(), tail(out)
		return r
	}
	if e.quick && s.scaledDown {
		for i := range figs {
			if figs[i].Target != nil {
				figs[i].Verdict = figure.NoTarget
				figs[i].Note = strings.TrimPrefix(figs[i].Note+"; QUICK: reduced scale, not judged", "; ")
			}
		}
	}
	r.Figures = figs
	return r
}

// runLogged runs argv in its own process group, writing its stdout and
// stderr to logPath, and returns stdout. On cancellation the whole group
// gets SIGTERM (a driver's controllers and agents with it), then SIGKILL.
func runLogged(ctx context.Context, argv, extraEnv []string, logPath string) ([]byte, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("create the step's log: %w", err)
	}
	defer logf.Close()
	var stdout bytes.Buffer
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), extraEnv...)
	cmd.Stdout = io.MultiWriter(logf, &stdout)
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	err = cmd.Run()
	if cmd.Process != nil {
		// Whatever the step left behind in its group goes too.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	if err != nil {
		all, _ := os.ReadFile(logPath)
		return all, fmt.Errorf("%s: %w", argv[0], err)
	}
	return stdout.Bytes(), nil
}

func tail(b []byte) string {
	if len(b) > outputTail {
		b = b[len(b)-outputTail:]
	}
	return string(b)
}

// goBench is the command line of `go test -bench` on pkgs; benchtime is
// the full run's and quickTime QUICK's.
func goBench(pattern, benchtime, quickTime string, pkgs ...string) func(e *env) []string {
	return goBenchQuick(pattern, pattern, benchtime, quickTime, pkgs...)
}

// goBenchQuick is goBench running fewer benchmarks in QUICK.
func goBenchQuick(pattern, quickPattern, benchtime, quickTime string, pkgs ...string) func(e *env) []string {
	return func(e *env) []string {
		t := benchtime
		if e.quick {
			t, pattern = quickTime, quickPattern
		}
		argv := []string{"go", "test"}
		for _, p := range pkgs {
			argv = append(argv, "./"+p)
		}
		return append(argv, "-run", "^$", "-bench", pattern, "-benchtime", t, "-count", "1")
	}
}

// fromBench parses go test -bench output and hands the results to pick.
func fromBench(pick func(e *env, rs []benchResult) []figure.Figure) func(*env, []byte, string) ([]figure.Figure, error) {
	return func(e *env, out []byte, _ string) ([]figure.Figure, error) {
		rs, err := parseBench(out)
		if err != nil {
			return nil, err
		}
		if len(rs) == 0 {
			return nil, errors.New("no benchmark results in the output")
		}
		return pick(e, rs), nil
	}
}

// fromJSON reads the figures a bench/ driver wrote with -json.
func fromJSON(_ *env, _ []byte, path string) ([]figure.Figure, error) {
	return figure.Read(path)
}
