// Package keyring owns the controller's keys and the envelope encryption
// built on them. Every secret the controller keeps in the replicated state
// (JWT signing keys, TOTP seeds, credentials, the agent CA key) is sealed
// here: a fresh random AES-256 data key encrypts the secret with
// AES-256-GCM, and a key-encryption key wraps the data key. Only
// ciphertext ever enters Raft, snapshots or the API.
//
// Keys come in two tiers. Root keys never enter the replicated state:
// every controller reads the same key file (or OPSCONDUCTOR_KEYRING_KEY),
// one key per line, oldest first, the last active (Keyring). Root keys
// seal key-encryption keys (KEKs) that live in the replicated state
// (Service): rotating a KEK is one Raft write that reaches every
// controller at once, so a cluster rotates with one command and no
// restart, and a background re-wrap then moves every envelope under the
// new KEK (Holder). Envelopes sealed before the first KEK name a root key
// and still open.
//
// This package must never log, return in an error, or persist a key or a
// plaintext.
package keyring

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
)

// KeySize is the size of every key: AES-256.
const KeySize = 32

// EnvKey is the environment variable that may hold the key file's content
// instead of a file, for platforms that hand secrets in the environment.
const EnvKey = "OPSCONDUCTOR_KEYRING_KEY"

// ErrOpen is returned when an envelope cannot be opened: wrong key,
// tampered ciphertext or associated data that does not match.
var ErrOpen = errors.New("keyring: envelope cannot be opened")

// Sealed is an envelope: a secret encrypted with its own data key, and the
// data key wrapped by the KEK named in KeyID. Nonces are prepended to their
// ciphertexts.
type Sealed struct {
	KeyID      string `json:"kek"`
	WrappedKey []byte `json:"dek"`
	Ciphertext []byte `json:"ct"`
}

// IsZero reports whether s holds nothing.
func (s Sealed) IsZero() bool { return s.KeyID == "" && len(s.Ciphertext) == 0 }

// Keyring holds the KEKs. It is immutable after Parse and safe for
// concurrent use.
type Keyring struct {
	keys   map[string]cipher.AEAD
	order  []string
	active string
}

// KeyID is the public name of a key: the first 8 bytes of SHA-256 over it,
// in hex. It identifies the key in envelopes without revealing it.
func KeyID(key []byte) string {
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:8])
}

// NewKey returns a fresh random key, base64 encoded as a key-file line.
func NewKey() (string, error) {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		return "", fmt.Errorf("generate key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(k), nil
}

// Parse reads key-file content: one base64 key per line, oldest first; blank
// lines and lines starting with # are ignored. The last key is active.
func Parse(content []byte) (*Keyring, error) {
	kr := &Keyring{keys: map[string]cipher.AEAD{}}
	sc := bufio.NewScanner(bytes.NewReader(content))
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		key, err := base64.StdEncoding.DecodeString(text)
		if err != nil {
			return nil, fmt.Errorf("line %d: not base64", line)
		}
		if len(key) != KeySize {
			return nil, fmt.Errorf("line %d: key is %d bytes, want %d", line, len(key), KeySize)
		}
		aead, err := newAEAD(key)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		id := KeyID(key)
		if _, dup := kr.keys[id]; dup {
			return nil, fmt.Errorf("line %d: key %s is listed twice", line, id)
		}
		kr.keys[id] = aead
		kr.order = append(kr.order, id)
		kr.active = id
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read keys: %w", err)
	}
	if kr.active == "" {
		return nil, errors.New("no key found")
	}
	return kr, nil
}

// Load reads the keyring from the environment when it holds EnvKey, else
// from path. It refuses a key file readable by group or others.
func Load(path string, getenv func(string) string) (*Keyring, error) {
	if v := getenv(EnvKey); v != "" {
		kr, err := Parse([]byte(v))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", EnvKey, err)
		}
		return kr, nil
	}
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("keyring file: %w", err)
	}
	if info.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("keyring file %s is mode %v: it must be readable by its owner only (chmod 600)", path, info.Mode().Perm())
	}
	content, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("keyring file: %w", err)
	}
	kr, err := Parse(content)
	if err != nil {
		return nil, fmt.Errorf("keyring file %s: %w", path, err)
	}
	return kr, nil
}

// Create writes a new key file with one fresh key at path (mode 0600),
// refusing to overwrite an existing file.
func Create(path string) error {
	key, err := NewKey()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create keyring file: %w", err)
	}
	content := "# OpsConductor keyring: one base64 AES-256 key per line, oldest first; the last is active.\n" + key + "\n"
	if _, err := f.WriteString(content); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("write keyring file: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("sync keyring file: %w", err)
	}
	return f.Close()
}

// LoadOrCreate is Load, creating the file first when neither it nor the
// environment variable exists. Single-server controllers use it; a cluster
// shares one file made by `opsconductor operator keyring init`.
func LoadOrCreate(path string, getenv func(string) string) (kr *Keyring, created bool, err error) {
	if getenv(EnvKey) == "" {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			if err := Create(path); err != nil {
				return nil, false, err
			}
			created = true
		}
	}
	kr, err = Load(path, getenv)
	return kr, created, err
}

// ActiveKeyID names the key that seals new envelopes.
func (k *Keyring) ActiveKeyID() string { return k.active }

// KeyIDs lists every key, oldest first.
func (k *Keyring) KeyIDs() []string { return append([]string(nil), k.order...) }

// Seal encrypts plaintext in a new envelope under the active key. aad binds
// the envelope to its context (say "identity/signing-key/<kid>"): opening
// it with any other aad fails, so an envelope cannot be moved to another
// record.
func (k *Keyring) Seal(plaintext, aad []byte) (Sealed, error) {
	return sealEnvelope(k.active, k.keys[k.active], plaintext, aad)
}

// Open decrypts an envelope made by Seal with the same aad.
func (k *Keyring) Open(s Sealed, aad []byte) ([]byte, error) {
	kek, ok := k.keys[s.KeyID]
	if !ok {
		return nil, fmt.Errorf("%w: key %q is not in this keyring", ErrOpen, s.KeyID)
	}
	return openEnvelope(kek, s, aad)
}

// Rewrap returns s with its data key wrapped by the active key. The
// ciphertext is unchanged; this is what keyring rotation runs over every
// stored envelope.
func (k *Keyring) Rewrap(s Sealed, aad []byte) (Sealed, error) {
	if s.KeyID == k.active {
		return s, nil
	}
	kek, ok := k.keys[s.KeyID]
	if !ok {
		return Sealed{}, fmt.Errorf("%w: key %q is not in this keyring", ErrOpen, s.KeyID)
	}
	return rewrapEnvelope(kek, k.active, k.keys[k.active], s, aad)
}

// has reports whether the keyring holds the key named id.
func (k *Keyring) has(id string) bool { _, ok := k.keys[id]; return ok }

// sealEnvelope encrypts plaintext under a fresh data key and wraps that
// key with kek, named kid.
func sealEnvelope(kid string, kek cipher.AEAD, plaintext, aad []byte) (Sealed, error) {
	dek := make([]byte, KeySize)
	if _, err := rand.Read(dek); err != nil {
		return Sealed{}, fmt.Errorf("keyring seal: data key: %w", err)
	}
	data, err := newAEAD(dek)
	if err != nil {
		return Sealed{}, fmt.Errorf("keyring seal: %w", err)
	}
	ct, err := seal(data, plaintext, aad)
	if err != nil {
		return Sealed{}, fmt.Errorf("keyring seal: %w", err)
	}
	wrapped, err := seal(kek, dek, wrapAAD(kid, aad))
	if err != nil {
		return Sealed{}, fmt.Errorf("keyring seal: wrap data key: %w", err)
	}
	return Sealed{KeyID: kid, WrappedKey: wrapped, Ciphertext: ct}, nil
}

// openEnvelope decrypts s, whose data key kek wraps.
func openEnvelope(kek cipher.AEAD, s Sealed, aad []byte) ([]byte, error) {
	dek, err := unwrap(kek, s, aad)
	if err != nil {
		return nil, err
	}
	data, err := newAEAD(dek)
	if err != nil {
		return nil, fmt.Errorf("keyring open: %w", err)
	}
	pt, err := open(data, s.Ciphertext, aad)
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}

// rewrapEnvelope moves s's data key from kek to the key named to. The
// ciphertext is unchanged, and is checked to open first: a rewrap must
// never turn a damaged envelope into one that looks fresh.
func rewrapEnvelope(kek cipher.AEAD, to string, toKEK cipher.AEAD, s Sealed, aad []byte) (Sealed, error) {
	dek, err := unwrap(kek, s, aad)
	if err != nil {
		return Sealed{}, err
	}
	data, err := newAEAD(dek)
	if err != nil {
		return Sealed{}, fmt.Errorf("keyring rewrap: %w", err)
	}
	if _, err := open(data, s.Ciphertext, aad); err != nil {
		return Sealed{}, ErrOpen
	}
	wrapped, err := seal(toKEK, dek, wrapAAD(to, aad))
	if err != nil {
		return Sealed{}, fmt.Errorf("keyring rewrap: %w", err)
	}
	return Sealed{KeyID: to, WrappedKey: wrapped, Ciphertext: s.Ciphertext}, nil
}

func unwrap(kek cipher.AEAD, s Sealed, aad []byte) ([]byte, error) {
	dek, err := open(kek, s.WrappedKey, wrapAAD(s.KeyID, aad))
	if err != nil || len(dek) != KeySize {
		return nil, ErrOpen
	}
	return dek, nil
}

// wrapAAD binds the wrapped data key to the envelope's context and to the
// KEK's name, so a wrapped key cannot be swapped between envelopes.
func wrapAAD(kid string, aad []byte) []byte {
	out := make([]byte, 0, len(kid)+1+len(aad))
	out = append(out, kid...)
	out = append(out, 0)
	return append(out, aad...)
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("aes: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("gcm: %w", err)
	}
	return aead, nil
}

// seal uses a random 96-bit nonce per message. Each data key seals exactly
// one message and each KEK wraps far fewer than 2^32 keys in its life, well
// inside GCM's random-nonce bound.
func seal(aead cipher.AEAD, plaintext, aad []byte) ([]byte, error) {
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plaintext)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("nonce: %w", err)
	}
	return aead.Seal(nonce, nonce, plaintext, aad), nil
}

func open(aead cipher.AEAD, data, aad []byte) ([]byte, error) {
	if len(data) < aead.NonceSize()+aead.Overhead() {
		return nil, ErrOpen
	}
	return aead.Open(nil, data[:aead.NonceSize()], data[aead.NonceSize():], aad)
}
