package inbound

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// GitHub's documentation gives this pair to check an implementation
// against ("Validating webhook deliveries", "Testing the webhook payload
// validation").
func TestGitHubDocumentedTestVector(t *testing.T) {
	const want = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
	body := []byte("Hello, World!")
	if got := githubSignature("It's a Secret to Everybody", body); got != want {
		t.Fatalf("test helper computes %s, GitHub documents %s", got, want)
	}
	req := httptest.NewRequest(http.MethodPost, "/", nil)
	req.Header.Set("X-Hub-Signature-256", want)
	trig := Trigger{Auth: AuthHMACGitHub}
	if err := Verify(req, body, trig, "It's a Secret to Everybody", time.Now()); err != nil {
		t.Fatalf("Verify refused GitHub's documented example: %v", err)
	}
}

func TestVerify(t *testing.T) {
	const secret = "s3cret-value"
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	body := []byte(`{"ref":"refs/heads/main"}`)
	ops := func(ts time.Time, b []byte) map[string]string {
		sig, stamp := opsSignature(secret, ts, b)
		return map[string]string{"X-OpsConductor-Signature": sig, "X-OpsConductor-Timestamp": stamp}
	}
	tests := []struct {
		name    string
		auth    Auth
		secret  string
		headers map[string]string
		want    error // nil for accepted
		header  string
	}{
		{name: "a GitHub signature over the body is accepted", auth: AuthHMACGitHub,
			headers: map[string]string{"X-Hub-Signature-256": githubSignature(secret, body)}},
		{name: "a GitHub signature made with another secret is refused", auth: AuthHMACGitHub,
			headers: map[string]string{"X-Hub-Signature-256": githubSignature("other", body)},
			want:    ErrBadSignature, header: HeaderGitHubSignature},
		{name: "a GitHub signature over another body is refused", auth: AuthHMACGitHub,
			headers: map[string]string{"X-Hub-Signature-256": githubSignature(secret, []byte(`{"ref":"refs/heads/evil"}`))},
			want:    ErrBadSignature, header: HeaderGitHubSignature},
		{name: "a missing GitHub signature is refused", auth: AuthHMACGitHub,
			want: ErrMissingHeader, header: HeaderGitHubSignature},
		{name: "the SHA-1 X-Hub-Signature alone is refused", auth: AuthHMACGitHub,
			headers: map[string]string{"X-Hub-Signature": "sha1=0123"},
			want:    ErrMissingHeader, header: HeaderGitHubSignature},
		{name: "a signature with another algorithm is malformed", auth: AuthHMACGitHub,
			headers: map[string]string{"X-Hub-Signature-256": "sha1=" + strings.Repeat("ab", 32)},
			want:    ErrMalformedHeader, header: HeaderGitHubSignature},
		{name: "a signature that is not hex is malformed", auth: AuthHMACGitHub,
			headers: map[string]string{"X-Hub-Signature-256": "sha256=" + strings.Repeat("zz", 32)},
			want:    ErrMalformedHeader, header: HeaderGitHubSignature},
		{name: "a truncated signature is malformed", auth: AuthHMACGitHub,
			headers: map[string]string{"X-Hub-Signature-256": githubSignature(secret, body)[:40]},
			want:    ErrMalformedHeader, header: HeaderGitHubSignature},

		{name: "our signature with a current timestamp is accepted", auth: AuthHMACOpsConductor,
			headers: ops(now, body)},
		{name: "our signature five minutes old is still accepted", auth: AuthHMACOpsConductor,
			headers: ops(now.Add(-MaxClockSkew), body)},
		{name: "our signature five minutes ahead is still accepted", auth: AuthHMACOpsConductor,
			headers: ops(now.Add(MaxClockSkew), body)},
		{name: "a stale timestamp is refused", auth: AuthHMACOpsConductor,
			headers: ops(now.Add(-MaxClockSkew-time.Second), body), want: ErrStale, header: HeaderTimestamp},
		{name: "a timestamp from the future is refused", auth: AuthHMACOpsConductor,
			headers: ops(now.Add(MaxClockSkew+time.Second), body), want: ErrStale, header: HeaderTimestamp},
		{name: "a timestamp changed after signing is a bad signature", auth: AuthHMACOpsConductor,
			headers: map[string]string{
				"X-OpsConductor-Signature": ops(now.Add(-time.Hour), body)["X-OpsConductor-Signature"],
				"X-OpsConductor-Timestamp": ops(now, body)["X-OpsConductor-Timestamp"],
			}, want: ErrBadSignature, header: HeaderSignature},
		{name: "a GitHub signature does not pass for ours", auth: AuthHMACOpsConductor,
			headers: map[string]string{"X-OpsConductor-Signature": githubSignature(secret, body), "X-OpsConductor-Timestamp": "1795000000"},
			want:    ErrBadSignature, header: HeaderSignature},
		{name: "our signature without a timestamp is refused", auth: AuthHMACOpsConductor,
			headers: map[string]string{"X-OpsConductor-Signature": ops(now, body)["X-OpsConductor-Signature"]},
			want:    ErrMissingHeader, header: HeaderTimestamp},
		{name: "a timestamp that is not unix seconds is malformed", auth: AuthHMACOpsConductor,
			headers: map[string]string{"X-OpsConductor-Signature": ops(now, body)["X-OpsConductor-Signature"], "X-OpsConductor-Timestamp": now.Format(time.RFC3339)},
			want:    ErrMalformedHeader, header: HeaderTimestamp},
		{name: "our scheme without a signature is refused", auth: AuthHMACOpsConductor,
			headers: map[string]string{"X-OpsConductor-Timestamp": "1795000000"},
			want:    ErrMissingHeader, header: HeaderSignature},

		{name: "the right bearer token is accepted", auth: AuthBearer,
			headers: map[string]string{"Authorization": "Bearer " + secret}},
		{name: "the scheme name is case-insensitive", auth: AuthBearer,
			headers: map[string]string{"Authorization": "bearer " + secret}},
		{name: "a wrong bearer token is refused", auth: AuthBearer,
			headers: map[string]string{"Authorization": "Bearer " + secret + "x"},
			want:    ErrBadSignature, header: HeaderAuthorization},
		{name: "a prefix of the token is refused", auth: AuthBearer,
			headers: map[string]string{"Authorization": "Bearer " + secret[:4]},
			want:    ErrBadSignature, header: HeaderAuthorization},
		{name: "basic auth is malformed", auth: AuthBearer,
			headers: map[string]string{"Authorization": "Basic " + secret},
			want:    ErrMalformedHeader, header: HeaderAuthorization},
		{name: "a missing Authorization is refused", auth: AuthBearer,
			want: ErrMissingHeader, header: HeaderAuthorization},

		{name: "an empty secret refuses everything", auth: AuthBearer, secret: "-",
			headers: map[string]string{"Authorization": "Bearer "}, want: ErrNoSecret},
		{name: "an unknown auth mode refuses everything", auth: "none", want: ErrUnknownAuth},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "/hooks/x", nil)
			for k, v := range tt.headers {
				req.Header.Set(k, v)
			}
			s := secret
			if tt.secret == "-" {
				s = ""
			}
			err := Verify(req, body, Trigger{Auth: tt.auth}, s, now)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			var ae *AuthError
			if !errors.As(err, &ae) || ae.Header != tt.header {
				t.Fatalf("got %#v, want an *AuthError naming %q", err, tt.header)
			}
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("error %q holds the secret", err)
			}
		})
	}
}

func TestSignOpsConductorMatchesTheDocumentedScheme(t *testing.T) {
	ts := time.Unix(1795000000, 0)
	body := []byte(`{"version":"1.4.2"}`)
	sig, stamp := SignOpsConductor("k", ts, body)
	wantSig, wantStamp := opsSignature("k", ts, body)
	if sig != wantSig || stamp != wantStamp {
		t.Fatalf("SignOpsConductor = %s %s, want %s %s", sig, stamp, wantSig, wantStamp)
	}
}
