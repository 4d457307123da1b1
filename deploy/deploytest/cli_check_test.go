package deploytest

import (
	"strings"
	"testing"
)

// The checker is what every other test here relies on, so it is tested
// against command lines known to be right and known to be wrong.
func TestCommandLineChecker(t *testing.T) {
	tests := []struct {
		name    string
		agent   bool
		args    []string
		wantErr string // "" = accepted
	}{
		{"accepts a server with flags and values", false, []string{"server", "--data-dir", "/d", "--retry-join", "a:1,b:2"}, ""},
		{"accepts flag=value", false, []string{"server", "--data-dir=/d"}, ""},
		{"accepts global flags of a nested command", false, []string{"agent", "join-token", "create", "--address", "http://x:3000", "--json", "--ttl", "1h"}, ""},
		{"accepts a positional argument", false, []string{"agent", "show", "ag_1"}, ""},
		{"accepts an agent join", true, []string{"join", "--controller", "c:3001", "--ca-pin", "sha256:x", "--data-dir", "/d"}, ""},
		{"refuses an unknown flag", false, []string{"server", "--data-directory", "/d"}, "unknown flag --data-directory"},
		{"refuses an unknown command", false, []string{"agnt", "list"}, `unknown command "agnt"`},
		{"refuses a command group alone", false, []string{"agent", "join-token"}, "names a command group"},
		{"refuses a flag without its value", false, []string{"agent", "join-token", "create", "--ttl"}, "needs a value"},
		{"refuses a flag of another command", true, []string{"run", "--token", "x"}, "unknown flag --token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := controllerBinary(t)
			if tt.agent {
				b = agentBinary(t)
			}
			_, err := b.check(tt.args)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("check(%q): %v", tt.args, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("check(%q) = %v, want an error containing %q", tt.args, err, tt.wantErr)
			}
		})
	}
}

func TestScriptInvocations(t *testing.T) {
	script := `set -eu
x="$(cat f)"
OPSCONDUCTOR_JOIN_TOKEN="$x" opsconductor-agent join --controller "$C" \
	${NAME:+--name "$NAME"} --data-dir /d
echo opsconductor is not called here
exec /usr/local/bin/opsconductor health --ready
`
	invs, err := scriptInvocations(t, "test.sh", script)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, inv := range invs {
		got = append(got, inv.bin.name+" "+strings.Join(inv.args, " "))
	}
	want := []string{
		"opsconductor-agent join --controller PLACEHOLDER --name PLACEHOLDER --data-dir /d",
		"opsconductor health --ready",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("invocations:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
