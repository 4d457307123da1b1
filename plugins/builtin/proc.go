package builtin

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"syscall"

	"github.com/opsconductor/opsconductor/agent/runner"
	"github.com/opsconductor/opsconductor/plugins/sdk"
	agentv1 "github.com/opsconductor/opsconductor/proto/agent/v1"
)

// runCommand runs c through agent/runner, which owns process groups, the
// kill on cancel and the line splitting, and streams its lines to out. A
// command that ran and exited non-zero is a failed Result, not an error; a
// command that could not run, or was canceled, is an error.
func runCommand(ctx context.Context, name string, c runner.Command, out sdk.Output) (sdk.Result, error) {
	res := runner.Run(ctx, c, func(l runner.Line) error {
		w := out.Stdout()
		if l.Stream == agentv1.OutputStream_OUTPUT_STREAM_STDERR {
			w = out.Stderr()
		}
		_, err := w.Write(l.Data)
		return err
	})
	return commandResult(ctx, name, res)
}

// commandResult maps the runner's status to a step result; name is how
// messages call the command ("script", "systemctl").
func commandResult(ctx context.Context, name string, res runner.Result) (sdk.Result, error) {
	switch res.Status {
	case agentv1.AttemptStatus_ATTEMPT_STATUS_SUCCEEDED:
		return sdk.Result{ExitCode: res.ExitCode}, nil
	case agentv1.AttemptStatus_ATTEMPT_STATUS_FAILED:
		return sdk.Result{Status: sdk.StatusFailed, ExitCode: res.ExitCode,
			Message: fmt.Sprintf("%s exited with status %d", name, res.ExitCode)}, nil
	case agentv1.AttemptStatus_ATTEMPT_STATUS_CANCELED:
		return sdk.Result{ExitCode: res.ExitCode}, fmt.Errorf("%s: %w", name, context.Cause(ctx))
	case agentv1.AttemptStatus_ATTEMPT_STATUS_TIMED_OUT:
		return sdk.Result{Status: sdk.StatusFailed, ExitCode: res.ExitCode,
			Message: fmt.Sprintf("%s %s", name, res.Error)}, nil
	}
	return sdk.Result{ExitCode: res.ExitCode}, fmt.Errorf("%s: %s", name, res.Error)
}

// captureCommand runs argv and returns its stdout, stderr and exit code, for
// the probes (systemctl is-active, dpkg-query) whose output is data rather
// than something to show.
func captureCommand(ctx context.Context, env map[string]string, argv ...string) (stdout, stderr string, code int, err error) {
	var o, e bytes.Buffer
	c := runner.Command{Argv: argv, Env: env}
	res := runner.Run(ctx, c, func(l runner.Line) error {
		if l.Stream == agentv1.OutputStream_OUTPUT_STREAM_STDERR {
			e.Write(l.Data)
		} else {
			o.Write(l.Data)
		}
		return nil
	})
	switch res.Status {
	case agentv1.AttemptStatus_ATTEMPT_STATUS_SUCCEEDED, agentv1.AttemptStatus_ATTEMPT_STATUS_FAILED:
		return o.String(), e.String(), res.ExitCode, nil
	case agentv1.AttemptStatus_ATTEMPT_STATUS_CANCELED:
		return o.String(), e.String(), res.ExitCode, fmt.Errorf("%s: %w", argv[0], context.Cause(ctx))
	}
	return o.String(), e.String(), res.ExitCode, fmt.Errorf("%s: %s", argv[0], res.Error)
}

// runAs resolves the run-as user parameter into a credential and the
// environment that user's programs expect (HOME, USER, LOGNAME). Switching
// user needs root; an agent that is not root refuses rather than silently
// running the command as itself.
func runAs(param, name string) (*syscall.Credential, map[string]string, error) {
	if name == "" {
		return nil, nil, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		if _, numErr := strconv.Atoi(name); numErr == nil {
			u, err = user.LookupId(name)
		}
		if err != nil {
			return nil, nil, paramError(param, "user", "no such user %q", name)
		}
	}
	if strconv.Itoa(os.Geteuid()) == u.Uid {
		return nil, nil, nil // already that user
	}
	if os.Geteuid() != 0 {
		return nil, nil, paramError(param, "user", "running as %q needs the agent to run as root (it runs as uid %d)",
			name, os.Geteuid())
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, nil, fmt.Errorf("user %s: uid %q: %w", name, u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, nil, fmt.Errorf("user %s: gid %q: %w", name, u.Gid, err)
	}
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	// Supplementary groups as login would set them; without this the
	// process keeps root's (an empty list means none, not root's).
	if ids, err := u.GroupIds(); err == nil {
		for _, g := range ids {
			if n, err := strconv.ParseUint(g, 10, 32); err == nil {
				cred.Groups = append(cred.Groups, uint32(n))
			}
		}
	}
	env := map[string]string{"HOME": u.HomeDir, "USER": u.Username, "LOGNAME": u.Username}
	return cred, env, nil
}

// writeScript writes a script body to a fresh 0700 file in the system temp
// directory, owned by cred's user when one is given (a private temp dir
// owned by root would be out of that user's reach). The caller removes it.
func writeScript(body string, cred *syscall.Credential) (string, error) {
	f, err := os.CreateTemp("", "opsconductor-script-*")
	if err != nil {
		return "", fmt.Errorf("create script file: %w", err)
	}
	name := f.Name()
	fail := func(err error) (string, error) {
		f.Close()
		os.Remove(name)
		return "", err
	}
	if err := f.Chmod(0o700); err != nil {
		return fail(fmt.Errorf("chmod script file: %w", err))
	}
	if cred != nil {
		if err := f.Chown(int(cred.Uid), int(cred.Gid)); err != nil {
			return fail(fmt.Errorf("chown script file: %w", err))
		}
	}
	if _, err := f.WriteString(body); err != nil {
		return fail(fmt.Errorf("write script file: %w", err))
	}
	if err := f.Close(); err != nil {
		return fail(fmt.Errorf("write script file: %w", err))
	}
	return name, nil
}

func mergeEnv(maps ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range maps {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}
