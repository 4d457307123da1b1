package jobspec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Limits on a job definition. They keep one job from costing the cluster
// much to store, validate or plan; real jobs are far below them.
const (
	MaxJobSize    = 1 << 20 // bytes of YAML or JSON
	MaxSteps      = 100
	MaxParams     = 100
	MaxRetries    = 10
	MaxNameLength = 63
)

// Concurrency policies: what happens when a run starts while another run of
// the same job is active.
const (
	ConcurrencyAllow  = "allow"  // runs overlap (the default)
	ConcurrencyQueue  = "queue"  // the new run waits for the active one
	ConcurrencyForbid = "forbid" // the new run is refused
)

// Parameter types.
const (
	TypeString  = "string"
	TypeInteger = "integer"
	TypeNumber  = "number"
	TypeBoolean = "boolean"
	TypeArray   = "array"
	TypeObject  = "object"
)

// ApprovalStep is the `uses` of the controller-side step that waits for a
// person to approve or reject; no agent is involved.
const ApprovalStep = "approval"

// DefaultApprovalTimeout applies when an approval step's with.timeout is
// absent.
const DefaultApprovalTimeout = 24 * time.Hour

// DefaultBackoff is the pause before a retry when retries.backoff is absent.
const DefaultBackoff = time.Second

// Job is one job definition as a user wrote it. Defaults are not filled in
// (a saved version reads back as it was written); the accessors
// (ConcurrencyPolicy, Step.Backoff, Step.ApprovalTimeout) apply them.
type Job struct {
	Name        string   `json:"name" yaml:"name"`
	Description string   `json:"description,omitempty" yaml:"description,omitempty"`
	Params      []Param  `json:"params,omitempty" yaml:"params,omitempty"`
	Targets     Targets  `json:"targets,omitzero" yaml:"targets,omitempty"`
	Rollout     Rollout  `json:"rollout,omitzero" yaml:"rollout,omitempty"`
	Concurrency string   `json:"concurrency,omitempty" yaml:"concurrency,omitempty"`
	Timeout     Duration `json:"timeout,omitempty" yaml:"timeout,omitempty"`
	Credentials []string `json:"credentials,omitempty" yaml:"credentials,omitempty"`
	Steps       []Step   `json:"steps" yaml:"steps"`

	// progs holds the compiled expressions. It is set once by Parse (or
	// UnmarshalJSON, or Compile) and only read afterwards, which is what
	// makes a Job safe for concurrent use.
	progs *programs
}

// Param declares one run parameter.
type Param struct {
	Name        string   `json:"name" yaml:"name"`
	Type        string   `json:"type,omitempty" yaml:"type,omitempty"`
	Description string   `json:"description,omitempty" yaml:"description,omitempty"`
	Default     any      `json:"default,omitempty" yaml:"default,omitempty"`
	Required    bool     `json:"required,omitempty" yaml:"required,omitempty"`
	Pattern     string   `json:"pattern,omitempty" yaml:"pattern,omitempty"`
	Min         *float64 `json:"min,omitempty" yaml:"min,omitempty"`
	Max         *float64 `json:"max,omitempty" yaml:"max,omitempty"`
	Enum        []any    `json:"enum,omitempty" yaml:"enum,omitempty"`
	Secret      bool     `json:"secret,omitempty" yaml:"secret,omitempty"`
}

// TypeName is the parameter's type with the default applied.
func (p *Param) TypeName() string {
	if p.Type == "" {
		return TypeString
	}
	return p.Type
}

// Targets chooses the targets of a run; a target matching any of the forms
// is included (the engine resolves them against the inventory).
type Targets struct {
	Names    []string          `json:"names,omitempty" yaml:"names,omitempty"`
	Tags     map[string]string `json:"tags,omitempty" yaml:"tags,omitempty"`
	Groups   []string          `json:"groups,omitempty" yaml:"groups,omitempty"`
	Selector string            `json:"selector,omitempty" yaml:"selector,omitempty"`
	All      bool              `json:"all,omitempty" yaml:"all,omitempty"`
}

// IsZero reports whether no target form is given.
func (t Targets) IsZero() bool {
	return len(t.Names) == 0 && len(t.Tags) == 0 && len(t.Groups) == 0 && t.Selector == "" && !t.All
}

// Rollout limits how a run spreads over its targets.
type Rollout struct {
	// BatchSize is "" (all targets at once), a count ("5"), a percentage
	// of the targets ("25%"), or one expression ("${{ params.batch }}")
	// evaluating to either. A document may give a count as a number.
	BatchSize string `json:"batch_size,omitempty" yaml:"batch_size,omitempty" jobspec:"numstr"`
	// MaxFailPercent stops the run (no new batches) once more than this
	// percentage of the targets failed; nil means never stop.
	MaxFailPercent *float64 `json:"max_fail_percent,omitempty" yaml:"max_fail_percent,omitempty"`
}

// IsZero reports whether the rollout is unrestricted.
func (r Rollout) IsZero() bool { return r.BatchSize == "" && r.MaxFailPercent == nil }

type rolloutWire struct {
	BatchSize      json.RawMessage `json:"batch_size"`
	MaxFailPercent *float64        `json:"max_fail_percent"`
}

// UnmarshalJSON accepts batch_size as a string or a number.
func (r *Rollout) UnmarshalJSON(data []byte) error {
	var w rolloutWire
	if err := json.Unmarshal(data, &w); err != nil {
		return fmt.Errorf("rollout: %w", err)
	}
	bs, err := batchSizeFromJSON(w.BatchSize)
	if err != nil {
		return err
	}
	*r = Rollout{BatchSize: bs, MaxFailPercent: w.MaxFailPercent}
	return nil
}

func batchSizeFromJSON(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", fmt.Errorf("rollout.batch_size: %w", err)
		}
		return s, nil
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		return "", fmt.Errorf("rollout.batch_size: must be a number or a string")
	}
	return n.String(), nil
}

// UnmarshalYAML accepts batch_size as a string or a number.
func (r *Rollout) UnmarshalYAML(node *yaml.Node) error {
	var w struct {
		BatchSize      yaml.Node `yaml:"batch_size"`
		MaxFailPercent *float64  `yaml:"max_fail_percent"`
	}
	if err := node.Decode(&w); err != nil {
		return fmt.Errorf("rollout: %w", err)
	}
	*r = Rollout{MaxFailPercent: w.MaxFailPercent}
	if w.BatchSize.Kind != 0 && w.BatchSize.ShortTag() != "!!null" {
		if w.BatchSize.Kind != yaml.ScalarNode {
			return fmt.Errorf("rollout.batch_size: must be a number or a string")
		}
		r.BatchSize = w.BatchSize.Value
	}
	return nil
}

// Step is one node of the job's DAG, run on every target.
type Step struct {
	ID   string `json:"id" yaml:"id"`
	Name string `json:"name,omitempty" yaml:"name,omitempty"`
	// Uses is "name" or "name@version" (a built-in or a plugin), or
	// "approval".
	Uses string `json:"uses" yaml:"uses"`
	// With holds the step's parameters; string values may contain
	// ${{ expr }}.
	With  map[string]any `json:"with,omitempty" yaml:"with,omitempty"`
	Needs []string       `json:"needs,omitempty" yaml:"needs,omitempty"`
	// When is an expression, with or without ${{ }}, that must be true
	// for the step to run.
	When            string   `json:"when,omitempty" yaml:"when,omitempty"`
	OnFailure       bool     `json:"on_failure,omitempty" yaml:"on_failure,omitempty"`
	ContinueOnError bool     `json:"continue_on_error,omitempty" yaml:"continue_on_error,omitempty"`
	Idempotent      bool     `json:"idempotent,omitempty" yaml:"idempotent,omitempty"`
	Retries         Retries  `json:"retries,omitzero" yaml:"retries,omitempty"`
	Timeout         Duration `json:"timeout,omitempty" yaml:"timeout,omitempty"`
	// Credentials names the job credentials this step receives, each
	// under CredentialAlias(name).
	Credentials []string `json:"credentials,omitempty" yaml:"credentials,omitempty"`

	// path is "steps[i]", for error messages from Render and ShouldRun.
	path  string
	progs *programs
}

// Retries says how often a failed attempt is retried.
type Retries struct {
	Count   int      `json:"count,omitempty" yaml:"count,omitempty"`
	Backoff Duration `json:"backoff,omitempty" yaml:"backoff,omitempty"`
}

// IsApproval reports whether the step is the controller-side approval step.
func (s *Step) IsApproval() bool {
	name, _, _ := strings.Cut(s.Uses, "@")
	return name == ApprovalStep
}

// Backoff is the pause before a retry, with the default applied.
func (s *Step) Backoff() time.Duration {
	if s.Retries.Backoff <= 0 {
		return DefaultBackoff
	}
	return time.Duration(s.Retries.Backoff)
}

// ApprovalTimeout is how long an approval step waits for a decision. It is
// only meaningful for approval steps; Validate has checked the value.
func (s *Step) ApprovalTimeout() time.Duration {
	if v, ok := s.With["timeout"].(string); ok {
		if d, err := time.ParseDuration(v); err == nil && d > 0 {
			return d
		}
	}
	return DefaultApprovalTimeout
}

// ApprovalMessage is what an approval step shows the approver.
func (s *Step) ApprovalMessage() string {
	m, _ := s.With["message"].(string)
	return m
}

// ConcurrencyPolicy is Concurrency with the default applied.
func (j *Job) ConcurrencyPolicy() string {
	if j.Concurrency == "" {
		return ConcurrencyAllow
	}
	return j.Concurrency
}

// Step returns the step with the given ID.
func (j *Job) Step(id string) (*Step, bool) {
	for i := range j.Steps {
		if j.Steps[i].ID == id {
			return &j.Steps[i], true
		}
	}
	return nil, false
}

// SecretParams returns the values of the parameters marked secret, as text,
// so that the engine can mask them in logs and never record them.
func (j *Job) SecretParams(params map[string]any) []string {
	var out []string
	for _, p := range j.Params {
		if !p.Secret {
			continue
		}
		if v, ok := params[p.Name]; ok && v != nil {
			if s := textOf(v); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

// CredentialAlias is the name under which a step receives a credential:
// every rune outside [A-Za-z0-9_] becomes '_' so that the alias is usable
// as an environment variable or template key ("db-admin" → "db_admin").
func CredentialAlias(name string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_':
			return r
		}
		return '_'
	}, name)
}

// Duration is a time.Duration written as text ("5s", "1h30m").
type Duration time.Duration

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes d as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"30s\": %w", err)
	}
	v, err := parseDuration(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalYAML writes d as a string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// UnmarshalYAML reads a duration string.
func (d *Duration) UnmarshalYAML(node *yaml.Node) error {
	if node.Kind != yaml.ScalarNode {
		return fmt.Errorf("duration must be a string such as \"30s\"")
	}
	v, err := parseDuration(node.Value)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

func parseDuration(s string) (Duration, error) {
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("not a duration such as 30s or 1h30m: %q", s)
	}
	return Duration(v), nil
}

// textOf renders a value as it appears when interpolated into text.
func textOf(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case int:
		return strconv.Itoa(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case fmt.Stringer:
		return x.String()
	case []byte:
		return string(x)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
