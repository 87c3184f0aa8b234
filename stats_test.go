package billing_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/meterplane/billing"
)

func TestStatsCountsOutcomes(t *testing.T) {
	ctx := context.Background()
	m := newMeter(t, billing.Config{})
	if got := m.Stats(); got.EventsInserted != 0 || got.BatchSize.Count != 0 || got.QueueCapacity != billing.DefaultQueueSize {
		t.Fatalf("fresh Meter: %+v", got)
	}
	ev := func(id string, n int64) billing.Event {
		return billing.Event{ID: id, Tenant: "acme", Resource: "requests", Quantity: n}
	}
	if err := m.Track(ctx, ev("a", 1), ev("b", 2)); err != nil {
		t.Fatal(err)
	}
	if err := m.Track(ctx, ev("a", 1)); err != nil {
		t.Fatal(err)
	}
	if err := m.Track(ctx, ev("b", 3)); !errors.Is(err, billing.ErrEventConflict) {
		t.Fatalf("conflict: %v", err)
	}
	s := m.Stats()
	got := []uint64{s.EventsInserted, s.EventsDuplicate, s.EventsConflict, s.EventsClosed, s.EventsFailed, s.BatchesCommitted, s.CommitErrors}
	if diff := cmp.Diff([]uint64{2, 1, 1, 0, 0, 3, 0}, got); diff != "" {
		t.Errorf("inserted, duplicate, conflict, closed, failed, batches, errors (-want +got):\n%s", diff)
	}
	// Batches of 2, 1 and 1 events.
	want := make([]uint64, len(billing.BatchSizeBounds)+1)
	want[0], want[1] = 2, 1
	if diff := cmp.Diff(want, s.BatchSize.Counts); diff != "" {
		t.Errorf("batch size buckets (-want +got):\n%s", diff)
	}
	if s.BatchSize.Count != 3 || s.BatchSize.Sum != 4 {
		t.Errorf("batch size count %d sum %v, want 3 and 4", s.BatchSize.Count, s.BatchSize.Sum)
	}
	if s.CommitSeconds.Count != 3 || s.CommitSeconds.Sum <= 0 {
		t.Errorf("commit seconds count %d sum %v", s.CommitSeconds.Count, s.CommitSeconds.Sum)
	}
}

func TestStatsRefusalsAndNoDelivery(t *testing.T) {
	ctx := context.Background()
	delivered := make(chan billing.Alert, 4)
	m := newMeter(t, billing.Config{NoDelivery: true, AlertPollInterval: time.Millisecond,
		Notifier:     billing.NotifierFunc(func(ctx context.Context, a billing.Alert) error { delivered <- a; return nil }),
		RatePolicies: []billing.RatePolicy{{Resource: "calls", Limit: 1, Window: time.Hour}}})
	if err := m.SetQuota(ctx, billing.QuotaRule{Tenant: "acme", Resource: "requests", Period: billing.PeriodDay,
		Limit: 2, Hard: true, NotifyAt: []int{100}}); err != nil {
		t.Fatal(err)
	}
	if err := m.Track(ctx, billing.Event{Tenant: "acme", Resource: "requests", Quantity: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Reserve(ctx, "acme", "requests", 1); !errors.Is(err, billing.ErrQuotaExceeded) {
		t.Fatalf("Reserve: %v", err)
	}
	for range 3 {
		if _, err := m.Allow(ctx, "acme", "calls", 1); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.Allow(ctx, "acme", "calls", 5); !errors.Is(err, billing.ErrExceedsBurst) {
		t.Fatalf("Allow above burst: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for m.Stats().AlertsRecorded == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	m.Close()
	s := m.Stats()
	if s.QuotaRefusals != 1 || s.RateRefusals != 3 || s.AlertsRecorded != 1 {
		t.Errorf("quota %d rate %d alerts %d, want 1, 3, 1", s.QuotaRefusals, s.RateRefusals, s.AlertsRecorded)
	}
	// NoDelivery: the alert waits in the outbox for another process.
	if s.DeliveriesOK+s.DeliveriesFailed+s.DeliveriesDead != 0 || len(delivered) != 0 {
		t.Errorf("a NoDelivery Meter delivered: %+v", s)
	}
}
