package channel

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Header names of an outbound webhook. Receivers verify a delivery with
// VerifySignature(secret, r.Header.Get(HeaderTimestamp), body,
// r.Header.Get(HeaderSignature), time.Now(), 5*time.Minute) and drop repeats
// by HeaderIdempotencyKey.
const (
	HeaderTimestamp      = "X-OpsConductor-Timestamp"
	HeaderSignature      = "X-OpsConductor-Signature"
	HeaderEvent          = "X-OpsConductor-Event"
	HeaderIdempotencyKey = "Idempotency-Key"
	signaturePrefix      = "sha256="
)

// Errors returned by VerifySignature. They say what a receiver should log;
// all of them mean "reject the request".
var (
	ErrSignatureMissing   = errors.New("signature header is missing")
	ErrSignatureMalformed = errors.New("signature header is not sha256=<hex>")
	ErrSignatureMismatch  = errors.New("signature does not match the body")
	ErrTimestampInvalid   = errors.New("timestamp is not a Unix time in seconds")
	ErrTimestampStale     = errors.New("timestamp is outside the accepted window")
)

// Sign returns the X-OpsConductor-Signature value for body sent at
// timestamp: "sha256=" + hex(HMAC-SHA256(secret, timestamp + "." + body)).
// The timestamp is inside the MAC so that a captured request cannot be
// replayed later with a fresh timestamp.
func Sign(secret, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(timestamp))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return signaturePrefix + hex.EncodeToString(mac.Sum(nil))
}

// VerifySignature checks a received webhook: the timestamp must be within
// window of now (either side, to allow for clock skew) and header must be
// the HMAC of timestamp and body under secret. It compares in constant time.
// Replays inside the window are the receiver's to catch, by Idempotency-Key.
func VerifySignature(secret, timestamp string, body []byte, header string, now time.Time, window time.Duration) error {
	if header == "" {
		return ErrSignatureMissing
	}
	ts, err := strconv.ParseInt(strings.TrimSpace(timestamp), 10, 64)
	if err != nil || ts <= 0 {
		return fmt.Errorf("%w: %q", ErrTimestampInvalid, timestamp)
	}
	sent := time.Unix(ts, 0)
	if d := now.Sub(sent); d > window || d < -window {
		return fmt.Errorf("%w: sent %s, now %s, window %s", ErrTimestampStale,
			sent.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), window)
	}
	hexSig, ok := strings.CutPrefix(strings.TrimSpace(header), signaturePrefix)
	if !ok {
		return ErrSignatureMalformed
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil || len(got) != sha256.Size {
		return ErrSignatureMalformed
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(timestamp))
	mac.Write([]byte{'.'})
	mac.Write(body)
	if !hmac.Equal(got, mac.Sum(nil)) {
		return ErrSignatureMismatch
	}
	return nil
}
