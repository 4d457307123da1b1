package apiclient

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/opsconductor/opsconductor/controller/communication/audit"
)

// fakeAudit answers the audit routes. It parses each query with the
// server's own audit.ParseFilter, so a parameter the client spells wrong
// fails here as it would against a controller.
type fakeAudit struct {
	t      *testing.T
	got    chan audit.Filter
	format chan string
	// abort makes export stop after its first line, as the controller
	// does when the store fails mid-stream.
	abort bool
}

func (f *fakeAudit) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	format := q.Get("format")
	q.Del("format")
	filter, err := audit.ParseFilter(q)
	if err != nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"error":{"code":"invalid_input","message":"`+strings.ReplaceAll(err.Error(), `"`, `'`)+`"}}`)
		return
	}
	switch r.URL.Path {
	case "/api/v1/audit":
		f.got <- filter
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"items":[{"seq":2,"time":"2026-11-02T10:00:00Z","node":"n1","actor":"alice","actor_type":"user",`+
			`"action":"jobs.put","outcome":"success","prev_hash":"`+audit.ZeroHash+`","hash":"`+audit.ZeroHash+`"}],"next":"c2"}`)
	case "/api/v1/audit/verify":
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"ok":false,"first_broken":{"node":"n2","seq":4,"reason":"hash mismatch"},"chains":[`+
			`{"node":"n1","entries":3,"first_seq":1,"last_seq":3,"truncated":false,"problems":0},`+
			`{"node":"n2","entries":5,"first_seq":1,"last_seq":5,"truncated":false,"problems":1,"first_broken":{"seq":4,"reason":"hash mismatch"}}]}`)
	case "/api/v1/audit/export":
		f.got <- filter
		f.format <- format
		w.Header().Set("Content-Type", "application/jsonl")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "{\"seq\":1}\n")
		if f.abort {
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}
		_, _ = io.WriteString(w, "{\"seq\":2}\n")
	default:
		http.NotFound(w, r)
	}
}

func newFakeAudit(t *testing.T, abort bool) (*fakeAudit, *Client) {
	t.Helper()
	f := &fakeAudit{t: t, got: make(chan audit.Filter, 1), format: make(chan string, 1), abort: abort}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	c, err := New(srv.URL, WithToken("oct_test"))
	if err != nil {
		t.Fatal(err)
	}
	return f, c
}

func TestAuditList(t *testing.T) {
	since := time.Date(2026, 11, 1, 0, 0, 0, 123, time.UTC)
	tests := []struct {
		name string
		in   AuditFilter
		want audit.Filter
	}{
		{name: "an empty filter sends no parameters", in: AuditFilter{}, want: audit.Filter{}},
		{name: "every field reaches the server as the parameter it names",
			in: AuditFilter{Node: "n1", Actor: "alice", ActorType: "user", Action: "jobs.put", Resource: "/api/v1/jobs/a b",
				Outcome: "success", Since: since, Until: since.Add(time.Hour), Cursor: "c1", Limit: 50},
			want: audit.Filter{Node: "n1", Actor: "alice", ActorType: "user", Action: "jobs.put", Resource: "/api/v1/jobs/a b",
				Outcome: "success", Since: since, Until: since.Add(time.Hour), Cursor: "c1", Limit: 50}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, c := newFakeAudit(t, false)
			page, err := c.AuditList(context.Background(), tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got := <-f.got; !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("server parsed %+v, want %+v", got, tt.want)
			}
			if len(page.Items) != 1 || page.Items[0].Actor != "alice" || page.Next != "c2" {
				t.Fatalf("page %+v", page)
			}
		})
	}
	t.Run("a filter the server refuses is an API error", func(t *testing.T) {
		_, c := newFakeAudit(t, false)
		_, err := c.AuditList(context.Background(), AuditFilter{Outcome: "maybe"})
		var apiErr *Error
		if !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadRequest || !strings.Contains(apiErr.Message, "outcome") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestAuditVerify(t *testing.T) {
	_, c := newFakeAudit(t, false)
	v, err := c.AuditVerify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if v.OK || v.FirstBroken == nil || v.FirstBroken.Node != "n2" || v.FirstBroken.Seq != 4 || len(v.Chains) != 2 ||
		v.Chains[1].FirstBroken == nil || v.Chains[1].FirstBroken.Reason != "hash mismatch" || v.Chains[0].LastSeq != 3 {
		t.Fatalf("verification %+v", v)
	}
}

func TestAuditExport(t *testing.T) {
	t.Run("the export streams to the writer, with the format and filter but no limit", func(t *testing.T) {
		f, c := newFakeAudit(t, false)
		var buf bytes.Buffer
		n, err := c.AuditExport(context.Background(), AuditFormatCSV, AuditFilter{Actor: "bob", Limit: 5}, &buf)
		if err != nil {
			t.Fatal(err)
		}
		if got := <-f.got; !reflect.DeepEqual(got, audit.Filter{Actor: "bob"}) {
			t.Fatalf("server parsed %+v", got)
		}
		if format := <-f.format; format != "csv" {
			t.Fatalf("format %q", format)
		}
		if buf.String() != "{\"seq\":1}\n{\"seq\":2}\n" || n != int64(buf.Len()) {
			t.Fatalf("wrote %d: %q", n, buf.String())
		}
	})
	t.Run("an export the server aborts mid-stream is an error, not a short file", func(t *testing.T) {
		_, c := newFakeAudit(t, true)
		var buf bytes.Buffer
		if _, err := c.AuditExport(context.Background(), AuditFormatJSONL, AuditFilter{}, &buf); err == nil {
			t.Fatalf("no error; wrote %q", buf.String())
		}
	})
}
