package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opsconductor/opsconductor/controller/communication/channel"
	"github.com/opsconductor/opsconductor/controller/communication/tmpl"
	"github.com/opsconductor/opsconductor/controller/keyring"
	"github.com/opsconductor/opsconductor/controller/problem"
	"github.com/opsconductor/opsconductor/controller/state"
	"github.com/opsconductor/opsconductor/controller/state/statetest"
	"github.com/opsconductor/opsconductor/internal/metricstest"
)

const testSecret = "0123456789abcdef-webhook-secret"

type fixture struct {
	store   *state.Store
	applier *statetest.Applier
	ring    *keyring.Keyring
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	key, err := keyring.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	ring, err := keyring.Parse([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	store := statetest.NewStore(t, Domain())
	return &fixture{store: store, applier: &statetest.Applier{Store: store}, ring: ring}
}

// service returns a service over the fixture's state; leader says whether
// it leads.
func (f *fixture) service(t *testing.T, leader func() bool) *Service {
	t.Helper()
	s, err := New(Config{UIURL: "https://ops.example", Backoff: func(int) time.Duration { return 5 * time.Millisecond }},
		Deps{Applier: f.applier, Store: f.store, Sealer: f.ring, IsLeader: leader, NodeID: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// run starts the worker and stops it at the end of the test.
func run(t *testing.T, s *Service) context.CancelFunc {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	return stop
}

// receiver is a webhook endpoint that checks signatures and answers with
// the statuses it is given, then 200.
type receiver struct {
	srv      *httptest.Server
	mu       sync.Mutex
	statuses []int
	keys     []string
	bodies   [][]byte
	badSigs  int
	hold     chan struct{} // when set, the first request waits on it
	arrived  chan struct{}
}

func newReceiver(t *testing.T, statuses ...int) *receiver {
	rc := &receiver{statuses: statuses, arrived: make(chan struct{}, 64)}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		err := channel.VerifySignature(testSecret, r.Header.Get(channel.HeaderTimestamp), body,
			r.Header.Get("X-OpsConductor-Signature"), time.Now(), 5*time.Minute)
		rc.mu.Lock()
		if err != nil {
			rc.badSigs++
		}
		rc.keys = append(rc.keys, r.Header.Get("Idempotency-Key"))
		rc.bodies = append(rc.bodies, body)
		n := len(rc.keys)
		status := http.StatusOK
		if len(rc.statuses) > 0 {
			status, rc.statuses = rc.statuses[0], rc.statuses[1:]
		}
		hold := rc.hold
		rc.mu.Unlock()
		rc.arrived <- struct{}{}
		if hold != nil && n == 1 {
			select {
			case <-hold:
			case <-r.Context().Done():
				return
			}
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) seen() (keys []string, badSigs int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]string(nil), rc.keys...), rc.badSigs
}

func mustChannel(t *testing.T, s *Service, name, url string, maxAttempts int) {
	t.Helper()
	secret := testSecret
	cfg := fmt.Sprintf(`{"kind":"webhook","webhook":{"url":%q,"timeout":"5s"}}`, url)
	if _, err := s.PutChannel(context.Background(), "alice", ChannelRequest{Name: name, Config: json.RawMessage(cfg), Secret: &secret, MaxAttempts: maxAttempts}, true); err != nil {
		t.Fatal(err)
	}
}

func mustRule(t *testing.T, s *Service, r Rule) {
	t.Helper()
	r.Enabled = true
	if _, err := s.PutRule(context.Background(), RuleRequest{Rule: r}, true); err != nil {
		t.Fatal(err)
	}
}

func runFailed(job string) tmpl.Event {
	e := tmpl.Sample(tmpl.EventRunFailed)
	e.Run.Job = job
	e.Links = tmpl.Links{}
	return e
}

// waitState polls the delivery until it reaches state or the deadline.
func waitState(t *testing.T, s *Service, id, want string) Delivery {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for {
		d, err := s.WaitDelivery(ctx, id)
		if err != nil {
			t.Fatalf("delivery %s: %v (last %+v)", id, err, d)
		}
		if d.State == want {
			return d
		}
		if d.State != StatePending {
			t.Fatalf("delivery %s is %s, want %s: %+v", id, d.State, want, d)
		}
	}
}

func onlyDelivery(t *testing.T, s *Service) Delivery {
	t.Helper()
	ds, err := s.Deliveries(context.Background(), DeliveryFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 1 {
		t.Fatalf("deliveries = %d, want 1: %+v", len(ds), ds)
	}
	return ds[0]
}

func TestWebhookFailsThreeTimesThenSucceeds(t *testing.T) {
	f := newFixture(t)
	s := f.service(t, func() bool { return true })
	rc := newReceiver(t, 503, 503, 500)
	mustChannel(t, s, "ops-hook", rc.srv.URL, 8)
	mustRule(t, s, Rule{Name: "failures", Events: []tmpl.EventType{tmpl.EventRunFailed}, Channels: []string{"ops-hook"}})
	if err := s.Publish(context.Background(), runFailed("backup"), Match{Job: "backup"}); err != nil {
		t.Fatal(err)
	}
	run(t, s)
	d := waitState(t, s, onlyDelivery(t, s).ID, StateDelivered)
	if d.Attempts != 4 || len(d.History) != 4 {
		t.Fatalf("attempts = %d, history = %d, want 4 and 4: %+v", d.Attempts, len(d.History), d.History)
	}
	for i, want := range []int{503, 503, 500, 200} {
		if d.History[i].Code != want {
			t.Errorf("attempt %d code = %d, want %d", i+1, d.History[i].Code, want)
		}
		if (d.History[i].Error != "") != (want != 200) {
			t.Errorf("attempt %d error = %q", i+1, d.History[i].Error)
		}
	}
	keys, bad := rc.seen()
	if bad != 0 {
		t.Errorf("%d requests had a bad signature", bad)
	}
	if len(keys) != 4 {
		t.Fatalf("receiver saw %d requests, want 4", len(keys))
	}
	for _, k := range keys {
		if k != d.ID {
			t.Errorf("Idempotency-Key = %q, want the delivery ID %q", k, d.ID)
		}
	}
	var body map[string]any
	if err := json.Unmarshal(rc.bodies[3], &body); err != nil {
		t.Fatalf("webhook body is not JSON: %v", err)
	}
	if !strings.Contains(string(rc.bodies[3]), "https://ops.example/runs/") {
		t.Errorf("webhook body has no link back to the run: %s", rc.bodies[3])
	}
}

func TestDeadLetterThenRedeliver(t *testing.T) {
	f := newFixture(t)
	s := f.service(t, func() bool { return true })
	rc := newReceiver(t, 500, 502, 503)
	mustChannel(t, s, "flaky", rc.srv.URL, 3)
	mustRule(t, s, Rule{Name: "all-failures", Events: []tmpl.EventType{tmpl.EventRunFailed}, Channels: []string{"flaky"}})
	if err := s.Publish(context.Background(), runFailed("deploy"), Match{Job: "deploy"}); err != nil {
		t.Fatal(err)
	}
	run(t, s)
	id := onlyDelivery(t, s).ID
	d := waitState(t, s, id, StateDead)
	if d.Attempts != 3 || d.LastCode != 503 || d.LastError == "" {
		t.Fatalf("dead letter = %+v, want 3 attempts ending in 503", d)
	}
	dead, err := s.Deliveries(context.Background(), DeliveryFilter{State: StateDead})
	if err != nil || len(dead) != 1 {
		t.Fatalf("dead letters = %v, %v", dead, err)
	}
	wantNotifyMetrics(t, s, map[string]float64{
		"opsconductor_notify_outbox_pending": 0, "opsconductor_notify_dead_letters": 1,
		`opsconductor_notify_deliveries_total{channel_kind="webhook",outcome="failed"}`: 3,
	})
	if _, err := s.Redeliver(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	d = waitState(t, s, id, StateDelivered)
	if d.Attempts != 1 || d.Round != 1 {
		t.Fatalf("redelivered = %+v, want one attempt in round 1", d)
	}
	wantNotifyMetrics(t, s, map[string]float64{
		"opsconductor_notify_outbox_pending": 0, "opsconductor_notify_dead_letters": 0,
		`opsconductor_notify_deliveries_total{channel_kind="webhook",outcome="failed"}`:    3,
		`opsconductor_notify_deliveries_total{channel_kind="webhook",outcome="delivered"}`: 1,
	})
	if keys, _ := rc.seen(); len(keys) != 4 {
		t.Fatalf("receiver saw %d requests, want 4", len(keys))
	}
}

// wantNotifyMetrics scrapes s's collector and fails unless every series
// (name{label="value",…}) has its value.
func wantNotifyMetrics(t *testing.T, s *Service, want map[string]float64) {
	t.Helper()
	got := metricstest.Gather(t, s.Metrics())
	for series, v := range want {
		if g, ok := got[series]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", series, g, ok, v)
		}
	}
}

func TestPermanentFailureIsDeadAtOnce(t *testing.T) {
	f := newFixture(t)
	s := f.service(t, func() bool { return true })
	rc := newReceiver(t, 400)
	mustChannel(t, s, "strict", rc.srv.URL, 8)
	mustRule(t, s, Rule{Name: "r", Events: []tmpl.EventType{tmpl.EventRunFailed}, Channels: []string{"strict"}})
	if err := s.Publish(context.Background(), runFailed("x"), Match{Job: "x"}); err != nil {
		t.Fatal(err)
	}
	run(t, s)
	d := waitState(t, s, onlyDelivery(t, s).ID, StateDead)
	if d.Attempts != 1 || d.LastCode != 400 {
		t.Fatalf("delivery = %+v, want dead after one 400", d)
	}
}

func TestThrottleFoldsABurstIntoADigest(t *testing.T) {
	f := newFixture(t)
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	now := t0
	f.applier.Now = func() time.Time { return now }
	s := f.service(t, func() bool { return true })
	mustChannel(t, s, "pager", "http://127.0.0.1:9/", 3)
	mustRule(t, s, Rule{Name: "step-failures", Events: []tmpl.EventType{tmpl.EventStepFailed}, Channels: []string{"pager"},
		Throttle: Throttle{Max: 5, Window: Duration(time.Minute)}})
	for i := range 500 {
		e := tmpl.Sample(tmpl.EventStepFailed)
		e.Target.Name = fmt.Sprintf("web-%03d", i)
		if err := s.Publish(context.Background(), e, Match{Targets: []string{e.Target.Name}}); err != nil {
			t.Fatal(err)
		}
		now = now.Add(10 * time.Millisecond)
	}
	ds, err := s.Deliveries(context.Background(), DeliveryFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 5 {
		t.Fatalf("deliveries during the burst = %d, want 5", len(ds))
	}
	// The window ends: the leader's housekeeping flushes the digest.
	now = t0.Add(61 * time.Second)
	f.store.ReadTxn()
	w := &worker{s: s}
	s.d.Now = func() time.Time { return now }
	w.flushDigests(context.Background())
	ds, err = s.Deliveries(context.Background(), DeliveryFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 6 {
		t.Fatalf("deliveries after the window = %d, want 6", len(ds))
	}
	dg := ds[0].Event
	if dg.Type != tmpl.EventDigest || dg.Digest == nil || dg.Digest.Count != 495 || len(dg.Digest.Events) != MaxDigestEvents {
		t.Fatalf("digest = %+v", dg)
	}
	if dg.Digest.Events[0].Target.Name != "web-005" {
		t.Errorf("first held event is for %s, want web-005", dg.Digest.Events[0].Target.Name)
	}
	// A second flush finds nothing to do.
	w.flushDigests(context.Background())
	if ds2, _ := s.Deliveries(context.Background(), DeliveryFilter{Limit: 1000}); len(ds2) != 6 {
		t.Fatalf("a second flush made %d deliveries", len(ds2)-6)
	}
}

func TestRuleFilters(t *testing.T) {
	f := newFixture(t)
	s := f.service(t, func() bool { return true })
	mustChannel(t, s, "c", "http://127.0.0.1:9/", 1)
	mustRule(t, s, Rule{Name: "prod-deploys", Events: []tmpl.EventType{tmpl.EventRunFailed, tmpl.EventStepFailed}, Channels: []string{"c"},
		Filter: Filter{Jobs: []string{"deploy-*"}, Tags: map[string]string{"env": "prod"}, MinSeverity: tmpl.SeverityWarning}})
	tests := []struct {
		name string
		ev   tmpl.EventType
		sev  tmpl.Severity
		m    Match
		want bool
	}{
		{"matching job, tag and severity", tmpl.EventRunFailed, tmpl.SeverityCritical, Match{Job: "deploy-web", Tags: map[string]string{"env": "prod", "x": "y"}}, true},
		{"another job", tmpl.EventRunFailed, tmpl.SeverityCritical, Match{Job: "backup", Tags: map[string]string{"env": "prod"}}, false},
		{"another tag value", tmpl.EventRunFailed, tmpl.SeverityCritical, Match{Job: "deploy-web", Tags: map[string]string{"env": "dev"}}, false},
		{"below the severity", tmpl.EventStepFailed, tmpl.SeverityInfo, Match{Job: "deploy-web", Tags: map[string]string{"env": "prod"}}, false},
		{"an event type the rule does not name", tmpl.EventRunSucceeded, tmpl.SeverityCritical, Match{Job: "deploy-web", Tags: map[string]string{"env": "prod"}}, false},
		{"no job at all", tmpl.EventStepFailed, tmpl.SeverityWarning, Match{Tags: map[string]string{"env": "prod"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, _ := s.Deliveries(context.Background(), DeliveryFilter{Limit: 1000})
			e := tmpl.Sample(tt.ev)
			e.Severity = tt.sev
			if err := s.Publish(context.Background(), e, tt.m); err != nil {
				t.Fatal(err)
			}
			after, _ := s.Deliveries(context.Background(), DeliveryFilter{Limit: 1000})
			if got := len(after) > len(before); got != tt.want {
				t.Fatalf("delivered = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestLeaderDiesMidDelivery: the leader sends, dies before it can commit
// the result, and the next leader sends the same delivery again with the
// same Idempotency-Key. The receiver sees at most the one in-flight
// duplicate, and the delivery ends delivered once.
func TestLeaderDiesMidDelivery(t *testing.T) {
	f := newFixture(t)
	var firstLeads atomic.Bool
	firstLeads.Store(true)
	first := f.service(t, firstLeads.Load)
	rc := newReceiver(t)
	rc.hold = make(chan struct{})
	mustChannel(t, first, "hook", rc.srv.URL, 8)
	mustRule(t, first, Rule{Name: "r", Events: []tmpl.EventType{tmpl.EventRunFailed}, Channels: []string{"hook"}})
	if err := first.Publish(context.Background(), runFailed("j"), Match{Job: "j"}); err != nil {
		t.Fatal(err)
	}
	stopFirst := run(t, first)
	<-rc.arrived
	// The leader dies with the attempt in flight.
	firstLeads.Store(false)
	stopFirst()
	close(rc.hold)

	second := f.service(t, func() bool { return true })
	run(t, second)
	d := waitState(t, second, onlyDelivery(t, second).ID, StateDelivered)
	keys, _ := rc.seen()
	if len(keys) != 2 {
		t.Fatalf("receiver saw %d requests, want the in-flight one and its resend", len(keys))
	}
	if keys[0] != d.ID || keys[1] != d.ID {
		t.Fatalf("idempotency keys %v, want both %s", keys, d.ID)
	}
	if d.Attempts != 1 {
		t.Fatalf("attempts = %d: the dead leader's attempt must not be counted", d.Attempts)
	}
}

func TestChannelSecretIsNeverShownAndSurvivesReplace(t *testing.T) {
	f := newFixture(t)
	s := f.service(t, func() bool { return true })
	rc := newReceiver(t)
	mustChannel(t, s, "hook", rc.srv.URL, 8)
	v, err := s.Channel("hook")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(v)
	if strings.Contains(string(raw), testSecret) || !v.HasSecret {
		t.Fatalf("channel view = %s", raw)
	}
	// A replace without a secret keeps the stored one: the test still signs.
	cfg := fmt.Sprintf(`{"kind":"webhook","webhook":{"url":%q}}`, rc.srv.URL)
	if _, err := s.PutChannel(context.Background(), "alice", ChannelRequest{Name: "hook", Description: "new", Config: json.RawMessage(cfg)}, false); err != nil {
		t.Fatal(err)
	}
	d, err := s.Test(context.Background(), "hook", TestRequest{Event: tmpl.EventAgentDown})
	if err != nil {
		t.Fatal(err)
	}
	run(t, s)
	d = waitState(t, s, d.ID, StateDelivered)
	if _, bad := rc.seen(); bad != 0 || !d.Test {
		t.Fatalf("bad signatures = %d, delivery = %+v", bad, d)
	}
}

func TestValidation(t *testing.T) {
	f := newFixture(t)
	s := f.service(t, func() bool { return true })
	mustChannel(t, s, "c", "http://127.0.0.1:9/", 1)
	ctx := context.Background()
	short := "short"
	tests := []struct {
		name  string
		do    func() error
		field string
	}{
		{"a channel with a bad name", func() error {
			_, err := s.PutChannel(ctx, "", ChannelRequest{Name: "Bad Name", Config: json.RawMessage(`{"kind":"webhook","webhook":{"url":"http://x"}}`), Secret: &short}, true)
			return err
		}, "name"},
		{"a webhook with a short secret", func() error {
			_, err := s.PutChannel(ctx, "", ChannelRequest{Name: "w", Config: json.RawMessage(`{"kind":"webhook","webhook":{"url":"http://x"}}`), Secret: &short}, true)
			return err
		}, "secret"},
		{"a channel config of an unknown kind", func() error {
			_, err := s.PutChannel(ctx, "", ChannelRequest{Name: "w", Config: json.RawMessage(`{"kind":"pigeon"}`)}, true)
			return err
		}, "config"},
		{"removing a webhook's secret", func() error {
			empty := ""
			_, err := s.PutChannel(ctx, "", ChannelRequest{Name: "c", Config: json.RawMessage(`{"kind":"webhook","webhook":{"url":"http://127.0.0.1:9/"}}`), Secret: &empty}, false)
			return err
		}, "secret"},
		{"a rule with an unknown event", func() error {
			_, err := s.PutRule(ctx, RuleRequest{Rule: Rule{Name: "r", Events: []tmpl.EventType{"run.exploded"}, Channels: []string{"c"}}}, true)
			return err
		}, "events[0]"},
		{"a rule with an unknown channel", func() error {
			_, err := s.PutRule(ctx, RuleRequest{Rule: Rule{Name: "r", Events: []tmpl.EventType{tmpl.EventRunFailed}, Channels: []string{"nope"}}}, true)
			return err
		}, "channels[0]"},
		{"a throttle without a window", func() error {
			_, err := s.PutRule(ctx, RuleRequest{Rule: Rule{Name: "r", Events: []tmpl.EventType{tmpl.EventRunFailed}, Channels: []string{"c"}, Throttle: Throttle{Max: 3}}}, true)
			return err
		}, "throttle.window"},
		{"a template that does not parse", func() error {
			_, err := s.PutTemplate(ctx, TemplateRequest{Template: tmpl.Template{Name: "t", Channel: tmpl.ChannelChat, Text: "{{.Run.ID"}}, true)
			return err
		}, "text"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.do()
			if err == nil || !strings.Contains(fieldsOf(err), tt.field) {
				t.Fatalf("error = %v (fields %q), want one naming %s", err, fieldsOf(err), tt.field)
			}
		})
	}
	if _, err := s.Rules(); err != nil {
		t.Fatal(err)
	}
	if rs, _ := s.Rules(); len(rs) != 0 {
		t.Fatalf("a refused rule was stored: %+v", rs)
	}
}

func fieldsOf(err error) string {
	p, ok := problem.As(err)
	if !ok {
		return ""
	}
	out := p.Field
	for _, d := range p.Details {
		out += " " + d.Field
	}
	return out
}

func TestChannelInUseCannotBeDeleted(t *testing.T) {
	f := newFixture(t)
	s := f.service(t, func() bool { return true })
	mustChannel(t, s, "c", "http://127.0.0.1:9/", 1)
	mustRule(t, s, Rule{Name: "uses-c", Events: []tmpl.EventType{tmpl.EventRunFailed}, Channels: []string{"c"}})
	err := s.DeleteChannel(context.Background(), "c")
	if err == nil || !strings.Contains(err.Error(), "uses-c") {
		t.Fatalf("delete = %v, want a conflict naming the rule", err)
	}
}

func TestChatURLSentBackAsShownIsKept(t *testing.T) {
	f := newFixture(t)
	s := f.service(t, func() bool { return true })
	ctx := context.Background()
	const hook = "https://hooks.slack.example/services/T000/B000/XXXX"
	if _, err := s.PutChannel(ctx, "a", ChannelRequest{Name: "chat", Config: json.RawMessage(`{"kind":"chat","chat":{"flavor":"slack","url":"` + hook + `"}}`)}, true); err != nil {
		t.Fatal(err)
	}
	v, err := s.Channel("chat")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(v.Config.Chat.URL, "XXXX") {
		t.Fatalf("the chat URL is shown whole: %s", v.Config.Chat.URL)
	}
	back, _ := json.Marshal(v.Config)
	if _, err := s.PutChannel(ctx, "a", ChannelRequest{Name: "chat", Description: "renamed", Config: back}, false); err != nil {
		t.Fatal(err)
	}
	c, err := getChannel(f.store.ReadTxn(), "chat")
	if err != nil {
		t.Fatal(err)
	}
	if c.Config.Chat.URL != hook || c.Description != "renamed" {
		t.Fatalf("stored chat URL = %q, description %q", c.Config.Chat.URL, c.Description)
	}
	if _, err := s.PutChannel(ctx, "a", ChannelRequest{Name: "nope", Config: back}, false); !problem.Is(err, problem.KindNotFound) {
		t.Fatalf("replacing a missing channel = %v, want not found", err)
	}
}
