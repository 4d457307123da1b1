package gateway

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// served is one running Serve call.
type served struct {
	base   string // http://127.0.0.1:port
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// wait blocks until Serve returns and gives its result; it may be called
// any number of times.
func (s *served) wait() error {
	<-s.done
	return s.err
}

// startServe runs Serve on a kernel-chosen port; cleanup stops it and waits.
func startServe(t *testing.T, f *fixture) *served {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &served{base: "http://" + ln.Addr().String(), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		s.err = f.srv.Serve(ctx, ln)
	}()
	t.Cleanup(func() {
		cancel()
		_ = s.wait()
	})
	return s
}

// newClient returns a client that sends the shared test admin's token, as
// every fixture's identity is the shared one.
func newClient(t *testing.T) *http.Client {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: authTransport{base: tr, ident: sharedIdentity(t)}}
}

type authTransport struct {
	base  http.RoundTripper
	ident *testIdentity
}

func (a authTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	a.ident.authorize(req)
	return a.base.RoundTrip(req)
}

func TestServeShutsDownGracefully(t *testing.T) {
	f := newFixture(t, Config{ShutdownTimeout: time.Minute})
	entered, release := make(chan struct{}), make(chan struct{})
	f.cluster.saveHook = func(context.Context) error {
		close(entered)
		<-release
		return nil
	}
	srv := startServe(t, f)
	client := newClient(t)

	type result struct {
		status int
		body   string
		err    error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := client.Get(srv.base + "/api/v1/operator/snapshot")
		if err != nil {
			got <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		got <- result{status: resp.StatusCode, body: string(b), err: err}
	}()
	<-entered
	srv.cancel()

	steps := []struct {
		name  string
		check func(t *testing.T)
	}{
		{"a request in flight finishes after shutdown begins", func(t *testing.T) {
			close(release)
			r := <-got
			if r.err != nil || r.status != http.StatusOK || r.body != "snapshot-bytes" {
				t.Fatalf("in-flight request: %+v", r)
			}
		}},
		{"Serve returns nil after a clean shutdown", func(t *testing.T) {
			if err := srv.wait(); err != nil {
				t.Fatalf("Serve: %v", err)
			}
		}},
		{"the listener is closed", func(t *testing.T) {
			if _, err := client.Get(srv.base + "/health"); err == nil {
				t.Fatal("a request succeeded after shutdown")
			}
		}},
	}
	for _, s := range steps {
		t.Run(s.name, s.check)
	}
}

func TestServeGivesUpAfterShutdownTimeout(t *testing.T) {
	f := newFixture(t, Config{ShutdownTimeout: time.Millisecond})
	entered := make(chan struct{})
	f.cluster.saveHook = func(ctx context.Context) error {
		close(entered)
		<-ctx.Done() // only the server giving up ends this request
		return ctx.Err()
	}
	srv := startServe(t, f)
	client := newClient(t)
	reqDone := make(chan struct{})
	go func() {
		defer close(reqDone)
		if resp, err := client.Get(srv.base + "/api/v1/operator/snapshot"); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	<-entered
	srv.cancel()
	err := srv.wait()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Serve = %v, want the drain deadline", err)
	}
	<-reqDone
}

func TestSnapshotFailingMidStreamAbortsTheResponse(t *testing.T) {
	f := newFixture(t, Config{})
	f.cluster.snapshot = make([]byte, 256<<10) // more than net/http buffers, so headers are out
	f.cluster.saveErr = errors.New("disk read failed")
	srv := startServe(t, f)
	resp, err := newClient(t).Get(srv.base + "/api/v1/operator/snapshot")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d; the failure was meant to come after the first byte", resp.StatusCode)
	}
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Fatal("the truncated snapshot read as complete")
	}
	var aborted bool
	for _, l := range f.logs.lines(t) {
		if l["msg"] == "snapshot save failed after streaming began; aborting response" {
			aborted = true
		}
	}
	if !aborted {
		t.Error("the abort was not logged")
	}
}
