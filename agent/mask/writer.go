package mask

import (
	"bytes"
	"io"
	"sync"
)

// MaxLine is the longest line a Writer holds before it passes part of it
// on; a step that prints without newlines still streams.
const MaxLine = 64 * 1024

// Writer masks a stream that arrives in arbitrary chunks, so that a secret
// cut across two writes is masked all the same. It passes on whole lines;
// a line longer than MaxLine is passed on in pieces, each cut where no
// secret can straddle it. Call Flush at the end of the stream for a last
// line without a newline. Safe for concurrent use.
type Writer struct {
	m   *Masker
	w   io.Writer
	max int // longest value masked

	mu  sync.Mutex
	buf []byte
}

// NewWriter returns a Writer that masks with m and writes to w.
func NewWriter(w io.Writer, m *Masker) *Writer {
	mw := &Writer{m: m, w: w}
	if m != nil && len(m.values) > 0 {
		mw.max = len(m.values[0]) // sorted longest first
	}
	return mw
}

// Write buffers p and writes every line it completes, masked. Its count
// is len(p) when the underlying writer took everything it was given.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	// Lines are passed on from an offset and the rest moved down once, so
	// a write of many short lines costs one pass, not one copy per line.
	start := 0
	var err error
	for err == nil {
		i := bytes.IndexByte(w.buf[start:], '\n')
		if i < 0 {
			break
		}
		err = w.emit(w.buf[start : start+i+1])
		start += i + 1
	}
	for err == nil && len(w.buf)-start > MaxLine {
		c := w.cut(w.buf[start:])
		err = w.emit(w.buf[start : start+c])
		start += c
	}
	w.buf = w.buf[:copy(w.buf, w.buf[start:])]
	if cap(w.buf) > 4*MaxLine && len(w.buf) < MaxLine {
		// One huge write grew the buffer; do not keep it.
		w.buf = append([]byte(nil), w.buf...)
	}
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// Flush writes what is buffered, masked.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) == 0 {
		return nil
	}
	err := w.emit(w.buf)
	w.buf = w.buf[:0]
	return err
}

// emit writes b masked. Mask never changes b in place (it returns b or a
// new slice), and io.Writer must not keep b, so no copy is needed.
func (w *Writer) emit(b []byte) error {
	_, err := w.w.Write(w.m.Mask(b))
	return err
}

// cut picks where to split a long buffer: up to MaxLine bytes, minus what
// could be the start of a secret that continues in later writes, and moved
// back to the start of any secret that straddles the cut, so that every
// secret lies wholly on one side.
func (w *Writer) cut(buf []byte) int {
	c := MaxLine
	if w.m == nil {
		return c
	}
	if w.max > 1 {
		c = max(1, MaxLine-(w.max-1))
	}
	for moved := true; moved; {
		moved = false
		for _, v := range w.m.values {
			// Occurrences that start before c and end after it.
			lo := max(0, c-len(v)+1)
			if i := bytes.Index(buf[lo:min(len(buf), c+len(v)-1)], v); i >= 0 && lo+i < c {
				c = lo + i
				moved = true
			}
		}
	}
	if c == 0 {
		// A secret starts the buffer, and it is whole (the buffer is
		// longer than any value): pass on the longest one there, masked.
		for _, v := range w.m.values {
			if bytes.HasPrefix(buf, v) {
				return len(v)
			}
		}
	}
	return c
}
