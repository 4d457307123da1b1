package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opsconductor/opsconductor/controller/install"
)

// testAgentBinary stands in for opsconductor-agent_linux_amd64: the
// gateway serves bytes, whatever they are.
const testAgentBinary = "\x7fELF pretend agent binary"

// newTestInstall serves a release directory holding a linux/amd64 agent
// and its SHA256SUMS, as `make release` leaves them.
func newTestInstall(t testing.TB) *install.Service {
	t.Helper()
	dir := t.TempDir()
	writeRelease(t, dir, map[string]string{"opsconductor-agent_linux_amd64": testAgentBinary})
	svc, err := install.New(install.Config{ReleaseDir: dir, AgentPort: 3001})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// writeRelease writes files and a SHA256SUMS listing them into dir.
func writeRelease(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	var sums strings.Builder
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte(content))
		sums.WriteString(hex.EncodeToString(sum[:]) + "  " + name + "\n")
	}
	if err := os.WriteFile(filepath.Join(dir, install.SumsFile), []byte(sums.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

func testAgentSHA256() string {
	sum := sha256.Sum256([]byte(testAgentBinary))
	return hex.EncodeToString(sum[:])
}

func installCases() []routeCase {
	emptyRelease := func(f *fixture) {
		svc, err := install.New(install.Config{ReleaseDir: filepath.Join(os.TempDir(), "opsconductor-no-such-release"), AgentPort: 3001})
		if err != nil {
			panic(err)
		}
		f.srv.install = svc
	}
	return []routeCase{
		{name: "the install script names this controller", method: "GET", target: "http://ops.example.com:3000/install/agent.sh", want: 200,
			check: func(t *testing.T, rec *responseUnderTest) {
				body := string(rec.body)
				for _, want := range []string{"url='http://ops.example.com:3000'", "controller='ops.example.com:3001'", "ExecStart=/usr/local/bin/opsconductor-agent run"} {
					if !strings.Contains(body, want) {
						t.Errorf("the script lacks %q", want)
					}
				}
				if rec.header.Get("Cache-Control") != "no-store" {
					t.Errorf("Cache-Control = %q, want no-store", rec.header.Get("Cache-Control"))
				}
			}},
		{name: "the install script is unavailable when not wired", method: "GET", target: "/install/agent.sh", want: 503,
			setup: func(f *fixture) { f.srv.install = nil }},
		{name: "the agent binary is served with its checksum as ETag", method: "GET", target: "/install/agent/linux/amd64", want: 200,
			check: func(t *testing.T, rec *responseUnderTest) {
				if string(rec.body) != testAgentBinary {
					t.Errorf("body = %q, want the release's file", rec.body)
				}
				if got, want := rec.header.Get("ETag"), `"`+testAgentSHA256()+`"`; got != want {
					t.Errorf("ETag = %s, want %s", got, want)
				}
			}},
		{name: "an agent binary the client has is not sent again", method: "GET", target: "/install/agent/linux/amd64", want: 304,
			prepare: func(t *testing.T, f *fixture) prepared {
				return prepared{header: map[string]string{"If-None-Match": `"` + testAgentSHA256() + `"`}}
			}},
		{name: "an agent for a platform the release lacks is a 404", method: "GET", target: "/install/agent/linux/mips64", want: 404,
			check: func(t *testing.T, rec *responseUnderTest) {
				if !strings.Contains(string(rec.body), "it has linux/amd64") {
					t.Errorf("the 404 does not list what the release has: %s", rec.body)
				}
			}},
		{name: "an agent from a missing release is a 404 naming the flag", method: "GET", target: "/install/agent/linux/amd64", want: 404,
			setup: emptyRelease,
			check: func(t *testing.T, rec *responseUnderTest) {
				if !strings.Contains(string(rec.body), "--release-dir") {
					t.Errorf("the 404 does not name --release-dir: %s", rec.body)
				}
			}},
		{name: "an agent platform that could name a path is a 400", method: "GET", target: "/install/agent/linux/..%2f..%2fetc", want: 400},
		{name: "the agent binary is unavailable when not wired", method: "GET", target: "/install/agent/linux/amd64", want: 503,
			setup: func(f *fixture) { f.srv.install = nil }},
		{name: "the agent checksum is one sha256sum line", method: "GET", target: "/install/agent/linux/amd64/sha256", want: 200,
			check: func(t *testing.T, rec *responseUnderTest) {
				if want := testAgentSHA256() + "  opsconductor-agent_linux_amd64\n"; string(rec.body) != want {
					t.Errorf("body = %q, want %q", rec.body, want)
				}
			}},
		{name: "a checksum for a platform the release lacks is a 404", method: "GET", target: "/install/agent/linux/arm64/sha256", want: 404},
		{name: "a checksum for a bad platform name is a 400", method: "GET", target: "/install/agent/Linux/amd64/sha256", want: 400},
		{name: "the agent checksum is unavailable when not wired", method: "GET", target: "/install/agent/linux/amd64/sha256", want: 503,
			setup: func(f *fixture) { f.srv.install = nil }},
		{name: "install downloads are rate limited", method: "GET", target: "/install/agent/linux/amd64/sha256", want: 429,
			cfg: Config{RateLimits: map[RouteClass]Limit{ClassRead: {RPS: 0.001, Burst: 1}}}, repeat: 2},
	}
}

// The handlers' ETag must be what a client's If-None-Match sends back.
func TestInstallBinaryETagRoundTrip(t *testing.T) {
	f := newFixture(t, Config{})
	first := serve(t, f, newRequest(http.MethodGet, "/install/agent/linux/amd64", "", ""))
	req := newRequest(http.MethodGet, "/install/agent/linux/amd64", "", "")
	req.Header.Set("If-None-Match", first.header.Get("ETag"))
	if again := serve(t, f, req); again.status != http.StatusNotModified || len(again.body) != 0 {
		t.Fatalf("second download with the ETag: %d %q, want 304 without a body", again.status, again.body)
	}
}

// Without --external-url the script names the request's Host, so a Host a
// shell would interpret must be refused, not quoted and hoped for.
func TestInstallScriptRefusesAHostAShellWouldRead(t *testing.T) {
	spec := loadOpenAPI(t)
	f := newFixture(t, Config{})
	for _, host := range []string{"x';reboot;'", "ops.example.com/evil", "$(id)", "a b", ""} {
		t.Run(host, func(t *testing.T) {
			req := newRequest(http.MethodGet, "/install/agent.sh", "", "")
			req.Host = host
			rec := serve(t, f, req)
			if rec.status != http.StatusBadRequest || !strings.Contains(string(rec.body), "--external-url") {
				t.Fatalf("status %d, body %s; want 400 naming --external-url", rec.status, rec.body)
			}
			op, _ := spec.operation(http.MethodGet, "/install/agent.sh")
			checkAgainstSpec(t, spec, op, operationPointer("/install/agent.sh", http.MethodGet), rec)
		})
	}
}
