package billing_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/meterplane/billing"
)

// TestReserveExpiresAfterTTL: units of a reservation that is never committed return after
// Config.ReservationTTL, not a nanosecond earlier.
func TestReserveExpiresAfterTTL(t *testing.T) {
	ctx := context.Background()
	clock := qNewClock(qT0)
	const ttl = time.Minute
	m := qNewMeter(t, billing.Config{Now: clock.Now, ReservationTTL: ttl})
	rule := billing.QuotaRule{Tenant: "acme", Resource: "requests", Period: billing.PeriodDay, Limit: 100, Hard: true}
	qSetQuota(t, m, rule)

	r1, err := m.Reserve(ctx, "acme", "requests", 60)
	if err != nil {
		t.Fatal(err)
	}
	if want := qT0.Add(ttl); !r1.Expires.Equal(want) {
		t.Errorf("Expires = %v, want %v", r1.Expires, want)
	}
	clock.Add(30 * time.Second)
	r2, err := m.Reserve(ctx, "acme", "requests", 40)
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.Reserve(ctx, "acme", "requests", 1)
	if p := qCheckRefusal(err, rule, 1, qDayEnd); p != "" {
		t.Fatal(p)
	}

	clock.Set(qT0.Add(ttl - time.Nanosecond))
	if s := qState(t, m, "acme", "requests", billing.PeriodDay); s.Reserved != 100 || s.Remaining != 0 {
		t.Errorf("just before the TTL: reserved %d remaining %d, want 100 and 0", s.Reserved, s.Remaining)
	}
	if _, err := m.Reserve(ctx, "acme", "requests", 1); !errors.Is(err, billing.ErrQuotaExceeded) {
		t.Errorf("Reserve just before the TTL: err = %v, want ErrQuotaExceeded", err)
	}

	clock.Set(qT0.Add(ttl)) // r1 expires; r2 (30s younger) still holds 40
	if s := qState(t, m, "acme", "requests", billing.PeriodDay); s.Reserved != 40 || s.Remaining != 60 || s.Used != 0 {
		t.Errorf("at r1's expiry: used %d reserved %d remaining %d, want 0, 40, 60", s.Used, s.Reserved, s.Remaining)
	}
	r3, err := m.Reserve(ctx, "acme", "requests", 60)
	if err != nil {
		t.Fatalf("Reserve of the 60 units returned by the expired reservation: %v", err)
	}

	clock.Set(qT0.Add(30*time.Second + ttl)) // r2 expires too
	if s := qState(t, m, "acme", "requests", billing.PeriodDay); s.Reserved != 60 {
		t.Errorf("after r2's expiry: reserved %d, want 60 (r3's)", s.Reserved)
	}

	// Commit after expiry still records the usage: it happened.
	if err := r1.Commit(ctx, 25); err != nil {
		t.Fatalf("Commit after expiry: %v", err)
	}
	s := qState(t, m, "acme", "requests", billing.PeriodDay)
	if s.Used != 25 || s.Reserved != 60 {
		t.Errorf("after committing the expired r1: used %d reserved %d, want 25 and 60", s.Used, s.Reserved)
	}
	// Cancel of an expired reservation is harmless: it releases nothing it no longer holds.
	if err := r2.Cancel(ctx); err != nil {
		t.Fatalf("Cancel after expiry: %v", err)
	}
	if s := qState(t, m, "acme", "requests", billing.PeriodDay); s.Reserved != 60 {
		t.Errorf("after cancelling the expired r2: reserved %d, want 60", s.Reserved)
	}
	if err := r3.Commit(ctx, 60); err != nil {
		t.Fatal(err)
	}
	if s := qState(t, m, "acme", "requests", billing.PeriodDay); s.Used != 85 || s.Reserved != 0 {
		t.Errorf("final: used %d reserved %d, want 85 and 0", s.Used, s.Reserved)
	}
	if sum, n := qUsage(t, m, "acme", "requests"); sum != 85 || n != 2 {
		t.Errorf("Usage: %d units in %d events, want 85 in 2", sum, n)
	}
}

// TestReserveExpiryManyHolds: many expired holds return all their units at once, while younger
// ones keep theirs.
func TestReserveExpiryManyHolds(t *testing.T) {
	ctx := context.Background()
	clock := qNewClock(qT0)
	m := qNewMeter(t, billing.Config{Now: clock.Now, ReservationTTL: time.Minute})
	qSetQuota(t, m, billing.QuotaRule{Tenant: "acme", Resource: "requests", Period: billing.PeriodDay, Limit: 1000, Hard: true})
	var young []*billing.Reservation
	for i := range 500 {
		if i == 300 {
			clock.Add(time.Second)
		}
		r, err := m.Reserve(ctx, "acme", "requests", 2)
		if err != nil {
			t.Fatalf("Reserve #%d: %v", i, err)
		}
		if i >= 300 {
			young = append(young, r)
		}
	}
	if _, err := m.Reserve(ctx, "acme", "requests", 1); !errors.Is(err, billing.ErrQuotaExceeded) {
		t.Fatalf("Reserve at the limit: %v", err)
	}
	// Release some of the young ones early, leaving stale entries behind.
	for _, r := range young[:150] {
		if err := r.Cancel(ctx); err != nil {
			t.Fatal(err)
		}
	}
	clock.Set(qT0.Add(time.Minute)) // the 300 old holds expire
	if s := qState(t, m, "acme", "requests", billing.PeriodDay); s.Reserved != 100 {
		t.Errorf("reserved %d, want 100 (50 young holds of 2)", s.Reserved)
	}
	clock.Set(qT0.Add(time.Minute + time.Second))
	if s := qState(t, m, "acme", "requests", billing.PeriodDay); s.Reserved != 0 || s.Remaining != 1000 {
		t.Errorf("reserved %d remaining %d, want 0 and 1000", s.Reserved, s.Remaining)
	}
}

// TestReserveCommitCancelIdempotent checks every pair of Commit and Cancel.
func TestReserveCommitCancelIdempotent(t *testing.T) {
	ctx := context.Background()
	m := qNewMeter(t, billing.Config{Now: qNewClock(qT0).Now})
	qSetQuota(t, m, billing.QuotaRule{Tenant: "acme", Resource: "requests", Period: billing.PeriodDay, Limit: 100, Hard: true})
	reserve := func() *billing.Reservation {
		t.Helper()
		r, err := m.Reserve(ctx, "acme", "requests", 10)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}

	// Commit twice: one event; the second Commit (even with another amount) is a no-op.
	r := reserve()
	r.Attrs = map[string]string{"model": "m1"}
	if err := r.Commit(ctx, 7); err != nil {
		t.Fatal(err)
	}
	if err := r.Commit(ctx, 7); err != nil {
		t.Errorf("second Commit: %v, want nil", err)
	}
	if err := r.Commit(ctx, 9); err != nil {
		t.Errorf("third Commit with another amount: %v, want nil (no-op)", err)
	}
	if sum, n := qUsage(t, m, "acme", "requests"); sum != 7 || n != 1 {
		t.Errorf("after Commit x3: %d units in %d events, want 7 in 1", sum, n)
	}
	rows, err := m.Usage(ctx, billing.UsageQuery{Tenant: "acme", Resource: "requests", GroupBy: []string{"model"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Group["model"] != "m1" {
		t.Errorf("usage by model = %+v, want one row of model m1 (Attrs recorded)", rows)
	}
	// Cancel after Commit: an error, and nothing changes.
	if err := r.Cancel(ctx); err == nil {
		t.Error("Cancel after Commit: nil, want an error")
	}

	// Cancel twice: nil; Commit after Cancel: an error, nothing recorded.
	r = reserve()
	if err := r.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Cancel(ctx); err != nil {
		t.Errorf("Cancel after Cancel: %v, want nil", err)
	}
	if err := r.Commit(ctx, 5); err == nil {
		t.Error("Commit after Cancel: nil, want an error")
	}

	// Commit of zero: nothing recorded, everything released; then Cancel is an error.
	r = reserve()
	if err := r.Commit(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if err := r.Cancel(ctx); err == nil {
		t.Error("Cancel after Commit(0): nil, want an error")
	}

	s := qState(t, m, "acme", "requests", billing.PeriodDay)
	if s.Used != 7 || s.Reserved != 0 {
		t.Errorf("QuotaStatus: used %d reserved %d, want 7 and 0", s.Used, s.Reserved)
	}
	if sum, n := qUsage(t, m, "acme", "requests"); sum != 7 || n != 1 {
		t.Errorf("Usage: %d units in %d events, want 7 in 1", sum, n)
	}

	// Concurrent Commits of one reservation: exactly one event.
	r = reserve()
	done := make(chan error, 16)
	for range 16 {
		go func() { done <- r.Commit(ctx, 3) }()
	}
	for range 16 {
		if err := <-done; err != nil {
			t.Errorf("concurrent Commit: %v", err)
		}
	}
	if sum, n := qUsage(t, m, "acme", "requests"); sum != 10 || n != 2 {
		t.Errorf("after 16 concurrent Commits: %d units in %d events, want 10 in 2", sum, n)
	}
}

// TestReserveCommitMoreThanReserved: the excess is recorded and counted; the status shows it.
func TestReserveCommitMoreThanReserved(t *testing.T) {
	ctx := context.Background()
	m := qNewMeter(t, billing.Config{Now: qNewClock(qT0).Now})
	rule := billing.QuotaRule{Tenant: "acme", Resource: "requests", Period: billing.PeriodDay, Limit: 100, Hard: true}
	qSetQuota(t, m, rule)
	r, err := m.Reserve(ctx, "acme", "requests", 10)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Commit(ctx, 150); err != nil {
		t.Fatalf("Commit of more than reserved: %v", err)
	}
	s := qState(t, m, "acme", "requests", billing.PeriodDay)
	if s.Used != 150 || s.Reserved != 0 || !s.Exceeded || !s.HardExceeded || s.Remaining != 0 || s.Percent != 150 {
		t.Errorf("QuotaStatus = %+v, want used 150, reserved 0, 150%%, exceeded", s)
	}
	if sum, _ := qUsage(t, m, "acme", "requests"); sum != 150 {
		t.Errorf("Usage = %d, want 150", sum)
	}
	_, err = m.Reserve(ctx, "acme", "requests", 1)
	if p := qCheckRefusal(err, rule, 1, qDayEnd); p != "" {
		t.Error(p)
	}
}

// TestReserveWithoutRuleIsFree: a resource without a rule admits anything and Commit only
// tracks.
func TestReserveWithoutRuleIsFree(t *testing.T) {
	ctx := context.Background()
	m := qNewMeter(t, billing.Config{Now: qNewClock(qT0).Now})
	qSetQuota(t, m, billing.QuotaRule{Tenant: "acme", Resource: "requests", Period: billing.PeriodDay, Limit: 1, Hard: true})
	r, err := m.Reserve(ctx, "acme", "tokens", billing.MaxQuantity)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Commit(ctx, 42); err != nil {
		t.Fatal(err)
	}
	if sum, _ := qUsage(t, m, "acme", "tokens"); sum != 42 {
		t.Errorf("Usage = %d, want 42", sum)
	}
}

// TestReserveCrashKeepsCommittedUsage: usage committed in durable mode survives closing
// everything and reopening; reservations do not.
func TestReserveCrashKeepsCommittedUsage(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "billing.db")
	clock := qNewClock(qT0)
	st := qOpenStore(t, path)
	m, err := billing.New(billing.Config{Store: st, Now: clock.Now, Logger: qQuiet})
	if err != nil {
		t.Fatal(err)
	}
	qSetQuota(t, m, billing.QuotaRule{Tenant: "acme", Resource: "requests", Period: billing.PeriodMonth, Limit: 1000, Hard: true})
	for i := range 20 {
		r, err := m.Reserve(ctx, "acme", "requests", 10)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Commit(ctx, int64(i%10+1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Track(ctx, billing.Event{Tenant: "acme", Resource: "requests", Quantity: 5}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Reserve(ctx, "acme", "requests", 300); err != nil { // left open
		t.Fatal(err)
	}
	before := qState(t, m, "acme", "requests", billing.PeriodMonth)
	if before.Used != 115 || before.Reserved != 300 {
		t.Fatalf("before the crash: used %d reserved %d, want 115 and 300", before.Used, before.Reserved)
	}
	// The "crash": nothing but closing the Meter and the Store.
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st2 := qOpenStore(t, path)
	m2 := qNewMeter(t, billing.Config{Store: st2, Now: clock.Now})
	after := qState(t, m2, "acme", "requests", billing.PeriodMonth)
	if after.Used != before.Used || after.Reserved != 0 || after.Remaining != 1000-before.Used {
		t.Errorf("after reopening: used %d reserved %d remaining %d, want %d, 0, %d",
			after.Used, after.Reserved, after.Remaining, before.Used, 1000-before.Used)
	}
	if sum, n := qUsage(t, m2, "acme", "requests"); sum != 115 || n != 21 {
		t.Errorf("Usage after reopening: %d units in %d events, want 115 in 21", sum, n)
	}
	if _, err := m2.Reserve(ctx, "acme", "requests", 1000-before.Used); err != nil {
		t.Errorf("Reserve of everything left after reopening: %v", err)
	}
}
