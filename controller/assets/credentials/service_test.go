package credentials

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/opsconductor/opsconductor/controller/history"
	"github.com/opsconductor/opsconductor/controller/identity"
	"github.com/opsconductor/opsconductor/controller/keyring"
	"github.com/opsconductor/opsconductor/controller/problem"
)

func field(err error) string {
	p, ok := problem.As(err)
	if !ok {
		return ""
	}
	if len(p.Details) > 0 {
		return p.Details[0].Field
	}
	return p.Field
}

func TestCreateChecksEachKind(t *testing.T) {
	f := newFixture(t)
	key, fp := testSSHKey(t, "")
	encKey, encFP := testSSHKey(t, "open sesame")
	cert, certKey := testCertificate(t, "svc.example.com")
	_, otherKey := testCertificate(t, "other")
	tests := []struct {
		name      string
		in        Input
		wantField string
		check     func(t *testing.T, c Credential)
	}{
		{"a password with a username is stored", Input{Name: "db", Kind: KindPassword, Username: "app", Secret: &Secret{Password: "pw-1"}}, "", nil},
		{"a password without a username is refused", Input{Name: "db2", Kind: KindPassword, Secret: &Secret{Password: "pw"}}, "username", nil},
		{"an SSH key records its fingerprint", Input{Name: "ssh", Kind: KindSSHKey, Username: "root", Secret: &Secret{PrivateKey: key}}, "",
			func(t *testing.T, c Credential) {
				if c.Fingerprint != fp || !strings.HasPrefix(c.PublicKey, "ssh-ed25519 ") {
					t.Fatalf("fingerprint %q public key %q, want %q", c.Fingerprint, c.PublicKey, fp)
				}
			}},
		{"an encrypted SSH key opens with its passphrase", Input{Name: "ssh-enc", Kind: KindSSHKey, Secret: &Secret{PrivateKey: encKey, Passphrase: "open sesame"}}, "",
			func(t *testing.T, c Credential) {
				if c.Fingerprint != encFP {
					t.Fatalf("fingerprint %q, want %q", c.Fingerprint, encFP)
				}
			}},
		{"an encrypted SSH key without its passphrase is refused", Input{Name: "x1", Kind: KindSSHKey, Secret: &Secret{PrivateKey: encKey}}, "secret.passphrase", nil},
		{"a wrong passphrase is refused", Input{Name: "x2", Kind: KindSSHKey, Secret: &Secret{PrivateKey: encKey, Passphrase: "nope"}}, "secret.passphrase", nil},
		{"a private key that does not parse is refused", Input{Name: "x3", Kind: KindSSHKey, Secret: &Secret{PrivateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n"}}, "secret.private_key", nil},
		{"a matching certificate and key record the subject", Input{Name: "tls", Kind: KindCertificate, Secret: &Secret{Certificate: cert, Key: certKey}}, "",
			func(t *testing.T, c Credential) {
				if c.Subject != "CN=svc.example.com" || !c.NotAfter.Equal(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)) || !strings.HasPrefix(c.Fingerprint, "SHA256:") {
					t.Fatalf("certificate metadata %q %v %q", c.Subject, c.NotAfter, c.Fingerprint)
				}
			}},
		{"a certificate with another key is refused", Input{Name: "x4", Kind: KindCertificate, Secret: &Secret{Certificate: cert, Key: otherKey}}, "secret.key", nil},
		{"a token is stored", Input{Name: "api", Kind: KindToken, Secret: &Secret{Token: "tok"}}, "", nil},
		{"an opaque secret is stored", Input{Name: "blob", Kind: KindSecret, Tags: map[string]string{"env": "prod"}, Secret: &Secret{Value: "v"}}, "", nil},
		{"a field another kind uses is refused", Input{Name: "x5", Kind: KindToken, Secret: &Secret{Token: "t", Password: "p"}}, "secret.password", nil},
		{"a missing secret is refused", Input{Name: "x6", Kind: KindToken}, "secret", nil},
		{"an unknown kind is refused", Input{Name: "x7", Kind: "kerberos", Secret: &Secret{Value: "v"}}, "kind", nil},
		{"a bad name is refused", Input{Name: "../etc", Kind: KindSecret, Secret: &Secret{Value: "v"}}, "name", nil},
		{"a duplicate name is refused", Input{Name: "db", Kind: KindToken, Secret: &Secret{Token: "t"}}, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := f.svc.Create(context.Background(), f.admin, tt.in)
			switch {
			case tt.name == "a duplicate name is refused":
				if p, ok := problem.As(err); !ok || p.Code != "credential_exists" {
					t.Fatalf("err = %v, want credential_exists", err)
				}
			case tt.wantField != "":
				if field(err) != tt.wantField {
					t.Fatalf("err = %v (field %q), want a problem naming %q", err, field(err), tt.wantField)
				}
				if _, gerr := f.svc.Get(context.Background(), f.admin, tt.in.Name); gerr == nil {
					t.Fatal("a refused credential was stored")
				}
			case err != nil:
				t.Fatal(err)
			case tt.check != nil:
				tt.check(t, c)
			}
		})
	}
}

func TestMetadataNeverCarriesTheSecret(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	key, _ := testSSHKey(t, "pass-phrase-xyz")
	f.create(t, Input{Name: "db", Kind: KindPassword, Username: "app", Secret: &Secret{Password: "hunter2-secret"}})
	f.create(t, Input{Name: "ssh", Kind: KindSSHKey, Secret: &Secret{PrivateKey: key, Passphrase: "pass-phrase-xyz"}})
	if _, err := f.svc.Attach(ctx, f.admin, "db", ScopeGroup, "web", "default"); err != nil {
		t.Fatal(err)
	}
	one, err := f.svc.Get(ctx, f.admin, "db")
	if err != nil {
		t.Fatal(err)
	}
	all, err := f.svc.List(ctx, f.admin, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal([]any{one, all})
	for _, secret := range []string{"hunter2-secret", "pass-phrase-xyz", "PRIVATE KEY", `"secret"`, `"ct"`} {
		if strings.Contains(string(out), secret) {
			t.Errorf("metadata contains %q: %s", secret, out)
		}
	}
	if len(one.Attachments) != 1 || one.Attachments[0].Name != "web" {
		t.Fatalf("attachments = %+v", one.Attachments)
	}
}

func TestEnvelopeIsBoundToItsCredentialAndKind(t *testing.T) {
	f := newFixture(t)
	a := f.create(t, Input{Name: "a", Kind: KindToken, Secret: &Secret{Token: "token-a"}})
	b := f.create(t, Input{Name: "b", Kind: KindToken, Secret: &Secret{Token: "token-b"}})
	ra, err := lookup(f.store.ReadTxn(), a.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, id, kind string }{
		{"under another credential's ID", b.ID, KindToken},
		{"relabelled as another kind", a.ID, KindSecret},
	} {
		t.Run("the ciphertext does not open "+tc.name, func(t *testing.T) {
			if _, err := f.kr.Open(ra.Secret, aad(tc.id, tc.kind)); !errors.Is(err, keyring.ErrOpen) {
				t.Fatalf("Open = %v, want ErrOpen", err)
			}
		})
	}
}

func TestResolveEnforcesCredentialsUseAndItsScope(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.create(t, Input{Name: "prod-db", Kind: KindPassword, Username: "app", Tags: map[string]string{"env": "prod"}, Secret: &Secret{Password: "prod-pw"}})
	f.create(t, Input{Name: "staging-db", Kind: KindPassword, Username: "app", Tags: map[string]string{"env": "staging"}, Secret: &Secret{Password: "staging-pw"}})
	f.create(t, Input{Name: "web-login", Kind: KindPassword, Username: "deploy", Secret: &Secret{Password: "web-pw"}})
	if _, err := f.svc.Attach(ctx, f.admin, "web-login", ScopeGroup, "web", "ssh"); err != nil {
		t.Fatal(err)
	}
	staging := f.user(t, "stager", identity.Binding{Role: "operator", Scope: &identity.Scope{Tags: map[string]string{"env": "staging"}}})
	webOp := f.user(t, "webop", identity.Binding{Role: "operator", Scope: &identity.Scope{Groups: []string{"web"}}})
	viewer := f.user(t, "looker", identity.Binding{Role: "viewer"})
	tests := []struct {
		name     string
		p        *identity.Principal
		cred     string
		wantCode string
		wantPW   string
	}{
		{"an unscoped admin uses any credential", f.admin, "prod-db", "", "prod-pw"},
		{"an operator bound to env=staging uses a staging credential", staging, "staging-db", "", "staging-pw"},
		{"an operator bound to env=staging cannot use a prod credential", staging, "prod-db", "credential_out_of_scope", ""},
		{"an operator bound to env=staging cannot use an untagged credential", staging, "web-login", "credential_out_of_scope", ""},
		{"an operator bound to group web uses the credential attached to web", webOp, "web-login", "", "web-pw"},
		{"an operator bound to group web cannot use an unattached credential", webOp, "staging-db", "credential_out_of_scope", ""},
		{"a viewer without credentials:use is refused", viewer, "staging-db", "forbidden", ""},
		{"an unknown credential is not found", f.admin, "nope", "credential_not_found", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := f.svc.Resolve(ctx, tt.p, tt.cred, Use{AttemptID: "att_1"})
			if tt.wantCode != "" {
				if p, ok := problem.As(err); !ok || p.Code != tt.wantCode {
					t.Fatalf("err = %v, want %s", err, tt.wantCode)
				}
				if got != nil {
					t.Fatal("a refused resolve returned secrets")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got["password"] != tt.wantPW || got["username"] == "" {
				t.Fatalf("resolved %d fields, wrong password or no username", len(got))
			}
		})
	}
	t.Run("an operator bound to env=staging lists and reads only staging credentials, and the others do not exist for it", func(t *testing.T) {
		list, err := f.svc.List(ctx, staging, Filter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 1 || list[0].Name != "staging-db" {
			t.Fatalf("listed %+v, want only staging-db", list)
		}
		if _, err := f.svc.Get(ctx, staging, "prod-db"); !problem.Is(err, problem.KindNotFound) {
			t.Fatalf("reading prod-db = %v, want not found (its existence must not leak)", err)
		}
	})
	t.Run("a viewer reads but cannot change credentials", func(t *testing.T) {
		if _, err := f.svc.Get(ctx, viewer, "prod-db"); err != nil {
			t.Fatal(err)
		}
		if err := f.svc.Delete(ctx, viewer, "prod-db"); !problem.Is(err, problem.KindForbidden) {
			t.Fatalf("a viewer's delete = %v, want forbidden", err)
		}
	})
}

func TestResolveRecordsEachUseAndBatchesLastUsed(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	c := f.create(t, Input{Name: "api", Kind: KindToken, Secret: &Secret{Token: "tok-value"}})
	for i := range 3 {
		if _, err := f.svc.Resolve(ctx, f.admin, "api", Use{RunID: "run_1", AttemptID: "att_" + string(rune('a'+i)), TargetName: "web1"}); err != nil {
			t.Fatal(err)
		}
	}
	recs, err := f.hist.Read(ctx, UseStream(c.ID), 0, history.MaxSeq, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 {
		t.Fatalf("%d use records, want 3", len(recs))
	}
	var u UseRecord
	if err := json.Unmarshal(recs[2].Data, &u); err != nil {
		t.Fatal(err)
	}
	if u.Actor != "admin" || u.RunID != "run_1" || u.AttemptID != "att_c" || u.TargetName != "web1" || recs[2].Kind != "assets.credential_use" {
		t.Fatalf("use record = %+v kind %s", u, recs[2].Kind)
	}
	if strings.Contains(string(recs[2].Data), "tok-value") {
		t.Fatal("the use record holds the secret")
	}
	if n := f.applier.Applied(cmdUsed); n != 0 {
		t.Fatalf("%d last-used writes before the flush, want 0", n)
	}
	if err := f.svc.FlushUses(ctx); err != nil {
		t.Fatal(err)
	}
	if n := f.applier.Applied(cmdUsed); n != 1 {
		t.Fatalf("%d last-used writes after one flush, want 1", n)
	}
	got, err := f.svc.Get(ctx, f.admin, "api")
	if err != nil {
		t.Fatal(err)
	}
	if got.LastUsedAt.IsZero() {
		t.Fatal("last used is not recorded")
	}
}

func TestResolveOnlyOnTheLeader(t *testing.T) {
	f := newFixture(t)
	f.create(t, Input{Name: "api", Kind: KindToken, Secret: &Secret{Token: "t"}})
	f.svc.d.IsLeader = func() bool { return false }
	if _, err := f.svc.Resolve(context.Background(), f.admin, "api", Use{}); !problem.Is(err, problem.KindUnavailable) {
		t.Fatalf("Resolve on a follower = %v, want unavailable", err)
	}
}

func TestReplaceKeepsOrReplacesTheSecret(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.create(t, Input{Name: "db", Kind: KindPassword, Username: "app", Secret: &Secret{Password: "first"}})
	resolve := func() string {
		t.Helper()
		got, err := f.svc.Resolve(ctx, f.admin, "db", Use{})
		if err != nil {
			t.Fatal(err)
		}
		return got["password"]
	}
	if _, err := f.svc.Replace(ctx, f.admin, "db", Input{Username: "app2", Description: "the app's login"}); err != nil {
		t.Fatal(err)
	}
	if pw := resolve(); pw != "first" {
		t.Fatal("a metadata-only replace changed the secret")
	}
	if _, err := f.svc.Replace(ctx, f.admin, "db", Input{Username: "app2", Secret: &Secret{Password: "second"}}); err != nil {
		t.Fatal(err)
	}
	if pw := resolve(); pw != "second" {
		t.Fatal("the replaced secret is not the one resolved")
	}
	if _, err := f.svc.Replace(ctx, f.admin, "db", Input{Kind: KindToken}); field(err) != "secret" {
		t.Fatalf("changing the kind without a secret = %v, want a problem naming secret", err)
	}
	c, err := f.svc.Get(ctx, f.admin, "db")
	if err != nil {
		t.Fatal(err)
	}
	if c.Username != "app2" || c.Kind != KindPassword || c.UpdatedAt.Before(c.CreatedAt) {
		t.Fatalf("after replace: %+v", c)
	}
}

func TestRotationLeavesEverySecretReadableAndTheOldKeyRemovable(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	// Sealed under the root key, before any KEK existed.
	f.create(t, Input{Name: "pre", Kind: KindSecret, Secret: &Secret{Value: "value-pre"}})
	k1, err := f.kr.Rotate(ctx, "admin")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"a", "b", "c"} {
		f.create(t, Input{Name: n, Kind: KindSecret, Secret: &Secret{Value: "value-" + n}})
	}
	if err := f.kr.RewrapAll(ctx); err != nil {
		t.Fatal(err)
	}
	k2, err := f.kr.Rotate(ctx, "admin")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.kr.Remove(ctx, k1.ID, "admin"); err == nil || !strings.Contains(err.Error(), "credentials: 4") {
		t.Fatalf("removing k1 while it wraps credentials = %v, want a refusal naming them", err)
	}
	if err := f.kr.RewrapAll(ctx); err != nil {
		t.Fatal(err)
	}
	counts, err := f.svc.EnvelopeCounts()
	if err != nil {
		t.Fatal(err)
	}
	if counts[k2.ID] != 4 || len(counts) != 1 {
		t.Fatalf("envelope counts after the re-wrap = %v, want all 4 under %s", counts, k2.ID)
	}
	if err := f.kr.Remove(ctx, k1.ID, "admin"); err != nil {
		t.Fatalf("removing the re-wrapped-from key: %v", err)
	}
	for _, n := range []string{"pre", "a", "b", "c"} {
		got, err := f.svc.Resolve(ctx, f.admin, n, Use{})
		if err != nil || got["value"] != "value-"+n {
			t.Fatalf("resolve %s after rotation: %v", n, err)
		}
	}
}

func TestAWrongKeyEncryptionKeyFailsLoudly(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.kr.Rotate(ctx, "admin"); err != nil {
		t.Fatal(err)
	}
	f.create(t, Input{Name: "api", Kind: KindToken, Secret: &Secret{Token: "t"}})
	key, _ := keyring.NewKey()
	wrong, err := keyring.Parse([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	kr, err := keyring.New(keyring.Deps{Root: wrong, Applier: f.applier, Store: f.store, Logger: f.svc.d.Logger, IsLeader: func() bool { return true }})
	if err != nil {
		t.Fatal(err)
	}
	if err := kr.Check(); !errors.Is(err, keyring.ErrOpen) {
		t.Fatalf("Check = %v, want ErrOpen", err)
	}
	f.svc.d.Sealer = kr
	if _, err := f.svc.Resolve(ctx, f.admin, "api", Use{}); !errors.Is(err, keyring.ErrOpen) {
		t.Fatalf("Resolve with the wrong key = %v, want ErrOpen", err)
	}
}

func TestDefaultsResolveTargetThenGroups(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.create(t, Input{Name: "group-login", Kind: KindPassword, Username: "g", Secret: &Secret{Password: "p"}})
	f.create(t, Input{Name: "host-login", Kind: KindPassword, Username: "h", Secret: &Secret{Password: "p"}})
	for _, a := range []struct{ cred, scope, name string }{{"group-login", ScopeGroup, "web"}, {"host-login", ScopeTarget, "web1"}} {
		if _, err := f.svc.Attach(ctx, f.admin, a.cred, a.scope, a.name, "ssh"); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name, target string
		groups       []string
		want         string
	}{
		{"the target's own attachment wins", "web1", []string{"web"}, "host-login"},
		{"a target without one takes its group's", "web2", []string{"db", "web"}, "group-login"},
		{"a target in no attached group has none", "db1", []string{"db"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := f.svc.Default(ctx, tt.target, tt.groups, "ssh")
			if tt.want == "" {
				if !problem.Is(err, problem.KindNotFound) {
					t.Fatalf("Default = %v, %v, want not found", c.Name, err)
				}
				return
			}
			if err != nil || c.Name != tt.want {
				t.Fatalf("Default = %q, %v, want %s", c.Name, err, tt.want)
			}
		})
	}
	if err := f.svc.Delete(ctx, f.admin, "host-login"); err != nil {
		t.Fatal(err)
	}
	if c, err := f.svc.Default(ctx, "web1", []string{"web"}, "ssh"); err != nil || c.Name != "group-login" {
		t.Fatalf("after deleting the target's credential, Default = %q, %v", c.Name, err)
	}
	if err := f.svc.Detach(ctx, f.admin, "group-login", ScopeGroup, "web", "ssh"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Attach(ctx, f.admin, "group-login", "cluster", "x", "ssh"); field(err) != "scope" {
		t.Fatalf("attach with a bad scope = %v", err)
	}
}
