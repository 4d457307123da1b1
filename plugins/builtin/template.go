package builtin

import (
	"bytes"
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"text/template"

	"github.com/opsconductor/opsconductor/plugins/sdk"
)

// Template renders a Go text/template with the job's variables, the target's
// facts and the target itself, and puts the result in a file exactly as the
// file step does (idempotent, atomic, with a diff).
//
// The template sees .Vars (params.vars), .Facts (the target's facts) and
// .Target (ID, Name, Address). A missing key is an error rather than
// "<no value>" in a config file.
type Template struct{}

var templateDesc = sdk.Description{
	Name:    "template",
	Version: Version,
	Summary: "Render a Go text/template with vars, facts and target into a file; idempotent, reports a diff.",
	Params: mustSchema(`{
  "type": "object",
  "additionalProperties": false,
  "required": ["path", "template"],
  "properties": {
    "template": {"type": "string", "description": "Go text/template source; sees .Vars, .Facts and .Target."},
    "vars":     {"type": "object", "description": "Values for the template, as .Vars."},` +
		fileProps + `
  }
}`),
	Outputs:    []sdk.OutputSpec{{Name: "path"}, {Name: "changed", Description: "\"true\" when anything changed."}},
	Idempotent: true,
}

// Describe implements sdk.Step.
func (Template) Describe() sdk.Description { return templateDesc }

type templateParams struct {
	Template string          `json:"template"`
	Vars     json.RawMessage `json:"vars"`
	fileParams
}

// templateData is what a template sees.
type templateData struct {
	Vars   map[string]any
	Facts  map[string]string
	Target sdk.Target
}

// Run implements sdk.Step.
func (Template) Run(ctx context.Context, req sdk.Request, out sdk.Output) (sdk.Result, error) {
	var p templateParams
	if err := decodeParams(templateDesc, req, &p); err != nil {
		return sdk.Result{}, err
	}
	spec, err := p.spec()
	if err != nil {
		return sdk.Result{}, err
	}
	vars, err := decodeVars(p.Vars)
	if err != nil {
		return sdk.Result{}, err
	}
	text, err := renderTemplate(p.Template, templateData{Vars: vars, Facts: req.Target.Facts, Target: req.Target})
	if err != nil {
		return sdk.Result{}, err
	}
	spec.content = text
	rep, err := syncFile(spec, "template")
	if err != nil {
		return sdk.Result{}, err
	}
	return reportFile(out, p.Path, rep, p.ShowDiff == nil || *p.ShowDiff), nil
}

// decodeVars keeps numbers as written: decoded as float64, a port of
// 1234567 would render as 1.234567e+06 in the file.
func decodeVars(raw json.RawMessage) (map[string]any, error) {
	vars := map[string]any{}
	if len(raw) == 0 {
		return vars, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&vars); err != nil {
		return nil, paramError("vars", "type", "%v", err)
	}
	return vars, nil
}

// templateErrPrefix matches text/template's "template: NAME:LINE:COL: " (the
// column appears on some errors only), to say "line 3" to a person.
var templateErrPrefix = regexp.MustCompile(`^template: [^:]*:(\d+)(?::(\d+))?: `)

func renderTemplate(src string, data templateData) ([]byte, error) {
	if data.Vars == nil {
		data.Vars = map[string]any{}
	}
	if data.Facts == nil {
		data.Facts = map[string]string{}
	}
	t, err := template.New("template").Option("missingkey=error").Parse(src)
	if err != nil {
		return nil, templateError(err)
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		return nil, templateError(err)
	}
	return buf.Bytes(), nil
}

func templateError(err error) error {
	msg := err.Error()
	if m := templateErrPrefix.FindStringSubmatch(msg); m != nil {
		where := "line " + m[1]
		if m[2] != "" {
			where += ", column " + m[2]
		}
		rest := msg[len(m[0]):]
		// Execution errors repeat the position as `executing "template"
		// at <.Vars.x>: `; keep the action, drop the template's name.
		rest = strings.Replace(rest, `executing "template" at `, "at ", 1)
		msg = where + ": " + rest
	}
	return paramError("template", "template", "%s", msg)
}
