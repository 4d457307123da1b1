package builtin

import (
	"context"
	"slices"
	"testing"

	"github.com/opsconductor/opsconductor/plugins/schema"
)

func TestCatalogListsEveryBuiltinWithAValidSchema(t *testing.T) {
	want := []string{"discover", "file", "http", "noop", "package", "script", "service", "shell", "ssh", "template", "wait"}
	var got []string
	for _, d := range Catalog() {
		got = append(got, d.Name)
		if err := schema.Check(d.Params); err != nil {
			t.Errorf("%s: schema: %v", d.Name, err)
		}
		if d.Version != Version || d.Summary == "" {
			t.Errorf("%s: version %q summary %q, want %s and a summary", d.Name, d.Version, d.Summary, Version)
		}
		s, ok := Lookup(d.Name)
		if !ok || s.Describe().Name != d.Name {
			t.Errorf("Lookup(%q) = %v, %v", d.Name, s, ok)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("Catalog names = %v, want %v", got, want)
	}
	if _, ok := Lookup("nope"); ok {
		t.Errorf("Lookup(nope) found a step")
	}
}

// Every step refuses bad parameters before doing anything, naming the
// parameter.
func TestEveryStepNamesTheBadParameter(t *testing.T) {
	tests := []struct {
		step   string
		params obj
		path   string
	}{
		{"shell", obj{}, "params.command"},
		{"shell", obj{"command": "true", "cwd": "relative"}, "params.cwd"},
		{"shell", obj{"command": "true", "comand": "x"}, "params.comand"},
		{"script", obj{"args": []string{"a"}}, "params.script"},
		{"script", obj{"script": "echo no shebang"}, "params.script"},
		{"file", obj{"path": "relative", "content": ""}, "params.path"},
		{"file", obj{"path": "/tmp/x", "mode": "0999"}, "params.mode"},
		{"template", obj{"path": "/tmp/x"}, "params.template"},
		{"http", obj{"url": "ftp://x/"}, "params.url"},
		{"http", obj{"url": "http://x/", "method": "FETCH"}, "params.method"},
		{"http", obj{"url": "http://x/", "expect_status": []int{99}}, "params.expect_status[0]"},
		{"http", obj{"url": "http://x/", "interval": "soon"}, "params.interval"},
		{"wait", obj{}, "params.tcp"},
		{"wait", obj{"tcp": "127.0.0.1:1", "file": "/x"}, "params.tcp"},
		{"wait", obj{"tcp": "nocolon"}, "params.tcp"},
		{"service", obj{"name": "nginx", "action": "bounce"}, "params.action"},
		{"service", obj{"name": "-H evil", "action": "start"}, "params.name"},
		{"package", obj{"name": "-y evil"}, "params.name"},
		{"package", obj{"name": "x", "action": "upgrade"}, "params.action"},
		{"ssh", obj{"command": "true", "host_key_policy": "sometimes"}, "params.host_key_policy"},
		{"ssh", obj{"user": "u", "command": "true", "port": 70000}, "params.port"},
		{"noop", obj{"lines": -1}, "params.lines"},
	}
	for _, tt := range tests {
		t.Run(tt.step+" refuses "+tt.path, func(t *testing.T) {
			s, _ := Lookup(tt.step)
			_, _, err := run(t, context.Background(), s, tt.params)
			wantParamError(t, err, tt.path)
		})
	}
}
