package plugins

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hashicorp/go-memdb"

	"github.com/opsconductor/opsconductor/controller/problem"
	"github.com/opsconductor/opsconductor/controller/state"
	"github.com/opsconductor/opsconductor/plugins/builtin"
	"github.com/opsconductor/opsconductor/plugins/sdk"
)

// Applier commits commands through Raft (cluster.Node in production).
type Applier interface {
	Apply(ctx context.Context, cmds ...state.Command) ([]state.Result, error)
}

// Deps are what the registry needs.
type Deps struct {
	Applier Applier
	Store   *state.Store
	Logger  *slog.Logger
	// Dir holds the binaries (DATA/plugins).
	Dir string
	// NodeID names this controller as a holder of the files it stores.
	NodeID string
	// Reserved reports names no plugin may take (default: the built-in
	// steps' and "command").
	Reserved func(name string) bool
}

// Service is the registry on one controller.
type Service struct {
	d Deps
}

// New opens the registry, creating its directory.
func New(d Deps) (*Service, error) {
	if d.Applier == nil || d.Store == nil || d.Logger == nil || d.Dir == "" || d.NodeID == "" {
		return nil, errors.New("plugins: Applier, Store, Logger, Dir and NodeID are required")
	}
	if d.Reserved == nil {
		d.Reserved = func(name string) bool {
			_, ok := builtin.Lookup(name)
			return ok || name == "command"
		}
	}
	if err := os.MkdirAll(d.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("plugins: create %s: %w", d.Dir, err)
	}
	return &Service{d: d}, nil
}

// Push is one upload: the plugin's description and which platform the
// binary is for.
type Push struct {
	Description sdk.Description
	OS, Arch    string
}

// Push stores binary (read to its end, at most MaxBinary bytes) and
// registers it as push's build. Nothing is registered unless the whole
// binary was stored and every field is valid.
func (s *Service) Push(ctx context.Context, actor string, push Push, binary io.Reader) (Plugin, error) {
	var errs problem.List
	checkDescription(push.Description, &errs, s.d.Reserved)
	checkPlatform(push.OS, push.Arch, &errs)
	if err := errs.Err(); err != nil {
		return Plugin{}, err
	}
	sum, size, err := s.store(binary)
	if err != nil {
		return Plugin{}, err
	}
	cmd, err := state.NewCommand(cmdPut, 1, putPayload{Description: push.Description, Binary: Binary{OS: push.OS, Arch: push.Arch,
		SHA256: sum, Size: size, UploadedBy: actor, Holders: []string{s.d.NodeID}}})
	if err != nil {
		return Plugin{}, err
	}
	var out Plugin
	res, err := s.d.Applier.Apply(ctx, cmd)
	if err == nil {
		err = res[0].Decode(&out)
	}
	if err != nil {
		// Refused or not committed: the file must not outlive it (a
		// timed-out commit that lands later finds it missing here and
		// says so on fetch; a second push stores it again).
		if !s.referenced(sum) {
			os.Remove(s.path(sum))
		}
		return Plugin{}, fmt.Errorf("register %s@%s: %w", push.Description.Name, push.Description.Version, err)
	}
	s.d.Logger.Info("registered a plugin build", "plugin", out.Ref(), "os", push.OS, "arch", push.Arch, "sha256", sum, "size", size, "actor", actor)
	return out, nil
}

// store writes the binary to Dir under its sha256, atomically.
func (s *Service) store(r io.Reader) (sum string, size int64, err error) {
	f, err := os.CreateTemp(s.d.Dir, ".upload-*")
	if err != nil {
		return "", 0, fmt.Errorf("store plugin: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	h := sha256.New()
	size, err = io.Copy(io.MultiWriter(f, h), io.LimitReader(r, MaxBinary+1))
	if err != nil {
		return "", 0, fmt.Errorf("store plugin: read the binary: %w", err)
	}
	switch {
	case size > MaxBinary:
		return "", 0, problem.New(problem.KindTooLarge, "plugin_too_large", "binary: larger than %d MiB", MaxBinary>>20)
	case size == 0:
		return "", 0, problem.Invalid("binary", "is empty")
	}
	if err := f.Sync(); err != nil {
		return "", 0, fmt.Errorf("store plugin: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", 0, fmt.Errorf("store plugin: %w", err)
	}
	sum = hex.EncodeToString(h.Sum(nil))
	if err := os.Rename(f.Name(), s.path(sum)); err != nil {
		return "", 0, fmt.Errorf("store plugin: %w", err)
	}
	return sum, size, nil
}

func (s *Service) path(sum string) string { return filepath.Join(s.d.Dir, sum) }

// List returns every registered plugin version, by name then version.
func (s *Service) List(context.Context) ([]Plugin, error) {
	it, err := s.d.Store.ReadTxn().Get(tablePlugins, "id")
	if err != nil {
		return nil, fmt.Errorf("list plugins: %w", err)
	}
	out := []Plugin{}
	for obj := it.Next(); obj != nil; obj = it.Next() {
		out = append(out, *obj.(*Plugin).clone())
	}
	slices.SortFunc(out, func(a, b Plugin) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return compareVersions(a.Version, b.Version)
	})
	return out, nil
}

// Resolve returns the newest version of name that satisfies want (exact,
// "1" or "1.2"; empty means the newest release).
func (s *Service) Resolve(_ context.Context, name, want string) (Plugin, error) {
	return resolve(s.d.Store.ReadTxn(), name, want)
}

func resolve(txn *memdb.Txn, name, want string) (Plugin, error) {
	it, err := txn.Get(tablePlugins, "id_prefix", name)
	if err != nil {
		return Plugin{}, fmt.Errorf("resolve plugin: %w", err)
	}
	var best *Plugin
	for obj := it.Next(); obj != nil; obj = it.Next() {
		p := obj.(*Plugin)
		if p.Name != name || (want != "" && !matches(want, p.Version)) || (want == "" && strings.Contains(p.Version, "-")) {
			continue
		}
		if best == nil || compareVersions(p.Version, best.Version) > 0 {
			best = p
		}
	}
	if best == nil {
		ref := name
		if want != "" {
			ref += "@" + want
		}
		return Plugin{}, problem.NotFound("plugin", ref)
	}
	return *best.clone(), nil
}

// Describe resolves a step reference as a job names it ("http",
// "noop@1", "disk-usage@1.2") to what the step accepts: a built-in step
// (whose version the pin must satisfy) or the newest registered plugin
// version matching the pin. An unknown step is invalid input naming
// "uses".
func (s *Service) Describe(ctx context.Context, uses string) (sdk.Description, error) {
	name, version, _ := strings.Cut(uses, "@")
	if st, ok := builtin.Lookup(name); ok {
		d := st.Describe()
		if version != "" && !matches(version, d.Version) {
			return sdk.Description{}, problem.Invalid("uses", "the built-in step %s is version %s, which does not satisfy %q", name, d.Version, version)
		}
		return d, nil
	}
	p, err := s.Resolve(ctx, name, version)
	if problem.Is(err, problem.KindNotFound) {
		return sdk.Description{}, problem.Invalid("uses", "%q is neither a built-in step nor a registered plugin; push it with `opsconductor plugin push`", uses)
	}
	if err != nil {
		return sdk.Description{}, err
	}
	return p.Description, nil
}

// Delete removes name@version from the registry and its files from this
// controller (other holders drop theirs when they next clean up).
func (s *Service) Delete(ctx context.Context, name, version string) (Plugin, error) {
	cmd, err := state.NewCommand(cmdDelete, 1, deletePayload{Name: name, Version: version})
	if err != nil {
		return Plugin{}, err
	}
	res, err := s.d.Applier.Apply(ctx, cmd)
	if err != nil {
		return Plugin{}, err
	}
	var out Plugin
	if err := res[0].Decode(&out); err != nil {
		return Plugin{}, err
	}
	for _, b := range out.Binaries {
		if !s.referenced(b.SHA256) {
			if err := os.Remove(s.path(b.SHA256)); err != nil && !errors.Is(err, os.ErrNotExist) {
				s.d.Logger.Warn("plugin file not removed", "sha256", b.SHA256, "error", err)
			}
		}
	}
	s.d.Logger.Info("deleted a plugin version", "plugin", out.Ref())
	return out, nil
}

// referenced reports whether any registered build still uses the file.
func (s *Service) referenced(sum string) bool {
	all, err := s.List(context.Background())
	if err != nil {
		return true
	}
	for _, p := range all {
		for _, b := range p.Binaries {
			if b.SHA256 == sum {
				return true
			}
		}
	}
	return false
}

// Open returns the build of name@want for os/arch and its file. A
// controller that does not hold the file says which ones do.
func (s *Service) Open(ctx context.Context, name, want, os_, arch string) (Plugin, Binary, *os.File, error) {
	p, err := s.Resolve(ctx, name, want)
	if err != nil {
		return Plugin{}, Binary{}, nil, err
	}
	b := p.binary(os_, arch)
	if b == nil {
		return Plugin{}, Binary{}, nil, problem.New(problem.KindNotFound, "plugin_platform_missing",
			"%s has no build for %s/%s; push one with `opsconductor plugin push FILE --os %s --arch %s`", p.Ref(), os_, arch, os_, arch)
	}
	f, err := os.Open(s.path(b.SHA256))
	if errors.Is(err, os.ErrNotExist) {
		return Plugin{}, Binary{}, nil, problem.Unavailable("plugin_not_here",
			"this controller does not hold %s for %s/%s; controllers that do: %s", p.Ref(), os_, arch, strings.Join(b.Holders, ", "))
	}
	if err != nil {
		return Plugin{}, Binary{}, nil, fmt.Errorf("open plugin %s: %w", p.Ref(), err)
	}
	return p, *b, f, nil
}
