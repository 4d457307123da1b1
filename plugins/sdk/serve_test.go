package sdk

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/opsconductor/opsconductor/plugins/sdk/internal/wire"
	pluginv1 "github.com/opsconductor/opsconductor/proto/plugin/v1"
)

// TestMain checks that serving, canceling and stopping leave no goroutine
// behind (t.Cleanup runs after a deferred check would).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// funcStep is a Step made of a function.
type funcStep func(ctx context.Context, req Request, out Output) (Result, error)

func (funcStep) Describe() Description { return Description{Name: "f", Version: "1.0.0"} }
func (f funcStep) Run(ctx context.Context, req Request, out Output) (Result, error) {
	return f(ctx, req, out)
}

// serveStep serves step's gRPC service on a loopback port, as Serve does
// inside go-plugin, and returns a client.
func serveStep(t *testing.T, step Step) pluginv1.StepClient {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	if err := (&servePlugin{step: step}).GRPCServer(nil, s); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Serve(ln)
	}()
	cc, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cc.Close()
		s.Stop()
		<-done
	})
	return pluginv1.NewStepClient(cc)
}

// collect reads a Run stream to its end.
func collect(t *testing.T, stream pluginv1.Step_RunClient) (stdout []byte, chunks int, res *pluginv1.Result) {
	t.Helper()
	for {
		ev, err := stream.Recv()
		if err == io.EOF {
			return stdout, chunks, res
		}
		if err != nil {
			t.Fatal(err)
		}
		if o := ev.GetOutput(); o != nil {
			if len(o.GetData()) > wire.MaxChunk {
				t.Errorf("a chunk of %d bytes, over MaxChunk", len(o.GetData()))
			}
			stdout = append(stdout, o.GetData()...)
			chunks++
		}
		if r := ev.GetResult(); r != nil {
			res = r
		}
	}
}

func TestServedStep(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789"), 10_000) // 100 KB in one write
	tests := []struct {
		name       string
		step       funcStep
		wantStdout []byte
		check      func(t *testing.T, r *pluginv1.Result)
	}{
		{"a large write arrives whole, in bounded chunks", func(_ context.Context, _ Request, out Output) (Result, error) {
			_, err := out.Stdout().Write(big)
			return Result{Changed: true, Outputs: map[string]string{"k": "v"}}, err
		}, big, func(t *testing.T, r *pluginv1.Result) {
			if r.GetStatus() != pluginv1.Status_STATUS_SUCCEEDED || !r.GetChanged() || r.GetOutputs()["k"] != "v" {
				t.Errorf("result = %v", r)
			}
		}},
		{"an error fails the attempt with its text", func(context.Context, Request, Output) (Result, error) {
			return Result{}, errors.New("no such path")
		}, nil, func(t *testing.T, r *pluginv1.Result) {
			if r.GetStatus() != pluginv1.Status_STATUS_FAILED || r.GetError() != "no such path" || r.GetPanicked() {
				t.Errorf("result = %v", r)
			}
		}},
		{"a panic is recovered and reported as one", func(context.Context, Request, Output) (Result, error) {
			panic("boom")
		}, nil, func(t *testing.T, r *pluginv1.Result) {
			if !r.GetPanicked() || r.GetError() != "step panicked: boom" {
				t.Errorf("result = %v", r)
			}
		}},
		{"the request reaches the step", func(_ context.Context, req Request, out Output) (Result, error) {
			Printf(out, "%s %s %s %s", req.AttemptID, req.Params, req.Secrets["pw"], req.Target.Facts["os"])
			return Result{}, nil
		}, []byte(`a1 {"x":1} hunter22 linux` + "\n"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := serveStep(t, tt.step)
			stream, err := c.Run(context.Background(), &pluginv1.RunRequest{AttemptId: "a1", ParamsJson: []byte(`{"x":1}`),
				Secrets: map[string]string{"pw": "hunter22"}, Target: &pluginv1.Target{Facts: map[string]string{"os": "linux"}}})
			if err != nil {
				t.Fatal(err)
			}
			stdout, _, res := collect(t, stream)
			if res == nil {
				t.Fatal("no Result")
			}
			if tt.wantStdout != nil && !bytes.Equal(stdout, tt.wantStdout) {
				t.Errorf("stdout = %.80q…, want %.80q…", stdout, tt.wantStdout)
			}
			if tt.check != nil {
				tt.check(t, res)
			}
		})
	}
}

func TestCancelEndsTheStepsContextAndKeepsTheStream(t *testing.T) {
	started := make(chan struct{})
	c := serveStep(t, funcStep(func(ctx context.Context, _ Request, _ Output) (Result, error) {
		close(started)
		<-ctx.Done()
		return Result{Message: "stopped cleanly"}, nil
	}))
	stream, err := c.Run(context.Background(), &pluginv1.RunRequest{AttemptId: "a1"})
	if err != nil {
		t.Fatal(err)
	}
	<-started
	if _, err := c.Cancel(context.Background(), &pluginv1.CancelRequest{AttemptId: "a1"}); err != nil {
		t.Fatal(err)
	}
	_, _, res := collect(t, stream)
	if res.GetMessage() != "stopped cleanly" {
		t.Fatalf("result = %v", res)
	}
}

func TestWritesAfterRunReturnedFail(t *testing.T) {
	leaked := make(chan error, 1)
	leakGate := make(chan struct{})
	c := serveStep(t, funcStep(func(_ context.Context, _ Request, out Output) (Result, error) {
		w := out.Stdout()
		go func() {
			// Writes after Run returned: the step left it behind.
			<-leakGate
			_, err := w.Write([]byte("late\n"))
			leaked <- err
		}()
		return Result{}, nil
	}))
	stream, err := c.Run(context.Background(), &pluginv1.RunRequest{})
	if err != nil {
		t.Fatal(err)
	}
	collect(t, stream)
	close(leakGate)
	if err := <-leaked; err == nil || !strings.Contains(err.Error(), "after Run returned") {
		t.Fatalf("late write: %v", err)
	}
}
