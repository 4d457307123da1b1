// Package enroll turns a join token into an agent identity: it checks the
// controller's agent CA against the operator's pin before sending anything
// secret, exchanges the token and a certificate request for a client
// certificate, and keeps key, certificate and CA in the agent's data dir.
//
// It must never send the token to a controller whose certificate chain it
// has not verified against the pin, and never leave a half-written identity
// behind: agent.json is written last and marks an enrolment as complete.
package enroll

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	agentv1 "github.com/opsconductor/opsconductor/proto/agent/v1"
)

// Files in the data dir. agent.json is written last: its presence means
// the other three are complete.
const (
	KeyFile      = "agent.key"
	CertFile     = "agent.crt"
	CAFile       = "ca.crt"
	IdentityFile = "agent.json"
)

// DefaultDialTimeout bounds one attempt to reach one controller.
const DefaultDialTimeout = 10 * time.Second

// ErrAlreadyEnrolled is returned when the data dir holds an enrolment and
// Options.Force is not set.
var ErrAlreadyEnrolled = errors.New("already enrolled")

// ErrInvalidOptions wraps the problems Join finds in its Options before
// it contacts anything.
var ErrInvalidOptions = errors.New("invalid options")

// Options configure Join.
type Options struct {
	// Controllers are host:port addresses of agent listeners, tried in order.
	Controllers []string
	Token       string
	// CAPin is "sha256:<hex>" of the agent CA's SubjectPublicKeyInfo.
	CAPin   string
	DataDir string
	// Name is the name the agent asks for; empty means the hostname.
	Name    string
	Tags    map[string]string
	Version string
	Facts   *agentv1.Facts
	// Force replaces an existing enrolment in DataDir.
	Force bool
	// DialTimeout bounds each controller attempt (DefaultDialTimeout if 0).
	DialTimeout time.Duration
	// Progress, when set, receives one line per step for the operator.
	Progress func(msg string)
}

// Result describes a completed enrolment.
type Result struct {
	AgentID    string
	Name       string
	Controller string // the controller that enrolled the agent
	NotAfter   time.Time
}

// identityFile is agent.json.
type identityFile struct {
	AgentID     string    `json:"agent_id"`
	Name        string    `json:"name"`
	Controllers []string  `json:"controllers"`
	EnrolledAt  time.Time `json:"enrolled_at"`
}

// Join enrols the agent with the first controller that answers.
func Join(ctx context.Context, o Options) (*Result, error) {
	pin, err := checkOptions(o)
	if err != nil {
		return nil, err
	}
	if !o.Force {
		if _, err := os.Stat(filepath.Join(o.DataDir, IdentityFile)); err == nil {
			return nil, fmt.Errorf("%w: %s holds an enrolment; pass --force to replace it", ErrAlreadyEnrolled, o.DataDir)
		}
	}
	progress := o.Progress
	if progress == nil {
		progress = func(string) {}
	}
	if o.Facts == nil {
		o.Facts = &agentv1.Facts{}
	}
	if o.Name == "" {
		o.Name = o.Facts.Hostname
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: o.Name}}, key)
	if err != nil {
		return nil, fmt.Errorf("create certificate request: %w", err)
	}
	req := &agentv1.EnrollRequest{Token: o.Token, CsrDer: csr, Name: o.Name, Tags: o.Tags, Version: o.Version, Facts: o.Facts}

	var unreachable []string
	for _, addr := range o.Controllers {
		progress(fmt.Sprintf("checking the CA of the controller at %s against the pin…", addr))
		resp, err := enrollAt(ctx, addr, pin, req, o.DialTimeout)
		if err != nil {
			var u unreachableError
			if errors.As(err, &u) && ctx.Err() == nil {
				progress(fmt.Sprintf("controller %s unreachable: %v", addr, u.err))
				unreachable = append(unreachable, fmt.Sprintf("%s: %v", addr, u.err))
				continue
			}
			return nil, err
		}
		id, err := checkResponse(resp, pin, &key.PublicKey, addr)
		if err != nil {
			return nil, err
		}
		progress("storing the identity in " + o.DataDir)
		if err := store(o.DataDir, key, resp, identityFile{
			AgentID: resp.AgentId, Name: resp.Name, Controllers: o.Controllers, EnrolledAt: time.Now().UTC(),
		}); err != nil {
			return nil, err
		}
		return &Result{AgentID: resp.AgentId, Name: resp.Name, Controller: addr, NotAfter: id.NotAfter}, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("no controller reachable: %s", strings.Join(unreachable, "; "))
}

// checkOptions reports every problem with o at once, and parses the pin.
func checkOptions(o Options) (Pin, error) {
	var probs []string
	pin, err := ParsePin(o.CAPin)
	if err != nil {
		probs = append(probs, err.Error())
	}
	if len(o.Controllers) == 0 {
		probs = append(probs, "controllers: at least one host:port is required")
	}
	for i, c := range o.Controllers {
		if !strings.Contains(c, ":") {
			probs = append(probs, fmt.Sprintf("controllers[%d]: %q is not host:port", i, c))
		}
	}
	if !strings.HasPrefix(o.Token, "ocj_") || strings.Count(o.Token, "_") < 2 {
		probs = append(probs, `token: not a join token (expected "ocj_<id>_<secret>")`)
	}
	if o.DataDir == "" {
		probs = append(probs, "data dir: required")
	}
	if len(probs) > 0 {
		return pin, fmt.Errorf("%w: %s", ErrInvalidOptions, strings.Join(probs, "; "))
	}
	return pin, nil
}

// Pin is the SHA-256 of a CA certificate's SubjectPublicKeyInfo.
type Pin [sha256.Size]byte

// ParsePin parses "sha256:<64 hex digits>".
func ParsePin(s string) (Pin, error) {
	var p Pin
	h, ok := strings.CutPrefix(s, "sha256:")
	if !ok {
		return p, fmt.Errorf(`ca pin: %q must start with "sha256:"`, s)
	}
	b, err := hex.DecodeString(strings.ToLower(h))
	if err != nil || len(b) != len(p) {
		return p, fmt.Errorf("ca pin: %q is not sha256: followed by 64 hex digits", s)
	}
	copy(p[:], b)
	return p, nil
}

// PinOf returns the pin of a certificate.
func PinOf(c *x509.Certificate) Pin { return sha256.Sum256(c.RawSubjectPublicKeyInfo) }

func (p Pin) String() string { return "sha256:" + hex.EncodeToString(p[:]) }

// unreachableError marks a controller that could not be reached, so that
// Join tries the next one. Any other failure is an answer and ends Join.
type unreachableError struct{ err error }

func (u unreachableError) Error() string { return u.err.Error() }

// enrollAt sends the request to one controller. The TLS handshake checks
// the presented chain against the pin (verifyPinned); gRPC sends nothing
// (and so not the token) until the handshake has succeeded.
func enrollAt(ctx context.Context, addr string, pin Pin, req *agentv1.EnrollRequest, timeout time.Duration) (*agentv1.EnrollResponse, error) {
	if timeout <= 0 {
		timeout = DefaultDialTimeout
	}
	var (
		mu        sync.Mutex
		verifyErr error
	)
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS13,
		// The pin, not the host name, is the trust anchor: controllers are
		// often addressed by IP. VerifyConnection does the whole check.
		InsecureSkipVerify: true, //nolint:gosec // verified in VerifyConnection
		VerifyConnection: func(cs tls.ConnectionState) error {
			err := verifyPinned(cs.PeerCertificates, pin, addr)
			if err != nil {
				mu.Lock()
				verifyErr = err
				mu.Unlock()
			}
			return err
		},
	}
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		return nil, fmt.Errorf("controller %s: %w", addr, err)
	}
	defer cc.Close()
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := agentv1.NewAgentServiceClient(cc).Enroll(cctx, req)
	if err == nil {
		return resp, nil
	}
	mu.Lock()
	vErr := verifyErr
	mu.Unlock()
	if vErr != nil {
		return nil, vErr
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded:
		return nil, unreachableError{err: errors.New(status.Convert(err).Message())}
	}
	return nil, fmt.Errorf("the controller at %s refused the enrolment: %s", addr, status.Convert(err).Message())
}

// verifyPinned checks a controller's presented chain [leaf, …, CA]: one
// certificate must carry the pinned key, the leaf must chain to it alone
// and name a server (opsconductor://server/<node-id>).
func verifyPinned(chain []*x509.Certificate, pin Pin, addr string) error {
	if len(chain) == 0 {
		return fmt.Errorf("the controller at %s presented no certificate", addr)
	}
	var ca *x509.Certificate
	for _, c := range chain[1:] {
		if PinOf(c) == pin {
			ca = c
			break
		}
	}
	if ca == nil {
		presented := "none (the chain holds only the server's certificate)"
		if len(chain) > 1 {
			presented = PinOf(chain[len(chain)-1]).String()
		}
		return fmt.Errorf("ca pin mismatch: the controller at %s presented CA %s, expected %s", addr, presented, pin)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if err := verifyServerLeaf(chain[0], roots); err != nil {
		return fmt.Errorf("the controller at %s: %w", addr, err)
	}
	return nil
}

// verifyServerLeaf checks a controller's certificate against roots, with no
// intermediates and no host name: only the agent CA may sign controllers.
func verifyServerLeaf(leaf *x509.Certificate, roots *x509.CertPool) error {
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return fmt.Errorf("server certificate not signed by the agent CA: %w", err)
	}
	for _, u := range leaf.URIs {
		if u.Scheme == "opsconductor" && u.Host == "server" && len(u.Path) > 1 {
			return nil
		}
	}
	return errors.New("server certificate names no opsconductor://server/<node-id>")
}

// checkResponse verifies what the controller returned: the CA carries the
// pinned key, the certificate chains to it, is for our key and names the
// agent ID the response states.
func checkResponse(resp *agentv1.EnrollResponse, pin Pin, pub *ecdsa.PublicKey, addr string) (*x509.Certificate, error) {
	ca, err := x509.ParseCertificate(resp.CaDer)
	if err != nil {
		return nil, fmt.Errorf("the controller at %s returned an unreadable CA certificate: %w", addr, err)
	}
	if got := PinOf(ca); got != pin {
		return nil, fmt.Errorf("ca pin mismatch: the controller at %s returned CA %s, expected %s", addr, got, pin)
	}
	cert, err := x509.ParseCertificate(resp.CertificateDer)
	if err != nil {
		return nil, fmt.Errorf("the controller at %s returned an unreadable certificate: %w", addr, err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return nil, fmt.Errorf("the certificate from %s does not chain to the pinned CA: %w", addr, err)
	}
	if !pub.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("the certificate from %s is not for this agent's key", addr)
	}
	if !validAgentID(resp.AgentId) {
		return nil, fmt.Errorf("the controller at %s returned an invalid agent ID %q", addr, resp.AgentId)
	}
	if want := AgentURI(resp.AgentId); !namesURI(cert, want) {
		return nil, fmt.Errorf("the certificate from %s does not name %s", addr, want)
	}
	return cert, nil
}

func namesURI(c *x509.Certificate, uri string) bool {
	for _, u := range c.URIs {
		if u.String() == uri {
			return true
		}
	}
	return false
}

// AgentURI is the URI SAN naming an agent in its client certificate.
func AgentURI(agentID string) string {
	return (&url.URL{Scheme: "opsconductor", Host: "agent", Path: "/" + agentID}).String()
}

func validAgentID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// store writes the identity so that a crash leaves either no enrolment or
// a complete one: any previous agent.json goes first, each file is written
// to a temporary name, synced and renamed, and agent.json comes last. On
// failure every file this call put in place is removed again.
func store(dir string, key *ecdsa.PrivateKey, resp *agentv1.EnrollResponse, id identityFile) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if err := os.Remove(filepath.Join(dir, IdentityFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove old enrolment: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("encode key: %w", err)
	}
	meta, err := json.MarshalIndent(id, "", "  ")
	if err != nil {
		return err
	}
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{KeyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600},
		{CertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: resp.CertificateDer}), 0o600},
		{CAFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: resp.CaDer}), 0o644},
		{IdentityFile, append(meta, '\n'), 0o600},
	}
	var written []string
	for _, f := range files {
		if err := writeAtomic(dir, f.name, f.data, f.mode); err != nil {
			for _, w := range written {
				os.Remove(filepath.Join(dir, w))
			}
			return fmt.Errorf("store %s: %w", f.name, err)
		}
		written = append(written, f.name)
	}
	return syncDir(dir)
}

func writeAtomic(dir, name string, data []byte, mode os.FileMode) (err error) {
	tmp, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = tmp.Chmod(mode); err != nil {
		return err
	}
	if _, err = tmp.Write(data); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), filepath.Join(dir, name)); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Identity is an enrolled agent's credentials, loaded from its data dir.
type Identity struct {
	AgentID     string
	Name        string
	Controllers []string
	EnrolledAt  time.Time
	// Certificate is the certificate loaded (or given); after a renewal
	// Current returns the newer one.
	Certificate tls.Certificate
	// CA is the agent CA; CAPool holds only it.
	CA     *x509.Certificate
	CAPool *x509.CertPool
	// DataDir is where a renewed key and certificate are stored; empty
	// means the identity cannot be renewed.
	DataDir string

	mu      sync.Mutex
	renewed *tls.Certificate
	// sessions caches TLS session tickets so that a reconnect resumes
	// instead of signing and verifying certificates again; a renewal
	// empties it, so the next connection presents the new certificate.
	sessions tls.ClientSessionCache
}

// sessionCacheSize bounds the tickets kept: a few per controller.
const sessionCacheSize = 32

// Get and Put make Identity the tls.ClientSessionCache of its own
// connections (ClientTLSConfig).
func (id *Identity) Get(key string) (*tls.ClientSessionState, bool) {
	return id.sessionCache().Get(key)
}

// Put stores (or, with nil, forgets) the session for a controller.
func (id *Identity) Put(key string, cs *tls.ClientSessionState) {
	id.sessionCache().Put(key, cs)
}

func (id *Identity) sessionCache() tls.ClientSessionCache {
	id.mu.Lock()
	defer id.mu.Unlock()
	if id.sessions == nil {
		id.sessions = tls.NewLRUClientSessionCache(sessionCacheSize)
	}
	return id.sessions
}

// Current is the certificate to present now: the latest renewal, or the
// one the identity was loaded with.
func (id *Identity) Current() tls.Certificate {
	id.mu.Lock()
	defer id.mu.Unlock()
	if id.renewed != nil {
		return *id.renewed
	}
	return id.Certificate
}

// RenewAt is when the current certificate has used two thirds of its
// life and should be renewed.
func (id *Identity) RenewAt() time.Time {
	c := id.Current()
	leaf := c.Leaf
	if leaf == nil && len(c.Certificate) > 0 {
		leaf, _ = x509.ParseCertificate(c.Certificate[0])
	}
	if leaf == nil {
		return time.Time{}
	}
	return leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) * 2 / 3)
}

// NewRenewalRequest makes a fresh key and a certificate request for it.
func NewRenewalRequest(name string) (*ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: name}}, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create certificate request: %w", err)
	}
	return key, csr, nil
}

// InstallRenewed checks a renewed certificate (it chains to the stored CA,
// names this agent and is for key), stores key and certificate in the
// data dir (StoreRenewed) and makes it the one Current returns, so that
// the next TLS handshake presents it.
func (id *Identity) InstallRenewed(key *ecdsa.PrivateKey, certDER []byte) error {
	if id.DataDir == "" {
		return errors.New("the identity has no data dir to store a renewal in")
	}
	cert, err := x509.ParseCertificate(certDER)
	if err != nil {
		return fmt.Errorf("renewed certificate: %w", err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: id.CAPool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return fmt.Errorf("renewed certificate does not chain to the stored CA: %w", err)
	}
	if want := AgentURI(id.AgentID); !namesURI(cert, want) {
		return fmt.Errorf("renewed certificate does not name %s", want)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return errors.New("renewed certificate is not for the new key")
	}
	if err := StoreRenewed(id.DataDir, key, certDER); err != nil {
		return err
	}
	id.mu.Lock()
	id.renewed = &tls.Certificate{Certificate: [][]byte{certDER}, PrivateKey: key, Leaf: cert}
	// A resumed session carries the certificate of the full handshake
	// that made it; forget them so that the controller sees the new one.
	id.sessions = nil
	id.mu.Unlock()
	return nil
}

// renewFile journals a renewal: key and certificate in one file, written
// atomically before either is put in place, so that a crash between the
// two renames is finished by the next LoadIdentity rather than leaving a
// key that does not match its certificate.
const renewFile = "agent.renew.pem"

// StoreRenewed replaces the key and certificate in dataDir (both 0600) as
// one step: the pair is journalled in a single file first, then each is
// written atomically, then the journal is removed.
func StoreRenewed(dataDir string, key *ecdsa.PrivateKey, certDER []byte) error {
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("encode key: %w", err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certDER})
	if err := writeAtomic(dataDir, renewFile, append(slices.Clone(keyPEM), certPEM...), 0o600); err != nil {
		return fmt.Errorf("store renewal: %w", err)
	}
	return finishRenewal(dataDir, keyPEM, certPEM)
}

func finishRenewal(dataDir string, keyPEM, certPEM []byte) error {
	if err := writeAtomic(dataDir, KeyFile, keyPEM, 0o600); err != nil {
		return fmt.Errorf("store %s: %w", KeyFile, err)
	}
	if err := writeAtomic(dataDir, CertFile, certPEM, 0o600); err != nil {
		return fmt.Errorf("store %s: %w", CertFile, err)
	}
	if err := os.Remove(filepath.Join(dataDir, renewFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove renewal journal: %w", err)
	}
	return syncDir(dataDir)
}

// resumeRenewal finishes a renewal a crash interrupted. A journal that
// does not parse was cut short before its rename, which cannot happen
// with writeAtomic; it is left for an operator rather than guessed at.
func resumeRenewal(dataDir string) error {
	data, err := os.ReadFile(filepath.Join(dataDir, renewFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	keyBlock, rest := pem.Decode(data)
	certBlock, _ := pem.Decode(rest)
	if keyBlock == nil || certBlock == nil {
		return fmt.Errorf("%s: not a key and a certificate", renewFile)
	}
	return finishRenewal(dataDir, pem.EncodeToMemory(keyBlock), pem.EncodeToMemory(certBlock))
}

// LoadIdentity reads the identity Join stored in dataDir.
func LoadIdentity(dataDir string) (*Identity, error) {
	meta, err := os.ReadFile(filepath.Join(dataDir, IdentityFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s holds no enrolment: run `opsconductor-agent join` first", dataDir)
	}
	if err != nil {
		return nil, err
	}
	var f identityFile
	if err := json.Unmarshal(meta, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", IdentityFile, err)
	}
	if !validAgentID(f.AgentID) {
		return nil, fmt.Errorf("%s: invalid agent_id %q", IdentityFile, f.AgentID)
	}
	if err := resumeRenewal(dataDir); err != nil {
		return nil, fmt.Errorf("finish an interrupted certificate renewal: %w", err)
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(dataDir, CertFile), filepath.Join(dataDir, KeyFile))
	if err != nil {
		return nil, fmt.Errorf("load certificate: %w", err)
	}
	caPEM, err := os.ReadFile(filepath.Join(dataDir, CAFile))
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(caPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s: no PEM certificate", CAFile)
	}
	ca, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", CAFile, err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", CertFile, err)
	}
	if !namesURI(leaf, AgentURI(f.AgentID)) {
		return nil, fmt.Errorf("%s does not name %s", CertFile, AgentURI(f.AgentID))
	}
	cert.Leaf = leaf
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &Identity{AgentID: f.AgentID, Name: f.Name, Controllers: f.Controllers, EnrolledAt: f.EnrolledAt,
		Certificate: cert, CA: ca, CAPool: pool, DataDir: dataDir}, nil
}

// ClientTLSConfig is the mutual-TLS configuration for Connect: the agent's
// current certificate (read at each handshake, so a renewal is presented
// by the next connection), and a server check against the stored agent CA that needs
// no host name (controllers are often addressed by IP), only a
// certificate naming opsconductor://server/<node-id>.
func ClientTLSConfig(id *Identity) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			c := id.Current()
			return &c, nil
		},
		// Resumption skips both certificate signatures; the controller
		// still checks on every connection that the agent is not revoked.
		ClientSessionCache: id,
		InsecureSkipVerify: true, //nolint:gosec // verified in VerifyConnection against the stored CA
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the controller presented no certificate")
			}
			return verifyServerLeaf(cs.PeerCertificates[0], id.CAPool)
		},
	}
}

// ParseTags parses "k=v,k2=v2" (as the join command takes them).
func ParseTags(s string) (map[string]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	tags := map[string]string{}
	for i, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("tags[%d]: %q is not key=value", i, kv)
		}
		if _, dup := tags[k]; dup {
			return nil, fmt.Errorf("tags[%d]: key %q given twice", i, k)
		}
		tags[k] = v
	}
	return tags, nil
}
