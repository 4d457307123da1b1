package password

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"

	"golang.org/x/crypto/argon2"
)

// Params are the argon2id cost parameters. They are stored in every hash, so
// they can be raised later: hashes made with other parameters still verify and
// are reported as needing a rehash.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32 // passes over the memory
	Threads uint8  // lanes
	SaltLen uint32 // bytes
	KeyLen  uint32 // bytes
}

// DefaultParams is OWASP's argon2id recommendation (Password Storage Cheat
// Sheet): 19 MiB of memory, 2 passes, 1 lane, a 16-byte salt and a 32-byte key.
var DefaultParams = Params{Memory: 19 * 1024, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}

// MinParams is the floor below which a Hasher refuses to hash. Hashes stored
// with weaker parameters still verify, and Verify asks for them to be rehashed.
var MinParams = Params{Memory: 19 * 1024, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}

// ErrWeakParams is returned by NewHasher for parameters below MinParams.
var ErrWeakParams = errors.New("password: argon2id parameters are below MinParams")

// Hasher hashes and verifies passwords. Each argon2id computation holds
// Params.Memory of RAM for its whole run, which makes it the denial-of-service
// vector of a login endpoint, so a Hasher runs at most maxConcurrent of them
// at once and makes the rest wait (peak memory is maxConcurrent*Params.Memory).
// A waiting caller gives up when its context ends. It is safe for concurrent use.
type Hasher struct {
	params Params
	sem    chan struct{}
	// dummy is a real hash made with params, for VerifyDummy.
	dummy string
	// key is argon2.IDKey; tests replace it to count or block calls.
	key func(password, salt []byte, p Params) []byte
}

func idKey(password, salt []byte, p Params) []byte {
	return argon2.IDKey(password, salt, p.Time, p.Memory, p.Threads, p.KeyLen)
}

// NewHasher returns a Hasher that hashes with p and runs at most
// maxConcurrent argon2id computations at once. It makes the hash that
// VerifyDummy checks against without running argon2id.
func NewHasher(p Params, maxConcurrent int) (*Hasher, error) {
	if p.Memory < MinParams.Memory || p.Time < MinParams.Time || p.Threads < MinParams.Threads ||
		p.SaltLen < MinParams.SaltLen || p.KeyLen < MinParams.KeyLen {
		return nil, fmt.Errorf("%w: have m=%d,t=%d,p=%d salt=%d key=%d", ErrWeakParams,
			p.Memory, p.Time, p.Threads, p.SaltLen, p.KeyLen)
	}
	return newHasher(p, maxConcurrent, idKey)
}

// newHasher is NewHasher without the MinParams floor, so that tests can use
// cheap parameters and make hashes with weak ones.
func newHasher(p Params, maxConcurrent int, key func(password, salt []byte, p Params) []byte) (*Hasher, error) {
	if err := p.validate(); err != nil {
		return nil, fmt.Errorf("password: %w", err)
	}
	if maxConcurrent < 1 {
		return nil, fmt.Errorf("password: maxConcurrent must be at least 1, have %d", maxConcurrent)
	}
	h := &Hasher{params: p, sem: make(chan struct{}, maxConcurrent), key: key}
	// The dummy is a random salt and a random key in h's format: verifying
	// against it costs exactly what a real hash costs, and no password can
	// match it but by a collision, as with a hash of a thrown-away password.
	// Making it without argon2 keeps 19 MiB and a hash's time out of every
	// controller start.
	salt, sum := make([]byte, p.SaltLen), make([]byte, p.KeyLen)
	rand.Read(salt)
	rand.Read(sum)
	h.dummy = encode(p, salt, sum)
	return h, nil
}

// Params returns the parameters h hashes with.
func (h *Hasher) Params() Params { return h.params }

// Hash returns the PHC string of password with a fresh random salt, e.g.
// $argon2id$v=19$m=19456,t=2,p=1$<salt>$<key> (unpadded standard base64).
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	salt := make([]byte, h.params.SaltLen)
	rand.Read(salt) // never fails; it crashes the program instead (Go 1.24+)
	key, err := h.derive(ctx, password, salt, h.params)
	if err != nil {
		return "", err
	}
	return encode(h.params, salt, key), nil
}

// Verify reports whether password matches encoded, a string made by Hash with
// any parameters that Decode accepts, and whether encoded should be replaced
// by a new Hash of the password because its parameters differ from h's.
// needsRehash is only meaningful when ok is true. err is non-nil when encoded
// is malformed or ctx ended while waiting; a wrong password is not an error.
func (h *Hasher) Verify(ctx context.Context, password, encoded string) (ok, needsRehash bool, err error) {
	p, salt, want, err := Decode(encoded)
	if err != nil {
		return false, false, err
	}
	got, err := h.derive(ctx, password, salt, p)
	if err != nil {
		return false, false, err
	}
	if subtle.ConstantTimeCompare(got, want) != 1 {
		return false, false, nil
	}
	return true, p != h.params, nil
}

// VerifyDummy does the work of a Verify against a hash made with h's
// parameters, and returns false. Call it when a login names an unknown user,
// so that the answer takes as long as a wrong password for a known user and
// does not reveal which users exist. err is non-nil only when ctx ended.
func (h *Hasher) VerifyDummy(ctx context.Context, password string) (bool, error) {
	// The same path as a real login, decoding included; the result is dropped
	// because a random password can match the dummy only by a hash collision.
	_, _, err := h.Verify(ctx, password, h.dummy)
	return false, err
}

// derive computes the argon2id key while holding a slot of the semaphore.
func (h *Hasher) derive(ctx context.Context, password string, salt []byte, p Params) ([]byte, error) {
	// A caller whose context has already ended gets no slot even if one is
	// free, rather than whichever case select picks.
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("password: waiting to hash: %w", err)
	}
	select {
	case h.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("password: waiting to hash: %w", ctx.Err())
	}
	defer func() { <-h.sem }()
	return h.key([]byte(password), salt, p), nil
}
