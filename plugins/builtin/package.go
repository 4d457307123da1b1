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

// Package installs or removes an OS package with apt or dnf, whichever the
// host has. It checks the installed state first, so a package already in
// the wanted state changes nothing and needs no root; changed reports what
// the package manager actually did, checked again afterwards.
//
// Actions: install (make sure it is installed), remove (make sure it is
// not), present (only check that it is installed: fails if not, never
// changes anything).
type Package struct{}

var packageDesc = sdk.Description{
	Name:    "package",
	Version: Version,
	Summary: "Install, remove or check an OS package with apt or dnf; idempotent.",
	Params: mustSchema(`{
  "type": "object",
  "additionalProperties": false,
  "required": ["name"],
  "properties": {
    "name":    {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9+._:~-]*$", "maxLength": 256, "description": "Package name."},
    "action":  {"enum": ["install", "remove", "present"], "description": "Default install."},
    "manager": {"enum": ["auto", "apt", "dnf"], "description": "Default auto: apt if apt-get is on PATH, else dnf."},
    "update_cache": {"type": "boolean", "description": "Refresh the package lists before installing (apt-get update, dnf makecache)."}
  }
}`),
	Outputs: []sdk.OutputSpec{
		{Name: "installed", Description: "\"true\" when the package is installed after the step."},
		{Name: "manager", Description: "apt or dnf."},
	},
	Idempotent: true,
}

// Describe implements sdk.Step.
func (Package) Describe() sdk.Description { return packageDesc }

type packageParams struct {
	Name        string `json:"name"`
	Action      string `json:"action"`
	Manager     string `json:"manager"`
	UpdateCache bool   `json:"update_cache"`
}

// errNoPackageManager is returned when neither apt nor dnf is on the host.
var errNoPackageManager = errors.New("no supported package manager (apt-get with dpkg-query, or dnf with rpm) on this host")

// packageManager is one supported package manager's commands.
type packageManager struct {
	name      string
	probe     []string // binaries that must be on PATH
	installed func(ctx context.Context, pkg string) (bool, error)
	install   []string
	remove    []string
	update    []string
	env       map[string]string
}

var aptEnv = map[string]string{"DEBIAN_FRONTEND": "noninteractive"}

var packageManagers = []packageManager{
	{
		name:  "apt",
		probe: []string{"apt-get", "dpkg-query"},
		installed: func(ctx context.Context, pkg string) (bool, error) {
			o, _, code, err := captureCommand(ctx, nil, "dpkg-query", "-W", "-f=${db:Status-Status}", "--", pkg)
			if err != nil {
				return false, err
			}
			// dpkg-query exits 1 for a package it has never heard of.
			return code == 0 && strings.TrimSpace(o) == "installed", nil
		},
		// Keep the local version of changed config files rather than
		// stop at a prompt nobody will answer, and wait a while for a
		// dpkg lock held by someone else (unattended-upgrades) instead
		// of failing at once.
		install: []string{"apt-get", "install", "-y", "-q", "-o", "DPkg::Lock::Timeout=120",
			"-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold", "--"},
		remove: []string{"apt-get", "remove", "-y", "-q", "-o", "DPkg::Lock::Timeout=120", "--"},
		update: []string{"apt-get", "update", "-q"},
		env:    aptEnv,
	},
	{
		name:  "dnf",
		probe: []string{"dnf", "rpm"},
		installed: func(ctx context.Context, pkg string) (bool, error) {
			_, _, code, err := captureCommand(ctx, nil, "rpm", "-q", "--quiet", "--", pkg)
			return code == 0 && err == nil, err
		},
		install: []string{"dnf", "install", "-y", "-q", "--"},
		remove:  []string{"dnf", "remove", "-y", "-q", "--"},
		update:  []string{"dnf", "makecache", "-q"},
	},
}

func findPackageManager(want string) (*packageManager, error) {
	for i := range packageManagers {
		pm := &packageManagers[i]
		if want != "" && want != "auto" && want != pm.name {
			continue
		}
		ok := true
		for _, bin := range pm.probe {
			if _, err := exec.LookPath(bin); err != nil {
				ok = false
			}
		}
		if ok {
			return pm, nil
		}
		if want == pm.name {
			return nil, paramError("manager", "manager", "%s is not available on this host (needs %s)", pm.name,
				strings.Join(pm.probe, " and "))
		}
	}
	return nil, errNoPackageManager
}

// Run implements sdk.Step.
func (Package) Run(ctx context.Context, req sdk.Request, out sdk.Output) (sdk.Result, error) {
	var p packageParams
	if err := decodeParams(packageDesc, req, &p); err != nil {
		return sdk.Result{}, err
	}
	if p.Action == "" {
		p.Action = "install"
	}
	pm, err := findPackageManager(p.Manager)
	if err != nil {
		return sdk.Result{}, err
	}
	before, err := pm.installed(ctx, p.Name)
	if err != nil {
		return sdk.Result{}, fmt.Errorf("check %s: %w", p.Name, err)
	}
	result := func(installed, changed bool) sdk.Result {
		return sdk.Result{Changed: changed, Outputs: map[string]string{
			"installed": fmt.Sprint(installed), "manager": pm.name}}
	}
	switch {
	case p.Action == "present":
		if !before {
			res := result(false, false)
			res.Status, res.Message = sdk.StatusFailed, fmt.Sprintf("package %s is not installed", p.Name)
			return res, nil
		}
		sdk.Printf(out, "package %s is installed", p.Name)
		return result(true, false), nil
	case p.Action == "install" && before:
		sdk.Printf(out, "package %s is already installed", p.Name)
		return result(true, false), nil
	case p.Action == "remove" && !before:
		sdk.Printf(out, "package %s is not installed", p.Name)
		return result(false, false), nil
	}
	if os.Geteuid() != 0 {
		return sdk.Result{}, fmt.Errorf("%s package %s: needs the agent to run as root (it runs as uid %d)",
			p.Action, p.Name, os.Geteuid())
	}
	argv := pm.remove
	if p.Action == "install" {
		if p.UpdateCache {
			r, err := runCommand(ctx, pm.update[0], runner.Command{Argv: pm.update, Env: pm.env}, out)
			if err != nil || r.Status == sdk.StatusFailed {
				return r, err
			}
		}
		argv = pm.install
	}
	r, err := runCommand(ctx, argv[0], runner.Command{Argv: append(append([]string(nil), argv...), p.Name), Env: pm.env}, out)
	if err != nil {
		return r, err
	}
	after, cerr := pm.installed(ctx, p.Name)
	if cerr != nil {
		return sdk.Result{}, fmt.Errorf("check %s after %s: %w", p.Name, p.Action, cerr)
	}
	res := result(after, after != before)
	res.ExitCode = r.ExitCode
	if r.Status == sdk.StatusFailed || after != (p.Action == "install") {
		res.Status = sdk.StatusFailed
		res.Message = r.Message
		if res.Message == "" {
			res.Message = fmt.Sprintf("package %s: %s finished but the package is %s", p.Name, p.Action,
				map[bool]string{true: "installed", false: "not installed"}[after])
		}
	}
	return res, nil
}
