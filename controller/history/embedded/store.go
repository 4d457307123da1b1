// Package embedded is the single-node history backend: one bbolt file in
// the controller's data dir (DATA/history/history.db), separate from Raft's
// log so that history's growth, deletes and fsyncs never touch consensus.
//
// It owns that file: nothing else may open it while a Store has it (bbolt's
// flock enforces this across processes). It never interprets a record's Data
// and never reads the replicated state.
//
// Layout, one bucket per concern, each key described in codec.go:
//
//	records     stream 0x00 seq                         → encoded record
//	bytime      time stream 0x00 seq                    → (empty)
//	byfield     kind 0x00 0x00 time stream 0x00 seq     → (empty)   every record of a kind
//	            kind 0x00 k=v 0x00 time stream 0x00 seq → (empty)   one per field
//	fieldcounts kind 0x00 k=v 0x00                      → uint64    entries under that prefix
//	meta        "format" → 1, "records" → uint64, "bytes" → uint64 (Stats.Bytes)
//
// Every write changes all of them in one transaction, so the indexes and the
// counters are exact, and a crash leaves either the whole batch or none of it.
package embedded

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.etcd.io/bbolt"

	"github.com/opsconductor/opsconductor/controller/history"
	"github.com/opsconductor/opsconductor/controller/problem"
)

var (
	bucketRecords     = []byte("records")
	bucketByTime      = []byte("bytime")
	bucketByField     = []byte("byfield")
	bucketFieldCounts = []byte("fieldcounts")
	bucketMeta        = []byte("meta")

	metaFormat  = []byte("format")
	metaRecords = []byte("records")
	metaBytes   = []byte("bytes")
)

// fileFormat is the layout version in meta; Open refuses any other.
const fileFormat = 1

// Retention bounds what the store keeps; a zero field is unbounded.
type Retention struct {
	// MaxAge removes records whose Time is older than now minus MaxAge.
	MaxAge time.Duration
	// MaxBytes removes the oldest records while Stats.Bytes is above it.
	MaxBytes int64
}

// Options configure a Store; the zero value is usable.
type Options struct {
	Retention Retention
	// RetentionInterval is how often the background pass enforces
	// Retention and considers compaction; default one minute.
	RetentionInterval time.Duration
	// CompactMinBytes is the file size below which the background pass
	// never compacts: rewriting a small file returns too little to be worth
	// the pause. Default 64 MiB.
	CompactMinBytes int64
	// Logger receives retention and compaction outcomes; default discards.
	Logger *slog.Logger
	// Now is the clock MaxAge is measured against; default time.Now.
	Now func() time.Time

	// Test hooks: tick replaces the interval ticker, and passed receives
	// the outcome of every background pass, so that tests drive retention
	// without sleeping.
	tick   <-chan time.Time
	passed func(retentionPass)
}

// Store is the embedded history backend. Every method is safe for
// concurrent use.
type Store struct {
	path string
	opts Options
	log  *slog.Logger

	// Locks are taken in the order they are declared: compacting, writers,
	// mu (recordMu is a leaf).
	//
	// writers is held shared by every write transaction and alone by
	// Compact where no commit may run: to begin its snapshot, and for its
	// last replay and the swap. Readers never take it.
	writers sync.RWMutex
	// compacting is held by Compact throughout and by each delete
	// transaction: Compact replays the appends made during its copy, not
	// deletes, so deletes wait for it.
	compacting sync.Mutex
	// recordMu guards recording and recorded: the batches committed since
	// Compact's snapshot, kept for it to replay into its copy.
	recordMu  sync.Mutex
	recording bool
	recorded  []*appendReq
	// mu guards the fields below. Every transaction runs under mu.RLock;
	// Close and compaction's swap of the file take it alone.
	mu     sync.RWMutex
	db     *bbolt.DB
	closed bool
	// broken is why the store has no open file although it was not
	// closed: compaction renamed a new file in place but could not open it.
	broken error

	// ctx ends with Close; it stops the committer, the retention goroutine
	// and any compaction in progress.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// appends carries batches to the committer goroutine.
	appends chan *appendReq
}

var _ history.Store = (*Store)(nil)

// Open opens (creating it and its directory if needed) the store at path
// and starts its committer and retention goroutines, which Close stops.
func Open(path string, opts Options) (*Store, error) {
	if opts.RetentionInterval <= 0 {
		opts.RetentionInterval = time.Minute
	}
	if opts.CompactMinBytes <= 0 {
		opts.CompactMinBytes = 64 << 20
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create history dir: %w", err)
	}
	// A compaction that died before its rename leaves a partial copy, and
	// one that died after it the old file's second name; path holds a whole
	// database either way, so both are only garbage.
	for _, suffix := range []string{compactSuffix, staleSuffix} {
		if err := os.Remove(path + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("remove what a compaction left: %w", err)
		}
	}
	db, err := openBolt(path)
	if err != nil {
		return nil, err
	}
	if err := initDB(db); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open history %s: %w", path, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Store{path: path, opts: opts, log: opts.Logger.With("path", path), db: db, ctx: ctx, cancel: cancel,
		appends: make(chan *appendReq)}
	s.wg.Add(2)
	go s.retain()
	go s.commitLoop()
	return s, nil
}

func openBolt(path string) (*bbolt.DB, error) {
	// As for the Raft log (controller/cluster): the freelist is not written
	// on every commit, which after a large delete would mean sorting and
	// rewriting every free page id per append; Open rebuilds it instead,
	// unless Close left one (see Close). The hashmap freelist stays fast as
	// the file grows.
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second, NoFreelistSync: true, FreelistType: bbolt.FreelistMapType})
	if err != nil {
		return nil, fmt.Errorf("open history %s: %w", path, err)
	}
	return db, nil
}

func initDB(db *bbolt.DB) error {
	return db.Update(func(tx *bbolt.Tx) error {
		for _, name := range [][]byte{bucketRecords, bucketByTime, bucketByField, bucketFieldCounts, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		meta := tx.Bucket(bucketMeta)
		switch v := meta.Get(metaFormat); {
		case v == nil:
			return meta.Put(metaFormat, []byte{fileFormat})
		case len(v) != 1 || v[0] != fileFormat:
			return fmt.Errorf("history file format %v, this build reads %d", v, fileFormat)
		}
		return nil
	})
}

type buckets struct {
	records, byTime, byField, fieldCounts, meta *bbolt.Bucket
}

func bucketsOf(tx *bbolt.Tx) buckets {
	return buckets{tx.Bucket(bucketRecords), tx.Bucket(bucketByTime), tx.Bucket(bucketByField),
		tx.Bucket(bucketFieldCounts), tx.Bucket(bucketMeta)}
}

// usable reports why the store cannot run a transaction; mu must be held.
func (s *Store) usable() error {
	switch {
	case s.closed:
		return history.ErrClosed
	case s.broken != nil:
		return fmt.Errorf("history store unusable: %w", s.broken)
	}
	return nil
}

func (s *Store) view(fn func(*bbolt.Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.usable(); err != nil {
		return err
	}
	return s.db.View(fn)
}

func (s *Store) update(fn func(*bbolt.Tx) error) error {
	s.writers.RLock()
	defer s.writers.RUnlock()
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.usable(); err != nil {
		return err
	}
	return s.db.Update(fn)
}

// entry is one record ready to store, encoded outside the write
// transaction so that concurrent appenders do that work in parallel and
// bbolt's single writer only inserts.
type entry struct {
	key, val, pos []byte
	index         [][]byte // byfield keys
	counted       [][]byte // fieldcounts keys, one per field
	size          int64
}

func newEntry(r history.Record) entry {
	var e entry
	e.key = appendRecordKey(nil, r.Stream, r.Seq)
	e.val = encodeRecord(nil, r)
	e.pos = append(appendTimeKey(make([]byte, 0, timeKeyLen+len(e.key)), r.Time), e.key...)
	e.index, e.counted = indexKeys(r, e.pos)
	e.size = logicalSize(r)
	return e
}

// indexKeys returns r's byfield keys and the fieldcounts keys of its fields.
func indexKeys(r history.Record, pos []byte) (index, counted [][]byte) {
	index = make([][]byte, 0, 1+len(r.Fields))
	index = append(index, append(kindPrefix(r.Kind), pos...))
	counted = make([][]byte, 0, len(r.Fields))
	for k, v := range r.Fields {
		p := fieldPrefix(r.Kind, k, v)
		counted = append(counted, p)
		index = append(index, append(p[:len(p):len(p)], pos...))
	}
	return index, counted
}

// recordOverhead is what Stats.Bytes adds per record for what its stream,
// kind, fields and data do not show: seq and time, and the keys of the
// time and field indexes that repeat them. It is the PostgreSQL backend's
// estimate too, so that the two report comparable sizes and a MaxBytes
// means about the same on either; the file is larger still by B+tree
// overhead and free pages (which Compact returns).
const recordOverhead = 64

// logicalSize is what r adds to Stats.Bytes: the logical size the contract
// defines (history.Stats). Deletes recompute it from the stored record, so
// the total stays exact.
func logicalSize(r history.Record) int64 {
	n := len(r.Stream) + len(r.Kind) + len(r.Data) + recordOverhead
	for k, v := range r.Fields {
		n += len(k) + len(v)
	}
	return int64(n)
}

// errNothingNew rolls back a transaction that would store nothing new,
// sparing the fsync of an empty commit.
var errNothingNew = errors.New("nothing new")

// Append stores recs durably: bbolt fsyncs on commit, so when Append
// returns nil the whole batch is on disk, and after a crash either all of
// it is or none. Records already stored are skipped.
//
// The batch is encoded here, in the caller's goroutine, and then committed
// by the store's committer together with whatever other batches arrived
// meanwhile (see commitLoop).
func (s *Store) Append(ctx context.Context, recs []history.Record) error {
	if err := s.Ping(ctx); err != nil {
		return err
	}
	if err := history.ValidateBatch(recs); err != nil {
		return err
	}
	if len(recs) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("append: %w", err)
	}
	req := &appendReq{entries: make([]entry, len(recs)), done: make(chan error, 1)}
	for i, r := range recs {
		req.entries[i] = newEntry(r)
		req.size += req.entries[i].size
	}
	select {
	case s.appends <- req:
	case <-s.ctx.Done():
		return history.ErrClosed
	case <-ctx.Done():
		return fmt.Errorf("append: %w", ctx.Err())
	}
	select {
	case err := <-req.done:
		if err != nil {
			return fmt.Errorf("append %d records: %w", len(recs), err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("append: %w (the batch may yet be stored)", ctx.Err())
	}
}

func getUint(b *bbolt.Bucket, k []byte) int64 {
	v := b.Get(k)
	if len(v) != 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(v))
}

func putUint(b *bbolt.Bucket, k []byte, n int64) error {
	// bbolt keeps the slice until commit, so each put gets its own.
	return b.Put(k, binary.BigEndian.AppendUint64(nil, uint64(n)))
}

func addMeta(meta *bbolt.Bucket, records, size int64) error {
	if err := putUint(meta, metaRecords, getUint(meta, metaRecords)+records); err != nil {
		return fmt.Errorf("update record count: %w", err)
	}
	if err := putUint(meta, metaBytes, getUint(meta, metaBytes)+size); err != nil {
		return fmt.Errorf("update byte count: %w", err)
	}
	return nil
}

// applyCounts adds one transaction's changes to the field index sizes,
// each key written once however many records touched it.
func applyCounts(b *bbolt.Bucket, deltas map[string]int64) error {
	for k, d := range deltas {
		key := []byte(k)
		n := getUint(b, key) + d
		var err error
		if n <= 0 {
			err = b.Delete(key)
		} else {
			err = putUint(b, key, n)
		}
		if err != nil {
			return fmt.Errorf("update field count: %w", err)
		}
	}
	return nil
}

// checkRead is history.CheckRead plus what this layout needs and CheckRead
// lets through: a stream with a NUL, which no stored record has (Validate
// refuses it), would read as the end of a stream name in a key and match
// another stream's records.
func checkRead(stream string, limit int) error {
	if err := history.CheckRead(stream, limit); err != nil {
		return err
	}
	if strings.ContainsRune(stream, 0) {
		return problem.Invalid("stream", "must not contain NUL")
	}
	return nil
}

// checkQuery is history.CheckQuery plus, for the same reason as checkRead,
// the rules Validate sets for kinds and fields: no NUL, no '=' in a key.
func checkQuery(q history.Query) error {
	if err := history.CheckQuery(q); err != nil {
		return err
	}
	var l problem.List
	if strings.ContainsRune(q.Kind, 0) {
		l.Add("kind", "must not contain NUL")
	}
	for k, v := range q.Fields {
		if k == "" || strings.ContainsAny(k, "\x00=") || strings.ContainsRune(v, 0) {
			l.Add("fields", "field %q: keys must be non-empty without '=', keys and values without NUL", k)
		}
	}
	return l.Err()
}

// Read returns records of one stream with from <= Seq <= to, in order.
func (s *Store) Read(ctx context.Context, stream string, from, to uint64, limit int) ([]history.Record, error) {
	if err := checkRead(stream, limit); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	var out []history.Record
	err := s.view(func(tx *bbolt.Tx) error {
		out = out[:0]
		prefix := streamPrefix(stream)
		c := tx.Bucket(bucketRecords).Cursor()
		for k, v := c.Seek(appendRecordKey(nil, stream, from)); k != nil && len(out) < limit; k, v = c.Next() {
			// No stream contains NUL, so the prefix holds only this
			// stream's keys, each exactly one seq longer.
			if !bytes.HasPrefix(k, prefix) || len(k) != len(prefix)+seqLen || binary.BigEndian.Uint64(k[len(prefix):]) > to {
				break
			}
			r, err := decodeRecord(k, v)
			if err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", stream, err)
	}
	return out, nil
}

// Tail returns the last n records of a stream, in sequence order.
func (s *Store) Tail(ctx context.Context, stream string, n int) ([]history.Record, error) {
	if err := checkRead(stream, n); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("tail: %w", err)
	}
	var out []history.Record
	err := s.view(func(tx *bbolt.Tx) error {
		out = out[:0]
		prefix := streamPrefix(stream)
		c := tx.Bucket(bucketRecords).Cursor()
		for k, v := seekBefore(c, prefixEnd(prefix)); k != nil && len(out) < n; k, v = c.Prev() {
			if !bytes.HasPrefix(k, prefix) {
				break
			}
			r, err := decodeRecord(k, v)
			if err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("tail %s: %w", stream, err)
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

// seekBefore moves c to the last key strictly before key.
func seekBefore(c *bbolt.Cursor, key []byte) ([]byte, []byte) {
	if k, _ := c.Seek(key); k == nil {
		return c.Last()
	}
	return c.Prev()
}

// Query returns one page of records of a kind, newest first by (Time,
// Stream, Seq). It walks the smallest index among the kind's and the
// queried fields' (their sizes are kept in fieldcounts) and checks the
// other fields against their own indexes, which is a key lookup rather than
// decoding the record.
func (s *Store) Query(ctx context.Context, q history.Query) (history.Page, error) {
	if err := checkQuery(q); err != nil {
		return history.Page{}, err
	}
	var after []byte
	if q.Cursor != "" {
		pos, err := decodeCursor(q.Cursor)
		if err != nil {
			return history.Page{}, problem.Invalid("cursor", "is not a cursor from this store: %v", err)
		}
		after = pos
	}
	if err := ctx.Err(); err != nil {
		return history.Page{}, fmt.Errorf("query: %w", err)
	}
	var page history.Page
	err := s.view(func(tx *bbolt.Tx) error {
		page = history.Page{}
		b := bucketsOf(tx)
		prefix, others, empty := chooseIndex(b.fieldCounts, q)
		if empty {
			return nil
		}
		// The walk starts below the smaller of Until and the cursor.
		upper := prefixEnd(prefix)
		if !q.Until.IsZero() {
			upper = append(bytes.Clone(prefix), boundKey(q.Until)...)
		}
		if after != nil {
			if k := append(bytes.Clone(prefix), after...); bytes.Compare(k, upper) < 0 {
				upper = k
			}
		}
		var since []byte
		if !q.Since.IsZero() {
			since = boundKey(q.Since)
		}
		c := b.byField.Cursor()
		check := b.byField.Cursor()
		var last []byte
		for k, _ := seekBefore(c, upper); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Prev() {
			pos := k[len(prefix):]
			if !validPos(pos) {
				return fmt.Errorf("%w: index entry %q", errCorrupt, k)
			}
			if since != nil && bytes.Compare(pos[:timeKeyLen], since) < 0 {
				break
			}
			if !hasAll(check, others, pos) {
				continue
			}
			if len(page.Records) == q.Limit {
				// One more match exists, so this page is not the last.
				page.Next = encodeCursor(last)
				break
			}
			key := pos[timeKeyLen:]
			r, err := decodeRecord(key, b.records.Get(key))
			if err != nil {
				return fmt.Errorf("index entry %q: %w", k, err)
			}
			page.Records = append(page.Records, r)
			last = bytes.Clone(pos)
			if len(page.Records)%1024 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return history.Page{}, fmt.Errorf("query %s: %w", q.Kind, err)
	}
	return page, nil
}

// chooseIndex picks the byfield prefix to walk for q: the kind's when q has
// no fields, else the field with the fewest entries. The other fields'
// prefixes are returned to check each candidate against. empty reports that
// some field has no entries at all, so nothing can match.
func chooseIndex(counts *bbolt.Bucket, q history.Query) (prefix []byte, others [][]byte, empty bool) {
	if len(q.Fields) == 0 {
		return kindPrefix(q.Kind), nil, false
	}
	best := int64(-1)
	for k, v := range q.Fields {
		p := fieldPrefix(q.Kind, k, v)
		n := getUint(counts, p)
		if n == 0 {
			return nil, nil, true
		}
		if best < 0 || n < best {
			if prefix != nil {
				others = append(others, prefix)
			}
			prefix, best = p, n
		} else {
			others = append(others, p)
		}
	}
	return prefix, others, false
}

// hasAll reports whether the record at pos is in every index of prefixes.
func hasAll(c *bbolt.Cursor, prefixes [][]byte, pos []byte) bool {
	for _, p := range prefixes {
		want := append(p[:len(p):len(p)], pos...)
		if k, _ := c.Seek(want); !bytes.Equal(k, want) {
			return false
		}
	}
	return true
}

// Stats reports how many records the store holds, their logical size (see
// logicalSize) and the oldest record's time.
func (s *Store) Stats(ctx context.Context) (history.Stats, error) {
	if err := ctx.Err(); err != nil {
		return history.Stats{}, fmt.Errorf("stats: %w", err)
	}
	var st history.Stats
	err := s.view(func(tx *bbolt.Tx) error {
		b := bucketsOf(tx)
		st.Records = getUint(b.meta, metaRecords)
		st.Bytes = getUint(b.meta, metaBytes)
		if k, _ := b.byTime.Cursor().First(); k != nil {
			st.Oldest, _ = parseTimeKey(k)
		}
		return nil
	})
	if err != nil {
		return history.Stats{}, fmt.Errorf("stats: %w", err)
	}
	return st, nil
}

// Ping returns nil while the store is open: a bbolt file that opened takes
// writes until it is closed (a full disk shows up as Append's error).
func (s *Store) Ping(context.Context) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.usable()
}

// Close stops retention (abandoning a compaction in progress, whose partial
// copy is removed) and the committer (after the commit in flight; appends
// not yet taken are refused), waits for transactions in flight and closes
// the file.
// It is idempotent; afterwards every other method returns
// history.ErrClosed.
func (s *Store) Close() error {
	s.cancel()
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.db == nil {
		return nil
	}
	// Without a freelist on disk, Open rebuilds it by reading every page of
	// the file (about a second per GB here). One last commit that writes it
	// lets the next Open after a clean Close read it instead; the first
	// commit after that frees it again. bbolt's own Open makes the same
	// transition when NoFreelistSync is turned off.
	s.db.NoFreelistSync = false
	syncErr := s.db.Update(func(*bbolt.Tx) error { return nil })
	if syncErr != nil {
		syncErr = fmt.Errorf("write freelist: %w", syncErr)
	}
	err := errors.Join(syncErr, s.db.Close())
	s.db = nil
	if err != nil {
		return fmt.Errorf("close history %s: %w", s.path, err)
	}
	return nil
}
