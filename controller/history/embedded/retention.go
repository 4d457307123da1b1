package embedded

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"time"

	"go.etcd.io/bbolt"
)

// deleteBatch bounds one delete transaction, so that retention never holds
// bbolt's single writer lock for long: it rewrites the chunks and index
// leaves of at most this many records.
const deleteBatch = 2_000

// DeleteBefore removes every record whose Time is before t, oldest first,
// in transactions of at most deleteBatch records, and reports how many it
// removed (including those of batches committed before an error).
func (s *Store) DeleteBefore(ctx context.Context, t time.Time) (int64, error) {
	cut := boundKey(t)
	n, err := s.deleteOldest(ctx, func(at uint64, _ int64) bool { return at >= cut })
	if err != nil {
		return n, fmt.Errorf("delete before %s: %w", t.Format(time.RFC3339Nano), err)
	}
	return n, nil
}

// deleteOldest removes records in time index order until done, given the
// next record's time (timeKey) and Stats.Bytes, reports true.
func (s *Store) deleteOldest(ctx context.Context, done func(at uint64, size int64) bool) (int64, error) {
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		var n int64
		more := false
		err := s.deleteTx(func(tx *bbolt.Tx) error {
			var err error
			n, more, err = deleteSome(bucketsOf(tx), done)
			return err
		})
		if errors.Is(err, errNothingNew) {
			return total, nil
		}
		if err != nil {
			return total, err
		}
		total += n
		if !more {
			return total, nil
		}
	}
}

// deleteSome is one delete transaction: it walks the kinds' indexes
// together, oldest first, looking up each record for its size and indexes,
// until done or deleteBatch records, and only then changes the buckets.
func deleteSome(b buckets, done func(at uint64, size int64) bool) (n int64, more bool, err error) {
	size := getUint(b.meta, metaBytes)
	rr := newRecordReader(b)
	bySid := make(map[uint64][]uint64)
	// Filled in walk order, so each list is sorted, as remove wants.
	byField := make(map[string][]posting)
	counts := make(map[string]int64)
	var in interner
	oldest, err := newOldestFirst(b.byField)
	if err != nil {
		return 0, false, err
	}
	for {
		p, ok := oldest.next()
		if !ok {
			if oldest.err != nil {
				return 0, false, oldest.err
			}
			break
		}
		if done(p.time, size) {
			break
		}
		if n == deleteBatch {
			more = true
			break
		}
		name, err := rr.name(p.sid)
		if err != nil {
			return 0, false, err
		}
		cr, err := rr.get(name, p.seq)
		if err != nil {
			return 0, false, err
		}
		r, err := decodeRecord(name, cr, &in)
		if err != nil {
			return 0, false, err
		}
		size -= logicalSize(r)
		n++
		bySid[p.sid] = append(bySid[p.sid], p.seq)
		kp := string(kindPrefix(r.Kind))
		byField[kp] = append(byField[kp], p)
		for k, v := range r.Fields {
			fp := string(fieldPrefix(r.Kind, k, v))
			byField[fp] = append(byField[fp], p)
			counts[fp]--
		}
	}
	if n == 0 {
		return 0, false, errNothingNew
	}
	x := postingIndex{b: b.byField}
	for _, pre := range slices.Sorted(maps.Keys(byField)) {
		if err := x.remove([]byte(pre), byField[pre]); err != nil {
			return 0, false, fmt.Errorf("delete from field index: %w", err)
		}
	}
	for _, sid := range slices.Sorted(maps.Keys(bySid)) {
		seqs := bySid[sid]
		slices.Sort(seqs)
		if err := removeFromStream(b, sid, rr.names[sid], seqs); err != nil {
			return 0, false, err
		}
	}
	if err := applyCounts(b.fieldCounts, counts); err != nil {
		return 0, false, err
	}
	return n, more, addMeta(b.meta, -n, size-getUint(b.meta, metaBytes))
}

// deleteTx runs one delete transaction, after any compaction in progress.
func (s *Store) deleteTx(fn func(*bbolt.Tx) error) error {
	s.compacting.Lock()
	defer s.compacting.Unlock()
	return s.update(fn)
}

// removeFromStream deletes seqs, sorted and all stored, from the chunks of
// stream sid, and the stream's id once it has no chunk left.
func removeFromStream(b buckets, sid uint64, stream string, seqs []uint64) error {
	prefix := streamPrefix(stream)
	c := b.records.Cursor()
	var recs, kept []chunkRec
	for len(seqs) > 0 {
		k, v := seekChunk(c, prefix, seqs[0])
		if !isChunkOf(k, prefix) {
			return fmt.Errorf("%w: %s/%d is indexed but not stored", errCorrupt, stream, seqs[0])
		}
		k = bytes.Clone(k)
		var err error
		if recs, err = decodeChunk(recs[:0], k, v); err != nil {
			return err
		}
		kept = kept[:0]
		for _, r := range recs {
			if len(seqs) > 0 && r.seq == seqs[0] {
				seqs = seqs[1:]
				continue
			}
			kept = append(kept, r)
		}
		if len(seqs) > 0 && seqs[0] <= recs[len(recs)-1].seq {
			return fmt.Errorf("%w: %s/%d is indexed but not stored", errCorrupt, stream, seqs[0])
		}
		var puts []kv
		if len(kept) > 0 {
			puts = encodeChunks(stream, kept)
		}
		if err := b.records.Delete(k); err != nil {
			return fmt.Errorf("delete chunk: %w", err)
		}
		for _, p := range puts {
			if err := b.records.Put(p.k, p.v); err != nil {
				return fmt.Errorf("put chunk: %w", err)
			}
		}
	}
	if k, _ := c.Seek(prefix); isChunkOf(k, prefix) {
		return nil
	}
	if err := b.streams.Delete([]byte(stream)); err != nil {
		return fmt.Errorf("delete stream: %w", err)
	}
	if err := b.streamIDs.Delete(binary.BigEndian.AppendUint64(nil, sid)); err != nil {
		return fmt.Errorf("delete stream: %w", err)
	}
	return nil
}

// retentionPass is what one background pass did.
type retentionPass struct {
	ByAge, BySize int64
	Compacted     bool
	Err           error
}

// retain runs a retention pass every RetentionInterval until Close.
func (s *Store) retain() {
	defer s.wg.Done()
	tick := s.opts.tick
	if tick == nil {
		t := time.NewTicker(s.opts.RetentionInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-tick:
		}
		p := s.enforce(s.ctx)
		if s.opts.passed != nil {
			s.opts.passed(p)
		}
	}
}

// enforce applies Retention, then compacts if at least half the file is
// free and the file is at least CompactMinBytes.
func (s *Store) enforce(ctx context.Context) retentionPass {
	var p retentionPass
	var errs []error
	if age := s.opts.Retention.MaxAge; age > 0 {
		n, err := s.DeleteBefore(ctx, s.opts.Now().Add(-age))
		p.ByAge = n
		errs = append(errs, err)
	}
	if limit := s.opts.Retention.MaxBytes; limit > 0 {
		n, err := s.deleteOldest(ctx, func(_ uint64, size int64) bool { return size <= limit })
		p.BySize = n
		if err != nil {
			errs = append(errs, fmt.Errorf("delete over %d bytes: %w", limit, err))
		}
	}
	file, free, err := s.space()
	errs = append(errs, err)
	if err == nil && file >= s.opts.CompactMinBytes && free*2 > file {
		err := s.Compact(ctx)
		p.Compacted = err == nil
		errs = append(errs, err)
	}
	p.Err = errors.Join(errs...)
	switch {
	case p.Err != nil && ctx.Err() == nil:
		s.log.Error("history retention failed", "deleted_by_age", p.ByAge, "deleted_by_size", p.BySize, "error", p.Err)
	case p.ByAge > 0 || p.BySize > 0 || p.Compacted:
		s.log.Info("history retention", "deleted_by_age", p.ByAge, "deleted_by_size", p.BySize, "compacted", p.Compacted)
	}
	return p
}

// space returns the file's size and how much of it holds no live page: the
// pages on bbolt's freelist plus the room the file was grown by ahead of
// use.
func (s *Store) space() (file, free int64, err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.usable(); err != nil {
		return 0, 0, err
	}
	fi, err := os.Stat(s.path)
	if err != nil {
		return 0, 0, fmt.Errorf("stat history file: %w", err)
	}
	var used int64
	if err := s.db.View(func(tx *bbolt.Tx) error {
		used = tx.Size()
		return nil
	}); err != nil {
		return 0, 0, err
	}
	// FreeAlloc is as of the last write transaction; pending pages (freed
	// while a reader still might see them) count, as they free up soon.
	return fi.Size(), fi.Size() - used + int64(s.db.Stats().FreeAlloc), nil
}
