package builtin

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// netnsServeEnv makes the test binary a helper that serves in a network
// namespace: an SSH-style banner on :22 and HTTP on :8080 of the address
// given, until its stdin closes.
const netnsServeEnv = "OPSCONDUCTOR_DISCOVER_NETNS_SERVE"

func TestDiscoverNetnsHelperProcess(t *testing.T) {
	addr := os.Getenv(netnsServeEnv)
	if addr == "" {
		t.Skip("runs only as the helper of TestDiscoverFindsAHostInANetworkNamespace")
	}
	sshLn, err := net.Listen("tcp", net.JoinHostPort(addr, "22"))
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	go func() {
		for {
			c, err := sshLn.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, "SSH-2.0-OpenSSH_netns\r\n")
			c.Close()
		}
	}()
	webLn, err := net.Listen("tcp", net.JoinHostPort(addr, "8080"))
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	go http.Serve(webLn, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Server", "netns-httpd/1.0")
		io.WriteString(w, "<title>Behind a veth</title>")
	}))
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
}

// TestDiscoverFindsAHostInANetworkNamespace scans a real other host: a
// network namespace joined to this one by a veth pair on a private /30,
// with services started inside it.
func TestDiscoverFindsAHostInANetworkNamespace(t *testing.T) {
	if os.Getenv(netnsServeEnv) != "" {
		t.Skip("helper process")
	}
	ipPath, err := exec.LookPath("ip")
	if err != nil {
		t.Skipf("no ip command (%v): network namespaces are not available", err)
	}
	id := os.Getpid() % 100000
	ns, hostIf, nsIf := fmt.Sprintf("ocdisc%d", id), fmt.Sprintf("ocd%da", id), fmt.Sprintf("ocd%db", id)
	subnet := fmt.Sprintf("10.213.%d", id%250)
	if out, err := exec.Command(ipPath, "netns", "add", ns).CombinedOutput(); err != nil {
		t.Skipf("cannot create a network namespace here (ip netns add: %v: %s); the loopback tests cover the scan", err, out)
	}
	t.Cleanup(func() {
		// Deleting the namespace deletes the veth end in it, and with it
		// the pair.
		exec.Command(ipPath, "netns", "del", ns).Run()
		exec.Command(ipPath, "link", "del", hostIf).Run()
	})
	sh := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(ipPath, args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	sh("link", "add", hostIf, "type", "veth", "peer", "name", nsIf)
	sh("link", "set", nsIf, "netns", ns)
	sh("addr", "add", subnet+".1/30", "dev", hostIf)
	sh("link", "set", hostIf, "up")
	sh("netns", "exec", ns, "ip", "addr", "add", subnet+".2/30", "dev", nsIf)
	sh("netns", "exec", ns, "ip", "link", "set", nsIf, "up")
	sh("netns", "exec", ns, "ip", "link", "set", "lo", "up")

	helper := exec.Command(ipPath, "netns", "exec", ns, os.Args[0], "-test.run=^TestDiscoverNetnsHelperProcess$")
	helper.Env = append(os.Environ(), netnsServeEnv+"="+subnet+".2")
	stdin, err := helper.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); helper.Wait() })
	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		ready <- strings.TrimSpace(line)
		io.Copy(io.Discard, stdout)
	}()
	select {
	case line := <-ready:
		if line != "ready" {
			t.Fatalf("the helper in the namespace said %q", line)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the helper in the namespace did not start")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, rec, err := run(t, ctx, Discover{}, obj{"cidrs": []string{subnet + ".0/30"}, "ports": []string{"22", "8080", "9"},
		"timeout": "500ms", "banner_timeout": "1s", "resolve": false})
	if err != nil {
		t.Fatal(err)
	}
	hosts := hostLines(t, rec.stdout())
	// The /30 holds .1 (this side, nothing listening on those ports) and
	// .2 (the namespace).
	if res.Outputs["hosts_scanned"] != "2" || len(hosts) != 1 || hosts[0].Address != subnet+".2" || len(hosts[0].Ports) != 2 {
		t.Fatalf("outputs %v, hosts %+v\n%s", res.Outputs, hosts, rec.stdout())
	}
	ssh, web := hosts[0].Ports[0], hosts[0].Ports[1]
	if ssh.Port != 22 || ssh.Service != "ssh" || ssh.Banner != "SSH-2.0-OpenSSH_netns" {
		t.Errorf("port 22 = %+v", ssh)
	}
	if web.Port != 8080 || web.Service != "http" || web.HTTP == nil || web.HTTP.Server != "netns-httpd/1.0" || web.HTTP.Title != "Behind a veth" {
		t.Errorf("port 8080 = %+v (http %+v)", web, web.HTTP)
	}
}
