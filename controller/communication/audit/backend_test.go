package audit

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"
	"go.etcd.io/bbolt"

	"github.com/opsconductor/opsconductor/controller/history"
	"github.com/opsconductor/opsconductor/controller/history/embedded"
	"github.com/opsconductor/opsconductor/controller/history/postgres"
	"github.com/opsconductor/opsconductor/controller/history/postgres/pgtest"
)

// backend opens one kind of history store and reaches past it into its
// storage, as someone with access to the file or the database could.
type backend struct {
	name string
	// setup prepares fresh storage for a test.
	setup func(t *testing.T) storage
}

type storage interface {
	open(t *testing.T) history.Store
	// change rewrites the stored unit (bbolt chunk, chunk row) holding
	// entry seq of node's chain with edit; the store must be closed.
	change(t *testing.T, node string, seq uint64, edit func([]byte) []byte)
	// dropChunk deletes whatever unit of storage holds seq (a bbolt chunk
	// or a chunk row, several entries) and returns the first seq deleted.
	dropChunk(t *testing.T, node string, seq uint64) uint64
}

func backends() []backend {
	return []backend{
		{"embedded", func(t *testing.T) storage { return &embeddedStorage{path: filepath.Join(t.TempDir(), "history.db")} }},
		{"postgres", func(t *testing.T) storage { return &pgStorage{dsn: pgtest.NewDatabase(t)} }},
	}
}

type embeddedStorage struct{ path string }

func (s *embeddedStorage) open(t *testing.T) history.Store {
	t.Helper()
	st, err := embedded.Open(s.path, embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// editChunks calls fn with every chunk of node's stream in the bbolt file
// (the layout controller/history/embedded/store.go documents: bucket
// "records", key stream 0x00 first-seq(8), value 0x01 last-seq(8) …);
// fn returns the new value, nil to delete, or the value itself to keep.
func (s *embeddedStorage) editChunks(t *testing.T, node string, fn func(first, last uint64, val []byte) []byte) {
	t.Helper()
	db, err := bbolt.Open(s.path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	prefix := append([]byte(Stream(node)), 0)
	err = db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte("records"))
		type kv struct{ k, v []byte }
		var chunks []kv
		c := b.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && len(k) == len(prefix)+8; k, v = c.Next() {
			chunks = append(chunks, kv{bytes.Clone(k), bytes.Clone(v)})
		}
		for _, ch := range chunks {
			first := binary.BigEndian.Uint64(ch.k[len(prefix):])
			last := binary.BigEndian.Uint64(ch.v[1:9])
			nv := fn(first, last, ch.v)
			switch {
			case nv == nil:
				if err := b.Delete(ch.k); err != nil {
					return err
				}
			case !bytes.Equal(nv, ch.v):
				if err := b.Put(ch.k, nv); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (s *embeddedStorage) change(t *testing.T, node string, seq uint64, edit func([]byte) []byte) {
	t.Helper()
	changed := false
	s.editChunks(t, node, func(first, last uint64, val []byte) []byte {
		if seq < first || seq > last {
			return val
		}
		changed = true
		return edit(val)
	})
	if !changed {
		t.Fatalf("no chunk holds %s/%d", node, seq)
	}
}

func (s *embeddedStorage) dropChunk(t *testing.T, node string, seq uint64) uint64 {
	t.Helper()
	var dropped uint64
	s.editChunks(t, node, func(first, last uint64, val []byte) []byte {
		if seq < first || seq > last {
			return val
		}
		dropped = first
		return nil
	})
	if dropped == 0 {
		t.Fatalf("no chunk holds %s/%d", node, seq)
	}
	return dropped
}

type pgStorage struct{ dsn string }

func (s *pgStorage) open(t *testing.T) history.Store {
	t.Helper()
	st, err := postgres.Open(context.Background(), s.dsn, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// The chunks table is migration 00004's: communication.chunks(stream,
// first_seq, last_seq, …, body), the body holding the records' data.
func (s *pgStorage) change(t *testing.T, node string, seq uint64, edit func([]byte) []byte) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, s.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var first int64
	var body []byte
	err = conn.QueryRow(ctx, `SELECT first_seq, body FROM communication.chunks WHERE stream = $1 AND first_seq <= $2 AND last_seq >= $2`,
		Stream(node), int64(seq)).Scan(&first, &body)
	if err != nil {
		t.Fatalf("find the chunk row of %s/%d: %v", node, seq, err)
	}
	tag, err := conn.Exec(ctx, `UPDATE communication.chunks SET body = $3 WHERE stream = $1 AND first_seq = $2`, Stream(node), first, edit(body))
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("update the chunk row of %s/%d: %v (%d rows)", node, seq, err, tag.RowsAffected())
	}
}

func (s *pgStorage) dropChunk(t *testing.T, node string, seq uint64) uint64 {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, s.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var first int64
	err = conn.QueryRow(ctx, `DELETE FROM communication.chunks WHERE stream = $1 AND first_seq <= $2 AND last_seq >= $2 RETURNING first_seq`,
		Stream(node), int64(seq)).Scan(&first)
	if err != nil {
		t.Fatalf("delete the chunk row of %s/%d: %v", node, seq, err)
	}
	return uint64(first)
}

// flipOutcome turns entry seq's "success" into "failure" inside a chunk,
// the same length, so the chunk still decodes and only the entry's hash
// can tell.
func flipOutcome(t *testing.T, seq uint64) func([]byte) []byte {
	return func(val []byte) []byte {
		t.Helper()
		at := bytes.Index(val, fmt.Appendf(nil, `{"seq":%d,`, seq))
		if at < 0 {
			t.Fatalf("entry %d is not in its chunk", seq)
		}
		rel := bytes.Index(val[at:], []byte(`"outcome":"success"`))
		if rel < 0 {
			t.Fatalf("entry %d has no success outcome", seq)
		}
		out := bytes.Clone(val)
		copy(out[at+rel:], `"outcome":"failure"`)
		return out
	}
}
