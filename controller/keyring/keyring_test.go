package keyring

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func newRing(t *testing.T, n int) (*Keyring, []string) {
	t.Helper()
	var lines []string
	for range n {
		k, err := NewKey()
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, k)
	}
	kr, err := Parse([]byte(strings.Join(lines, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	return kr, lines
}

func noEnv(string) string { return "" }

func TestSealOpen(t *testing.T) {
	kr, _ := newRing(t, 1)
	aad := []byte("identity/signing-key/k1")
	s, err := kr.Seal([]byte("top secret"), aad)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(s.Ciphertext, []byte("top secret")) {
		t.Fatal("ciphertext contains the plaintext")
	}
	tamper := func(b []byte) []byte { c := bytes.Clone(b); c[len(c)-1] ^= 1; return c }
	tests := []struct {
		name string
		s    Sealed
		aad  []byte
		ok   bool
	}{
		{"the same context opens it", s, aad, true},
		{"another context does not", s, []byte("identity/signing-key/k2"), false},
		{"a flipped ciphertext bit does not", Sealed{s.KeyID, s.WrappedKey, tamper(s.Ciphertext)}, aad, false},
		{"a flipped wrapped-key bit does not", Sealed{s.KeyID, tamper(s.WrappedKey), s.Ciphertext}, aad, false},
		{"an unknown key does not", Sealed{"0011223344556677", s.WrappedKey, s.Ciphertext}, aad, false},
		{"a truncated ciphertext does not", Sealed{s.KeyID, s.WrappedKey, s.Ciphertext[:5]}, aad, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pt, err := kr.Open(tt.s, tt.aad)
			if tt.ok {
				if err != nil || string(pt) != "top secret" {
					t.Fatalf("Open = %q, %v", pt, err)
				}
				return
			}
			if !errors.Is(err, ErrOpen) {
				t.Fatalf("Open err = %v, want ErrOpen", err)
			}
		})
	}
}

func TestEnvelopesCannotBeSwapped(t *testing.T) {
	kr, _ := newRing(t, 1)
	a, _ := kr.Seal([]byte("a"), []byte("ctx"))
	b, _ := kr.Seal([]byte("b"), []byte("ctx"))
	if _, err := kr.Open(Sealed{a.KeyID, b.WrappedKey, a.Ciphertext}, []byte("ctx")); !errors.Is(err, ErrOpen) {
		t.Fatalf("mixed envelope opened: %v", err)
	}
}

func TestRotationKeepsOldEnvelopesAndRewraps(t *testing.T) {
	old, lines := newRing(t, 1)
	s, err := old.Seal([]byte("v"), []byte("ctx"))
	if err != nil {
		t.Fatal(err)
	}
	next, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := Parse([]byte(lines[0] + "\n" + next + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if rotated.ActiveKeyID() == s.KeyID {
		t.Fatal("the appended key is not active")
	}
	if pt, err := rotated.Open(s, []byte("ctx")); err != nil || string(pt) != "v" {
		t.Fatalf("old envelope after rotation: %q, %v", pt, err)
	}
	re, err := rotated.Rewrap(s, []byte("ctx"))
	if err != nil {
		t.Fatal(err)
	}
	if re.KeyID != rotated.ActiveKeyID() {
		t.Fatalf("rewrapped under %s, want %s", re.KeyID, rotated.ActiveKeyID())
	}
	onlyNew, err := Parse([]byte(next))
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := onlyNew.Open(re, []byte("ctx")); err != nil || string(pt) != "v" {
		t.Fatalf("rewrapped envelope with the new key alone: %q, %v", pt, err)
	}
}

func TestParseRejectsBadFiles(t *testing.T) {
	k, _ := NewKey()
	tests := []struct {
		name, content, want string
	}{
		{"an empty file", "# only a comment\n\n", "no key found"},
		{"a line that is not base64", "not base64!", "line 1: not base64"},
		{"a short key", "c2hvcnQ=", "line 1: key is 5 bytes, want 32"},
		{"a key listed twice", k + "\n" + k, "line 2: key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.content))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse err = %v, want %q", err, tt.want)
			}
			if strings.Contains(fmtErr(err), k) {
				t.Fatal("error reveals the key")
			}
		})
	}
}

func fmtErr(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestLoadOrCreate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keyring.key")
	kr, created, err := LoadOrCreate(path, noEnv)
	if err != nil || !created {
		t.Fatalf("first LoadOrCreate: created=%v err=%v", created, err)
	}
	info, err := os.Stat(path)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v", info.Mode().Perm(), err)
	}
	again, created, err := LoadOrCreate(path, noEnv)
	if err != nil || created || again.ActiveKeyID() != kr.ActiveKeyID() {
		t.Fatalf("second LoadOrCreate: created=%v err=%v", created, err)
	}

	t.Run("a file others can read is refused", func(t *testing.T) {
		if err := os.Chmod(path, 0o644); err != nil {
			t.Fatal(err)
		}
		defer os.Chmod(path, 0o600)
		if _, err := Load(path, noEnv); err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Fatalf("Load err = %v", err)
		}
	})
	t.Run("the environment wins over the file", func(t *testing.T) {
		k, _ := NewKey()
		env := func(name string) string {
			if name == EnvKey {
				return k
			}
			return ""
		}
		fromEnv, created, err := LoadOrCreate(filepath.Join(dir, "absent.key"), env)
		if err != nil || created {
			t.Fatalf("LoadOrCreate with env: created=%v err=%v", created, err)
		}
		if fromEnv.ActiveKeyID() == kr.ActiveKeyID() {
			t.Fatal("env key ignored")
		}
		if _, err := os.Stat(filepath.Join(dir, "absent.key")); !errors.Is(err, os.ErrNotExist) {
			t.Fatal("a key file was created although the environment holds the key")
		}
	})
	t.Run("create refuses to overwrite", func(t *testing.T) {
		if err := Create(path); err == nil {
			t.Fatal("Create overwrote an existing key file")
		}
	})
}

func FuzzParse(f *testing.F) {
	k, _ := NewKey()
	f.Add([]byte(k))
	f.Add([]byte("# c\n" + k + "\n\n"))
	f.Add([]byte("AAAA"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, data []byte) {
		kr, err := Parse(data)
		if err != nil {
			return
		}
		s, err := kr.Seal([]byte("x"), nil)
		if err != nil {
			t.Fatal(err)
		}
		if pt, err := kr.Open(s, nil); err != nil || string(pt) != "x" {
			t.Fatalf("round trip: %q %v", pt, err)
		}
	})
}
