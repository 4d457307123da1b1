package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opsconductor/opsconductor/controller/apiclient"
	"github.com/opsconductor/opsconductor/controller/history/postgres/pgtest"
)

func healthDoc(t *testing.T, addr string) map[string]json.RawMessage {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/health")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc map[string]json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

func historySection(t *testing.T, addr string) historyHealth {
	t.Helper()
	var h historyHealth
	if err := json.Unmarshal(healthDoc(t, addr)["history"], &h); err != nil {
		t.Fatal(err)
	}
	return h
}

func TestEmbeddedHistoryIsTheDefault(t *testing.T) {
	r := start(t, testConfig(t.TempDir()))
	h := historySection(t, r.ready.HTTPAddr)
	if h.Backend != "embedded" || !h.Reachable || h.Failing {
		t.Fatalf("history section %+v", h)
	}
}

// cutProxy forwards TCP to target until cut, then drops every connection
// and refuses new ones until healed: PostgreSQL "going away" without
// touching the real server other tests use.
type cutProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	conns  map[net.Conn]bool
	wg     sync.WaitGroup
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.setCut(true)
		p.wg.Wait()
	})
	return p
}

func (p *cutProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c], p.conns[up] = true, true
		p.mu.Unlock()
		p.wg.Add(2)
		go func() { defer p.wg.Done(); _, _ = io.Copy(up, c); up.Close() }()
		go func() { defer p.wg.Done(); _, _ = io.Copy(c, up); c.Close() }()
	}
}

func (p *cutProxy) setCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for c := range p.conns {
			c.Close()
		}
		p.conns = map[net.Conn]bool{}
	}
}

func TestPostgresHistoryOutageFailsReadinessAndRecovers(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	u, _ := url.Parse(dsn)
	proxy := newCutProxy(t, u.Host)
	u.Host = proxy.ln.Addr().String()
	cfg := testConfig(t.TempDir())
	cfg.History = u.String()
	r := start(t, cfg)
	if h := historySection(t, r.ready.HTTPAddr); h.Backend != "postgres" || !h.Reachable {
		t.Fatalf("history section %+v", h)
	}

	proxy.setCut(true)
	// Readiness can also blink for a moment while Raft applies an entry;
	// wait for the answer that names the history store.
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := r.client.Ready(context.Background())
		var apiErr *apiclient.Error
		if errors.As(err, &apiErr) && apiErr.Status == 503 && strings.Contains(apiErr.Message, "history") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readiness during the outage: %v, want 503 naming history", err)
		}
		time.Sleep(50 * time.Millisecond) // polling with a deadline
	}
	if h := historySection(t, r.ready.HTTPAddr); h.Reachable || h.PingError == "" {
		t.Fatalf("history section during the outage: %+v", h)
	}
	wantMetrics(t, scrapeMetrics(t, r.ready.HTTPAddr), map[string]float64{"opsconductor_history_reachable": 0})

	proxy.setCut(false)
	waitReady(t, r.client, true)
	wantMetrics(t, scrapeMetrics(t, r.ready.HTTPAddr), map[string]float64{"opsconductor_history_reachable": 1})
}

func waitReady(t *testing.T, c *apiclient.Client, want bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := c.Ready(context.Background())
		if (err == nil) == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("readiness never became %v (last: %v)", want, err)
		}
		time.Sleep(50 * time.Millisecond) // polling with a deadline
	}
}
