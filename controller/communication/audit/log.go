package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/opsconductor/opsconductor/controller/history"
)

// Config configures a Log.
type Config struct {
	// Store holds the chain; required.
	Store history.Store
	// Node is this controller's id; its chain is Stream(Node). Required.
	Node   string
	Logger *slog.Logger
	// Now stamps entries that come without a time; default time.Now.
	Now func() time.Time
	// MaxBatch is the most entries one store append carries (default 256).
	MaxBatch int
	// WriteTimeout bounds one store append and its read-back (default
	// 10 s): a store that hangs fails the requests waiting on it rather
	// than holding them forever.
	WriteTimeout time.Duration
}

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("audit log closed")

// Log appends entries to one node's chain. Every method is safe for
// concurrent use.
type Log struct {
	store        history.Store
	node, stream string
	log          *slog.Logger
	now          func() time.Time
	maxBatch     int
	writeTimeout time.Duration

	mu      sync.Mutex
	pending []*pending
	closed  bool
	// headSeq and headHash are the last entry known to be stored.
	headSeq  uint64
	headHash string

	// resync is owned by the run goroutine (and Open before it starts):
	// the tail must be reloaded before the next write.
	resync bool

	// failed counts entries that could not be recorded: each was a
	// request refused with 503 audit_unavailable or left unacknowledged.
	failed atomic.Int64

	wake   chan struct{} // buffered 1
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

type pending struct {
	e    Entry
	done chan struct{}
	err  error
}

// Open continues node's chain from the tail of its stream, registers the
// node for VerifyAll and starts the Log's writer; Close stops it.
func Open(ctx context.Context, cfg Config) (*Log, error) {
	if cfg.Store == nil {
		return nil, errors.New("audit: Config.Store is required")
	}
	if err := checkNode(cfg.Node); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 256
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	l := &Log{
		store: cfg.Store, node: cfg.Node, stream: Stream(cfg.Node), log: cfg.Logger.With("node_id", cfg.Node),
		now: cfg.Now, maxBatch: cfg.MaxBatch, writeTimeout: cfg.WriteTimeout,
		wake: make(chan struct{}, 1), done: make(chan struct{}),
	}
	if err := l.loadHead(ctx); err != nil {
		return nil, err
	}
	if err := register(ctx, cfg.Store, cfg.Node); err != nil {
		return nil, err
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	go l.run()
	return l, nil
}

// Node is the id of the chain this Log writes.
func (l *Log) Node() string { return l.node }

// Head returns the seq and hash of the last entry known to be stored (0
// and ZeroHash for an empty chain).
func (l *Log) Head() (uint64, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.headSeq, l.headHash
}

// loadHead reads the chain's last entry to continue after it.
func (l *Log) loadHead(ctx context.Context) error {
	tail, err := l.store.Tail(ctx, l.stream, 1)
	if err != nil {
		return fmt.Errorf("read the tail of audit chain %s: %w", l.node, err)
	}
	seq, hash := uint64(0), ZeroHash
	if len(tail) == 1 {
		r := tail[0]
		seq = r.Seq
		e, computed, err := decode(r.Data)
		switch {
		case err != nil:
			// Refusing to start would stop every mutation of the cluster;
			// continuing keeps the evidence, and Verify names this entry.
			hash = rawHash(r.Data)
			l.log.Error("the last audit entry does not decode; continuing the chain after it", "seq", r.Seq, "error", err)
		case computed != e.Hash:
			hash = e.Hash
			l.log.Error("the last audit entry does not match its hash; continuing the chain after it", "seq", r.Seq)
		default:
			hash = e.Hash
		}
	}
	l.mu.Lock()
	l.headSeq, l.headHash = seq, hash
	l.mu.Unlock()
	l.resync = false
	return nil
}

// Append records e in the chain and returns it as stored (seq, node, time,
// hashes set, strings cut, diff redacted) once it is durable. An error
// means the entry is not known to be recorded: the caller must fail the
// request. A canceled ctx returns at once, but the entry may yet be
// written.
func (l *Log) Append(ctx context.Context, e Entry) (Entry, error) {
	if err := ctx.Err(); err != nil {
		return Entry{}, fmt.Errorf("audit entry %q: %w", e.Action, err)
	}
	e, err := prepare(e, l.now())
	if err != nil {
		return Entry{}, err
	}
	e.Node = l.node
	p := &pending{e: e, done: make(chan struct{})}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return Entry{}, ErrClosed
	}
	l.pending = append(l.pending, p)
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
	select {
	case <-p.done:
		if p.err != nil {
			return Entry{}, p.err
		}
		return p.e, nil
	case <-ctx.Done():
		return Entry{}, fmt.Errorf("waiting for audit entry %q: %w (it may yet be recorded)", e.Action, ctx.Err())
	}
}

// Metrics returns the log's collector for the controller's registry.
func (l *Log) Metrics() prometheus.Collector {
	return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "opsconductor_audit_append_errors_total",
		Help: "Audit entries this server could not record; the requests they stood for were refused or not acknowledged."},
		func() float64 { return float64(l.failed.Load()) })
}

// Close writes what is pending (until ctx ends, when the write in flight
// is abandoned and the rest fail with ErrClosed) and stops the writer. It
// does not close the store. A second call is harmless.
func (l *Log) Close(ctx context.Context) error {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
	select {
	case <-l.done:
		l.cancel()
		return nil
	case <-ctx.Done():
		l.cancel()
		<-l.done
		return fmt.Errorf("close audit log %s: %w", l.node, ctx.Err())
	}
}

func (l *Log) run() {
	defer close(l.done)
	for {
		l.mu.Lock()
		n := min(len(l.pending), l.maxBatch)
		batch := l.pending[:n:n]
		l.pending = l.pending[n:]
		closed := l.closed
		l.mu.Unlock()
		if n > 0 {
			l.write(batch)
			continue
		}
		if closed {
			return
		}
		<-l.wake
	}
}

// write chains batch after the head, stores it in one append, reads it
// back and settles every entry of it.
func (l *Log) write(batch []*pending) {
	err := l.ctx.Err()
	if err != nil {
		err = ErrClosed
	}
	ctx, cancel := context.WithTimeout(l.ctx, l.writeTimeout)
	defer cancel()
	if err == nil && l.resync {
		err = l.loadHead(ctx)
	}
	var recs []history.Record
	if err == nil {
		recs, err = l.chain(batch)
	}
	if err == nil {
		err = l.store.Append(ctx, recs)
		if err != nil {
			err = fmt.Errorf("store audit entries %d-%d: %w", recs[0].Seq, recs[len(recs)-1].Seq, err)
		}
	}
	if err == nil {
		err = l.readBack(ctx, recs)
	}
	if err != nil {
		// The store may hold all of the batch or none; only its tail
		// says, so read it before the next write.
		l.resync = true
		l.failed.Add(int64(len(batch)))
		l.log.Error("audit entries not recorded", "entries", len(batch), "error", err)
	} else {
		last := batch[len(batch)-1].e
		l.mu.Lock()
		l.headSeq, l.headHash = last.Seq, last.Hash
		l.mu.Unlock()
	}
	for _, p := range batch {
		p.err = err
		close(p.done)
	}
}

// chain gives each entry of batch its seq and hashes, after the head.
func (l *Log) chain(batch []*pending) ([]history.Record, error) {
	seq, prev := l.Head()
	recs := make([]history.Record, len(batch))
	for i, p := range batch {
		seq++
		p.e.Seq, p.e.PrevHash = seq, prev
		data, h, err := encode(p.e)
		if err != nil {
			return nil, err
		}
		p.e.Hash, prev = h, h
		recs[i] = record(p.e, data)
	}
	return recs, nil
}

// readBack checks that the store holds what was written: appends skip a
// (stream, seq) already stored, so if another writer took these seqs the
// append succeeded without storing anything of ours.
func (l *Log) readBack(ctx context.Context, recs []history.Record) error {
	first, last := recs[0].Seq, recs[len(recs)-1].Seq
	got, err := l.store.Read(ctx, l.stream, first, last, len(recs))
	if err != nil {
		return fmt.Errorf("read back audit entries %d-%d: %w", first, last, err)
	}
	if len(got) != len(recs) {
		return fmt.Errorf("read back audit entries %d-%d: %d of %d stored", first, last, len(got), len(recs))
	}
	for i := range got {
		if got[i].Seq != recs[i].Seq || !bytes.Equal(got[i].Data, recs[i].Data) {
			return fmt.Errorf("audit entry %d of chain %s was written by someone else: is another controller using node id %q?",
				recs[i].Seq, l.node, l.node)
		}
	}
	return nil
}

// The registry of chains: see the package doc.
const (
	registryStream = "communication/audit-nodes"
	registryKind   = "communication.audit_node"
)

// registryTime dates registrations so that retention, which removes the
// oldest records, never reaches them.
var registryTime = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)

type registration struct {
	Node string `json:"node"`
}

// registrySeq places node's registration: 63 bits of its SHA-256, so
// controllers never pick the same seq (a collision is detected, at odds
// of 2^-63 per pair).
func registrySeq(node string) uint64 {
	sum := sha256.Sum256([]byte(node))
	return binary.BigEndian.Uint64(sum[:8]) >> 1
}

func register(ctx context.Context, s history.Store, node string) error {
	seq := registrySeq(node)
	data, err := json.Marshal(registration{Node: node})
	if err != nil {
		return fmt.Errorf("encode audit registration: %w", err)
	}
	rec := history.Record{Stream: registryStream, Seq: seq, Time: registryTime, Kind: registryKind, Data: data}
	if err := s.Append(ctx, []history.Record{rec}); err != nil {
		return fmt.Errorf("register audit chain %s: %w", node, err)
	}
	got, err := s.Read(ctx, registryStream, seq, seq, 1)
	if err != nil {
		return fmt.Errorf("read audit registration of %s: %w", node, err)
	}
	if len(got) != 1 || !bytes.Equal(got[0].Data, data) {
		return fmt.Errorf("audit registration of %s: seq %d holds another node's", node, seq)
	}
	return nil
}

// Nodes lists the nodes whose chains are registered in s, in the order of
// their registry seqs.
func Nodes(ctx context.Context, s history.Store) ([]string, error) {
	var nodes []string
	from := uint64(0)
	for {
		recs, err := s.Read(ctx, registryStream, from, history.MaxSeq, history.MaxPage)
		if err != nil {
			return nil, fmt.Errorf("read audit registry: %w", err)
		}
		for _, r := range recs {
			var reg registration
			if err := json.Unmarshal(r.Data, &reg); err != nil || checkNode(reg.Node) != nil || registrySeq(reg.Node) != r.Seq {
				return nil, fmt.Errorf("audit registry entry %d is not a registration", r.Seq)
			}
			nodes = append(nodes, reg.Node)
		}
		if len(recs) < history.MaxPage {
			return nodes, nil
		}
		from = recs[len(recs)-1].Seq + 1
	}
}
