package builtin

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/opsconductor/opsconductor/plugins/sdk"
)

// startSSHServer runs an in-process SSH server (golang.org/x/crypto/ssh)
// on loopback that completes the version exchange and then drops the
// client: all a scan reads is the identification line.
func startSSHServer(t *testing.T, version string) int {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &ssh.ServerConfig{ServerVersion: version, NoClientAuth: true}
	cfg.AddHostKey(signer)
	return serve(t, func(c net.Conn) {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if sc, _, _, err := ssh.NewServerConn(c, cfg); err == nil {
			sc.Close()
		}
	})
}

// serve accepts on a loopback port and runs handle for each connection
// until the test ends.
func serve(t *testing.T, handle func(net.Conn)) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().(*net.TCPAddr).Port
}

func webHandler(server, title string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Server", server)
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte("<!doctype html><html><head><TITLE>\n  " + title + " </TITLE></head><body>hi</body></html>"))
	})
}

func portOf(t *testing.T, rawURL string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(strings.TrimPrefix(strings.TrimPrefix(rawURL, "http://"), "https://"))
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return n
}

// testCert is a self-signed certificate naming a few SANs.
func testCert(t *testing.T) tls.Certificate {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(42),
		Subject:      pkix.Name{CommonName: "web.example.test"},
		Issuer:       pkix.Name{CommonName: "web.example.test"},
		DNSNames:     []string{"web.example.test", "www.example.test"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv}
}

// closedPort returns a loopback port nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return p
}

// hostLines decodes the host lines a scan printed.
func hostLines(t *testing.T, stdout string) []DiscoveredHost {
	t.Helper()
	var out []DiscoveredHost
	for _, l := range strings.Split(stdout, "\n") {
		if !strings.HasPrefix(l, DiscoverHostPrefix) {
			continue
		}
		h, err := DecodeDiscoverHost(l)
		if err != nil {
			t.Fatalf("the step printed a host line its own decoder refuses: %v\n%s", err, l)
		}
		out = append(out, h)
	}
	return out
}

func TestDiscoverReadsBannersOfLoopbackServices(t *testing.T) {
	sshPort := startSSHServer(t, "SSH-2.0-OpsConductorTest_1.0")
	web := httptest.NewServer(webHandler("test-httpd/2.4", "Welcome &amp; hello"))
	defer web.Close()
	tlsSrv := httptest.NewUnstartedServer(webHandler("tls-httpd/1.0", "Secure page"))
	tlsSrv.TLS = &tls.Config{Certificates: []tls.Certificate{testCert(t)}}
	tlsSrv.StartTLS()
	defer tlsSrv.Close()
	silent := serve(t, func(c net.Conn) { c.Read(make([]byte, 1)) })
	closed := closedPort(t)
	ports := []int{sshPort, portOf(t, web.URL), portOf(t, tlsSrv.URL), silent, closed}
	specs := make([]string, len(ports))
	for i, p := range ports {
		specs[i] = strconv.Itoa(p)
	}

	res, rec, err := run(t, context.Background(), Discover{}, obj{
		"cidrs": []string{"127.0.0.1"}, "ports": specs, "banner_timeout": "500ms", "resolve": false})
	if err != nil {
		t.Fatal(err)
	}
	hosts := hostLines(t, rec.stdout())
	if len(hosts) != 1 || hosts[0].Address != "127.0.0.1" {
		t.Fatalf("hosts = %+v, want 127.0.0.1 only\n%s", hosts, rec.stdout())
	}
	byPort := map[int]DiscoveredPort{}
	for _, p := range hosts[0].Ports {
		byPort[p.Port] = p
	}
	t.Run("the SSH server's identification line is read", func(t *testing.T) {
		p := byPort[sshPort]
		if p.Service != "ssh" || p.Banner != "SSH-2.0-OpsConductorTest_1.0" {
			t.Errorf("ssh port = %+v", p)
		}
	})
	t.Run("the HTTP server's Server header and title are read", func(t *testing.T) {
		p := byPort[portOf(t, web.URL)]
		if p.Service != "http" || p.HTTP == nil || p.HTTP.Server != "test-httpd/2.4" || p.HTTP.Title != "Welcome & hello" || p.HTTP.Status != 200 {
			t.Errorf("http port = %+v (http %+v)", p, p.HTTP)
		}
	})
	t.Run("the TLS server's certificate is read and HTTP asked over it", func(t *testing.T) {
		p := byPort[portOf(t, tlsSrv.URL)]
		if p.Service != "https" || p.TLS == nil || p.HTTP == nil {
			t.Fatalf("tls port = %+v", p)
		}
		want := DiscoveredTLS{Subject: "web.example.test", Issuer: "web.example.test",
			SANs: []string{"web.example.test", "www.example.test", "127.0.0.1"}, NotAfter: time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)}
		if p.TLS.Subject != want.Subject || p.TLS.Issuer != want.Issuer || !slices.Equal(p.TLS.SANs, want.SANs) || !p.TLS.NotAfter.Equal(want.NotAfter) {
			t.Errorf("tls = %+v, want %+v", *p.TLS, want)
		}
		if p.HTTP.Server != "tls-httpd/1.0" || p.HTTP.Title != "Secure page" {
			t.Errorf("https = %+v", *p.HTTP)
		}
	})
	t.Run("a silent open port is reported without a service", func(t *testing.T) {
		if p, ok := byPort[silent]; !ok || p.Service != "" || p.Banner != "" {
			t.Errorf("silent port = %+v, found %v", p, ok)
		}
	})
	t.Run("a closed port is not reported", func(t *testing.T) {
		if _, ok := byPort[closed]; ok {
			t.Errorf("closed port %d reported", closed)
		}
	})
	t.Run("the outputs summarise the scan", func(t *testing.T) {
		if res.Outputs["hosts_scanned"] != "1" || res.Outputs["hosts_up"] != "1" || res.Outputs["open_ports"] != "4" || res.Outputs["probes"] == "" {
			t.Errorf("outputs = %v", res.Outputs)
		}
		if !strings.Contains(rec.stdout(), DiscoverProgressPrefix+`{"probed":1,"total":1,"up":1}`) {
			t.Errorf("no final progress line in\n%s", rec.stdout())
		}
	})
}

func TestDiscoverRefusesBadParameters(t *testing.T) {
	tests := []struct {
		name   string
		params obj
		path   string
	}{
		{"cidrs are required", obj{}, "params.cidrs"},
		{"a range larger than a /16 is refused", obj{"cidrs": []string{"10.0.0.0/15"}}, "params.cidrs"},
		{"a /16 and a /29 together exceed the ceiling", obj{"cidrs": []string{"10.0.0.0/16", "10.1.0.0/29"}}, "params.cidrs"},
		{"overlapping ranges are refused", obj{"cidrs": []string{"10.0.0.0/24", "10.0.0.128/25"}}, "params.cidrs"},
		{"a name is not an address", obj{"cidrs": []string{"example.com"}}, "params.cidrs"},
		{"a port range must not run backwards", obj{"cidrs": []string{"127.0.0.1"}, "ports": []string{"90-80"}}, "params.ports"},
		{"port 0 is refused", obj{"cidrs": []string{"127.0.0.1"}, "ports": []string{"0"}}, "params.ports"},
		{"a rate above the ceiling is refused", obj{"cidrs": []string{"127.0.0.1"}, "rate": 5000}, "params.rate"},
		{"concurrency above the ceiling is refused", obj{"cidrs": []string{"127.0.0.1"}, "concurrency": 5000}, "params.concurrency"},
		{"a connect timeout over 30s is refused", obj{"cidrs": []string{"127.0.0.1"}, "timeout": "31s"}, "params.timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := run(t, context.Background(), Discover{}, tt.params)
			wantParamError(t, err, tt.path)
		})
	}
}

func TestDiscoverCeilingsHoldWhateverTheCallerSays(t *testing.T) {
	// check() runs after the schema; a caller that skipped the schema
	// still gets the ceilings.
	cfg, err := discoverParams{CIDRs: []string{"127.0.0.1"}, Rate: 1_000_000, Concurrency: 1_000_000}.check()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.rate != DiscoverMaxRate || cfg.concurrency != DiscoverMaxConcurrency {
		t.Errorf("rate %d concurrency %d, want the ceilings %d and %d", cfg.rate, cfg.concurrency, DiscoverMaxRate, DiscoverMaxConcurrency)
	}
}

func TestDiscoverKeepsToItsRate(t *testing.T) {
	// 62 addresses × 1 closed port at 100/s with a burst of 10: at
	// least (62-10)/100 s.
	closed := closedPort(t)
	const rate = 100
	start := time.Now()
	res, _, err := run(t, context.Background(), Discover{}, obj{
		"cidrs": []string{"127.0.3.0/26"}, "ports": []string{strconv.Itoa(closed)}, "rate": rate, "resolve": false})
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if res.Outputs["probes"] != "62" {
		t.Fatalf("probes = %s, want 62", res.Outputs["probes"])
	}
	if min := time.Duration(62-10) * time.Second / rate; took < min {
		t.Errorf("62 probes at %d/s took %s, less than %s", rate, took, min)
	}
}

func TestDiscoverStopsPromptlyOnCancel(t *testing.T) {
	closed := closedPort(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rec := &recorder{}
	done := make(chan error, 1)
	start := make(chan struct{})
	go func() {
		close(start)
		_, err := Discover{}.Run(ctx, reqFor(t, obj{"cidrs": []string{"127.4.0.0/16"}, "ports": []string{strconv.Itoa(closed)},
			"rate": 50, "resolve": false}), rec)
		done <- err
	}()
	<-start
	select {
	case <-rec.seen("scanning 65534 addresses"):
	case <-time.After(10 * time.Second):
		t.Fatal("the scan never started")
	}
	cancel()
	at := time.Now()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
		if d := time.Since(at); d > 2*time.Second {
			t.Errorf("the scan took %s to stop", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the scan did not stop within 10s of cancel")
	}
}

func TestParseDiscoverCIDRsSkipsNetworkAndBroadcast(t *testing.T) {
	tests := []struct {
		name  string
		cidrs []string
		first string
		last  string
		n     int
	}{
		{"a /30 holds two hosts", []string{"10.0.0.0/30"}, "10.0.0.1", "10.0.0.2", 2},
		{"a /31 holds both addresses", []string{"10.0.0.0/31"}, "10.0.0.0", "10.0.0.1", 2},
		{"a bare address is a /32", []string{"192.0.2.7"}, "192.0.2.7", "192.0.2.7", 1},
		{"an unmasked prefix is masked", []string{"192.0.2.77/24"}, "192.0.2.1", "192.0.2.254", 254},
		{"IPv6 keeps every address", []string{"2001:db8::/126"}, "2001:db8::", "2001:db8::3", 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps, n, err := ParseDiscoverCIDRs(tt.cidrs)
			if err != nil {
				t.Fatal(err)
			}
			var got []netip.Addr
			prefixAddrs(ps[0], func(a netip.Addr) bool { got = append(got, a); return true })
			if n != tt.n || len(got) != tt.n || got[0].String() != tt.first || got[len(got)-1].String() != tt.last {
				t.Errorf("n %d, addresses %v, want %d from %s to %s", n, got, tt.n, tt.first, tt.last)
			}
		})
	}
}

func TestParseDiscoverPortsSortsAndDeduplicates(t *testing.T) {
	got, err := ParseDiscoverPorts([]string{"443", "20-23", "22", "80"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []uint16{20, 21, 22, 23, 80, 443}; !slices.Equal(got, want) {
		t.Errorf("ports = %v, want %v", got, want)
	}
	if _, err := ParseDiscoverPorts([]string{"1-65535"}); err == nil {
		t.Error("all 65535 ports were accepted past the ceiling")
	}
}

func reqFor(t *testing.T, params any) sdk.Request {
	t.Helper()
	raw, err := jsonMarshal(params)
	if err != nil {
		t.Fatal(err)
	}
	return sdk.Request{AttemptID: "a1", Params: raw}
}

func FuzzDecodeDiscoverHost(f *testing.F) {
	f.Add(`host {"address":"127.0.0.1","ports":[{"port":22,"service":"ssh","banner":"SSH-2.0-x"}]}`)
	f.Add(`host {"address":"::1","hostnames":["a"],"ports":[{"port":443,"tls":{"subject":"a","sans":["a"],"not_after":"2030-01-01T00:00:00Z"},"http":{"status":200}}]}`)
	f.Add(`host {"address":"1.2.3.4","ports":[]}`)
	f.Add(`host {"address":"1.2.3.4","ports":[{"port":2},{"port":1}]} x`)
	f.Add(`progress {"probed":1}`)
	f.Fuzz(func(t *testing.T, line string) {
		h, err := DecodeDiscoverHost(line)
		if err != nil {
			return
		}
		if _, err := netip.ParseAddr(h.Address); err != nil || len(h.Ports) == 0 {
			t.Fatalf("accepted %q as %+v", line, h)
		}
		for i := 1; i < len(h.Ports); i++ {
			if h.Ports[i-1].Port >= h.Ports[i].Port {
				t.Fatalf("accepted unsorted ports in %q", line)
			}
		}
		// What was accepted survives a round trip.
		b, _ := jsonMarshal(h)
		if _, err := DecodeDiscoverHost(DiscoverHostPrefix + string(b)); err != nil {
			t.Fatalf("re-encoded host refused: %v", err)
		}
	})
}

func FuzzParseDiscoverTargets(f *testing.F) {
	f.Add("10.0.0.0/24", "22,80-90")
	f.Add("::ffff:10.0.0.0/120", "65535")
	f.Add("192.0.2.1", "0-1")
	f.Add("2001:db8::/112", "1-4096")
	f.Fuzz(func(t *testing.T, cidrs, ports string) {
		ps, n, err := ParseDiscoverCIDRs(strings.Split(cidrs, ","))
		if err == nil {
			if n > DiscoverMaxHosts {
				t.Fatalf("%q: %d hosts past the ceiling", cidrs, n)
			}
			count := 0
			for _, p := range ps {
				if p != p.Masked() {
					t.Fatalf("%q: unmasked prefix %s", cidrs, p)
				}
				prefixAddrs(p, func(netip.Addr) bool { count++; return count <= n })
			}
			if count != n {
				t.Fatalf("%q: counted %d, enumerated %d", cidrs, n, count)
			}
		}
		pl, err := ParseDiscoverPorts(strings.Split(ports, ","))
		if err == nil && (len(pl) > DiscoverMaxPorts || !slices.IsSorted(pl) || slices.Contains(pl, 0)) {
			t.Fatalf("%q: bad port list %v", ports, pl)
		}
	})
}

func TestDiscoverNamesHostsByReverseDNS(t *testing.T) {
	names, err := net.DefaultResolver.LookupAddr(context.Background(), "127.0.0.1")
	if err != nil || len(names) == 0 {
		t.Skipf("127.0.0.1 has no name here (%v); nothing to compare with", err)
	}
	port := serve(t, func(c net.Conn) {})
	_, rec, err := run(t, context.Background(), Discover{}, obj{"cidrs": []string{"127.0.0.1"}, "ports": []string{strconv.Itoa(port)},
		"banner_timeout": "200ms"})
	if err != nil {
		t.Fatal(err)
	}
	hosts := hostLines(t, rec.stdout())
	if len(hosts) != 1 || len(hosts[0].Hostnames) == 0 || hosts[0].Hostnames[0] != strings.TrimSuffix(names[0], ".") {
		t.Fatalf("hosts = %+v, want named %v", hosts, names)
	}
}
