package tmpl

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
)

// FuzzRender feeds arbitrary template source (into the field chosen by
// field) and arbitrary event strings through Compile and Render: neither
// may panic, every field stays within MaxOutput, and a body that renders is
// valid JSON.
func FuzzRender(f *testing.F) {
	for _, et := range []EventType{EventRunFailed, EventDigest, EventStepFailed} {
		for i, kind := range []ChannelKind{ChannelEmail, ChannelWebhook, ChannelChat} {
			b := Builtin(et, kind)
			f.Add(uint8(i), b.Text+b.Body, "web-03", "x", 3)
			f.Add(uint8(3), b.HTML, "<script>alert(1)</script>", "\"}", 50)
		}
	}
	f.Add(uint8(1), `{"a": {{json .Summary}}}`, "\u2028\x00", "é", 1)
	f.Add(uint8(1), `{{range 100000000}}{{end}}{}`, "a", "b", 0)
	f.Add(uint8(2), `{{$x := .Summary}}{{range 40}}{{$x = print $x $x}}{{end}}`, "aaaa", "b", 0)
	f.Add(uint8(0), `{{define "a"}}{{range .Run.FailedTargets}}{{template "a" $}}{{end}}{{end}}{{template "a" .}}`, "", "", 200)
	f.Add(uint8(3), `<a href="{{.Links.Run}}" onclick="{{.Summary}}">{{.Step.Error}}</a><script>var x={{.}}</script>`, "javascript:alert(1)", "x", 2)
	f.Add(uint8(0), `{{printf "%0999d" 1}}{{printf "%[1]s"}}{{trunc -1 .Summary}}{{join "," .Login}}`, "", "", 0)

	f.Fuzz(func(t *testing.T, field uint8, src, summary, target string, n int) {
		tp := Template{Channel: ChannelChat, Text: src}
		switch field % 4 {
		case 1:
			tp = Template{Channel: ChannelWebhook, Body: src}
		case 2:
			tp = Template{Channel: ChannelEmail, Subject: src, Text: "t"}
		case 3:
			tp = Template{Channel: ChannelEmail, Subject: "s", HTML: src}
		}
		c, err := Compile(tp)
		if err != nil {
			return
		}
		e := Sample(EventTypes()[uint(n)%uint(len(EventTypes()))])
		if e.Run == nil {
			e.Run = Sample(EventRunFailed).Run
		}
		if e.Step == nil {
			e.Step = Sample(EventStepFailed).Step
		}
		e.Summary, e.Step.Target, e.Step.Error = summary, target, strings.Repeat(target, int(uint(n)%64))
		for i := range int(uint(n) % 200) {
			e.Run.FailedTargets = append(e.Run.FailedTargets, target+string(rune('a'+i%26)))
		}
		out, err := c.Render(context.Background(), e)
		if err != nil {
			return
		}
		for name, v := range map[string]int{"subject": len(out.Subject), "text": len(out.Text), "html": len(out.HTML), "body": len(out.Body)} {
			if v > MaxOutput {
				t.Fatalf("%s is %d bytes", name, v)
			}
		}
		if out.Body != nil && !json.Valid(out.Body) {
			t.Fatalf("body is not JSON: %q", out.Body)
		}
	})
}
