package tmpl

import (
	"fmt"
	"strings"
)

// builtinSpec describes what the built-in templates of one event type say.
// Every piece is a template pipeline, so that each channel can escape it its
// own way (plain for text, contextually for HTML, slack_escape for chat,
// json for bodies).
type builtinSpec struct {
	title string // one line
	link  string // the primary link; may render empty
	facts []fact
	// items, when set, is a list shown after the facts, one line per
	// element, with item evaluated on each element.
	items, item string
}

type fact struct{ label, value string }

var runFacts = []fact{
	{"Job", `printf "%s v%d" .Run.Job .Run.Version`},
	{"Trigger", `.Run.Trigger`},
}

func builtinSpecs(t EventType) builtinSpec {
	switch t {
	case EventRunStarted:
		return builtinSpec{title: `printf "Run %s of %s started" .Run.ID .Run.Job`, link: `.Links.Run`,
			facts: append(runFacts[:2:2], fact{"Targets", `.Run.Summary.Total`}, fact{"Started", `time .Run.StartedAt`})}
	case EventRunSucceeded:
		return builtinSpec{title: `printf "Run %s of %s succeeded" .Run.ID .Run.Job`, link: `.Links.Run`,
			facts: append(runFacts[:2:2],
				fact{"Targets", `printf "%d of %d succeeded" .Run.Summary.Succeeded .Run.Summary.Total`},
				fact{"Duration", `duration .Run.Duration`})}
	case EventRunFailed:
		return builtinSpec{title: `printf "Run %s of %s failed" .Run.ID .Run.Job`, link: `.Links.Run`,
			facts: append(runFacts[:2:2],
				fact{"Reason", `default "-" .Run.Reason`},
				fact{"Targets", `printf "%d failed, %d lost, %d succeeded, %d skipped of %d" .Run.Summary.Failed .Run.Summary.Lost .Run.Summary.Succeeded .Run.Summary.Skipped .Run.Summary.Total`},
				fact{"Failed targets", `default "-" (join ", " .Run.FailedTargets)`},
				fact{"Duration", `duration .Run.Duration`})}
	case EventRunCanceled:
		return builtinSpec{title: `printf "Run %s of %s was canceled" .Run.ID .Run.Job`, link: `.Links.Run`,
			facts: append(runFacts[:2:2],
				fact{"Reason", `default "-" .Run.Reason`},
				fact{"Targets", `printf "%d succeeded, %d canceled of %d" .Run.Summary.Succeeded .Run.Summary.Canceled .Run.Summary.Total`},
				fact{"Duration", `duration .Run.Duration`})}
	case EventApprovalRequested:
		return builtinSpec{title: `printf "Approval needed: step %s of run %s (%s)" .Step.ID .Run.ID .Run.Job`, link: `.Links.Run`,
			facts: append(runFacts[:2:2], fact{"Step", `.Step.ID`}, fact{"Requested", `time .Time`})}
	case EventStepFailed:
		return builtinSpec{title: `printf "Step %s failed on %s" .Step.ID .Step.Target`, link: `.Links.Run`,
			facts: []fact{
				{"Run", `printf "%s (%s v%d)" .Run.ID .Run.Job .Run.Version`},
				{"Target", `.Step.Target`},
				{"Status", `.Step.Status`},
				{"Exit code", `.Step.ExitCode`},
				{"Error", `default "-" .Step.Error`},
			}}
	case EventAgentDown, EventAgentUp:
		title := `printf "Agent %s is down" .Agent.Name`
		if t == EventAgentUp {
			title = `printf "Agent %s is up" .Agent.Name`
		}
		return builtinSpec{title: title, link: `.Links.Agent`,
			facts: []fact{{"Agent", `printf "%s (%s)" .Agent.Name .Agent.ID`}, {"Status", `.Agent.Status`}, {"Version", `.Agent.Version`}}}
	case EventDiscoveryFound:
		return builtinSpec{title: `printf "Discovery %s found %d hosts" .Discovery.Profile .Discovery.Found`, link: `.Links.UI`,
			facts: []fact{{"New", `.Discovery.Appeared`}, {"Changed", `.Discovery.Changed`}, {"Gone", `.Discovery.Disappeared`}}}
	case EventCredentialUsed:
		return builtinSpec{title: `printf "Credential %s was used by %s" .Credential.Name .Credential.Actor`, link: `.Links.UI`,
			facts: []fact{{"Credential", `.Credential.Name`}, {"Kind", `.Credential.Kind`}, {"Used by", `.Credential.Actor`}}}
	case EventCredentialRotated:
		return builtinSpec{title: `printf "Credential %s was rotated by %s" .Credential.Name .Credential.Actor`, link: `.Links.UI`,
			facts: []fact{{"Credential", `.Credential.Name`}, {"Kind", `.Credential.Kind`}, {"Rotated by", `.Credential.Actor`}}}
	case EventLoginFailures:
		return builtinSpec{title: `printf "%d failed logins for %s" .Login.Failures .Login.Username`, link: `.Links.UI`,
			facts: []fact{{"User", `.Login.Username`}, {"Failures", `.Login.Failures`}, {"Within", `duration .Login.Window`},
				{"From", `default "-" (join ", " .Login.SourceIPs)`}}}
	case EventLeaderChanged:
		return builtinSpec{title: `printf "Cluster leader changed to %s" .Leader.To`, link: `.Links.UI`,
			facts: []fact{{"Previous leader", `default "(none)" .Leader.From`}, {"New leader", `.Leader.To`}}}
	case EventDigest:
		return builtinSpec{title: `printf "%d notifications folded into a digest" .Digest.Count`, link: `.Links.UI`,
			facts: []fact{{"Notifications", `.Digest.Count`}, {"Window", `duration .Digest.Window`}},
			items: `.Digest.Events`, item: `printf "%s %s" (time "DateTime" .Time) .Summary`}
	}
	// An event type added after these templates still gets a readable
	// message from the common fields.
	return builtinSpec{title: `printf "%s" .Type`, link: `.Links.UI`}
}

// Builtin returns the built-in template for an event type and channel kind.
// Email templates have a subject, a text and an HTML part; webhook
// templates send the whole data model as the JSON body; chat templates have
// a one-line subject and a plain text (which channel.ChatPayload turns into
// the Slack, Mattermost or Teams payload, escaping it for each), and a
// Microsoft Teams Adaptive Card body for a sender that posts a card as is.
// An unknown channel kind yields a template that does not compile.
func Builtin(t EventType, kind ChannelKind) Template {
	s := builtinSpecs(t)
	tp := Template{Name: fmt.Sprintf("builtin/%s/%s", t, kind), Channel: kind}
	if t.Valid() {
		tp.Events = []EventType{t}
	}
	switch kind {
	case ChannelEmail:
		tp.Subject = `[{{.Cluster}}] {{` + s.title + `}}`
		tp.Text = builtinText(s)
		tp.HTML = builtinHTML(s)
	case ChannelWebhook:
		// The data model is the contract of a webhook receiver; the
		// envelope names the format so that it can evolve.
		tp.Body = `{"format": "opsconductor.event.v1", "event": {{json .}}}`
	case ChannelChat:
		tp.Subject, tp.Text = builtinChat(s)
		tp.Body = builtinTeams(s)
	}
	return tp
}

func builtinText(s builtinSpec) string {
	var b strings.Builder
	b.WriteString("{{" + s.title + "}}\n\n{{.Summary}}\n\n")
	for _, f := range s.facts {
		fmt.Fprintf(&b, "%s: {{%s}}\n", f.label, f.value)
	}
	if s.items != "" {
		fmt.Fprintf(&b, "{{range %s}}\n- {{%s}}{{end}}\n", s.items, s.item)
	}
	b.WriteString("\nCluster: {{.Cluster}}\nTime: {{time .Time}}\n")
	fmt.Fprintf(&b, "{{with %s}}\nOpen in OpsConductor: {{.}}\n{{end}}", s.link)
	return b.String()
}

const severityColor = `{{if eq .Severity "critical"}}#b00020{{else if eq .Severity "warning"}}#b36b00{{else}}#1f6feb{{end}}`

func builtinHTML(s builtinSpec) string {
	var b strings.Builder
	b.WriteString(`<!DOCTYPE html>
<html><body style="font-family: Helvetica, Arial, sans-serif; color: #222">
<h2 style="color: ` + severityColor + `">{{` + s.title + `}}</h2>
<p>{{.Summary}}</p>
<table cellpadding="4" cellspacing="0">
`)
	for _, f := range s.facts {
		fmt.Fprintf(&b, "<tr><th align=\"left\">%s</th><td>{{%s}}</td></tr>\n", f.label, f.value)
	}
	b.WriteString("</table>\n")
	if s.items != "" {
		fmt.Fprintf(&b, "<ul>{{range %s}}\n<li>{{%s}}</li>{{end}}\n</ul>\n", s.items, s.item)
	}
	fmt.Fprintf(&b, "{{with %s}}<p><a href=\"{{.}}\">Open in OpsConductor</a></p>{{end}}\n", s.link)
	b.WriteString(`<p style="color: #888; font-size: 12px">{{.Cluster}} · {{time .Time}} · {{.ID}}</p>
</body></html>
`)
	return b.String()
}

// builtinChat renders plain text: channel.ChatPayload escapes Subject and
// Text for each flavor itself (and breaks @channel mentions), so markup
// here would arrive escaped. Chat services link bare URLs on their own.
func builtinChat(s builtinSpec) (subject, text string) {
	subject = `{{if eq .Severity "critical"}}🔴 {{else if eq .Severity "warning"}}⚠️ {{end}}{{` + s.title + `}}`
	var b strings.Builder
	b.WriteString("{{.Summary}}\n")
	for _, f := range s.facts {
		fmt.Fprintf(&b, "%s: {{%s}}\n", f.label, f.value)
	}
	if s.items != "" {
		fmt.Fprintf(&b, "{{range %s}}• {{%s}}\n{{end}}", s.items, s.item)
	}
	fmt.Fprintf(&b, "{{with %s}}Open in OpsConductor: {{.}}{{end}}", s.link)
	return subject, b.String()
}

// builtinTeams is an incoming-webhook message carrying an Adaptive Card,
// the format Teams workflows and connectors accept.
func builtinTeams(s builtinSpec) string {
	var b strings.Builder
	b.WriteString(`{
  "type": "message",
  "attachments": [{
    "contentType": "application/vnd.microsoft.card.adaptive",
    "content": {
      "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
      "type": "AdaptiveCard",
      "version": "1.4",
      "body": [
        {"type": "TextBlock", "size": "Medium", "weight": "Bolder", "wrap": true,
         "color": "{{if eq .Severity "critical"}}attention{{else if eq .Severity "warning"}}warning{{else}}default{{end}}",
         "text": {{json (` + s.title + `)}}},
        {"type": "TextBlock", "wrap": true, "text": {{json .Summary}}},
        {"type": "FactSet", "facts": [`)
	for i, f := range s.facts {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, "\n          {\"title\": %q, \"value\": {{json (print (%s))}}}", f.label, f.value)
	}
	b.WriteString("\n        ]}")
	if s.items != "" {
		fmt.Fprintf(&b, "{{range %s}},\n        {\"type\": \"TextBlock\", \"wrap\": true, \"spacing\": \"None\", \"text\": {{json (print \"- \" (%s))}}}{{end}}", s.items, s.item)
	}
	b.WriteString("\n      ]")
	fmt.Fprintf(&b, "{{with %s}},\n      \"actions\": [{\"type\": \"Action.OpenUrl\", \"title\": \"Open in OpsConductor\", \"url\": {{json .}}}]{{end}}", s.link)
	b.WriteString("\n    }\n  }]\n}\n")
	return b.String()
}
