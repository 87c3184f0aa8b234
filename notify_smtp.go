package billing

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"strings"
	"text/template"
	"time"
	"unicode"
	"unicode/utf8"
)

// DefaultSMTPSubject is the text/template of an alert mail's subject when SMTPConfig.Subject is
// empty. It renders, for example, "[billing] acme reached 80% of its monthly tokens.output quota".
const DefaultSMTPSubject = `[billing] {{.Tenant}} reached {{.Threshold}}% of its {{.Cycle}} {{.Resource}} quota`

// DefaultSMTPBody is the text/template of an alert mail's plain-text body when SMTPConfig.Body is
// empty. Replace it to change the wording or the language; the templates see an SMTPTemplateData.
const DefaultSMTPBody = `Tenant {{.Tenant}} has used {{.Used}} {{.Resource}} of its {{.Cycle}} limit of {{.Limit}}, ` +
	`reaching the {{.Threshold}}% alert threshold.
{{if .Hard}}
This is a hard quota: usage that would go beyond {{.Limit}} is refused.
{{else}}
This is a soft quota: usage beyond {{.Limit}} is allowed and recorded.
{{end}}
Period:   {{if .Bucket.End.IsZero}}all time{{else}}{{.Bucket.Start.UTC.Format "2006-01-02 15:04 MST"}} to {{.Bucket.End.UTC.Format "2006-01-02 15:04 MST"}}{{end}}
Seen at:  {{.At.UTC.Format "2006-01-02 15:04:05 MST"}}
Alert ID: {{.ID}}

You receive this message because this address is configured for quota alerts.
`

// DefaultSMTPTimeout bounds a whole SMTP conversation when SMTPConfig.Timeout is zero.
const DefaultSMTPTimeout = 30 * time.Second

// maxSubjectRunes bounds a rendered subject, so that a long tenant name cannot make a header line
// longer than RFC 5322 allows.
const maxSubjectRunes = 200

// SMTPTemplateData is what the Subject and Body templates of an SMTPNotifier see: every field of
// the Alert (Tenant, Resource, Threshold, Used, Limit, Hard, Bucket, At, ID, ...) and a few words
// made from them.
type SMTPTemplateData struct {
	Alert
	// Cycle is the period as an adjective: "hourly", "daily", "monthly", or "total".
	Cycle string
	// Kind is "hard" or "soft".
	Kind string
}

// SMTPConfig configures an SMTPNotifier. Addr, From and To are required; every other field
// documents its default.
type SMTPConfig struct {
	// Addr is the mail server's host:port, such as "smtp.example.com:587". Required.
	Addr string

	// From is the sender, an RFC 5322 address such as "Billing <billing@example.com>". Required.
	From string

	// To lists the recipients, each an RFC 5322 address. At least one is required.
	To []string

	// Auth authenticates to the server, for example smtp.PlainAuth("", user, password, host).
	// Defaults to nil: no authentication. When set, the server must offer AUTH; net/smtp's
	// PlainAuth refuses to send the password over a connection without TLS (except to localhost).
	Auth smtp.Auth

	// TLSConfig is used when the server offers STARTTLS, which is then always used (as
	// smtp.SendMail does). Defaults to a config whose ServerName is the host of Addr.
	TLSConfig *tls.Config

	// HelloName is the name sent with EHLO. Defaults to "localhost".
	HelloName string

	// Subject is the text/template of the subject line. Defaults to DefaultSMTPSubject. Line
	// breaks in the result become spaces, and it is cut at 200 characters.
	Subject string

	// Body is the text/template of the plain-text body. Defaults to DefaultSMTPBody.
	Body string

	// Timeout bounds the whole conversation with the server, from dialling to QUIT, whatever the
	// caller's context says. Defaults to DefaultSMTPTimeout (30s).
	Timeout time.Duration

	// Now returns the current time, which becomes the Date header. Defaults to time.Now.
	Now func() time.Time
}

// SMTPNotifier delivers alerts as plain-text mail through an SMTP server (net/smtp). The message
// is RFC 5322: CRLF line endings, a Message-ID derived from the alert's ID (the same on every
// retry, so mail clients can spot duplicates), UTF-8 text in quoted-printable. The conversation
// honours the context: a server that hangs cannot block Notify beyond the context's deadline or
// the configured Timeout.
//
// Create one with NewSMTPNotifier; the zero value is not usable (Notify returns an error). It is
// safe for concurrent use: each Notify opens its own connection.
type SMTPNotifier struct {
	addr      string
	host      string
	from      *mail.Address
	to        []*mail.Address
	auth      smtp.Auth
	tlsConfig *tls.Config
	helo      string
	subject   *template.Template
	body      *template.Template
	timeout   time.Duration
	now       func() time.Time
}

// NewSMTPNotifier checks cfg, fills its defaults and returns the notifier. The templates are
// parsed and tried on a sample alert, so a misspelt field fails here rather than at the first
// alert. Errors match ErrInvalidConfig and name the field, such as "SMTPConfig.To[1]".
func NewSMTPNotifier(cfg SMTPConfig) (*SMTPNotifier, error) {
	host, port, err := net.SplitHostPort(cfg.Addr)
	if err != nil || host == "" || port == "" {
		return nil, fieldErr(ErrInvalidConfig, "SMTPConfig.Addr", "must be host:port, such as smtp.example.com:587 (got %q)", cfg.Addr)
	}
	n := &SMTPNotifier{addr: cfg.Addr, host: host, auth: cfg.Auth, helo: cfg.HelloName, timeout: cfg.Timeout, now: cfg.Now}
	if cfg.From == "" {
		return nil, fieldErr(ErrInvalidConfig, "SMTPConfig.From", "is required, such as \"Billing <billing@example.com>\"")
	}
	if n.from, err = mail.ParseAddress(cfg.From); err != nil {
		return nil, fieldErr(ErrInvalidConfig, "SMTPConfig.From", "is not an address such as billing@example.com: %v", err)
	}
	if len(cfg.To) == 0 {
		return nil, fieldErr(ErrInvalidConfig, "SMTPConfig.To", "needs at least one recipient")
	}
	for i, s := range cfg.To {
		a, err := mail.ParseAddress(s)
		if err != nil {
			return nil, fieldErr(ErrInvalidConfig, fmt.Sprintf("SMTPConfig.To[%d]", i), "is not an address such as ops@example.com (got %q): %v", s, err)
		}
		n.to = append(n.to, a)
	}
	if strings.ContainsAny(n.helo, " \t\r\n") {
		return nil, fieldErr(ErrInvalidConfig, "SMTPConfig.HelloName", "must be a host name without spaces (got %q)", n.helo)
	}
	if n.helo == "" {
		n.helo = "localhost"
	}
	if cfg.Timeout < 0 {
		return nil, fieldErr(ErrInvalidConfig, "SMTPConfig.Timeout", "must not be negative (got %v); use 0 for the default %v", cfg.Timeout, DefaultSMTPTimeout)
	}
	if n.timeout == 0 {
		n.timeout = DefaultSMTPTimeout
	}
	if n.now == nil {
		n.now = time.Now
	}
	if cfg.TLSConfig != nil {
		n.tlsConfig = cfg.TLSConfig.Clone()
	} else {
		n.tlsConfig = &tls.Config{ServerName: host}
	}
	for _, t := range []struct {
		field, src, def string
		dst             **template.Template
	}{
		{"SMTPConfig.Subject", cfg.Subject, DefaultSMTPSubject, &n.subject},
		{"SMTPConfig.Body", cfg.Body, DefaultSMTPBody, &n.body},
	} {
		src := t.src
		if src == "" {
			src = t.def
		}
		tmpl, err := template.New(t.field).Parse(src)
		if err != nil {
			return nil, fieldErr(ErrInvalidConfig, t.field, "is not a valid text/template: %v", err)
		}
		if err := tmpl.Execute(&bytes.Buffer{}, sampleSMTPData()); err != nil {
			return nil, fieldErr(ErrInvalidConfig, t.field, "fails on a sample alert (the template sees a billing.SMTPTemplateData): %v", err)
		}
		*t.dst = tmpl
	}
	return n, nil
}

// Notify renders the mail for a and sends it to every recipient. It returns nil once the server
// accepted the message (250 after DATA). A recipient refused by the server fails the whole
// delivery, so the outbox retries it for everyone.
func (n *SMTPNotifier) Notify(ctx context.Context, a Alert) error {
	if n == nil || n.subject == nil {
		return errors.New("billing: smtp: notifier not configured; create it with NewSMTPNotifier")
	}
	msg, err := n.message(a)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, n.timeout)
	defer cancel()
	if err := n.send(ctx, msg); err != nil {
		if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
			err = fmt.Errorf("%w: %w", cerr, err)
		}
		return fmt.Errorf("billing: smtp: alert %s to %s: %w", a.ID, n.addr, err)
	}
	return nil
}

// send speaks SMTP with the server: dial, EHLO, STARTTLS if offered, AUTH if configured, MAIL,
// RCPT, DATA, QUIT. When ctx ends, the connection's deadline is moved to now, so any blocked read
// or write returns at once.
func (n *SMTPNotifier) send(ctx context.Context, msg []byte) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", n.addr)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	// The deadline moves only once ctx is done, so that a timed-out read always finds ctx.Err()
	// set and the error matches context.DeadlineExceeded or context.Canceled.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	c, err := smtp.NewClient(conn, n.host) // reads the greeting
	if err != nil {
		conn.Close()
		return fmt.Errorf("greeting: %w", err)
	}
	defer c.Close()
	if err := c.Hello(n.helo); err != nil {
		return fmt.Errorf("EHLO: %w", err)
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		if err := c.StartTLS(n.tlsConfig); err != nil {
			return fmt.Errorf("STARTTLS: %w", err)
		}
	}
	if n.auth != nil {
		if ok, _ := c.Extension("AUTH"); !ok {
			return errors.New("AUTH: the server does not offer authentication, but SMTPConfig.Auth is set")
		}
		if err := c.Auth(n.auth); err != nil {
			return fmt.Errorf("AUTH: %w", err)
		}
	}
	if err := c.Mail(n.from.Address); err != nil {
		return fmt.Errorf("MAIL FROM: %w", err)
	}
	for _, to := range n.to {
		if err := c.Rcpt(to.Address); err != nil {
			return fmt.Errorf("RCPT TO <%s>: %w", to.Address, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if _, err := w.Write(msg); err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if err := w.Close(); err != nil { // sends the final dot and reads the server's verdict
		return fmt.Errorf("DATA: %w", err)
	}
	_ = c.Quit() // the message is accepted; a failed QUIT changes nothing
	return nil
}

// message renders the RFC 5322 message for a, with CRLF line endings.
func (n *SMTPNotifier) message(a Alert) ([]byte, error) {
	data := smtpData(a)
	var subject, body bytes.Buffer
	if err := n.subject.Execute(&subject, data); err != nil {
		return nil, fmt.Errorf("billing: smtp: alert %s: subject template: %w", a.ID, err)
	}
	if err := n.body.Execute(&body, data); err != nil {
		return nil, fmt.Errorf("billing: smtp: alert %s: body template: %w", a.ID, err)
	}

	var m bytes.Buffer
	header := func(name, value string) { m.WriteString(name + ": " + value + "\r\n") }
	header("Date", n.now().Format(time.RFC1123Z))
	header("From", n.from.String())
	to := make([]string, len(n.to))
	for i, a := range n.to {
		to[i] = a.String()
	}
	header("To", strings.Join(to, ",\r\n ")) // one recipient per folded line
	header("Subject", encodeSubject(subject.String()))
	header("Message-ID", n.messageID(a.ID))
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=utf-8")
	text := strings.ReplaceAll(body.String(), "\r\n", "\n")
	text = strings.ReplaceAll(text, "\r", "\n")
	if !strings.HasSuffix(text, "\n") {
		text += "\n"
	}
	if plain7bit(text) {
		header("Content-Transfer-Encoding", "7bit")
		header("Auto-Submitted", "auto-generated") // RFC 3834: auto-responders should not answer
		m.WriteString("\r\n")
		m.WriteString(strings.ReplaceAll(text, "\n", "\r\n"))
		return m.Bytes(), nil
	}
	// Quoted-printable keeps every line short and 7-bit whatever the template produced; in text
	// mode it ends each line with CRLF.
	header("Content-Transfer-Encoding", "quoted-printable")
	header("Auto-Submitted", "auto-generated")
	m.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&m)
	if _, err := qp.Write([]byte(text)); err != nil {
		return nil, fmt.Errorf("billing: smtp: alert %s: encode body: %w", a.ID, err)
	}
	if err := qp.Close(); err != nil {
		return nil, fmt.Errorf("billing: smtp: alert %s: encode body: %w", a.ID, err)
	}
	return m.Bytes(), nil
}

// messageID derives "<id@domain>" from the alert ID and the sender's domain, so every retry of an
// alert carries the same Message-ID.
func (n *SMTPNotifier) messageID(alertID string) string {
	local := idChars(alertID)
	if local == "" {
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		local = "alert_" + hex.EncodeToString(b)
	}
	domain := ""
	if at := strings.LastIndexByte(n.from.Address, '@'); at >= 0 {
		domain = idChars(n.from.Address[at+1:])
	}
	if domain == "" {
		domain = "billing.invalid"
	}
	return "<" + local + "@" + domain + ">"
}

// plain7bit reports whether text (LF line endings) can be sent as it is: printable ASCII and tabs
// only, in lines of at most 998 characters, the limit of RFC 5322.
func plain7bit(text string) bool {
	line := 0
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		case c == '\n':
			line = 0
			continue
		case c >= 0x80, c < ' ' && c != '\t', c == 0x7f:
			return false
		}
		if line++; line > 998 {
			return false
		}
	}
	return true
}

// idChars keeps the characters of s that are safe in a Message-ID part.
func idChars(s string) string {
	return strings.Map(func(r rune) rune {
		if r < utf8.RuneSelf && (r == '.' || r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r)) {
			return r
		}
		return -1
	}, s)
}

// encodeSubject makes s one header line: control characters and line breaks become spaces, runs
// of spaces collapse, it is cut at maxSubjectRunes, and non-ASCII text is RFC 2047 encoded.
func encodeSubject(s string) string {
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }), " ")
	if utf8.RuneCountInString(s) > maxSubjectRunes {
		s = string([]rune(s)[:maxSubjectRunes])
	}
	for _, r := range s {
		if r >= utf8.RuneSelf {
			return mime.QEncoding.Encode("utf-8", s)
		}
	}
	return s
}

// smtpData is what the templates see for a.
func smtpData(a Alert) SMTPTemplateData {
	d := SMTPTemplateData{Alert: a, Cycle: string(a.Period), Kind: "soft"}
	switch a.Period {
	case PeriodHour:
		d.Cycle = "hourly"
	case PeriodDay:
		d.Cycle = "daily"
	case PeriodMonth:
		d.Cycle = "monthly"
	}
	if a.Hard {
		d.Kind = "hard"
	}
	return d
}

// sampleSMTPData is the alert the templates are tried on by NewSMTPNotifier.
func sampleSMTPData() SMTPTemplateData {
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	return smtpData(Alert{ID: AlertID("acme", "tokens.output", PeriodMonth, start, 80), Tenant: "acme",
		Resource: "tokens.output", Period: PeriodMonth, Bucket: Span{Start: start, End: start.AddDate(0, 1, 0)},
		Threshold: 80, Used: 800_000, Limit: 1_000_000, Hard: true, At: start.Add(14 * 24 * time.Hour)})
}
