package automation

import (
	"context"
	"slices"
	"testing"

	"github.com/opsconductor/opsconductor/controller/problem"
)

// A definition with a value that does not decode still gets every other
// problem reported, and none about the value that did not decode.
func TestParseJobReportsDecodingAndValidationProblemsTogether(t *testing.T) {
	s := &Service{}
	_, err := s.ParseJob(context.Background(), "bad", []byte(`
name: bad
targets: {all: true}
timeout: soon
steps:
  - {id: a, uses: noop, needs: [zz]}
  - {id: b, uses: noop, retries: {count: many}}
`))
	p, ok := problem.As(err)
	if !ok {
		t.Fatalf("err = %v", err)
	}
	var fields []string
	for _, d := range p.Details {
		fields = append(fields, d.Field)
	}
	for _, want := range []string{"timeout", "steps[0].needs[0]", "steps[1].retries.count"} {
		if !slices.Contains(fields, want) {
			t.Errorf("no problem at %s in %v", want, fields)
		}
	}
}
