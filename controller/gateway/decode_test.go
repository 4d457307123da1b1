package gateway

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/opsconductor/opsconductor/controller/problem"
)

func TestProbeWriteRejectsBadBodies(t *testing.T) {
	tests := []struct {
		name        string
		contentType string
		body        string
		maxBody     int64
		wantStatus  int
		wantCode    string
		wantField   string
		wantMessage string // a substring
	}{
		{name: "malformed JSON is a 400 naming the body", contentType: "application/json", body: `{"payload":`,
			wantStatus: 400, wantCode: "invalid_input", wantField: "body", wantMessage: "malformed JSON"},
		{name: "a syntax error says where", contentType: "application/json", body: `{"payload" "x"}`,
			wantStatus: 400, wantCode: "invalid_input", wantField: "body", wantMessage: "at byte"},
		{name: "a missing Content-Type is a 415", body: `{"payload":"x"}`,
			wantStatus: 415, wantCode: "unsupported_media_type", wantField: "Content-Type", wantMessage: "got none"},
		{name: "a form Content-Type is a 415", contentType: "application/x-www-form-urlencoded", body: `{"payload":"x"}`,
			wantStatus: 415, wantCode: "unsupported_media_type", wantField: "Content-Type"},
		{name: "a charset other than utf-8 is a 415", contentType: "application/json; charset=latin1", body: `{}`,
			wantStatus: 415, wantCode: "unsupported_media_type", wantField: "Content-Type", wantMessage: "utf-8"},
		{name: "an unknown field is a 400 naming that field", contentType: "application/json", body: `{"payload":"x","colour":"red"}`,
			wantStatus: 400, wantCode: "invalid_input", wantField: "colour", wantMessage: "unknown field"},
		{name: "trailing data is a 400 naming the body", contentType: "application/json", body: `{"payload":"x"} {"payload":"y"}`,
			wantStatus: 400, wantCode: "invalid_input", wantField: "body", wantMessage: "after the JSON object"},
		{name: "trailing garbage is a 400 naming the body", contentType: "application/json", body: `{"payload":"x"}garbage`,
			wantStatus: 400, wantCode: "invalid_input", wantField: "body", wantMessage: "after the JSON object"},
		{name: "an empty body is a 400", contentType: "application/json",
			wantStatus: 400, wantCode: "invalid_input", wantField: "body", wantMessage: "must not be empty"},
		{name: "null is not an object", contentType: "application/json", body: `null`,
			wantStatus: 400, wantCode: "invalid_input", wantField: "body", wantMessage: "JSON object"},
		{name: "an array is not an object", contentType: "application/json", body: `[{"payload":"x"}]`,
			wantStatus: 400, wantCode: "invalid_input", wantField: "body", wantMessage: "JSON object"},
		{name: "a number for a string names the field", contentType: "application/json", body: `{"payload":42}`,
			wantStatus: 400, wantCode: "invalid_input", wantField: "payload", wantMessage: "must be a string, not number"},
		{name: "an oversized body is a 413", contentType: "application/json", maxBody: 16,
			body:       `{"payload":"` + strings.Repeat("x", 100) + `"}`,
			wantStatus: 413, wantCode: "body_too_large", wantField: "body", wantMessage: "16 bytes"},
		{name: "a payload over 1024 bytes is a 400 naming payload", contentType: "application/json",
			body:       `{"payload":"` + strings.Repeat("x", 1025) + `"}`,
			wantStatus: 400, wantCode: "invalid_input", wantField: "payload", wantMessage: "at most 1024 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, Config{MaxBodyBytes: tt.maxBody})
			rec := f.do(t, newRequest("POST", "/api/v1/operator/probes", tt.contentType, tt.body))
			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", rec.Code, tt.wantStatus, rec.Body)
			}
			e := decodeEnvelope(t, rec)
			if e.Code != tt.wantCode || e.Field != tt.wantField || !strings.Contains(e.Message, tt.wantMessage) {
				t.Errorf("envelope = %+v, want code %q field %q message containing %q", e, tt.wantCode, tt.wantField, tt.wantMessage)
			}
			if len(f.probes.records) != 0 {
				t.Errorf("a rejected request wrote %d probes", len(f.probes.records))
			}
		})
	}
}

func TestProbeWriteAcceptsGoodBodies(t *testing.T) {
	tests := []struct {
		name, contentType, body, wantPayload string
	}{
		{"a payload is written as sent", "application/json", `{"payload":"hello"}`, "hello"},
		{"the payload is optional", "application/json", `{}`, ""},
		{"a utf-8 charset is fine", "application/json; charset=UTF-8", `{"payload":"é"}`, "é"},
		{"surrounding whitespace is fine", "application/json", "\n  {\"payload\":\"x\"}\n\n", "x"},
		{"exactly 1024 bytes is fine", "application/json", `{"payload":"` + strings.Repeat("y", 1024) + `"}`, strings.Repeat("y", 1024)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, Config{})
			rec := f.do(t, newRequest("POST", "/api/v1/operator/probes", tt.contentType, tt.body))
			if rec.Code != http.StatusCreated {
				t.Fatalf("status = %d, want 201; body %s", rec.Code, rec.Body)
			}
			if got := f.probes.records[0].Payload; got != tt.wantPayload {
				t.Errorf("payload = %q, want %q", got, tt.wantPayload)
			}
			if loc := rec.Header().Get("Location"); loc != "/api/v1/operator/probes/p1" {
				t.Errorf("Location = %q", loc)
			}
		})
	}
}

// nestedBody exercises field paths below the top level.
type nestedBody struct {
	Name  string `json:"name"`
	Steps []struct {
		Needs   []string `json:"needs"`
		Timeout int      `json:"timeout"`
	} `json:"steps"`
}

func TestDecodeStrictNamesNestedFields(t *testing.T) {
	var dst nestedBody
	err := decodeStrict(strings.NewReader(`{"name":"x","steps":[{"needs":["a"],"timeout":"soon"}]}`), &dst)
	p, ok := problem.As(err)
	if !ok || p.Kind != problem.KindInvalid || p.Field != "steps.timeout" {
		t.Fatalf("err = %#v, want invalid problem on steps.timeout", err)
	}
}

// FuzzDecodeJSON holds the decoder to its contract on any input: it never
// panics, and it either succeeds or returns a 4xx problem that names what
// to fix. Anything else would surface as a 500 for the client's mistake.
func FuzzDecodeJSON(f *testing.F) {
	seeds := []struct {
		contentType string
		body        string
	}{
		{"application/json", `{"payload":"hello"}`},
		{"application/json", `{}`},
		{"application/json", ``},
		{"application/json", `null`},
		{"application/json", `{"payload":`},
		{"application/json", `{"payload":1}`},
		{"application/json", `{"payload":"x","x":1}`},
		{"application/json", `{"payload":"x"}{}`},
		{"application/json", `{"name":"a","steps":[{"needs":[1]}]}`},
		{"application/json", "\xff\xfe{}"},
		{"application/json; charset=utf-16", `{}`},
		{"text/plain", `{}`},
		{"", `{}`},
		{"application/json", `{"payload":"` + strings.Repeat("z", 5000) + `"}`},
	}
	for _, s := range seeds {
		f.Add(s.contentType, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		for _, dst := range []any{&probeWriteRequest{}, &nestedBody{}, &map[string]any{}} {
			req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
			req.Header.Set("Content-Type", contentType)
			req.Body = http.MaxBytesReader(httptest.NewRecorder(), req.Body, 4096)
			err := decodeJSON(req, dst)
			if err == nil {
				continue
			}
			p, ok := problem.As(err)
			if !ok {
				t.Fatalf("decodeJSON(%q, %q) returned a non-problem error: %v", contentType, body, err)
			}
			if _, known := statusFor(p.Kind); !known || p.Field == "" || p.Message == "" || p.Code == "" {
				t.Fatalf("decodeJSON(%q, %q) returned an incomplete problem: %#v", contentType, body, p)
			}
			if status, _ := statusFor(p.Kind); status >= 500 {
				t.Fatalf("decodeJSON(%q, %q) blamed the server: %#v", contentType, body, p)
			}
		}
	})
}
