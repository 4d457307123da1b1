package builtin

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opsconductor/opsconductor/plugins/sdk"
)

func TestTemplate(t *testing.T) {
	target := sdk.Target{ID: "t1", Name: "web-1", Address: "10.0.0.5", Facts: map[string]string{"os": "linux", "tag.env": "prod"}}
	withTarget := func(r *sdk.Request) { r.Target = target }
	tests := []struct {
		name     string
		template string
		vars     obj
		want     string
		wantErr  string // the message after "params.template: "
	}{
		{name: "vars, facts and target are rendered",
			template: "listen {{.Vars.port}}\nserver_name {{.Target.Name}} {{.Target.Address}}\nos {{.Facts.os}} env {{index .Facts \"tag.env\"}}\n",
			vars:     obj{"port": 8080},
			want:     "listen 8080\nserver_name web-1 10.0.0.5\nos linux env prod\n"},
		{name: "numbers render as written, not in exponent form",
			template: "max_clients {{.Vars.n}}\nratio {{.Vars.r}}\n",
			vars:     obj{"n": 1234567, "r": 0.25},
			want:     "max_clients 1234567\nratio 0.25\n"},
		{name: "lists in vars can be ranged over",
			template: "{{range .Vars.upstreams}}server {{.}};\n{{end}}",
			vars:     obj{"upstreams": []string{"a:80", "b:80"}},
			want:     "server a:80;\nserver b:80;\n"},
		{name: "a parse error names its line",
			template: "ok\n{{if .Vars.x}}\nno end\n", // EOF is on line 4
			wantErr:  "line 4: unexpected EOF"},
		{name: "a missing variable is an error with its line, not <no value>",
			template: "a\nb {{.Vars.nope}}\n",
			wantErr:  "line 2, column 9: at <.Vars.nope>: map has no entry for key \"nope\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "out.conf")
			params := obj{"path": path, "template": tt.template}
			if tt.vars != nil {
				params["vars"] = tt.vars
			}
			res, rec, err := run(t, context.Background(), Template{}, params, withTarget)
			if tt.wantErr != "" {
				wantParamError(t, err, "params.template")
				if got := strings.TrimPrefix(err.Error(), "params.template: "); got != tt.wantErr {
					t.Errorf("error = %q, want %q", got, tt.wantErr)
				}
				if _, err := os.Stat(path); err == nil {
					t.Errorf("a failed render wrote the file")
				}
				return
			}
			if err != nil || !res.Changed {
				t.Fatalf("Run: %+v %v", res, err)
			}
			if b, _ := os.ReadFile(path); string(b) != tt.want {
				t.Errorf("file = %q, want %q", b, tt.want)
			}
			if !strings.Contains(rec.stdout(), "--- /dev/null") {
				t.Errorf("stdout %q lacks the diff of the new file", rec.stdout())
			}
			again, rec, err := run(t, context.Background(), Template{}, params, withTarget)
			if err != nil || again.Changed || strings.Contains(rec.stdout(), "@@") {
				t.Errorf("second run: %+v %v %q, want changed=false and no diff", again, err, rec.stdout())
			}
		})
	}
}

func TestTemplateChangeShowsTheDiff(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.conf")
	tmpl := "workers {{.Vars.n}}\nlog on\n"
	if _, _, err := run(t, context.Background(), Template{}, obj{"path": path, "template": tmpl, "vars": obj{"n": 2}}); err != nil {
		t.Fatal(err)
	}
	res, rec, err := run(t, context.Background(), Template{}, obj{"path": path, "template": tmpl, "vars": obj{"n": 4}})
	if err != nil || !res.Changed {
		t.Fatalf("Run: %+v %v", res, err)
	}
	if !strings.Contains(rec.stdout(), "-workers 2\n+workers 4\n log on\n") {
		t.Errorf("stdout %q lacks the diff of the change", rec.stdout())
	}
}
