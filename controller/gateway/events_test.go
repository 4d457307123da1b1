package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/hashicorp/go-memdb"

	"github.com/opsconductor/opsconductor/controller/identity"
	"github.com/opsconductor/opsconductor/controller/state"
	"github.com/opsconductor/opsconductor/controller/state/statetest"
)

// eventsRow is a row of the tables the events test writes.
type eventsRow struct{ ID string }

// eventsTestDomain owns tables named like the real domains' (runs, targets,
// users), so that writing them moves the topics the real ones do, without
// pulling the domains' services into a gateway test.
func eventsTestDomain() state.Domain {
	tables := []string{"automation_runs", "assets_targets", "identity_users", "agentrpc_attempts", "agentrpc_agents"}
	d := state.Domain{Name: "eventstest", Commands: map[string]state.Handler{
		"eventstest.put": state.V1(func(ctx *state.ApplyContext, p struct{ Table, ID string }) (any, error) {
			return nil, ctx.Txn.Insert(p.Table, &eventsRow{ID: p.ID})
		}),
	}}
	for _, name := range tables {
		d.Tables = append(d.Tables, state.Table{
			Schema: &memdb.TableSchema{Name: name, Indexes: map[string]*memdb.IndexSchema{
				"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
			}},
			New: func() any { return &eventsRow{} },
		})
	}
	return d
}

type eventsServer struct {
	srv     *httptest.Server
	store   *state.Store
	applier *statetest.Applier
	ident   *testIdentity
}

// newEventsServer serves the events route over a real listener; tune
// changes its timings, and ident (nil: the shared one) authenticates.
func newEventsServer(t *testing.T, minGap time.Duration, tune func(*Events), ident *testIdentity) *eventsServer {
	t.Helper()
	es := &eventsServer{store: statetest.NewStore(t, eventsTestDomain())}
	es.applier = &statetest.Applier{Store: es.store}
	ev := &Events{Source: es.store, MinGap: minGap}
	if tune != nil {
		tune(ev)
	}
	f := newFixture(t, Config{}, func(d *Deps) {
		d.Events = ev
		if ident != nil {
			d.Identity = ident.svc
		}
	})
	es.ident = f.ident
	if ident != nil {
		es.ident = ident
	}
	es.srv = httptest.NewServer(f.srv.Handler())
	t.Cleanup(es.srv.Close)
	return es
}

// put writes one row into each table, as one Raft entry.
func (es *eventsServer) put(t *testing.T, tables ...string) {
	t.Helper()
	var cmds []state.Command
	for _, table := range tables {
		c, err := state.NewCommand("eventstest.put", 1, struct{ Table, ID string }{table, time.Now().String()})
		if err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, c)
	}
	res, err := es.applier.Apply(context.Background(), cmds...)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Err != nil {
			t.Fatalf("apply: %v", r.Err)
		}
	}
}

func (es *eventsServer) dial(t *testing.T, h http.Header, subprotocols ...string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	d := &websocket.Dialer{HandshakeTimeout: streamWait, Subprotocols: subprotocols}
	return dial(t, d, "ws"+strings.TrimPrefix(es.srv.URL, "http")+"/api/v1/events", h)
}

func readEvents(t *testing.T, conn *websocket.Conn) eventMessage {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(streamWait))
	var m eventMessage
	if err := conn.ReadJSON(&m); err != nil {
		t.Fatalf("read an events message: %v", err)
	}
	return m
}

func TestEventsTellWhichTopicsChanged(t *testing.T) {
	es := newEventsServer(t, 20*time.Millisecond, nil, nil)
	// The browser's way in: the token as a subprotocol, never in the URL.
	conn, resp, err := es.dial(t, nil, streamSubprotocol, streamBearerPrefix+es.ident.adminToken)
	if err != nil {
		t.Fatalf("dial: %v (%s)", err, status(resp))
	}
	if got := resp.Header.Get(headerWSProtocol); got != streamSubprotocol {
		t.Fatalf("the server chose subprotocol %q, want %q (never the token)", got, streamSubprotocol)
	}
	hello := readEvents(t, conn)
	if hello.Type != "hello" || !slices.Equal(hello.Topics, topicNames(eventTopics)) {
		t.Fatalf("hello = %+v, want every topic for the admin: %v", hello, topicNames(eventTopics))
	}

	t.Run("a write to one table names its topic", func(t *testing.T) {
		es.put(t, "automation_runs")
		if m := readEvents(t, conn); m.Type != "changed" || !slices.Equal(m.Topics, []string{"runs"}) || m.Index != es.store.LastIndex() {
			t.Fatalf("got %+v, want changed [runs] at index %d", m, es.store.LastIndex())
		}
	})
	t.Run("a table behind two topics names both", func(t *testing.T) {
		es.put(t, "agentrpc_agents")
		if m := readEvents(t, conn); !slices.Equal(m.Topics, []string{"agents", "targets"}) {
			t.Fatalf("got %+v, want changed [agents targets]", m)
		}
	})
	t.Run("one entry that writes several tables names each topic once", func(t *testing.T) {
		es.put(t, "assets_targets", "identity_users", "assets_targets")
		if m := readEvents(t, conn); !slices.Equal(m.Topics, []string{"targets", "users"}) {
			t.Fatalf("got %+v, want changed [targets users]", m)
		}
	})
}

func TestEventsReportWhatASnapshotRestoreChanged(t *testing.T) {
	es := newEventsServer(t, 10*time.Millisecond, nil, nil)
	es.put(t, "automation_runs")
	var snap bytes.Buffer
	if err := es.store.WriteSnapshot(es.store.View(), &snap); err != nil {
		t.Fatal(err)
	}
	es.put(t, "assets_targets") // after the snapshot: a restore takes it back
	conn, resp, err := es.dial(t, http.Header{"Authorization": {"Bearer " + es.ident.adminToken}})
	if err != nil {
		t.Fatalf("dial: %v (%s)", err, status(resp))
	}
	readEvents(t, conn) // hello
	if err := es.store.Restore(&snap); err != nil {
		t.Fatal(err)
	}
	// The targets table's index went back; runs is as it was.
	if m := readEvents(t, conn); !slices.Equal(m.Topics, []string{"targets"}) {
		t.Fatalf("after the restore got %+v, want changed [targets]", m)
	}
}

func TestEventsCoalesceBursts(t *testing.T) {
	const minGap = 200 * time.Millisecond
	es := newEventsServer(t, minGap, nil, nil)
	conn, resp, err := es.dial(t, http.Header{"Authorization": {"Bearer " + es.ident.adminToken}})
	if err != nil {
		t.Fatalf("dial: %v (%s)", err, status(resp))
	}
	readEvents(t, conn) // hello
	es.put(t, "automation_runs")
	first := readEvents(t, conn)
	firstAt := time.Now()
	// A burst right after a message: 50 entries over two tables.
	for i := range 50 {
		es.put(t, []string{"agentrpc_attempts", "automation_runs"}[i%2])
	}
	last := es.store.LastIndex()
	second := readEvents(t, conn)
	gap := time.Since(firstAt)
	if !slices.Equal(first.Topics, []string{"runs"}) {
		t.Fatalf("first = %+v, want [runs]", first)
	}
	if gap < minGap*3/4 {
		t.Errorf("the second message came %v after the first, want at least about %v", gap, minGap)
	}
	if !slices.Equal(second.Topics, []string{"runs", "attempts"}) || second.Index != last {
		t.Fatalf("second = %+v, want the whole burst in one message: [runs attempts] at index %d", second, last)
	}
	// Nothing else is pending: the next message is for the next write.
	es.put(t, "assets_targets")
	if m := readEvents(t, conn); !slices.Equal(m.Topics, []string{"targets"}) {
		t.Fatalf("after the burst got %+v, want [targets] only", m)
	}
}

func TestEventsOnlyNameTopicsTheCallerMayRead(t *testing.T) {
	// An identity of its own, so that the viewer does not join the
	// shared one's user list.
	es := newEventsServer(t, 10*time.Millisecond, nil, newTestIdentity(t))
	admin, err := es.ident.svc.Authenticate(context.Background(), es.ident.adminToken)
	if err != nil {
		t.Fatal(err)
	}
	const name = "vera"
	if _, _, err := es.ident.svc.CreateUser(context.Background(), admin, identity.CreateUser{Username: name, Password: testAdminPassword,
		Roles: []identity.Binding{{Role: "viewer"}}, MustChangePassword: new(bool)}); err != nil {
		t.Fatal(err)
	}
	tok, err := es.ident.svc.Login(context.Background(), identity.LoginRequest{Username: name, Password: testAdminPassword})
	if err != nil {
		t.Fatal(err)
	}
	conn, resp, err := es.dial(t, http.Header{"Authorization": {"Bearer " + tok.AccessToken}})
	if err != nil {
		t.Fatalf("dial: %v (%s)", err, status(resp))
	}
	hello := readEvents(t, conn)
	for _, hidden := range []string{"users", "cluster"} {
		if slices.Contains(hello.Topics, hidden) {
			t.Errorf("a viewer hears about %q: %v", hidden, hello.Topics)
		}
	}
	for _, seen := range []string{"runs", "agents", "targets", "roles", "sessions"} {
		if !slices.Contains(hello.Topics, seen) {
			t.Errorf("a viewer does not hear about %q: %v", seen, hello.Topics)
		}
	}
	// A change to users alone says nothing; the next change to runs is
	// reported on its own.
	es.put(t, "identity_users")
	es.put(t, "automation_runs")
	if m := readEvents(t, conn); !slices.Equal(m.Topics, []string{"runs"}) {
		t.Fatalf("got %+v, want [runs] (users are not the viewer's to hear about)", m)
	}
}

func TestEventsRefusals(t *testing.T) {
	es := newEventsServer(t, 0, nil, nil)
	tests := []struct {
		name       string
		header     http.Header
		protocols  []string
		wantStatus int
	}{
		{name: "no token is a 401", wantStatus: http.StatusUnauthorized},
		{name: "a bad bearer subprotocol is a 401", protocols: []string{streamSubprotocol, streamBearerPrefix + "nope"}, wantStatus: http.StatusUnauthorized},
		{name: "another origin is refused", header: http.Header{"Authorization": {"Bearer " + es.ident.adminToken}, "Origin": {"https://evil.example"}},
			wantStatus: http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, resp, err := es.dial(t, tt.header, tt.protocols...)
			if err == nil {
				t.Fatal("the upgrade succeeded")
			}
			if resp == nil || resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %s, want %d", status(resp), tt.wantStatus)
			}
		})
	}
	t.Run("a plain GET is told to upgrade", func(t *testing.T) {
		req, _ := http.NewRequest("GET", es.srv.URL+"/api/v1/events", nil)
		req.Header.Set("Authorization", "Bearer "+es.ident.adminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var env envelope
		_ = json.NewDecoder(resp.Body).Decode(&env)
		if resp.StatusCode != http.StatusBadRequest || env.Error.Code != "websocket_required" {
			t.Fatalf("got %d %+v, want 400 websocket_required", resp.StatusCode, env.Error)
		}
	})
	t.Run("a controller without the events source answers 503", func(t *testing.T) {
		f := newFixture(t, Config{})
		rec := f.do(t, newRequest("GET", "/api/v1/events", "", ""))
		if rec.Code != http.StatusServiceUnavailable || decodeEnvelope(t, rec).Code != "events_unavailable" {
			t.Fatalf("got %d %s, want 503 events_unavailable", rec.Code, rec.Body)
		}
	})
}

func TestEventsDropAClientThatStopsAnsweringPings(t *testing.T) {
	es := newEventsServer(t, 0, func(e *Events) {
		e.PingInterval, e.PongWait = 20*time.Millisecond, 150*time.Millisecond
	}, nil)
	conn, resp, err := es.dial(t, http.Header{"Authorization": {"Bearer " + es.ident.adminToken}})
	if err != nil {
		t.Fatalf("dial: %v (%s)", err, status(resp))
	}
	pinged := make(chan struct{}, 1)
	conn.SetPingHandler(func(string) error { // swallow pings: never pong
		select {
		case pinged <- struct{}{}:
		default:
		}
		return nil
	})
	readEvents(t, conn) // hello
	_ = conn.SetReadDeadline(time.Now().Add(streamWait))
	start := time.Now()
	for {
		if _, _, err = conn.ReadMessage(); err != nil {
			break
		}
	}
	select {
	case <-pinged:
	default:
		t.Fatal("the server never pinged")
	}
	var ne interface{ Timeout() bool }
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server kept the silent client for %v (read error %v)", time.Since(start), err)
	}
}

func TestEventsAnswerPings(t *testing.T) {
	es := newEventsServer(t, 0, nil, nil)
	conn, resp, err := es.dial(t, http.Header{"Authorization": {"Bearer " + es.ident.adminToken}})
	if err != nil {
		t.Fatalf("dial: %v (%s)", err, status(resp))
	}
	ponged := make(chan string, 1)
	conn.SetPongHandler(func(data string) error { ponged <- data; return nil })
	readEvents(t, conn) // hello
	if err := conn.WriteControl(websocket.PingMessage, []byte("are-you-there"), time.Now().Add(streamWait)); err != nil {
		t.Fatal(err)
	}
	go func() { _, _, _ = conn.ReadMessage() }() // control frames are handled while reading
	select {
	case got := <-ponged:
		if got != "are-you-there" {
			t.Fatalf("pong %q, want the ping's data", got)
		}
	case <-time.After(streamWait):
		t.Fatal("no pong")
	}
}

// The events route reads the state's index table itself (to add each
// entry's watch channel to the watch set); this pins its name and row
// type to what state.Store.TableIndex reads.
func TestEventsReadTheStoresTableIndexes(t *testing.T) {
	store := statetest.NewStore(t, eventsTestDomain())
	applier := &statetest.Applier{Store: store}
	c, _ := state.NewCommand("eventstest.put", 1, struct{ Table, ID string }{"automation_runs", "r1"})
	if _, err := applier.Apply(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	txn := store.ReadTxn()
	got, err := tableIndexes(nil, txn, eventTopics)
	if err != nil {
		t.Fatal(err)
	}
	if want := store.TableIndex(txn, "automation_runs"); want == 0 || got["automation_runs"] != want {
		t.Fatalf("tableIndexes read %d for automation_runs, TableIndex says %d", got["automation_runs"], want)
	}
}
