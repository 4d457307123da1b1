package gateway

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/opsconductor/opsconductor/controller/agentrpc"
	"github.com/opsconductor/opsconductor/controller/assets"
	"github.com/opsconductor/opsconductor/controller/assets/credentials"
	"github.com/opsconductor/opsconductor/controller/history"
	"github.com/opsconductor/opsconductor/controller/history/embedded"
	"github.com/opsconductor/opsconductor/controller/identity"
	"github.com/opsconductor/opsconductor/controller/keyring"
	"github.com/opsconductor/opsconductor/controller/state"
	"github.com/opsconductor/opsconductor/controller/state/statetest"
)

// newTestCredentials is a real credentials service and replicated keyring
// over their own in-memory store and an embedded history store.
func newTestCredentials(t testing.TB) (*credentials.Service, *keyring.Service) {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	reg := state.NewRegistry()
	reg.MustRegister(keyring.Domain())
	reg.MustRegister(credentials.Domain())
	store, err := state.NewStore(reg, log)
	if err != nil {
		t.Fatal(err)
	}
	ap := &statetest.Applier{Store: store}
	key, err := keyring.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	root, err := keyring.Parse([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	leader := func() bool { return true }
	kr, err := keyring.New(keyring.Deps{Root: root, Applier: ap, Store: store, Logger: log, IsLeader: leader})
	if err != nil {
		t.Fatal(err)
	}
	hist, err := embedded.Open(filepath.Join(t.TempDir(), "history.db"), embedded.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	writer := history.NewWriter(hist, history.WriterConfig{Logger: log})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		writer.Close(ctx)
		hist.Close()
	})
	svc, err := credentials.New(credentials.Deps{Applier: ap, Store: store, Sealer: kr, History: writer, IsLeader: leader, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	kr.Register("credentials", svc)
	return svc, kr
}

// caseSecret is the password the credential cases store; no response may
// contain it, nor its base64.
const caseSecret = "Sup3r-secret-casepass"

// caseCredential stores a password credential named name as the admin.
func caseCredential(t *testing.T, f *fixture, name string) credentials.Credential {
	t.Helper()
	c, err := f.srv.credentials.Create(context.Background(), casePrincipal(t, f.ident, f.ident.adminToken),
		credentials.Input{Name: name, Kind: credentials.KindPassword, Username: "deploy", Tags: map[string]string{"env": "prod"},
			Secret: &credentials.Secret{Password: caseSecret}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func withCredential(name string) func(t *testing.T, f *fixture) prepared {
	return func(t *testing.T, f *fixture) prepared {
		caseCredential(t, f, name)
		return prepared{}
	}
}

// noSecret fails when a response carries the case secret in any form.
func noSecret(next func(*testing.T, *responseUnderTest)) func(*testing.T, *responseUnderTest) {
	return func(t *testing.T, rec *responseUnderTest) {
		t.Helper()
		for _, form := range []string{caseSecret, base64.StdEncoding.EncodeToString([]byte(caseSecret)), "PRIVATE KEY"} {
			if strings.Contains(string(rec.body), form) {
				t.Fatalf("the response carries a secret: %s", rec.body)
			}
		}
		if next != nil {
			next(t, rec)
		}
	}
}

func caseSSHKey(t *testing.T) string {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "case")
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(block))
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// rotated rotates the keyring twice and re-wraps, leaving the first KEK
// retired ($old) and the second active ($active).
func rotated(t *testing.T, f *fixture) prepared {
	ctx := context.Background()
	caseCredential(t, f, "db")
	k1, err := f.srv.keyring.Rotate(ctx, "admin")
	if err != nil {
		t.Fatal(err)
	}
	k2, err := f.srv.keyring.Rotate(ctx, "admin")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.srv.keyring.RewrapAll(ctx); err != nil {
		t.Fatal(err)
	}
	return prepared{vars: map[string]string{"old": k1.ID, "active": k2.ID}}
}

// liveDirectory is the inventory's view of a test's own agents service,
// so that the live agent a case starts is a target.
type liveDirectory struct{ svc *agentrpc.Service }

func (d liveDirectory) Agents(ctx context.Context) ([]assets.AgentInfo, error) {
	page, err := d.svc.ListAgents(ctx, "", 1000)
	if err != nil {
		return nil, err
	}
	out := make([]assets.AgentInfo, 0, len(page.Items))
	for _, a := range page.Items {
		out = append(out, assets.AgentInfo{ID: a.ID, Name: a.Name, Tags: a.Tags, Status: a.Status, EnrolledAt: a.EnrolledAt})
	}
	return out, nil
}

func (d liveDirectory) Agent(ctx context.Context, idOrName string) (assets.AgentInfo, error) {
	a, err := d.svc.GetAgent(ctx, idOrName)
	if err != nil {
		return assets.AgentInfo{}, err
	}
	return assets.AgentInfo{ID: a.ID, Name: a.Name, Tags: a.Tags, Status: a.Status, EnrolledAt: a.EnrolledAt}, nil
}

// caseLiveTarget starts a live agent and an inventory that has it as a
// target; $id is the agent's ID.
func caseLiveTarget(t *testing.T, f *fixture) prepared {
	id := caseLiveAgent(t, f)
	reg := state.NewRegistry()
	reg.MustRegister(assets.Domain())
	store, err := state.NewStore(reg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	inv, err := assets.New(assets.Deps{Applier: &statetest.Applier{Store: store}, Store: store, Agents: liveDirectory{f.srv.agents},
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	f.srv.assets = inv
	return caseVars("id", id)
}

func credentialCases() []routeCase {
	post := func(name, body string, want int, check func(*testing.T, *responseUnderTest)) routeCase {
		return routeCase{name: name, method: "POST", target: "/api/v1/credentials", contentType: "application/json", body: body,
			want: want, check: noSecret(check), prepare: withCredential("existing")}
	}
	password := `{"name":"db","kind":"password","username":"app","tags":{"env":"prod"},"secret":{"password":"` + caseSecret + `"}}`
	return []routeCase{
		post("a password credential is stored and answered without its secret", password, 201, func(t *testing.T, rec *responseUnderTest) {
			c := decodeInto[credentials.Credential](t, rec)
			if c.Name != "db" || c.Kind != "password" || c.Username != "app" || !strings.HasPrefix(c.ID, "cred_") || c.CreatedBy != "admin" {
				t.Fatalf("created %s", rec.body)
			}
		}),
		{name: "an SSH key credential records its fingerprint", method: "POST", target: "/api/v1/credentials", contentType: "application/json",
			prepare: func(t *testing.T, f *fixture) prepared {
				return prepared{vars: map[string]string{"key": jsonString(caseSSHKey(t))}}
			},
			body: `{"name":"ssh","kind":"ssh_key","username":"root","secret":{"private_key":$key}}`, want: 201,
			check: noSecret(func(t *testing.T, rec *responseUnderTest) {
				if c := decodeInto[credentials.Credential](t, rec); !strings.HasPrefix(c.Fingerprint, "SHA256:") || !strings.HasPrefix(c.PublicKey, "ssh-ed25519 ") {
					t.Fatalf("created %s", rec.body)
				}
			})},
		post("a private key that does not parse is a 400 naming secret.private_key",
			`{"name":"ssh","kind":"ssh_key","secret":{"private_key":"not a key"}}`, 400, wantError("invalid_input", "secret.private_key")),
		post("a secret field the kind does not use is a 400 naming it",
			`{"name":"t","kind":"token","secret":{"token":"x","password":"`+caseSecret+`"}}`, 400, wantError("invalid_input", "secret.password")),
		post("an unknown secret field is a 400 naming it",
			`{"name":"t","kind":"token","secret":{"token":"x","pin":"1"}}`, 400, wantError("invalid_input", "secret.pin")),
		post("a secret field that is not a string is a 400 naming it",
			`{"name":"t","kind":"token","secret":{"token":12345}}`, 400, wantError("invalid_input", "secret.token")),
		post("a secret that is not an object is a 400 naming secret",
			`{"name":"t","kind":"token","secret":"`+caseSecret+`"}`, 400, wantError("invalid_input", "secret")),
		post("a credential name already taken is a 409",
			`{"name":"existing","kind":"token","secret":{"token":"x"}}`, 409, wantError("credential_exists", "")),

		{name: "credentials are listed without secrets", method: "GET", target: "/api/v1/credentials?kind=password&tag=env=prod", want: 200,
			prepare: withCredential("db"), check: noSecret(func(t *testing.T, rec *responseUnderTest) {
				if l := decodeInto[credentialList](t, rec); len(l.Items) != 1 || l.Items[0].Name != "db" {
					t.Fatalf("listed %s", rec.body)
				}
			})},
		{name: "a credential list filtered by an unknown kind is a 400 naming kind", method: "GET", target: "/api/v1/credentials?kind=kerberos",
			want: 400, check: wantError("invalid_input", "kind")},
		{name: "a credential is described without its secret", method: "GET", target: "/api/v1/credentials/db", want: 200,
			prepare: withCredential("db"), check: noSecret(nil)},
		{name: "an unknown credential is a 404", method: "GET", target: "/api/v1/credentials/nope", want: 404,
			check: wantError("credential_not_found", "")},
		{name: "a credential's secret is replaced", method: "PUT", target: "/api/v1/credentials/db", contentType: "application/json",
			body: `{"username":"app2","secret":{"password":"` + caseSecret + `-2"}}`, want: 200, prepare: withCredential("db"),
			check: noSecret(func(t *testing.T, rec *responseUnderTest) {
				if c := decodeInto[credentials.Credential](t, rec); c.Username != "app2" {
					t.Fatalf("replaced %s", rec.body)
				}
			})},
		{name: "changing a credential's kind without a secret is a 400 naming secret", method: "PUT", target: "/api/v1/credentials/db",
			contentType: "application/json", body: `{"kind":"token"}`, want: 400, prepare: withCredential("db"),
			check: wantError("invalid_input", "secret")},
		{name: "a credential is deleted", method: "DELETE", target: "/api/v1/credentials/db", want: 204, prepare: withCredential("db")},
		{name: "a credential is attached to a group as its ssh default", method: "PUT", target: "/api/v1/credentials/db/attachments/groups/web/ssh",
			want: 200, prepare: withCredential("db"), check: func(t *testing.T, rec *responseUnderTest) {
				if a := decodeInto[credentials.Attachment](t, rec); a.Scope != "group" || a.Name != "web" || a.Role != "ssh" || a.Credential != "db" {
					t.Fatalf("attached %s", rec.body)
				}
			}},
		{name: "an attachment to something other than targets or groups is a 400 naming scope", method: "PUT",
			target: "/api/v1/credentials/db/attachments/clusters/web/ssh", want: 400, prepare: withCredential("db"),
			check: wantError("invalid_input", "scope")},
		{name: "a credential is detached from a target", method: "DELETE", target: "/api/v1/credentials/db/attachments/targets/web-1/ssh", want: 204,
			prepare: func(t *testing.T, f *fixture) prepared {
				caseCredential(t, f, "db")
				if _, err := f.srv.credentials.Attach(context.Background(), casePrincipal(t, f.ident, f.ident.adminToken), "db",
					credentials.ScopeTarget, "web-1", "ssh"); err != nil {
					t.Fatal(err)
				}
				return prepared{}
			}},
		{name: "detaching what is not attached is a 404", method: "DELETE", target: "/api/v1/credentials/db/attachments/targets/web-1/ssh", want: 404,
			prepare: withCredential("db")},

		{name: "a step that names a credential is sent with it, and the attempt names only the alias", method: "POST",
			target: "/api/v1/agents/$id/steps", contentType: "application/json", body: `{"uses":"noop@1","credentials":{"db":"db"}}`, want: 202,
			prepare: func(t *testing.T, f *fixture) prepared {
				caseCredential(t, f, "db")
				return caseLiveTarget(t, f)
			},
			check: noSecret(func(t *testing.T, rec *responseUnderTest) {
				if a := decodeInto[agentrpc.Attempt](t, rec); a.Credentials["db"] != "db" || len(a.Credentials) != 1 {
					t.Fatalf("attempt %s", rec.body)
				}
			})},
		{name: "a step that names an unknown credential is a 404 naming its alias, and nothing is sent", method: "POST",
			target: "/api/v1/agents/$id/steps", contentType: "application/json", body: `{"uses":"noop@1","credentials":{"db":"nope"}}`, want: 404,
			prepare: caseLiveTarget, check: wantError("credential_not_found", "credentials.db")},
		{name: "a step using credentials on a target outside the caller's credentials:use scope is a 403", method: "POST",
			identity: &caseIdentity{}, target: "/api/v1/agents/$id/steps", contentType: "application/json",
			body: `{"uses":"noop@1","credentials":{"db":"staging-db"}}`, want: 403,
			prepare: func(t *testing.T, f *fixture) prepared {
				ctx := context.Background()
				admin := casePrincipal(t, f.ident, f.ident.adminToken)
				if _, err := f.ident.svc.PutRole(ctx, admin, identity.Role{Name: "stepper",
					Permissions: []identity.Permission{identity.PermAgentsAdmin, identity.PermCredentialsUse}}, true); err != nil {
					t.Fatal(err)
				}
				no := false
				if _, _, err := f.ident.svc.CreateUser(ctx, admin, identity.CreateUser{Username: "stager", Password: casePassword,
					MustChangePassword: &no, Roles: []identity.Binding{{Role: "stepper", Scope: &identity.Scope{Tags: map[string]string{"env": "staging"}}}}}); err != nil {
					t.Fatal(err)
				}
				if _, err := f.srv.credentials.Create(ctx, admin, credentials.Input{Name: "staging-db", Kind: credentials.KindToken,
					Tags: map[string]string{"env": "staging"}, Secret: &credentials.Secret{Token: caseSecret}}); err != nil {
					t.Fatal(err)
				}
				p := caseLiveTarget(t, f)
				p.header = caseBearer(caseLogin(t, f.ident, "stager", casePassword).AccessToken)
				return p
			},
			check: wantError("target_out_of_scope", "")},
		{name: "a step with a malformed credential alias is a 400 naming it", method: "POST",
			target: "/api/v1/agents/$id/steps", contentType: "application/json", body: `{"uses":"noop@1","credentials":{"d-b":"db"}}`, want: 400,
			prepare: func(t *testing.T, f *fixture) prepared { return caseVars("id", caseEnroll(t, f).ID) },
			check:   wantError("invalid_input", "credentials.d-b")},

		{name: "the keyring lists root keys and KEKs with what each wraps", method: "GET", target: "/api/v1/operator/keyring", want: 200,
			prepare: rotated, check: func(t *testing.T, rec *responseUnderTest) {
				st := decodeInto[keyring.Status](t, rec)
				if len(st.Keys) != 3 || st.Pending != 0 || st.Keys[0].Tier != "root" {
					t.Fatalf("keyring %s", rec.body)
				}
				for _, k := range st.Keys[1:] {
					if k.Tier != "kek" || (k.State == "active") == k.Removable {
						t.Errorf("key %+v", k)
					}
				}
			}},
		{name: "a keyring rotation adds an active KEK", method: "POST", target: "/api/v1/operator/keyring/rotate", want: 201,
			check: func(t *testing.T, rec *responseUnderTest) {
				if k := decodeInto[keyring.KeyInfo](t, rec); k.State != "active" || k.Tier != "kek" || strings.Contains(string(rec.body), "sealed") {
					t.Fatalf("rotated %s", rec.body)
				}
			}},
		{name: "a retired KEK is removed", method: "DELETE", target: "/api/v1/operator/keyring/keys/$old", want: 204, prepare: rotated},
		{name: "removing the active KEK is a 409", method: "DELETE", target: "/api/v1/operator/keyring/keys/$active", want: 409, prepare: rotated,
			check: wantError("kek_active", "")},
	}
}

func TestStepSecretsAreNamedByAlias(t *testing.T) {
	f := newFixture(t, Config{})
	caseCredential(t, f, "db")
	if _, err := f.srv.credentials.Create(context.Background(), casePrincipal(t, f.ident, f.ident.adminToken), credentials.Input{
		Name: "api", Kind: credentials.KindToken, Secret: &credentials.Secret{Token: "tok-" + caseSecret}}); err != nil {
		t.Fatal(err)
	}
	f.srv.assets = nil // the agent below is not in the fixture's inventory
	tests := []struct {
		name  string
		creds map[string]string
		want  map[string]string
	}{
		{"a step's only credential is given by alias and unprefixed", map[string]string{"login": "db"},
			map[string]string{"login.username": "deploy", "login.password": caseSecret, "username": "deploy", "password": caseSecret}},
		{"two credentials are given by alias only", map[string]string{"login": "db", "api": "api"},
			map[string]string{"login.username": "deploy", "login.password": caseSecret, "api.token": "tok-" + caseSecret}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := newRequest("POST", "/api/v1/agents/agt_1/steps", "", "")
			req.SetPathValue("id", "agt_1")
			req = req.WithContext(context.WithValue(req.Context(), stateKey{}, &requestState{principal: casePrincipal(t, f.ident, f.ident.adminToken)}))
			got, err := f.srv.stepSecrets(req, tt.creds)(context.Background(), "att_1")
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d secrets (%v), want %d", len(got), slices.Sorted(maps.Keys(got)), len(tt.want))
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("secret %s is wrong or missing", k)
				}
			}
		})
	}
}
