// Package pluginhost runs external step plugins for the agent. It finds
// installed plugin binaries in the agent's plugin directory and its
// download cache, resolves a job's reference ("disk-usage@1") to one
// installed version, starts the binary on first use as a go-plugin process
// (plugins/sdk/host) after checking its sha256, keeps it warm for the next
// attempt, and masks the attempt's secrets in everything the step prints.
//
// It owns plugin processes and the cache directory's contents. It must
// never run a binary whose checksum it has not verified, never log a
// secret or a line of step output, and never let a plugin that crashes,
// hangs or floods output take the agent down with it: every such case
// ends the attempt with an error naming the plugin, and the next attempt
// gets a fresh process.
//
// Layout, the same in both directories (the plugin directory is the
// operator's and only read; the cache is written by Install):
//
//	<dir>/<name>/<version>/<os>_<arch>/manifest.json
//	<dir>/<name>/<version>/<os>_<arch>/<binary>
//
// manifest.json (see Manifest) names the binary and its sha256. A
// directory without a manifest is an unfinished install and is ignored.
// When both directories hold one version, the plugin directory wins.
//
// The executor's use of it, per attempt of kind "name@version":
//
//	res, err := h.Run(ctx, kind, sdk.Request{...}, out)
//	// errors.Is(err, ErrNotInstalled): FetchPlugin from the controller,
//	// h.Install(name, version, sha256, stream), then Run again.
//
// and the session's: h.Installed() for the plugins in Hello; h.Close() on
// shutdown.
package pluginhost

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/opsconductor/opsconductor/agent/mask"
	"github.com/opsconductor/opsconductor/plugins/schema"
	"github.com/opsconductor/opsconductor/plugins/sdk"
	"github.com/opsconductor/opsconductor/plugins/sdk/host"
)

var (
	// ErrNotInstalled: no installed version satisfies the reference. The
	// caller may fetch the plugin from the controller and Install it.
	ErrNotInstalled = errors.New("not installed")
	// ErrChecksum: a binary's sha256 is not the expected one. A binary
	// that fails the check is never executed.
	ErrChecksum = host.ErrChecksum
	// ErrCrashed: the plugin process died during the attempt.
	ErrCrashed = errors.New("plugin process crashed")
	// ErrConflict: Install was given a different binary for a version
	// already installed. Versions are immutable.
	ErrConflict = errors.New("a different binary is installed under this version")
	// ErrClosed: the Host was closed.
	ErrClosed = errors.New("plugin host closed")
)

// MaxBinary bounds a plugin binary accepted by Install.
const MaxBinary = 512 << 20

// Sources of an installed plugin.
const (
	SourcePluginDir = "plugin-dir"
	SourceCache     = "cache"
)

// Config configures a Host.
type Config struct {
	// PluginDir holds plugins the operator installed; it is only read.
	PluginDir string
	// CacheDir holds plugins fetched from the controller; Install writes
	// here. Required for Install.
	CacheDir string
	Logger   *slog.Logger
	// MaxIdle bounds the warm processes kept across all plugins (default
	// 8; negative keeps none, so every attempt starts a process). Running
	// attempts are bounded by the executor, not here.
	MaxIdle int
	// IdleTimeout stops a warm process unused this long (default 5m).
	IdleTimeout time.Duration
	// StopGrace is how long a step has to return after its attempt is
	// canceled or times out before its process is killed (default 1s:
	// DESIGN.md §5 has cancel reach the step within a second).
	StopGrace time.Duration
	// StartTimeout bounds a plugin's start and handshake (default 10s).
	StartTimeout time.Duration
	// Env is each plugin process's whole environment. The default passes
	// PATH, LANG and TMPDIR only: the agent's own environment may hold
	// credentials.
	Env []string
	// OS and Arch select the binaries this agent can run (default
	// runtime.GOOS and runtime.GOARCH).
	OS, Arch string
}

// PluginInfo is one installed plugin version, as reported in Hello.
type PluginInfo struct {
	Name    string
	Version string
	SHA256  string
	// Path is the binary; Source is SourcePluginDir or SourceCache.
	Path   string
	Source string
}

// Ref is the exact reference name@version.
func (i PluginInfo) Ref() string { return i.Name + "@" + i.Version }

// Stats counts plugin processes.
type Stats struct{ Running, Idle int }

// Host runs plugin attempts. Create it with New and end it with Close.
type Host struct {
	cfg Config
	log *slog.Logger

	scanMu sync.Mutex // one directory scan at a time, so the newest wins

	mu        sync.Mutex
	installed map[string][]PluginInfo // by name, highest version first
	idle      []*proc                 // oldest first
	running   map[*proc]struct{}
	closed    bool

	wg         sync.WaitGroup // Runs in progress and background stops
	stopReaper context.CancelFunc
	reaperDone chan struct{}
}

// proc is one plugin process. It runs one attempt at a time, so that
// killing it for a canceled or hung attempt never hurts another.
type proc struct {
	p         *host.Plugin
	info      PluginInfo
	desc      sdk.Description
	stderr    *tail
	idleSince time.Time
}

// New scans the directories and starts the idle reaper.
func New(cfg Config) (*Host, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxIdle == 0 {
		cfg.MaxIdle = 8
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 5 * time.Minute
	}
	if cfg.StopGrace <= 0 {
		cfg.StopGrace = time.Second
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 10 * time.Second
	}
	if cfg.OS == "" {
		cfg.OS = runtime.GOOS
	}
	if cfg.Arch == "" {
		cfg.Arch = runtime.GOARCH
	}
	if cfg.Env == nil {
		for _, k := range []string{"PATH", "LANG", "TMPDIR"} {
			if v, ok := os.LookupEnv(k); ok {
				cfg.Env = append(cfg.Env, k+"="+v)
			}
		}
	}
	if cfg.CacheDir != "" {
		if err := os.MkdirAll(cfg.CacheDir, 0o755); err != nil {
			return nil, fmt.Errorf("plugin cache: %w", err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &Host{cfg: cfg, log: cfg.Logger, running: map[*proc]struct{}{},
		stopReaper: cancel, reaperDone: make(chan struct{})}
	h.rescan()
	go h.reap(ctx)
	return h, nil
}

// Installed rescans the directories and lists every installed plugin
// version for this OS and architecture, by name and then version.
func (h *Host) Installed() []PluginInfo {
	h.rescan()
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []PluginInfo
	for _, vs := range h.installed {
		out = append(out, vs...)
	}
	slices.SortFunc(out, func(a, b PluginInfo) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return mustVersion(a.Version).Compare(mustVersion(b.Version))
	})
	return out
}

// Resolve picks the installed version ref names: the highest that
// matches. It rescans once before reporting ErrNotInstalled, so a plugin
// an operator just copied in is found.
func (h *Host) Resolve(ref string) (PluginInfo, error) {
	r, err := ParseRef(ref)
	if err != nil {
		return PluginInfo{}, err
	}
	if info, ok := h.lookup(r); ok {
		return info, nil
	}
	h.rescan()
	if info, ok := h.lookup(r); ok {
		return info, nil
	}
	return PluginInfo{}, fmt.Errorf("plugin %s: %w", r, ErrNotInstalled)
}

func (h *Host) lookup(r Ref) (PluginInfo, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, info := range h.installed[r.Name] {
		if r.Matches(mustVersion(info.Version)) {
			return info, true
		}
	}
	return PluginInfo{}, false
}

// Describe returns the Description of the version ref resolves to,
// starting its process if none is warm.
func (h *Host) Describe(ctx context.Context, ref string) (sdk.Description, error) {
	info, err := h.Resolve(ref)
	if err != nil {
		return sdk.Description{}, err
	}
	pr, err := h.acquire(ctx, info)
	if err != nil {
		return sdk.Description{}, fmt.Errorf("plugin %s: %w", info.Ref(), err)
	}
	defer h.wg.Done()
	defer h.release(pr, true)
	return pr.desc, nil
}

// Run runs one attempt of the plugin ref resolves to. It validates
// req.Params against the step's schema, writes the step's output to out
// line by line with req.Secrets masked, and returns the step's Result.
//
// A non-nil error names the plugin and says why: the step failed
// (host.StepError), the params are invalid (*schema.ValidationError), the
// plugin is not installed (ErrNotInstalled), its binary failed the
// checksum (ErrChecksum), the process crashed (ErrCrashed), or ctx ended
// (ctx's error; the process is then killed if the step did not stop
// within StopGrace). Only a step that returned normally keeps its process
// warm; every other ending retires it and the next attempt starts afresh.
func (h *Host) Run(ctx context.Context, ref string, req sdk.Request, out sdk.Output) (sdk.Result, error) {
	info, err := h.Resolve(ref)
	if err != nil {
		return sdk.Result{}, err
	}
	key := info.Ref()
	if err := ctx.Err(); err != nil {
		// Do not start a process for an attempt already over.
		return sdk.Result{}, fmt.Errorf("plugin %s: %w", key, context.Cause(ctx))
	}
	pr, err := h.acquire(ctx, info)
	if err != nil {
		return sdk.Result{}, fmt.Errorf("plugin %s: %w", key, err)
	}
	defer h.wg.Done() // acquire counted this Run
	if err := schema.Validate(pr.desc.Params, req.Params); err != nil {
		h.release(pr, true)
		return sdk.Result{}, fmt.Errorf("plugin %s: %w", key, err)
	}
	m := mask.New(req.Secrets)
	stdout, stderr := mask.NewWriter(out.Stdout(), m), mask.NewWriter(out.Stderr(), m)
	pr.stderr.reset()
	res, err := pr.p.Run(ctx, req, output{stdout, stderr}, h.cfg.StopGrace)
	// The last line of each stream, even when the attempt failed.
	if ferr := errors.Join(stdout.Flush(), stderr.Flush()); ferr != nil && err == nil {
		err = fmt.Errorf("write step output: %w", ferr)
	}
	var stepErr *host.StepError
	healthy := err == nil || (errors.As(err, &stepErr) && !stepErr.Panicked && ctx.Err() == nil)
	h.release(pr, healthy)
	switch {
	case err == nil:
		return res, nil
	case errors.Is(err, host.ErrExited) && ctx.Err() == nil:
		why := string(m.Mask([]byte(pr.stderr.panicLine())))
		if why != "" {
			why = ": " + why
		}
		h.log.Warn("plugin process crashed during an attempt", "plugin", key, "attempt_id", req.AttemptID, "error", err)
		return res, fmt.Errorf("plugin %s: %w: %w%s", key, ErrCrashed, err, why)
	case ctx.Err() != nil:
		h.log.Info("plugin attempt ended by its context", "plugin", key, "attempt_id", req.AttemptID, "cause", context.Cause(ctx))
	}
	// A step's error text may quote a secret.
	return res, fmt.Errorf("plugin %s: %w", key, maskedError{err, m})
}

// maskedError masks the text of err but keeps it for errors.Is and As.
type maskedError struct {
	err error
	m   *mask.Masker
}

func (e maskedError) Error() string { return string(e.m.Mask([]byte(e.err.Error()))) }
func (e maskedError) Unwrap() error { return e.err }

type output struct{ stdout, stderr io.Writer }

func (o output) Stdout() io.Writer { return o.stdout }
func (o output) Stderr() io.Writer { return o.stderr }

// acquire takes a warm process for info or starts one. On success the
// caller holds one count of h.wg and must call release.
func (h *Host) acquire(ctx context.Context, info PluginInfo) (*proc, error) {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, ErrClosed
	}
	h.wg.Add(1)
	for i := len(h.idle) - 1; i >= 0; i-- {
		pr := h.idle[i]
		if pr.info != info {
			continue
		}
		h.idle = slices.Delete(h.idle, i, i+1)
		if pr.p.Exited() {
			h.stopLocked(pr)
			continue
		}
		h.running[pr] = struct{}{}
		h.mu.Unlock()
		return pr, nil
	}
	h.mu.Unlock()

	pr, err := h.start(ctx, info)
	if err != nil {
		h.wg.Done()
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		h.wg.Done()
		pr.p.Kill()
		return nil, ErrClosed
	}
	h.running[pr] = struct{}{}
	return pr, nil
}

// start verifies, launches and describes one process.
func (h *Host) start(ctx context.Context, info PluginInfo) (*proc, error) {
	sum, err := decodeSHA256(info.SHA256)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	pr := &proc{info: info, stderr: newTail(8 << 10)}
	pr.p, err = host.Start(host.Config{Path: info.Path, SHA256: sum, Env: h.cfg.Env,
		StartTimeout: h.cfg.StartTimeout, Logger: h.log.With("plugin", info.Ref()), Stderr: pr.stderr})
	if err != nil {
		if errors.Is(err, host.ErrChecksum) {
			h.log.Error("refusing to run a plugin binary whose checksum does not match its manifest",
				"plugin", info.Ref(), "path", info.Path, "expected_sha256", info.SHA256)
		}
		return nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, h.cfg.StartTimeout)
	defer cancel()
	pr.desc, err = pr.p.Describe(dctx)
	if err != nil {
		pr.p.Kill()
		return nil, err
	}
	if pr.desc.Name != info.Name || pr.desc.Version != info.Version {
		pr.p.Kill()
		return nil, fmt.Errorf("the binary describes itself as %s@%s", pr.desc.Name, pr.desc.Version)
	}
	h.log.Debug("plugin process started", "plugin", info.Ref(), "pid", pr.p.Pid(), "took", time.Since(t0))
	return pr, nil
}

// release ends a use of pr: a healthy process goes back to the idle pool
// (the oldest idle ones beyond MaxIdle are stopped), any other is killed.
func (h *Host) release(pr *proc, healthy bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.running, pr)
	if !healthy || h.closed || pr.p.Exited() {
		// Killed here, not in the background: a hung or crashed process
		// must be gone before the attempt reports.
		pr.p.Kill()
		return
	}
	pr.idleSince = time.Now()
	h.idle = append(h.idle, pr)
	for len(h.idle) > max(h.cfg.MaxIdle, 0) {
		h.stopLocked(h.idle[0])
		h.idle = h.idle[1:]
	}
}

// stopLocked stops a process that is in no pool, in the background: a
// graceful stop can take go-plugin up to 2s.
func (h *Host) stopLocked(pr *proc) {
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		pr.p.Stop()
	}()
}

// reap stops processes idle longer than IdleTimeout.
func (h *Host) reap(ctx context.Context) {
	defer close(h.reaperDone)
	tick := time.NewTicker(max(h.cfg.IdleTimeout/4, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			h.mu.Lock()
			h.idle = slices.DeleteFunc(h.idle, func(pr *proc) bool {
				if now.Sub(pr.idleSince) < h.cfg.IdleTimeout {
					return false
				}
				h.log.Debug("stopping an idle plugin process", "plugin", pr.info.Ref(), "pid", pr.p.Pid())
				h.stopLocked(pr)
				return true
			})
			h.mu.Unlock()
		}
	}
}

// Stats counts the plugin processes running an attempt and idle.
func (h *Host) Stats() Stats {
	h.mu.Lock()
	defer h.mu.Unlock()
	return Stats{Running: len(h.running), Idle: len(h.idle)}
}

// Close kills every plugin process, fails the attempts still running,
// and waits for them to return.
func (h *Host) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	for pr := range h.running {
		// Their Runs see the stream break, return, and release them.
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			pr.p.Kill()
		}()
	}
	for _, pr := range h.idle {
		h.stopLocked(pr)
	}
	h.idle = nil
	h.mu.Unlock()
	h.stopReaper()
	<-h.reaperDone
	h.wg.Wait()
	return nil
}

// Install stores a plugin binary fetched from the controller in the cache
// directory, checking its sha256 (hex) as it is written. Installing the
// same binary again is a no-op; a different binary under an installed
// version is refused (ErrConflict).
func (h *Host) Install(name, version, sha256hex string, r io.Reader) (PluginInfo, error) {
	key := name + "@" + version
	if h.cfg.CacheDir == "" {
		return PluginInfo{}, fmt.Errorf("install %s: no cache directory configured", key)
	}
	m := Manifest{Name: name, Version: version, OS: h.cfg.OS, Arch: h.cfg.Arch, SHA256: sha256hex, Binary: binaryName(name, h.cfg.OS)}
	if err := m.check(); err != nil {
		return PluginInfo{}, fmt.Errorf("install %s: %w", key, err)
	}
	dir := filepath.Join(h.cfg.CacheDir, name, version, h.cfg.OS+"_"+h.cfg.Arch)
	if old, err := readManifest(filepath.Join(dir, ManifestName)); err == nil {
		if old.SHA256 != sha256hex {
			return PluginInfo{}, fmt.Errorf("install %s: %w (installed sha256 %s, given %s)", key, ErrConflict, old.SHA256, sha256hex)
		}
		if info, err := h.Resolve(key); err == nil && info.SHA256 == sha256hex {
			return info, nil
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return PluginInfo{}, fmt.Errorf("install %s: %w", key, err)
	}
	if err := writeBinary(dir, m, r); err != nil {
		return PluginInfo{}, fmt.Errorf("install %s: %w", key, err)
	}
	mj, _ := json.MarshalIndent(m, "", "  ")
	// The manifest is written last and renamed into place: it is the
	// commit marker of the install.
	if err := writeFileAtomic(dir, ManifestName, append(mj, '\n'), 0o644); err != nil {
		return PluginInfo{}, fmt.Errorf("install %s: manifest: %w", key, err)
	}
	h.log.Info("plugin installed", "plugin", key, "sha256", sha256hex)
	info, err := h.Resolve(key)
	if err != nil {
		return PluginInfo{}, fmt.Errorf("install %s: %w", key, err)
	}
	return info, nil
}

func writeBinary(dir string, m Manifest, r io.Reader) error {
	f, err := os.CreateTemp(dir, ".download-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // a no-op after the rename
	defer f.Close()
	hash := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, hash), io.LimitReader(r, MaxBinary+1))
	if err != nil {
		return fmt.Errorf("download: %w", err)
	}
	if n > MaxBinary {
		return fmt.Errorf("binary larger than %d bytes", MaxBinary)
	}
	if got := hex.EncodeToString(hash.Sum(nil)); got != m.SHA256 {
		return fmt.Errorf("%w: got sha256 %s, want %s", ErrChecksum, got, m.SHA256)
	}
	if err := f.Chmod(0o755); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), filepath.Join(dir, m.Binary))
}

func writeFileAtomic(dir, name string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(dir, "."+name+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Chmod(mode); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), filepath.Join(dir, name)); err != nil {
		return err
	}
	// Make the renames durable before the plugin is reported installed.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

func binaryName(name, goos string) string {
	if goos == "windows" {
		return name + ".exe"
	}
	return name
}

func readManifest(path string) (Manifest, error) {
	f, err := os.Open(path)
	if err != nil {
		return Manifest{}, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxManifest+1))
	if err != nil {
		return Manifest{}, err
	}
	return DecodeManifest(data)
}

// rescan rebuilds the index of installed plugins from both directories.
func (h *Host) rescan() {
	h.scanMu.Lock()
	defer h.scanMu.Unlock()
	found := map[string][]PluginInfo{}
	seen := map[string]bool{}
	// The plugin directory first: it wins over the cache.
	for _, src := range []struct{ dir, name string }{{h.cfg.PluginDir, SourcePluginDir}, {h.cfg.CacheDir, SourceCache}} {
		if src.dir == "" {
			continue
		}
		paths, _ := filepath.Glob(filepath.Join(src.dir, "*", "*", h.cfg.OS+"_"+h.cfg.Arch, ManifestName))
		for _, p := range paths {
			info, err := h.checkInstalled(p, src.name)
			if err != nil {
				h.log.Warn("ignoring an installed plugin", "path", p, "error", err)
				continue
			}
			if seen[info.Ref()] {
				continue
			}
			seen[info.Ref()] = true
			found[info.Name] = append(found[info.Name], info)
		}
	}
	for _, vs := range found {
		slices.SortFunc(vs, func(a, b PluginInfo) int { return mustVersion(b.Version).Compare(mustVersion(a.Version)) })
	}
	h.mu.Lock()
	h.installed = found
	h.mu.Unlock()
}

func (h *Host) checkInstalled(manifestPath, source string) (PluginInfo, error) {
	m, err := readManifest(manifestPath)
	if err != nil {
		return PluginInfo{}, err
	}
	dir := filepath.Dir(manifestPath)
	platDir, verDir, nameDir := filepath.Base(dir), filepath.Base(filepath.Dir(dir)), filepath.Base(filepath.Dir(filepath.Dir(dir)))
	if nameDir != m.Name || verDir != m.Version || platDir != m.OS+"_"+m.Arch {
		return PluginInfo{}, fmt.Errorf("manifest says %s@%s for %s_%s but lies in %s/%s/%s", m.Name, m.Version, m.OS, m.Arch, nameDir, verDir, platDir)
	}
	bin := filepath.Join(dir, m.Binary)
	st, err := os.Stat(bin)
	if err != nil {
		return PluginInfo{}, err
	}
	if !st.Mode().IsRegular() {
		return PluginInfo{}, fmt.Errorf("%s: not a regular file", bin)
	}
	return PluginInfo{Name: m.Name, Version: m.Version, SHA256: m.SHA256, Path: bin, Source: source}, nil
}

func mustVersion(s string) Version {
	v, _ := ParseVersion(s) // checked when the manifest was read
	return v
}

// tail keeps the last bytes a plugin process wrote to stderr, to explain
// a crash. It is never logged: it may hold step data.
type tail struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func newTail(n int) *tail { return &tail{max: n} }

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tail) reset() {
	t.mu.Lock()
	t.buf = t.buf[:0]
	t.mu.Unlock()
}

// panicLine finds the Go runtime's "panic: …" or "fatal error: …" line.
func (t *tail) panicLine() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, l := range bytes.Split(t.buf, []byte("\n")) {
		if bytes.HasPrefix(l, []byte("panic: ")) || bytes.HasPrefix(l, []byte("fatal error: ")) {
			s := string(l)
			if len(s) > 200 {
				s = s[:200] + "…"
			}
			return s
		}
	}
	return ""
}
