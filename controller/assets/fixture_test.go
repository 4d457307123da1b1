package assets

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opsconductor/opsconductor/controller/assets/graph"
	"github.com/opsconductor/opsconductor/controller/identity"
	"github.com/opsconductor/opsconductor/controller/identity/password"
	"github.com/opsconductor/opsconductor/controller/keyring"
	"github.com/opsconductor/opsconductor/controller/problem"
	"github.com/opsconductor/opsconductor/controller/state"
	"github.com/opsconductor/opsconductor/controller/state/statetest"
)

// agentBook is an AgentDirectory over a list the test edits, standing in
// for agentrpc (whose adapter controller/server tests with real agents).
type agentBook struct {
	mu     sync.Mutex
	agents []AgentInfo
}

func (b *agentBook) Agents(context.Context) ([]AgentInfo, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]AgentInfo(nil), b.agents...), nil
}

func (b *agentBook) Agent(_ context.Context, idOrName string) (AgentInfo, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, a := range b.agents {
		if a.ID == idOrName || strings.EqualFold(a.Name, idOrName) {
			return a, nil
		}
	}
	return AgentInfo{}, problem.NotFound("agent", idOrName)
}

func (b *agentBook) add(a AgentInfo) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i := range b.agents {
		if b.agents[i].ID == a.ID {
			b.agents[i] = a
			return
		}
	}
	b.agents = append(b.agents, a)
}

const adminPassword = "violet-Harbour-lantern-42"

var testHasher = sync.OnceValues(func() (*password.Hasher, error) {
	return password.NewHasher(password.DefaultParams, 4)
})

// env is a real inventory and identity over one in-memory store.
type env struct {
	svc     *Service
	ident   *identity.Service
	store   *state.Store
	applier *statetest.Applier
	agents  *agentBook
	admin   *identity.Principal
}

func newEnv(t testing.TB) *env {
	t.Helper()
	store := statetest.NewStore(t, Domain(), graph.Domain(), identity.Domain())
	applier := &statetest.Applier{Store: store}
	key, _ := keyring.NewKey()
	kr, err := keyring.Parse([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	hasher, err := testHasher()
	if err != nil {
		t.Fatal(err)
	}
	ident, err := identity.New(identity.Config{}, identity.Deps{Applier: applier, Store: store, Keyring: kr, Hasher: hasher,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := ident.Bootstrap(ctx, adminPassword, false); err != nil {
		t.Fatal(err)
	}
	if err := ident.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	book := &agentBook{}
	book.add(AgentInfo{ID: "agt_relay", Name: "relay-1", Status: "up", Tags: map[string]string{"role": "relay"},
		Facts:      AgentFacts{Hostname: "relay-1.example.net", OS: "linux", Arch: "amd64", Addresses: []string{"10.0.0.2"}},
		EnrolledAt: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)})
	svc, err := New(Deps{Applier: applier, Store: store, Agents: book, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{svc: svc, ident: ident, store: store, applier: applier, agents: book}
	e.admin = e.login(t, "admin", adminPassword)
	return e
}

func (e *env) login(t testing.TB, user, pw string) *identity.Principal {
	t.Helper()
	tok, err := e.ident.Login(context.Background(), identity.LoginRequest{Username: user, Password: pw})
	if err != nil {
		t.Fatalf("login %s: %v", user, err)
	}
	p, err := e.ident.Authenticate(context.Background(), tok.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// user creates a user with the bindings and returns its principal.
func (e *env) user(t testing.TB, name string, roles ...identity.Binding) *identity.Principal {
	t.Helper()
	f := false
	pw := name + "-Tangerine-Pylon-7"
	if _, _, err := e.ident.CreateUser(context.Background(), e.admin, identity.CreateUser{Username: name, Password: pw, Roles: roles,
		MustChangePassword: &f}); err != nil {
		t.Fatalf("create user %s: %v", name, err)
	}
	return e.login(t, name, pw)
}

func ssh(via string) *Connection { return &Connection{Type: ConnSSH, Via: via} }

func (e *env) create(t testing.TB, name string, tags map[string]string, groups ...string) Target {
	t.Helper()
	tg, err := e.svc.Create(context.Background(), e.admin, TargetInput{Name: name, Addresses: []string{name + ".example.net"},
		Connection: ssh("relay-1"), Tags: tags, Groups: groups})
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	return tg
}

func wantProblem(t testing.TB, err error, kind problem.Kind, field string) *problem.Error {
	t.Helper()
	p, ok := problem.As(err)
	if !ok || p.Kind != kind {
		t.Fatalf("error = %v, want a %s problem", err, kind)
	}
	if field != "" && p.Field != field {
		t.Fatalf("problem field = %q, want %q (%v)", p.Field, field, p)
	}
	return p
}

func names(ts []Target) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Name
	}
	return out
}
