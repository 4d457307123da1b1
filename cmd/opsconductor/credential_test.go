package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/opsconductor/opsconductor/controller/apiclient"
)

func writeSecretFile(t *testing.T, name, content string, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCredentialVerbsNeverPrintSecrets(t *testing.T) {
	cliEnv(t)
	ctl := startController(t, adminPassword)
	addr := "--address=" + ctl.addr
	must(t, adminPassword+"\n", "login", addr, "--username", "admin", "--password-stdin")

	const (
		password   = "cli-Pa55word-never-shown"
		token      = "cli-t0ken-never-shown"
		passphrase = "cli-phrase-never-shown"
	)
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "cli", []byte(passphrase))
	if err != nil {
		t.Fatal(err)
	}
	key := string(pem.EncodeToMemory(block))
	keyFile := writeSecretFile(t, "id_ed25519", key, 0o600)
	phraseFile := writeSecretFile(t, "phrase", passphrase+"\n", 0o600)
	pwFile := writeSecretFile(t, "pw", password+"\n", 0o600)
	var printed strings.Builder
	run := func(stdin string, args ...string) string {
		t.Helper()
		out := must(t, stdin, append(args, addr)...)
		printed.WriteString(out)
		return out
	}

	run("", "credential", "create", "db", "--kind", "password", "--username", "app", "--tag", "env=prod", "--password-file", pwFile)
	run(token+"\n", "credential", "create", "api", "--kind", "token", "--stdin", "--description", "the API")
	out := run("", "credential", "create", "deploy", "--kind", "ssh_key", "--username", "deploy", "--key-file", keyFile, "--passphrase-file", phraseFile)
	pub, err := ssh.NewPublicKey(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, ssh.FingerprintSHA256(pub)) {
		t.Fatalf("create deploy did not print the key's fingerprint:\n%s", out)
	}

	refused := []struct {
		name  string
		stdin string
		args  []string
		want  string
	}{
		{"a secret given as a flag value", "", []string{"credential", "create", "x", "--kind", "password", "--username", "u", "--password", "p"}, "unknown flag"},
		{"a password without a source when stdin is not a terminal", "", []string{"credential", "create", "x", "--kind", "password", "--username", "u"}, "--stdin"},
		{"a world-readable secret file", "", []string{"credential", "create", "x", "--kind", "token", "--token-file",
			writeSecretFile(t, "open", "t\n", 0o644)}, "readable by everyone"},
		{"a file flag the kind does not use", "", []string{"credential", "create", "x", "--kind", "token", "--stdin", "--password-file", pwFile}, "--password-file is not used"},
		{"a create without a kind", "", []string{"credential", "create", "x", "--stdin"}, "--kind is required"},
	}
	for _, tc := range refused {
		t.Run("create refuses "+tc.name, func(t *testing.T) {
			_, _, err := runIn(t, tc.stdin, append(tc.args, addr)...)
			var ue usageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want a usage error mentioning %q", err, tc.want)
			}
		})
	}

	out = run("", "credential", "list")
	for _, name := range []string{"db", "api", "deploy", "env=prod", "never"} {
		if !strings.Contains(out, name) {
			t.Errorf("list does not show %q:\n%s", name, out)
		}
	}
	var listed []apiclient.Credential
	if err := json.Unmarshal([]byte(run("", "credential", "list", "--json", "--kind", "password")), &listed); err != nil || len(listed) != 1 || listed[0].Name != "db" {
		t.Fatalf("list --json --kind password = %+v, %v", listed, err)
	}

	run("", "credential", "replace", "db", "--username", "app2", "--tag", "tier=db")
	run("new-"+password+"\n", "credential", "replace", "db", "--new-secret", "--stdin")
	// Attachments name something that exists.
	run("", "asset", "group", "create", "web", "--selector", "role=web")
	run("", "credential", "attach", "db", "groups", "web", "--role", "ssh")
	out = run("", "credential", "show", "db")
	for _, want := range []string{"app2", "env=prod", "tier=db", "group web (ssh)"} {
		if !strings.Contains(out, want) {
			t.Errorf("show after replace and attach lacks %q:\n%s", want, out)
		}
	}
	run("", "credential", "detach", "db", "groups", "web", "--role", "ssh")
	run("", "credential", "delete", "api")
	if _, _, err := runIn(t, "", "credential", "show", "api", addr); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("show of a deleted credential: %v", err)
	}

	out = run("", "operator", "keyring", "rotate", "--wait")
	if !strings.Contains(out, "every envelope is under it") || !strings.Contains(out, "pending re-wrap: 0") {
		t.Fatalf("rotate --wait printed:\n%s", out)
	}
	var st apiclient.KeyringStatus
	if err := json.Unmarshal([]byte(run("", "operator", "keyring", "list", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	var kek apiclient.KeyringKey
	for _, k := range st.Keys {
		if k.Tier == "kek" && k.ID == st.Active {
			kek = k
		}
	}
	if kek.Envelopes["credentials"] != 2 {
		t.Fatalf("the active KEK wraps %v, want both credentials", kek.Envelopes)
	}
	if _, _, err := runIn(t, "", "operator", "keyring", "remove", kek.ID, addr); err == nil || !strings.Contains(err.Error(), "active") {
		t.Fatalf("removing the active key: %v", err)
	}
	run("", "operator", "keyring", "rotate", "--wait")
	run("", "operator", "keyring", "remove", kek.ID)

	for _, secret := range []string{password, token, passphrase, strings.Split(key, "\n")[1]} {
		if strings.Contains(printed.String(), secret) {
			t.Errorf("the CLI printed a secret: %q", secret)
		}
	}
}
