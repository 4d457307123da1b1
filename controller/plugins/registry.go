// Package plugins is the controller's step-plugin registry: which plugins
// exist (name, version, what they accept) and which binaries each has per
// OS and architecture, with their sha256. Agents fetch a binary on first
// use over their mTLS connection (agentrpc's FetchPlugin) and verify it
// against the checksum recorded here.
//
// The FSM holds only metadata. Binaries are content-addressed files in the
// data directory of the controller that received them (the FSM records
// which controllers hold each), never Raft entries: a 20 MB log entry
// would stall replication for every other write.
package plugins

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/opsconductor/opsconductor/controller/problem"
	"github.com/opsconductor/opsconductor/controller/state"
	"github.com/opsconductor/opsconductor/plugins/schema"
	"github.com/opsconductor/opsconductor/plugins/sdk"
)

const tablePlugins = "plugins"

// Command types. Appended, never renamed or reused.
const (
	cmdPut    = "plugins.put"
	cmdDelete = "plugins.delete"
)

// MaxBinary bounds an uploaded plugin binary.
const MaxBinary = 256 << 20

// Binary is one build of a plugin version.
type Binary struct {
	OS         string    `json:"os"`
	Arch       string    `json:"arch"`
	SHA256     string    `json:"sha256"`
	Size       int64     `json:"size"`
	UploadedAt time.Time `json:"uploaded_at"`
	UploadedBy string    `json:"uploaded_by"`
	// Holders are the controllers whose data directory holds the file.
	Holders []string `json:"holders"`
}

// Plugin is one name@version: what it is (its Description, identical for
// every build) and its builds.
type Plugin struct {
	sdk.Description
	Binaries  []Binary  `json:"binaries"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by"`
}

// Ref is "name@version".
func (p *Plugin) Ref() string { return p.Name + "@" + p.Version }

func (p *Plugin) clone() *Plugin {
	c := *p
	c.Params = slices.Clone(p.Params)
	c.Outputs = slices.Clone(p.Outputs)
	c.Binaries = make([]Binary, len(p.Binaries))
	for i, b := range p.Binaries {
		b.Holders = slices.Clone(b.Holders)
		c.Binaries[i] = b
	}
	return &c
}

// binary returns the build for os/arch, or nil.
func (p *Plugin) binary(os, arch string) *Binary {
	for i := range p.Binaries {
		if p.Binaries[i].OS == os && p.Binaries[i].Arch == arch {
			return &p.Binaries[i]
		}
	}
	return nil
}

// Domain returns the registry's table and commands for the state registry.
func Domain() state.Domain {
	return state.Domain{
		Name: "plugins",
		Tables: []state.Table{{
			Schema: &memdb.TableSchema{Name: tablePlugins, Indexes: map[string]*memdb.IndexSchema{
				"id": {Name: "id", Unique: true, Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{
					&memdb.StringFieldIndex{Field: "Name"}, &memdb.StringFieldIndex{Field: "Version"}}}},
			}},
			New: func() any { return &Plugin{} },
		}},
		Commands: map[string]state.Handler{
			cmdPut:    state.V1(applyPut),
			cmdDelete: state.V1(applyDelete),
		},
	}
}

var (
	nameRE    = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)
	versionRE = regexp.MustCompile(`^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?$`)
	osArch    = map[string][]string{
		"linux": {"amd64", "arm64", "arm", "386", "ppc64le", "s390x", "riscv64"}, "darwin": {"amd64", "arm64"},
		"freebsd": {"amd64", "arm64"}, "windows": {"amd64", "arm64"},
	}
	outputRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]{0,62}$`)
)

// checkDescription validates what a plugin says about itself, every
// problem at once, under the field prefix given.
func checkDescription(d sdk.Description, errs *problem.List, reserved func(string) bool) {
	if !nameRE.MatchString(d.Name) {
		errs.Add("name", "must be lower case letters, digits and dashes, starting with a letter (at most 63), got %q", d.Name)
	} else if reserved != nil && reserved(d.Name) {
		errs.Add("name", "%q is a built-in step; choose another name", d.Name)
	}
	if !versionRE.MatchString(d.Version) {
		errs.Add("version", "must be a semantic version such as 1.4.0, got %q", d.Version)
	}
	if len(d.Summary) > 500 {
		errs.Add("summary", "must be at most 500 characters")
	}
	if len(d.Params) > 0 {
		if err := schema.Check(d.Params); err != nil {
			errs.Add("params", "is not a usable parameters schema: %v", err)
		}
	}
	seen := map[string]bool{}
	for i, o := range d.Outputs {
		if !outputRE.MatchString(o.Name) || seen[o.Name] {
			errs.Add(fmt.Sprintf("outputs[%d].name", i), "must be a unique identifier, got %q", o.Name)
		}
		seen[o.Name] = true
	}
}

func checkPlatform(os, arch string, errs *problem.List) {
	archs, ok := osArch[os]
	switch {
	case !ok:
		errs.Add("os", "must be one of linux, darwin, freebsd, windows, got %q", os)
	case !slices.Contains(archs, arch):
		errs.Add("arch", "must be one of %s for %s, got %q", strings.Join(archs, ", "), os, arch)
	}
}

// sameDescription reports whether two builds describe the same plugin
// version; a version's contract must not change between its builds.
func sameDescription(a, b sdk.Description) bool {
	ja, _ := json.Marshal(normalize(a))
	jb, _ := json.Marshal(normalize(b))
	return string(ja) == string(jb)
}

func normalize(d sdk.Description) sdk.Description {
	if len(d.Params) > 0 {
		var v any
		if json.Unmarshal(d.Params, &v) == nil {
			d.Params, _ = json.Marshal(v) // canonical key order and spacing
		}
	}
	if len(d.Outputs) == 0 {
		d.Outputs = nil
	}
	return d
}

type putPayload struct {
	Description sdk.Description `json:"description"`
	Binary      Binary          `json:"binary"`
}

// applyPut adds (or replaces) one build of name@version, creating the
// version with its description on its first build.
func applyPut(ctx *state.ApplyContext, p putPayload) (any, error) {
	raw, err := ctx.Txn.First(tablePlugins, "id", p.Description.Name, p.Description.Version)
	if err != nil {
		return nil, err
	}
	var pl *Plugin
	if raw == nil {
		pl = &Plugin{Description: p.Description, CreatedAt: ctx.Time, CreatedBy: p.Binary.UploadedBy}
	} else {
		pl = raw.(*Plugin).clone()
		if !sameDescription(pl.Description, p.Description) {
			return nil, problem.New(problem.KindConflict, "plugin_description_changed",
				"%s is registered with a different description (parameters, outputs or summary): a changed contract needs a new version", pl.Ref())
		}
	}
	b := p.Binary
	b.UploadedAt = ctx.Time
	if old := pl.binary(b.OS, b.Arch); old != nil {
		if old.SHA256 == b.SHA256 {
			// The same file again, perhaps on another controller: one
			// more holder.
			for _, h := range b.Holders {
				if !slices.Contains(old.Holders, h) {
					old.Holders = append(old.Holders, h)
				}
			}
		} else {
			*old = b
		}
	} else {
		pl.Binaries = append(pl.Binaries, b)
		slices.SortFunc(pl.Binaries, func(x, y Binary) int { return strings.Compare(x.OS+"/"+x.Arch, y.OS+"/"+y.Arch) })
	}
	if err := ctx.Txn.Insert(tablePlugins, pl); err != nil {
		return nil, err
	}
	return *pl, nil
}

type deletePayload struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

func applyDelete(ctx *state.ApplyContext, p deletePayload) (any, error) {
	raw, err := ctx.Txn.First(tablePlugins, "id", p.Name, p.Version)
	if err != nil {
		return nil, err
	}
	if raw == nil {
		return nil, problem.NotFound("plugin", p.Name+"@"+p.Version)
	}
	if err := ctx.Txn.Delete(tablePlugins, raw); err != nil {
		return nil, err
	}
	return *raw.(*Plugin), nil
}

// semver is a parsed version for ordering (pre-releases sort before the
// release, as semver says).
type semver struct {
	major, minor, patch int
	pre                 string
}

func parseVersion(v string) (semver, bool) {
	m := versionRE.FindStringSubmatch(v)
	if m == nil {
		return semver{}, false
	}
	a, _ := strconv.Atoi(m[1])
	b, _ := strconv.Atoi(m[2])
	c, _ := strconv.Atoi(m[3])
	return semver{a, b, c, strings.TrimPrefix(m[4], "-")}, true
}

func compareVersions(x, y string) int {
	a, _ := parseVersion(x)
	b, _ := parseVersion(y)
	for _, d := range []int{a.major - b.major, a.minor - b.minor, a.patch - b.patch} {
		if d != 0 {
			return d
		}
	}
	switch {
	case a.pre == b.pre:
		return 0
	case a.pre == "":
		return 1
	case b.pre == "":
		return -1
	}
	return strings.Compare(a.pre, b.pre)
}

// matches reports whether version satisfies want: an exact version, a
// major ("1": the newest 1.x.y release), or major.minor ("1.2").
// Pre-releases match only exactly.
func matches(want, version string) bool {
	if want == version {
		return true
	}
	v, ok := parseVersion(version)
	if !ok || v.pre != "" {
		return false
	}
	parts := strings.Split(want, ".")
	if len(parts) > 2 {
		return false
	}
	nums := []int{v.major, v.minor}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n != nums[i] {
			return false
		}
	}
	return true
}
