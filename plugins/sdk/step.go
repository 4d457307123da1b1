// Package sdk is the contract between OpsConductor and the authors of step
// plugins. It is the only package a plugin imports.
//
// A step is a Go value that implements Step. A plugin binary's main calls
// Serve with its step; built-in steps implement the same interface and run
// inside the agent. The agent validates parameters against the step's JSON
// Schema before Run is called, masks secrets in everything the step prints,
// and kills the plugin process when the attempt is canceled or times out.
//
// This package must stay small and stable: a change to an exported type is a
// change to every plugin ever built.
package sdk

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
)

// Step is one kind of step, such as "http" or "disk-usage".
type Step interface {
	// Describe is called once when the plugin starts; it must not block.
	Describe() Description
	// Run performs one attempt. ctx is canceled when the attempt is
	// canceled or its timeout passes; a step that ignores ctx is killed.
	// A non-nil error fails the attempt with that error's text; a step
	// that finished but wants to report failure returns Result{Status:
	// StatusFailed} and a nil error.
	Run(ctx context.Context, req Request, out Output) (Result, error)
}

// Description says what a step is and what it accepts.
type Description struct {
	// Name is lower case letters, digits and dashes: "disk-usage".
	Name string `json:"name"`
	// Version is semantic ("1.4.0"). Jobs pin name@major or an exact
	// version; two versions of one plugin can be installed side by side.
	Version string `json:"version"`
	Summary string `json:"summary"`
	// Params is a JSON Schema (draft 2020-12) for the step's parameters,
	// an object schema. The UI renders its forms from it and the agent
	// rejects parameters that do not validate, before Run.
	Params json.RawMessage `json:"params,omitempty"`
	// Outputs lists the outputs Run may set, for the catalog and for
	// checking `${{ steps.x.outputs.y }}` references.
	Outputs []OutputSpec `json:"outputs,omitempty"`
	// Idempotent steps may be retried automatically after an agent is lost.
	Idempotent bool `json:"idempotent"`
}

// OutputSpec documents one output.
type OutputSpec struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
}

// Request is one attempt's input.
type Request struct {
	AttemptID string `json:"attempt_id"`
	// Params is the JSON object the job gave, already validated against
	// Description.Params. Use Decode to read it.
	Params json.RawMessage `json:"params,omitempty"`
	// Secrets resolved for this attempt only (credential fields, tokens).
	// Anything printed that contains them is masked before it leaves the
	// agent.
	Secrets map[string]string `json:"-"`
	Target  Target            `json:"target"`
}

// Decode unmarshals the parameters into v, refusing unknown fields so that a
// misspelt parameter fails loudly rather than being ignored.
func (r Request) Decode(v any) error {
	if len(r.Params) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(r.Params))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("params: %w", err)
	}
	return nil
}

// Target is the host the step runs for. For most steps it is the agent's own
// host; for agentless steps (ssh) it is the remote host.
type Target struct {
	ID      string `json:"id,omitempty"`
	Name    string `json:"name,omitempty"`
	Address string `json:"address,omitempty"`
	// Facts as the agent reported them (hostname, os, arch, …) plus the
	// target's tags under "tag.<key>".
	Facts map[string]string `json:"facts,omitempty"`
}

// Output is where a step prints. Writes are split into lines; each line is
// streamed to the controller as it is written. A write blocks when the agent
// is applying back-pressure, so a step that prints fast slows down rather
// than losing lines.
type Output interface {
	Stdout() io.Writer
	Stderr() io.Writer
}

// Printf writes a formatted line to out's stdout.
func Printf(out Output, format string, args ...any) {
	fmt.Fprintf(out.Stdout(), format, args...)
	if n := len(format); n == 0 || format[n-1] != '\n' {
		io.WriteString(out.Stdout(), "\n")
	}
}

// Status is how an attempt ended, as the step sees it.
type Status int

const (
	// StatusSucceeded is the zero value: returning Result{} with a nil
	// error succeeds.
	StatusSucceeded Status = iota
	StatusFailed
)

// String returns the status as it appears in run records.
func (s Status) String() string {
	switch s {
	case StatusSucceeded:
		return "succeeded"
	case StatusFailed:
		return "failed"
	}
	return fmt.Sprintf("status(%d)", int(s))
}

// Result is what a finished attempt reports.
type Result struct {
	Status Status
	// Changed says whether the step changed anything, as Ansible reports
	// it; a step that found everything already in place reports false.
	Changed bool
	// Outputs are available to later steps as steps.<id>.outputs.<name>.
	Outputs map[string]string
	// ExitCode is reported for steps that run a process; 0 otherwise.
	ExitCode int
	// Message is a one-line summary shown with the result (why it failed).
	Message string
}
