package history

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
)

// The export format is JSON Lines: one Record per line as encoding/json
// writes it (Data in base64). It is what `operator history export` writes
// and `import` reads, so a single server's embedded history can move into
// PostgreSQL when it grows into a cluster.

// maxLine bounds one exported line: the largest record's data in base64
// plus its other fields.
const maxLine = MaxDataLen*4/3 + 64<<10

// EncodeJSONL writes one record as a line.
func EncodeJSONL(w io.Writer, r Record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode %s/%d: %w", r.Stream, r.Seq, err)
	}
	b = append(b, '\n')
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("write %s/%d: %w", r.Stream, r.Seq, err)
	}
	return nil
}

// DecodeJSONL reads records line by line, checks each strictly (unknown
// fields, trailing data and invalid records are errors naming the line) and
// calls fn for it. Blank lines are skipped.
func DecodeJSONL(r io.Reader, fn func(Record) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	for line := 1; sc.Scan(); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		var rec Record
		if err := dec.Decode(&rec); err != nil {
			return fmt.Errorf("line %d: %w", line, err)
		}
		if dec.More() {
			return fmt.Errorf("line %d: more than one JSON value", line)
		}
		if err := rec.Validate(fmt.Sprintf("line %d", line)); err != nil {
			return err
		}
		if err := fn(rec); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read export: %w", err)
	}
	return nil
}

// Export writes every record of s as JSON Lines, calling progress every
// 10,000 records and once at the end.
func Export(ctx context.Context, s Store, w io.Writer, progress func(n int64)) (int64, error) {
	ex, ok := s.(Exporter)
	if !ok {
		return 0, fmt.Errorf("this history store cannot export")
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	var n int64
	err := ex.Each(ctx, func(r Record) error {
		if err := EncodeJSONL(bw, r); err != nil {
			return err
		}
		n++
		if progress != nil && n%10000 == 0 {
			progress(n)
		}
		return nil
	})
	if err == nil {
		err = bw.Flush()
	}
	if progress != nil {
		progress(n)
	}
	return n, err
}

// Import appends the JSON Lines in r to s in batches. Appends are
// idempotent, so an interrupted import can simply be run again.
func Import(ctx context.Context, s Store, r io.Reader, progress func(n int64)) (int64, error) {
	const batchSize = 1000
	var n int64
	batch := make([]Record, 0, batchSize)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := s.Append(ctx, batch); err != nil {
			return fmt.Errorf("append records %d-%d: %w", n-int64(len(batch))+1, n, err)
		}
		batch = batch[:0]
		if progress != nil && n%(10*batchSize) == 0 {
			progress(n)
		}
		return nil
	}
	err := DecodeJSONL(r, func(rec Record) error {
		batch = append(batch, rec)
		n++
		if len(batch) == batchSize {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if progress != nil {
		progress(n)
	}
	return n, err
}
