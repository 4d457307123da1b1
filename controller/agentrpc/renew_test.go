package agentrpc

import (
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"strings"
	"testing"

	agentv1 "github.com/opsconductor/opsconductor/proto/agent/v1"
)

func certRequest(csr []byte) *agentv1.AgentMessage {
	return &agentv1.AgentMessage{Msg: &agentv1.AgentMessage_CertificateRequest{CertificateRequest: &agentv1.CertificateRequest{CsrDer: csr}}}
}

// recvIssued reads the stream until a CertificateIssued arrives.
func (a *testAgent) recvIssued(t *testing.T) *agentv1.CertificateIssued {
	t.Helper()
	for {
		m, err := a.stream.Recv()
		if err != nil {
			t.Fatalf("waiting for CertificateIssued: %v", err)
		}
		if c := m.GetCertificate(); c != nil {
			return c
		}
	}
}

// checkIssued verifies an issued certificate chains to the agent CA,
// names the agent and is for key.
func (e *env) checkIssued(t *testing.T, c *agentv1.CertificateIssued, id string, key *ecdsa.PrivateKey) *x509.Certificate {
	t.Helper()
	cert, err := x509.ParseCertificate(c.GetCertificateDer())
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(mustParse(e.caDER))
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("issued certificate does not chain to the agent CA: %v", err)
	}
	if got, ok := agentIDFromCert(cert); !ok || got != id {
		t.Fatalf("issued certificate names %q, want %q", got, id)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		t.Fatal("issued certificate is not for the requested key")
	}
	if !c.GetNotAfter().AsTime().Equal(cert.NotAfter) {
		t.Fatalf("not_after %v, certificate says %v", c.GetNotAfter().AsTime(), cert.NotAfter)
	}
	return cert
}

func TestALiveStreamRenewsItsCertificate(t *testing.T) {
	e := newEnvWith(t, fastStreams, nil)
	a, _ := e.connectAgent(t, "web01")
	before := e.agent(t, a.id)

	// A bad CSR is refused with a log line and no certificate: the next
	// message on the stream answers the good request sent after it.
	a.send(t, certRequest([]byte("not a csr")))
	key, csr := newCSR(t)
	a.send(t, certRequest(csr))
	cert := e.checkIssued(t, a.recvIssued(t), a.id, key)
	if !strings.Contains(e.logs.String(), "certificate renewal refused") {
		t.Fatalf("no log line for the bad CSR:\n%s", e.logs.String())
	}

	after := e.agent(t, a.id)
	if after.CertSerial == before.CertSerial || after.CertSerial != cert.SerialNumber.Text(16) {
		t.Fatalf("agent serial %s → %s, want the issued %s", before.CertSerial, after.CertSerial, cert.SerialNumber.Text(16))
	}
	if !after.CertNotAfter.Equal(cert.NotAfter) || e.applied(cmdAgentCert) != 1 {
		t.Fatalf("not_after %v (want %v), %d cert commands", after.CertNotAfter, cert.NotAfter, e.applied(cmdAgentCert))
	}

	// A second request within the minute is refused; after it, granted.
	_, csr2 := newCSR(t)
	a.send(t, certRequest(csr2))
	waitFor(t, "the rate-limited request's log line", func() bool { return strings.Contains(e.logs.String(), "renewed less than a minute ago") })
	e.clock.advance(renewInterval)
	key3, csr3 := newCSR(t)
	a.send(t, certRequest(csr3))
	e.checkIssued(t, a.recvIssued(t), a.id, key3)
	if n := e.applied(cmdAgentCert); n != 2 {
		t.Fatalf("%d cert commands, want 2 (one request was rate-limited)", n)
	}

	// The renewed certificate opens the next stream.
	b := e.open(t, a.id, &tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key})
	b.hello(t)
}
