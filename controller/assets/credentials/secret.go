package credentials

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/ssh"

	"github.com/opsconductor/opsconductor/controller/problem"
)

// Secret is a credential's secret part, as a client sends it. Which fields
// a kind takes is fixed: password (password), ssh_key (private_key and an
// optional passphrase), token (token), certificate (certificate and key),
// secret (value).
type Secret struct {
	Password    string `json:"password,omitempty"`
	PrivateKey  string `json:"private_key,omitempty"`
	Passphrase  string `json:"passphrase,omitempty"`
	Token       string `json:"token,omitempty"`
	Certificate string `json:"certificate,omitempty"`
	Key         string `json:"key,omitempty"`
	Value       string `json:"value,omitempty"`
}

// UnmarshalJSON decodes strictly, and names a bad field as the request
// holds it ("secret.pin"), never quoting a value.
func (s *Secret) UnmarshalJSON(b []byte) error {
	type plain Secret
	var p plain
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		var typ *json.UnmarshalTypeError
		if errors.As(err, &typ) {
			if typ.Field == "" {
				return problem.Invalid("secret", "must be an object of strings")
			}
			return problem.Invalid("secret."+typ.Field, "must be a string")
		}
		if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return problem.Invalid("secret."+strings.Trim(name, `"`), "unknown field")
		}
		return problem.Invalid("secret", "malformed JSON")
	}
	*s = Secret(p)
	return nil
}

// fields maps the secret's non-empty fields by their JSON names.
func (s *Secret) fields() map[string]string {
	out := map[string]string{}
	for name, v := range map[string]string{"password": s.Password, "private_key": s.PrivateKey, "passphrase": s.Passphrase,
		"token": s.Token, "certificate": s.Certificate, "key": s.Key, "value": s.Value} {
		if v != "" {
			out[name] = v
		}
	}
	return out
}

// kindFields says which secret fields each kind requires and allows.
var kindFields = map[string]struct{ required, optional []string }{
	KindPassword:    {required: []string{"password"}},
	KindSSHKey:      {required: []string{"private_key"}, optional: []string{"passphrase"}},
	KindToken:       {required: []string{"token"}},
	KindCertificate: {required: []string{"certificate", "key"}},
	KindSecret:      {required: []string{"value"}},
}

// MaxSecretField bounds one secret field (a certificate chain fits).
const MaxSecretField = 64 << 10

// Input is a create or replace request.
type Input struct {
	Name        string            `json:"name"`
	Description string            `json:"description,omitempty"`
	Kind        string            `json:"kind"`
	Username    string            `json:"username,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
	// Secret is required on create; on replace, nil keeps the stored one.
	Secret *Secret `json:"secret,omitempty"`
}

var (
	nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)
	roleRE = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`)
)

// derived is what parsing a secret tells about it, kept as metadata.
type derived struct {
	Fingerprint, PublicKey, Subject string
	NotAfter                        time.Time
}

// check validates in, every problem at once, and parses its secret.
// needSecret is false for a replace that keeps the stored secret.
func (in *Input) check(needSecret bool) (derived, error) {
	var errs problem.List
	if !nameRE.MatchString(in.Name) {
		errs.Add("name", "must be 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit, got %q", in.Name)
	}
	if len(in.Description) > 1000 || !utf8.ValidString(in.Description) {
		errs.Add("description", "must be UTF-8, at most 1000 bytes")
	}
	if len(in.Username) > 256 || !utf8.ValidString(in.Username) || strings.ContainsAny(in.Username, "\x00\r\n") {
		errs.Add("username", "must be one line of UTF-8, at most 256 bytes")
	}
	if len(in.Tags) > 64 {
		errs.Add("tags", "at most 64 tags")
	}
	for k, v := range in.Tags {
		if k == "" || len(k) > 128 || len(v) > 256 || strings.ContainsAny(k, "=,\x00") || strings.ContainsRune(v, 0) {
			errs.Add("tags."+k, "tag keys must be 1 to 128 characters without '=' or ','; values at most 256")
		}
	}
	spec, known := kindFields[in.Kind]
	if !known {
		errs.Add("kind", "must be one of %s, got %q", strings.Join(Kinds, ", "), in.Kind)
	}
	if in.Kind == KindPassword && in.Username == "" {
		errs.Add("username", "is required for a password")
	}
	var d derived
	switch {
	case in.Secret == nil && needSecret:
		errs.Add("secret", "is required")
	case in.Secret != nil && known:
		got := in.Secret.fields()
		for name, v := range got {
			if len(v) > MaxSecretField {
				errs.Add("secret."+name, "is longer than %d bytes", MaxSecretField)
			}
		}
		for _, name := range spec.required {
			if got[name] == "" {
				errs.Add("secret."+name, "is required for kind %s", in.Kind)
			}
			delete(got, name)
		}
		for _, name := range spec.optional {
			delete(got, name)
		}
		for name := range got {
			errs.Add("secret."+name, "is not used by kind %s", in.Kind)
		}
		if len(errs) == 0 {
			var err error
			d, err = parseSecret(in.Kind, in.Secret)
			if err != nil {
				return derived{}, err
			}
		}
	}
	return d, errs.Err()
}

// parseSecret checks that a key or certificate is what it claims and
// derives its public metadata. Errors name the field, never its value.
func parseSecret(kind string, s *Secret) (derived, error) {
	switch kind {
	case KindSSHKey:
		return parseSSHKey([]byte(s.PrivateKey), []byte(s.Passphrase))
	case KindCertificate:
		return parseCertificate([]byte(s.Certificate), []byte(s.Key))
	}
	return derived{}, nil
}

// parseSSHKey parses a PEM or OpenSSH private key, opening it with the
// passphrase when one is given.
func parseSSHKey(key, passphrase []byte) (derived, error) {
	var (
		raw any
		err error
	)
	if len(passphrase) > 0 {
		raw, err = ssh.ParseRawPrivateKeyWithPassphrase(key, passphrase)
	} else {
		raw, err = ssh.ParseRawPrivateKey(key)
	}
	var missing *ssh.PassphraseMissingError
	switch {
	case errors.As(err, &missing):
		return derived{}, problem.Invalid("secret.passphrase", "is required: the private key is encrypted")
	case errors.Is(err, x509.IncorrectPasswordError):
		return derived{}, problem.Invalid("secret.passphrase", "does not open the private key")
	case err != nil:
		if len(passphrase) > 0 && strings.Contains(err.Error(), "not encrypted") {
			return derived{}, problem.Invalid("secret.passphrase", "is given but the private key is not encrypted")
		}
		return derived{}, problem.Invalid("secret.private_key", "is not a private key in PEM or OpenSSH form: %v", sanitize(err))
	}
	signer, err := ssh.NewSignerFromKey(raw)
	if err != nil {
		return derived{}, problem.Invalid("secret.private_key", "is not a usable SSH key: %v", sanitize(err))
	}
	pub := signer.PublicKey()
	return derived{
		Fingerprint: ssh.FingerprintSHA256(pub),
		PublicKey:   strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))),
	}, nil
}

// parseCertificate checks that cert (PEM, leaf first) and key (PEM) are a
// pair, and describes the leaf.
func parseCertificate(cert, key []byte) (derived, error) {
	pair, err := tls.X509KeyPair(cert, key)
	if err != nil {
		field := "secret.key"
		if !bytes.Contains(cert, []byte("-----BEGIN CERTIFICATE-----")) || strings.Contains(err.Error(), "certificate") && !strings.Contains(err.Error(), "private key") {
			field = "secret.certificate"
		}
		return derived{}, problem.Invalid(field, "certificate and key are not a matching PEM pair: %v", sanitize(err))
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return derived{}, problem.Invalid("secret.certificate", "does not parse: %v", sanitize(err))
	}
	sum := sha256.Sum256(leaf.Raw)
	return derived{
		Fingerprint: "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:]),
		Subject:     leaf.Subject.String(),
		NotAfter:    leaf.NotAfter.UTC(),
	}, nil
}

// sanitize keeps a parser's error to its first line and bounds it: the
// parsers do not quote their input, but an error must never carry key
// material, so nothing long passes.
func sanitize(err error) string {
	msg, _, _ := strings.Cut(err.Error(), "\n")
	if len(msg) > 120 {
		msg = msg[:120]
	}
	return msg
}

// sealedSecret is the plaintext inside a credential's envelope.
func encodeSecret(s *Secret) ([]byte, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("encode secret: %w", err)
	}
	return b, nil
}

// aad binds an envelope to its credential and kind: ciphertext moved to
// another credential, or relabelled as another kind, does not open.
func aad(id, kind string) []byte { return []byte("credentials/" + id + "/" + kind) }
