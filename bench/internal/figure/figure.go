// Package figure is the measured result a load driver under bench/ hands
// to bench/report: a named value with its unit and, where an issue sets
// one, the target it is held against. Drivers write their figures with
// -json FILE next to the markdown table they print, so the report reads
// structured values instead of scraping tables.
//
// It never measures anything itself.
package figure

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
)

// Verdict is how a figure stands against its target.
type Verdict string

const (
	Pass     Verdict = "pass"
	Fail     Verdict = "fail"
	NoTarget Verdict = "no-target"
	// Error marks a step that produced no figures because it failed.
	Error Verdict = "error"
)

// Target is a bound an issue sets on a figure.
type Target struct {
	Op    string  `json:"op"` // "<=" or ">="
	Limit float64 `json:"limit"`
}

// AtMost is a ceiling.
func AtMost(limit float64) *Target { return &Target{Op: "<=", Limit: limit} }

// AtLeast is a floor.
func AtLeast(limit float64) *Target { return &Target{Op: ">=", Limit: limit} }

func (t *Target) String() string {
	if t == nil {
		return ""
	}
	return t.Op + " " + strconv.FormatFloat(t.Limit, 'g', -1, 64)
}

// Met says whether v is within the target.
func (t *Target) Met(v float64) bool {
	if t.Op == "<=" {
		return v <= t.Limit
	}
	return v >= t.Limit
}

// Figure is one measured value.
type Figure struct {
	Name    string  `json:"name"`
	Value   float64 `json:"value"`
	Unit    string  `json:"unit"`
	Target  *Target `json:"target,omitempty"`
	Verdict Verdict `json:"verdict"`
	// Note qualifies the value (the load it was taken at, what it
	// includes); it is not a second figure.
	Note string `json:"note,omitempty"`
}

// New makes a figure and judges it against t (nil: no target).
func New(name string, value float64, unit string, t *Target) Figure {
	f := Figure{Name: name, Value: value, Unit: unit, Target: t, Verdict: NoTarget}
	if t != nil {
		f.Verdict = Fail
		if t.Met(value) {
			f.Verdict = Pass
		}
	}
	return f
}

// WithNote returns f with its note set.
func (f Figure) WithNote(format string, args ...any) Figure {
	f.Note = fmt.Sprintf(format, args...)
	return f
}

// Write stores figs as JSON at path; an empty path (no -json flag) writes
// nothing.
func Write(path string, figs []Figure) error {
	if path == "" {
		return nil
	}
	b, err := json.MarshalIndent(struct {
		Figures []Figure `json:"figures"`
	}{figs}, "", "  ")
	if err != nil {
		return fmt.Errorf("encode figures: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write figures: %w", err)
	}
	return nil
}

// Read loads the figures a driver wrote with Write.
func Read(path string) ([]Figure, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read figures: %w", err)
	}
	var doc struct {
		Figures []Figure `json:"figures"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("decode figures in %s: %w", path, err)
	}
	for i, f := range doc.Figures {
		if f.Name == "" {
			return nil, fmt.Errorf("%s: figures[%d].name is empty", path, i)
		}
		if f.Target != nil && f.Target.Op != "<=" && f.Target.Op != ">=" {
			return nil, fmt.Errorf("%s: figures[%d].target.op %q is neither <= nor >=", path, i, f.Target.Op)
		}
	}
	return doc.Figures, nil
}
