package server

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/opsconductor/opsconductor/controller/apiclient"
)

// sshdPath is where Debian's openssh-server puts the daemon; .ci/run
// installs it.
const sshdPath = "/usr/sbin/sshd"

// testSSHD is a real OpenSSH server on a loopback port, with a host key
// and authorized_keys of its own in a temporary directory. It logs in the
// user running the test, by key only: the credential under test is an
// ssh_key one, so no password has to be set up.
type testSSHD struct {
	t       *testing.T
	dir     string
	port    int
	user    string
	key     string // the client's private key, OpenSSH PEM
	hostKey ssh.PublicKey
	logs    *lockedBuffer // this instance's log (sshd -e)
	stop    func()        // kills this instance and waits for it
}

func (s *testSSHD) hostKeyLine() string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.hostKey)))
}

// startTestSSHD starts sshd on a free loopback port. As root it runs in a
// private mount namespace with a tmpfs on /run for its privilege
// separation directory (as plugins/builtin's ssh tests do), so the host's
// /run is left alone.
func startTestSSHD(t *testing.T) *testSSHD {
	t.Helper()
	if _, err := os.Stat(sshdPath); err != nil {
		t.Skipf("sshd is not installed (%v); install Debian's openssh-server, as .ci/run does", err)
	}
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	s := &testSSHD{t: t, dir: t.TempDir(), user: u.Username}
	clientPub, clientPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s.key = string(writeKeyPEM(t, filepath.Join(s.dir, "client"), clientPriv))
	sshPub, err := ssh.NewPublicKey(clientPub)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.dir, "authorized_keys"), ssh.MarshalAuthorizedKey(sshPub), 0o600); err != nil {
		t.Fatal(err)
	}
	for attempt := 1; ; attempt++ {
		// sshd cannot take a listener from us: the kernel picks a free
		// port, we close it and sshd binds it. Another process taking it
		// in between fails the bind, and we try another.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s.port = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if s.launch(attempt < 3) {
			return s
		}
	}
}

// rekey restarts sshd on the same port with a new host key, as a rebuilt
// host (or a machine in the middle) would present.
func (s *testSSHD) rekey() {
	s.t.Helper()
	s.stop()
	for attempt := 1; !s.launch(attempt < 3); attempt++ {
	}
}

// launch writes a fresh host key and config and starts sshd; it returns
// false when the port was taken and retry allows another try.
func (s *testSSHD) launch(retry bool) bool {
	t := s.t
	t.Helper()
	hostPub, hostPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if s.hostKey, err = ssh.NewPublicKey(hostPub); err != nil {
		t.Fatal(err)
	}
	writeKeyPEM(t, filepath.Join(s.dir, "host_ed25519"), hostPriv)
	cfg := filepath.Join(s.dir, "sshd_config")
	conf := fmt.Sprintf(`ListenAddress 127.0.0.1:%d
HostKey %s
PidFile %s
AuthorizedKeysFile %s
StrictModes no
UsePAM no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
LogLevel VERBOSE
`, s.port, filepath.Join(s.dir, "host_ed25519"), filepath.Join(s.dir, "sshd.pid"), filepath.Join(s.dir, "authorized_keys"))
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	argv := []string{sshdPath, "-D", "-e", "-f", cfg}
	if os.Geteuid() == 0 {
		if exec.Command("unshare", "-m", "true").Run() == nil {
			argv = append([]string{"unshare", "-m", "--", "sh", "-c",
				`mount -t tmpfs tmpfs /run && mkdir -m 0755 /run/sshd && exec "$@"`, "sh"}, argv...)
		} else if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			// What the openssh-server package itself creates.
			t.Skipf("sshd needs /run/sshd: %v", err)
		}
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sshd: %v", err)
	}
	logs := &lockedBuffer{}
	ready, exited := make(chan struct{}), make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		seen := false
		for sc.Scan() {
			_, _ = logs.Write([]byte(sc.Text() + "\n"))
			if !seen && strings.Contains(sc.Text(), "Server listening on") {
				seen = true
				close(ready)
			}
		}
		_ = cmd.Wait()
		close(exited)
	}()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("sshd log:\n%s", logs.String())
		}
	})
	select {
	case <-ready:
		s.logs, s.stop = logs, stop
		return true
	case <-exited:
		if retry && strings.Contains(logs.String(), "Address already in use") {
			return false
		}
		t.Fatalf("sshd exited before listening:\n%s", logs.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("sshd did not listen within 30s:\n%s", logs.String())
	}
	return false
}

func writeKeyPEM(t *testing.T, path string, key ed25519.PrivateKey) []byte {
	t.Helper()
	block, err := ssh.MarshalPrivateKey(key, "")
	if err != nil {
		t.Fatal(err)
	}
	b := pem.EncodeToMemory(block)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return b
}

const sshJob = `
name: over-ssh
targets: {names: [db-1]}
steps:
  - id: hello
    uses: shell
    with: {command: "echo hello from ${{ target.name }} on port $(echo $SSH_CONNECTION | cut -d' ' -f4)"}
  - id: after
    uses: noop
    needs: [hello]
`

// TestRunsReachAnSSHTargetThroughItsRelay is the SSH target path end to
// end: a controller, a real relay agent, a real sshd on loopback. The
// target has no agent and no host key yet (policy tofu); its login is an
// ssh_key credential attached in role ssh, whose username is the login
// user. The first run learns the host key and the inventory records it;
// the second pins it; after the host's key changes the run fails with a
// host key mismatch before any credential is offered.
func TestRunsReachAnSSHTargetThroughItsRelay(t *testing.T) {
	sshd := startTestSSHD(t)
	r := start(t, testConfig(t.TempDir()))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	startAgents(ctx, t, r, []string{"relay"}, nil)

	if _, err := r.client.CreateCredential(ctx, apiclient.CredentialInput{Name: "db-login", Kind: "ssh_key", Username: sshd.user,
		Secret: &apiclient.CredentialSecret{PrivateKey: sshd.key}}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.client.CreateTarget(ctx, apiclient.TargetInput{Name: "db-1", Addresses: []string{"127.0.0.1"},
		Connection: &apiclient.TargetConnection{Type: "ssh", Via: "relay", Port: sshd.port, HostKeyPolicy: "tofu"}}); err != nil {
		t.Fatal(err)
	}
	putJob(ctx, t, r.client, "over-ssh", sshJob)

	// Without a credential the step fails and says how to attach one.
	run := waitRun(ctx, t, r.client, startRun(ctx, t, r.client, "over-ssh", nil).ID)
	if got := stepOf(t, run, "db-1", "hello"); run.Status != "failed" || !strings.Contains(got.Error, "opsconductor credential attach") {
		t.Fatalf("run without a credential: %s, hello %+v; want failed naming credential attach", run.Status, got)
	}
	if _, err := r.client.AttachCredential(ctx, "db-login", "targets", "db-1", "ssh"); err != nil {
		t.Fatal(err)
	}

	// First contact: the key is learned and recorded.
	run = waitRun(ctx, t, r.client, startRun(ctx, t, r.client, "over-ssh", nil).ID)
	hello := stepOf(t, run, "db-1", "hello")
	if run.Status != "succeeded" || stepOf(t, run, "db-1", "after").Status != "succeeded" {
		t.Fatalf("first run %s: %s (hello: %s)", run.Status, stepStates(run), hello.Error)
	}
	if hello.Outputs["host_key"] != sshd.hostKeyLine() {
		t.Errorf("first run's host_key output = %q, want the sshd's %q", hello.Outputs["host_key"], sshd.hostKeyLine())
	}
	logs, err := r.client.AllRunLogs(ctx, run.ID, apiclient.RunLogQuery{Target: "db-1", Step: "hello"})
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("hello from db-1 on port %d\n", sshd.port); len(logs) != 1 || logs[0].Data != want {
		t.Errorf("hello's log = %+v, want %q", logs, want)
	}
	var target apiclient.Target
	poll(ctx, t, "the learned host key to be recorded", func() error {
		if target, err = r.client.GetTarget(ctx, "db-1"); err != nil {
			return err
		}
		if target.Connection.HostKey != sshd.hostKeyLine() {
			return fmt.Errorf("host_key is %q", target.Connection.HostKey)
		}
		return nil
	})

	// Second run: the recorded key is pinned, nothing is learned.
	run = waitRun(ctx, t, r.client, startRun(ctx, t, r.client, "over-ssh", nil).ID)
	hello = stepOf(t, run, "db-1", "hello")
	if run.Status != "succeeded" || hello.Outputs["host_key"] != "" {
		t.Fatalf("second run %s, hello %+v: want succeeded with nothing learned", run.Status, hello)
	}
	at, err := r.client.GetAttempt(ctx, hello.AttemptID)
	if err != nil {
		t.Fatal(err)
	}
	var sent struct {
		Host          string `json:"host"`
		Port          int    `json:"port"`
		HostKey       string `json:"host_key"`
		HostKeyPolicy string `json:"host_key_policy"`
	}
	if err := json.Unmarshal(at.Params, &sent); err != nil {
		t.Fatal(err)
	}
	if at.Kind != "ssh" || sent.Host != "127.0.0.1" || sent.Port != sshd.port || sent.HostKey != sshd.hostKeyLine() || sent.HostKeyPolicy != "" {
		t.Errorf("second attempt: kind %s params %s; want ssh pinned to the recorded key", at.Kind, at.Params)
	}
	if strings.Contains(string(at.Params), "PRIVATE KEY") {
		t.Errorf("the attempt's params carry the private key: %s", at.Params)
	}

	// The host's key changes: refused before authenticating, and the
	// recorded key stays.
	learned := sshd.hostKeyLine()
	sshd.rekey()
	run = waitRun(ctx, t, r.client, startRun(ctx, t, r.client, "over-ssh", nil).ID)
	hello = stepOf(t, run, "db-1", "hello")
	if run.Status != "failed" || !strings.Contains(hello.Error, "host key mismatch") {
		t.Fatalf("run after the key changed: %s, hello %+v; want failed with a host key mismatch", run.Status, hello)
	}
	if strings.Contains(sshd.logs.String(), "Accepted publickey") {
		t.Errorf("the client authenticated to a host whose key did not match:\n%s", sshd.logs.String())
	}
	if target, err = r.client.GetTarget(ctx, "db-1"); err != nil || target.Connection.HostKey != learned {
		t.Errorf("host_key after the mismatch = %q (%v), want the learned %q", target.Connection.HostKey, err, learned)
	}
}
