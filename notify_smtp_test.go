package billing_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/meterplane/billing"
)

// smtpMail is one message received by fakeSMTP.
type smtpMail struct {
	Helo string
	From string
	To   []string
	Auth string // the decoded AUTH PLAIN response, if any
	Data []byte // as sent, CRLF line endings kept, dot-stuffing removed
}

// fakeSMTP is a minimal SMTP server on 127.0.0.1: EHLO/HELO, AUTH PLAIN (when offerAuth), MAIL,
// RCPT, DATA, RSET, NOOP, QUIT. It records every accepted message.
type fakeSMTP struct {
	ln         net.Listener
	offerAuth  bool
	rejectRcpt string // a recipient answered 550
	wg         sync.WaitGroup

	mu    sync.Mutex
	mails []smtpMail
}

func newFakeSMTP(t *testing.T, configure func(*fakeSMTP)) *fakeSMTP {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeSMTP{ln: ln}
	if configure != nil {
		configure(s)
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.serve(t, conn)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

func (s *fakeSMTP) Addr() string { return s.ln.Addr().String() }

func (s *fakeSMTP) Mails() []smtpMail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]smtpMail(nil), s.mails...)
}

func (s *fakeSMTP) serve(t *testing.T, conn net.Conn) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	reply := func(lines ...string) {
		for _, l := range lines {
			if _, err := io.WriteString(conn, l+"\r\n"); err != nil {
				return
			}
		}
	}
	reply("220 fake.test ESMTP ready")
	var m smtpMail
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		if !strings.HasSuffix(line, "\r\n") {
			t.Errorf("fake smtp: command %q does not end with CRLF", line)
		}
		line = strings.TrimRight(line, "\r\n")
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO":
			m.Helo = arg
			if s.offerAuth {
				reply("250-fake.test greets "+arg, "250-8BITMIME", "250 AUTH PLAIN")
			} else {
				reply("250-fake.test greets "+arg, "250 8BITMIME")
			}
		case "HELO":
			m.Helo = arg
			reply("250 fake.test")
		case "AUTH":
			mech, resp, _ := strings.Cut(arg, " ")
			dec, err := base64.StdEncoding.DecodeString(resp)
			if mech != "PLAIN" || err != nil {
				reply("504 unsupported")
				continue
			}
			m.Auth = string(dec)
			reply("235 2.7.0 authenticated")
		case "MAIL":
			m.From = smtpPath(arg)
			m.To, m.Data = nil, nil
			reply("250 2.1.0 ok")
		case "RCPT":
			to := smtpPath(arg)
			if to == s.rejectRcpt {
				reply("550 5.1.1 no such user")
				continue
			}
			m.To = append(m.To, to)
			reply("250 2.1.5 ok")
		case "DATA":
			reply("354 end with <CRLF>.<CRLF>")
			var data bytes.Buffer
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				data.WriteString(strings.TrimPrefix(l, ".")) // undo dot-stuffing
			}
			m.Data = data.Bytes()
			s.mu.Lock()
			s.mails = append(s.mails, m)
			s.mu.Unlock()
			reply("250 2.0.0 queued")
		case "RSET", "NOOP":
			reply("250 ok")
		case "QUIT":
			reply("221 bye")
			return
		default:
			reply("502 command not implemented")
		}
	}
}

// smtpPath returns the address between < and > of a MAIL or RCPT argument such as
// "FROM:<a@b> BODY=8BITMIME".
func smtpPath(arg string) string {
	_, rest, _ := strings.Cut(arg, "<")
	path, _, _ := strings.Cut(rest, ">")
	return path
}

func newTestSMTP(t *testing.T, cfg billing.SMTPConfig) *billing.SMTPNotifier {
	t.Helper()
	n, err := billing.NewSMTPNotifier(cfg)
	if err != nil {
		t.Fatalf("NewSMTPNotifier: %v", err)
	}
	return n
}

// decodedBody returns the body of msg, decoded as its Content-Transfer-Encoding says, and checks
// that the encoding is the wanted one.
func decodedBody(t *testing.T, msg *mail.Message, wantCTE string) string {
	t.Helper()
	cte := msg.Header.Get("Content-Transfer-Encoding")
	if cte != wantCTE {
		t.Errorf("Content-Transfer-Encoding = %q, want %q", cte, wantCTE)
	}
	var r io.Reader = msg.Body
	if cte == "quoted-printable" {
		r = quotedprintable.NewReader(msg.Body)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSMTPNotifierSendsRFC5322Mail(t *testing.T) {
	srv := newFakeSMTP(t, nil)
	now := time.Date(2026, 3, 15, 12, 0, 7, 0, time.UTC)
	n := newTestSMTP(t, billing.SMTPConfig{Addr: srv.Addr(), From: "Billing <billing@example.com>",
		To: []string{"ops@example.com", "Acme Admin <admin@acme.test>"}, HelloName: "app.example.com",
		Now: func() time.Time { return now }})
	a := notifyAlert()
	if err := n.Notify(context.Background(), a); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	mails := srv.Mails()
	if len(mails) != 1 {
		t.Fatalf("server got %d mails, want 1", len(mails))
	}
	got := mails[0]
	if got.Helo != "app.example.com" || got.From != "billing@example.com" {
		t.Errorf("EHLO %q, MAIL FROM %q", got.Helo, got.From)
	}
	if diff := cmp.Diff([]string{"ops@example.com", "admin@acme.test"}, got.To); diff != "" {
		t.Errorf("RCPT TO (-want +got):\n%s", diff)
	}

	// Every line ends with CRLF, and none is longer than RFC 5322's 998 characters.
	for i, line := range bytes.SplitAfter(got.Data, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		if !bytes.HasSuffix(line, []byte("\r\n")) {
			t.Errorf("line %d %q does not end with CRLF", i, line)
		}
		if len(line) > 1000 {
			t.Errorf("line %d is %d bytes long", i, len(line))
		}
	}

	msg, err := mail.ReadMessage(bytes.NewReader(got.Data))
	if err != nil {
		t.Fatalf("ReadMessage: %v\n%s", err, got.Data)
	}
	for name, want := range map[string]string{
		"Subject":      "[billing] acme reached 80% of its monthly tokens.output quota",
		"From":         `"Billing" <billing@example.com>`,
		"Message-ID":   "<" + a.ID + "@example.com>",
		"Content-Type": "text/plain; charset=utf-8",
		"MIME-Version": "1.0",
	} {
		if v := msg.Header.Get(name); v != want {
			t.Errorf("%s = %q, want %q", name, v, want)
		}
	}
	if d, err := msg.Header.Date(); err != nil || !d.Equal(now) {
		t.Errorf("Date = %v (%v), want %v", d, err, now)
	}
	to, err := msg.Header.AddressList("To")
	if err != nil || len(to) != 2 || to[0].Address != "ops@example.com" || to[1].Address != "admin@acme.test" || to[1].Name != "Acme Admin" {
		t.Errorf("To = %v (%v)", to, err)
	}
	body := decodedBody(t, msg, "7bit")
	for _, want := range []string{
		"Tenant acme has used 812000 tokens.output of its monthly limit of 1000000, reaching the 80% alert threshold.",
		"This is a hard quota",
		"2026-03-01 00:00 UTC to 2026-04-01 00:00 UTC",
		"Alert ID: " + a.ID,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("body does not contain %q:\n%s", want, body)
		}
	}
}

func TestSMTPNotifierCustomTemplatesAndAuth(t *testing.T) {
	srv := newFakeSMTP(t, func(s *fakeSMTP) { s.offerAuth = true })
	host, _, _ := net.SplitHostPort(srv.Addr())
	n := newTestSMTP(t, billing.SMTPConfig{Addr: srv.Addr(), From: "billing@example.com", To: []string{"ops@example.com"},
		Auth:    smtp.PlainAuth("", "user", "pass", host), // net/smtp allows PLAIN without TLS to 127.0.0.1 only
		Subject: "Kontingent: {{.Tenant}} bei {{.Threshold}} %",
		Body:    "{{.Kind}} {{.Cycle}} quota für {{.Tenant}}\n.dot line\n"})
	a := notifyAlert()
	a.Tenant = "zürich\r\nBcc: victim@example.com" // a hostile tenant name cannot add a header
	a.Hard, a.Period = false, billing.PeriodDay
	if err := n.Notify(context.Background(), a); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	got := srv.Mails()[0]
	if got.Auth != "\x00user\x00pass" {
		t.Errorf("AUTH PLAIN = %q", got.Auth)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(got.Data))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := msg.Header["Bcc"]; ok {
		t.Error("the tenant name injected a Bcc header")
	}
	raw := msg.Header.Get("Subject")
	subject, err := new(mime.WordDecoder).DecodeHeader(raw)
	if err != nil || subject != "Kontingent: zürich Bcc: victim@example.com bei 80 %" {
		t.Errorf("Subject = %q (raw %q, %v)", subject, raw, err)
	}
	if body := decodedBody(t, msg, "quoted-printable"); body != "soft daily quota für zürich\r\nBcc: victim@example.com\r\n.dot line\r\n" {
		t.Errorf("body = %q", body)
	}
}

func TestSMTPNotifierRefusedRecipientIsError(t *testing.T) {
	srv := newFakeSMTP(t, func(s *fakeSMTP) { s.rejectRcpt = "gone@example.com" })
	n := newTestSMTP(t, billing.SMTPConfig{Addr: srv.Addr(), From: "billing@example.com",
		To: []string{"ops@example.com", "gone@example.com"}})
	err := n.Notify(context.Background(), notifyAlert())
	if err == nil || !strings.Contains(err.Error(), "gone@example.com") || !strings.Contains(err.Error(), "550") {
		t.Errorf("Notify = %v, want an error naming the refused recipient and the 550", err)
	}
	if len(srv.Mails()) != 0 {
		t.Error("a message was accepted")
	}
}

func TestSMTPNotifierAuthNotOffered(t *testing.T) {
	srv := newFakeSMTP(t, nil)
	n := newTestSMTP(t, billing.SMTPConfig{Addr: srv.Addr(), From: "billing@example.com", To: []string{"ops@example.com"},
		Auth: smtp.PlainAuth("", "user", "pass", "127.0.0.1")})
	if err := n.Notify(context.Background(), notifyAlert()); err == nil || !strings.Contains(err.Error(), "AUTH") {
		t.Errorf("Notify = %v, want an error about AUTH", err)
	}
}

// TestSMTPNotifierHungServer checks that a server that accepts the connection and never says a
// word cannot hold Notify past its context's deadline, nor past Timeout.
func TestSMTPNotifierHungServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // held open, silent
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	for _, tc := range []struct {
		name    string
		timeout time.Duration
		ctx     func() (context.Context, context.CancelFunc)
	}{
		{"context deadline", time.Minute, func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 100*time.Millisecond)
		}},
		{"context cancelled", time.Minute, func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(100*time.Millisecond, cancel)
			return ctx, cancel
		}},
		{"Timeout", 100 * time.Millisecond, func() (context.Context, context.CancelFunc) {
			return context.WithCancel(context.Background())
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newTestSMTP(t, billing.SMTPConfig{Addr: ln.Addr().String(), From: "billing@example.com",
				To: []string{"ops@example.com"}, Timeout: tc.timeout})
			ctx, cancel := tc.ctx()
			defer cancel()
			start := time.Now()
			err := n.Notify(ctx, notifyAlert())
			if err == nil {
				t.Fatal("Notify against a silent server returned nil")
			}
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				t.Errorf("Notify = %v, want it to match the context's error", err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("Notify returned after %v", d)
			}
		})
	}
}

func TestSMTPNotifierZeroValue(t *testing.T) {
	if err := (&billing.SMTPNotifier{}).Notify(context.Background(), notifyAlert()); err == nil {
		t.Error("zero SMTPNotifier: Notify returned nil")
	}
}

func TestNewSMTPNotifierValidates(t *testing.T) {
	ok := billing.SMTPConfig{Addr: "smtp.example.com:587", From: "billing@example.com", To: []string{"ops@example.com"}}
	for _, tc := range []struct {
		name   string
		change func(*billing.SMTPConfig)
		field  string
		rule   string
	}{
		{"no addr", func(c *billing.SMTPConfig) { c.Addr = "" }, "SMTPConfig.Addr", "host:port"},
		{"addr without port", func(c *billing.SMTPConfig) { c.Addr = "smtp.example.com" }, "SMTPConfig.Addr", "host:port"},
		{"addr without host", func(c *billing.SMTPConfig) { c.Addr = ":25" }, "SMTPConfig.Addr", "host:port"},
		{"no from", func(c *billing.SMTPConfig) { c.From = "" }, "SMTPConfig.From", "required"},
		{"bad from", func(c *billing.SMTPConfig) { c.From = "billing at example" }, "SMTPConfig.From", "not an address"},
		{"no recipient", func(c *billing.SMTPConfig) { c.To = nil }, "SMTPConfig.To", "at least one"},
		{"bad recipient", func(c *billing.SMTPConfig) { c.To = []string{"ops@example.com", "ops\r\nBcc: x@y"} },
			"SMTPConfig.To[1]", "not an address"},
		{"bad hello", func(c *billing.SMTPConfig) { c.HelloName = "a b" }, "SMTPConfig.HelloName", "without spaces"},
		{"negative timeout", func(c *billing.SMTPConfig) { c.Timeout = -1 }, "SMTPConfig.Timeout", "negative"},
		{"subject syntax", func(c *billing.SMTPConfig) { c.Subject = "{{.Tenant" }, "SMTPConfig.Subject", "text/template"},
		{"subject field", func(c *billing.SMTPConfig) { c.Subject = "{{.Customer}}" }, "SMTPConfig.Subject", "sample alert"},
		{"body field", func(c *billing.SMTPConfig) { c.Body = "{{.Used.Percent}}" }, "SMTPConfig.Body", "sample alert"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ok
			tc.change(&cfg)
			n, err := billing.NewSMTPNotifier(cfg)
			if n != nil {
				t.Error("returned a notifier with the error")
			}
			requireConfigFieldError(t, err, tc.field, tc.rule)
		})
	}
	if _, err := billing.NewSMTPNotifier(ok); err != nil {
		t.Errorf("valid config: %v", err)
	}
}

// TestSMTPNotifierPlainBodyKeepsDotLines checks the 7bit path: a line holding only a dot, which
// would end DATA early if it were not dot-stuffed, arrives intact.
func TestSMTPNotifierPlainBodyKeepsDotLines(t *testing.T) {
	srv := newFakeSMTP(t, nil)
	n := newTestSMTP(t, billing.SMTPConfig{Addr: srv.Addr(), From: "billing@example.com", To: []string{"ops@example.com"},
		Body: "{{.Tenant}}\n.\n..\nend"})
	if err := n.Notify(context.Background(), notifyAlert()); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(srv.Mails()[0].Data))
	if err != nil {
		t.Fatal(err)
	}
	if body := decodedBody(t, msg, "7bit"); body != "acme\r\n.\r\n..\r\nend\r\n" {
		t.Errorf("body = %q", body)
	}
}
