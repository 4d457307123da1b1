// Package identitytest gives other domains' tests real principals: an
// identity service over their state store, a bootstrapped admin, and
// users holding exactly the permissions a test names.
package identitytest

import (
	"context"
	"log/slog"
	"sync"
	"testing"

	"github.com/opsconductor/opsconductor/controller/identity"
	"github.com/opsconductor/opsconductor/controller/identity/password"
	"github.com/opsconductor/opsconductor/controller/keyring"
	"github.com/opsconductor/opsconductor/controller/state"
)

// AdminPassword is the bootstrap admin's password.
const AdminPassword = "violet-Harbour-lantern-42"

// hasher is shared by every test of a package: building one costs more
// than the tests that use it.
var hasher = sync.OnceValues(func() (*password.Hasher, error) {
	return password.NewHasher(password.DefaultParams, 4)
})

// Env is an identity service and its admin.
type Env struct {
	Service *identity.Service
	Admin   *identity.Principal
}

// New starts an identity service over store (which must have
// identity.Domain() registered) and logs its admin in.
func New(t testing.TB, store *state.Store, applier identity.Applier, kr *keyring.Keyring) *Env {
	t.Helper()
	h, err := hasher()
	if err != nil {
		t.Fatal(err)
	}
	svc, err := identity.New(identity.Config{}, identity.Deps{Applier: applier, Store: store, Keyring: kr, Hasher: h,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := svc.Bootstrap(ctx, AdminPassword, false); err != nil {
		t.Fatal(err)
	}
	if err := svc.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	e := &Env{Service: svc}
	e.Admin = e.Login(t, "admin", AdminPassword)
	return e
}

// Login returns the principal of a password login.
func (e *Env) Login(t testing.TB, user, pw string) *identity.Principal {
	t.Helper()
	tok, err := e.Service.Login(context.Background(), identity.LoginRequest{Username: user, Password: pw})
	if err != nil {
		t.Fatalf("login %s: %v", user, err)
	}
	p, err := e.Service.Authenticate(context.Background(), tok.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// User creates a user holding only perms (through a role of its own) and
// returns its principal.
func (e *Env) User(t testing.TB, name string, perms ...identity.Permission) *identity.Principal {
	t.Helper()
	ctx := context.Background()
	role := name + "-role"
	if _, err := e.Service.PutRole(ctx, e.Admin, identity.Role{Name: role, Permissions: perms}, true); err != nil {
		t.Fatal(err)
	}
	f := false
	pw := name + "-Tangerine-Pylon-7"
	if _, _, err := e.Service.CreateUser(ctx, e.Admin, identity.CreateUser{Username: name, Password: pw,
		Roles: []identity.Binding{{Role: role}}, MustChangePassword: &f}); err != nil {
		t.Fatalf("create user %s: %v", name, err)
	}
	return e.Login(t, name, pw)
}
