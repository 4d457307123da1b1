package main

import (
	"context"
	"fmt"
	"strconv"

	"github.com/opsconductor/opsconductor/plugins/sdk"
)

// version is the plugin's version; jobs pin "disk-usage@1".
const version = "1.0.0"

// paramsSchema is what the agent validates params against before Run, and
// what the UI renders the step's form from.
const paramsSchema = `{
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "path":         {"type": "string", "minLength": 1, "default": "/", "description": "A path on the file system to check."},
    "warn_percent": {"type": "number", "minimum": 0, "maximum": 100, "description": "Print a warning at or above this usage."},
    "fail_percent": {"type": "number", "minimum": 0, "maximum": 100, "description": "Fail the step at or above this usage."}
  }
}`

type params struct {
	Path        string   `json:"path"`
	WarnPercent *float64 `json:"warn_percent"`
	FailPercent *float64 `json:"fail_percent"`
}

// usage is one file system's figures, in bytes.
type usage struct {
	Total, Used, Avail uint64
}

// step is the disk-usage step. statfs is a field so that tests can give
// it any figures; main passes the real one.
type step struct {
	statfs func(path string) (usage, error)
}

func (step) Describe() sdk.Description {
	return sdk.Description{
		Name:    "disk-usage",
		Version: version,
		Summary: "Report how full the file system holding a path is; fail above a threshold.",
		Params:  []byte(paramsSchema),
		Outputs: []sdk.OutputSpec{
			{Name: "used_percent", Description: "Used space as a percentage of the space available to users, as df reports it."},
			{Name: "used_bytes"}, {Name: "avail_bytes"}, {Name: "total_bytes"},
		},
		// Only reads: safe to retry after a lost agent.
		Idempotent: true,
	}
}

func (s step) Run(_ context.Context, req sdk.Request, out sdk.Output) (sdk.Result, error) {
	p := params{Path: "/"}
	if err := req.Decode(&p); err != nil {
		return sdk.Result{}, err
	}
	u, err := s.statfs(p.Path)
	if err != nil {
		return sdk.Result{}, fmt.Errorf("statfs %s: %w", p.Path, err)
	}
	// df's "Use%": used over what users can have (used + available),
	// which leaves out the blocks reserved for root.
	pct := 0.0
	if u.Used+u.Avail > 0 {
		pct = float64(u.Used) * 100 / float64(u.Used+u.Avail)
	}
	sdk.Printf(out, "%s: %s used of %s, %s available (%.1f%%)", p.Path, human(u.Used), human(u.Total), human(u.Avail), pct)
	res := sdk.Result{Outputs: map[string]string{
		"used_percent": strconv.FormatFloat(pct, 'f', 1, 64),
		"used_bytes":   strconv.FormatUint(u.Used, 10),
		"avail_bytes":  strconv.FormatUint(u.Avail, 10),
		"total_bytes":  strconv.FormatUint(u.Total, 10),
	}}
	switch {
	case p.FailPercent != nil && pct >= *p.FailPercent:
		res.Status = sdk.StatusFailed
		res.Message = fmt.Sprintf("%s is %.1f%% full (fail at %g%%)", p.Path, pct, *p.FailPercent)
	case p.WarnPercent != nil && pct >= *p.WarnPercent:
		fmt.Fprintf(out.Stderr(), "warning: %s is %.1f%% full (warn at %g%%)\n", p.Path, pct, *p.WarnPercent)
	}
	return res, nil
}

// human formats bytes with binary units, as df -h does.
func human(b uint64) string {
	const unit = 1024
	if b < unit {
		return fmt.Sprintf("%d B", b)
	}
	div, exp := uint64(unit), 0
	for n := b / unit; n >= unit && exp < 5; n /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(b)/float64(div), "KMGTPE"[exp])
}
