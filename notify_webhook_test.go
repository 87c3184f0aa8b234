package billing_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/meterplane/billing"
)

// notifyAlert is the alert of the notifier tests: acme at 80% of a hard monthly quota.
func notifyAlert() billing.Alert {
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	return billing.Alert{
		ID:        billing.AlertID("acme", "tokens.output", billing.PeriodMonth, start, 80),
		Tenant:    "acme",
		Resource:  "tokens.output",
		Period:    billing.PeriodMonth,
		Bucket:    billing.Span{Start: start, End: start.AddDate(0, 1, 0)},
		Threshold: 80,
		Used:      812_000,
		Limit:     1_000_000,
		Hard:      true,
		At:        time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC),
	}
}

// testWebhookSecret holds the 32-byte key 0x00, 0x01, ..., 0x1f.
var testWebhookSecret = func() string {
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i)
	}
	return "whsec_" + base64.StdEncoding.EncodeToString(key)
}()

// webhookRequest is what the test receiver saw of one request.
type webhookRequest struct {
	Method string
	Header http.Header
	Body   []byte
}

// webhookReceiver is an httptest server that records requests and answers each with the next of
// statuses (the last one repeats).
type webhookReceiver struct {
	*httptest.Server
	mu       sync.Mutex
	requests []webhookRequest
	statuses []int
	answer   string
}

func newWebhookReceiver(t *testing.T, statuses ...int) *webhookReceiver {
	t.Helper()
	r := &webhookReceiver{statuses: statuses}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			t.Errorf("receiver: read body: %v", err)
		}
		r.mu.Lock()
		r.requests = append(r.requests, webhookRequest{Method: req.Method, Header: req.Header.Clone(), Body: body})
		status := http.StatusNoContent
		if len(r.statuses) > 0 {
			status = r.statuses[0]
			if len(r.statuses) > 1 {
				r.statuses = r.statuses[1:]
			}
		}
		answer := r.answer
		r.mu.Unlock()
		w.WriteHeader(status)
		_, _ = io.WriteString(w, answer)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *webhookReceiver) Requests() []webhookRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]webhookRequest(nil), r.requests...)
}

// independentSignature computes the Standard Webhooks v1 signature by hand, without the
// package: base64(HMAC-SHA256(base64decode(secret minus "whsec_"), id "." ts "." body)).
func independentSignature(t *testing.T, secret, id, ts string, body []byte) string {
	t.Helper()
	if !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("secret %q has no whsec_ prefix", secret)
	}
	key, err := base64.StdEncoding.DecodeString(secret[len("whsec_"):])
	if err != nil {
		t.Fatal(err)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// requireConfigFieldError checks that err is a *billing.FieldError matching ErrInvalidConfig on
// field, whose rule contains rule and whose message names the field.
func requireConfigFieldError(t *testing.T, err error, field, rule string) {
	t.Helper()
	var fe *billing.FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("error %v (%T) is not a *billing.FieldError", err, err)
	}
	if !errors.Is(err, billing.ErrInvalidConfig) {
		t.Errorf("errors.Is(%v, ErrInvalidConfig) = false", err)
	}
	if fe.Field != field || !strings.Contains(fe.Rule, rule) || !strings.Contains(err.Error(), field+": ") {
		t.Errorf("error %q: want field %q and a rule containing %q", err, field, rule)
	}
}

func newTestWebhook(t *testing.T, cfg billing.WebhookConfig) *billing.WebhookNotifier {
	t.Helper()
	n, err := billing.NewWebhookNotifier(cfg)
	if err != nil {
		t.Fatalf("NewWebhookNotifier: %v", err)
	}
	return n
}

func TestWebhookNotifierSignsStandardWebhook(t *testing.T) {
	rcv := newWebhookReceiver(t)
	now := time.Date(2026, 3, 15, 12, 0, 7, 0, time.UTC)
	n := newTestWebhook(t, billing.WebhookConfig{URL: rcv.URL + "/hooks/billing", Secret: testWebhookSecret,
		Now: func() time.Time { return now }, Header: http.Header{"authorization": {"Bearer gateway-token"}}})
	a := notifyAlert()
	if err := n.Notify(context.Background(), a); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	reqs := rcv.Requests()
	if len(reqs) != 1 {
		t.Fatalf("receiver got %d requests, want 1", len(reqs))
	}
	req := reqs[0]
	if req.Method != http.MethodPost {
		t.Errorf("method = %s, want POST", req.Method)
	}
	for name, want := range map[string]string{
		"webhook-id":        a.ID,
		"webhook-timestamp": "1773576007",
		"Content-Type":      "application/json",
		"Authorization":     "Bearer gateway-token",
	} {
		if got := req.Header.Get(name); got != want {
			t.Errorf("header %s = %q, want %q", name, got, want)
		}
	}
	if got, want := req.Header.Get("webhook-signature"),
		independentSignature(t, testWebhookSecret, a.ID, "1773576007", req.Body); got != want {
		t.Errorf("webhook-signature = %q, want (computed by hand) %q", got, want)
	}
	if err := billing.VerifyWebhook(testWebhookSecret, req.Header, req.Body, time.Minute, now.Add(30*time.Second)); err != nil {
		t.Errorf("VerifyWebhook: %v", err)
	}

	// The body is the documented envelope, and the alert survives the round trip.
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(req.Body, &raw); err != nil {
		t.Fatalf("body %s: %v", req.Body, err)
	}
	if got := string(raw["type"]); got != `"quota.threshold"` {
		t.Errorf("type = %s, want \"quota.threshold\"", got)
	}
	if got := string(raw["timestamp"]); got != `"2026-03-15T12:00:00Z"` {
		t.Errorf("timestamp = %s, want the alert's At in RFC 3339", got)
	}
	var p billing.WebhookPayload
	if err := json.Unmarshal(req.Body, &p); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(a, p.Data); diff != "" {
		t.Errorf("data (-sent +received):\n%s", diff)
	}
}

func TestWebhookNotifierRetriesKeepID(t *testing.T) {
	rcv := newWebhookReceiver(t, 500, 503, 200)
	clock := time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)
	n := newTestWebhook(t, billing.WebhookConfig{URL: rcv.URL, Secret: testWebhookSecret,
		Now: func() time.Time { clock = clock.Add(time.Minute); return clock }})
	a := notifyAlert()
	var errs []error
	for range 3 {
		errs = append(errs, n.Notify(context.Background(), a))
	}
	if errs[0] == nil || errs[1] == nil || errs[2] != nil {
		t.Fatalf("errors = %v, want failure, failure, success", errs)
	}
	reqs := rcv.Requests()
	if len(reqs) != 3 {
		t.Fatalf("receiver got %d requests, want 3", len(reqs))
	}
	for i, r := range reqs {
		if got := r.Header.Get("webhook-id"); got != a.ID {
			t.Errorf("attempt %d: webhook-id = %q, want %q", i, got, a.ID)
		}
		if string(r.Body) != string(reqs[0].Body) {
			t.Errorf("attempt %d: body differs from the first attempt's", i)
		}
		ts := r.Header.Get("webhook-timestamp")
		if want := strconv.FormatInt(clock.Add(time.Duration(i-2)*time.Minute).Unix(), 10); ts != want {
			t.Errorf("attempt %d: webhook-timestamp = %s, want %s (the time of this attempt)", i, ts, want)
		}
		if got, want := r.Header.Get("webhook-signature"), independentSignature(t, testWebhookSecret, a.ID, ts, r.Body); got != want {
			t.Errorf("attempt %d: webhook-signature = %q, want %q", i, got, want)
		}
	}
}

func TestWebhookNotifierNon2xxIsError(t *testing.T) {
	for _, tc := range []struct {
		status int
		answer string
		want   []string
	}{
		{500, "database is down", []string{"500 Internal Server Error", `"database is down"`}},
		{410, "", []string{"410 Gone", "no more deliveries"}},
		{302, "", []string{"302 Found"}},                                     // redirects are not followed
		{400, strings.Repeat("x", 5000), []string{strings.Repeat("x", 512)}}, // bounded snippet
	} {
		t.Run(strconv.Itoa(tc.status), func(t *testing.T) {
			rcv := newWebhookReceiver(t, tc.status)
			rcv.answer = tc.answer
			n := newTestWebhook(t, billing.WebhookConfig{URL: rcv.URL, Secret: testWebhookSecret})
			err := n.Notify(context.Background(), notifyAlert())
			var se *billing.WebhookStatusError
			if !errors.As(err, &se) {
				t.Fatalf("Notify = %v (%T), want a *WebhookStatusError", err, err)
			}
			if se.StatusCode != tc.status || se.Gone() != (tc.status == 410) {
				t.Errorf("StatusCode = %d, Gone = %v", se.StatusCode, se.Gone())
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if len(se.Body) > 512 {
				t.Errorf("Body holds %d bytes, want at most 512", len(se.Body))
			}
		})
	}
}

func TestWebhookNotifierTransportErrorHidesQuery(t *testing.T) {
	rcv := newWebhookReceiver(t)
	url := rcv.URL + "/hook?token=s3cret"
	rcv.Close() // nothing listens any more
	n := newTestWebhook(t, billing.WebhookConfig{URL: url, Secret: testWebhookSecret})
	err := n.Notify(context.Background(), notifyAlert())
	if err == nil {
		t.Fatal("Notify to a closed server returned nil")
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error %q reveals the URL's query", err)
	}
}

func TestWebhookNotifierHonoursTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	n := newTestWebhook(t, billing.WebhookConfig{URL: srv.URL, Secret: testWebhookSecret, Timeout: 100 * time.Millisecond})
	start := time.Now()
	err := n.Notify(context.Background(), notifyAlert())
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Notify = %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Notify took %v against a hung receiver with a 100ms timeout", d)
	}
}

func TestWebhookNotifierRejectsAlertWithoutID(t *testing.T) {
	rcv := newWebhookReceiver(t)
	n := newTestWebhook(t, billing.WebhookConfig{URL: rcv.URL, Secret: testWebhookSecret})
	a := notifyAlert()
	a.ID = ""
	if err := n.Notify(context.Background(), a); err == nil || !strings.Contains(err.Error(), "no ID") {
		t.Errorf("Notify = %v, want an error about the missing ID", err)
	}
	if err := (&billing.WebhookNotifier{}).Notify(context.Background(), notifyAlert()); err == nil {
		t.Error("zero WebhookNotifier: Notify returned nil")
	}
	if len(rcv.Requests()) != 0 {
		t.Error("a request was sent")
	}
}

func TestNewWebhookNotifierValidates(t *testing.T) {
	short := "whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 23))
	for _, tc := range []struct {
		name  string
		cfg   billing.WebhookConfig
		field string
		rule  string
	}{
		{"no URL", billing.WebhookConfig{Secret: testWebhookSecret}, "WebhookConfig.URL", "required"},
		{"ftp URL", billing.WebhookConfig{URL: "ftp://example.com/x", Secret: testWebhookSecret}, "WebhookConfig.URL", "http or https"},
		{"relative URL", billing.WebhookConfig{URL: "/hooks", Secret: testWebhookSecret}, "WebhookConfig.URL", "http or https"},
		{"no host", billing.WebhookConfig{URL: "https:///hooks", Secret: testWebhookSecret}, "WebhookConfig.URL", "host"},
		{"bad URL", billing.WebhookConfig{URL: "https://exa mple.com/", Secret: testWebhookSecret}, "WebhookConfig.URL", "not a URL"},
		{"no secret", billing.WebhookConfig{URL: "https://example.com/"}, "WebhookConfig.Secret", "NewWebhookSecret"},
		{"no prefix", billing.WebhookConfig{URL: "https://example.com/", Secret: strings.TrimPrefix(testWebhookSecret, "whsec_")},
			"WebhookConfig.Secret", "whsec_"},
		{"bad base64", billing.WebhookConfig{URL: "https://example.com/", Secret: "whsec_not*base64"}, "WebhookConfig.Secret", "base64"},
		{"short key", billing.WebhookConfig{URL: "https://example.com/", Secret: short}, "WebhookConfig.Secret", "at least 24 bytes"},
		{"negative timeout", billing.WebhookConfig{URL: "https://example.com/", Secret: testWebhookSecret, Timeout: -time.Second},
			"WebhookConfig.Timeout", "negative"},
		{"reserved header", billing.WebhookConfig{URL: "https://example.com/", Secret: testWebhookSecret,
			Header: http.Header{"webhook-signature": {"v1,forged"}}}, "WebhookConfig.Header[Webhook-Signature]", "set by the notifier"},
		{"header injection", billing.WebhookConfig{URL: "https://example.com/", Secret: testWebhookSecret,
			Header: http.Header{"X-Team": {"a\r\nX-Evil: 1"}}}, "WebhookConfig.Header[X-Team]", "line breaks"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := billing.NewWebhookNotifier(tc.cfg)
			if n != nil {
				t.Error("returned a notifier with the error")
			}
			requireConfigFieldError(t, err, tc.field, tc.rule)
		})
	}
}

func TestNewWebhookSecret(t *testing.T) {
	a, b := billing.NewWebhookSecret(), billing.NewWebhookSecret()
	if a == b {
		t.Fatal("two secrets are equal")
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(a, "whsec_"))
	if !strings.HasPrefix(a, "whsec_") || err != nil || len(key) != 32 {
		t.Fatalf("secret %q: want whsec_ and the base64 of 32 bytes (err %v, %d bytes)", a, err, len(key))
	}
	if _, err := billing.NewWebhookNotifier(billing.WebhookConfig{URL: "https://example.com/", Secret: a}); err != nil {
		t.Errorf("NewWebhookNotifier refuses a NewWebhookSecret: %v", err)
	}
}

// TestVerifyWebhookKnownAnswer checks VerifyWebhook against the example of the Standard Webhooks
// reference libraries, a signature computed by another implementation.
func TestVerifyWebhookKnownAnswer(t *testing.T) {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	body := []byte(`{"test": 2432232314}`)
	h := http.Header{}
	h.Set("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek")
	h.Set("webhook-timestamp", "1614265330")
	h.Set("webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
	if got := independentSignature(t, secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", body); got != h.Get("webhook-signature") {
		t.Fatalf("the test's own HMAC = %s, want the published %s", got, h.Get("webhook-signature"))
	}
	if err := billing.VerifyWebhook(secret, h, body, 0, time.Unix(1614265330, 0)); err != nil {
		t.Errorf("VerifyWebhook: %v", err)
	}
}

func TestVerifyWebhookRejects(t *testing.T) {
	now := time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)
	body := []byte(`{"type":"quota.threshold","data":{"tenant":"acme"}}`)
	ts := strconv.FormatInt(now.Unix(), 10)
	good := independentSignature(t, testWebhookSecret, "alert_1", ts, body)
	otherSecret := billing.NewWebhookSecret()
	header := func(id, ts, sig string) http.Header {
		h := http.Header{}
		for name, v := range map[string]string{"webhook-id": id, "webhook-timestamp": ts, "webhook-signature": sig} {
			if v != "" {
				h.Set(name, v)
			}
		}
		return h
	}
	for _, tc := range []struct {
		name      string
		secret    string
		header    http.Header
		body      []byte
		tolerance time.Duration
		now       time.Time
		want      string // "" means accepted
	}{
		{"valid", testWebhookSecret, header("alert_1", ts, good), body, time.Minute, now, ""},
		{"valid at the edge of tolerance", testWebhookSecret, header("alert_1", ts, good), body, time.Minute, now.Add(time.Minute), ""},
		{"valid among several", testWebhookSecret,
			header("alert_1", ts, "v1,bm90IGl0 v2,"+strings.TrimPrefix(good, "v1,")+" garbage "+good), body, time.Minute, now, ""},
		{"tampered body", testWebhookSecret, header("alert_1", ts, good), []byte(`{"type":"quota.threshold","data":{"tenant":"evil"}}`),
			time.Minute, now, "no v1 signature matches"},
		{"wrong secret", otherSecret, header("alert_1", ts, good), body, time.Minute, now, "no v1 signature matches"},
		{"other id", testWebhookSecret, header("alert_2", ts, good), body, time.Minute, now, "no v1 signature matches"},
		{"signature of another version", testWebhookSecret, header("alert_1", ts, "v2,"+strings.TrimPrefix(good, "v1,")), body,
			time.Minute, now, "no v1 signature matches"},
		{"old timestamp", testWebhookSecret, header("alert_1", ts, good), body, time.Minute, now.Add(61 * time.Second), "old"},
		{"old by default tolerance", testWebhookSecret, header("alert_1", ts, good), body, 0, now.Add(5*time.Minute + time.Second), "old"},
		{"future timestamp", testWebhookSecret, header("alert_1", ts, good), body, time.Minute, now.Add(-61 * time.Second), "future"},
		{"timestamp not a number", testWebhookSecret, header("alert_1", "yesterday", good), body, time.Minute, now, "Unix seconds"},
		{"missing id", testWebhookSecret, header("", ts, good), body, time.Minute, now, "missing webhook-id"},
		{"missing timestamp", testWebhookSecret, header("alert_1", "", good), body, time.Minute, now, "missing webhook-timestamp"},
		{"missing signature", testWebhookSecret, header("alert_1", ts, ""), body, time.Minute, now, "missing webhook-signature"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := billing.VerifyWebhook(tc.secret, tc.header, tc.body, tc.tolerance, tc.now)
			if tc.want == "" {
				if err != nil {
					t.Errorf("VerifyWebhook = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, billing.ErrWebhookSignature) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("VerifyWebhook = %v, want ErrWebhookSignature saying %q", err, tc.want)
			}
		})
	}
	t.Run("bad secret", func(t *testing.T) {
		err := billing.VerifyWebhook("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", header("alert_1", ts, good), body, time.Minute, now)
		requireConfigFieldError(t, err, "secret", "whsec_")
	})
}

// ExampleWebhookNotifier sends an alert to a receiver that verifies it with VerifyWebhook.
func ExampleWebhookNotifier() {
	secret := "whsec_" + base64.StdEncoding.EncodeToString([]byte("a key of at least 24 bytes, shared with the receiver"))
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := billing.VerifyWebhook(secret, r.Header, body, 5*time.Minute, time.Now()); err != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var p billing.WebhookPayload
		_ = json.Unmarshal(body, &p)
		fmt.Printf("%s: %s reached %d%% of its %s quota\n", p.Type, p.Data.Tenant, p.Data.Threshold, p.Data.Resource)
	}))
	defer receiver.Close()

	n, err := billing.NewWebhookNotifier(billing.WebhookConfig{URL: receiver.URL, Secret: secret})
	if err != nil {
		fmt.Println(err)
		return
	}
	err = n.Notify(context.Background(), billing.Alert{ID: "alert_0123", Tenant: "acme", Resource: "tokens.output",
		Period: billing.PeriodMonth, Threshold: 80, Used: 800, Limit: 1000})
	fmt.Println("delivered:", err == nil)
	// Output:
	// quota.threshold: acme reached 80% of its tokens.output quota
	// delivered: true
}
