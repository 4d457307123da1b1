package server

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/opsconductor/opsconductor/controller/assets"
	"github.com/opsconductor/opsconductor/controller/assets/credentials"
	"github.com/opsconductor/opsconductor/controller/history"
	"github.com/opsconductor/opsconductor/controller/keyring"
	"github.com/opsconductor/opsconductor/controller/state"
)

// keyringCheckInterval is how often a running controller re-checks that
// its root keys open every KEK in the state: a rotation committed by a
// leader with another key file must be seen at once, not at the next
// secret.
const keyringCheckInterval = 30 * time.Second

// newKeyring builds the replicated keyring over the root keys.
func newKeyring(root *keyring.Keyring, applier keyring.Applier, store *state.Store, isLeader func() bool, log *slog.Logger) (*keyring.Service, error) {
	return keyring.New(keyring.Deps{Root: root, Applier: applier, Store: store, IsLeader: isLeader, Logger: log.With("component", "keyring")})
}

// newCredentials builds the credentials service and registers it as a
// holder of envelopes with the keyring.
func newCredentials(applier credentials.Applier, store *state.Store, kr *keyring.Service, hist *history.Writer, inv *assets.Service,
	isLeader func() bool, log *slog.Logger) (*credentials.Service, error) {
	svc, err := credentials.New(credentials.Deps{Applier: applier, Store: store, Sealer: kr, History: hist, IsLeader: isLeader,
		Inventory: credentialInventory{inv}, Logger: log.With("component", "credentials")})
	if err != nil {
		return nil, err
	}
	kr.Register("credentials", svc)
	return svc, nil
}

// credentialInventory gives credential scope checks the groups of a
// target, static and dynamic.
type credentialInventory struct{ inv *assets.Service }

func (c credentialInventory) GroupsOf(ctx context.Context, target string) ([]string, error) {
	t, err := c.inv.Get(ctx, target)
	if err != nil {
		return nil, err
	}
	return c.inv.GroupsOf(t), nil
}

func (c credentialInventory) Exists(ctx context.Context, scope, name string) error {
	if scope == credentials.ScopeGroup {
		_, err := c.inv.GetGroup(ctx, name)
		return err
	}
	_, err := c.inv.Get(ctx, name)
	return err
}

// checkKeyringAtStart checks the KEKs as the state fills in, until the
// node is ready (its state replayed), and returns the first failure: a
// controller whose key file cannot open the cluster's KEKs must refuse to
// run, naming the key, rather than fail one secret at a time.
func checkKeyringAtStart(ctx context.Context, kr *keyring.Service, ready func() error) error {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		if err := kr.Check(); err != nil {
			return fmt.Errorf("keyring: %w; start this controller with the cluster's key file (--keyring-file or %s)", err, keyring.EnvKey)
		}
		if ready() == nil {
			// One more pass: ready means the state is replayed.
			if err := kr.Check(); err != nil {
				return fmt.Errorf("keyring: %w; start this controller with the cluster's key file (--keyring-file or %s)", err, keyring.EnvKey)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// watchKeyring re-checks the KEKs while the controller runs and logs a
// failure at error level; failing the process here would take a healthy
// cluster member down for a rotation another controller made.
func watchKeyring(ctx context.Context, kr *keyring.Service, log *slog.Logger) {
	t := time.NewTicker(keyringCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := kr.Check(); err != nil {
			log.Error("this controller's key file cannot open a key-encryption key in the state: secrets it wraps cannot be used here", "error", err)
		}
	}
}
