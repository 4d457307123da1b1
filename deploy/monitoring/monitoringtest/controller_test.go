package monitoringtest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// binDir holds the controller binary TestMain's tests build, removed at exit.
var binDir string

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// controllerBin returns the opsconductor binary to run: OPSCONDUCTOR_BIN,
// or one built from this repository on first use (only the tests that
// start a controller need it).
func controllerBin(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("OPSCONDUCTOR_BIN"); bin != "" {
		return bin
	}
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "monitoringtest-bin-")
		if buildErr != nil {
			return
		}
		builtBin = filepath.Join(binDir, "opsconductor")
		// The same build flags as `make build`, so that the binary exports
		// what a release does.
		build := exec.Command("go", "build", "-trimpath", "-tags", "grpcnotrace", "-o", builtBin, "./cmd/opsconductor")
		build.Dir = repoRoot
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("build the controller in %s: %w\n%s", repoRoot, err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

// repoRoot is the main module's directory, three levels up from this one.
var repoRoot = filepath.Join("..", "..", "..")

// controller is one `opsconductor dev` process on kernel-chosen ports.
type controller struct {
	bin       string // the opsconductor binary
	url       string // http://127.0.0.1:PORT
	configDir string // the CLI's stored login
	password  string // the first admin's password
}

// upLine is how `opsconductor dev` announces its address on stdout once it
// serves HTTP; with --http-addr 127.0.0.1:0 it is the only place to learn it.
var upLine = regexp.MustCompile(`is up: (http://127\.0\.0\.1:\d+)`)

// startController runs `opsconductor dev` (one node, embedded history, the
// built-in agent) until the test ends, and waits until it is ready.
func startController(t *testing.T) *controller {
	t.Helper()
	dir := t.TempDir()
	c := &controller{configDir: filepath.Join(dir, "cli"), password: "monitoring-test-Pw-7c1e94"}
	pwFile := filepath.Join(dir, "admin-password")
	if err := os.WriteFile(pwFile, []byte(c.password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.bin = controllerBin(t)
	cmd := exec.Command(c.bin, "dev",
		"--data-dir", filepath.Join(dir, "data"),
		"--http-addr", "127.0.0.1:0", "--agent-addr", "127.0.0.1:0", "--raft-addr", "127.0.0.1:0",
		"--bootstrap-admin-password-file", pwFile,
		"--log-format", "json")
	var logs lockedBuffer
	cmd.Stderr = &logs
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s dev: %v", c.bin, err)
	}
	exited := make(chan error, 1)
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := upLine.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case urls <- m[1]:
				default:
				}
			}
		}
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("the controller did not stop within 20s of SIGTERM")
		}
		if t.Failed() {
			t.Logf("controller log:\n%s", logs.String())
		}
	})
	select {
	case c.url = <-urls:
	case err := <-exited:
		t.Fatalf("the controller exited before serving: %v\n%s", err, logs.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("the controller did not announce its address within 60s\n%s", logs.String())
	}
	waitFor(t, 60*time.Second, "the controller to be ready", func() error {
		return expectStatus(c.url+"/health/ready", http.StatusOK)
	})
	return c
}

// run runs the opsconductor CLI against c with c's stored login.
func (c *controller) run(stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, append(args, "--address", c.url)...)
	cmd.Env = append(os.Environ(), "OPSCONDUCTOR_CONFIG_DIR="+c.configDir, "OPSCONDUCTOR_TOKEN=", "OPSCONDUCTOR_ADDR=")
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("opsconductor %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// exercise makes the controller do what a working cluster does (a login,
// a job run on the built-in agent, Raft writes, a 404), so that every
// metric family with labels has a series to scrape: a vector that has seen
// no observation is not exported at all.
func (c *controller) exercise(t *testing.T) {
	t.Helper()
	if _, err := c.run(c.password+"\n", "login", "--username", "admin", "--password-stdin"); err != nil {
		t.Fatal(err)
	}
	// `dev` saves the example job "hello" for its built-in agent once it
	// leads, which may be just after it reports ready.
	waitFor(t, 30*time.Second, "the example job", func() error {
		_, err := c.run("", "job", "show", "hello")
		return err
	})
	for _, args := range [][]string{
		{"job", "run", "hello", "--follow"},
		{"operator", "check", "write", "--count", "5"},
	} {
		if _, err := c.run("", args...); err != nil {
			t.Fatal(err)
		}
	}
	if err := expectStatus(c.url+"/api/v1/no-such-route", http.StatusNotFound); err != nil {
		t.Fatal(err)
	}
}

// scrape returns the metric families c exports, keyed by name.
func (c *controller) scrape(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(c.url + "/metrics")
	if err != nil {
		t.Fatalf("scrape /metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return families
}

// familyTypes reduces scraped families to their names and types.
func familyTypes(families map[string]*dto.MetricFamily) map[string]model.MetricType {
	out := make(map[string]model.MetricType, len(families))
	for name, f := range families {
		switch f.GetType() {
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			out[name] = model.MetricTypeHistogram
		case dto.MetricType_SUMMARY:
			out[name] = model.MetricTypeSummary
		case dto.MetricType_COUNTER:
			out[name] = model.MetricTypeCounter
		default:
			out[name] = model.MetricTypeGauge
		}
	}
	return out
}

// seriesNames expands metric families to the series names a query can
// select: a histogram's _bucket, _sum and _count, a summary's quantile
// series (under its own name), _sum and _count.
func seriesNames(families map[string]model.MetricType) map[string]bool {
	names := make(map[string]bool)
	for name, typ := range families {
		switch typ {
		case model.MetricTypeHistogram:
			names[name+"_bucket"] = true
			names[name+"_sum"] = true
			names[name+"_count"] = true
		case model.MetricTypeSummary:
			names[name] = true
			names[name+"_sum"] = true
			names[name+"_count"] = true
		default:
			names[name] = true
		}
	}
	return names
}

func expectStatus(url string, want int) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != want {
		return fmt.Errorf("GET %s: %s, want %d", url, resp.Status, want)
	}
	return nil
}

// waitFor polls check until it succeeds or the deadline passes.
func waitFor(t *testing.T, within time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// lockedBuffer collects a child process's output for the failure report.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
