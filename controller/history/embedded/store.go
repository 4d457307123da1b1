// Package embedded is the single-node history backend: one bbolt file in
// the controller's data dir (DATA/history/history.db), separate from Raft's
// log so that history's growth, deletes and fsyncs never touch consensus.
//
// It owns that file: nothing else may open it while a Store has it (bbolt's
// flock enforces this across processes). It never interprets a record's Data
// and never reads the replicated state.
//
// Layout, one bucket per concern, each key described in codec.go and
// postings.go:
//
//	records     stream 0x00 first seq → chunk: records of the stream, seq order
//	streams     stream                → sid(8), the stream's id in postings
//	streamids   sid(8)                → stream
//	byfield     kind 0x00 0x00 first posting     → leaf of postings of a kind
//	            kind 0x00 k=v 0x00 first posting → leaf, one index per field value
//	fieldcounts kind 0x00 k=v 0x00    → uint64    postings in that index
//	meta        "format" → 2, "records", "bytes" (Stats.Bytes), "nextsid" → uint64
//
// A posting is (time, sid, seq): 24 bytes in a key, about 5 in a leaf. An
// append writes a value per chunk and per index leaf it touches, not keys
// per record and index: a batch of 1000 small records over ten streams
// (BenchmarkAppend's) writes about 65 chunks and rewrites about 60 leaves,
// where one key per record and index was 5000 keys, each repeating the
// stream and time. A stream's chunks never overlap in seq, so Read and
// Tail walk them in key order. The kinds' indexes, merged, are the time
// index that retention and Stats walk (there are few kinds), so no index
// of its own repeats every record.
//
// Every write changes all of them in one transaction, so the indexes and the
// counters are exact, and a crash leaves either the whole batch or none of it.
package embedded

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"go.etcd.io/bbolt"

	"github.com/opsconductor/opsconductor/controller/history"
)

var (
	bucketRecords     = []byte("records")
	bucketStreams     = []byte("streams")
	bucketStreamIDs   = []byte("streamids")
	bucketByField     = []byte("byfield")
	bucketFieldCounts = []byte("fieldcounts")
	bucketMeta        = []byte("meta")

	metaFormat  = []byte("format")
	metaRecords = []byte("records")
	metaBytes   = []byte("bytes")
	metaNextSid = []byte("nextsid")
)

// fileFormat is the layout version in meta; Open refuses any other.
// Format 1 had a key per record and per index entry.
const fileFormat = 2

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

// initialMmapSize is 1 GiB on 64-bit platforms, where address space is
// plentiful, and bbolt's default elsewhere.
const initialMmapSize = (1 << 30) * int(^uint(0)>>63)

func openBolt(path string) (*bbolt.DB, error) {
	// As for the Raft log (controller/cluster): the freelist is not written
	// on every commit, which after a large delete would mean sorting and
	// rewriting every free page id per append; Open rebuilds it instead,
	// unless Close left one (see Close). The hashmap freelist stays fast as
	// the file grows.
	//
	// The map starts at 1 GiB of address space (not memory): growing it
	// makes bbolt copy every node the commit has touched out of the old
	// map and wait for every reader, which a growing file would otherwise
	// do at every doubling.
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second, NoFreelistSync: true, FreelistType: bbolt.FreelistMapType,
		InitialMmapSize: initialMmapSize})
	if err != nil {
		return nil, fmt.Errorf("open history %s: %w", path, err)
	}
	return db, nil
}

func initDB(db *bbolt.DB) error {
	return db.Update(func(tx *bbolt.Tx) error {
		for _, name := range allBuckets {
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

var allBuckets = [][]byte{bucketRecords, bucketStreams, bucketStreamIDs, bucketByField, bucketFieldCounts, bucketMeta}

type buckets struct {
	records, streams, streamIDs, byField, fieldCounts, meta *bbolt.Bucket
}

func bucketsOf(tx *bbolt.Tx) buckets {
	return buckets{tx.Bucket(bucketRecords), tx.Bucket(bucketStreams), tx.Bucket(bucketStreamIDs),
		tx.Bucket(bucketByField), tx.Bucket(bucketFieldCounts), tx.Bucket(bucketMeta)}
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
// bbolt's single writer only inserts. It owns its memory: a compaction may
// replay it after Append has returned.
type entry struct {
	stream string
	key    uint64 // timeKey
	rec    chunkRec
	// prefixes are the byfield indexes the record belongs to: its kind's,
	// then one per field, which are also its fieldcounts keys.
	prefixes []string
	size     int64
}

// newEntries encodes recs. Each record's fields are read once, sorted,
// for its head, its index prefixes and its size. Heads and data share one
// allocation, prefix lists another; equal heads are stored once, and equal
// prefixes are one string.
func newEntries(recs []history.Record) ([]entry, int64) {
	size, nPre := 0, 0
	for _, r := range recs {
		size += len(r.Data)
		nPre += 1 + len(r.Fields)
	}
	buf := make([]byte, 0, size+1024)
	allPre := make([]string, 0, nPre)
	es := make([]entry, len(recs))
	// Offsets into buf of each record's head and data, sliced once buf
	// stops growing.
	type span struct{ head, data [2]int }
	spans := make([]span, len(recs))
	heads := make(map[string][2]int)
	prefixes := make(map[string]string)
	intern := func(b []byte) string {
		if s, ok := prefixes[string(b)]; ok {
			return s
		}
		s := string(b)
		prefixes[s] = s
		return s
	}
	var scratch []byte
	var total int64
	var fields [history.MaxFields][2]string
	for i, r := range recs {
		fs := fields[:0]
		for k, v := range r.Fields {
			fs = append(fs, [2]string{k, v})
		}
		slices.SortFunc(fs, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
		scratch = appendHead(scratch[:0], r.Kind, fs)
		h, ok := heads[string(scratch)]
		if !ok {
			h = [2]int{len(buf), len(buf) + len(scratch)}
			buf = append(buf, scratch...)
			heads[string(scratch)] = h
		}
		spans[i] = span{h, [2]int{len(buf), len(buf) + len(r.Data)}}
		buf = append(buf, r.Data...)

		first := len(allPre)
		scratch = append(append(scratch[:0], r.Kind...), 0, 0)
		allPre = append(allPre, intern(scratch))
		// logicalSize, from the fields already read.
		n := len(r.Stream) + len(r.Kind) + len(r.Data) + recordOverhead
		for _, f := range fs {
			scratch = append(append(append(append(append(scratch[:0], r.Kind...), 0), f[0]...), '='), f[1]...)
			allPre = append(allPre, intern(append(scratch, 0)))
			n += len(f[0]) + len(f[1])
		}
		es[i] = entry{stream: r.Stream, key: timeKey(r.Time), rec: chunkRec{seq: r.Seq, time: r.Time.UnixMicro()},
			prefixes: allPre[first:len(allPre):len(allPre)], size: int64(n)}
		total += int64(n)
	}
	for i := range es {
		h, d := spans[i].head, spans[i].data
		es[i].rec.head = buf[h[0]:h[1]:h[1]]
		es[i].rec.data = buf[d[0]:d[1]:d[1]]
	}
	return es, total
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
	// ValidateBatch names each record's path, which costs a string per
	// record; check first without, and let it report what is wrong.
	for _, r := range recs {
		if r.Validate("") != nil {
			return history.ValidateBatch(recs)
		}
	}
	if len(recs) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("append: %w", err)
	}
	req := &appendReq{done: make(chan error, 1)}
	req.entries, req.size = newEntries(recs)
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
