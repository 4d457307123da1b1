// Package host is the agent's half of the plugin wire: it starts one plugin
// binary as a go-plugin process (gRPC only, AutoMTLS, our handshake, the
// binary's sha256 checked before exec) and runs attempts on it.
//
// It sits beside plugins/sdk rather than in it so that a plugin author's
// binary never links the client, and under plugins/sdk so that it shares
// the handshake (plugins/sdk/internal/wire) with sdk.Serve and cannot
// drift from it. It owns one process per Plugin and nothing else: where
// binaries live, which version a job gets, warm pools and masking are the
// agent's (agent/pluginhost).
package host

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/opsconductor/opsconductor/internal/hclogslog"
	"github.com/opsconductor/opsconductor/plugins/sdk"
	"github.com/opsconductor/opsconductor/plugins/sdk/internal/wire"
	pluginv1 "github.com/opsconductor/opsconductor/proto/plugin/v1"
)

// ErrChecksum is returned by Start when the binary's sha256 is not the one
// expected; the binary was not executed.
var ErrChecksum = errors.New("plugin binary checksum mismatch")

// ErrExited is wrapped by Run when the plugin process died during the
// attempt (a crash, a kill, os.Exit).
var ErrExited = errors.New("plugin process exited")

// StepError is a failure the step itself reported: Run returned an error
// or panicked. The process is healthy unless Panicked.
type StepError struct {
	Message  string
	Panicked bool
}

func (e *StepError) Error() string { return e.Message }

// receiveWindow is the flow-control window the agent grants each plugin's
// Run stream and connection. Setting it fixes the window (gRPC's dynamic
// BDP window would grow to 16 MB per connection), so a plugin that floods
// output has at most this much in flight and then blocks in Write.
const receiveWindow = 256 * 1024

// Config says which binary to start.
type Config struct {
	Path string
	// SHA256 is the binary's expected digest; it is required, and checked
	// by go-plugin's SecureConfig immediately before exec.
	SHA256 []byte
	// Env is the plugin's whole environment: the agent's own environment
	// (which may hold credentials) is not passed on.
	Env          []string
	StartTimeout time.Duration // default 10s
	Logger       *slog.Logger
	// Stderr receives the process's stderr (panic traces, go-plugin's
	// JSON log lines). It is never logged by this package.
	Stderr io.Writer
}

// Plugin is one running plugin process.
type Plugin struct {
	client *plugin.Client
	cmd    *exec.Cmd
	rpc    pluginv1.StepClient
}

// Start verifies and launches the binary and connects to it.
func Start(cfg Config) (*Plugin, error) {
	if len(cfg.SHA256) != sha256.Size {
		return nil, fmt.Errorf("start %s: a sha256 checksum is required", cfg.Path)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 10 * time.Second
	}
	if cfg.Stderr == nil {
		cfg.Stderr = io.Discard
	}
	cmd := exec.Command(cfg.Path)
	cmd.Env = append([]string{}, cfg.Env...)
	setProcessGroup(cmd)
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  wire.Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{wire.ProtocolVersion: {wire.PluginName: hostPlugin{}}},
		Cmd:              cmd,
		SkipHostEnv:      true,
		// A fresh hash each time: SecureConfig's Hash accumulates.
		SecureConfig:     &plugin.SecureConfig{Checksum: cfg.SHA256, Hash: sha256.New()},
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		StartTimeout:     cfg.StartTimeout,
		Logger:           hclogslog.New(cfg.Logger, hclogslog.Options{Level: hclog.Info, Component: "go-plugin", SilenceNamed: true}),
		Stderr:           cfg.Stderr,
		GRPCDialOptions: []grpc.DialOption{
			grpc.WithInitialWindowSize(receiveWindow),
			grpc.WithInitialConnWindowSize(receiveWindow),
		},
	})
	rpcClient, err := client.Client()
	if err != nil {
		client.Kill()
		if errors.Is(err, plugin.ErrChecksumsDoNotMatch) {
			return nil, fmt.Errorf("start %s: %w (refused before exec)", cfg.Path, ErrChecksum)
		}
		return nil, fmt.Errorf("start %s: %w", cfg.Path, err)
	}
	raw, err := rpcClient.Dispense(wire.PluginName)
	if err != nil {
		client.Kill()
		return nil, fmt.Errorf("start %s: dispense: %w", cfg.Path, err)
	}
	return &Plugin{client: client, cmd: cmd, rpc: raw.(pluginv1.StepClient)}, nil
}

// Describe asks the plugin what it is.
func (p *Plugin) Describe(ctx context.Context) (sdk.Description, error) {
	d, err := p.rpc.Describe(ctx, &pluginv1.DescribeRequest{})
	if err != nil {
		return sdk.Description{}, p.transportError("describe", err)
	}
	desc := sdk.Description{Name: d.GetName(), Version: d.GetVersion(), Summary: d.GetSummary(),
		Params: d.GetParamsSchema(), Idempotent: d.GetIdempotent()}
	for _, o := range d.GetOutputs() {
		desc.Outputs = append(desc.Outputs, sdk.OutputSpec{Name: o.GetName(), Description: o.GetDescription()})
	}
	return desc, nil
}

// Run runs one attempt, writing the step's output to out as it arrives,
// unchanged and in chunks (not lines). Output is read only as fast as out
// accepts it, which holds the plugin back through gRPC flow control.
//
// When ctx ends, Run asks the step to stop (its context is canceled) and
// keeps reading until the step reports or grace passes; then it kills the
// process. It returns the step's Result when the step reported one; the
// error is a *StepError for a failure the step reported, wraps ErrExited
// when the process died, and wraps ctx.Err() when ctx ended first.
func (p *Plugin) Run(ctx context.Context, req sdk.Request, out sdk.Output, grace time.Duration) (sdk.Result, error) {
	// The stream has its own context so that canceling the attempt does
	// not tear the stream down before the step can say how it stopped.
	streamCtx, cancelStream := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelStream()
	stream, err := p.rpc.Run(streamCtx, &pluginv1.RunRequest{AttemptId: req.AttemptID, ParamsJson: req.Params,
		Secrets: req.Secrets, Target: &pluginv1.Target{Id: req.Target.ID, Name: req.Target.Name,
			Address: req.Target.Address, Facts: req.Target.Facts}})
	if err != nil {
		return sdk.Result{}, p.transportError("run", err)
	}
	// When ctx ends: ask the step to stop, and kill the process if it has
	// not reported by the deadline. The watcher is joined before Run
	// returns, so it never kills a process that has gone back to a pool.
	watchDone := make(chan struct{})
	stopWatch := context.AfterFunc(ctx, func() {
		defer close(watchDone)
		deadline := time.Now().Add(grace)
		cctx, cancel := context.WithDeadline(streamCtx, deadline)
		defer cancel()
		// Best effort: a wedged plugin is killed below all the same.
		_, _ = p.rpc.Cancel(cctx, &pluginv1.CancelRequest{AttemptId: req.AttemptID})
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		select {
		case <-t.C:
			p.Kill()
		case <-streamCtx.Done():
		}
	})
	defer func() {
		cancelStream()
		if !stopWatch() {
			<-watchDone
		}
	}()
	for {
		ev, err := stream.Recv()
		if err != nil {
			if ctx.Err() != nil {
				return sdk.Result{}, fmt.Errorf("step did not stop within %s of the attempt ending, process killed: %w", grace, context.Cause(ctx))
			}
			return sdk.Result{}, p.transportError("run", err)
		}
		switch e := ev.GetEvent().(type) {
		case *pluginv1.RunEvent_Output:
			w := out.Stdout()
			if e.Output.GetStream() == pluginv1.Stream_STREAM_STDERR {
				w = out.Stderr()
			}
			if _, err := w.Write(e.Output.GetData()); err != nil {
				return sdk.Result{}, fmt.Errorf("write step output: %w", err)
			}
		case *pluginv1.RunEvent_Result:
			r := e.Result
			st := sdk.StatusSucceeded
			if r.GetStatus() != pluginv1.Status_STATUS_SUCCEEDED {
				st = sdk.StatusFailed
			}
			res := sdk.Result{Status: st, Changed: r.GetChanged(), Outputs: r.GetOutputs(),
				ExitCode: int(r.GetExitCode()), Message: r.GetMessage()}
			if err := ctx.Err(); err != nil {
				return res, fmt.Errorf("attempt ended: %w", context.Cause(ctx))
			}
			if r.GetError() != "" || r.GetPanicked() {
				return res, &StepError{Message: r.GetError(), Panicked: r.GetPanicked()}
			}
			return res, nil
		}
	}
}

// transportError explains a failed call: if the process is gone, that is
// the news, not the gRPC status.
func (p *Plugin) transportError(what string, err error) error {
	if p.waitExited(time.Second) {
		return fmt.Errorf("%s: %w (%s)", what, ErrExited, p.exitStatus())
	}
	return fmt.Errorf("%s: %w", what, err)
}

// waitExited polls for go-plugin to notice the process's exit: a broken
// stream usually arrives a moment before Wait returns.
func (p *Plugin) waitExited(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		if p.client.Exited() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (p *Plugin) exitStatus() string {
	// Exited() took go-plugin's lock after Wait set ProcessState.
	if p.client.Exited() && p.cmd.ProcessState != nil {
		return p.cmd.ProcessState.String()
	}
	return "exit status unknown"
}

// Exited reports whether the process has ended.
func (p *Plugin) Exited() bool { return p.client.Exited() }

// Pid is the process's ID.
func (p *Plugin) Pid() int {
	if p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Kill ends the process and everything it started at once, and releases
// the client's goroutines. Safe to call more than once.
func (p *Plugin) Kill() {
	killProcessGroup(p.cmd)
	p.client.Kill()
}

// Stop asks the process to exit cleanly (go-plugin's graceful shutdown,
// killed after 2s) and releases the client's goroutines.
func (p *Plugin) Stop() { p.client.Kill() }

// hostPlugin is the agent half of the go-plugin registration.
type hostPlugin struct{ plugin.NetRPCUnsupportedPlugin }

func (hostPlugin) GRPCServer(*plugin.GRPCBroker, *grpc.Server) error {
	return errors.New("host: the agent side serves nothing")
}

func (hostPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, cc *grpc.ClientConn) (any, error) {
	return pluginv1.NewStepClient(cc), nil
}
