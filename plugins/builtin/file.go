package builtin

import (
	"context"

	"github.com/opsconductor/opsconductor/plugins/sdk"
)

// File puts a file in place: content, mode and owner. It is idempotent: a
// file already as wanted is left alone and the result says changed=false;
// a content change is written atomically and shown as a unified diff.
type File struct{}

var fileDesc = sdk.Description{
	Name:    "file",
	Version: Version,
	Summary: "Put a file in place (content, mode, owner), reporting a diff; idempotent.",
	Params: mustSchema(`{
  "type": "object",
  "additionalProperties": false,
  "required": ["path"],
  "properties": {
    "content": {"type": "string", "description": "The file's content; when absent only mode and owner are managed."},` +
		fileProps + `
  }
}`),
	Outputs:    []sdk.OutputSpec{{Name: "path"}, {Name: "changed", Description: "\"true\" when anything changed."}},
	Idempotent: true,
}

// Describe implements sdk.Step.
func (File) Describe() sdk.Description { return fileDesc }

type fileParams struct {
	Path     string  `json:"path"`
	Content  *string `json:"content"`
	Mode     string  `json:"mode"`
	Owner    string  `json:"owner"`
	Group    string  `json:"group"`
	ShowDiff *bool   `json:"show_diff"`
}

// Run implements sdk.Step.
func (File) Run(ctx context.Context, req sdk.Request, out sdk.Output) (sdk.Result, error) {
	var p fileParams
	if err := decodeParams(fileDesc, req, &p); err != nil {
		return sdk.Result{}, err
	}
	spec, err := p.spec()
	if err != nil {
		return sdk.Result{}, err
	}
	if p.Content != nil {
		spec.content = []byte(*p.Content)
	}
	rep, err := syncFile(spec, "content")
	if err != nil {
		return sdk.Result{}, err
	}
	return reportFile(out, p.Path, rep, p.ShowDiff == nil || *p.ShowDiff), nil
}

func (p fileParams) spec() (fileSpec, error) {
	mode, err := fileMode(p.Mode)
	if err != nil {
		return fileSpec{}, err
	}
	uid, gid, err := fileOwnership(p.Owner, p.Group)
	if err != nil {
		return fileSpec{}, err
	}
	return fileSpec{path: p.Path, mode: mode, uid: uid, gid: gid}, nil
}
