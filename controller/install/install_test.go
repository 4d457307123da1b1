package install

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opsconductor/opsconductor/controller/problem"
)

// The script writes the unit deploy/systemd ships; go:embed cannot reach
// that file, so this package keeps a copy that must not drift.
func TestUnitIsTheDeployedUnit(t *testing.T) {
	deployed, err := os.ReadFile(filepath.Join("..", "..", "deploy", "systemd", "opsconductor-agent.service"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(deployed, []byte(agentUnit)) {
		t.Fatal("controller/install/opsconductor-agent.service differs from deploy/systemd/opsconductor-agent.service: " +
			"cp deploy/systemd/opsconductor-agent.service controller/install/")
	}
}

func newService(t *testing.T, cfg Config) *Service {
	t.Helper()
	if cfg.ReleaseDir == "" {
		cfg.ReleaseDir = t.TempDir()
	}
	if cfg.AgentPort == 0 {
		cfg.AgentPort = 3001
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestScriptNamesTheController(t *testing.T) {
	tests := []struct {
		name           string
		externalURL    string
		origin         Origin
		wantURL        string
		wantController string
	}{
		{"the external URL wins over the request", "https://ops.example.com/", Origin{Host: "10.0.0.5:3000"},
			"url='https://ops.example.com'", "controller='ops.example.com:3001'"},
		{"an external URL keeps its path prefix", "https://example.com/ops", Origin{},
			"url='https://example.com/ops'", "controller='example.com:3001'"},
		{"without one the request's Host is used", "", Origin{Host: "ctl.lan:3000"},
			"url='http://ctl.lan:3000'", "controller='ctl.lan:3001'"},
		{"a request over TLS downloads over TLS", "", Origin{Host: "ctl.lan", TLS: true},
			"url='https://ctl.lan'", "controller='ctl.lan:3001'"},
		{"an IPv6 Host keeps its brackets", "", Origin{Host: "[fd00::5]:3000"},
			"url='http://[fd00::5]:3000'", "controller='[fd00::5]:3001'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newService(t, Config{ExternalURL: tt.externalURL})
			out, err := s.Script(tt.origin)
			if err != nil {
				t.Fatal(err)
			}
			script := string(out)
			for _, want := range []string{tt.wantURL, tt.wantController, strings.TrimSuffix(agentUnit, "\n")} {
				if !strings.Contains(script, want) {
					t.Errorf("the script lacks %q", want)
				}
			}
			if strings.Contains(script, "@@") {
				t.Error("the script still holds a placeholder")
			}
		})
	}
}

func TestScriptRefusesAHostAShellWouldRead(t *testing.T) {
	s := newService(t, Config{})
	for _, host := range []string{"", "a'b", "$(reboot)", "a b", "host/path", "`id`", "a;b", strings.Repeat("a", 256)} {
		_, err := s.Script(Origin{Host: host})
		if p, ok := problem.As(err); !ok || p.Kind != problem.KindInvalid || p.Field != "Host" {
			t.Errorf("Host %q: %v, want an invalid Host", host, err)
		}
	}
}

// The rendered script, not only its template, must pass shellcheck as
// POSIX sh (make lint checks the template; this the output).
func TestRenderedScriptPassesShellcheck(t *testing.T) {
	if _, err := exec.LookPath("shellcheck"); err != nil {
		t.Skip("shellcheck is not installed (apt-get install -y shellcheck)")
	}
	s := newService(t, Config{ExternalURL: "https://ops.example.com"})
	out, err := s.Script(Origin{})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("shellcheck", "--shell=sh", "--severity=style", "-")
	cmd.Stdin = bytes.NewReader(out)
	if res, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("shellcheck: %v\n%s", err, res)
	}
}

func TestNewRefusals(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"a release directory is required", Config{AgentPort: 3001}, "ReleaseDir"},
		{"the agent port must be a port", Config{ReleaseDir: "/x", AgentPort: 70000}, "AgentPort"},
		{"the external URL must be http or https", Config{ReleaseDir: "/x", AgentPort: 1, ExternalURL: "ftp://ops"}, "--external-url"},
		{"the external URL may not carry a query", Config{ReleaseDir: "/x", AgentPort: 1, ExternalURL: "https://ops?x=1"}, "--external-url"},
		{"the external URL may not carry credentials", Config{ReleaseDir: "/x", AgentPort: 1, ExternalURL: "https://u:p@ops"}, "--external-url"},
		{"the external URL path may not hold a quote", Config{ReleaseDir: "/x", AgentPort: 1, ExternalURL: "https://ops/a'b"}, "--external-url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: %v, want an error naming %s", err, tt.want)
			}
		})
	}
}

// release writes files and their SHA256SUMS into a new directory.
func release(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	var sums strings.Builder
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte(content))
		sums.WriteString(hex.EncodeToString(sum[:]) + "  " + name + "\n")
	}
	if err := os.WriteFile(filepath.Join(dir, SumsFile), []byte(sums.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestAgentServesOnlyWhatTheReleaseLists(t *testing.T) {
	dir := release(t, map[string]string{
		"opsconductor-agent_linux_amd64":  "amd64 agent",
		"opsconductor-agent_linux_arm64":  "arm64 agent",
		"opsconductor-agent_darwin_arm64": "darwin agent",
		"opsconductor_linux_amd64":        "the controller",
	})
	// On disk but not in SHA256SUMS: never served.
	if err := os.WriteFile(filepath.Join(dir, "opsconductor-agent_linux_riscv64"), []byte("unlisted"), 0o755); err != nil {
		t.Fatal(err)
	}
	s := newService(t, Config{ReleaseDir: dir})

	platforms, err := s.Platforms()
	if err != nil || strings.Join(platforms, " ") != "darwin/arm64 linux/amd64 linux/arm64" {
		t.Fatalf("Platforms = %v, %v", platforms, err)
	}
	tests := []struct {
		name       string
		os, arch   string
		want       string
		wantKind   problem.Kind
		wantInText string
	}{
		{"a listed agent is served", "linux", "arm64", "arm64 agent", "", ""},
		{"a platform the release lacks is not found", "linux", "mips64", "", problem.KindNotFound, "it has darwin/arm64, linux/amd64, linux/arm64"},
		{"a file not in SHA256SUMS is not served", "linux", "riscv64", "", problem.KindNotFound, "no agent for linux/riscv64"},
		{"an os that names a path is invalid", "..", "amd64", "", problem.KindInvalid, ""},
		{"an arch that names a path is invalid", "linux", "amd64/../../x", "", problem.KindInvalid, ""},
		{"upper case is not a Go platform name", "Linux", "amd64", "", problem.KindInvalid, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := s.Agent(tt.os, tt.arch)
			if tt.wantKind != "" {
				p, ok := problem.As(err)
				if !ok || p.Kind != tt.wantKind || !strings.Contains(p.Error(), tt.wantInText) {
					t.Fatalf("Agent: %v, want a %s problem saying %q", err, tt.wantKind, tt.wantInText)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer b.File.Close()
			got, _ := io.ReadAll(b.File)
			sum := sha256.Sum256(got)
			if string(got) != tt.want || b.SHA256 != hex.EncodeToString(sum[:]) || b.Size != int64(len(tt.want)) {
				t.Fatalf("Agent = %q (sha256 %s, size %d)", got, b.SHA256, b.Size)
			}
			line, err := s.Checksum(tt.os, tt.arch)
			if err != nil || line != b.SHA256+"  opsconductor-agent_"+tt.os+"_"+tt.arch+"\n" {
				t.Fatalf("Checksum = %q, %v", line, err)
			}
		})
	}
}

func TestMissingReleaseNamesTheFlag(t *testing.T) {
	s := newService(t, Config{ReleaseDir: filepath.Join(t.TempDir(), "none")})
	for _, err := range []error{
		func() error { _, err := s.Agent("linux", "amd64"); return err }(),
		func() error { _, err := s.Checksum("linux", "amd64"); return err }(),
	} {
		p, ok := problem.As(err)
		if !ok || p.Kind != problem.KindNotFound || !strings.Contains(p.Message, "--release-dir") || !strings.Contains(p.Message, "make release") {
			t.Errorf("%v: want a not-found problem naming --release-dir and make release", err)
		}
	}
	// A broken SHA256SUMS is the operator's to fix, not the caller's.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, SumsFile), []byte("not a checksum line\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := newService(t, Config{ReleaseDir: dir}).Agent("linux", "amd64")
	if _, isProblem := problem.As(err); err == nil || isProblem || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("a bad SHA256SUMS: %v, want an internal error naming the line", err)
	}
}

func TestParseSums(t *testing.T) {
	a := strings.Repeat("a", 64)
	tests := []struct {
		name    string
		in      string
		want    map[string]string
		wantErr string
	}{
		{"sha256sum's text mode", a + "  agent\n", map[string]string{"agent": a}, ""},
		{"sha256sum's binary mode", a + " *agent\n", map[string]string{"agent": a}, ""},
		{"upper-case digits are read as lower case", strings.ToUpper(a) + "  agent", map[string]string{"agent": a}, ""},
		{"blank lines and CRLF are fine", "\r\n" + a + "  agent\r\n\n", map[string]string{"agent": a}, ""},
		{"an empty file lists nothing", "", map[string]string{}, ""},
		{"a short sum is refused", "abc  agent\n", nil, "line 1"},
		{"a sum that is not hex is refused", strings.Repeat("g", 64) + "  agent\n", nil, "not a hex"},
		{"a path is refused", a + "  ../agent\n", nil, "without a directory"},
		{"a name listed twice is refused", a + "  agent\n" + a + "  agent\n", nil, "line 2: agent is listed twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSums([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseSums: %v, want an error with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || len(got) != len(tt.want) {
				t.Fatalf("ParseSums = %v, %v; want %v", got, err, tt.want)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s: %q, want %q", k, got[k], v)
				}
			}
		})
	}
}

// SHA256SUMS comes from whoever filled the release directory: whatever it
// holds, ParseSums answers an error or names that cannot leave the
// directory and sums of 64 hex digits.
func FuzzParseSums(f *testing.F) {
	a := strings.Repeat("0123456789abcdef", 4)
	for _, seed := range []string{"", a + "  opsconductor-agent_linux_amd64\n", a + " *x\r\n\n", a + "  ../x", "x  y", a + "  a\n" + a + "  a\n"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		sums, err := ParseSums(raw)
		if err != nil {
			return
		}
		for name, sum := range sums {
			if name == "" || strings.ContainsRune(name, '/') || name == "." || name == ".." {
				t.Fatalf("name %q could leave the directory", name)
			}
			if _, herr := hex.DecodeString(sum); len(sum) != 64 || herr != nil {
				t.Fatalf("sum %q is not 64 hex digits", sum)
			}
		}
	})
}
