package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/opsconductor/opsconductor/controller/cluster"
	"github.com/opsconductor/opsconductor/controller/identity"
	"github.com/opsconductor/opsconductor/controller/problem"
)

const openAPIURL = "file:///openapi.json"

// openAPISpec is the parsed document plus a schema compiler that has the
// whole document as one resource, so "#/components/schemas/…" refs resolve.
type openAPISpec struct {
	doc      map[string]any
	compiler *jsonschema.Compiler
	schemas  map[string]*jsonschema.Schema
}

func loadOpenAPI(t *testing.T) *openAPISpec {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(openAPIDocument, &doc); err != nil {
		t.Fatalf("openapi.json is not valid JSON: %v", err)
	}
	res, err := jsonschema.UnmarshalJSON(bytes.NewReader(openAPIDocument))
	if err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	if err := c.AddResource(openAPIURL, res); err != nil {
		t.Fatalf("add openapi.json as a schema resource: %v", err)
	}
	return &openAPISpec{doc: doc, compiler: c, schemas: map[string]*jsonschema.Schema{}}
}

// schemaAt compiles the schema at a JSON pointer into the document.
func (s *openAPISpec) schemaAt(t *testing.T, pointer string) *jsonschema.Schema {
	t.Helper()
	if sch, ok := s.schemas[pointer]; ok {
		return sch
	}
	sch, err := s.compiler.Compile(openAPIURL + "#" + pointer)
	if err != nil {
		t.Fatalf("compile schema at %s: %v", pointer, err)
	}
	s.schemas[pointer] = sch
	return sch
}

// operation returns the operation object for method and an OpenAPI path.
func (s *openAPISpec) operation(method, path string) (map[string]any, bool) {
	paths, _ := s.doc["paths"].(map[string]any)
	item, _ := paths[path].(map[string]any)
	op, ok := item[strings.ToLower(method)].(map[string]any)
	return op, ok
}

// response resolves one documented response (following a $ref into
// components/responses) and returns it with its JSON pointer.
func (s *openAPISpec) response(op map[string]any, opPointer string, status int) (map[string]any, string, bool) {
	responses, _ := op["responses"].(map[string]any)
	code := strconv.Itoa(status)
	resp, ok := responses[code].(map[string]any)
	if !ok {
		return nil, "", false
	}
	pointer := opPointer + "/responses/" + code
	if ref, ok := resp["$ref"].(string); ok {
		name, found := strings.CutPrefix(ref, "#/components/responses/")
		if !found {
			return nil, "", false
		}
		comps, _ := s.doc["components"].(map[string]any)
		all, _ := comps["responses"].(map[string]any)
		resp, ok = all[name].(map[string]any)
		pointer = "/components/responses/" + pointerEscape(name)
		return resp, pointer, ok
	}
	return resp, pointer, true
}

func pointerEscape(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

func operationPointer(path, method string) string {
	return "/paths/" + pointerEscape(path) + "/" + strings.ToLower(method)
}

var muxWildcard = regexp.MustCompile(`\{([A-Za-z_][A-Za-z0-9_]*)(\.\.\.)?\}`)

// openAPIPath turns a ServeMux path pattern into an OpenAPI path template:
// "{name...}" becomes "{name}" and "{$}" (exact match) disappears.
func openAPIPath(muxPath string) string {
	p := strings.ReplaceAll(muxPath, "{$}", "")
	return muxWildcard.ReplaceAllString(p, "{$1}")
}

func TestOpenAPIPathTranslation(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"a plain path stays as it is", "/health", "/health"},
		{"a wildcard keeps its name", "/api/v1/operator/probes/{id}", "/api/v1/operator/probes/{id}"},
		{"a rest wildcard loses its dots", "/files/{path...}", "/files/{path}"},
		{"an exact-match marker disappears", "/api/v1/{$}", "/api/v1/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := openAPIPath(tt.in); got != tt.want {
				t.Errorf("openAPIPath(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	spec := loadOpenAPI(t)
	f := newFixture(t, Config{})
	routed := map[string]bool{}
	for _, rt := range f.srv.Routes() {
		path := openAPIPath(rt.Path)
		routed[rt.Method+" "+path] = true
		t.Run(rt.Pattern()+" is documented", func(t *testing.T) {
			if _, ok := spec.operation(rt.Method, path); !ok {
				t.Fatalf("openapi.json has no %s %s", strings.ToLower(rt.Method), path)
			}
		})
	}
	t.Run("every documented operation has a route", func(t *testing.T) {
		paths, _ := spec.doc["paths"].(map[string]any)
		for path, item := range paths {
			for method := range item.(map[string]any) {
				if !isHTTPMethod(method) {
					continue
				}
				if !routed[strings.ToUpper(method)+" "+path] {
					t.Errorf("openapi.json documents %s %s, which no route serves", method, path)
				}
			}
		}
	})
}

func isHTTPMethod(s string) bool {
	switch s {
	case "get", "put", "post", "delete", "options", "head", "patch", "trace":
		return true
	}
	return false
}

func TestOpenAPIDocumentIsWellFormed(t *testing.T) {
	spec := loadOpenAPI(t)
	if v := spec.doc["openapi"]; v != "3.1.0" {
		t.Fatalf(`"openapi" = %v, want "3.1.0"`, v)
	}
	t.Run("every component schema compiles as JSON Schema 2020-12", func(t *testing.T) {
		comps, _ := spec.doc["components"].(map[string]any)
		schemas, _ := comps["schemas"].(map[string]any)
		if len(schemas) == 0 {
			t.Fatal("no components.schemas")
		}
		for name := range schemas {
			spec.schemaAt(t, "/components/schemas/"+pointerEscape(name))
		}
	})

	t.Run("bearer authentication applies to every operation by default", func(t *testing.T) {
		comps, _ := spec.doc["components"].(map[string]any)
		schemes, _ := comps["securitySchemes"].(map[string]any)
		bearer, _ := schemes["bearerAuth"].(map[string]any)
		if bearer["type"] != "http" || bearer["scheme"] != "bearer" {
			t.Errorf("components.securitySchemes.bearerAuth = %v, want an http bearer scheme", bearer)
		}
		global, _ := spec.doc["security"].([]any)
		if len(global) != 1 {
			t.Fatalf("security = %v, want [{bearerAuth: []}]", spec.doc["security"])
		}
		if req, _ := global[0].(map[string]any); len(req) != 1 || req["bearerAuth"] == nil {
			t.Errorf("security = %v, want [{bearerAuth: []}]", spec.doc["security"])
		}
	})

	f := newFixture(t, Config{})
	for _, rt := range f.srv.Routes() {
		path := openAPIPath(rt.Path)
		op, ok := spec.operation(rt.Method, path)
		if !ok {
			continue // TestOpenAPIDocumentsEveryRoute reports it
		}
		opPtr := operationPointer(path, rt.Method)
		t.Run(rt.Pattern()+" documents who may call it", func(t *testing.T) {
			checkAccessDocumented(t, spec, rt, op, opPtr)
		})
		t.Run(rt.Pattern()+" documents its errors with the envelope", func(t *testing.T) {
			responses, _ := op["responses"].(map[string]any)
			want := []int{http.StatusInternalServerError}
			if rt.Class != ClassHealth {
				want = append(want, http.StatusTooManyRequests)
			}
			if rt.Consistent {
				want = append(want, http.StatusBadRequest, http.StatusServiceUnavailable, http.StatusGatewayTimeout)
			}
			if rt.Access != AccessPublic {
				want = append(want, http.StatusUnauthorized)
			}
			if canRefuse(rt) {
				want = append(want, http.StatusForbidden)
			}
			for _, status := range want {
				if _, ok := responses[strconv.Itoa(status)]; !ok {
					t.Errorf("response %d is not documented", status)
				}
			}
			for code := range responses {
				status, err := strconv.Atoi(code)
				if err != nil || status < 400 {
					continue
				}
				resp, ptr, ok := spec.response(op, opPtr, status)
				if !ok {
					t.Errorf("response %s does not resolve", code)
					continue
				}
				content, _ := resp["content"].(map[string]any)
				media, _ := content["application/json"].(map[string]any)
				schema, _ := media["schema"].(map[string]any)
				if len(content) != 1 || schema["$ref"] != "#/components/schemas/ErrorEnvelope" {
					t.Errorf("response %s (%s) is not the ErrorEnvelope as application/json", code, ptr)
				}
			}
		})
	}
}

// canRefuse reports whether authorize can answer 403 to an authenticated
// caller of rt: for a missing permission, or because the caller must change
// their password first and rt is not one of the routes that allows it.
func canRefuse(rt RouteInfo) bool {
	switch {
	case rt.Access == AccessPublic:
		return false
	case rt.Access == AccessAuthenticated:
		return !rt.DuringPasswordChange
	}
	return true
}

// checkAccessDocumented holds an operation to its route's Access: public
// routes opt out of the global bearerAuth requirement with "security: []",
// every other route keeps it, says what it needs in its description ("Needs
// users:admin."), and documents 401 with the WWW-Authenticate header.
func checkAccessDocumented(t *testing.T, spec *openAPISpec, rt RouteInfo, op map[string]any, opPtr string) {
	t.Helper()
	security, hasSecurity := op["security"].([]any)
	description, _ := op["description"].(string)
	switch rt.Access {
	case AccessPublic:
		if !hasSecurity || len(security) != 0 {
			t.Errorf("a public route must say \"security\": [], got %v", op["security"])
		}
		return
	case AccessAuthenticated:
		if !strings.Contains(description, "Needs any authenticated caller") {
			t.Errorf("description %q does not say \"Needs any authenticated caller\"", description)
		}
	default:
		if want := "Needs " + string(rt.Access); !strings.Contains(description, want) {
			t.Errorf("description %q does not say %q", description, want)
		}
	}
	if hasSecurity && len(security) == 0 {
		t.Errorf("a route that needs %s must not opt out of bearerAuth with \"security\": []", rt.Access)
	}
	resp, ptr, ok := spec.response(op, opPtr, http.StatusUnauthorized)
	if !ok {
		return // the error check reports it
	}
	headers, _ := resp["headers"].(map[string]any)
	h, ok := spec.header(headers["WWW-Authenticate"])
	if !ok || h["required"] != true {
		t.Errorf("401 (%s) does not document a required WWW-Authenticate header", ptr)
	}
}

// header resolves a header object, following a $ref into
// components/headers.
func (s *openAPISpec) header(v any) (map[string]any, bool) {
	h, ok := v.(map[string]any)
	if !ok {
		return nil, false
	}
	ref, isRef := h["$ref"].(string)
	if !isRef {
		return h, true
	}
	name, found := strings.CutPrefix(ref, "#/components/headers/")
	if !found {
		return nil, false
	}
	comps, _ := s.doc["components"].(map[string]any)
	all, _ := comps["headers"].(map[string]any)
	h, ok = all[name].(map[string]any)
	return h, ok
}

// routeCase is one request in TestOpenAPIResponsesMatchSchemas.
type routeCase struct {
	name  string
	cfg   Config
	setup func(*fixture)
	// identity, when set, serves the case from that group's own identity
	// instead of the shared one, and the fixture's requests carry its
	// admin's token: cases that change users, sessions or tokens use one.
	identity *caseIdentity
	// prepare runs after setup and makes what the request needs (a user, a
	// refresh token …); what it returns fills in the request.
	prepare     func(t *testing.T, f *fixture) prepared
	method      string
	target      string // may hold $name placeholders for prepared.vars
	contentType string
	body        string // may hold $name placeholders for prepared.vars
	header      map[string]string
	repeat      int // send this many times and check the last (rate limits)
	want        int
	// check, when set, asserts more about the response than its schema.
	check func(t *testing.T, rec *responseUnderTest)
}

// prepared is what a case's prepare hands to its request.
type prepared struct {
	vars   map[string]string // $name in target and body becomes vars[name]
	header map[string]string
}

// fixture builds the case's server, over the case's identity if it has one.
func (tc routeCase) fixture(t *testing.T) *fixture {
	t.Helper()
	if tc.identity == nil {
		return newFixture(t, tc.cfg)
	}
	ti := tc.identity.get(t)
	f := newFixture(t, tc.cfg, func(d *Deps) { d.Identity = ti.svc })
	f.ident = ti
	return f
}

// request builds one of the case's requests.
func (tc routeCase) request(p prepared) *http.Request {
	pairs := make([]string, 0, 2*len(p.vars))
	for k, v := range p.vars {
		pairs = append(pairs, "$"+k, v)
	}
	expand := strings.NewReplacer(pairs...).Replace
	req := newRequest(tc.method, expand(tc.target), tc.contentType, expand(tc.body))
	for _, h := range []map[string]string{tc.header, p.header} {
		for k, v := range h {
			req.Header.Set(k, v)
		}
	}
	return req
}

func openAPICases() []routeCase {
	notReady := problem.Unavailable("no_leader", "no leader known: last contact 12s ago")
	timeout := fmt.Errorf("apply: %w", context.DeadlineExceeded)
	tight := map[RouteClass]Limit{ClassRead: {RPS: 0.001, Burst: 1}, ClassWrite: {RPS: 0.001, Burst: 1},
		ClassOperator: {RPS: 0.001, Burst: 1}}
	cases := []routeCase{
		{name: "health reports the raft section", method: "GET", target: "/health", want: 200},
		{name: "health of a node that knows no peers yet", method: "GET", target: "/health", want: 200,
			setup: func(f *fixture) { f.cluster.status = cluster.Status{State: "follower", LastContactMillis: -1} }},
		{name: "ready answers ready", method: "GET", target: "/health/ready", want: 200},
		{name: "ready answers 503 while the cluster is not ready", method: "GET", target: "/health/ready", want: 503,
			setup: func(f *fixture) { f.cluster.readyErr = notReady }},
		{name: "metrics are served as text", method: "GET", target: "/metrics", want: 200},
		{name: "the openapi document serves itself", method: "GET", target: "/api/v1/openapi.json", want: 200},
		{name: "the openapi document is rate limited", method: "GET", target: "/api/v1/openapi.json", want: 429,
			cfg: Config{RateLimits: tight}, repeat: 2},

		{name: "peers are listed", method: "GET", target: "/api/v1/operator/raft/peers", want: 200},
		{name: "peers are listed consistently", method: "GET", target: "/api/v1/operator/raft/peers?consistent=true", want: 200},
		{name: "a consistent peer list without a leader is unavailable", method: "GET",
			target: "/api/v1/operator/raft/peers?consistent=true", want: 503,
			setup: func(f *fixture) { f.cluster.consistentErr = problem.Unavailable("no_leader", "no leader") }},
		{name: "a consistent read that times out is a 504", method: "GET",
			target: "/api/v1/operator/raft/peers?consistent=true", want: 504,
			setup: func(f *fixture) { f.cluster.consistentErr = timeout }},
		{name: "a bad consistent flag is a 400", method: "GET", target: "/api/v1/operator/raft/peers?consistent=maybe", want: 400},
		{name: "operator routes are rate limited", method: "GET", target: "/api/v1/operator/raft/peers", want: 429,
			cfg: Config{RateLimits: tight}, repeat: 2},

		{name: "a peer is removed", method: "DELETE", target: "/api/v1/operator/raft/peers/n3", want: 204},
		{name: "removing an unknown peer is a 404", method: "DELETE", target: "/api/v1/operator/raft/peers/n9", want: 404},
		{name: "removing a peer without a leader is a 503", method: "DELETE", target: "/api/v1/operator/raft/peers/n2", want: 503,
			setup: func(f *fixture) { f.cluster.removeErr = problem.Unavailable("no_leader", "no leader") }},
		{name: "removing the last voter is a conflict", method: "DELETE", target: "/api/v1/operator/raft/peers/n1", want: 409,
			setup: func(f *fixture) {
				f.cluster.removeErr = problem.New(problem.KindConflict, "last_voter", "n1 is the last voter")
			}},

		{name: "leadership moves and the new leader is known", method: "POST",
			target: "/api/v1/operator/raft/transfer-leadership", want: 200,
			setup: func(f *fixture) {
				after := f.cluster.status
				after.State, after.LeaderID, after.LeaderAddr, after.Term = "follower", "n2", "10.0.0.2:3002", 4
				f.cluster.statusAfter = &after
			}},
		{name: "leadership moves before the new leader is heard from", method: "POST",
			target: "/api/v1/operator/raft/transfer-leadership", want: 202,
			setup: func(f *fixture) {
				after := f.cluster.status
				after.State, after.LeaderID, after.LeaderAddr = "follower", "", ""
				f.cluster.statusAfter = &after
			}},
		{name: "leadership transfer without a leader is a 503", method: "POST",
			target: "/api/v1/operator/raft/transfer-leadership", want: 503,
			setup: func(f *fixture) { f.cluster.transferErr = problem.Unavailable("no_leader", "no leader") }},

		{name: "a snapshot is streamed", method: "GET", target: "/api/v1/operator/snapshot", want: 200},
		{name: "a snapshot that fails before its first byte is a 500", method: "GET", target: "/api/v1/operator/snapshot", want: 500,
			setup: func(f *fixture) { f.cluster.snapshot, f.cluster.saveErr = nil, errors.New("disk on fire") }},
		{name: "a snapshot is restored", method: "PUT", target: "/api/v1/operator/snapshot",
			contentType: "application/octet-stream", body: "snapshot-bytes", want: 204},
		{name: "a snapshot sent as JSON is refused", method: "PUT", target: "/api/v1/operator/snapshot",
			contentType: "application/json", body: "{}", want: 415},
		{name: "an empty snapshot restore is a 400", method: "PUT", target: "/api/v1/operator/snapshot",
			contentType: "application/octet-stream", want: 400},
		{name: "a snapshot over the limit is a 413", method: "PUT", target: "/api/v1/operator/snapshot",
			contentType: "application/octet-stream", body: "0123456789abcdef", want: 413,
			cfg: Config{MaxSnapshotBytes: 8}},

		{name: "a probe is written", method: "POST", target: "/api/v1/operator/probes",
			contentType: "application/json", body: `{"payload":"hello"}`, want: 201},
		{name: "a probe with an unknown field is a 400", method: "POST", target: "/api/v1/operator/probes",
			contentType: "application/json", body: `{"payload":"x","extra":1}`, want: 400},
		{name: "a probe sent as text is a 415", method: "POST", target: "/api/v1/operator/probes",
			contentType: "text/plain", body: `{"payload":"x"}`, want: 415},
		{name: "a probe over the body limit is a 413", method: "POST", target: "/api/v1/operator/probes",
			contentType: "application/json", body: `{"payload":"` + strings.Repeat("x", 64) + `"}`, want: 413,
			cfg: Config{MaxBodyBytes: 32}},
		{name: "a probe write that times out is a 504", method: "POST", target: "/api/v1/operator/probes",
			contentType: "application/json", body: `{}`, want: 504,
			setup: func(f *fixture) { f.probes.err = timeout }},
		{name: "a probe write without a leader is a 503", method: "POST", target: "/api/v1/operator/probes",
			contentType: "application/json", body: `{}`, want: 503,
			setup: func(f *fixture) { f.probes.err = problem.Unavailable("no_leader", "no leader") }},
		{name: "probe writes are rate limited", method: "POST", target: "/api/v1/operator/probes",
			contentType: "application/json", body: `{}`, want: 429, cfg: Config{RateLimits: tight}, repeat: 2},

		{name: "probes are listed a page at a time", method: "GET", target: "/api/v1/operator/probes?limit=2", want: 200,
			setup: func(f *fixture) { f.probes.add(3) }},
		{name: "an empty probe list is an empty array", method: "GET", target: "/api/v1/operator/probes", want: 200},
		{name: "a bad probe limit is a 400", method: "GET", target: "/api/v1/operator/probes?limit=0", want: 400},
		{name: "a failing probe store is a 500", method: "GET", target: "/api/v1/operator/probes", want: 500,
			setup: func(f *fixture) { f.probes.err = errors.New("bolt: database not open") }},

		{name: "a probe is read", method: "GET", target: "/api/v1/operator/probes/p1", want: 200,
			setup: func(f *fixture) { f.probes.add(1) }},
		{name: "a probe is read consistently", method: "GET", target: "/api/v1/operator/probes/p1?consistent=true", want: 200,
			setup: func(f *fixture) { f.probes.add(1) }},
		{name: "an unknown probe is a 404", method: "GET", target: "/api/v1/operator/probes/p9", want: 404},
		{name: "probe reads are rate limited", method: "GET", target: "/api/v1/operator/probes/p9", want: 429,
			cfg: Config{RateLimits: tight}, repeat: 2},
	}
	cases = append(append(append(append(append(cases, identityCases()...), agentCases()...), pluginCases()...), relationshipCases()...), credentialCases()...)
	cases = append(append(append(append(cases, assetCases()...), discoveryCases()...), runStreamCases()...), scheduleCases()...)
	cases = append(append(append(cases, auditCases()...), notifyCases()...), triggerCases()...)
	return append(append(cases, automationCases()...), installCases()...)
}

// TestOpenAPIResponsesMatchSchemas sends every route its successes and its
// errors and checks each response against what openapi.json promises for
// that status: the status is documented, the media type is, and the body
// validates against the schema.
func TestOpenAPIResponsesMatchSchemas(t *testing.T) {
	spec := loadOpenAPI(t)
	succeeded := map[string]bool{}
	for _, tc := range openAPICases() {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.fixture(t)
			if tc.setup != nil {
				tc.setup(f)
			}
			var p prepared
			if tc.prepare != nil {
				p = tc.prepare(t, f)
			}
			var rec *responseUnderTest
			for i := 0; i < max(1, tc.repeat); i++ {
				rec = serve(t, f, tc.request(p))
			}
			if rec.status != tc.want {
				t.Fatalf("status = %d, want %d; body %s", rec.status, tc.want, rec.body)
			}
			if rec.pattern == "" {
				t.Fatalf("%s %s matched no route", tc.method, tc.target)
			}
			rt := routeByPattern(t, f.srv, rec.pattern)
			path := openAPIPath(rt.Path)
			op, ok := spec.operation(rt.Method, path)
			if !ok {
				t.Fatalf("%s %s is not documented", rt.Method, path)
			}
			checkAgainstSpec(t, spec, op, operationPointer(path, rt.Method), rec)
			if tc.check != nil {
				tc.check(t, rec)
			}
			if rec.status < 300 {
				succeeded[rt.Pattern()] = true
			}
		})
	}
	t.Run("every route was exercised with a success", func(t *testing.T) {
		f := newFixture(t, Config{})
		for _, rt := range f.srv.Routes() {
			// A websocket succeeds with 101 over a hijacked connection,
			// which a recorder cannot give; runstream_test.go dials it.
			if !succeeded[rt.Pattern()] && !rt.WebSocket {
				t.Errorf("no case drives %s to a 2xx", rt.Pattern())
			}
		}
	})
}

// TestOpenAPIRefusalsMatchSchemas walks every route that needs a caller:
// without a token it is a 401, and where authorize can refuse a known
// caller it is a 403, for a viewer on a route that needs a permission and
// for a user who must change their password on any other. Each answer must
// be what openapi.json documents, WWW-Authenticate included.
func TestOpenAPIRefusalsMatchSchemas(t *testing.T) {
	spec := loadOpenAPI(t)
	ti := newTestIdentity(t)
	caseCreateUser(t, ti, "refused-viewer", "viewer", false)
	caseCreateUser(t, ti, "refused-pending", "admin", true)
	viewer := caseLogin(t, ti, "refused-viewer", casePassword).AccessToken
	// A viewer holds agents:read, so routes needing it are refused to a
	// user whose only role grants jobs:read.
	if _, err := ti.svc.PutRole(context.Background(), casePrincipal(t, ti, ti.adminToken),
		identity.Role{Name: "refused-jobs-reader", Permissions: []identity.Permission{identity.PermJobsRead}}, true); err != nil {
		t.Fatal(err)
	}
	caseCreateUser(t, ti, "refused-reader", "refused-jobs-reader", false)
	reader := caseLogin(t, ti, "refused-reader", casePassword).AccessToken
	// A viewer holds jobs:read too, so routes needing it are refused to a
	// user whose only role grants agents:read.
	if _, err := ti.svc.PutRole(context.Background(), casePrincipal(t, ti, ti.adminToken),
		identity.Role{Name: "refused-agents-reader", Permissions: []identity.Permission{identity.PermAgentsRead}}, true); err != nil {
		t.Fatal(err)
	}
	caseCreateUser(t, ti, "refused-agents", "refused-agents-reader", false)
	agentsReader := caseLogin(t, ti, "refused-agents", casePassword).AccessToken
	pending := caseLogin(t, ti, "refused-pending", casePassword).AccessToken
	f := newFixture(t, Config{}, func(d *Deps) { d.Identity = ti.svc })
	f.ident = ti
	for _, rt := range f.srv.Routes() {
		if rt.Access == AccessPublic {
			continue
		}
		path := openAPIPath(rt.Path)
		target := muxWildcard.ReplaceAllString(rt.Path, "x")
		refuse := func(t *testing.T, header map[string]string, want int) {
			t.Helper()
			req := newRequest(rt.Method, target, "", "")
			for k, v := range header {
				req.Header.Set(k, v)
			}
			rec := serve(t, f, req)
			if rec.status != want {
				t.Fatalf("status = %d, want %d; body %s", rec.status, want, rec.body)
			}
			op, ok := spec.operation(rt.Method, path)
			if !ok {
				t.Fatalf("%s %s is not documented", rt.Method, path)
			}
			checkAgainstSpec(t, spec, op, operationPointer(path, rt.Method), rec)
		}
		t.Run(rt.Pattern()+" refuses a request without a token", func(t *testing.T) {
			refuse(t, anonymousHeader, http.StatusUnauthorized)
		})
		if !canRefuse(rt) {
			continue
		}
		who, token := "a viewer", viewer
		if rt.Access == perm(identity.PermAgentsRead) {
			who, token = "a user without agents:read", reader
		}
		if rt.Access == perm(identity.PermJobsRead) {
			who, token = "a user without jobs:read", agentsReader
		}
		if rt.Access == perm(identity.PermCredentialsRead) {
			// A viewer reads credentials' metadata; the jobs reader does not.
			who, token = "a user without credentials:read", reader
		}
		if rt.Access == perm(identity.PermAssetsRead) {
			// A viewer reads the inventory; the jobs reader does not.
			who, token = "a user without assets:read", reader
		}
		if rt.Access == perm(identity.PermNotificationsRead) {
			// A viewer reads notifications; the jobs reader does not.
			who, token = "a user without notifications:read", reader
		}
		if rt.Access == AccessAuthenticated {
			who, token = "a user who must change their password", pending
		}
		t.Run(rt.Pattern()+" refuses "+who, func(t *testing.T) {
			refuse(t, caseBearer(token), http.StatusForbidden)
		})
	}
}

type responseUnderTest struct {
	status      int
	contentType string
	header      http.Header
	body        []byte
	pattern     string
}

func serve(t *testing.T, f *fixture, req *http.Request) *responseUnderTest {
	t.Helper()
	_, pattern := f.srv.mux.Handler(req)
	rec := f.do(t, req)
	return &responseUnderTest{status: rec.Code, contentType: rec.Header().Get("Content-Type"), header: rec.Header(),
		body: rec.Body.Bytes(), pattern: pattern}
}

func routeByPattern(t *testing.T, s *Server, pattern string) RouteInfo {
	t.Helper()
	for _, rt := range s.Routes() {
		if rt.Pattern() == pattern {
			return rt
		}
	}
	t.Fatalf("no route with pattern %q", pattern)
	return RouteInfo{}
}

func checkAgainstSpec(t *testing.T, spec *openAPISpec, op map[string]any, opPtr string, rec *responseUnderTest) {
	t.Helper()
	resp, ptr, ok := spec.response(op, opPtr, rec.status)
	if !ok {
		responses, _ := op["responses"].(map[string]any)
		t.Fatalf("status %d is not documented (documented: %v)", rec.status, sortedKeys(responses))
	}
	headers, _ := resp["headers"].(map[string]any)
	for name, h := range headers {
		if h, ok := spec.header(h); ok && h["required"] == true && rec.header.Get(name) == "" {
			t.Errorf("status %d: the required header %s is missing", rec.status, name)
		}
	}
	content, _ := resp["content"].(map[string]any)
	if len(content) == 0 {
		if len(rec.body) != 0 {
			t.Fatalf("status %d is documented without a body, got %q", rec.status, rec.body)
		}
		return
	}
	mt, _, err := mime.ParseMediaType(rec.contentType)
	if err != nil {
		t.Fatalf("Content-Type %q: %v", rec.contentType, err)
	}
	if _, ok := content[mt]; !ok {
		t.Fatalf("status %d: media type %s is not documented (documented: %v)", rec.status, mt, sortedKeys(content))
	}
	if mt != "application/json" {
		return
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(rec.body))
	if err != nil {
		t.Fatalf("body is not JSON: %v: %s", err, rec.body)
	}
	sch := spec.schemaAt(t, ptr+"/content/"+pointerEscape(mt)+"/schema")
	if err := sch.Validate(inst); err != nil {
		t.Fatalf("status %d body does not match %s:\n%v\nbody: %s", rec.status, ptr, err, rec.body)
	}
}

// A duplicate case name would make a failure ambiguous.
func TestOpenAPICaseNamesAreUnique(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range openAPICases() {
		if seen[c.name] {
			t.Errorf("duplicate case name %q", c.name)
		}
		seen[c.name] = true
	}
}
