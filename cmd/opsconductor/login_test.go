package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opsconductor/opsconductor/controller/apiclient"
	"github.com/opsconductor/opsconductor/controller/config"
	"github.com/opsconductor/opsconductor/controller/server"
)

// adminPassword passes the password policy.
const adminPassword = "violet-harbour-lantern-42"

// controller is a real controller running in-process for CLI tests.
type controller struct {
	addr    string
	dataDir string
}

// startController runs a single-server controller and waits until it is
// ready (the first admin and a signing key exist). An empty password makes
// the server generate one, as on a first start without configuration.
func startController(t *testing.T, password string) *controller {
	t.Helper()
	return runController(t, password, nil)
}

// runController is startController with a change to the configuration.
func runController(t *testing.T, password string, mut func(*config.Server)) *controller {
	t.Helper()
	dir := t.TempDir()
	cfg := config.Server{
		DataDir: dir, HTTPAddr: "127.0.0.1:0", AgentAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0",
		LogLevel: "info", LogFormat: "json", MaxBodyBytes: 1 << 20, ApplyHold: 5 * time.Second,
		RateRead: 1000, RateWrite: 1000, RateOperator: 1000, RateLogin: 1000, Batching: true,
		BootstrapAdminPassword: password,
	}
	if mut != nil {
		mut(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	readyCh := make(chan server.Ready, 1)
	done := make(chan error, 1)
	go func() {
		done <- server.Run(ctx, cfg, slog.New(slog.DiscardHandler), io.Discard, func(r server.Ready) { readyCh <- r })
	}()
	var r server.Ready
	select {
	case r = <-readyCh:
	case err := <-done:
		cancel()
		t.Fatalf("controller exited before it was up: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("controller stopped with: %v", err)
		}
	})
	c, err := apiclient.New(r.HTTPAddr)
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer wcancel()
	if err := c.WaitReady(wctx, nil); err != nil {
		t.Fatal(err)
	}
	return &controller{addr: c.Address(), dataDir: dir}
}

// cliEnv points the CLI's stored logins at a fresh directory and clears
// the variables that would override flags.
func cliEnv(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", dir)
	t.Setenv("HOME", dir)
	t.Setenv(apiclient.EnvConfigDir, "")
	t.Setenv(envToken, "")
	t.Setenv(config.EnvName("addr"), "")
	return filepath.Join(dir, "opsconductor", apiclient.CredentialsFileName)
}

// runIn runs the CLI with stdin and returns stdout and stderr apart.
func runIn(t *testing.T, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	root := newRoot()
	var out, errOut bytes.Buffer
	root.SetIn(strings.NewReader(stdin))
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err = root.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

// must runs the CLI and fails the test on an error.
func must(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, errOut, err := runIn(t, stdin, args...)
	if err != nil {
		t.Fatalf("opsconductor %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

func readCredentials(t *testing.T, path string) map[string]apiclient.Credentials {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Servers map[string]apiclient.Credentials `json:"servers"`
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	return f.Servers
}

func writeCredentials(t *testing.T, path, addr string, edit func(*apiclient.Credentials)) {
	t.Helper()
	store := apiclient.NewCredentialStore(path)
	c, ok, err := store.Get(addr)
	if err != nil || !ok {
		t.Fatalf("no stored login for %s: %v", addr, err)
	}
	edit(&c)
	if err := store.Put(addr, c); err != nil {
		t.Fatal(err)
	}
}

func TestLoginWhoamiTokensAndLogout(t *testing.T) {
	credPath := cliEnv(t)
	ctl := startController(t, adminPassword)
	addr := "--address=" + ctl.addr

	t.Run("a command before login says how to log in", func(t *testing.T) {
		_, _, err := runIn(t, "", "whoami", addr)
		if err == nil || !strings.Contains(err.Error(), "not logged in to "+ctl.addr) || !strings.Contains(err.Error(), "opsconductor login") {
			t.Fatalf("got %v, want advice to log in", err)
		}
	})
	t.Run("a wrong password is refused and nothing is stored", func(t *testing.T) {
		_, _, err := runIn(t, "not-the-password-at-all\n", "login", addr, "--username", "admin", "--password-stdin")
		if err == nil || !strings.Contains(err.Error(), "invalid username or password") || !strings.Contains(err.Error(), "as admin") {
			t.Fatalf("got %v, want the invalid-credentials message", err)
		}
		if _, err := os.Stat(credPath); err == nil {
			if creds := readCredentials(t, credPath); len(creds) != 0 {
				t.Fatalf("a failed login stored %v", creds)
			}
		}
	})
	t.Run("login without a terminal names the flags it needs", func(t *testing.T) {
		_, _, err := runIn(t, "", "login", addr)
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), "--username") {
			t.Fatalf("got %v, want a usage error naming --username", err)
		}
		_, _, err = runIn(t, "", "login", addr, "--username", "admin")
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), "--password-stdin") {
			t.Fatalf("got %v, want a usage error naming --password-stdin", err)
		}
	})

	out := must(t, adminPassword+"\n", "login", addr, "--username", "admin", "--password-stdin")
	if !strings.Contains(out, "Logged in to "+ctl.addr+" as admin") {
		t.Fatalf("login said %q", out)
	}
	info, err := os.Stat(credPath)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file has mode %v, want 0600", info.Mode().Perm())
	}
	if raw, _ := os.ReadFile(credPath); strings.Contains(string(raw), adminPassword) {
		t.Fatal("the credentials file holds the password")
	}

	t.Run("whoami shows the user, roles and permissions", func(t *testing.T) {
		out := must(t, "", "whoami", addr)
		for _, want := range []string{"admin (usr_", "Roles:", "cluster:admin", "session "} {
			if !strings.Contains(out, want) {
				t.Errorf("whoami output lacks %q:\n%s", want, out)
			}
		}
		var me apiclient.Me
		if err := json.Unmarshal([]byte(must(t, "", "whoami", addr, "--json")), &me); err != nil || me.User.Username != "admin" {
			t.Fatalf("whoami --json: %+v %v", me, err)
		}
	})
	t.Run("operator commands use the stored login", func(t *testing.T) {
		if out := must(t, "", "operator", "check", "write", "--count", "3", addr); !strings.Contains(out, "3 writes committed") {
			t.Fatalf("check write said %q", out)
		}
		if out := must(t, "", "operator", "raft", "list-peers", addr); !strings.Contains(out, "leader") {
			t.Fatalf("list-peers said %q", out)
		}
		if out := must(t, "", "operator", "signing-keys", "list", addr); !strings.Contains(out, "active") {
			t.Fatalf("signing-keys list said %q", out)
		}
		snap := filepath.Join(t.TempDir(), "state.snap")
		if out := must(t, "", "operator", "snapshot", "save", snap, addr); !strings.Contains(out, "Saved snapshot") {
			t.Fatalf("snapshot save said %q", out)
		}
	})

	var secret, tokenID string
	t.Run("an API token is printed once and then authenticates alone", func(t *testing.T) {
		out, errOut, err := runIn(t, "", "token", "create", addr, "--name", "ci", "--role", "viewer")
		if err != nil {
			t.Fatal(err)
		}
		secret = strings.TrimSpace(out)
		if !strings.HasPrefix(secret, "oct_") || !strings.Contains(errOut, "shown only now") {
			t.Fatalf("token create printed %q / %q", out, errOut)
		}
		tokenID = strings.Fields(strings.TrimPrefix(errOut, "Created API token "))[0]
		out = must(t, "", "whoami", addr, "--token", secret)
		if !strings.Contains(out, "API token "+tokenID) {
			t.Fatalf("whoami with the token said %q", out)
		}
		t.Setenv(envToken, secret)
		if out := must(t, "", "whoami", addr); !strings.Contains(out, "API token "+tokenID) {
			t.Fatalf("whoami with %s said %q", envToken, out)
		}
		// The viewer token cannot do what its owner can.
		_, _, err = runIn(t, "", "operator", "raft", "list-peers", addr)
		var apiErr *apiclient.Error
		if !errors.As(err, &apiErr) || apiErr.Status != 403 {
			t.Fatalf("viewer token on an operator route: %v, want 403", err)
		}
		t.Setenv(envToken, "")
		if out := must(t, "", "token", "list", addr); !strings.Contains(out, tokenID) || !strings.Contains(out, "ci") {
			t.Fatalf("token list said %q", out)
		}
	})
	t.Run("a revoked token is refused with advice", func(t *testing.T) {
		if out := must(t, "", "token", "revoke", tokenID, addr); !strings.Contains(out, "Revoked API token "+tokenID) {
			t.Fatalf("revoke said %q", out)
		}
		_, _, err := runIn(t, "", "whoami", addr, "--token", secret)
		if err == nil || !strings.Contains(err.Error(), "the token from --token was refused") {
			t.Fatalf("got %v, want the refused-token advice", err)
		}
	})
	t.Run("users and roles are managed", func(t *testing.T) {
		out := must(t, "", "user", "create", "alice", addr, "--role", "viewer", "--display-name", "Alice Example")
		if !strings.Contains(out, "Created user alice") || !strings.Contains(out, "Initial password: ") {
			t.Fatalf("user create said %q", out)
		}
		if out := must(t, "", "user", "list", addr); !strings.Contains(out, "alice") || !strings.Contains(out, "must change password") {
			t.Fatalf("user list said %q", out)
		}
		if out := must(t, "", "user", "update", "alice", addr, "--disable"); !strings.Contains(out, "Disabled:              yes") {
			t.Fatalf("user update said %q", out)
		}
		var users []apiclient.User
		if err := json.Unmarshal([]byte(must(t, "", "user", "list", addr, "--json", "--disabled", "true")), &users); err != nil || len(users) != 1 || users[0].Username != "alice" {
			t.Fatalf("user list --json --disabled true: %+v %v", users, err)
		}
		must(t, "", "user", "delete", "alice", addr)
		must(t, "", "role", "create", "reader", addr, "--permission", "audit:read,users:read", "--description", "reads")
		if out := must(t, "", "role", "list", addr); !strings.Contains(out, "reader") || !strings.Contains(out, "built-in") {
			t.Fatalf("role list said %q", out)
		}
		must(t, "", "role", "delete", "reader", addr)
		if out := must(t, "", "session", "list", addr); !strings.Contains(out, " *") {
			t.Fatalf("session list does not mark the current session:\n%s", out)
		}
	})
	t.Run("logout ends the session and forgets it", func(t *testing.T) {
		old := readCredentials(t, credPath)[ctl.addr]
		if out := must(t, "", "logout", addr); !strings.Contains(out, "Logged out of "+ctl.addr) {
			t.Fatalf("logout said %q", out)
		}
		if _, ok := readCredentials(t, credPath)[ctl.addr]; ok {
			t.Fatal("the login is still stored")
		}
		// The server ended the session: its access token no longer works.
		_, _, err := runIn(t, "", "whoami", addr, "--token", old.AccessToken)
		if err == nil {
			t.Fatal("the logged-out session's access token still works")
		}
		if out := must(t, "", "logout", addr); !strings.Contains(out, "Not logged in") {
			t.Fatalf("second logout said %q", out)
		}
	})
}

func TestStoredLoginRefreshesTransparently(t *testing.T) {
	credPath := cliEnv(t)
	ctl := startController(t, adminPassword)
	addr := "--address=" + ctl.addr
	must(t, adminPassword+"\n", "login", addr, "--username", "admin", "--password-stdin")
	first := readCredentials(t, credPath)[ctl.addr]

	t.Run("a rejected access token is refreshed once and the request repeated", func(t *testing.T) {
		writeCredentials(t, credPath, ctl.addr, func(c *apiclient.Credentials) { c.AccessToken = "not-a-jwt" })
		if out := must(t, "", "whoami", addr); !strings.Contains(out, "admin") {
			t.Fatalf("whoami said %q", out)
		}
		now := readCredentials(t, credPath)[ctl.addr]
		if now.AccessToken == "not-a-jwt" || now.RefreshToken == first.RefreshToken || now.SessionID != first.SessionID {
			t.Fatalf("after refresh: %+v (before %+v)", now, first)
		}
	})
	t.Run("an access token about to expire is refreshed before use", func(t *testing.T) {
		before := readCredentials(t, credPath)[ctl.addr]
		writeCredentials(t, credPath, ctl.addr, func(c *apiclient.Credentials) { c.AccessExpiresAt = time.Now().Add(-time.Minute) })
		must(t, "", "whoami", addr)
		after := readCredentials(t, credPath)[ctl.addr]
		if after.RefreshToken == before.RefreshToken || !after.AccessExpiresAt.After(time.Now()) {
			t.Fatalf("no refresh: before %+v after %+v", before, after)
		}
	})
	t.Run("concurrent commands refresh once and all succeed", func(t *testing.T) {
		before := readCredentials(t, credPath)[ctl.addr]
		writeCredentials(t, credPath, ctl.addr, func(c *apiclient.Credentials) { c.AccessToken = "expired" })
		var wg sync.WaitGroup
		errs := make([]error, 4)
		for i := range errs {
			wg.Go(func() {
				root := newRoot()
				root.SetOut(io.Discard)
				root.SetErr(io.Discard)
				root.SetArgs([]string{"whoami", addr})
				errs[i] = root.ExecuteContext(context.Background())
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("command %d: %v", i, err)
			}
		}
		if after := readCredentials(t, credPath)[ctl.addr]; after.RefreshToken == before.RefreshToken || after.AccessToken == "expired" {
			t.Fatalf("credentials not refreshed: %+v", after)
		}
	})
	t.Run("a reused refresh token ends the login with advice", func(t *testing.T) {
		writeCredentials(t, credPath, ctl.addr, func(c *apiclient.Credentials) {
			c.AccessToken = "expired"
			c.RefreshToken = first.RefreshToken // already rotated away
		})
		_, _, err := runIn(t, "", "whoami", addr)
		var lre *apiclient.LoginRequiredError
		if !errors.As(err, &lre) || !strings.Contains(err.Error(), "log in again: opsconductor login --address "+ctl.addr) {
			t.Fatalf("got %v, want a login-required error with advice", err)
		}
		if _, ok := readCredentials(t, credPath)[ctl.addr]; ok {
			t.Fatal("the dead login is still stored")
		}
	})
}

func TestMustChangePasswordFlow(t *testing.T) {
	cliEnv(t)
	ctl := startController(t, "")
	addr := "--address=" + ctl.addr
	raw, err := os.ReadFile(filepath.Join(ctl.dataDir, server.BootstrapPasswordFile))
	if err != nil {
		t.Fatal(err)
	}
	generated := strings.TrimSpace(string(raw))

	out, errOut, err := runIn(t, generated+"\n", "login", addr, "--username", "admin", "--password-stdin")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "Logged in") || !strings.Contains(errOut, "must be changed") || !strings.Contains(errOut, "opsconductor password") {
		t.Fatalf("login said %q / %q", out, errOut)
	}
	if out := must(t, "", "whoami", addr); !strings.Contains(out, "must be changed") {
		t.Fatalf("whoami said %q", out)
	}
	_, _, err = runIn(t, "", "user", "list", addr)
	if code(err) != "password_change_required" || !strings.Contains(err.Error(), "opsconductor password") {
		t.Fatalf("user list before the change: %v", err)
	}
	t.Run("a new password that breaks the policy is refused with the rule", func(t *testing.T) {
		_, _, err := runIn(t, generated+"\nshort\n", "password", addr, "--password-stdin")
		var apiErr *apiclient.Error
		if !errors.As(err, &apiErr) || apiErr.Status != 400 || !strings.Contains(err.Error(), "new_password") {
			t.Fatalf("got %v, want a 400 naming new_password", err)
		}
	})
	t.Run("a wrong current password is refused", func(t *testing.T) {
		_, _, err := runIn(t, "wrong-current-password\n"+adminPassword+"\n", "password", addr, "--password-stdin")
		if code(err) != "wrong_password" {
			t.Fatalf("got %v, want wrong_password", err)
		}
	})
	if out := must(t, generated+"\n"+adminPassword+"\n", "password", addr, "--password-stdin"); !strings.Contains(out, "Password changed") {
		t.Fatalf("password said %q", out)
	}
	if out := must(t, "", "user", "list", addr); !strings.Contains(out, "admin") {
		t.Fatalf("user list after the change said %q", out)
	}
	// The new password logs in without the restriction.
	_, errOut, err = runIn(t, adminPassword+"\n", "login", addr, "--username", "admin", "--password-stdin")
	if err != nil || strings.Contains(errOut, "must be changed") {
		t.Fatalf("login with the new password: %v %q", err, errOut)
	}
}

func TestKeyringInit(t *testing.T) {
	file := filepath.Join(t.TempDir(), "keyring.key")
	if out := must(t, "", "operator", "keyring", "init", "--file", file); !strings.Contains(out, "--keyring-file "+file) {
		t.Fatalf("keyring init said %q", out)
	}
	if info, err := os.Stat(file); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("keyring file: %v %v", info, err)
	}
	if _, _, err := runIn(t, "", "operator", "keyring", "init", "--file", file); err == nil {
		t.Fatal("keyring init overwrote an existing file")
	}
	_, _, err := runIn(t, "", "operator", "keyring", "init")
	var ue usageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "--file") {
		t.Fatalf("got %v, want a usage error naming --file", err)
	}
}
