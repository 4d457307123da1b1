package builtin

import (
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opsconductor/opsconductor/plugins/sdk"
)

func TestShell(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name       string
		params     obj
		wantStatus sdk.Status
		wantCode   int
		wantOut    string
		wantErr    string
		wantParam  string
	}{
		{name: "a command's stdout is streamed", params: obj{"command": "echo one; echo two"}, wantOut: "one\ntwo\n"},
		{name: "a non-zero exit fails with its code", params: obj{"command": "echo before; exit 3"},
			wantStatus: sdk.StatusFailed, wantCode: 3, wantOut: "before\n"},
		{name: "env is added to the environment", params: obj{"command": `echo "$GREETING"`, "env": obj{"GREETING": "hi there"}},
			wantOut: "hi there\n"},
		{name: "cwd sets the working directory", params: obj{"command": "pwd", "cwd": dir}, wantOut: dir + "\n"},
		{name: "a script body runs with the interpreter", params: obj{"script": "set -e\nx=4\necho $((x*2))\n", "interpreter": "bash"},
			wantOut: "8\n"},
		{name: "an interpreter that does not exist is an error", params: obj{"command": "true", "interpreter": "/nonexistent/sh"},
			wantErr: "/nonexistent/sh"},
		{name: "command and script together are refused", params: obj{"command": "true", "script": "true"}, wantParam: "params.command"},
		{name: "a cwd that does not exist is refused", params: obj{"command": "true", "cwd": dir + "/missing"}, wantParam: "params.cwd"},
		{name: "an unknown run-as user is refused", params: obj{"command": "true", "user": "no-such-user-xyz"}, wantParam: "params.user"},
		{name: "an env name with = is refused", params: obj{"command": "true", "env": obj{"A=B": "x"}}, wantParam: `params.env["A=B"]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, rec, err := run(t, context.Background(), Shell{}, tt.params)
			switch {
			case tt.wantParam != "":
				wantParamError(t, err, tt.wantParam)
				return
			case tt.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			case err != nil:
				t.Fatalf("Run: %v", err)
			}
			if res.Status != tt.wantStatus || res.ExitCode != tt.wantCode {
				t.Errorf("result = %+v, want status %v exit %d", res, tt.wantStatus, tt.wantCode)
			}
			if res.Outputs["exit_code"] != strconv.Itoa(tt.wantCode) {
				t.Errorf("exit_code output = %q, want %d", res.Outputs["exit_code"], tt.wantCode)
			}
			if got := rec.stdout(); got != tt.wantOut {
				t.Errorf("stdout = %q, want %q", got, tt.wantOut)
			}
		})
	}
}

func TestShellStreamsStderrSeparately(t *testing.T) {
	_, rec, err := run(t, context.Background(), Shell{}, obj{"command": "echo out; echo err >&2"})
	if err != nil {
		t.Fatal(err)
	}
	if rec.stdout() != "out\n" || rec.stderr() != "err\n" {
		t.Errorf("stdout %q stderr %q, want out and err apart", rec.stdout(), rec.stderr())
	}
}

// Cancel kills the whole process group, a background child included, and a
// line printed before the cancel has already been streamed.
func TestShellCancelKillsTheProcessGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rec := &recorder{}
	ready := rec.seen("ready")
	type result struct {
		res sdk.Result
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := Shell{}.Run(ctx, reqWith(t, obj{"command": "sleep 300 & echo $! > " + pidFile + "; echo ready; wait"}), rec)
		done <- result{res, err}
	}()
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatal("the first line was not streamed while the command ran")
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	child, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	cancel()
	var r result
	select {
	case r = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if !errors.Is(r.err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", r.err)
	}
	waitFor(t, 5*time.Second, "the background child to be killed", func() bool {
		return syscall.Kill(child, 0) != nil
	})
}

func TestShellRunsAsAnotherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("running as another user needs root; the agent here runs as uid " + strconv.Itoa(os.Geteuid()))
	}
	res, rec, err := run(t, context.Background(), Shell{}, obj{"script": "id -u; id -g; echo $HOME", "user": "nobody"})
	if err != nil || res.Status != sdk.StatusSucceeded {
		t.Fatalf("Run: %+v %v (stderr %q)", res, err, rec.stderr())
	}
	lines := strings.Fields(rec.stdout())
	if len(lines) != 3 || lines[0] != "65534" || lines[2] != "/nonexistent" {
		t.Errorf("as nobody: id -u, id -g, HOME = %q, want 65534, its gid, /nonexistent", lines)
	}
}

func TestScript(t *testing.T) {
	tests := []struct {
		name    string
		params  obj
		wantOut string
		check   func(t *testing.T, out string)
	}{
		{name: "arguments are passed to the script", params: obj{"script": "#!/bin/sh\nfor a; do echo \"<$a>\"; done\n",
			"args": []string{"one", "two words", "$HOME"}}, wantOut: "<one>\n<two words>\n<$HOME>\n"},
		{name: "an interpreter runs a script without a #! line", params: obj{"script": "print(6*7)", "interpreter": "python3"},
			wantOut: "42\n"},
		{name: "the script file is private and removed afterwards", params: obj{"script": "#!/bin/sh\nstat -c %a \"$0\"\necho \"$0\"\n"},
			check: func(t *testing.T, out string) {
				f := strings.Fields(out)
				if len(f) != 2 || f[0] != "700" {
					t.Fatalf("mode and path = %q, want 700 and a path", f)
				}
				if _, err := os.Stat(f[1]); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("script file %s still there after the run: %v", f[1], err)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.params["interpreter"] == "python3" {
				if _, err := os.Stat("/usr/bin/python3"); err != nil {
					t.Skip("python3 is not installed")
				}
			}
			res, rec, err := run(t, context.Background(), Script{}, tt.params)
			if err != nil || res.Status != sdk.StatusSucceeded {
				t.Fatalf("Run: %+v %v (stderr %q)", res, err, rec.stderr())
			}
			if tt.check != nil {
				tt.check(t, rec.stdout())
			} else if rec.stdout() != tt.wantOut {
				t.Errorf("stdout = %q, want %q", rec.stdout(), tt.wantOut)
			}
		})
	}
}

func TestScriptFailureNamesTheScript(t *testing.T) {
	res, _, err := run(t, context.Background(), Script{}, obj{"script": "#!/bin/sh\nexit 7\n"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != sdk.StatusFailed || res.ExitCode != 7 || res.Message != "script exited with status 7" {
		t.Errorf("result = %+v, want failed, exit 7, \"script exited with status 7\"", res)
	}
}

func reqWith(t *testing.T, params obj) sdk.Request {
	t.Helper()
	raw, err := jsonMarshal(params)
	if err != nil {
		t.Fatal(err)
	}
	return sdk.Request{AttemptID: "a1", Params: raw}
}

// Lines name=value written to $OPSCONDUCTOR_OUTPUT become outputs; bad
// lines are reported and skipped, and the file is gone afterwards.
func TestShellSetsOutputsFromItsOutputFile(t *testing.T) {
	tests := []struct {
		name       string
		command    string
		want       map[string]string
		wantStderr string
	}{
		{name: "name=value lines", command: `echo version=1.2.3 >> "$OPSCONDUCTOR_OUTPUT"; echo "note=a=b c" >> "$OPSCONDUCTOR_OUTPUT"`,
			want: map[string]string{"version": "1.2.3", "note": "a=b c", "exit_code": "0"}},
		{name: "a bad line is skipped and reported", command: `printf '1bad=x\nok=yes\n\nnoequals\n' > "$OPSCONDUCTOR_OUTPUT"`,
			want: map[string]string{"ok": "yes", "exit_code": "0"}, wantStderr: "OPSCONDUCTOR_OUTPUT line 1"},
		{name: "too many outputs are cut", command: `for i in $(seq 1 40); do echo "o$i=$i"; done > "$OPSCONDUCTOR_OUTPUT"`,
			wantStderr: "more than 32 outputs"},
		{name: "no file written, only exit_code", command: "true", want: map[string]string{"exit_code": "0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, rec, err := run(t, context.Background(), Shell{}, obj{"command": tt.command + `; echo "$OPSCONDUCTOR_OUTPUT" > /dev/null`})
			if err != nil {
				t.Fatal(err)
			}
			if tt.want != nil && !maps.Equal(res.Outputs, tt.want) {
				t.Errorf("outputs = %v, want %v", res.Outputs, tt.want)
			}
			if tt.want == nil && len(res.Outputs) != maxStepOutputs+1 {
				t.Errorf("%d outputs, want the first %d and exit_code", len(res.Outputs), maxStepOutputs)
			}
			if !strings.Contains(rec.stderr(), tt.wantStderr) {
				t.Errorf("stderr = %q, want it to mention %q", rec.stderr(), tt.wantStderr)
			}
		})
	}
	res, _, err := run(t, context.Background(), Shell{}, obj{"command": `echo "path=$OPSCONDUCTOR_OUTPUT" >> "$OPSCONDUCTOR_OUTPUT"`})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(res.Outputs["path"]); !os.IsNotExist(err) {
		t.Errorf("the output file %s is left behind: %v", res.Outputs["path"], err)
	}
}
