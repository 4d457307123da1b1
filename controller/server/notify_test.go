package server

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opsconductor/opsconductor/controller/apiclient"
	"github.com/opsconductor/opsconductor/controller/communication/channel"
)

const hookSecret = "a-webhook-signing-secret-of-some-length"

// notifyReceiver keeps the notifications a webhook channel posts, with
// whether each one's signature verified.
type notifyReceiver struct {
	mu     sync.Mutex
	bodies []string
	bad    int
}

func (n *notifyReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	err := channel.VerifySignature(hookSecret, r.Header.Get(channel.HeaderTimestamp), body, r.Header.Get("X-OpsConductor-Signature"), time.Now(), time.Minute)
	n.mu.Lock()
	defer n.mu.Unlock()
	if err != nil {
		n.bad++
	}
	n.bodies = append(n.bodies, string(body))
}

func (n *notifyReceiver) find(sub ...string) (string, int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, b := range n.bodies {
		ok := true
		for _, s := range sub {
			ok = ok && strings.Contains(b, s)
		}
		if ok {
			return b, n.bad
		}
	}
	return "", n.bad
}

// call makes an authenticated JSON request and decodes the answer.
func call(ctx context.Context, t testing.TB, r *running, method, path string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequestWithContext(ctx, method, "http://"+r.ready.HTTPAddr+path, rd)
	req.Header.Set("Authorization", "Bearer "+r.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, raw)
		}
	}
	if resp.StatusCode >= 300 && out != nil {
		t.Logf("%s %s = %d: %s", method, path, resp.StatusCode, raw)
	}
	return resp.StatusCode
}

// postHook sends a GitHub-style delivery to a trigger's hook.
func postHook(ctx context.Context, t *testing.T, r *running, path, secret, delivery string, body []byte) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+r.ready.HTTPAddr+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(m.Sum(nil)))
	req.Header.Set("X-GitHub-Delivery", delivery)
	req.Header.Set("X-GitHub-Event", "push")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

const hookJob = `
name: on-push
params:
  - {name: ref, type: string}
targets: {tags: {role: web}}
steps:
  - id: show
    uses: shell
    with: {command: "echo deploying ${{ params.ref }}"}
`

// TestTriggerRunsAJobAndRunEventsAreNotified: a signed push starts the
// job with its ref mapped to a parameter, a replay and a forgery are
// refused and recorded, and the run's start and success reach a webhook
// channel through a rule, signed.
func TestTriggerRunsAJobAndRunEventsAreNotified(t *testing.T) {
	r := start(t, testConfig(t.TempDir()))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	startAgents(ctx, t, r, []string{"web-1"}, map[string]string{"role": "web"})
	putJob(ctx, t, r.client, "on-push", hookJob)

	rcv := &notifyReceiver{}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	if st := call(ctx, t, r, "POST", "/api/v1/notifications/channels", map[string]any{
		"name": "ops-hook", "secret": hookSecret, "config": map[string]any{"kind": "webhook", "webhook": map[string]any{"url": srv.URL}},
	}, &map[string]any{}); st != http.StatusCreated {
		t.Fatalf("create channel = %d", st)
	}
	if st := call(ctx, t, r, "POST", "/api/v1/notifications/rules", map[string]any{
		"name": "pushes", "events": []string{"run.started", "run.succeeded"}, "channels": []string{"ops-hook"},
		"filter": map[string]any{"jobs": []string{"on-*"}}, "enabled": true,
	}, &map[string]any{}); st != http.StatusCreated {
		t.Fatalf("create rule = %d", st)
	}

	var trig struct {
		ID, Path, Secret string
	}
	if st := call(ctx, t, r, "POST", "/api/v1/triggers", map[string]any{
		"name": "github-push", "job": "on-push", "auth": "hmac-github", "param_map": map[string]string{"ref": "payload.ref"},
	}, &trig); st != http.StatusCreated || trig.Secret == "" || !strings.HasSuffix(trig.Path, trig.ID) {
		t.Fatalf("create trigger = %d, %+v", st, trig)
	}
	var shown map[string]any
	call(ctx, t, r, "GET", "/api/v1/triggers/"+trig.ID, nil, &shown)
	if raw, _ := json.Marshal(shown); strings.Contains(string(raw), trig.Secret) {
		t.Fatalf("a read shows the trigger secret: %s", raw)
	}

	body := []byte(`{"ref":"refs/heads/main","pusher":{"name":"octocat"}}`)
	tests := []struct {
		name     string
		secret   string
		delivery string
		want     int
	}{
		{"a signed delivery starts the job", trig.Secret, "d-1", http.StatusAccepted},
		{"the same delivery again is a replay", trig.Secret, "d-1", http.StatusConflict},
		{"a forged signature is refused", "not-the-secret", "d-2", http.StatusUnauthorized},
	}
	var runID string
	for _, tt := range tests {
		st, out := postHook(ctx, t, r, trig.Path, tt.secret, tt.delivery, body)
		if st != tt.want {
			t.Fatalf("%s: status %d (%v), want %d", tt.name, st, out, tt.want)
		}
		if st == http.StatusAccepted {
			runID, _ = out["run_id"].(string)
		}
	}
	run := waitRun(ctx, t, r.client, runID)
	params, _ := run.Params.(map[string]any)
	if run.Status != "succeeded" || params["ref"] != "refs/heads/main" || run.Trigger.Kind != "webhook" {
		t.Fatalf("run = %s, params %v, trigger %+v", run.Status, run.Params, run.Trigger)
	}

	// Both run events arrive, signed; the rule's job filter let them through.
	for _, typ := range []string{"run.started", "run.succeeded"} {
		for {
			b, bad := rcv.find(`"type":"`+typ+`"`, runID)
			if bad != 0 {
				t.Fatalf("%d notifications had a bad signature", bad)
			}
			if b != "" {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("no %s notification for run %s", typ, runID)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// Every delivery is recorded, refused ones with their reason.
	for {
		var list struct {
			Items []map[string]any `json:"items"`
		}
		call(ctx, t, r, "GET", "/api/v1/triggers/"+trig.ID+"/deliveries", nil, &list)
		outcomes := map[string]int{}
		for _, it := range list.Items {
			outcomes[fmt.Sprint(it["outcome"])]++
		}
		if outcomes["accepted"] == 1 && outcomes["refused"] == 2 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("recorded deliveries = %v", list.Items)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var deliveries struct {
		Items []struct {
			State, Rule string
			Attempts    int
		} `json:"items"`
	}
	call(ctx, t, r, "GET", "/api/v1/notifications/deliveries?rule=pushes&limit="+strconv.Itoa(10), nil, &deliveries)
	if len(deliveries.Items) < 2 {
		t.Fatalf("notification deliveries = %+v", deliveries.Items)
	}
}

// TestDomainEventsReachARule: failed logins over the lockout threshold
// and a credential's rotation, raised inside the identity and credentials
// Apply, reach a webhook channel through one rule.
func TestDomainEventsReachARule(t *testing.T) {
	r := start(t, testConfig(t.TempDir()))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rcv := &notifyReceiver{}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	if st := call(ctx, t, r, "POST", "/api/v1/notifications/channels", map[string]any{
		"name": "security", "secret": hookSecret, "config": map[string]any{"kind": "webhook", "webhook": map[string]any{"url": srv.URL}},
	}, &map[string]any{}); st != http.StatusCreated {
		t.Fatalf("create channel = %d", st)
	}
	if st := call(ctx, t, r, "POST", "/api/v1/notifications/rules", map[string]any{
		"name": "security", "events": []string{"login.failures", "credential.rotated"}, "channels": []string{"security"}, "enabled": true,
	}, &map[string]any{}); st != http.StatusCreated {
		t.Fatalf("create rule = %d", st)
	}
	for range 5 {
		_, err := r.client.Login(ctx, apiclient.LoginRequest{Username: "admin", Password: "not-the-password"})
		if err == nil {
			t.Fatal("a wrong password logged in")
		}
	}
	in := apiclient.CredentialInput{Name: "db", Kind: "password", Username: "app", Secret: &apiclient.CredentialSecret{Password: "first-password"}}
	if _, err := r.client.CreateCredential(ctx, in); err != nil {
		t.Fatal(err)
	}
	if _, err := r.client.ReplaceCredential(ctx, "db", apiclient.CredentialInput{Username: "app", Secret: &apiclient.CredentialSecret{Password: "second-password"}}); err != nil {
		t.Fatal(err)
	}
	for _, want := range [][]string{{`"type":"login.failures"`, `"username":"admin"`}, {`"type":"credential.rotated"`, `"name":"db"`}} {
		for {
			b, bad := rcv.find(want...)
			if bad != 0 {
				t.Fatalf("%d notifications had a bad signature", bad)
			}
			if b != "" {
				if strings.Contains(b, "second-password") {
					t.Fatalf("a notification carries the secret: %s", b)
				}
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("no notification with %v", want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}
