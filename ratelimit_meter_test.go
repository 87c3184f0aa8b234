package billing_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/meterplane/billing"
	"github.com/meterplane/billing/store/sqlite"
)

// newRateMeter returns a Meter on an in-memory SQLite store with policies, at the instant *now.
func newRateMeter(t *testing.T, now *time.Time, policies ...billing.RatePolicy) *billing.Meter {
	t.Helper()
	st, err := sqlite.Open(":memory:")
	if err != nil {
		t.Fatal(err)
	}
	m, err := billing.New(billing.Config{Store: st, RatePolicies: policies, Now: func() time.Time { return *now }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		m.Close()
		st.Close()
	})
	return m
}

var (
	requestsPolicy = billing.RatePolicy{Resource: "requests", Limit: 2, Window: time.Second}
	tokensPolicy   = billing.RatePolicy{Resource: "tokens.output", Limit: 600, Window: time.Minute, Burst: 100}
)

func TestMeterAllow(t *testing.T) {
	ctx := context.Background()
	now := rateT0
	m := newRateMeter(t, &now, requestsPolicy, tokensPolicy)

	for i, want := range []billing.Decision{
		{Allowed: true, Limit: 2, Remaining: 1, ResetAfter: 500 * time.Millisecond, Policy: requestsPolicy},
		{Allowed: true, Limit: 2, Remaining: 0, ResetAfter: time.Second, Policy: requestsPolicy},
		{Allowed: false, Limit: 2, Remaining: 0, RetryAfter: 500 * time.Millisecond, ResetAfter: time.Second, Policy: requestsPolicy},
	} {
		d, err := m.Allow(ctx, "acme", "requests", 1)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, d); diff != "" {
			t.Errorf("call %d (-want +got):\n%s", i, diff)
		}
	}
	// Tenants have their own counters.
	if d, err := m.Allow(ctx, "globex", "requests", 1); err != nil || !d.Allowed {
		t.Errorf("another tenant: %+v, %v; want allowed", d, err)
	}

	// An ordinary refusal is a Decision, and d.Err() turns it into an error matching ErrRateLimited.
	d, err := m.Allow(ctx, "acme", "requests", 1)
	if err != nil || d.Allowed {
		t.Fatalf("refusal: %+v, %v", d, err)
	}
	err = d.Err()
	var rle *billing.RateLimitedError
	if !errors.Is(err, billing.ErrRateLimited) || !errors.As(err, &rle) || rle.Decision.RetryAfter != 500*time.Millisecond {
		t.Errorf("d.Err() = %#v, want a *RateLimitedError matching ErrRateLimited", err)
	}
	if errors.Is(err, billing.ErrExceedsBurst) {
		t.Errorf("an ordinary refusal matches ErrExceedsBurst")
	}
	if want := `billing: rate limited: "requests": 2 per 1s (burst 2); retry after 500ms`; err.Error() != want {
		t.Errorf("message %q, want %q", err.Error(), want)
	}

	// n above the burst can never pass: a distinct error, nothing counted.
	d, err = m.Allow(ctx, "acme", "tokens.output", 101)
	if !errors.Is(err, billing.ErrExceedsBurst) || errors.Is(err, billing.ErrRateLimited) || d.Allowed {
		t.Errorf("n > burst: %+v, %v; want ErrExceedsBurst only", d, err)
	}
	if err != nil && !strings.Contains(err.Error(), "no wait admits it") {
		t.Errorf("n > burst message %q does not say it can never pass", err)
	}
	if d.Remaining != 100 || d.Limit != 600 {
		t.Errorf("n > burst decision %+v, want the counter's state (remaining 100)", d)
	}
	if d, err := m.Allow(ctx, "acme", "tokens.output", 100); err != nil || !d.Allowed || d.Remaining != 0 {
		t.Errorf("n == burst: %+v, %v; want allowed", d, err)
	}

	// A resource without a policy is not limited.
	for i := 0; i < 10; i++ {
		d, err := m.Allow(ctx, "acme", "messages", 1000)
		if err != nil || d != (billing.Decision{Allowed: true}) {
			t.Fatalf("no policy: %+v, %v; want Decision{Allowed: true} (Limit 0)", d, err)
		}
		if d.Err() != nil {
			t.Fatalf("no policy: d.Err() = %v", d.Err())
		}
	}

	// Time refills.
	now = now.Add(time.Second)
	if d, err := m.Allow(ctx, "acme", "requests", 2); err != nil || !d.Allowed {
		t.Errorf("after a second: %+v, %v; want allowed", d, err)
	}
}

func TestMeterAllowBadInput(t *testing.T) {
	ctx := context.Background()
	now := rateT0
	m := newRateMeter(t, &now, requestsPolicy)
	for _, c := range []struct {
		tenant, resource string
		n                int64
		field            string
	}{
		{"", "requests", 1, "tenant"},
		{"acme\x00", "requests", 1, "tenant"},
		{strings.Repeat("a", billing.MaxNameLen+1), "requests", 1, "tenant"},
		{"acme", "", 1, "resource"},
		{"acme", "req uests", 1, "resource"},
		{"acme", "requests", 0, "n"},
		{"acme", "requests", -1, "n"},
	} {
		_, err := m.Allow(ctx, c.tenant, c.resource, c.n)
		var fe *billing.FieldError
		if !errors.As(err, &fe) || fe.Field != c.field || !errors.Is(err, billing.ErrInvalidQuery) {
			t.Errorf("Allow(%q, %q, %d) = %v, want a *FieldError for %q matching ErrInvalidQuery",
				c.tenant, c.resource, c.n, err, c.field)
		}
	}
	if _, err := m.RateLimitStatus(ctx, ""); !errors.Is(err, billing.ErrInvalidQuery) {
		t.Errorf("RateLimitStatus(\"\") = %v, want ErrInvalidQuery", err)
	}
	if err := m.ClearRateLimit(ctx, "", ""); !errors.Is(err, billing.ErrInvalidQuery) {
		t.Errorf("ClearRateLimit(\"\", \"\") = %v, want ErrInvalidQuery", err)
	}
	if err := m.ClearRateLimit(ctx, "acme", "bad resource"); !errors.Is(err, billing.ErrInvalidQuery) {
		t.Errorf("ClearRateLimit(acme, bad resource) = %v, want ErrInvalidQuery", err)
	}
}

func TestNewValidatesRatePolicies(t *testing.T) {
	st, err := sqlite.Open(":memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, c := range []struct {
		policies []billing.RatePolicy
		field    string
	}{
		{[]billing.RatePolicy{{Limit: 1, Window: time.Second}}, "RatePolicies[0].resource"},
		{[]billing.RatePolicy{requestsPolicy, {Resource: "x", Window: time.Second}}, "RatePolicies[1].limit"},
		{[]billing.RatePolicy{{Resource: "x", Limit: 1}}, "RatePolicies[0].window"},
		{[]billing.RatePolicy{{Resource: "x", Limit: 1, Window: -time.Second}}, "RatePolicies[0].window"},
		{[]billing.RatePolicy{{Resource: "x", Limit: 1, Window: time.Second, Burst: -2}}, "RatePolicies[0].burst"},
		{[]billing.RatePolicy{requestsPolicy, tokensPolicy, requestsPolicy}, "RatePolicies[2].resource"},
	} {
		m, err := billing.New(billing.Config{Store: st, RatePolicies: c.policies})
		if m != nil {
			m.Close()
		}
		var fe *billing.FieldError
		if !errors.As(err, &fe) || fe.Field != c.field || !errors.Is(err, billing.ErrInvalidConfig) {
			t.Errorf("New(%+v) = %v, want a *FieldError for %q matching ErrInvalidConfig", c.policies, err, c.field)
		}
	}
	if err := (billing.RatePolicy{Resource: "requests", Limit: 0, Window: time.Second}).Validate(); err == nil ||
		err.Error() != "billing: invalid config: limit: must be > 0 (got 0)" {
		t.Errorf("Validate() = %v", err)
	}
}

func TestMeterRateLimitStatusAndClear(t *testing.T) {
	ctx := context.Background()
	now := rateT0
	m := newRateMeter(t, &now, tokensPolicy, requestsPolicy)

	status := func() []billing.RateLimitState {
		t.Helper()
		s, err := m.RateLimitStatus(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	full := []billing.RateLimitState{
		{Resource: "requests", Policy: requestsPolicy, Limit: 2, Remaining: 2, ResetAt: now},
		{Resource: "tokens.output", Policy: tokensPolicy, Limit: 600, Remaining: 100, ResetAt: now},
	}
	if diff := cmp.Diff(full, status()); diff != "" {
		t.Errorf("fresh status (-want +got):\n%s", diff)
	}

	for _, c := range []struct {
		resource string
		n        int64
	}{{"requests", 2}, {"tokens.output", 40}} {
		if d, err := m.Allow(ctx, "acme", c.resource, c.n); err != nil || !d.Allowed {
			t.Fatalf("Allow(%s, %d): %+v, %v", c.resource, c.n, d, err)
		}
	}
	used := []billing.RateLimitState{
		{Resource: "requests", Policy: requestsPolicy, Limit: 2, Remaining: 0, RetryAfter: 500 * time.Millisecond,
			ResetAfter: time.Second, ResetAt: now.Add(time.Second)},
		{Resource: "tokens.output", Policy: tokensPolicy, Limit: 600, Remaining: 60,
			ResetAfter: 4 * time.Second, ResetAt: now.Add(4 * time.Second)},
	}
	if diff := cmp.Diff(used, status()); diff != "" {
		t.Errorf("status after use (-want +got):\n%s", diff)
	}
	// Status counts nothing.
	if diff := cmp.Diff(used, status()); diff != "" {
		t.Errorf("status changed by reading it (-want +got):\n%s", diff)
	}

	if err := m.ClearRateLimit(ctx, "acme", "requests"); err != nil {
		t.Fatal(err)
	}
	s := status()
	if s[0].Remaining != 2 || s[1].Remaining != 60 {
		t.Errorf("after clearing requests: %+v; want requests full, tokens untouched", s)
	}
	if _, err := m.Allow(ctx, "acme", "requests", 1); err != nil {
		t.Fatal(err)
	}
	if err := m.ClearRateLimit(ctx, "acme", ""); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(full, status()); diff != "" {
		t.Errorf("after clearing all (-want +got):\n%s", diff)
	}

	// A tenant with no policies at all.
	m2 := newRateMeter(t, &now)
	if s, err := m2.RateLimitStatus(ctx, "acme"); err != nil || len(s) != 0 {
		t.Errorf("no policies: %+v, %v; want empty", s, err)
	}
	if err := m2.ClearRateLimit(ctx, "acme", ""); err != nil {
		t.Errorf("clear with no policies: %v", err)
	}
}
