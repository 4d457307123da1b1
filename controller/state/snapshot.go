package state

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/hashicorp/go-memdb"
)

// Snapshot format: newline-delimited JSON, so it streams in both directions
// and a person can read it.
//
//	{"format":"opsconductor-state","version":1,"schema_version":1,"index":N}
//	{"table":"a","rows":2}
//	{...row...}
//	{...row...}
//	{"table":"b","rows":0}
//	{"end":true,"sha256":"<hex of every byte before this line>"}
//
// Tables come in name order and rows in primary-key order, so two stores
// holding the same data write identical bytes.
const (
	snapshotFormat  = "opsconductor-state"
	snapshotVersion = 1
	// maxSnapshotLine bounds one row so that a corrupt or hostile file
	// cannot make the decoder allocate without limit.
	maxSnapshotLine = 64 << 20
)

// ErrBadSnapshot means a snapshot could not be decoded; the store is untouched.
var ErrBadSnapshot = errors.New("bad snapshot")

type snapshotHeader struct {
	Format        string `json:"format"`
	Version       int    `json:"version"`
	SchemaVersion int    `json:"schema_version"`
	Index         uint64 `json:"index"`
}

type tableHeader struct {
	Table string `json:"table"`
	Rows  int    `json:"rows"`
}

type snapshotTrailer struct {
	End    bool   `json:"end"`
	SHA256 string `json:"sha256"`
}

// ReadView is a consistent point-in-time view of the store.
type ReadView struct {
	txn   *memdb.Txn
	index uint64
}

// View returns a consistent view for a snapshot.
func (s *Store) View() ReadView {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return ReadView{txn: s.db.Txn(false), index: s.lastIndex}
}

// Index is the last applied Raft index the view includes.
func (v ReadView) Index() uint64 { return v.index }

// WriteSnapshot streams every table of view to w.
func (s *Store) WriteSnapshot(view ReadView, w io.Writer) error {
	h := sha256.New()
	bw := bufio.NewWriter(io.MultiWriter(w, h))
	writeLine := func(v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		b = append(b, '\n')
		_, err = bw.Write(b)
		return err
	}
	if err := writeLine(snapshotHeader{Format: snapshotFormat, Version: snapshotVersion, SchemaVersion: SchemaVersion, Index: view.index}); err != nil {
		return fmt.Errorf("write snapshot header: %w", err)
	}
	for _, name := range s.reg.tableNames() {
		rows, err := tableRows(view.txn, name)
		if err != nil {
			return err
		}
		if err := writeLine(tableHeader{Table: name, Rows: len(rows)}); err != nil {
			return fmt.Errorf("write snapshot table %s: %w", name, err)
		}
		for _, row := range rows {
			if err := writeLine(row); err != nil {
				return fmt.Errorf("write snapshot row of %s: %w", name, err)
			}
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	// The trailer is written past the hash so that it can carry the hash.
	trailer, _ := json.Marshal(snapshotTrailer{End: true, SHA256: hex.EncodeToString(h.Sum(nil))})
	if _, err := w.Write(append(trailer, '\n')); err != nil {
		return fmt.Errorf("write snapshot trailer: %w", err)
	}
	return nil
}

func tableRows(txn *memdb.Txn, table string) ([]any, error) {
	it, err := txn.Get(table, "id")
	if err != nil {
		return nil, fmt.Errorf("read table %s: %w", table, err)
	}
	var rows []any
	for obj := it.Next(); obj != nil; obj = it.Next() {
		rows = append(rows, obj)
	}
	return rows, nil
}

// Restore decodes a snapshot into a new database and, only when every byte
// checked out, swaps it in atomically. Blocked readers wake up.
func (s *Store) Restore(r io.Reader) error {
	db, index, err := s.decodeSnapshot(r)
	if err != nil {
		return err
	}
	s.replace(db, index)
	return nil
}

// VerifySnapshot decodes a snapshot without installing it.
func (s *Store) VerifySnapshot(r io.Reader) error {
	_, _, err := s.decodeSnapshot(r)
	return err
}

func (s *Store) decodeSnapshot(r io.Reader) (*memdb.MemDB, uint64, error) {
	db, err := memdb.NewMemDB(s.reg.schema())
	if err != nil {
		return nil, 0, fmt.Errorf("build state schema: %w", err)
	}
	d := snapshotDecoder{sc: bufio.NewScanner(r), h: sha256.New()}
	d.sc.Buffer(make([]byte, 0, 64<<10), maxSnapshotLine)

	var hdr snapshotHeader
	if err := d.next(&hdr); err != nil {
		return nil, 0, fmt.Errorf("%w: header: %v", ErrBadSnapshot, err)
	}
	if hdr.Format != snapshotFormat || hdr.Version != snapshotVersion {
		return nil, 0, fmt.Errorf("%w: not an OpsConductor state snapshot (format %q version %d)", ErrBadSnapshot, hdr.Format, hdr.Version)
	}
	if hdr.SchemaVersion > SchemaVersion {
		return nil, 0, fmt.Errorf("%w: schema version %d is newer than this node's %d; upgrade first", ErrBadSnapshot, hdr.SchemaVersion, SchemaVersion)
	}
	txn := db.Txn(true)
	defer txn.Abort()
	for {
		line, err := d.raw()
		if err != nil {
			return nil, 0, fmt.Errorf("%w: %v", ErrBadSnapshot, err)
		}
		var probe struct {
			End   bool   `json:"end"`
			Table string `json:"table"`
		}
		if err := json.Unmarshal(line, &probe); err != nil {
			return nil, 0, fmt.Errorf("%w: line %d: %v", ErrBadSnapshot, d.line, err)
		}
		if probe.End {
			var tr snapshotTrailer
			if err := json.Unmarshal(line, &tr); err != nil {
				return nil, 0, fmt.Errorf("%w: trailer: %v", ErrBadSnapshot, err)
			}
			if want := hex.EncodeToString(d.sumBeforeLast()); tr.SHA256 != want {
				return nil, 0, fmt.Errorf("%w: checksum mismatch (file says %s, content is %s)", ErrBadSnapshot, tr.SHA256, want)
			}
			break
		}
		d.hashLast()
		var th tableHeader
		if err := json.Unmarshal(line, &th); err != nil || th.Table == "" || th.Rows < 0 {
			return nil, 0, fmt.Errorf("%w: line %d: expected a table header", ErrBadSnapshot, d.line)
		}
		t, known := s.reg.tables[th.Table]
		for i := 0; i < th.Rows; i++ {
			row, err := d.raw()
			if err != nil {
				return nil, 0, fmt.Errorf("%w: table %s row %d: %v", ErrBadSnapshot, th.Table, i, err)
			}
			d.hashLast()
			if !known {
				continue // a table from a newer release; this node has no use for it
			}
			obj := t.New()
			if err := json.Unmarshal(row, obj); err != nil {
				return nil, 0, fmt.Errorf("%w: table %s row %d: %v", ErrBadSnapshot, th.Table, i, err)
			}
			if err := txn.Insert(th.Table, obj); err != nil {
				return nil, 0, fmt.Errorf("%w: table %s row %d: %v", ErrBadSnapshot, th.Table, i, err)
			}
		}
		if !known {
			s.log.Warn("snapshot holds a table this node does not know; skipped", "table", th.Table, "rows", th.Rows)
		}
	}
	if d.sc.Scan() {
		return nil, 0, fmt.Errorf("%w: data after the trailer", ErrBadSnapshot)
	}
	txn.Commit()
	return db, hdr.Index, nil
}

// snapshotDecoder reads lines and hashes every line but the trailer.
type snapshotDecoder struct {
	sc   *bufio.Scanner
	h    hash.Hash
	last []byte
	line int
}

func (d *snapshotDecoder) raw() ([]byte, error) {
	if !d.sc.Scan() {
		if err := d.sc.Err(); err != nil {
			return nil, err
		}
		return nil, io.ErrUnexpectedEOF
	}
	d.line++
	d.last = bytes.Clone(d.sc.Bytes())
	return d.last, nil
}

func (d *snapshotDecoder) next(v any) error {
	b, err := d.raw()
	if err != nil {
		return err
	}
	d.hashLast()
	return json.Unmarshal(b, v)
}

func (d *snapshotDecoder) hashLast() {
	d.h.Write(d.last)
	d.h.Write([]byte{'\n'})
}

func (d *snapshotDecoder) sumBeforeLast() []byte { return d.h.Sum(nil) }
