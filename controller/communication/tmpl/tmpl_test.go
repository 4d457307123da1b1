package tmpl

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/opsconductor/opsconductor/controller/problem"
)

func diagnostics(t *testing.T, err error) []Diagnostic {
	t.Helper()
	var terr *Error
	if !errors.As(err, &terr) {
		t.Fatalf("want a *tmpl.Error, got %T: %v", err, err)
	}
	return terr.Diagnostics
}

func TestCompileReportsTheFieldLineAndColumnOfEachMistake(t *testing.T) {
	cases := []struct {
		name string
		tmpl Template
		want []string // Diagnostic.String() of every problem, in order
	}{
		{"an unknown function in HTML names its line",
			Template{Channel: ChannelEmail, Subject: "s", HTML: "<p>\n\n{{foo}}</p>"},
			[]string{`html: line 3: function "foo" not defined`}},
		{"an unclosed action names the line where the input ends",
			Template{Channel: ChannelEmail, Subject: "s", Text: "hello\n{{if .Run}}"},
			[]string{`text: line 2: unexpected EOF`}},
		{"a bad token in the subject",
			Template{Channel: ChannelEmail, Subject: "{{.Run.ID }", Text: "t"},
			[]string{`subject: line 1: unexpected "}" in operand`}},
		{"html/template context errors are found on save, with line and column",
			Template{Channel: ChannelEmail, Subject: "s", HTML: "<p>\n<a href=\"{{if .Run}}x\">{{end}}"},
			nil},
		{"every problem is reported at once",
			Template{Channel: ChannelEmail, Text: "{{nope}}", Body: "{}", Events: []EventType{"run.exploded"}},
			[]string{
				`events[0]: unknown event type "run.exploded"`,
				`subject: an email template needs a subject`,
				`text: line 1: function "nope" not defined`,
				`body: not used by email templates`,
			}},
		{"an unknown channel kind",
			Template{Channel: "pager", Text: "x"},
			[]string{`channel: must be email, webhook or chat, not "pager"`}},
		{"a webhook needs a body",
			Template{Channel: ChannelWebhook},
			[]string{`body: a webhook template needs a JSON body`}},
		{"there is no exec or env function",
			Template{Channel: ChannelChat, Text: "{{env \"HOME\"}}\n{{exec \"id\"}}"},
			[]string{`text: line 1: function "env" not defined`}},
		{"an oversized source is refused before parsing",
			Template{Channel: ChannelChat, Text: strings.Repeat("x", MaxSource+1)},
			[]string{`text: longer than 65536 bytes`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile(tc.tmpl)
			ds := diagnostics(t, err)
			if tc.want == nil {
				// The exact context text of html/template is Go's; the
				// place is ours to check.
				if len(ds) != 1 || ds[0].Field != "html" || ds[0].Line != 2 || ds[0].Column == 0 ||
					!strings.Contains(ds[0].Message, "branches end in different contexts") {
					t.Fatalf("got %+v", ds)
				}
				return
			}
			var got []string
			for _, d := range ds {
				got = append(got, d.String())
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestATemplateErrorIsAnInvalidInputProblemForTheGateway(t *testing.T) {
	_, err := Compile(Template{Channel: ChannelEmail, Subject: "s", HTML: "<p>\n\n{{foo}}</p>"})
	p, ok := problem.As(err)
	if !ok || p.Kind != problem.KindInvalid || p.Field != "html" {
		t.Fatalf("problem = %+v, %v", p, ok)
	}
	if err.Error() != `html: line 3: function "foo" not defined` {
		t.Fatalf("message = %q", err.Error())
	}
}

func TestValidateRendersTheSampleOfEachEventTypeTheTemplateIsFor(t *testing.T) {
	ctx := context.Background()
	t.Run("a template for run events may use .Run unguarded", func(t *testing.T) {
		tp := Template{Channel: ChannelChat, Text: "{{.Run.ID}} {{.Run.Status}}",
			Events: []EventType{EventRunFailed, EventRunSucceeded}}
		if _, err := Validate(ctx, tp); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a template for every type must guard .Run, and the failure names line, column and sample", func(t *testing.T) {
		tp := Template{Channel: ChannelChat, Text: "hello\n  {{.Run.ID}}"}
		ds := diagnostics(t, func() error { _, err := Validate(ctx, tp); return err }())
		// text/template places a field chain at its last element.
		want := "text: line 2, column 9: at <.Run.ID>: nil pointer evaluating *tmpl.Run.ID (rendering the agent.down sample)"
		if len(ds) != 1 || ds[0].String() != want {
			t.Fatalf("got %+v\nwant %s", ds, want)
		}
	})
	t.Run("guarded with with, it renders everywhere", func(t *testing.T) {
		tp := Template{Channel: ChannelChat, Text: "{{.Summary}}{{with .Run}} ({{.ID}}){{end}}"}
		if _, err := Validate(ctx, tp); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a misspelt field names the line", func(t *testing.T) {
		tp := Template{Channel: ChannelEmail, Subject: "s", Text: "a\n\n{{.Run.Jobb}}", Events: []EventType{EventRunFailed}}
		_, err := Validate(ctx, tp)
		if err == nil || !strings.HasPrefix(err.Error(), "text: line 3, column 7: at <.Run.Jobb>: can't evaluate field Jobb") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestHTMLIsEscapedAndTextIsNot(t *testing.T) {
	const xss = `<script>alert("x")</script><img src=x onerror=alert(1)>`
	c, err := Compile(Builtin(EventStepFailed, ChannelEmail))
	if err != nil {
		t.Fatal(err)
	}
	e := Sample(EventStepFailed)
	e.Step.Target = xss
	e.Target.Name = xss
	e.Summary = "failed on " + xss
	out, err := c.Render(context.Background(), e)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.HTML, "<script>") || strings.Contains(out.HTML, "<img") {
		t.Errorf("HTML carries the payload unescaped:\n%s", out.HTML)
	}
	if !strings.Contains(out.HTML, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;") {
		t.Errorf("HTML lacks the escaped payload:\n%s", out.HTML)
	}
	if !strings.Contains(out.Text, xss) {
		t.Errorf("the text part must carry the target name as it is:\n%s", out.Text)
	}

	t.Run("a javascript: link is neutralised", func(t *testing.T) {
		c, err := Compile(Template{Channel: ChannelEmail, Subject: "s", HTML: `<a href="{{.Links.Run}}">run</a>`})
		if err != nil {
			t.Fatal(err)
		}
		e := Sample(EventRunFailed)
		e.Links.Run = "javascript:alert(1)"
		out, err := c.Render(context.Background(), e)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(out.HTML, "javascript:") {
			t.Fatalf("html = %s", out.HTML)
		}
	})
	t.Run("a newline in a subject cannot start a mail header", func(t *testing.T) {
		c, err := Compile(Template{Channel: ChannelEmail, Subject: "{{.Summary}}", Text: "t"})
		if err != nil {
			t.Fatal(err)
		}
		e := Sample(EventRunFailed)
		e.Summary = "boom\r\nBcc: victim@example.com"
		out, err := c.Render(context.Background(), e)
		if err != nil {
			t.Fatal(err)
		}
		if strings.ContainsAny(out.Subject, "\r\n") {
			t.Fatalf("subject = %q", out.Subject)
		}
	})
}

func TestAWebhookBodyMustRenderToJSON(t *testing.T) {
	cases := []struct {
		name, body string
		want       string // "" means valid; else a prefix of the error
	}{
		{"json quotes and escapes any string", `{"text": {{json .Summary}}, "target": {{json .Step.Target}}}`, ""},
		{"the whole model encodes", `{{json .}}`, ""},
		{"an unquoted string names the output line",
			"{\n  \"text\": {{.Summary}}\n}",
			`body: line 2, column 11: rendered output is not JSON: invalid character 'S' looking for beginning of value; line 2 of the output is "  \"text\": Step restart-nginx`},
		{"a trailing comma", `{"a": 1,}`, `body: line 1, column 9: rendered output is not JSON`},
		{"two values are not one document", `{} {}`, `body: line 1, column 4: rendered output is not JSON: invalid character '{' after top-level value`},
		{"nothing is not JSON", `{{if false}}{}{{end}}`, `body: rendered to nothing`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Compile(Template{Channel: ChannelWebhook, Body: tc.body})
			if err != nil {
				t.Fatal(err)
			}
			e := Sample(EventStepFailed)
			e.Step.Target = "web\"03\n</script>\u2028"
			out, err := c.Render(context.Background(), e)
			if tc.want == "" {
				if err != nil || !json.Valid(out.Body) {
					t.Fatalf("body %s, err %v", out.Body, err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("err = %v\nwant prefix %s", err, tc.want)
			}
		})
	}
}

func TestRenderWorkIsBounded(t *testing.T) {
	cases := []struct {
		name, body, want string
	}{
		{"range over a huge number stops at the step budget, naming the range's line and pipeline",
			"{}\n{{range 1000000000}}{{end}}", "body: line 2, column 9: the template does more than 100000 loop iterations"},
		{"nested template calls with ranges stop at the budget",
			`{{define "a"}}{{range 1000}}{{template "b" $}}{{end}}{{end}}{{define "b"}}{{range 1000}}{{end}}{{end}}{{template "a" .}}{}`,
			"the template does more than 100000"},
		{"doubling a variable stops at the output limit",
			`{{$x := .Summary}}{{range 64}}{{$x = print $x $x}}{{end}}{}`, "output exceeds 262144 bytes"},
		{"a huge printf width is refused before formatting",
			`{{printf "%0999999999d" 1}}`, `printf: "%0999999999d": width or precision above 1000`},
		{"a star width is refused",
			`{{printf "%*d" 999999999 1}}`, `'*' and argument indexes are not allowed`},
		{"repeating an argument by index is refused",
			`{{printf "%[1]s%[1]s" .Summary}}`, `'*' and argument indexes are not allowed`},
		{"output beyond the limit is refused",
			`{{range 100000}}xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx{{end}}`, "output exceeds 262144 bytes"},
		{"infinite recursion ends at the call budget, long before Go's depth limit",
			`{{define "r"}}{{template "r" .}}{{end}}{{template "r" .}}`, "body: line 1, column 26: the template makes more than 1000 template calls"},
		{"recursion inside a range ends at the call budget",
			`{{define "a"}}{{range .Run.FailedTargets}}{{template "a" $}}{{end}}{{end}}{{template "a" .}}`, "more than 1000 template calls"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Compile(Template{Channel: ChannelWebhook, Body: tc.body})
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			_, err = c.Render(context.Background(), Sample(EventRunFailed))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if d := time.Since(start); d > RenderTimeout {
				t.Fatalf("took %v", d)
			}
		})
	}
}

func TestACanceledContextEndsTheRender(t *testing.T) {
	c, err := Compile(Template{Channel: ChannelWebhook, Body: `{{range 1000}}{{end}}{}`})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = c.Render(ctx, Sample(EventRunFailed))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

func TestBoundCutsEventDataWithoutChangingTheOriginal(t *testing.T) {
	e := Sample(EventRunFailed)
	e.Summary = strings.Repeat("é", MaxString)
	for i := range 500 {
		e.Run.FailedTargets = append(e.Run.FailedTargets, "web-"+string(rune('a'+i%26)))
	}
	e.Digest = &Digest{Count: 1000}
	for range 100 {
		inner := Sample(EventStepFailed)
		inner.Digest = &Digest{Count: 1}
		e.Digest.Events = append(e.Digest.Events, inner)
	}
	b := Bound(e)
	if len(b.Summary) > MaxString || !strings.HasSuffix(b.Summary, "…") || !strings.HasPrefix(b.Summary, "éé") {
		t.Errorf("summary not cut at a character boundary: %d bytes", len(b.Summary))
	}
	if len(b.Run.FailedTargets) != MaxFailedTargets || len(e.Run.FailedTargets) != 503 {
		t.Errorf("failed targets %d (original %d)", len(b.Run.FailedTargets), len(e.Run.FailedTargets))
	}
	if len(b.Digest.Events) != MaxDigestEvents || b.Digest.Events[0].Digest != nil || e.Digest.Events[0].Digest == nil {
		t.Errorf("digest events not bounded, or the original changed")
	}
}

func TestFunctions(t *testing.T) {
	cases := []struct{ src, want string }{
		{`{{upper "abc"}} {{lower "ÀB"}} {{trim "  x "}}`, "ABC àb x"},
		{`{{trunc 3 "abcdef"}} {{trunc 10 "abc"}} {{trunc 2 "日本語"}}`, "abc… abc 日本…"},
		{`{{join ", " .Run.FailedTargets}}`, "web-03.eu, web-11.eu, web-17.eu"},
		{`{{default "-" .Run.Reason}}|{{default "-" ""}}|{{default 7 0}}`, "max failure percentage (5%) exceeded|-|7"},
		{`{{duration .Run.Duration}} {{duration 1500000}}`, "4m12s 2ms"},
		{`{{time .Time}} {{time "DateOnly" .Time}} {{time "15:04" .Time}} [{{time .Run.FinishedAt}}]`, "2026-03-14T09:26:53Z 2026-03-14 09:26 [2026-03-14T09:26:53Z]"},
		{`{{json .Run.Summary}} {{json "a\"<b>"}}`, `{"total":40,"succeeded":31,"failed":3,"canceled":0,"skipped":5,"lost":1} "a\"\u003cb\u003e"`},
		{`{{slack_escape "a & <b>"}}`, "a &amp; &lt;b&gt;"},
		{`{{print 1 2 "x" 3}}|{{printf "%5.1f" 3.14159}}|{{html "<b>"}}|{{urlquery "a b"}}`, "1 2x3|  3.1|&lt;b&gt;|a+b"},
		{`{{range $k, $v := .Target.Tags}}{{$k}}={{$v}};{{end}}{{.Target.Tags.missing}}`, ""},
	}
	for _, tc := range cases {
		t.Run(tc.src, func(t *testing.T) {
			c, err := Compile(Template{Channel: ChannelChat, Text: tc.src})
			if err != nil {
				t.Fatal(err)
			}
			e := Sample(EventRunFailed)
			if strings.Contains(tc.src, "Tags") {
				e = Sample(EventStepFailed)
				tc.want = "env=prod;role=web;site=eu-west;"
			}
			out, err := c.Render(context.Background(), e)
			if err != nil {
				t.Fatal(err)
			}
			if out.Text != tc.want {
				t.Fatalf("got %q, want %q", out.Text, tc.want)
			}
		})
	}
}

func TestSamplesAreDeterministicAndCarryTheirSections(t *testing.T) {
	for _, et := range EventTypes() {
		a, b := Sample(et), Sample(et)
		ja, _ := json.Marshal(a)
		jb, _ := json.Marshal(b)
		if string(ja) != string(jb) {
			t.Errorf("%s: samples differ", et)
		}
		if a.Type != et || a.Summary == "" || !a.Severity.Valid() || a.Links.UI == "" {
			t.Errorf("%s: common fields missing: %+v", et, a)
		}
	}
}

func TestOneCompiledTemplateRendersConcurrently(t *testing.T) {
	c, err := Compile(Builtin(EventDigest, ChannelEmail))
	if err != nil {
		t.Fatal(err)
	}
	want, err := c.Render(context.Background(), Sample(EventDigest))
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			for range 20 {
				got, err := c.Render(context.Background(), Sample(EventDigest))
				if err == nil && got.HTML != want.HTML {
					err = errors.New("renders differ")
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

func TestPreviewRendersTheSampleAndReportsLines(t *testing.T) {
	out, err := Preview(context.Background(), Builtin(EventAgentDown, ChannelChat), EventAgentDown)
	if err != nil || !strings.Contains(out.Subject, "Agent web-03.eu is down") {
		t.Fatalf("out %+v, err %v", out, err)
	}
	_, err = Preview(context.Background(), Template{Channel: ChannelChat, Text: "ok\n{{.Agent.Nmae}}"}, EventAgentDown)
	if err == nil || !strings.HasPrefix(err.Error(), "text: line 2, column 9: at <.Agent.Nmae>") {
		t.Fatalf("err = %v", err)
	}
}

func TestTheInjectedGuardsDoNotChangeOutput(t *testing.T) {
	cases := []struct {
		name string
		tmpl Template
		want string
	}{
		{"text with a defined template, a range, break and else",
			Template{Channel: ChannelChat, Text: `{{define "x"}}[{{.}}]{{end}}{{template "x" .Run.Job}}{{range $i, $t := .Run.FailedTargets}}{{if eq $i 2}}{{break}}{{end}}{{$t}};{{end}}{{range slice .Run.FailedTargets 0 0}}{{else}}none{{end}}`},
			"[deploy-web]web-03.eu;web-11.eu;none"},
		{"html in element, attribute and script contexts",
			Template{Channel: ChannelEmail, Subject: "s", HTML: `{{define "b"}}<b>{{.}}</b>{{end}}<p title="{{range .Run.FailedTargets}}{{.}} {{end}}">{{template "b" .Run.Job}}</p><script>var t = [{{range .Run.FailedTargets}}{{.}},{{end}}];</script>`},
			`<p title="web-03.eu web-11.eu web-17.eu "><b>deploy-web</b></p><script>var t = ["web-03.eu","web-11.eu","web-17.eu",];</script>`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Compile(tc.tmpl)
			if err != nil {
				t.Fatal(err)
			}
			out, err := c.Render(context.Background(), Sample(EventRunFailed))
			if err != nil {
				t.Fatal(err)
			}
			got := out.Text + out.HTML
			if got != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}
