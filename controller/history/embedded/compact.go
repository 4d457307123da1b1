package embedded

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"go.etcd.io/bbolt"
)

// Compact writes its copy to path.compact and, while renaming it over the
// file, keeps the old file as path.stale; Open removes either if a crash
// left it.
const (
	compactSuffix = ".compact"
	staleSuffix   = ".stale"
)

// replayRounds bounds how many times Compact replays, while writers go on,
// the appends made since the last round, before it makes them wait for the
// final one. Each round takes about as long as the appends it replays took,
// so the rounds shrink quickly unless appends arrive near the store's limit.
const replayRounds = 4

// compaction is what Compact did, for its log line and the benchmark.
type compaction struct {
	Live, Replayed int
	Copy, Paused   time.Duration
}

// Compact rewrites the file without its free pages, which bbolt keeps for
// reuse but never returns to the file system. The alternative, one file
// per time range that retention drops whole, would need no compaction, but
// Read, Tail, dedup and every index would then have to span files.
//
// Compact copies a snapshot of the live data into path.compact while
// appends go on, recording the batches committed meanwhile (commit's
// OnCommit hook); then it replays those into the copy, in rounds, while
// appends still go on; only for the last round, the fsync and the rename
// over the file do writers wait. That is bbolt.Compact's job done with a
// snapshot transaction instead of the whole database, which bbolt.Compact
// would hold with writers stopped for a time in proportion to the live
// data, and with a context, so that Close never waits for a long copy.
//
// Deletes wait for the whole compaction (they are not replayed); readers
// wait only for the close, rename and reopen. The copy needs disk space
// for the live data, and the batches appended during it are held in memory
// until replayed.
func (s *Store) Compact(ctx context.Context) error {
	_, err := s.compact(ctx)
	return err
}

func (s *Store) compact(ctx context.Context) (compaction, error) {
	var c compaction
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(s.ctx, cancel)()

	s.compacting.Lock()
	defer s.compacting.Unlock()
	if err := s.Ping(ctx); err != nil {
		return c, err
	}
	tmp := s.path + compactSuffix
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return c, fmt.Errorf("compact: %w", err)
	}
	// No fsync per commit: one Sync before the rename covers the copy, and
	// a crash before the rename leaves only a partial copy, which Open
	// removes. The copy does write its (tiny) freelist, so that reopening
	// it in swap reads that instead of scanning the file (see Close).
	dst, err := bbolt.Open(tmp, 0o600, &bbolt.Options{NoSync: true, FreelistType: bbolt.FreelistMapType})
	if err != nil {
		return c, fmt.Errorf("compact: create copy: %w", err)
	}
	abandon := func(err error) (compaction, error) {
		s.stopRecording()
		_ = dst.Close()
		_ = os.Remove(tmp)
		return c, fmt.Errorf("compact %s: %w", s.path, err)
	}

	start := time.Now()
	live, err := s.copySnapshot(ctx, dst)
	c.Live = live
	if err != nil {
		return abandon(err)
	}
	for range replayRounds {
		n, err := replay(dst, s.takeRecorded())
		c.Replayed += n
		if err != nil {
			return abandon(err)
		}
		if n == 0 {
			break
		}
		if err := ctx.Err(); err != nil {
			return abandon(err)
		}
	}
	// Flush the bulk of the copy while writers go on; the final Sync then
	// has only the last replay to write.
	if err := dst.Sync(); err != nil {
		return abandon(err)
	}
	c.Copy = time.Since(start)

	s.writers.Lock()
	paused := time.Now()
	n, err := replay(dst, s.stopRecording())
	c.Replayed += n
	if err == nil {
		err = dst.Sync()
	}
	if err != nil {
		s.writers.Unlock()
		return abandon(err)
	}
	if err := dst.Close(); err != nil {
		s.writers.Unlock()
		_ = os.Remove(tmp)
		return c, fmt.Errorf("compact %s: close copy: %w", s.path, err)
	}
	err = s.swap(tmp)
	c.Paused = time.Since(paused)
	s.writers.Unlock()
	_ = os.Remove(s.path + staleSuffix)
	if err != nil {
		return c, fmt.Errorf("compact %s: %w", s.path, err)
	}
	s.log.Info("history compacted", "records_at_snapshot", c.Live, "replayed", c.Replayed,
		"copy", c.Copy.Round(time.Millisecond).String(), "writers_paused", c.Paused.Round(time.Millisecond).String())
	return c, nil
}

// copySnapshot copies the file as of now into dst and starts recording the
// batches committed after that point. It takes writers only to begin the
// snapshot, so that no commit straddles it.
func (s *Store) copySnapshot(ctx context.Context, dst *bbolt.DB) (int, error) {
	// writers before mu, the order of every writer: taking writers while
	// holding mu could wait for a committer that waits for mu behind Close.
	s.writers.Lock()
	s.mu.RLock()
	defer s.mu.RUnlock()
	err := s.usable()
	var src *bbolt.Tx
	if err == nil {
		src, err = s.db.Begin(false)
	}
	if err == nil {
		s.startRecording()
	}
	s.writers.Unlock()
	if err != nil {
		return 0, err
	}
	defer func() { _ = src.Rollback() }()
	live := int(getUint(src.Bucket(bucketMeta), metaRecords))
	return live, copyBuckets(ctx, dst, src)
}

func (s *Store) startRecording() {
	s.recordMu.Lock()
	defer s.recordMu.Unlock()
	s.recording, s.recorded = true, nil
}

// noteCommitted runs after each successful append commit (bbolt's
// OnCommit, so still under writers): while a compaction copies, it keeps
// the batch for replay.
func (s *Store) noteCommitted(reqs []*appendReq) {
	s.recordMu.Lock()
	defer s.recordMu.Unlock()
	if s.recording {
		s.recorded = append(s.recorded, reqs...)
	}
}

func (s *Store) takeRecorded() []*appendReq {
	s.recordMu.Lock()
	defer s.recordMu.Unlock()
	r := s.recorded
	s.recorded = nil
	return r
}

func (s *Store) stopRecording() []*appendReq {
	s.recordMu.Lock()
	defer s.recordMu.Unlock()
	r := s.recorded
	s.recording, s.recorded = false, nil
	return r
}

// replay applies batches committed to the file since the snapshot to the
// copy, with the very transaction body that stored them, so the copy's
// indexes and counters come out as the file's.
func replay(dst *bbolt.DB, reqs []*appendReq) (int, error) {
	if len(reqs) == 0 {
		return 0, nil
	}
	n := 0
	for _, r := range reqs {
		n += len(r.entries)
	}
	err := dst.Update(func(tx *bbolt.Tx) error { return insert(tx, reqs) })
	if errors.Is(err, errNothingNew) {
		err = nil
	}
	return n, err
}

// copyBuckets copies every bucket of the snapshot src into the empty dst.
func copyBuckets(ctx context.Context, dst *bbolt.DB, src *bbolt.Tx) error {
	// Large enough that commits are rare, small enough that one copy
	// transaction's dirty pages stay a bounded amount of memory.
	const txMax = 64 << 20
	dtx, err := dst.Begin(true)
	if err != nil {
		return err
	}
	// dtx changes at every intermediate commit; roll back the current.
	defer func() { _ = dtx.Rollback() }()
	size := 0
	err = src.ForEach(func(name []byte, sb *bbolt.Bucket) error {
		db, err := dtx.CreateBucket(name)
		if err != nil {
			return err
		}
		// Keys go in sorted, so full pages are never split again.
		db.FillPercent = 1.0
		c := sb.Cursor()
		n := 0
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if v == nil {
				return fmt.Errorf("bucket %s holds a nested bucket %q", name, k)
			}
			if n++; n%4096 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			if size += len(k) + len(v); size > txMax {
				if err := dtx.Commit(); err != nil {
					return err
				}
				if dtx, err = dst.Begin(true); err != nil {
					return err
				}
				db = dtx.Bucket(name)
				db.FillPercent = 1.0
				size = len(k) + len(v)
			}
			// k and v point into src's map, valid while src is open,
			// which it is until after dst's last commit.
			if err := db.Put(k, v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return dtx.Commit()
}

// swap replaces the open file with the compact copy at tmp; writers must
// be held.
func (s *Store) swap(tmp string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	var errs []error
	err := s.db.Close()
	s.db = nil
	// The old file gets a second name first, so that the rename below
	// does not free its blocks: freeing a large file costs the file system
	// up to hundreds of milliseconds (measured here), which readers and
	// writers would wait for. The caller removes it after letting them go.
	// At every step the file's name holds a whole database, old or new.
	if err == nil {
		_ = os.Remove(s.path + staleSuffix)
		err = os.Link(s.path, s.path+staleSuffix)
	}
	if err == nil {
		err = os.Rename(tmp, s.path)
	}
	if err != nil {
		// The original stays in place; reopen it.
		errs = append(errs, err)
		_ = os.Remove(tmp)
	} else if err := syncDir(filepath.Dir(s.path)); err != nil {
		// The rename happened but may not survive a crash; the copy holds
		// the same records, so only appends from now on are at risk.
		errs = append(errs, fmt.Errorf("sync history dir after rename: %w", err))
	}
	db, err := openBolt(s.path)
	if err != nil {
		s.broken = err
		s.log.Error("history store unusable after compaction", "error", err)
		return errors.Join(append(errs, err)...)
	}
	s.db = db
	return errors.Join(errs...)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}
