package session

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/opsconductor/opsconductor/agent/enroll"
	agentv1 "github.com/opsconductor/opsconductor/proto/agent/v1"
)

// sign issues an agent certificate for pub valid over [notBefore, notAfter].
func (ca *testCA) sign(t *testing.T, agentID string, pub any, notBefore, notAfter time.Time) *x509.Certificate {
	t.Helper()
	u, _ := url.Parse(enroll.AgentURI(agentID))
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, NotBefore: notBefore, NotAfter: notAfter,
		URIs: []*url.URL{u}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return cert
}

func TestACertificatePastTwoThirdsOfItsLifeIsRenewedOverTheStream(t *testing.T) {
	ca := newCA(t)
	f := startController(t, ca, "n1", true)
	// Two hours into a two-and-a-half-hour life: past the two-thirds mark.
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	old := ca.sign(t, "a-1", &key.PublicKey, time.Now().Add(-2*time.Hour), time.Now().Add(30*time.Minute))
	id := &enroll.Identity{AgentID: "a-1", Name: "web-1", CA: ca.cert, CAPool: ca.pool(), DataDir: t.TempDir(),
		Certificate: tls.Certificate{Certificate: [][]byte{old.Raw}, PrivateKey: key, Leaf: old}}
	h := runAs(t, id, f.addr)

	if got := recvWithin(t, f.peers, 10*time.Second, "first stream"); !got.Equal(old) {
		t.Fatal("the first stream did not present the enrolled certificate")
	}
	csrDER := recvWithin(t, f.csrs, 10*time.Second, "certificate request")
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil || csr.CheckSignature() != nil {
		t.Fatalf("bad CSR: %v", err)
	}
	// A certificate for another agent is refused and not stored.
	wrong := ca.sign(t, "a-2", csr.PublicKey, time.Now().Add(-time.Minute), time.Now().Add(24*time.Hour))
	f.push <- &agentv1.ControllerMessage{Msg: &agentv1.ControllerMessage_Certificate{Certificate: &agentv1.CertificateIssued{
		CertificateDer: wrong.Raw, NotAfter: timestamppb.New(wrong.NotAfter)}}}
	renewed := ca.sign(t, "a-1", csr.PublicKey, time.Now().Add(-time.Minute), time.Now().Add(24*time.Hour))
	f.push <- &agentv1.ControllerMessage{Msg: &agentv1.ControllerMessage_Certificate{Certificate: &agentv1.CertificateIssued{
		CertificateDer: renewed.Raw, NotAfter: timestamppb.New(renewed.NotAfter)}}}
	h.waitFor(t, "a stored renewal", func(st Status) bool { return st.Renewals == 1 })
	if logs := h.logs.String(); !strings.Contains(logs, "certificate renewal failed") || !strings.Contains(logs, "does not name") {
		t.Fatalf("the wrong agent's certificate was not refused:\n%s", logs)
	}

	for _, name := range []string{enroll.KeyFile, enroll.CertFile} {
		fi, err := os.Stat(filepath.Join(id.DataDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s has mode %v, want 0600", name, fi.Mode().Perm())
		}
	}
	// LoadIdentity reads back what was stored.
	if err := os.WriteFile(filepath.Join(id.DataDir, enroll.IdentityFile), []byte(`{"agent_id":"a-1","name":"web-1"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(id.DataDir, enroll.CAFile), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	loaded, err := enroll.LoadIdentity(id.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	if !loaded.Certificate.Leaf.Equal(renewed) {
		t.Fatal("the data dir does not hold the renewed certificate")
	}

	// The next connection presents the renewed certificate.
	f.kick <- struct{}{}
	if got := recvWithin(t, f.peers, 10*time.Second, "second stream"); !got.Equal(renewed) {
		t.Fatalf("the next stream presented serial %s, want the renewed %s", got.SerialNumber, renewed.SerialNumber)
	}
	h.waitFor(t, "reconnected", func(st Status) bool { return st.Connected && st.Connects == 2 })
}
