package gateway

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opsconductor/opsconductor/controller/communication/inbound"
	"github.com/opsconductor/opsconductor/controller/communication/trigger"
	"github.com/opsconductor/opsconductor/controller/history"
	"github.com/opsconductor/opsconductor/controller/history/embedded"
	"github.com/opsconductor/opsconductor/controller/identity"
	"github.com/opsconductor/opsconductor/controller/keyring"
	"github.com/opsconductor/opsconductor/controller/state/statetest"
)

// newTestTriggers is a real trigger service over its own state store and
// history, sealing secrets with ring and starting runs through the real
// automation service runner (whose runs wait for their offline agent).
func newTestTriggers(t testing.TB, runner trigger.Runner, ring keyring.Sealer) *trigger.Service {
	t.Helper()
	store := statetest.NewStore(t, trigger.Domain())
	hist, err := embedded.Open(filepath.Join(t.TempDir(), "trigger-history"), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	w := history.NewWriter(hist, history.WriterConfig{Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(func() {
		w.Close(context.Background())
		hist.Close()
	})
	svc, err := trigger.New(trigger.Deps{Applier: &statetest.Applier{Store: store}, Store: store, Sealer: ring, Runner: runner,
		History: w, Reader: hist, Logger: slog.New(slog.DiscardHandler), IsLeader: func() bool { return true }})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// caseTriggerJob is the job the triggers run: caseJobYAML, whose
// greeting parameter the triggers map from the payload.
const caseTriggerJob = "hello"

// caseTrigger saves job hello and trigger name (auth, greeting mapped
// from payload.message, filter when given) as the fixture's admin, and
// returns it with its secret.
func caseTrigger(t *testing.T, f *fixture, name string, auth inbound.Auth, filter string) trigger.View {
	t.Helper()
	if _, err := f.srv.automation.GetJob(context.Background(), caseTriggerJob, 0); err != nil {
		caseJob(t, f, caseTriggerJob, caseJobYAML)
	}
	v, err := f.srv.triggers.Create(context.Background(), casePrincipal(t, f.ident, f.ident.adminToken), trigger.Request{
		Name: name, Job: caseTriggerJob, Auth: auth, Filter: filter, ParamMap: map[string]string{"greeting": "payload.message"}})
	if err != nil {
		t.Fatal(err)
	}
	if v.Secret == "" {
		t.Fatal("a created trigger came without its secret")
	}
	return v
}

func hexHMAC(secret, msg string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(msg))
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// githubHeaders signs body as GitHub does, for delivery.
func githubHeaders(secret, body, delivery string) map[string]string {
	return map[string]string{headerAnonymous: "1", "X-Hub-Signature-256": hexHMAC(secret, body),
		"X-GitHub-Delivery": delivery, "X-GitHub-Event": "push"}
}

// opsHeaders signs body with our own scheme at time at.
func opsHeaders(secret, body string, at time.Time) map[string]string {
	ts := strconv.FormatInt(at.Unix(), 10)
	return map[string]string{headerAnonymous: "1", "X-OpsConductor-Timestamp": ts, "X-OpsConductor-Signature": hexHMAC(secret, ts+"."+body)}
}

// postHook delivers body to a trigger's hook with header.
func postHook(t *testing.T, f *fixture, v trigger.View, body string, header map[string]string) *responseUnderTest {
	t.Helper()
	req := newRequest(http.MethodPost, v.Path, "application/json", body)
	for k, val := range header {
		req.Header.Set(k, val)
	}
	return serve(t, f, req)
}

// caseTriggerDeliveries polls the trigger's delivery records (written
// asynchronously after the hook answers) until there are n of them.
func caseTriggerDeliveries(t *testing.T, f *fixture, ref string, n int) []trigger.Delivery {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ds, err := f.srv.triggers.Deliveries(context.Background(), ref, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) >= n {
			return ds
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d deliveries of %s recorded after 10s, want %d: %+v", len(ds), ref, n, ds)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// wantNoSecret fails when a response shows a trigger secret.
func wantNoSecret(secret *string) func(*testing.T, *responseUnderTest) {
	return func(t *testing.T, rec *responseUnderTest) {
		t.Helper()
		if strings.Contains(string(rec.body), `"secret"`) || (*secret != "" && strings.Contains(string(rec.body), *secret)) {
			t.Fatalf("the response shows a trigger secret: %s", rec.body)
		}
	}
}

const caseHookBody = `{"message":"hi from the hook","ref":"refs/heads/main"}`

func triggerCases() []routeCase {
	const js, base = "application/json", "/api/v1/triggers"
	// Each case's fixture and trigger, set by its prepare and read by its
	// check; the cases run one after the other.
	var (
		cf     *fixture
		cv     trigger.View
		secret string
	)
	with := func(name string, auth inbound.Auth, filter string) func(*testing.T, *fixture) prepared {
		return func(t *testing.T, f *fixture) prepared {
			t.Helper()
			cf, cv = f, caseTrigger(t, f, name, auth, filter)
			secret = cv.Secret
			return prepared{vars: map[string]string{"id": cv.ID}}
		}
	}
	// hook prepares a trigger and signs caseHookBody for it.
	hook := func(auth inbound.Auth, filter string, sign func(secret string) map[string]string) func(*testing.T, *fixture) prepared {
		return func(t *testing.T, f *fixture) prepared {
			t.Helper()
			p := with("deploy", auth, filter)(t, f)
			p.header = sign(secret)
			return p
		}
	}
	github := func(delivery string) func(string) map[string]string {
		return func(s string) map[string]string { return githubHeaders(s, caseHookBody, delivery) }
	}
	view := func(check func(*testing.T, trigger.View)) func(*testing.T, *responseUnderTest) {
		return func(t *testing.T, rec *responseUnderTest) {
			t.Helper()
			check(t, decodeInto[trigger.View](t, rec))
		}
	}
	hookSays := func(outcome string) func(*testing.T, *responseUnderTest) {
		return func(t *testing.T, rec *responseUnderTest) {
			t.Helper()
			if o := decodeInto[trigger.Outcome](t, rec); o.Outcome != outcome {
				t.Fatalf("outcome %q, want %q: %s", o.Outcome, outcome, rec.body)
			}
		}
	}
	// runStarted checks the hook's run: it exists, is the trigger's,
	// and has the greeting mapped from the payload.
	runStarted := func(delivery string) func(*testing.T, *responseUnderTest) {
		return func(t *testing.T, rec *responseUnderTest) {
			t.Helper()
			o := decodeInto[trigger.Outcome](t, rec)
			if o.Outcome != "accepted" || o.RunID == "" || o.DeliveryID != delivery {
				t.Fatalf("outcome %+v, want accepted with a run and delivery %q", o, delivery)
			}
			run, err := cf.srv.automation.GetRun(context.Background(), casePrincipal(t, cf.ident, cf.ident.adminToken), o.RunID)
			if err != nil {
				t.Fatalf("the hook's run %s: %v", o.RunID, err)
			}
			b, _ := json.Marshal(run)
			var got struct {
				Job     string         `json:"job"`
				Params  map[string]any `json:"params"`
				Trigger struct {
					Kind       string `json:"kind"`
					TriggerID  string `json:"trigger_id"`
					DeliveryID string `json:"delivery_id"`
				} `json:"trigger"`
			}
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			if got.Job != caseTriggerJob || got.Params["greeting"] != "hi from the hook" || got.Trigger.Kind != "webhook" ||
				got.Trigger.TriggerID != cv.ID || got.Trigger.DeliveryID != delivery {
				t.Fatalf("the hook's run is %s", b)
			}
		}
	}
	// hookAgain checks that the trigger's hook now answers want to a
	// GitHub delivery signed with s.
	hookAgain := func(t *testing.T, s string, want int) {
		t.Helper()
		if rec := postHook(t, cf, cv, caseHookBody, githubHeaders(s, caseHookBody, fmt.Sprintf("again-%d", want))); rec.status != want {
			t.Fatalf("hook status %d, want %d: %s", rec.status, want, rec.body)
		}
	}
	unwired := func(f *fixture) { f.srv.triggers = nil }
	// A user who may write jobs but not run them may not own a trigger.
	writers := &caseIdentity{}
	asWriter := func(t *testing.T, f *fixture) prepared {
		t.Helper()
		ti := writers.get(t)
		role := writers.name("jobs-writer")
		if _, err := ti.svc.PutRole(context.Background(), casePrincipal(t, ti, ti.adminToken), identity.Role{Name: role,
			Permissions: []identity.Permission{identity.PermJobsRead, identity.PermJobsWrite}}, true); err != nil {
			t.Fatal(err)
		}
		user := writers.user(t, role, false)
		return prepared{header: caseBearer(caseLogin(t, ti, user, casePassword).AccessToken)}
	}
	createBody := `{"name":"deploy","description":"Deploys on push","job":"hello","auth":"hmac-github",` +
		`"param_map":{"greeting":"payload.message"},"filter":"payload.ref == \"refs/heads/main\"","rate_limit":30}`
	withJob := func(t *testing.T, f *fixture) prepared {
		t.Helper()
		caseJob(t, f, caseTriggerJob, caseJobYAML)
		return prepared{}
	}

	return []routeCase{
		{name: "trigger routes answer 503 where the service is not wired", method: "GET", target: base,
			want: 503, setup: unwired, check: wantError("triggers_unavailable", "")},
		{name: "the hook answers 503 where the trigger service is not wired", method: "POST", target: "/api/v1/hooks/trg_x",
			contentType: js, body: `{}`, header: anonymousHeader, want: 503, setup: unwired, check: wantError("triggers_unavailable", "")},

		// Management.
		{name: "a trigger is created and its secret shown once", method: "POST", target: base, contentType: js, body: createBody,
			want: 201, prepare: withJob, check: func(t *testing.T, rec *responseUnderTest) {
				v := decodeInto[trigger.View](t, rec)
				if v.Name != "deploy" || v.Job != caseTriggerJob || v.Auth != inbound.AuthHMACGitHub || v.RateLimit != 30 || !v.Enabled ||
					v.Owner != "admin" || v.Revision != 1 || v.Path != "/api/v1/hooks/"+v.ID || len(v.Secret) < 43 {
					t.Fatalf("created %s", rec.body)
				}
				if rec.header.Get("Cache-Control") != "no-store" || rec.header.Get("Location") != base+"/"+v.ID {
					t.Fatalf("headers %v", rec.header)
				}
			}},
		{name: "a trigger read after its creation shows no secret", method: "GET", target: base + "/$id", want: 200,
			prepare: with("deploy", inbound.AuthHMACGitHub, ""), check: wantNoSecret(&secret)},
		{name: "a trigger is read by its name", method: "GET", target: base + "/deploy", want: 200,
			prepare: with("deploy", inbound.AuthBearer, ""), check: func(t *testing.T, rec *responseUnderTest) {
				wantNoSecret(&secret)(t, rec)
				if v := decodeInto[trigger.View](t, rec); v.ID != cv.ID || v.Auth != inbound.AuthBearer || v.RateLimit != inbound.DefaultRateLimit {
					t.Fatalf("read %s", rec.body)
				}
			}},
		{name: "an unknown trigger is a 404", method: "GET", target: base + "/nope", want: 404},
		{name: "triggers are listed by name without secrets", method: "GET", target: base, want: 200,
			prepare: func(t *testing.T, f *fixture) prepared {
				t.Helper()
				caseTrigger(t, f, "zeta", inbound.AuthBearer, "")
				return with("alpha", inbound.AuthHMACOpsConductor, "")(t, f)
			}, check: func(t *testing.T, rec *responseUnderTest) {
				wantNoSecret(&secret)(t, rec)
				l := decodeInto[struct{ Items []trigger.View }](t, rec).Items
				if len(l) != 2 || l[0].Name != "alpha" || l[1].Name != "zeta" {
					t.Fatalf("listed %s", rec.body)
				}
			}},
		{name: "no triggers are an empty list", method: "GET", target: base, want: 200,
			check: func(t *testing.T, rec *responseUnderTest) {
				if string(rec.body) != `{"items":[]}`+"\n" && string(rec.body) != `{"items":[]}` {
					t.Fatalf("listed %s", rec.body)
				}
			}},
		{name: "a trigger is replaced and keeps its owner and secret", method: "PUT", target: base + "/deploy", contentType: js,
			body: `{"job":"hello","auth":"hmac-github","param_map":{"greeting":"payload.message"},"enabled":false,"revision":1}`, want: 200,
			prepare: with("deploy", inbound.AuthBearer, ""), check: view(func(t *testing.T, v trigger.View) {
				if v.ID != cv.ID || v.Name != "deploy" || v.Auth != inbound.AuthHMACGitHub || v.Enabled || v.Revision != 2 || v.Owner != "admin" || v.Secret != "" {
					t.Fatalf("replaced %+v", v)
				}
				// Disabled now; the secret is still the one made at creation.
				hookAgain(t, secret, http.StatusForbidden)
			})},
		{name: "replacing a trigger at another revision is a conflict", method: "PUT", target: base + "/$id", contentType: js,
			body: `{"job":"hello","auth":"bearer","revision":7}`, want: 409, prepare: with("deploy", inbound.AuthBearer, ""),
			check: wantError("revision_mismatch", "")},
		{name: "an unknown trigger cannot be replaced", method: "PUT", target: base + "/nope", contentType: js,
			body: `{"job":"hello","auth":"bearer"}`, want: 404},
		{name: "a trigger's secret is rotated and the old one stops working", method: "POST", target: base + "/$id/rotate-secret", want: 200,
			prepare: with("deploy", inbound.AuthHMACGitHub, ""), check: view(func(t *testing.T, v trigger.View) {
				if v.Secret == "" || v.Secret == secret || v.Revision != 2 {
					t.Fatalf("rotated %+v", v)
				}
				hookAgain(t, secret, http.StatusUnauthorized)
				hookAgain(t, v.Secret, http.StatusAccepted)
			})},
		{name: "rotating an unknown trigger's secret is a 404", method: "POST", target: base + "/nope/rotate-secret", want: 404},
		{name: "a trigger is deleted and its hook is gone", method: "DELETE", target: base + "/deploy", want: 204,
			prepare: with("deploy", inbound.AuthHMACGitHub, ""), check: func(t *testing.T, rec *responseUnderTest) {
				if _, err := cf.srv.triggers.Get(cv.ID); err == nil {
					t.Fatal("the deleted trigger is still there")
				}
				hookAgain(t, secret, http.StatusNotFound)
			}},
		{name: "deleting an unknown trigger is a 404", method: "DELETE", target: base + "/nope", want: 404},
		{name: "a trigger name that is taken is a conflict", method: "POST", target: base, contentType: js, body: createBody, want: 409,
			prepare: with("deploy", inbound.AuthBearer, ""), check: wantError("trigger_exists", "")},
		{name: "a trigger for an unknown job is a 400 naming job", method: "POST", target: base, contentType: js,
			body: `{"name":"deploy","job":"nope","auth":"bearer"}`, want: 400, check: wantFields("job")},
		{name: "a trigger with an unknown auth is a 400 naming auth", method: "POST", target: base, contentType: js,
			body: `{"name":"deploy","job":"hello","auth":"basic"}`, want: 400, prepare: withJob, check: wantFields("auth")},
		{name: "a trigger with a bad mapping expression is a 400 naming the parameter", method: "POST", target: base, contentType: js,
			body: `{"name":"deploy","job":"hello","auth":"bearer","param_map":{"greeting":"payload.message +"}}`, want: 400,
			prepare: withJob, check: wantFields("param_map.greeting")},
		{name: "a trigger with a bad filter and rate limit is a 400 naming both", method: "PUT", target: base + "/deploy", contentType: js,
			body: `{"job":"hello","auth":"bearer","filter":"payload.ref ==","rate_limit":-1}`, want: 400,
			prepare: with("deploy", inbound.AuthBearer, ""), check: wantFields("filter", "rate_limit")},
		{name: "a trigger with an unknown field is a 400 naming it", method: "POST", target: base, contentType: js,
			body: `{"name":"deploy","job":"hello","auth":"bearer","secret":"mine"}`, want: 400, check: wantFields("secret")},
		{name: "a user who may not run jobs may not create a trigger", method: "POST", target: base, contentType: js, body: createBody,
			want: 403, identity: writers, prepare: asWriter, check: wantError("owner_cannot_run", "")},

		// The hook.
		{name: "a hook with a good GitHub signature starts the job with mapped params", method: "POST", target: "/api/v1/hooks/$id",
			contentType: js, body: caseHookBody, want: 202, prepare: hook(inbound.AuthHMACGitHub, "", github("gh-1")), check: runStarted("gh-1")},
		{name: "a hook delivery sent again is refused as a replay", method: "POST", target: "/api/v1/hooks/$id",
			contentType: js, body: caseHookBody, want: 409, prepare: func(t *testing.T, f *fixture) prepared {
				t.Helper()
				p := hook(inbound.AuthHMACGitHub, "", github("gh-1"))(t, f)
				if rec := postHook(t, f, cv, caseHookBody, p.header); rec.status != http.StatusAccepted {
					t.Fatalf("first delivery: %d %s", rec.status, rec.body)
				}
				return p
			}, check: wantError("webhook_replayed", "")},
		{name: "a hook with a bad signature is a 401", method: "POST", target: "/api/v1/hooks/$id", contentType: js,
			body: caseHookBody, want: 401, prepare: hook(inbound.AuthHMACGitHub, "", func(string) map[string]string {
				return githubHeaders("not-the-secret", caseHookBody, "gh-2")
			}), check: wantError("webhook_unauthenticated", "")},
		{name: "a hook signed with our scheme starts the job", method: "POST", target: "/api/v1/hooks/$id", contentType: js,
			body: caseHookBody, want: 202, prepare: hook(inbound.AuthHMACOpsConductor, "", func(s string) map[string]string {
				return opsHeaders(s, caseHookBody, time.Now())
			}), check: runStarted("")},
		{name: "a hook signed with our scheme at a stale time is a 401", method: "POST", target: "/api/v1/hooks/$id", contentType: js,
			body: caseHookBody, want: 401, prepare: hook(inbound.AuthHMACOpsConductor, "", func(s string) map[string]string {
				return opsHeaders(s, caseHookBody, time.Now().Add(-10*time.Minute))
			}), check: wantError("webhook_unauthenticated", "")},
		{name: "a hook with the bearer secret starts the job", method: "POST", target: "/api/v1/hooks/$id", contentType: js,
			body: caseHookBody, want: 202, prepare: hook(inbound.AuthBearer, "", func(s string) map[string]string {
				return map[string]string{"Authorization": "Bearer " + s, "Idempotency-Key": "build-981"}
			}), check: runStarted("build-981")},
		{name: "a hook with another bearer token is a 401", method: "POST", target: "/api/v1/hooks/$id", contentType: js,
			body: caseHookBody, want: 401, prepare: hook(inbound.AuthBearer, "", func(string) map[string]string {
				return map[string]string{headerAnonymous: "1", "Authorization": "Bearer not-the-secret"}
			}), check: wantError("webhook_unauthenticated", "")},
		{name: "a hook whose filter is false is skipped", method: "POST", target: "/api/v1/hooks/$id", contentType: js,
			body: caseHookBody, want: 200, prepare: hook(inbound.AuthHMACGitHub, `payload.ref == "refs/heads/release"`, github("gh-3")),
			check: hookSays("skipped")},
		{name: "a hook whose payload lacks a mapped field is a 400 naming the parameter", method: "POST", target: "/api/v1/hooks/$id",
			contentType: js, body: `{"ref":"refs/heads/main"}`, want: 400, prepare: hook(inbound.AuthHMACGitHub, "", func(s string) map[string]string {
				return githubHeaders(s, `{"ref":"refs/heads/main"}`, "gh-4")
			}), check: wantFields("param_map.greeting")},
		{name: "a hook that is not JSON is a 400", method: "POST", target: "/api/v1/hooks/$id",
			contentType: js, body: `{"message":`, want: 400, prepare: hook(inbound.AuthHMACGitHub, "", func(s string) map[string]string {
				return githubHeaders(s, `{"message":`, "gh-5")
			}), check: wantFields("body")},
		{name: "an unknown hook is a 404", method: "POST", target: "/api/v1/hooks/trg_nope", contentType: js,
			body: caseHookBody, header: anonymousHeader, want: 404},
		{name: "a trigger's name is not its hook", method: "POST", target: "/api/v1/hooks/deploy", contentType: js,
			body: caseHookBody, want: 404, prepare: hook(inbound.AuthHMACGitHub, "", github("gh-6"))},
		{name: "a disabled trigger's hook is a 403", method: "POST", target: "/api/v1/hooks/$id", contentType: js,
			body: caseHookBody, want: 403, prepare: func(t *testing.T, f *fixture) prepared {
				t.Helper()
				p := hook(inbound.AuthHMACGitHub, "", github("gh-7"))(t, f)
				off := false
				if _, err := f.srv.triggers.Update(context.Background(), casePrincipal(t, f.ident, f.ident.adminToken), cv.ID,
					trigger.Request{Job: caseTriggerJob, Auth: inbound.AuthHMACGitHub, ParamMap: map[string]string{"greeting": "payload.message"}, Enabled: &off}); err != nil {
					t.Fatal(err)
				}
				return p
			}, check: wantError("trigger_disabled", "")},
		{name: "a hook over its trigger's rate limit is a 429", method: "POST", target: "/api/v1/hooks/$id", contentType: js,
			body: caseHookBody, want: 429, repeat: 2, prepare: func(t *testing.T, f *fixture) prepared {
				t.Helper()
				p := hook(inbound.AuthHMACGitHub, "", github("gh-8"))(t, f)
				if _, err := f.srv.triggers.Update(context.Background(), casePrincipal(t, f.ident, f.ident.adminToken), cv.ID,
					trigger.Request{Job: caseTriggerJob, Auth: inbound.AuthHMACGitHub, ParamMap: map[string]string{"greeting": "payload.message"}, RateLimit: 1}); err != nil {
					t.Fatal(err)
				}
				return p
			}, check: func(t *testing.T, rec *responseUnderTest) {
				wantError("webhook_rate_limited", "")(t, rec)
				if rec.header.Get("Retry-After") == "" {
					t.Fatal("a 429 without Retry-After")
				}
			}},

		// Deliveries.
		{name: "a trigger's deliveries show the accepted and the refused", method: "GET", target: base + "/deploy/deliveries", want: 200,
			prepare: func(t *testing.T, f *fixture) prepared {
				t.Helper()
				p := with("deploy", inbound.AuthHMACGitHub, "")(t, f)
				if rec := postHook(t, f, cv, caseHookBody, githubHeaders(secret, caseHookBody, "gh-ok")); rec.status != http.StatusAccepted {
					t.Fatalf("good delivery: %d %s", rec.status, rec.body)
				}
				if rec := postHook(t, f, cv, caseHookBody, githubHeaders("not-the-secret", caseHookBody, "gh-bad")); rec.status != http.StatusUnauthorized {
					t.Fatalf("bad delivery: %d %s", rec.status, rec.body)
				}
				caseTriggerDeliveries(t, f, cv.ID, 2)
				return p
			}, check: func(t *testing.T, rec *responseUnderTest) {
				ds := decodeInto[struct{ Items []trigger.Delivery }](t, rec).Items
				byOutcome := map[string]trigger.Delivery{}
				for _, d := range ds {
					byOutcome[d.Outcome] = d
				}
				ok, bad := byOutcome["accepted"], byOutcome["refused"]
				if len(ds) != 2 || ok.DeliveryID != "gh-ok" || ok.RunID == "" || ok.Params["greeting"] != "hi from the hook" || ok.Trigger != cv.ID {
					t.Fatalf("deliveries %s", rec.body)
				}
				if !strings.HasPrefix(bad.Reason, "webhook_unauthenticated") || bad.RunID != "" {
					t.Fatalf("the refused delivery %+v", bad)
				}
				if !ds[0].Time.After(ds[1].Time) && !ds[0].Time.Equal(ds[1].Time) {
					t.Fatalf("deliveries are not newest first: %s", rec.body)
				}
			}},
		{name: "a trigger's deliveries take a limit", method: "GET", target: base + "/$id/deliveries?limit=1", want: 200,
			prepare: func(t *testing.T, f *fixture) prepared {
				t.Helper()
				p := with("deploy", inbound.AuthBearer, "")(t, f)
				for _, key := range []string{"k1", "k2"} {
					h := map[string]string{"Authorization": "Bearer " + secret, "Idempotency-Key": key}
					if rec := postHook(t, f, cv, caseHookBody, h); rec.status != http.StatusAccepted {
						t.Fatalf("delivery %s: %d %s", key, rec.status, rec.body)
					}
				}
				caseTriggerDeliveries(t, f, cv.ID, 2)
				return p
			}, check: func(t *testing.T, rec *responseUnderTest) {
				if ds := decodeInto[struct{ Items []trigger.Delivery }](t, rec).Items; len(ds) != 1 {
					t.Fatalf("deliveries %s", rec.body)
				}
			}},
		{name: "a bad deliveries limit is a 400", method: "GET", target: base + "/deploy/deliveries?limit=0", want: 400,
			prepare: with("deploy", inbound.AuthBearer, ""), check: wantFields("limit")},
		{name: "an unknown trigger's deliveries are a 404", method: "GET", target: base + "/nope/deliveries", want: 404},
	}
}

// caseTriggerAdmin saves trigger name for TestConsistentReads.
func caseTriggerAdmin(t *testing.T, f *fixture, name string) {
	t.Helper()
	caseTrigger(t, f, name, inbound.AuthBearer, "")
}
