package main

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opsconductor/opsconductor/controller/apiclient"
	"github.com/opsconductor/opsconductor/controller/communication/channel"
)

// hookSecret signs the test channel's deliveries.
const hookSecret = "a-webhook-signing-secret-of-some-length"

// receiver is a webhook endpoint that verifies each delivery's signature
// and answers 500 while it has failures left to give.
type receiver struct {
	mu       sync.Mutex
	fail     int // failures left; negative: fail every request
	got      int // requests seen
	ok       int // requests answered 200
	badSig   []string
	lastKey  string
	lastBody []byte
	headers  http.Header
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.got++
	rc.lastKey, rc.lastBody, rc.headers = r.Header.Get(channel.HeaderIdempotencyKey), body, r.Header.Clone()
	if err := channel.VerifySignature(hookSecret, r.Header.Get(channel.HeaderTimestamp), body, r.Header.Get(channel.HeaderSignature),
		time.Now(), 5*time.Minute); err != nil {
		rc.badSig = append(rc.badSig, err.Error())
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if rc.fail != 0 {
		if rc.fail > 0 {
			rc.fail--
		}
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, "receiver is down")
		return
	}
	rc.ok++
	io.WriteString(w, "thanks")
}

// failing sets how many requests fail from now on (negative: all).
func (rc *receiver) failing(n int) {
	rc.mu.Lock()
	rc.fail = n
	rc.mu.Unlock()
}

func (rc *receiver) counts() (got, ok int, badSig []string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.got, rc.ok, append([]string(nil), rc.badSig...)
}

// contains fails the test unless s holds every want.
func contains(t *testing.T, what, s string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(s, w) {
			t.Fatalf("%s has no %q:\n%s", what, w, s)
		}
	}
}

func TestNotifyCommandsAgainstADevController(t *testing.T) {
	cliEnv(t)
	ctl := startDevController(t)
	addr := "--address=" + ctl.addr
	must(t, adminPassword+"\n", "login", addr, "--username", "admin", "--password-stdin")
	rc := &receiver{}
	hook := httptest.NewServer(rc)
	defer hook.Close()
	dir := t.TempDir()
	write := func(name, body string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	secretFile := write("hook.secret", hookSecret+"\n", 0o600)
	notify := func(stdin string, args ...string) (string, string, error) {
		return runIn(t, stdin, append(append([]string{"notify"}, args...), addr)...)
	}
	ok := func(args ...string) string {
		t.Helper()
		out, errOut, err := notify("", args...)
		if err != nil {
			t.Fatalf("notify %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, errOut)
		}
		return out
	}

	t.Run("flag errors name the flag, before or after the controller has seen them", func(t *testing.T) {
		for _, tc := range []struct {
			name  string
			stdin string
			args  []string
			want  string
			usage bool // refused before any request
		}{
			{"no kind", "", []string{"channel", "create", "x", "--url", hook.URL}, "--kind is required", true},
			{"unknown kind", "", []string{"channel", "create", "x", "--kind", "pager"}, `--kind "pager"`, true},
			{"webhook without url", "", []string{"channel", "create", "x", "--kind", "webhook", "--secret-file", secretFile}, "needs --url", true},
			{"email flag on a webhook", "", []string{"channel", "create", "x", "--kind", "webhook", "--url", hook.URL, "--smtp-host", "mx"},
				"--smtp-host is for email channels, not webhook", true},
			{"webhook without a secret off a terminal", "", []string{"channel", "create", "x", "--kind", "webhook", "--url", hook.URL},
				"give --secret-file or --secret-stdin", true},
			{"short secret", "short\n", []string{"channel", "create", "x", "--kind", "webhook", "--url", hook.URL, "--secret-stdin"},
				"at least 16", true},
			{"two secret sources", "", []string{"channel", "create", "x", "--kind", "webhook", "--url", hook.URL, "--secret-stdin", "--secret-file", secretFile},
				"--secret-file and --secret-stdin", true},
			{"world-readable secret", "", []string{"channel", "create", "x", "--kind", "webhook", "--url", hook.URL,
				"--secret-file", write("open.secret", hookSecret, 0o644)}, "--secret-file", true},
			{"bad timeout", "", []string{"channel", "create", "x", "--kind", "webhook", "--url", hook.URL, "--secret-file", secretFile, "--timeout", "soon"},
				`--timeout "soon"`, true},
			{"bad tls", "", []string{"channel", "create", "x", "--kind", "email", "--smtp-host", "mx", "--from", "a@example.com", "--to", "b@example.com",
				"--tls", "ssl"}, `--tls "ssl"`, true},
			{"email without addresses", "", []string{"channel", "create", "x", "--kind", "email", "--smtp-host", "mx"}, "needs --from, --to", true},
			{"smtp user without password", "", []string{"channel", "create", "x", "--kind", "email", "--smtp-host", "mx", "--from", "a@example.com",
				"--to", "b@example.com", "--username", "u"}, "an SMTP --username needs its password", true},
			{"max attempts out of range", "", []string{"channel", "create", "x", "--kind", "webhook", "--url", hook.URL, "--secret-file", secretFile,
				"--max-attempts", "0"}, "--max-attempts 0", true},
			{"a URL the controller refuses", "", []string{"channel", "create", "x", "--kind", "webhook", "--url", "ftp://example.com/x", "--secret-file", secretFile},
				"--url (config.webhook.url): scheme \"ftp\" is not allowed", false},
			{"an address the controller refuses", "", []string{"channel", "create", "x", "--kind", "email", "--smtp-host", "127.0.0.1", "--tls", "none",
				"--from", "not-an-address", "--to", "b@example.com"}, "--from (config.email.from)", false},
			{"bad throttle", "", []string{"rule", "create", "r", "--event", "run.failed", "--channel", "c", "--throttle", "5 per minute"}, `--throttle "5 per minute"`, true},
			{"bad severity and tag together", "", []string{"rule", "create", "r", "--event", "run.failed", "--channel", "c", "--min-severity", "loud", "--tag", "env"},
				`--min-severity "loud"`, true},
			{"rule without events", "", []string{"rule", "create", "r", "--channel", "c"}, "a rule needs --event", true},
			{"enabled and disabled", "", []string{"rule", "create", "r", "--event", "run.failed", "--channel", "c", "--enabled", "--disabled"},
				"--enabled and --disabled", true},
			{"an unknown channel", "", []string{"rule", "create", "r", "--event", "run.failed", "--channel", "nowhere"}, `--channel (channels[0]): unknown channel "nowhere"`, false},
			{"an unknown event", "", []string{"rule", "create", "r", "--event", "run.exploded", "--channel", "nowhere"}, "--event (events[0])", false},
			{"template without channel", "", []string{"template", "create", "t", "--subject", "x"}, "--channel is required", true},
			{"template text file missing", "", []string{"template", "create", "t", "--channel", "email", "--text-file", filepath.Join(dir, "nope.txt")}, "--text-file", true},
			{"delivery state", "", []string{"delivery", "list", "--state", "lost", "--limit", "5000"}, `--state "lost"`, true},
			{"from-file that is not JSON", "", []string{"rule", "create", "r", "--from-file", write("bad.json", "events: [x]", 0o600)}, "--from-file", true},
			{"from-file with an unknown field", "", []string{"rule", "create", "r", "--from-file", write("typo.json", `{"evnets":["run.failed"]}`, 0o600)},
				`unknown field "evnets"`, true},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, errOut, err := notify(tc.stdin, tc.args...)
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("err = %v, want it to contain %q\nstderr: %s", err, tc.want, errOut)
				}
				var ue usageError
				if tc.usage != errors.As(err, &ue) {
					t.Fatalf("usage error %v, want %v: %v", !tc.usage, tc.usage, err)
				}
			})
		}
		if got, _, _ := rc.counts(); got != 0 {
			t.Fatalf("the receiver saw %d requests", got)
		}
	})

	t.Run("a webhook channel is created, shown without its secret, and listed", func(t *testing.T) {
		out := ok("channel", "create", "hook", "--kind", "webhook", "--url", hook.URL, "--secret-file", secretFile, "--header", "X-Team=ops",
			"--max-attempts", "3", "--timeout", "5s", "--description", "the ops receiver")
		contains(t, "create", out, "Created channel hook (revision 1)", "X-Team: ops", "set (never shown)", "max attempts  3", "5s")
		if strings.Contains(out, hookSecret) {
			t.Fatalf("the secret was printed:\n%s", out)
		}
		contains(t, "list", ok("channel", "list"), "hook", "webhook", hook.URL, "yes", "the ops receiver")
		var ch apiclient.NotifyChannel
		if err := json.Unmarshal([]byte(ok("channel", "show", "hook", "--json")), &ch); err != nil || !ch.HasSecret || ch.Config.Webhook.Headers["X-Team"] != "ops" {
			t.Fatalf("%v: %+v", err, ch)
		}
	})

	t.Run("channel test waits and prints the outcome: delivered with the code", func(t *testing.T) {
		out := ok("channel", "test", "hook", "--event", "agent.down")
		if !regexp.MustCompile(`^test delivery \S+ to hook: delivered \(code 200\) in \S+\n$`).MatchString(out) {
			t.Fatalf("output %q", out)
		}
		got, okN, bad := rc.counts()
		if got != 1 || okN != 1 || len(bad) != 0 {
			t.Fatalf("receiver: %d requests, %d ok, bad signatures %q", got, okN, bad)
		}
		rc.mu.Lock()
		key, team, event := rc.lastKey, rc.headers.Get("X-Team"), rc.headers.Get(channel.HeaderEvent)
		rc.mu.Unlock()
		if key == "" || team != "ops" || event != "agent.down" {
			t.Fatalf("idempotency key %q, X-Team %q, event %q", key, team, event)
		}
		// `notify test` is the same command.
		contains(t, "notify test", ok("test", "hook"), "to hook: delivered (code 200)")
	})
	t.Run("channel test exits 1 with the error when the receiver fails", func(t *testing.T) {
		rc.failing(1)
		out, _, err := notify("", "channel", "test", "hook")
		if exitCode(err) != 1 {
			t.Fatalf("err = %v\n%s", err, out)
		}
		contains(t, "test", out, "to hook: dead after 1 attempt (code 500): ", "response: receiver is down")
	})

	t.Run("update changes only the flags given and keeps the secret", func(t *testing.T) {
		out := ok("channel", "update", "hook", "--header", "X-Env=lab", "--unset-header", "X-Team", "--description", "changed")
		contains(t, "update", out, "Updated channel hook (revision 2)", "X-Env: lab", "changed", "set (never shown)", "max attempts  3")
		if strings.Contains(out, "X-Team") {
			t.Fatalf("X-Team was kept:\n%s", out)
		}
		// The receiver verifies the signature: the secret is still there.
		contains(t, "test", ok("channel", "test", "hook"), "delivered (code 200)")
		if _, _, bad := rc.counts(); len(bad) != 0 {
			t.Fatalf("bad signatures after update: %q", bad)
		}
	})
	t.Run("update --from-file takes what show --json printed", func(t *testing.T) {
		var doc map[string]any
		if err := json.Unmarshal([]byte(ok("channel", "show", "hook", "--json")), &doc); err != nil {
			t.Fatal(err)
		}
		doc["description"] = "from a file"
		b, _ := json.Marshal(doc)
		out := ok("channel", "update", "hook", "--from-file", write("hook.json", string(b), 0o600), "--max-attempts", "4")
		contains(t, "update", out, "revision 3", "from a file", "max attempts  4")
		// The revision in the file is now stale: the update is refused.
		_, _, err := notify("", "channel", "update", "hook", "--from-file", filepath.Join(dir, "hook.json"))
		var apiErr *apiclient.Error
		if !errors.As(err, &apiErr) || apiErr.Status != http.StatusConflict {
			t.Fatalf("stale revision: %v", err)
		}
		// Creating from it makes a copy under the new name (with the secret
		// given again: it is never shown).
		out, errOut, err := notify(hookSecret+"\n", "channel", "create", "hook-copy", "--from-file", filepath.Join(dir, "hook.json"), "--secret-stdin")
		if err != nil {
			t.Fatalf("%v\n%s", err, errOut)
		}
		contains(t, "copy", out, "Created channel hook-copy (revision 1)", "from a file", hook.URL)
		// Updating with a file about another channel is refused.
		_, _, err = notify("", "channel", "update", "hook-copy", "--from-file", filepath.Join(dir, "hook.json"))
		if err == nil || !strings.Contains(err.Error(), `--from-file names "hook" but the argument is "hook-copy"`) {
			t.Fatalf("err = %v", err)
		}
		ok("channel", "delete", "hook-copy")
		ok("channel", "update", "hook", "--max-attempts", "3")
	})

	t.Run("email and chat channels", func(t *testing.T) {
		out := ok("channel", "create", "mail", "--kind", "email", "--smtp-host", "127.0.0.1", "--tls", "none", "--from", "alerts@example.com",
			"--to", "a@example.com,b@example.com")
		contains(t, "email", out, "127.0.0.1:25 (tls none)", "a@example.com, b@example.com", "secret        none")
		out = ok("channel", "update", "mail", "--cc", "c@example.com", "--smtp-port", "2525")
		contains(t, "email update", out, "127.0.0.1:2525 (tls none)", "cc            c@example.com")
		out, errOut, err := notify("smtp-password\n", "channel", "update", "mail", "--username", "alerts", "--secret-stdin")
		if err != nil {
			t.Fatalf("%v\n%s", err, errOut)
		}
		contains(t, "email password", out, "username      alerts", "set (never shown)")

		out = ok("channel", "create", "chat", "--kind", "chat", "--flavor", "mattermost", "--url", "http://127.0.0.1:9/hooks/very-secret-key")
		contains(t, "chat", out, "mattermost", "http://127.0.0.1:9/…")
		if strings.Contains(out, "very-secret-key") {
			t.Fatalf("the chat URL was shown whole:\n%s", out)
		}
		_, _, err = notify("", "channel", "update", "chat", "--flavor", "slack")
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), "--url is required to update a chat channel") {
			t.Fatalf("err = %v", err)
		}
		contains(t, "chat update", ok("channel", "update", "chat", "--flavor", "slack", "--url", "http://127.0.0.1:9/hooks/other-key"), "slack")
	})

	t.Run("templates: create, show, list with built-ins, preview, update, and errors with field and line", func(t *testing.T) {
		body := write("body.json", `{"what": {{json .Summary}}, "type": {{json .Type}}}`, 0o600)
		out := ok("template", "create", "hook-body", "--channel", "webhook", "--events", "run.failed,run.succeeded", "--body-file", body,
			"--description", "a short body")
		contains(t, "create", out, "Created template hook-body (webhook, revision 1)")
		out = ok("template", "show", "hook-body")
		contains(t, "show", out, "hook-body  channel webhook  events run.failed, run.succeeded  revision 1", "--- body ---", "{{json .Summary}}")
		contains(t, "list", ok("template", "list"), "hook-body", "run.failed,run.succeeded", "a short body")
		out = ok("template", "list", "--builtin")
		contains(t, "list --builtin", out, "builtin/run.failed/email", "builtin/agent.down/chat")
		contains(t, "builtin show", ok("template", "show", "builtin/run.failed/email"), "builtin/run.failed/email  channel email", "--- subject ---")
		// A built-in one is copied, not changed.
		_, _, err := notify("", "template", "update", "builtin/run.failed/email", "--subject", "x")
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), "read-only") {
			t.Fatalf("err = %v", err)
		}
		builtin := write("builtin.json", ok("template", "show", "builtin/run.failed/email", "--output", "json"), 0o600)
		contains(t, "copy", ok("template", "create", "my-failed-mail", "--from-file", builtin, "--description", "copied"),
			"Created template my-failed-mail (email, revision 1)")
		contains(t, "preview of the copy", ok("template", "preview", "my-failed-mail"), "--- subject ---", "--- html ---")
		ok("template", "delete", "my-failed-mail")
		if _, _, err := notify("", "rule", "list", "-o", "yaml"); err == nil || !strings.Contains(err.Error(), `--output "yaml"`) {
			t.Fatalf("err = %v", err)
		}

		out = ok("template", "preview", "hook-body", "--event", "run.succeeded")
		contains(t, "preview", out, "--- body ---", `"type": "run.succeeded"`)
		// Flags change the stored template for the preview only.
		out = ok("template", "preview", "hook-body", "--body-file", write("body2.json", `{"id": {{json .ID}}}`, 0o600))
		contains(t, "preview with a change", out, `"id": `)
		contains(t, "still stored", ok("template", "show", "hook-body"), "{{json .Summary}}")
		out, errOut, err := notify("Job {{.Run.Job}} failed\n", "template", "preview", "--channel", "email", "--subject", "Run {{.Run.ID}} failed",
			"--text-file", "-", "--event", "run.failed")
		if err != nil {
			t.Fatalf("%v\n%s", err, errOut)
		}
		contains(t, "preview from flags", out, "--- subject ---\nRun ", "--- text ---")

		text := write("bad.txt", "Hello\n{{if .Run}}\nno end\n", 0o600)
		out, errOut, err = notify("", "template", "preview", "--channel", "email", "--subject", "{{.Run.Nope}}", "--text-file", text)
		if exitCode(err) != 1 || out != "" {
			t.Fatalf("err = %v, stdout %q", err, out)
		}
		for _, line := range strings.Split(strings.TrimSpace(errOut), "\n") {
			if !regexp.MustCompile(`^(subject|text):\d+: \S`).MatchString(line) {
				t.Fatalf("not field:line: message: %q in\n%s", line, errOut)
			}
		}
		contains(t, "preview errors", errOut, "text:")
		_, _, err = notify("", "template", "create", "broken", "--channel", "email", "--subject", "x", "--text-file", text)
		if err == nil || !regexp.MustCompile(`template broken was not saved:\ntext:\d+: `).MatchString(err.Error()) {
			t.Fatalf("err = %v", err)
		}

		out = ok("template", "update", "hook-body", "--events", "run.failed", "--description", "failures only")
		contains(t, "update", out, "Updated template hook-body (webhook, revision 2)")
		contains(t, "after update", ok("template", "show", "hook-body"), "events run.failed  revision 2", "failures only", "{{json .Summary}}")
	})

	var deadID string
	t.Run("rules: create, list, show, update, from-file", func(t *testing.T) {
		out := ok("rule", "create", "hello-runs", "--event", "run.succeeded", "--job", "hel*", "--channel", "hook", "--min-severity", "info",
			"--throttle", "5/1m", "--description", "runs of hello")
		contains(t, "create", out, "Created rule hello-runs (revision 1)", "enabled      yes", "job=hel* severity>=info", "5/1m", "built-in per event")
		contains(t, "list", ok("rule", "list"), "hello-runs", "run.succeeded", "hook", "5/1m", "yes")
		out = ok("rule", "update", "hello-runs", "--disabled", "--throttle", "off", "--group", "web", "--tag", "env=lab")
		contains(t, "update", out, "revision 2", "enabled      no", "job=hel* tag=env=lab group=web severity>=info", "throttle     -")
		var r apiclient.NotifyRule
		if err := json.Unmarshal([]byte(ok("rule", "show", "hello-runs", "--json")), &r); err != nil || r.Enabled || r.Filter.Tags["env"] != "lab" {
			t.Fatalf("%v: %+v", err, r)
		}
		// Back to what matches hello's runs, from a file.
		r.Enabled, r.Filter = true, apiclient.NotifyRuleFilter{Jobs: []string{"hello"}}
		b, _ := json.Marshal(r)
		out = ok("rule", "update", "hello-runs", "--from-file", write("rule.json", string(b), 0o600))
		contains(t, "from file", out, "revision 3", "enabled      yes", "job=hello")
		_, _, err := notify("", "rule", "update", "hello-runs", "--template", "no-such")
		if err == nil || !strings.Contains(err.Error(), `--template (template): unknown template "no-such"`) {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("a delivery that keeps failing is dead, with its attempts in show", func(t *testing.T) {
		rc.failing(-1)
		waitFor(t, "the example job", func() bool { return strings.Contains(must(t, "", "job", "list", addr), "hello ") })
		if out, errOut, err := runIn(t, "", "job", "run", "hello", "--follow", addr); err != nil {
			t.Fatalf("job run: %v\n%s\n%s", err, out, errOut)
		}
		waitFor(t, "a dead delivery of hello-runs", func() bool {
			var ds []apiclient.NotifyDelivery
			if json.Unmarshal([]byte(ok("delivery", "list", "--rule", "hello-runs", "--state", "dead", "--json")), &ds) != nil || len(ds) == 0 {
				return false
			}
			deadID = ds[0].ID
			return true
		})
		out := ok("delivery", "show", deadID)
		contains(t, "show", out, deadID+"  dead  rule hello-runs to channel hook", "run.succeeded (info)", "dead after 3 of 3 attempts",
			"ATTEMPT  AT", "\n1  ", "\n2  ", "\n3  ", "500", "receiver is down")
		out = ok("delivery", "list", "--state", "dead", "--channel", "hook")
		contains(t, "list", out, "ID", deadID, "dead", "run.succeeded", "hello-runs", "3/3", "500")
		contains(t, "tests in the list", ok("delivery", "list", "--channel", "hook"), "(test)")
		var ds []apiclient.NotifyDelivery
		if err := json.Unmarshal([]byte(ok("delivery", "list", "--limit", "1", "--json")), &ds); err != nil || len(ds) != 1 {
			t.Fatalf("%v: %d deliveries", err, len(ds))
		}
	})

	t.Run("redeliver --wait shows progress and exits 0 once delivered", func(t *testing.T) {
		if deadID == "" {
			t.Skip("no dead delivery")
		}
		rc.failing(1)
		_, before, _ := rc.counts()
		out, errOut, err := notify("", "delivery", "redeliver", deadID, "--wait", "--poll", "50ms")
		if err != nil {
			t.Fatalf("%v\nstdout: %s\nstderr: %s", err, out, errOut)
		}
		contains(t, "progress", errOut, "waiting for delivery "+deadID+" — attempt 1 of 3")
		if !regexp.MustCompile(`^delivery ` + deadID + ` to hook: delivered \(code 200\) in \S+ on attempt 2\n$`).MatchString(out) {
			t.Fatalf("output %q", out)
		}
		if _, after, _ := rc.counts(); after != before+1 {
			t.Fatalf("%d successful requests, want 1", after-before)
		}
		out = ok("delivery", "show", deadID)
		contains(t, "show", out, "delivered after 2 of 3 attempts", "redelivered 1 time", "\n1  ", "\n2  ")
		// The first round's three attempts stay in the history, marked.
		if n := strings.Count(out, "\nearlier  "); n != 3 {
			t.Fatalf("%d earlier attempts, want 3:\n%s", n, out)
		}
	})
	t.Run("redeliver --wait exits 1 when the delivery is dead again", func(t *testing.T) {
		if deadID == "" {
			t.Skip("no dead delivery")
		}
		rc.failing(-1)
		out, errOut, err := notify("", "delivery", "redeliver", deadID, "--wait", "--poll", "50ms")
		if exitCode(err) != 1 {
			t.Fatalf("err = %v\nstdout: %s\nstderr: %s", err, out, errOut)
		}
		contains(t, "outcome", out, "to hook: dead after 3 attempts (code 500)")
		rc.failing(0)
		// Without --wait it is queued and the command returns at once; a
		// second redeliver of the pending delivery is refused.
		contains(t, "queued", ok("delivery", "redeliver", deadID), "queued again: attempt 1 of 3")
		if _, _, err := notify("", "delivery", "redeliver", deadID); err == nil || !strings.Contains(err.Error(), "still pending") {
			// It may already have been delivered: that is not an error here.
			if err != nil {
				t.Fatalf("err = %v", err)
			}
		}
	})

	t.Run("deleting what is in use names the user; then everything goes", func(t *testing.T) {
		_, _, err := notify("", "channel", "delete", "hook")
		if err == nil || !strings.Contains(err.Error(), "used by rule hello-runs") {
			t.Fatalf("err = %v", err)
		}
		contains(t, "rule delete", ok("rule", "delete", "hello-runs"), "Deleted rule hello-runs")
		contains(t, "template delete", ok("template", "delete", "hook-body"), "Deleted template hook-body")
		for _, ch := range []string{"hook", "mail", "chat"} {
			contains(t, "channel delete", ok("channel", "delete", ch), "Deleted channel "+ch)
		}
		contains(t, "empty list", ok("channel", "list"), "NAME")
		if out := ok("rule", "list", "--json"); strings.TrimSpace(out) != "[]" {
			t.Fatalf("rules: %s", out)
		}
	})

	t.Run("events lists the event types with their samples", func(t *testing.T) {
		contains(t, "events", ok("events"), "EVENT", "run.failed", "critical", "cluster.leader_changed")
	})
}

func TestNotifyWaitProgress(t *testing.T) {
	now := time.Now()
	d := apiclient.NotifyDelivery{ID: "dlv_7", Channel: "hook", State: apiclient.DeliveryPending, Attempts: 1, MaxAttempts: 8,
		NextAttemptAt: now.Add(3*time.Second + 200*time.Millisecond)}
	for _, tc := range []struct {
		name string
		d    func(apiclient.NotifyDelivery) apiclient.NotifyDelivery
		want string
	}{
		{"waiting for a retry", func(d apiclient.NotifyDelivery) apiclient.NotifyDelivery { return d }, "attempt 2 of 8, next in 3s"},
		{"due now", func(d apiclient.NotifyDelivery) apiclient.NotifyDelivery { d.NextAttemptAt = now; return d }, "attempt 2 of 8, sending"},
		{"first attempt", func(d apiclient.NotifyDelivery) apiclient.NotifyDelivery {
			d.Attempts = 0
			d.NextAttemptAt = now
			return d
		}, "attempt 1 of 8, sending"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := nextAttempt(tc.d(d), now); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}

	t.Run("off a terminal one line per attempt", func(t *testing.T) {
		var b strings.Builder
		show := newWaitProgress(&b, false)
		show(d)
		show(d) // the countdown moved on; the attempt did not
		d2 := d
		d2.Attempts = 2
		show(d2)
		d2.State = apiclient.DeliveryDelivered
		show(d2)
		lines := strings.Split(strings.TrimSpace(b.String()), "\n")
		if len(lines) != 2 || !strings.HasPrefix(lines[0], "waiting for delivery dlv_7 — attempt 2 of 8, next in ") ||
			!strings.HasPrefix(lines[1], "waiting for delivery dlv_7 — attempt 3 of 8") {
			t.Fatalf("progress:\n%s", b.String())
		}
	})
	t.Run("on a terminal the line is redrawn and cleared at the end", func(t *testing.T) {
		var b strings.Builder
		show := newWaitProgress(&b, true)
		show(d)
		d2 := d
		d2.State = apiclient.DeliveryDead
		show(d2)
		if got := b.String(); !strings.HasPrefix(got, "\r\x1b[Kwaiting for delivery dlv_7 — attempt 2 of 8") || !strings.HasSuffix(got, "\r\x1b[K") {
			t.Fatalf("progress %q", got)
		}
	})

	t.Run("template problems read as field:line: message", func(t *testing.T) {
		err := &apiclient.Error{Status: http.StatusBadRequest, Code: "template_invalid", Message: "invalid", Details: []apiclient.ErrorDetail{
			{Field: "text", Message: "line 3: unexpected EOF"},
			{Field: "html", Message: "line 2, column 14: can't evaluate field Nope (rendering the run.failed sample)"},
			{Field: "subject", Message: "an email template needs a subject"},
		}}
		got := strings.Join(templateProblems(err), "\n")
		want := "text:3: unexpected EOF\n" +
			"html:2: can't evaluate field Nope (rendering the run.failed sample) (column 14)\n" +
			"subject: an email template needs a subject"
		if got != want {
			t.Fatalf("got\n%s\nwant\n%s", got, want)
		}
		if templateProblems(errors.New("connection refused")) != nil {
			t.Fatal("a transport error read as template problems")
		}
	})
}
