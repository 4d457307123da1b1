package server

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/crypto/ssh"

	"github.com/opsconductor/opsconductor/controller/apiclient"
	"github.com/opsconductor/opsconductor/controller/history"
	"github.com/opsconductor/opsconductor/controller/history/postgres/pgtest"
	"github.com/opsconductor/opsconductor/controller/keyring"
)

// plaintextForms are the ways a secret could leak into bytes at rest:
// itself, and its base64 (as JSON encodes []byte), padded or not.
func plaintextForms(secret string) [][]byte {
	return [][]byte{[]byte(secret), []byte(base64.StdEncoding.EncodeToString([]byte(secret))),
		[]byte(base64.RawStdEncoding.EncodeToString([]byte(secret))), []byte(base64.URLEncoding.EncodeToString([]byte(secret)))}
}

func assertNoPlaintext(t *testing.T, where string, data []byte, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		for _, form := range plaintextForms(s) {
			if bytes.Contains(data, form) {
				t.Errorf("%s holds the secret %q (as %q)", where, s, form)
			}
		}
	}
}

// TestCredentialsLeaveNoPlaintextAtRest stores secrets, rotates the
// keyring, uses a credential through a step whose output prints the
// secret, and then greps every byte a controller keeps: a state snapshot,
// every file in the data directory (the Raft log raft.db, Raft
// snapshots, the embedded history store) and the API's answers.
// useCredentialsThroughAStep rotates the keyring, stores three
// credentials and uses one through a step on the dev server's agent whose
// output prints the password; it checks the output is masked and returns
// the secret strings that must appear nowhere at rest.
func useCredentialsThroughAStep(ctx context.Context, t *testing.T, r *running) []string {
	t.Helper()
	const (
		password   = "Pw-9f3c1e7a-plaintext"
		token      = "Tok-0b6d44e2-plaintext"
		passphrase = "Phrase-5a8e-plaintext"
	)
	if _, err := r.client.RotateKeyring(ctx); err != nil {
		t.Fatal(err)
	}
	key := sshKeyPEM(t, passphrase)
	for _, in := range []apiclient.CredentialInput{
		{Name: "db", Kind: "password", Username: "app", Secret: &apiclient.CredentialSecret{Password: password}},
		{Name: "api", Kind: "token", Secret: &apiclient.CredentialSecret{Token: token}},
		{Name: "ssh", Kind: "ssh_key", Username: "root", Secret: &apiclient.CredentialSecret{PrivateKey: key, Passphrase: passphrase}},
	} {
		if _, err := r.client.CreateCredential(ctx, in); err != nil {
			t.Fatalf("create %s: %v", in.Name, err)
		}
	}
	keyLine := strings.Split(key, "\n")[1] // a line of the key's base64 body

	local := waitLocalAgent(ctx, t, r)
	// The command prints the password without holding it (params are
	// stored in the state like any attempt's): only masking keeps it out
	// of the output.
	half := len(password) / 2
	at, err := r.client.RunStep(ctx, local.ID, apiclient.StepSpec{Uses: "shell",
		With:        json.RawMessage(fmt.Sprintf(`{"command":"printf 'before %%s%%s after\\n' '%s' '%s'"}`, password[:half], password[half:])),
		Credentials: map[string]string{"db": "db"}, Timeout: "30s"})
	if err != nil {
		t.Fatal(err)
	}
	if at.Credentials["db"] != "db" {
		t.Fatalf("the attempt does not name its credential: %+v", at.Credentials)
	}
	poll(ctx, t, "the step to finish", func() error {
		got, err := r.client.GetAttempt(ctx, at.ID)
		if err == nil && got.Status != "succeeded" {
			err = fmt.Errorf("status %s (%s)", got.Status, got.Error)
		}
		return err
	})
	log, err := r.client.AttemptLog(ctx, at.ID, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(log.Items) != 1 || !strings.HasPrefix(log.Items[0].Data, "before ") || !strings.HasSuffix(log.Items[0].Data, " after\n") {
		t.Fatalf("log = %+v", log.Items)
	}
	if strings.Contains(log.Items[0].Data, password) {
		t.Fatalf("the secret is in the step output: %q", log.Items[0].Data)
	}

	// A raw command gets its credentials in its environment.
	cmdAt, err := r.client.RunCommand(ctx, local.ID, apiclient.CommandSpec{Credentials: map[string]string{"db": "db"},
		Shell: `echo "user=$OPSCONDUCTOR_SECRET_DB_USERNAME pw=$OPSCONDUCTOR_SECRET_DB_PASSWORD len=${#OPSCONDUCTOR_SECRET_DB_PASSWORD}"`})
	if err != nil {
		t.Fatal(err)
	}
	poll(ctx, t, "the command to finish", func() error {
		got, err := r.client.GetAttempt(ctx, cmdAt.ID)
		if err == nil && got.Status != "succeeded" {
			err = fmt.Errorf("status %s (%s)", got.Status, got.Error)
		}
		return err
	})
	cmdLog, err := r.client.AttemptLog(ctx, cmdAt.ID, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("user=app pw=*** len=%d\n", len(password)); len(cmdLog.Items) != 1 || cmdLog.Items[0].Data != want {
		t.Fatalf("command log = %+v, want %q", cmdLog.Items, want)
	}
	return []string{password, token, passphrase, keyLine}
}

func TestCredentialsLeaveNoPlaintextAtRest(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.Dev = true
	r := start(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	secrets := useCredentialsThroughAStep(ctx, t, r)

	var answers bytes.Buffer
	list, err := r.client.ListCredentials(ctx, apiclient.CredentialFilter{})
	if err != nil || len(list) != 3 {
		t.Fatalf("list = %d, %v", len(list), err)
	}
	json.NewEncoder(&answers).Encode(list)
	for _, n := range []string{"db", "api", "ssh"} {
		c, err := r.client.GetCredential(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		json.NewEncoder(&answers).Encode(c)
	}
	assertNoPlaintext(t, "the API's answers", answers.Bytes(), secrets...)

	var snap bytes.Buffer
	if _, err := r.client.SnapshotSave(ctx, &snap, false); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(snap.Bytes(), []byte(`"dek"`)) {
		t.Fatal("the snapshot holds no envelope: the test is not looking at the credentials")
	}
	assertNoPlaintext(t, "the state snapshot", snap.Bytes(), secrets...)

	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	var files []string
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		files = append(files, path)
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		assertNoPlaintext(t, path, data, secrets...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"raft.db", filepath.Join("history", "history.db")} {
		found := false
		for _, f := range files {
			found = found || strings.HasSuffix(f, want)
		}
		if !found {
			t.Errorf("no %s in the data dir (%v): the test is not looking where the secrets would be", want, files)
		}
	}
}

// TestAWrongKeyFileStopsTheController: a controller restarted with a key
// file that cannot open the cluster's key-encryption keys refuses to run,
// naming the key.
func TestAWrongKeyFileStopsTheController(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	r := start(t, cfg)
	ctx := context.Background()
	kek, err := r.client.RotateKeyring(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.client.CreateCredential(ctx, apiclient.CredentialInput{Name: "api", Kind: "token",
		Secret: &apiclient.CredentialSecret{Token: "t"}}); err != nil {
		t.Fatal(err)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}

	other, err := keyring.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	cfg.KeyringEnv = other
	runCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Run(runCtx, cfg, slog.New(slog.DiscardHandler), io.Discard, nil) }()
	select {
	case err = <-done:
	case <-runCtx.Done():
		t.Fatal("the controller kept running with the wrong key file")
	}
	if err == nil || !strings.Contains(err.Error(), kek.ID) || !strings.Contains(err.Error(), "key file") {
		t.Fatalf("Run = %v, want a refusal naming key %s and the key file", err, kek.ID)
	}
}

// TestKeyringRotationOverTheAPI rotates twice and waits for the leader's
// background re-wrap; the first KEK then wraps nothing and is removed,
// and every credential still opens (a step uses it).
func TestKeyringRotationOverTheAPI(t *testing.T) {
	cfg := testConfig(t.TempDir())
	r := start(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	first, err := r.client.RotateKeyring(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := r.client.CreateCredential(ctx, apiclient.CredentialInput{Name: fmt.Sprintf("c%d", i), Kind: "secret",
			Secret: &apiclient.CredentialSecret{Value: fmt.Sprintf("v%d", i)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.client.RemoveKeyringKey(ctx, first.ID); err == nil {
		t.Fatal("removed the active key")
	}
	second, err := r.client.RotateKeyring(ctx)
	if err != nil {
		t.Fatal(err)
	}
	poll(ctx, t, "the re-wrap", func() error {
		st, err := r.client.Keyring(ctx, true)
		if err != nil {
			return err
		}
		for _, k := range st.Keys {
			if k.ID == first.ID && (!k.Removable || k.State != "retired") {
				return fmt.Errorf("first key %+v, pending %d", k, st.Pending)
			}
			if k.ID == second.ID && k.Envelopes["credentials"] != 5 {
				return fmt.Errorf("second key wraps %v", k.Envelopes)
			}
		}
		return nil
	})
	if err := r.client.RemoveKeyringKey(ctx, first.ID); err != nil {
		t.Fatalf("removing the retired key: %v", err)
	}
	st, err := r.client.Keyring(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range st.Keys {
		if k.ID == first.ID {
			t.Fatalf("the removed key is still listed: %+v", k)
		}
		if k.Tier == "kek" && k.ID == second.ID && (k.Envelopes["identity"] == 0 || k.Envelopes["agents"] != 1) {
			t.Fatalf("the signing key and the agent CA key were not re-wrapped: %+v", k)
		}
	}

	// A restart opens everything from the state again, with no key cached:
	// logins (the re-wrapped signing key), agents (the CA key) and the
	// credentials.
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	again := start(t, cfg)
	list, err := again.client.ListCredentials(ctx, apiclient.CredentialFilter{})
	if err != nil || len(list) != 5 {
		t.Fatalf("after the restart: %d credentials, %v", len(list), err)
	}
}

// sshKeyPEM is a fresh ed25519 key in OpenSSH form, encrypted with
// passphrase.
func sshKeyPEM(t *testing.T, passphrase string) string {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "test", []byte(passphrase))
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(block))
}

// TestCredentialsLeaveNoPlaintextInPostgres is the history half of the
// check against a PostgreSQL history store: every row of every history
// schema, as text (bytea as hex), holds no secret and no hex of one, while
// the credential's use record and the masked step output are there.
func TestCredentialsLeaveNoPlaintextInPostgres(t *testing.T) {
	dsn := pgtest.NewDatabase(t) // skips without OPSCONDUCTOR_TEST_POSTGRES
	cfg := testConfig(t.TempDir())
	cfg.Dev, cfg.History = true, dsn
	r := start(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	secrets := useCredentialsThroughAStep(ctx, t, r)
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}

	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT table_schema, table_name FROM information_schema.tables
		WHERE table_schema = ANY($1) AND table_type = 'BASE TABLE' ORDER BY 1, 2`, history.Domains())
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var schema, table string
		if err := rows.Scan(&schema, &table); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, pgx.Identifier{schema, table}.Sanitize())
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	var all bytes.Buffer
	for _, table := range tables {
		rows, err := conn.Query(ctx, "SELECT t::text FROM "+table+" t")
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var row string
			if err := rows.Scan(&row); err != nil {
				t.Fatal(err)
			}
			all.WriteString(row)
			all.WriteByte('\n')
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Contains(all.Bytes(), []byte("assets.credential_use")) || !bytes.Contains(all.Bytes(), []byte(hex.EncodeToString([]byte("before ")))) {
		t.Fatalf("the history rows (%d bytes in %v) hold no credential use or step output: the test is not looking where the secrets would be", all.Len(), tables)
	}
	for _, s := range secrets {
		assertNoPlaintext(t, "the PostgreSQL history rows", all.Bytes(), s, hex.EncodeToString([]byte(s)))
	}
}

// TestCredentialUseFollowsTheInventory: attachments name real targets and
// groups, and a user whose credentials:use is scoped to group web uses a
// credential attached to a target in web (through the inventory's groups)
// on an agent in web, and no other credential.
func TestCredentialUseFollowsTheInventory(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.Dev = true
	r := start(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	local := waitLocalAgent(ctx, t, r)
	members := []string{local.Name}
	if _, err := r.client.CreateGroup(ctx, apiclient.GroupInput{Name: "web", Kind: "static", Members: &members}); err != nil {
		t.Fatal(err)
	}
	for _, in := range []apiclient.CredentialInput{
		{Name: "web-login", Kind: "password", Username: "deploy", Secret: &apiclient.CredentialSecret{Password: "web-login-password"}},
		{Name: "other", Kind: "token", Secret: &apiclient.CredentialSecret{Token: "other-token-value"}},
	} {
		if _, err := r.client.CreateCredential(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.client.AttachCredential(ctx, "web-login", "targets", local.Name, "ssh"); err != nil {
		t.Fatal(err)
	}
	var apiErr *apiclient.Error
	if _, err := r.client.AttachCredential(ctx, "web-login", "groups", "no-such-group", "ssh"); !errors.As(err, &apiErr) || apiErr.Status != 404 {
		t.Fatalf("attaching to an unknown group: %v, want 404", err)
	}

	if _, err := r.client.CreateRole(ctx, apiclient.Role{Name: "stepper", Permissions: []string{"agents:admin", "credentials:use"}}); err != nil {
		t.Fatal(err)
	}
	no := false
	if _, err := r.client.CreateUser(ctx, apiclient.CreateUserRequest{Username: "webop", Password: "quiet-Meadow-copper-77", MustChangePassword: &no,
		Roles: []apiclient.RoleBinding{{Role: "stepper", Scope: &apiclient.Scope{Groups: []string{"web"}}}}}); err != nil {
		t.Fatal(err)
	}
	tok, err := r.client.Login(ctx, apiclient.LoginRequest{Username: "webop", Password: "quiet-Meadow-copper-77"})
	if err != nil {
		t.Fatal(err)
	}
	webop, err := apiclient.New(r.ready.HTTPAddr, apiclient.WithToken(tok.AccessToken))
	if err != nil {
		t.Fatal(err)
	}
	step := func(cred string) error {
		_, err := webop.RunStep(ctx, local.ID, apiclient.StepSpec{Uses: "noop@1", Credentials: map[string]string{"c": cred}})
		return err
	}
	if err := step("web-login"); err != nil {
		t.Fatalf("a credential attached to a target in the user's group: %v", err)
	}
	if err := step("other"); !errors.As(err, &apiErr) || apiErr.Status != 403 || apiErr.Code != "credential_out_of_scope" {
		t.Fatalf("a credential outside the user's group: %v, want 403 credential_out_of_scope", err)
	}
}
