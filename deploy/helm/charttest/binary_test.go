package charttest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The tests below run the built binaries (make build): OPSCONDUCTOR_BIN is
// bin/opsconductor, and the agent is OPSCONDUCTOR_AGENT_BIN or
// opsconductor-agent beside it. Without them they skip and say so.

func controllerBin(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("OPSCONDUCTOR_BIN")
	if bin == "" {
		t.Skip("OPSCONDUCTOR_BIN is not set: run `make build` and point it at bin/opsconductor to check the chart against the binary")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("OPSCONDUCTOR_BIN: %v", err)
	}
	return bin
}

func agentBin(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("OPSCONDUCTOR_AGENT_BIN")
	if bin == "" {
		bin = filepath.Join(filepath.Dir(controllerBin(t)), "opsconductor-agent")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("agent binary (OPSCONDUCTOR_AGENT_BIN or beside OPSCONDUCTOR_BIN): %v", err)
	}
	return bin
}

var flagRE = regexp.MustCompile(`(?m)^\s+(?:-[a-zA-Z], )?--([a-z0-9-]+)`)

// help runs `bin args... --help` and returns its flags and its text.
func help(t *testing.T, bin string, args ...string) (map[string]bool, string) {
	t.Helper()
	out, err := exec.Command(bin, append(args, "--help")...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s --help: %v\n%s", bin, strings.Join(args, " "), err, out)
	}
	known := map[string]bool{}
	for _, m := range flagRE.FindAllStringSubmatch(string(out), -1) {
		known[m[1]] = true
	}
	if len(known) < 3 {
		t.Fatalf("%s %s --help lists %d flags; the help format changed?\n%s", bin, strings.Join(args, " "), len(known), out)
	}
	return known, string(out)
}

func checkKnown(t *testing.T, who string, used map[string][]string, known map[string]bool) {
	t.Helper()
	for name := range used {
		if !known[name] {
			t.Errorf("%s: --%s is not a flag of the binary (it has %v)", who, name, sortedKeys(known))
		}
	}
}

// TestFlagsAreRealFlags: every flag and OPSCONDUCTOR_* variable the chart
// gives the binaries is one they accept.
func TestFlagsAreRealFlags(t *testing.T) {
	ctrlBin, agBin := controllerBin(t), agentBin(t)
	serverFlags, serverHelp := help(t, ctrlBin, "server")
	runFlags, _ := help(t, agBin, "run")
	healthFlags, _ := help(t, agBin, "health")

	for _, c := range chartCases() {
		t.Run(c.name, func(t *testing.T) {
			r := must(t, values(t, c.sets...))
			ctr := r.statefulSets[0].Spec.Template.Spec.Containers[0]
			checkKnown(t, "opsconductor server", flags(t, "controller", ctr.Args[1:]), serverFlags)
			for _, e := range ctr.Env {
				if !strings.HasPrefix(e.Name, "OPSCONDUCTOR_") {
					continue
				}
				flag := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(e.Name, "OPSCONDUCTOR_"), "_", "-"))
				if !serverFlags[flag] && !strings.Contains(serverHelp, e.Name) {
					t.Errorf("controller env %s is neither OPSCONDUCTOR_<FLAG> nor named in `opsconductor server --help`", e.Name)
				}
			}
			if !c.agents {
				return
			}
			run := r.daemonSets[0].Spec.Template.Spec.Containers[0]
			checkKnown(t, "opsconductor-agent run", flags(t, "agent", run.Args), runFlags)
			for _, e := range run.Env {
				if !strings.HasPrefix(e.Name, "OPSCONDUCTOR_AGENT_") {
					continue
				}
				flag := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(e.Name, "OPSCONDUCTOR_AGENT_"), "_", "-"))
				if !runFlags[flag] {
					t.Errorf("agent env %s names no flag of opsconductor-agent run", e.Name)
				}
			}
			probe := run.LivenessProbe.Exec.Command
			if probe[0] != "opsconductor-agent" || probe[1] != "health" {
				t.Errorf("agent probe %v is not opsconductor-agent health", probe)
			}
			checkKnown(t, "opsconductor-agent health", flags(t, "agent probe", probe[2:]), healthFlags)
		})
	}
}

// TestGeneratedSecretsStartAController: the CA, keyring and admin password
// the chart generates are accepted by a real controller, given as the
// StatefulSet gives them (files and environment), and the admin can log in
// with the generated password.
func TestGeneratedSecretsStartAController(t *testing.T) {
	r := must(t, values(t, historyDSN))
	ca, keys, admin := r.secrets["oc-opsconductor-cluster-ca"], r.secrets["oc-opsconductor-keyring"], r.secrets["oc-opsconductor-admin"]
	if ca == nil || keys == nil || admin == nil {
		t.Fatalf("generated Secrets missing: have %v", sortedKeys(r.secrets))
	}

	// Shape first, so that a failure says which secret is wrong.
	cb, _ := pem.Decode(ca.Data["cluster-ca.pem"])
	kb, _ := pem.Decode(ca.Data["cluster-ca-key.pem"])
	if cb == nil || kb == nil || kb.Type != "EC PRIVATE KEY" {
		t.Fatalf("cluster CA: want a PEM certificate and an EC PRIVATE KEY, got %v and %v", cb, kb)
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil || !cert.IsCA {
		t.Fatalf("cluster CA certificate: %v (IsCA %v)", err, cert != nil && cert.IsCA)
	}
	key, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil || !key.PublicKey.Equal(cert.PublicKey.(*ecdsa.PublicKey)) {
		t.Fatalf("cluster CA key: %v (or it does not match the certificate)", err)
	}
	if days := time.Until(cert.NotAfter).Hours() / 24; days < 3000 {
		t.Errorf("cluster CA expires in %.0f days; a generated CA should outlive the cluster", days)
	}
	again := must(t, values(t, historyDSN))
	if bytes.Equal(again.secrets["oc-opsconductor-keyring"].Data["keyring.key"], keys.Data["keyring.key"]) ||
		bytes.Equal(again.secrets["oc-opsconductor-admin"].Data["password"], admin.Data["password"]) {
		t.Errorf("two installs generated the same keyring or password")
	}

	bin := controllerBin(t)
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	httpAddr, agentAddr, raftAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "server",
		"--data-dir="+filepath.Join(dir, "data"),
		"--http-addr="+httpAddr, "--agent-addr="+agentAddr, "--raft-addr="+raftAddr,
		"--tls-ca-cert="+write("cluster-ca.pem", ca.Data["cluster-ca.pem"]),
		"--tls-ca-key="+write("cluster-ca-key.pem", ca.Data["cluster-ca-key.pem"]),
		"--bootstrap-admin-password-file="+write("password", admin.Data["password"]),
		"--log-format=text")
	cmd.Env = append(os.Environ(), "OPSCONDUCTOR_KEYRING_KEY="+string(keys.Data["keyring.key"]))
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 15 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); close(exited) }() // closed: a second receive does not block
	defer func() {
		cancel()
		<-exited
		if t.Failed() {
			t.Logf("controller log:\n%s", logs.String())
		}
	}()

	base := "http://" + httpAddr
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(base + "/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-exited:
			t.Fatalf("controller exited before it was ready: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("controller not ready within 60s (last: %v)", err)
		}
	}
	body, _ := json.Marshal(map[string]string{"username": "admin", "password": string(admin.Data["password"])})
	resp, err := http.Post(base+"/api/v1/auth/login", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		t.Fatalf("login with the generated admin password: %s %s", resp.Status, b.String())
	}
}

// freeAddr returns a loopback address with a port the kernel just had free.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
}
