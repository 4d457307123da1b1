package embedded

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"
	"sort"

	"go.etcd.io/bbolt"
)

// posting names a record in an index: its stored time (timeKey), its
// stream's id (the streams bucket) and its seq. Postings order by those
// three numbers, which is the order of their keys:
//
//	posting key = time(8) sid(8) seq(8)
//
// Query wants (Time, Stream, Seq) and sids are not in stream name order, so
// it sorts the postings of one instant by name itself (see Query).
type posting struct{ time, sid, seq uint64 }

func (p posting) compare(q posting) int {
	switch {
	case p.time != q.time:
		return cmp.Compare(p.time, q.time)
	case p.sid != q.sid:
		return cmp.Compare(p.sid, q.sid)
	}
	return cmp.Compare(p.seq, q.seq)
}

const postingKeyLen = 3 * 8

func appendPostingKey(dst []byte, p posting) []byte {
	dst = binary.BigEndian.AppendUint64(dst, p.time)
	dst = binary.BigEndian.AppendUint64(dst, p.sid)
	return binary.BigEndian.AppendUint64(dst, p.seq)
}

func parsePostingKey(b []byte) (posting, bool) {
	if len(b) != postingKeyLen {
		return posting{}, false
	}
	return posting{binary.BigEndian.Uint64(b), binary.BigEndian.Uint64(b[8:]), binary.BigEndian.Uint64(b[16:])}, true
}

// An index (in byfield, one per kind and one per kind and field value) is
// a run of leaves, each a bbolt key and value holding many
// postings in order:
//
//	key   = prefix posting key of the leaf's first posting
//	value = { uvarint(time - previous time) uvarint(sid) uvarint(seq) }
//
// (the first time's delta is from 0). A leaf holds the postings from its
// key up to the next leaf's, so an append writes one value per leaf it
// touches instead of one key per record and index, and the time deltas
// keep a posting to about seven bytes.
//
// maxLeafBytes keeps two leaves with their keys within one 4 KiB bbolt
// page: bbolt never splits a node of four keys or fewer, so larger values
// would make it rewrite up to four of them whenever one changes.
const maxLeafBytes = 1800

func encodeLeaf(dst []byte, ps []posting) []byte {
	prev := uint64(0)
	for _, p := range ps {
		dst = binary.AppendUvarint(dst, p.time-prev)
		dst = binary.AppendUvarint(dst, p.sid)
		dst = binary.AppendUvarint(dst, p.seq)
		prev = p.time
	}
	return dst
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

func leafLen(ps []posting) int {
	n, prev := 0, uint64(0)
	for _, p := range ps {
		n += uvarintLen(p.time-prev) + uvarintLen(p.sid) + uvarintLen(p.seq)
		prev = p.time
	}
	return n
}

// decodeLeaf appends a leaf's postings to dst, checking that they
// increase. It must never panic, whatever the bytes.
func decodeLeaf(dst []posting, val []byte) ([]posting, error) {
	start := len(dst)
	var t uint64
	for len(val) > 0 {
		var v [3]uint64
		for i := range v {
			// Most numbers here take one or two bytes.
			switch {
			case len(val) > 0 && val[0] < 0x80:
				v[i], val = uint64(val[0]), val[1:]
			case len(val) > 1 && val[1] < 0x80:
				v[i], val = uint64(val[0]&0x7f)|uint64(val[1])<<7, val[2:]
			default:
				x, n := binary.Uvarint(val)
				if n <= 0 {
					return dst, fmt.Errorf("%w: index leaf: bad uvarint", errCorrupt)
				}
				v[i], val = x, val[n:]
			}
		}
		p := posting{t + v[0], v[1], v[2]}
		if p.time < t || (len(dst) > start && p.compare(dst[len(dst)-1]) <= 0) {
			return dst, fmt.Errorf("%w: index leaf: postings out of order", errCorrupt)
		}
		dst = append(dst, p)
		t = p.time
	}
	if len(dst) == start {
		return dst, fmt.Errorf("%w: index leaf: empty", errCorrupt)
	}
	return dst, nil
}

// postingIndex edits the leaves of one bucket. Its slices are scratch space
// reused from one leaf to the next.
type postingIndex struct {
	b        *bbolt.Bucket
	old, out []posting
}

// leafFor finds the leaf of prefix that p belongs in: the last one whose
// first posting is at most p, else the first one. It returns a copy of its
// key (nil when prefix has no leaf), its value, and the first posting of
// the next leaf if there is one.
func leafFor(c *bbolt.Cursor, prefix []byte, p posting) (key, val []byte, next posting, hasNext bool, err error) {
	want := appendPostingKey(append(make([]byte, 0, len(prefix)+postingKeyLen), prefix...), p)
	k, v := c.Seek(want)
	if k == nil || !bytes.Equal(k, want) {
		if k == nil {
			k, v = c.Last()
		} else {
			k, v = c.Prev()
		}
		if k == nil || !bytes.HasPrefix(k, prefix) {
			if k, v = c.Seek(prefix); k == nil || !bytes.HasPrefix(k, prefix) {
				return nil, nil, posting{}, false, nil
			}
		}
	}
	key = bytes.Clone(k)
	if nk, _ := c.Next(); nk != nil && bytes.HasPrefix(nk, prefix) {
		if next, hasNext = parsePostingKey(nk[len(prefix):]); !hasNext {
			return nil, nil, posting{}, false, fmt.Errorf("%w: index key %q", errCorrupt, nk)
		}
	}
	return key, v, next, hasNext, nil
}

// groupFor is how many of ps, sorted, belong before next.
func groupFor(ps []posting, next posting, hasNext bool) int {
	if !hasNext {
		return len(ps)
	}
	return sort.Search(len(ps), func(i int) bool { return ps[i].compare(next) >= 0 })
}

// add inserts ps, sorted and none of them stored yet, under prefix.
func (x *postingIndex) add(prefix []byte, ps []posting) error {
	c := x.b.Cursor()
	for len(ps) > 0 {
		key, val, next, hasNext, err := leafFor(c, prefix, ps[0])
		if err != nil {
			return err
		}
		if key == nil {
			return x.put(prefix, ps)
		}
		n := groupFor(ps, next, hasNext)
		group := ps[:n]
		ps = ps[n:]
		if x.old, err = decodeLeaf(x.old[:0], val); err != nil {
			return err
		}
		// Postings mostly arrive in time order: past the end of a leaf
		// that is nearly full, they start new leaves and leave it alone.
		if group[0].compare(x.old[len(x.old)-1]) > 0 && len(val) >= maxLeafBytes*3/4 {
			if err := x.put(prefix, group); err != nil {
				return err
			}
			continue
		}
		x.out = mergePostings(x.out[:0], x.old, group)
		if err := x.b.Delete(key); err != nil {
			return err
		}
		if err := x.put(prefix, x.out); err != nil {
			return err
		}
	}
	return nil
}

// remove deletes ps, sorted and all of them stored, from under prefix.
func (x *postingIndex) remove(prefix []byte, ps []posting) error {
	c := x.b.Cursor()
	for len(ps) > 0 {
		key, val, next, hasNext, err := leafFor(c, prefix, ps[0])
		if err != nil {
			return err
		}
		if key == nil {
			return fmt.Errorf("%w: index %q has no leaf for %v", errCorrupt, prefix, ps[0])
		}
		n := groupFor(ps, next, hasNext)
		group := ps[:n]
		ps = ps[n:]
		if x.old, err = decodeLeaf(x.old[:0], val); err != nil {
			return err
		}
		x.out = x.out[:0]
		i := 0
		for _, p := range x.old {
			if i < len(group) && p == group[i] {
				i++
				continue
			}
			x.out = append(x.out, p)
		}
		if i != len(group) {
			return fmt.Errorf("%w: index %q lacks %v", errCorrupt, prefix, group[i])
		}
		if err := x.b.Delete(key); err != nil {
			return err
		}
		if err := x.put(prefix, x.out); err != nil {
			return err
		}
	}
	return nil
}

// put writes ps, sorted, as new leaves of about equal size.
func (x *postingIndex) put(prefix []byte, ps []posting) error {
	if len(ps) == 0 {
		return nil
	}
	total := leafLen(ps)
	leaves := (total + maxLeafBytes - 1) / maxLeafBytes
	per := (len(ps) + leaves - 1) / leaves
	// One allocation for every key and value: bbolt keeps them until the
	// commit, so they must not be reused.
	buf := make([]byte, 0, leaves*(len(prefix)+postingKeyLen)+total+leaves*binary.MaxVarintLen64)
	for len(ps) > 0 {
		n := min(per, len(ps))
		start := len(buf)
		buf = appendPostingKey(append(buf, prefix...), ps[0])
		key := buf[start:len(buf):len(buf)]
		start = len(buf)
		buf = encodeLeaf(buf, ps[:n])
		if err := x.b.Put(key, buf[start:len(buf):len(buf)]); err != nil {
			return err
		}
		ps = ps[n:]
	}
	return nil
}

func mergePostings(dst, a, b []posting) []posting {
	for len(a) > 0 && len(b) > 0 {
		switch c := a[0].compare(b[0]); {
		case c < 0:
			dst = append(dst, a[0])
			a = a[1:]
		case c > 0:
			dst = append(dst, b[0])
			b = b[1:]
		default:
			dst = append(dst, a[0])
			a, b = a[1:], b[1:]
		}
	}
	dst = append(dst, a...)
	return append(dst, b...)
}

// postingIter walks the postings of one index prefix backwards, newest
// first, from below a bound.
type postingIter struct {
	c      *bbolt.Cursor
	prefix []byte
	leaf   []posting
	i      int // leaf[i-1] is the next posting
	err    error
}

// seekBelow positions the iterator at the last posting before upper
// (nil: the end of the index).
func (it *postingIter) seekBelow(upper *posting) {
	var k, v []byte
	if upper == nil {
		k, v = seekBefore(it.c, prefixEnd(it.prefix))
	} else {
		want := appendPostingKey(bytes.Clone(it.prefix), *upper)
		// The leaf holding upper, or any posting before it, starts at or
		// before it.
		if k, v = it.c.Seek(want); k == nil || !bytes.Equal(k, want) {
			if k == nil {
				k, v = it.c.Last()
			} else {
				k, v = it.c.Prev()
			}
		}
	}
	if !it.load(k, v) {
		return
	}
	if upper != nil {
		it.i = sort.Search(len(it.leaf), func(i int) bool { return it.leaf[i].compare(*upper) >= 0 })
	}
}

func (it *postingIter) load(k, v []byte) bool {
	it.leaf, it.i = it.leaf[:0], 0
	if k == nil || !bytes.HasPrefix(k, it.prefix) {
		return false
	}
	if it.leaf, it.err = decodeLeaf(it.leaf, v); it.err != nil {
		return false
	}
	it.i = len(it.leaf)
	return true
}

// prev returns the next posting, going backwards.
func (it *postingIter) prev() (posting, bool) {
	for it.i == 0 {
		if it.err != nil || len(it.leaf) == 0 {
			return posting{}, false
		}
		k, v := it.c.Prev()
		if !it.load(k, v) {
			return posting{}, false
		}
	}
	it.i--
	return it.leaf[it.i], true
}

// kindPrefixes lists the prefixes of the kinds' indexes in byfield. Every
// record is in its kind's index, so together they are the time index
// retention and Stats need, and there are few kinds: two seeks each.
func kindPrefixes(byField *bbolt.Bucket) ([][]byte, error) {
	var out [][]byte
	c := byField.Cursor()
	for k, _ := c.First(); k != nil; {
		i := bytes.IndexByte(k, 0)
		if i < 1 {
			return nil, fmt.Errorf("%w: index key %q", errCorrupt, k)
		}
		kind := bytes.Clone(k[:i])
		if p := append(kind, 0, 0); isLeafOf(c, p) {
			out = append(out, p)
		}
		// Past every key of the kind: its prefix ends in 0x00.
		k, _ = c.Seek(append(kind[:i:i], 1))
	}
	return out, nil
}

// isLeafOf reports whether prefix has a leaf, moving c.
func isLeafOf(c *bbolt.Cursor, prefix []byte) bool {
	k, _ := c.Seek(prefix)
	return k != nil && bytes.HasPrefix(k, prefix)
}

// oldestFirst walks the postings of several indexes merged, oldest first.
type oldestFirst struct {
	its   []*postingFwd
	heads []posting
	err   error
}

// newOldestFirst walks every record: the postings of every kind's index.
func newOldestFirst(byField *bbolt.Bucket) (*oldestFirst, error) {
	kinds, err := kindPrefixes(byField)
	if err != nil {
		return nil, err
	}
	o := &oldestFirst{}
	for _, p := range kinds {
		it := &postingFwd{c: byField.Cursor(), prefix: p}
		k, v := it.c.Seek(p)
		it.load(k, v)
		if h, ok := it.next(); ok {
			o.its, o.heads = append(o.its, it), append(o.heads, h)
		} else if it.err != nil {
			return nil, it.err
		}
	}
	return o, nil
}

func (o *oldestFirst) next() (posting, bool) {
	if len(o.its) == 0 {
		return posting{}, false
	}
	m := 0
	for i := range o.heads {
		if o.heads[i].compare(o.heads[m]) < 0 {
			m = i
		}
	}
	p := o.heads[m]
	if h, ok := o.its[m].next(); ok {
		o.heads[m] = h
	} else {
		if err := o.its[m].err; err != nil {
			o.err = err
			o.its = nil
			return posting{}, false
		}
		o.its = slices.Delete(o.its, m, m+1)
		o.heads = slices.Delete(o.heads, m, m+1)
	}
	return p, true
}

// postingFwd walks the postings of one index prefix forwards.
type postingFwd struct {
	c      *bbolt.Cursor
	prefix []byte
	leaf   []posting
	i      int
	err    error
}

func (it *postingFwd) load(k, v []byte) bool {
	it.leaf, it.i = it.leaf[:0], 0
	if k == nil || !bytes.HasPrefix(k, it.prefix) {
		return false
	}
	it.leaf, it.err = decodeLeaf(it.leaf, v)
	return it.err == nil
}

func (it *postingFwd) next() (posting, bool) {
	for it.i == len(it.leaf) {
		if it.err != nil || len(it.leaf) == 0 {
			return posting{}, false
		}
		if k, v := it.c.Next(); !it.load(k, v) {
			return posting{}, false
		}
	}
	it.i++
	return it.leaf[it.i-1], true
}

// oldest is the time of the oldest record, if any.
func oldest(byField *bbolt.Bucket) (uint64, bool, error) {
	kinds, err := kindPrefixes(byField)
	if err != nil {
		return 0, false, err
	}
	var t uint64
	found := false
	c := byField.Cursor()
	for _, p := range kinds {
		k, _ := c.Seek(p)
		first, ok := parsePostingKey(k[len(p):])
		if !ok {
			return 0, false, fmt.Errorf("%w: index key %q", errCorrupt, k)
		}
		if !found || first.time < t {
			t, found = first.time, true
		}
	}
	return t, found, nil
}
