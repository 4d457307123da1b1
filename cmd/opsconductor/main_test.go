package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

func TestBadInvocationsNameTheProblem(t *testing.T) {
	dir := t.TempDir()
	badYAML := filepath.Join(dir, "bad.yaml")
	typo := filepath.Join(dir, "typo.yaml")
	_ = os.WriteFile(badYAML, []byte("data-dir: [\n"), 0o600)
	_ = os.WriteFile(typo, []byte("data-dir: /x\nhttp-adr: 1\n"), 0o600)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"an unknown flag", []string{"server", "--data-dri", "x"}, "unknown flag: --data-dri"},
		{"a non-numeric bootstrap-expect", []string{"server", "--data-dir", dir, "--bootstrap-expect", "three"}, "--bootstrap-expect"},
		{"a bad duration", []string{"server", "--data-dir", dir, "--apply-hold", "soon"}, "--apply-hold"},
		{"a missing data dir", []string{"server"}, "--data-dir: is required"},
		{"a bad listen address", []string{"server", "--data-dir", dir, "--http-addr", "nohost"}, "--http-addr"},
		{"bootstrap-expect without retry-join", []string{"server", "--data-dir", dir, "--bootstrap-expect", "3"}, "--retry-join"},
		{"a config file that is not YAML", []string{"server", "--config", badYAML}, "not valid YAML"},
		{"a typo in a config file", []string{"server", "--config", typo}, `line 2: unknown setting "http-adr"`},
		{"a missing config file", []string{"server", "--config", filepath.Join(dir, "none.yaml")}, "--config"},
		{"a bad API address", []string{"operator", "raft", "list-peers", "--address", "http://"}, "--address"},
		{"remove-peer without an ID", []string{"operator", "raft", "remove-peer"}, "takes 1 argument"},
		{"a bad check count", []string{"operator", "check", "write", "--count", "0"}, "--count 0"},
	}
	for _, tt := range tests {
		t.Run("it reports "+tt.name, func(t *testing.T) {
			_, err := run(t, tt.args...)
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not mention %q", err, tt.want)
			}
			var ue usageError
			if !errors.As(err, &ue) {
				t.Fatalf("error %q is not a usage error (exit code 2)", err)
			}
		})
	}
}

func TestVersionAndTLSInit(t *testing.T) {
	out, err := run(t, "version")
	if err != nil || !strings.HasPrefix(out, "opsconductor ") {
		t.Fatalf("version: %q %v", out, err)
	}
	dir := t.TempDir()
	if out, err := run(t, "operator", "tls", "init", "--dir", dir); err != nil || !strings.Contains(out, "--tls-ca-cert") {
		t.Fatalf("tls init: %q %v", out, err)
	}
	if _, err := run(t, "operator", "tls", "init", "--dir", dir); err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Fatalf("second tls init: %v", err)
	}
}
