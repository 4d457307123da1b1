package pluginhost

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// ManifestName is the file that makes a directory an installed plugin.
const ManifestName = "manifest.json"

// maxManifest bounds a manifest read from disk; a real one is ~200 bytes.
const maxManifest = 64 * 1024

// Manifest describes one installed plugin binary. It is written last when
// a plugin is installed, so a directory without one is an unfinished
// install and is ignored.
type Manifest struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	OS      string `json:"os"`
	Arch    string `json:"arch"`
	// SHA256 is the binary's digest in hex; the binary is refused (never
	// executed) if it does not match.
	SHA256 string `json:"sha256"`
	// Binary is the executable's file name in the manifest's directory.
	Binary string `json:"binary"`
}

var (
	nameRE    = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)
	platRE    = regexp.MustCompile(`^[a-z0-9]+$`)
	binaryRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	errNoName = errors.New("name: must be lower case letters, digits and single dashes, at most 64 characters")
)

// DecodeManifest parses and checks a manifest. It rejects unknown fields,
// trailing data, and any binary name that is not a plain file name (a
// manifest must not point outside its directory).
func DecodeManifest(data []byte) (Manifest, error) {
	if len(data) > maxManifest {
		return Manifest{}, fmt.Errorf("manifest: larger than %d bytes", maxManifest)
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return Manifest{}, fmt.Errorf("manifest: %w", err)
	}
	if dec.More() {
		return Manifest{}, errors.New("manifest: trailing data after the object")
	}
	if err := m.check(); err != nil {
		return Manifest{}, fmt.Errorf("manifest: %w", err)
	}
	return m, nil
}

func (m Manifest) check() error {
	var errs []error
	if err := checkName(m.Name); err != nil {
		errs = append(errs, err)
	}
	if _, err := ParseVersion(m.Version); err != nil {
		errs = append(errs, fmt.Errorf("version: %w", err))
	}
	if !platRE.MatchString(m.OS) || len(m.OS) > 32 {
		errs = append(errs, fmt.Errorf("os: %q is not a GOOS", m.OS))
	}
	if !platRE.MatchString(m.Arch) || len(m.Arch) > 32 {
		errs = append(errs, fmt.Errorf("arch: %q is not a GOARCH", m.Arch))
	}
	if _, err := decodeSHA256(m.SHA256); err != nil {
		errs = append(errs, err)
	}
	if !binaryRE.MatchString(m.Binary) || len(m.Binary) > 128 || strings.Contains(m.Binary, "..") {
		errs = append(errs, fmt.Errorf("binary: %q is not a plain file name", m.Binary))
	}
	return errors.Join(errs...)
}

func checkName(name string) error {
	if len(name) > 64 || !nameRE.MatchString(name) {
		return fmt.Errorf("%w: %q", errNoName, name)
	}
	return nil
}

func decodeSHA256(s string) ([]byte, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 || s != strings.ToLower(s) {
		return nil, fmt.Errorf("sha256: %q is not 64 lower-case hex digits", s)
	}
	return b, nil
}

// Version is a semantic version: MAJOR.MINOR.PATCH with an optional
// pre-release; build metadata is not allowed (it would let two different
// binaries share one version).
type Version struct {
	Major, Minor, Patch uint64
	Pre                 string
}

func (v Version) String() string {
	s := fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch)
	if v.Pre != "" {
		s += "-" + v.Pre
	}
	return s
}

// ParseVersion parses a full semantic version such as "1.4.0" or
// "2.0.0-rc.1".
func ParseVersion(s string) (Version, error) {
	core, pre, hasPre := strings.Cut(s, "-")
	parts := strings.Split(core, ".")
	if len(parts) != 3 {
		return Version{}, fmt.Errorf("%q is not MAJOR.MINOR.PATCH", s)
	}
	nums, err := parseNums(parts)
	if err != nil {
		return Version{}, fmt.Errorf("%q: %w", s, err)
	}
	if hasPre && (pre == "" || !preRE.MatchString(pre)) {
		return Version{}, fmt.Errorf("%q: pre-release must be dot-separated [0-9A-Za-z-] identifiers", s)
	}
	return Version{Major: nums[0], Minor: nums[1], Patch: nums[2], Pre: pre}, nil
}

var preRE = regexp.MustCompile(`^[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*$`)

func parseNums(parts []string) ([]uint64, error) {
	nums := make([]uint64, len(parts))
	for i, p := range parts {
		if p == "" || (len(p) > 1 && p[0] == '0') {
			return nil, fmt.Errorf("%q is not a number without leading zeros", p)
		}
		n, err := strconv.ParseUint(p, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("%q is not a number", p)
		}
		nums[i] = n
	}
	return nums, nil
}

// Compare orders versions as semver does (a pre-release sorts before its
// release; pre-releases compare identifier by identifier).
func (v Version) Compare(o Version) int {
	for _, d := range [][2]uint64{{v.Major, o.Major}, {v.Minor, o.Minor}, {v.Patch, o.Patch}} {
		if d[0] != d[1] {
			if d[0] < d[1] {
				return -1
			}
			return 1
		}
	}
	switch {
	case v.Pre == o.Pre:
		return 0
	case v.Pre == "":
		return 1
	case o.Pre == "":
		return -1
	}
	a, b := strings.Split(v.Pre, "."), strings.Split(o.Pre, ".")
	for i := 0; i < len(a) && i < len(b); i++ {
		if c := comparePre(a[i], b[i]); c != 0 {
			return c
		}
	}
	return len(a) - len(b)
}

func comparePre(a, b string) int {
	an, aerr := strconv.ParseUint(a, 10, 64)
	bn, berr := strconv.ParseUint(b, 10, 64)
	switch {
	case aerr == nil && berr == nil:
		if an == bn {
			return 0
		}
		if an < bn {
			return -1
		}
		return 1
	case aerr == nil:
		return -1 // numeric identifiers sort first
	case berr == nil:
		return 1
	}
	return strings.Compare(a, b)
}

// Ref is what a job names: "disk-usage@1" (the highest 1.x.y release),
// "disk-usage@1.2" (the highest 1.2.y), "disk-usage@1.2.3" or
// "disk-usage@2.0.0-rc.1" (exactly that), or "disk-usage" (the highest
// release). Pre-releases are chosen only by exact version.
type Ref struct {
	Name  string
	parts []uint64 // the version's given components, 0 to 3 of them
	exact *Version
}

// ParseRef parses a step reference.
func ParseRef(s string) (Ref, error) {
	name, ver, hasVer := strings.Cut(s, "@")
	if err := checkName(name); err != nil {
		return Ref{}, fmt.Errorf("plugin reference %q: %w", s, err)
	}
	r := Ref{Name: name}
	if !hasVer {
		return r, nil
	}
	if core, _, _ := strings.Cut(ver, "-"); strings.Contains(ver, "-") || strings.Count(core, ".") >= 2 {
		v, err := ParseVersion(ver)
		if err != nil {
			return Ref{}, fmt.Errorf("plugin reference %q: version %w", s, err)
		}
		r.exact = &v
		return r, nil
	}
	nums, err := parseNums(strings.Split(ver, "."))
	if err != nil {
		return Ref{}, fmt.Errorf("plugin reference %q: version %w", s, err)
	}
	r.parts = nums
	return r, nil
}

// Matches reports whether version v satisfies r.
func (r Ref) Matches(v Version) bool {
	if r.exact != nil {
		return v.Compare(*r.exact) == 0
	}
	if v.Pre != "" {
		return false
	}
	comps := []uint64{v.Major, v.Minor, v.Patch}
	for i, p := range r.parts {
		if comps[i] != p {
			return false
		}
	}
	return true
}

func (r Ref) String() string {
	switch {
	case r.exact != nil:
		return r.Name + "@" + r.exact.String()
	case len(r.parts) > 0:
		s := make([]string, len(r.parts))
		for i, p := range r.parts {
			s[i] = strconv.FormatUint(p, 10)
		}
		return r.Name + "@" + strings.Join(s, ".")
	}
	return r.Name
}
