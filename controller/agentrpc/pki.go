package agentrpc

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/opsconductor/opsconductor/controller/keyring"
)

const (
	// AgentURIPrefix marks an agent certificate: its URI SAN is
	// opsconductor://agent/<agent-id>.
	AgentURIPrefix = "opsconductor://agent/"
	// serverURIPrefix marks a controller's agent-listener certificate.
	serverURIPrefix = "opsconductor://server/"

	caAAD         = "agentrpc/ca"
	caValidity    = 10 * 365 * 24 * time.Hour
	serverCertTTL = 365 * 24 * time.Hour
	// DefaultCertTTL is how long an agent certificate lasts.
	DefaultCertTTL = 30 * 24 * time.Hour
)

// authority is the agent CA, opened: certificate, key, and what TLS needs.
type authority struct {
	cert *x509.Certificate
	der  []byte
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
	pin  string
	// server is this controller's listener certificate, chain [leaf, CA].
	server *tls.Certificate

	ticketsOnce sync.Once
	tickets     *ticketKeys
	ticketsErr  error
}

// newCARow makes a new CA and seals its key.
func newCARow(kr keyring.Sealer, now time.Time) (caRow, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return caRow{}, fmt.Errorf("generate agent CA key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return caRow{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "OpsConductor agent CA", Organization: []string{"OpsConductor"}},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return caRow{}, fmt.Errorf("create agent CA certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return caRow{}, fmt.Errorf("encode agent CA key: %w", err)
	}
	sealed, err := kr.Seal(keyDER, []byte(caAAD))
	if err != nil {
		return caRow{}, fmt.Errorf("seal agent CA key: %w", err)
	}
	return caRow{Key: "ca", CertDER: der, KeySealed: sealed}, nil
}

// openCA parses the stored CA and opens its key.
func openCA(row *caRow, kr keyring.Sealer) (*authority, error) {
	cert, err := x509.ParseCertificate(row.CertDER)
	if err != nil {
		return nil, fmt.Errorf("parse agent CA certificate: %w", err)
	}
	keyDER, err := kr.Open(row.KeySealed, []byte(caAAD))
	if err != nil {
		return nil, fmt.Errorf("open agent CA key: %w", err)
	}
	key, err := x509.ParseECPrivateKey(keyDER)
	if err != nil {
		return nil, fmt.Errorf("parse agent CA key: %w", err)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, errors.New("agent CA key does not match its certificate")
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &authority{cert: cert, der: row.CertDER, key: key, pool: pool, pin: CAPin(cert)}, nil
}

// CAPin is "sha256:<hex>" of the certificate's SubjectPublicKeyInfo: what
// an agent checks before it sends its join token.
func CAPin(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// issueServerCert issues this controller's agent-listener certificate.
func (a *authority) issueServerCert(nodeID string, hosts []string, now time.Time) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate agent listener key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	uri, err := url.Parse(serverURIPrefix + url.PathEscape(nodeID))
	if err != nil {
		return nil, fmt.Errorf("server URI: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "opsconductor controller " + nodeID},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     earliest(now.Add(serverCertTTL), a.cert.NotAfter),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		URIs:         []*url.URL{uri},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	for _, h := range hosts {
		if h == "" {
			continue
		}
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "localhost" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, &key.PublicKey, a.key)
	if err != nil {
		return nil, fmt.Errorf("issue agent listener certificate: %w", err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return &tls.Certificate{Certificate: [][]byte{der, a.der}, PrivateKey: key, Leaf: leaf}, nil
}

// signAgentCert signs an agent's client certificate for the CSR's key.
func (a *authority) signAgentCert(agentID string, csr *x509.CertificateRequest, now time.Time, ttl time.Duration) (*x509.Certificate, error) {
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	uri, err := url.Parse(AgentURIPrefix + agentID)
	if err != nil {
		return nil, fmt.Errorf("agent URI: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: agentID},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     earliest(now.Add(ttl), a.cert.NotAfter),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		URIs:         []*url.URL{uri},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, csr.PublicKey, a.key)
	if err != nil {
		return nil, fmt.Errorf("sign agent certificate: %w", err)
	}
	return x509.ParseCertificate(der)
}

// maxCSRBytes bounds what Enroll parses.
const maxCSRBytes = 16 << 10

// checkCSR parses a PKCS#10 request from outside and accepts it only when
// its signature holds and its key is ECDSA P-256 or Ed25519.
func checkCSR(der []byte) (*x509.CertificateRequest, error) {
	if len(der) == 0 {
		return nil, errors.New("csr_der is empty")
	}
	if len(der) > maxCSRBytes {
		return nil, fmt.Errorf("csr_der is %d bytes, more than %d", len(der), maxCSRBytes)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fmt.Errorf("csr_der is not a PKCS#10 certificate request: %w", err)
	}
	switch k := csr.PublicKey.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("csr_der: ECDSA key on %s; only P-256 is accepted", k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
	default:
		return nil, fmt.Errorf("csr_der: %T keys are not accepted; use ECDSA P-256 or Ed25519", csr.PublicKey)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("csr_der: the signature does not verify: %w", err)
	}
	return csr, nil
}

// agentIDFromCert returns the agent ID in a certificate's URI SAN.
func agentIDFromCert(cert *x509.Certificate) (string, bool) {
	for _, u := range cert.URIs {
		if s := u.String(); strings.HasPrefix(s, AgentURIPrefix) {
			id := strings.TrimPrefix(s, AgentURIPrefix)
			return id, validAgentID(id)
		}
	}
	return "", false
}

func validAgentID(id string) bool {
	rest, ok := strings.CutPrefix(id, "agt_")
	return ok && len(rest) == 16 && isHex(rest)
}

func randomSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("certificate serial: %w", err)
	}
	return n, nil
}

func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
