package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/opsconductor/opsconductor/controller/apiclient"
	"github.com/opsconductor/opsconductor/controller/install"
)

// TestInstallScriptEnrolsAHost runs what an operator runs on a new host,
// `curl -fsSL CONTROLLER/install/agent.sh | sh -s -- --token … --ca-pin …`,
// against a real controller serving a release of the real agent, into a
// scratch root (OPSCONDUCTOR_INSTALL_ROOT), then starts the installed
// agent and sees it connect.
func TestInstallScriptEnrolsAHost(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the agent and runs the install script; skipped with -short")
	}
	if runtime.GOOS != "linux" {
		t.Skip("the install script installs on Linux")
	}
	for _, tool := range []string{"sh", "curl", "wget"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
	rel := t.TempDir()
	agentFile := "opsconductor-agent_linux_" + runtime.GOARCH
	agentPath := filepath.Join(rel, agentFile)
	build := exec.Command("go", "build", "-trimpath", "-tags", "grpcnotrace", "-o", agentPath, "../../cmd/opsconductor-agent")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the agent: %v\n%s", err, out)
	}
	agentBytes, err := os.ReadFile(agentPath)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(agentBytes)
	if err := os.WriteFile(filepath.Join(rel, install.SumsFile), []byte(hex.EncodeToString(sum[:])+"  "+agentFile+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	cfg := testConfig(t.TempDir())
	cfg.ReleaseDir = rel
	n := start(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var tok apiclient.CreatedJoinToken
	// The leader creates the agent CA shortly after it is elected.
	waitUntil(t, "a join token", func() bool {
		tok, err = n.client.CreateJoinToken(ctx, apiclient.CreateJoinTokenRequest{TTL: "10m", MaxUses: 5})
		return err == nil
	})
	scriptURL := "http://" + n.ready.HTTPAddr + "/install/agent.sh"
	unit, err := os.ReadFile("../../deploy/systemd/opsconductor-agent.service")
	if err != nil {
		t.Fatal(err)
	}

	// install runs the script as the README says, piped from curl, with
	// PATH first searching extraPath (tools shadowed for one case).
	runScript := func(t *testing.T, root, extraPath string, args ...string) (string, error) {
		t.Helper()
		cmd := exec.CommandContext(ctx, "sh", append([]string{"-c", `curl -fsSL "$0" | sh -s -- "$@"`, scriptURL}, args...)...)
		cmd.Env = append(os.Environ(), "OPSCONDUCTOR_INSTALL_ROOT="+root, "OPSCONDUCTOR_JOIN_TOKEN=")
		if extraPath != "" {
			cmd.Env = append(cmd.Env, "PATH="+extraPath+string(os.PathListSeparator)+os.Getenv("PATH"))
		}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	installedNothing := func(t *testing.T, root string) {
		t.Helper()
		for _, dir := range []string{"usr", "etc", "var"} {
			if _, err := os.Stat(filepath.Join(root, dir)); err == nil {
				t.Errorf("%s was created under the install root", dir)
			}
		}
	}
	agentsNamed := func(name string) []apiclient.Agent {
		page, err := n.client.ListAgents(ctx, "", 100)
		if err != nil {
			t.Fatal(err)
		}
		var out []apiclient.Agent
		for _, a := range page.Items {
			if a.Name == name {
				out = append(out, a)
			}
		}
		return out
	}

	root := t.TempDir()
	t.Run("a host is enrolled and its unit written", func(t *testing.T) {
		out, err := runScript(t, root, "", "--token", tok.Token, "--ca-pin", tok.CAPin, "--name", "installed-host", "--tags", "role=web")
		if err != nil {
			t.Fatalf("install: %v\n%s", err, out)
		}
		for _, want := range []string{"checksum verified", "enrolled as installed-host", "systemctl enable opsconductor-agent"} {
			if !strings.Contains(out, want) {
				t.Errorf("the output lacks %q:\n%s", want, out)
			}
		}
		bin, err := os.ReadFile(filepath.Join(root, "usr/local/bin/opsconductor-agent"))
		if err != nil || !bytes.Equal(bin, agentBytes) {
			t.Errorf("the installed binary is not the release's (%v)", err)
		}
		if st, err := os.Stat(filepath.Join(root, "usr/local/bin/opsconductor-agent")); err != nil || st.Mode().Perm() != 0o755 {
			t.Errorf("the installed binary's mode: %v %v", st, err)
		}
		got, err := os.ReadFile(filepath.Join(root, "etc/systemd/system/opsconductor-agent.service"))
		if err != nil || !bytes.Equal(got, unit) {
			t.Errorf("the written unit is not deploy/systemd/opsconductor-agent.service (%v)", err)
		}
		agents := agentsNamed("installed-host")
		if len(agents) != 1 || agents[0].Tags["role"] != "web" {
			t.Fatalf("the controller lists %+v, want one agent installed-host tagged role=web", agents)
		}
	})

	t.Run("the installed agent connects with its enrolment", func(t *testing.T) {
		cmd := exec.Command(filepath.Join(root, "usr/local/bin/opsconductor-agent"), "run",
			"--data-dir", filepath.Join(root, "var/lib/opsconductor-agent"), "--log-level", "warn")
		var logs bytes.Buffer
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
		waitUntil(t, "the installed agent to be up", func() bool {
			a := agentsNamed("installed-host")
			return len(a) == 1 && a[0].Status == "up"
		})
	})

	t.Run("a second run upgrades in place without a token", func(t *testing.T) {
		out, err := runScript(t, root, "")
		if err != nil || !strings.Contains(out, "already enrolled") {
			t.Fatalf("re-run: %v\n%s", err, out)
		}
		if a := agentsNamed("installed-host"); len(a) != 1 {
			t.Fatalf("the re-run enrolled again: %+v", a)
		}
	})

	t.Run("wget serves when curl is missing", func(t *testing.T) {
		// A PATH without curl: the script is read from stdin instead.
		bin := t.TempDir()
		for _, tool := range []string{"sh", "uname", "id", "mktemp", "rm", "sed", "head", "cut", "sha256sum", "mkdir", "cp", "chmod", "mv", "cat", "wget"} {
			p, err := exec.LookPath(tool)
			if err != nil {
				t.Skipf("%s is not installed", tool)
			}
			if err := os.Symlink(p, filepath.Join(bin, tool)); err != nil {
				t.Fatal(err)
			}
		}
		script := fetch(t, scriptURL)
		wroot := t.TempDir()
		cmd := exec.CommandContext(ctx, filepath.Join(bin, "sh"), "-s", "--", "--token", tok.Token, "--ca-pin", tok.CAPin, "--name", "wget-host")
		cmd.Stdin = strings.NewReader(script)
		cmd.Env = []string{"PATH=" + bin, "OPSCONDUCTOR_INSTALL_ROOT=" + wroot, "HOME=" + t.TempDir()}
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "enrolled as wget-host") {
			t.Fatalf("install with wget: %v\n%s", err, out)
		}
	})

	// shim puts a uname that reports machine for -m first on PATH.
	shim := func(t *testing.T, machine string) string {
		dir := t.TempDir()
		real, err := exec.LookPath("uname")
		if err != nil {
			t.Fatal(err)
		}
		body := fmt.Sprintf("#!/bin/sh\nif [ \"$1\" = -m ]; then echo %s; else exec %s \"$@\"; fi\n", machine, real)
		if err := os.WriteFile(filepath.Join(dir, "uname"), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	refusals := []struct {
		name      string
		extraPath func(t *testing.T) string
		args      []string
		want      string
	}{
		{"an unknown CPU is refused before any download", func(t *testing.T) string { return shim(t, "mips64") },
			[]string{"--token", tok.Token, "--ca-pin", tok.CAPin}, "unsupported CPU architecture mips64"},
		{"a platform the release lacks shows the controller's message", func(t *testing.T) string {
			if runtime.GOARCH == "arm64" {
				return shim(t, "x86_64")
			}
			return shim(t, "aarch64")
		}, []string{"--token", tok.Token, "--ca-pin", tok.CAPin}, "--release-dir"},
		{"a missing token is refused", nil, []string{"--ca-pin", tok.CAPin}, "--token is required"},
		{"a malformed pin is refused", nil, []string{"--token", tok.Token, "--ca-pin", "abc"}, "--ca-pin abc: must look like sha256:"},
		{"an unknown option is refused", nil, []string{"--token", tok.Token, "--ca-pin", tok.CAPin, "--lables", "x"}, "unknown option --lables"},
		{"an option without its value is refused", nil, []string{"--ca-pin"}, "--ca-pin needs a value"},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			extra := ""
			if tc.extraPath != nil {
				extra = tc.extraPath(t)
			}
			r := t.TempDir()
			out, err := runScript(t, r, extra, tc.args...)
			if err == nil || !strings.Contains(out, tc.want) {
				t.Fatalf("install: %v, want a failure saying %q:\n%s", err, tc.want, out)
			}
			installedNothing(t, r)
		})
	}

	// Last: it changes the release's binary behind its checksum.
	t.Run("a binary that does not match the release's checksum installs nothing", func(t *testing.T) {
		if err := os.WriteFile(agentPath, append(agentBytes, 0), 0o755); err != nil {
			t.Fatal(err)
		}
		r := t.TempDir()
		out, err := runScript(t, r, "", "--token", tok.Token, "--ca-pin", tok.CAPin, "--name", "tampered")
		if err == nil || !strings.Contains(out, "checksum mismatch") || !strings.Contains(out, "nothing was installed") {
			t.Fatalf("install: %v, want a checksum mismatch:\n%s", err, out)
		}
		installedNothing(t, r)
		if a := agentsNamed("tampered"); len(a) != 0 {
			t.Fatalf("a host enrolled with a tampered binary: %+v", a)
		}
	})
}

func fetch(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v", url, resp.Status, err)
	}
	return string(b)
}

func TestDefaultReleaseDir(t *testing.T) {
	withSums := t.TempDir()
	if err := os.WriteFile(filepath.Join(withSums, install.SumsFile), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		exe  func() (string, error)
		want string
	}{
		{"a binary run from a release serves that release", func() (string, error) { return filepath.Join(withSums, "opsconductor_linux_amd64"), nil }, withSums},
		{"an installed binary serves DATA/release", func() (string, error) { return "/usr/local/bin/opsconductor", nil }, "/data/release"},
		{"an unknown binary path serves DATA/release", func() (string, error) { return "", os.ErrNotExist }, "/data/release"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := defaultReleaseDir("/data", tt.exe); got != tt.want {
				t.Errorf("defaultReleaseDir = %q, want %q", got, tt.want)
			}
		})
	}
}
