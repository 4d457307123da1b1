package embedded

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	"go.etcd.io/bbolt"
)

// maxGroupBytes bounds the batches one commit takes together, so that the
// dirty pages of one transaction stay a bounded amount of memory.
const maxGroupBytes = 32 << 20

// appendReq is one Append's batch, encoded, waiting for its commit.
type appendReq struct {
	entries []entry
	size    int64
	done    chan error // buffered: the committer never waits for the caller
}

// commitLoop is the store's single writer. It takes a batch, then every
// batch already waiting, and commits them in one transaction: concurrent
// appenders share one fsync and one rewrite of the pages they all touch
// (concurrent producers' records interleave in the time index), and no one
// waits for a timer, unlike bbolt's DB.Batch with its MaxBatchDelay. A lone
// appender sees the latency of its own commit and nothing more.
//
// Every batch it takes gets an answer: it stops only between commits.
func (s *Store) commitLoop() {
	defer s.wg.Done()
	for {
		var reqs []*appendReq
		select {
		case <-s.ctx.Done():
			return
		case r := <-s.appends:
			reqs = append(reqs, r)
		}
		size := reqs[0].size
	gather:
		for size < maxGroupBytes {
			select {
			case r := <-s.appends:
				reqs = append(reqs, r)
				size += r.size
			default:
				break gather
			}
		}
		s.commit(reqs)
	}
}

// commit stores reqs in one transaction and answers each. If that fails,
// it tries each batch alone, so that one batch's failure is not the
// others'.
func (s *Store) commit(reqs []*appendReq) {
	err := s.update(func(tx *bbolt.Tx) error {
		// Still under writers once committed, so a compaction's snapshot
		// either holds this commit or records it.
		tx.OnCommit(func() { s.noteCommitted(reqs) })
		return insert(tx, reqs)
	})
	if errors.Is(err, errNothingNew) {
		err = nil
	}
	if err != nil && len(reqs) > 1 {
		for _, r := range reqs {
			s.commit([]*appendReq{r})
		}
		return
	}
	for _, r := range reqs {
		r.done <- err
	}
}

// insert adds the records of reqs that are not stored yet to every bucket
// and the counters. It puts each bucket's keys in sorted order: a bbolt
// node holds its keys in a slice until commit, so inserting in order
// moves fewer of them and touches each page once, which matters most when
// a commit merges many batches.
func insert(tx *bbolt.Tx, reqs []*appendReq) error {
	b := bucketsOf(tx)
	// bbolt splits a page it spills at FillPercent of its size and never
	// refills a page that is more than a quarter full. A stream's seqs
	// grow, so records keys land at the end of their stream's range and
	// pages split at 90% stay 90% full. The time-ordered indexes take keys
	// that interleave with those of recent commits (concurrent producers'
	// times overlap), and a 90% split leaves a sliver that the next
	// inserts split again: measured on data shaped like BenchmarkTail1000's, their
	// pages ended 42% full at 0.9 and 67% at 0.7, which still gives
	// strictly increasing keys 70%.
	b.records.FillPercent = 0.9
	b.byTime.FillPercent, b.byField.FillPercent = 0.7, 0.7
	var all []*entry
	for _, r := range reqs {
		for i := range r.entries {
			all = append(all, &r.entries[i])
		}
	}
	// Stable, so that of records repeated in the batches the first is the
	// one stored, as if they were appended one by one.
	slices.SortStableFunc(all, func(x, y *entry) int { return bytes.Compare(x.key, y.key) })
	fresh := all[:0]
	var prev []byte
	for _, e := range all {
		if bytes.Equal(e.key, prev) || b.records.Get(e.key) != nil {
			continue
		}
		prev = e.key
		if err := b.records.Put(e.key, e.val); err != nil {
			return fmt.Errorf("put record: %w", err)
		}
		fresh = append(fresh, e)
	}
	if len(fresh) == 0 {
		return errNothingNew
	}

	slices.SortFunc(fresh, func(x, y *entry) int { return bytes.Compare(x.pos, y.pos) })
	var index [][]byte
	counts := make(map[string]int64)
	var size int64
	for _, e := range fresh {
		if err := b.byTime.Put(e.pos, []byte{}); err != nil {
			return fmt.Errorf("put time index: %w", err)
		}
		index = append(index, e.index...)
		for _, c := range e.counted {
			counts[string(c)]++
		}
		size += e.size
	}
	slices.SortFunc(index, bytes.Compare)
	for _, k := range index {
		if err := b.byField.Put(k, []byte{}); err != nil {
			return fmt.Errorf("put field index: %w", err)
		}
	}
	if err := applyCounts(b.fieldCounts, counts); err != nil {
		return err
	}
	return addMeta(b.meta, int64(len(fresh)), size)
}
