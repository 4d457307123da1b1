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
		from := prefix
		for from != nil {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("export: %w", err)
			}
			var recs []history.Record
			var next []byte
			err := s.view(func(tx *bbolt.Tx) error {
				recs, next = recs[:0], nil
				size := 0
				c := tx.Bucket(bucketRecords).Cursor()
				for k, v := c.Seek(from); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
					if len(recs) == chunk || size >= eachBytes {
						next = bytes.Clone(k)
						break
					}
					r, err := decodeRecord(k, v)
					if err != nil {
						return err
					}
					recs = append(recs, r)
					size += len(v)
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
			from = next
		}
	}
	return nil
}
