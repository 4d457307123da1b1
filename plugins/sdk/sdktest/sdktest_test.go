package sdktest_test

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/opsconductor/opsconductor/plugins/schema"
	"github.com/opsconductor/opsconductor/plugins/sdk"
	"github.com/opsconductor/opsconductor/plugins/sdk/sdktest"
)

type greet struct{ desc sdk.Description }

func (g greet) Describe() sdk.Description { return g.desc }

func (greet) Run(_ context.Context, req sdk.Request, out sdk.Output) (sdk.Result, error) {
	var p struct {
		Who  string `json:"who"`
		Fail bool   `json:"fail"`
	}
	if err := req.Decode(&p); err != nil {
		return sdk.Result{}, err
	}
	// Printed in two writes, cutting the secret in half.
	tok := req.Secrets["token"]
	io.WriteString(out.Stdout(), "hello "+p.Who+" "+tok[:3])
	io.WriteString(out.Stdout(), tok[3:]+"\nbye")
	io.WriteString(out.Stderr(), "on "+req.Target.Name+"\n")
	if p.Fail {
		return sdk.Result{}, errors.New("asked to fail")
	}
	return sdk.Result{Changed: true, Outputs: map[string]string{"greeted": p.Who}}, nil
}

var goodDesc = sdk.Description{
	Name: "greet", Version: "1.0.0", Summary: "Greets.",
	Params:  []byte(`{"type":"object","required":["who"],"additionalProperties":false,"properties":{"who":{"type":"string","minLength":1},"fail":{"type":"boolean"}}}`),
	Outputs: []sdk.OutputSpec{{Name: "greeted"}},
}

func TestRun(t *testing.T) {
	secrets := map[string]string{"token": "tok-secret-42"}
	tests := []struct {
		name       string
		desc       sdk.Description
		params     any
		wantErr    string
		wantStdout []string
	}{
		{name: "a valid run captures lines with secrets masked across writes", desc: goodDesc,
			params: map[string]any{"who": "ops"}, wantStdout: []string{"hello ops ***", "bye"}},
		{name: "params as JSON text are accepted", desc: goodDesc, params: `{"who":"x"}`, wantStdout: []string{"hello x ***", "bye"}},
		{name: "a missing parameter names the parameter", desc: goodDesc, params: map[string]any{}, wantErr: "params"},
		{name: "a wrong type names the parameter", desc: goodDesc, params: `{"who":1}`, wantErr: "params.who"},
		{name: "the step's error is returned with its output", desc: goodDesc, params: `{"who":"x","fail":true}`,
			wantErr: "asked to fail", wantStdout: []string{"hello x ***", "bye"}},
		{name: "a bad name is refused", desc: func() sdk.Description { d := goodDesc; d.Name = "Greet"; return d }(),
			params: `{"who":"x"}`, wantErr: "description.name"},
		{name: "an undeclared output is refused", desc: func() sdk.Description { d := goodDesc; d.Outputs = nil; return d }(),
			params: `{"who":"x"}`, wantErr: `output "greeted" is not declared`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := sdktest.Run(context.Background(), greet{tt.desc}, sdktest.Input{Params: tt.params, Secrets: secrets, Target: sdk.Target{Name: "web1"}})
			if tt.wantErr == "" && err != nil {
				t.Fatal(err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("error %v, want it to contain %q", err, tt.wantErr)
			}
			if tt.wantStdout != nil && !slices.Equal(o.Stdout, tt.wantStdout) {
				t.Errorf("stdout = %q, want %q", o.Stdout, tt.wantStdout)
			}
		})
	}
}

func TestInvalidParamsAreASchemaValidationError(t *testing.T) {
	_, err := sdktest.Run(context.Background(), greet{goodDesc}, sdktest.Input{Params: `{"who":""}`})
	var ve *schema.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v (%T), want *schema.ValidationError", err, err)
	}
}

func TestCheckDescriptionReportsEveryProblem(t *testing.T) {
	err := sdktest.CheckDescription(sdk.Description{Name: "Bad Name", Version: "1.0", Params: []byte(`{"type":"string"}`),
		Outputs: []sdk.OutputSpec{{Name: "a"}, {Name: "a"}}})
	for _, want := range []string{"description.name", "description.version", "description.summary", "description.params", "description.outputs[1]"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not report %s", err, want)
		}
	}
}
