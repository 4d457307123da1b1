package automation

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/opsconductor/opsconductor/controller/agentrpc"
	"github.com/opsconductor/opsconductor/controller/assets"
	"github.com/opsconductor/opsconductor/controller/automation/jobspec"
	"github.com/opsconductor/opsconductor/controller/problem"
)

// connSSH is the connection of a target reached over SSH from a relay
// agent.
const connSSH = assets.ConnSSH

// Steps that reach a host without an agent, and what they become.
const (
	stepShell = "shell"
	stepSSH   = "ssh"
	stepNoop  = "noop"
)

// sshCredAlias is the alias under which a relayed step receives the SSH
// target's login; the ssh step reads "ssh.<field>" before the unprefixed
// field, so the login is found even when the step has credentials of its
// own. A job credential whose alias is also "ssh" replaces it (the engine
// adds a step's own credentials after these), which lets one job log in
// with another account.
const sshCredAlias = "ssh"

// Credential roles tried, in order, for an SSH target's login.
var sshCredRoles = []string{"ssh", "default"}

// shellUnsupported are the shell parameters a command sent over SSH
// cannot honour, with what to do instead. The remote side runs the command
// with the login user's shell, in its home, with sshd's environment.
var shellUnsupported = []struct{ field, why string }{
	{"script", "a script body cannot be sent over SSH; give the script as command"},
	{"interpreter", "the login user's shell runs the command over SSH; call the interpreter in command (python3 -c …)"},
	{"env", "an SSH server drops environment variables it is not configured to accept; set them in command (NAME=value cmd)"},
	{"cwd", "the command starts in the login user's home over SSH; begin command with cd DIR &&"},
	{"user", "the SSH login is the target's username or its credential's; use sudo -u in command"},
}

// relayed turns a step for an SSH target into what its relay agent runs:
// shell with command becomes the built-in ssh step aimed at the target's
// address, port, user and host key; an ssh step gets the target's values
// where it gives none; noop runs on the relay as it is. The login is the
// credential attached to the target (or its groups) in role ssh, else
// default. uses "" keeps the step's own.
func (s *Service) relayed(ctx context.Context, t *RunTarget, st *jobspec.Step, with json.RawMessage) (string, json.RawMessage, map[string]string, error) {
	name, version, _ := strings.Cut(st.Uses, "@")
	path := stepPath(st)
	switch name {
	case stepNoop:
		return "", with, nil, nil
	case stepShell, stepSSH:
	default:
		return "", nil, nil, problem.Invalid(path+".uses", "step %s (uses %s) cannot run on SSH target %s: only shell, ssh and noop steps reach a host without an agent",
			st.ID, st.Uses, t.Name)
	}
	var params map[string]json.RawMessage
	if err := json.Unmarshal(with, &params); err != nil {
		return "", nil, nil, problem.Invalid(path+".with", "the rendered parameters are not a JSON object: %v", err)
	}
	if params == nil {
		params = map[string]json.RawMessage{}
	}
	live, err := s.d.Inventory.Get(ctx, t.Name)
	if err != nil {
		return "", nil, nil, fmt.Errorf("target %s: %w", t.Name, err)
	}
	if live.Connection.Type != connSSH {
		// Changed since the run started: the run's plan no longer holds.
		return "", nil, nil, problem.Invalid("targets", "target %s is no longer reached over SSH (its connection is %s)", t.Name, live.Connection.Type)
	}
	if len(live.Addresses) == 0 {
		return "", nil, nil, problem.Invalid("targets", "target %s has no address to reach over SSH", t.Name)
	}
	addr := live.Addresses[0]

	out := map[string]json.RawMessage{}
	if name == stepShell {
		var probs problem.List
		for _, u := range shellUnsupported {
			if _, ok := params[u.field]; ok {
				probs.Add(path+".with."+u.field, "not supported on SSH target %s: %s", t.Name, u.why)
			}
		}
		cmd := params["command"]
		if !hasParam(params, "command") {
			probs.Add(path+".with.command", "required: a step on SSH target %s runs a command line", t.Name)
		}
		if err := probs.Err(); err != nil {
			return "", nil, nil, err
		}
		out["command"] = cmd
		out["host"] = jsonString(addr)
	} else {
		for k, v := range params {
			out[k] = v
		}
		if _, ok := out["host"]; !ok {
			out["host"] = jsonString(addr)
		}
	}
	// Only fill in how to reach the target when the step is aimed at it:
	// an ssh step that names another host keeps to its own parameters, and
	// its host key is never taken for the target's.
	var host string
	if err := json.Unmarshal(out["host"], &host); err == nil && host == addr {
		setDefault(out, "port", live.Connection.Port > 0, func() json.RawMessage { return json.RawMessage(strconv.Itoa(live.Connection.Port)) })
		switch {
		case hasParam(out, "host_key"):
		case live.Connection.HostKey != "":
			out["host_key"] = jsonString(live.Connection.HostKey)
		case live.Connection.HostKeyPolicy == assets.HostKeyPinned:
			return "", nil, nil, problem.Invalid("targets", "target %s has the pinned host key policy but no host_key: opsconductor target update %s --host-key \"ssh-ed25519 AAAA…\"", t.Name, t.Name)
		default:
			// Trust on first use: the step learns the key and reports it;
			// learnHostKeys records it and later attempts pin it.
			setDefault(out, "host_key_policy", true, func() json.RawMessage { return jsonString(assets.HostKeyTOFU) })
		}
	}
	setDefault(out, "user", live.Connection.Username != "", func() json.RawMessage { return jsonString(live.Connection.Username) })

	b, err := json.Marshal(out)
	if err != nil {
		return "", nil, nil, fmt.Errorf("step %s on %s: encode ssh parameters: %w", st.ID, t.Name, err)
	}
	uses := ""
	if name == stepShell {
		uses = stepSSH
		if version != "" {
			// The built-ins share one version, so shell@N pins ssh@N.
			uses += "@" + version
		}
	}
	if name == stepSSH && len(st.Credentials) > 0 {
		// An ssh step that names its credentials logs in with them.
		return uses, b, nil, nil
	}
	cred, err := s.sshCredential(ctx, live)
	if err != nil {
		return "", nil, nil, err
	}
	return uses, b, map[string]string{sshCredAlias: cred}, nil
}

// sshCredential names the credential an SSH target logs in with.
func (s *Service) sshCredential(ctx context.Context, t assets.Target) (string, error) {
	if s.d.Credentials == nil {
		return "", problem.Invalid("credentials", "this controller cannot look up the credential of SSH target %s", t.Name)
	}
	for _, role := range sshCredRoles {
		name, err := s.d.Credentials.DefaultFor(ctx, t, role)
		switch {
		case err == nil:
			return name, nil
		case !problem.Is(err, problem.KindNotFound):
			return "", fmt.Errorf("credential of SSH target %s in role %s: %w", t.Name, role, err)
		}
	}
	return "", problem.New(problem.KindInvalid, "no_ssh_credential",
		"target %s has no credential attached in role ssh: opsconductor credential attach NAME targets %s --role ssh", t.Name, t.Name)
}

// learnHostKeys records host keys ssh steps learned on a run's targets:
// an attempt that ended (succeeded or failed) and reported host_key for
// an SSH target whose policy is tofu and that has no key yet. It reads the
// live target first, so it writes once however often the engine passes
// over the run, and a key set meanwhile (by an operator or another
// attempt) is left alone; attempts after the write pin the key.
func (s *Service) learnHostKeys(ctx context.Context, r *Run, atts []*agentrpc.Attempt) {
	for _, a := range atts {
		key := a.Outputs["host_key"]
		if key == "" || (a.Status != agentrpc.AttemptSucceeded && a.Status != agentrpc.AttemptFailed) {
			continue
		}
		if name, _, _ := strings.Cut(a.Kind, "@"); name != stepSSH {
			continue
		}
		live, err := s.d.Inventory.Get(ctx, a.Target)
		if err != nil || live.Connection.Type != connSSH || live.Connection.HostKey != "" ||
			live.Connection.HostKeyPolicy == assets.HostKeyPinned || len(live.Addresses) == 0 {
			continue
		}
		// The key is the target's only when the step connected to the
		// target's address and port, as relayed aims it.
		var p struct {
			Host string `json:"host"`
			Port int    `json:"port"`
		}
		if json.Unmarshal(a.Params, &p) != nil || p.Host != live.Addresses[0] || sshPort(p.Port) != sshPort(live.Connection.Port) {
			continue
		}
		pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(key))
		if err != nil {
			s.d.Logger.Warn("an ssh step reported a host key that does not parse", "run_id", r.ID, "attempt_id", a.ID, "target", a.Target, "error", err)
			continue
		}
		if _, err := s.d.Inventory.CheckHostKey(ctx, live.ID, key); err != nil {
			// Tried again on the next pass while the target has no key.
			s.d.Logger.Warn("cannot record a learned host key", "run_id", r.ID, "attempt_id", a.ID, "target", a.Target, "error", err)
			continue
		}
		s.d.Logger.Info("host key learned on first use", "run_id", r.ID, "attempt_id", a.ID, "target", a.Target,
			"key_type", pub.Type(), "fingerprint", ssh.FingerprintSHA256(pub))
	}
}

// stepPath names a step in problems. jobspec keeps the step's index path
// ("steps[2]") unexported, so the step is named by its ID in the form
// jobspec itself falls back to.
func stepPath(st *jobspec.Step) string { return st.Path() }

func sshPort(p int) int {
	if p <= 0 {
		return 22
	}
	return p
}

func jsonString(s string) json.RawMessage {
	b, _ := json.Marshal(s) // a string always encodes
	return b
}

func hasParam(m map[string]json.RawMessage, k string) bool {
	v, ok := m[k]
	return ok && string(v) != "null"
}

// setDefault sets m[k] when the step gave none and cond holds.
func setDefault(m map[string]json.RawMessage, k string, cond bool, v func() json.RawMessage) {
	if cond && !hasParam(m, k) {
		m[k] = v()
	}
}
