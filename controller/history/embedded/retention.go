package embedded

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"go.etcd.io/bbolt"
)

// deleteBatch bounds one delete transaction, so that retention never holds
// bbolt's single writer lock for long: about 10,000 keys, as a record has
// four to six (records, bytime, byfield for its kind and each field).
// BenchmarkCompact deletes ~100,000 records/s, so appends wait behind a
// delete transaction for about 20 ms.
const deleteBatch = 2_000

// DeleteBefore removes every record whose Time is before t, oldest first,
// in transactions of at most deleteBatch records, and reports how many it
// removed (including those of batches committed before an error).
func (s *Store) DeleteBefore(ctx context.Context, t time.Time) (int64, error) {
	cut := boundKey(t)
	n, err := s.deleteOldest(ctx, func(pos []byte, _ int64) bool {
		return bytes.Compare(pos[:timeKeyLen], cut) >= 0
	})
	if err != nil {
		return n, fmt.Errorf("delete before %s: %w", t.Format(time.RFC3339Nano), err)
	}
	return n, nil
}

// deleteOldest removes records in (Time, Stream, Seq) order until done,
// given the next record's position and Stats.Bytes, reports true.
func (s *Store) deleteOldest(ctx context.Context, done func(pos []byte, size int64) bool) (int64, error) {
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		var n int64
		more := false
		err := s.deleteTx(func(tx *bbolt.Tx) error {
			n, more = 0, false
			b := bucketsOf(tx)
			size := getUint(b.meta, metaBytes)
			counts := make(map[string]int64)
			var victims [][]byte
			c := b.byTime.Cursor()
			// The cursor walks bytime while other buckets change; bytime
			// itself changes only after the walk.
			for k, _ := c.First(); k != nil; k, _ = c.Next() {
				if !validPos(k) {
					return fmt.Errorf("%w: time index entry %q", errCorrupt, k)
				}
				if done(k, size) {
					break
				}
				if len(victims) == deleteBatch {
					more = true
					break
				}
				freed, err := deleteRecord(b, k, counts)
				if err != nil {
					return err
				}
				size -= freed
				victims = append(victims, bytes.Clone(k))
			}
			if len(victims) == 0 {
				return errNothingNew
			}
			for _, k := range victims {
				if err := b.byTime.Delete(k); err != nil {
					return fmt.Errorf("delete time index: %w", err)
				}
			}
			if err := applyCounts(b.fieldCounts, counts); err != nil {
				return err
			}
			n = int64(len(victims))
			return addMeta(b.meta, -n, size-getUint(b.meta, metaBytes))
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

// deleteTx runs one delete transaction, after any compaction in progress.
func (s *Store) deleteTx(fn func(*bbolt.Tx) error) error {
	s.compacting.Lock()
	defer s.compacting.Unlock()
	return s.update(fn)
}

// deleteRecord removes the record at pos from records and byfield, counts
// its fields' index shrinkage in counts, and returns its size; the caller
// removes the bytime entry.
func deleteRecord(b buckets, pos []byte, counts map[string]int64) (int64, error) {
	key := pos[timeKeyLen:]
	val := b.records.Get(key)
	r, err := decodeRecord(key, val)
	if err != nil {
		return 0, fmt.Errorf("record of time index entry %q: %w", pos, err)
	}
	index, counted := indexKeys(r, pos)
	if err := b.records.Delete(key); err != nil {
		return 0, fmt.Errorf("delete record: %w", err)
	}
	for _, k := range index {
		if err := b.byField.Delete(k); err != nil {
			return 0, fmt.Errorf("delete field index: %w", err)
		}
	}
	for _, c := range counted {
		counts[string(c)]--
	}
	return logicalSize(r), nil
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
		n, err := s.deleteOldest(ctx, func(_ []byte, size int64) bool { return size <= limit })
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
