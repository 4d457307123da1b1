package tmpl

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func TestEveryBuiltinCompilesAndRendersItsSample(t *testing.T) {
	for _, et := range EventTypes() {
		for _, kind := range []ChannelKind{ChannelEmail, ChannelWebhook, ChannelChat} {
			t.Run(string(et)+" on "+string(kind), func(t *testing.T) {
				tp := Builtin(et, kind)
				c, err := Validate(context.Background(), tp)
				if err != nil {
					t.Fatalf("validate: %v", err)
				}
				out, err := c.Render(context.Background(), Sample(et))
				if err != nil {
					t.Fatalf("render: %v", err)
				}
				switch kind {
				case ChannelEmail:
					if out.Subject == "" || out.Text == "" || out.HTML == "" {
						t.Fatalf("email part missing: %+v", out)
					}
					if strings.Contains(out.Text, "<no value>") || strings.Contains(out.HTML, "<no value>") {
						t.Errorf("a field rendered as <no value>:\n%s", out.Text)
					}
				case ChannelWebhook:
					var got struct {
						Format string `json:"format"`
						Event  Event  `json:"event"`
					}
					if err := json.Unmarshal(out.Body, &got); err != nil {
						t.Fatalf("body: %v", err)
					}
					if got.Event.Type != et || got.Format != "opsconductor.event.v1" {
						t.Errorf("body carries %q/%q, want the %s event", got.Format, got.Event.Type, et)
					}
				case ChannelChat:
					if out.Subject == "" || out.Text == "" || !json.Valid(out.Body) {
						t.Fatalf("chat text or Teams body missing or invalid: %+v", out)
					}
				}
				golden(t, string(et)+"."+string(kind), out)
			})
		}
	}
}

func TestAnUnknownEventTypeStillGetsAReadableBuiltin(t *testing.T) {
	e := Sample("backup.finished")
	e.Summary = "nightly backup finished"
	for _, kind := range []ChannelKind{ChannelEmail, ChannelWebhook, ChannelChat} {
		c, err := Compile(Builtin("backup.finished", kind))
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		if _, err := c.Render(context.Background(), e); err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
	}
}

// golden compares a rendering with testdata/golden/NAME.json; go test
// -update rewrites it.
func golden(t *testing.T, name string, out Rendered) {
	t.Helper()
	got, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "golden", name+".json")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(want) != string(got) {
		t.Errorf("%s differs from the golden file:\n%s", name, got)
	}
}
