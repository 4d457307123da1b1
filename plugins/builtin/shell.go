package builtin

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"regexp"
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
	Outputs: []sdk.OutputSpec{{Name: "exit_code", Description: "The command's exit status."},
		{Name: "*", Description: "Each line name=value the command writes to the file named by $OPSCONDUCTOR_OUTPUT."}},
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
	Outputs: []sdk.OutputSpec{{Name: "exit_code", Description: "The script's exit status."},
		{Name: "*", Description: "Each line name=value the script writes to the file named by $OPSCONDUCTOR_OUTPUT."}},
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
	// Like GitHub Actions' $GITHUB_OUTPUT: lines name=value written to
	// this file become the step's outputs, for later steps to use.
	outFile, err := writeScript("", cred)
	if err != nil {
		return sdk.Result{}, err
	}
	defer os.Remove(outFile)
	c := runner.Command{Argv: argv, Env: mergeEnv(userEnv, ps.env, map[string]string{OutputEnv: outFile}), Dir: ps.cwd, Credential: cred}
	name := "script"
	if ps.script == "" {
		name = "command"
	}
	res, err := runCommand(ctx, name, c, out)
	if err == nil {
		res.Outputs = readOutputs(outFile, out)
		res.Outputs["exit_code"] = strconv.Itoa(res.ExitCode)
	}
	return res, err
}

// OutputEnv names the file a shell step or script writes its outputs to,
// one name=value per line.
const OutputEnv = "OPSCONDUCTOR_OUTPUT"

// Output limits: outputs travel through Raft with the result.
const (
	maxStepOutputs     = 32
	maxStepOutputBytes = 32 << 10
)

var outputNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,62}$`)

// readOutputs parses the output file; a bad line is reported on stderr
// and skipped rather than failing a step that otherwise succeeded.
func readOutputs(path string, out sdk.Output) map[string]string {
	outputs := map[string]string{}
	f, err := os.Open(path)
	if err != nil {
		return outputs
	}
	defer f.Close()
	sc := bufio.NewScanner(io.LimitReader(f, maxStepOutputBytes+1))
	sc.Buffer(make([]byte, 0, 4096), maxStepOutputBytes+1)
	size, n := 0, 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		size += len(line)
		switch {
		case !ok || !outputNameRE.MatchString(name):
			_, _ = fmt.Fprintf(out.Stderr(), "%s line %d: not name=value with a name of letters, digits, '_', '.', '-'; ignored\n", OutputEnv, n)
		case len(outputs) >= maxStepOutputs || size > maxStepOutputBytes:
			_, _ = fmt.Fprintf(out.Stderr(), "%s: more than %d outputs or %d bytes; the rest are ignored\n", OutputEnv, maxStepOutputs, maxStepOutputBytes)
			return outputs
		default:
			outputs[name] = value
		}
	}
	return outputs
}
