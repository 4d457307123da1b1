package gateway

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"testing"

	"github.com/opsconductor/opsconductor/controller/identity"
	"github.com/opsconductor/opsconductor/controller/identity/password"
	"github.com/opsconductor/opsconductor/controller/keyring"
	"github.com/opsconductor/opsconductor/controller/state"
	"github.com/opsconductor/opsconductor/controller/state/statetest"
)

// headerAnonymous marks a test request that must go out without the
// fixture's admin token.
const headerAnonymous = "X-Test-Anonymous"

const testAdminPassword = "violet-Harbour-lantern-42"

// testIdentity is a real identity service over an in-memory state store,
// with an admin already logged in.
type testIdentity struct {
	svc        *identity.Service
	store      *state.Store
	adminToken string
}

// authorize gives req the admin's bearer token unless it carries its own
// Authorization or asks to stay anonymous.
func (ti *testIdentity) authorize(req *http.Request) {
	if req.Header.Get(headerAnonymous) != "" {
		req.Header.Del(headerAnonymous)
		return
	}
	if req.Header.Get("Authorization") == "" {
		req.Header.Set("Authorization", "Bearer "+ti.adminToken)
	}
}

var testHasher = sync.OnceValues(func() (*password.Hasher, error) {
	return password.NewHasher(password.DefaultParams, 4)
})

// newTestIdentity builds a fresh identity domain with a logged-in admin.
// argon2id at production cost makes this take a few hundred milliseconds,
// so fixtures share one (sharedIdentity) unless a test changes identity.
func newTestIdentity(t testing.TB) *testIdentity {
	t.Helper()
	reg := state.NewRegistry()
	reg.MustRegister(identity.Domain())
	store, err := state.NewStore(reg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	key, _ := keyring.NewKey()
	kr, err := keyring.Parse([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	hasher, err := testHasher()
	if err != nil {
		t.Fatal(err)
	}
	svc, err := identity.New(identity.Config{}, identity.Deps{Applier: &statetest.Applier{Store: store}, Store: store, Keyring: kr,
		Hasher: hasher, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := svc.Bootstrap(ctx, testAdminPassword, false); err != nil {
		t.Fatal(err)
	}
	if err := svc.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	tok, err := svc.Login(ctx, identity.LoginRequest{Username: "admin", Password: testAdminPassword})
	if err != nil {
		t.Fatal(err)
	}
	return &testIdentity{svc: svc, store: store, adminToken: tok.AccessToken}
}

var (
	sharedOnce sync.Once
	shared     *testIdentity
)

func sharedIdentity(t testing.TB) *testIdentity {
	sharedOnce.Do(func() { shared = newTestIdentity(t) })
	if shared == nil {
		t.Fatal("the shared test identity failed to build")
	}
	return shared
}
