package gateway

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestMergeOpenAPI(t *testing.T) {
	base := `{"openapi":"3.1.0","tags":[{"name":"a"}],"paths":{"/a":{}},"components":{"schemas":{"A":{}}}}`
	tests := []struct {
		name, frag, wantErr string
	}{
		{name: "adds paths, tags and schemas", frag: `{"tags":[{"name":"b"}],"paths":{"/b":{}},"components":{"schemas":{"B":{}},"parameters":{"P":{}}}}`},
		{name: "a path defined twice", frag: `{"paths":{"/a":{}}}`, wantErr: "paths defined twice: /a"},
		{name: "a schema defined twice", frag: `{"components":{"schemas":{"A":{}}}}`, wantErr: "components.schemas defined twice: A"},
		{name: "an unknown key", frag: `{"info":{}}`, wantErr: `unknown key "info"`},
		{name: "not JSON", frag: `{`, wantErr: "unexpected end"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := mergeOpenAPI(fstest.MapFS{
				"openapi.json":        {Data: []byte(base)},
				"openapi.d/b.json":    {Data: []byte(tt.frag)},
				"openapi.d/README.md": {Data: []byte("not merged")},
			})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "b.json") {
					t.Fatalf("error %v, want one naming b.json and %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{`"/a"`, `"/b"`, `"B"`, `"P"`, `"name": "b"`} {
				if !strings.Contains(string(doc), want) {
					t.Errorf("merged document lacks %s", want)
				}
			}
		})
	}
}
