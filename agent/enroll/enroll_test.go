package enroll

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	agentv1 "github.com/opsconductor/opsconductor/proto/agent/v1"
)

const testToken = "ocj_tok1_s3cret"

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newCA(t *testing.T, cn string) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key}
}

func (ca *testCA) issue(t *testing.T, pub any, uri string, usage x509.ExtKeyUsage) []byte {
	t.Helper()
	der, err := ca.sign(pub, uri, usage)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func (ca *testCA) sign(pub any, uri string, usage x509.ExtKeyUsage) ([]byte, error) {
	u, _ := url.Parse(uri)
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		URIs: []*url.URL{u}, ExtKeyUsage: []x509.ExtKeyUsage{usage}, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	return x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
}

// fakeController implements Enroll only, over real TLS on loopback.
type fakeController struct {
	agentv1.UnimplementedAgentServiceServer
	ca       *testCA // signs client certificates
	returnCA *testCA // the CA returned in the response (ca unless set)
	refuse   error
	calls    atomic.Int32
	addr     string
}

func (f *fakeController) Enroll(_ context.Context, req *agentv1.EnrollRequest) (*agentv1.EnrollResponse, error) {
	f.calls.Add(1)
	if f.refuse != nil {
		return nil, f.refuse
	}
	if req.Token != testToken {
		return nil, status.Error(codes.PermissionDenied, "unknown join token")
	}
	csr, err := x509.ParseCertificateRequest(req.CsrDer)
	if err != nil || csr.CheckSignature() != nil {
		return nil, status.Error(codes.InvalidArgument, "bad csr")
	}
	ret := f.returnCA
	if ret == nil {
		ret = f.ca
	}
	der, err := f.ca.sign(csr.PublicKey, "opsconductor://agent/a-123", x509.ExtKeyUsageClientAuth)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &agentv1.EnrollResponse{
		AgentId: "a-123", Name: req.Name + "-1", CertificateDer: der, CaDer: ret.cert.Raw, NotAfter: timestamppb.New(time.Now().Add(24 * time.Hour)),
	}, nil
}

// startController serves Enroll presenting chain [leaf signed by signer, presented CA].
func startController(t *testing.T, f *fakeController, signer, presented *testCA, serverURI string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := signer.issue(t, &key.PublicKey, serverURI, x509.ExtKeyUsageServerAuth)
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{{Certificate: [][]byte{leaf, presented.cert.Raw}, PrivateKey: key}},
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(cfg)))
	agentv1.RegisterAgentServiceServer(srv, f)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	f.addr = lis.Addr().String()
}

func goodController(t *testing.T) (*fakeController, *testCA) {
	ca := newCA(t, "agent CA")
	f := &fakeController{ca: ca}
	startController(t, f, ca, ca, "opsconductor://server/node-1")
	return f, ca
}

func opts(addrs []string, ca *testCA, dir string) Options {
	return Options{Controllers: addrs, Token: testToken, CAPin: PinOf(ca.cert).String(), DataDir: dir,
		Name: "web1", Version: "test", Facts: &agentv1.Facts{Hostname: "web1"}, DialTimeout: 5 * time.Second}
}

func TestJoinStoresACompleteIdentity(t *testing.T) {
	f, ca := goodController(t)
	dir := filepath.Join(t.TempDir(), "data")
	var lines []string
	o := opts([]string{f.addr}, ca, dir)
	o.Progress = func(s string) { lines = append(lines, s) }
	res, err := Join(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if res.AgentID != "a-123" || res.Name != "web1-1" || res.Controller != f.addr {
		t.Fatalf("result %+v", res)
	}
	for _, l := range lines {
		if strings.Contains(l, testToken) {
			t.Fatalf("progress leaks the token: %q", l)
		}
	}
	modes := map[string]os.FileMode{KeyFile: 0o600, CertFile: 0o600, CAFile: 0o644, IdentityFile: 0o600}
	for name, want := range modes {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", name, st.Mode().Perm(), want)
		}
	}
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
		t.Errorf("data dir mode %v", st.Mode().Perm())
	}
	assertNoTempFiles(t, dir)
	id, err := LoadIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	if id.AgentID != "a-123" || id.Name != "web1-1" || len(id.Controllers) != 1 || id.EnrolledAt.IsZero() {
		t.Fatalf("identity %+v", id)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, IdentityFile)); strings.Contains(string(b), testToken) {
		t.Fatal("agent.json holds the token")
	}

	t.Run("and the stored identity speaks mutual TLS to a controller signed by the CA", func(t *testing.T) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		leaf := ca.issue(t, &key.PublicKey, "opsconductor://server/node-2", x509.ExtKeyUsageServerAuth)
		lis, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
			MinVersion: tls.VersionTLS13, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: id.CAPool,
			Certificates: []tls.Certificate{{Certificate: [][]byte{leaf, ca.cert.Raw}, PrivateKey: key}},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer lis.Close()
		done := make(chan error, 1)
		go func() {
			c, err := lis.Accept()
			if err == nil {
				err = c.(*tls.Conn).Handshake()
				c.Close()
			}
			done <- err
		}()
		c, err := tls.Dial("tcp", lis.Addr().String(), ClientTLSConfig(id))
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		if err := <-done; err != nil {
			t.Fatalf("server side: %v", err)
		}
	})
}

func TestJoinRefusesAControllerThatFailsThePin(t *testing.T) {
	pinned := newCA(t, "pinned CA")
	other := newCA(t, "other CA")
	cases := []struct {
		name              string
		signer, presented *testCA
		uri, wantErr      string
	}{
		{"a controller presenting another CA is refused before the token is sent", other, other,
			"opsconductor://server/n1", "ca pin mismatch: the controller at"},
		{"a controller whose leaf is not signed by the pinned CA is refused", other, pinned,
			"opsconductor://server/n1", "not signed by the agent CA"},
		{"a controller certificate that names no server is refused", pinned, pinned,
			"opsconductor://agent/n1", "names no opsconductor://server/"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := &fakeController{ca: pinned}
			startController(t, f, c.signer, c.presented, c.uri)
			dir := t.TempDir()
			_, err := Join(context.Background(), opts([]string{f.addr}, pinned, dir))
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("err = %v, want %q", err, c.wantErr)
			}
			if strings.Contains(err.Error(), testToken) {
				t.Fatal("error leaks the token")
			}
			if n := f.calls.Load(); n != 0 {
				t.Fatalf("server received %d Enroll calls", n)
			}
			assertEmpty(t, dir)
		})
	}
	t.Run("the mismatch error names both pins", func(t *testing.T) {
		f := &fakeController{ca: other}
		startController(t, f, other, other, "opsconductor://server/n1")
		_, err := Join(context.Background(), opts([]string{f.addr}, pinned, t.TempDir()))
		if err == nil || !strings.Contains(err.Error(), PinOf(other.cert).String()) || !strings.Contains(err.Error(), PinOf(pinned.cert).String()) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestJoinChecksTheResponse(t *testing.T) {
	ca := newCA(t, "agent CA")
	other := newCA(t, "other CA")
	cases := []struct {
		name    string
		f       *fakeController
		wantErr string
	}{
		{"a returned CA without the pinned key is refused", &fakeController{ca: ca, returnCA: other}, "returned CA"},
		{"a certificate signed by another CA is refused", &fakeController{ca: other, returnCA: ca}, "does not chain to the pinned CA"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			startController(t, c.f, ca, ca, "opsconductor://server/n1")
			dir := t.TempDir()
			_, err := Join(context.Background(), opts([]string{c.f.addr}, ca, dir))
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("err = %v, want %q", err, c.wantErr)
			}
			assertEmpty(t, dir)
		})
	}
}

func TestJoinSurfacesARefusedToken(t *testing.T) {
	f, ca := goodController(t)
	f.refuse = status.Error(codes.PermissionDenied, "join token expired")
	dir := t.TempDir()
	_, err := Join(context.Background(), opts([]string{f.addr}, ca, dir))
	if err == nil || !strings.Contains(err.Error(), "join token expired") {
		t.Fatalf("err = %v", err)
	}
	assertEmpty(t, dir)
}

func TestJoinTriesEachController(t *testing.T) {
	f, ca := goodController(t)
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := dead.Addr().String()
	dead.Close()
	t.Run("an unreachable controller is skipped", func(t *testing.T) {
		res, err := Join(context.Background(), opts([]string{deadAddr, f.addr}, ca, t.TempDir()))
		if err != nil {
			t.Fatal(err)
		}
		if res.Controller != f.addr {
			t.Fatalf("enrolled at %s", res.Controller)
		}
	})
	t.Run("when none answers the error names each", func(t *testing.T) {
		_, err := Join(context.Background(), opts([]string{deadAddr}, ca, t.TempDir()))
		if err == nil || !strings.Contains(err.Error(), "no controller reachable") || !strings.Contains(err.Error(), deadAddr) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestJoinRefusesToOverwrite(t *testing.T) {
	f, ca := goodController(t)
	dir := t.TempDir()
	if _, err := Join(context.Background(), opts([]string{f.addr}, ca, dir)); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(filepath.Join(dir, KeyFile))
	_, err := Join(context.Background(), opts([]string{f.addr}, ca, dir))
	if !errors.Is(err, ErrAlreadyEnrolled) {
		t.Fatalf("err = %v", err)
	}
	if n := f.calls.Load(); n != 1 {
		t.Fatalf("second join contacted the controller (%d calls)", n)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, KeyFile)); string(after) != string(before) {
		t.Fatal("key changed")
	}
	o := opts([]string{f.addr}, ca, dir)
	o.Force = true
	if _, err := Join(context.Background(), o); err != nil {
		t.Fatalf("forced join: %v", err)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, KeyFile)); string(after) == string(before) {
		t.Fatal("forced join kept the old key")
	}
}

func TestJoinLeavesNoPartialIdentity(t *testing.T) {
	f, ca := goodController(t)
	dir := t.TempDir()
	// A non-empty directory where agent.crt belongs makes the second
	// rename fail after agent.key is already in place.
	if err := os.MkdirAll(filepath.Join(dir, CertFile, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := Join(context.Background(), opts([]string{f.addr}, ca, dir))
	if err == nil || !strings.Contains(err.Error(), "store agent.crt") {
		t.Fatalf("err = %v", err)
	}
	for _, name := range []string{KeyFile, CAFile, IdentityFile} {
		if _, err := os.Stat(filepath.Join(dir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind (%v)", name, err)
		}
	}
	assertNoTempFiles(t, dir)
	if _, err := LoadIdentity(dir); err == nil || !strings.Contains(err.Error(), "no enrolment") {
		t.Fatalf("LoadIdentity: %v", err)
	}
}

func TestOptionsAreValidated(t *testing.T) {
	ca := newCA(t, "ca")
	cases := []struct {
		name    string
		mutate  func(*Options)
		wantErr string
	}{
		{"a pin without sha256: is refused", func(o *Options) { o.CAPin = "abc" }, `must start with "sha256:"`},
		{"a short pin is refused", func(o *Options) { o.CAPin = "sha256:abcd" }, "64 hex digits"},
		{"a malformed token is refused", func(o *Options) { o.Token = "secret" }, "token: not a join token"},
		{"no controllers are refused", func(o *Options) { o.Controllers = nil }, "controllers: at least one"},
		{"a controller without a port is refused", func(o *Options) { o.Controllers = []string{"host"} }, "controllers[0]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := opts([]string{"127.0.0.1:1"}, ca, t.TempDir())
			c.mutate(&o)
			_, err := Join(context.Background(), o)
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("err = %v, want %q", err, c.wantErr)
			}
			if strings.Contains(err.Error(), testToken) {
				t.Fatal("error leaks the token")
			}
		})
	}
}

func assertEmpty(t *testing.T, dir string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	if len(ents) != 0 {
		t.Fatalf("%s not empty: %v", dir, ents)
	}
}

func assertNoTempFiles(t *testing.T, dir string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temp file left: %s", e.Name())
		}
	}
}

func TestParseTags(t *testing.T) {
	cases := []struct {
		name, in, want, wantErr string
	}{
		{"empty gives no tags", "", "map[]", ""},
		{"pairs are split on commas", "env=prod, role=web", "map[env:prod role:web]", ""},
		{"an empty value is allowed", "canary=", "map[canary:]", ""},
		{"a pair without = is refused", "env=prod,web", "", `tags[1]: "web" is not key=value`},
		{"a repeated key is refused", "a=1,a=2", "", `tags[1]: key "a" given twice`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseTags(c.in)
			if c.wantErr != "" {
				if err == nil || err.Error() != c.wantErr {
					t.Fatalf("err = %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil || fmt.Sprint(got) != c.want && !(len(got) == 0 && c.want == "map[]") {
				t.Fatalf("got %v %v, want %s", got, err, c.want)
			}
		})
	}
}

func TestEveryOptionProblemIsReportedAtOnce(t *testing.T) {
	_, err := Join(context.Background(), Options{CAPin: "x", Token: "y", DataDir: ""})
	if !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("err = %v", err)
	}
	for _, want := range []string{"ca pin:", "controllers:", "token:", "data dir:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%v lacks %q", err, want)
		}
	}
}

func TestARenewalInterruptedBeforeItsRenamesIsFinishedOnLoad(t *testing.T) {
	f, ca := goodController(t)
	dir := filepath.Join(t.TempDir(), "data")
	res, err := Join(context.Background(), opts([]string{f.addr}, ca, dir))
	if err != nil {
		t.Fatal(err)
	}
	key, csrDER, err := NewRenewalRequest("web1")
	if err != nil {
		t.Fatal(err)
	}
	csr, _ := x509.ParseCertificateRequest(csrDER)
	certDER := ca.issue(t, csr.PublicKey, AgentURI(res.AgentID), x509.ExtKeyUsageClientAuth)
	// A crash after the journal was written and before the key and
	// certificate were replaced leaves only the journal.
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	journal := append(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certDER})...)
	if err := writeAtomic(dir, renewFile, journal, 0o600); err != nil {
		t.Fatal(err)
	}
	id, err := LoadIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(id.Current().Certificate[0], certDER) {
		t.Fatal("LoadIdentity did not finish the renewal")
	}
	if _, err := os.Stat(filepath.Join(dir, renewFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the journal is still there: %v", err)
	}
	assertNoTempFiles(t, dir)

	// InstallRenewed refuses a certificate for another key and keeps the current one.
	other, _, _ := NewRenewalRequest("web1")
	if err := id.InstallRenewed(other, certDER); err == nil || !strings.Contains(err.Error(), "not for the new key") {
		t.Fatalf("InstallRenewed with the wrong key: %v", err)
	}
	if !bytes.Equal(id.Current().Certificate[0], certDER) {
		t.Fatal("a refused renewal changed the current certificate")
	}
}
