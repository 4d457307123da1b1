package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/opsconductor/opsconductor/controller/history"
)

// DeleteBefore removes every record whose Time is before t and returns how
// many it removed. Chunks wholly before t go in statements of at most
// deleteBatch chunks, each committed on its own; then the few chunks that
// straddle t (at most maxChunkSpan of them by time) are rewritten without
// their older records, deleteBatch at a time, each slice one transaction.
// The count is exact: rows removed by a concurrent call are counted by
// that call, not this one. An error after some slices returns the count
// so far with it; those records stay removed.
func (s *Store) DeleteBefore(ctx context.Context, t time.Time) (int64, error) {
	if err := s.checkOpen("delete"); err != nil {
		return 0, err
	}
	cut := clampTime(ceilMicro(t))
	var total int64
	for _, d := range s.domains {
		for {
			var chunks, recs int64
			if err := s.pool.QueryRow(ctx, d.deleteWhole, cut).Scan(&chunks, &recs); err != nil {
				return total, s.fail("delete", fmt.Errorf("%s: %w", d.name, err))
			}
			total += recs
			// Stop at an empty slice rather than a short one: a concurrent
			// DeleteBefore can make a slice short while rows remain.
			if chunks == 0 {
				break
			}
		}
		for {
			n, more, err := s.trimStraddling(ctx, &d, cut)
			total += n
			if err != nil {
				return total, s.fail("delete", fmt.Errorf("%s: %w", d.name, err))
			}
			if !more {
				break
			}
		}
	}
	return total, nil
}

// trimStraddling rewrites one slice of the chunks holding records on both
// sides of cut without the older ones, and reports how many records it
// removed and whether a full slice was found (there may be more).
// FOR UPDATE makes a concurrent DeleteBefore wait and then skip the
// rewritten rows (their min_time is no longer before cut), so no record is
// counted twice; Append's merge takes chunks with DELETE, which waits for
// this transaction in the same way.
func (s *Store) trimStraddling(ctx context.Context, d *domainSQL, cut time.Time) (removed int64, more bool, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		removed, more = 0, false
		rows, err := tx.Query(ctx, d.straddling, cut, clampTime(cut.Add(maxChunkSpan)))
		if err != nil {
			return err
		}
		var cs []storedChunk
		for rows.Next() {
			c, err := scanChunk(rows)
			if err != nil {
				rows.Close()
				return err
			}
			cs = append(cs, c)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		more = len(cs) == deleteBatch
		b := &pgx.Batch{}
		for _, c := range cs {
			kept := chunk{first: -1}
			for _, r := range c.recs {
				if r.time < cut.UnixMicro() {
					removed++
					continue
				}
				if kept.first < 0 {
					kept.first, kept.minTime, kept.maxTime = r.seq, r.time, r.time
				}
				kept.last = r.seq
				kept.minTime, kept.maxTime = min(kept.minTime, r.time), max(kept.maxTime, r.time)
				kept.recs = append(kept.recs, r)
			}
			// max_time >= cut, so at least one record is kept.
			kept.encode()
			b.Queue(d.rewrite, c.stream, c.first, kept.first, kept.last, int32(len(kept.recs)),
				time.UnixMicro(kept.minTime).UTC(), time.UnixMicro(kept.maxTime).UTC(), kept.body)
		}
		if b.Len() == 0 {
			return nil
		}
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return 0, false, err
	}
	return removed, more, nil
}

// Stats counts the records of all domains. Bytes is a logical size: per
// record its stream, kind and fields (as stored, compressed if PostgreSQL
// compressed them) and rowOverhead, plus the chunk bodies (data and a few
// bytes of seq and time per record). It is not pg_total_relation_size,
// which includes dead rows and free space and so does not shrink after
// DeleteBefore until a VACUUM FULL: a size-based retention policy watching
// it would delete everything. Stats scans every table once, so it costs in
// proportion to the chunks held.
func (s *Store) Stats(ctx context.Context) (history.Stats, error) {
	if err := s.checkOpen("stats"); err != nil {
		return history.Stats{}, err
	}
	var parts []string
	for _, d := range s.domains {
		parts = append(parts, "("+d.stats+")")
	}
	rows, err := s.pool.Query(ctx, strings.Join(parts, " UNION ALL "))
	if err != nil {
		return history.Stats{}, s.fail("stats", err)
	}
	defer rows.Close()
	var st history.Stats
	for rows.Next() {
		var (
			n, bytes int64
			oldest   *time.Time
		)
		if err := rows.Scan(&n, &bytes, &oldest); err != nil {
			return history.Stats{}, s.fail("stats", err)
		}
		st.Records += n
		st.Bytes += bytes
		if oldest != nil && (st.Oldest.IsZero() || oldest.Before(st.Oldest)) {
			st.Oldest = oldest.UTC()
		}
	}
	if err := rows.Err(); err != nil {
		return history.Stats{}, s.fail("stats", err)
	}
	return st, nil
}
