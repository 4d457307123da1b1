package main

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// auditController answers the audit routes, recording each request's
// path and query. The real routes are tested in controller/gateway; here
// what matters is what the CLI sends and prints.
type auditController struct {
	mu     sync.Mutex
	seen   []string
	broken bool // verify reports n2 broken
	abort  bool // export stops after its first line
}

const auditEntryJSON = `{"seq":7,"time":"2026-11-02T10:00:00Z","node":"n1","actor":"alice","actor_type":"user","source_ip":"10.0.0.9",` +
	`"action":"jobs.put","resource":"/api/v1/jobs/backup","outcome":"success","prev_hash":"aa","hash":"bb"}`

func (c *auditController) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	c.seen = append(c.seen, r.URL.Path+"?"+r.URL.RawQuery)
	broken, abort := c.broken, c.abort
	c.mu.Unlock()
	switch r.URL.Path {
	case "/api/v1/audit":
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"items":[`+auditEntryJSON+`],"next":"cur-2"}`)
	case "/api/v1/audit/verify":
		w.Header().Set("Content-Type", "application/json")
		chains := `{"node":"n1","entries":7,"first_seq":1,"last_seq":7,"truncated":false,"problems":0}`
		if broken {
			io.WriteString(w, `{"ok":false,"first_broken":{"node":"n2","seq":4,"reason":"hash mismatch"},"chains":[`+chains+
				`,{"node":"n2","entries":9,"first_seq":3,"first_time":"2026-10-01T00:00:00Z","last_seq":11,"truncated":true,"problems":2,`+
				`"first_broken":{"seq":4,"reason":"hash mismatch"}}]}`)
			return
		}
		io.WriteString(w, `{"ok":true,"chains":[`+chains+`]}`)
	case "/api/v1/audit/export":
		w.Header().Set("Content-Type", "application/jsonl")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, auditEntryJSON+"\n")
		if abort {
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}
		io.WriteString(w, auditEntryJSON+"\n")
	default:
		http.NotFound(w, r)
	}
}

func (c *auditController) requests() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.seen
	c.seen = nil
	return out
}

func TestAuditCommands(t *testing.T) {
	cliEnv(t)
	ctl := &auditController{}
	srv := httptest.NewServer(ctl)
	defer srv.Close()
	api := []string{"--address", srv.URL, "--token", "oct_test"}
	cli := func(args ...string) (string, string, error) {
		return runIn(t, "", append(append([]string{"audit"}, args...), api...)...)
	}
	query := func(t *testing.T, req string) url.Values {
		t.Helper()
		_, raw, _ := strings.Cut(req, "?")
		v, err := url.ParseQuery(raw)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}

	t.Run("list sends each filter as its parameter and prints a table with the next cursor", func(t *testing.T) {
		out, errOut, err := cli("list", "--actor", "alice", "--action", "jobs.put", "--resource", "/api/v1/jobs/backup",
			"--outcome", "success", "--since", "2026-11-01T00:00:00Z", "--until", "2026-11-03T00:00:00Z", "--limit", "20",
			"--node", "n1", "--actor-type", "user", "--cursor", "cur-1")
		if err != nil {
			t.Fatalf("%v\n%s", err, errOut)
		}
		reqs := ctl.requests()
		if len(reqs) != 1 || !strings.HasPrefix(reqs[0], "/api/v1/audit?") {
			t.Fatalf("requests %q", reqs)
		}
		want := url.Values{"actor": {"alice"}, "action": {"jobs.put"}, "resource": {"/api/v1/jobs/backup"}, "outcome": {"success"},
			"since": {"2026-11-01T00:00:00Z"}, "until": {"2026-11-03T00:00:00Z"}, "limit": {"20"}, "node": {"n1"},
			"actor_type": {"user"}, "cursor": {"cur-1"}}
		if got := query(t, reqs[0]); got.Encode() != want.Encode() {
			t.Fatalf("query %s, want %s", got.Encode(), want.Encode())
		}
		for _, s := range []string{"TIME", "ACTION", "2026-11-02T10:00:00Z", "n1/7", "alice", "jobs.put", "/api/v1/jobs/backup",
			"success", "10.0.0.9", "more: --cursor cur-2"} {
			if !strings.Contains(out, s) {
				t.Fatalf("no %q in\n%s", s, out)
			}
		}
	})
	t.Run("list --since takes a duration back from now", func(t *testing.T) {
		if _, errOut, err := cli("list", "--since", "24h"); err != nil {
			t.Fatalf("%v\n%s", err, errOut)
		}
		reqs := ctl.requests()
		if len(reqs) != 1 || query(t, reqs[0]).Get("since") == "" {
			t.Fatalf("requests %q", reqs)
		}
	})
	t.Run("list --json prints the page", func(t *testing.T) {
		out, errOut, err := cli("list", "--json")
		if err != nil {
			t.Fatalf("%v\n%s", err, errOut)
		}
		ctl.requests()
		var page struct {
			Items []map[string]any `json:"items"`
			Next  string           `json:"next"`
		}
		if err := json.Unmarshal([]byte(out), &page); err != nil || len(page.Items) != 1 || page.Next != "cur-2" || page.Items[0]["hash"] != "bb" {
			t.Fatalf("%v: %s", err, out)
		}
	})
	t.Run("bad times are usage errors naming both flags, before any request", func(t *testing.T) {
		_, _, err := cli("list", "--since", "yesterday", "--until", "later")
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), "--since") || !strings.Contains(err.Error(), "--until") {
			t.Fatalf("err = %v", err)
		}
		if reqs := ctl.requests(); len(reqs) != 0 {
			t.Fatalf("requests %q", reqs)
		}
	})

	t.Run("export writes JSON Lines to standard output with the filters", func(t *testing.T) {
		out, errOut, err := cli("export", "--actor", "alice")
		if err != nil {
			t.Fatalf("%v\n%s", err, errOut)
		}
		reqs := ctl.requests()
		if len(reqs) != 1 || !strings.HasPrefix(reqs[0], "/api/v1/audit/export?") {
			t.Fatalf("requests %q", reqs)
		}
		if q := query(t, reqs[0]); q.Get("format") != "jsonl" || q.Get("actor") != "alice" {
			t.Fatalf("query %v", q)
		}
		if out != auditEntryJSON+"\n"+auditEntryJSON+"\n" {
			t.Fatalf("output %q", out)
		}
	})
	t.Run("export -o writes the file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "audit.csv")
		if _, errOut, err := cli("export", "--format", "csv", "-o", path); err != nil {
			t.Fatalf("%v\n%s", err, errOut)
		}
		if q := query(t, ctl.requests()[0]); q.Get("format") != "csv" {
			t.Fatalf("query %v", q)
		}
		if b, err := os.ReadFile(path); err != nil || strings.Count(string(b), "\n") != 2 {
			t.Fatalf("file %q: %v", b, err)
		}
	})
	t.Run("an export that breaks off leaves no file behind", func(t *testing.T) {
		ctl.mu.Lock()
		ctl.abort = true
		ctl.mu.Unlock()
		defer func() { ctl.mu.Lock(); ctl.abort = false; ctl.mu.Unlock() }()
		dir := t.TempDir()
		path := filepath.Join(dir, "audit.jsonl")
		if _, _, err := cli("export", "-o", path); err == nil {
			t.Fatal("an aborted export succeeded")
		}
		ctl.requests()
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Fatalf("left behind %v", entries)
		}
	})
	t.Run("export in an unknown format is a usage error", func(t *testing.T) {
		_, _, err := cli("export", "--format", "xml")
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), "--format") {
			t.Fatalf("err = %v", err)
		}
		if reqs := ctl.requests(); len(reqs) != 0 {
			t.Fatalf("requests %q", reqs)
		}
	})

	t.Run("verify prints each chain and succeeds when all are intact", func(t *testing.T) {
		out, errOut, err := cli("verify")
		if err != nil {
			t.Fatalf("%v\n%s", err, errOut)
		}
		ctl.requests()
		if out != "n1  7 entries  seq 1..7  OK\naudit log intact\n" {
			t.Fatalf("output %q", out)
		}
	})
	t.Run("verify names the first broken link and exits 1", func(t *testing.T) {
		ctl.mu.Lock()
		ctl.broken = true
		ctl.mu.Unlock()
		defer func() { ctl.mu.Lock(); ctl.broken = false; ctl.mu.Unlock() }()
		out, _, err := cli("verify")
		ctl.requests()
		var ee exitCodeError
		if !errors.As(err, &ee) || ee.code != 1 {
			t.Fatalf("err = %v", err)
		}
		want := "n1  7 entries  seq 1..7  OK\n" +
			"n2  9 entries  seq 3..11  BROKEN at seq 4: hash mismatch (2 problems)  (head removed by retention; oldest entry 2026-10-01T00:00:00Z)\n" +
			"audit log BROKEN: first broken link is n2 seq 4 (hash mismatch)\n"
		if out != want {
			t.Fatalf("output\n%s\nwant\n%s", out, want)
		}
	})
	t.Run("verify --json prints the reports and still exits 1 when broken", func(t *testing.T) {
		ctl.mu.Lock()
		ctl.broken = true
		ctl.mu.Unlock()
		defer func() { ctl.mu.Lock(); ctl.broken = false; ctl.mu.Unlock() }()
		out, _, err := cli("verify", "--json")
		ctl.requests()
		var ee exitCodeError
		if !errors.As(err, &ee) || ee.code != 1 || !strings.Contains(out, `"first_broken"`) {
			t.Fatalf("err = %v, out %s", err, out)
		}
	})
}
