package metrics_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/meterplane/billing"
	"github.com/meterplane/billing/metrics"
	"github.com/meterplane/billing/store/sqlite"
)

var now = time.Date(2026, 11, 14, 12, 0, 0, 0, time.UTC)

// scrape GETs the handler through a real HTTP server and parses the text exposition.
func scrape(t *testing.T, h http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: status %d", resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse exposition: %v", err)
	}
	return fams
}

// value returns the value of the sample of family name whose labels include want.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		t.Fatalf("metric %s missing", name)
	}
next:
	for _, m := range f.Metric {
		got := map[string]string{}
		for _, l := range m.Label {
			got[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if got[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	t.Fatalf("metric %s%v missing", name, want)
	return 0
}

func TestHandler(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "billing.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	notifier := billing.NotifierFunc(func(ctx context.Context, a billing.Alert) error {
		if a.Resource == "messages" {
			return errors.New("mail server down")
		}
		return nil
	})
	m, err := billing.New(billing.Config{Store: st, Now: func() time.Time { return now }, Notifier: notifier,
		AlertMaxAttempts: 1, AlertPollInterval: 10 * time.Millisecond,
		RatePolicies: []billing.RatePolicy{{Resource: "calls", Limit: 1, Window: time.Minute}}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()

	for _, q := range []billing.QuotaRule{
		{Tenant: "acme", Resource: "requests", Period: billing.PeriodDay, Limit: 10, Hard: true, NotifyAt: []int{100}},
		{Tenant: "acme", Resource: "messages", Period: billing.PeriodDay, Limit: 1, NotifyAt: []int{100}},
	} {
		if err := m.SetQuota(ctx, q); err != nil {
			t.Fatalf("SetQuota: %v", err)
		}
	}
	ev := func(id, res string, n int64) billing.Event {
		return billing.Event{ID: id, Tenant: "acme", Resource: res, Quantity: n}
	}
	if err := m.Track(ctx, ev("e1", "requests", 4), ev("e2", "requests", 6), ev("e3", "messages", 1)); err != nil {
		t.Fatalf("Track: %v", err)
	}
	if err := m.Track(ctx, ev("e1", "requests", 4)); err != nil {
		t.Fatalf("Track duplicate: %v", err)
	}
	if err := m.Track(ctx, ev("e1", "requests", 5)); !errors.Is(err, billing.ErrEventConflict) {
		t.Fatalf("Track conflict: got %v, want ErrEventConflict", err)
	}
	if _, err := m.Reserve(ctx, "acme", "requests", 1); !errors.Is(err, billing.ErrQuotaExceeded) {
		t.Fatalf("Reserve: got %v, want ErrQuotaExceeded", err)
	}
	for i, want := range []bool{true, false, false} {
		d, err := m.Allow(ctx, "acme", "calls", 1)
		if err != nil || d.Allowed != want {
			t.Fatalf("Allow #%d: %+v, %v; want allowed %v", i, d, err, want)
		}
	}
	// Alerts and their deliveries are asynchronous: wait for both deliveries to finish.
	deadline := time.Now().Add(10 * time.Second)
	for s := m.Stats(); s.DeliveriesOK+s.DeliveriesDead < 2; s = m.Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("deliveries did not finish: %+v", s)
		}
		time.Sleep(5 * time.Millisecond)
	}

	fams := scrape(t, metrics.Handler(m))
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"billing_events_total", map[string]string{"result": "inserted"}, 3},
		{"billing_events_total", map[string]string{"result": "duplicate"}, 1},
		{"billing_events_total", map[string]string{"result": "conflict"}, 1},
		{"billing_events_total", map[string]string{"result": "closed"}, 0},
		{"billing_events_total", map[string]string{"result": "failed"}, 0},
		{"billing_commit_errors_total", nil, 0},
		{"billing_batch_size", nil, 3}, // three Track calls, each its own transaction
		{"billing_commit_seconds", nil, 3},
		{"billing_queue_depth", nil, 0},
		{"billing_queue_capacity", nil, billing.DefaultQueueSize},
		{"billing_refusals_total", map[string]string{"reason": "quota"}, 1},
		{"billing_refusals_total", map[string]string{"reason": "rate"}, 2},
		{"billing_alerts_total", nil, 2},
		{"billing_alert_deliveries_total", map[string]string{"result": "ok"}, 1},
		{"billing_alert_deliveries_total", map[string]string{"result": "failed"}, 0},
		{"billing_alert_deliveries_total", map[string]string{"result": "dead"}, 1},
	} {
		if got := value(t, fams, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}

	// The batch-size histogram: the first call (3 events) lands in the le="5" bucket, the
	// single-event calls in le="1"; its sum is the events committed.
	h := fams["billing_batch_size"].Metric[0].Histogram
	if h.GetSampleSum() != 5 {
		t.Errorf("billing_batch_size sum = %v, want 5", h.GetSampleSum())
	}
	cum := map[float64]uint64{}
	for _, b := range h.Bucket {
		cum[b.GetUpperBound()] = b.GetCumulativeCount()
	}
	if cum[1] != 2 || cum[2] != 2 || cum[5] != 3 {
		t.Errorf("billing_batch_size buckets le=1,2,5 = %d,%d,%d; want 2,2,3", cum[1], cum[2], cum[5])
	}
	if ct := fams["billing_events_total"].GetType(); ct != dto.MetricType_COUNTER {
		t.Errorf("billing_events_total type %v, want counter", ct)
	}
}

func TestLabeledCollectorsShareRegistry(t *testing.T) {
	var ms []*billing.Meter
	for range 2 {
		st, err := sqlite.Open(":memory:")
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		m, err := billing.New(billing.Config{Store: st, Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		ms = append(ms, m)
	}
	if err := ms[1].Track(context.Background(), billing.Event{Tenant: "t", Resource: "requests", Quantity: 1}); err != nil {
		t.Fatal(err)
	}
	reg := prometheusRegistry(t, ms)
	fams := scrape(t, reg)
	if got := value(t, fams, "billing_events_total", map[string]string{"meter": "b", "result": "inserted"}); got != 1 {
		t.Errorf(`billing_events_total{meter="b",result="inserted"} = %v, want 1`, got)
	}
	if got := value(t, fams, "billing_events_total", map[string]string{"meter": "a", "result": "inserted"}); got != 0 {
		t.Errorf(`billing_events_total{meter="a",result="inserted"} = %v, want 0`, got)
	}
}

// TestJobRuns: the runs of Meter.Run's jobs are exported per job and result.
func TestJobRuns(t *testing.T) {
	st, err := sqlite.Open(":memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	m, err := billing.New(billing.Config{Store: st, CheckInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- m.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for m.JobRuns()[billing.JobCheckQuotas].Runs == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	fams := scrape(t, metrics.Handler(m))
	want := m.JobRuns()[billing.JobCheckQuotas].Runs
	if got := value(t, fams, "billing_job_runs_total", map[string]string{"job": billing.JobCheckQuotas, "result": "ok"}); want == 0 || got != float64(want) {
		t.Errorf("billing_job_runs_total{job=check-quotas,result=ok} = %v, want %d (> 0)", got, want)
	}
	// A run that Run's cancellation interrupts counts as failed.
	if got, want := value(t, fams, "billing_job_runs_total", map[string]string{"job": billing.JobCheckQuotas, "result": "failed"}),
		m.JobRuns()[billing.JobCheckQuotas].Failures; got != float64(want) {
		t.Errorf("failed runs = %v, want %d", got, want)
	}
}
