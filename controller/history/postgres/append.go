package postgres

import (
	"cmp"
	"context"
	"fmt"
	"hash/fnv"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/opsconductor/opsconductor/controller/history"
)

// Append stores recs in one transaction: all of them or none. Records
// whose (stream, seq) is already stored are skipped, however the batch
// that stored them was split into chunks, which is what makes a retry
// after an ambiguous failure (the commit went through but the answer was
// lost) and an agent's replay safe.
func (s *Store) Append(ctx context.Context, recs []history.Record) error {
	if err := s.checkOpen("append"); err != nil {
		return err
	}
	if err := history.ValidateBatch(recs); err != nil {
		return err
	}
	if err := checkStorable(recs); err != nil {
		return err
	}
	if len(recs) == 0 {
		return nil
	}
	return s.fail("append", s.appendRows(ctx, dedupe(s.rows(recs))))
}

// dedupe drops the second and later copies of a (stream, seq) from sorted
// rows: of two copies in one batch the first wins, as a stored record wins
// over one sent again.
func dedupe(rows []row) []row {
	return slices.CompactFunc(rows, func(a, b row) bool { return compareRows(a, b) == 0 })
}

// span is one stream's part of a batch: its rows, sorted by seq, and the
// least and greatest seq among them.
type span struct {
	dom    int
	stream string
	lo, hi int64
	rows   []row
	// overlaps is set when a stored chunk overlaps [lo, hi]; the stored
	// chunks are then taken out and merged with rows.
	overlaps bool
}

// spans splits sorted rows into one span per stream.
func spans(rows []row) []span {
	var out []span
	for len(rows) > 0 {
		n := 1
		for n < len(rows) && rows[n].dom == rows[0].dom && rows[n].stream == rows[0].stream {
			n++
		}
		out = append(out, span{dom: rows[0].dom, stream: rows[0].stream, lo: rows[0].seq, hi: rows[n-1].seq, rows: rows[:n]})
		rows = rows[n:]
	}
	return out
}

// streamLockClass is the first key of the advisory locks Append takes per
// stream ("opsc"). The two-key form is a key space apart from the one-key
// form the migration lock uses.
const streamLockClass int32 = 0x6f707363

// lockStreams takes, in key order so that concurrent batches never
// deadlock, one transaction-scoped advisory lock per stream.
const lockStreams = `SELECT count(pg_advisory_xact_lock($1::int4, k)) FROM unnest($2::int4[]) AS k`

// streamKey is a stream's advisory lock key. Two streams sharing a key
// only serialize their appends.
func streamKey(dom int, stream string) int32 {
	h := fnv.New32a()
	h.Write([]byte{byte(dom)})
	h.Write([]byte(stream))
	return int32(h.Sum32())
}

// appendRows writes sorted, de-duplicated rows in one transaction: in one
// round trip when no stored chunk overlaps them (insertOnce), else
// through appendChecked, which merges. Either way a stream's chunks never
// overlap, and a record is stored once whatever chunks earlier batches
// were split into.
func (s *Store) appendRows(ctx context.Context, rows []row) error {
	sp := spans(rows)
	keys := make([]int32, len(sp))
	for i := range sp {
		keys[i] = streamKey(sp[i].dom, sp[i].stream)
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	return s.pool.AcquireFunc(ctx, func(c *pgxpool.Conn) error {
		conn := c.Conn()
		err := s.appendTx(ctx, conn, rows, sp, keys)
		if err != nil && conn.PgConn().TxStatus() != 'I' {
			// Roll back so the connection goes back to the pool clean; if
			// that fails the pool closes it, which rolls back too.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_, _ = conn.Exec(rctx, "ROLLBACK")
		}
		return err
	})
}

func (s *Store) appendTx(ctx context.Context, conn *pgx.Conn, rows []row, sp []span, keys []int32) error {
	data := 0
	for i := range rows {
		data += len(rows[i].data)
	}
	if data <= maxInsertOnce {
		chunks := buildChunks(rows)
		size := 0
		for i := range chunks {
			size += bodyLen(&chunks[i])
		}
		stored, err := s.insertOnce(ctx, conn, chunks, size, keys)
		if err != nil || stored {
			return err
		}
		// Some stored chunk overlaps the batch (a retry, a replay): that
		// transaction wrote nothing, and this one merges.
	}
	return s.appendChecked(ctx, conn, rows, sp, keys)
}

// maxInsertOnce bounds the record data of a batch that insertOnce sends,
// its chunk bodies as one bytea parameter; larger batches go through
// appendChecked, whose COPY streams them. Measured side by side on this
// 2-vCPU machine at load 30 with one writer: batches of 1000 100-byte
// records went from 76k to 115k records/s (and the server process's CPU
// per batch from 1.15 to 0.9 ms), but batches of 1000 1 KiB records from
// 30 to 19 MB/s.
const maxInsertOnce = 256 << 10

// insertOnce writes a batch's chunks in one transaction and one round
// trip, unless a stored chunk overlaps one of the batch's streams' seqs,
// in which case it writes nothing and reports stored false. The pipeline
// is BEGIN, the stream locks (in key order, so that concurrent batches
// never deadlock), insertUnlessOverlapping and COMMIT. The locks are what
// make the check hold until the commit: every append to a stream takes
// its lock before looking, so no other batch can add an overlapping chunk
// in between, and retention only ever removes records from chunks.
//
// Under load a round trip costs more than its wire time: the server
// process and then the client wait for a CPU. Checking, copying (two for
// COPY) and committing took four.
func (s *Store) insertOnce(ctx context.Context, conn *pgx.Conn, chunks []chunk, size int, keys []int32) (stored bool, err error) {
	bp, _ := s.bodies.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	defer s.bodies.Put(bp)
	buf := slices.Grow((*bp)[:0], size)
	mask := 0
	var args []any
	for _, run := range chunksByDomain(chunks) {
		mask |= 1 << run[0].dom
		start := len(buf)
		n := len(run)
		streams, firsts, lasts, counts := make([]string, n), make([]int64, n), make([]int64, n), make([]int32, n)
		mins, maxs, kinds, fields := make([]time.Time, n), make([]time.Time, n), make([]string, n), make([]string, n)
		starts, lens := make([]int32, n), make([]int32, n)
		for i := range run {
			c := &run[i]
			from := len(buf)
			buf = appendBody(buf, c)
			starts[i], lens[i] = int32(from-start+1), int32(len(buf)-from)
			streams[i], firsts[i], lasts[i], counts[i] = c.stream, c.first, c.last, int32(len(c.recs))
			mins[i], maxs[i] = time.UnixMicro(c.minTime).UTC(), time.UnixMicro(c.maxTime).UTC()
			kinds[i], fields[i] = c.kind, string(c.jsonText)
		}
		args = append(args, streams, firsts, lasts, counts, mins, maxs, kinds, fields, starts, lens, buf[start:])
	}
	*bp = buf
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(lockStreams, streamLockClass, keys)
	b.Queue(s.insertUnlessOverlapping[mask], args...)
	b.Queue("COMMIT")
	br := conn.SendBatch(ctx, b)
	if _, err := br.Exec(); err != nil {
		return false, fmt.Errorf("begin: %w", closeBatch(br, err))
	}
	if _, err := br.Exec(); err != nil {
		return false, fmt.Errorf("lock streams: %w", closeBatch(br, err))
	}
	var overlaps bool
	if err := br.QueryRow().Scan(&overlaps); err != nil {
		return false, fmt.Errorf("insert chunks: %w", closeBatch(br, err))
	}
	if _, err := br.Exec(); err != nil {
		return false, fmt.Errorf("commit: %w", closeBatch(br, err))
	}
	if err := br.Close(); err != nil {
		return false, fmt.Errorf("commit: %w", err)
	}
	return !overlaps, nil
}

// appendChecked writes sorted, de-duplicated rows in one transaction of at
// most three round trips:
//
//  1. BEGIN, lock each stream of the batch, and ask which streams already
//     have a chunk overlapping the batch's seqs;
//  2. only when some do: take those chunks out (DELETE … RETURNING), to be
//     merged with the batch, the stored copy of a record winning;
//  3. insert the chunks built from the batch, and COMMIT.
//
// The stream locks make the check in 1 hold until the commit, as in
// insertOnce.
func (s *Store) appendChecked(ctx context.Context, conn *pgx.Conn, rows []row, sp []span, keys []int32) error {
	// 1. Lock and look.
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(lockStreams, streamLockClass, keys)
	doms := byDomain(sp)
	for _, d := range doms {
		streams, los, his := make([]string, len(d)), make([]int64, len(d)), make([]int64, len(d))
		for i, x := range d {
			streams[i], los[i], his[i] = x.stream, x.lo, x.hi
		}
		b.Queue(s.domains[d[0].dom].overlapping, streams, los, his)
	}
	br := conn.SendBatch(ctx, b)
	if _, err := br.Exec(); err != nil {
		return fmt.Errorf("begin: %w", closeBatch(br, err))
	}
	if _, err := br.Exec(); err != nil {
		return fmt.Errorf("lock streams: %w", closeBatch(br, err))
	}
	merge := false
	for _, d := range doms {
		ords, err := pgx.CollectRows(mustQuery(br), pgx.RowTo[int64])
		if err != nil {
			return fmt.Errorf("check overlaps: %w", closeBatch(br, err))
		}
		for _, o := range ords {
			d[o-1].overlaps = true
			merge = true
		}
	}
	if err := br.Close(); err != nil {
		return fmt.Errorf("check overlaps: %w", err)
	}

	// 2. Take out what overlaps.
	if merge {
		if err := s.takeOverlapping(ctx, conn, sp); err != nil {
			return err
		}
	}

	// 3. Insert and commit.
	all := rows
	if merge {
		all = nil
		for _, x := range sp {
			all = append(all, x.rows...)
		}
	}
	chunks := buildChunks(all)
	runs := chunksByDomain(chunks)
	size := 0
	for i := range chunks {
		size += bodyLen(&chunks[i])
	}
	if size < copyThreshold {
		encodeBodies(chunks)
		b = &pgx.Batch{}
		for _, run := range runs {
			queueInsert(b, s.domains[run[0].dom].insert, run)
		}
		b.Queue("COMMIT")
		if err := conn.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("insert chunks: %w", err)
		}
		return nil
	}
	for _, run := range runs {
		if _, err := conn.PgConn().CopyFrom(ctx, newCopyReader(run), s.domains[run[0].dom].copyIn); err != nil {
			return fmt.Errorf("copy chunks: %w", err)
		}
	}
	if _, err := conn.Exec(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// copyThreshold is the size of a batch's chunk bodies from which they are
// written with COPY rather than as arrays of the INSERT. COPY costs two
// more round trips (its own, and a COMMIT that can no longer ride along),
// the arrays three copies of every body in pgx (see copy.go): at 1 KiB
// records the arrays took more client CPU than the server spent storing
// them.
const copyThreshold = 32 << 10

// mustQuery reads the next result of a batch as rows.
func mustQuery(br pgx.BatchResults) pgx.Rows {
	rows, _ := br.Query() // the error comes back from the rows
	return rows
}

// closeBatch closes br after err, which it returns.
func closeBatch(br pgx.BatchResults, err error) error {
	_ = br.Close()
	return err
}

// takeOverlapping deletes the stored chunks overlapping each flagged span
// and merges their records into the span's rows, the stored copy of a
// (stream, seq) winning over the batch's.
func (s *Store) takeOverlapping(ctx context.Context, conn *pgx.Conn, sp []span) error {
	b := &pgx.Batch{}
	var which []int
	for i := range sp {
		if sp[i].overlaps {
			b.Queue(s.domains[sp[i].dom].take, sp[i].stream, sp[i].lo, sp[i].hi)
			which = append(which, i)
		}
	}
	br := conn.SendBatch(ctx, b)
	for _, i := range which {
		x := &sp[i]
		rows := mustQuery(br)
		var stored []row
		for rows.Next() {
			c, err := scanChunk(rows)
			if err != nil {
				rows.Close()
				return fmt.Errorf("take overlapping chunks: %w", closeBatch(br, err))
			}
			for _, r := range c.recs {
				stored = append(stored, row{dom: x.dom, stream: x.stream, seq: r.seq, time: time.UnixMicro(r.time).UTC(),
					kind: c.kind, fields: c.fields, data: r.data})
			}
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("take overlapping chunks: %w", closeBatch(br, err))
		}
		// Stored first, so that the stable sort and dedupe keep them.
		merged := append(stored, x.rows...)
		slices.SortStableFunc(merged, func(a, b row) int { return cmp.Compare(a.seq, b.seq) })
		x.rows = dedupe(merged)
	}
	if err := br.Close(); err != nil {
		return fmt.Errorf("take overlapping chunks: %w", err)
	}
	return nil
}

// byDomain splits spans sorted by domain into runs of one domain each.
func byDomain(sp []span) [][]span {
	var out [][]span
	for len(sp) > 0 {
		n := 1
		for n < len(sp) && sp[n].dom == sp[0].dom {
			n++
		}
		out = append(out, sp[:n])
		sp = sp[n:]
	}
	return out
}

// chunksByDomain splits chunks sorted by domain into runs of one domain.
func chunksByDomain(cs []chunk) [][]chunk {
	var out [][]chunk
	for len(cs) > 0 {
		n := 1
		for n < len(cs) && cs[n].dom == cs[0].dom {
			n++
		}
		out = append(out, cs[:n])
		cs = cs[n:]
	}
	return out
}

// queueInsert queues the insert of one domain's chunks as arrays.
func queueInsert(b *pgx.Batch, sql string, cs []chunk) {
	n := len(cs)
	streams, firsts, lasts, counts := make([]string, n), make([]int64, n), make([]int64, n), make([]int32, n)
	mins, maxs, kinds, fields, bodies := make([]time.Time, n), make([]time.Time, n), make([]string, n), make([]string, n), make([][]byte, n)
	for i := range cs {
		c := &cs[i]
		streams[i], firsts[i], lasts[i], counts[i] = c.stream, c.first, c.last, int32(len(c.recs))
		mins[i], maxs[i] = time.UnixMicro(c.minTime).UTC(), time.UnixMicro(c.maxTime).UTC()
		kinds[i], fields[i], bodies[i] = c.kind, string(c.jsonText), c.body
	}
	b.Queue(sql, streams, firsts, lasts, counts, mins, maxs, kinds, fields, bodies)
}
