package credentials

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/opsconductor/opsconductor/controller/history"
	"github.com/opsconductor/opsconductor/controller/history/embedded"
	"github.com/opsconductor/opsconductor/controller/identity"
	"github.com/opsconductor/opsconductor/controller/identity/password"
	"github.com/opsconductor/opsconductor/controller/keyring"
	"github.com/opsconductor/opsconductor/controller/state"
	"github.com/opsconductor/opsconductor/controller/state/statetest"
)

const adminPassword = "violet-Harbour-lantern-42"

// fixture is the credentials service with everything real around it: a
// state store with the keyring, identity and credentials domains, the
// replicated keyring over a root key, and an embedded history store.
type fixture struct {
	svc     *Service
	kr      *keyring.Service
	root    *keyring.Keyring
	store   *state.Store
	applier *statetest.Applier
	ident   *identity.Service
	hist    *embedded.Store
	admin   *identity.Principal
}

var testHasher = sync.OnceValues(func() (*password.Hasher, error) {
	return password.NewHasher(password.DefaultParams, 4)
})

func newFixture(t testing.TB) *fixture {
	t.Helper()
	ctx := context.Background()
	store := statetest.NewStore(t, keyring.Domain(), identity.Domain(), Domain())
	ap := &statetest.Applier{Store: store}
	key, err := keyring.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	root, err := keyring.Parse([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	kr, err := keyring.New(keyring.Deps{Root: root, Applier: ap, Store: store, Logger: log, IsLeader: func() bool { return true }})
	if err != nil {
		t.Fatal(err)
	}
	hasher, err := testHasher()
	if err != nil {
		t.Fatal(err)
	}
	ident, err := identity.New(identity.Config{}, identity.Deps{Applier: ap, Store: store, Keyring: kr, Hasher: hasher, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ident.Bootstrap(ctx, adminPassword, false); err != nil {
		t.Fatal(err)
	}
	if err := ident.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	hist, err := embedded.Open(filepath.Join(t.TempDir(), "history.db"), embedded.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	writer := history.NewWriter(hist, history.WriterConfig{Logger: log})
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		writer.Close(cctx)
		hist.Close()
	})
	svc, err := New(Deps{Applier: ap, Store: store, Sealer: kr, History: writer, IsLeader: func() bool { return true }, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	kr.Register("credentials", svc)
	f := &fixture{svc: svc, kr: kr, root: root, store: store, applier: ap, ident: ident, hist: hist}
	f.admin = f.login(t, "admin", adminPassword)
	return f
}

func (f *fixture) login(t testing.TB, user, pw string) *identity.Principal {
	t.Helper()
	ctx := context.Background()
	tok, err := f.ident.Login(ctx, identity.LoginRequest{Username: user, Password: pw})
	if err != nil {
		t.Fatalf("login %s: %v", user, err)
	}
	p, err := f.ident.Authenticate(ctx, tok.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// user creates a user with bindings and returns them logged in.
func (f *fixture) user(t testing.TB, name string, roles ...identity.Binding) *identity.Principal {
	t.Helper()
	const pw = "quiet-Meadow-copper-77"
	if _, _, err := f.ident.CreateUser(context.Background(), f.admin, identity.CreateUser{Username: name, Roles: roles, Password: pw}); err != nil {
		t.Fatal(err)
	}
	return f.login(t, name, pw)
}

func (f *fixture) create(t testing.TB, in Input) Credential {
	t.Helper()
	c, err := f.svc.Create(context.Background(), f.admin, in)
	if err != nil {
		t.Fatalf("create %s: %v", in.Name, err)
	}
	return c
}

// testSSHKey returns a fresh ed25519 key in OpenSSH form, encrypted when
// passphrase is set, and its fingerprint.
func testSSHKey(t testing.TB, passphrase string) (string, string) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var block *pem.Block
	if passphrase != "" {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(priv, "test", []byte(passphrase))
	} else {
		block, err = ssh.MarshalPrivateKey(priv, "test")
	}
	if err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(block)), ssh.FingerprintSHA256(sp)
}

// testCertificate returns a self-signed certificate and its key in PEM.
func testCertificate(t testing.TB, cn string) (certPEM, keyPEM string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))
}
