// Package config layers a controller's settings from flags, OPSCONDUCTOR_*
// environment variables and a YAML config file, in that order of
// precedence, and validates the result. Every setting has exactly one name:
// the flag name, which is also the config file key and, upper-cased with
// underscores, the environment variable. It never starts anything.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"

	"github.com/opsconductor/opsconductor/controller/install"
)

// EnvPrefix starts every environment variable the controller reads.
const EnvPrefix = "OPSCONDUCTOR_"

// EnvName is the environment variable for a flag: data-dir → OPSCONDUCTOR_DATA_DIR.
func EnvName(flag string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// maxConfigFile bounds a config file; a real one is a few hundred bytes.
const maxConfigFile = 1 << 20

// ParseFile parses a YAML config file into flag name → values. Keys may use
// dashes or underscores. Values must be scalars or lists of scalars. allowed
// reports whether a key names a setting; unknown keys are errors, so that a
// typo is not silently ignored.
func ParseFile(data []byte, allowed func(key string) bool) (map[string][]string, error) {
	if len(data) > maxConfigFile {
		return nil, fmt.Errorf("config file is %d bytes, at most %d", len(data), maxConfigFile)
	}
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return map[string][]string{}, nil // an empty file sets nothing
		}
		return nil, fmt.Errorf("config file is not valid YAML: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, fmt.Errorf("config file holds more than one YAML document (line %d)", extra.Line)
	}
	if root.Kind != yaml.DocumentNode || len(root.Content) != 1 {
		return map[string][]string{}, nil
	}
	m := root.Content[0]
	if m.Kind == yaml.ScalarNode && m.Tag == "!!null" {
		return map[string][]string{}, nil
	}
	if m.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("config file line %d: expected a mapping of setting: value", m.Line)
	}
	out := map[string][]string{}
	var errs []error
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			errs = append(errs, fmt.Errorf("config file line %d: setting names must be plain strings", k.Line))
			continue
		}
		key := strings.ReplaceAll(k.Value, "_", "-")
		if !allowed(key) {
			errs = append(errs, fmt.Errorf("config file line %d: unknown setting %q", k.Line, k.Value))
			continue
		}
		if _, dup := out[key]; dup {
			errs = append(errs, fmt.Errorf("config file line %d: setting %q given twice", k.Line, k.Value))
			continue
		}
		switch v.Kind {
		case yaml.ScalarNode:
			out[key] = []string{v.Value}
		case yaml.SequenceNode:
			vals := []string{}
			for _, item := range v.Content {
				if item.Kind != yaml.ScalarNode {
					errs = append(errs, fmt.Errorf("config file line %d: %q: list items must be plain values", item.Line, k.Value))
					continue
				}
				vals = append(vals, item.Value)
			}
			out[key] = vals
		default:
			errs = append(errs, fmt.Errorf("config file line %d: %q: value must be a plain value or a list", v.Line, k.Value))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// Layer fills every flag that was not given on the command line from the
// environment or, failing that, from the config file at path ("" = none).
// Skip names flags that are not settings (--config itself, --help).
func Layer(fs *pflag.FlagSet, path string, lookupEnv func(string) (string, bool), skip ...string) error {
	skipped := map[string]bool{"help": true}
	for _, s := range skip {
		skipped[s] = true
	}
	file := map[string][]string{}
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("--config: %w", err)
		}
		file, err = ParseFile(data, func(key string) bool {
			f := fs.Lookup(key)
			return f != nil && !skipped[key]
		})
		if err != nil {
			return fmt.Errorf("--config %s: %w", path, err)
		}
	}
	var errs []error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed || skipped[f.Name] {
			return
		}
		if v, ok := lookupEnv(EnvName(f.Name)); ok {
			vals := []string{v}
			if isList(f) {
				vals = splitList(v)
			}
			if err := setAll(f, vals); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", EnvName(f.Name), err))
			}
			return
		}
		if vals, ok := file[f.Name]; ok {
			if err := setAll(f, vals); err != nil {
				errs = append(errs, fmt.Errorf("--config %s: %q: %w", path, f.Name, err))
			}
		}
	})
	return errors.Join(errs...)
}

func isList(f *pflag.Flag) bool {
	return strings.HasSuffix(f.Value.Type(), "Slice") || strings.HasSuffix(f.Value.Type(), "Array")
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func setAll(f *pflag.Flag, vals []string) error {
	if !isList(f) && len(vals) != 1 {
		return fmt.Errorf("takes one value, got %d", len(vals))
	}
	if sv, ok := f.Value.(pflag.SliceValue); ok {
		return sv.Replace(vals)
	}
	for _, v := range vals {
		if err := f.Value.Set(v); err != nil {
			return err
		}
	}
	return nil
}

// Server is a controller node's configuration after layering.
type Server struct {
	NodeID          string
	DataDir         string
	HTTPAddr        string
	AgentAddr       string
	RaftAddr        string
	Advertise       string
	BootstrapExpect int
	RetryJoin       []string
	TLSCACert       string
	TLSCAKey        string
	LogLevel        string
	LogFormat       string
	CORSOrigins     []string
	MaxBodyBytes    int64
	ApplyHold       time.Duration
	RateRead        float64
	RateWrite       float64
	RateOperator    float64
	Batching        bool
	Dev             bool
	// History is "embedded" (bbolt in the data dir) or a postgres:// DSN.
	History             string
	HistoryPasswordFile string
	HistoryRetention    time.Duration
	HistoryMaxBytes     int64
	// KeyringFile holds the key-encryption keys ("" = DATA/keyring.key,
	// created on first start; a cluster shares one file). KeyringEnv is
	// the content of OPSCONDUCTOR_KEYRING_KEY, which wins over the file.
	KeyringFile string
	KeyringEnv  string `json:"-"`
	// BootstrapAdminPassword (from OPSCONDUCTOR_BOOTSTRAP_ADMIN_PASSWORD or
	// --bootstrap-admin-password-file) sets the first admin's password;
	// empty generates one.
	BootstrapAdminPassword     string `json:"-"`
	BootstrapAdminPasswordFile string
	AccessTokenTTL             time.Duration
	SessionIdleTimeout         time.Duration
	SessionMaxLifetime         time.Duration
	SigningKeyRotation         time.Duration
	RateLogin                  float64
	// Runs: how long a finished run stays in the replicated state (then
	// only the history store has it), how long a step waits for its
	// target's agent, the runs active at once, the attempts per agent.
	RunRetention  time.Duration
	RunAgentWait  time.Duration
	MaxActiveRuns int
	AgentCapacity int
	// ExternalURL is the address hosts and browsers reach the controller
	// at (https://ops.example.com); the agent install script downloads
	// from it. Empty takes each request's Host header.
	ExternalURL string
	// ReleaseDir holds the agent binaries and SHA256SUMS of a release
	// (`make release`) that /install serves; empty picks a default.
	ReleaseDir string
}

// EmbeddedHistory reports whether the history store is the embedded one.
func (s Server) EmbeddedHistory() bool { return s.History == "" || s.History == "embedded" }

// MultiServer reports whether this server is meant to be one of several.
func (s Server) MultiServer() bool { return s.BootstrapExpect > 1 || len(s.RetryJoin) > 0 }

// Validate returns every problem at once, each naming its flag.
func (s Server) Validate() error {
	var errs []error
	bad := func(flag, format string, args ...any) {
		errs = append(errs, fmt.Errorf("--%s: %s", flag, fmt.Sprintf(format, args...)))
	}
	if s.DataDir == "" {
		bad("data-dir", "is required")
	}
	if s.NodeID != "" && !validNodeID(s.NodeID) {
		bad("node-id", "%q must be 1-64 letters, digits, '-', '_' or '.'", s.NodeID)
	}
	for _, a := range []struct{ flag, v string }{{"http-addr", s.HTTPAddr}, {"agent-addr", s.AgentAddr}, {"raft-addr", s.RaftAddr}} {
		if err := checkHostPort(a.v); err != nil {
			bad(a.flag, "%v", err)
		}
	}
	if s.Advertise != "" && strings.ContainsAny(s.Advertise, ":/ ") && net.ParseIP(s.Advertise) == nil {
		bad("advertise", "%q must be a host name or IP address without a port", s.Advertise)
	}
	if s.BootstrapExpect < 0 || s.BootstrapExpect == 2 || s.BootstrapExpect > 7 {
		bad("bootstrap-expect", "%d: use 1, 3, 5 or 7 (an even count tolerates no more failures than the odd count below it; 2 tolerates none)", s.BootstrapExpect)
	}
	if s.BootstrapExpect > 1 && len(s.RetryJoin) == 0 {
		bad("retry-join", "is required with --bootstrap-expect %d: list the other servers' Raft addresses", s.BootstrapExpect)
	}
	for i, j := range s.RetryJoin {
		if err := checkHostPort(j); err != nil {
			bad("retry-join", "entry %d: %v", i, err)
		}
	}
	if (s.TLSCACert == "") != (s.TLSCAKey == "") {
		bad("tls-ca-cert", "and --tls-ca-key must be given together")
	}
	switch s.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("log-level", "%q: use debug, info, warn or error", s.LogLevel)
	}
	switch s.LogFormat {
	case "json", "text":
	default:
		bad("log-format", "%q: use json or text", s.LogFormat)
	}
	if s.MaxBodyBytes < 1024 {
		bad("max-body-bytes", "%d is below the minimum of 1024", s.MaxBodyBytes)
	}
	if s.ApplyHold <= 0 || s.ApplyHold > time.Minute {
		bad("apply-hold", "%s: must be between 0 and 1m", s.ApplyHold)
	}
	if s.RateLogin < 0 {
		bad("rate-login", "%v: must be a positive number of attempts per second", s.RateLogin)
	}
	if s.MultiServer() && s.KeyringFile == "" && s.KeyringEnv == "" {
		bad("keyring-file", "is required for a cluster of several controllers: create one with `opsconductor operator keyring init` and give every server the same file (or set OPSCONDUCTOR_KEYRING_KEY)")
	}
	if s.BootstrapAdminPassword != "" && s.BootstrapAdminPasswordFile != "" {
		bad("bootstrap-admin-password-file", "and OPSCONDUCTOR_BOOTSTRAP_ADMIN_PASSWORD both set the first admin's password: use one")
	}
	for _, d := range []struct {
		flag      string
		v, lo, hi time.Duration
	}{
		{"access-token-ttl", s.AccessTokenTTL, time.Minute, 24 * time.Hour},
		{"session-idle-timeout", s.SessionIdleTimeout, time.Minute, 365 * 24 * time.Hour},
		{"session-max-lifetime", s.SessionMaxLifetime, time.Minute, 365 * 24 * time.Hour},
		{"signing-key-rotation", s.SigningKeyRotation, time.Hour, 365 * 24 * time.Hour},
	} {
		if d.v != 0 && (d.v < d.lo || d.v > d.hi) { // 0 takes the default
			bad(d.flag, "%s: must be between %s and %s", d.v, d.lo, d.hi)
		}
	}
	if s.SessionIdleTimeout != 0 && s.SessionMaxLifetime != 0 && s.SessionIdleTimeout > s.SessionMaxLifetime {
		bad("session-idle-timeout", "%s is longer than --session-max-lifetime %s", s.SessionIdleTimeout, s.SessionMaxLifetime)
	}
	for _, r := range []struct {
		flag string
		v    float64
	}{{"rate-read", s.RateRead}, {"rate-write", s.RateWrite}, {"rate-operator", s.RateOperator}} {
		if r.v <= 0 {
			bad(r.flag, "%v: must be a positive number of requests per second", r.v)
		}
	}
	switch {
	case s.EmbeddedHistory():
		if s.MultiServer() {
			bad("history", "a cluster of several controllers needs one shared PostgreSQL history store: set --history postgres://… (or OPSCONDUCTOR_HISTORY_DSN); the embedded store is for a single server")
		}
		if s.HistoryPasswordFile != "" {
			bad("history-password-file", "only applies to a postgres:// --history")
		}
	case !strings.HasPrefix(s.History, "postgres://") && !strings.HasPrefix(s.History, "postgresql://"):
		bad("history", "%q: use embedded or a postgres:// URL", redactDSN(s.History))
	}
	if s.HistoryRetention < 0 {
		bad("history-retention", "%s: must not be negative (0 keeps everything)", s.HistoryRetention)
	}
	if s.HistoryMaxBytes < 0 {
		bad("history-max-bytes", "%d: must not be negative (0 = no size limit)", s.HistoryMaxBytes)
	}
	if s.ExternalURL != "" {
		if _, err := install.ParseExternalURL(s.ExternalURL); err != nil {
			bad("external-url", "%v", err)
		}
	}
	for i, o := range s.CORSOrigins {
		if o != "*" && !strings.HasPrefix(o, "http://") && !strings.HasPrefix(o, "https://") {
			bad("cors-origin", "entry %d: %q must be an origin such as https://ops.example.com", i, o)
		}
	}
	return errors.Join(errs...)
}

func checkHostPort(v string) error {
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		return fmt.Errorf("%q is not host:port", v)
	}
	if host != "" && strings.ContainsAny(host, " /") {
		return fmt.Errorf("%q: bad host", v)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("%q: port must be 0-65535", v)
	}
	return nil
}

func validNodeID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// SettingNames lists the flag names a config file may use, for --help.
func SettingNames(fs *pflag.FlagSet, skip ...string) []string {
	skipped := map[string]bool{"help": true}
	for _, s := range skip {
		skipped[s] = true
	}
	var out []string
	fs.VisitAll(func(f *pflag.Flag) {
		if !skipped[f.Name] {
			out = append(out, f.Name)
		}
	})
	sort.Strings(out)
	return out
}

// redactDSN hides a password in a connection string for error messages.
func redactDSN(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		return u.Redacted()
	}
	if len(dsn) > 40 {
		return dsn[:40] + "…"
	}
	return dsn
}
