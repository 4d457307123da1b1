package history

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/opsconductor/opsconductor/controller/problem"
)

// WriterConfig bounds a Writer. Zero values take the defaults.
type WriterConfig struct {
	// MaxBatch is the most records one Append carries (default 1000).
	MaxBatch int
	// MaxDelay is how long the first record of a batch waits for company
	// before the batch is flushed anyway (default 10 ms).
	MaxDelay time.Duration
	// MaxBuffer is the most records held in memory waiting to be stored
	// (default 100,000). Submit blocks beyond it: that is the back-pressure
	// producers feel while the store is away.
	MaxBuffer int
	Logger    *slog.Logger
}

func (c *WriterConfig) defaults() {
	if c.MaxBatch <= 0 {
		c.MaxBatch = 1000
	}
	if c.MaxDelay <= 0 {
		c.MaxDelay = 10 * time.Millisecond
	}
	if c.MaxBuffer <= 0 {
		c.MaxBuffer = 100_000
	}
	c.MaxBuffer = max(c.MaxBuffer, c.MaxBatch)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Ticket reports when the records of one Submit are durable, or why they
// never will be. Only then may a producer acknowledge them upstream.
type Ticket struct {
	done chan struct{}
	err  error
	left int // records of this ticket not yet stored; guarded by Writer.mu
}

// Done is closed when the outcome is known.
func (t *Ticket) Done() <-chan struct{} { return t.done }

// Err is the outcome once Done is closed: nil means stored.
func (t *Ticket) Err() error {
	<-t.done
	return t.err
}

type queued struct {
	rec    Record
	ticket *Ticket
	at     time.Time // when it was submitted, for the lag in Status
}

// Writer batches appends to a Store. Records are stored in the order they
// were submitted. When the store fails, the writer keeps the records and
// retries the same batch with backoff until it succeeds: nothing is
// dropped, nothing is acknowledged early, and memory stays bounded by
// MaxBuffer because Submit waits for room.
type Writer struct {
	store Store
	cfg   WriterConfig
	log   *slog.Logger

	mu      sync.Mutex
	queue   []queued
	room    chan struct{} // closed and replaced when the queue shrinks
	wake    chan struct{} // buffered 1: records arrived
	closed  bool
	lastErr error
	errAt   time.Time
	stored  int64
	// failures counts store appends that failed, retried ones included.
	failures int64

	stop chan struct{}
	done chan struct{}
}

// NewWriter starts a writer over store; Close stops it.
func NewWriter(store Store, cfg WriterConfig) *Writer {
	cfg.defaults()
	w := &Writer{
		store: store, cfg: cfg, log: cfg.Logger,
		room: make(chan struct{}), wake: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	go w.run()
	return w
}

// Submit queues records and returns a ticket for their durability. It
// validates first, so a bad record is refused at once and never blocks the
// queue. It waits while the buffer is full, until ctx ends.
func (w *Writer) Submit(ctx context.Context, recs []Record) (*Ticket, error) {
	if err := ValidateBatch(recs); err != nil {
		return nil, err
	}
	if len(recs) > w.cfg.MaxBuffer {
		return nil, problem.Invalid("records", "%d records in one submit, at most %d", len(recs), w.cfg.MaxBuffer)
	}
	t := &Ticket{done: make(chan struct{}), left: len(recs)}
	if len(recs) == 0 {
		close(t.done)
		return t, nil
	}
	for {
		w.mu.Lock()
		if w.closed {
			w.mu.Unlock()
			return nil, ErrClosed
		}
		if len(w.queue)+len(recs) <= w.cfg.MaxBuffer {
			now := time.Now()
			for _, r := range recs {
				w.queue = append(w.queue, queued{rec: r, ticket: t, at: now})
			}
			w.mu.Unlock()
			select {
			case w.wake <- struct{}{}:
			default:
			}
			return t, nil
		}
		room := w.room
		w.mu.Unlock()
		select {
		case <-room:
		case <-ctx.Done():
			return nil, fmt.Errorf("history buffer full (%d records): %w", w.cfg.MaxBuffer, ctx.Err())
		}
	}
}

// Barrier returns a ticket settled once every record submitted before the
// call is stored (records are stored in submission order, so that is the
// ticket of the newest queued record), or at once when none waits.
func (w *Writer) Barrier() *Ticket {
	w.mu.Lock()
	defer w.mu.Unlock()
	if n := len(w.queue); n > 0 {
		return w.queue[n-1].ticket
	}
	t := &Ticket{done: make(chan struct{})}
	close(t.done)
	return t
}

// Write submits records and waits until they are durable.
func (w *Writer) Write(ctx context.Context, recs []Record) error {
	t, err := w.Submit(ctx, recs)
	if err != nil {
		return err
	}
	select {
	case <-t.Done():
		return t.err
	case <-ctx.Done():
		return fmt.Errorf("waiting for history write: %w", ctx.Err())
	}
}

// WriterStatus is the writer's part of /health.
type WriterStatus struct {
	Buffered int `json:"buffered"`
	// LagMillis is the age of the oldest record waiting to be stored.
	LagMillis int64  `json:"lag_ms"`
	Stored    int64  `json:"stored"`
	LastError string `json:"last_error,omitempty"`
	// Failing is true while the last attempt to store failed.
	Failing bool `json:"failing"`
}

// Status reports the buffer and the last error.
func (w *Writer) Status() WriterStatus {
	w.mu.Lock()
	defer w.mu.Unlock()
	st := WriterStatus{Buffered: len(w.queue), Stored: w.stored, Failing: w.lastErr != nil}
	if len(w.queue) > 0 {
		st.LagMillis = time.Since(w.queue[0].at).Milliseconds()
	}
	if w.lastErr != nil {
		st.LastError = w.lastErr.Error()
	}
	return st
}

// AppendFailures counts the store appends that failed since the writer
// started: each retry of a batch the store refuses counts again, so the
// rate says how long the store has been failing.
func (w *Writer) AppendFailures() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.failures
}

// Close stores what it can until ctx ends, then fails the rest with
// ErrClosed. It does not close the store.
func (w *Writer) Close(ctx context.Context) error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		<-w.done
		return nil
	}
	w.closed = true
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	var err error
	for {
		w.mu.Lock()
		n, room := len(w.queue), w.room
		w.mu.Unlock()
		if n == 0 {
			break
		}
		select {
		case <-room: // the queue shrank; look again
			continue
		case <-ctx.Done():
			err = fmt.Errorf("history writer closed with %d records unstored: %w", n, ctx.Err())
		}
		break
	}
	close(w.stop)
	<-w.done
	w.failAll(ErrClosed)
	return err
}

func (w *Writer) run() {
	defer close(w.done)
	backoff := 50 * time.Millisecond
	for {
		batch := w.nextBatch()
		if batch == nil {
			return
		}
		recs := make([]Record, len(batch))
		for i, q := range batch {
			recs[i] = q.rec
		}
		err := w.store.Append(context.Background(), recs)
		if err == nil {
			backoff = 50 * time.Millisecond
			w.complete(len(batch), nil)
			continue
		}
		if p, ok := problem.As(err); ok && p.Kind == problem.KindInvalid {
			// Validated on submit, so this is a store that disagrees: the
			// batch can never be stored, and retrying would wedge the queue.
			w.log.Error("history store refused a batch", "records", len(batch), "error", err)
			w.mu.Lock()
			w.failures++
			w.mu.Unlock()
			w.complete(len(batch), err)
			continue
		}
		w.mu.Lock()
		first := w.lastErr == nil
		w.lastErr, w.errAt = err, time.Now()
		w.failures++
		w.mu.Unlock()
		if first {
			w.log.Warn("history store unavailable; buffering and retrying", "buffered", w.Status().Buffered, "error", err)
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-w.stop:
			t.Stop()
			return
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// nextBatch waits for records, lets a batch fill for MaxDelay, and returns
// up to MaxBatch records from the head of the queue (they stay queued until
// stored). It returns nil when the writer stops.
func (w *Writer) nextBatch() []queued {
	for {
		w.mu.Lock()
		n := len(w.queue)
		w.mu.Unlock()
		if n == 0 {
			select {
			case <-w.wake:
				continue
			case <-w.stop:
				return nil
			}
		}
		if n < w.cfg.MaxBatch {
			t := time.NewTimer(w.cfg.MaxDelay)
			select {
			case <-t.C:
			case <-w.stop:
				t.Stop()
			}
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		n = min(len(w.queue), w.cfg.MaxBatch)
		if n == 0 {
			return nil
		}
		return append([]queued(nil), w.queue[:n]...)
	}
}

// complete removes n records from the head of the queue and settles the
// tickets they finish.
func (w *Writer) complete(n int, err error) {
	w.mu.Lock()
	done := w.queue[:n]
	w.queue = append([]queued(nil), w.queue[n:]...)
	if err == nil {
		w.stored += int64(n)
		if w.lastErr != nil {
			w.log.Info("history store reachable again", "down_for", time.Since(w.errAt).Round(time.Millisecond).String())
		}
		w.lastErr = nil
	}
	var settle []*Ticket
	for _, q := range done {
		if err != nil && q.ticket.err == nil {
			q.ticket.err = err
		}
		q.ticket.left--
		if q.ticket.left == 0 {
			settle = append(settle, q.ticket)
		}
	}
	close(w.room)
	w.room = make(chan struct{})
	w.mu.Unlock()
	for _, t := range settle {
		close(t.done)
	}
}

func (w *Writer) failAll(err error) {
	w.mu.Lock()
	rest := w.queue
	w.queue = nil
	close(w.room)
	w.room = make(chan struct{})
	w.mu.Unlock()
	seen := map[*Ticket]bool{}
	for _, q := range rest {
		if !seen[q.ticket] {
			seen[q.ticket] = true
			q.ticket.err = err
			close(q.ticket.done)
		}
	}
}
