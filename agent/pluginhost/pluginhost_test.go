package pluginhost

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/opsconductor/opsconductor/plugins/schema"
	"github.com/opsconductor/opsconductor/plugins/sdk"
)

// binDir holds the test plugin binaries, built once per test process.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pluginhost-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

var builds sync.Map // version → *built

type built struct {
	once      sync.Once
	path, sum string
	err       error
}

// buildStep builds testdata/teststep at version with go build (the build
// cache makes every build after the first a link).
func buildStep(t testing.TB, version string) (path, sum string) {
	t.Helper()
	v, _ := builds.LoadOrStore(version, &built{})
	b := v.(*built)
	b.once.Do(func() {
		b.path = filepath.Join(binDir, "teststep-"+version)
		cmd := exec.Command("go", "build", "-o", b.path, "-ldflags", "-X main.version="+version, "./testdata/teststep")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		data, err := os.ReadFile(b.path)
		if err != nil {
			b.err = err
			return
		}
		s := sha256.Sum256(data)
		b.sum = hex.EncodeToString(s[:])
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path, b.sum
}

func newHost(t testing.TB, cfg Config) *Host {
	t.Helper()
	if cfg.CacheDir == "" {
		cfg.CacheDir = t.TempDir()
	}
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func install(t testing.TB, h *Host, version string) PluginInfo {
	t.Helper()
	path, sum := buildStep(t, version)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	info, err := h.Install("teststep", version, sum, f)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// capture is an sdk.Output that keeps everything.
type capture struct {
	mu             sync.Mutex
	stdout, stderr bytes.Buffer
}

func (c *capture) Stdout() io.Writer { return lockedWriter{&c.mu, &c.stdout} }
func (c *capture) Stderr() io.Writer { return lockedWriter{&c.mu, &c.stderr} }

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func params(mode string, extra ...string) []byte {
	s := `{"mode":"` + mode + `"`
	for i := 0; i+1 < len(extra); i += 2 {
		s += `,"` + extra[i] + `":` + extra[i+1]
	}
	return []byte(s + "}")
}

func run(t testing.TB, h *Host, ctx context.Context, ref string, req sdk.Request) (sdk.Result, *capture, error) {
	t.Helper()
	var c capture
	res, err := h.Run(ctx, ref, req, &c)
	return res, &c, err
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func pidOf(t testing.TB, res sdk.Result) int {
	t.Helper()
	pid, err := strconv.Atoi(res.Outputs["pid"])
	if err != nil {
		t.Fatalf("no pid output: %v", res.Outputs)
	}
	return pid
}

func TestRunStreamsOutputAndReusesTheWarmProcess(t *testing.T) {
	h := newHost(t, Config{})
	install(t, h, "1.0.0")
	ctx := context.Background()
	res, out, err := run(t, h, ctx, "teststep@1", sdk.Request{AttemptID: "a1", Params: params("echo", "text", `"hello"`)})
	if err != nil {
		t.Fatal(err)
	}
	if got := out.stdout.String(); got != "hello\n" {
		t.Errorf("stdout = %q", got)
	}
	if got := out.stderr.String(); got != "to stderr\n" {
		t.Errorf("stderr = %q", got)
	}
	if !res.Changed || res.Status != sdk.StatusSucceeded || res.Outputs["version"] != "1.0.0" {
		t.Errorf("result = %+v", res)
	}
	res2, _, err := run(t, h, ctx, "teststep@1", sdk.Request{AttemptID: "a2", Params: params("echo")})
	if err != nil {
		t.Fatal(err)
	}
	if pidOf(t, res) != pidOf(t, res2) {
		t.Errorf("second attempt ran in a new process (%d, then %d); want the warm one reused", pidOf(t, res), pidOf(t, res2))
	}
	if s := h.Stats(); s.Idle != 1 || s.Running != 0 {
		t.Errorf("stats = %+v, want one idle process", s)
	}
}

func TestStepOutcomes(t *testing.T) {
	h := newHost(t, Config{})
	install(t, h, "1.0.0")
	secrets := map[string]string{"pw": "hunter2-secret", "token": "tok-1234567890"}
	tests := []struct {
		name       string
		params     []byte
		wantErr    []string // substrings of the error
		wantIs     error
		wantStatus sdk.Status
		wantStdout string
		keepsProc  bool
	}{
		{name: "a failed result is not an error", params: params("fail"), wantStatus: sdk.StatusFailed, keepsProc: true},
		{name: "a step error names the plugin and is masked", params: params("error"),
			wantErr: []string{"plugin teststep@1.0.0", "step error mentioning ***"}, keepsProc: true},
		{name: "a panic in Run fails the attempt and retires the process", params: params("panic"),
			wantErr: []string{"plugin teststep@1.0.0", "step panicked: boom in Run"}},
		{name: "a crash fails the attempt with the panic, masked", params: params("crash"), wantIs: ErrCrashed,
			wantErr: []string{"plugin teststep@1.0.0", "crash boom ***"}},
		{name: "secrets cut across two writes are masked", params: params("secret"),
			wantStdout: "secret=***\nsecret=***\n", keepsProc: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, _, err := run(t, h, context.Background(), "teststep", sdk.Request{Params: params("echo")})
			if err != nil {
				t.Fatal(err)
			}
			res, out, err := run(t, h, context.Background(), "teststep", sdk.Request{AttemptID: "x", Params: tt.params, Secrets: secrets})
			for _, w := range tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("error %v, want it to contain %q", err, w)
				}
			}
			if len(tt.wantErr) == 0 && err != nil {
				t.Errorf("unexpected error %v", err)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %v is not %v", err, tt.wantIs)
			}
			if err != nil {
				for _, s := range secrets {
					if strings.Contains(err.Error(), s) {
						t.Errorf("error leaks a secret: %v", err)
					}
				}
			}
			if res.Status != tt.wantStatus && err == nil {
				t.Errorf("status = %v, want %v", res.Status, tt.wantStatus)
			}
			if tt.wantStdout != "" && out.stdout.String() != tt.wantStdout {
				t.Errorf("stdout = %q, want %q", out.stdout.String(), tt.wantStdout)
			}
			// The agent keeps working: the next attempt succeeds, in the
			// same process only if the step ended normally.
			after, _, err := run(t, h, context.Background(), "teststep", sdk.Request{Params: params("echo")})
			if err != nil {
				t.Fatalf("the attempt after: %v", err)
			}
			if same := pidOf(t, before) == pidOf(t, after); same != tt.keepsProc {
				t.Errorf("process kept = %v, want %v", same, tt.keepsProc)
			}
			if !tt.keepsProc {
				waitFor(t, "the retired process to be gone", 5*time.Second, func() bool { return !alive(pidOf(t, before)) })
			}
		})
	}
}

func TestInvalidParamsAreRefusedBeforeRun(t *testing.T) {
	h := newHost(t, Config{})
	install(t, h, "1.0.0")
	_, _, err := run(t, h, context.Background(), "teststep", sdk.Request{Params: []byte(`{"mode":"nope","bytes":-1}`)})
	var ve *schema.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v, want a *schema.ValidationError", err)
	}
	for _, w := range []string{"teststep@1.0.0", "params.mode", "params.bytes"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not name %q", err, w)
		}
	}
}

func TestChecksumMismatchIsRefusedBeforeExec(t *testing.T) {
	h := newHost(t, Config{})
	info := install(t, h, "1.0.0")
	// Replace the installed binary with a script that leaves a mark if it
	// is ever executed.
	mark := filepath.Join(t.TempDir(), "executed")
	if err := os.WriteFile(info.Path, []byte("#!/bin/sh\ntouch "+mark+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, _, err := run(t, h, context.Background(), "teststep@1.0.0", sdk.Request{Params: params("echo")})
	if !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), "teststep@1.0.0") {
		t.Fatalf("error %v, want ErrChecksum naming the plugin", err)
	}
	if _, err := os.Stat(mark); err == nil {
		t.Fatal("the tampered binary was executed")
	}
}

func TestInstallChecksTheDownload(t *testing.T) {
	h := newHost(t, Config{})
	path, sum := buildStep(t, "1.0.0")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Install("teststep", "1.0.0", sum, bytes.NewReader(data[:len(data)/2])); !errors.Is(err, ErrChecksum) {
		t.Fatalf("truncated download: error %v, want ErrChecksum", err)
	}
	if got := h.Installed(); len(got) != 0 {
		t.Fatalf("a failed install left %v", got)
	}
	if _, err := h.Install("teststep", "1.0.0", sum, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Install("teststep", "1.0.0", sum, bytes.NewReader(data)); err != nil {
		t.Fatalf("installing the same binary again: %v", err)
	}
	other := sha256.Sum256([]byte("other"))
	if _, err := h.Install("teststep", "1.0.0", hex.EncodeToString(other[:]), bytes.NewReader([]byte("other"))); !errors.Is(err, ErrConflict) {
		t.Fatalf("a different binary under the same version: error %v, want ErrConflict", err)
	}
	for _, bad := range []struct{ name, version, sum string }{
		{"Bad_Name", "1.0.0", sum}, {"teststep", "1.0", sum}, {"teststep", "1.0.0", "abc"},
	} {
		if _, err := h.Install(bad.name, bad.version, bad.sum, bytes.NewReader(data)); err == nil {
			t.Errorf("Install(%q, %q, %q) succeeded", bad.name, bad.version, bad.sum)
		}
	}
}

func TestHangingStepIsKilledAtItsTimeout(t *testing.T) {
	h := newHost(t, Config{StopGrace: 200 * time.Millisecond})
	install(t, h, "1.0.0")
	warm, _, err := run(t, h, context.Background(), "teststep", sdk.Request{Params: params("echo")})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	_, _, err = run(t, h, ctx, "teststep", sdk.Request{AttemptID: "hang", Params: params("hang")})
	took := time.Since(t0)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "teststep@1.0.0") {
		t.Fatalf("error %v, want DeadlineExceeded naming the plugin", err)
	}
	if took > 5*time.Second {
		t.Errorf("Run returned %s after the call; the kill should follow timeout + grace", took)
	}
	if alive(pidOf(t, warm)) {
		t.Error("the hung plugin's process is still alive")
	}
	after, _, err := run(t, h, context.Background(), "teststep", sdk.Request{Params: params("echo")})
	if err != nil {
		t.Fatalf("the attempt after: %v", err)
	}
	if pidOf(t, after) == pidOf(t, warm) {
		t.Error("the next attempt did not get a new process")
	}
}

func TestCanceledStepThatStopsReportsHowItStopped(t *testing.T) {
	h := newHost(t, Config{StopGrace: 5 * time.Second})
	install(t, h, "1.0.0")
	ctx, cancel := context.WithCancel(context.Background())
	var c capture
	done := make(chan struct{})
	var res sdk.Result
	var err error
	go func() {
		defer close(done)
		res, err = h.Run(ctx, "teststep", sdk.Request{AttemptID: "stop", Params: params("stop")}, &c)
	}()
	waitFor(t, "the attempt to start", 10*time.Second, func() bool { return h.Stats().Running == 1 })
	cancel()
	<-done
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	if !strings.HasPrefix(res.Message, "stopped: context canceled") {
		t.Errorf("result message %q, want the step's own report", res.Message)
	}
}

func TestFloodOf100MBIsStreamedInBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("100 MB through a real plugin process")
	}
	h := newHost(t, Config{})
	install(t, h, "1.0.0")
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	const total = 100 << 20
	c := &countingOutput{}
	res, err := h.Run(context.Background(), "teststep", sdk.Request{Params: params("flood", "bytes", strconv.Itoa(total))}, c)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.n.Load(); got < total {
		t.Fatalf("received %d bytes, want %d", got, total)
	}
	if c.lines.Load() < total/(64<<10) {
		t.Errorf("only %d lines", c.lines.Load())
	}
	peak := c.peak.Load()
	// The window is 256 KiB and lines are 64 KiB; allow generous slack
	// for the race detector and gRPC's buffers, far below 100 MB.
	if grow := int64(peak) - int64(base.HeapInuse); grow > 48<<20 {
		t.Errorf("heap grew by %d MB while streaming 100 MB", grow>>20)
	}
	t.Logf("streamed %d MB, heap in use grew by at most %d KB", c.n.Load()>>20, (int64(peak)-int64(base.HeapInuse))>>10)
	_ = res
}

// countingOutput counts what arrives and samples the heap as it goes.
type countingOutput struct {
	n, lines, peak atomic.Uint64
}

func (c *countingOutput) Stdout() io.Writer { return countWriter{c} }
func (c *countingOutput) Stderr() io.Writer { return countWriter{c} }

type countWriter struct{ c *countingOutput }

func (w countWriter) Write(p []byte) (int, error) {
	before := w.c.n.Add(uint64(len(p))) - uint64(len(p))
	w.c.lines.Add(uint64(bytes.Count(p, []byte("\n"))))
	if before>>23 != (before+uint64(len(p)))>>23 { // every 8 MB
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		if ms.HeapInuse > w.c.peak.Load() {
			w.c.peak.Store(ms.HeapInuse)
		}
	}
	return len(p), nil
}

func TestTwoVersionsCoexistAndAReferencePicksOne(t *testing.T) {
	h := newHost(t, Config{})
	for _, v := range []string{"1.0.0", "1.2.0", "2.0.0"} {
		install(t, h, v)
	}
	tests := []struct{ ref, want string }{
		{"teststep@1", "1.2.0"},
		{"teststep@1.0.0", "1.0.0"},
		{"teststep@1.0", "1.0.0"},
		{"teststep@2", "2.0.0"},
		{"teststep", "2.0.0"},
	}
	for _, tt := range tests {
		t.Run(tt.ref+" runs "+tt.want, func(t *testing.T) {
			res, _, err := run(t, h, context.Background(), tt.ref, sdk.Request{Params: params("echo")})
			if err != nil {
				t.Fatal(err)
			}
			if res.Outputs["version"] != tt.want {
				t.Errorf("ran version %s, want %s", res.Outputs["version"], tt.want)
			}
		})
	}
	if _, err := h.Resolve("teststep@3"); !errors.Is(err, ErrNotInstalled) {
		t.Errorf("teststep@3: error %v, want ErrNotInstalled", err)
	}
	var got []string
	for _, p := range h.Installed() {
		got = append(got, p.Ref()+" "+p.Source)
	}
	want := "teststep@1.0.0 cache,teststep@1.2.0 cache,teststep@2.0.0 cache"
	if strings.Join(got, ",") != want {
		t.Errorf("Installed() = %v, want %s", got, want)
	}
}

func TestPluginDirIsScannedAndWinsOverTheCache(t *testing.T) {
	path, sum := buildStep(t, "1.0.0")
	pdir := t.TempDir()
	dir := filepath.Join(pdir, "teststep", "1.0.0", runtime.GOOS+"_"+runtime.GOARCH)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	if err := os.WriteFile(filepath.Join(dir, "teststep"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	manifest := fmt.Sprintf(`{"name":"teststep","version":"1.0.0","os":%q,"arch":%q,"sha256":%q,"binary":"teststep"}`, runtime.GOOS, runtime.GOARCH, sum)
	// Not yet: a directory without a manifest is an unfinished install.
	h := newHost(t, Config{PluginDir: pdir})
	if _, err := h.Resolve("teststep"); !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("error %v before the manifest exists", err)
	}
	install(t, h, "1.0.0") // the same version in the cache
	if err := os.WriteFile(filepath.Join(dir, ManifestName), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	// Found at the next rescan (Installed, or a reference not found).
	h.Installed()
	info, err := h.Resolve("teststep@1")
	if err != nil {
		t.Fatal(err)
	}
	if info.Source != SourcePluginDir || info.Path != filepath.Join(dir, "teststep") {
		t.Errorf("resolved %+v, want the plugin directory's copy", info)
	}
	if _, _, err := run(t, h, context.Background(), "teststep@1", sdk.Request{Params: params("echo")}); err != nil {
		t.Fatal(err)
	}
}

func TestIdleProcessesAreStopped(t *testing.T) {
	h := newHost(t, Config{IdleTimeout: 100 * time.Millisecond})
	install(t, h, "1.0.0")
	res, _, err := run(t, h, context.Background(), "teststep", sdk.Request{Params: params("echo")})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the idle process to be stopped", 10*time.Second, func() bool {
		return h.Stats().Idle == 0 && !alive(pidOf(t, res))
	})
}

func TestMaxIdleBoundsWarmProcesses(t *testing.T) {
	h := newHost(t, Config{MaxIdle: 1})
	install(t, h, "1.0.0")
	install(t, h, "2.0.0")
	for _, ref := range []string{"teststep@1", "teststep@2", "teststep@1"} {
		if _, _, err := run(t, h, context.Background(), ref, sdk.Request{Params: params("echo")}); err != nil {
			t.Fatal(err)
		}
		if s := h.Stats(); s.Idle > 1 {
			t.Fatalf("after %s: %d idle processes, want at most 1", ref, s.Idle)
		}
	}
}

func TestCloseEndsRunningAttempts(t *testing.T) {
	h, err := New(Config{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	install(t, h, "1.0.0")
	done := make(chan error, 1)
	go func() {
		_, err := h.Run(context.Background(), "teststep", sdk.Request{Params: params("hang")}, &capture{})
		done <- err
	}()
	waitFor(t, "the attempt to start", 10*time.Second, func() bool { return h.Stats().Running == 1 })
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err == nil || !strings.Contains(err.Error(), "teststep@1.0.0") {
		t.Fatalf("the running attempt ended with %v, want an error naming the plugin", err)
	}
	if _, _, err := run(t, h, context.Background(), "teststep", sdk.Request{Params: params("echo")}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Run after Close: %v, want ErrClosed", err)
	}
}

func TestDescribe(t *testing.T) {
	h := newHost(t, Config{})
	install(t, h, "1.2.0")
	d, err := h.Describe(context.Background(), "teststep@1")
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "teststep" || d.Version != "1.2.0" || len(d.Params) == 0 {
		t.Errorf("description = %+v", d)
	}
}

// TestASlowConsumerHoldsThePluginBack blocks the attempt's output and
// checks that the plugin cannot finish writing its flood meanwhile: gRPC
// flow control stops it in Write, and the agent's memory does not grow.
func TestASlowConsumerHoldsThePluginBack(t *testing.T) {
	if testing.Short() {
		t.Skip("floods a real plugin process")
	}
	h := newHost(t, Config{})
	install(t, h, "1.0.0")
	done := filepath.Join(t.TempDir(), "done")
	release := make(chan struct{})
	c := &blockingOutput{release: release, first: make(chan struct{})}
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	errc := make(chan error, 1)
	go func() {
		_, err := h.Run(context.Background(), "teststep", sdk.Request{Params: params("flood",
			"bytes", strconv.Itoa(16<<20), "done_file", strconv.Quote(done))}, c)
		errc <- err
	}()
	<-c.first
	// Unthrottled, the plugin writes 16 MB in well under this window; held
	// back, it never gets there.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(done); err == nil {
			t.Fatal("the plugin finished its flood while the agent read nothing")
		}
		time.Sleep(50 * time.Millisecond)
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if grow := int64(ms.HeapInuse) - int64(base.HeapInuse); grow > 16<<20 {
		t.Errorf("heap grew by %d MB while the output was blocked", grow>>20)
	}
	close(release)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(done); err != nil {
		t.Fatalf("the flood did not finish once released: %v", err)
	}
}

type blockingOutput struct {
	release, first chan struct{}
	once           sync.Once
}

func (b *blockingOutput) Stdout() io.Writer { return b }
func (b *blockingOutput) Stderr() io.Writer { return b }

func (b *blockingOutput) Write(p []byte) (int, error) {
	b.once.Do(func() { close(b.first) })
	<-b.release
	return len(p), nil
}

// TestNothingSecretIsLogged runs attempts that put secrets in output, in
// errors and in a crash's panic, with the host logging at debug level.
func TestNothingSecretIsLogged(t *testing.T) {
	var logs lockedBuffer
	h := newHost(t, Config{Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	install(t, h, "1.0.0")
	secrets := map[string]string{"pw": "hunter2-secret", "token": "tok-1234567890"}
	for _, mode := range []string{"secret", "error", "panic", "crash"} {
		_, out, _ := run(t, h, context.Background(), "teststep", sdk.Request{Params: params(mode), Secrets: secrets})
		for _, s := range secrets {
			if strings.Contains(out.stdout.String()+out.stderr.String(), s) {
				t.Errorf("%s: a secret reached the step's output", mode)
			}
		}
	}
	h.Close()
	if logs.String() == "" {
		t.Fatal("nothing was logged; the test would prove nothing")
	}
	for _, s := range secrets {
		if strings.Contains(logs.String(), s) {
			t.Errorf("the log holds a secret:\n%s", logs.String())
		}
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestConcurrentAttemptsGetTheirOwnProcesses: a process runs one attempt
// at a time, so that killing one never hurts another.
func TestConcurrentAttemptsGetTheirOwnProcesses(t *testing.T) {
	h := newHost(t, Config{MaxIdle: 2})
	install(t, h, "1.0.0")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const n = 3
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			h.Run(ctx, "teststep", sdk.Request{Params: params("stop")}, &capture{})
		})
	}
	waitFor(t, "three running processes", 20*time.Second, func() bool { return h.Stats().Running == n })
	cancel()
	wg.Wait()
	if s := h.Stats(); s.Running != 0 || s.Idle > 2 {
		t.Errorf("stats after the attempts = %+v", s)
	}
}
