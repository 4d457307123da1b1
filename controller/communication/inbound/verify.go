package inbound

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Header names of the schemes Verify knows.
const (
	HeaderGitHubSignature = "X-Hub-Signature-256"
	HeaderSignature       = "X-OpsConductor-Signature"
	HeaderTimestamp       = "X-OpsConductor-Timestamp"
	HeaderAuthorization   = "Authorization"
)

// MaxClockSkew is how far an X-OpsConductor-Timestamp may be from the
// controller's clock, either way. Past it a captured request can no longer
// be replayed even if its delivery ID has been forgotten.
const MaxClockSkew = 5 * time.Minute

// Reasons a request fails authentication. They are for logs and tests: the
// sender is told only that authentication failed (see [Handler.Handle]).
var (
	ErrMissingHeader   = errors.New("missing header")
	ErrMalformedHeader = errors.New("malformed header")
	ErrBadSignature    = errors.New("signature or token does not match")
	ErrStale           = errors.New("timestamp outside the allowed window")
	ErrNoSecret        = errors.New("the trigger's secret is empty")
	ErrUnknownAuth     = errors.New("unknown auth mode")
)

// AuthError is a failed authentication: which header, and why.
type AuthError struct {
	Header string
	Reason error // one of the Err* values above
	Detail string
}

func (e *AuthError) Error() string {
	msg := "webhook authentication failed: "
	if e.Header != "" {
		msg += e.Header + ": "
	}
	msg += e.Reason.Error()
	if e.Detail != "" {
		msg += " (" + e.Detail + ")"
	}
	return msg
}

// Unwrap lets errors.Is match the reason.
func (e *AuthError) Unwrap() error { return e.Reason }

func authErr(header string, reason error, detail string) *AuthError {
	return &AuthError{Header: header, Reason: reason, Detail: detail}
}

// Verify authenticates req (whose body has already been read into body)
// with trig's auth mode and secret. It returns nil or an *AuthError. Every
// comparison of secret material is constant-time.
func Verify(req *http.Request, body []byte, trig Trigger, secret string, now time.Time) error {
	if secret == "" {
		// An empty HMAC key or token would let anyone sign.
		return authErr("", ErrNoSecret, "")
	}
	switch trig.Auth {
	case AuthHMACGitHub:
		want, err := signatureHeader(req, HeaderGitHubSignature)
		if err != nil {
			return err
		}
		if !hmac.Equal(want, mac(secret, body)) {
			return authErr(HeaderGitHubSignature, ErrBadSignature, "")
		}
		return nil
	case AuthHMACOpsConductor:
		want, err := signatureHeader(req, HeaderSignature)
		if err != nil {
			return err
		}
		raw := req.Header.Get(HeaderTimestamp)
		if raw == "" {
			return authErr(HeaderTimestamp, ErrMissingHeader, "")
		}
		ts, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			return authErr(HeaderTimestamp, ErrMalformedHeader, "want unix seconds")
		}
		signed := make([]byte, 0, len(raw)+1+len(body))
		signed = append(append(append(signed, raw...), '.'), body...)
		if !hmac.Equal(want, mac(secret, signed)) {
			return authErr(HeaderSignature, ErrBadSignature, "")
		}
		// The window is checked after the signature so that a logged
		// "stale" always means a genuine but old (or clock-skewed)
		// request, never a forgery.
		skew := now.Sub(time.Unix(ts, 0))
		if skew > MaxClockSkew || skew < -MaxClockSkew {
			return authErr(HeaderTimestamp, ErrStale, fmt.Sprintf("%s from the controller's clock", skew.Round(time.Second)))
		}
		return nil
	case AuthBearer:
		h := req.Header.Get(HeaderAuthorization)
		if h == "" {
			return authErr(HeaderAuthorization, ErrMissingHeader, "")
		}
		scheme, token, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return authErr(HeaderAuthorization, ErrMalformedHeader, "want Bearer <token>")
		}
		// Comparing digests keeps the comparison constant-time in the
		// token's length too, which ConstantTimeCompare alone is not.
		got, exp := sha256.Sum256([]byte(strings.TrimSpace(token))), sha256.Sum256([]byte(secret))
		if !hmac.Equal(got[:], exp[:]) {
			return authErr(HeaderAuthorization, ErrBadSignature, "")
		}
		return nil
	}
	return authErr("", ErrUnknownAuth, string(trig.Auth))
}

// signatureHeader decodes a `sha256=<hex>` header.
func signatureHeader(req *http.Request, name string) ([]byte, error) {
	h := req.Header.Get(name)
	if h == "" {
		return nil, authErr(name, ErrMissingHeader, "")
	}
	algo, hexSig, ok := strings.Cut(strings.TrimSpace(h), "=")
	if !ok || algo != "sha256" {
		return nil, authErr(name, ErrMalformedHeader, "want sha256=<hex>")
	}
	sig, err := hex.DecodeString(hexSig)
	if err != nil || len(sig) != sha256.Size {
		return nil, authErr(name, ErrMalformedHeader, "want 64 hex digits after sha256=")
	}
	return sig, nil
}

func mac(secret string, data []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(data)
	return m.Sum(nil)
}

// SignOpsConductor returns the X-OpsConductor-Signature and
// X-OpsConductor-Timestamp values for body sent at ts, for senders written
// in Go and for the "send test" of a trigger.
func SignOpsConductor(secret string, ts time.Time, body []byte) (signature, timestamp string) {
	timestamp = strconv.FormatInt(ts.Unix(), 10)
	signed := append([]byte(timestamp+"."), body...)
	return "sha256=" + hex.EncodeToString(mac(secret, signed)), timestamp
}
