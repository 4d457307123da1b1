package password

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

const (
	// 16-byte salt and 32-byte key, as Hash makes them.
	goodSalt = "c29tZXNhbHRzb21lc2FsdA"
	goodKey  = "QcxcozRJ1oKpci8mmk9YmlSDjqr60HO6/u1L+p3XNOw"
	good     = "$argon2id$v=19$m=19456,t=2,p=1$" + goodSalt + "$" + goodKey
)

func TestDecodeAccepts(t *testing.T) {
	tests := []struct {
		name    string
		encoded string
		want    Params
	}{
		{"a hash made with DefaultParams decodes to DefaultParams", good, DefaultParams},
		{"the smallest salt and key decode", "$argon2id$v=19$m=8,t=1,p=1$" + b64.EncodeToString(make([]byte, 8)) + "$" + b64.EncodeToString(make([]byte, 16)),
			Params{Memory: 8, Time: 1, Threads: 1, SaltLen: 8, KeyLen: 16}},
		{"the largest parameters decode", "$argon2id$v=19$m=4194304,t=100,p=255$" + goodSalt + "$" + b64.EncodeToString(make([]byte, 1024)),
			Params{Memory: 4194304, Time: 100, Threads: 255, SaltLen: 16, KeyLen: 1024}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, salt, key, err := Decode(tt.encoded)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if p != tt.want {
				t.Errorf("Params = %+v, want %+v", p, tt.want)
			}
			if got := encode(p, salt, key); got != tt.encoded {
				t.Errorf("re-encoded as %q, want %q", got, tt.encoded)
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	withParams := func(params string) string { return "$argon2id$v=19$" + params + "$" + goodSalt + "$" + goodKey }
	tests := []struct {
		name    string
		encoded string
		wantMsg string
	}{
		{"an empty string is rejected", "", "want 5 fields"},
		{"a string far too long is rejected before decoding", good + strings.Repeat("A", 4096), "longer than"},
		{"a bcrypt hash is rejected", "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy", "want 5 fields"},
		{"argon2i is rejected", strings.Replace(good, "argon2id", "argon2i", 1), "not argon2id"},
		{"argon2d is rejected", strings.Replace(good, "argon2id", "argon2d", 1), "not argon2id"},
		{"a missing version is rejected", "$argon2id$m=19456,t=2,p=1$" + goodSalt + "$" + goodKey, "want 5 fields"},
		{"version 16 is rejected", strings.Replace(good, "v=19", "v=16", 1), "version is not 19"},
		{"a version with a leading zero is rejected", strings.Replace(good, "v=19", "v=019", 1), "version is not 19"},
		{"a version field without v= is rejected", strings.Replace(good, "v=19", "19", 1), "no version"},
		{"a missing memory parameter is rejected", withParams("t=2,p=1"), "m missing"},
		{"a missing lanes parameter is rejected", withParams("m=19456,t=2"), "p missing"},
		{"no parameters at all are rejected", withParams(""), "no '='"},
		{"a duplicate parameter is rejected", withParams("m=19456,m=19456,t=2,p=1"), "given twice"},
		{"parameters out of order are rejected", withParams("m=19456,p=1,t=2"), "t missing"},
		{"an unknown parameter is rejected", withParams("m=19456,t=2,p=1,keyid=abc"), "parameter 4 is unknown"},
		{"a long parameter name is rejected", withParams("mem=19456,t=2,p=1"), "parameter 1 is unknown"},
		{"a parameter without a value is rejected", withParams("m,t=2,p=1"), "no '='"},
		{"an empty value is rejected", withParams("m=,t=2,p=1"), "empty number"},
		{"a signed value is rejected", withParams("m=+19456,t=2,p=1"), "not a decimal"},
		{"a value with a leading zero is rejected", withParams("m=019456,t=2,p=1"), "leading zero"},
		{"a value with spaces is rejected", withParams("m=19456, t=2,p=1"), "parameter 2 is unknown"},
		{"zero memory is rejected", withParams("m=0,t=2,p=1"), "memory m=0"},
		{"memory above 4 GiB is rejected", withParams("m=4194305,t=2,p=1"), "memory m=4194305"},
		{"memory that overflows 32 bits is rejected", withParams("m=4294967296,t=2,p=1"), "out of range"},
		{"memory below 8 KiB per lane is rejected", withParams("m=15,t=2,p=2"), "8 KiB per lane"},
		{"zero passes are rejected", withParams("m=19456,t=0,p=1"), "time t=0"},
		{"more than 100 passes are rejected", withParams("m=19456,t=101,p=1"), "time t=101"},
		{"zero lanes are rejected", withParams("m=19456,t=2,p=0"), "threads p=0"},
		{"more than 255 lanes are rejected", withParams("m=19456,t=2,p=256"), "out of range for 8 bits"},
		{"a 7-byte salt is rejected", strings.Replace(good, goodSalt, b64.EncodeToString(make([]byte, 7)), 1), "salt of 7 bytes"},
		{"a 15-byte key is rejected", strings.Replace(good, goodKey, b64.EncodeToString(make([]byte, 15)), 1), "key of 15 bytes"},
		{"a 1025-byte key is rejected", strings.Replace(good, goodKey, b64.EncodeToString(make([]byte, 1025)), 1), "key of 1025 bytes"},
		{"padded base64 is rejected", good + "=", "key is not"},
		{"URL-safe base64 is rejected", strings.Replace(good, "/", "_", 1), "key is not"},
		{"base64 with non-zero trailing bits is rejected", strings.TrimSuffix(good, "w") + "x", "key is not"},
		{"base64 with a newline is rejected", strings.Replace(good, goodSalt, goodSalt[:8]+"\n"+goodSalt[8:], 1), "salt is not"},
		{"an empty salt is rejected", strings.Replace(good, goodSalt, "", 1), "salt of 0 bytes"},
		{"a trailing field is rejected", good + "$", "want 5 fields"},
		{"a leading space is rejected", " " + good, "want 5 fields"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, _, err := Decode(tt.encoded)
			if err == nil {
				t.Fatal("Decode accepted it")
			}
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("error %q does not wrap ErrMalformed", err)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not say %q", err, tt.wantMsg)
			}
			// The error may end up in a log: it must not carry the hash.
			for _, secret := range []string{goodSalt, goodKey} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q contains the salt or key", err)
				}
			}
		})
	}
}

// FuzzDecode: Decode never panics, and whatever it accepts is within bounds
// and re-encodes to exactly the input. Seeds live in testdata/fuzz/FuzzDecode
// and run with every go test.
func FuzzDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, encoded string) {
		p, salt, key, err := Decode(encoded)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %q does not wrap ErrMalformed", err)
			}
			return
		}
		if err := p.validate(); err != nil {
			t.Fatalf("accepted out-of-bounds params %+v: %v", p, err)
		}
		if int(p.SaltLen) != len(salt) || int(p.KeyLen) != len(key) {
			t.Fatalf("SaltLen %d, KeyLen %d for a %d-byte salt and a %d-byte key", p.SaltLen, p.KeyLen, len(salt), len(key))
		}
		if got := encode(p, salt, key); got != encoded {
			t.Fatalf("accepted %q but re-encodes as %q", encoded, got)
		}
		if bytes.Contains([]byte(encoded), []byte{0}) {
			t.Fatalf("accepted a NUL byte in %q", encoded)
		}
	})
}
