package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/opsconductor/opsconductor/controller/communication/tmpl"
)

// mailbox is a real SMTP server on loopback that keeps what it receives.
type mailbox struct {
	got chan []byte
}

func (m *mailbox) NewSession(*smtp.Conn) (smtp.Session, error) { return &mailSession{m: m}, nil }

type mailSession struct{ m *mailbox }

func (s *mailSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *mailSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *mailSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.m.got <- b
	return nil
}
func (s *mailSession) Reset()        {}
func (s *mailSession) Logout() error { return nil }

func startMailbox(t *testing.T) (*mailbox, int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := &mailbox{got: make(chan []byte, 4)}
	srv := smtp.NewServer(m)
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		// Close finds no listener when Serve has not registered it yet;
		// closing it here ends Serve either way.
		_ = srv.Close()
		_ = ln.Close()
		<-done
	})
	return m, ln.Addr().(*net.TCPAddr).Port
}

// TestEmailRendersTemplateIntoMail: a stored template renders a run
// failure into a mail with subject, text and HTML parts, received by a
// real SMTP server.
func TestEmailRendersTemplateIntoMail(t *testing.T) {
	f := newFixture(t)
	s := f.service(t, func() bool { return true })
	box, port := startMailbox(t)
	ctx := context.Background()
	cfg := fmt.Sprintf(`{"kind":"email","email":{"host":"127.0.0.1","port":%d,"tls":"none","from":"ops@example.com","to":["oncall@example.com"],"cc":["lead@example.com"]}}`, port)
	if _, err := s.PutChannel(ctx, "alice", ChannelRequest{Name: "oncall", Config: json.RawMessage(cfg)}, true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutTemplate(ctx, TemplateRequest{Template: tmpl.Template{Name: "short-mail", Channel: tmpl.ChannelEmail,
		Events:  []tmpl.EventType{tmpl.EventRunFailed},
		Subject: `[{{.Cluster}}] {{.Run.Job}} failed`,
		Text:    "Run {{.Run.ID}} failed: {{.Run.Reason}}\n{{.Links.Run}}",
		HTML:    `<p>Run <a href="{{.Links.Run}}">{{.Run.ID}}</a> failed: {{.Run.Reason}}</p>`}}, true); err != nil {
		t.Fatal(err)
	}
	mustRule(t, s, Rule{Name: "mail-failures", Events: []tmpl.EventType{tmpl.EventRunFailed}, Channels: []string{"oncall"}, Template: "short-mail"})
	e := runFailed("backup")
	e.Cluster = "prod"
	e.Run.Reason = "disk <full>"
	if err := s.Publish(ctx, e, Match{Job: "backup"}); err != nil {
		t.Fatal(err)
	}
	run(t, s)
	var raw []byte
	select {
	case raw = <-box.got:
	case <-time.After(15 * time.Second):
		t.Fatal("no mail arrived")
	}
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if got := msg.Header.Get("Subject"); got != "[prod] backup failed" {
		t.Errorf("subject = %q", got)
	}
	if !strings.Contains(msg.Header.Get("Cc"), "lead@example.com") {
		t.Errorf("cc = %q", msg.Header.Get("Cc"))
	}
	parts := mimeParts(t, msg)
	if !strings.Contains(parts["text/plain"], "failed: disk <full>") || !strings.Contains(parts["text/plain"], "https://ops.example/runs/") {
		t.Errorf("text part = %q", parts["text/plain"])
	}
	if !strings.Contains(parts["text/html"], "disk &lt;full&gt;") || !strings.Contains(parts["text/html"], `href="https://ops.example/runs/`) {
		t.Errorf("html part = %q", parts["text/html"])
	}
	d := waitState(t, s, onlyDelivery(t, s).ID, StateDelivered)
	if d.LastCode != 250 && d.History[0].Code != 250 {
		t.Errorf("delivery = %+v, want the SMTP 250", d)
	}
}

// mimeParts walks a (possibly nested) multipart message into its leaf
// parts by content type, transfer encodings decoded.
func mimeParts(t *testing.T, msg *mail.Message) map[string]string {
	t.Helper()
	out := map[string]string{}
	var walk func(ct string, body io.Reader)
	walk = func(ct string, body io.Reader) {
		mt, params, err := mime.ParseMediaType(ct)
		if err != nil {
			t.Fatalf("content type %q: %v", ct, err)
		}
		if !strings.HasPrefix(mt, "multipart/") {
			b, _ := io.ReadAll(body)
			out[mt] = string(b)
			return
		}
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			walk(p.Header.Get("Content-Type"), p)
		}
	}
	walk(msg.Header.Get("Content-Type"), msg.Body)
	return out
}
