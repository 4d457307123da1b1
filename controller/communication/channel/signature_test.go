package channel

import (
	"errors"
	"testing"
	"time"
)

func TestVerifySignature(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"event":"run.failed"}`)
	ts := "1800000000"
	good := Sign("secret", ts, body)
	cases := []struct {
		name    string
		secret  string
		ts      string
		body    []byte
		header  string
		now     time.Time
		wantErr error
	}{
		{name: "a fresh correct signature is accepted", secret: "secret", ts: ts, body: body, header: good, now: now},
		{name: "clock skew inside the window is accepted", secret: "secret", ts: ts, body: body, header: good, now: now.Add(-4 * time.Minute)},
		{name: "a changed body is refused", secret: "secret", ts: ts, body: []byte(`{"event":"run.succeeded"}`), header: good, now: now, wantErr: ErrSignatureMismatch},
		{name: "another secret is refused", secret: "other", ts: ts, body: body, header: good, now: now, wantErr: ErrSignatureMismatch},
		{name: "a replay with a new timestamp is refused", secret: "secret", ts: "1800000060", body: body, header: good, now: now, wantErr: ErrSignatureMismatch},
		{name: "a stale timestamp is refused", secret: "secret", ts: ts, body: body, header: good, now: now.Add(6 * time.Minute), wantErr: ErrTimestampStale},
		{name: "a timestamp from the future is refused", secret: "secret", ts: ts, body: body, header: good, now: now.Add(-6 * time.Minute), wantErr: ErrTimestampStale},
		{name: "a missing signature is refused", secret: "secret", ts: ts, body: body, header: "", now: now, wantErr: ErrSignatureMissing},
		{name: "a signature without the sha256= prefix is refused", secret: "secret", ts: ts, body: body, header: good[len("sha256="):], now: now, wantErr: ErrSignatureMalformed},
		{name: "a signature that is not hex is refused", secret: "secret", ts: ts, body: body, header: "sha256=zz", now: now, wantErr: ErrSignatureMalformed},
		{name: "a timestamp that is not a number is refused", secret: "secret", ts: "yesterday", body: body, header: good, now: now, wantErr: ErrTimestampInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := VerifySignature(tc.secret, tc.ts, tc.body, tc.header, tc.now, 5*time.Minute)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Errorf("VerifySignature = %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func TestSignMatchesAKnownVector(t *testing.T) {
	// Computed independently: printf '1700000000.{}' | openssl dgst -sha256 -hmac key
	const want = "sha256=9d713ed406bb7076d4123f0dc2c39d2df5c654ed4b0cd56b52c8b4c940bd63ae"
	if got := Sign("key", "1700000000", []byte("{}")); got != want {
		t.Errorf("Sign = %q, want %q", got, want)
	}
}
