package billing

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"
)

// Allow asks the Meter's Limiter to admit n units of resource for tenant, under the tenant's rate
// policy for that resource (its overrides, its plan, or Config.RatePolicies).
//
// An admitted request returns Decision{Allowed: true} and counts the units. An ordinary refusal
// returns Decision{Allowed: false, RetryAfter: ...} and a nil error: check d.Allowed, or use
// d.Err() to get a *RateLimitedError matching ErrRateLimited. n above the policy's burst can
// never pass: it returns an error matching ErrExceedsBurst (and a Decision describing the
// counter). A resource without a policy is not rate limited: Allow returns Decision{Allowed:
// true} with Limit 0 and counts nothing.
//
// Bad input returns a *FieldError matching ErrInvalidQuery that names "tenant", "resource" or
// "n". Other errors come from the policy lookup or the Limiter (a shared limiter that did not
// answer); the request was then neither admitted nor counted. Safe for concurrent use; it does
// not depend on the event writer, so it keeps working after Close.
func (m *Meter) Allow(ctx context.Context, tenant, resource string, n int64) (Decision, error) {
	key := RateKey{Tenant: tenant, Resource: resource}
	if err := key.validate(); err != nil {
		return Decision{}, err
	}
	if err := checkN(n); err != nil {
		return Decision{}, err
	}
	p, ok, err := m.ratePolicy(ctx, tenant, resource)
	if err != nil {
		return Decision{}, err
	}
	if !ok {
		return Decision{Allowed: true}, nil
	}
	d, err := m.cfg.Limiter.Allow(ctx, key, p, n)
	if (err == nil && !d.Allowed) || (err != nil && errors.Is(err, ErrExceedsBurst)) {
		m.stats.rateRefusals.Add(1)
	}
	return d, err
}

// ratePolicy returns tenant's policy for resource, and whether there is one.
func (m *Meter) ratePolicy(ctx context.Context, tenant, resource string) (RatePolicy, bool, error) {
	ps, err := m.ratePolicies(ctx, tenant)
	if err != nil {
		return RatePolicy{}, false, err
	}
	for _, p := range ps {
		if p.Resource == resource {
			return p, true, nil
		}
	}
	return RatePolicy{}, false, nil
}

// RateLimitState is the state of one of a tenant's rate limits, as Meter.RateLimitStatus reports
// it. A plain value, safe to copy and to share.
type RateLimitState struct {
	// Resource is the limited resource.
	Resource string `json:"resource"`
	// Policy is the tenant's policy for Resource.
	Policy RatePolicy `json:"policy"`
	// Limit is Policy.Limit: units released per Policy.Window.
	Limit int64 `json:"limit"`
	// Remaining is how many units could be taken right now.
	Remaining int64 `json:"remaining"`
	// RetryAfter is how long until one unit can be taken; zero when Remaining > 0.
	RetryAfter time.Duration `json:"retry_after"`
	// ResetAfter is how long until the counter is back to a full burst; zero when it is full.
	ResetAfter time.Duration `json:"reset_after"`
	// ResetAt is when the counter is back to a full burst: the Meter's Now plus ResetAfter.
	ResetAt time.Time `json:"reset_at"`
}

// RateLimitStatus reports, for each resource that has a rate policy for tenant, how much of it
// tenant can use right now and when its counter is full again, sorted by resource. It counts
// nothing. A tenant with no policies gets an empty slice. Safe for concurrent use.
func (m *Meter) RateLimitStatus(ctx context.Context, tenant string) ([]RateLimitState, error) {
	if err := checkRateTenant(tenant); err != nil {
		return nil, err
	}
	ps, err := m.ratePolicies(ctx, tenant)
	if err != nil {
		return nil, err
	}
	now := m.cfg.Now()
	out := make([]RateLimitState, 0, len(ps))
	for _, p := range ps {
		d, err := m.cfg.Limiter.Peek(ctx, RateKey{Tenant: tenant, Resource: p.Resource}, p)
		if err != nil {
			return nil, fmt.Errorf("billing: rate limit status of %q for %q: %w", p.Resource, tenant, err)
		}
		out = append(out, RateLimitState{Resource: p.Resource, Policy: p, Limit: p.Limit, Remaining: d.Remaining,
			RetryAfter: d.RetryAfter, ResetAfter: d.ResetAfter, ResetAt: now.Add(d.ResetAfter)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Resource < out[j].Resource })
	return out, nil
}

// ClearRateLimit resets tenant's rate-limit counter for resource, giving it a full burst again;
// an empty resource clears every resource that has a rate policy for tenant. An admin operation:
// safe for concurrent use, and idempotent.
func (m *Meter) ClearRateLimit(ctx context.Context, tenant, resource string) error {
	if resource != "" {
		key := RateKey{Tenant: tenant, Resource: resource}
		if err := key.validate(); err != nil {
			return err
		}
		return m.cfg.Limiter.Reset(ctx, key)
	}
	if err := checkRateTenant(tenant); err != nil {
		return err
	}
	ps, err := m.ratePolicies(ctx, tenant)
	if err != nil {
		return err
	}
	for _, p := range ps {
		if err := m.cfg.Limiter.Reset(ctx, RateKey{Tenant: tenant, Resource: p.Resource}); err != nil {
			return fmt.Errorf("billing: clear rate limit of %q for %q: %w", p.Resource, tenant, err)
		}
	}
	return nil
}

// validateRatePolicies checks Config.RatePolicies: each valid, with a Resource, one per resource.
func validateRatePolicies(ps []RatePolicy) error {
	seen := make(map[string]int, len(ps))
	for i, p := range ps {
		prefix := fmt.Sprintf("RatePolicies[%d].", i)
		if err := p.validate(prefix); err != nil {
			return err
		}
		if j, dup := seen[p.Resource]; dup {
			return fieldErr(ErrInvalidConfig, prefix+"resource", "%q already has a policy (RatePolicies[%d]); "+
				"keep one policy per resource", p.Resource, j)
		}
		seen[p.Resource] = i
	}
	return nil
}
