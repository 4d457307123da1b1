package password

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Bounds that Decode enforces on stored parameters. A stored hash is trusted
// more than a request, but a corrupted or planted one must not make Verify
// allocate terabytes or loop for minutes.
const (
	maxMemory  = 4 * 1024 * 1024 // KiB, 4 GiB
	maxTime    = 100
	minSaltLen = 8
	maxSaltLen = 1024
	minKeyLen  = 16
	maxKeyLen  = 1024
	// maxEncodedLen is above the longest string the bounds allow, so that a
	// huge input is refused before any base64 is decoded.
	maxEncodedLen = 64 + (maxSaltLen+maxKeyLen)*4/3 + 8
)

// ErrMalformed is wrapped by every Decode error, for callers that only need
// to tell a corrupt stored hash from other failures.
var ErrMalformed = errors.New("password: malformed argon2id hash")

// b64 is the encoding of the reference implementation (unpadded standard
// alphabet). Strict rejects non-zero trailing bits, which would otherwise let
// two strings decode to the same bytes.
var b64 = base64.RawStdEncoding.Strict()

// encode returns the PHC string for a hash. It is the inverse of Decode.
func encode(p Params, salt, key []byte) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key))
}

// Decode parses a PHC string made by Hash:
//
//	$argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<key>
//
// It is strict, because the string is stored outside the process: only
// argon2id version 19, the parameters m, t and p exactly once each in that
// order, decimal numbers without leading zeros, parameters within sane bounds,
// and unpadded standard base64. Anything it accepts re-encodes to the same
// string. Errors wrap ErrMalformed and never include the input.
func Decode(encoded string) (p Params, salt, key []byte, err error) {
	if len(encoded) > maxEncodedLen {
		return Params{}, nil, nil, malformed("longer than %d bytes", maxEncodedLen)
	}
	// "$argon2id$v=19$m=..,t=..,p=..$salt$key" splits into 6 fields, the first empty.
	f := strings.Split(encoded, "$")
	if len(f) != 6 || f[0] != "" {
		return Params{}, nil, nil, malformed("want 5 fields separated by '$', have %d", len(f)-1)
	}
	if f[1] != "argon2id" {
		return Params{}, nil, nil, malformed("algorithm is not argon2id")
	}
	v, ok := strings.CutPrefix(f[2], "v=")
	if !ok {
		return Params{}, nil, nil, malformed("no version field")
	}
	if n, err := parseUint(v, 32); err != nil || n != argon2.Version {
		return Params{}, nil, nil, malformed("version is not %d", argon2.Version)
	}
	if p, err = parseParams(f[3]); err != nil {
		return Params{}, nil, nil, err
	}
	if salt, err = decodeB64("salt", f[4]); err != nil {
		return Params{}, nil, nil, err
	}
	if key, err = decodeB64("key", f[5]); err != nil {
		return Params{}, nil, nil, err
	}
	p.SaltLen, p.KeyLen = uint32(len(salt)), uint32(len(key))
	if err := p.validate(); err != nil {
		return Params{}, nil, nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return p, salt, key, nil
}

// parseParams parses "m=19456,t=2,p=1".
func parseParams(s string) (Params, error) {
	names := [3]string{"m", "t", "p"}
	bits := [3]int{32, 32, 8}
	var vals [3]uint64
	kvs := strings.Split(s, ",")
	for i, kv := range kvs {
		name, val, ok := strings.Cut(kv, "=")
		if !ok {
			return Params{}, malformed("parameter %d has no '='", i+1)
		}
		j := strings.Index("mtp", name)
		if len(name) != 1 || j < 0 {
			return Params{}, malformed("parameter %d is unknown (want m, t, p)", i+1)
		}
		switch {
		case j < i:
			return Params{}, malformed("parameter %s given twice or out of order (want m, t, p)", name)
		case j > i:
			return Params{}, malformed("parameter %s missing (want m, t, p in that order)", names[i])
		}
		n, err := parseUint(val, bits[j])
		if err != nil {
			return Params{}, malformed("parameter %s: %v", name, err)
		}
		vals[j] = n
	}
	if len(kvs) < 3 {
		return Params{}, malformed("parameter %s missing", names[len(kvs)])
	}
	if len(kvs) > 3 {
		return Params{}, malformed("more than 3 parameters")
	}
	return Params{Memory: uint32(vals[0]), Time: uint32(vals[1]), Threads: uint8(vals[2])}, nil
}

// parseUint parses a canonical decimal: digits only, no sign, no leading zero.
func parseUint(s string, bitSize int) (uint64, error) {
	if s == "" {
		return 0, errors.New("empty number")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, errors.New("not a decimal number")
		}
	}
	if len(s) > 1 && s[0] == '0' {
		return 0, errors.New("leading zero")
	}
	n, err := strconv.ParseUint(s, 10, bitSize)
	if err != nil {
		return 0, fmt.Errorf("out of range for %d bits", bitSize)
	}
	return n, nil
}

func decodeB64(field, s string) ([]byte, error) {
	// The decoder skips '\r' and '\n'; a stored hash never contains them.
	if strings.ContainsAny(s, "\r\n") {
		return nil, malformed("%s is not unpadded standard base64", field)
	}
	b, err := b64.DecodeString(s)
	if err != nil {
		return nil, malformed("%s is not unpadded standard base64", field)
	}
	return b, nil
}

// validate checks p against the bounds Decode enforces.
func (p Params) validate() error {
	switch {
	case p.Memory == 0 || p.Memory > maxMemory:
		return fmt.Errorf("memory m=%d KiB is outside 1..%d", p.Memory, maxMemory)
	case p.Time == 0 || p.Time > maxTime:
		return fmt.Errorf("time t=%d is outside 1..%d", p.Time, maxTime)
	case p.Threads == 0:
		return errors.New("threads p=0, want at least 1")
	case p.Memory < 8*uint32(p.Threads):
		// argon2 needs 8 KiB per lane and would silently raise m otherwise.
		return fmt.Errorf("memory m=%d KiB is below 8 KiB per lane (p=%d)", p.Memory, p.Threads)
	case p.SaltLen < minSaltLen || p.SaltLen > maxSaltLen:
		return fmt.Errorf("salt of %d bytes is outside %d..%d", p.SaltLen, minSaltLen, maxSaltLen)
	case p.KeyLen < minKeyLen || p.KeyLen > maxKeyLen:
		return fmt.Errorf("key of %d bytes is outside %d..%d", p.KeyLen, minKeyLen, maxKeyLen)
	}
	return nil
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}
