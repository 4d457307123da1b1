package apiclient

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"
)

// recorder answers every request with one canned response and keeps
// what it was sent.
type recorder struct {
	status int
	body   string
	mu     sync.Mutex
	reqs   []recorded
}

type recorded struct {
	method, uri, ctype, accept, body string
}

func (rc *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	rc.reqs = append(rc.reqs, recorded{r.Method, r.URL.RequestURI(), r.Header.Get("Content-Type"), r.Header.Get("Accept"), string(b)})
	rc.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(rc.status)
	_, _ = io.WriteString(w, rc.body)
}

func (rc *recorder) last(t *testing.T) recorded {
	t.Helper()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.reqs) == 0 {
		t.Fatal("the server got no request")
	}
	return rc.reqs[len(rc.reqs)-1]
}

func newRecorded(t *testing.T, status int, body string) (*Client, *recorder) {
	t.Helper()
	rc := &recorder{status: status, body: body}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	c, err := New(srv.URL, WithToken("oct_test"))
	if err != nil {
		t.Fatal(err)
	}
	return c, rc
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestJobDefinitionsAreSentAsWritten(t *testing.T) {
	tests := []struct {
		name, def, wantType string
	}{
		{"a YAML definition goes as application/yaml, comments and all", "# restart\nname: web\nsteps: []\n", "application/yaml"},
		{"a JSON object goes as application/json", ` {"name":"web","steps":[]}`, "application/json"},
		{"YAML in flow style that is not JSON stays YAML", "{name: web}", "application/yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, rc := newRecorded(t, http.StatusCreated, `{"job":{"name":"web","latest_version":1},"version":{"name":"web","version":1},"unchanged":false}`)
			res, err := c.PutJob(testCtx(t), "web", []byte(tt.def))
			if err != nil || res.Version.Version != 1 || res.Job.LatestVersion != 1 {
				t.Fatalf("PutJob = %+v, %v", res, err)
			}
			got := rc.last(t)
			if got.method != http.MethodPut || got.uri != "/api/v1/jobs/web" || got.ctype != tt.wantType || got.body != tt.def {
				t.Fatalf("sent %+v", got)
			}
		})
	}
}

func TestAutomationErrorsKeepEveryProblem(t *testing.T) {
	body := `{"error":{"code":"invalid","message":"2 problems","details":[` +
		`{"code":"invalid","field":"steps[2].needs[0]","message":"unknown step \"chek\""},` +
		`{"code":"invalid","field":"params[0].type","message":"must be string, integer, number, boolean or secret"}]}}`
	tests := []struct {
		name string
		call func(ctx context.Context, c *Client) error
	}{
		{"validate", func(ctx context.Context, c *Client) error { return c.ValidateJob(ctx, "web", []byte("name: web\n")) }},
		{"apply", func(ctx context.Context, c *Client) error {
			_, err := c.PutJob(ctx, "web", []byte("name: web\n"))
			return err
		}},
		{"run", func(ctx context.Context, c *Client) error { _, err := c.StartRun(ctx, "web", RunRequest{}); return err }},
	}
	for _, status := range []int{http.StatusBadRequest, http.StatusUnprocessableEntity} {
		for _, tt := range tests {
			t.Run(tt.name+" answered "+http.StatusText(status), func(t *testing.T) {
				c, _ := newRecorded(t, status, body)
				err := tt.call(testCtx(t), c)
				var apiErr *Error
				if !errors.As(err, &apiErr) || apiErr.Status != status || len(apiErr.Details) != 2 ||
					apiErr.Details[0].Field != "steps[2].needs[0]" || apiErr.Details[1].Field != "params[0].type" {
					t.Fatalf("err = %#v", err)
				}
				if !strings.Contains(err.Error(), `steps[2].needs[0]: unknown step "chek"`) {
					t.Fatalf("the message does not name the field: %v", err)
				}
			})
		}
	}
}

func TestRunRequestsSayWhatTheyAsk(t *testing.T) {
	since := time.Date(2026, 11, 27, 10, 0, 0, 0, time.FixedZone("CET", 3600))
	tests := []struct {
		name     string
		call     func(ctx context.Context, c *Client) error
		wantURI  string
		wantBody string
	}{
		{"a run carries its params, targets and version",
			func(ctx context.Context, c *Client) error {
				_, err := c.StartRun(ctx, "web", RunRequest{Params: map[string]any{"batch": "2"}, Targets: []string{"web1"}, Version: 3})
				return err
			}, "/api/v1/jobs/web/runs", `{"params":{"batch":"2"},"targets":["web1"],"version":3}`},
		{"a run list puts every filter in the query, the time in UTC",
			func(ctx context.Context, c *Client) error {
				_, err := c.ListRuns(ctx, RunQuery{Job: "web", Status: "failed", Target: "web1", Since: since, Limit: 5, Cursor: "abc.run_1"})
				return err
			}, "/api/v1/runs?cursor=abc.run_1&job=web&limit=5&since=2026-11-27T09%3A00%3A00Z&status=failed&target=web1", ""},
		{"a log page asks from its cursor",
			func(ctx context.Context, c *Client) error {
				_, err := c.RunLogs(ctx, "run_1", RunLogQuery{Target: "web1", Step: "restart", After: "0:5", Limit: 10})
				return err
			}, "/api/v1/runs/run_1/logs?after=0%3A5&limit=10&step=restart&target=web1", ""},
		{"a whole-run cancel sends no targets",
			func(ctx context.Context, c *Client) error { _, err := c.CancelRun(ctx, "run_1", nil); return err },
			"/api/v1/runs/run_1/cancel", `{}`},
		{"a target cancel names them",
			func(ctx context.Context, c *Client) error {
				_, err := c.CancelRun(ctx, "run_1", []string{"web2"})
				return err
			},
			"/api/v1/runs/run_1/cancel", `{"targets":["web2"]}`},
		{"a rerun says its mode",
			func(ctx context.Context, c *Client) error { _, err := c.Rerun(ctx, "run_1", RerunFailed); return err },
			"/api/v1/runs/run_1/rerun", `{"mode":"failed"}`},
		{"an approval step's ID is escaped in the path",
			func(ctx context.Context, c *Client) error {
				_, err := c.DecideApproval(ctx, "run_1", "go/no-go", false, "not today")
				return err
			}, "/api/v1/runs/run_1/approvals/go%2Fno-go", `{"approve":false,"comment":"not today"}`},
		{"a job version is asked for by number",
			func(ctx context.Context, c *Client) error { _, err := c.GetJob(ctx, "web", 2); return err },
			"/api/v1/jobs/web?version=2", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, rc := newRecorded(t, http.StatusOK, `{}`)
			if err := tt.call(testCtx(t), c); err != nil {
				t.Fatal(err)
			}
			got := rc.last(t)
			if got.uri != tt.wantURI || got.body != tt.wantBody {
				t.Fatalf("sent %s %s\n got: %q %q\nwant: %q %q", got.method, got.uri, got.uri, got.body, tt.wantURI, tt.wantBody)
			}
		})
	}
}

func TestRunLogsReadEveryPageAndTheTextDownload(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("format") == "text" {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_, _ = io.WriteString(w, "web1 restart | ok\n")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Query().Get("after") {
		case "":
			_, _ = io.WriteString(w, `{"items":[{"attempt_id":"a","seq":1,"data":"one\n"}],"next":"0:1"}`)
		case "0:1":
			_, _ = io.WriteString(w, `{"items":[{"attempt_id":"a","seq":2,"data":"two\n"}],"next":"0:2"}`)
		default:
			_, _ = io.WriteString(w, `{"items":[],"next":"0:2"}`)
		}
	}))
	defer srv.Close()
	c, _ := New(srv.URL)
	lines, err := c.AllRunLogs(testCtx(t), "run_1", RunLogQuery{})
	if err != nil || len(lines) != 2 || lines[1].Data != "two\n" {
		t.Fatalf("AllRunLogs = %+v, %v", lines, err)
	}
	var b strings.Builder
	if err := c.RunLogText(testCtx(t), "run_1", RunLogQuery{}, &b); err != nil || b.String() != "web1 restart | ok\n" {
		t.Fatalf("RunLogText = %q, %v", b.String(), err)
	}
}

// streamServer is a run stream: it checks how the client connects and
// sends the events it is given, then closes as the controller does.
type streamServer struct {
	token  string // the bearer token it accepts
	events []RunEvent
	// hold, when set, keeps the connection open after the events until
	// the client goes.
	hold bool
	mu   sync.Mutex
	seen []string // the raw query of each accepted connection
}

func (s *streamServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+s.token {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"error":{"code":"invalid_token","message":"the access token expired"}}`)
		return
	}
	if r.URL.Path != "/api/v1/runs/run_1/stream" {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"error":{"code":"not_found","message":"run not found"}}`)
		return
	}
	up := websocket.Upgrader{Subprotocols: []string{streamSubprotocol}}
	conn, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer conn.Close()
	s.mu.Lock()
	s.seen = append(s.seen, r.URL.RawQuery)
	s.mu.Unlock()
	if conn.Subprotocol() != streamSubprotocol {
		_ = conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseProtocolError, "no subprotocol"))
		return
	}
	for _, ev := range s.events {
		b, _ := json.Marshal(ev)
		if conn.WriteMessage(websocket.TextMessage, b) != nil {
			return
		}
	}
	if s.hold {
		for {
			if _, _, err := conn.NextReader(); err != nil {
				return
			}
		}
	}
	_ = conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "run ended"))
}

// rotatingToken is a token source whose first token the server refuses.
type rotatingToken struct {
	mu        sync.Mutex
	token     string
	refreshed int
}

func (r *rotatingToken) Token(context.Context) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.token, nil
}

func (r *rotatingToken) Refresh(_ context.Context, rejected string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if rejected == r.token {
		r.token, r.refreshed = "fresh", r.refreshed+1
	}
	return r.token, nil
}

func TestStreamRunReadsEventsUntilTheEnd(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	hello, _ := json.Marshal(RunStreamHello{RunID: "run_1", Epoch: "ab12", Head: 3, Oldest: 1})
	ss := &streamServer{token: "fresh", events: []RunEvent{
		{Seq: 3, Type: EventHello, Data: hello},
		{Seq: 4, Type: EventAttempt, Data: json.RawMessage(`{"target":"web1","step":"restart","attempt_id":"att_1","try":1,"status":"running"}`)},
		{Seq: 5, Type: EventGap, From: 5, To: 9},
		{Seq: 10, Type: EventLog, Data: json.RawMessage(`{"target":"web1","step":"restart","attempt_id":"att_1","seq":1,"data":"ok\n"}`)},
		{Seq: 11, Type: EventEnd},
	}}
	srv := httptest.NewServer(ss)
	defer srv.Close()
	src := &rotatingToken{token: "stale"}
	c, _ := New(srv.URL, WithTokenSource(src))
	s, err := c.StreamRun(testCtx(t), "run_1", 2, "ab12")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if src.refreshed != 1 {
		t.Errorf("the refused token was refreshed %d times, want once", src.refreshed)
	}
	var types []string
	for {
		ev, err := s.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		types = append(types, ev.Type)
		if ev.Type == EventAttempt {
			var a AttemptEvent
			if err := json.Unmarshal(ev.Data, &a); err != nil || a.Status != "running" || a.Target != "web1" {
				t.Errorf("attempt event %+v, %v", a, err)
			}
		}
	}
	if strings.Join(types, ",") != "hello,attempt,gap,log,end" {
		t.Fatalf("events %v", types)
	}
	if ss.seen[0] != "after=2&epoch=ab12" {
		t.Fatalf("resumed with %q, want after=2&epoch=ab12", ss.seen[0])
	}
}

func TestStreamRunRefusalsAreAPIErrors(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	srv := httptest.NewServer(&streamServer{token: "good"})
	defer srv.Close()
	tests := []struct {
		name, token, run string
		want             int
	}{
		{"a token the server refuses is a 401", "bad", "run_1", http.StatusUnauthorized},
		{"an unknown run is a 404", "good", "run_9", http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := New(srv.URL, WithToken(tt.token))
			_, err := c.StreamRun(testCtx(t), tt.run, 0, "")
			var apiErr *Error
			if !errors.As(err, &apiErr) || apiErr.Status != tt.want || apiErr.Message == "" {
				t.Fatalf("err = %#v", err)
			}
		})
	}
}

func TestStreamRunStopsWithItsContext(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	srv := httptest.NewServer(&streamServer{token: "good", hold: true})
	defer srv.Close()
	c, _ := New(srv.URL, WithToken("good"))
	ctx, cancel := context.WithCancel(testCtx(t))
	s, err := c.StreamRun(ctx, "run_1", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	errc := make(chan error, 1)
	go func() {
		_, err := s.Next()
		errc <- err
	}()
	cancel()
	select {
	case err := <-errc:
		if err == nil || errors.Is(err, io.EOF) {
			t.Fatalf("Next after cancel = %v, want a broken stream", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Next still blocks after the context ended")
	}
}
