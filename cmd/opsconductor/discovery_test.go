package main

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opsconductor/opsconductor/controller/apiclient"
	"github.com/opsconductor/opsconductor/controller/config"
)

// startDevController runs a dev controller (with its built-in agent) and
// waits until it is ready.
func startDevController(t *testing.T) *controller {
	t.Helper()
	return runController(t, adminPassword, func(c *config.Server) { c.Dev = true })
}

func TestDiscoveryCommandsAgainstADevController(t *testing.T) {
	cliEnv(t)
	ctl := startDevController(t)
	addr := "--address=" + ctl.addr
	must(t, adminPassword+"\n", "login", addr, "--username", "admin", "--password-stdin")
	deadline := time.Now().Add(30 * time.Second)
	for {
		var agents []apiclient.Agent
		if err := json.Unmarshal([]byte(must(t, "", "agent", "list", "--json", addr)), &agents); err != nil {
			t.Fatal(err)
		}
		if len(agents) == 1 && agents[0].Name == "local" && agents[0].Status == "up" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the built-in agent is not up: %+v", agents)
		}
		time.Sleep(50 * time.Millisecond)
	}

	var mu sync.Mutex
	banner := "test-httpd/1.0"
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		w.Header().Set("Server", banner)
		mu.Unlock()
		io.WriteString(w, "<html><head><title>Lab home</title></head></html>")
	}))
	defer web.Close()
	port := strconv.Itoa(web.Listener.Addr().(*net.TCPAddr).Port)

	t.Run("an agent has no ranges until an admin sets them", func(t *testing.T) {
		if out := must(t, "", "discovery", "ranges", "local", addr); !strings.Contains(out, "may scan no ranges") {
			t.Fatalf("ranges: %q", out)
		}
	})
	t.Run("a profile outside the agent's ranges is refused, naming the range", func(t *testing.T) {
		_, errOut, err := runIn(t, "", "discovery", "profile", "create", "lan", "--cidr", "127.0.0.1", "--cidr", "192.0.2.0/24", "--agent", "local", addr)
		if err == nil || !strings.Contains(errOut+err.Error(), "192.0.2.0/24 is outside the ranges agent local may scan") {
			t.Fatalf("err = %v\n%s", err, errOut)
		}
	})
	must(t, "", "discovery", "profile", "create", "lo", "--cidr", "127.0.0.1", "--port", port, "--port", "1",
		"--agent", "local", "--no-resolve", "--banner-timeout", "500ms", addr)
	if out := must(t, "", "discovery", "profile", "list", addr); !strings.Contains(out, "lo") || !strings.Contains(out, "127.0.0.1/32") {
		t.Fatalf("profile list:\n%s", out)
	}

	first := ""
	t.Run("a scan through the built-in agent finds the web server", func(t *testing.T) {
		out, errOut, err := runIn(t, "", "discovery", "run", "lo", "--wait", "--poll", "100ms", addr)
		if err != nil {
			t.Fatalf("run: %v\n%s\n%s", err, out, errOut)
		}
		if !strings.Contains(out, "succeeded") || !strings.Contains(out, "+ 127.0.0.1  "+port+`/http test-httpd/1.0 "Lab home"`) {
			t.Fatalf("run --wait:\n%s", out)
		}
		first = strings.Fields(out)[0]
	})
	mu.Lock()
	banner = "test-httpd/2.0"
	mu.Unlock()
	t.Run("a second scan shows the banner change", func(t *testing.T) {
		out := must(t, "", "discovery", "run", "lo", "--wait", addr)
		if !strings.Contains(out, "~ 127.0.0.1  "+port+": "+port+`/http test-httpd/1.0 "Lab home" → `+port+`/http test-httpd/2.0 "Lab home"`) {
			t.Fatalf("run --wait:\n%s", out)
		}
	})
	t.Run("scans are listed newest first", func(t *testing.T) {
		out := must(t, "", "discovery", "scans", "--profile", "lo", addr)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 3 || !strings.HasPrefix(lines[2], first) {
			t.Fatalf("scans:\n%s", out)
		}
	})
	t.Run("found hosts are proposed, then imported", func(t *testing.T) {
		if out := must(t, "", "discovery", "show", first, "--hosts", addr); !strings.Contains(out, "(proposed)") {
			t.Fatalf("show --hosts:\n%s", out)
		}
		if out := must(t, "", "discovery", "import", first, "--host", "127.0.0.1", "--tag", "env=lab", addr); out != "imported 1 targets\n" {
			t.Fatalf("import: %q", out)
		}
		if out := must(t, "", "discovery", "show", first, "--hosts", addr); strings.Contains(out, "(proposed)") || !strings.Contains(out, "127.0.0.1") {
			t.Fatalf("show --hosts after import:\n%s", out)
		}
		if out := must(t, "", "discovery", "import", first, "--all", addr); !strings.Contains(out, "skipped 127.0.0.1") {
			t.Fatalf("import --all again: %q", out)
		}
	})
	t.Run("an admin sets the ranges", func(t *testing.T) {
		if out := must(t, "", "discovery", "ranges", "local", "--set", "192.0.2.0/24", addr); !strings.Contains(out, "may scan 192.0.2.0/24") {
			t.Fatalf("ranges --set: %q", out)
		}
	})
	t.Run("import needs --host or --all", func(t *testing.T) {
		_, _, err := runIn(t, "", "discovery", "import", first, addr)
		var ue usageError
		if !errors.As(err, &ue) {
			t.Fatalf("err = %v, want a usage error", err)
		}
	})
}
