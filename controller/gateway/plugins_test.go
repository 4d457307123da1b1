package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/opsconductor/opsconductor/controller/identity"
	"github.com/opsconductor/opsconductor/controller/plugins"
	"github.com/opsconductor/opsconductor/controller/problem"
	agentv1 "github.com/opsconductor/opsconductor/proto/agent/v1"
)

func TestPluginUploads(t *testing.T) {
	t.Run("a binary larger than MaxBodyBytes is streamed into the registry whole", func(t *testing.T) {
		f := newFixture(t, Config{MaxBodyBytes: 1024})
		bin := strings.Repeat("\x7fELF plugin ", 64<<10/12)
		ct, body := pluginForm(withPart(validPluginForm("1.0.0"), "binary", bin)...)
		rec := f.do(t, newRequest("POST", "/api/v1/plugins", ct, body))
		if rec.Code != http.StatusCreated {
			t.Fatalf("status = %d: %s", rec.Code, rec.Body)
		}
		_, b, file, err := f.srv.plugins.Open(context.Background(), "disk-usage", "1.0.0", "linux", "amd64")
		if err != nil {
			t.Fatal(err)
		}
		defer file.Close()
		got, _ := io.ReadAll(file)
		if string(got) != bin || b.Size != int64(len(bin)) {
			t.Fatalf("stored %d bytes, want the %d pushed", len(got), len(bin))
		}
	})
	t.Run("a declared length over the registry's limit is refused before reading", func(t *testing.T) {
		f := newFixture(t, Config{})
		ct, body := pluginForm(validPluginForm("1.0.0")...)
		req := newRequest("POST", "/api/v1/plugins", ct, body)
		req.ContentLength = plugins.MaxBinary + pluginFormOverhead + 1
		rec := f.do(t, req)
		if rec.Code != http.StatusRequestEntityTooLarge {
			t.Fatalf("status = %d, want 413: %s", rec.Code, rec.Body)
		}
		if e := decodeEnvelope(t, rec); e.Field != "body" {
			t.Errorf("field = %q, want body", e.Field)
		}
	})
	t.Run("a part after the binary registers nothing and leaves no file", func(t *testing.T) {
		dir := t.TempDir()
		f := newFixture(t, Config{}, func(d *Deps) { d.Plugins = newTestPluginsIn(t, dir) })
		ct, body := pluginForm(append(validPluginForm("1.0.0"), formPart{"os", "darwin"})...)
		rec := f.do(t, newRequest("POST", "/api/v1/plugins", ct, body))
		if rec.Code != http.StatusBadRequest {
			t.Fatalf("status = %d, want 400: %s", rec.Code, rec.Body)
		}
		if e := decodeEnvelope(t, rec); e.Field != "os" || !strings.Contains(e.Message, "no part may follow binary") {
			t.Errorf("envelope = %+v", e)
		}
		if all, _ := f.srv.plugins.List(context.Background()); len(all) != 0 {
			t.Errorf("registered %v", all)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("left files %v", entries)
		}
	})
	t.Run("every problem with the description is named under description", func(t *testing.T) {
		f := newFixture(t, Config{})
		ct, body := pluginForm(withPart(validPluginForm("1.0.0"), "description",
			`{"name":"Disk","version":"v1","outputs":[{"name":"a"},{"name":"a"}]}`)...)
		rec := f.do(t, newRequest("POST", "/api/v1/plugins", ct, body))
		if rec.Code != http.StatusBadRequest {
			t.Fatalf("status = %d: %s", rec.Code, rec.Body)
		}
		e := decodeEnvelope(t, rec)
		var fields []string
		for _, d := range e.Details {
			fields = append(fields, d.Field)
		}
		if got := strings.Join(fields, " "); e.Field != "description.name" || got != "description.name description.version description.outputs[1].name" {
			t.Errorf("field %q, details %q", e.Field, got)
		}
	})
}

func TestUnderDescription(t *testing.T) {
	tests := []struct {
		name  string
		in    error
		field string
	}{
		{"a description field moves under description", problem.Invalid("params", "bad"), "description.params"},
		{"os stays where it was", problem.Invalid("os", "bad"), "os"},
		{"binary stays where it was", problem.Invalid("binary", "is empty"), "binary"},
		{"a field already under description is left alone", problem.Invalid("description.name", "bad"), "description.name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, _ := problem.As(underDescription(tt.in))
			if p.Field != tt.field {
				t.Fatalf("field = %q, want %q", p.Field, tt.field)
			}
		})
	}
	t.Run("a problem that is not about input is passed on unchanged", func(t *testing.T) {
		in := problem.New(problem.KindConflict, "plugin_description_changed", "changed")
		if got := underDescription(in); got != error(in) {
			t.Fatalf("got %v", got)
		}
	})
	t.Run("the registry's own problem is not changed", func(t *testing.T) {
		in := problem.Invalid("name", "bad")
		underDescription(in)
		if in.Field != "name" {
			t.Fatalf("the original became %q", in.Field)
		}
	})
}

func TestStepCatalogShowsAgentsOnlyToAgentReaders(t *testing.T) {
	ti := newTestIdentity(t)
	if _, err := ti.svc.PutRole(context.Background(), casePrincipal(t, ti, ti.adminToken),
		identity.Role{Name: "job-author", Permissions: []identity.Permission{identity.PermJobsRead}}, true); err != nil {
		t.Fatal(err)
	}
	caseCreateUser(t, ti, "author", "job-author", false)
	author := caseLogin(t, ti, "author", casePassword).AccessToken
	f := newFixture(t, Config{}, func(d *Deps) { d.Identity = ti.svc })
	f.ident = ti
	casePush(t, f, "1.0.0")
	caseLiveAgentWith(t, f, &agentv1.PluginInfo{Name: "disk-usage", Version: "1.0.0"})
	tests := []struct {
		name      string
		token     string
		wantItems int
	}{
		{"an admin sees which agents have a plugin", ti.adminToken, 1},
		{"a job author without agents:read sees only the count", author, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := newRequest("GET", "/api/v1/steps", "", "")
			req.Header.Set("Authorization", "Bearer "+tt.token)
			rec := f.do(t, req)
			if rec.Code != http.StatusOK {
				t.Fatalf("status = %d: %s", rec.Code, rec.Body)
			}
			var c stepCatalog
			if err := json.NewDecoder(bytes.NewReader(rec.Body.Bytes())).Decode(&c); err != nil {
				t.Fatal(err)
			}
			p := c.Items[slicesIndex(c.Items, "disk-usage", "1.0.0")]
			if p.Agents.Count != 1 || len(p.Agents.Items) != tt.wantItems {
				t.Fatalf("agents = %+v", p.Agents)
			}
		})
	}
}
