package agentrpc

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/opsconductor/opsconductor/controller/keyring"
	"github.com/opsconductor/opsconductor/controller/problem"
	"github.com/opsconductor/opsconductor/controller/state"
	"github.com/opsconductor/opsconductor/controller/state/statetest"
	agentv1 "github.com/opsconductor/opsconductor/proto/agent/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// clock is the test's time, shared by the FSM (entry times) and the service.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

// syncBuffer collects the log so that tests can check what it holds.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string { b.mu.Lock(); defer b.mu.Unlock(); return b.buf.String() }

type env struct {
	svc     *Service
	applier *statetest.Applier
	clock   *clock
	logs    *syncBuffer
	addr    string
	caDER   []byte
}

// newEnv builds the service over a real store and keyring, creates the CA
// and serves gRPC on a loopback port until the test ends.
func newEnv(t *testing.T) *env { t.Helper(); return newEnvWith(t, nil, nil) }

// newEnvWith is newEnv with a config change and a leadership (nil: this
// node always leads); it also runs the service's leader loop.
func newEnvWith(t *testing.T, mut func(*Config), lead Leadership) *env {
	t.Helper()
	return newEnvDeps(t, mut, lead, nil)
}

// newEnvDeps is newEnvWith with a change to the service's collaborators.
func newEnvDeps(t *testing.T, mut func(*Config), lead Leadership, deps func(*Deps)) *env {
	t.Helper()
	reg := state.NewRegistry()
	reg.MustRegister(Domain())
	store, err := state.NewStore(reg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	key, _ := keyring.NewKey()
	kr, err := keyring.Parse([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	// Certificates are checked against the real clock by TLS, so the
	// test clock starts now.
	clk := &clock{t: time.Now().UTC()}
	logs := &syncBuffer{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{NodeID: "n1", Advertise: ln.Addr().String()}
	if mut != nil {
		mut(&cfg)
	}
	applier := &statetest.Applier{Store: store, Now: clk.now}
	d := Deps{Applier: applier,
		Store: store, Keyring: kr, Logger: slog.New(slog.NewTextHandler(logs, nil)), Now: clk.now, Leadership: lead}
	if deps != nil {
		deps(&d)
	}
	svc, err := New(cfg, d)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if created, err := svc.EnsureCA(ctx); err != nil || !created {
		t.Fatalf("EnsureCA: %v, %v", created, err)
	}
	if created, err := svc.EnsureCA(ctx); err != nil || created {
		t.Fatalf("second EnsureCA: %v, %v", created, err)
	}
	served := make(chan error, 1)
	ran := make(chan struct{})
	go func() { served <- svc.Serve(ctx, ln, time.Second) }()
	go func() { defer close(ran); svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
		<-ran
	})
	a, err := svc.authority()
	if err != nil {
		t.Fatal(err)
	}
	return &env{svc: svc, applier: applier, clock: clk, logs: logs, addr: ln.Addr().String(), caDER: a.der}
}

func (e *env) token(t *testing.T, req CreateJoinToken) CreatedJoinToken {
	t.Helper()
	tok, err := e.svc.CreateJoinToken(context.Background(), "admin", req)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// dial is a minimal agent: it trusts the agent CA and presents cert when
// given one.
func (e *env) dial(t *testing.T, cert *tls.Certificate) agentv1.AgentServiceClient {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(mustParse(e.caDER))
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	conn, err := grpc.NewClient("passthrough:///"+e.addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return agentv1.NewAgentServiceClient(conn)
}

func newCSR(t testing.TB) (*ecdsa.PrivateKey, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "agent"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return key, der
}

// enroll enrols a new agent and returns the response and its TLS identity.
func (e *env) enroll(t *testing.T, token, name string) (*agentv1.EnrollResponse, *tls.Certificate, error) {
	t.Helper()
	key, csr := newCSR(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := e.dial(t, nil).Enroll(ctx, &agentv1.EnrollRequest{Token: token, CsrDer: csr, Name: name,
		Tags: map[string]string{"role": "web"}, Version: "0.1.0", Facts: &agentv1.Facts{Hostname: "web01.example.com", Os: "linux"}})
	if err != nil {
		return nil, nil, err
	}
	return res, &tls.Certificate{Certificate: [][]byte{res.CertificateDer}, PrivateKey: key}, nil
}

func wantCode(t *testing.T, err error, code codes.Code) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("error = %v, want code %s", err, code)
	}
}

// connect opens Connect, sends a heartbeat where a hello belongs, and
// returns the status of its first receive: InvalidArgument for a known
// agent, the refusal for anyone else.
func connect(t *testing.T, c agentv1.AgentServiceClient) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := c.Connect(ctx)
	if err != nil {
		return err
	}
	_ = stream.Send(&agentv1.AgentMessage{Msg: &agentv1.AgentMessage_Heartbeat{Heartbeat: &agentv1.Heartbeat{}}})
	_, err = stream.Recv()
	return err
}

func TestEnrolWithAValidTokenIssuesAClientCertificate(t *testing.T) {
	e := newEnv(t)
	tok := e.token(t, CreateJoinToken{Tags: map[string]string{"env": "prod", "role": "db"}})
	if !strings.HasPrefix(tok.CAPin, "sha256:") || !strings.Contains(tok.JoinCommand, "--token "+tok.Token) ||
		!strings.Contains(tok.JoinCommand, "--controller "+e.addr) || !strings.Contains(tok.JoinCommand, "--ca-pin "+tok.CAPin) {
		t.Fatalf("created token = %+v", tok)
	}
	res, cert, err := e.enroll(t, tok.Token, "Web 01!")
	if err != nil {
		t.Fatal(err)
	}
	if !validAgentID(res.AgentId) || res.Name != "web-01" || !bytes.Equal(res.CaDer, e.caDER) {
		t.Fatalf("response = id %q name %q", res.AgentId, res.Name)
	}
	leaf := mustParse(res.CertificateDer)
	if id, ok := agentIDFromCert(leaf); !ok || id != res.AgentId {
		t.Fatalf("certificate names %q", id)
	}
	if d := leaf.NotAfter.Sub(e.clock.now()); d < 29*24*time.Hour || d > 31*24*time.Hour || !leaf.NotAfter.Equal(res.NotAfter.AsTime()) {
		t.Fatalf("certificate lasts %s", d)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: e.svc.ca.pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("certificate does not verify as a client certificate: %v", err)
	}
	a, err := e.svc.GetAgent(context.Background(), res.AgentId)
	if err != nil {
		t.Fatal(err)
	}
	if a.Tags["env"] != "prod" || a.Tags["role"] != "db" || a.Facts.Hostname != "web01.example.com" || a.Status != StatusEnrolled ||
		a.CertSerial != leaf.SerialNumber.Text(16) || a.JoinTokenID != tok.ID {
		t.Fatalf("agent row = %+v (the token's tags must win over the agent's)", a)
	}
	// A second agent asking for the same name gets a suffix, and one
	// asking for none is named for its host.
	tok2 := e.token(t, CreateJoinToken{MaxUses: 3})
	res2, _, err := e.enroll(t, tok2.Token, "web-01")
	if err != nil || res2.Name != "web-01-2" {
		t.Fatalf("second agent: %v, %v", res2, err)
	}
	res3, _, err := e.enroll(t, tok2.Token, "")
	if err != nil || res3.Name != "web01-example-com" {
		t.Fatalf("hostname-named agent: %v, %v", res3, err)
	}
	// With its certificate the agent passes the interceptor and reaches
	// Connect, which wants a hello first.
	wantCode(t, connect(t, e.dial(t, cert)), codes.InvalidArgument)
	if strings.Contains(e.logs.String(), tok.Token[len(tokenPrefix)+tokenIDLen+1:]) {
		t.Fatal("the log holds a join-token secret")
	}
	if h := e.svc.HealthSection(context.Background()).(agentCounts); h.Enrolled != 3 || h.Revoked != 0 {
		t.Fatalf("health = %+v", h)
	}
}

func TestEnrolRefusesBadTokensWithOneMessage(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	expired := e.token(t, CreateJoinToken{TTL: "1m"})
	used := e.token(t, CreateJoinToken{})
	revoked := e.token(t, CreateJoinToken{})
	if _, err := e.svc.RevokeJoinToken(ctx, revoked.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.enroll(t, used.Token, "first"); err != nil {
		t.Fatal(err)
	}
	e.clock.advance(2 * time.Minute)
	_, secret, _ := parseJoinToken(used.Token)
	cases := []struct{ name, token, reason string }{
		{"an expired token is refused", expired.Token, "token expired"},
		{"an exhausted token is refused", used.Token, "token used up"},
		{"a revoked token is refused", revoked.Token, "token revoked"},
		{"an unknown token is refused", formatJoinToken("0123456789abcdef", secret), "unknown token"},
		{"a token with a wrong secret is refused", formatJoinToken(used.ID, strings.Repeat("0", 64)), "wrong secret"},
		{"a malformed token is refused", "not-a-token", "malformed token"},
	}
	var msg string
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := e.enroll(t, tc.token, "x")
			wantCode(t, err, codes.Unauthenticated)
			if got := status.Convert(err).Message(); msg == "" {
				msg = got
			} else if got != msg {
				t.Fatalf("message %q differs from %q: tokens could be probed", got, msg)
			}
			if !strings.Contains(e.logs.String(), tc.reason) {
				t.Fatalf("the log does not say %q", tc.reason)
			}
		})
	}
	list, err := e.svc.ListJoinTokens(ctx)
	if err != nil || len(list.Items) != 3 {
		t.Fatalf("list: %+v, %v", list, err)
	}
	for _, it := range list.Items {
		if it.ID == used.ID && it.Uses != 1 {
			t.Fatalf("used token counts %d uses", it.Uses)
		}
	}
}

func TestConcurrentEnrolmentsNeverExceedMaxUses(t *testing.T) {
	e := newEnv(t)
	tok := e.token(t, CreateJoinToken{MaxUses: 3})
	var ok, refused atomic.Int32
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, err := e.enroll(t, tok.Token, "race")
			switch status.Code(err) {
			case codes.OK:
				ok.Add(1)
			case codes.Unauthenticated:
				refused.Add(1)
			default:
				t.Errorf("enrol: %v", err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 3 || refused.Load() != 7 {
		t.Fatalf("%d enrolled, %d refused; want 3 and 7", ok.Load(), refused.Load())
	}
	page, err := e.svc.ListAgents(context.Background(), "", 100)
	if err != nil || len(page.Items) != 3 {
		t.Fatalf("agents: %d, %v", len(page.Items), err)
	}
}

func TestEnrolRefusesBadCSRs(t *testing.T) {
	e := newEnv(t)
	tok := e.token(t, CreateJoinToken{MaxUses: 10})
	_, good := newCSR(t)
	tampered := bytes.Clone(good)
	tampered[len(tampered)-5] ^= 0xff // inside the signature
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaCSR, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, rsaKey)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p384CSR, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, p384)
	cases := []struct {
		name string
		csr  []byte
	}{
		{"a CSR with a bad signature is refused", tampered},
		{"an RSA CSR is refused", rsaCSR},
		{"a P-384 CSR is refused", p384CSR},
		{"garbage is refused", []byte("not a csr")},
		{"an empty CSR is refused", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.dial(t, nil).Enroll(context.Background(), &agentv1.EnrollRequest{Token: tok.Token, CsrDer: tc.csr})
			wantCode(t, err, codes.InvalidArgument)
			if !strings.Contains(status.Convert(err).Message(), "csr_der") {
				t.Fatalf("message %q does not name csr_der", status.Convert(err).Message())
			}
		})
	}
	t.Run("an Ed25519 CSR is accepted", func(t *testing.T) {
		_, key, _ := ed25519.GenerateKey(rand.Reader)
		csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
		if _, err := e.dial(t, nil).Enroll(context.Background(), &agentv1.EnrollRequest{Token: tok.Token, CsrDer: csr}); err != nil {
			t.Fatal(err)
		}
	})
	list, _ := e.svc.ListJoinTokens(context.Background())
	if list.Items[0].Uses != 1 {
		t.Fatalf("refused CSRs used the token: %d uses", list.Items[0].Uses)
	}
}

func TestConnectRefusesPeersWithoutAValidAgentCertificate(t *testing.T) {
	e := newEnv(t)
	t.Run("no client certificate is unauthenticated", func(t *testing.T) {
		wantCode(t, connect(t, e.dial(t, nil)), codes.Unauthenticated)
	})
	t.Run("a certificate from another CA is refused", func(t *testing.T) {
		other := otherCACert(t)
		err := connect(t, e.dial(t, other))
		if c := status.Code(err); c != codes.Unavailable && c != codes.Unauthenticated {
			t.Fatalf("error = %v, want refusal at the TLS layer or Unauthenticated", err)
		}
	})
	t.Run("a revoked agent's certificate is refused", func(t *testing.T) {
		tok := e.token(t, CreateJoinToken{})
		res, cert, err := e.enroll(t, tok.Token, "soon-gone")
		if err != nil {
			t.Fatal(err)
		}
		c := e.dial(t, cert)
		wantCode(t, connect(t, c), codes.InvalidArgument)
		if _, err := e.svc.RevokeAgent(context.Background(), res.AgentId); err != nil {
			t.Fatal(err)
		}
		// The same connection, already handshaken, is refused at once.
		wantCode(t, connect(t, c), codes.PermissionDenied)
		wantCode(t, connect(t, e.dial(t, cert)), codes.PermissionDenied)
		if h := e.svc.HealthSection(context.Background()).(agentCounts); h.Revoked != 1 {
			t.Fatalf("health = %+v", h)
		}
	})
	t.Run("FetchPlugin without a certificate is unauthenticated", func(t *testing.T) {
		stream, err := e.dial(t, nil).FetchPlugin(context.Background(), &agentv1.FetchPluginRequest{})
		if err == nil {
			_, err = stream.Recv()
		}
		wantCode(t, err, codes.Unauthenticated)
	})
}

// otherCACert is a client certificate with an agent URI from a CA the
// controller never trusted.
func otherCACert(t *testing.T) *tls.Certificate {
	t.Helper()
	key, _ := keyring.NewKey()
	kr, _ := keyring.Parse([]byte(key))
	row, err := newCARow(kr, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	a, err := openCA(&row, kr)
	if err != nil {
		t.Fatal(err)
	}
	agentKey, csrDER := newCSR(t)
	csr, _ := x509.ParseCertificateRequest(csrDER)
	leaf, err := a.signAgentCert("agt_0123456789abcdef", csr, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: agentKey}
}

func TestJoinTokenRequestsAreValidated(t *testing.T) {
	e := newEnv(t)
	_, err := e.svc.CreateJoinToken(context.Background(), "admin", CreateJoinToken{TTL: "90d", MaxUses: 1001,
		Tags: map[string]string{"": "x", "ok": strings.Repeat("v", 300)}})
	p, ok := problem.As(err)
	if !ok || p.Kind != problem.KindInvalid {
		t.Fatalf("error = %v", err)
	}
	var fields []string
	for _, d := range p.Details {
		fields = append(fields, d.Field)
	}
	want := []string{"ttl", "max_uses", `tags[""]`, `tags["ok"]`}
	if strings.Join(fields, ",") != strings.Join(want, ",") {
		t.Fatalf("fields = %v, want %v (every problem at once)", fields, want)
	}
	if _, err := e.svc.RevokeJoinToken(context.Background(), "nope"); !problem.Is(err, problem.KindNotFound) {
		t.Fatalf("revoke unknown: %v", err)
	}
}
