package server

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/opsconductor/opsconductor/controller/apiclient"
	"github.com/opsconductor/opsconductor/internal/sshdtest"
)

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
	sshd := sshdtest.StartT(t, sshdtest.Options{})
	r := start(t, testConfig(t.TempDir()))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	startAgents(ctx, t, r, []string{"relay"}, nil)

	if _, err := r.client.CreateCredential(ctx, apiclient.CredentialInput{Name: "db-login", Kind: "ssh_key", Username: sshd.User,
		Secret: &apiclient.CredentialSecret{PrivateKey: sshd.Key}}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.client.CreateTarget(ctx, apiclient.TargetInput{Name: "db-1", Addresses: []string{"127.0.0.1"},
		Connection: &apiclient.TargetConnection{Type: "ssh", Via: "relay", Port: sshd.Port, HostKeyPolicy: "tofu"}}); err != nil {
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
	if hello.Outputs["host_key"] != sshd.HostKeyLine() {
		t.Errorf("first run's host_key output = %q, want the sshd's %q", hello.Outputs["host_key"], sshd.HostKeyLine())
	}
	logs, err := r.client.AllRunLogs(ctx, run.ID, apiclient.RunLogQuery{Target: "db-1", Step: "hello"})
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("hello from db-1 on port %d\n", sshd.Port); len(logs) != 1 || logs[0].Data != want {
		t.Errorf("hello's log = %+v, want %q", logs, want)
	}
	var target apiclient.Target
	poll(ctx, t, "the learned host key to be recorded", func() error {
		if target, err = r.client.GetTarget(ctx, "db-1"); err != nil {
			return err
		}
		if target.Connection.HostKey != sshd.HostKeyLine() {
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
	if at.Kind != "ssh" || sent.Host != "127.0.0.1" || sent.Port != sshd.Port || sent.HostKey != sshd.HostKeyLine() || sent.HostKeyPolicy != "" {
		t.Errorf("second attempt: kind %s params %s; want ssh pinned to the recorded key", at.Kind, at.Params)
	}
	if strings.Contains(string(at.Params), "PRIVATE KEY") {
		t.Errorf("the attempt's params carry the private key: %s", at.Params)
	}

	// The host's key changes: refused before authenticating, and the
	// recorded key stays.
	learned := sshd.HostKeyLine()
	if err := sshd.Rekey(ctx); err != nil {
		t.Fatal(err)
	}
	run = waitRun(ctx, t, r.client, startRun(ctx, t, r.client, "over-ssh", nil).ID)
	hello = stepOf(t, run, "db-1", "hello")
	if run.Status != "failed" || !strings.Contains(hello.Error, "host key mismatch") {
		t.Fatalf("run after the key changed: %s, hello %+v; want failed with a host key mismatch", run.Status, hello)
	}
	if strings.Contains(sshd.Log(), "Accepted publickey") {
		t.Errorf("the client authenticated to a host whose key did not match:\n%s", sshd.Log())
	}
	if target, err = r.client.GetTarget(ctx, "db-1"); err != nil || target.Connection.HostKey != learned {
		t.Errorf("host_key after the mismatch = %q (%v), want the learned %q", target.Connection.HostKey, err, learned)
	}
}
