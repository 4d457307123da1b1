package apiclient

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeAuth is a controller that accepts one access token at a time and
// rotates refresh tokens, refusing any already used, as the real one does.
type fakeAuth struct {
	mu        sync.Mutex
	gen       int
	refreshes atomic.Int32
	bodies    []string // request bodies of PUT /snapshot, in order
}

func (f *fakeAuth) tokens() (access, refresh string) {
	return "access-" + string(rune('a'+f.gen)), "refresh-" + string(rune('a'+f.gen))
}

func (f *fakeAuth) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	access, refresh := f.tokens()
	w.Header().Set("Content-Type", "application/json")
	if r.URL.Path == "/api/v1/auth/refresh" {
		f.refreshes.Add(1)
		var req struct {
			RefreshToken string `json:"refresh_token"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		if req.RefreshToken != refresh {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error":{"code":"refresh_token_reused","message":"reused"}}`)
			return
		}
		f.gen++
		access, refresh = f.tokens()
		_ = json.NewEncoder(w).Encode(Tokens{AccessToken: access, RefreshToken: refresh, ExpiresIn: 900, SessionID: "ses_1"})
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+access {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"error":{"code":"invalid_token","message":"bad token"}}`)
		return
	}
	if r.Method == http.MethodPut {
		b, _ := io.ReadAll(r.Body)
		f.bodies = append(f.bodies, string(b))
		w.WriteHeader(http.StatusNoContent)
		return
	}
	_, _ = io.WriteString(w, `{"user":{"username":"admin","roles":["admin"]},"permissions":["cluster:admin"]}`)
}

func storeWith(t *testing.T, addr string, c Credentials) *CredentialStore {
	t.Helper()
	s := NewCredentialStore(filepath.Join(t.TempDir(), "conf", CredentialsFileName))
	if err := s.Put(addr, c); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStoredCredentialsRefresh(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	t.Run("a 401 refreshes once, saves the rotated token and repeats the request", func(t *testing.T) {
		fa := &fakeAuth{}
		srv := httptest.NewServer(fa)
		defer srv.Close()
		probe, _ := New(srv.URL)
		store := storeWith(t, probe.Address(), Credentials{Username: "admin", AccessToken: "stale", RefreshToken: "refresh-a"})
		c, _ := New(srv.URL, WithStoredCredentials(store))
		me, err := c.Me(ctx)
		if err != nil || me.User.Username != "admin" || me.User.Roles[0].Role != "admin" {
			t.Fatalf("Me: %+v %v", me, err)
		}
		got, _, _ := store.Get(c.Address())
		if got.AccessToken != "access-b" || got.RefreshToken != "refresh-b" || got.Username != "admin" {
			t.Fatalf("stored %+v", got)
		}
		if info, err := os.Stat(store.Path()); err != nil || info.Mode().Perm() != 0o600 {
			t.Fatalf("credentials file: %v %v", info, err)
		}
		if info, err := os.Stat(filepath.Dir(store.Path())); err != nil || info.Mode().Perm() != 0o700 {
			t.Fatalf("credentials dir: %v %v", info, err)
		}
	})
	t.Run("clients refreshing at once spend the refresh token once", func(t *testing.T) {
		fa := &fakeAuth{}
		srv := httptest.NewServer(fa)
		defer srv.Close()
		probe, _ := New(srv.URL)
		store := storeWith(t, probe.Address(), Credentials{AccessToken: "stale", RefreshToken: "refresh-a"})
		var wg sync.WaitGroup
		errs := make([]error, 8)
		for i := range errs {
			wg.Go(func() {
				// Separate stores on one file stand for separate processes:
				// each opens the lock file itself.
				c, _ := New(srv.URL, WithStoredCredentials(NewCredentialStore(store.Path())))
				_, errs[i] = c.Me(ctx)
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		if n := fa.refreshes.Load(); n != 1 {
			t.Fatalf("%d refreshes, want 1", n)
		}
	})
	t.Run("a refused refresh removes the login and asks for a new one", func(t *testing.T) {
		fa := &fakeAuth{}
		srv := httptest.NewServer(fa)
		defer srv.Close()
		probe, _ := New(srv.URL)
		store := storeWith(t, probe.Address(), Credentials{AccessToken: "stale", RefreshToken: "refresh-old"})
		c, _ := New(srv.URL, WithStoredCredentials(store))
		_, err := c.Me(ctx)
		var lre *LoginRequiredError
		var apiErr *Error
		if !errors.As(err, &lre) || !errors.As(err, &apiErr) || apiErr.Code != "refresh_token_reused" {
			t.Fatalf("got %v, want a LoginRequiredError wrapping the 401", err)
		}
		if _, ok, _ := store.Get(c.Address()); ok {
			t.Fatal("the dead login is still stored")
		}
	})
	t.Run("an explicit token is never refreshed", func(t *testing.T) {
		fa := &fakeAuth{}
		srv := httptest.NewServer(fa)
		defer srv.Close()
		c, _ := New(srv.URL, WithToken("oct_wrong"))
		_, err := c.Me(ctx)
		var apiErr *Error
		if !errors.As(err, &apiErr) || apiErr.Status != http.StatusUnauthorized || fa.refreshes.Load() != 0 {
			t.Fatalf("got %v after %d refreshes", err, fa.refreshes.Load())
		}
	})
	t.Run("a snapshot file is sent again from its start after a refresh", func(t *testing.T) {
		fa := &fakeAuth{}
		srv := httptest.NewServer(fa)
		defer srv.Close()
		probe, _ := New(srv.URL)
		store := storeWith(t, probe.Address(), Credentials{AccessToken: "stale", RefreshToken: "refresh-a"})
		c, _ := New(srv.URL, WithStoredCredentials(store))
		path := filepath.Join(t.TempDir(), "snap")
		_ = os.WriteFile(path, []byte("snapshot bytes"), 0o600)
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := c.SnapshotRestore(ctx, f); err != nil {
			t.Fatal(err)
		}
		if len(fa.bodies) != 1 || fa.bodies[0] != "snapshot bytes" {
			t.Fatalf("server received %q", fa.bodies)
		}
	})
	t.Run("a stream that cannot be rewound reports the 401", func(t *testing.T) {
		fa := &fakeAuth{}
		srv := httptest.NewServer(fa)
		defer srv.Close()
		probe, _ := New(srv.URL)
		store := storeWith(t, probe.Address(), Credentials{AccessToken: "stale", RefreshToken: "refresh-a"})
		c, _ := New(srv.URL, WithStoredCredentials(store))
		err := c.SnapshotRestore(ctx, io.MultiReader(strings.NewReader("stream")))
		var apiErr *Error
		if !errors.As(err, &apiErr) || apiErr.Status != http.StatusUnauthorized {
			t.Fatalf("got %v, want the 401", err)
		}
	})
}

func TestCredentialStoreKeepsOtherAddresses(t *testing.T) {
	s := NewCredentialStore(filepath.Join(t.TempDir(), CredentialsFileName))
	for _, a := range []string{"http://a:1", "http://b:2"} {
		if err := s.Put(a, Credentials{AccessToken: a}); err != nil {
			t.Fatal(err)
		}
	}
	if found, err := s.Delete("http://a:1"); !found || err != nil {
		t.Fatalf("Delete: %v %v", found, err)
	}
	if c, ok, _ := s.Get("http://b:2"); !ok || c.AccessToken != "http://b:2" {
		t.Fatalf("the other login is gone: %+v", c)
	}
	_ = os.WriteFile(s.Path(), []byte("{"), 0o600)
	if _, _, err := s.Get("http://b:2"); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("a damaged file: %v", err)
	}
}

func TestAddressIsCanonical(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:3000":          "http://127.0.0.1:3000",
		"HTTP://Host:3000/":       "http://host:3000",
		"https://oc.example/api/": "https://oc.example/api",
	} {
		c, err := New(in)
		if err != nil || c.Address() != want {
			t.Errorf("New(%q).Address() = %q, %v; want %q", in, c.Address(), err, want)
		}
	}
}

func TestRoleBindingJSON(t *testing.T) {
	in := `["viewer",{"role":"operator","scope":{"tags":{"env":"prod"}}}]`
	var bs []RoleBinding
	if err := json.Unmarshal([]byte(in), &bs); err != nil {
		t.Fatal(err)
	}
	if bs[0].String() != "viewer" || bs[1].String() != "operator{tags env=prod}" {
		t.Fatalf("parsed %v", bs)
	}
	out, _ := json.Marshal(bs)
	if string(out) != in {
		t.Fatalf("round trip gave %s", out)
	}
}
