package server

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/opsconductor/opsconductor/controller/communication/audit"
	"github.com/opsconductor/opsconductor/controller/config"
	"github.com/opsconductor/opsconductor/controller/gateway"
	"github.com/opsconductor/opsconductor/controller/identity"
	"github.com/opsconductor/opsconductor/controller/identity/password"
	"github.com/opsconductor/opsconductor/controller/keyring"
	"github.com/opsconductor/opsconductor/controller/state"
)

// BootstrapPasswordFile is where a generated first-admin password is
// written (0600) until the admin changes it.
const BootstrapPasswordFile = "bootstrap-admin-password"

// loadKeyring reads the key-encryption keys: OPSCONDUCTOR_KEYRING_KEY, the
// --keyring-file, or DATA/keyring.key (created on a single server's first
// start).
func loadKeyring(cfg config.Server, log *slog.Logger) (*keyring.Keyring, error) {
	getenv := func(name string) string {
		if name == keyring.EnvKey {
			return cfg.KeyringEnv
		}
		return ""
	}
	if cfg.KeyringFile != "" {
		kr, err := keyring.Load(cfg.KeyringFile, getenv)
		if err != nil {
			return nil, fmt.Errorf("--keyring-file: %w", err)
		}
		return kr, nil
	}
	kr, created, err := keyring.LoadOrCreate(filepath.Join(cfg.DataDir, "keyring.key"), getenv)
	if err != nil {
		return nil, fmt.Errorf("keyring in --data-dir: %w", err)
	}
	if created {
		log.Info("created the keyring", "path", filepath.Join(cfg.DataDir, "keyring.key"),
			"hint", "back this file up with the data dir: without it the secrets in snapshots cannot be opened")
	}
	return kr, nil
}

// newIdentity builds the identity service from the server configuration.
func newIdentity(cfg config.Server, applier identity.Applier, store *state.Store, kr keyring.Sealer, auditLog *audit.Log, log *slog.Logger) (*identity.Service, error) {
	// Each argon2id hash holds 19 MiB; two per core bounds that memory and
	// keeps logins from starving the rest of the controller.
	hasher, err := password.NewHasher(password.DefaultParams, 2*runtime.GOMAXPROCS(0))
	if err != nil {
		return nil, err
	}
	return identity.New(identity.Config{
		AccessTTL: cfg.AccessTokenTTL, RefreshIdle: cfg.SessionIdleTimeout, RefreshMax: cfg.SessionMaxLifetime,
		KeyRotation: cfg.SigningKeyRotation,
	}, identity.Deps{Applier: applier, Store: store, Keyring: kr, Hasher: hasher, Logger: log.With("component", "identity"),
		Audit: identityAudit(auditLog, log)})
}

// identityAudit writes the identity service's events (logins and their
// failures, refresh-token reuse, user and role changes) to the audit log.
func identityAudit(l *audit.Log, log *slog.Logger) func(context.Context, identity.AuditEvent) {
	if l == nil {
		return nil
	}
	return func(ctx context.Context, e identity.AuditEvent) {
		entry := audit.Entry{Actor: e.Actor, ActorType: audit.ActorUser, SourceIP: e.SourceIP, Action: e.Action, Resource: e.Target,
			Outcome: e.Outcome, RequestID: gateway.RequestID(ctx)}
		if entry.Actor == "" {
			entry.Actor = "anonymous"
		}
		if e.Detail != "" {
			entry.Diff = map[string]any{"detail": e.Detail}
		}
		// A client that hung up must not cancel the record of what it did.
		if _, err := l.Append(context.WithoutCancel(ctx), entry); err != nil {
			log.Error("an identity event was not recorded in the audit log", "action", e.Action, "actor", e.Actor, "error", err)
		}
	}
}

// bootstrapPassword returns the first admin's password and whether it was
// generated.
func bootstrapPassword(cfg config.Server) (string, bool, error) {
	switch {
	case cfg.BootstrapAdminPassword != "":
		return cfg.BootstrapAdminPassword, false, nil
	case cfg.BootstrapAdminPasswordFile != "":
		b, err := os.ReadFile(cfg.BootstrapAdminPasswordFile)
		if err != nil {
			return "", false, fmt.Errorf("--bootstrap-admin-password-file: %w", err)
		}
		pw := strings.TrimRight(string(b), "\r\n")
		if pw == "" {
			return "", false, errors.New("--bootstrap-admin-password-file: the file is empty")
		}
		return pw, false, nil
	}
	pw, err := generatePassword()
	return pw, true, err
}

// identityMaintainer runs identity's background work. On the leader it
// creates the first admin and signing key and then rotates and prunes; on
// every node it removes the bootstrap password file once the admin has
// changed the password.
type identityMaintainer struct {
	svc      *identity.Service
	cfg      config.Server
	isLeader func() bool
	log      *slog.Logger
	console  io.Writer
}

func (m *identityMaintainer) run(ctx context.Context) {
	// Poll fast until logins work, then slowly: rotation works in hours.
	var interval time.Duration
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := m.once(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("identity maintenance", "error", err)
		}
		// Slow down once logins work and no bootstrap password file waits
		// to be removed.
		interval = 200 * time.Millisecond
		if m.svc.Ready(ctx) == nil {
			interval = 30 * time.Second
			if _, err := os.Stat(filepath.Join(m.cfg.DataDir, BootstrapPasswordFile)); err == nil {
				interval = time.Second
			}
		}
		t.Reset(interval)
	}
}

func (m *identityMaintainer) once(ctx context.Context) error {
	m.removeBootstrapFile()
	if !m.isLeader() {
		return nil
	}
	if !m.svc.Bootstrapped() {
		pw, generated, err := bootstrapPassword(m.cfg)
		if err != nil {
			return err
		}
		res, err := m.svc.Bootstrap(ctx, pw, generated)
		if err != nil {
			return fmt.Errorf("create the first admin: %w", err)
		}
		if res.Created && generated {
			if err := m.announce(pw); err != nil {
				return err
			}
		}
		if res.Created {
			m.log.Info("created the first admin user", "username", res.User.Username, "generated_password", generated)
		}
		// The first start's only argon2id hash leaves 19 MiB of freed heap
		// that the runtime would return to the OS only slowly; a controller
		// then sits idle, so hand it back now.
		debug.FreeOSMemory()
	}
	return m.svc.Maintain(ctx)
}

// announce prints a generated password once, on the console rather than
// in the structured log (which is shipped and kept), and leaves it in a
// 0600 file for scripts until the admin changes it.
func (m *identityMaintainer) announce(pw string) error {
	path := filepath.Join(m.cfg.DataDir, BootstrapPasswordFile)
	if err := os.WriteFile(path, []byte(pw+"\n"), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	fmt.Fprintf(m.console, "\n"+
		"  OpsConductor created the first admin user.\n"+
		"    username: admin\n"+
		"    password: %s\n"+
		"  It is also in %s until you change it; you must change it at first login.\n\n", pw, path)
	m.log.Warn("the first admin's password was generated: it is on the console and in the data dir until changed", "path", path)
	return nil
}

func (m *identityMaintainer) removeBootstrapFile() {
	path := filepath.Join(m.cfg.DataDir, BootstrapPasswordFile)
	if _, err := os.Stat(path); err != nil {
		return
	}
	u, err := m.svc.GetUser(context.Background(), "admin")
	if err != nil || u.MustChangePassword || u.PasswordChangedAt.Equal(u.CreatedAt) {
		return
	}
	if err := os.Remove(path); err == nil {
		m.log.Info("removed the bootstrap password file: the admin has changed the password", "path", path)
	}
}

// generatePassword returns 120 random bits as 20 URL-safe characters.
func generatePassword() (string, error) {
	b := make([]byte, 15)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate password: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
