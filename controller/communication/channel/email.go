package channel

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/textproto"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
)

func (s *Sender) sendEmail(ctx context.Context, cfg *EmailConfig, password string, m Message) Result {
	msg, err := buildMail(cfg, m)
	if err != nil {
		return Result{Err: fmt.Errorf("email: %w", err)}
	}
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if s.SMTPTLS != nil {
		tlsConf = s.SMTPTLS.Clone()
	}
	tlsConf.ServerName = cfg.Host
	opts := []gomail.Option{
		gomail.WithTLSConfig(tlsConf),
		// go-mail's own per-command deadline; ctx bounds the whole attempt.
		gomail.WithTimeout(timeoutOf(ctx)),
	}
	switch cfg.TLS {
	case TLSStartTLS:
		// Mandatory: a server that stops offering STARTTLS (or a
		// man-in-the-middle that strips it) fails the attempt instead of
		// getting the mail, and the password, in clear text.
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	case TLSImplicit:
		opts = append(opts, gomail.WithSSL())
	case TLSNone:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	}
	if cfg.Username != "" {
		// PLAIN first, LOGIN for older Exchange relays; go-mail falls back
		// to the strongest mechanism the server offers otherwise. Both
		// refuse to run without TLS except to localhost.
		opts = append(opts,
			gomail.WithOpportunisticSMTPAuth(gomail.SMTPAuthPlain, gomail.SMTPAuthLogin),
			gomail.WithUsername(cfg.Username), gomail.WithPassword(password))
	}
	// The port goes last: WithSSL and the TLS policies pick default ports.
	opts = append(opts, gomail.WithPort(cfg.Port))
	client, err := gomail.NewClient(cfg.Host, opts...)
	if err != nil {
		return Result{Err: fmt.Errorf("email: configure client: %w", err)}
	}
	if err := client.DialAndSendWithContext(ctx, msg); err != nil {
		return classifySMTP(err)
	}
	return Result{Code: 250, Response: strings.TrimSpace(msg.ServerResponse())}
}

func timeoutOf(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl); left > 0 {
			return left
		}
	}
	return DefaultTimeout
}

// buildMail renders m as a MIME message: text and HTML as
// multipart/alternative when both are set, Message-ID from the delivery ID.
func buildMail(cfg *EmailConfig, m Message) (*gomail.Msg, error) {
	if m.Text == "" && m.HTML == "" {
		return nil, errors.New("message has neither a text nor an HTML body")
	}
	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	if err := msg.From(cfg.From); err != nil {
		return nil, fmt.Errorf("from: %w", err)
	}
	if err := msg.To(cfg.To...); err != nil {
		return nil, fmt.Errorf("to: %w", err)
	}
	if len(cfg.Cc) > 0 {
		if err := msg.Cc(cfg.Cc...); err != nil {
			return nil, fmt.Errorf("cc: %w", err)
		}
	}
	msg.Subject(m.Subject)
	msg.SetDate()
	msg.SetUserAgent(DefaultUserAgent)
	// RFC 3834: tells vacation responders not to answer a notification.
	msg.SetGenHeader("Auto-Submitted", "auto-generated")
	if m.Event != "" {
		msg.SetGenHeader(gomail.Header(HeaderEvent), m.Event)
	}
	if m.DeliveryID != "" {
		id, err := messageID(m.DeliveryID, cfg.From)
		if err != nil {
			return nil, err
		}
		// The same delivery keeps the same Message-ID across attempts, so
		// mail clients collapse the duplicates at-least-once can produce.
		msg.SetMessageIDWithValue(id)
	} else {
		msg.SetMessageID()
	}
	switch {
	case m.Text != "" && m.HTML != "":
		msg.SetBodyString(gomail.TypeTextPlain, m.Text)
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	case m.HTML != "":
		msg.SetBodyString(gomail.TypeTextHTML, m.HTML)
	default:
		msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	}
	return msg, nil
}

// messageID builds "<delivery-id>@<domain of From>" (without the brackets,
// which go-mail adds), refusing IDs that could break out of the header.
func messageID(deliveryID, from string) (string, error) {
	for _, r := range deliveryID {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_.+=", r)) {
			return "", fmt.Errorf("delivery ID %q may contain only letters, digits and -_.+=", deliveryID)
		}
	}
	domain := "opsconductor.invalid"
	if a, err := mail.ParseAddress(from); err == nil {
		if _, d, ok := strings.Cut(a.Address, "@"); ok && d != "" {
			domain = d
		}
	}
	return deliveryID + "@" + domain, nil
}

// classifySMTP maps a go-mail error to a Result: an SMTP 4xx reply is
// temporary and 5xx permanent (RFC 5321 §4.2.1); certificate and STARTTLS
// refusals are permanent, because they need an operator; other network
// failures are retryable.
func classifySMTP(err error) Result {
	r := Result{Err: fmt.Errorf("email: %w", err)}
	var tp *textproto.Error
	var se *gomail.SendError
	switch {
	case errors.As(err, &tp):
		r.Code = tp.Code
		r.Response = fmt.Sprintf("%d %s", tp.Code, tp.Msg)
	case errors.As(err, &se) && se.ErrorCode() != 0:
		r.Code = se.ErrorCode()
	}
	if r.Code != 0 {
		r.Retryable = r.Code >= 400 && r.Code < 500
		return r
	}
	var certErr *tls.CertificateVerificationError
	var unknownAuth x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	switch {
	case errors.As(err, &certErr), errors.As(err, &unknownAuth), errors.As(err, &hostErr):
		return r
	case strings.Contains(err.Error(), "does not support STARTTLS"):
		return r
	case errors.Is(err, gomail.ErrPlainAuthNotSupported), errors.Is(err, gomail.ErrLoginAuthNotSupported),
		errors.Is(err, gomail.ErrNoSupportedAuthDiscovered):
		return r
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		r.Retryable = true
		return r
	}
	// Unknown: prefer another try; the dead-letter limit bounds it.
	r.Retryable = true
	return r
}
