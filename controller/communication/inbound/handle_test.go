package inbound

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/opsconductor/opsconductor/controller/problem"
)

const ghSecret = "gh-webhook-secret-0f9a"

// pushEvent is the part of a GitHub push event that tests read.
var pushEvent = []byte(`{
  "ref": "refs/heads/main",
  "after": "1d2c3b4a5f6e7d8c9b0a1d2c3b4a5f6e7d8c9b0a",
  "repository": {"full_name": "acme/shop", "private": true, "stargazers_count": 42},
  "pusher": {"name": "octocat"},
  "commits": [
    {"id": "aaa", "message": "fix", "added": ["a.go"]},
    {"id": "bbb", "message": "feat", "added": []}
  ]
}`)

func githubTrigger() Trigger {
	return Trigger{
		ID: "gh", Name: "GitHub push", Job: "deploy", Auth: AuthHMACGitHub, SecretRef: "gh-ref", Enabled: true,
		Filter: `headers["x-github-event"] == "push" && payload.ref == "refs/heads/main"`,
		ParamMap: map[string]string{
			"commit":     "payload.after",
			"repository": "payload.repository.full_name",
			"commits":    "len(payload.commits)",
		},
	}
}

// githubHeaders are the headers GitHub sends with a delivery.
func githubHeaders(body []byte, delivery string) map[string]string {
	return map[string]string{
		"Content-Type":        "application/json",
		"User-Agent":          "GitHub-Hookshot/abc1234",
		"X-GitHub-Event":      "push",
		"X-GitHub-Delivery":   delivery,
		"X-Hub-Signature-256": githubSignature(ghSecret, body),
	}
}

func TestHandleGitHub(t *testing.T) {
	e := newEnv(t, secretMap{"gh-ref": ghSecret}, githubTrigger())

	t.Run("a signed JSON push is accepted and mapped", func(t *testing.T) {
		r := e.post("/hooks/gh", githubHeaders(pushEvent, "d-json"), pushEvent)
		mustStatus(t, r, http.StatusOK)
		want := map[string]any{"commit": "1d2c3b4a5f6e7d8c9b0a1d2c3b4a5f6e7d8c9b0a", "repository": "acme/shop", "commits": float64(2)}
		if !reflect.DeepEqual(r.Outcome.Params, want) || r.Outcome.Skipped || r.Outcome.DeliveryID != "d-json" {
			t.Fatalf("outcome %+v, want params %v and delivery d-json", r.Outcome, want)
		}
	})

	t.Run("a signed form-encoded push is accepted and mapped", func(t *testing.T) {
		// GitHub's "application/x-www-form-urlencoded" content type sends
		// payload=<json>, and signs the form body as sent.
		form := []byte("payload=" + url.QueryEscape(string(pushEvent)))
		h := githubHeaders(form, "d-form")
		h["Content-Type"] = "application/x-www-form-urlencoded"
		r := e.post("/hooks/gh", h, form)
		mustStatus(t, r, http.StatusOK)
		if r.Outcome.Params["repository"] != "acme/shop" {
			t.Fatalf("params %v", r.Outcome.Params)
		}
	})

	t.Run("the same delivery ID again is refused as a replay", func(t *testing.T) {
		r := e.post("/hooks/gh", githubHeaders(pushEvent, "d-json"), pushEvent)
		mustStatus(t, r, http.StatusConflict)
		if r.Problem.Code != "webhook_replayed" || !errors.Is(e.lastErr(), ErrReplay) {
			t.Fatalf("problem %+v, error %v", r.Problem, e.lastErr())
		}
	})

	t.Run("a push to another branch is skipped by the filter", func(t *testing.T) {
		body := bytes.Replace(pushEvent, []byte("refs/heads/main"), []byte("refs/heads/feature"), 1)
		r := e.post("/hooks/gh", githubHeaders(body, "d-feature"), body)
		mustStatus(t, r, http.StatusOK)
		if !r.Outcome.Skipped || r.Outcome.Params != nil || r.Outcome.DeliveryID != "d-feature" {
			t.Fatalf("outcome %+v, want skipped without params", r.Outcome)
		}
	})

	t.Run("another event type is skipped by the filter", func(t *testing.T) {
		body := []byte(`{"zen":"Keep it logically awesome."}`)
		h := githubHeaders(body, "d-ping")
		h["X-GitHub-Event"] = "ping"
		r := e.post("/hooks/gh", h, body)
		mustStatus(t, r, http.StatusOK)
		if !r.Outcome.Skipped {
			t.Fatalf("outcome %+v, want skipped", r.Outcome)
		}
	})

	refusals := []struct {
		name   string
		edit   func(h map[string]string)
		body   []byte
		reason error
	}{
		{name: "a bad signature is refused", reason: ErrBadSignature,
			edit: func(h map[string]string) { h["X-Hub-Signature-256"] = githubSignature("guess", pushEvent) }},
		{name: "a missing signature is refused", reason: ErrMissingHeader,
			edit: func(h map[string]string) { delete(h, "X-Hub-Signature-256") }},
		{name: "a body changed after signing is refused", reason: ErrBadSignature,
			body: bytes.Replace(pushEvent, []byte("octocat"), []byte("mallory"), 1)},
	}
	for _, tt := range refusals {
		t.Run(tt.name+" with a 401 that does not say why", func(t *testing.T) {
			h := githubHeaders(pushEvent, "d-"+tt.name)
			if tt.edit != nil {
				tt.edit(h)
			}
			body := pushEvent
			if tt.body != nil {
				body = tt.body
			}
			r := e.post("/hooks/gh", h, body)
			mustStatus(t, r, http.StatusUnauthorized)
			if r.Problem.Code != "webhook_unauthenticated" || r.Problem.Message != "the request could not be authenticated" {
				t.Fatalf("the sender is told %+v", r.Problem)
			}
			if !errors.Is(e.lastErr(), tt.reason) {
				t.Fatalf("error %v, want reason %v", e.lastErr(), tt.reason)
			}
			if logs := e.logs.String(); !strings.Contains(logs, tt.reason.Error()) {
				t.Fatalf("the reason %q is not logged:\n%s", tt.reason, logs)
			}
		})
	}

	t.Run("a refused delivery's ID is not used up", func(t *testing.T) {
		h := githubHeaders(pushEvent, "d-retry")
		h["X-Hub-Signature-256"] = githubSignature("guess", pushEvent)
		mustStatus(t, e.post("/hooks/gh", h, pushEvent), http.StatusUnauthorized)
		mustStatus(t, e.post("/hooks/gh", githubHeaders(pushEvent, "d-retry"), pushEvent), http.StatusOK)
	})

	t.Run("the logs never hold the secret", func(t *testing.T) {
		if logs := e.logs.String(); strings.Contains(logs, ghSecret) {
			t.Fatalf("logs hold the secret:\n%s", logs)
		}
	})
}

func TestHandleOpsConductorScheme(t *testing.T) {
	const secret = "ops-secret-77"
	trig := Trigger{ID: "ops", Name: "ops", Job: "release", Auth: AuthHMACOpsConductor, SecretRef: "ops-ref", Enabled: true,
		ParamMap: map[string]string{"version": "payload.version"}}
	e := newEnv(t, secretMap{"ops-ref": secret}, trig)
	body := []byte(`{"version":"1.4.2"}`)
	send := func(ts time.Time, delivery string) response {
		sig, stamp := opsSignature(secret, ts, body)
		h := map[string]string{"Content-Type": "application/json", "X-OpsConductor-Signature": sig, "X-OpsConductor-Timestamp": stamp}
		if delivery != "" {
			h["X-OpsConductor-Delivery"] = delivery
		}
		return e.post("/hooks/ops", h, body)
	}

	t.Run("a current signed request is accepted", func(t *testing.T) {
		r := send(e.clock.Now(), "o-1")
		mustStatus(t, r, http.StatusOK)
		if r.Outcome.Params["version"] != "1.4.2" {
			t.Fatalf("params %v", r.Outcome.Params)
		}
	})
	t.Run("a stale timestamp is refused", func(t *testing.T) {
		mustStatus(t, send(e.clock.Now().Add(-6*time.Minute), "o-2"), http.StatusUnauthorized)
		if !errors.Is(e.lastErr(), ErrStale) {
			t.Fatalf("error %v, want stale", e.lastErr())
		}
	})
	t.Run("a future timestamp is refused", func(t *testing.T) {
		mustStatus(t, send(e.clock.Now().Add(6*time.Minute), "o-3"), http.StatusUnauthorized)
		if !errors.Is(e.lastErr(), ErrStale) {
			t.Fatalf("error %v, want stale", e.lastErr())
		}
	})
	t.Run("an exact replay without a delivery ID is refused inside the window", func(t *testing.T) {
		ts := e.clock.Now()
		mustStatus(t, send(ts, ""), http.StatusOK)
		e.clock.Advance(time.Minute)
		mustStatus(t, send(ts, ""), http.StatusConflict)
	})
	t.Run("an exact replay with the signature in upper case is still a replay", func(t *testing.T) {
		ts := e.clock.Now().Add(-time.Second)
		sig, stamp := opsSignature(secret, ts, body)
		h := map[string]string{"Content-Type": "application/json", "X-OpsConductor-Timestamp": stamp}
		h["X-OpsConductor-Signature"] = sig
		mustStatus(t, e.post("/hooks/ops", h, body), http.StatusOK)
		h["X-OpsConductor-Signature"] = "sha256=" + strings.ToUpper(strings.TrimPrefix(sig, "sha256="))
		mustStatus(t, e.post("/hooks/ops", h, body), http.StatusConflict)
	})
	t.Run("the same body signed again is a new delivery", func(t *testing.T) {
		mustStatus(t, send(e.clock.Now(), ""), http.StatusOK)
	})
	t.Run("a delivery ID is remembered past the timestamp window", func(t *testing.T) {
		e.clock.Advance(time.Hour)
		mustStatus(t, send(e.clock.Now(), "o-1"), http.StatusConflict)
	})
}

func TestHandleBearer(t *testing.T) {
	const token = "bearer-token-4242"
	trig := Trigger{ID: "b", Name: "b", Job: "j", Auth: AuthBearer, SecretRef: "b-ref", Enabled: true,
		ParamMap: map[string]string{"env": `query.env ?? "staging"`, "who": `headers["x-user"]`}}
	e := newEnv(t, secretMap{"b-ref": token}, trig)

	t.Run("the right token is accepted and the query and headers are mapped", func(t *testing.T) {
		r := e.post("/hooks/b?env=prod&env=dev", map[string]string{"Authorization": "Bearer " + token, "X-User": "ci"}, nil)
		mustStatus(t, r, http.StatusOK)
		if want := map[string]any{"env": "prod", "who": "ci"}; !reflect.DeepEqual(r.Outcome.Params, want) {
			t.Fatalf("params %v, want %v", r.Outcome.Params, want)
		}
	})
	t.Run("a wrong token is refused", func(t *testing.T) {
		mustStatus(t, e.post("/hooks/b", map[string]string{"Authorization": "Bearer nope", "X-User": "ci"}, nil), http.StatusUnauthorized)
	})
	t.Run("a missing token is refused", func(t *testing.T) {
		mustStatus(t, e.post("/hooks/b", map[string]string{"X-User": "ci"}, nil), http.StatusUnauthorized)
	})
	t.Run("an Idempotency-Key is a delivery ID", func(t *testing.T) {
		h := map[string]string{"Authorization": "Bearer " + token, "X-User": "ci", "Idempotency-Key": "build-981"}
		mustStatus(t, e.post("/hooks/b", h, nil), http.StatusOK)
		mustStatus(t, e.post("/hooks/b", h, nil), http.StatusConflict)
	})
	t.Run("expressions cannot read the token", func(t *testing.T) {
		tr := trig
		tr.ID = "b2"
		tr.ParamMap = map[string]string{"leak": `headers.authorization`}
		e.setTrigger(tr)
		r := e.post("/hooks/b2", map[string]string{"Authorization": "Bearer " + token}, nil)
		mustStatus(t, r, http.StatusBadRequest)
		if r.Problem.Field != "param_map.leak" || strings.Contains(r.Problem.Message, token) {
			t.Fatalf("problem %+v", r.Problem)
		}
	})
}

func TestHandleRequestProblems(t *testing.T) {
	const token = "t0k3n"
	base := Trigger{ID: "p", Name: "p", Job: "j", Auth: AuthBearer, SecretRef: "ref", Enabled: true,
		ParamMap: map[string]string{"x": `payload.x ?? ""`}}
	disabled := base
	disabled.ID, disabled.Enabled = "off", false
	broken := base
	broken.ID, broken.ParamMap = "broken", map[string]string{"x": "payload.("}
	nosecret := base
	nosecret.ID, nosecret.SecretRef = "nosecret", "missing-ref"
	e := newEnv(t, secretMap{"ref": token}, base, disabled, broken, nosecret)
	auth := map[string]string{"Authorization": "Bearer " + token}
	with := func(k, v string) map[string]string {
		h := map[string]string{"Authorization": "Bearer " + token}
		h[k] = v
		return h
	}
	tests := []struct {
		name    string
		path    string
		headers map[string]string
		body    []byte
		status  int
		field   string
	}{
		{name: "a disabled trigger refuses deliveries", path: "/hooks/off", headers: auth, status: http.StatusForbidden},
		{name: "a body over 1 MiB is refused", path: "/hooks/p", headers: auth,
			body: bytes.Repeat([]byte(" "), MaxBodySize+1), status: http.StatusRequestEntityTooLarge, field: "body"},
		{name: "a body of exactly 1 MiB is read", path: "/hooks/p", headers: auth,
			body: append(bytes.Repeat([]byte(" "), MaxBodySize-2), '{', '}'), status: http.StatusOK},
		{name: "XML is an unsupported media type", path: "/hooks/p", headers: with("Content-Type", "application/xml"),
			body: []byte("<a/>"), status: http.StatusUnsupportedMediaType},
		{name: "broken JSON names the body", path: "/hooks/p", headers: with("Content-Type", "application/json"),
			body: []byte(`{"x":`), status: http.StatusBadRequest, field: "body"},
		{name: "two JSON values name the body", path: "/hooks/p", headers: with("Content-Type", "application/json"),
			body: []byte(`{} {}`), status: http.StatusBadRequest, field: "body"},
		{name: "GitHub's form with broken JSON names body.payload", path: "/hooks/p",
			headers: with("Content-Type", "application/x-www-form-urlencoded"),
			body:    []byte("payload=%7B"), status: http.StatusBadRequest, field: "body.payload"},
		{name: "a plain form becomes an object", path: "/hooks/p",
			headers: with("Content-Type", "application/x-www-form-urlencoded"),
			body:    []byte("x=1&y=2"), status: http.StatusOK},
		{name: "a stored trigger that does not compile is the server's fault", path: "/hooks/broken", headers: auth,
			status: http.StatusInternalServerError},
		{name: "a secret that cannot be read is the server's fault", path: "/hooks/nosecret", headers: auth,
			status: http.StatusInternalServerError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.post(tt.path, tt.headers, tt.body)
			mustStatus(t, r, tt.status)
			if r.Problem.Field != tt.field {
				t.Fatalf("problem %+v, want field %q", r.Problem, tt.field)
			}
		})
	}
}

func TestParamMapping(t *testing.T) {
	payload := `{
	  "ref": "refs/tags/v1.2.0",
	  "release": {"tag_name": "v1.2.0", "draft": false, "assets": [{"name": "a.tgz", "size": 1024}, {"name": "b.zip", "size": 2048}]},
	  "labels": ["prod", "eu"],
	  "count": 3,
	  "nothing": null
	}`
	tests := []struct {
		name    string
		params  map[string]string
		want    map[string]any
		fields  []string // problems expected, by field
		content string
	}{
		{name: "nested fields are read", params: map[string]string{"tag": "payload.release.tag_name"},
			want: map[string]any{"tag": "v1.2.0"}},
		{name: "array elements are read by index, from the end too", params: map[string]string{
			"first": "payload.release.assets[0].name", "last": "payload.release.assets[-1].size", "label": "payload.labels[1]"},
			want: map[string]any{"first": "a.tgz", "last": float64(2048), "label": "eu"}},
		{name: "whole arrays and objects keep their shape", params: map[string]string{
			"labels": "payload.labels", "asset": "payload.release.assets[0]"},
			want: map[string]any{"labels": []any{"prod", "eu"}, "asset": map[string]any{"name": "a.tgz", "size": float64(1024)}}},
		{name: "expressions compute values", params: map[string]string{
			"names": `map(payload.release.assets, .name)`, "version": `trimPrefix(payload.ref, "refs/tags/")`,
			"big": `payload.count * 2 > 5`, "draft": "payload.release.draft", "joined": `join(payload.labels, ",")`},
			want: map[string]any{"names": []any{"a.tgz", "b.zip"}, "version": "v1.2.0", "big": true, "draft": false, "joined": "prod,eu"}},
		{name: "a default covers a missing field", params: map[string]string{"env": `payload.env ?? "staging"`},
			want: map[string]any{"env": "staging"}},
		{name: "a missing field is an error naming the param", params: map[string]string{"env": "payload.env"},
			fields: []string{"param_map.env"}},
		{name: "a null field is an error naming the param", params: map[string]string{"n": "payload.nothing"},
			fields: []string{"param_map.n"}},
		{name: "a field under a missing object is an error naming the param", params: map[string]string{"x": "payload.missing.deeper"},
			fields: []string{"param_map.x"}},
		{name: "an index past the end is an error naming the param", params: map[string]string{"x": "payload.labels[5]"},
			fields: []string{"param_map.x"}},
		{name: "every failing param is reported at once", params: map[string]string{
			"a": "payload.a", "ok": "payload.count", "b": "payload.labels[9]"},
			fields: []string{"param_map.a", "param_map.b"}},
		{name: "a value JSON cannot carry is an error", params: map[string]string{"inf": "1/0"},
			fields: []string{"param_map.inf"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			trig := Trigger{ID: "m", Name: "m", Job: "j", Auth: AuthBearer, SecretRef: "ref", Enabled: true, ParamMap: tt.params}
			h, err := NewHandler(Config{Secrets: secretMap{"ref": "k"}})
			if err != nil {
				t.Fatal(err)
			}
			req := httptest.NewRequest(http.MethodPost, "/hooks/m", strings.NewReader(payload))
			req.Header.Set("Authorization", "Bearer k")
			req.Header.Set("Content-Type", "application/json")
			out, err := h.Handle(context.Background(), trig, req)
			if tt.fields != nil {
				if err == nil {
					t.Fatalf("mapped %v, want problems in %v", out.Params, tt.fields)
				}
				if got := fields(t, err); !reflect.DeepEqual(got, tt.fields) {
					t.Fatalf("problems in %v, want %v: %v", got, tt.fields, err)
				}
				if !problem.Is(err, problem.KindInvalid) {
					t.Fatalf("%v is not a 400", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(out.Params, tt.want) {
				t.Fatalf("params %#v, want %#v", out.Params, tt.want)
			}
		})
	}
}

func TestHandleRateLimit(t *testing.T) {
	const token = "rl"
	trig := Trigger{ID: "rl", Name: "rl", Job: "j", Auth: AuthBearer, SecretRef: "ref", Enabled: true, RateLimit: 3,
		Filter: `payload.run ?? true`}
	e := newEnv(t, secretMap{"ref": token}, trig)
	send := func(delivery string, body string) response {
		return e.post("/hooks/rl", map[string]string{"Authorization": "Bearer " + token, "Idempotency-Key": delivery}, []byte(body))
	}
	for _, id := range []string{"a", "b"} {
		mustStatus(t, send(id, ""), http.StatusOK)
	}
	t.Run("a replay gives its token back", func(t *testing.T) {
		mustStatus(t, send("a", ""), http.StatusConflict)
	})
	t.Run("a skipped delivery takes no token", func(t *testing.T) {
		r := send("skip", `{"run": false}`)
		mustStatus(t, r, http.StatusOK)
		if !r.Outcome.Skipped {
			t.Fatalf("outcome %+v", r.Outcome)
		}
	})
	t.Run("the third delivery in the minute is accepted", func(t *testing.T) {
		mustStatus(t, send("c", ""), http.StatusOK)
	})
	t.Run("the fourth is refused with Retry-After", func(t *testing.T) {
		r := send("d", "")
		mustStatus(t, r, http.StatusTooManyRequests)
		if r.RetryAfter != "20" {
			t.Fatalf("Retry-After %q, want 20 (one token every 20 s)", r.RetryAfter)
		}
	})
	t.Run("a rate-limited delivery can be sent again later", func(t *testing.T) {
		e.clock.Advance(20 * time.Second)
		mustStatus(t, send("d", ""), http.StatusOK)
		mustStatus(t, send("e", ""), http.StatusTooManyRequests)
	})
}
