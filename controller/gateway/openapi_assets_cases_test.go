package gateway

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/opsconductor/opsconductor/controller/assets"
	"github.com/opsconductor/opsconductor/controller/assets/graph"
	"github.com/opsconductor/opsconductor/controller/problem"
	"github.com/opsconductor/opsconductor/controller/state"
	"github.com/opsconductor/opsconductor/controller/state/statetest"
)

// caseAgents is the agent directory the inventory cases see: one relay
// agent. The adapter over agentrpc is tested in controller/server with
// real agents.
type caseAgents struct{}

var caseRelay = assets.AgentInfo{ID: "agt_relay1", Name: "relay-1", Status: "up", Tags: map[string]string{"role": "relay"},
	Facts: assets.AgentFacts{Hostname: "relay-1", OS: "linux", Addresses: []string{"10.0.0.2"}}}

func (caseAgents) Agents(context.Context) ([]assets.AgentInfo, error) {
	return []assets.AgentInfo{caseRelay}, nil
}

func (caseAgents) Agent(_ context.Context, idOrName string) (assets.AgentInfo, error) {
	if idOrName == caseRelay.ID || idOrName == caseRelay.Name {
		return caseRelay, nil
	}
	return assets.AgentInfo{}, problem.NotFound("agent", idOrName)
}

// newTestAssets is a real inventory over its own in-memory store.
func newTestAssets(t testing.TB) *assets.Service {
	t.Helper()
	reg := state.NewRegistry()
	reg.MustRegister(assets.Domain())
	reg.MustRegister(graph.Domain())
	store, err := state.NewStore(reg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := assets.New(assets.Deps{Applier: &statetest.Applier{Store: store}, Store: store, Agents: caseAgents{},
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// inventory creates the targets ("web-1 env=prod role=web", …) and then
// the groups ("+prod env=prod" dynamic, "+pets web-1" static) as the
// fixture's admin; $id is the first target's ID, $rev its revision.
func inventory(items ...string) func(t *testing.T, f *fixture) prepared {
	return func(t *testing.T, f *fixture) prepared {
		t.Helper()
		ctx := context.Background()
		p := casePrincipal(t, f.ident, f.ident.adminToken)
		vars := map[string]string{}
		for _, it := range items {
			parts := strings.Fields(it)
			if name, ok := strings.CutPrefix(parts[0], "+"); ok {
				in := assets.GroupInput{Name: name, Kind: assets.GroupDynamic, Selector: parts[1]}
				if !strings.Contains(parts[1], "=") {
					members := parts[1:]
					in = assets.GroupInput{Name: name, Kind: assets.GroupStatic, Members: &members}
				}
				if _, err := f.srv.assets.CreateGroup(ctx, p, in); err != nil {
					t.Fatalf("group %s: %v", it, err)
				}
				continue
			}
			tags := map[string]string{}
			for _, kv := range parts[1:] {
				k, v, _ := strings.Cut(kv, "=")
				tags[k] = v
			}
			tg, err := f.srv.assets.Create(ctx, p, assets.TargetInput{Name: parts[0], Addresses: []string{parts[0] + ".example.net"},
				Connection: &assets.Connection{Type: assets.ConnSSH, Via: "relay-1"}, Tags: tags})
			if err != nil {
				t.Fatalf("target %s: %v", it, err)
			}
			if vars["id"] == "" {
				vars["id"] = tg.ID
				b, _ := json.Marshal(tg.Revision - 1)
				vars["stale"] = string(b)
			}
		}
		return prepared{vars: vars}
	}
}

// wantNames checks a target page's names, in order.
func wantNames(names ...string) func(t *testing.T, rec *responseUnderTest) {
	return func(t *testing.T, rec *responseUnderTest) {
		t.Helper()
		var page assets.Page
		if err := json.Unmarshal(rec.body, &page); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, it := range page.Items {
			got = append(got, it.Name)
		}
		if strings.Join(got, ",") != strings.Join(names, ",") {
			t.Fatalf("names %v, want %v", got, names)
		}
	}
}

// wantField checks an error envelope's field.
func wantField(field string) func(t *testing.T, rec *responseUnderTest) {
	return func(t *testing.T, rec *responseUnderTest) {
		t.Helper()
		var env envelope
		if err := json.Unmarshal(rec.body, &env); err != nil {
			t.Fatal(err)
		}
		if env.Error.Field != field {
			t.Fatalf("field %q, want %q: %s", env.Error.Field, field, rec.body)
		}
	}
}

const caseTargetBody = `{"name":"new-1","addresses":["10.1.1.1"],"connection":{"type":"ssh","via":"relay-1","port":22},"tags":{"env":"prod"}}`

func assetCases() []routeCase {
	three := inventory("web-1 env=prod role=web", "web-2 env=staging role=web", "db-1 env=prod role=db", "+prod env=prod", "+pets web-1")
	unwired := func(f *fixture) { f.srv.assets = nil }
	csvBody := "name,address,via,tags\nok-1,10.0.0.1,relay-1,env=prod\nbad-1,not a host!,relay-1,\n"
	return []routeCase{
		{name: "targets are listed by tag, agents' targets included", method: "GET", target: "/api/v1/targets?tag=env=prod", want: 200,
			prepare: three, check: wantNames("db-1", "web-1")},
		{name: "every target is listed with the relay agent's", method: "GET", target: "/api/v1/targets?sort=-name&consistent=true", want: 200,
			prepare: three, check: wantNames("web-2", "web-1", "relay-1", "db-1")},
		{name: "a target list by text and connection", method: "GET", target: "/api/v1/targets?q=web&connection=ssh&limit=1", want: 200,
			prepare: three, check: wantNames("web-1")},
		{name: "a bad target limit is a 400", method: "GET", target: "/api/v1/targets?limit=5000", want: 400},
		{name: "a bad selector is a 400 naming it", method: "GET", target: "/api/v1/targets?selector=env%20in%20(", want: 400,
			check: wantField("selector")},
		{name: "a target list in an unknown group is a 404", method: "GET", target: "/api/v1/targets?group=nope", want: 404},
		{name: "the target list answers 503 when the inventory is not wired", method: "GET", target: "/api/v1/targets", want: 503, setup: unwired},

		{name: "a target is created", method: "POST", target: "/api/v1/targets", contentType: "application/json", body: caseTargetBody, want: 201},
		{name: "a target with a bad address is a 400 naming it", method: "POST", target: "/api/v1/targets", contentType: "application/json",
			body: `{"name":"x","addresses":["no way"],"connection":{"type":"ssh","via":"relay-1"}}`, want: 400, check: wantField("addresses[0]")},
		{name: "a target with an unknown field is a 400", method: "POST", target: "/api/v1/targets", contentType: "application/json",
			body: `{"name":"x","colour":"red"}`, want: 400, check: wantField("colour")},
		{name: "a target named like another is a 409", method: "POST", target: "/api/v1/targets", contentType: "application/json",
			body: `{"name":"web-1","addresses":["10.1.1.1"],"connection":{"type":"ssh","via":"relay-1"}}`, want: 409, prepare: three},
		{name: "a target sent as text is a 415", method: "POST", target: "/api/v1/targets", contentType: "text/plain", body: caseTargetBody, want: 415},
		{name: "a target over the body limit is a 413", method: "POST", target: "/api/v1/targets", contentType: "application/json",
			body: caseTargetBody, want: 413, cfg: Config{MaxBodyBytes: 32}},

		{name: "a CSV dry run reports every row and writes nothing", method: "POST", target: "/api/v1/targets/import?dry_run=true",
			contentType: "text/csv", body: csvBody, want: 200, check: func(t *testing.T, rec *responseUnderTest) {
				var rep assets.ImportReport
				_ = json.Unmarshal(rec.body, &rep)
				if rep.Valid != 1 || rep.Invalid != 1 || rep.Written || rep.Errors[0].Row != 2 || rep.Errors[0].Field != "addresses" {
					t.Fatalf("report %s", rec.body)
				}
			}},
		{name: "a CSV import with a bad row is a 400 naming row and column", method: "POST", target: "/api/v1/targets/import",
			contentType: "text/csv", body: csvBody, want: 400, check: wantField("rows[2].addresses")},
		{name: "a partial CSV import writes the valid rows", method: "POST", target: "/api/v1/targets/import?partial=true",
			contentType: "text/csv", body: csvBody, want: 201},
		{name: "a JSON import writes every row", method: "POST", target: "/api/v1/targets/import?mode=upsert",
			contentType: "application/json", body: "[" + caseTargetBody + "]", want: 201},
		{name: "an import that is neither CSV nor JSON is a 415", method: "POST", target: "/api/v1/targets/import",
			contentType: "application/xml", body: "<x/>", want: 415},
		{name: "an import with an unknown mode is a 400", method: "POST", target: "/api/v1/targets/import?mode=merge",
			contentType: "application/json", body: "[" + caseTargetBody + "]", want: 400, check: wantField("mode")},

		{name: "targets are exported as CSV", method: "GET", target: "/api/v1/targets/export?format=csv&tag=env=prod", want: 200,
			prepare: three, check: func(t *testing.T, rec *responseUnderTest) {
				if !strings.HasPrefix(string(rec.body), "name,addresses,") || !strings.Contains(string(rec.body), "db-1") ||
					strings.Contains(string(rec.body), "web-2") {
					t.Fatalf("export:\n%s", rec.body)
				}
			}},
		{name: "targets are exported as JSON", method: "GET", target: "/api/v1/targets/export?consistent=true", want: 200, prepare: three},
		{name: "an export in an unknown format is a 400", method: "GET", target: "/api/v1/targets/export?format=xml", want: 400},
		{name: "an export of an unknown group is a 404", method: "GET", target: "/api/v1/targets/export?group=nope", want: 404},

		{name: "a target is read by name", method: "GET", target: "/api/v1/targets/web-1", want: 200, prepare: three},
		{name: "an agent's target is read by its agent's ID", method: "GET", target: "/api/v1/targets/agt_relay1?consistent=true", want: 200},
		{name: "an unknown target is a 404", method: "GET", target: "/api/v1/targets/nope", want: 404},

		{name: "a target's tags are changed", method: "PATCH", target: "/api/v1/targets/$id", contentType: "application/json",
			body: `{"tags":{"env":"staging"},"owner":"web-team"}`, want: 200, prepare: three},
		{name: "a target patch with a bad tag is a 400", method: "PATCH", target: "/api/v1/targets/$id", contentType: "application/json",
			body: `{"tags":{"env":"not ok"}}`, want: 400, prepare: three, check: wantField("tags.env")},
		{name: "a target patch with a stale revision is a 409", method: "PATCH", target: "/api/v1/targets/$id", contentType: "application/json",
			body: `{"notes":"x","revision":$stale}`, want: 409, prepare: three},
		{name: "patching an unknown target is a 404", method: "PATCH", target: "/api/v1/targets/nope", contentType: "application/json",
			body: `{"notes":"x"}`, want: 404},
		{name: "a target patch sent as text is a 415", method: "PATCH", target: "/api/v1/targets/nope", contentType: "text/plain",
			body: `{}`, want: 415},
		{name: "a target patch over the body limit is a 413", method: "PATCH", target: "/api/v1/targets/nope", contentType: "application/json",
			body: `{"notes":"` + strings.Repeat("x", 64) + `"}`, want: 413, cfg: Config{MaxBodyBytes: 32}},

		{name: "a target is deleted", method: "DELETE", target: "/api/v1/targets/web-1", want: 200, prepare: three},
		{name: "deleting an unknown target is a 404", method: "DELETE", target: "/api/v1/targets/nope", want: 404},
		{name: "deleting an agent's target is a 409", method: "DELETE", target: "/api/v1/targets/relay-1", want: 409},

		{name: "groups are listed", method: "GET", target: "/api/v1/groups?consistent=true", want: 200, prepare: three},
		{name: "a dynamic group is created", method: "POST", target: "/api/v1/groups", contentType: "application/json",
			body: `{"name":"web","kind":"dynamic","selector":"role in (web),facts.os!=windows"}`, want: 201},
		{name: "a group with a bad selector is a 400 naming it", method: "POST", target: "/api/v1/groups", contentType: "application/json",
			body: `{"name":"web","kind":"dynamic","selector":"role in web"}`, want: 400, check: wantField("selector")},
		{name: "a group named like another is a 409", method: "POST", target: "/api/v1/groups", contentType: "application/json",
			body: `{"name":"prod","kind":"static"}`, want: 409, prepare: three},
		{name: "a group sent as text is a 415", method: "POST", target: "/api/v1/groups", contentType: "text/plain", body: `{}`, want: 415},
		{name: "a group over the body limit is a 413", method: "POST", target: "/api/v1/groups", contentType: "application/json",
			body: `{"name":"` + strings.Repeat("x", 64) + `"}`, want: 413, cfg: Config{MaxBodyBytes: 32}},

		{name: "a group is read", method: "GET", target: "/api/v1/groups/prod", want: 200, prepare: three},
		{name: "an unknown group is a 404", method: "GET", target: "/api/v1/groups/nope?consistent=true", want: 404},
		{name: "a static group's members are replaced", method: "PUT", target: "/api/v1/groups/pets", contentType: "application/json",
			body: `{"kind":"static","members":["db-1","relay-1"]}`, want: 200, prepare: three},
		{name: "a static group with members cannot become dynamic", method: "PUT", target: "/api/v1/groups/pets", contentType: "application/json",
			body: `{"kind":"dynamic","selector":"env=prod"}`, want: 409, prepare: three},
		{name: "a group renamed in its body is a 400", method: "PUT", target: "/api/v1/groups/pets", contentType: "application/json",
			body: `{"name":"cats","kind":"static"}`, want: 400, prepare: three},
		{name: "replacing an unknown group is a 404", method: "PUT", target: "/api/v1/groups/nope", contentType: "application/json",
			body: `{"kind":"static"}`, want: 404},
		{name: "a group replaced as text is a 415", method: "PUT", target: "/api/v1/groups/nope", contentType: "text/plain",
			body: `{}`, want: 415},
		{name: "a group replacement over the body limit is a 413", method: "PUT", target: "/api/v1/groups/nope", contentType: "application/json",
			body: `{"kind":"` + strings.Repeat("x", 64) + `"}`, want: 413, cfg: Config{MaxBodyBytes: 32}},
		{name: "a group is deleted", method: "DELETE", target: "/api/v1/groups/pets", want: 200, prepare: three},
		{name: "deleting an unknown group is a 404", method: "DELETE", target: "/api/v1/groups/nope", want: 404},

		{name: "a dynamic group's members are evaluated now", method: "GET", target: "/api/v1/groups/prod/members", want: 200,
			prepare: three, check: wantNames("db-1", "web-1")},
		{name: "a static group's members", method: "GET", target: "/api/v1/groups/pets/members?consistent=true", want: 200,
			prepare: three, check: wantNames("web-1")},
		{name: "the members of an unknown group are a 404", method: "GET", target: "/api/v1/groups/nope/members", want: 404},
	}
}
