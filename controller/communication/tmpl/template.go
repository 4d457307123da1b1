package tmpl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"regexp"
	"strconv"
	"strings"
	texttemplate "text/template"
	"time"

	"github.com/opsconductor/opsconductor/controller/problem"
)

// Limits of a template and of one render.
const (
	// MaxSource is the longest template field, in bytes.
	MaxSource = 64 << 10
	// MaxOutput is the most one field may render to, in bytes, and the
	// largest value any template function returns.
	MaxOutput = 256 << 10
	// MaxSteps bounds range iterations plus template calls in one render.
	MaxSteps = 100_000
	// MaxCalls bounds {{template}} calls in one render, and so the depth
	// of a recursive template.
	MaxCalls = 1000
	// RenderTimeout bounds the time of one render.
	RenderTimeout = 2 * time.Second
)

// ChannelKind is the kind of channel a template is written for.
type ChannelKind string

// Channel kinds.
const (
	// ChannelEmail uses Subject, and Text and/or HTML (a multipart mail).
	ChannelEmail ChannelKind = "email"
	// ChannelWebhook uses Body, which must render to JSON.
	ChannelWebhook ChannelKind = "webhook"
	// ChannelChat uses an optional one-line Subject and Text, from which
	// the chat channel builds the Slack, Mattermost or Teams payload and
	// escapes them, so chat text is written plain, without slack_escape.
	// An optional Body is a complete payload (the built-ins carry a Teams
	// Adaptive Card) for a sender that posts it as is.
	ChannelChat ChannelKind = "chat"
)

// Valid reports whether k is a known channel kind.
func (k ChannelKind) Valid() bool {
	return k == ChannelEmail || k == ChannelWebhook || k == ChannelChat
}

// Template is a notification template as users write and store it. Each
// field is Go template source executed with an [Event] as dot; HTML uses
// html/template, so values are escaped for their context, the others use
// text/template.
type Template struct {
	// Name identifies the template.
	Name string `json:"name"`
	// Channel is the kind of channel it renders for.
	Channel ChannelKind `json:"channel"`
	// Events are the event types the template is written for; validation
	// renders the sample of each. Empty means every type, so sections such
	// as .Run must then be guarded with {{with .Run}}.
	Events []EventType `json:"events,omitempty"`
	// Subject is the mail subject (email) or the message heading (chat);
	// rendered newlines become spaces.
	Subject string `json:"subject,omitempty"`
	// Text is the plain-text mail part (email) or the message (chat).
	Text string `json:"text,omitempty"`
	// HTML is the HTML mail part (email).
	HTML string `json:"html,omitempty"`
	// Body is the JSON request body (webhook) or a complete chat payload
	// such as a Teams Adaptive Card (chat).
	Body string `json:"body,omitempty"`
}

// Rendered is the output of one render. Empty fields were not in the
// template.
type Rendered struct {
	Subject string `json:"subject,omitempty"`
	Text    string `json:"text,omitempty"`
	HTML    string `json:"html,omitempty"`
	// Body is compact, valid JSON.
	Body json.RawMessage `json:"body,omitempty"`
}

// Diagnostic is one problem in a template, located as precisely as Go's
// template packages allow: always the field, usually the line, and for
// execution errors the column.
type Diagnostic struct {
	// Field is subject, text, html, body, channel or events[i].
	Field string `json:"field"`
	// Line and Column are 1-based positions in the field's source (0 when
	// unknown). For a body that is not JSON they point into the rendered
	// output instead, as the message says.
	Line   int `json:"line,omitempty"`
	Column int `json:"column,omitempty"`
	// Message describes the problem.
	Message string `json:"message"`
	// Event is the sample event type whose trial render failed, if any.
	Event EventType `json:"event,omitempty"`
}

func (d Diagnostic) String() string {
	var b strings.Builder
	b.WriteString(d.Field)
	b.WriteString(": ")
	if d.Line > 0 {
		fmt.Fprintf(&b, "line %d", d.Line)
		if d.Column > 0 {
			fmt.Fprintf(&b, ", column %d", d.Column)
		}
		b.WriteString(": ")
	}
	b.WriteString(d.Message)
	if d.Event != "" {
		fmt.Fprintf(&b, " (rendering the %s sample)", d.Event)
	}
	return b.String()
}

// Error carries every problem found in a template. It unwraps to a
// *problem.Error of kind invalid, so the gateway answers 400 with each
// diagnostic as a detail; a preview handler can errors.As it to show lines.
type Error struct {
	Diagnostics []Diagnostic
}

func (e *Error) Error() string { return e.problem().Error() }

// Unwrap exposes the problem for the gateway.
func (e *Error) Unwrap() error { return e.problem() }

func (e *Error) problem() error {
	var l problem.List
	for _, d := range e.Diagnostics {
		msg := strings.TrimPrefix(d.String(), d.Field+": ")
		l = append(l, &problem.Error{Kind: problem.KindInvalid, Code: "template_invalid", Field: d.Field, Message: msg})
	}
	return l.Err()
}

// Compiled is a parsed, checked template, safe for concurrent renders.
type Compiled struct {
	tmpl                Template
	subject, text, body *texttemplate.Template
	// html is never executed itself: html/template forbids Clone after
	// execution, and each render clones it to bind its own budget.
	html *htmltemplate.Template
}

// Template returns the source the template was compiled from.
func (c *Compiled) Template() Template { return c.tmpl }

// Compile parses every field of t and checks that the fields suit the
// channel. It reports every problem at once in an *Error.
func Compile(t Template) (*Compiled, error) {
	var diags []Diagnostic
	add := func(field, format string, args ...any) {
		diags = append(diags, Diagnostic{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	if !t.Channel.Valid() {
		add("channel", "must be email, webhook or chat, not %q", t.Channel)
	}
	for i, et := range t.Events {
		if !et.Valid() {
			add(fmt.Sprintf("events[%d]", i), "unknown event type %q", et)
		}
	}
	used := map[string]bool{}
	switch t.Channel {
	case ChannelEmail:
		used = map[string]bool{"subject": true, "text": true, "html": true}
		if strings.TrimSpace(t.Subject) == "" {
			add("subject", "an email template needs a subject")
		}
		if strings.TrimSpace(t.Text) == "" && strings.TrimSpace(t.HTML) == "" {
			add("text", "an email template needs a text or an HTML part")
		}
	case ChannelWebhook:
		used = map[string]bool{"body": true}
		if strings.TrimSpace(t.Body) == "" {
			add("body", "a webhook template needs a JSON body")
		}
	case ChannelChat:
		used = map[string]bool{"subject": true, "text": true, "body": true}
		if strings.TrimSpace(t.Text) == "" {
			add("text", "a chat template needs a message text")
		}
	}
	c := &Compiled{tmpl: t}
	for _, f := range []struct {
		name, src string
		dst       **texttemplate.Template
	}{{"subject", t.Subject, &c.subject}, {"text", t.Text, &c.text}, {"html", t.HTML, nil}, {"body", t.Body, &c.body}} {
		if f.src == "" {
			continue
		}
		if t.Channel.Valid() && !used[f.name] {
			add(f.name, "not used by %s templates", t.Channel)
			continue
		}
		if len(f.src) > MaxSource {
			add(f.name, "longer than %d bytes", MaxSource)
			continue
		}
		var err error
		if f.dst != nil {
			*f.dst, err = parseText(f.name, f.src)
		} else {
			c.html, err = parseHTML(f.src)
		}
		if err != nil {
			diags = append(diags, diagnose(f.name, err))
		}
	}
	if c.html != nil && len(diags) == 0 {
		// html/template escapes on first execution; run it once on a
		// clone so that a context error (an action inside a <script> it
		// cannot make safe, an unclosed tag in a branch) is a save-time
		// error. Errors from the empty event are expected and ignored.
		var herr *htmltemplate.Error
		if _, err := c.execHTML(&budget{ctx: context.Background()}, Event{}); errors.As(err, &herr) {
			diags = append(diags, diagnose("html", err))
		}
	}
	if len(diags) > 0 {
		return nil, &Error{Diagnostics: diags}
	}
	return c, nil
}

func parseText(name, src string) (*texttemplate.Template, error) {
	// missingkey=zero: a tag a target does not have renders empty rather
	// than "<no value>".
	t, err := texttemplate.New(name).Option("missingkey=zero").Funcs(funcs(noStep)).Parse(src)
	if err != nil {
		return nil, err
	}
	for _, x := range t.Templates() {
		injectGuards(x.Tree)
	}
	return t, nil
}

func parseHTML(src string) (*htmltemplate.Template, error) {
	t, err := htmltemplate.New("html").Option("missingkey=zero").Funcs(funcs(noStep)).Parse(src)
	if err != nil {
		return nil, err
	}
	for _, x := range t.Templates() {
		injectGuards(x.Tree)
	}
	return t, nil
}

// Render executes every field of c with e, bounded as the package
// documentation describes. A canceled ctx returns its error; anything the
// template and event are to blame for returns an *Error.
func (c *Compiled) Render(ctx context.Context, e Event) (Rendered, error) {
	rctx, cancel := context.WithTimeout(ctx, RenderTimeout)
	defer cancel()
	e = Bound(e)
	b := &budget{ctx: rctx}
	var out Rendered
	var diags []Diagnostic
	for _, f := range []struct {
		name string
		t    *texttemplate.Template
		dst  *string
	}{{"subject", c.subject, &out.Subject}, {"text", c.text, &out.Text}} {
		if f.t == nil {
			continue
		}
		s, err := execText(f.t, b, e)
		if err != nil {
			if ctx.Err() != nil {
				return Rendered{}, fmt.Errorf("render %s: %w", f.name, ctx.Err())
			}
			diags = append(diags, diagnose(f.name, err))
			continue
		}
		*f.dst = s
	}
	out.Subject = oneLine(out.Subject)
	if c.html != nil {
		s, err := c.execHTML(b, e)
		if err != nil {
			if ctx.Err() != nil {
				return Rendered{}, fmt.Errorf("render html: %w", ctx.Err())
			}
			diags = append(diags, diagnose("html", err))
		}
		out.HTML = s
	}
	if c.body != nil {
		s, err := execText(c.body, b, e)
		switch {
		case err != nil && ctx.Err() != nil:
			return Rendered{}, fmt.Errorf("render body: %w", ctx.Err())
		case err != nil:
			diags = append(diags, diagnose("body", err))
		default:
			body, d := compactJSON(s)
			if d != nil {
				diags = append(diags, *d)
			}
			out.Body = body
		}
	}
	if len(diags) > 0 {
		return Rendered{}, &Error{Diagnostics: diags}
	}
	return out, nil
}

// Validate is the check on save: Compile, then a trial render of the sample
// of each event type the template is for (every type when t.Events is
// empty). A problem that every sample shares is reported once.
func Validate(ctx context.Context, t Template) (*Compiled, error) {
	c, err := Compile(t)
	if err != nil {
		return nil, err
	}
	types := t.Events
	if len(types) == 0 {
		types = EventTypes()
	}
	var diags []Diagnostic
	// Samples differ in their data, so one mistake gives different
	// messages; its place in the source is what matters.
	type place struct {
		field        string
		line, column int
	}
	seen := map[place]bool{}
	for _, et := range types {
		_, err := c.Render(ctx, Sample(et))
		var terr *Error
		switch {
		case errors.As(err, &terr):
			for _, d := range terr.Diagnostics {
				p := place{d.Field, d.Line, d.Column}
				if d.Field == "body" && strings.Contains(d.Message, "not JSON") {
					p = place{field: "body"} // positions in outputs differ
				}
				if seen[p] {
					continue
				}
				seen[p] = true
				d.Event = et
				diags = append(diags, d)
			}
		case err != nil:
			return nil, err
		}
		if exhausted(diags) {
			// Running out of budget or time is the template's doing, not
			// the sample's; the other samples would only repeat it, each
			// taking up to RenderTimeout.
			break
		}
	}
	if len(diags) > 0 {
		return nil, &Error{Diagnostics: diags}
	}
	return c, nil
}

func exhausted(diags []Diagnostic) bool {
	for _, d := range diags {
		switch d.Message {
		case errBudget.Error(), errCalls.Error(), errDeadline.Error():
			return true
		}
	}
	return false
}

func execText(t *texttemplate.Template, b *budget, e Event) (string, error) {
	x, err := t.Clone()
	if err != nil {
		return "", fmt.Errorf("clone: %w", err)
	}
	x.Funcs(b.funcs())
	var buf capBuffer
	if err := x.Execute(&buf, e); err != nil {
		return "", err
	}
	return buf.String(), nil
}

func (c *Compiled) execHTML(b *budget, e Event) (string, error) {
	x, err := c.html.Clone()
	if err != nil {
		return "", fmt.Errorf("clone: %w", err)
	}
	x.Funcs(b.funcs())
	var buf capBuffer
	if err := x.Execute(&buf, e); err != nil {
		return "", err
	}
	return buf.String(), nil
}

// oneLine keeps a subject on one header line whatever the template and the
// event hold; a newline in a mail header would start a new header.
func oneLine(s string) string {
	s = strings.NewReplacer("\r\n", " ", "\r", " ", "\n", " ").Replace(s)
	return strings.TrimSpace(s)
}

// compactJSON checks that a rendered body is one JSON value and compacts
// it. A syntax error is located in the rendered output, since only that is
// parsed.
func compactJSON(s string) (json.RawMessage, *Diagnostic) {
	if strings.TrimSpace(s) == "" {
		return nil, &Diagnostic{Field: "body", Message: "rendered to nothing; the body must be JSON"}
	}
	// Unmarshal, unlike Compact, reports the offset of a syntax error.
	var raw json.RawMessage
	err := json.Unmarshal([]byte(s), &raw)
	if err == nil {
		var buf bytes.Buffer
		if err := json.Compact(&buf, raw); err == nil {
			return json.RawMessage(buf.Bytes()), nil
		}
		return raw, nil
	}
	var se *json.SyntaxError
	if !errors.As(err, &se) {
		return nil, &Diagnostic{Field: "body", Message: "rendered output is not JSON: " + err.Error()}
	}
	off := min(int(se.Offset), len(s))
	if off > 0 && se.Offset <= int64(len(s)) {
		off-- // Offset counts the byte that broke the parse.
	}
	before := s[:off]
	line := 1 + strings.Count(before, "\n")
	col := off - (strings.LastIndex(before, "\n") + 1) + 1
	text := s[strings.LastIndex(before, "\n")+1:]
	if i := strings.IndexByte(text, '\n'); i >= 0 {
		text = text[:i]
	}
	return nil, &Diagnostic{Field: "body", Line: line, Column: col,
		Message: fmt.Sprintf("rendered output is not JSON: %s; line %d of the output is %q", se.Error(), line, trunc(80, text))}
}

// Go's template errors read "template: NAME:LINE[:COL]: MESSAGE"
// (html/template: "html/template:NAME:LINE[:COL]: MESSAGE").
var errLoc = regexp.MustCompile(`(?s)^(?:html/)?template: ?[^:]*:(\d+)(?::(\d+))?: (.*)$`)

var execPrefix = regexp.MustCompile(`^executing "([^"]*)" `)

// diagnose turns an error from parsing or executing field into a
// Diagnostic with the line and column Go reported.
func diagnose(field string, err error) Diagnostic {
	d := Diagnostic{Field: field}
	switch {
	case errors.Is(err, errTooLarge):
		d.Message = fmt.Sprintf("output exceeds %d bytes", MaxOutput)
	case errors.Is(err, errBudget):
		d.Message = errBudget.Error()
	case errors.Is(err, errCalls):
		d.Message = errCalls.Error()
	case errors.Is(err, errDeadline):
		d.Message = errDeadline.Error()
	}
	var ee texttemplate.ExecError
	msg := err.Error()
	if errors.As(err, &ee) {
		msg = ee.Err.Error()
	}
	m := errLoc.FindStringSubmatch(msg)
	if m == nil {
		msg = strings.TrimPrefix(strings.TrimPrefix(msg, "html/template:"), "template: ")
		if d.Message == "" {
			d.Message = msg
		}
		return d
	}
	d.Line, _ = strconv.Atoi(m[1])
	if m[2] != "" {
		col, _ := strconv.Atoi(m[2])
		// text/template counts columns from 0.
		d.Column = col + 1
	}
	if d.Message != "" {
		return d
	}
	msg = m[3]
	if x := execPrefix.FindStringSubmatch(msg); x != nil {
		msg = msg[len(x[0]):]
		if x[1] != field && x[1] != "html" {
			msg = fmt.Sprintf("in template %q %s", x[1], msg)
		}
	}
	d.Message = msg
	return d
}

// Preview compiles t and renders it with the sample event of type et, as
// the preview endpoint shows it; errors carry lines as in Compile.
func Preview(ctx context.Context, t Template, et EventType) (Rendered, error) {
	c, err := Compile(t)
	if err != nil {
		return Rendered{}, err
	}
	return c.Render(ctx, Sample(et))
}
