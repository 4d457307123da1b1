package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/opsconductor/opsconductor/plugins/sdk/internal/wire"
	pluginv1 "github.com/opsconductor/opsconductor/proto/plugin/v1"
)

// Serve runs step as a plugin process for the OpsConductor agent and
// returns only when the agent stops the plugin. Call it from main:
//
//	func main() { sdk.Serve(myStep{}) }
//
// A plugin binary run by hand, without the agent, prints that it is a
// plugin and exits. Anything the step prints must go through the Output it
// is given: the process's own stdout is discarded.
func Serve(step Step) {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: wire.Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{
			wire.ProtocolVersion: {wire.PluginName: &servePlugin{step: step}},
		},
		GRPCServer: plugin.DefaultGRPCServer,
		// go-plugin's own messages go to stderr as JSON, where the agent
		// reads them; warnings only, so a healthy plugin is quiet.
		Logger: hclog.New(&hclog.LoggerOptions{Name: "plugin", Level: hclog.Warn, Output: os.Stderr, JSONFormat: true}),
	})
}

// servePlugin is the plugin half of the go-plugin registration. The host
// half lives in plugins/sdk/host so that a plugin does not import it.
type servePlugin struct {
	plugin.NetRPCUnsupportedPlugin
	step Step
}

func (p *servePlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	pluginv1.RegisterStepServer(s, &stepServer{step: p.step, running: map[string]context.CancelFunc{}})
	return nil
}

func (p *servePlugin) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, errors.New("sdk: the plugin side has no client")
}

type stepServer struct {
	pluginv1.UnimplementedStepServer
	step Step

	mu      sync.Mutex
	running map[string]context.CancelFunc // by attempt ID
}

func (s *stepServer) Describe(context.Context, *pluginv1.DescribeRequest) (*pluginv1.Description, error) {
	d := s.step.Describe()
	p := &pluginv1.Description{Name: d.Name, Version: d.Version, Summary: d.Summary,
		ParamsSchema: d.Params, Idempotent: d.Idempotent}
	for _, o := range d.Outputs {
		p.Outputs = append(p.Outputs, &pluginv1.OutputSpec{Name: o.Name, Description: o.Description})
	}
	return p, nil
}

func (s *stepServer) Cancel(_ context.Context, r *pluginv1.CancelRequest) (*pluginv1.CancelResponse, error) {
	s.mu.Lock()
	cancel := s.running[r.GetAttemptId()]
	s.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	return &pluginv1.CancelResponse{}, nil
}

func (s *stepServer) Run(r *pluginv1.RunRequest, stream pluginv1.Step_RunServer) error {
	// The step's context ends with the stream (the agent gave up or the
	// connection broke) or on an explicit Cancel, which leaves the stream
	// open so that the step can still report how it stopped.
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	id := r.GetAttemptId()
	s.mu.Lock()
	s.running[id] = cancel
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.running, id)
		s.mu.Unlock()
	}()

	t := r.GetTarget()
	req := Request{AttemptID: id, Params: r.GetParamsJson(), Secrets: r.GetSecrets(),
		Target: Target{ID: t.GetId(), Name: t.GetName(), Address: t.GetAddress(), Facts: t.GetFacts()}}
	out := &streamOutput{stream: stream}
	res := s.run(ctx, req, out)
	// A goroutine the step left behind must not write to a finished
	// stream (gRPC forbids Send after the handler returns).
	out.close()
	return stream.Send(&pluginv1.RunEvent{Event: &pluginv1.RunEvent_Result{Result: res}})
}

// run calls the step, turning a panic into an error result: the agent then
// fails the attempt naming the plugin and retires this process, instead of
// seeing a bare broken connection.
func (s *stepServer) run(ctx context.Context, req Request, out Output) (res *pluginv1.Result) {
	defer func() {
		if v := recover(); v != nil {
			// The stack goes to the process's stderr, which the agent keeps
			// for diagnosis; it is not sent as step output.
			fmt.Fprintf(os.Stderr, "panic: %v\n\n%s", v, debug.Stack())
			res = &pluginv1.Result{Status: pluginv1.Status_STATUS_FAILED, Error: fmt.Sprintf("step panicked: %v", v), Panicked: true}
		}
	}()
	r, err := s.step.Run(ctx, req, out)
	st := pluginv1.Status_STATUS_SUCCEEDED
	if r.Status != StatusSucceeded {
		st = pluginv1.Status_STATUS_FAILED
	}
	res = &pluginv1.Result{Status: st, Changed: r.Changed, Outputs: r.Outputs, ExitCode: int32(r.ExitCode), Message: r.Message}
	if err != nil {
		res.Status = pluginv1.Status_STATUS_FAILED
		res.Error = err.Error()
	}
	return res
}

// streamOutput sends what the step writes as Output messages. Send blocks
// while the agent's receive window is full, which is the back-pressure the
// Output contract promises: a step that prints faster than the agent can
// forward waits in Write.
type streamOutput struct {
	stream pluginv1.Step_RunServer

	mu     sync.Mutex // Send is not safe for concurrent use
	closed bool
}

func (o *streamOutput) Stdout() io.Writer { return streamWriter{o, pluginv1.Stream_STREAM_STDOUT} }
func (o *streamOutput) Stderr() io.Writer { return streamWriter{o, pluginv1.Stream_STREAM_STDERR} }

func (o *streamOutput) close() {
	o.mu.Lock()
	o.closed = true
	o.mu.Unlock()
}

type streamWriter struct {
	o      *streamOutput
	stream pluginv1.Stream
}

func (w streamWriter) Write(p []byte) (int, error) {
	w.o.mu.Lock()
	defer w.o.mu.Unlock()
	if w.o.closed {
		return 0, errors.New("sdk: write after Run returned")
	}
	n := 0
	for len(p) > 0 {
		c := p[:min(len(p), wire.MaxChunk)]
		// Send marshals before it returns, so c is not kept.
		if err := w.o.stream.Send(&pluginv1.RunEvent{Event: &pluginv1.RunEvent_Output{
			Output: &pluginv1.Output{Stream: w.stream, Data: c}}}); err != nil {
			return n, fmt.Errorf("sdk: send output: %w", err)
		}
		n += len(c)
		p = p[len(c):]
	}
	return n, nil
}
