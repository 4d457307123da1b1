package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"mime/multipart"
	"strings"
	"testing"

	"github.com/opsconductor/opsconductor/controller/plugins"
	"github.com/opsconductor/opsconductor/controller/state"
	"github.com/opsconductor/opsconductor/controller/state/statetest"
	"github.com/opsconductor/opsconductor/plugins/builtin"
	"github.com/opsconductor/opsconductor/plugins/sdk"
	agentv1 "github.com/opsconductor/opsconductor/proto/agent/v1"
)

// newTestPlugins is a real plugin registry over its own in-memory store
// and a temporary data directory, as controller/plugins' own tests build
// it.
func newTestPlugins(t testing.TB) *plugins.Service {
	t.Helper()
	return newTestPluginsIn(t, t.TempDir())
}

// newTestPluginsIn is newTestPlugins keeping its binaries in dir.
func newTestPluginsIn(t testing.TB, dir string) *plugins.Service {
	t.Helper()
	reg := state.NewRegistry()
	reg.MustRegister(plugins.Domain())
	store, err := state.NewStore(reg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := plugins.New(plugins.Deps{Applier: &statetest.Applier{Store: store}, Store: store, Logger: slog.New(slog.DiscardHandler),
		Dir: dir, NodeID: "n1", Reserved: func(name string) bool { _, ok := builtin.Lookup(name); return ok }})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// casePluginDescription is the description the cases push, as JSON.
func casePluginDescription(version string) string {
	return `{"name":"disk-usage","version":"` + version + `","summary":"Reports disk usage",` +
		`"params":{"type":"object","properties":{"path":{"type":"string"}}},"outputs":[{"name":"used_percent"}],"idempotent":true}`
}

// formPart is one part of a multipart upload, in order.
type formPart struct{ name, value string }

// pluginForm encodes parts as multipart/form-data with a fixed boundary
// and returns the Content-Type and the body. "binary" is sent as a file.
func pluginForm(parts ...formPart) (string, string) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	if err := mw.SetBoundary("casePluginBoundary"); err != nil {
		panic(err)
	}
	for _, p := range parts {
		var (
			w   interface{ Write([]byte) (int, error) }
			err error
		)
		if p.name == "binary" {
			w, err = mw.CreateFormFile("binary", "disk-usage")
		} else {
			w, err = mw.CreateFormField(p.name)
		}
		if err != nil {
			panic(err)
		}
		_, _ = w.Write([]byte(p.value))
	}
	_ = mw.Close()
	return mw.FormDataContentType(), buf.String()
}

// validPluginForm is a whole, valid upload of disk-usage at version.
func validPluginForm(version string) []formPart {
	return []formPart{{"os", "linux"}, {"arch", "amd64"}, {"description", casePluginDescription(version)}, {"binary", "\x7fELF " + version}}
}

// withPart returns parts with the named part's value replaced.
func withPart(parts []formPart, name, value string) []formPart {
	out := append([]formPart(nil), parts...)
	for i := range out {
		if out[i].name == name {
			out[i].value = value
		}
	}
	return out
}

// withoutPart returns parts without the named part.
func withoutPart(parts []formPart, name string) []formPart {
	var out []formPart
	for _, p := range parts {
		if p.name != name {
			out = append(out, p)
		}
	}
	return out
}

// casePush registers a build of disk-usage@version in the fixture's
// registry.
func casePush(t *testing.T, f *fixture, version string) plugins.Plugin {
	t.Helper()
	var d sdk.Description
	if err := json.Unmarshal([]byte(casePluginDescription(version)), &d); err != nil {
		t.Fatal(err)
	}
	p, err := f.srv.plugins.Push(context.Background(), "admin", plugins.Push{Description: d, OS: "linux", Arch: "amd64"},
		strings.NewReader("\x7fELF "+version))
	if err != nil {
		t.Fatalf("push %s: %v", version, err)
	}
	return p
}

func pushVersions(versions ...string) func(t *testing.T, f *fixture) prepared {
	return func(t *testing.T, f *fixture) prepared {
		for _, v := range versions {
			casePush(t, f, v)
		}
		return prepared{}
	}
}

func decodeInto[T any](t *testing.T, rec *responseUnderTest) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(rec.body, &v); err != nil {
		t.Fatalf("body: %v: %s", err, rec.body)
	}
	return v
}

func pluginCases() []routeCase {
	form := func(parts []formPart) (string, string) { return pluginForm(parts...) }
	valid := validPluginForm("1.2.0")
	push := func(name string, parts []formPart, want int, check func(*testing.T, *responseUnderTest)) routeCase {
		ct, body := form(parts)
		return routeCase{name: name, method: "POST", target: "/api/v1/plugins", contentType: ct, body: body, want: want, check: check}
	}
	changed := strings.Replace(casePluginDescription("1.2.0"), `"idempotent":true`, `"idempotent":false`, 1)
	conflictType, conflictBody := form(withPart(withPart(valid, "description", changed), "arch", "arm64"))
	cases := []routeCase{
		push("a plugin build is pushed and registered under its checksum", valid, 201, func(t *testing.T, rec *responseUnderTest) {
			p := decodeInto[plugins.Plugin](t, rec)
			if p.Name != "disk-usage" || p.Version != "1.2.0" || len(p.Binaries) != 1 || p.Binaries[0].OS != "linux" ||
				p.Binaries[0].Size != int64(len("\x7fELF 1.2.0")) || len(p.Binaries[0].SHA256) != 64 || p.Binaries[0].UploadedBy != "admin" {
				t.Fatalf("pushed %s", rec.body)
			}
		}),
		push("a plugin named like a built-in is a 400 naming description.name",
			withPart(valid, "description", strings.Replace(casePluginDescription("1.0.0"), `"disk-usage"`, `"shell"`, 1)), 400,
			wantError("invalid_input", "description.name")),
		push("a plugin description with an unknown field is a 400 naming it",
			withPart(valid, "description", `{"name":"disk-usage","version":"1.0.0","colour":"red"}`), 400,
			wantError("invalid_input", "description.colour")),
		push("a plugin description that is not JSON is a 400 naming description",
			withPart(valid, "description", `{"name":`), 400, wantError("invalid_input", "description")),
		push("a plugin for an unknown OS is a 400 naming os", withPart(valid, "os", "plan9"), 400, wantError("invalid_input", "os")),
		push("a plugin push without arch is a 400 naming arch", withoutPart(valid, "arch"), 400, wantError("invalid_input", "arch")),
		push("a plugin push without a binary is a 400 naming binary", withoutPart(valid, "binary"), 400, wantError("invalid_input", "binary")),
		push("an empty plugin binary is a 400 naming binary", withPart(valid, "binary", ""), 400, wantError("invalid_input", "binary")),
		push("a plugin binary sent before its description is a 400", []formPart{{"os", "linux"}, {"arch", "amd64"},
			{"binary", "x"}, {"description", casePluginDescription("1.0.0")}}, 400, wantError("invalid_input", "description")),
		push("an unknown part in a plugin push is a 400 naming it", append([]formPart{{"colour", "red"}}, valid...), 400,
			wantError("invalid_input", "colour")),
		{name: "a plugin push sent as JSON is a 415", method: "POST", target: "/api/v1/plugins", contentType: "application/json",
			body: casePluginDescription("1.0.0"), want: 415},
		{name: "a second build of a version with another contract is a 409", method: "POST", target: "/api/v1/plugins",
			contentType: conflictType, body: conflictBody, prepare: pushVersions("1.2.0"), want: 409,
			check: wantError("plugin_description_changed", "")},

		{name: "plugins are listed newest first without their schemas", method: "GET", target: "/api/v1/plugins", want: 200,
			prepare: pushVersions("1.0.0", "1.10.0", "1.2.0"),
			check: func(t *testing.T, rec *responseUnderTest) {
				l := decodeInto[pluginList](t, rec)
				var got []string
				for _, p := range l.Items {
					got = append(got, p.Version)
					if p.Params != nil || len(p.Binaries) != 1 {
						t.Errorf("%s listed with params %s and %d builds", p.Ref(), p.Params, len(p.Binaries))
					}
				}
				if strings.Join(got, " ") != "1.10.0 1.2.0 1.0.0" {
					t.Fatalf("versions %v, want newest first", got)
				}
			}},
		{name: "an empty plugin list is an empty array", method: "GET", target: "/api/v1/plugins?consistent=true", want: 200,
			check: func(t *testing.T, rec *responseUnderTest) {
				if !strings.Contains(string(rec.body), `"items":[]`) {
					t.Fatalf("body %s", rec.body)
				}
			}},
		{name: "a plugin version is read with its schema", method: "GET", target: "/api/v1/plugins/disk-usage/1.2.0", want: 200,
			prepare: pushVersions("1.2.0"),
			check: func(t *testing.T, rec *responseUnderTest) {
				if p := decodeInto[plugins.Plugin](t, rec); p.Version != "1.2.0" || !strings.Contains(string(p.Params), `"path"`) {
					t.Fatalf("plugin %s", rec.body)
				}
			}},
		{name: "a plugin pinned to a major resolves to its newest release", method: "GET", target: "/api/v1/plugins/disk-usage/1", want: 200,
			prepare: pushVersions("1.0.0", "1.4.0", "2.0.0"),
			check: func(t *testing.T, rec *responseUnderTest) {
				if p := decodeInto[plugins.Plugin](t, rec); p.Version != "1.4.0" {
					t.Fatalf("resolved %s, want 1.4.0", p.Version)
				}
			}},
		{name: "latest resolves to the newest release", method: "GET", target: "/api/v1/plugins/disk-usage/latest", want: 200,
			prepare: pushVersions("1.0.0", "2.0.0", "3.0.0-rc.1"),
			check: func(t *testing.T, rec *responseUnderTest) {
				if p := decodeInto[plugins.Plugin](t, rec); p.Version != "2.0.0" {
					t.Fatalf("resolved %s, want 2.0.0", p.Version)
				}
			}},
		{name: "an unknown plugin version is a 404", method: "GET", target: "/api/v1/plugins/disk-usage/9", want: 404,
			prepare: pushVersions("1.0.0"), check: wantError("plugin_not_found", "")},
		{name: "a plugin version is deleted", method: "DELETE", target: "/api/v1/plugins/disk-usage/1.0.0", want: 200,
			prepare: pushVersions("1.0.0"),
			check: func(t *testing.T, rec *responseUnderTest) {
				if p := decodeInto[plugins.Plugin](t, rec); p.Ref() != "disk-usage@1.0.0" {
					t.Fatalf("deleted %s", rec.body)
				}
			}},
		{name: "deleting a pin rather than a version is a 404", method: "DELETE", target: "/api/v1/plugins/disk-usage/1", want: 404,
			prepare: pushVersions("1.0.0")},

		{name: "the step catalog lists built-ins on all agents and plugins on the agents that have them", method: "GET",
			target: "/api/v1/steps", want: 200,
			prepare: func(t *testing.T, f *fixture) prepared {
				casePush(t, f, "1.0.0")
				casePush(t, f, "1.1.0")
				caseLiveAgentWith(t, f, &agentv1.PluginInfo{Name: "disk-usage", Version: "1.1.0"})
				caseEnroll(t, f) // enrolled, never connected: still has the built-ins
				return prepared{}
			},
			check: func(t *testing.T, rec *responseUnderTest) {
				c := decodeInto[stepCatalog](t, rec)
				if want := len(builtin.Catalog()) + 2; len(c.Items) != want {
					t.Fatalf("%d steps, want %d", len(c.Items), want)
				}
				shell := c.Items[slicesIndex(c.Items, "shell", "")]
				if shell.Kind != "builtin" || !shell.Agents.All || shell.Agents.Count != 2 || len(shell.Agents.Items) != 0 || len(shell.Params) == 0 {
					t.Errorf("shell: %+v", shell)
				}
				newer, older := slicesIndex(c.Items, "disk-usage", "1.1.0"), slicesIndex(c.Items, "disk-usage", "1.0.0")
				if newer > older {
					t.Errorf("plugin versions are not newest first")
				}
				p := c.Items[newer]
				if p.Kind != "plugin" || p.Agents.All || p.Agents.Count != 1 || len(p.Agents.Items) != 1 || p.Agents.Items[0].Name != "live" ||
					p.Agents.Items[0].Status != "up" || strings.Join(p.Platforms, ",") != "linux/amd64" || p.CreatedBy != "admin" {
					t.Errorf("disk-usage@1.1.0: %+v", p)
				}
				if o := c.Items[older]; o.Agents.Count != 0 || len(o.Agents.Items) != 0 {
					t.Errorf("disk-usage@1.0.0 is on %+v, want no agent", o.Agents)
				}
			}},
	}
	return cases
}

// slicesIndex finds a step by name and, for plugins, version; -1 when
// absent, which fails the test on use.
func slicesIndex(items []catalogStep, name, version string) int {
	for i, s := range items {
		if s.Name == name && (version == "" || s.Version == version) {
			return i
		}
	}
	return -1
}
