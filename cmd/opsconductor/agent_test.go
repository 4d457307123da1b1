package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/opsconductor/opsconductor/controller/apiclient"
	agentv1 "github.com/opsconductor/opsconductor/proto/agent/v1"
)

// joinFlags pulls --controller, --token and --ca-pin out of a join line.
func joinFlags(t *testing.T, line string) (controller, token, pin string) {
	t.Helper()
	f := strings.Fields(line)
	for i := 0; i+1 < len(f); i++ {
		switch f[i] {
		case "--controller":
			controller = f[i+1]
		case "--token":
			token = f[i+1]
		case "--ca-pin":
			pin = f[i+1]
		}
	}
	if !strings.HasPrefix(line, "opsconductor-agent join ") || controller == "" || token == "" || pin == "" {
		t.Fatalf("join line %q lacks a flag", line)
	}
	return controller, token, pin
}

// pinnedDial dials the agent listener the way an agent does before it has
// a certificate: trusting only a chain whose CA matches the pin.
func pinnedDial(t *testing.T, addr, pin string, cert *tls.Certificate) agentv1.AgentServiceClient {
	t.Helper()
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true, // replaced by the pin check below
		VerifyConnection: func(cs tls.ConnectionState) error {
			chain := cs.PeerCertificates
			if len(chain) < 2 {
				return errors.New("no CA in the chain")
			}
			ca := chain[len(chain)-1]
			sum := sha256.Sum256(ca.RawSubjectPublicKeyInfo)
			if "sha256:"+hex.EncodeToString(sum[:]) != pin {
				return errors.New("CA pin mismatch")
			}
			pool := x509.NewCertPool()
			pool.AddCert(ca)
			_, err := chain[0].Verify(x509.VerifyOptions{Roots: pool})
			return err
		},
	}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return agentv1.NewAgentServiceClient(conn)
}

func TestAgentEnrolmentEndToEnd(t *testing.T) {
	cliEnv(t)
	ctl := startController(t, adminPassword)
	addr := "--address=" + ctl.addr
	must(t, adminPassword+"\n", "login", addr, "--username", "admin", "--password-stdin")

	// The leader makes the agent CA just after it starts leading.
	var line string
	deadline := time.Now().Add(15 * time.Second)
	for {
		out, errOut, err := runIn(t, "", "agent", "join-token", "create", addr, "--ttl", "2h", "--max-uses", "2", "--tag", "env=prod")
		if err == nil {
			line = strings.TrimSpace(out)
			break
		}
		if time.Now().After(deadline) || !strings.Contains(errOut+err.Error(), "agent_ca_missing") && !strings.Contains(errOut+err.Error(), "agent CA") {
			t.Fatalf("join-token create: %v\n%s", err, errOut)
		}
		time.Sleep(100 * time.Millisecond)
	}
	controller, token, pin := joinFlags(t, line)

	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := pinnedDial(t, controller, pin, nil).Enroll(ctx, &agentv1.EnrollRequest{Token: token, CsrDer: csr, Name: "db1",
		Facts: &agentv1.Facts{Hostname: "db1.example.com", Os: "linux"}})
	if err != nil {
		t.Fatalf("enroll: %v", err)
	}
	cert := &tls.Certificate{Certificate: [][]byte{res.CertificateDer}, PrivateKey: key}
	stream, err := pinnedDial(t, controller, pin, cert).Connect(ctx)
	if err == nil {
		err = stream.Send(&agentv1.AgentMessage{Msg: &agentv1.AgentMessage_Hello{Hello: &agentv1.Hello{AgentId: res.AgentId, Version: "test"}}})
	}
	var welcome *agentv1.ControllerMessage
	if err == nil {
		welcome, err = stream.Recv()
	}
	if err != nil || welcome.GetWelcome() == nil {
		t.Fatalf("Connect with the new certificate: %v, %v; want a Welcome from the single node", welcome, err)
	}
	// agent exec: the test plays the agent's part of the execution core.
	type cliResult struct {
		out, errOut string
		err         error
	}
	execDone := make(chan cliResult, 1)
	go func() {
		out, errOut, err := runIn(t, "", "agent", "exec", res.AgentId, addr, "--poll", "20ms", "--", "sh", "-c", "echo hi; echo oops >&2; exit 3")
		execDone <- cliResult{out, errOut, err}
	}()
	m, err := stream.Recv()
	as := m.GetAssignment()
	if err != nil || as == nil || !strings.Contains(string(as.GetParamsJson()), `"argv":["sh","-c","echo hi; echo oops \u003e\u00262; exit 3"]`) {
		t.Fatalf("agent exec sent %v, %v; want the assignment", m, err)
	}
	for _, msg := range []*agentv1.AgentMessage{
		{Msg: &agentv1.AgentMessage_AssignmentAck{AssignmentAck: &agentv1.AssignmentAck{AttemptId: as.AttemptId}}},
		{Msg: &agentv1.AgentMessage_Log{Log: &agentv1.LogChunk{AttemptId: as.AttemptId, Seq: 1, Data: []byte("hi\n"), Stream: agentv1.OutputStream_OUTPUT_STREAM_STDOUT}}},
		{Msg: &agentv1.AgentMessage_Log{Log: &agentv1.LogChunk{AttemptId: as.AttemptId, Seq: 2, Data: []byte("oops\n"), Stream: agentv1.OutputStream_OUTPUT_STREAM_STDERR}}},
		{Msg: &agentv1.AgentMessage_Result{Result: &agentv1.Result{AttemptId: as.AttemptId, Status: agentv1.AttemptStatus_ATTEMPT_STATUS_FAILED, ExitCode: 3, LastSeq: 2}}},
	} {
		if err := stream.Send(msg); err != nil {
			t.Fatal(err)
		}
	}
	for {
		m, err := stream.Recv()
		if err != nil {
			t.Fatalf("waiting for the result's ack: %v", err)
		}
		if m.GetAck().GetResult() {
			break
		}
	}
	r := <-execDone
	var ec exitCodeError
	if !errors.As(r.err, &ec) || ec.code != 3 || r.out != "hi\n" || !strings.Contains(r.errOut, "oops\n") ||
		!strings.Contains(r.errOut, "failed (exit code 3)") {
		t.Fatalf("agent exec = %v\nstdout %q\nstderr %q", r.err, r.out, r.errOut)
	}
	if out := must(t, "", "attempt", "show", as.AttemptId, addr); !strings.Contains(out, "failed") {
		t.Fatalf("attempt show: %s", out)
	}
	if out := must(t, "", "attempt", "log", as.AttemptId, addr); out != "hi\n" {
		t.Fatalf("attempt log: %q", out)
	}
	if out := must(t, "", "agent", "drain", res.AgentId, addr); !strings.Contains(out, "Draining agent "+res.AgentId) {
		t.Fatalf("agent drain: %s", out)
	}
	if m, err := stream.Recv(); err != nil || m.GetDrain() == nil || !m.GetDrain().Draining {
		t.Fatalf("after drain the stream got %v, %v; want Drain{draining: true}", m, err)
	}
	_ = stream.CloseSend()

	var agents []apiclient.Agent
	if err := json.Unmarshal([]byte(must(t, "", "agent", "list", addr, "--json")), &agents); err != nil || len(agents) != 1 ||
		agents[0].ID != res.AgentId || agents[0].Name != "db1" || agents[0].Tags["env"] != "prod" {
		t.Fatalf("agent list: %+v, %v", agents, err)
	}
	if out := must(t, "", "agent", "show", res.AgentId, addr); !strings.Contains(out, "db1.example.com") {
		t.Fatalf("agent show: %s", out)
	}
	if out := must(t, "", "agent", "join-token", "list", addr); !strings.Contains(out, "1/2") || strings.Contains(out, token) {
		t.Fatalf("join-token list: %s", out)
	}
	if out := must(t, "", "agent", "revoke", res.AgentId, addr); !strings.Contains(out, "Revoked agent "+res.AgentId) {
		t.Fatalf("agent revoke: %s", out)
	}
	stream, err = pinnedDial(t, controller, pin, cert).Connect(ctx)
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("Connect after revoke: %v, want PermissionDenied", err)
	}
	id, _, _ := strings.Cut(strings.TrimPrefix(token, "ocj_"), "_")
	must(t, "", "agent", "join-token", "revoke", id, addr)
	_, err = pinnedDial(t, controller, pin, nil).Enroll(ctx, &agentv1.EnrollRequest{Token: token, CsrDer: csr})
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("enrol with a revoked token: %v", err)
	}
	base := ctl.addr
	if !strings.HasPrefix(base, "http") {
		base = "http://" + base
	}
	resp, err := http.Get(base + "/health")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var health struct {
		Agents *struct{ Enrolled, Revoked int } `json:"agents"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&health); err != nil || health.Agents == nil || health.Agents.Revoked != 1 {
		t.Fatalf("health agents section: %+v, %v", health.Agents, err)
	}
}

func TestCredentialFlags(t *testing.T) {
	tests := []struct {
		flags   []string
		want    map[string]string
		wantErr bool
	}{
		{flags: nil, want: nil},
		{flags: []string{"db=db-admin", "api=token-1"}, want: map[string]string{"db": "db-admin", "api": "token-1"}},
		{flags: []string{"db"}, wantErr: true},
		{flags: []string{"=x"}, wantErr: true},
		{flags: []string{"db="}, wantErr: true},
	}
	for _, tt := range tests {
		got, err := credentialFlags(tt.flags)
		if (err != nil) != tt.wantErr || (err == nil && !maps.Equal(got, tt.want)) {
			t.Errorf("credentialFlags(%q) = %v, %v", tt.flags, got, err)
		}
	}
}
