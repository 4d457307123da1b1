// Package install owns what a new host needs to become an agent: the
// install script a controller serves at /install/agent.sh, and the agent
// binaries of a release (`make release`) with their checksums.
//
// Nothing it hands out is secret, so none of it needs a login: the join
// token given to the script is the secret, and the CA pin makes enrolment
// safe even when the script came over plain HTTP. It must never serve a
// file from outside the release directory, nor put text from a request into
// the script without checking and quoting it.
package install

import (
	"bufio"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/opsconductor/opsconductor/controller/problem"
)

// The script and the systemd unit it writes. The unit is a copy of
// deploy/systemd/opsconductor-agent.service (go:embed cannot reach it); a
// test fails when the two differ.
var (
	//go:embed agent.sh
	scriptTemplate string
	//go:embed opsconductor-agent.service
	agentUnit string
)

// SumsFile is the checksum file `make release` writes beside the binaries,
// in sha256sum's format.
const SumsFile = "SHA256SUMS"

// unitDelimiter ends the here-document that carries the unit in the script.
const unitDelimiter = "OPSCONDUCTOR_UNIT"

// Config configures the service.
type Config struct {
	// ReleaseDir holds a release: opsconductor-agent_<os>_<arch> files and
	// SHA256SUMS.
	ReleaseDir string
	// ExternalURL is the address hosts reach this controller at
	// (https://ops.example.com). Empty takes each request's Host header,
	// which is right only when nothing rewrites it on the way.
	ExternalURL string
	// AgentPort is the agent listener's port. The script enrols with the
	// external URL's host on this port unless told otherwise.
	AgentPort int
}

// Service renders the script and finds the release's binaries.
type Service struct {
	dir       string
	base      *url.URL // nil: taken from each request
	agentPort string
}

// New checks cfg and returns the service. A release directory that does
// not exist (yet) is not an error: the routes answer 404 naming the flag
// until it is filled.
func New(cfg Config) (*Service, error) {
	if cfg.ReleaseDir == "" {
		return nil, errors.New("install: Config.ReleaseDir is required")
	}
	if cfg.AgentPort <= 0 || cfg.AgentPort > 65535 {
		return nil, fmt.Errorf("install: Config.AgentPort %d: must be 1-65535", cfg.AgentPort)
	}
	s := &Service{dir: cfg.ReleaseDir, agentPort: strconv.Itoa(cfg.AgentPort)}
	if cfg.ExternalURL != "" {
		u, err := ParseExternalURL(cfg.ExternalURL)
		if err != nil {
			return nil, fmt.Errorf("install: --external-url: %w", err)
		}
		s.base = u
	}
	// The unit travels in a quoted here-document: a line equal to its
	// delimiter would end it early and run the rest as shell.
	for _, line := range strings.Split(agentUnit, "\n") {
		if line == unitDelimiter {
			return nil, fmt.Errorf("install: the agent unit holds the line %q", unitDelimiter)
		}
	}
	return s, nil
}

// ParseExternalURL checks a controller's external URL: http or https, a
// host, an optional path prefix, nothing else. The result has no trailing
// slash.
func ParseExternalURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%q is not a URL: %w", raw, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("%q: must start with https:// or http://", raw)
	case u.Host == "" || !validHost(u.Host):
		return nil, fmt.Errorf("%q: needs a host name or address (and optional port)", raw)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "":
		return nil, fmt.Errorf("%q: only scheme, host, port and path are allowed", raw)
	case strings.ContainsAny(u.Path, "'\"\\ $`"):
		return nil, fmt.Errorf("%q: the path may not hold quotes, spaces, backslashes, $ or `", raw)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// hostPattern is a DNS name or IPv4 address, or a bracketed IPv6 address,
// with an optional port: nothing a shell would treat specially.
var hostPattern = regexp.MustCompile(`^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)(:[0-9]{1,5})?$`)

func validHost(h string) bool { return len(h) <= 255 && hostPattern.MatchString(h) }

// Origin is where a script request came from: the Host it asked for and
// whether it arrived over TLS. It is used only without an external URL.
type Origin struct {
	Host string
	TLS  bool
}

// Script renders the install script for a request from o.
func (s *Service) Script(o Origin) ([]byte, error) {
	base := s.base
	if base == nil {
		if !validHost(o.Host) {
			return nil, problem.Invalid("Host", "%q is not a host name and port: set --external-url on the controller to the address hosts reach it at", o.Host)
		}
		base = &url.URL{Scheme: "http", Host: o.Host}
		if o.TLS {
			base.Scheme = "https"
		}
	}
	controller := net.JoinHostPort(base.Hostname(), s.agentPort)
	r := strings.NewReplacer("@@URL@@", shellQuote(base.String()), "@@CONTROLLER@@", shellQuote(controller),
		"@@UNIT@@", strings.TrimSuffix(agentUnit, "\n"))
	return []byte(r.Replace(scriptTemplate)), nil
}

// shellQuote makes s one single-quoted shell word.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// Binary is one agent binary of the release, open for reading. The caller
// closes File.
type Binary struct {
	File    *os.File
	Name    string // the file's name in the release, e.g. opsconductor-agent_linux_amd64
	Size    int64
	ModTime time.Time
	SHA256  string // hex, as SHA256SUMS lists it
}

// platformPart is an os or arch name as Go spells them; it keeps request
// text from ever naming a path.
var platformPart = regexp.MustCompile(`^[a-z0-9]{1,16}$`)

// agentFile names the release file of the agent for os/arch.
func agentFile(goos, goarch string) (string, error) {
	var errs problem.List
	if !platformPart.MatchString(goos) {
		errs.Add("os", "%q is not an operating system name such as linux", goos)
	}
	if !platformPart.MatchString(goarch) {
		errs.Add("arch", "%q is not an architecture name such as amd64 or arm64", goarch)
	}
	if err := errs.Err(); err != nil {
		return "", err
	}
	return "opsconductor-agent_" + goos + "_" + goarch, nil
}

// Agent opens the agent binary for os/arch. It is served only when
// SHA256SUMS lists it: the controller hands out nothing it cannot vouch for.
func (s *Service) Agent(goos, goarch string) (*Binary, error) {
	name, sum, err := s.lookup(goos, goarch)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(s.dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, s.notFound(goos, goarch, fmt.Sprintf("%s lists %s but the file is missing", SumsFile, name))
	}
	if err != nil {
		return nil, fmt.Errorf("open agent binary: %w", err)
	}
	st, err := f.Stat()
	if err == nil && !st.Mode().IsRegular() {
		err = fmt.Errorf("%s is not a regular file", name)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("agent binary: %w", err)
	}
	return &Binary{File: f, Name: name, Size: st.Size(), ModTime: st.ModTime(), SHA256: sum}, nil
}

// Checksum returns the line of SHA256SUMS for the agent for os/arch, in
// sha256sum's format ("<hex>  <file>\n").
func (s *Service) Checksum(goos, goarch string) (string, error) {
	name, sum, err := s.lookup(goos, goarch)
	if err != nil {
		return "", err
	}
	return sum + "  " + name + "\n", nil
}

func (s *Service) lookup(goos, goarch string) (name, sum string, err error) {
	name, err = agentFile(goos, goarch)
	if err != nil {
		return "", "", err
	}
	sums, err := s.sums()
	if err != nil {
		return "", "", err
	}
	sum, ok := sums[name]
	if !ok {
		return "", "", s.notFound(goos, goarch, "")
	}
	return name, sum, nil
}

// sums reads SHA256SUMS afresh on every request: it is small, and a new
// release dropped into the directory is served at once.
func (s *Service) sums() (map[string]string, error) {
	raw, err := os.ReadFile(filepath.Join(s.dir, SumsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, problem.New(problem.KindNotFound, "release_not_found",
			"this controller has no agent release to install: run `make release` and start the controller with --release-dir pointing at its dist/ directory (it needs the agent binaries and %s)", SumsFile)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", SumsFile, err)
	}
	sums, err := ParseSums(raw)
	if err != nil {
		return nil, fmt.Errorf("%s in the release directory: %w", SumsFile, err)
	}
	return sums, nil
}

func (s *Service) notFound(goos, goarch, why string) error {
	have, _ := s.Platforms()
	msg := fmt.Sprintf("this controller's release (--release-dir) has no agent for %s/%s", goos, goarch)
	if why != "" {
		msg += ": " + why
	}
	if len(have) > 0 {
		msg += "; it has " + strings.Join(have, ", ")
	}
	return problem.New(problem.KindNotFound, "agent_binary_not_found", "%s", msg)
}

// Platforms lists the os/arch pairs the release has an agent for, sorted.
func (s *Service) Platforms() ([]string, error) {
	sums, err := s.sums()
	if err != nil {
		return nil, err
	}
	var out []string
	for name := range sums {
		rest, ok := strings.CutPrefix(name, "opsconductor-agent_")
		goos, goarch, two := strings.Cut(rest, "_")
		if !ok || !two || !platformPart.MatchString(goos) || !platformPart.MatchString(goarch) {
			continue
		}
		if st, err := os.Stat(filepath.Join(s.dir, name)); err == nil && st.Mode().IsRegular() {
			out = append(out, goos+"/"+goarch)
		}
	}
	sort.Strings(out)
	return out, nil
}

// Dir is the release directory.
func (s *Service) Dir() string { return s.dir }

// ParseSums reads a checksum file in sha256sum's format: "<64 hex digits>
// <space><space or *><file name>" per line. Blank lines are skipped; any
// other line is an error naming its number. A name listed twice is an
// error too: which sum would be right?
func ParseSums(raw []byte) (map[string]string, error) {
	out := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(string(raw)))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSuffix(sc.Text(), "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		if len(line) < 67 || line[64] != ' ' || (line[65] != ' ' && line[65] != '*') {
			return nil, fmt.Errorf("line %d: want \"<sha256>  <file>\"", n)
		}
		sum, name := strings.ToLower(line[:64]), line[66:]
		if _, err := hex.DecodeString(sum); err != nil {
			return nil, fmt.Errorf("line %d: %q is not a hex SHA-256", n, line[:64])
		}
		if name != filepath.Base(name) || name == "." || name == ".." {
			return nil, fmt.Errorf("line %d: %q must be a file name without a directory", n, name)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("line %d: %s is listed twice", n, name)
		}
		out[name] = sum
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}
