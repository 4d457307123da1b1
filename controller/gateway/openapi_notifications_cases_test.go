package gateway

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opsconductor/opsconductor/controller/communication/channel"
	"github.com/opsconductor/opsconductor/controller/communication/notify"
	"github.com/opsconductor/opsconductor/controller/communication/tmpl"
	"github.com/opsconductor/opsconductor/controller/keyring"
	"github.com/opsconductor/opsconductor/controller/state/statetest"
)

// newTestNotify is a real notification service over its own in-memory
// store, sealing channel secrets with a real keyring. Its delivery worker
// is not running: cases that need deliveries attempted start it with
// caseNotifyWorker.
func newTestNotify(t testing.TB) *notify.Service {
	t.Helper()
	key, err := keyring.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	ring, err := keyring.Parse([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	store := statetest.NewStore(t, notify.Domain())
	sender := channel.NewSender()
	t.Cleanup(sender.CloseIdle)
	svc, err := notify.New(notify.Config{UIURL: "https://ops.example", Backoff: func(int) time.Duration { return 5 * time.Millisecond }},
		notify.Deps{Applier: &statetest.Applier{Store: store}, Store: store, Sealer: ring, Sender: sender, NodeID: "n1",
			IsLeader: func() bool { return true }, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// caseNotifyWorker runs the fixture's delivery worker until the returned
// stop is called or the test ends.
func caseNotifyWorker(t *testing.T, f *fixture) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.srv.notify.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

// caseNotifySecret signs the cases' webhooks; no response may carry it.
const caseNotifySecret = "case-webhook-signing-secret-0123"

// noNotifySecret fails when a response carries the channel secret, plain
// or in base64.
func noNotifySecret(next func(*testing.T, *responseUnderTest)) func(*testing.T, *responseUnderTest) {
	return func(t *testing.T, rec *responseUnderTest) {
		t.Helper()
		for _, form := range []string{caseNotifySecret, base64.StdEncoding.EncodeToString([]byte(caseNotifySecret))} {
			if strings.Contains(string(rec.body), form) {
				t.Fatalf("the response carries the channel secret: %s", rec.body)
			}
		}
		if next != nil {
			next(t, rec)
		}
	}
}

// caseReceiver is a webhook endpoint that verifies each request's
// signature and answers status.
type caseReceiver struct {
	srv     *httptest.Server
	mu      sync.Mutex
	keys    []string // Idempotency-Key of each well-signed request
	badSigs int
}

func caseWebhookReceiver(t *testing.T, status int) *caseReceiver {
	t.Helper()
	rc := &caseReceiver{}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		err := channel.VerifySignature(caseNotifySecret, r.Header.Get(channel.HeaderTimestamp), body,
			r.Header.Get(channel.HeaderSignature), time.Now(), 5*time.Minute)
		rc.mu.Lock()
		if err != nil || !json.Valid(body) {
			rc.badSigs++
		} else {
			rc.keys = append(rc.keys, r.Header.Get(channel.HeaderIdempotencyKey))
		}
		rc.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *caseReceiver) seen() (keys []string, badSigs int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]string(nil), rc.keys...), rc.badSigs
}

// caseNotifyChannel stores webhook channel name posting to url.
func caseNotifyChannel(t *testing.T, f *fixture, name, url string) notify.ChannelView {
	t.Helper()
	secret := caseNotifySecret
	cfg := `{"kind":"webhook","webhook":{"url":` + jsonString(url) + `,"timeout":"5s"}}`
	v, err := f.srv.notify.PutChannel(context.Background(), "admin",
		notify.ChannelRequest{Name: name, Config: json.RawMessage(cfg), Secret: &secret}, true)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// caseNotifyTemplate stores webhook template name for run.failed.
func caseNotifyTemplate(t *testing.T, f *fixture, name string) notify.Template {
	t.Helper()
	v, err := f.srv.notify.PutTemplate(context.Background(), notify.TemplateRequest{Template: tmpl.Template{Name: name,
		Channel: tmpl.ChannelWebhook, Events: []tmpl.EventType{tmpl.EventRunFailed},
		Body: `{"run":{{json .Run.ID}},"summary":{{json .Summary}}}`}}, true)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// caseNotifyRule stores enabled rule name sending run.failed to channels
// with template (empty: the built-in ones).
func caseNotifyRule(t *testing.T, f *fixture, name, template string, channels ...string) notify.Rule {
	t.Helper()
	v, err := f.srv.notify.PutRule(context.Background(), notify.RuleRequest{Rule: notify.Rule{Name: name,
		Events: []tmpl.EventType{tmpl.EventRunFailed}, Channels: channels, Template: template, Enabled: true}}, true)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// caseNotifyAll stores channel, template and rule name, and a test
// delivery to the channel that stays pending (no worker runs); it returns
// the delivery's ID.
func caseNotifyAll(t *testing.T, f *fixture, name string) string {
	t.Helper()
	caseNotifyChannel(t, f, name, "https://hooks.example.com/"+name)
	caseNotifyTemplate(t, f, name)
	caseNotifyRule(t, f, name, name, name)
	d, err := f.srv.notify.Test(context.Background(), name, notify.TestRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return d.ID
}

func withNotifyChannel(name string) func(t *testing.T, f *fixture) prepared {
	return func(t *testing.T, f *fixture) prepared {
		t.Helper()
		caseNotifyChannel(t, f, name, "https://hooks.example.com/"+name)
		return prepared{}
	}
}

// withFailedRuns stores channel ops-hook, rule ops, and three run.failed
// events routed by it, then a test delivery to the same channel: four
// pending deliveries, three of them the rule's.
func withFailedRuns(t *testing.T, f *fixture) prepared {
	t.Helper()
	caseNotifyChannel(t, f, "ops-hook", "https://hooks.example.com/ops")
	caseNotifyRule(t, f, "ops", "", "ops-hook")
	for range 3 {
		e := tmpl.Sample(tmpl.EventRunFailed)
		if err := f.srv.notify.Publish(context.Background(), e, notify.Match{Job: e.Run.Job}); err != nil {
			t.Fatal(err)
		}
	}
	d, err := f.srv.notify.Test(context.Background(), "ops-hook", notify.TestRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return caseVars("id", d.ID)
}

// withDeadDelivery sends a test to a receiver that answers 500, waits for
// the delivery to be dead and stops the worker.
func withDeadDelivery(t *testing.T, f *fixture) prepared {
	t.Helper()
	rc := caseWebhookReceiver(t, http.StatusInternalServerError)
	caseNotifyChannel(t, f, "ops-hook", rc.srv.URL)
	stop := caseNotifyWorker(t, f)
	d, err := f.srv.notify.Test(context.Background(), "ops-hook", notify.TestRequest{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d, err = f.srv.notify.WaitDelivery(ctx, d.ID)
	if err != nil || d.State != notify.StateDead {
		t.Fatalf("delivery %s is %s (%v), want dead", d.ID, d.State, err)
	}
	stop()
	return caseVars("id", d.ID)
}

// wantDetail checks a 400 names field, at the top or in one of its
// details, with a message containing each of parts.
func wantDetail(field string, parts ...string) func(*testing.T, *responseUnderTest) {
	return func(t *testing.T, rec *responseUnderTest) {
		t.Helper()
		var env envelope
		if err := json.Unmarshal(rec.body, &env); err != nil {
			t.Fatalf("error body: %v", err)
		}
		found := []problemDetail{{Field: env.Error.Field, Message: env.Error.Message}}
		for _, d := range env.Error.Details {
			found = append(found, problemDetail{Field: d.Field, Message: d.Message})
		}
	next:
		for _, d := range found {
			if d.Field != field {
				continue
			}
			for _, p := range parts {
				if !strings.Contains(d.Message, p) {
					continue next
				}
			}
			return
		}
		t.Fatalf("no problem for field %q saying %q: %s", field, parts, rec.body)
	}
}

type problemDetail struct{ Field, Message string }

func notifyCases() []routeCase {
	const js = "application/json"
	const base = "/api/v1/notifications"
	webhookBody := `{"name":"ops-hook","description":"on-call","config":{"kind":"webhook","webhook":{"url":"https://hooks.example.com/ops","headers":{"X-Team":"ops"},"timeout":"5s"}},"secret":"` + caseNotifySecret + `"}`
	mailConfig := `{"kind":"email","email":{"host":"smtp.example.com","port":465,"tls":"implicit","username":"ops","from":"ops@example.com","to":["oncall@example.com"]}}`
	channelView := func(check func(*testing.T, notify.ChannelView)) func(*testing.T, *responseUnderTest) {
		return noNotifySecret(func(t *testing.T, rec *responseUnderTest) {
			t.Helper()
			check(t, decodeInto[notify.ChannelView](t, rec))
		})
	}
	deliveries := func(t *testing.T, rec *responseUnderTest) []notify.Delivery {
		t.Helper()
		return decodeInto[struct{ Items []notify.Delivery }](t, rec).Items
	}
	templates := func(t *testing.T, rec *responseUnderTest) []notify.Template {
		t.Helper()
		return decodeInto[struct{ Items []notify.Template }](t, rec).Items
	}
	unwired := func(f *fixture) { f.srv.notify = nil }
	// Viewers hold notifications:read but not notifications:write.
	viewers := &caseIdentity{}
	asViewer := func(t *testing.T, f *fixture) prepared {
		caseNotifyChannel(t, f, "ops-hook", "https://hooks.example.com/ops")
		return prepared{header: caseBearer(viewers.viewerToken(t))}
	}
	return []routeCase{
		{name: "the notification event types are listed with their samples", method: "GET", target: base + "/events", want: 200,
			check: func(t *testing.T, rec *responseUnderTest) {
				l := decodeInto[struct {
					Items []struct {
						Type   tmpl.EventType
						Sample tmpl.Event
					}
				}](t, rec)
				if len(l.Items) != len(tmpl.EventTypes()) || l.Items[2].Type != tmpl.EventRunFailed || l.Items[2].Sample.Run == nil {
					t.Fatalf("events %s", rec.body)
				}
			}},
		{name: "notification routes answer 503 where the service is not wired", method: "GET", target: base + "/channels",
			want: 503, setup: unwired, check: wantError("notifications_unavailable", "")},
		{name: "notification writes answer 503 where the service is not wired", method: "POST", target: base + "/rules",
			contentType: js, body: `{}`, want: 503, setup: unwired, check: wantError("notifications_unavailable", "")},

		{name: "a viewer reads the notification channels", method: "GET", target: base + "/channels/ops-hook", want: 200,
			identity: viewers, prepare: asViewer, check: noNotifySecret(nil)},
		{name: "a viewer may not change a notification channel", method: "DELETE", target: base + "/channels/ops-hook", want: 403,
			identity: viewers, prepare: asViewer, check: wantError("forbidden", "")},

		// Channels.
		{name: "a webhook channel is created and its secret is never shown", method: "POST", target: base + "/channels",
			contentType: js, body: webhookBody, want: 201, check: channelView(func(t *testing.T, v notify.ChannelView) {
				if v.Name != "ops-hook" || v.Kind != channel.KindWebhook || !v.HasSecret || v.MaxAttempts != notify.DefaultMaxAttempts ||
					v.Revision != 1 || v.CreatedBy != "admin" || v.Config.Webhook == nil || v.Config.Webhook.Headers["X-Team"] != "ops" ||
					v.Config.Webhook.Timeout.Std() != 5*time.Second {
					t.Fatalf("created %+v", v)
				}
			})},
		{name: "a created channel's Location is its URL", method: "POST", target: base + "/channels", contentType: js,
			body: webhookBody, want: 201, check: func(t *testing.T, rec *responseUnderTest) {
				if got := rec.header.Get("Location"); got != base+"/channels/ops-hook" {
					t.Fatalf("Location %q", got)
				}
			}},
		{name: "an email channel is created with its SMTP password sealed", method: "POST", target: base + "/channels",
			contentType: js, want: 201,
			body: `{"name":"ops-mail","config":{"kind":"email","email":{"host":"smtp.example.com","port":587,"tls":"starttls","username":"ops",` +
				`"from":"OpsConductor <ops@example.com>","to":["oncall@example.com"],"cc":["lead@example.com"],"timeout":"30s"}},` +
				`"secret":"` + caseNotifySecret + `","max_attempts":3}`,
			check: channelView(func(t *testing.T, v notify.ChannelView) {
				if v.Kind != channel.KindEmail || !v.HasSecret || v.MaxAttempts != 3 || v.Config.Email == nil || v.Config.Email.Port != 587 ||
					len(v.Config.Email.Cc) != 1 {
					t.Fatalf("created %+v", v)
				}
			})},
		{name: "a chat channel shows its URL cut to the host", method: "POST", target: base + "/channels", contentType: js,
			body: `{"name":"ops-chat","config":{"kind":"chat","chat":{"flavor":"slack","url":"https://hooks.slack.example/services/T0/B0/XYZsecret"}}}`,
			want: 201, check: func(t *testing.T, rec *responseUnderTest) {
				if strings.Contains(string(rec.body), "XYZsecret") {
					t.Fatalf("the chat URL's credential is shown: %s", rec.body)
				}
				v := decodeInto[notify.ChannelView](t, rec)
				if v.HasSecret || v.Config.Chat == nil || v.Config.Chat.URL != "https://hooks.slack.example/…" {
					t.Fatalf("created %s", rec.body)
				}
			}},
		{name: "a channel with a bad name is a 400 naming name", method: "POST", target: base + "/channels", contentType: js,
			body: strings.Replace(webhookBody, `"ops-hook"`, `"Ops Hook"`, 1), want: 400, check: wantError("invalid_input", "name")},
		{name: "a webhook channel with a short secret is a 400 naming secret", method: "POST", target: base + "/channels",
			contentType: js, body: strings.Replace(webhookBody, caseNotifySecret, "short", 1), want: 400,
			check: wantError("invalid_input", "secret")},
		{name: "a webhook channel without a secret is a 400 naming secret", method: "POST", target: base + "/channels",
			contentType: js, body: `{"name":"ops-hook","config":{"kind":"webhook","webhook":{"url":"https://hooks.example.com/ops"}}}`,
			want: 400, check: wantError("invalid_input", "secret")},
		{name: "a channel of an unknown kind is a 400 naming config.kind", method: "POST", target: base + "/channels",
			contentType: js, body: `{"name":"pager","config":{"kind":"pager"}}`, want: 400,
			check: wantDetail("config.kind", "unknown kind")},
		{name: "a channel's config problems are named by path all at once", method: "POST", target: base + "/channels",
			contentType: js, want: 400,
			body: `{"name":"ops-mail","config":{"kind":"email","email":{"host":"smtp.example.com","port":0,"tls":"sometimes","from":"ops@example.com","to":["not an address"]}}}`,
			check: func(t *testing.T, rec *responseUnderTest) {
				for _, field := range []string{"config.email.port", "config.email.tls", "config.email.to[0]"} {
					wantDetail(field)(t, rec)
				}
			}},
		{name: "a channel with an unknown field is a 400 naming it", method: "POST", target: base + "/channels", contentType: js,
			body: strings.Replace(webhookBody, `"description"`, `"colour"`, 1), want: 400, check: wantError("invalid_input", "colour")},
		{name: "a channel config with an unknown field is a 400 naming it under config", method: "POST", target: base + "/channels",
			contentType: js, body: strings.Replace(webhookBody, `"timeout"`, `"timout"`, 1), want: 400,
			check: wantDetail("config.timout", "unknown field")},
		{name: "a second channel of the same name is a 409", method: "POST", target: base + "/channels", contentType: js,
			body: webhookBody, want: 409, prepare: withNotifyChannel("ops-hook"), check: wantError("channel_exists", "")},

		{name: "channels are listed by name without their secrets", method: "GET", target: base + "/channels", want: 200,
			prepare: func(t *testing.T, f *fixture) prepared {
				caseNotifyChannel(t, f, "zeta", "https://hooks.example.com/z")
				caseNotifyChannel(t, f, "alpha", "https://hooks.example.com/a")
				return prepared{}
			}, check: noNotifySecret(func(t *testing.T, rec *responseUnderTest) {
				l := decodeInto[struct{ Items []notify.ChannelView }](t, rec)
				if len(l.Items) != 2 || l.Items[0].Name != "alpha" || l.Items[1].Name != "zeta" || !l.Items[0].HasSecret {
					t.Fatalf("list %s", rec.body)
				}
			})},
		{name: "an empty channel list is an empty array", method: "GET", target: base + "/channels", want: 200,
			check: func(t *testing.T, rec *responseUnderTest) {
				if l := decodeInto[struct{ Items []notify.ChannelView }](t, rec); l.Items == nil || len(l.Items) != 0 {
					t.Fatalf("list %s", rec.body)
				}
			}},
		{name: "a channel is read without its secret", method: "GET", target: base + "/channels/ops-hook", want: 200,
			prepare: withNotifyChannel("ops-hook"), check: channelView(func(t *testing.T, v notify.ChannelView) {
				if v.Name != "ops-hook" || !v.HasSecret {
					t.Fatalf("read %+v", v)
				}
			})},
		{name: "a channel is read consistently", method: "GET", target: base + "/channels/ops-hook?consistent=true", want: 200,
			prepare: withNotifyChannel("ops-hook")},
		{name: "an unknown channel is a 404", method: "GET", target: base + "/channels/nope", want: 404,
			check: wantError("channel_not_found", "")},

		{name: "a channel is replaced and keeps its secret when none is sent", method: "PUT", target: base + "/channels/ops-hook",
			contentType: js, prepare: withNotifyChannel("ops-hook"), want: 200,
			body: `{"config":{"kind":"webhook","webhook":{"url":"https://hooks.example.com/new"}},"max_attempts":2,"revision":1}`,
			check: channelView(func(t *testing.T, v notify.ChannelView) {
				if v.Name != "ops-hook" || !v.HasSecret || v.Revision != 2 || v.MaxAttempts != 2 || v.Config.Webhook.URL != "https://hooks.example.com/new" {
					t.Fatalf("replaced %+v", v)
				}
			})},
		{name: "a mail channel replaced with an empty secret loses its password", method: "PUT", target: base + "/channels/ops-mail",
			contentType: js, want: 200, body: `{"name":"ops-mail","config":` + mailConfig + `,"secret":""}`,
			prepare: func(t *testing.T, f *fixture) prepared {
				secret := caseNotifySecret
				if _, err := f.srv.notify.PutChannel(context.Background(), "admin", notify.ChannelRequest{Name: "ops-mail",
					Config: json.RawMessage(mailConfig), Secret: &secret}, true); err != nil {
					t.Fatal(err)
				}
				return prepared{}
			},
			check: channelView(func(t *testing.T, v notify.ChannelView) {
				if v.HasSecret {
					t.Fatalf("replaced %+v", v)
				}
			})},
		{name: "a channel replaced at a stale revision is a 409", method: "PUT", target: base + "/channels/ops-hook",
			contentType: js, prepare: withNotifyChannel("ops-hook"), want: 409,
			body:  `{"config":{"kind":"webhook","webhook":{"url":"https://hooks.example.com/ops"}},"revision":7}`,
			check: wantError("revision_mismatch", "")},
		{name: "replacing a missing channel at a revision is a 404", method: "PUT", target: base + "/channels/nope",
			contentType: js, want: 404, body: `{"config":{"kind":"webhook","webhook":{"url":"https://hooks.example.com/ops"}},"revision":3}`,
			check: wantError("channel_not_found", "")},
		{name: "a channel body naming another channel is a 400 naming name", method: "PUT", target: base + "/channels/ops-hook",
			contentType: js, want: 400, prepare: withNotifyChannel("ops-hook"),
			body:  `{"name":"other","config":{"kind":"webhook","webhook":{"url":"https://hooks.example.com/ops"}}}`,
			check: wantError("invalid_input", "name")},

		{name: "a channel is deleted", method: "DELETE", target: base + "/channels/ops-hook", want: 204,
			prepare: withNotifyChannel("ops-hook")},
		{name: "deleting an unknown channel is a 404", method: "DELETE", target: base + "/channels/nope", want: 404,
			check: wantError("channel_not_found", "")},
		{name: "deleting a channel a rule sends to is a 409 naming the rule", method: "DELETE", target: base + "/channels/ops-hook",
			want: 409, prepare: func(t *testing.T, f *fixture) prepared {
				caseNotifyChannel(t, f, "ops-hook", "https://hooks.example.com/ops")
				caseNotifyRule(t, f, "page-oncall", "", "ops-hook")
				return prepared{}
			}, check: func(t *testing.T, rec *responseUnderTest) {
				wantError("channel_in_use", "")(t, rec)
				if !strings.Contains(string(rec.body), "page-oncall") {
					t.Fatalf("the rule is not named: %s", rec.body)
				}
			}},

		// Sending a test.
		{name: "a test send waits for the signed delivery to arrive", method: "POST", target: base + "/channels/ops-hook/test",
			contentType: js, body: `{"event":"agent.down"}`, want: 200,
			prepare: func(t *testing.T, f *fixture) prepared {
				rc := caseWebhookReceiver(t, http.StatusOK)
				caseNotifyChannel(t, f, "ops-hook", rc.srv.URL)
				caseNotifyWorker(t, f)
				t.Cleanup(func() {
					// The receiver saw exactly the delivery, signed, keyed
					// by its ID.
					keys, bad := rc.seen()
					if bad != 0 || len(keys) != 1 || !strings.HasPrefix(keys[0], "dlv_") {
						t.Errorf("receiver saw keys %v and %d badly signed requests", keys, bad)
					}
				})
				return prepared{}
			}, check: func(t *testing.T, rec *responseUnderTest) {
				d := decodeInto[notify.Delivery](t, rec)
				if d.State != notify.StateDelivered || d.LastCode != 200 || !d.Test || d.Attempts != 1 || len(d.History) != 1 ||
					d.Event.Type != tmpl.EventAgentDown || !strings.HasPrefix(d.Event.Summary, "Test notification: ") || d.FinishedAt == nil {
					t.Fatalf("delivery %s", rec.body)
				}
			}},
		{name: "a test send to a failing receiver comes back dead with the answer", method: "POST",
			target: base + "/channels/ops-hook/test", want: 200,
			prepare: func(t *testing.T, f *fixture) prepared {
				rc := caseWebhookReceiver(t, http.StatusBadGateway)
				caseNotifyChannel(t, f, "ops-hook", rc.srv.URL)
				caseNotifyWorker(t, f)
				return prepared{}
			}, check: func(t *testing.T, rec *responseUnderTest) {
				d := decodeInto[notify.Delivery](t, rec)
				if d.State != notify.StateDead || d.LastCode != http.StatusBadGateway || d.LastError == "" || d.MaxAttempts != 1 ||
					d.Event.Type != tmpl.EventRunFailed {
					t.Fatalf("delivery %s", rec.body)
				}
			}},
		{name: "a test send with wait=false is accepted at once", method: "POST", target: base + "/channels/ops-hook/test?wait=false",
			want: 202, prepare: withNotifyChannel("ops-hook"), check: func(t *testing.T, rec *responseUnderTest) {
				d := decodeInto[notify.Delivery](t, rec)
				if d.State != notify.StatePending || d.Attempts != 0 || !d.Test || d.Channel != "ops-hook" {
					t.Fatalf("delivery %s", rec.body)
				}
			}},
		{name: "a test send with a bad wait flag is a 400 naming wait", method: "POST", target: base + "/channels/ops-hook/test?wait=soon",
			want: 400, prepare: withNotifyChannel("ops-hook"), check: wantError("invalid_input", "wait")},
		{name: "a test send of an unknown event is a 400 naming event", method: "POST", target: base + "/channels/ops-hook/test",
			contentType: js, body: `{"event":"run.exploded"}`, want: 400, prepare: withNotifyChannel("ops-hook"),
			check: wantError("invalid_input", "event")},
		{name: "a test send with an unknown template is a 400 naming template", method: "POST",
			target: base + "/channels/ops-hook/test?wait=false", contentType: js, body: `{"template":"nope"}`, want: 400,
			prepare: withNotifyChannel("ops-hook"), check: wantError("invalid_input", "template")},
		{name: "a test send to an unknown channel is a 404", method: "POST", target: base + "/channels/nope/test", want: 404,
			check: wantError("channel_not_found", "")},

		// Templates.
		{name: "a template is created", method: "POST", target: base + "/templates", contentType: js, want: 201,
			body: `{"name":"oncall-mail","channel":"email","events":["run.failed","run.canceled"],"subject":"{{.Summary}}",` +
				`"text":"{{with .Run}}{{.Job}} v{{.Version}}: {{.Status}}{{end}}","html":"<p>{{.Summary}}</p>","description":"for on-call"}`,
			check: func(t *testing.T, rec *responseUnderTest) {
				v := decodeInto[notify.Template](t, rec)
				if v.Name != "oncall-mail" || v.Revision != 1 || len(v.Events) != 2 || v.Description != "for on-call" ||
					rec.header.Get("Location") != base+"/templates/oncall-mail" {
					t.Fatalf("created %s (Location %q)", rec.body, rec.header.Get("Location"))
				}
			}},
		{name: "a template that does not parse is a 400 naming field and line", method: "POST", target: base + "/templates",
			contentType: js, want: 400,
			body:  `{"name":"broken","channel":"email","subject":"{{.Summary}}","text":"first line\nsecond {{.Run.Job"}`,
			check: wantDetail("text", "line 2")},
		{name: "a template that fails its trial render is a 400 naming field, line and event", method: "POST",
			target: base + "/templates", contentType: js, want: 400,
			body:  `{"name":"broken","channel":"webhook","events":["agent.down"],"body":"{\n\"job\": {{json .Run.Job}}\n}"}`,
			check: wantDetail("body", "line 2", "agent.down")},
		{name: "a template for an unknown event is a 400 naming events[1]", method: "POST", target: base + "/templates",
			contentType: js, want: 400, body: `{"name":"t","channel":"chat","events":["run.failed","run.exploded"],"text":"{{.Summary}}"}`,
			check: wantDetail("events[1]", "run.exploded")},
		{name: "a second template of the same name is a 409", method: "POST", target: base + "/templates", contentType: js,
			want: 409, body: `{"name":"ops","channel":"chat","text":"{{.Summary}}"}`,
			prepare: func(t *testing.T, f *fixture) prepared { caseNotifyTemplate(t, f, "ops"); return prepared{} },
			check:   wantError("template_exists", "")},

		{name: "stored templates are listed", method: "GET", target: base + "/templates", want: 200,
			prepare: func(t *testing.T, f *fixture) prepared { caseNotifyTemplate(t, f, "ops"); return prepared{} },
			check: func(t *testing.T, rec *responseUnderTest) {
				if l := templates(t, rec); len(l) != 1 || l[0].Name != "ops" {
					t.Fatalf("list %s", rec.body)
				}
			}},
		{name: "built-in templates are listed after the stored ones", method: "GET", target: base + "/templates?builtin=true",
			want: 200, prepare: func(t *testing.T, f *fixture) prepared { caseNotifyTemplate(t, f, "ops"); return prepared{} },
			check: func(t *testing.T, rec *responseUnderTest) {
				l := templates(t, rec)
				if len(l) != 1+3*len(tmpl.EventTypes()) || l[0].Name != "ops" {
					t.Fatalf("%d templates: %s", len(l), rec.body)
				}
				for _, v := range l[1:] {
					if !strings.HasPrefix(v.Name, "builtin/") || v.Description != "built in" {
						t.Fatalf("built-in %+v", v)
					}
				}
			}},
		{name: "a bad builtin flag is a 400 naming builtin", method: "GET", target: base + "/templates?builtin=some", want: 400,
			check: wantError("invalid_input", "builtin")},
		{name: "a built-in template is read by its name", method: "GET", target: base + "/templates/builtin/run.failed/email",
			want: 200, check: func(t *testing.T, rec *responseUnderTest) {
				v := decodeInto[notify.Template](t, rec)
				if v.Name != "builtin/run.failed/email" || v.Channel != tmpl.ChannelEmail || v.Subject == "" {
					t.Fatalf("read %s", rec.body)
				}
			}},
		{name: "an unknown built-in template is a 404", method: "GET", target: base + "/templates/builtin/run.failed/pager",
			want: 404, check: wantError("template_not_found", "")},
		{name: "a stored template is read consistently", method: "GET", target: base + "/templates/ops?consistent=true", want: 200,
			prepare: func(t *testing.T, f *fixture) prepared { caseNotifyTemplate(t, f, "ops"); return prepared{} }},
		{name: "an unknown template is a 404", method: "GET", target: base + "/templates/nope", want: 404,
			check: wantError("template_not_found", "")},
		{name: "a template is replaced", method: "PUT", target: base + "/templates/ops", contentType: js, want: 200,
			body:    `{"channel":"webhook","body":"{\"summary\": {{json .Summary}}}","revision":1}`,
			prepare: func(t *testing.T, f *fixture) prepared { caseNotifyTemplate(t, f, "ops"); return prepared{} },
			check: func(t *testing.T, rec *responseUnderTest) {
				if v := decodeInto[notify.Template](t, rec); v.Name != "ops" || v.Revision != 2 || len(v.Events) != 0 {
					t.Fatalf("replaced %s", rec.body)
				}
			}},
		{name: "a template replaced at a stale revision is a 409", method: "PUT", target: base + "/templates/ops", contentType: js,
			want: 409, body: `{"channel":"webhook","body":"{}","revision":4}`,
			prepare: func(t *testing.T, f *fixture) prepared { caseNotifyTemplate(t, f, "ops"); return prepared{} },
			check:   wantError("revision_mismatch", "")},
		{name: "a template is deleted", method: "DELETE", target: base + "/templates/ops", want: 204,
			prepare: func(t *testing.T, f *fixture) prepared { caseNotifyTemplate(t, f, "ops"); return prepared{} }},
		{name: "deleting a template a rule uses is a 409", method: "DELETE", target: base + "/templates/ops", want: 409,
			prepare: func(t *testing.T, f *fixture) prepared {
				caseNotifyChannel(t, f, "ops-hook", "https://hooks.example.com/ops")
				caseNotifyTemplate(t, f, "ops")
				caseNotifyRule(t, f, "page-oncall", "ops", "ops-hook")
				return prepared{}
			}, check: wantError("template_in_use", "")},
		{name: "deleting an unknown template is a 404", method: "DELETE", target: base + "/templates/nope", want: 404,
			check: wantError("template_not_found", "")},

		{name: "a template preview renders the sample event", method: "POST", target: base + "/templates/preview", contentType: js,
			body: `{"template":{"channel":"webhook","body":"{\"job\": {{json .Run.Job}}, \"failed\": {{.Run.Summary.Failed}}}"},"event":"run.failed"}`,
			want: 200, check: func(t *testing.T, rec *responseUnderTest) {
				v := decodeInto[tmpl.Rendered](t, rec)
				if string(v.Body) != `{"job":"deploy-web","failed":3}` || v.Subject != "" {
					t.Fatalf("preview %s", rec.body)
				}
			}},
		{name: "an email preview renders subject, text and HTML", method: "POST", target: base + "/templates/preview",
			contentType: js, want: 200,
			body: `{"template":{"channel":"email","events":["agent.down"],"subject":"{{.Agent.Name}} is down","text":"{{.Summary}}","html":"<b>{{.Agent.Name}}</b>"}}`,
			check: func(t *testing.T, rec *responseUnderTest) {
				v := decodeInto[tmpl.Rendered](t, rec)
				if v.Subject != "web-03.eu is down" || !strings.Contains(v.Text, "web-03.eu") || v.HTML != "<b>web-03.eu</b>" {
					t.Fatalf("preview %s", rec.body)
				}
			}},
		{name: "a template preview error names field and line", method: "POST", target: base + "/templates/preview", contentType: js,
			body: `{"template":{"channel":"email","subject":"ok","html":"<p>\n{{.Run.Nope}}</p>"},"event":"run.failed"}`,
			want: 400, check: wantDetail("html", "line 2")},
		{name: "a preview of an unknown event is a 400 naming event", method: "POST", target: base + "/templates/preview",
			contentType: js, body: `{"template":{"channel":"chat","text":"{{.Summary}}"},"event":"run.exploded"}`, want: 400,
			check: wantError("invalid_input", "event")},

		// Rules.
		{name: "a rule is created", method: "POST", target: base + "/rules", contentType: js, want: 201,
			prepare: withNotifyChannel("ops-hook"),
			body: `{"name":"page-oncall","events":["run.failed","agent.down","run.failed"],"channels":["ops-hook"],"enabled":true,` +
				`"filter":{"jobs":["deploy-*"],"tags":{"env":"prod"},"min_severity":"warning"},"throttle":{"max":5,"window":"1m"}}`,
			check: func(t *testing.T, rec *responseUnderTest) {
				v := decodeInto[notify.Rule](t, rec)
				if v.Name != "page-oncall" || !v.Enabled || v.Revision != 1 || len(v.Events) != 2 || v.Events[0] != tmpl.EventAgentDown ||
					v.Throttle.Window.Std() != time.Minute || rec.header.Get("Location") != base+"/rules/page-oncall" {
					t.Fatalf("created %s", rec.body)
				}
			}},
		{name: "a rule naming an unknown channel is a 400 naming channels[0]", method: "POST", target: base + "/rules",
			contentType: js, body: `{"name":"r","events":["run.failed"],"channels":["nope"]}`, want: 400,
			check: wantDetail("channels[0]", "nope")},
		{name: "a rule for an unknown event is a 400 naming events[0]", method: "POST", target: base + "/rules", contentType: js,
			body: `{"name":"r","events":["run.exploded"],"channels":["ops-hook"]}`, want: 400, prepare: withNotifyChannel("ops-hook"),
			check: wantDetail("events[0]", "run.exploded")},
		{name: "a rule names every problem at once", method: "POST", target: base + "/rules", contentType: js, want: 400,
			body: `{"name":"R","events":[],"channels":[],"filter":{"min_severity":"loud"},"throttle":{"max":3}}`,
			check: func(t *testing.T, rec *responseUnderTest) {
				for _, field := range []string{"name", "events", "channels", "filter.min_severity", "throttle.window"} {
					wantDetail(field)(t, rec)
				}
			}},
		{name: "a second rule of the same name is a 409", method: "POST", target: base + "/rules", contentType: js, want: 409,
			body: `{"name":"ops","events":["run.failed"],"channels":["ops-hook"]}`,
			prepare: func(t *testing.T, f *fixture) prepared {
				caseNotifyChannel(t, f, "ops-hook", "https://hooks.example.com/ops")
				caseNotifyRule(t, f, "ops", "", "ops-hook")
				return prepared{}
			}, check: wantError("rule_exists", "")},
		{name: "rules are listed", method: "GET", target: base + "/rules", want: 200,
			prepare: func(t *testing.T, f *fixture) prepared { caseNotifyAll(t, f, "ops"); return prepared{} },
			check: func(t *testing.T, rec *responseUnderTest) {
				l := decodeInto[struct{ Items []notify.Rule }](t, rec)
				if len(l.Items) != 1 || l.Items[0].Template != "ops" || l.Items[0].Channels[0] != "ops" {
					t.Fatalf("list %s", rec.body)
				}
			}},
		{name: "a rule is read", method: "GET", target: base + "/rules/ops", want: 200,
			prepare: func(t *testing.T, f *fixture) prepared { caseNotifyAll(t, f, "ops"); return prepared{} }},
		{name: "a rule is read consistently", method: "GET", target: base + "/rules/ops?consistent=true", want: 200,
			prepare: func(t *testing.T, f *fixture) prepared { caseNotifyAll(t, f, "ops"); return prepared{} }},
		{name: "an unknown rule is a 404", method: "GET", target: base + "/rules/nope", want: 404,
			check: wantError("rule_not_found", "")},
		{name: "a rule is replaced, disabled when enabled is left out", method: "PUT", target: base + "/rules/ops", contentType: js,
			want: 200, body: `{"events":["run.canceled"],"channels":["ops"],"revision":1}`,
			prepare: func(t *testing.T, f *fixture) prepared { caseNotifyAll(t, f, "ops"); return prepared{} },
			check: func(t *testing.T, rec *responseUnderTest) {
				v := decodeInto[notify.Rule](t, rec)
				if v.Enabled || v.Revision != 2 || v.Template != "" || v.Events[0] != tmpl.EventRunCanceled {
					t.Fatalf("replaced %s", rec.body)
				}
			}},
		{name: "a rule read can be sent back as it is", method: "PUT", target: base + "/rules/ops", contentType: js, want: 200,
			prepare: func(t *testing.T, f *fixture) prepared {
				caseNotifyAll(t, f, "ops")
				b, err := json.Marshal(caseNotifyRule(t, f, "ops2", "", "ops"))
				if err != nil {
					t.Fatal(err)
				}
				return caseVars("rule", strings.Replace(string(b), `"ops2"`, `"ops"`, 1))
			}, body: "$rule"},
		{name: "a rule is deleted", method: "DELETE", target: base + "/rules/ops", want: 204,
			prepare: func(t *testing.T, f *fixture) prepared { caseNotifyAll(t, f, "ops"); return prepared{} }},
		{name: "deleting an unknown rule is a 404", method: "DELETE", target: base + "/rules/nope", want: 404,
			check: wantError("rule_not_found", "")},

		// Deliveries.
		{name: "deliveries are listed newest first, filtered", method: "GET",
			target: base + "/deliveries?state=pending&rule=ops&channel=ops-hook&limit=2", want: 200, prepare: withFailedRuns,
			check: func(t *testing.T, rec *responseUnderTest) {
				l := deliveries(t, rec)
				if len(l) != 2 || l[0].Rule != "ops" || l[1].Rule != "ops" || l[0].Seq <= l[1].Seq || l[0].Event.Run.Job != "deploy-web" {
					t.Fatalf("list %s", rec.body)
				}
			}},
		{name: "deliveries are listed with the test ones", method: "GET", target: base + "/deliveries", want: 200,
			prepare: withFailedRuns, check: func(t *testing.T, rec *responseUnderTest) {
				l := deliveries(t, rec)
				if len(l) != 4 || !l[0].Test || l[0].Rule != "" {
					t.Fatalf("list %s", rec.body)
				}
			}},
		{name: "an empty delivery list is an empty array", method: "GET", target: base + "/deliveries?state=dead", want: 200,
			check: func(t *testing.T, rec *responseUnderTest) {
				if l := deliveries(t, rec); l == nil || len(l) != 0 {
					t.Fatalf("list %s", rec.body)
				}
			}},
		{name: "a bad delivery state is a 400 naming state", method: "GET", target: base + "/deliveries?state=lost", want: 400,
			check: wantError("invalid_input", "state")},
		{name: "a delivery query names every bad parameter at once", method: "GET",
			target: base + "/deliveries?limit=0&sort=asc", want: 400, check: func(t *testing.T, rec *responseUnderTest) {
				wantDetail("limit")(t, rec)
				wantDetail("sort", "unknown parameter")(t, rec)
			}},
		{name: "a delivery is read", method: "GET", target: base + "/deliveries/$id", want: 200, prepare: withFailedRuns,
			check: func(t *testing.T, rec *responseUnderTest) {
				if d := decodeInto[notify.Delivery](t, rec); !d.Test || d.State != notify.StatePending || d.MaxAttempts != 1 {
					t.Fatalf("read %s", rec.body)
				}
			}},
		{name: "a delivery is read consistently", method: "GET", target: base + "/deliveries/$id?consistent=true", want: 200,
			prepare: withFailedRuns},
		{name: "an unknown delivery is a 404", method: "GET", target: base + "/deliveries/dlv_9_9", want: 404,
			check: wantError("delivery_not_found", "")},
		{name: "a dead delivery is redelivered", method: "POST", target: base + "/deliveries/$id/redeliver", want: 200,
			prepare: withDeadDelivery, check: func(t *testing.T, rec *responseUnderTest) {
				d := decodeInto[notify.Delivery](t, rec)
				if d.State != notify.StatePending || d.Round != 1 || d.Attempts != 0 || d.FinishedAt != nil || len(d.History) != 1 {
					t.Fatalf("redelivered %s", rec.body)
				}
			}},
		{name: "redelivering a pending delivery is a 409", method: "POST", target: base + "/deliveries/$id/redeliver", want: 409,
			prepare: withFailedRuns, check: wantError("delivery_pending", "")},
		{name: "redelivering an unknown delivery is a 404", method: "POST", target: base + "/deliveries/dlv_9_9/redeliver",
			want: 404, check: wantError("delivery_not_found", "")},
	}
}
