package builtin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/opsconductor/opsconductor/plugins/sdk"
)

// maxHTTPBody bounds how much of a response the http step reads to check
// it; a health check never needs more.
const maxHTTPBody = 1 << 20

// bodyExcerpt is how much of the body the step reports as an output.
const bodyExcerpt = 1024

// HTTP sends a request and checks the answer: status, a body substring or a
// value at a JSON path; with retries it is a health check that waits for a
// service to come up.
type HTTP struct{}

var httpDesc = sdk.Description{
	Name:    "http",
	Version: Version,
	Summary: "Send an HTTP request and check the status, body or a JSON value, with retries (a health check).",
	Params: mustSchema(`{
  "type": "object",
  "additionalProperties": false,
  "required": ["url"],
  "properties": {
    "url":     {"type": "string", "format": "uri", "pattern": "^https?://", "description": "http:// or https:// URL."},
    "method":  {"enum": ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"], "description": "Default GET."},
    "headers": {"type": "object", "additionalProperties": {"type": "string"}},
    "body":    {"type": "string"},
    "expect_status": {"type": "array", "items": {"type": "integer", "minimum": 100, "maximum": 599}, "minItems": 1,
                      "description": "Accepted statuses; default any 2xx."},
    "expect_body":   {"type": "string", "minLength": 1, "description": "A substring the body must contain."},
    "expect_json":   {"type": "object", "additionalProperties": false, "required": ["path", "equals"],
                      "properties": {"path": {"type": "string", "minLength": 1, "description": "Dotted path with [i] indexes: status.checks[0].ok"},
                                     "equals": {"description": "The JSON value expected there."}}},
    "retries":  {"type": "integer", "minimum": 0, "maximum": 1000, "description": "Further tries after a failed one."},
    "interval": {"type": "string", "pattern": "` + durationPattern + `", "description": "Pause between tries (default 1s)."},
    "timeout":  {"type": "string", "pattern": "` + durationPattern + `", "description": "Per request (default 10s)."}
  }
}`),
	Outputs: []sdk.OutputSpec{
		{Name: "status", Description: "The last response's status code."},
		{Name: "body", Description: "The first 1 KiB of the last response's body."},
	},
}

// Describe implements sdk.Step.
func (HTTP) Describe() sdk.Description { return httpDesc }

type httpParams struct {
	URL          string            `json:"url"`
	Method       string            `json:"method"`
	Headers      map[string]string `json:"headers"`
	Body         string            `json:"body"`
	ExpectStatus []int             `json:"expect_status"`
	ExpectBody   string            `json:"expect_body"`
	ExpectJSON   *struct {
		Path   string          `json:"path"`
		Equals json.RawMessage `json:"equals"`
	} `json:"expect_json"`
	Retries  int    `json:"retries"`
	Interval string `json:"interval"`
	Timeout  string `json:"timeout"`
}

// httpClient follows redirects as net/http does: a health check of a URL
// that redirects is judged by where it lands, as a browser would. Timeouts
// come from each request's context.
var httpClient = &http.Client{}

// Run implements sdk.Step.
func (HTTP) Run(ctx context.Context, req sdk.Request, out sdk.Output) (sdk.Result, error) {
	var p httpParams
	if err := decodeParams(httpDesc, req, &p); err != nil {
		return sdk.Result{}, err
	}
	interval, err := duration("interval", p.Interval, time.Second)
	if err != nil {
		return sdk.Result{}, err
	}
	timeout, err := duration("timeout", p.Timeout, 10*time.Second)
	if err != nil {
		return sdk.Result{}, err
	}
	var want any
	if p.ExpectJSON != nil {
		if err := json.Unmarshal(p.ExpectJSON.Equals, &want); err != nil {
			return sdk.Result{}, paramError("expect_json.equals", "json", "%v", err)
		}
		if _, err := parseJSONPath(p.ExpectJSON.Path); err != nil {
			return sdk.Result{}, paramError("expect_json.path", "path", "%v", err)
		}
	}
	if p.Method == "" {
		p.Method = http.MethodGet
	}
	var res sdk.Result
	for try := 0; ; try++ {
		status, body, problem, err := p.try(ctx, timeout, want)
		if err != nil {
			return sdk.Result{}, err
		}
		res = sdk.Result{Outputs: map[string]string{"status": strconv.Itoa(status), "body": excerpt(body)}}
		if problem == "" {
			sdk.Printf(out, "%s %s: %d", p.Method, p.URL, status)
			return res, nil
		}
		sdk.Printf(out, "try %d of %d: %s %s: %s", try+1, p.Retries+1, p.Method, p.URL, problem)
		res.Status, res.Message = sdk.StatusFailed, problem
		if try >= p.Retries {
			return res, nil
		}
		t := time.NewTimer(interval)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return res, fmt.Errorf("http %s: %w", p.URL, context.Cause(ctx))
		}
	}
}

// try makes one request. A request that could not be made or an answer
// that does not satisfy the expectations is a problem (retried); only a
// canceled ctx is an error.
func (p httpParams) try(ctx context.Context, timeout time.Duration, want any) (status int, body []byte, problem string, err error) {
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var rd io.Reader
	if p.Body != "" {
		rd = strings.NewReader(p.Body)
	}
	hreq, err := http.NewRequestWithContext(rctx, p.Method, p.URL, rd)
	if err != nil {
		return 0, nil, "", paramError("url", "url", "%v", err)
	}
	for k, v := range p.Headers {
		if strings.EqualFold(k, "Host") {
			hreq.Host = v
			continue
		}
		hreq.Header.Set(k, v)
	}
	resp, err := httpClient.Do(hreq)
	if err != nil {
		if ctx.Err() != nil {
			return 0, nil, "", fmt.Errorf("http %s: %w", p.URL, context.Cause(ctx))
		}
		return 0, nil, err.Error(), nil
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(io.LimitReader(resp.Body, maxHTTPBody))
	if err != nil {
		return resp.StatusCode, body, fmt.Sprintf("reading the body: %v", err), nil
	}
	if !statusOK(resp.StatusCode, p.ExpectStatus) {
		want := "2xx"
		if len(p.ExpectStatus) > 0 {
			want = strings.Trim(fmt.Sprint(p.ExpectStatus), "[]")
		}
		return resp.StatusCode, body, fmt.Sprintf("status %d, want %s", resp.StatusCode, want), nil
	}
	if p.ExpectBody != "" && !strings.Contains(string(body), p.ExpectBody) {
		return resp.StatusCode, body, fmt.Sprintf("the body does not contain %q", p.ExpectBody), nil
	}
	if p.ExpectJSON != nil {
		if msg := checkJSON(body, p.ExpectJSON.Path, want); msg != "" {
			return resp.StatusCode, body, msg, nil
		}
	}
	return resp.StatusCode, body, "", nil
}

func statusOK(code int, want []int) bool {
	if len(want) == 0 {
		return code >= 200 && code < 300
	}
	for _, w := range want {
		if code == w {
			return true
		}
	}
	return false
}

func excerpt(b []byte) string {
	if len(b) > bodyExcerpt {
		b = b[:bodyExcerpt]
		for len(b) > 0 && !utf8.Valid(b) {
			b = b[:len(b)-1] // do not cut a character in half
		}
	}
	return string(b)
}

// checkJSON returns "" when the body's value at path equals want.
func checkJSON(body []byte, path string, want any) string {
	var doc any
	if err := json.Unmarshal(body, &doc); err != nil {
		return fmt.Sprintf("the body is not JSON: %v", err)
	}
	steps, _ := parseJSONPath(path)
	v := doc
	for _, s := range steps {
		switch x := v.(type) {
		case map[string]any:
			if s.index >= 0 {
				return fmt.Sprintf("%s: %s is an object, not an array", path, s.String())
			}
			var ok bool
			if v, ok = x[s.key]; !ok {
				return fmt.Sprintf("%s: no field %q", path, s.key)
			}
		case []any:
			if s.index < 0 {
				return fmt.Sprintf("%s: %s is an array, not an object", path, s.String())
			}
			if s.index >= len(x) {
				return fmt.Sprintf("%s: index %d out of range (length %d)", path, s.index, len(x))
			}
			v = x[s.index]
		default:
			return fmt.Sprintf("%s: nothing at %s", path, s.String())
		}
	}
	if !reflect.DeepEqual(v, want) {
		got, _ := json.Marshal(v)
		exp, _ := json.Marshal(want)
		return fmt.Sprintf("%s is %s, want %s", path, got, exp)
	}
	return ""
}

type pathStep struct {
	key   string
	index int // -1 for a key
}

func (s pathStep) String() string {
	if s.index >= 0 {
		return fmt.Sprintf("[%d]", s.index)
	}
	return s.key
}

// parseJSONPath parses a small path language, enough for health checks:
// keys separated by dots, [i] for array indexes, an optional leading "$.".
// "status", "checks[0].ok", "$.data.items[2]".
func parseJSONPath(path string) ([]pathStep, error) {
	path = strings.TrimPrefix(strings.TrimPrefix(path, "$"), ".")
	var steps []pathStep
	for _, part := range strings.Split(path, ".") {
		key, rest, _ := strings.Cut(part, "[")
		if key == "" && len(steps) == 0 && rest == "" {
			return nil, errors.New("empty path")
		}
		if key != "" {
			steps = append(steps, pathStep{key: key, index: -1})
		} else if rest == "" {
			return nil, fmt.Errorf("empty key in %q", path)
		}
		for rest != "" {
			idx, after, ok := strings.Cut(rest, "]")
			if !ok {
				return nil, fmt.Errorf("missing ] in %q", path)
			}
			n, err := strconv.Atoi(idx)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("bad index [%s] in %q", idx, path)
			}
			steps = append(steps, pathStep{index: n})
			if after == "" {
				break
			}
			if !strings.HasPrefix(after, "[") {
				return nil, fmt.Errorf("unexpected %q after ] in %q", after, path)
			}
			rest = after[1:]
		}
	}
	return steps, nil
}
