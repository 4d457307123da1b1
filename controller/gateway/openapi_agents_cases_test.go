package gateway

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/opsconductor/opsconductor/controller/agentrpc"
	"github.com/opsconductor/opsconductor/controller/history"
	"github.com/opsconductor/opsconductor/controller/keyring"
	"github.com/opsconductor/opsconductor/controller/problem"
	"github.com/opsconductor/opsconductor/controller/state"
	"github.com/opsconductor/opsconductor/controller/state/statetest"
	"github.com/opsconductor/opsconductor/plugins/builtin"
	"github.com/opsconductor/opsconductor/plugins/sdk"
	agentv1 "github.com/opsconductor/opsconductor/proto/agent/v1"
)

// testAgents is a real agentrpc service over its own in-memory store,
// with the agent CA already made.
type testAgents struct {
	svc *agentrpc.Service
}

var (
	sharedAgentsOnce sync.Once
	sharedAgentsSvc  *testAgents
)

func sharedAgents(t testing.TB) *testAgents {
	sharedAgentsOnce.Do(func() { sharedAgentsSvc = newTestAgents(t) })
	if sharedAgentsSvc == nil {
		t.Fatal("the shared agents service failed to build")
	}
	return sharedAgentsSvc
}

func newTestAgents(t testing.TB) *testAgents {
	t.Helper()
	return newTestAgentsWith(t, nil)
}

func newTestAgentsWith(t testing.TB, deps func(*agentrpc.Deps)) *testAgents {
	t.Helper()
	reg := state.NewRegistry()
	reg.MustRegister(agentrpc.Domain())
	store, err := state.NewStore(reg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	key, _ := keyring.NewKey()
	kr, err := keyring.Parse([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	d := agentrpc.Deps{Applier: &statetest.Applier{Store: store}, Store: store, Keyring: kr, Logger: slog.New(slog.DiscardHandler),
		Steps: builtinSteps{}}
	if deps != nil {
		deps(&d)
	}
	svc, err := agentrpc.New(agentrpc.Config{NodeID: "n1", Advertise: "10.0.0.1:3001"}, d)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.EnsureCA(context.Background()); err != nil {
		t.Fatal(err)
	}
	return &testAgents{svc: svc}
}

// builtinSteps is the step catalog of the built-in steps alone (the
// server adds the plugin registry).
type builtinSteps struct{}

func (builtinSteps) Describe(_ context.Context, uses string) (sdk.Description, error) {
	name, _, _ := strings.Cut(uses, "@")
	st, ok := builtin.Lookup(name)
	if !ok {
		return sdk.Description{}, problem.Invalid("uses", "%q is neither a built-in step nor a registered plugin", uses)
	}
	return st.Describe(), nil
}

// caseJoinToken makes a join token in the fixture's agents service.
func caseJoinToken(t *testing.T, f *fixture) agentrpc.CreatedJoinToken {
	t.Helper()
	tok, err := f.srv.agents.CreateJoinToken(context.Background(), "admin", agentrpc.CreateJoinToken{})
	if err != nil {
		t.Fatalf("create join token: %v", err)
	}
	return tok
}

// caseEnroll enrols an agent through the service, as Enroll would.
func caseEnroll(t *testing.T, f *fixture) agentrpc.Agent {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	res, err := f.srv.agents.Enroll(context.Background(), agentrpc.EnrollRequest{Token: caseJoinToken(t, f).Token, CSRDER: csr,
		Name: "case-agent", Facts: agentrpc.Facts{Hostname: "case-host", OS: "linux"}}, "test")
	if err != nil {
		t.Fatalf("enroll: %v", err)
	}
	return res.Agent
}

// noHistory takes no output (the cases send none) and holds none.
type noHistory struct{}

func (noHistory) Submit(context.Context, []history.Record) (*history.Ticket, error) {
	return nil, errors.New("no history in these tests")
}

func (noHistory) Read(context.Context, string, uint64, uint64, int) ([]history.Record, error) {
	return nil, nil
}

func (noHistory) Tail(context.Context, string, int) ([]history.Record, error) { return nil, nil }

func (noHistory) Barrier() *history.Ticket { return nil }

// caseLiveAgent gives the fixture an agents service of its own, serving
// gRPC on a loopback port, with one agent connected over mTLS that reads
// (and ignores) what it is sent. It returns the agent's ID.
func caseLiveAgent(t *testing.T, f *fixture) string {
	t.Helper()
	return caseLiveAgentWith(t, f)
}

// caseLiveAgentWith is caseLiveAgent with the step plugins the agent
// reports in its hello.
func caseLiveAgentWith(t *testing.T, f *fixture, plugins ...*agentv1.PluginInfo) string {
	t.Helper()
	ta := newTestAgentsWith(t, func(d *agentrpc.Deps) { d.History, d.HistoryReader = noHistory{}, noHistory{} })
	f.srv.agents = ta.svc
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := ta.svc.CreateJoinToken(context.Background(), "admin", agentrpc.CreateJoinToken{})
	if err != nil {
		t.Fatal(err)
	}
	enr, err := ta.svc.Enroll(context.Background(), agentrpc.EnrollRequest{Token: tok.Token, CSRDER: csr, Name: "live"}, "test")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- ta.svc.Serve(ctx, ln, time.Second) }()
	ca, err := x509.ParseCertificate(enr.CADER)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	conn, err := grpc.NewClient("passthrough:///"+ln.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{
		RootCAs: pool, MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{{Certificate: [][]byte{enr.CertDER}, PrivateKey: key}}})))
	if err != nil {
		t.Fatal(err)
	}
	read := make(chan struct{})
	t.Cleanup(func() {
		cancel()
		conn.Close()
		<-read
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	stream, err := agentv1.NewAgentServiceClient(conn).Connect(ctx)
	if err != nil {
		close(read)
		t.Fatal(err)
	}
	if err := stream.Send(&agentv1.AgentMessage{Msg: &agentv1.AgentMessage_Hello{Hello: &agentv1.Hello{AgentId: enr.Agent.ID, Plugins: plugins}}}); err != nil {
		close(read)
		t.Fatal(err)
	}
	if m, err := stream.Recv(); err != nil || m.GetWelcome() == nil {
		close(read)
		t.Fatalf("no welcome: %v, %v", m, err)
	}
	go func() {
		defer close(read)
		for {
			if _, err := stream.Recv(); err != nil {
				return
			}
		}
	}()
	return enr.Agent.ID
}

// caseAttempt starts a command on a live agent and returns the attempt.
func caseAttempt(t *testing.T, f *fixture) agentrpc.Attempt {
	t.Helper()
	id := caseLiveAgent(t, f)
	a, err := f.srv.agents.RunCommand(context.Background(), id, agentrpc.CommandSpec{Shell: "echo hi"}, "admin")
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func agentCases() []routeCase {
	const js = "application/json"
	newJoinToken := func(t *testing.T, f *fixture) prepared { return caseVars("id", caseJoinToken(t, f).ID) }
	newAgent := func(t *testing.T, f *fixture) prepared { return caseVars("id", caseEnroll(t, f).ID) }
	return []routeCase{
		{name: "a join token is created with a ready join command", method: "POST", target: "/api/v1/agents/join-tokens",
			contentType: js, body: `{"ttl":"2h","max_uses":3,"tags":{"env":"prod"}}`, want: 201,
			check: func(t *testing.T, rec *responseUnderTest) {
				var got agentrpc.CreatedJoinToken
				if err := json.Unmarshal(rec.body, &got); err != nil {
					t.Fatal(err)
				}
				if got.MaxUses != 3 || got.ExpiresAt.Sub(got.CreatedAt) != 2*time.Hour || !strings.HasPrefix(got.Token, "ocj_") ||
					!strings.Contains(got.JoinCommand, "--controller 10.0.0.1:3001 --token "+got.Token+" --ca-pin "+got.CAPin) ||
					rec.header.Get("Cache-Control") != "no-store" {
					t.Fatalf("created = %+v", got)
				}
			}},
		{name: "a join token with defaults is created", method: "POST", target: "/api/v1/agents/join-tokens",
			contentType: js, body: `{}`, want: 201},
		{name: "a join token with bad limits is a 400 naming every field", method: "POST", target: "/api/v1/agents/join-tokens",
			contentType: js, body: `{"ttl":"999h","max_uses":5000}`, want: 400, check: wantError("invalid_input", "ttl")},
		{name: "join tokens are listed without secrets", method: "GET", target: "/api/v1/agents/join-tokens", want: 200,
			prepare: newJoinToken,
			check: func(t *testing.T, rec *responseUnderTest) {
				if strings.Contains(string(rec.body), "secret") || strings.Contains(string(rec.body), "ocj_") {
					t.Fatalf("the list shows secrets: %s", rec.body)
				}
			}},
		{name: "a join token is revoked", method: "DELETE", target: "/api/v1/agents/join-tokens/$id", want: 200, prepare: newJoinToken},
		{name: "revoking an unknown join token is a 404", method: "DELETE", target: "/api/v1/agents/join-tokens/nope", want: 404},

		{name: "agents are listed a page at a time", method: "GET", target: "/api/v1/agents?limit=1", want: 200,
			prepare: func(t *testing.T, f *fixture) prepared { caseEnroll(t, f); caseEnroll(t, f); return prepared{} },
			check: func(t *testing.T, rec *responseUnderTest) {
				var page agentrpc.AgentPage
				if err := json.Unmarshal(rec.body, &page); err != nil || len(page.Items) != 1 || page.Next == "" {
					t.Fatalf("page = %s", rec.body)
				}
			}},
		{name: "a bad agent page size is a 400", method: "GET", target: "/api/v1/agents?limit=0", want: 400},
		{name: "an agent is read", method: "GET", target: "/api/v1/agents/$id", want: 200, prepare: newAgent},
		{name: "an unknown agent is a 404", method: "GET", target: "/api/v1/agents/agt_0000000000000000", want: 404},
		{name: "an agent is revoked", method: "DELETE", target: "/api/v1/agents/$id", want: 200, prepare: newAgent,
			check: func(t *testing.T, rec *responseUnderTest) {
				var a agentrpc.Agent
				if err := json.Unmarshal(rec.body, &a); err != nil || !a.Revoked || a.RevokedAt == nil {
					t.Fatalf("agent = %s", rec.body)
				}
			}},
		{name: "revoking an unknown agent is a 404", method: "DELETE", target: "/api/v1/agents/agt_0000000000000000", want: 404},
		{name: "an agent is drained", method: "POST", target: "/api/v1/agents/$id/drain", want: 200, prepare: newAgent,
			check: func(t *testing.T, rec *responseUnderTest) {
				var a agentrpc.Agent
				if err := json.Unmarshal(rec.body, &a); err != nil || !a.Draining {
					t.Fatalf("agent = %s", rec.body)
				}
			}},
		{name: "an agent is undrained", method: "POST", target: "/api/v1/agents/$id/undrain", want: 200,
			prepare: func(t *testing.T, f *fixture) prepared {
				a := caseEnroll(t, f)
				if _, err := f.srv.agents.DrainAgent(context.Background(), a.ID, true); err != nil {
					t.Fatal(err)
				}
				return caseVars("id", a.ID)
			},
			check: func(t *testing.T, rec *responseUnderTest) {
				var a agentrpc.Agent
				if err := json.Unmarshal(rec.body, &a); err != nil || a.Draining {
					t.Fatalf("agent = %s", rec.body)
				}
			}},
		{name: "draining an unknown agent is a 404", method: "POST", target: "/api/v1/agents/agt_0000000000000000/drain", want: 404},
		{name: "undraining an unknown agent is a 404", method: "POST", target: "/api/v1/agents/agt_0000000000000000/undrain", want: 404},
		{name: "a command is sent to a live agent", method: "POST", target: "/api/v1/agents/$id/commands", contentType: js,
			body: `{"argv":["echo","hi"],"env":{"A":"1"},"timeout":"30s"}`, want: 202,
			prepare: func(t *testing.T, f *fixture) prepared { return caseVars("id", caseLiveAgent(t, f)) },
			check: func(t *testing.T, rec *responseUnderTest) {
				var a agentrpc.Attempt
				if err := json.Unmarshal(rec.body, &a); err != nil || a.Status != agentrpc.AttemptPending || a.Timeout != "30s" ||
					!strings.HasPrefix(a.ID, "att_") || string(a.Params) != `{"argv":["echo","hi"],"env":{"A":"1"}}` {
					t.Fatalf("attempt = %s", rec.body)
				}
			}},
		{name: "a command to an agent without a stream is a 409", method: "POST", target: "/api/v1/agents/$id/commands", contentType: js,
			body: `{"shell":"true"}`, want: 409, prepare: newAgent, check: wantError("agent_not_connected", "")},
		{name: "a command with both argv and shell is a 400", method: "POST", target: "/api/v1/agents/$id/commands", contentType: js,
			body: `{"argv":["true"],"shell":"true","timeout":"forever"}`, want: 400, prepare: newAgent, check: wantError("invalid_input", "shell")},
		{name: "a command to an unknown agent is a 404", method: "POST", target: "/api/v1/agents/agt_0000000000000000/commands", contentType: js,
			body: `{"shell":"true"}`, want: 404},
		{name: "a step is sent to a live agent", method: "POST", target: "/api/v1/agents/$id/steps", contentType: js,
			body: `{"uses":"noop@1","with":{"lines":3},"timeout":"30s"}`, want: 202,
			prepare: func(t *testing.T, f *fixture) prepared { return caseVars("id", caseLiveAgent(t, f)) },
			check: func(t *testing.T, rec *responseUnderTest) {
				var a agentrpc.Attempt
				if err := json.Unmarshal(rec.body, &a); err != nil || a.Status != agentrpc.AttemptPending || a.Kind != "noop@1" ||
					string(a.Params) != `{"lines":3}` {
					t.Fatalf("attempt = %s", rec.body)
				}
			}},
		{name: "a step whose parameters its schema refuses is a 400 naming them", method: "POST", target: "/api/v1/agents/$id/steps", contentType: js,
			body: `{"uses":"noop","with":{"lines":-1}}`, want: 400, prepare: newAgent, check: wantError("invalid_params", "params.lines")},
		{name: "an unknown step is a 400 naming uses", method: "POST", target: "/api/v1/agents/$id/steps", contentType: js,
			body: `{"uses":"nope@1"}`, want: 400, prepare: newAgent, check: wantError("invalid_input", "uses")},
		{name: "a step to an agent without a stream is a 409", method: "POST", target: "/api/v1/agents/$id/steps", contentType: js,
			body: `{"uses":"noop"}`, want: 409, prepare: newAgent, check: wantError("agent_not_connected", "")},
		{name: "a step to an unknown agent is a 404", method: "POST", target: "/api/v1/agents/agt_0000000000000000/steps", contentType: js,
			body: `{"uses":"noop"}`, want: 404},
		{name: "an attempt is read", method: "GET", target: "/api/v1/attempts/$id", want: 200,
			prepare: func(t *testing.T, f *fixture) prepared { return caseVars("id", caseAttempt(t, f).ID) }},
		{name: "an unknown attempt is a 404", method: "GET", target: "/api/v1/attempts/att_0000000000000000", want: 404},
		{name: "an attempt's log is read", method: "GET", target: "/api/v1/attempts/$id/log?after=0&limit=10", want: 200,
			prepare: func(t *testing.T, f *fixture) prepared { return caseVars("id", caseAttempt(t, f).ID) },
			check: func(t *testing.T, rec *responseUnderTest) {
				if string(rec.body) != `{"items":[],"next":0}`+"\n" && string(rec.body) != `{"items":[],"next":0}` {
					t.Fatalf("log = %q", rec.body)
				}
			}},
		{name: "a bad log cursor is a 400", method: "GET", target: "/api/v1/attempts/att_0000000000000000/log?after=x", want: 400},
		{name: "an unknown attempt's log is a 404", method: "GET", target: "/api/v1/attempts/att_0000000000000000/log", want: 404},
		{name: "an attempt is canceled", method: "POST", target: "/api/v1/attempts/$id/cancel", want: 200,
			prepare: func(t *testing.T, f *fixture) prepared { return caseVars("id", caseAttempt(t, f).ID) },
			check: func(t *testing.T, rec *responseUnderTest) {
				var a agentrpc.Attempt
				if err := json.Unmarshal(rec.body, &a); err != nil || a.CancelAt == nil {
					t.Fatalf("attempt = %s", rec.body)
				}
			}},
		{name: "canceling an unknown attempt is a 404", method: "POST", target: "/api/v1/attempts/att_0000000000000000/cancel", want: 404},
		{name: "health reports the agents section", method: "GET", target: "/health", want: 200,
			setup: func(f *fixture) {
				f.srv.sections = append(f.srv.sections, namedSection{name: "agents", fn: f.srv.agents.HealthSection})
			},
			check: func(t *testing.T, rec *responseUnderTest) {
				if !strings.Contains(string(rec.body), `"agents"`) || !strings.Contains(string(rec.body), `"connected"`) ||
					!strings.Contains(string(rec.body), `"down"`) {
					t.Fatalf("no agents section: %s", rec.body)
				}
			}},
	}
}
