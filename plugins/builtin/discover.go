package builtin

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/opsconductor/opsconductor/plugins/sdk"
)

// Discover is a TCP connect scan with banner grabbing: for every address
// in the CIDRs and every port, it connects; on an open port it reads what
// the service says (SSH identification line, HTTP Server header and HTML
// title, TLS certificate). Each host with an open port is printed as one
// line, "host " followed by a JSON DiscoveredHost, because attempt outputs
// are too small for a scan's results; the outputs carry the summary.
//
// The ceilings below hold whatever the parameters say: a scan is work done
// to other people's machines, and the controller's own checks are not the
// only way a step is run.
type Discover struct{}

// Discovery ceilings, enforced by the step itself.
const (
	// DiscoverMaxRate is the most connection attempts per second.
	DiscoverMaxRate = 2000
	// DiscoverMaxConcurrency is the most connections open at once.
	DiscoverMaxConcurrency = 1024
	// DiscoverMaxHosts is the most addresses in one scan (a /16).
	DiscoverMaxHosts = 1 << 16
	// DiscoverMaxPorts is the most ports in one scan.
	DiscoverMaxPorts = 4096
	// DiscoverDefaultRate and DiscoverDefaultConcurrency apply when the
	// parameters say nothing.
	DiscoverDefaultRate        = DiscoverMaxRate
	DiscoverDefaultConcurrency = 256
	// maxBanner bounds every string read from a remote service.
	maxBanner = 256
	// maxTitleScan bounds the part of an HTTP answer searched for a title.
	maxTitleScan = 32 << 10
)

// DiscoverDefaultPorts is scanned when the parameters name no ports.
var DiscoverDefaultPorts = []string{"22", "80", "443", "3389", "5432", "8080", "8443"}

// Result line prefixes. The controller reads the attempt's log and keeps
// the lines that start with them; anything else is for people.
const (
	DiscoverHostPrefix     = "host "
	DiscoverProgressPrefix = "progress "
)

var discoverDesc = sdk.Description{
	Name:    "discover",
	Version: Version,
	Summary: "Scan CIDR ranges for open TCP ports and read the services' banners (SSH, HTTP, TLS).",
	Params: mustSchema(`{
  "type": "object",
  "additionalProperties": false,
  "required": ["cidrs"],
  "properties": {
    "cidrs": {"type": "array", "minItems": 1, "maxItems": 256,
      "items": {"type": "string", "minLength": 2, "maxLength": 64},
      "description": "Ranges to scan: CIDR prefixes (10.0.0.0/24) or single addresses."},
    "ports": {"type": "array", "minItems": 1, "maxItems": 256,
      "items": {"type": "string", "pattern": "^[0-9]{1,5}(-[0-9]{1,5})?$"},
      "description": "Ports or ranges (\"22\", \"8000-8010\"); default 22, 80, 443, 3389, 5432, 8080, 8443."},
    "concurrency": {"type": "integer", "minimum": 1, "maximum": 1024, "description": "Connections open at once (default 256)."},
    "rate": {"type": "integer", "minimum": 1, "maximum": 2000, "description": "Connection attempts per second (default and ceiling 2000)."},
    "timeout": {"type": "string", "pattern": "` + durationPattern + `", "description": "Connect timeout per port (default 1s, at most 30s)."},
    "banner_timeout": {"type": "string", "pattern": "` + durationPattern + `", "description": "Time allowed to read a banner once connected (default 2s, at most 30s)."},
    "resolve": {"type": "boolean", "description": "Look up the names of hosts found (reverse DNS; default true)."}
  }
}`),
	Outputs: []sdk.OutputSpec{
		{Name: "hosts_scanned", Description: "Addresses scanned."},
		{Name: "hosts_up", Description: "Addresses with at least one open port."},
		{Name: "open_ports", Description: "Open ports found, over all hosts."},
		{Name: "probes", Description: "Connection attempts made."},
		{Name: "duration", Description: "How long the scan took, as a Go duration."},
	},
	Idempotent: true,
}

// Describe implements sdk.Step.
func (Discover) Describe() sdk.Description { return discoverDesc }

type discoverParams struct {
	CIDRs         []string `json:"cidrs"`
	Ports         []string `json:"ports"`
	Concurrency   int      `json:"concurrency"`
	Rate          int      `json:"rate"`
	Timeout       string   `json:"timeout"`
	BannerTimeout string   `json:"banner_timeout"`
	Resolve       *bool    `json:"resolve"`
}

// DiscoveredHost is one host with open ports, as the step prints it.
type DiscoveredHost struct {
	Address   string           `json:"address"`
	Hostnames []string         `json:"hostnames,omitempty"`
	Ports     []DiscoveredPort `json:"ports"`
}

// DiscoveredPort is one open port and what its service said.
type DiscoveredPort struct {
	Port    int    `json:"port"`
	Service string `json:"service,omitempty"` // ssh, http, https, tls, or "" if unknown
	// Banner is the first line a service that speaks first sent (for SSH,
	// its identification string).
	Banner string          `json:"banner,omitempty"`
	HTTP   *DiscoveredHTTP `json:"http,omitempty"`
	TLS    *DiscoveredTLS  `json:"tls,omitempty"`
}

// DiscoveredHTTP is what an HTTP server answered to GET /.
type DiscoveredHTTP struct {
	Status int    `json:"status"`
	Server string `json:"server,omitempty"`
	Title  string `json:"title,omitempty"`
}

// DiscoveredTLS is the leaf certificate a TLS server presented.
type DiscoveredTLS struct {
	Subject  string    `json:"subject,omitempty"` // common name
	SANs     []string  `json:"sans,omitempty"`
	Issuer   string    `json:"issuer,omitempty"`
	NotAfter time.Time `json:"not_after"`
}

// DiscoverProgress is printed about once a second while a scan runs.
type DiscoverProgress struct {
	Probed int64 `json:"probed"` // hosts fully probed
	Total  int64 `json:"total"`  // hosts in the scan
	Up     int64 `json:"up"`
}

// DecodeDiscoverHost reads one "host " line. It checks what the controller
// relies on (a valid address, ports in range, bounded strings), since the
// line comes from an agent.
func DecodeDiscoverHost(line string) (DiscoveredHost, error) {
	rest, ok := strings.CutPrefix(line, DiscoverHostPrefix)
	if !ok {
		return DiscoveredHost{}, fmt.Errorf("not a host line: missing %q prefix", DiscoverHostPrefix)
	}
	var h DiscoveredHost
	dec := json.NewDecoder(strings.NewReader(rest))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		return DiscoveredHost{}, fmt.Errorf("decode host line: %w", err)
	}
	if dec.More() {
		return DiscoveredHost{}, errors.New("decode host line: trailing data after the object")
	}
	a, err := netip.ParseAddr(h.Address)
	if err != nil {
		return DiscoveredHost{}, fmt.Errorf("host line: address: %w", err)
	}
	h.Address = a.String()
	if len(h.Ports) == 0 || len(h.Ports) > DiscoverMaxPorts {
		return DiscoveredHost{}, fmt.Errorf("host line %s: %d ports, want 1 to %d", h.Address, len(h.Ports), DiscoverMaxPorts)
	}
	if len(h.Hostnames) > 16 {
		return DiscoveredHost{}, fmt.Errorf("host line %s: %d hostnames, want at most 16", h.Address, len(h.Hostnames))
	}
	for _, n := range h.Hostnames {
		if n == "" || len(n) > 253 {
			return DiscoveredHost{}, fmt.Errorf("host line %s: hostname %q is empty or too long", h.Address, n)
		}
	}
	for i, p := range h.Ports {
		if p.Port < 1 || p.Port > 65535 {
			return DiscoveredHost{}, fmt.Errorf("host line %s: ports[%d]: %d is not a port", h.Address, i, p.Port)
		}
		if i > 0 && h.Ports[i-1].Port >= p.Port {
			return DiscoveredHost{}, fmt.Errorf("host line %s: ports are not sorted and unique at %d", h.Address, p.Port)
		}
		if len(p.Service) > 16 || len(p.Banner) > maxBanner*4 {
			return DiscoveredHost{}, fmt.Errorf("host line %s: port %d: service or banner too long", h.Address, p.Port)
		}
	}
	return h, nil
}

// ParseDiscoverPorts turns port specs ("22", "8000-8010") into a sorted
// list of distinct ports.
func ParseDiscoverPorts(specs []string) ([]uint16, error) {
	seen := map[uint16]bool{}
	var out []uint16
	for i, s := range specs {
		lo, hi, isRange := strings.Cut(s, "-")
		a, err := parsePort(lo)
		if err != nil {
			return nil, fmt.Errorf("ports[%d]: %w", i, err)
		}
		b := a
		if isRange {
			if b, err = parsePort(hi); err != nil {
				return nil, fmt.Errorf("ports[%d]: %w", i, err)
			}
			if b < a {
				return nil, fmt.Errorf("ports[%d]: range %s ends before it starts", i, s)
			}
		}
		for p := int(a); p <= int(b); p++ {
			if !seen[uint16(p)] {
				if len(out) == DiscoverMaxPorts {
					return nil, fmt.Errorf("ports[%d]: more than %d ports in one scan", i, DiscoverMaxPorts)
				}
				seen[uint16(p)] = true
				out = append(out, uint16(p))
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 || len(s) > 5 {
		return 0, fmt.Errorf("%q is not a port from 1 to 65535", s)
	}
	return uint16(n), nil
}

// ParseDiscoverCIDRs reads CIDR prefixes or single addresses into masked
// prefixes and counts the addresses they hold (without network and
// broadcast addresses of IPv4 prefixes up to /30). Overlapping prefixes
// are refused rather than scanned twice.
func ParseDiscoverCIDRs(specs []string) ([]netip.Prefix, int, error) {
	var out []netip.Prefix
	total := 0
	for i, s := range specs {
		var p netip.Prefix
		if strings.Contains(s, "/") {
			pp, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, 0, fmt.Errorf("cidrs[%d]: %w", i, err)
			}
			p = pp.Masked()
		} else {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return nil, 0, fmt.Errorf("cidrs[%d]: %w", i, err)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if p.Addr().Zone() != "" {
			return nil, 0, fmt.Errorf("cidrs[%d]: %s: zones are not supported", i, s)
		}
		if p.Addr().Is4In6() {
			if p.Bits() < 96 {
				return nil, 0, fmt.Errorf("cidrs[%d]: %s: an IPv4-mapped prefix must be /96 or longer", i, s)
			}
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		for j, q := range out {
			if q.Overlaps(p) {
				return nil, 0, fmt.Errorf("cidrs[%d]: %s overlaps cidrs[%d] %s", i, p, j, q)
			}
		}
		n := prefixHosts(p)
		if n < 0 || total+n > DiscoverMaxHosts {
			return nil, 0, fmt.Errorf("cidrs[%d]: the scan would hold more than %d addresses (a /16)", i, DiscoverMaxHosts)
		}
		total += n
		out = append(out, p)
	}
	return out, total, nil
}

// prefixHosts is the number of addresses scanned in p, or -1 if more than
// DiscoverMaxHosts.
func prefixHosts(p netip.Prefix) int {
	free := p.Addr().BitLen() - p.Bits()
	if free > 17 {
		return -1
	}
	n := 1 << free
	if p.Addr().Is4() && free >= 2 {
		n -= 2
	}
	return n
}

// prefixAddrs calls f with every scanned address of p, in order, until f
// returns false.
func prefixAddrs(p netip.Prefix, f func(netip.Addr) bool) bool {
	a := p.Addr()
	skipEnds := a.Is4() && a.BitLen()-p.Bits() >= 2
	if skipEnds {
		a = a.Next()
	}
	for ; a.IsValid() && p.Contains(a); a = a.Next() {
		if skipEnds && !p.Contains(a.Next()) {
			break // broadcast
		}
		if !f(a) {
			return false
		}
	}
	return true
}

// scanConfig is a scan's checked parameters.
type scanConfig struct {
	prefixes      []netip.Prefix
	hosts         int
	ports         []uint16
	concurrency   int
	rate          int
	timeout       time.Duration
	bannerTimeout time.Duration
	resolve       bool
}

func (p discoverParams) check() (scanConfig, error) {
	prefixes, hosts, err := ParseDiscoverCIDRs(p.CIDRs)
	if err != nil {
		return scanConfig{}, paramError("cidrs", "cidr", "%v", err)
	}
	specs := p.Ports
	if len(specs) == 0 {
		specs = DiscoverDefaultPorts
	}
	ports, err := ParseDiscoverPorts(specs)
	if err != nil {
		return scanConfig{}, paramError("ports", "port", "%v", err)
	}
	c := scanConfig{prefixes: prefixes, hosts: hosts, ports: ports, resolve: p.Resolve == nil || *p.Resolve,
		concurrency: min(max(p.Concurrency, 0), DiscoverMaxConcurrency), rate: min(max(p.Rate, 0), DiscoverMaxRate)}
	if c.concurrency == 0 {
		c.concurrency = DiscoverDefaultConcurrency
	}
	if c.rate == 0 {
		c.rate = DiscoverDefaultRate
	}
	if c.timeout, err = duration("timeout", p.Timeout, time.Second); err != nil {
		return scanConfig{}, err
	}
	if c.bannerTimeout, err = duration("banner_timeout", p.BannerTimeout, 2*time.Second); err != nil {
		return scanConfig{}, err
	}
	if c.timeout <= 0 || c.timeout > 30*time.Second {
		return scanConfig{}, paramError("timeout", "range", "must be more than 0 and at most 30s, got %s", c.timeout)
	}
	if c.bannerTimeout <= 0 || c.bannerTimeout > 30*time.Second {
		return scanConfig{}, paramError("banner_timeout", "range", "must be more than 0 and at most 30s, got %s", c.bannerTimeout)
	}
	return c, nil
}

// Run implements sdk.Step.
func (Discover) Run(ctx context.Context, req sdk.Request, out sdk.Output) (sdk.Result, error) {
	var p discoverParams
	if err := decodeParams(discoverDesc, req, &p); err != nil {
		return sdk.Result{}, err
	}
	cfg, err := p.check()
	if err != nil {
		return sdk.Result{}, err
	}
	return runScan(ctx, cfg, out, time.Second)
}

// hostScan collects one host's port results; the worker that finishes its
// last port reports it.
type hostScan struct {
	addr    netip.Addr
	pending atomic.Int32
	mu      sync.Mutex
	open    []DiscoveredPort
}

type probe struct {
	host *hostScan
	port uint16
}

// scanner is one running scan.
type scanner struct {
	cfg     scanConfig
	limiter *rate.Limiter
	dialer  net.Dialer

	outMu sync.Mutex
	out   sdk.Output

	probes, probed, up, open atomic.Int64
}

func runScan(ctx context.Context, cfg scanConfig, out sdk.Output, progressEvery time.Duration) (sdk.Result, error) {
	start := time.Now()
	// The burst is 1 per worker at most, and small: a full bucket must not
	// let a scan open with thousands of connections at once.
	burst := max(1, min(cfg.concurrency, cfg.rate/10))
	s := &scanner{cfg: cfg, out: out, limiter: rate.NewLimiter(rate.Limit(cfg.rate), burst),
		dialer: net.Dialer{Timeout: cfg.timeout}}
	s.printf("scanning %d addresses × %d ports at up to %d connections/s, %d at once",
		cfg.hosts, len(cfg.ports), cfg.rate, cfg.concurrency)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan probe, cfg.concurrency)
	var wg sync.WaitGroup
	for range cfg.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				s.probe(ctx, j)
			}
		}()
	}
	done := make(chan struct{})
	progress := sync.WaitGroup{}
	progress.Add(1)
	go func() {
		defer progress.Done()
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				s.progress()
			}
		}
	}()

	// Hosts are fed in order, all ports of one host before the next, so
	// that hosts finish (and are reported) as the scan goes and only the
	// hosts in flight are held in memory.
	for _, pfx := range cfg.prefixes {
		ok := prefixAddrs(pfx, func(a netip.Addr) bool {
			h := &hostScan{addr: a}
			h.pending.Store(int32(len(cfg.ports)))
			for _, port := range cfg.ports {
				select {
				case jobs <- probe{h, port}:
				case <-ctx.Done():
					return false
				}
			}
			return true
		})
		if !ok {
			break
		}
	}
	close(jobs)
	wg.Wait()
	close(done)
	progress.Wait()
	if ctx.Err() != nil {
		return sdk.Result{}, fmt.Errorf("discover: stopped after %d of %d hosts: %w", s.probed.Load(), cfg.hosts, context.Cause(ctx))
	}
	s.progress()
	took := time.Since(start).Round(time.Millisecond)
	s.printf("scanned %d addresses in %s: %d up, %d open ports", cfg.hosts, took, s.up.Load(), s.open.Load())
	return sdk.Result{Outputs: map[string]string{
		"hosts_scanned": strconv.Itoa(cfg.hosts),
		"hosts_up":      strconv.FormatInt(s.up.Load(), 10),
		"open_ports":    strconv.FormatInt(s.open.Load(), 10),
		"probes":        strconv.FormatInt(s.probes.Load(), 10),
		"duration":      took.String(),
	}}, nil
}

func (s *scanner) printf(format string, args ...any) {
	s.outMu.Lock()
	defer s.outMu.Unlock()
	sdk.Printf(s.out, format, args...)
}

func (s *scanner) progress() {
	b, _ := json.Marshal(DiscoverProgress{Probed: s.probed.Load(), Total: int64(s.cfg.hosts), Up: s.up.Load()})
	s.printf("%s%s", DiscoverProgressPrefix, b)
}

// probe connects to one port and, when it is open, reads its banner. The
// last probe of a host reports the host.
func (s *scanner) probe(ctx context.Context, j probe) {
	if ctx.Err() == nil && s.limiter.Wait(ctx) == nil {
		s.probes.Add(1)
		if p, ok := s.connect(ctx, j.host.addr, j.port); ok {
			j.host.mu.Lock()
			j.host.open = append(j.host.open, p)
			j.host.mu.Unlock()
		}
	}
	if j.host.pending.Add(-1) != 0 || ctx.Err() != nil {
		return
	}
	s.probed.Add(1)
	h := j.host
	if len(h.open) == 0 {
		return
	}
	slices.SortFunc(h.open, func(a, b DiscoveredPort) int { return a.Port - b.Port })
	d := DiscoveredHost{Address: h.addr.String(), Ports: h.open}
	if s.cfg.resolve {
		d.Hostnames = s.reverse(ctx, h.addr)
	}
	b, err := json.Marshal(d)
	if err != nil {
		return
	}
	s.up.Add(1)
	s.open.Add(int64(len(h.open)))
	s.printf("%s%s", DiscoverHostPrefix, b)
}

func (s *scanner) reverse(ctx context.Context, a netip.Addr) []string {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.bannerTimeout)
	defer cancel()
	names, err := net.DefaultResolver.LookupAddr(ctx, a.String())
	if err != nil {
		return nil
	}
	out := make([]string, 0, len(names))
	for _, n := range names {
		n = strings.TrimSuffix(n, ".")
		if n != "" && len(n) <= 253 && !slices.Contains(out, n) && len(out) < 16 {
			out = append(out, n)
		}
	}
	return out
}

// portHint is what a well-known port suggests trying first.
type portHint int

const (
	hintSniff portHint = iota // read first: the server may speak first
	hintHTTP
	hintTLS
	hintTLSHTTP
)

func hintFor(port uint16) portHint {
	switch port {
	case 80, 8000, 8008, 8080, 8081, 8888, 9090:
		return hintHTTP
	case 443, 8443, 9443:
		return hintTLSHTTP
	case 465, 636, 993, 995, 6443:
		return hintTLS
	}
	return hintSniff
}

// connect probes one port: false when it is closed (or filtered).
func (s *scanner) connect(ctx context.Context, a netip.Addr, port uint16) (DiscoveredPort, bool) {
	addr := netip.AddrPortFrom(a, port).String()
	c, err := s.dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return DiscoveredPort{}, false
	}
	p := DiscoveredPort{Port: int(port)}
	s.grab(ctx, c, addr, &p)
	return p, true
}

// grab reads what the service on c says; it closes c. Failures leave the
// port open with less detail: a banner is a courtesy, the open port is the
// finding.
func (s *scanner) grab(ctx context.Context, c net.Conn, addr string, p *DiscoveredPort) {
	defer c.Close()
	deadline := time.Now().Add(s.cfg.bannerTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	// Cancel interrupts a banner read rather than waiting out its deadline.
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	c.SetDeadline(deadline)

	switch hintFor(uint16(p.Port)) {
	case hintHTTP:
		if h := httpProbe(c, addr); h != nil {
			p.Service, p.HTTP = "http", h
		}
		return
	case hintTLS, hintTLSHTTP:
		s.tlsProbe(ctx, c, addr, p, hintFor(uint16(p.Port)) == hintTLSHTTP)
		return
	}
	// Unknown port (or 22): a server that speaks first (SSH, SMTP, FTP)
	// does so at once; wait a fraction of the banner time for it before
	// trying HTTP, which waits for the client.
	sniff := min(max(s.cfg.bannerTimeout/4, 100*time.Millisecond), 750*time.Millisecond, s.cfg.bannerTimeout)
	if p.Port == 22 {
		sniff = s.cfg.bannerTimeout
	}
	c.SetReadDeadline(time.Now().Add(sniff))
	br := bufio.NewReaderSize(c, 1024)
	line, err := readLine(br)
	if line != "" {
		p.Banner = line
		if strings.HasPrefix(line, "SSH-") {
			p.Service = "ssh"
		} else if p.Port == 22 {
			// RFC 4253 lets a server send other lines before its
			// identification string.
			for range 5 {
				l, err := readLine(br)
				if strings.HasPrefix(l, "SSH-") {
					p.Banner, p.Service = l, "ssh"
					break
				}
				if err != nil {
					break
				}
			}
		}
		return
	}
	var ne net.Error
	if err == nil || !errors.As(err, &ne) || !ne.Timeout() || ctx.Err() != nil {
		return // closed on us, or canceled
	}
	// The sniff used part of the banner time; HTTP gets all of it.
	deadline = time.Now().Add(s.cfg.bannerTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	c.SetDeadline(deadline)
	h := httpProbe(c, addr)
	if h != nil && h.Status != 400 {
		p.Service, p.HTTP = "http", h
		return
	}
	// Not HTTP, or an HTTP server refusing a plain request, as TLS
	// servers do ("400 The plain HTTP request was sent to HTTPS port"):
	// try TLS on a fresh connection, which counts against the rate.
	if s.limiter.Wait(ctx) == nil {
		s.probes.Add(1)
		tctx, cancel := context.WithDeadline(ctx, deadline)
		defer cancel()
		if tc, err := s.dialer.DialContext(tctx, "tcp", addr); err == nil {
			defer tc.Close()
			stop := context.AfterFunc(ctx, func() { tc.SetDeadline(time.Unix(1, 0)) })
			defer stop()
			tc.SetDeadline(deadline)
			if s.tlsProbe(tctx, tc, addr, p, true) {
				return
			}
		}
	}
	if h != nil {
		p.Service, p.HTTP = "http", h
	}
}

// tlsProbe does a TLS handshake on c to read the certificate and, when
// withHTTP, asks for / over it. It reports whether the handshake worked.
func (s *scanner) tlsProbe(ctx context.Context, c net.Conn, addr string, p *DiscoveredPort, withHTTP bool) bool {
	// The certificate is read, never trusted: nothing is sent but a GET.
	tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, ServerName: hostOf(addr)}) //nolint:gosec // see above
	if err := tc.HandshakeContext(ctx); err != nil {
		return false
	}
	p.Service, p.TLS = "tls", certInfo(tc.ConnectionState().PeerCertificates)
	if withHTTP {
		if h := httpProbe(tc, addr); h != nil {
			p.Service, p.HTTP = "https", h
		}
	}
	return true
}

func hostOf(addr string) string {
	h, _, _ := net.SplitHostPort(addr)
	return h
}

// readLine reads one line of at most maxBanner printable bytes.
func readLine(br *bufio.Reader) (string, error) {
	b, err := br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		err = nil
	}
	return clean(string(b)), err
}

// clean keeps a remote string printable and short.
func clean(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '\uFFFD' {
			return -1
		}
		return r
	}, strings.TrimSpace(s))
	if len(s) > maxBanner {
		s = s[:maxBanner]
		for len(s) > 0 && !isRuneStart(s[len(s)-1]) {
			s = s[:len(s)-1]
		}
		s = strings.ToValidUTF8(s, "")
	}
	return strings.TrimSpace(s)
}

func isRuneStart(b byte) bool { return b < 0x80 || b >= 0xC0 }

var titleRE = regexp.MustCompile(`(?is)<title[^>]*>(.*?)</title>`)

// httpProbe sends GET / and reads the status, Server header and title.
func httpProbe(c net.Conn, addr string) *DiscoveredHTTP {
	req := "GET / HTTP/1.1\r\nHost: " + addr + "\r\nUser-Agent: opsconductor-discover/" + Version +
		"\r\nAccept: text/html,*/*\r\nConnection: close\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		return nil
	}
	buf := make([]byte, 0, 4096)
	tmp := make([]byte, 4096)
	for len(buf) < maxTitleScan {
		n, err := c.Read(tmp)
		buf = append(buf, tmp[:n]...)
		if err != nil || titleRE.Match(buf) {
			break
		}
	}
	return parseHTTP(buf)
}

// parseHTTP reads a (possibly truncated) HTTP response.
func parseHTTP(b []byte) *DiscoveredHTTP {
	head, body, _ := bytes.Cut(b, []byte("\r\n\r\n"))
	lines := strings.Split(string(head), "\r\n")
	proto, rest, ok := strings.Cut(lines[0], " ")
	if !ok || !strings.HasPrefix(proto, "HTTP/") {
		return nil
	}
	code, _, _ := strings.Cut(rest, " ")
	status, err := strconv.Atoi(code)
	if err != nil || status < 100 || status > 999 {
		return nil
	}
	h := &DiscoveredHTTP{Status: status}
	for _, l := range lines[1:] {
		k, v, ok := strings.Cut(l, ":")
		if ok && strings.EqualFold(strings.TrimSpace(k), "server") {
			h.Server = clean(v)
		}
	}
	if m := titleRE.FindSubmatch(body); m != nil {
		h.Title = clean(strings.Join(strings.Fields(html.UnescapeString(string(m[1]))), " "))
	}
	return h
}

func certInfo(certs []*x509.Certificate) *DiscoveredTLS {
	if len(certs) == 0 {
		return nil
	}
	c := certs[0]
	t := &DiscoveredTLS{Subject: clean(c.Subject.CommonName), Issuer: clean(c.Issuer.CommonName), NotAfter: c.NotAfter.UTC()}
	if t.Issuer == "" {
		t.Issuer = clean(c.Issuer.String())
	}
	for _, n := range c.DNSNames {
		if len(t.SANs) < 32 {
			t.SANs = append(t.SANs, clean(n))
		}
	}
	for _, ip := range c.IPAddresses {
		if len(t.SANs) < 32 {
			t.SANs = append(t.SANs, ip.String())
		}
	}
	return t
}
