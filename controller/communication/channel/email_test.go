package channel

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strings"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// parsedMail is a received message taken apart the way a mail client would.
type parsedMail struct {
	Header mail.Header
	Parts  map[string]string // media type → decoded body
}

func parseMail(t *testing.T, data []byte) parsedMail {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("received mail does not parse: %v\n%s", err, data)
	}
	p := parsedMail{Header: msg.Header, Parts: map[string]string{}}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatalf("Content-Type: %v", err)
	}
	if !strings.HasPrefix(mt, "multipart/") {
		p.Parts[mt] = decodeBody(t, msg.Header.Get("Content-Transfer-Encoding"), msg.Body)
		return p
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		part, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("multipart: %v", err)
		}
		pt, _, _ := mime.ParseMediaType(part.Header.Get("Content-Type"))
		p.Parts[pt] = decodeBody(t, part.Header.Get("Content-Transfer-Encoding"), part)
	}
	return p
}

func decodeBody(t *testing.T, cte string, r io.Reader) string {
	t.Helper()
	switch strings.ToLower(cte) {
	case "quoted-printable":
		r = quotedprintable.NewReader(r)
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, r)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("decode %s body: %v", cte, err)
	}
	return strings.ReplaceAll(string(b), "\r\n", "\n")
}

func emailConfig(port int, mode TLSMode, user string) Config {
	return Config{Kind: KindEmail, Email: &EmailConfig{
		Host: "127.0.0.1", Port: port, TLS: mode, Username: user,
		From: "OpsConductor <noreply@ops.example.com>",
		To:   []string{"oncall@example.com", "Second Person <second@example.com>"},
		Cc:   []string{"audit@example.com"},
	}}
}

var testMail = Message{
	Subject:    "Run #42 failed — nightly-backup",
	Text:       "Step 'dump' failed on db-1.\nExit code 2.",
	HTML:       "<p>Step <b>dump</b> failed on <code>db-1</code>.</p>",
	DeliveryID: "dlv-01HZX3",
	Event:      "run.failed",
}

func TestEmailIsDeliveredToARealSMTPServer(t *testing.T) {
	ca := newTestCert(t)
	cases := []struct {
		name     string
		server   smtpOptions
		mode     TLSMode
		user     string
		wantTLS  bool
		wantAuth string
	}{
		{name: "STARTTLS with AUTH PLAIN", server: smtpOptions{mode: TLSStartTLS, tls: ca.serverTLS, user: "mailer", pass: "s3cret"},
			mode: TLSStartTLS, user: "mailer", wantTLS: true, wantAuth: sasl.Plain},
		{name: "STARTTLS with AUTH LOGIN when the server offers only LOGIN",
			server: smtpOptions{mode: TLSStartTLS, tls: ca.serverTLS, user: "mailer", pass: "s3cret", mechs: []string{sasl.Login}},
			mode:   TLSStartTLS, user: "mailer", wantTLS: true, wantAuth: sasl.Login},
		{name: "implicit TLS with AUTH", server: smtpOptions{mode: TLSImplicit, tls: ca.serverTLS, user: "mailer", pass: "s3cret"},
			mode: TLSImplicit, user: "mailer", wantTLS: true, wantAuth: sasl.Plain},
		{name: "clear text to a loopback relay without AUTH", server: smtpOptions{mode: TLSNone},
			mode: TLSNone},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := startSMTP(t, tc.server)
			s := &Sender{SMTPTLS: clientTLS(ca)}
			r := s.Send(context.Background(), emailConfig(srv.port, tc.mode, tc.user), "s3cret", testMail)
			if r.Err != nil || r.Code != 250 {
				t.Fatalf("Send = %+v, want delivered with 250", r)
			}
			mails := srv.received()
			if len(mails) != 1 {
				t.Fatalf("server received %d mails, want 1", len(mails))
			}
			got := mails[0]
			if got.TLS != tc.wantTLS {
				t.Errorf("TLS = %v, want %v", got.TLS, tc.wantTLS)
			}
			if got.AuthUser != tc.user {
				t.Errorf("authenticated as %q, want %q", got.AuthUser, tc.user)
			}
			if mechs := srv.authMechs(); tc.wantAuth != "" && (len(mechs) != 1 || mechs[0] != tc.wantAuth) {
				t.Errorf("AUTH mechanisms used = %v, want [%s]", mechs, tc.wantAuth)
			}
			if got.From != "noreply@ops.example.com" {
				t.Errorf("MAIL FROM = %q", got.From)
			}
			wantRcpt := []string{"oncall@example.com", "second@example.com", "audit@example.com"}
			if strings.Join(got.To, ",") != strings.Join(wantRcpt, ",") {
				t.Errorf("RCPT TO = %v, want %v", got.To, wantRcpt)
			}
			m := parseMail(t, got.Data)
			dec := new(mime.WordDecoder)
			subject, err := dec.DecodeHeader(m.Header.Get("Subject"))
			if err != nil || subject != testMail.Subject {
				t.Errorf("Subject = %q (%v), want %q", subject, err, testMail.Subject)
			}
			if id := m.Header.Get("Message-Id"); id != "<dlv-01HZX3@ops.example.com>" {
				t.Errorf("Message-ID = %q, want <dlv-01HZX3@ops.example.com>", id)
			}
			addrs := func(h string) string {
				l, err := m.Header.AddressList(h)
				if err != nil {
					t.Errorf("%s: %v", h, err)
				}
				var out []string
				for _, a := range l {
					out = append(out, a.Address)
				}
				return strings.Join(out, ",")
			}
			if got := addrs("From"); got != "noreply@ops.example.com" {
				t.Errorf("From = %s", got)
			}
			if got := addrs("To"); got != "oncall@example.com,second@example.com" {
				t.Errorf("To = %s", got)
			}
			if got := addrs("Cc"); got != "audit@example.com" {
				t.Errorf("Cc = %s", got)
			}
			if got := m.Header.Get("X-Opsconductor-Event"); got != "run.failed" {
				t.Errorf("X-OpsConductor-Event = %q", got)
			}
			if got := m.Header.Get("Auto-Submitted"); got != "auto-generated" {
				t.Errorf("Auto-Submitted = %q", got)
			}
			if got := strings.TrimSpace(m.Parts["text/plain"]); got != testMail.Text {
				t.Errorf("text part = %q, want %q", got, testMail.Text)
			}
			if got := strings.TrimSpace(m.Parts["text/html"]); got != testMail.HTML {
				t.Errorf("HTML part = %q, want %q", got, testMail.HTML)
			}
			if bytes.Contains(got.Data, []byte("s3cret")) {
				t.Error("the SMTP password appears in the mail")
			}
		})
	}
}

// clientTLS is the SMTP client configuration that trusts the test CA.
func clientTLS(ca testCA) *tls.Config {
	return &tls.Config{RootCAs: ca.roots, MinVersion: tls.VersionTLS12}
}

func TestEmailFailuresAreClassified(t *testing.T) {
	ca := newTestCert(t)
	closedPort := func(t *testing.T) int {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		_ = ln.Close()
		return port
	}
	cases := []struct {
		name      string
		server    *smtpOptions
		mode      TLSMode
		user      string
		password  string
		trust     bool
		wantCode  int
		wantRetry bool
	}{
		{name: "a 451 for the recipient is retried",
			server: &smtpOptions{mode: TLSStartTLS, tls: ca.serverTLS,
				rcptError: &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}},
			mode: TLSStartTLS, trust: true, wantCode: 451, wantRetry: true},
		{name: "a 550 for the recipient is permanent",
			server: &smtpOptions{mode: TLSStartTLS, tls: ca.serverTLS,
				rcptError: &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}},
			mode: TLSStartTLS, trust: true, wantCode: 550},
		{name: "a wrong password is permanent",
			server: &smtpOptions{mode: TLSStartTLS, tls: ca.serverTLS, user: "mailer", pass: "right"},
			mode:   TLSStartTLS, user: "mailer", password: "wrong", trust: true, wantCode: 535},
		{name: "a server without STARTTLS gets nothing when STARTTLS is required",
			server: &smtpOptions{mode: TLSNone, user: "mailer", pass: "s3cret"},
			mode:   TLSStartTLS, user: "mailer", password: "s3cret", trust: true},
		{name: "an untrusted certificate is permanent",
			server: &smtpOptions{mode: TLSStartTLS, tls: ca.serverTLS},
			mode:   TLSStartTLS},
		{name: "a refused connection is retried", mode: TLSStartTLS, trust: true, wantRetry: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			port := 0
			var srv *smtpServer
			if tc.server != nil {
				srv = startSMTP(t, *tc.server)
				port = srv.port
			} else {
				port = closedPort(t)
			}
			s := &Sender{}
			if tc.trust {
				s.SMTPTLS = clientTLS(ca)
			}
			r := s.Send(context.Background(), emailConfig(port, tc.mode, tc.user), tc.password, testMail)
			if r.Err == nil {
				t.Fatalf("Send succeeded, want a failure")
			}
			if r.Code != tc.wantCode || r.Retryable != tc.wantRetry {
				t.Errorf("Send = code %d retryable %v (%v), want code %d retryable %v",
					r.Code, r.Retryable, r.Err, tc.wantCode, tc.wantRetry)
			}
			if srv != nil && len(srv.received()) != 0 {
				t.Errorf("server received %d mails, want none", len(srv.received()))
			}
			if tc.password != "" && strings.Contains(r.Err.Error(), tc.password) {
				t.Errorf("error %q contains the password", r.Err)
			}
		})
	}
}

func TestEmailMessagesThatCannotBeBuiltAreNotSent(t *testing.T) {
	srv := startSMTP(t, smtpOptions{mode: TLSNone})
	cases := []struct {
		name string
		msg  Message
	}{
		{name: "a delivery ID that could break the Message-ID header", msg: Message{Subject: "s", Text: "t", DeliveryID: "a>\r\nBcc: x@evil.example"}},
		{name: "a message without a body", msg: Message{Subject: "only a subject", DeliveryID: "d-1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := (&Sender{}).Send(context.Background(), emailConfig(srv.port, TLSNone, ""), "", tc.msg)
			if r.Err == nil || r.Retryable {
				t.Errorf("Send = %+v, want a permanent error", r)
			}
		})
	}
	if n := len(srv.received()); n != 0 {
		t.Errorf("server received %d mails, want none", n)
	}
}

func TestEmailWithOnlyAnHTMLBodyIsSentAsHTML(t *testing.T) {
	srv := startSMTP(t, smtpOptions{mode: TLSNone})
	r := (&Sender{}).Send(context.Background(), emailConfig(srv.port, TLSNone, ""), "", Message{Subject: "s", HTML: "<p>hi</p>", DeliveryID: "d-2"})
	if r.Err != nil {
		t.Fatalf("Send: %v", r.Err)
	}
	m := parseMail(t, srv.received()[0].Data)
	if got := strings.TrimSpace(m.Parts["text/html"]); got != "<p>hi</p>" || len(m.Parts) != 1 {
		t.Errorf("parts = %q, want one text/html part", m.Parts)
	}
}
