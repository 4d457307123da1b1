package credentials

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
)

// FuzzInput feeds create/replace bodies through the strict decoder and
// the checks: nothing panics, and no error ever quotes a secret field.
func FuzzInput(f *testing.F) {
	key, _ := testSSHKey(f, "")
	cert, certKey := testCertificate(f, "fuzz")
	seeds := []Input{
		{Name: "db", Kind: KindPassword, Username: "u", Secret: &Secret{Password: "pw"}},
		{Name: "ssh", Kind: KindSSHKey, Secret: &Secret{PrivateKey: key}},
		{Name: "tls", Kind: KindCertificate, Secret: &Secret{Certificate: cert, Key: certKey}},
		{Name: "t", Kind: KindToken, Tags: map[string]string{"env": "prod"}, Secret: &Secret{Token: "x"}},
	}
	for _, s := range seeds {
		b, _ := json.Marshal(s)
		f.Add(b)
	}
	f.Add([]byte(`{"name":"x","kind":"secret","secret":{"value":"v","extra":1}}`))
	f.Add([]byte(`{"name":"x","kind":"ssh_key","secret":{"private_key":"-----BEGIN RSA PRIVATE KEY-----\nZZZZ\n-----END RSA PRIVATE KEY-----"}}`))
	f.Add([]byte(`{"name":"","kind":"","tags":{"":""}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var in Input
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if dec.Decode(&in) != nil {
			return
		}
		_, err := in.check(true)
		if err == nil || in.Secret == nil {
			return
		}
		msg := err.Error()
		for name, v := range in.Secret.fields() {
			if len(v) >= 8 && strings.Contains(msg, v) {
				t.Fatalf("the error quotes secret.%s: %s", name, msg)
			}
		}
	})
}

// FuzzParseSSHKey: any bytes as a private key and passphrase.
func FuzzParseSSHKey(f *testing.F) {
	key, _ := testSSHKey(f, "")
	enc, _ := testSSHKey(f, "pp")
	f.Add([]byte(key), []byte(""))
	f.Add([]byte(enc), []byte("pp"))
	f.Add([]byte(enc), []byte(""))
	f.Add([]byte("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"), []byte(""))
	f.Fuzz(func(t *testing.T, key, passphrase []byte) {
		d, err := parseSSHKey(key, passphrase)
		if err == nil && !strings.HasPrefix(d.Fingerprint, "SHA256:") {
			t.Fatalf("a parsed key without a fingerprint: %+v", d)
		}
	})
}

// FuzzParseCertificate: any bytes as a certificate and key.
func FuzzParseCertificate(f *testing.F) {
	cert, key := testCertificate(f, "fuzz")
	f.Add([]byte(cert), []byte(key))
	f.Add([]byte(cert), []byte(""))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"), []byte(key))
	f.Fuzz(func(t *testing.T, cert, key []byte) {
		d, err := parseCertificate(cert, key)
		if err == nil && d.Fingerprint == "" {
			t.Fatalf("a parsed certificate without a fingerprint: %+v", d)
		}
	})
}

// BenchmarkResolve is the per-attempt cost of a credential: the scope
// check, the decrypt, the durable use record in the embedded history
// store, and the secrets map an assignment carries.
func BenchmarkResolve(b *testing.B) {
	f := newFixture(b)
	ctx := context.Background()
	if _, err := f.kr.Rotate(ctx, "admin"); err != nil {
		b.Fatal(err)
	}
	key, _ := testSSHKey(b, "")
	f.create(b, Input{Name: "ssh", Kind: KindSSHKey, Username: "deploy", Secret: &Secret{PrivateKey: key}})
	b.ReportAllocs()
	for b.Loop() {
		got, err := f.svc.Resolve(ctx, f.admin, "ssh", Use{AttemptID: "att_bench", TargetName: "web1"})
		if err != nil {
			b.Fatal(err)
		}
		secrets := make(map[string]string, len(got))
		for k, v := range got {
			secrets["login."+k] = v
		}
		if len(secrets) != 2 {
			b.Fatalf("%d secrets", len(secrets))
		}
	}
}

// BenchmarkOpen is the decrypt alone (envelope under a KEK).
func BenchmarkOpen(b *testing.B) {
	f := newFixture(b)
	ctx := context.Background()
	if _, err := f.kr.Rotate(ctx, "admin"); err != nil {
		b.Fatal(err)
	}
	c := f.create(b, Input{Name: "api", Kind: KindToken, Secret: &Secret{Token: "t"}})
	r, err := lookup(f.store.ReadTxn(), c.ID)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.kr.Open(r.Secret, aad(r.ID, r.Kind)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkResolveParallel is BenchmarkResolve with attempts dispatched
// concurrently, as a busy leader does: the history writer commits their
// use records together, one fsync per batch.
func BenchmarkResolveParallel(b *testing.B) {
	f := newFixture(b)
	ctx := context.Background()
	if _, err := f.kr.Rotate(ctx, "admin"); err != nil {
		b.Fatal(err)
	}
	f.create(b, Input{Name: "api", Kind: KindToken, Secret: &Secret{Token: "t"}})
	b.ReportAllocs()
	b.SetParallelism(32)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := f.svc.Resolve(ctx, f.admin, "api", Use{AttemptID: "att_bench"}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
