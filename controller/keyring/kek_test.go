package keyring

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/opsconductor/opsconductor/controller/problem"
	"github.com/opsconductor/opsconductor/controller/state"
	"github.com/opsconductor/opsconductor/controller/state/statetest"
)

type replicated struct {
	svc     *Service
	store   *state.Store
	applier *statetest.Applier
}

func newReplicated(t *testing.T, root *Keyring) replicated {
	t.Helper()
	store := statetest.NewStore(t, Domain())
	ap := &statetest.Applier{Store: store}
	return replicated{svc: newOn(t, root, store, ap), store: store, applier: ap}
}

func newOn(t *testing.T, root *Keyring, store *state.Store, ap *statetest.Applier) *Service {
	t.Helper()
	svc, err := New(Deps{Root: root, Applier: ap, Store: store, Logger: slog.New(slog.DiscardHandler), IsLeader: func() bool { return true }})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

func TestServiceSealsWithTheActiveKEK(t *testing.T) {
	root, _ := newRing(t, 1)
	r := newReplicated(t, root)
	ctx := context.Background()

	before, err := r.svc.Seal([]byte("old secret"), []byte("ctx/old"))
	if err != nil {
		t.Fatal(err)
	}
	if before.KeyID != root.ActiveKeyID() {
		t.Fatalf("before any KEK, sealed under %s, want the root key %s", before.KeyID, root.ActiveKeyID())
	}
	k1, err := r.svc.Rotate(ctx, "admin")
	if err != nil {
		t.Fatal(err)
	}
	after, err := r.svc.Seal([]byte("new secret"), []byte("ctx/new"))
	if err != nil {
		t.Fatal(err)
	}
	if after.KeyID != k1.ID || r.svc.ActiveKeyID() != k1.ID {
		t.Fatalf("sealed under %s (active %s), want the KEK %s", after.KeyID, r.svc.ActiveKeyID(), k1.ID)
	}
	if k1.Sealed.KeyID != root.ActiveKeyID() {
		t.Fatalf("the KEK is sealed by %s, want the root key %s", k1.Sealed.KeyID, root.ActiveKeyID())
	}
	for _, tc := range []struct {
		name string
		s    Sealed
		aad  string
		want string
	}{
		{"an envelope from before the first KEK still opens", before, "ctx/old", "old secret"},
		{"an envelope under the KEK opens", after, "ctx/new", "new secret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pt, err := r.svc.Open(tc.s, []byte(tc.aad))
			if err != nil || string(pt) != tc.want {
				t.Fatalf("Open = %q, %v", pt, err)
			}
		})
	}

	t.Run("a rewrap moves an old envelope under the active KEK", func(t *testing.T) {
		moved, err := r.svc.Rewrap(before, []byte("ctx/old"))
		if err != nil {
			t.Fatal(err)
		}
		if moved.KeyID != k1.ID {
			t.Fatalf("rewrapped under %s, want %s", moved.KeyID, k1.ID)
		}
		if pt, err := r.svc.Open(moved, []byte("ctx/old")); err != nil || string(pt) != "old secret" {
			t.Fatalf("Open = %q, %v", pt, err)
		}
		if _, err := r.svc.Rewrap(before, []byte("ctx/other")); !errors.Is(err, ErrOpen) {
			t.Fatalf("a rewrap with the wrong context = %v, want ErrOpen", err)
		}
	})

	t.Run("a second controller opens the KEK from the replicated state", func(t *testing.T) {
		other := newOn(t, root, r.store, r.applier)
		if pt, err := other.Open(after, []byte("ctx/new")); err != nil || string(pt) != "new secret" {
			t.Fatalf("Open = %q, %v", pt, err)
		}
	})
}

func TestWrongRootKeyFailsLoudly(t *testing.T) {
	root, _ := newRing(t, 1)
	r := newReplicated(t, root)
	k, err := r.svc.Rotate(context.Background(), "admin")
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := r.svc.Seal([]byte("s"), []byte("ctx"))
	if err != nil {
		t.Fatal(err)
	}
	wrong, _ := newRing(t, 1)
	other := newOn(t, wrong, r.store, r.applier)
	err = other.Check()
	if !errors.Is(err, ErrOpen) {
		t.Fatalf("Check with the wrong root key = %v, want ErrOpen", err)
	}
	for _, want := range []string{k.ID, root.ActiveKeyID(), wrong.ActiveKeyID()} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Check error %q does not name key %s", err, want)
		}
	}
	if _, err := other.Open(sealed, []byte("ctx")); !errors.Is(err, ErrOpen) {
		t.Fatalf("Open with the wrong root key = %v, want ErrOpen", err)
	}
	if _, err := other.Seal([]byte("s"), []byte("ctx")); !errors.Is(err, ErrOpen) {
		t.Fatalf("Seal with the wrong root key = %v, want ErrOpen (never a silent fallback to the root key)", err)
	}
	if err := r.svc.Check(); err != nil {
		t.Fatalf("Check with the right root key = %v", err)
	}
}

func TestRotationRetiresAndRemovesKEKs(t *testing.T) {
	root, _ := newRing(t, 1)
	r := newReplicated(t, root)
	ctx := context.Background()
	k1, err := r.svc.Rotate(ctx, "admin")
	if err != nil {
		t.Fatal(err)
	}
	k2, err := r.svc.Rotate(ctx, "admin")
	if err != nil {
		t.Fatal(err)
	}
	code := func(err error) string {
		if p, ok := problem.As(err); ok {
			return p.Code
		}
		return ""
	}
	if err := r.svc.Remove(ctx, k2.ID, "admin"); code(err) != "kek_active" {
		t.Fatalf("removing the active KEK = %v, want kek_active", err)
	}
	if err := r.svc.Remove(ctx, root.ActiveKeyID(), "admin"); code(err) != "root_key" {
		t.Fatalf("removing a root key = %v, want root_key", err)
	}
	if err := r.svc.RewrapAll(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := r.svc.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]KeyInfo{}
	for _, k := range st.Keys {
		states[k.ID] = k
	}
	if got := states[k1.ID]; got.State != StateRetired || !got.Removable {
		t.Fatalf("k1 after the re-wrap = %+v, want retired and removable", got)
	}
	if got := states[k2.ID]; got.State != StateActive || got.Removable {
		t.Fatalf("k2 = %+v, want active", got)
	}
	if got := states[root.ActiveKeyID()]; got.Tier != "root" || got.Envelopes["keyring"] != 2 {
		t.Fatalf("root key = %+v, want it to wrap both KEKs", got)
	}
	if st.Active != k2.ID || st.Pending != 0 {
		t.Fatalf("status active %s pending %d, want %s and 0", st.Active, st.Pending, k2.ID)
	}
	if err := r.svc.Remove(ctx, k1.ID, "admin"); err != nil {
		t.Fatalf("removing a retired KEK: %v", err)
	}
	if err := r.svc.Remove(ctx, k1.ID, "admin"); code(err) != "key_not_found" {
		t.Fatalf("removing it again = %v, want key_not_found", err)
	}
}

func TestANewRootKeyTakesOverTheKEKs(t *testing.T) {
	old, lines := newRing(t, 1)
	r := newReplicated(t, old)
	ctx := context.Background()
	if _, err := r.svc.Rotate(ctx, "admin"); err != nil {
		t.Fatal(err)
	}
	sealed, err := r.svc.Seal([]byte("v"), []byte("ctx"))
	if err != nil {
		t.Fatal(err)
	}
	next, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	both, err := Parse([]byte(lines[0] + "\n" + next + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	svc := newOn(t, both, r.store, r.applier)
	if err := svc.RewrapAll(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := svc.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range st.Keys {
		if k.ID == old.ActiveKeyID() && (k.Total != 0 || k.State != StateRetired) {
			t.Fatalf("the old root key after the re-wrap = %+v, want it to wrap nothing", k)
		}
	}
	onlyNew, err := Parse([]byte(next + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	fresh := newOn(t, onlyNew, r.store, r.applier)
	if err := fresh.Check(); err != nil {
		t.Fatalf("a controller with only the new root key: %v", err)
	}
	if pt, err := fresh.Open(sealed, []byte("ctx")); err != nil || string(pt) != "v" {
		t.Fatalf("Open = %q, %v", pt, err)
	}
}

func TestTheLeaderRewrapsARotationAnotherControllerCommitted(t *testing.T) {
	root, _ := newRing(t, 1)
	r := newReplicated(t, root) // the leader
	follower, err := New(Deps{Root: root, Applier: r.applier, Store: r.store, Logger: slog.New(slog.DiscardHandler), IsLeader: func() bool { return false }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.svc.Run(ctx, time.Hour) }()
	defer func() { cancel(); <-done }()

	k1, err := follower.Rotate(ctx, "admin")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := follower.Rotate(ctx, "admin"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := r.svc.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range st.Keys {
			if k.ID == k1.ID && k.State == StateRetired {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the leader did not retire %s after another controller's rotation: %+v", k1.ID, st.Keys)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
