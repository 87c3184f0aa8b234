package billing_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/meterplane/billing"
)

// TestRatePolicySources checks where a tenant's rate policy comes from: its own override, then its
// plan, then Config.RatePolicies; and that deleting the override restores the plan's.
func TestRatePolicySources(t *testing.T) {
	ctx := context.Background()
	m := newMeter(t, billing.Config{Now: fixedClock, RatePolicies: []billing.RatePolicy{
		{Resource: "requests", Limit: 2, Window: time.Minute},
	}})
	if err := m.SetPlan(ctx, billing.Plan{ID: "pro", Rates: []billing.RatePolicy{
		{Resource: "requests", Limit: 5, Window: time.Minute},
	}}); err != nil {
		t.Fatal(err)
	}
	if err := m.AssignPlan(ctx, "acme", "pro"); err != nil {
		t.Fatal(err)
	}
	allowed := func(tenant string, tries int) int {
		t.Helper()
		n := 0
		for i := 0; i < tries; i++ {
			d, err := m.Allow(ctx, tenant, "requests", 1)
			if err != nil {
				t.Fatal(err)
			}
			if d.Allowed {
				n++
			}
		}
		return n
	}
	if got := allowed("nobody", 10); got != 2 {
		t.Errorf("tenant without plan: %d allowed, want 2 (Config.RatePolicies)", got)
	}
	if got := allowed("acme", 10); got != 5 {
		t.Errorf("tenant on pro: %d allowed, want 5 (the plan's policy)", got)
	}
	if err := m.SetRatePolicy(ctx, "acme", billing.RatePolicy{Resource: "requests", Limit: 8, Window: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if err := m.ClearRateLimit(ctx, "acme", ""); err != nil {
		t.Fatal(err)
	}
	if got := allowed("acme", 10); got != 8 {
		t.Errorf("tenant override: %d allowed, want 8", got)
	}
	st, err := m.RateLimitStatus(ctx, "acme")
	if err != nil || len(st) != 1 || st[0].Limit != 8 || st[0].Remaining != 0 {
		t.Errorf("RateLimitStatus = %+v, %v; want one state with limit 8 and nothing remaining", st, err)
	}
	if err := m.DeleteRatePolicy(ctx, "acme", "requests"); err != nil {
		t.Fatal(err)
	}
	if err := m.DeleteRatePolicy(ctx, "acme", "requests"); !errors.Is(err, billing.ErrNotFound) {
		t.Errorf("second delete: %v, want ErrNotFound", err)
	}
	if err := m.ClearRateLimit(ctx, "acme", ""); err != nil {
		t.Fatal(err)
	}
	if got := allowed("acme", 10); got != 5 {
		t.Errorf("after deleting the override: %d allowed, want 5 (the plan's again)", got)
	}
}

func TestRatePolicyBadInput(t *testing.T) {
	ctx := context.Background()
	m := newMeter(t, billing.Config{Now: fixedClock})
	err := m.SetRatePolicy(ctx, "acme", billing.RatePolicy{Resource: "requests", Limit: 0, Window: time.Minute})
	requireFieldError(t, err, billing.ErrInvalidConfig, "limit")
	err = m.SetRatePolicy(ctx, "acme", billing.RatePolicy{Resource: "requests", Limit: 1, Window: -time.Second})
	requireFieldError(t, err, billing.ErrInvalidConfig, "window")
	err = m.SetRatePolicy(ctx, "", billing.RatePolicy{Resource: "requests", Limit: 1, Window: time.Second})
	requireFieldError(t, err, billing.ErrInvalidConfig, "tenant")
	err = m.SetPlan(ctx, billing.Plan{ID: "p", Rates: []billing.RatePolicy{
		{Resource: "requests", Limit: 1, Window: time.Second},
		{Resource: "requests", Limit: 2, Window: time.Second},
	}})
	requireFieldError(t, err, billing.ErrInvalidConfig, "plan.rates[1]")
	err = m.SetPlan(ctx, billing.Plan{ID: "p", Rates: []billing.RatePolicy{{Resource: "requests", Limit: 1}}})
	requireFieldError(t, err, billing.ErrInvalidConfig, "plan.rates[0].window")
}
