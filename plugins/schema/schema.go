// Package schema compiles the JSON Schemas (draft 2020-12) that steps publish
// for their parameters and validates parameters against them, reporting every
// problem at once with the parameter's path and the rule it broke
// (`params.port: must be <= 65535`).
//
// It owns schema compilation and the wording of parameter errors. It must
// never fetch anything: a schema comes from a plugin author, so `$ref` to a
// file or URL is refused rather than followed (the library's default loader
// would read local files).
package schema

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// MaxParams bounds the size of a parameters document; parameters are small
// and a larger document is refused before it is parsed.
const MaxParams = 1 << 20

// MaxSchema bounds the size of a schema document.
const MaxSchema = 1 << 20

// cacheSize bounds the compiled-schema cache. Steps are few (the built-ins
// plus the registered plugin versions), so this is never reached in
// practice; the bound only keeps hostile input from growing memory.
const cacheSize = 512

// schemaURL is the location each schema is compiled under; every schema is
// compiled by its own compiler, so one URL serves them all.
const schemaURL = "mem:///params.json"

// draft2020 is the only draft accepted in "$schema".
const draft2020 = "https://json-schema.org/draft/2020-12/schema"

// Schema is a compiled parameters schema. It is safe for concurrent use.
type Schema struct {
	sch *jsonschema.Schema
}

var cache = struct {
	sync.Mutex
	m map[[sha256.Size]byte]*Schema
}{m: map[[sha256.Size]byte]*Schema{}}

// Compile compiles a step's Params schema, or returns the cached result for
// the same bytes. An empty schema accepts any object. Errors from a schema
// that is not valid are *ValidationError with paths rooted at "schema".
func Compile(raw json.RawMessage) (*Schema, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		raw = json.RawMessage(`{"type":"object"}`)
	}
	key := sha256.Sum256(raw)
	cache.Lock()
	s, ok := cache.m[key]
	cache.Unlock()
	if ok {
		return s, nil
	}
	s, err := compile(raw)
	if err != nil {
		return nil, err
	}
	cache.Lock()
	if len(cache.m) >= cacheSize {
		// Dropping an arbitrary entry is enough: a miss only costs a
		// recompile.
		for k := range cache.m {
			delete(cache.m, k)
			break
		}
	}
	cache.m[key] = s
	cache.Unlock()
	return s, nil
}

func compile(raw json.RawMessage) (*Schema, error) {
	if len(raw) > MaxSchema {
		return nil, &ValidationError{Fields: []FieldError{{Path: "schema", Rule: "size",
			Message: fmt.Sprintf("larger than %d bytes", MaxSchema)}}}
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, &ValidationError{Fields: []FieldError{{Path: "schema", Rule: "json",
			Message: fmt.Sprintf("not valid JSON: %v", err)}}}
	}
	var fields []FieldError
	obj, ok := doc.(map[string]any)
	if !ok {
		fields = append(fields, FieldError{Path: "schema", Rule: "type", Message: "must be a JSON object"})
	} else {
		if t, ok := obj["type"]; !ok || t != "object" {
			// The UI renders a form per property and Request.Decode
			// expects an object, so the top level must say it is one.
			fields = append(fields, FieldError{Path: "schema.type", Rule: "type", Message: `must be "object"`})
		}
		// The UI and the docs speak draft 2020-12 only; a schema that
		// declares another draft would validate by rules they do not show.
		if d, ok := obj["$schema"]; ok && d != draft2020 && d != draft2020+"#" {
			fields = append(fields, FieldError{Path: "schema.$schema", Rule: "$schema", Message: "must be " + draft2020})
		}
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.UseLoader(refuseLoader{})
	// Draft 2020-12 makes "format" an annotation; asserting it lets a step
	// say "format": "uri" and get the error before Run rather than in it.
	c.AssertFormat()
	if err := c.AddResource(schemaURL, doc); err != nil {
		return nil, fmt.Errorf("schema: add resource: %w", err)
	}
	sch, err := c.Compile(schemaURL)
	if err != nil {
		var sve *jsonschema.SchemaValidationError
		var ve *jsonschema.ValidationError
		if errors.As(err, &sve) && errors.As(sve.Err, &ve) {
			fields = append(fields, fieldErrors(ve, "schema", doc)...)
		} else {
			fields = append(fields, FieldError{Path: "schema", Rule: "compile", Message: err.Error()})
		}
	}
	if len(fields) > 0 {
		return nil, newValidationError(fields)
	}
	return &Schema{sch: sch}, nil
}

// Check reports whether raw is a valid parameters schema: a draft 2020-12
// JSON Schema whose top level is an object schema, with no references to
// other documents. The plugin registry calls it before accepting a plugin.
func Check(raw json.RawMessage) error {
	if len(bytes.TrimSpace(raw)) == 0 {
		return &ValidationError{Fields: []FieldError{{Path: "schema", Rule: "required", Message: "required"}}}
	}
	_, err := Compile(raw)
	return err
}

// Validate validates a parameters document against s. Problems with the
// parameters are returned all at once as a *ValidationError, sorted by path;
// absent parameters (empty input) are validated as the empty object.
func (s *Schema) Validate(params json.RawMessage) error {
	if len(params) > MaxParams {
		return &ValidationError{Fields: []FieldError{{Path: "params", Rule: "size",
			Message: fmt.Sprintf("larger than %d bytes", MaxParams)}}}
	}
	if len(bytes.TrimSpace(params)) == 0 {
		params = json.RawMessage(`{}`)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(params))
	if err != nil {
		return &ValidationError{Fields: []FieldError{{Path: "params", Rule: "json",
			Message: fmt.Sprintf("not valid JSON: %v", err)}}}
	}
	if err := s.sch.Validate(doc); err != nil {
		var ve *jsonschema.ValidationError
		if !errors.As(err, &ve) {
			return fmt.Errorf("params: %w", err)
		}
		return newValidationError(fieldErrors(ve, "params", doc))
	}
	return nil
}

// Validate compiles schema (cached) and validates params against it.
func Validate(schema, params json.RawMessage) error {
	s, err := Compile(schema)
	if err != nil {
		return fmt.Errorf("compile params schema: %w", err)
	}
	return s.Validate(params)
}

// refuseLoader refuses every external reference; see the package comment.
type refuseLoader struct{}

func (refuseLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("external references are not allowed: %s", url)
}
