package embedded

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
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
// and the counters: per stream, its new records go into chunks (merged with
// a chunk they overlap or a small last one), and then each index gets its
// new postings in order, so that it rewrites each leaf it touches once.
func insert(tx *bbolt.Tx, reqs []*appendReq) error {
	b := bucketsOf(tx)
	// A stream's seqs mostly grow, so chunks land at the end of their
	// stream's range and pages split at 90% stay 90% full.
	b.records.FillPercent = 0.9
	byStream := make(map[string][]*entry)
	var names []string
	total := 0
	for _, r := range reqs {
		total += len(r.entries)
	}
	for _, r := range reqs {
		for i := range r.entries {
			e := &r.entries[i]
			es, ok := byStream[e.stream]
			if !ok {
				names = append(names, e.stream)
			}
			byStream[e.stream] = append(es, e)
		}
	}
	// Streams in name order, so that the ids new streams get do not
	// depend on map order and a compaction's replay assigns the same.
	slices.Sort(names)
	nextSid := getUint(b.meta, metaNextSid)
	fresh := make([]stored, 0, total)
	var w chunkWriter
	for _, name := range names {
		es := byStream[name]
		// Stable, so that of records repeated in the batches the first is
		// the one stored, as if they were appended one by one.
		slices.SortStableFunc(es, func(x, y *entry) int { return cmp.Compare(x.rec.seq, y.rec.seq) })
		es = slices.CompactFunc(es, func(x, y *entry) bool { return x.rec.seq == y.rec.seq })
		sid, err := streamID(b, name, &nextSid)
		if err != nil {
			return err
		}
		added, err := w.add(b.records, name, es)
		if err != nil {
			return err
		}
		for _, e := range added {
			fresh = append(fresh, stored{e, posting{e.key, sid, e.rec.seq}})
		}
	}
	if len(fresh) == 0 {
		return errNothingNew
	}
	// Sorted once, the postings go to each index in order.
	slices.SortFunc(fresh, func(x, y stored) int { return x.p.compare(y.p) })
	// Each index's postings get a slice of one array sized in a first
	// pass: appended to as they came, the kind's and each common field's
	// slices (one posting per record) grew by doubling, the largest
	// allocation of the committer, which runs alone and on whose speed a
	// single writer waits.
	need := make(map[string]int)
	nPostings := 0
	for _, f := range fresh {
		for _, pre := range f.e.prefixes {
			need[pre]++
		}
		nPostings += len(f.e.prefixes)
	}
	all := make([]posting, nPostings)
	byField := make(map[string][]posting, len(need))
	for pre, n := range need {
		byField[pre], all = all[:0:n], all[n:]
	}
	counts := make(map[string]int64)
	var size int64
	for _, f := range fresh {
		p, e := f.p, f.e
		for j, pre := range e.prefixes {
			byField[pre] = append(byField[pre], p)
			if j > 0 {
				counts[pre]++
			}
		}
		size += e.size
	}
	n := int64(len(fresh))
	x := postingIndex{b: b.byField}
	for _, pre := range slices.Sorted(maps.Keys(byField)) {
		if err := x.add([]byte(pre), byField[pre]); err != nil {
			return fmt.Errorf("add to field index: %w", err)
		}
	}
	if err := applyCounts(b.fieldCounts, counts); err != nil {
		return err
	}
	if err := putUint(b.meta, metaNextSid, nextSid); err != nil {
		return fmt.Errorf("update stream ids: %w", err)
	}
	return addMeta(b.meta, n, size)
}

// stored is a record insert stored, with its posting.
type stored struct {
	e *entry
	p posting
}

// streamID returns the id of stream, giving it the next one if it has
// none.
func streamID(b buckets, stream string, next *int64) (uint64, error) {
	if v := b.streams.Get([]byte(stream)); v != nil {
		if len(v) != 8 {
			return 0, fmt.Errorf("%w: stream %s has id %x", errCorrupt, stream, v)
		}
		return binary.BigEndian.Uint64(v), nil
	}
	*next++
	sid := binary.BigEndian.AppendUint64(nil, uint64(*next))
	if err := b.streams.Put([]byte(stream), sid); err != nil {
		return 0, fmt.Errorf("add stream: %w", err)
	}
	if err := b.streamIDs.Put(sid, []byte(stream)); err != nil {
		return 0, fmt.Errorf("add stream: %w", err)
	}
	return uint64(*next), nil
}

// maxChunkBytes bounds a chunk (a record larger than that has one to
// itself). As with index leaves (maxLeafBytes), two chunks and their keys
// fit a 4 KiB page, so that bbolt splits pages of chunks as it does pages
// of small values and an append rewrites little beyond its own.
const maxChunkBytes = 1800

// chunkWriter stores records into chunks; its slices are scratch space.
type chunkWriter struct {
	old, merged []chunkRec
}

type kv struct{ k, v []byte }

// add stores es, one stream's records sorted by seq without repeats, and
// returns those not stored already. The new records join the chunks whose
// seq ranges they overlap, and the chunk before them if that is less than
// half full; what that leaves is written as new chunks. Chunks of a stream
// therefore never overlap.
func (w *chunkWriter) add(records *bbolt.Bucket, stream string, es []*entry) ([]*entry, error) {
	prefix := streamPrefix(stream)
	first, last := es[0].rec.seq, es[len(es)-1].rec.seq
	c := records.Cursor()
	var olds []kv
	k, v := seekChunk(c, prefix, first)
	if isChunkOf(k, prefix) {
		if _, start, _ := splitRecordKey(k); start > first {
			// The chunk after first; look at the one before it too.
			if pk, pv := c.Prev(); isChunkOf(pk, prefix) && len(pv) < maxChunkBytes/2 {
				olds = append(olds, kv{bytes.Clone(pk), pv})
			}
			k, v = c.Seek(k)
		}
	} else {
		// Nothing at or after first: the stream's last chunk, if small.
		if k, v = seekBefore(c, prefixEnd(prefix)); isChunkOf(k, prefix) && len(v) < maxChunkBytes/2 {
			olds = append(olds, kv{bytes.Clone(k), v})
		}
		k = nil
	}
	for ; isChunkOf(k, prefix); k, v = c.Next() {
		if _, start, _ := splitRecordKey(k); start > last {
			break
		}
		olds = append(olds, kv{bytes.Clone(k), v})
	}

	fresh := es
	w.merged = w.merged[:0]
	if len(olds) == 0 {
		for _, e := range es {
			w.merged = append(w.merged, e.rec)
		}
	} else {
		w.old = w.old[:0]
		for _, o := range olds {
			var err error
			if w.old, err = decodeChunk(w.old, o.k, o.v); err != nil {
				return nil, err
			}
		}
		fresh = make([]*entry, 0, len(es))
		old := w.old
		for _, e := range es {
			for len(old) > 0 && old[0].seq < e.rec.seq {
				w.merged = append(w.merged, old[0])
				old = old[1:]
			}
			if len(old) > 0 && old[0].seq == e.rec.seq {
				continue // stored already: the stored one stays
			}
			w.merged = append(w.merged, e.rec)
			fresh = append(fresh, e)
		}
		w.merged = append(w.merged, old...)
		if len(fresh) == 0 {
			return nil, nil
		}
	}
	// Encode before deleting: the old bodies point into the file's map.
	puts := encodeChunks(stream, w.merged)
	for _, o := range olds {
		if err := records.Delete(o.k); err != nil {
			return nil, fmt.Errorf("delete chunk: %w", err)
		}
	}
	for _, p := range puts {
		if err := records.Put(p.k, p.v); err != nil {
			return nil, fmt.Errorf("put chunk: %w", err)
		}
	}
	return fresh, nil
}

// encodeChunks packs recs, sorted by seq, into chunks of at most
// maxChunkBytes each (a larger record has one to itself), all in one
// allocation.
func encodeChunks(stream string, recs []chunkRec) []kv {
	keyLen := len(stream) + 1 + seqLen
	guess := 0
	for i := range recs {
		n, _, _ := recLen(&recs[i], nil)
		guess += n
	}
	guess += (guess/maxChunkBytes + 1) * (keyLen + chunkHeaderLen)
	var out []kv
	buf := make([]byte, 0, guess)
	for len(recs) > 0 {
		end, size := 0, chunkHeaderLen
		for ; end < len(recs); end++ {
			var prev *chunkRec
			if end > 0 {
				prev = &recs[end-1]
			}
			n, _, _ := recLen(&recs[end], prev)
			if end > 0 && size+n > maxChunkBytes {
				break
			}
			size += n
		}
		if cap(buf)-len(buf) < keyLen+size {
			// Slices of buf are bbolt's until the commit: never append
			// over them.
			buf = make([]byte, 0, max(keyLen+size, guess/2))
		}
		start := len(buf)
		buf = appendRecordKey(buf, stream, recs[0].seq)
		k := buf[start:len(buf):len(buf)]
		start = len(buf)
		buf = encodeChunk(buf, recs[:end])
		out = append(out, kv{k, buf[start:len(buf):len(buf)]})
		recs = recs[end:]
	}
	return out
}
