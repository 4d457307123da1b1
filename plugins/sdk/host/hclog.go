package host

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"

	"github.com/hashicorp/go-hclog"
)

// hclogAdapter sends go-plugin's own messages (process started, exited) to
// slog. Named loggers are off: go-plugin uses a named logger only to echo
// each line of the plugin's stderr, which may carry step data and secrets;
// the host receives that stream through Config.Stderr instead and decides
// what, masked, to report.
type hclogAdapter struct {
	log   *slog.Logger
	args  []any
	level hclog.Level
}

func newHCLog(l *slog.Logger) hclog.Logger { return &hclogAdapter{log: l, level: hclog.Info} }

func (h *hclogAdapter) Log(level hclog.Level, msg string, args ...any) {
	if level < h.level || h.level == hclog.Off || level == hclog.Off {
		return
	}
	var sl slog.Level
	switch level {
	case hclog.Trace, hclog.Debug:
		sl = slog.LevelDebug
	case hclog.Info, hclog.NoLevel, hclog.DefaultLevel:
		sl = slog.LevelInfo
	case hclog.Warn:
		sl = slog.LevelWarn
	default:
		sl = slog.LevelError
	}
	all := append(append([]any{}, h.args...), args...)
	for i, a := range all {
		if f, ok := a.(hclog.Format); ok && len(f) > 0 {
			if format, ok := f[0].(string); ok {
				all[i] = fmt.Sprintf(format, f[1:]...)
			}
		}
	}
	h.log.Log(context.Background(), sl, msg, append(all, "component", "go-plugin")...)
}

func (h *hclogAdapter) Trace(msg string, args ...any) { h.Log(hclog.Trace, msg, args...) }
func (h *hclogAdapter) Debug(msg string, args ...any) { h.Log(hclog.Debug, msg, args...) }
func (h *hclogAdapter) Info(msg string, args ...any)  { h.Log(hclog.Info, msg, args...) }
func (h *hclogAdapter) Warn(msg string, args ...any)  { h.Log(hclog.Warn, msg, args...) }
func (h *hclogAdapter) Error(msg string, args ...any) { h.Log(hclog.Error, msg, args...) }

func (h *hclogAdapter) IsTrace() bool { return h.level != hclog.Off && h.level <= hclog.Trace }
func (h *hclogAdapter) IsDebug() bool { return h.level != hclog.Off && h.level <= hclog.Debug }
func (h *hclogAdapter) IsInfo() bool  { return h.level != hclog.Off && h.level <= hclog.Info }
func (h *hclogAdapter) IsWarn() bool  { return h.level != hclog.Off && h.level <= hclog.Warn }
func (h *hclogAdapter) IsError() bool { return h.level != hclog.Off && h.level <= hclog.Error }

func (h *hclogAdapter) ImpliedArgs() []any { return h.args }

func (h *hclogAdapter) With(args ...any) hclog.Logger {
	c := *h
	c.args = append(append([]any{}, h.args...), args...)
	return &c
}

func (h *hclogAdapter) Name() string { return "" }

func (h *hclogAdapter) Named(string) hclog.Logger {
	c := *h
	c.level = hclog.Off
	return &c
}

func (h *hclogAdapter) ResetNamed(name string) hclog.Logger { return h.Named(name) }

func (h *hclogAdapter) SetLevel(level hclog.Level) { h.level = level }
func (h *hclogAdapter) GetLevel() hclog.Level      { return h.level }

func (h *hclogAdapter) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(h.StandardWriter(opts), "", 0)
}

func (h *hclogAdapter) StandardWriter(*hclog.StandardLoggerOptions) io.Writer { return slogWriter{h} }

type slogWriter struct{ h *hclogAdapter }

func (w slogWriter) Write(p []byte) (int, error) {
	w.h.Info(string(p))
	return len(p), nil
}
