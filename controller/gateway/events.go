package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/gorilla/websocket"
	"github.com/hashicorp/go-memdb"

	"github.com/opsconductor/opsconductor/controller/identity"
	"github.com/opsconductor/opsconductor/controller/problem"
	"github.com/opsconductor/opsconductor/controller/state"
)

// GET /api/v1/events tells a browser which kinds of data changed, so that
// it refetches what it shows instead of polling. It carries no data: a
// message names topics ("runs", "jobs" …) and the page re-reads them over
// REST, where every permission and scope check already lives. It watches
// this node's replica of the state store, so a follower serves it without
// asking the leader; audit entries live in the history store, not the
// state, and have no topic.

// EventSource is what the events route reads: the state store
// (state.Store satisfies it).
type EventSource interface {
	// BlockingQuery runs fn until the index it returns exceeds minIndex,
	// sleeping on the watch set fn fills (see state.Store).
	BlockingQuery(ctx context.Context, minIndex uint64, fn state.QueryFunc) (uint64, error)
	ReadTxn() *memdb.Txn
}

// eventTopic maps state tables to the topic the UI keys its queries by,
// and the permission that reading them takes ("" any signed-in user:
// roles, one's own tokens and sessions).
type eventTopic struct {
	topic  string
	perm   identity.Permission
	tables []string
}

// eventTopics lists every replicated table a page shows; a table may feed
// more than one topic. Internal tables
// (probes, throttles, identity meta, the state's own index) are left out:
// nothing the UI shows changes with them.
var eventTopics = []eventTopic{
	{topic: "runs", perm: identity.PermJobsRead, tables: []string{"automation_runs"}},
	{topic: "attempts", perm: identity.PermJobsRead, tables: []string{"agentrpc_attempts"}},
	{topic: "agents", perm: identity.PermAgentsRead, tables: []string{"agentrpc_agents", "agentrpc_join_tokens"}},
	// Inbound triggers start jobs, and the UI lists them under jobs;
	// trigger_seen moves with every accepted delivery.
	{topic: "jobs", perm: identity.PermJobsRead, tables: []string{"automation_jobs", "automation_job_versions", "trigger_triggers", "trigger_seen"}},
	{topic: "schedules", perm: identity.PermJobsRead, tables: []string{"automation_schedules"}},
	// An agent's target shows the agent's state (up, last seen), so an
	// agent's change is a target's change too.
	{topic: "targets", perm: identity.PermAssetsRead, tables: []string{"assets_targets", "assets_groups", "agentrpc_agents"}},
	{topic: "relationships", perm: identity.PermAssetsRead, tables: []string{"assets_edges"}},
	{topic: "credentials", perm: identity.PermCredentialsRead, tables: []string{"credentials", "credential_attachments"}},
	{topic: "discovery", perm: identity.PermAssetsRead, tables: []string{"assets_discovery_profiles", "assets_discovery_scans", "assets_discovery_ranges"}},
	{topic: "users", perm: identity.PermUsersRead, tables: []string{"identity_users"}},
	{topic: "roles", tables: []string{"identity_roles"}},
	{topic: "tokens", tables: []string{"identity_tokens"}},
	{topic: "sessions", tables: []string{"identity_sessions"}},
	{topic: "cluster", perm: identity.PermClusterAdmin, tables: []string{"cluster_meta", "keyring_keks", "identity_keys", "agentrpc_ca"}},
	{topic: "plugins", perm: identity.PermJobsRead, tables: []string{"plugins"}},
	{topic: "notifications", perm: identity.PermNotificationsRead, tables: []string{"notify_channels", "notify_templates", "notify_rules", "notify_deliveries"}},
}

// stateIndexTable is the state store's table of per-table indexes, which
// state.Store.TableIndex reads; it is read here with FirstWatch so that
// the entry's watch channel goes into the watch set.
const stateIndexTable = "index"

// Event timings. The minimum gap coalesces a burst (a run of 200 targets
// changes its attempts hundreds of times a second) into at most four
// messages a second; ping, pong and write follow the run stream's.
const (
	defaultEventsMinGap = 250 * time.Millisecond
)

// Events wires GET /api/v1/events; until a controller wires it the route
// answers 503 events_unavailable.
type Events struct {
	// Source is this node's state store.
	Source EventSource
	// MinGap is the least time between two messages (default 250ms).
	MinGap time.Duration
	// PingInterval, PongWait and WriteTimeout are as in RunStream.
	PingInterval time.Duration
	PongWait     time.Duration
	WriteTimeout time.Duration
}

func (e *Events) validate() error {
	if e != nil && e.Source == nil {
		return fieldErrorf("Deps.Events.Source", "required")
	}
	return nil
}

func (e Events) withDefaults() Events {
	if e.MinGap <= 0 {
		e.MinGap = defaultEventsMinGap
	}
	if e.PingInterval <= 0 {
		e.PingInterval = defaultPingInterval
	}
	if e.WriteTimeout <= 0 {
		e.WriteTimeout = defaultWriteTimeout
	}
	if e.PongWait <= 0 {
		e.PongWait = 2*e.PingInterval + e.WriteTimeout
	}
	return e
}

// eventMessage is one websocket message: "hello" first (the topics this
// client will hear about), then "changed" with the topics that changed
// since the previous message.
type eventMessage struct {
	Type   string   `json:"type"`
	Topics []string `json:"topics"`
	// Index is the highest state index among the tables watched.
	Index uint64 `json:"index"`
}

func (s *Server) eventRoutes() []route {
	rt := s.newRoute(http.MethodGet, "/api/v1/events", ClassRead, AccessAuthenticated, s.serveEvents)
	rt.WebSocket = true
	return []route{rt}
}

// topicsFor returns the topics p may hear about, in table order.
func topicsFor(p *identity.Principal) []eventTopic {
	var out []eventTopic
	for _, t := range eventTopics {
		if t.perm == "" || p.Can(t.perm) {
			out = append(out, t)
		}
	}
	return out
}

// tableIndexes reads the index of every table of topics, adding each to
// ws when it is not nil.
func tableIndexes(ws memdb.WatchSet, txn *memdb.Txn, topics []eventTopic) (map[string]uint64, error) {
	out := map[string]uint64{}
	for _, t := range topics {
		for _, table := range t.tables {
			ch, raw, err := txn.FirstWatch(stateIndexTable, "id", table)
			if err != nil {
				return nil, fmt.Errorf("read the index of %s: %w", table, err)
			}
			if ws != nil {
				ws.Add(ch)
			}
			var idx uint64
			if e, ok := raw.(*state.IndexEntry); ok {
				idx = e.Index
			}
			out[table] = idx
		}
	}
	return out, nil
}

// changedTopics names the topics with a table whose index moved (either
// way: a snapshot restore can move it back).
func changedTopics(topics []eventTopic, before, after map[string]uint64) []string {
	var out []string
	for _, t := range topics {
		if slices.ContainsFunc(t.tables, func(table string) bool { return before[table] != after[table] }) {
			out = append(out, t.topic)
		}
	}
	return out
}

func maxIndex(m map[string]uint64) uint64 {
	var n uint64
	for _, v := range m {
		n = max(n, v)
	}
	return n
}

func topicNames(topics []eventTopic) []string {
	out := make([]string, len(topics))
	for i, t := range topics {
		out[i] = t.topic
	}
	return out
}

func (s *Server) serveEvents(w http.ResponseWriter, r *http.Request) error {
	if s.events == nil {
		return problem.Unavailable("events_unavailable", "this controller does not serve live updates: it is not wired")
	}
	if !websocket.IsWebSocketUpgrade(r) {
		return problem.New(problem.KindInvalid, "websocket_required", "this route is a websocket: send an Upgrade: websocket request")
	}
	cfg := s.events.withDefaults()
	topics := topicsFor(principal(r))
	seen, err := tableIndexes(nil, cfg.Source.ReadTxn(), topics)
	if err != nil {
		return err
	}
	up := websocket.Upgrader{
		HandshakeTimeout: cfg.WriteTimeout,
		ReadBufferSize:   streamMaxClientMsg,
		WriteBufferSize:  4 << 10,
		Subprotocols:     []string{streamSubprotocol},
		CheckOrigin:      s.sameOrAllowedOrigin,
		Error: func(w http.ResponseWriter, r *http.Request, status int, reason error) {
			switch {
			case status >= http.StatusInternalServerError:
				writeError(w, r, fmt.Errorf("websocket upgrade: %w", reason))
			case status == http.StatusForbidden:
				writeError(w, r, problem.New(problem.KindForbidden, "websocket_origin", "%v", reason))
			default:
				writeError(w, r, problem.New(problem.KindInvalid, "websocket_handshake", "%v", reason))
			}
		},
	}
	conn, err := up.Upgrade(hijacker{w}, r, nil)
	if err != nil {
		return nil // the upgrader has answered
	}
	log := loggerFrom(r.Context())
	log.Debug("events stream opened", "topics", len(topics))
	ew := &eventsConn{conn: conn, cfg: cfg, log: log}
	ew.run(r.Context(), cfg.Source, topics, seen)
	return nil
}

// eventsConn is one client. run is its only writer; a watcher goroutine
// hands it the changed topics and a reader goroutine the control frames.
type eventsConn struct {
	conn *websocket.Conn
	cfg  Events
	log  *slog.Logger
}

func (c *eventsConn) write(kind int, data []byte) error {
	if kind == websocket.PingMessage || kind == websocket.PongMessage || kind == websocket.CloseMessage {
		return c.conn.WriteControl(kind, data, time.Now().Add(c.cfg.WriteTimeout))
	}
	_ = c.conn.SetWriteDeadline(time.Now().Add(c.cfg.WriteTimeout))
	return c.conn.WriteMessage(kind, data)
}

func (c *eventsConn) send(m eventMessage) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return c.write(websocket.TextMessage, b)
}

func (c *eventsConn) closeWith(code int, reason string) {
	_ = c.write(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason))
}

func (c *eventsConn) run(ctx context.Context, src EventSource, topics []eventTopic, seen map[string]uint64) {
	ctx, cancel := context.WithCancel(ctx)
	conn := c.conn
	pings := make(chan string, 1)
	conn.SetReadLimit(streamMaxClientMsg)
	_ = conn.SetReadDeadline(time.Now().Add(c.cfg.PongWait))
	conn.SetPongHandler(func(string) error { return conn.SetReadDeadline(time.Now().Add(c.cfg.PongWait)) })
	conn.SetPingHandler(func(data string) error {
		select {
		case pings <- data:
		default:
		}
		return nil
	})
	conn.SetCloseHandler(func(int, string) error { return nil })
	readErr := make(chan error, 1)
	go func() {
		for {
			if _, _, err := conn.NextReader(); err != nil {
				readErr <- err
				return
			}
		}
	}()
	changes := make(chan eventMessage)
	watchDone := make(chan error, 1)
	go func() { watchDone <- watchTopics(ctx, src, topics, seen, c.cfg.MinGap, changes) }()
	defer func() {
		cancel()
		<-watchDone
		_ = conn.Close() // ends the reader
		<-readErr
	}()

	if err := c.send(eventMessage{Type: "hello", Topics: topicNames(topics), Index: maxIndex(seen)}); err != nil {
		return
	}
	ticker := time.NewTicker(c.cfg.PingInterval)
	defer ticker.Stop()
	for {
		select {
		case m := <-changes:
			if err := c.send(m); err != nil {
				c.log.Debug("events write failed", "error", err)
				return
			}
		case err := <-watchDone:
			watchDone <- err // for the deferred wait
			if err != nil && ctx.Err() == nil {
				c.log.Error("events: watching the state failed", "error", err)
				c.closeWith(websocket.CloseInternalServerErr, "internal error: reconnect")
			} else {
				c.closeWith(websocket.CloseGoingAway, "server shutting down")
			}
			return
		case data := <-pings:
			if err := c.write(websocket.PongMessage, []byte(data)); err != nil {
				return
			}
		case <-ticker.C:
			if err := c.write(websocket.PingMessage, nil); err != nil {
				return
			}
		case err := <-readErr:
			readErr <- err // for the deferred wait
			var ce *websocket.CloseError
			switch {
			case errors.As(err, &ce):
				c.closeWith(websocket.CloseNormalClosure, "")
			case errors.Is(err, websocket.ErrReadLimit):
				c.closeWith(websocket.CloseMessageTooBig, fmt.Sprintf("client messages are limited to %d bytes", streamMaxClientMsg))
			default:
				c.log.Debug("events client gone", "error", err)
			}
			return
		case <-ctx.Done():
			c.closeWith(websocket.CloseGoingAway, "server shutting down")
			return
		}
	}
}

// watchTopics sleeps on the state's watch channels for the tables of
// topics and sends a "changed" message when any moves, at most one per
// minGap: what changes in between is merged into the next message, since
// each message names what moved since the previous one. It returns when
// ctx ends (nil) or the store fails.
func watchTopics(ctx context.Context, src EventSource, topics []eventTopic, seen map[string]uint64, minGap time.Duration, out chan<- eventMessage) error {
	// gen counts the changes seen: BlockingQuery returns once fn reports
	// an index above the last, which fn does when any table moved.
	var gen uint64 = 1
	for {
		var now map[string]uint64
		_, err := src.BlockingQuery(ctx, gen, func(ws memdb.WatchSet, txn *memdb.Txn) (uint64, error) {
			idx, err := tableIndexes(ws, txn, topics)
			if err != nil {
				return 0, err
			}
			now = idx
			if len(changedTopics(topics, seen, idx)) > 0 {
				return gen + 1, nil
			}
			return gen, nil
		})
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		changed := changedTopics(topics, seen, now)
		if len(changed) == 0 {
			continue // the query ended without a change (a restore that moved nothing)
		}
		gen++
		seen = now
		select {
		case out <- eventMessage{Type: "changed", Topics: changed, Index: maxIndex(now)}:
		case <-ctx.Done():
			return nil
		}
		t := time.NewTimer(minGap)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil
		}
	}
}
