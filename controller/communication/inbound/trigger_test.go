package inbound

import (
	"slices"
	"strings"
	"testing"

	"github.com/opsconductor/opsconductor/controller/problem"
)

func validTrigger() Trigger {
	return Trigger{
		ID: "deploy-on-push", Name: "Deploy on push", Job: "deploy", Auth: AuthHMACGitHub,
		SecretRef: "github-deploy-hook", Enabled: true,
		Filter:   `payload.ref == "refs/heads/main"`,
		ParamMap: map[string]string{"commit": "payload.after"},
	}
}

// fields lists the field of every problem in err.
func fields(t *testing.T, err error) []string {
	t.Helper()
	p, ok := problem.As(err)
	if !ok {
		t.Fatalf("not a problem: %v", err)
	}
	if len(p.Details) == 0 {
		return []string{p.Field}
	}
	var out []string
	for _, d := range p.Details {
		out = append(out, d.Field)
	}
	return out
}

func TestTriggerValidate(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(*Trigger)
		fields []string
	}{
		{name: "a complete trigger is valid", edit: func(*Trigger) {}},
		{name: "a trigger without a filter or params is valid", edit: func(tr *Trigger) { tr.Filter, tr.ParamMap = "", nil }},
		{name: "an empty trigger names every required field", edit: func(tr *Trigger) { *tr = Trigger{} },
			fields: []string{"id", "name", "job", "auth", "secret_ref"}},
		{name: "an ID with a slash is refused", edit: func(tr *Trigger) { tr.ID = "a/b" }, fields: []string{"id"}},
		{name: "an unknown auth mode is refused", edit: func(tr *Trigger) { tr.Auth = "hmac-sha1" }, fields: []string{"auth"}},
		{name: "a negative rate limit is refused", edit: func(tr *Trigger) { tr.RateLimit = -1 }, fields: []string{"rate_limit"}},
		{name: "a rate limit above the maximum is refused", edit: func(tr *Trigger) { tr.RateLimit = MaxRateLimit + 1 }, fields: []string{"rate_limit"}},
		{name: "a filter that does not parse is named", edit: func(tr *Trigger) { tr.Filter = "payload.ref ==" }, fields: []string{"filter"}},
		{name: "a filter that is not a condition is named", edit: func(tr *Trigger) { tr.Filter = `"yes"` }, fields: []string{"filter"}},
		{name: "a filter reading an unknown root is named", edit: func(tr *Trigger) { tr.Filter = `body.ref == "x"` }, fields: []string{"filter"}},
		{name: "every bad parameter is named at once", edit: func(tr *Trigger) {
			tr.ParamMap = map[string]string{"a": "payload.", "b": "", "c d": "payload.x", "ok": "payload.x"}
		}, fields: []string{"param_map.a", "param_map.b", "param_map.c d"}},
		{name: "an expression that is too long is refused", edit: func(tr *Trigger) {
			tr.ParamMap = map[string]string{"x": strings.Repeat("1+", maxExprLen) + "1"}
		}, fields: []string{"param_map.x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := validTrigger()
			tt.edit(&tr)
			err := tr.Validate()
			if tt.fields == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted, want problems in %v", tt.fields)
			}
			if got := fields(t, err); !slices.Equal(got, tt.fields) {
				t.Fatalf("problems in %v, want %v (%v)", got, tt.fields, err)
			}
		})
	}
}
