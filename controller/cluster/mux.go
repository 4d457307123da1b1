package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Raft and the controller-to-controller RPC share one port (3002), as Consul
// and Nomad share theirs: after the TLS handshake the dialer sends one byte
// naming the protocol.
const (
	protoRaft byte = 'R'
	protoRPC  byte = 'C'

	handshakeTimeout = 5 * time.Second
)

// Faults cuts links between controllers for tests: a node refuses and
// drops connections to and from the peers it blocks, at the TLS layer, so
// Raft and RPC see real connection failures. Production nodes have none.
type Faults struct {
	mu      sync.Mutex
	blocked map[string]bool
	onBlock []func(id string)
}

// NewFaults returns a fault injector with no link cut.
func NewFaults() *Faults { return &Faults{blocked: map[string]bool{}} }

// Block cuts this node's links to the given node IDs, dropping live ones.
func (f *Faults) Block(ids ...string) {
	f.mu.Lock()
	for _, id := range ids {
		f.blocked[id] = true
	}
	hooks := append([]func(string){}, f.onBlock...)
	f.mu.Unlock()
	for _, id := range ids {
		for _, h := range hooks {
			h(id)
		}
	}
}

// Heal restores every link.
func (f *Faults) Heal() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.blocked = map[string]bool{}
}

func (f *Faults) isBlocked(id string) bool {
	if f == nil {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.blocked[id]
}

func (f *Faults) subscribe(h func(id string)) {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.onBlock = append(f.onBlock, h)
}

var errBlocked = errors.New("link cut by fault injection")

// mux accepts mutual-TLS connections on the Raft port and routes them by
// their first byte. It also dials peers.
type mux struct {
	ln        net.Listener
	advertise net.Addr
	serverTLS *tls.Config
	clientTLS *tls.Config
	faults    *Faults
	log       *slog.Logger

	raftCh chan net.Conn
	rpc    func(conn net.Conn, peerID string)

	mu      sync.Mutex
	conns   map[net.Conn]string // live connections and their peer's node ID
	closed  bool
	closeCh chan struct{}
	wg      sync.WaitGroup
}

func newMux(ln net.Listener, advertise net.Addr, serverTLS, clientTLS *tls.Config, faults *Faults, log *slog.Logger) *mux {
	m := &mux{
		ln: ln, advertise: advertise, serverTLS: serverTLS, clientTLS: clientTLS, faults: faults, log: log,
		raftCh: make(chan net.Conn), conns: map[net.Conn]string{}, closeCh: make(chan struct{}),
	}
	faults.subscribe(m.dropPeer)
	return m
}

// start begins accepting; rpc serves each RPC connection until it closes.
func (m *mux) start(rpc func(conn net.Conn, peerID string)) {
	m.rpc = rpc
	m.wg.Add(1)
	go m.acceptLoop()
}

func (m *mux) acceptLoop() {
	defer m.wg.Done()
	for {
		c, err := m.ln.Accept()
		if err != nil {
			select {
			case <-m.closeCh:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			m.log.Error("raft port accept failed; stopping", "error", err)
			return
		}
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			m.handle(c)
		}()
	}
}

func (m *mux) handle(c net.Conn) {
	tc := tls.Server(c, m.serverTLS)
	_ = tc.SetDeadline(time.Now().Add(handshakeTimeout))
	if err := tc.Handshake(); err != nil {
		m.log.Debug("rejected connection on raft port", "remote", c.RemoteAddr().String(), "error", err)
		c.Close()
		return
	}
	peer, err := peerNodeID(tc.ConnectionState().VerifiedChains)
	if err != nil || m.faults.isBlocked(peer) {
		tc.Close()
		return
	}
	var proto [1]byte
	if _, err := io.ReadFull(tc, proto[:]); err != nil {
		tc.Close()
		return
	}
	_ = tc.SetDeadline(time.Time{})
	if !m.track(tc, peer) {
		return
	}
	switch proto[0] {
	case protoRaft:
		select {
		case m.raftCh <- tc:
		case <-m.closeCh:
			tc.Close()
		}
	case protoRPC:
		defer m.untrack(tc)
		m.rpc(tc, peer)
	default:
		m.log.Warn("unknown protocol byte on raft port", "peer", peer, "byte", proto[0])
		m.untrack(tc)
	}
}

// dial opens a mutual-TLS connection to a peer for one protocol.
func (m *mux) dial(ctx context.Context, addr string, proto byte) (net.Conn, error) {
	d := tls.Dialer{NetDialer: &net.Dialer{}, Config: m.clientTLS}
	hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	c, err := d.DialContext(hctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	tc := c.(*tls.Conn)
	peer, err := peerNodeID(tc.ConnectionState().VerifiedChains)
	if err != nil {
		tc.Close()
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	if m.faults.isBlocked(peer) {
		tc.Close()
		return nil, fmt.Errorf("dial %s (%s): %w", addr, peer, errBlocked)
	}
	if _, err := tc.Write([]byte{proto}); err != nil {
		tc.Close()
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	if !m.track(tc, peer) {
		return nil, fmt.Errorf("dial %s: %w", addr, net.ErrClosed)
	}
	return &trackedConn{Conn: tc, m: m}, nil
}

func (m *mux) track(c net.Conn, peer string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		c.Close()
		return false
	}
	m.conns[c] = peer
	return true
}

func (m *mux) untrack(c net.Conn) {
	m.mu.Lock()
	delete(m.conns, c)
	m.mu.Unlock()
	c.Close()
}

func (m *mux) dropPeer(id string) {
	m.mu.Lock()
	var drop []net.Conn
	for c, peer := range m.conns {
		if peer == id {
			drop = append(drop, c)
		}
	}
	m.mu.Unlock()
	for _, c := range drop {
		c.Close()
	}
}

// close stops accepting and closes every live connection.
func (m *mux) close() {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	m.closed = true
	close(m.closeCh)
	conns := m.conns
	m.conns = map[net.Conn]string{}
	m.mu.Unlock()
	m.ln.Close()
	for c := range conns {
		c.Close()
	}
	m.wg.Wait()
}

type trackedConn struct {
	net.Conn
	m    *mux
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.m.mu.Lock()
		delete(c.m.conns, c.Conn)
		c.m.mu.Unlock()
	})
	return c.Conn.Close()
}

// streamLayer is the raft.StreamLayer over the mux.
type streamLayer struct{ m *mux }

func (s streamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-s.m.raftCh:
		return &trackedConn{Conn: c, m: s.m}, nil
	case <-s.m.closeCh:
		return nil, net.ErrClosed
	}
}

func (s streamLayer) Close() error { return nil } // the node closes the mux after raft shuts down

func (s streamLayer) Addr() net.Addr { return s.m.advertise }

func (s streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return s.m.dial(ctx, string(address), protoRaft)
}
