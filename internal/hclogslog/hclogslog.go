// Package hclogslog adapts hashicorp/go-hclog, the logger HashiCorp's
// libraries take (raft, go-plugin), to log/slog, so their lines share the
// process's one JSON stream and carry its attributes.
package hclogslog

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"

	"github.com/hashicorp/go-hclog"
)

// Options configures New.
type Options struct {
	// Level is the lowest level passed on.
	Level hclog.Level
	// Component, when set, is added to every line as "component" (a
	// named logger's name is appended to it).
	Component string
	// SilenceNamed turns off every logger made with Named or ResetNamed.
	// go-plugin logs each line of a plugin's stderr through a named
	// logger; a caller that handles that stream itself (it may carry
	// secrets) silences them.
	SilenceNamed bool
}

type adapter struct {
	log  *slog.Logger
	opts Options
	name string
	args []any
}

// New returns an hclog.Logger writing to l.
func New(l *slog.Logger, opts Options) hclog.Logger {
	return &adapter{log: l, opts: opts, name: opts.Component}
}

func (h *adapter) Log(level hclog.Level, msg string, args ...any) {
	if level < h.opts.Level || h.opts.Level == hclog.Off || level == hclog.Off {
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
		// Raft passes hclog.Fmt values for lazily formatted arguments.
		if f, ok := a.(hclog.Format); ok && len(f) > 0 {
			if format, ok := f[0].(string); ok {
				all[i] = fmt.Sprintf(format, f[1:]...)
			}
		}
	}
	if h.name != "" {
		all = append(all, "component", h.name)
	}
	h.log.Log(context.Background(), sl, msg, all...)
}

func (h *adapter) Trace(msg string, args ...any) { h.Log(hclog.Trace, msg, args...) }
func (h *adapter) Debug(msg string, args ...any) { h.Log(hclog.Debug, msg, args...) }
func (h *adapter) Info(msg string, args ...any)  { h.Log(hclog.Info, msg, args...) }
func (h *adapter) Warn(msg string, args ...any)  { h.Log(hclog.Warn, msg, args...) }
func (h *adapter) Error(msg string, args ...any) { h.Log(hclog.Error, msg, args...) }

func (h *adapter) enabled(l hclog.Level) bool { return h.opts.Level != hclog.Off && h.opts.Level <= l }
func (h *adapter) IsTrace() bool              { return h.enabled(hclog.Trace) }
func (h *adapter) IsDebug() bool              { return h.enabled(hclog.Debug) }
func (h *adapter) IsInfo() bool               { return h.enabled(hclog.Info) }
func (h *adapter) IsWarn() bool               { return h.enabled(hclog.Warn) }
func (h *adapter) IsError() bool              { return h.enabled(hclog.Error) }

func (h *adapter) ImpliedArgs() []any { return h.args }

func (h *adapter) With(args ...any) hclog.Logger {
	c := *h
	c.args = append(append([]any{}, h.args...), args...)
	return &c
}

func (h *adapter) Name() string { return h.name }

func (h *adapter) Named(name string) hclog.Logger {
	c := *h
	if h.opts.SilenceNamed {
		c.opts.Level = hclog.Off
		return &c
	}
	if c.name != "" {
		c.name += "." + name
	} else {
		c.name = name
	}
	return &c
}

func (h *adapter) ResetNamed(name string) hclog.Logger {
	if h.opts.SilenceNamed {
		return h.Named(name)
	}
	c := *h
	c.name = name
	return &c
}

func (h *adapter) SetLevel(level hclog.Level) { h.opts.Level = level }
func (h *adapter) GetLevel() hclog.Level      { return h.opts.Level }

func (h *adapter) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(h.StandardWriter(opts), "", 0)
}

func (h *adapter) StandardWriter(*hclog.StandardLoggerOptions) io.Writer { return writer{h} }

type writer struct{ h *adapter }

func (w writer) Write(p []byte) (int, error) {
	w.h.Info(string(p))
	return len(p), nil
}
