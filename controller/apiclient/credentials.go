package apiclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// TokenSource supplies the bearer credential of each request. An empty
// token sends none.
type TokenSource interface {
	Token(ctx context.Context) (string, error)
}

// Refresher is a TokenSource that can replace a credential the server
// rejected with 401. rejected is the token that was refused, so that a
// source shared by several callers refreshes once, not once per caller.
type Refresher interface {
	TokenSource
	Refresh(ctx context.Context, rejected string) (string, error)
}

type staticToken string

func (t staticToken) Token(context.Context) (string, error) { return string(t), nil }

// Credentials are one login's tokens, as `opsconductor login` stores them.
type Credentials struct {
	Username         string    `json:"username"`
	SessionID        string    `json:"session_id"`
	AccessToken      string    `json:"access_token"`
	AccessExpiresAt  time.Time `json:"access_expires_at"`
	RefreshToken     string    `json:"refresh_token"`
	RefreshExpiresAt time.Time `json:"refresh_expires_at"`
}

// CredentialsFrom turns a login or refresh answer into what is stored.
// The access token's expiry is counted on this machine's clock from the
// server's expires_in, so clock skew between the two does not matter.
func CredentialsFrom(username string, t Tokens, now time.Time) Credentials {
	return Credentials{
		Username: username, SessionID: t.SessionID,
		AccessToken: t.AccessToken, AccessExpiresAt: now.Add(time.Duration(t.ExpiresIn) * time.Second),
		RefreshToken: t.RefreshToken, RefreshExpiresAt: t.RefreshExpiresAt,
	}
}

// refreshMargin is how long before its expiry an access token is
// refreshed without waiting for a 401, so that a long request does not
// start with a token about to lapse.
const refreshMargin = 30 * time.Second

func (c Credentials) accessFresh(now time.Time) bool {
	return c.AccessToken != "" && (c.AccessExpiresAt.IsZero() || now.Add(refreshMargin).Before(c.AccessExpiresAt))
}

// CredentialStore is the credentials file: every stored login, keyed by
// controller address. The file is mode 0600 in a 0700 directory, is
// replaced atomically (write a temporary file, fsync, rename), and every
// read-modify-write holds an exclusive lock on a sibling ".lock" file, so
// that CLI processes refreshing the same login at once do not burn each
// other's single-use refresh token.
type CredentialStore struct {
	path string
}

// CredentialsFileName is the file's name in the configuration directory.
const CredentialsFileName = "credentials.json"

// EnvConfigDir overrides the directory of the credentials file.
const EnvConfigDir = "OPSCONDUCTOR_CONFIG_DIR"

// DefaultCredentialStore is $OPSCONDUCTOR_CONFIG_DIR/credentials.json, or
// credentials.json in the opsconductor directory of the user's
// configuration directory (os.UserConfigDir: $XDG_CONFIG_HOME or
// ~/.config on Linux).
func DefaultCredentialStore() (*CredentialStore, error) {
	dir := os.Getenv(EnvConfigDir)
	if dir == "" {
		base, err := os.UserConfigDir()
		if err != nil {
			return nil, fmt.Errorf("find the configuration directory for stored logins (set %s): %w", EnvConfigDir, err)
		}
		dir = filepath.Join(base, "opsconductor")
	}
	return NewCredentialStore(filepath.Join(dir, CredentialsFileName)), nil
}

// NewCredentialStore uses the credentials file at path.
func NewCredentialStore(path string) *CredentialStore { return &CredentialStore{path: path} }

// Path is the credentials file.
func (s *CredentialStore) Path() string { return s.path }

type credentialsFile struct {
	Version int                    `json:"version"`
	Servers map[string]Credentials `json:"servers"`
}

const credentialsVersion = 1

// Get returns the login stored for address (canonical form, see
// Client.Address).
func (s *CredentialStore) Get(address string) (Credentials, bool, error) {
	f, err := s.read()
	if err != nil {
		return Credentials{}, false, err
	}
	c, ok := f.Servers[address]
	return c, ok, nil
}

// Put stores the login for address, replacing any other.
func (s *CredentialStore) Put(address string, c Credentials) error {
	return s.update(func(f *credentialsFile) (bool, error) {
		f.Servers[address] = c
		return true, nil
	})
}

// Delete removes the login for address and reports whether there was one.
func (s *CredentialStore) Delete(address string) (bool, error) {
	found := false
	err := s.update(func(f *credentialsFile) (bool, error) {
		_, found = f.Servers[address]
		delete(f.Servers, address)
		return found, nil
	})
	return found, err
}

func (s *CredentialStore) read() (*credentialsFile, error) {
	f := &credentialsFile{Version: credentialsVersion, Servers: map[string]Credentials{}}
	raw, err := os.ReadFile(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return f, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read stored logins: %w", err)
	}
	if err := json.Unmarshal(raw, f); err != nil {
		return nil, fmt.Errorf("stored logins in %s are damaged (delete the file and log in again): %w", s.path, err)
	}
	if f.Version != credentialsVersion {
		return nil, fmt.Errorf("stored logins in %s have version %d; this opsconductor reads version %d", s.path, f.Version, credentialsVersion)
	}
	if f.Servers == nil {
		f.Servers = map[string]Credentials{}
	}
	return f, nil
}

// update runs fn on the file's content under the lock and writes the
// result when fn reports a change.
func (s *CredentialStore) update(fn func(*credentialsFile) (bool, error)) error {
	unlock, err := s.lock()
	if err != nil {
		return err
	}
	defer unlock()
	f, err := s.read()
	if err != nil {
		return err
	}
	// fn may change the file and still fail (a dead login is removed and
	// reported), so a change is written either way.
	changed, ferr := fn(f)
	if changed {
		if err := s.write(f); err != nil {
			return errors.Join(ferr, err)
		}
	}
	return ferr
}

func (s *CredentialStore) lock() (func(), error) {
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return nil, fmt.Errorf("create the directory for stored logins: %w", err)
	}
	lf, err := os.OpenFile(s.path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock stored logins: %w", err)
	}
	if err := lockFile(lf); err != nil {
		lf.Close()
		return nil, fmt.Errorf("lock stored logins: %w", err)
	}
	return func() {
		_ = unlockFile(lf)
		lf.Close()
	}, nil
}

func (s *CredentialStore) write(f *credentialsFile) error {
	raw, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("encode stored logins: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(s.path), "."+CredentialsFileName+"-*")
	if err != nil {
		return fmt.Errorf("save stored logins: %w", err)
	}
	defer os.Remove(tmp.Name())
	// CreateTemp makes the file 0600 already; Chmod states it.
	err = errors.Join(tmp.Chmod(0o600), writeAll(tmp, append(raw, '\n')), tmp.Sync(), tmp.Close())
	if err != nil {
		return fmt.Errorf("save stored logins: %w", err)
	}
	if err := os.Rename(tmp.Name(), s.path); err != nil {
		return fmt.Errorf("save stored logins: %w", err)
	}
	return nil
}

func writeAll(f *os.File, b []byte) error {
	_, err := f.Write(b)
	return err
}

// storedSource authenticates with the stored login for its client's
// address and refreshes it on demand.
type storedSource struct {
	store  *CredentialStore
	client *Client
	now    func() time.Time // for tests; nil is time.Now
}

func (s *storedSource) clock() time.Time {
	if s.now != nil {
		return s.now()
	}
	return time.Now()
}

// Token returns the stored access token, refreshing it first when it is
// about to expire. Without a stored login it returns no token: the server
// then answers 401, which names what is missing.
func (s *storedSource) Token(ctx context.Context) (string, error) {
	c, ok, err := s.store.Get(s.client.Address())
	if err != nil || !ok {
		return "", err
	}
	if c.accessFresh(s.clock()) || c.RefreshToken == "" {
		return c.AccessToken, nil
	}
	return s.Refresh(ctx, c.AccessToken)
}

// Refresh replaces the rejected access token. Under the file lock it
// re-reads the file: if another process has stored a newer token in the
// meantime it uses that one; otherwise it spends the refresh token and
// saves the rotated pair before releasing the lock.
func (s *storedSource) Refresh(ctx context.Context, rejected string) (string, error) {
	addr := s.client.Address()
	var token string
	err := s.store.update(func(f *credentialsFile) (bool, error) {
		c, ok := f.Servers[addr]
		if !ok || c.RefreshToken == "" {
			return false, &LoginRequiredError{Address: addr}
		}
		if c.AccessToken != rejected && c.accessFresh(s.clock()) {
			token = c.AccessToken
			return false, nil
		}
		now := s.clock()
		t, err := s.client.Refresh(ctx, c.RefreshToken)
		var apiErr *Error
		if errors.As(err, &apiErr) && apiErr.Status == http.StatusUnauthorized {
			// The session has ended (expired, revoked, or its token was
			// reused): the stored tokens are useless now.
			delete(f.Servers, addr)
			return true, &LoginRequiredError{Address: addr, Username: c.Username, Cause: err}
		}
		if err != nil {
			return false, fmt.Errorf("refresh the stored login for %s: %w", addr, err)
		}
		f.Servers[addr] = CredentialsFrom(c.Username, t, now)
		token = t.AccessToken
		return true, nil
	})
	var lre *LoginRequiredError
	if errors.As(err, &lre) {
		return "", err
	}
	return token, err
}

// LoginRequiredError means the stored login for Address is missing or has
// ended, so a new login is needed.
type LoginRequiredError struct {
	Address  string
	Username string
	// Cause is the server's refusal of the refresh token, if any.
	Cause error
}

func (e *LoginRequiredError) Error() string {
	if e.Cause == nil {
		return fmt.Sprintf("not logged in to %s", e.Address)
	}
	return fmt.Sprintf("the login to %s has ended: %v", e.Address, e.Cause)
}

func (e *LoginRequiredError) Unwrap() error { return e.Cause }
