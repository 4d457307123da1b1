package channel

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Limits of the chat services, so that a long run log in Message.Text is
// cut by us (with a marker) instead of being refused with a 400.
const (
	slackHeaderMax    = 150   // header block plain_text
	slackSectionMax   = 3000  // section block text
	slackFallbackMax  = 4000  // top-level text, used for notifications
	mattermostTextMax = 16000 // a little under the 16383 post limit
	teamsTextBlockMax = 20000 // Teams refuses cards over ~28 KB in total
	truncationMarker  = "…"
)

// ChatPayload builds the incoming-webhook body for flavor from m.Subject and
// m.Text. The payloads are:
//   - Slack: top-level "text" (the notification fallback) plus Block Kit
//     "blocks": a header with the subject and a mrkdwn section with the text;
//   - Mattermost: "text" in Markdown, the subject as a heading. Mattermost
//     reads Slack's "text" but not Block Kit, so a Slack body would lose the
//     layout there;
//   - Teams: a message with one Adaptive Card attachment, the form Teams
//     Workflows ("Post to a channel when a webhook request is received")
//     accept; the retired Office 365 connector MessageCard is not sent.
func ChatPayload(flavor ChatFlavor, m Message) ([]byte, error) {
	switch flavor {
	case FlavorSlack:
		return json.Marshal(slackPayload(m))
	case FlavorMattermost:
		return json.Marshal(mattermostPayload(m))
	case FlavorTeams:
		return json.Marshal(teamsPayload(m))
	}
	return nil, fmt.Errorf("chat flavor %q: unknown", flavor)
}

type slackText struct {
	Type  string `json:"type"`
	Text  string `json:"text"`
	Emoji bool   `json:"emoji,omitempty"`
}

type slackBlock struct {
	Type string     `json:"type"`
	Text *slackText `json:"text,omitempty"`
}

type slackMessage struct {
	Text   string       `json:"text"`
	Blocks []slackBlock `json:"blocks,omitempty"`
}

func slackPayload(m Message) slackMessage {
	var msg slackMessage
	fallback := m.Subject
	if m.Text != "" {
		if fallback != "" {
			fallback += "\n"
		}
		fallback += m.Text
	}
	msg.Text = truncate(slackEscape(fallback), slackFallbackMax)
	if m.Subject != "" {
		// Header blocks are plain text: no escaping, one line.
		subject := strings.Join(strings.Fields(m.Subject), " ")
		msg.Blocks = append(msg.Blocks, slackBlock{Type: "header",
			Text: &slackText{Type: "plain_text", Text: truncate(subject, slackHeaderMax), Emoji: true}})
	}
	if m.Text != "" {
		msg.Blocks = append(msg.Blocks, slackBlock{Type: "section",
			Text: &slackText{Type: "mrkdwn", Text: truncate(slackEscape(m.Text), slackSectionMax)}})
	}
	return msg
}

// slackEscape escapes the three characters Slack's mrkdwn gives meaning to,
// so that text from a run's output cannot turn into <!channel> mentions or
// links.
var slackEscape = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace

type mattermostMessage struct {
	Text string `json:"text"`
}

func mattermostPayload(m Message) mattermostMessage {
	var b strings.Builder
	if m.Subject != "" {
		b.WriteString("#### ")
		b.WriteString(strings.Join(strings.Fields(m.Subject), " "))
		if m.Text != "" {
			b.WriteString("\n\n")
		}
	}
	b.WriteString(m.Text)
	return mattermostMessage{Text: truncate(mattermostEscape(b.String()), mattermostTextMax)}
}

// mattermostEscape keeps text from a run's output from paging a whole
// channel: Mattermost turns Slack's <!channel> into a mention and honours
// @channel, @all and @here, so the brackets are escaped and a zero-width
// space breaks the mention words.
var mattermostEscape = strings.NewReplacer(
	"&", "&amp;", "<", "&lt;", ">", "&gt;",
	"@channel", "@\u200bchannel", "@all", "@\u200ball", "@here", "@\u200bhere",
).Replace

type teamsTextBlock struct {
	Type   string `json:"type"`
	Text   string `json:"text"`
	Weight string `json:"weight,omitempty"`
	Size   string `json:"size,omitempty"`
	Wrap   bool   `json:"wrap"`
}

type teamsCard struct {
	Schema  string           `json:"$schema"`
	Type    string           `json:"type"`
	Version string           `json:"version"`
	Body    []teamsTextBlock `json:"body"`
}

type teamsAttachment struct {
	ContentType string    `json:"contentType"`
	ContentURL  *string   `json:"contentUrl"`
	Content     teamsCard `json:"content"`
}

type teamsMessage struct {
	Type        string            `json:"type"`
	Attachments []teamsAttachment `json:"attachments"`
}

func teamsPayload(m Message) teamsMessage {
	card := teamsCard{
		Schema:  "http://adaptivecards.io/schemas/adaptive-card.json",
		Type:    "AdaptiveCard",
		Version: "1.4",
		Body:    []teamsTextBlock{},
	}
	if m.Subject != "" {
		card.Body = append(card.Body, teamsTextBlock{Type: "TextBlock", Text: m.Subject,
			Weight: "Bolder", Size: "Medium", Wrap: true})
	}
	if m.Text != "" {
		card.Body = append(card.Body, teamsTextBlock{Type: "TextBlock", Text: truncate(m.Text, teamsTextBlockMax), Wrap: true})
	}
	return teamsMessage{Type: "message", Attachments: []teamsAttachment{{
		ContentType: "application/vnd.microsoft.card.adaptive",
		Content:     card,
	}}}
}

// truncate cuts s to at most max runes, ending with a marker when it cut,
// and never splits a UTF-8 sequence.
func truncate(s string, max int) string {
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	keep := max - utf8.RuneCountInString(truncationMarker)
	i := 0
	for pos := range s {
		if i == keep {
			return s[:pos] + truncationMarker
		}
		i++
	}
	return s
}
