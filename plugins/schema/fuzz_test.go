package schema

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// FuzzValidate feeds arbitrary bytes as parameters. Validation must never
// panic, must fail only with a *ValidationError, and every problem must name
// a path under params with a rule and a message. The seed corpus is in
// testdata/fuzz/FuzzValidate and runs with every `go test`.
func FuzzValidate(f *testing.F) {
	for _, seed := range []string{
		``, `{}`, `null`, `[]`, `"x"`, `1e400`, `{"url":"http://x/","port":80}`,
		`{"port":-1,"args":[1,{"a":[]}],"headers":{"":null,"a.b":{}}}`,
		`{"url":"http://x/"} trailing`, "{\"url\":\"\xff\"}",
	} {
		f.Add([]byte(seed))
	}
	s, err := Compile(json.RawMessage(httpSchema))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, params []byte) {
		err := s.Validate(params)
		if err == nil {
			// Whatever the schema accepts must decode as an object.
			var m map[string]any
			if len(params) > 0 {
				if jerr := json.Unmarshal(params, &m); jerr != nil {
					t.Fatalf("Validate accepted %q, which does not decode as an object: %v", params, jerr)
				}
			}
			return
		}
		var ve *ValidationError
		if !errors.As(err, &ve) {
			t.Fatalf("Validate(%q) = %v (%T), want *ValidationError", params, err, err)
		}
		if len(ve.Fields) == 0 {
			t.Fatalf("Validate(%q): a ValidationError with no fields", params)
		}
		for _, fe := range ve.Fields {
			if !strings.HasPrefix(fe.Path, "params") || fe.Rule == "" || fe.Message == "" {
				t.Fatalf("Validate(%q): incomplete problem %+v", params, fe)
			}
		}
	})
}
