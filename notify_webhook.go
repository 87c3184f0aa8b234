package billing

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Webhook deliveries follow the Standard Webhooks scheme (https://www.standardwebhooks.com):
// every request carries webhook-id, webhook-timestamp and webhook-signature headers, and the
// signature is "v1," followed by the base64 HMAC-SHA256, keyed by the secret, of
// "<webhook-id>.<webhook-timestamp>.<body>". Receivers check it with VerifyWebhook or any
// Standard Webhooks library.

// The headers of a webhook delivery.
const (
	WebhookIDHeader        = "webhook-id"
	WebhookTimestampHeader = "webhook-timestamp"
	WebhookSignatureHeader = "webhook-signature"
)

// WebhookEventQuotaThreshold is the Type of the payload of a quota threshold alert.
const WebhookEventQuotaThreshold = "quota.threshold"

// WebhookSecretPrefix starts every webhook secret; the base64 (standard encoding, padded) of the
// key follows it.
const WebhookSecretPrefix = "whsec_"

// MinWebhookKeyLen is the smallest key, in bytes after base64 decoding, that a webhook secret may
// hold: 24 bytes (192 bits), the lower bound of the Standard Webhooks recommendation. Secrets made
// by NewWebhookSecret hold 32.
const MinWebhookKeyLen = 24

// Defaults of WebhookConfig and VerifyWebhook.
const (
	// DefaultWebhookTimeout bounds one delivery attempt when WebhookConfig.Timeout is zero.
	DefaultWebhookTimeout = 10 * time.Second
	// DefaultWebhookTolerance is how far a webhook-timestamp may be from the receiver's clock,
	// either way, when VerifyWebhook is given a tolerance of zero.
	DefaultWebhookTolerance = 5 * time.Minute
)

// webhookSnippetLen bounds how much of a failed response's body goes into the error, and
// webhookDrainLen how much more is read so that the connection can be reused.
const (
	webhookSnippetLen = 512
	webhookDrainLen   = 64 << 10
)

// WebhookPayload is the JSON body of every webhook delivery. The body of an alert is the same on
// every attempt, so a receiver may also deduplicate by its hash.
//
//	{"type":"quota.threshold","timestamp":"2026-03-15T12:00:00Z","data":{"id":"alert_…","tenant":"acme",…}}
type WebhookPayload struct {
	// Type is WebhookEventQuotaThreshold for alerts.
	Type string `json:"type"`
	// Timestamp is when the event happened (Alert.At), in UTC; not when it was delivered.
	Timestamp time.Time `json:"timestamp"`
	// Data is the alert.
	Data Alert `json:"data"`
}

// WebhookConfig configures a WebhookNotifier. URL and Secret are required; every other field
// documents its default.
type WebhookConfig struct {
	// URL receives the POST requests. Required; its scheme must be http or https.
	URL string

	// Secret signs every request: WebhookSecretPrefix followed by the standard, padded base64 of a
	// key of at least MinWebhookKeyLen bytes. Required; NewWebhookSecret makes one. Share it with
	// the receiver only.
	Secret string

	// Client sends the requests. Defaults to a client that does not follow redirects (a 3xx answer
	// is a failed delivery, so a signed body is never re-sent to a place nobody configured).
	Client *http.Client

	// Timeout bounds each delivery attempt, whatever Client's own timeout and the caller's
	// context say. Defaults to DefaultWebhookTimeout (10s).
	Timeout time.Duration

	// Now returns the current time, which becomes the webhook-timestamp of an attempt. Defaults
	// to time.Now.
	Now func() time.Time

	// Header holds extra headers for every request, such as an Authorization the receiver's
	// gateway wants. It may not set Content-Type or the webhook-* headers. Defaults to none.
	Header http.Header
}

// WebhookNotifier delivers alerts as signed JSON POST requests (Standard Webhooks). Every attempt
// for an alert carries the alert's ID as webhook-id and the same body, with a fresh timestamp and
// signature, so receivers can drop duplicates by ID. Any answer outside 2xx is an error (a
// *WebhookStatusError), which makes the outbox retry.
//
// Create one with NewWebhookNotifier; the zero value is not usable (Notify returns an error). It
// is safe for concurrent use and holds no state between calls.
type WebhookNotifier struct {
	url     string
	key     []byte
	client  *http.Client
	timeout time.Duration
	now     func() time.Time
	header  http.Header
}

// NewWebhookNotifier checks cfg, fills its defaults and returns the notifier. Errors match
// ErrInvalidConfig and name the field, such as "WebhookConfig.Secret".
func NewWebhookNotifier(cfg WebhookConfig) (*WebhookNotifier, error) {
	u, err := url.Parse(cfg.URL)
	switch {
	case cfg.URL == "":
		return nil, fieldErr(ErrInvalidConfig, "WebhookConfig.URL", "is required, such as https://example.com/hooks/billing")
	case err != nil:
		return nil, fieldErr(ErrInvalidConfig, "WebhookConfig.URL", "is not a URL: %v", err)
	case u.Scheme != "https" && u.Scheme != "http":
		return nil, fieldErr(ErrInvalidConfig, "WebhookConfig.URL", "must be an http or https URL (got scheme %q)", u.Scheme)
	case u.Host == "":
		return nil, fieldErr(ErrInvalidConfig, "WebhookConfig.URL", "must name a host, such as https://example.com/hooks/billing")
	}
	key, err := parseWebhookSecret("WebhookConfig.Secret", cfg.Secret)
	if err != nil {
		return nil, err
	}
	if cfg.Timeout < 0 {
		return nil, fieldErr(ErrInvalidConfig, "WebhookConfig.Timeout", "must not be negative (got %v); use 0 for the default %v",
			cfg.Timeout, DefaultWebhookTimeout)
	}
	n := &WebhookNotifier{url: u.String(), key: key, client: cfg.Client, timeout: cfg.Timeout, now: cfg.Now,
		header: make(http.Header, len(cfg.Header))}
	for name, values := range cfg.Header {
		canon := http.CanonicalHeaderKey(name)
		switch canon {
		case "Content-Type", "Content-Length", "Host", http.CanonicalHeaderKey(WebhookIDHeader),
			http.CanonicalHeaderKey(WebhookTimestampHeader), http.CanonicalHeaderKey(WebhookSignatureHeader):
			return nil, fieldErr(ErrInvalidConfig, "WebhookConfig.Header["+canon+"]", "is set by the notifier; remove it")
		}
		for _, v := range values {
			if strings.ContainsAny(v, "\r\n") {
				return nil, fieldErr(ErrInvalidConfig, "WebhookConfig.Header["+canon+"]", "must not contain line breaks")
			}
		}
		n.header[canon] = append([]string(nil), values...)
	}
	if n.client == nil {
		n.client = &http.Client{
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if n.timeout == 0 {
		n.timeout = DefaultWebhookTimeout
	}
	if n.now == nil {
		n.now = time.Now
	}
	return n, nil
}

// Notify POSTs a to the URL, signed, and returns nil once the receiver answered 2xx. A failed
// attempt returns an error: the transport's, or a *WebhookStatusError for any other status. The
// attempt ends when ctx ends or after the configured Timeout.
func (n *WebhookNotifier) Notify(ctx context.Context, a Alert) error {
	if n == nil || n.key == nil {
		return errors.New("billing: webhook: notifier not configured; create it with NewWebhookNotifier")
	}
	if a.ID == "" {
		return errors.New("billing: webhook: alert has no ID; it is the webhook-id receivers deduplicate by")
	}
	body, err := json.Marshal(WebhookPayload{Type: WebhookEventQuotaThreshold, Timestamp: a.At.UTC(), Data: a})
	if err != nil {
		return fmt.Errorf("billing: webhook: encode alert %s: %w", a.ID, err)
	}
	ts := strconv.FormatInt(n.now().Unix(), 10)

	ctx, cancel := context.WithTimeout(ctx, n.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("billing: webhook: %w", err)
	}
	for name, values := range n.header {
		req.Header[name] = append([]string(nil), values...)
	}
	req.Header.Set("Content-Type", "application/json")
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", "meterplane-billing-webhook/1")
	}
	req.Header.Set(WebhookIDHeader, a.ID)
	req.Header.Set(WebhookTimestampHeader, ts)
	req.Header.Set(WebhookSignatureHeader, "v1,"+base64.StdEncoding.EncodeToString(webhookMAC(n.key, a.ID, ts, body)))

	resp, err := n.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			ue.URL = redactURL(ue.URL) // a token in the query string stays out of logs
		}
		return fmt.Errorf("billing: webhook: deliver alert %s: %w", a.ID, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, webhookDrainLen))
		return nil
	}
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, webhookSnippetLen))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, webhookDrainLen))
	return &WebhookStatusError{AlertID: a.ID, StatusCode: resp.StatusCode, Body: cleanSnippet(snippet)}
}

// WebhookStatusError reports a delivery that the receiver answered with a status outside 2xx.
type WebhookStatusError struct {
	// AlertID is the webhook-id of the failed delivery.
	AlertID string
	// StatusCode is the HTTP status of the answer.
	StatusCode int
	// Body is the start of the answer's body (at most 512 bytes), made printable.
	Body string
}

// Error implements error. The message of a 410 Gone says that the receiver asks for no more
// deliveries.
func (e *WebhookStatusError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "billing: webhook: deliver alert %s: receiver answered %d %s", e.AlertID, e.StatusCode,
		http.StatusText(e.StatusCode))
	if e.Gone() {
		b.WriteString(" (the receiver asks for no more deliveries: remove or replace this endpoint)")
	}
	if e.Body != "" {
		fmt.Fprintf(&b, ": %q", e.Body)
	}
	return b.String()
}

// Gone reports whether the receiver answered 410 Gone, the Standard Webhooks way of saying that
// the endpoint no longer wants deliveries.
func (e *WebhookStatusError) Gone() bool { return e.StatusCode == http.StatusGone }

// NewWebhookSecret returns a new random secret for WebhookConfig.Secret: WebhookSecretPrefix and
// the base64 of 32 random bytes. It is safe for concurrent use.
func NewWebhookSecret() string {
	key := make([]byte, 32)
	_, _ = rand.Read(key) // crypto/rand.Read never returns an error; it crashes the program instead
	return WebhookSecretPrefix + base64.StdEncoding.EncodeToString(key)
}

// VerifyWebhook checks a webhook request for a receiver: the webhook-id, webhook-timestamp and
// webhook-signature headers in header, and the raw body exactly as received (before any JSON
// decoding). The timestamp must be within tolerance of now, either way (zero tolerance means
// DefaultWebhookTolerance; a zero now means time.Now()), and at least one of the space-separated
// "v1,<base64>" signatures must match; signatures of other versions are ignored. Comparisons take
// constant time.
//
// A bad secret returns an error matching ErrInvalidConfig that names "secret"; a request that
// fails verification returns an error matching ErrWebhookSignature. A verified request may still
// be a replay within the tolerance: deduplicate by webhook-id. It is safe for concurrent use.
func VerifyWebhook(secret string, header http.Header, body []byte, tolerance time.Duration, now time.Time) error {
	key, err := parseWebhookSecret("secret", secret)
	if err != nil {
		return err
	}
	if tolerance <= 0 {
		tolerance = DefaultWebhookTolerance
	}
	if now.IsZero() {
		now = time.Now()
	}
	id := header.Get(WebhookIDHeader)
	ts := header.Get(WebhookTimestampHeader)
	sigs := header.Get(WebhookSignatureHeader)
	switch {
	case id == "":
		return fmt.Errorf("%w: missing %s header", ErrWebhookSignature, WebhookIDHeader)
	case ts == "":
		return fmt.Errorf("%w: missing %s header", ErrWebhookSignature, WebhookTimestampHeader)
	case sigs == "":
		return fmt.Errorf("%w: missing %s header", ErrWebhookSignature, WebhookSignatureHeader)
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %s %q is not a number of Unix seconds", ErrWebhookSignature, WebhookTimestampHeader, ts)
	}
	// Compare in seconds: a time.Duration overflows for timestamps centuries away.
	skew := now.Unix() - sec
	limit := int64(tolerance / time.Second)
	switch {
	case skew > limit:
		return fmt.Errorf("%w: %s is %ds old, more than the tolerance %v", ErrWebhookSignature, WebhookTimestampHeader,
			skew, tolerance)
	case -skew > limit:
		return fmt.Errorf("%w: %s is %ds in the future, more than the tolerance %v", ErrWebhookSignature,
			WebhookTimestampHeader, -skew, tolerance)
	}
	want := webhookMAC(key, id, ts, body)
	for sig := range strings.FieldsSeq(sigs) {
		version, encoded, ok := strings.Cut(sig, ",")
		if !ok || version != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(encoded)
		if err != nil {
			continue
		}
		if hmac.Equal(got, want) {
			return nil
		}
	}
	return fmt.Errorf("%w: no v1 signature matches", ErrWebhookSignature)
}

// webhookMAC is HMAC-SHA256(key, id + "." + ts + "." + body).
func webhookMAC(key []byte, id, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// parseWebhookSecret returns the key of a "whsec_<base64>" secret; errors name field.
func parseWebhookSecret(field, secret string) ([]byte, error) {
	if secret == "" {
		return nil, fieldErr(ErrInvalidConfig, field, "is required; make one with billing.NewWebhookSecret()")
	}
	encoded, ok := strings.CutPrefix(secret, WebhookSecretPrefix)
	if !ok {
		return nil, fieldErr(ErrInvalidConfig, field, "must start with %q followed by base64; make one with billing.NewWebhookSecret()",
			WebhookSecretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil {
		return nil, fieldErr(ErrInvalidConfig, field, "the part after %q is not standard base64: %v", WebhookSecretPrefix, err)
	}
	if len(key) < MinWebhookKeyLen {
		return nil, fieldErr(ErrInvalidConfig, field, "holds a %d-byte key; it must hold at least %d bytes (NewWebhookSecret makes 32)",
			len(key), MinWebhookKeyLen)
	}
	return key, nil
}

// redactURL keeps the scheme, host and path of raw: query strings and user info often carry
// tokens.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	r := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}
	return r.String()
}

// cleanSnippet makes a response body fit for an error message: valid UTF-8, no control
// characters, trimmed.
func cleanSnippet(b []byte) string {
	s := strings.ToValidUTF8(string(b), "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	return strings.TrimSpace(s)
}
