package inbound

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/opsconductor/opsconductor/controller/problem"
)

// FuzzMapping feeds arbitrary payloads, content types and expressions
// through decoding, the filter and the parameter mapping. Nothing may
// panic; every failure must be a problem naming its field; every success
// must be a JSON value.
func FuzzMapping(f *testing.F) {
	seeds := []struct{ contentType, payload, expr string }{
		{"application/json", string(pushEvent), "payload.repository.full_name"},
		{"application/json", string(pushEvent), "len(payload.commits)"},
		{"application/json", string(pushEvent), `map(payload.commits, .id)`},
		{"application/json", string(pushEvent), `payload.commits[-1].added[0]`},
		{"application/json", `{"a":[1,2,3]}`, "payload.a[7]"},
		{"application/json", `{"a":null}`, "payload.a.b"},
		{"application/json", `[1,"x",true,null]`, "payload[1]"},
		{"application/json", `"just a string"`, "payload + headers.x"},
		{"application/json", `{"n":1e308}`, "payload.n * 10"},
		{"application/json", `{"ts":"2026-11-27T12:00:00Z"}`, "date(payload.ts)"},
		{"application/json", `{}`, "now() - now()"},
		{"", `{"x":1}`, `payload.x ?? "d"`},
		{"text/plain; charset=utf-8", `{"x":1}`, "payload.x > 0"},
		{"application/x-www-form-urlencoded", "payload=%7B%22a%22%3A1%7D", "payload.a"},
		{"application/x-www-form-urlencoded", "a=1&a=2&b=%ZZ", "payload.a"},
		{"application/vnd.api+json", `{"data":{"id":"1"}}`, "payload.data.id"},
		{"application/xml", "<a/>", "payload"},
		{"application/json", `{"x":1} trailing`, "query.q"},
		{"application/json", `{"s":"abc"}`, `repeat(payload.s, 10000000)`},
		{"application/json", `{"a":{"b":{"c":[{"d":"e"}]}}}`, "payload?.a?.b?.c?.[0]?.d"},
	}
	for _, s := range seeds {
		f.Add(s.contentType, []byte(s.payload), s.expr)
	}
	f.Fuzz(func(t *testing.T, contentType string, payload []byte, src string) {
		trig := Trigger{ID: "f", Name: "f", Job: "j", Auth: AuthBearer, SecretRef: "r", Enabled: true,
			ParamMap: map[string]string{"p": src}}
		prog, err := compile(&trig)
		if err != nil {
			if !fieldIs(err, "param_map.p") {
				t.Fatalf("compile error %v does not name param_map.p", err)
			}
			return
		}
		req := httptest.NewRequest(http.MethodPost, "/hooks/f?q=1", bytes.NewReader(payload))
		req.Header.Set("Content-Type", contentType)
		req.Header.Set("X", "y")
		env, err := decodeEnv(req, payload)
		if err != nil {
			if _, ok := problem.As(err); !ok {
				t.Fatalf("decode error %v is not a problem", err)
			}
			return
		}
		params, err := mapParams(prog, env)
		if err != nil {
			if !fieldIs(err, "param_map.p") {
				t.Fatalf("mapping error %v does not name param_map.p", err)
			}
			return
		}
		v, ok := params["p"]
		if !ok || v == nil {
			t.Fatalf("success without a value: %#v", params)
		}
		if _, err := json.Marshal(params); err != nil {
			t.Fatalf("result %#v is not JSON: %v", params, err)
		}
		// The same source as a filter must give a bool or a problem.
		if fprog, err := compileExpr(src, true); err == nil {
			if _, err := runFilter(&program{filter: fprog}, env); err != nil && !fieldIs(err, "filter") {
				t.Fatalf("filter error %v does not name filter", err)
			}
		}
	})
}

func fieldIs(err error, field string) bool {
	p, ok := problem.As(err)
	return ok && p.Kind == problem.KindInvalid && p.Field == field
}

// FuzzVerify feeds arbitrary headers and bodies to every auth mode. Nothing
// may panic; every refusal is an *AuthError; a request is accepted only
// when it carries a correct signature or token, which the fuzzer cannot
// forge.
func FuzzVerify(f *testing.F) {
	const secret = "fuzz-secret"
	now := time.Unix(1795000000, 0)
	body := []byte(`{"ref":"refs/heads/main"}`)
	opsSig, opsTS := opsSignature(secret, now, body)
	for _, auth := range []string{string(AuthHMACGitHub), string(AuthHMACOpsConductor), string(AuthBearer), "other"} {
		f.Add(auth, body, githubSignature(secret, body), "", "", "")
		f.Add(auth, body, "", opsSig, opsTS, "")
		f.Add(auth, body, "", opsSig, "-9223372036854775808", "")
		f.Add(auth, body, "", opsSig, "9223372036854775807", "")
		f.Add(auth, body, "sha256=", "sha256=zz", "1e3", "Bearer")
		f.Add(auth, []byte{}, "sha256="+strings.Repeat("0", 64), "", "", "Bearer "+secret)
		f.Add(auth, body, "", "", "", "bearer  "+secret+" ")
	}
	f.Fuzz(func(t *testing.T, auth string, b []byte, ghSig, sig, ts, authz string) {
		req := httptest.NewRequest(http.MethodPost, "/", nil)
		for k, v := range map[string]string{HeaderGitHubSignature: ghSig, HeaderSignature: sig, HeaderTimestamp: ts, HeaderAuthorization: authz} {
			if v != "" {
				req.Header.Set(k, v)
			}
		}
		err := Verify(req, b, Trigger{Auth: Auth(auth)}, secret, now)
		if err != nil {
			var ae *AuthError
			if !errors.As(err, &ae) || ae.Reason == nil {
				t.Fatalf("refusal %v is not an *AuthError with a reason", err)
			}
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("error %q holds the secret", err)
			}
			return
		}
		// Accepted: it must have been signed (or carry the token) for
		// exactly this body.
		switch Auth(auth) {
		case AuthHMACGitHub:
			if !strings.EqualFold(strings.TrimSpace(ghSig), githubSignature(secret, b)) {
				t.Fatalf("accepted GitHub signature %q for body %q", ghSig, b)
			}
		case AuthHMACOpsConductor:
			// HMAC of "<timestamp as sent>.<body>", computed as GitHub's
			// helper does for a body.
			m := githubSignature(secret, append([]byte(ts+"."), b...))
			if !strings.EqualFold(strings.TrimSpace(sig), m) {
				t.Fatalf("accepted signature %q over %q.%q", sig, ts, b)
			}
		case AuthBearer:
			if !strings.Contains(authz, secret) {
				t.Fatalf("accepted Authorization %q", authz)
			}
		default:
			t.Fatalf("accepted unknown auth mode %q", auth)
		}
	})
}
