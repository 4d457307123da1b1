package embedded

import (
	"bytes"
	"context"
	"fmt"

	"go.etcd.io/bbolt"

	"github.com/opsconductor/opsconductor/controller/history"
)

var _ history.Exporter = (*Store)(nil)

// Each reads at most this many records, or about this many bytes, per read
// transaction. A bbolt read transaction held for a whole export would keep
// the writer from growing the file's mapping (it waits for every reader),
// and fn may be as slow as the network it writes to.
const (
	eachRecords = 10_000
	eachBytes   = 16 << 20
)

// Each calls fn for every record, domain by domain in history.Domains order
// and in (stream, seq) order within each, streams compared as bytes: the
// order of the records bucket's keys. It reads in chunks, each its own
// read transaction, and calls fn between them: records appended during the
// walk may or may not be seen, none is seen twice.
func (s *Store) Each(ctx context.Context, fn func(history.Record) error) error {
	return s.each(ctx, fn, eachRecords)
}

func (s *Store) each(ctx context.Context, fn func(history.Record) error, chunk int) error {
	for _, d := range history.Domains() {
		prefix := []byte(d + "/")
		// The next record to visit is (stream, seq), nil for the domain's
		// first.
		var stream []byte
		var seq uint64
		for first := true; first || stream != nil; first = false {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("export: %w", err)
			}
			var recs []history.Record
			err := s.view(func(tx *bbolt.Tx) error {
				recs = recs[:0]
				c := tx.Bucket(bucketRecords).Cursor()
				var k, v []byte
				if stream == nil {
					k, v = c.Seek(prefix)
				} else {
					k, v = seekChunk(c, streamPrefix(string(stream)), seq)
				}
				from, fromSeq := stream, seq
				stream = nil
				size := 0
				var crs []chunkRec
				var in interner
				for ; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
					var err error
					if crs, err = decodeChunk(crs[:0], k, v); err != nil {
						return err
					}
					name, _, _ := splitRecordKey(k)
					for _, cr := range crs {
						if from != nil && bytes.Equal(name, from) && cr.seq < fromSeq {
							continue
						}
						if len(recs) == chunk || size >= eachBytes {
							stream, seq = bytes.Clone(name), cr.seq
							return nil
						}
						r, err := decodeRecord(in.string(name), cr, &in)
						if err != nil {
							return err
						}
						recs = append(recs, r)
						size += len(cr.data) + len(cr.head)
					}
				}
				return nil
			})
			if err != nil {
				return fmt.Errorf("export %s: %w", d, err)
			}
			for _, r := range recs {
				if err := fn(r); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
