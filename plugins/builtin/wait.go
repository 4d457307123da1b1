package builtin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/opsconductor/opsconductor/plugins/sdk"
)

// Wait waits until something is ready: a TCP port accepts connections, an
// HTTP URL answers 2xx, or a file exists. It checks every interval until
// the timeout passes (the step then fails) or the attempt is canceled.
type Wait struct{}

var waitDesc = sdk.Description{
	Name:    "wait",
	Version: Version,
	Summary: "Wait until a TCP port accepts, an HTTP URL answers 2xx, or a file exists.",
	Params: mustSchema(`{
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "tcp":  {"type": "string", "minLength": 3, "description": "host:port that must accept a connection."},
    "http": {"type": "string", "format": "uri", "pattern": "^https?://", "description": "URL that must answer 2xx to GET."},
    "file": {"type": "string", "pattern": "^/", "description": "Absolute path that must exist."},
    "timeout":  {"type": "string", "pattern": "` + durationPattern + `", "description": "Give up after this long (default 60s)."},
    "interval": {"type": "string", "pattern": "` + durationPattern + `", "description": "Check this often (default 1s)."}
  }
}`),
	Outputs:    []sdk.OutputSpec{{Name: "waited", Description: "How long it took, as a Go duration."}},
	Idempotent: true,
}

// Describe implements sdk.Step.
func (Wait) Describe() sdk.Description { return waitDesc }

type waitParams struct {
	TCP      string `json:"tcp"`
	HTTP     string `json:"http"`
	File     string `json:"file"`
	Timeout  string `json:"timeout"`
	Interval string `json:"interval"`
}

// Run implements sdk.Step.
func (Wait) Run(ctx context.Context, req sdk.Request, out sdk.Output) (sdk.Result, error) {
	var p waitParams
	if err := decodeParams(waitDesc, req, &p); err != nil {
		return sdk.Result{}, err
	}
	n := 0
	for _, s := range []string{p.TCP, p.HTTP, p.File} {
		if s != "" {
			n++
		}
	}
	if n != 1 {
		return sdk.Result{}, paramError("tcp", "oneOf", "give exactly one of tcp, http or file")
	}
	if p.TCP != "" {
		if _, _, err := net.SplitHostPort(p.TCP); err != nil {
			return sdk.Result{}, paramError("tcp", "address", "%v", err)
		}
	}
	timeout, err := duration("timeout", p.Timeout, time.Minute)
	if err != nil {
		return sdk.Result{}, err
	}
	interval, err := duration("interval", p.Interval, time.Second)
	if err != nil {
		return sdk.Result{}, err
	}
	what, check := p.check()
	start := time.Now()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	sdk.Printf(out, "waiting up to %s for %s", timeout, what)
	var last error
	for {
		// Each check is bounded by the interval (and the overall
		// timeout), so a black-holed address cannot stall the loop.
		cctx, cancel := context.WithTimeout(ctx, max(interval, time.Second))
		last = check(cctx)
		cancel()
		if last == nil {
			waited := time.Since(start).Round(time.Millisecond)
			sdk.Printf(out, "%s is ready after %s", what, waited)
			return sdk.Result{Outputs: map[string]string{"waited": waited.String()}}, nil
		}
		select {
		case <-ctx.Done():
			return sdk.Result{}, fmt.Errorf("wait for %s: %w", what, context.Cause(ctx))
		case <-deadline.C:
			return sdk.Result{Status: sdk.StatusFailed,
				Message: fmt.Sprintf("%s not ready after %s: %v", what, timeout, last)}, nil
		case <-tick.C:
		}
	}
}

func (p waitParams) check() (string, func(context.Context) error) {
	switch {
	case p.TCP != "":
		return "tcp " + p.TCP, func(ctx context.Context) error {
			var d net.Dialer
			c, err := d.DialContext(ctx, "tcp", p.TCP)
			if err != nil {
				return err
			}
			return c.Close()
		}
	case p.HTTP != "":
		return "http " + p.HTTP, func(ctx context.Context) error {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.HTTP, nil)
			if err != nil {
				return err
			}
			resp, err := httpClient.Do(req)
			if err != nil {
				return err
			}
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxHTTPBody))
			resp.Body.Close()
			if resp.StatusCode < 200 || resp.StatusCode > 299 {
				return fmt.Errorf("status %d", resp.StatusCode)
			}
			return nil
		}
	}
	return "file " + p.File, func(context.Context) error {
		_, err := os.Stat(p.File)
		if errors.Is(err, fs.ErrNotExist) {
			return errors.New("does not exist")
		}
		return err
	}
}
