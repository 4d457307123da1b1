package builtin

import (
	"context"
	"fmt"
	"time"

	"github.com/opsconductor/opsconductor/plugins/sdk"
)

// Noop does nothing useful, cheaply: it prints N lines, sets the outputs it
// is given and sleeps, honouring cancel. Tests and benchmarks use it to
// measure the machinery around a step rather than the step.
type Noop struct{}

var noopDesc = sdk.Description{
	Name:    "noop",
	Version: Version,
	Summary: "Do nothing: optionally print lines, set outputs and sleep (for tests and benchmarks).",
	Params: mustSchema(`{
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "lines":   {"type": "integer", "minimum": 0, "maximum": 10000000, "description": "Print this many lines to stdout."},
    "outputs": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Outputs to set."},
    "sleep":   {"type": "string", "pattern": "` + durationPattern + `", "description": "Sleep this long (a Go duration), or until canceled."},
    "fail":    {"type": "boolean", "description": "Report failure instead of success."},
    "changed": {"type": "boolean", "description": "Report changed=true."}
  }
}`),
	Idempotent: true,
}

// Describe implements sdk.Step.
func (Noop) Describe() sdk.Description { return noopDesc }

type noopParams struct {
	Lines   int               `json:"lines"`
	Outputs map[string]string `json:"outputs"`
	Sleep   string            `json:"sleep"`
	Fail    bool              `json:"fail"`
	Changed bool              `json:"changed"`
}

// Run implements sdk.Step.
func (Noop) Run(ctx context.Context, req sdk.Request, out sdk.Output) (sdk.Result, error) {
	var p noopParams
	if err := decodeParams(noopDesc, req, &p); err != nil {
		return sdk.Result{}, err
	}
	sleep, err := duration("sleep", p.Sleep, 0)
	if err != nil {
		return sdk.Result{}, err
	}
	w := out.Stdout()
	for i := 1; i <= p.Lines; i++ {
		if _, err := fmt.Fprintf(w, "noop line %d\n", i); err != nil {
			return sdk.Result{}, fmt.Errorf("write line %d: %w", i, err)
		}
	}
	if sleep > 0 {
		t := time.NewTimer(sleep)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return sdk.Result{}, fmt.Errorf("noop sleep: %w", context.Cause(ctx))
		}
	}
	res := sdk.Result{Changed: p.Changed, Outputs: p.Outputs}
	if p.Fail {
		res.Status, res.Message = sdk.StatusFailed, "noop asked to fail"
	}
	return res, nil
}
