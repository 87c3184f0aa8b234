package billing_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meterplane/billing"
)

// qNotifier records every Notify call by alert ID; fail decides the outcome of the n-th call
// (1-based) for an alert.
type qNotifier struct {
	mu    sync.Mutex
	calls map[string]int
	order []billing.Alert
	fail  func(a billing.Alert, n int) error
}

func (q *qNotifier) Notify(_ context.Context, a billing.Alert) error {
	q.mu.Lock()
	if q.calls == nil {
		q.calls = map[string]int{}
	}
	q.calls[a.ID]++
	n := q.calls[a.ID]
	q.order = append(q.order, a)
	fail := q.fail
	q.mu.Unlock()
	if fail != nil {
		return fail(a, n)
	}
	return nil
}

func (q *qNotifier) snapshot() (map[string]int, []billing.Alert) {
	q.mu.Lock()
	defer q.mu.Unlock()
	calls := make(map[string]int, len(q.calls))
	for k, v := range q.calls {
		calls[k] = v
	}
	return calls, slices.Clone(q.order)
}

// qWaitFor polls cond every few milliseconds until it holds or the deadline passes.
func qWaitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func qDeliveries(t *testing.T, m *billing.Meter, q billing.DeliveryQuery) []billing.Delivery {
	t.Helper()
	ds, err := m.Deliveries(context.Background(), q)
	if err != nil {
		t.Fatalf("Deliveries: %v", err)
	}
	return ds
}

func qAlerts(t *testing.T, m *billing.Meter) []billing.Alert {
	t.Helper()
	as, err := m.Alerts(context.Background(), billing.AlertQuery{Limit: 1000})
	if err != nil {
		t.Fatalf("Alerts: %v", err)
	}
	return as
}

// qAlertKey is what an alert is about; one alert per key.
type qAlertKey struct {
	Resource    string
	BucketStart time.Time
	Threshold   int
}

// TestAlertOncePerThresholdConcurrent: 64 writers cross thresholds of 50, 80 and 100 percent
// on a soft rule (plain Track) and a hard rule (Reserve+Commit); each threshold alerts exactly
// once per bucket, is delivered once, and is not sent again after a restart. The next day's
// bucket alerts again.
func TestAlertOncePerThresholdConcurrent(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "billing.db")
	clock := qNewClock(qT0)
	st := qOpenStore(t, path)
	n1 := &qNotifier{}
	m, err := billing.New(billing.Config{Store: st, Now: clock.Now, Notifier: n1, AlertPollInterval: 10 * time.Millisecond, Logger: qQuiet})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	thresholds := []int{50, 80, 100}
	soft := billing.QuotaRule{Tenant: "acme", Resource: "tokens", Period: billing.PeriodDay, Limit: 1000, NotifyAt: thresholds}
	hard := billing.QuotaRule{Tenant: "acme", Resource: "requests", Period: billing.PeriodDay, Limit: 1000, Hard: true, NotifyAt: []int{100, 80, 50}}
	qSetQuota(t, m, soft)
	qSetQuota(t, m, hard)

	const writers = 64
	var wg sync.WaitGroup
	var admitted atomic.Int64
	errc := make(chan error, writers)
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 { // 64 x 25 = 1600 tokens: past every threshold of the soft rule
				if err := m.Track(ctx, billing.Event{Tenant: "acme", Resource: "tokens", Quantity: 1}); err != nil {
					errc <- err
					return
				}
				if i >= 20 {
					continue
				}
				// 64 x 20 = 1280 attempts at the hard rule: exactly 1000 are admitted.
				r, err := m.Reserve(ctx, "acme", "requests", 1)
				if errors.Is(err, billing.ErrQuotaExceeded) {
					continue
				}
				if err != nil {
					errc <- err
					return
				}
				if err := r.Commit(ctx, 1); err != nil {
					errc <- err
					return
				}
				admitted.Add(1)
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	if admitted.Load() != 1000 {
		t.Fatalf("%d reservations admitted, want 1000", admitted.Load())
	}
	qWaitFor(t, "6 delivered alerts", func() bool {
		return len(qDeliveries(t, m, billing.DeliveryQuery{Status: billing.DeliveryDelivered})) == 6
	})
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}

	day1 := billing.Span{Start: time.Date(2026, 3, 11, 0, 0, 0, 0, time.UTC), End: qDayEnd}
	alerts := qAlerts(t, m)
	want := map[qAlertKey]bool{}
	for _, res := range []string{"tokens", "requests"} {
		for _, th := range thresholds {
			want[qAlertKey{res, day1.Start, th}] = true
		}
	}
	got := map[qAlertKey]int{}
	ids := map[string]bool{}
	for _, a := range alerts {
		got[qAlertKey{a.Resource, a.Bucket.Start, a.Threshold}]++
		ids[a.ID] = true
		if a.Tenant != "acme" || a.Period != billing.PeriodDay || a.Limit != 1000 || !qSpanEqual(a.Bucket, day1) {
			t.Errorf("alert %+v: want tenant acme, period day, limit 1000, bucket %s", a, qFmtSpan(day1, time.UTC))
		}
		if a.Used*100 < a.Limit*int64(a.Threshold) {
			t.Errorf("alert %s at %d%%: used %d is below the threshold", a.ID, a.Threshold, a.Used)
		}
		if a.Hard != (a.Resource == "requests") {
			t.Errorf("alert %s: Hard = %v for %s", a.ID, a.Hard, a.Resource)
		}
		if want := billing.AlertID(a.Tenant, a.Resource, a.Period, a.Bucket.Start, a.Threshold); a.ID != want {
			t.Errorf("alert ID %s, want the deterministic %s", a.ID, want)
		}
	}
	if len(alerts) != 6 || len(got) != 6 {
		t.Errorf("%d alerts recorded (%d distinct), want 6: %+v", len(alerts), len(got), got)
	}
	for k := range want {
		if got[k] != 1 {
			t.Errorf("alert %+v recorded %d times, want once", k, got[k])
		}
	}
	calls, _ := n1.snapshot()
	if len(calls) != 6 {
		t.Errorf("notifier called for %d alerts, want 6", len(calls))
	}
	for id, n := range calls {
		if n != 1 || !ids[id] {
			t.Errorf("notifier called %d times for %s (recorded: %v), want once", n, id, ids[id])
		}
	}

	// Restart: a new Meter on the reopened store. More usage in the same bucket re-crosses
	// nothing new: no alert, no notification.
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st2 := qOpenStore(t, path)
	n2 := &qNotifier{}
	m2 := qNewMeter(t, billing.Config{Store: st2, Now: clock.Now, Notifier: n2, AlertPollInterval: 10 * time.Millisecond})
	if err := m2.Track(ctx, billing.Event{Tenant: "acme", Resource: "tokens", Quantity: 100}); err != nil {
		t.Fatal(err)
	}
	if err := m2.Track(ctx, billing.Event{Tenant: "acme", Resource: "requests", Quantity: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := m2.Reserve(ctx, "acme", "requests", 1); !errors.Is(err, billing.ErrQuotaExceeded) {
		t.Fatalf("Reserve after the restart: %v, want ErrQuotaExceeded", err)
	}
	if found, err := m2.CheckQuotas(ctx); err != nil || len(found) != 0 {
		t.Errorf("CheckQuotas after the restart = %v, %v; want no new alert", found, err)
	}

	// The next day is a new bucket: crossing 50% and 80% of it alerts again.
	clock.Set(qT0.Add(24 * time.Hour))
	if err := m2.Track(ctx, billing.Event{Tenant: "acme", Resource: "tokens", Quantity: 850}); err != nil {
		t.Fatal(err)
	}
	qWaitFor(t, "2 alerts of the new day delivered", func() bool {
		calls, _ := n2.snapshot()
		return len(calls) >= 2
	})
	if err := m2.Close(); err != nil {
		t.Fatal(err)
	}
	calls2, order2 := n2.snapshot()
	day2 := billing.Span{Start: day1.End, End: day1.End.Add(24 * time.Hour)}
	if len(order2) != 2 || len(calls2) != 2 {
		t.Errorf("after the restart the notifier was called %d times for %d alerts, want 2 (the new day's): %+v", len(order2), len(calls2), order2)
	}
	for _, a := range order2 {
		if a.Resource != "tokens" || !qSpanEqual(a.Bucket, day2) || (a.Threshold != 50 && a.Threshold != 80) {
			t.Errorf("notified after the restart: %+v, want the new day's 50%% and 80%% of tokens", a)
		}
	}
	if all := qAlerts(t, m2); len(all) != 8 {
		t.Errorf("%d alerts recorded in all, want 8", len(all))
	}
	if pending := qDeliveries(t, m2, billing.DeliveryQuery{Status: billing.DeliveryPending}); len(pending) != 0 {
		t.Errorf("%d deliveries still pending: %+v", len(pending), pending)
	}
}

// TestAlertCheckQuotasLoweredRule: lowering a rule below current usage raises no alert by
// itself (no write happens); CheckQuotas finds and records the crossed thresholds, once.
func TestAlertCheckQuotasLoweredRule(t *testing.T) {
	ctx := context.Background()
	n := &qNotifier{}
	m := qNewMeter(t, billing.Config{Now: qNewClock(qT0).Now, Notifier: n, AlertPollInterval: 10 * time.Millisecond})
	rule := billing.QuotaRule{Tenant: "acme", Resource: "tokens", Period: billing.PeriodMonth, Limit: 1000, NotifyAt: []int{80, 100}}
	qSetQuota(t, m, rule)
	if _, err := m.QuotaStatus(ctx, "acme"); err != nil { // load the counter: the write path checks in line
		t.Fatal(err)
	}
	if err := m.Track(ctx, billing.Event{Tenant: "acme", Resource: "tokens", Quantity: 500}); err != nil {
		t.Fatal(err)
	}
	if found, err := m.CheckQuotas(ctx); err != nil || len(found) != 0 {
		t.Fatalf("CheckQuotas at 50%% = %+v, %v; want none", found, err)
	}
	rule.Limit = 400 // usage is now at 125%
	qSetQuota(t, m, rule)
	found, err := m.CheckQuotas(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ths []int
	for _, a := range found {
		ths = append(ths, a.Threshold)
		if a.Limit != 400 || a.Used != 500 || a.Tenant != "acme" || a.Resource != "tokens" {
			t.Errorf("CheckQuotas alert %+v: want limit 400, used 500", a)
		}
	}
	slices.Sort(ths)
	if !slices.Equal(ths, []int{80, 100}) {
		t.Errorf("CheckQuotas after lowering the rule found thresholds %v, want [80 100]", ths)
	}
	if again, err := m.CheckQuotas(ctx); err != nil || len(again) != 0 {
		t.Errorf("second CheckQuotas = %+v, %v; want none", again, err)
	}
	// A write after the change re-checks in line; it finds the same alerts already recorded.
	if err := m.Track(ctx, billing.Event{Tenant: "acme", Resource: "tokens", Quantity: 1}); err != nil {
		t.Fatal(err)
	}
	qWaitFor(t, "both alerts delivered", func() bool {
		return len(qDeliveries(t, m, billing.DeliveryQuery{Status: billing.DeliveryDelivered})) == 2
	})
	m.Close()
	if as := qAlerts(t, m); len(as) != 2 {
		t.Errorf("%d alerts recorded, want 2: %+v", len(as), as)
	}
	calls, _ := n.snapshot()
	if len(calls) != 2 {
		t.Errorf("notifier called for %d alerts, want 2", len(calls))
	}
	for id, c := range calls {
		if c != 1 {
			t.Errorf("alert %s notified %d times, want once", id, c)
		}
	}
}

// TestAlertCheckQuotasDefaultPlan: CheckQuotas also covers tenants that have no record of their
// own and are held to Config.DefaultPlan.
func TestAlertCheckQuotasDefaultPlan(t *testing.T) {
	ctx := context.Background()
	st := qOpenStore(t, ":memory:")
	// The usage is recorded by a Meter that is gone by the time the plan appears: only a scan
	// can notice it. (With one Meter, its write path may already alert the crossing.)
	m0 := qNewMeter(t, billing.Config{Store: st, Now: qNewClock(qT0).Now})
	if err := m0.Track(ctx, billing.Event{Tenant: "walkin", Resource: "tokens", Quantity: 90}); err != nil {
		t.Fatal(err)
	}
	m0.Close()
	m := qNewMeter(t, billing.Config{Store: st, Now: qNewClock(qT0).Now, DefaultPlan: "free", Notifier: &qNotifier{}})
	if err := m.SetPlan(ctx, billing.Plan{ID: "free", Quotas: []billing.QuotaRule{
		{Resource: "tokens", Period: billing.PeriodTotal, Limit: 100, NotifyAt: []int{90}}}}); err != nil {
		t.Fatal(err)
	}
	found, err := m.CheckQuotas(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 1 || found[0].Tenant != "walkin" || found[0].Threshold != 90 || found[0].Period != billing.PeriodTotal {
		t.Errorf("CheckQuotas = %+v, want walkin's 90%% of the total", found)
	}
}

// qFailingNotifierMeter returns a Meter (real clock, short retry intervals) whose notifier
// fails as fail says, and crosses one threshold.
func qFailingNotifierMeter(t *testing.T, notifier billing.Notifier, maxAttempts int) *billing.Meter {
	t.Helper()
	m := qNewMeter(t, billing.Config{Notifier: notifier, AlertRetryBackoff: 5 * time.Millisecond,
		AlertPollInterval: 10 * time.Millisecond, AlertMaxAttempts: maxAttempts})
	qSetQuota(t, m, billing.QuotaRule{Tenant: "acme", Resource: "tokens", Period: billing.PeriodTotal, Limit: 10, NotifyAt: []int{100}})
	if err := m.Track(context.Background(), billing.Event{Tenant: "acme", Resource: "tokens", Quantity: 10}); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestOutboxRetriesSameAlertID: a notifier that fails twice is called a third time with the
// same alert, and the delivery ends delivered after 3 attempts.
func TestOutboxRetriesSameAlertID(t *testing.T) {
	n := &qNotifier{fail: func(_ billing.Alert, n int) error {
		if n <= 2 {
			return fmt.Errorf("receiver down (attempt %d)", n)
		}
		return nil
	}}
	m := qFailingNotifierMeter(t, n, 0)
	qWaitFor(t, "the delivery to succeed", func() bool {
		return len(qDeliveries(t, m, billing.DeliveryQuery{Status: billing.DeliveryDelivered})) == 1
	})
	m.Close()
	calls, order := n.snapshot()
	if len(order) != 3 || len(calls) != 1 {
		t.Fatalf("notifier called %d times for %d alerts, want 3 for 1", len(order), len(calls))
	}
	for _, a := range order[1:] {
		if a.ID != order[0].ID || !a.At.Equal(order[0].At) || a.Used != order[0].Used {
			t.Errorf("retry with a different alert: %+v, first %+v", a, order[0])
		}
	}
	ds := qDeliveries(t, m, billing.DeliveryQuery{})
	if len(ds) != 1 {
		t.Fatalf("%d deliveries, want 1", len(ds))
	}
	d := ds[0]
	if d.Status != billing.DeliveryDelivered || d.Attempts != 3 || d.LastError != "" || d.Alert.ID != order[0].ID {
		t.Errorf("delivery = %+v, want delivered after 3 attempts, no last error, alert %s", d, order[0].ID)
	}
}

// TestOutboxDeadAfterMaxAttempts: a notifier that always fails is tried AlertMaxAttempts times,
// then the delivery is dead, with the last error, and never tried again.
func TestOutboxDeadAfterMaxAttempts(t *testing.T) {
	n := &qNotifier{fail: func(_ billing.Alert, n int) error { return fmt.Errorf("receiver down (attempt %d)", n) }}
	m := qFailingNotifierMeter(t, n, 4)
	qWaitFor(t, "the delivery to die", func() bool {
		return len(qDeliveries(t, m, billing.DeliveryQuery{Status: billing.DeliveryDead})) == 1
	})
	time.Sleep(100 * time.Millisecond) // several poll intervals: a dead delivery is not retried
	m.Close()
	dead := qDeliveries(t, m, billing.DeliveryQuery{Status: billing.DeliveryDead, Tenant: "acme"})
	if len(dead) != 1 || dead[0].Attempts != 4 || dead[0].LastError != "receiver down (attempt 4)" {
		t.Errorf("dead deliveries = %+v, want one after 4 attempts with the last error", dead)
	}
	if pending := qDeliveries(t, m, billing.DeliveryQuery{Status: billing.DeliveryPending}); len(pending) != 0 {
		t.Errorf("pending deliveries = %+v, want none", pending)
	}
	if _, order := n.snapshot(); len(order) != 4 {
		t.Errorf("notifier called %d times, want 4 (AlertMaxAttempts)", len(order))
	}
}

// TestOutboxPendingSurvivesRestart: a delivery that could not be made before Close is made by
// the next Meter on the same store, with the same alert ID.
func TestOutboxPendingSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "billing.db")
	st := qOpenStore(t, path)
	down := &qNotifier{fail: func(billing.Alert, int) error { return errors.New("receiver down") }}
	m, err := billing.New(billing.Config{Store: st, Notifier: down, AlertRetryBackoff: time.Hour, Logger: qQuiet})
	if err != nil {
		t.Fatal(err)
	}
	qSetQuota(t, m, billing.QuotaRule{Tenant: "acme", Resource: "tokens", Period: billing.PeriodTotal, Limit: 10, NotifyAt: []int{100}})
	if err := m.Track(ctx, billing.Event{Tenant: "acme", Resource: "tokens", Quantity: 10}); err != nil {
		t.Fatal(err)
	}
	qWaitFor(t, "a failed attempt", func() bool { _, o := down.snapshot(); return len(o) == 1 })
	m.Close()
	pending := qDeliveries(t, m, billing.DeliveryQuery{Status: billing.DeliveryPending})
	if len(pending) != 1 || pending[0].Attempts != 1 {
		t.Fatalf("pending after Close = %+v, want one with 1 attempt", pending)
	}
	// The next Meter's clock is past the retry time.
	up := &qNotifier{}
	later := func() time.Time { return time.Now().Add(2 * time.Hour) }
	m2 := qNewMeter(t, billing.Config{Store: st, Now: later, Notifier: up, AlertPollInterval: 10 * time.Millisecond})
	qWaitFor(t, "the retry by the next Meter", func() bool { _, o := up.snapshot(); return len(o) == 1 })
	m2.Close()
	_, o := up.snapshot()
	if o[0].ID != pending[0].Alert.ID {
		t.Errorf("retried alert %s, want %s", o[0].ID, pending[0].Alert.ID)
	}
	if ds := qDeliveries(t, m2, billing.DeliveryQuery{}); len(ds) != 1 || ds[0].Status != billing.DeliveryDelivered || ds[0].Attempts != 2 {
		t.Errorf("deliveries = %+v, want one delivered after 2 attempts", ds)
	}
}

// qHMACSHA256 is HMAC-SHA256 written out from RFC 2104, independent of crypto/hmac and of the
// library's signing code: H((K ^ opad) || H((K ^ ipad) || message)).
func qHMACSHA256(key, message []byte) []byte {
	const block = 64
	if len(key) > block {
		sum := sha256.Sum256(key)
		key = sum[:]
	}
	k := make([]byte, block)
	copy(k, key)
	inner := make([]byte, 0, block+len(message))
	outer := make([]byte, 0, block+sha256.Size)
	for _, b := range k {
		inner = append(inner, b^0x36)
		outer = append(outer, b^0x5c)
	}
	ih := sha256.Sum256(append(inner, message...))
	oh := sha256.Sum256(append(outer, ih[:]...))
	return oh[:]
}

// qStandardWebhookSignature computes the Standard Webhooks v1 signature of a request:
// base64(HMAC-SHA256(base64decode(secret without "whsec_"), id + "." + timestamp + "." + body)).
func qStandardWebhookSignature(t *testing.T, secret, id, ts string, body []byte) string {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		t.Fatalf("secret %q is not base64 after whsec_: %v", secret, err)
	}
	msg := append([]byte(id+"."+ts+"."), body...)
	return base64.StdEncoding.EncodeToString(qHMACSHA256(key, msg))
}

func TestAlertHMACKnownAnswer(t *testing.T) {
	// RFC 4231 test case 2.
	got := fmt.Sprintf("%x", qHMACSHA256([]byte("Jefe"), []byte("what do ya want for nothing?")))
	if want := "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"; got != want {
		t.Fatalf("qHMACSHA256 = %s, want %s", got, want)
	}
}

// TestAlertWebhookEndToEnd: a threshold crossing reaches an httptest receiver through the
// outbox and the WebhookNotifier; the receiver fails twice and then accepts. All three requests
// carry the same webhook-id and body, and each one's signature verifies with an independent
// implementation of the Standard Webhooks scheme.
func TestAlertWebhookEndToEnd(t *testing.T) {
	type request struct {
		id, ts, sig string
		body        []byte
	}
	var (
		mu   sync.Mutex
		reqs []request
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		reqs = append(reqs, request{r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp"), r.Header.Get("webhook-signature"), body})
		n := len(reqs)
		mu.Unlock()
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "want a JSON POST", http.StatusBadRequest)
			return
		}
		if n <= 2 {
			http.Error(w, "try later", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	secret := billing.NewWebhookSecret()
	wh, err := billing.NewWebhookNotifier(billing.WebhookConfig{URL: srv.URL + "/hooks/billing", Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	m := qFailingNotifierMeter(t, wh, 0)
	qWaitFor(t, "the webhook delivery to succeed", func() bool {
		return len(qDeliveries(t, m, billing.DeliveryQuery{Status: billing.DeliveryDelivered})) == 1
	})
	m.Close()
	ds := qDeliveries(t, m, billing.DeliveryQuery{})
	if len(ds) != 1 || ds[0].Attempts != 3 || ds[0].Status != billing.DeliveryDelivered {
		t.Fatalf("deliveries = %+v, want one delivered after 3 attempts", ds)
	}
	alert := ds[0].Alert

	mu.Lock()
	defer mu.Unlock()
	if len(reqs) != 3 {
		t.Fatalf("receiver got %d requests, want 3", len(reqs))
	}
	for i, r := range reqs {
		if r.id != alert.ID {
			t.Errorf("request %d: webhook-id %q, want the alert ID %q", i, r.id, alert.ID)
		}
		if !bytes.Equal(r.body, reqs[0].body) {
			t.Errorf("request %d: body differs from the first attempt's:\n%s\n%s", i, r.body, reqs[0].body)
		}
		sec, err := strconv.ParseInt(r.ts, 10, 64)
		if err != nil || time.Since(time.Unix(sec, 0)).Abs() > 5*time.Minute {
			t.Errorf("request %d: webhook-timestamp %q is not a current Unix time", i, r.ts)
		}
		want := qStandardWebhookSignature(t, secret, r.id, r.ts, r.body)
		ok := false
		for _, s := range strings.Fields(r.sig) {
			if s == "v1,"+want {
				ok = true
			}
		}
		if !ok {
			t.Errorf("request %d: webhook-signature %q has no v1 signature equal to v1,%s", i, r.sig, want)
		}
		// A tampered body does not verify.
		if bad := qStandardWebhookSignature(t, secret, r.id, r.ts, append(slices.Clone(r.body), ' ')); strings.Contains(r.sig, bad) {
			t.Errorf("request %d: the signature also matches a tampered body", i)
		}
	}
	var payload struct {
		Type string        `json:"type"`
		Data billing.Alert `json:"data"`
	}
	if err := json.Unmarshal(reqs[0].body, &payload); err != nil {
		t.Fatalf("body is not JSON: %v\n%s", err, reqs[0].body)
	}
	if payload.Type != "quota.threshold" || payload.Data.ID != alert.ID || payload.Data.Tenant != "acme" ||
		payload.Data.Resource != "tokens" || payload.Data.Threshold != 100 || payload.Data.Used != 10 || payload.Data.Limit != 10 {
		t.Errorf("payload = %+v, want the quota.threshold alert %s of acme/tokens at 100%%", payload, alert.ID)
	}
}
