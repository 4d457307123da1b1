package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

func execute(t *testing.T, args ...string) (string, error) {
	t.Helper()
	t.Setenv(tokenEnv, "")
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

func TestCommands(t *testing.T) {
	dir := t.TempDir()
	pin := "sha256:" + strings.Repeat("ab", 32)
	cases := []struct {
		name    string
		args    []string
		wantOut string
		wantErr string
		usage   bool
	}{
		{"version prints the binary and version", []string{"version"}, "opsconductor-agent", "", false},
		{"join names every missing flag", []string{"join", "--data-dir", dir}, "", "required: --controller, --token, --ca-pin", true},
		{"join refuses malformed tags", []string{"join", "--controller", "127.0.0.1:1", "--token", "ocj_a_b", "--ca-pin", pin, "--data-dir", dir, "--tags", "x"}, "", `tags[0]: "x" is not key=value`, true},
		{"join refuses a malformed pin", []string{"join", "--controller", "127.0.0.1:1", "--token", "ocj_a_b", "--ca-pin", "sha256:00", "--data-dir", dir}, "", "is not sha256: followed by 64 hex digits", true},
		{"join refuses an unknown flag", []string{"join", "--bogus"}, "", "unknown flag", true},
		{"health names a bad --max-disconnected", []string{"health", "--data-dir", dir, "--max-disconnected", "0s"}, "", "--max-disconnected 0s", true},
		{"health says when no agent runs", []string{"health", "--data-dir", dir}, "", "the agent is not running: no status file", false},
		{"join reports an unreachable controller", []string{"join", "--controller", "127.0.0.1:1", "--token", "ocj_a_b", "--ca-pin", pin, "--data-dir", dir}, "checking the CA of the controller at 127.0.0.1:1 against the pin", "no controller reachable", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := execute(t, c.args...)
			if !strings.Contains(out, c.wantOut) {
				t.Errorf("output %q, want %q", out, c.wantOut)
			}
			if c.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("err = %v, want %q", err, c.wantErr)
			}
			var ue usageError
			if errors.As(err, &ue) != c.usage {
				t.Fatalf("usage error = %v, want %v", !c.usage, c.usage)
			}
		})
	}
}
