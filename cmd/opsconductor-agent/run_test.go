package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/opsconductor/opsconductor/agent/enroll"
	agentv1 "github.com/opsconductor/opsconductor/proto/agent/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newCA(t *testing.T) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test agent CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key}
}

func (ca *testCA) issue(t *testing.T, uri string, usage x509.ExtKeyUsage) (*ecdsa.PrivateKey, []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	u, _ := url.Parse(uri)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(24 * time.Hour), URIs: []*url.URL{u}, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return key, der
}

// writeIdentity lays out dir as `join` leaves it.
func (ca *testCA) writeIdentity(t *testing.T, dir string, controllers ...string) {
	t.Helper()
	key, der := ca.issue(t, enroll.AgentURI("a-1"), x509.ExtKeyUsageClientAuth)
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	meta, _ := json.Marshal(map[string]any{"agent_id": "a-1", "name": "web-1", "controllers": controllers})
	for name, data := range map[string][]byte{
		enroll.KeyFile:      pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		enroll.CertFile:     pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		enroll.CAFile:       pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw}),
		enroll.IdentityFile: meta,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// leader welcomes every stream and holds it until the agent leaves.
type leader struct {
	agentv1.UnimplementedAgentServiceServer
}

func (leader) Connect(stream grpc.BidiStreamingServer[agentv1.AgentMessage, agentv1.ControllerMessage]) error {
	if _, err := stream.Recv(); err != nil {
		return err
	}
	if err := stream.Send(&agentv1.ControllerMessage{Msg: &agentv1.ControllerMessage_Welcome{Welcome: &agentv1.Welcome{
		NodeId: "n1", HeartbeatInterval: durationpb.New(time.Second)}}}); err != nil {
		return err
	}
	for {
		if _, err := stream.Recv(); err != nil {
			return err
		}
	}
}

func (ca *testCA) startLeader(t *testing.T) string {
	t.Helper()
	key, der := ca.issue(t, "opsconductor://server/n1", x509.ExtKeyUsageServerAuth)
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS13,
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		ClientAuth:   tls.RequireAndVerifyClientCert, ClientCAs: pool})))
	agentv1.RegisterAgentServiceServer(srv, leader{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

// watchWriter collects output and signals once it contains want.
type watchWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	seen chan struct{}
}

func (w *watchWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	had := strings.Contains(w.buf.String(), w.want)
	w.buf.Write(p)
	if !had && strings.Contains(w.buf.String(), w.want) {
		close(w.seen)
	}
	return len(p), nil
}

func (w *watchWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

func clearAgentEnv(t *testing.T) {
	for _, k := range []string{"DATA_DIR", "CONTROLLER", "LOG_LEVEL", "CONFIG"} {
		t.Setenv(envPrefix+k, "")
		os.Unsetenv(envPrefix + k)
	}
}

func TestRunConnectsToTheLeaderAndStopsOnCancel(t *testing.T) {
	clearAgentEnv(t)
	ca := newCA(t)
	addr := ca.startLeader(t)
	dir := t.TempDir()
	ca.writeIdentity(t, dir, "127.0.0.1:1") // the enrolled address is gone; --controller wins
	out := &watchWriter{want: "connected to leader n1", seen: make(chan struct{})}
	root := newRoot()
	root.SetOut(out)
	root.SetErr(out)
	root.SetArgs([]string{"run", "--data-dir", dir, "--controller", addr, "--log-level", "debug"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	select {
	case <-out.seen:
	case err := <-done:
		cancel()
		t.Fatalf("run ended early: %v\n%s", err, out)
	case <-time.After(10 * time.Second):
		cancel()
		<-done
		t.Fatalf("never connected:\n%s", out)
	}
	// The probe a container runtime runs sees the connection.
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := execute(t, "health", "--data-dir", dir)
		if err == nil && strings.Contains(got, "healthy: connected to leader n1 at "+addr) {
			break
		}
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("health never reported the connection: %q, %v", got, err)
		}
		time.Sleep(10 * time.Millisecond) // polling the status file the agent writes
	}
	cancel() // as SIGTERM does through signal.NotifyContext
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("run did not stop")
	}
	if _, err := execute(t, "health", "--data-dir", dir); err == nil || !strings.Contains(err.Error(), "the agent is not running") {
		t.Errorf("health after stop: %v, want 'the agent is not running'", err)
	}
	for _, want := range []string{"agent web-1 (a-1) starting", "connecting to " + addr + "…", "stopped"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestRunSettingsAreLayered(t *testing.T) {
	dir := t.TempDir()
	file := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	fromFile := file("agent.yaml", "data-dir: /from/file\ncontroller: [127.0.0.1:1]\nlog-level: warn\n")
	typo := file("typo.yaml", "data_dirr: /x\n")
	cases := []struct {
		name    string
		env     map[string]string
		args    []string
		wantErr string
		usage   bool
	}{
		{"the file sets the data dir", nil, []string{"--config", fromFile}, "/from/file holds no enrolment", false},
		{"the environment names the file", map[string]string{"CONFIG": fromFile}, nil, "/from/file holds no enrolment", false},
		{"the environment beats the file", map[string]string{"DATA_DIR": "/from/env"}, []string{"--config", fromFile}, "/from/env holds no enrolment", false},
		{"a flag beats the environment", map[string]string{"DATA_DIR": "/from/env"}, []string{"--config", fromFile, "--data-dir", "/from/flag"}, "/from/flag holds no enrolment", false},
		{"the controller's variables are not the agent's", nil, []string{"--config", fromFile}, "/from/file holds no enrolment", false},
		{"an unknown key is refused", nil, []string{"--config", typo}, "data_dirr", true},
		{"a bad log level is refused", nil, []string{"--data-dir", dir, "--log-level", "loud"}, `--log-level "loud"`, true},
		{"a missing config file is refused", nil, []string{"--config", filepath.Join(dir, "none.yaml")}, "--config", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clearAgentEnv(t)
			t.Setenv("OPSCONDUCTOR_DATA_DIR", "/controller/dir")
			for k, v := range c.env {
				t.Setenv(envPrefix+k, v)
			}
			_, err := execute(t, append([]string{"run"}, c.args...)...)
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("err = %v, want %q", err, c.wantErr)
			}
			var ue usageError
			if errors.As(err, &ue) != c.usage {
				t.Fatalf("usage error = %v, want %v (%v)", !c.usage, c.usage, err)
			}
		})
	}
}

// assigningLeader welcomes the agent, sends one assignment and reports
// every message that follows.
type assigningLeader struct {
	agentv1.UnimplementedAgentServiceServer
	assignment *agentv1.Assignment
	msgs       chan *agentv1.AgentMessage
}

func (l *assigningLeader) Connect(stream grpc.BidiStreamingServer[agentv1.AgentMessage, agentv1.ControllerMessage]) error {
	if _, err := stream.Recv(); err != nil {
		return err
	}
	if err := stream.Send(&agentv1.ControllerMessage{Msg: &agentv1.ControllerMessage_Welcome{Welcome: &agentv1.Welcome{
		NodeId: "n1", HeartbeatInterval: durationpb.New(time.Second)}}}); err != nil {
		return err
	}
	if err := stream.Send(&agentv1.ControllerMessage{Msg: &agentv1.ControllerMessage_Assignment{Assignment: l.assignment}}); err != nil {
		return err
	}
	for {
		m, err := stream.Recv()
		if err != nil {
			return err
		}
		if m.GetHeartbeat() == nil {
			l.msgs <- m
		}
	}
}

func TestRunLetsAttemptsFinishForTheGracePeriodOnSIGTERM(t *testing.T) {
	tests := []struct {
		name  string
		shell string
		grace string
		want  agentv1.AttemptStatus
	}{
		{"an attempt that ends within the grace period succeeds", "echo begun; sleep 0.3; echo done", "10s", agentv1.AttemptStatus_ATTEMPT_STATUS_SUCCEEDED},
		{"an attempt still running after it is canceled", "echo begun; sleep 30", "200ms", agentv1.AttemptStatus_ATTEMPT_STATUS_CANCELED},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearAgentEnv(t)
			ca := newCA(t)
			key, der := ca.issue(t, "opsconductor://server/n1", x509.ExtKeyUsageServerAuth)
			pool := x509.NewCertPool()
			pool.AddCert(ca.cert)
			srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS13,
				Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
				ClientAuth:   tls.RequireAndVerifyClientCert, ClientCAs: pool})))
			params, _ := json.Marshal(map[string]string{"shell": tt.shell})
			l := &assigningLeader{assignment: &agentv1.Assignment{AttemptId: "at-1", Kind: "command", ParamsJson: params},
				msgs: make(chan *agentv1.AgentMessage, 100)}
			agentv1.RegisterAgentServiceServer(srv, l)
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			go srv.Serve(lis)
			t.Cleanup(srv.Stop)
			dir := t.TempDir()
			ca.writeIdentity(t, dir, lis.Addr().String())
			out := &watchWriter{want: "never", seen: make(chan struct{})}
			root := newRoot()
			root.SetOut(out)
			root.SetErr(out)
			root.SetArgs([]string{"run", "--data-dir", dir, "--shutdown-grace", tt.grace})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- root.ExecuteContext(ctx) }()
			deadline := time.After(10 * time.Second)
			for started := false; !started; {
				select {
				case m := <-l.msgs:
					started = strings.HasPrefix(string(m.GetLog().GetData()), "begun")
				case <-deadline:
					t.Fatalf("the attempt never started:\n%s", out)
				}
			}
			cancel() // as SIGTERM does through signal.NotifyContext
			var res *agentv1.Result
			for res == nil {
				select {
				case m := <-l.msgs:
					res = m.GetResult()
				case <-deadline:
					t.Fatalf("no result:\n%s", out)
				}
			}
			if res.GetStatus() != tt.want {
				t.Fatalf("result %v, want %v", res, tt.want)
			}
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("run did not stop")
			}
			if !strings.Contains(out.String(), "letting 1 running attempt(s) finish") {
				t.Errorf("output:\n%s", out)
			}
		})
	}
}
