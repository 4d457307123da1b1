package builtin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/opsconductor/opsconductor/agent/runner"
	"github.com/opsconductor/opsconductor/plugins/sdk"
)

// Service drives a systemd unit through systemctl: start, stop, restart,
// reload, enable, disable or status. Start, stop, enable and disable look
// at the unit's state first and change nothing (changed=false) when it is
// already as asked. On a host without systemd it fails with an error that
// says so, rather than letting systemctl print something obscure.
type Service struct{}

var serviceDesc = sdk.Description{
	Name:    "service",
	Version: Version,
	Summary: "Start, stop, restart, reload, enable, disable or show a systemd unit.",
	Params: mustSchema(`{
  "type": "object",
  "additionalProperties": false,
  "required": ["name", "action"],
  "properties": {
    "name":   {"type": "string", "pattern": "^[A-Za-z0-9:_.@\\\\][A-Za-z0-9:_.@\\\\-]*$", "maxLength": 256, "description": "Unit name (nginx or nginx.service)."},
    "action": {"enum": ["start", "stop", "restart", "reload", "enable", "disable", "status"]}
  }
}`),
	Outputs: []sdk.OutputSpec{
		{Name: "active", Description: "systemctl is-active after the action (active, inactive, failed, …)."},
		{Name: "enabled", Description: "systemctl is-enabled after the action (enabled, disabled, static, …)."},
	},
	Idempotent: true,
}

// Describe implements sdk.Step.
func (Service) Describe() sdk.Description { return serviceDesc }

type serviceParams struct {
	Name   string `json:"name"`
	Action string `json:"action"`
}

// errNoSystemd is returned on hosts where systemd is not the init system.
var errNoSystemd = errors.New("systemd is not running on this host")

// systemdRunning tells whether systemd manages this host, as sd_booted(3)
// does: /run/systemd/system exists only when systemd is PID 1. A systemctl
// binary alone proves nothing (containers often have one).
func systemdRunning() error {
	if fi, err := os.Stat("/run/systemd/system"); err == nil && fi.IsDir() {
		if _, err := exec.LookPath("systemctl"); err != nil {
			return fmt.Errorf("%w: systemd is running but systemctl is not on PATH", errNoSystemd)
		}
		return nil
	}
	comm, err := os.ReadFile("/proc/1/comm")
	pid1 := strings.TrimSpace(string(comm))
	if err != nil || pid1 == "" {
		pid1 = "unknown"
	}
	return fmt.Errorf("%w (PID 1 is %s); the service step needs systemd", errNoSystemd, pid1)
}

// Run implements sdk.Step.
func (Service) Run(ctx context.Context, req sdk.Request, out sdk.Output) (sdk.Result, error) {
	var p serviceParams
	if err := decodeParams(serviceDesc, req, &p); err != nil {
		return sdk.Result{}, err
	}
	if err := systemdRunning(); err != nil {
		return sdk.Result{}, err
	}
	state := func(verb string) (string, error) {
		// is-active and is-enabled exit non-zero for "inactive" and
		// "disabled"; the word on stdout is the answer either way.
		o, _, _, err := captureCommand(ctx, nil, "systemctl", verb, "--", p.Name)
		return strings.TrimSpace(o), err
	}
	var already bool
	switch p.Action {
	case "start", "stop":
		active, err := state("is-active")
		if err != nil {
			return sdk.Result{}, err
		}
		already = (p.Action == "start") == (active == "active")
	case "enable", "disable":
		enabled, err := state("is-enabled")
		if err != nil {
			return sdk.Result{}, err
		}
		already = (p.Action == "enable") == (enabled == "enabled")
	}
	res := sdk.Result{}
	switch {
	case already:
		sdk.Printf(out, "%s: already %s", p.Name, pastTense(p.Action))
	case p.Action == "status":
		// status exits 3 for a stopped unit: that is an answer, not a
		// failure of the step.
		if _, err := runCommand(ctx, "systemctl status", runner.Command{
			Argv: []string{"systemctl", "status", "--no-pager", "--", p.Name}}, out); err != nil {
			return sdk.Result{}, err
		}
	default:
		r, err := runCommand(ctx, "systemctl "+p.Action, runner.Command{Argv: []string{"systemctl", p.Action, "--", p.Name}}, out)
		if err != nil || r.Status == sdk.StatusFailed {
			return r, err
		}
		res.Changed = true
	}
	active, err := state("is-active")
	if err != nil {
		return sdk.Result{}, err
	}
	enabled, err := state("is-enabled")
	if err != nil {
		return sdk.Result{}, err
	}
	res.Outputs = map[string]string{"active": active, "enabled": enabled}
	return res, nil
}

func pastTense(action string) string {
	switch action {
	case "start":
		return "active"
	case "stop":
		return "inactive"
	}
	return action + "d"
}
