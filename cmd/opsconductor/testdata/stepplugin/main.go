// Command stepplugin is a tiny step plugin for the CLI's tests: it is what
// `opsconductor plugin push` starts to read a description from, through
// the same go-plugin handshake the agent uses.
package main

import (
	"context"

	"github.com/opsconductor/opsconductor/plugins/sdk"
)

type step struct{}

func (step) Describe() sdk.Description {
	return sdk.Description{
		Name:    "greet",
		Version: "1.2.0",
		Summary: "Prints a greeting.",
		Params: []byte(`{"type":"object","additionalProperties":false,"required":["who"],"properties":{` +
			`"who":{"type":"string","minLength":1,"description":"Whom to greet."},` +
			`"times":{"type":"integer","minimum":1,"maximum":10,"default":1,"description":"How often."}}}`),
		Outputs:    []sdk.OutputSpec{{Name: "greeting", Description: "The last line printed."}},
		Idempotent: true,
	}
}

func (step) Run(_ context.Context, req sdk.Request, out sdk.Output) (sdk.Result, error) {
	var p struct {
		Who   string `json:"who"`
		Times int    `json:"times"`
	}
	if err := req.Decode(&p); err != nil {
		return sdk.Result{}, err
	}
	line := "hello, " + p.Who
	for range max(p.Times, 1) {
		sdk.Printf(out, "%s", line)
	}
	return sdk.Result{Outputs: map[string]string{"greeting": line}}, nil
}

func main() { sdk.Serve(step{}) }
