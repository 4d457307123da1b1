// Package builtin holds the steps that ship with the agent and run inside its
// process: shell, script, file, template, http, wait, service, package, ssh,
// discover and noop. Each implements sdk.Step exactly as an external plugin does, with
// a JSON Schema for its parameters, so the catalog, the UI and validation
// treat built-ins and plugins alike.
//
// A built-in runs with the agent's privileges, so it must never act outside
// what its parameters name: no shell interpolation of parameters, no
// following of remote schema references, no output of secrets (the agent
// masks them, but a step must not print them in the first place).
package builtin

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/opsconductor/opsconductor/plugins/schema"
	"github.com/opsconductor/opsconductor/plugins/sdk"
)

// Version is the version of every built-in step: they ship with the agent and
// change with it.
const Version = "1.0.0"

// steps is the registry. Built-ins are stateless values, so one instance of
// each serves every attempt. It is written only by init.
var steps = map[string]sdk.Step{}

func register(s sdk.Step) {
	d := s.Describe()
	if _, dup := steps[d.Name]; dup {
		panic("builtin: step " + d.Name + " registered twice")
	}
	steps[d.Name] = s
}

func init() {
	for _, s := range []sdk.Step{
		Shell{}, Script{}, File{}, Template{}, HTTP{}, Wait{}, Service{}, Package{}, SSH{}, Noop{}, Discover{},
	} {
		register(s)
	}
}

// Catalog describes every built-in step, sorted by name.
func Catalog() []sdk.Description {
	out := make([]sdk.Description, 0, len(steps))
	for _, s := range steps {
		out = append(out, s.Describe())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Lookup returns the built-in step with the given name.
func Lookup(name string) (sdk.Step, bool) {
	s, ok := steps[name]
	return s, ok
}

// decodeParams validates the request's parameters against the step's schema
// and decodes them into v. The agent validates before Run too; doing it again
// here costs microseconds (plugins/schema compiles each schema once, on first
// use) and means a step never sees parameters its schema refuses, whoever
// calls it.
func decodeParams(d sdk.Description, req sdk.Request, v any) error {
	if err := schema.Validate(d.Params, req.Params); err != nil {
		return err
	}
	if err := req.Decode(v); err != nil {
		return fmt.Errorf("decode %s params: %w", d.Name, err)
	}
	return nil
}

// paramError reports one problem with one parameter in the same form as a
// schema violation, for the checks a schema cannot express.
func paramError(name, rule, format string, args ...any) error {
	return &schema.ValidationError{Fields: []schema.FieldError{{
		Path: "params." + name, Rule: rule, Message: fmt.Sprintf(format, args...)}}}
}

// durationPattern is the schema pattern for a Go duration ("1m30s").
const durationPattern = `^([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`

// duration parses an optional duration parameter (already matched against
// durationPattern), with a default.
func duration(name, s string, def time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, paramError(name, "pattern", "not a duration: %v", err)
	}
	return d, nil
}

// mustSchema marks the schemas written in this package. They are
// constants, checked by TestCatalogListsEveryBuiltinWithAValidSchema, and
// compiled on first use (plugins/schema caches them): compiling all of
// them when the agent starts cost about 1 MB of heap that an idle agent
// would carry for nothing.
func mustSchema(s string) json.RawMessage { return json.RawMessage(s) }
