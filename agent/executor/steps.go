package executor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/opsconductor/opsconductor/agent/mask"
	"github.com/opsconductor/opsconductor/agent/runner"
	"github.com/opsconductor/opsconductor/plugins/builtin"
	"github.com/opsconductor/opsconductor/plugins/schema"
	"github.com/opsconductor/opsconductor/plugins/sdk"
	agentv1 "github.com/opsconductor/opsconductor/proto/agent/v1"
)

// Plugins runs external step plugins (agent/pluginhost.Host).
type Plugins interface {
	Run(ctx context.Context, ref string, req sdk.Request, out sdk.Output) (sdk.Result, error)
}

// FetchFunc fetches the plugin a reference names from the controller and
// installs it, so that a retried Run finds it.
type FetchFunc func(ctx context.Context, name, version string) error

// stepKind is a parsed assignment kind other than "command".
type stepKind struct {
	builtin sdk.Step // nil for a plugin
	ref     string   // name@version as assigned
	name    string
	version string
}

// parseKind splits an assignment's kind: "command", a built-in step's
// name (optionally pinned: "http@1"), or a plugin "name@version".
func parseKind(kind string) (stepKind, error) {
	name, version, pinned := strings.Cut(kind, "@")
	if name == "" || (pinned && version == "") {
		return stepKind{}, fmt.Errorf("kind: %q is not a step reference (name or name@version)", kind)
	}
	if s, ok := builtin.Lookup(name); ok {
		if pinned && !versionMatches(version, s.Describe().Version) {
			return stepKind{}, fmt.Errorf("kind: the built-in step %s is version %s, which does not satisfy %q", name, s.Describe().Version, version)
		}
		return stepKind{builtin: s, ref: kind, name: name, version: version}, nil
	}
	if !pinned {
		return stepKind{}, fmt.Errorf("kind: %q is neither a built-in step nor a plugin reference (name@version)", kind)
	}
	return stepKind{ref: kind, name: name, version: version}, nil
}

// versionMatches reports whether have satisfies want: equal, or want is a
// prefix of whole dot-separated parts ("1" and "1.2" match "1.2.3").
func versionMatches(want, have string) bool {
	return have == want || strings.HasPrefix(have, want+".")
}

// stepRequest is one step attempt's input.
type stepRequest struct {
	req     sdk.Request
	timeout time.Duration
}

// runStep runs a built-in step or a plugin and turns its outcome into
// the attempt's result, streaming its output through emit.
func (e *Executor) runStep(ctx context.Context, k stepKind, sr stepRequest, emit func(runner.Line) error) (runner.Result, *sdk.Result) {
	res := runner.Result{ExitCode: -1, StartedAt: time.Now()}
	if sr.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, sr.timeout)
		defer cancel()
	}
	lines := &lineSink{emit: emit}
	m := mask.New(sr.req.Secrets)
	stdout := mask.NewWriter(lines.stream(agentv1.OutputStream_OUTPUT_STREAM_STDOUT), m)
	stderr := mask.NewWriter(lines.stream(agentv1.OutputStream_OUTPUT_STREAM_STDERR), m)
	out := stepOutput{stdout, stderr}

	var (
		sres sdk.Result
		err  error
	)
	if k.builtin != nil {
		if err = schema.Validate(k.builtin.Describe().Params, sr.req.Params); err == nil {
			sres, err = runBuiltin(ctx, k.builtin, sr.req, out)
		}
	} else {
		sres, err = e.runPlugin(ctx, k, sr.req, out)
	}
	if ferr := errors.Join(stdout.Flush(), stderr.Flush()); ferr != nil && err == nil {
		err = fmt.Errorf("write step output: %w", ferr)
	}
	res.FinishedAt = time.Now()
	res.LastSeq = lines.last()
	var verr *schema.ValidationError
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		res.Status, res.Error = agentv1.AttemptStatus_ATTEMPT_STATUS_TIMED_OUT, fmt.Sprintf("timed out after %s", sr.timeout)
	case ctx.Err() != nil:
		res.Status, res.Error = agentv1.AttemptStatus_ATTEMPT_STATUS_CANCELED, "canceled"
	case errors.As(err, &verr):
		res.Status, res.Error = agentv1.AttemptStatus_ATTEMPT_STATUS_ERROR, err.Error()
	case err != nil:
		res.Status, res.Error = agentv1.AttemptStatus_ATTEMPT_STATUS_FAILED, string(m.Mask([]byte(err.Error())))
		res.ExitCode = sres.ExitCode
	case sres.Status == sdk.StatusFailed:
		res.Status, res.Error, res.ExitCode = agentv1.AttemptStatus_ATTEMPT_STATUS_FAILED, sres.Message, sres.ExitCode
	default:
		res.Status, res.ExitCode = agentv1.AttemptStatus_ATTEMPT_STATUS_SUCCEEDED, sres.ExitCode
	}
	if res.Status == agentv1.AttemptStatus_ATTEMPT_STATUS_FAILED && res.ExitCode == 0 {
		res.ExitCode = 1
	}
	return res, &sres
}

// runBuiltin runs a built-in step in this process, turning a panic into
// the attempt's error rather than the agent's end.
func runBuiltin(ctx context.Context, s sdk.Step, req sdk.Request, out sdk.Output) (res sdk.Result, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("step %s panicked: %v", s.Describe().Name, p)
		}
	}()
	return s.Run(ctx, req, out)
}

// runPlugin runs a plugin, fetching it from the controller first when it
// is not installed.
func (e *Executor) runPlugin(ctx context.Context, k stepKind, req sdk.Request, out sdk.Output) (sdk.Result, error) {
	if e.cfg.Plugins == nil {
		return sdk.Result{}, fmt.Errorf("plugin %s: this agent runs no external plugins", k.ref)
	}
	res, err := e.cfg.Plugins.Run(ctx, k.ref, req, out)
	if err == nil || e.cfg.NotInstalled == nil || !errors.Is(err, e.cfg.NotInstalled) || e.cfg.Fetch == nil {
		return res, err
	}
	fmt.Fprintf(out.Stderr(), "opsconductor: fetching plugin %s from the controller\n", k.ref)
	if ferr := e.cfg.Fetch(ctx, k.name, k.version); ferr != nil {
		return sdk.Result{}, fmt.Errorf("plugin %s is not installed and could not be fetched: %w", k.ref, ferr)
	}
	return e.cfg.Plugins.Run(ctx, k.ref, req, out)
}

type stepOutput struct{ stdout, stderr io.Writer }

func (o stepOutput) Stdout() io.Writer { return o.stdout }
func (o stepOutput) Stderr() io.Writer { return o.stderr }

// lineSink numbers the lines of both streams of one attempt, as the
// command runner does, and hands them to emit in order. mask.Writer
// writes it one line (or one MaxLine piece) per call.
type lineSink struct {
	mu   sync.Mutex
	seq  uint64
	emit func(runner.Line) error
}

func (l *lineSink) stream(s agentv1.OutputStream) io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		l.mu.Lock()
		defer l.mu.Unlock()
		total := len(p)
		for len(p) > 0 {
			n := min(len(p), runner.MaxLine)
			l.seq++
			if err := l.emit(runner.Line{Seq: l.seq, Stream: s, Data: append([]byte(nil), p[:n]...), Time: time.Now()}); err != nil {
				l.seq--
				return 0, err
			}
			p = p[n:]
		}
		return total, nil
	})
}

func (l *lineSink) last() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seq
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
