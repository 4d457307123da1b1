package schema

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/opsconductor/opsconductor/controller/problem"
)

// httpSchema is shaped like a real step's: required fields, bounds, an enum,
// a nested object and an array.
const httpSchema = `{
  "type": "object",
  "additionalProperties": false,
  "required": ["url"],
  "properties": {
    "url":     {"type": "string", "format": "uri", "minLength": 1},
    "method":  {"enum": ["GET", "POST", "PUT"]},
    "port":    {"type": "integer", "minimum": 1, "maximum": 65535},
    "retries": {"type": "integer", "exclusiveMinimum": 0, "multipleOf": 1},
    "name":    {"type": "string", "pattern": "^[a-z]+$", "maxLength": 8},
    "headers": {"type": "object", "additionalProperties": {"type": "string"}},
    "args":    {"type": "array", "items": {"type": "string"}, "maxItems": 3, "uniqueItems": true},
    "mode":    {"const": "strict"},
    "user":    {"type": "string"},
    "password": {"type": "string"}
  },
  "dependentRequired": {"password": ["user"]}
}`

func TestValidateReportsEveryProblemWithPathAndRule(t *testing.T) {
	tests := []struct {
		name   string
		params string
		want   []FieldError
	}{
		{"valid parameters pass", `{"url":"http://x/","method":"GET","port":80}`, nil},
		{"absent parameters are the empty object", ``, []FieldError{
			{"params.url", "required", "required"}}},
		{"a port above the range names the maximum", `{"url":"http://x/","port":70000}`, []FieldError{
			{"params.port", "maximum", "must be <= 65535"}}},
		{"a port below the range names the minimum", `{"url":"http://x/","port":0}`, []FieldError{
			{"params.port", "minimum", "must be >= 1"}}},
		{"a method outside the enum lists the choices", `{"url":"http://x/","method":"DELETE"}`, []FieldError{
			{"params.method", "enum", "must be one of GET, POST, PUT"}}},
		{"a wrong type says what was expected and what came", `{"url":"http://x/","port":"80"}`, []FieldError{
			{"params.port", "type", "must be integer, not string"}}},
		{"an unknown parameter is named", `{"url":"http://x/","prot":1}`, []FieldError{
			{"params.prot", "additionalProperties", "unknown parameter"}}},
		{"a nested value names its key", `{"url":"http://x/","headers":{"Accept":1}}`, []FieldError{
			{"params.headers.Accept", "type", "must be string, not number"}}},
		{"a key that is not an identifier is quoted", `{"url":"http://x/","headers":{"a b":1}}`, []FieldError{
			{`params.headers["a b"]`, "type", "must be string, not number"}}},
		{"an array item names its index", `{"url":"http://x/","args":["a",2]}`, []FieldError{
			{"params.args[1]", "type", "must be string, not number"}}},
		{"array bounds and uniqueness", `{"url":"http://x/","args":["a","a","b","c"]}`, []FieldError{
			{"params.args", "maxItems", "must have at most 3 items"},
			{"params.args", "uniqueItems", "items must be unique, but items 0 and 1 are equal"}}},
		{"string pattern and length", `{"url":"http://x/","name":"ABCDEFGHIJ"}`, []FieldError{
			{"params.name", "maxLength", "must be at most 8 characters long"},
			{"params.name", "pattern", "must match the pattern ^[a-z]+$"}}},
		{"an exclusive bound says so", `{"url":"http://x/","retries":0}`, []FieldError{
			{"params.retries", "exclusiveMinimum", "must be > 0"}}},
		{"a format is asserted", `{"url":"not a uri"}`, []FieldError{
			{"params.url", "format", "must be a valid uri: relative url"}}},
		{"a const names the only value", `{"url":"http://x/","mode":"lax"}`, []FieldError{
			{"params.mode", "const", "must be strict"}}},
		{"a dependent field is required", `{"url":"http://x/","password":"pw"}`, []FieldError{
			{"params.user", "dependentRequired", "required when password is set"}}},
		{"every problem is reported at once, sorted by path", `{"port":65536,"method":"GET ","prot":true}`, []FieldError{
			{"params.method", "enum", "must be one of GET, POST, PUT"},
			{"params.port", "maximum", "must be <= 65535"},
			{"params.prot", "additionalProperties", "unknown parameter"},
			{"params.url", "required", "required"}}},
		{"parameters that are not an object", `[1,2]`, []FieldError{
			{"params", "type", "must be object, not array"}}},
		{"parameters that are not JSON", `{"url":`, []FieldError{
			{"params", "json", "not valid JSON: unexpected EOF"}}},
		{"trailing data after the object", `{"url":"http://x/"} {}`, []FieldError{
			{"params", "json", "not valid JSON: invalid character after top-level value"}}},
	}
	s, err := Compile(json.RawMessage(httpSchema))
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Validate(json.RawMessage(tt.params))
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate: %v, want nil", err)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Validate: %v (%T), want *ValidationError", err, err)
			}
			if !reflect.DeepEqual(ve.Fields, tt.want) {
				t.Errorf("fields:\n got %q\nwant %q", ve.Fields, tt.want)
			}
		})
	}
}

func TestValidationErrorIsAProblemWithEveryFieldAsADetail(t *testing.T) {
	err := Validate(json.RawMessage(httpSchema), json.RawMessage(`{"port":70000}`))
	if got, want := err.Error(), "params.port: must be <= 65535; params.url: required"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	p, ok := problem.As(err)
	if !ok {
		t.Fatalf("problem.As(%v) = false, want the invalid-input problem", err)
	}
	if p.Kind != problem.KindInvalid || p.Field != "params.port" || len(p.Details) != 2 {
		t.Fatalf("problem = %+v, want kind invalid, field params.port and 2 details", p)
	}
	if d := p.Details[1]; d.Field != "params.url" || d.Code != "required" || d.Message != "required" {
		t.Errorf("second detail = %+v, want params.url / required", d)
	}
}

func TestAlternativesAreReportedOnceWithEachBranch(t *testing.T) {
	schema := `{"type":"object","properties":{"command":{"type":"string"},"script":{"type":"string"}},
	  "oneOf":[{"required":["command"]},{"required":["script"]}]}`
	tests := []struct {
		name, params, want string
	}{
		{"neither branch matches", `{}`,
			"params: must match exactly one of: (params.command: required) or (params.script: required)"},
		{"both branches match", `{"command":"a","script":"b"}`,
			"params: must match exactly one of the allowed forms, but matches forms 1 and 2"},
		{"one branch matches", `{"script":"b"}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(json.RawMessage(schema), json.RawMessage(tt.params))
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCheckRefusesSchemasThatAreNotObjectSchemas(t *testing.T) {
	tests := []struct {
		name, schema string
		want         string // a substring of the error; "" for valid
	}{
		{"an object schema is accepted", `{"type":"object","properties":{"a":{"type":"string"}}}`, ""},
		{"a draft 2020-12 $schema is accepted",
			`{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object"}`, ""},
		{"another draft is refused", `{"$schema":"http://json-schema.org/draft-07/schema#","type":"object"}`,
			"schema.$schema: must be https://json-schema.org/draft/2020-12/schema"},
		{"an empty schema is refused", ``, "schema: required"},
		{"a schema that is not JSON is refused", `{"type":`, "schema: not valid JSON"},
		{"a schema that is an array is refused", `[]`, "schema: must be a JSON object"},
		{"a top level that is not an object schema is refused", `{"type":"string"}`, `schema.type: must be "object"`},
		{"a top level without a type is refused", `{"properties":{}}`, `schema.type: must be "object"`},
		{"a misspelt type is named by its path", `{"type":"object","properties":{"port":{"type":"int"}}}`,
			"schema.properties.port.type"},
		{"a minimum that is not a number is named", `{"type":"object","properties":{"port":{"minimum":"1"}}}`,
			"schema.properties.port.minimum: must be number, not string"},
		{"a reference to a file is refused", `{"type":"object","properties":{"a":{"$ref":"file:///etc/passwd"}}}`,
			"external references are not allowed"},
		{"a reference to a URL is refused", `{"type":"object","properties":{"a":{"$ref":"https://example.com/s.json"}}}`,
			"external references are not allowed"},
		{"a local reference is followed", `{"type":"object","$defs":{"p":{"type":"integer"}},"properties":{"a":{"$ref":"#/$defs/p"}}}`, ""},
		{"an invalid pattern is refused", `{"type":"object","properties":{"a":{"pattern":"("}}}`, "schema.properties.a.pattern"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Check(json.RawMessage(tt.schema))
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Check: %v, want nil", err)
			case tt.want != "" && err == nil:
				t.Fatalf("Check: nil, want an error containing %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Fatalf("Check: %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestCompileCachesBySchemaBytes(t *testing.T) {
	a, err := Compile(json.RawMessage(httpSchema))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Compile(json.RawMessage(httpSchema))
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Errorf("Compile of the same bytes returned two schemas; want the cached one")
	}
	c, err := Compile(json.RawMessage(`{"type":"object"}`))
	if err != nil {
		t.Fatal(err)
	}
	if a == c {
		t.Errorf("Compile of different bytes returned the same schema")
	}
}

func TestAnEmptySchemaAcceptsAnyObject(t *testing.T) {
	for _, params := range []string{``, `{}`, `{"anything":[1,2]}`} {
		if err := Validate(nil, json.RawMessage(params)); err != nil {
			t.Errorf("Validate(nil, %s) = %v, want nil", params, err)
		}
	}
	if err := Validate(nil, json.RawMessage(`"x"`)); err == nil {
		t.Errorf("Validate(nil, string) = nil, want an error: parameters are an object")
	}
}

func TestOversizedParamsAreRefusedBeforeParsing(t *testing.T) {
	big := `{"url":"` + strings.Repeat("a", MaxParams) + `"}`
	err := Validate(json.RawMessage(httpSchema), json.RawMessage(big))
	if err == nil || !strings.Contains(err.Error(), "params: larger than") {
		t.Fatalf("Validate = %v, want params: larger than …", err)
	}
}

func BenchmarkValidate(b *testing.B) {
	s, err := Compile(json.RawMessage(httpSchema))
	if err != nil {
		b.Fatal(err)
	}
	params := json.RawMessage(`{"url":"http://x/","method":"GET","port":80,"headers":{"Accept":"*/*"}}`)
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Validate(params); err != nil {
			b.Fatal(err)
		}
	}
}

// jsonschema v6.0.3 keeps a propertyNames error's location without copying
// it, so a sibling validated afterwards (map order is random) could rename
// the field in the error; objectWithKey repairs it.
func TestABadPropertyNameIsReportedUnderItsOwnObject(t *testing.T) {
	schema := json.RawMessage(`{"type":"object","properties":{
		"command":{"type":"string"},"zeta":{"type":"string"},
		"env":{"type":"object","propertyNames":{"pattern":"^[A-Z_]+$"}}}}`)
	for i := range 200 {
		err := Validate(schema, json.RawMessage(`{"command":"true","env":{"A=B":"x"},"zeta":"z"}`))
		if err == nil || !strings.Contains(err.Error(), `params.env["A=B"]`) {
			t.Fatalf("run %d: %v, want the problem at params.env[\"A=B\"]", i, err)
		}
	}
}
