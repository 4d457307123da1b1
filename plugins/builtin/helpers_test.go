package builtin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/opsconductor/opsconductor/plugins/schema"
	"github.com/opsconductor/opsconductor/plugins/sdk"
)

func TestMain(m *testing.M) {
	// http.Client keeps idle connections in goroutines of its transport;
	// they belong to the shared client, not to a step.
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"))
}

// recorder is an sdk.Output that keeps what a step printed and can tell a
// test when a given text first appears, so tests wait on output rather than
// on time.
type recorder struct {
	mu       sync.Mutex
	out, err bytes.Buffer
	watches  []watch
}

type watch struct {
	text string
	ch   chan struct{}
}

func (r *recorder) Stdout() io.Writer { return recWriter{r, &r.out} }
func (r *recorder) Stderr() io.Writer { return recWriter{r, &r.err} }

type recWriter struct {
	r   *recorder
	buf *bytes.Buffer
}

func (w recWriter) Write(p []byte) (int, error) {
	w.r.mu.Lock()
	defer w.r.mu.Unlock()
	n, _ := w.buf.Write(p)
	all := w.r.out.String() + w.r.err.String()
	kept := w.r.watches[:0]
	for _, wt := range w.r.watches {
		if strings.Contains(all, wt.text) {
			close(wt.ch)
		} else {
			kept = append(kept, wt)
		}
	}
	w.r.watches = kept
	return n, nil
}

// seen returns a channel closed once text has been printed.
func (r *recorder) seen(text string) <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	ch := make(chan struct{})
	if strings.Contains(r.out.String()+r.err.String(), text) {
		close(ch)
	} else {
		r.watches = append(r.watches, watch{text, ch})
	}
	return ch
}

func (r *recorder) stdout() string { r.mu.Lock(); defer r.mu.Unlock(); return r.out.String() }
func (r *recorder) stderr() string { r.mu.Lock(); defer r.mu.Unlock(); return r.err.String() }

// run runs step with params given as a Go value.
func run(t *testing.T, ctx context.Context, step sdk.Step, params any, mod ...func(*sdk.Request)) (sdk.Result, *recorder, error) {
	t.Helper()
	raw, err := json.Marshal(params)
	if err != nil {
		t.Fatal(err)
	}
	req := sdk.Request{AttemptID: "a1", Params: raw}
	for _, m := range mod {
		m(&req)
	}
	rec := &recorder{}
	res, err := step.Run(ctx, req, rec)
	return res, rec, err
}

// wantParamError checks that err is a validation error naming path.
func wantParamError(t *testing.T, err error, path string) {
	t.Helper()
	var ve *schema.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("err = %v (%T), want a *schema.ValidationError naming %s", err, err, path)
	}
	for _, f := range ve.Fields {
		if f.Path == path {
			return
		}
	}
	t.Fatalf("err = %v, want a problem with %s", err, path)
}

// waitFor polls cond every few milliseconds until it holds or the deadline
// passes, for the conditions nothing signals (a process being gone).
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type obj = map[string]any

var jsonMarshal = json.Marshal
