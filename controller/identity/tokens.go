package identity

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	lru "github.com/hashicorp/golang-lru"

	"github.com/opsconductor/opsconductor/controller/problem"
)

// Token shapes. The prefixes make leaked secrets recognisable to secret
// scanners and let Authenticate tell an API token from a JWT without
// trying to parse it.
const (
	apiTokenPrefix     = "oct_"
	refreshTokenPrefix = "ocr_"
	secretBytes        = 32 // 256 bits
)

// accessClaims are the JWT claims of an access token.
type accessClaims struct {
	jwt.RegisteredClaims
	SessionID string   `json:"sid"`
	Username  string   `json:"name"`
	Roles     []string `json:"roles"`
	PwdChange bool     `json:"pwd_change,omitempty"`
}

// randomSecret returns n random bytes, URL-safe base64 encoded.
func randomSecret(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// newID returns a prefixed random identifier (96 bits, hex).
func newID(prefix string) (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random id: %w", err)
	}
	return prefix + hex.EncodeToString(b), nil
}

// hashSecret is the stored form of a random secret. A fast hash is right
// here: the secret has 256 bits of entropy, so there is nothing to guess.
func hashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

func equalHashes(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// splitToken parses "<prefix><id>.<secret>" (refresh) or
// "<prefix><id>_<secret>" (API) tokens.
func splitToken(token, prefix string, sep byte) (id, secret string, ok bool) {
	rest, found := strings.CutPrefix(token, prefix)
	if !found {
		return "", "", false
	}
	i := strings.IndexByte(rest, sep) // IDs are hex; secrets may contain the separator
	if i <= 0 || i == len(rest)-1 || len(rest) > 256 {
		return "", "", false
	}
	return rest[:i], rest[i+1:], true
}

// signAccess signs an access token for a session.
func signAccess(key ed25519.PrivateKey, kid string, c accessClaims) (string, error) {
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	if err != nil {
		return "", fmt.Errorf("sign access token: %w", err)
	}
	return s, nil
}

// errBadToken is what every rejected access token looks like from outside:
// the reason goes to the debug log, never to the client.
var errBadToken = problem.New(problem.KindUnauthenticated, "invalid_token", "the access token is invalid or expired")

// verifier checks access tokens. Only EdDSA is accepted, and only with a
// key the cluster knows by kid: this is what defeats "alg": "none" and the
// HS256-with-the-public-key confusion.
//
// A token that verified once is remembered by its exact bytes until it
// expires, so that a client's repeated requests pay for the Ed25519
// signature check once rather than every time. Expiry and the signing
// key's presence are still checked on every use, and the session and user
// are checked by the caller every time.
type verifier struct {
	parser *jwt.Parser
	keys   func(kid string) (ed25519.PublicKey, bool)
	now    func() time.Time
	leeway time.Duration
	seen   *lru.Cache // token string → *verified
}

type verified struct {
	claims *accessClaims
	kid    string
}

// verifiedCacheSize bounds the memory the cache holds: about 1 KB a token.
const verifiedCacheSize = 16384

func newVerifier(issuer, audience string, leeway time.Duration, now func() time.Time, keys func(string) (ed25519.PublicKey, bool)) *verifier {
	return &verifier{
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
			jwt.WithIssuer(issuer),
			jwt.WithAudience(audience),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithLeeway(leeway),
			jwt.WithTimeFunc(now),
		),
		keys: keys, now: now, leeway: leeway,
		seen: must(lru.New(verifiedCacheSize)),
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func (v *verifier) verify(token string) (*accessClaims, error) {
	if hit, ok := v.seen.Get(token); ok {
		e := hit.(*verified)
		if _, known := v.keys(e.kid); known && v.now().Before(e.claims.ExpiresAt.Add(v.leeway)) {
			return e.claims, nil
		}
		v.seen.Remove(token)
	}
	var c accessClaims
	var kid string
	_, err := v.parser.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		var ok bool
		kid, ok = t.Header["kid"].(string)
		if !ok || kid == "" {
			return nil, errors.New("no kid header")
		}
		key, ok := v.keys(kid)
		if !ok {
			return nil, fmt.Errorf("unknown kid %q", kid)
		}
		return key, nil
	})
	if err != nil {
		return nil, err
	}
	if c.Subject == "" || c.SessionID == "" || c.ID == "" {
		return nil, errors.New("missing sub, sid or jti")
	}
	v.seen.Add(token, &verified{claims: &c, kid: kid})
	return &c, nil
}
