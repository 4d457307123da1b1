package builtin

import (
	"context"
	"os"
	"strconv"
	"strings"

	"github.com/opsconductor/opsconductor/agent/runner"
	"github.com/opsconductor/opsconductor/plugins/sdk"
)

// processProps are the schema properties shell and script share.
const processProps = `
    "interpreter": {"type": "string", "minLength": 1, "description": "Program that runs the command or script: a path or a name on PATH."},
    "env":  {"type": "object", "additionalProperties": {"type": "string"}, "propertyNames": {"pattern": "^[^=\u0000]+$"}, "description": "Variables added to the agent's environment."},
    "cwd":  {"type": "string", "pattern": "^/", "description": "Working directory (absolute)."},
    "user": {"type": "string", "minLength": 1, "description": "Run as this user (name or uid); the agent must run as root."}`

// Shell runs a command line, or a script body, with an interpreter
// (/bin/sh by default). Each run gets its own process group, killed whole
// when the attempt is canceled; output is streamed line by line.
type Shell struct{}

var shellDesc = sdk.Description{
	Name:    "shell",
	Version: Version,
	Summary: "Run a command line or a script body with a shell.",
	Params: mustSchema(`{
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "command": {"type": "string", "minLength": 1, "description": "Command line, run as: interpreter -c command."},
    "script":  {"type": "string", "minLength": 1, "description": "Script body, written to a private temporary file and run with the interpreter."},` +
		processProps + `
  }
}`),
	Outputs: []sdk.OutputSpec{{Name: "exit_code", Description: "The command's exit status."}},
}

// Describe implements sdk.Step.
func (Shell) Describe() sdk.Description { return shellDesc }

type shellParams struct {
	Command     string            `json:"command"`
	Script      string            `json:"script"`
	Interpreter string            `json:"interpreter"`
	Env         map[string]string `json:"env"`
	Cwd         string            `json:"cwd"`
	User        string            `json:"user"`
}

// Run implements sdk.Step.
func (Shell) Run(ctx context.Context, req sdk.Request, out sdk.Output) (sdk.Result, error) {
	var p shellParams
	if err := decodeParams(shellDesc, req, &p); err != nil {
		return sdk.Result{}, err
	}
	switch {
	case p.Command != "" && p.Script != "":
		return sdk.Result{}, paramError("command", "oneOf", "give either command or script, not both")
	case p.Command == "" && p.Script == "":
		return sdk.Result{}, paramError("command", "required", "required (or give script)")
	}
	interp := p.Interpreter
	if interp == "" {
		interp = "/bin/sh"
	}
	if p.Command != "" {
		return runProcess(ctx, processSpec{argv: []string{interp, "-c", p.Command}, env: p.Env, cwd: p.Cwd, user: p.User}, out)
	}
	return runProcess(ctx, processSpec{argv: []string{interp}, script: p.Script, env: p.Env, cwd: p.Cwd, user: p.User}, out)
}

// Script uploads a script body with arguments: it is written to a 0700
// temporary file, run (by its #! line, or by the interpreter when one is
// given), and removed.
type Script struct{}

var scriptDesc = sdk.Description{
	Name:    "script",
	Version: Version,
	Summary: "Upload a script with arguments, run it and remove it.",
	Params: mustSchema(`{
  "type": "object",
  "additionalProperties": false,
  "required": ["script"],
  "properties": {
    "script": {"type": "string", "minLength": 1, "description": "Script body; without an interpreter it needs a #! line."},
    "args":   {"type": "array", "items": {"type": "string"}, "description": "Arguments passed to the script."},` +
		processProps + `
  }
}`),
	Outputs: []sdk.OutputSpec{{Name: "exit_code", Description: "The script's exit status."}},
}

// Describe implements sdk.Step.
func (Script) Describe() sdk.Description { return scriptDesc }

type scriptParams struct {
	Script      string            `json:"script"`
	Args        []string          `json:"args"`
	Interpreter string            `json:"interpreter"`
	Env         map[string]string `json:"env"`
	Cwd         string            `json:"cwd"`
	User        string            `json:"user"`
}

// Run implements sdk.Step.
func (Script) Run(ctx context.Context, req sdk.Request, out sdk.Output) (sdk.Result, error) {
	var p scriptParams
	if err := decodeParams(scriptDesc, req, &p); err != nil {
		return sdk.Result{}, err
	}
	if p.Interpreter == "" && !strings.HasPrefix(p.Script, "#!") {
		return sdk.Result{}, paramError("script", "shebang", "must start with a #! line when no interpreter is given")
	}
	var argv []string
	if p.Interpreter != "" {
		argv = []string{p.Interpreter}
	}
	return runProcess(ctx, processSpec{argv: argv, script: p.Script, args: p.Args, env: p.Env, cwd: p.Cwd, user: p.User}, out)
}

// processSpec is what shell and script run: argv, then the script file
// (when there is a script body), then args.
type processSpec struct {
	argv   []string
	script string
	args   []string
	env    map[string]string
	cwd    string
	user   string
}

func runProcess(ctx context.Context, ps processSpec, out sdk.Output) (sdk.Result, error) {
	if ps.cwd != "" {
		if fi, err := os.Stat(ps.cwd); err != nil || !fi.IsDir() {
			return sdk.Result{}, paramError("cwd", "exists", "%s is not a directory", ps.cwd)
		}
	}
	cred, userEnv, err := runAs("user", ps.user)
	if err != nil {
		return sdk.Result{}, err
	}
	argv := append([]string(nil), ps.argv...)
	if ps.script != "" {
		path, err := writeScript(ps.script, cred)
		if err != nil {
			return sdk.Result{}, err
		}
		defer os.Remove(path)
		argv = append(argv, path)
	}
	argv = append(argv, ps.args...)
	c := runner.Command{Argv: argv, Env: mergeEnv(userEnv, ps.env), Dir: ps.cwd, Credential: cred}
	name := "script"
	if ps.script == "" {
		name = "command"
	}
	res, err := runCommand(ctx, name, c, out)
	if err == nil {
		res.Outputs = map[string]string{"exit_code": strconv.Itoa(res.ExitCode)}
	}
	return res, err
}
