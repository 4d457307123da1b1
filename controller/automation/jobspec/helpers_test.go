package jobspec

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/opsconductor/opsconductor/controller/problem"
	"github.com/opsconductor/opsconductor/plugins/builtin"
	"github.com/opsconductor/opsconductor/plugins/sdk"
)

// builtinCatalog describes the built-in steps the way the controller's
// plugin service does: "name" or "name@pin" where the pin is a prefix of
// the version.
type builtinCatalog struct{}

func (builtinCatalog) Describe(_ context.Context, uses string) (sdk.Description, error) {
	name, pin, _ := strings.Cut(uses, "@")
	for _, d := range builtin.Catalog() {
		if d.Name != name {
			continue
		}
		if pin != "" && d.Version != pin && !strings.HasPrefix(d.Version, pin+".") {
			return sdk.Description{}, problem.Invalid("uses", "the built-in step %s is version %s, which does not satisfy %q", name, d.Version, pin)
		}
		return d, nil
	}
	return sdk.Description{}, problem.NotFound("step", uses)
}

// problems flattens a validation error into "path: message" lines.
func problems(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	p, ok := problem.As(err)
	if !ok {
		t.Fatalf("error is not a problem: %v", err)
	}
	if len(p.Details) == 0 {
		return []string{p.Error()}
	}
	out := make([]string, len(p.Details))
	for i := range p.Details {
		out[i] = p.Details[i].Error()
	}
	return out
}

// plain drops the compiled-expression cache so that jobs compare by what
// was written.
func plain(j *Job) *Job {
	c := *j
	c.progs = nil
	c.Steps = append([]Step(nil), j.Steps...)
	for i := range c.Steps {
		c.Steps[i].progs = nil
		c.Steps[i].path = ""
	}
	return &c
}

func equalJobs(a, b *Job) bool { return reflect.DeepEqual(plain(a), plain(b)) }

func mustParse(t testing.TB, src string) *Job {
	t.Helper()
	j, err := Parse([]byte(src))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return j
}
