// Package sdktest runs a step in-process, as the agent would, so that a
// plugin author can unit-test it with `go test`: it checks the step's
// Description, validates the parameters against the step's JSON Schema,
// calls Run, and captures what the step printed, line by line, with the
// secrets masked exactly as the agent masks them.
//
// It never starts a process or a gRPC server; what it checks beyond the
// agent (that every output the step sets is declared) is stricter, never
// looser.
package sdktest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"

	"github.com/opsconductor/opsconductor/agent/mask"
	"github.com/opsconductor/opsconductor/plugins/schema"
	"github.com/opsconductor/opsconductor/plugins/sdk"
)

// Input is one attempt's input.
type Input struct {
	// AttemptID defaults to "sdktest".
	AttemptID string
	// Params are the step's parameters: a json.RawMessage, []byte or
	// string holding a JSON object, or any value json.Marshal turns into
	// one (a map or a struct). Nil is the empty object.
	Params  any
	Secrets map[string]string
	Target  sdk.Target
}

// Outcome is what one Run produced.
type Outcome struct {
	Result sdk.Result
	// Stdout and Stderr are the lines the step printed, without their
	// newlines, with secrets replaced by mask.Replacement ("***").
	Stdout, Stderr []string
}

// Run runs step once. The error is the step's own error (as Run returned
// it), or says why Run was not called: the Description is not valid, or
// the params do not satisfy its schema (a *schema.ValidationError naming
// each parameter and the rule it broke). Output printed before a step
// error is in the Outcome all the same.
func Run(ctx context.Context, step sdk.Step, in Input) (Outcome, error) {
	d := step.Describe()
	if err := CheckDescription(d); err != nil {
		return Outcome{}, err
	}
	raw, err := encodeParams(in.Params)
	if err != nil {
		return Outcome{}, err
	}
	if err := schema.Validate(d.Params, raw); err != nil {
		return Outcome{}, err
	}
	for k, v := range in.Secrets {
		if len(v) < mask.MinLen {
			return Outcome{}, fmt.Errorf("secret %q: shorter than %d characters, which the agent refuses", k, mask.MinLen)
		}
	}
	id := in.AttemptID
	if id == "" {
		id = "sdktest"
	}
	m := mask.New(in.Secrets)
	var stdout, stderr lines
	out := output{mask.NewWriter(&stdout, m), mask.NewWriter(&stderr, m)}
	res, runErr := step.Run(ctx, sdk.Request{AttemptID: id, Params: raw, Secrets: in.Secrets, Target: in.Target}, out)
	if err := errors.Join(out.stdout.Flush(), out.stderr.Flush()); err != nil {
		return Outcome{}, err
	}
	o := Outcome{Result: res, Stdout: stdout.get(), Stderr: stderr.get()}
	if runErr != nil {
		return o, runErr
	}
	declared := map[string]bool{}
	for _, s := range d.Outputs {
		declared[s.Name] = true
	}
	for k := range res.Outputs {
		if !declared[k] {
			return o, fmt.Errorf("result: output %q is not declared in Description.Outputs", k)
		}
	}
	return o, nil
}

var (
	nameRE   = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)
	semverRE = regexp.MustCompile(`^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$`)
)

// CheckDescription reports every problem with d at once: the name, the
// version (semantic, without build metadata), the parameters schema (a
// draft 2020-12 object schema that refers to no other document) and the
// output names.
func CheckDescription(d sdk.Description) error {
	var errs []error
	if len(d.Name) > 64 || !nameRE.MatchString(d.Name) {
		errs = append(errs, fmt.Errorf("description.name: %q is not lower case letters, digits and single dashes", d.Name))
	}
	if !semverRE.MatchString(d.Version) {
		errs = append(errs, fmt.Errorf("description.version: %q is not a semantic version such as 1.4.0", d.Version))
	}
	if strings.TrimSpace(d.Summary) == "" {
		errs = append(errs, errors.New("description.summary: required"))
	}
	if len(d.Params) > 0 {
		if err := schema.Check(d.Params); err != nil {
			errs = append(errs, fmt.Errorf("description.params: %w", err))
		}
	}
	seen := map[string]bool{}
	for i, o := range d.Outputs {
		if o.Name == "" || seen[o.Name] {
			errs = append(errs, fmt.Errorf("description.outputs[%d]: name %q is empty or repeated", i, o.Name))
		}
		seen[o.Name] = true
	}
	return errors.Join(errs...)
}

func encodeParams(p any) (json.RawMessage, error) {
	var raw []byte
	switch v := p.(type) {
	case nil:
		return json.RawMessage(`{}`), nil
	case json.RawMessage:
		raw = v
	case []byte:
		raw = v
	case string:
		raw = []byte(v)
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("params: %w", err)
		}
		raw = b
	}
	if !json.Valid(raw) {
		return nil, fmt.Errorf("params: not valid JSON: %.80q", raw)
	}
	return raw, nil
}

type output struct{ stdout, stderr *mask.Writer }

func (o output) Stdout() io.Writer { return o.stdout }
func (o output) Stderr() io.Writer { return o.stderr }

// lines collects the masked lines mask.Writer passes on.
type lines struct {
	mu      sync.Mutex
	partial []byte
	done    []string
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			return len(p), nil
		}
		l.done = append(l.done, string(l.partial[:i]))
		l.partial = l.partial[i+1:]
	}
}

func (l *lines) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.partial) > 0 {
		l.done = append(l.done, string(l.partial))
		l.partial = nil
	}
	return l.done
}
