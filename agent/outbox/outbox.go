// Package outbox is the agent's durable queue of attempt events the
// controller has not acknowledged yet: the accepted assignments, their
// output chunks and their results, in a bbolt file in the data directory.
//
// It owns that file and nothing else. It must never drop an event: when
// it holds MaxBytes of output, Put blocks (back-pressure on the step's
// output) until an Ack frees room. Only Ack removes events.
//
// Writes are group-committed: Put, Accept, Finish and Ack queue an event
// and return, and one commit loop writes everything queued in one
// transaction (one fsync), so a step printing 10,000 lines a second costs
// a few hundred fsyncs, not 10,000, and no event waits for the disk
// before the session sends it. Readers (Pending, Attempts, Has) see the
// queued events as if they were committed, in order.
//
// Sending before the local fsync keeps the disk out of every attempt's
// round trip (an fsync costs milliseconds on ordinary disks). It loses
// nothing: the controller stores each (attempt, seq) once and acks only
// what its own store holds durably, and an event it never received is
// still queued or on disk here and is replayed. An agent that crashes
// between sending an event and committing it replays less than the
// controller holds, which the controller ignores, or forgets an attempt
// it had just accepted, which the controller ends as an error when the
// agent's next Hello does not name it. Acks are queued behind the events
// they acknowledge, so an ack can never reach the disk before its chunk.
package outbox

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	agentv1 "github.com/opsconductor/opsconductor/proto/agent/v1"
)

// DefaultMaxBytes bounds the output held when Options.MaxBytes is zero.
const DefaultMaxBytes = 256 << 20

// ErrClosed is returned by calls on a closed Outbox.
var ErrClosed = errors.New("outbox: closed")

var (
	bucketAttempts = []byte("attempts")
	bucketChunks   = []byte("chunks")
	keyAssignment  = []byte("assignment")
	keyAccepted    = []byte("accepted")
	keyLastSeq     = []byte("last_seq")
	keyResult      = []byte("result")
	// keyResultAcked marks an attempt whose Result was acknowledged
	// while some of its chunks were not yet.
	keyResultAcked = []byte("result_acked")
)

// Options configures Open.
type Options struct {
	// MaxBytes bounds the bytes of output and results held (default
	// DefaultMaxBytes). A single chunk larger than it is still accepted
	// into an empty outbox.
	MaxBytes int64
	Logger   *slog.Logger
	// CommitDelay is how long queued events wait before the commit that
	// writes them (default DefaultCommitDelay; negative: none). Events
	// are sent before they are written, so the delay costs no latency;
	// it lets the controller's acks arrive first, and an acknowledged
	// chunk still queued is dropped instead of written and deleted.
	// Flush and Close do not wait for it.
	CommitDelay time.Duration
}

// DefaultCommitDelay bounds how long an event lives only in memory: an
// agent killed within it loses what it had not yet sent.
const DefaultCommitDelay = 100 * time.Millisecond

// commitBatchBytes commits at once, whatever the delay, when this much
// output is queued.
const commitBatchBytes = 16 << 20

// Attempt is what the outbox holds about one attempt.
type Attempt struct {
	ID string
	// LastSeq is the highest committed chunk sequence number (0: none).
	LastSeq uint64
	// Finished is true when the attempt's Result is held.
	Finished bool
	Accepted time.Time
}

// Outbox is the on-disk queue. Open it with Open; it is safe for
// concurrent use.
type Outbox struct {
	db  *bolt.DB
	log *slog.Logger
	max int64

	mu       sync.Mutex
	used     int64 // bytes of chunks and results, committed or queued
	queue    []op
	inflight []op            // taken off queue by the commit in progress
	qacks    map[string]qack // unwritten acks by attempt, until committed
	closed   bool
	full     bool          // back-pressure is being applied (logged once per episode)
	space    chan struct{} // closed and replaced when used drops
	changed  chan struct{} // closed and replaced whenever an event is queued

	kick chan struct{}
	stop chan struct{}
	// delay is Options.CommitDelay; flushNow and batchFull (capacity 1)
	// cut it short. queuedBytes is the chunk data in queue.
	delay       time.Duration
	flushNow    chan struct{}
	batchFull   chan struct{}
	queuedBytes int64
	wg          sync.WaitGroup
}

// op is one queued write; done is set only for Flush's barrier.
type op struct {
	attempt  string
	seq      uint64 // chunks: the chunk's; acks: acknowledged through
	data     []byte // marshaled chunk, result or assignment
	kind     []byte // keyResult, keyAssignment, keyAck, or nil for a chunk
	accepted time.Time
	ackRes   bool // acks: the Result too
	done     chan error
	// chunk is the Put's message, so that readers of queued chunks need
	// not unmarshal data; never modified after Put.
	chunk *agentv1.LogChunk
}

// qack is what the unwritten acks of one attempt acknowledge.
type qack struct {
	through uint64
	result  bool
}

// keyAck marks an ack op; it is never stored under this key.
var keyAck = []byte("ack")

// Open opens (or creates) the outbox file at path.
func Open(path string, opts Options) (*Outbox, error) {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open outbox %s: %w", path, err)
	}
	o := &Outbox{db: db, log: opts.Logger, max: opts.MaxBytes,
		space: make(chan struct{}), changed: make(chan struct{}),
		kick: make(chan struct{}, 1), stop: make(chan struct{}), qacks: map[string]qack{},
		delay: opts.CommitDelay, flushNow: make(chan struct{}, 1), batchFull: make(chan struct{}, 1)}
	if o.delay == 0 {
		o.delay = DefaultCommitDelay
	}
	err = db.Update(func(tx *bolt.Tx) error {
		root, err := tx.CreateBucketIfNotExists(bucketAttempts)
		if err != nil {
			return err
		}
		return root.ForEachBucket(func(id []byte) error {
			b := root.Bucket(id)
			o.used += int64(len(b.Get(keyResult)))
			if c := b.Bucket(bucketChunks); c != nil {
				return c.ForEach(func(_, v []byte) error { o.used += int64(len(v)); return nil })
			}
			return nil
		})
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open outbox %s: %w", path, err)
	}
	o.wg.Add(1)
	go o.commitLoop()
	return o, nil
}

// Close commits what is queued and closes the file. Put and the other
// writers fail with ErrClosed afterwards.
func (o *Outbox) Close() error {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return nil
	}
	o.closed = true
	close(o.space) // wake blocked Puts: they see closed
	o.mu.Unlock()
	close(o.stop)
	o.wg.Wait()
	return o.db.Close()
}

// Changed returns a channel closed when the next event is queued (a watch
// for the session's writer).
func (o *Outbox) Changed() <-chan struct{} {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.changed
}

// Accept records an accepted assignment, without its secrets: they are
// never written to disk. It returns once the record is queued.
func (o *Outbox) Accept(a *agentv1.Assignment, at time.Time) error {
	c := proto.CloneOf(a)
	c.Secrets = nil
	data, err := proto.Marshal(c)
	if err != nil {
		return fmt.Errorf("outbox: accept %s: %w", a.GetAttemptId(), err)
	}
	return o.enqueue(op{attempt: a.GetAttemptId(), kind: keyAssignment, data: data, accepted: at})
}

// Finish records an attempt's Result, after every chunk Put before it.
// It returns once the Result is queued.
func (o *Outbox) Finish(r *agentv1.Result) error {
	data, err := proto.Marshal(r)
	if err != nil {
		return fmt.Errorf("outbox: finish %s: %w", r.GetAttemptId(), err)
	}
	// A result never waits for room: it ends the attempt.
	return o.enqueue(op{attempt: r.GetAttemptId(), kind: keyResult, data: data})
}

// Flush returns once every event queued before it is durable, with the
// error of the commit that wrote them.
func (o *Outbox) Flush() error {
	done := make(chan error, 1)
	if err := o.enqueue(op{done: done}); err != nil {
		return err
	}
	select {
	case o.flushNow <- struct{}{}:
	default:
	}
	return <-done
}

func (o *Outbox) enqueue(p op) error {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return ErrClosed
	}
	if string(p.kind) == string(keyResult) {
		o.used += int64(len(p.data))
	}
	o.queue = append(o.queue, p)
	o.notifyLocked()
	o.mu.Unlock()
	o.signal()
	return nil
}

// notifyLocked wakes the watchers of Changed; o.mu is held.
func (o *Outbox) notifyLocked() {
	close(o.changed)
	o.changed = make(chan struct{})
}

func (o *Outbox) signal() {
	select {
	case o.kick <- struct{}{}:
	default:
	}
}

// Put queues one output chunk; it is durable after the next group commit. It blocks while the outbox is full, and logs that
// it applies back-pressure, until an Ack frees room, ctx ends (ctx.Err())
// or the outbox closes (ErrClosed). Chunks of one attempt must be Put in
// seq order.
func (o *Outbox) Put(ctx context.Context, c *agentv1.LogChunk) error {
	data, err := proto.Marshal(c)
	if err != nil {
		return fmt.Errorf("outbox: put %s/%d: %w", c.GetAttemptId(), c.GetSeq(), err)
	}
	n := int64(len(data))
	for {
		o.mu.Lock()
		if o.closed {
			o.mu.Unlock()
			return ErrClosed
		}
		if o.used == 0 || o.used+n <= o.max {
			if o.full {
				o.full = false
				o.log.Info("outbox has room again: output flows", "used_bytes", o.used)
			}
			o.used += n
			o.queuedBytes += n
			o.queue = append(o.queue, op{attempt: c.GetAttemptId(), seq: c.GetSeq(), data: data, chunk: c})
			o.notifyLocked()
			big := o.queuedBytes >= commitBatchBytes
			o.mu.Unlock()
			o.signal()
			if big {
				select {
				case o.batchFull <- struct{}{}:
				default:
				}
			}
			return nil
		}
		if !o.full {
			o.full = true
			o.log.Warn("outbox full: applying back-pressure to step output until the controller acknowledges",
				"attempt_id", c.GetAttemptId(), "used_bytes", o.used, "max_bytes", o.max)
		}
		space := o.space
		o.mu.Unlock()
		select {
		case <-space:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (o *Outbox) commitLoop() {
	defer o.wg.Done()
	var delay *time.Timer
	if o.delay > 0 {
		delay = time.NewTimer(o.delay)
		delay.Stop()
		defer delay.Stop()
	}
	for {
		select {
		case <-o.kick:
		case <-o.flushNow:
			o.commit()
			continue
		case <-o.stop:
			o.commit()
			return
		}
		if delay != nil && !o.bigBatch() {
			delay.Reset(o.delay)
			select {
			case <-delay.C:
			case <-o.batchFull:
				delay.Stop()
			case <-o.flushNow:
				delay.Stop()
			case <-o.stop:
				delay.Stop()
				o.commit()
				return
			}
		}
		o.commit()
	}
}

// bigBatch reports whether enough is queued to commit without waiting.
func (o *Outbox) bigBatch() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.queuedBytes >= commitBatchBytes
}

// commit writes everything queued in one transaction.
func (o *Outbox) commit() {
	o.mu.Lock()
	ops := o.queue
	o.queue, o.inflight, o.queuedBytes = nil, ops, 0
	o.mu.Unlock()
	if len(ops) == 0 {
		return
	}
	var freed int64
	err := o.db.Update(func(tx *bolt.Tx) error {
		freed = 0
		root := tx.Bucket(bucketAttempts)
		for _, p := range ops {
			if p.attempt == "" {
				continue // a Flush barrier
			}
			if string(p.kind) == string(keyAck) {
				n, err := applyAck(root, p.attempt, p.seq, p.ackRes)
				if err != nil {
					return err
				}
				freed += n
				continue
			}
			b, err := root.CreateBucketIfNotExists([]byte(p.attempt))
			if err != nil {
				return err
			}
			switch {
			case p.kind == nil:
				c, err := b.CreateBucketIfNotExists(bucketChunks)
				if err != nil {
					return err
				}
				if err := c.Put(seqKey(p.seq), p.data); err != nil {
					return err
				}
				if p.seq > getSeq(b.Get(keyLastSeq)) {
					if err := b.Put(keyLastSeq, seqKey(p.seq)); err != nil {
						return err
					}
				}
			case string(p.kind) == string(keyAssignment):
				at, _ := p.accepted.MarshalBinary()
				if err := b.Put(keyAccepted, at); err != nil {
					return err
				}
				if err := b.Put(keyAssignment, p.data); err != nil {
					return err
				}
			default:
				if err := b.Put(p.kind, p.data); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		err = fmt.Errorf("outbox: commit: %w", err)
		o.log.Error("cannot write the outbox", "error", err, "events", len(ops))
	}
	o.mu.Lock()
	o.inflight = nil
	if err == nil {
		for _, p := range ops {
			// An ack on disk is no longer unwritten, unless a later one
			// for the same attempt is still queued.
			if qa, ok := o.qacks[p.attempt]; ok && string(p.kind) == string(keyAck) &&
				qa.through <= p.seq && (!qa.result || p.ackRes) {
				delete(o.qacks, p.attempt)
			}
		}
	}
	if err != nil {
		// The events stay readable (and sendable) until the next
		// commit retries them; dropping them here would lose output.
		// Their barriers are answered below, with the error.
		retry := make([]op, 0, len(ops)+len(o.queue))
		for _, p := range ops {
			if p.done == nil {
				retry = append(retry, p)
			}
		}
		o.queue = append(retry, o.queue...)
		for _, p := range retry {
			if p.kind == nil {
				o.queuedBytes += int64(len(p.data))
			}
		}
	} else if freed > 0 {
		o.used -= freed
		if !o.closed {
			close(o.space)
			o.space = make(chan struct{})
		}
	}
	o.mu.Unlock()
	// Barriers are answered only now, so that a caller of Flush sees the
	// commit's effects (freed room, forgotten acks) when it returns.
	for _, p := range ops {
		if p.done != nil {
			p.done <- err
		}
	}
	if err != nil {
		o.retryLater()
	}
}

// retryLater kicks the commit loop again after a pause, so that a disk
// error (full, read-only) is retried without spinning.
func (o *Outbox) retryLater() {
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case <-t.C:
		o.signal()
	case <-o.stop:
	}
}

// applyAck removes attempt's chunks through throughSeq and, when result,
// its Result, forgetting an attempt left with nothing; it returns the
// bytes freed.
func applyAck(root *bolt.Bucket, attempt string, throughSeq uint64, result bool) (int64, error) {
	b := root.Bucket([]byte(attempt))
	if b == nil {
		return 0, nil
	}
	var freed int64
	empty := true
	if c := b.Bucket(bucketChunks); c != nil {
		var del [][]byte
		cur := c.Cursor()
		for k, v := cur.First(); k != nil; k, v = cur.Next() {
			if getSeq(k) > throughSeq {
				empty = false
				break
			}
			del = append(del, k)
			freed += int64(len(v))
		}
		for _, k := range del {
			if err := c.Delete(k); err != nil {
				return 0, err
			}
		}
	}
	if v := b.Get(keyResult); result && v != nil {
		freed += int64(len(v))
		if err := b.Delete(keyResult); err != nil {
			return 0, err
		}
		if err := b.Put(keyResultAcked, []byte{1}); err != nil {
			return 0, err
		}
	}
	if empty && b.Get(keyResultAcked) != nil {
		return freed, root.DeleteBucket([]byte(attempt))
	}
	return freed, nil
}

// unwritten returns the events not yet on disk, oldest first, of one
// attempt ("" for all). Readers take it before they read the file: an
// event committed in between is then seen twice (and merged), never
// missed.
func (o *Outbox) unwritten(attempt string) []op {
	o.mu.Lock()
	defer o.mu.Unlock()
	if attempt == "" {
		out := make([]op, 0, len(o.inflight)+len(o.queue))
		out = append(out, o.inflight...)
		return append(out, o.queue...)
	}
	var out []op
	for _, q := range [][]op{o.inflight, o.queue} {
		for _, p := range q {
			if p.attempt == attempt {
				out = append(out, p)
			}
		}
	}
	return out
}

// Has reports whether the outbox holds (or has queued) anything of
// attempt.
func (o *Outbox) Has(attempt string) bool {
	as, err := o.Attempts()
	if err != nil {
		return false
	}
	for _, a := range as {
		if a.ID == attempt {
			return true
		}
	}
	return false
}

// memAttempt is an attempt's state as the file and the queued events
// together describe it.
type memAttempt struct {
	Attempt
	resultAcked  bool
	ackedThrough uint64
}

// Attempts lists every attempt held or queued, in attempt ID order.
func (o *Outbox) Attempts() ([]Attempt, error) {
	queued := o.unwritten("")
	byID := map[string]*memAttempt{}
	err := o.db.View(func(tx *bolt.Tx) error {
		root := tx.Bucket(bucketAttempts)
		return root.ForEachBucket(func(id []byte) error {
			b := root.Bucket(id)
			a := &memAttempt{Attempt: Attempt{ID: string(id), LastSeq: getSeq(b.Get(keyLastSeq)), Finished: b.Get(keyResult) != nil || b.Get(keyResultAcked) != nil},
				resultAcked: b.Get(keyResultAcked) != nil}
			if v := b.Get(keyAccepted); v != nil {
				_ = a.Accepted.UnmarshalBinary(v)
			}
			byID[a.ID] = a
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("outbox: attempts: %w", err)
	}
	for _, p := range queued {
		if p.attempt == "" {
			continue
		}
		a := byID[p.attempt]
		if string(p.kind) == string(keyAck) {
			if a == nil {
				continue
			}
			a.ackedThrough = max(a.ackedThrough, p.seq)
			if p.ackRes && a.Finished {
				a.resultAcked = true
			}
			if a.resultAcked && a.LastSeq <= a.ackedThrough {
				delete(byID, p.attempt)
			}
			continue
		}
		if a == nil {
			a = &memAttempt{Attempt: Attempt{ID: p.attempt}}
			byID[p.attempt] = a
		}
		switch {
		case p.kind == nil:
			a.LastSeq = max(a.LastSeq, p.seq)
		case string(p.kind) == string(keyAssignment):
			a.Accepted = p.accepted
		default:
			a.Finished = true
		}
	}
	out := make([]Attempt, 0, len(byID))
	for _, a := range byID {
		out = append(out, a.Attempt)
	}
	slices.SortFunc(out, func(x, y Attempt) int { return strings.Compare(x.ID, y.ID) })
	return out, nil
}

// Pending returns up to limit chunks of attempt with seq > afterSeq, in
// seq order, and its Result when held and every chunk after afterSeq
// fitted in limit. Queued events count; acknowledged ones do not.
func (o *Outbox) Pending(attempt string, afterSeq uint64, limit int) ([]*agentv1.LogChunk, *agentv1.Result, error) {
	mem, resData, qa, covered := o.queuedAfter(attempt, afterSeq, limit)
	acked := max(afterSeq, qa.through)
	var chunks []*agentv1.LogChunk
	// The file is read only for what the queue does not cover: after a
	// reconnect (the cursor starts again) or for a committed Result.
	if !covered || resData == nil {
		err := o.db.View(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketAttempts).Bucket([]byte(attempt))
			if b == nil {
				return nil
			}
			if c := b.Bucket(bucketChunks); c != nil && !covered {
				cur := c.Cursor()
				for k, v := cur.Seek(seqKey(acked + 1)); k != nil; k, v = cur.Next() {
					if len(chunks) == limit {
						return nil
					}
					var m agentv1.LogChunk
					if err := proto.Unmarshal(v, &m); err != nil {
						return fmt.Errorf("chunk %d: %w", getSeq(k), err)
					}
					chunks = append(chunks, &m)
				}
			}
			if resData == nil {
				if v := b.Get(keyResult); v != nil {
					resData = append([]byte(nil), v...)
				}
			}
			return nil
		})
		if err != nil {
			return nil, nil, fmt.Errorf("outbox: pending %s: %w", attempt, err)
		}
	}
	next := acked
	if n := len(chunks); n > 0 {
		next = chunks[n-1].GetSeq()
	}
	for _, c := range mem {
		if c.GetSeq() <= next {
			continue // on disk too, or acknowledged
		}
		if len(chunks) == limit {
			return chunks, nil, nil
		}
		chunks = append(chunks, c)
		next = c.GetSeq()
	}
	if len(chunks) == limit || resData == nil || qa.result {
		return chunks, nil, nil
	}
	res := &agentv1.Result{}
	if err := proto.Unmarshal(resData, res); err != nil {
		return nil, nil, fmt.Errorf("outbox: pending %s: result: %w", attempt, err)
	}
	return chunks, res, nil
}

// queuedAfter returns up to limit of attempt's unwritten chunks with seq
// > after in seq order, its unwritten Result, its unwritten acks, and
// whether the queue covers everything after `after` (no file read needed
// for chunks). It finds where to start by scanning from the newest event
// back, so a caught-up reader costs only what was queued since it last
// looked, and copies no more than limit chunks.
func (o *Outbox) queuedAfter(attempt string, after uint64, limit int) (mem []*agentv1.LogChunk, res []byte, qa qack, covered bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	qa = o.qacks[attempt]
	floor := max(after, qa.through)
	lists := [2][]op{o.inflight, o.queue} // oldest first
	// Start at the oldest unwritten chunk above floor: lists[li][pi].
	li, pi, first := 2, 0, uint64(0)
scan:
	for l := 1; l >= 0; l-- {
		for i := len(lists[l]) - 1; i >= 0; i-- {
			p := &lists[l][i]
			if p.attempt != attempt {
				continue
			}
			switch {
			case p.kind == nil:
				if p.seq <= floor {
					covered = true
					break scan
				}
				li, pi, first = l, i, p.seq
			case string(p.kind) == string(keyResult) && res == nil:
				res = p.data
			}
		}
	}
	if first == floor+1 {
		covered = true
	}
	for l := li; l < 2 && len(mem) < limit; l++ {
		for i := pi; i < len(lists[l]) && len(mem) < limit; i++ {
			if p := &lists[l][i]; p.attempt == attempt && p.kind == nil {
				mem = append(mem, p.chunk)
			}
		}
		pi = 0
	}
	return mem, res, qa, covered
}

// Assignment returns the assignment recorded for attempt (without its
// secrets), or nil.
func (o *Outbox) Assignment(attempt string) (*agentv1.Assignment, error) {
	for _, p := range slices.Backward(o.unwritten(attempt)) {
		if p.attempt == attempt && string(p.kind) == string(keyAssignment) {
			a := &agentv1.Assignment{}
			return a, proto.Unmarshal(p.data, a)
		}
	}
	var a *agentv1.Assignment
	err := o.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAttempts).Bucket([]byte(attempt))
		if b == nil || b.Get(keyAssignment) == nil {
			return nil
		}
		a = &agentv1.Assignment{}
		return proto.Unmarshal(b.Get(keyAssignment), a)
	})
	return a, err
}

// Ack queues the removal of attempt's chunks through throughSeq and,
// when result is true, its Result; an attempt whose Result was
// acknowledged and that holds no chunk any more is forgotten. Unknown
// attempts are ignored. It never waits for the disk: the session calls it
// from its receive loop.
//
// Chunks it covers that are still queued are dropped rather than written
// and deleted: while a step streams, the controller acks most chunks
// before the commit loop reaches them, so the disk sees little of a fast
// stream's output.
func (o *Outbox) Ack(attempt string, throughSeq uint64, result bool) error {
	o.mu.Lock()
	kept, freed := o.queue[:0], int64(0)
	for _, p := range o.queue {
		if p.kind == nil && p.attempt == attempt && p.seq <= throughSeq {
			freed += int64(len(p.data))
			continue
		}
		kept = append(kept, p)
	}
	clear(o.queue[len(kept):]) // let the dropped chunks' data go
	o.queue = kept
	qa := o.qacks[attempt]
	o.qacks[attempt] = qack{through: max(qa.through, throughSeq), result: qa.result || result}
	if freed > 0 {
		o.used -= freed
		o.queuedBytes -= freed
		if !o.closed {
			close(o.space)
			o.space = make(chan struct{})
		}
	}
	o.mu.Unlock()
	return o.enqueue(op{attempt: attempt, seq: throughSeq, kind: keyAck, ackRes: result})
}

// Used returns the bytes of output and results held or queued.
func (o *Outbox) Used() int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.used
}

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

func getSeq(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}
