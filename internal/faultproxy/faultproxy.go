// Package faultproxy is a TCP proxy that can cut the link it stands for.
// The chaos suite (test/chaos) puts one in front of every listener of a
// controller cluster and cuts and heals them to simulate network
// partitions between real processes, which cannot be partitioned from the
// outside otherwise without root-only tools (iptables, tc).
//
// It forwards bytes and nothing else: it never parses, delays or reorders
// what passes through, so a healed link behaves like a fresh network path.
// A connection that lost bytes to a cut is closed, never resumed, because a
// TCP stream with a hole in it would hand the peers corrupted data that no
// real network produces.
package faultproxy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
)

// Mode is how a cut link behaves.
type Mode int

const (
	// Refuse closes every live connection at once and closes each new one
	// as soon as it is accepted: the peer sees a reset, as when the
	// process behind the link is gone.
	Refuse Mode = iota
	// Blackhole keeps the connections open but drops every byte in both
	// directions, and holds new connections open without dialling the
	// target: the peer sees silence until its own timeouts fire, as in a
	// real partition. Heal closes the connections that lost bytes.
	Blackhole
)

func (m Mode) String() string {
	switch m {
	case Refuse:
		return "refuse"
	case Blackhole:
		return "blackhole"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Stats counts what the proxy did since it started.
type Stats struct {
	Accepted  int   // connections accepted
	Refused   int   // connections closed at accept because the link was cut
	Forwarded int64 // bytes passed on
	Dropped   int64 // bytes read and thrown away because the link was cut
	Live      int   // connections open now
}

// Proxy forwards every connection accepted on its listener to one target.
type Proxy struct {
	ln     net.Listener
	target string
	dial   func(network, addr string) (net.Conn, error)

	mu     sync.Mutex
	cut    bool
	mode   Mode
	conns  map[*link]struct{}
	stats  Stats
	closed bool

	wg sync.WaitGroup
}

// link is one proxied connection: the accepted side and, unless it was
// accepted while blackholed, the dialled side.
type link struct {
	client, server net.Conn
	// lost is set once a cut dropped bytes of this link or it was
	// accepted while cut; Heal closes such links.
	lost bool
	once sync.Once
}

func (l *link) close() {
	l.once.Do(func() {
		l.client.Close()
		if l.server != nil {
			l.server.Close()
		}
	})
}

// Listen starts a proxy on listenAddr (host:port; port 0 lets the kernel
// choose) that forwards to target.
func Listen(listenAddr, target string) (*Proxy, error) {
	if target == "" {
		return nil, errors.New("faultproxy: target address is empty")
	}
	ln, err := net.Listen("tcp", listenAddr)
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen on %s: %w", listenAddr, err)
	}
	p := &Proxy{ln: ln, target: target, dial: net.Dial, conns: map[*link]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// Addr is the address the proxy listens on.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Target is the address the proxy forwards to.
func (p *Proxy) Target() string { return p.target }

// Cut breaks the link in the given mode until Heal. Cutting a cut link
// changes its mode; a switch to Refuse closes every connection.
func (p *Proxy) Cut(mode Mode) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut, p.mode = true, mode
	for l := range p.conns {
		if mode == Refuse {
			l.close()
			delete(p.conns, l)
			continue
		}
		// In-flight bytes of a blackholed link are lost from here on, so
		// it cannot be resumed after Heal.
		l.lost = true
	}
}

// Heal restores the link: new connections are forwarded again, and the
// connections that lost bytes while it was cut are closed.
func (p *Proxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
	for l := range p.conns {
		if l.lost {
			l.close()
			delete(p.conns, l)
		}
	}
}

// IsCut reports whether the link is cut.
func (p *Proxy) IsCut() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cut
}

// Stats returns the proxy's counters.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	s.Live = len(p.conns)
	return s
}

// Close stops the listener, closes every connection and waits for the
// proxy's goroutines to end.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	for l := range p.conns {
		l.close()
		delete(p.conns, l)
	}
	p.mu.Unlock()
	err := p.ln.Close()
	p.wg.Wait()
	return err
}

func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			// Close is the only way the listener fails on loopback; any
			// other error ends the proxy too, and Close still cleans up.
			return
		}
		p.wg.Add(1)
		go p.handle(c)
	}
}

func (p *Proxy) handle(c net.Conn) {
	defer p.wg.Done()
	p.mu.Lock()
	p.stats.Accepted++
	cut, mode, closed := p.cut, p.mode, p.closed
	if closed || (cut && mode == Refuse) {
		p.stats.Refused++
		p.mu.Unlock()
		c.Close()
		return
	}
	p.mu.Unlock()

	l := &link{client: c}
	if !cut {
		// The dial happens outside the lock: a slow or refused target must
		// not stall Cut and Heal.
		s, err := p.dial("tcp", p.target)
		if err != nil {
			c.Close()
			return
		}
		l.server = s
	}
	p.mu.Lock()
	if p.closed || (p.cut && p.mode == Refuse) {
		p.mu.Unlock()
		l.close()
		return
	}
	if l.server == nil || p.cut {
		// Accepted while cut, or cut while dialling: no byte will pass.
		l.lost = true
	}
	p.conns[l] = struct{}{}
	p.mu.Unlock()

	var pumps sync.WaitGroup
	pumps.Add(1)
	go func() {
		defer pumps.Done()
		p.pump(l, l.server, l.client)
	}()
	p.pump(l, l.client, l.server)
	pumps.Wait()
	l.close()
	p.mu.Lock()
	delete(p.conns, l)
	p.mu.Unlock()
}

// pump copies src to dst until either fails, dropping what it reads while
// the link is cut or has lost bytes. dst may be nil (a link accepted while
// blackholed): everything read is dropped.
func (p *Proxy) pump(l *link, dst, src net.Conn) {
	if src == nil {
		return
	}
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			drop := p.cut || l.lost || dst == nil
			if drop {
				l.lost = true
				p.stats.Dropped += int64(n)
			} else {
				p.stats.Forwarded += int64(n)
			}
			p.mu.Unlock()
			if !drop {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					l.close()
					return
				}
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) && dst != nil {
				// Pass a half-close on, so that a peer that shuts down
				// its sending side is seen to do so.
				if cw, ok := dst.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
					return
				}
			}
			// Any other end takes the whole link down, or the pump in
			// the other direction would wait on a peer that is gone.
			l.close()
			return
		}
	}
}
