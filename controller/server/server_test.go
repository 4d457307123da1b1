package server

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/opsconductor/opsconductor/controller/apiclient"
	"github.com/opsconductor/opsconductor/controller/config"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

type running struct {
	client *apiclient.Client
	ready  Ready
	stop   func() error
	token  string // the admin's access token
}

func testConfig(dataDir string) config.Server {
	return config.Server{
		DataDir: dataDir, HTTPAddr: "127.0.0.1:0", AgentAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0",
		LogLevel: "info", LogFormat: "json", MaxBodyBytes: 1 << 20, ApplyHold: 5 * time.Second,
		RateRead: 1000, RateWrite: 1000, RateOperator: 1000, Batching: true,
		BootstrapAdminPassword: testAdminPassword,
		// One keyring for every test node, as a cluster and its backups
		// share one: a snapshot's sealed secrets open only under it.
		KeyringEnv: testKeyring,
	}
}

const (
	testAdminPassword = "violet-Harbour-lantern-42"
	testKeyring       = "3q2+7wABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhs="
)

// start runs a real controller in-process, waits until it is ready and
// logs in as the bootstrap admin.
func start(t testing.TB, cfg config.Server) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	readyCh := make(chan Ready, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, cfg, slog.New(slog.DiscardHandler), io.Discard, func(r Ready) { readyCh <- r })
	}()
	var r Ready
	select {
	case r = <-readyCh:
	case err := <-done:
		cancel()
		t.Fatalf("controller exited before ready: %v", err)
	}
	c, err := apiclient.New(r.HTTPAddr)
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	if err := c.WaitReady(wctx, nil); err != nil {
		cancel()
		t.Fatal(err)
	}
	tok, err := c.Login(wctx, apiclient.LoginRequest{Username: "admin", Password: testAdminPassword})
	if err != nil {
		cancel()
		t.Fatalf("login: %v", err)
	}
	if c, err = apiclient.New(r.HTTPAddr, apiclient.WithToken(tok.AccessToken)); err != nil {
		cancel()
		t.Fatal(err)
	}
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		return <-done
	}
	t.Cleanup(func() { _ = stop() })
	return &running{client: c, ready: r, stop: stop, token: tok.AccessToken}
}

func TestSnapshotSaveRestoreIntoAFreshNode(t *testing.T) {
	src := start(t, testConfig(t.TempDir()))
	ctx := context.Background()
	var ids []string
	for i := range 25 {
		rec, err := src.client.WriteProbe(ctx, strings.Repeat("x", i))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, rec.ID)
	}
	var snap bytes.Buffer
	if _, err := src.client.SnapshotSave(ctx, &snap, false); err != nil {
		t.Fatal(err)
	}

	dst := start(t, testConfig(t.TempDir()))
	if err := dst.client.SnapshotRestore(ctx, bytes.NewReader(snap.Bytes())); err != nil {
		t.Fatalf("restore: %v", err)
	}
	// The restore replaced dst's users, sessions and signing keys with
	// src's: dst's own login is gone and src's works there now.
	if _, err := dst.client.ListProbes(ctx, "", 1); err == nil {
		t.Fatal("dst's session survived a restore that replaced every session")
	}
	dstClient, err := apiclient.New(dst.ready.HTTPAddr, apiclient.WithToken(src.token))
	if err != nil {
		t.Fatal(err)
	}
	dst.client = dstClient
	page, err := dst.client.ListProbes(ctx, "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != len(ids) {
		t.Fatalf("restored node has %d probes, want %d", len(page.Items), len(ids))
	}
	for i, rec := range page.Items {
		if rec.ID != ids[i] {
			t.Fatalf("probe %d is %s, want %s", i, rec.ID, ids[i])
		}
	}
	// Every table round-trips: the restored node snapshots to the same bytes.
	var again bytes.Buffer
	if _, err := dst.client.SnapshotSave(ctx, &again, true); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.Bytes(), snap.Bytes()) {
		t.Fatalf("snapshot after restore differs from the one restored (%d vs %d bytes)", again.Len(), snap.Len())
	}
	// The restored node keeps working.
	if _, err := dst.client.WriteProbe(ctx, "after restore"); err != nil {
		t.Fatal(err)
	}

	t.Run("a corrupt snapshot is refused with 400 and changes nothing", func(t *testing.T) {
		bad := bytes.Replace(snap.Bytes(), []byte(`"payload":"x"`), []byte(`"payload":"y"`), 1)
		err := dst.client.SnapshotRestore(ctx, bytes.NewReader(bad))
		var apiErr *apiclient.Error
		if !errors.As(err, &apiErr) || apiErr.Status != 400 || !strings.Contains(apiErr.Message, "checksum") {
			t.Fatalf("got %v, want 400 naming the checksum", err)
		}
		page, _ := dst.client.ListProbes(ctx, "", 1000)
		if len(page.Items) != len(ids)+1 {
			t.Fatalf("refused restore changed state: %d probes", len(page.Items))
		}
	})
}

func TestRestartKeepsStateAndNodeID(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	first := start(t, cfg)
	rec, err := first.client.WriteProbe(context.Background(), "survives restart")
	if err != nil {
		t.Fatal(err)
	}
	if err := first.stop(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	second := start(t, cfg)
	if second.ready.NodeID != first.ready.NodeID {
		t.Fatalf("node ID changed across restart: %s → %s", first.ready.NodeID, second.ready.NodeID)
	}
	page, err := second.client.ListProbes(context.Background(), "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 1 || page.Items[0].ID != rec.ID {
		t.Fatalf("after restart: %+v", page.Items)
	}
}

func TestStartRefusals(t *testing.T) {
	dir := t.TempDir()
	start(t, testConfig(dir))
	tests := []struct {
		name string
		cfg  func() config.Server
		want string
	}{
		{"a data dir in use", func() config.Server { return testConfig(dir) }, "in use by another opsconductor process"},
		{"a node ID that contradicts the data dir", func() config.Server {
			d := t.TempDir()
			c := testConfig(d)
			c.NodeID = "a"
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			_ = Run(ctx, c, slog.New(slog.DiscardHandler), io.Discard, nil)
			c.NodeID = "b"
			return c
		}, `this data dir belongs to node "a"`},
		{"a cluster without a shared CA", func() config.Server {
			c := testConfig(t.TempDir())
			c.BootstrapExpect, c.RetryJoin = 3, []string{"127.0.0.1:1", "127.0.0.1:2"}
			c.History = "postgres://127.0.0.1:1/none"
			return c
		}, "--tls-ca-cert and --tls-ca-key are required"},
		{"a cluster without a shared keyring", func() config.Server {
			c := testConfig(t.TempDir())
			c.BootstrapExpect, c.RetryJoin = 3, []string{"127.0.0.1:1", "127.0.0.1:2"}
			c.History = "postgres://127.0.0.1:1/none"
			c.KeyringEnv = ""
			return c
		}, "--keyring-file: is required for a cluster"},
		{"a cluster on the embedded history store", func() config.Server {
			c := testConfig(t.TempDir())
			c.BootstrapExpect, c.RetryJoin = 3, []string{"127.0.0.1:1", "127.0.0.1:2"}
			return c
		}, "--history: a cluster of several controllers needs one shared PostgreSQL history store"},
		{"a busy HTTP port", func() config.Server {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
			c := testConfig(t.TempDir())
			c.HTTPAddr = ln.Addr().String()
			return c
		}, "--http-addr"},
	}
	for _, tt := range tests {
		t.Run("it refuses "+tt.name, func(t *testing.T) {
			err := Run(context.Background(), tt.cfg(), slog.New(slog.DiscardHandler), io.Discard, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestAdvertiseHost(t *testing.T) {
	ipnet := func(s string) net.Addr { return &net.IPNet{IP: net.ParseIP(s), Mask: net.CIDRMask(24, 32)} }
	addrs := func(list ...string) func() ([]net.Addr, error) {
		return func() ([]net.Addr, error) {
			var out []net.Addr
			for _, a := range list {
				out = append(out, ipnet(a))
			}
			return out, nil
		}
	}
	tests := []struct {
		name      string
		bind, adv string
		single    bool
		addrs     []string
		want      string
		wantErr   string
	}{
		{"an explicit --advertise wins", "0.0.0.0:3002", "10.1.1.1", false, []string{"192.168.0.2"}, "10.1.1.1", ""},
		{"a specific bind host is advertised", "10.0.0.5:3002", "", false, nil, "10.0.0.5", ""},
		{"a wildcard bind advertises the only private address", "0.0.0.0:3002", "", false, []string{"127.0.0.1", "8.8.8.8", "10.0.0.7"}, "10.0.0.7", ""},
		{"a lone server without a private address advertises loopback", ":3002", "", true, []string{"127.0.0.1"}, "127.0.0.1", ""},
		{"a cluster member without a private address must be told", "0.0.0.0:3002", "", false, []string{"127.0.0.1"}, "", "no private IPv4"},
		{"several private addresses must be chosen from", "0.0.0.0:3002", "", true, []string{"10.0.0.1", "10.0.0.2"}, "", "10.0.0.1, 10.0.0.2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := advertiseHost(tt.bind, tt.adv, tt.single, addrs(tt.addrs...))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "--advertise") {
					t.Fatalf("got %q, %v; want an --advertise error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestGeneratedBootstrapPassword(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.BootstrapAdminPassword = ""
	console := &lockedBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	readyCh, done := make(chan Ready, 1), make(chan error, 1)
	go func() { done <- Run(ctx, cfg, slog.New(slog.DiscardHandler), console, func(r Ready) { readyCh <- r }) }()
	t.Cleanup(func() { cancel(); <-done })
	r := <-readyCh
	c, err := apiclient.New(r.HTTPAddr)
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	defer wcancel()
	if err := c.WaitReady(wctx, nil); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(cfg.DataDir, BootstrapPasswordFile)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the generated password was not written: %v", err)
	}
	if info, _ := os.Stat(path); info.Mode().Perm() != 0o600 {
		t.Fatalf("%s has mode %v", path, info.Mode().Perm())
	}
	pw := strings.TrimSpace(string(raw))
	if !strings.Contains(console.String(), "password: "+pw) {
		t.Fatalf("the console does not show the generated password:\n%s", console.String())
	}
	tok, err := c.Login(wctx, apiclient.LoginRequest{Username: "admin", Password: pw})
	if err != nil {
		t.Fatal(err)
	}
	if !tok.MustChangePassword {
		t.Fatal("a generated password does not have to be changed")
	}
	admin, err := apiclient.New(r.HTTPAddr, apiclient.WithToken(tok.AccessToken))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Peers(wctx, false); err == nil || !strings.Contains(err.Error(), "password_change_required") {
		t.Fatalf("before the change, an operator route answered %v", err)
	}
	if err := admin.ChangePassword(wctx, pw, "a-Chosen-Passphrase-77"); err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			break
		}
		select {
		case <-wctx.Done():
			t.Fatal("the bootstrap password file outlived the password change")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }
