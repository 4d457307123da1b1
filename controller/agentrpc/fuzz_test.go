package agentrpc

import (
	"crypto/x509"
	"strings"
	"testing"
)

func FuzzParseJoinToken(f *testing.F) {
	f.Add("ocj_0123456789abcdef_" + strings.Repeat("ab", 32))
	f.Add("ocj_0123456789abcdef")
	f.Add("ocj__")
	f.Add("")
	f.Add("ocj_0123456789ABCDEF_" + strings.Repeat("ab", 32))
	f.Fuzz(func(t *testing.T, s string) {
		id, secret, err := parseJoinToken(s)
		if err != nil {
			return
		}
		if formatJoinToken(id, secret) != s {
			t.Fatalf("%q parsed to %q, %q which do not format back", s, id, secret)
		}
	})
}

func FuzzCheckCSR(f *testing.F) {
	_, good := newCSR(f)
	f.Add(good)
	f.Add([]byte{})
	f.Add([]byte("not a csr"))
	bad := append([]byte(nil), good...)
	bad[len(bad)-3] ^= 1
	f.Add(bad)
	f.Fuzz(func(t *testing.T, der []byte) {
		csr, err := checkCSR(der)
		if err != nil {
			return
		}
		if csr.CheckSignature() != nil {
			t.Fatal("accepted a CSR whose signature does not verify")
		}
		if _, err := x509.ParseCertificateRequest(der); err != nil {
			t.Fatal(err)
		}
	})
}

func FuzzSanitizeName(f *testing.F) {
	for _, s := range []string{"Web 01!", "", "---", "ÄÖÜ host", strings.Repeat("a", 200)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n := sanitizeName(s)
		if len(n) > maxNameLen || strings.HasPrefix(n, "-") || strings.HasSuffix(n, "-") || sanitizeName(n) != n {
			t.Fatalf("sanitizeName(%q) = %q", s, n)
		}
	})
}
