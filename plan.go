package billing

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shopspring/decimal"
)

// Plan is a named bundle of limits that tenants are assigned to: quota rules and rate policies
// (and, with invoicing, prices). A tenant's own rules override its plan's for the same resource
// and period.
type Plan struct {
	// ID names the plan, such as "free" or "pro". Required.
	ID string `json:"id"`
	// Name is a display name. Optional.
	Name string `json:"name,omitempty"`
	// Currency is the ISO 4217 code invoices of this plan use, such as "USD". Optional until
	// prices are set.
	Currency string `json:"currency,omitempty"`
	// Quotas are the plan's quota rules; their Tenant field must be empty.
	Quotas []QuotaRule `json:"quotas,omitempty"`
	// Rates are the plan's rate policies, at most one per resource.
	Rates []RatePolicy `json:"rates,omitempty"`
	// Prices say how usage is charged on invoices; usage that no price matches is free.
	Prices []Price `json:"prices,omitempty"`
	// BaseFee is charged once per invoice period. Zero means none.
	BaseFee decimal.Decimal `json:"base_fee"`
	// Minimum is the least an invoice period costs: when the usage lines add up to less, a
	// true-up line bills the difference. Zero means none.
	Minimum decimal.Decimal `json:"minimum"`
}

// Tenant is what the Store keeps about one tenant: its plan, its billing anchor and its own rules.
type Tenant struct {
	ID string `json:"id"`
	// PlanID is the tenant's plan; empty means Config.DefaultPlan (and none: unlimited).
	PlanID string `json:"plan_id,omitempty"`
	// PlanSince is when PlanID was assigned; Run does not invoice the tenant for periods that
	// ended before it.
	PlanSince time.Time `json:"plan_since,omitzero"`
	// AnchorDay is the day of the month on which the tenant's monthly quota cycle starts, 1 to
	// 31; 0 means the calendar month. In months shorter than AnchorDay the cycle starts on the
	// month's last day, and returns to AnchorDay the month after.
	AnchorDay int `json:"anchor_day,omitempty"`
	// Quotas override the plan's rules with the same resource and period.
	Quotas []QuotaRule `json:"quotas,omitempty"`
	// Rates override the plan's rate policies with the same resource.
	Rates []RatePolicy `json:"rates,omitempty"`
	// Updated is when the record last changed.
	Updated time.Time `json:"updated"`
}

// Validate checks the plan and its rules; errors name the field.
func (p Plan) Validate() error {
	if r := checkName(p.ID); r != "" {
		return fieldErr(ErrInvalidConfig, "plan.id", "%s", r)
	}
	if p.Currency != "" && !isCurrencyCode(p.Currency) {
		return fieldErr(ErrInvalidConfig, "plan.currency", "must be a three-letter ISO 4217 code such as USD (got %q)", p.Currency)
	}
	seen := map[[2]string]bool{}
	for i, q := range p.Quotas {
		field := fmt.Sprintf("plan.quotas[%d]", i)
		if q.Tenant != "" {
			return fieldErr(ErrInvalidConfig, field+".tenant", "must be empty in a plan (got %q)", q.Tenant)
		}
		if err := q.validate(field, false); err != nil {
			return err
		}
		k := [2]string{q.Resource, string(q.Period)}
		if seen[k] {
			return fieldErr(ErrInvalidConfig, field, "a second rule for %s per %s; keep one per resource and period", q.Resource, q.Period)
		}
		seen[k] = true
	}
	if err := validatePolicies("plan.rates", p.Rates); err != nil {
		return err
	}
	return p.validatePricing() // price.go: currency, base fee, minimum, prices
}

func validatePolicies(field string, ps []RatePolicy) error {
	seen := map[string]bool{}
	for i, r := range ps {
		f := fmt.Sprintf("%s[%d]", field, i)
		if err := r.validate(f + "."); err != nil {
			return err
		}
		if seen[r.Resource] {
			return fieldErr(ErrInvalidConfig, f, "a second policy for %s; keep one per resource", r.Resource)
		}
		seen[r.Resource] = true
	}
	return nil
}

func isCurrencyCode(s string) bool {
	if len(s) != 3 {
		return false
	}
	for i := 0; i < 3; i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}

// SetPlan creates or replaces a plan. Tenants on it see the new limits at once in this process
// (other processes within Config.RuleCacheTTL).
func (m *Meter) SetPlan(ctx context.Context, p Plan) error {
	if err := p.Validate(); err != nil {
		return err
	}
	if err := m.cfg.Store.PutPlan(ctx, p); err != nil {
		return err
	}
	m.rules.invalidateAll()
	return nil
}

// Plan returns the plan with id, or an error matching ErrNotFound.
func (m *Meter) Plan(ctx context.Context, id string) (Plan, error) {
	return m.cfg.Store.GetPlan(ctx, id)
}

// Plans returns every plan, ordered by ID.
func (m *Meter) Plans(ctx context.Context) ([]Plan, error) { return m.cfg.Store.ListPlans(ctx) }

// AssignPlan puts tenant on the plan planID (which must exist); an empty planID returns the tenant
// to Config.DefaultPlan.
func (m *Meter) AssignPlan(ctx context.Context, tenant, planID string) error {
	if err := checkTenant(tenant); err != nil {
		return err
	}
	if planID != "" {
		if _, err := m.cfg.Store.GetPlan(ctx, planID); err != nil {
			if errors.Is(err, ErrNotFound) {
				return fieldErr(ErrInvalidConfig, "plan", "no plan %q: create it with SetPlan first", planID)
			}
			return err
		}
	}
	_, err := m.cfg.Store.UpdateTenant(ctx, tenant, func(t *Tenant) error {
		if t.PlanID != planID {
			t.PlanID, t.PlanSince = planID, m.cfg.Now()
		}
		t.Updated = m.cfg.Now()
		return nil
	})
	m.rules.invalidate(tenant)
	return err
}

// SetAnchorDay sets the day of the month (1-31) on which tenant's monthly quota cycle starts;
// 0 returns it to calendar months. See Tenant.AnchorDay.
func (m *Meter) SetAnchorDay(ctx context.Context, tenant string, day int) error {
	if err := checkTenant(tenant); err != nil {
		return err
	}
	if day < 0 || day > 31 {
		return fieldErr(ErrInvalidConfig, "anchor_day", "must be 0 (calendar months) or a day 1..31 (got %d)", day)
	}
	_, err := m.cfg.Store.UpdateTenant(ctx, tenant, func(t *Tenant) error {
		t.AnchorDay = day
		t.Updated = m.cfg.Now()
		return nil
	})
	m.rules.invalidate(tenant)
	return err
}

// TenantInfo returns the stored record of tenant (plan, anchor, own rules); a tenant never
// configured yields Tenant{ID: tenant} and no error.
func (m *Meter) TenantInfo(ctx context.Context, tenant string) (Tenant, error) {
	t, err := m.cfg.Store.GetTenant(ctx, tenant)
	if errors.Is(err, ErrNotFound) {
		return Tenant{ID: tenant}, nil
	}
	return t, err
}

// checkTenant validates a tenant id given to a configuration method.
func checkTenant(tenant string) error {
	if r := tenantRule(tenant); r != "" {
		return fieldErr(ErrInvalidConfig, "tenant", "%s", r)
	}
	return nil
}

// effective is what applies to one tenant: its plan and own rules merged. It is immutable once
// built; a change builds a new one.
type effective struct {
	buckets    [4]atomic.Pointer[Span]                // the last bucket seen of each period, by periodRank
	spans      map[string]*atomic.Pointer[spansCache] // by resource with rules; built with byResource
	anchorDay  int
	quotas     []QuotaRule            // one per resource and period; Tenant set
	byResource map[string][]QuotaRule // quotas by resource
	rates      []RatePolicy           // one per resource
	loaded     time.Time
}

// ruleCache keeps each tenant's effective rules for Config.RuleCacheTTL.
type ruleCache struct {
	tenants sync.Map      // tenant -> *effective
	gen     atomic.Uint64 // bumped by every invalidation, so counters know their rules are old
}

func (c *ruleCache) invalidate(tenant string) {
	c.tenants.Delete(tenant)
	c.gen.Add(1)
}

func (c *ruleCache) invalidateAll() {
	c.tenants.Clear()
	c.gen.Add(1)
}

// current returns the cached rules of tenant if they are fresh at now.
func (c *ruleCache) current(tenant string, now time.Time, ttl time.Duration) *effective {
	v, ok := c.tenants.Load(tenant)
	if !ok {
		return nil
	}
	e := v.(*effective)
	if now.Before(e.loaded) || now.Sub(e.loaded) >= ttl {
		return nil
	}
	return e
}

// effectiveRules returns tenant's merged rules, from the cache when fresh.
func (m *Meter) effectiveRules(ctx context.Context, tenant string) (*effective, error) {
	return m.effectiveRulesAt(ctx, tenant, m.cfg.Now())
}

// effectiveRulesAt is effectiveRules for a caller that has read the clock already.
func (m *Meter) effectiveRulesAt(ctx context.Context, tenant string, now time.Time) (*effective, error) {
	if e := m.rules.current(tenant, now, m.cfg.RuleCacheTTL); e != nil {
		return e, nil
	}
	t, err := m.cfg.Store.GetTenant(ctx, tenant)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	planID := t.PlanID
	if planID == "" {
		planID = m.cfg.DefaultPlan
	}
	var plan Plan
	if planID != "" {
		if plan, err = m.cfg.Store.GetPlan(ctx, planID); err != nil && !errors.Is(err, ErrNotFound) {
			return nil, err
		}
	}
	e := &effective{anchorDay: t.AnchorDay, loaded: now}
	own := map[[2]string]bool{}
	for _, q := range t.Quotas {
		q.Tenant = tenant
		e.quotas = append(e.quotas, q.withDefaults())
		own[[2]string{q.Resource, string(q.Period)}] = true
	}
	for _, q := range plan.Quotas {
		if !own[[2]string{q.Resource, string(q.Period)}] {
			q.Tenant = tenant
			e.quotas = append(e.quotas, q.withDefaults())
		}
	}
	sort.Slice(e.quotas, func(i, j int) bool {
		a, b := e.quotas[i], e.quotas[j]
		if a.Resource != b.Resource {
			return a.Resource < b.Resource
		}
		return periodRank(a.Period) < periodRank(b.Period)
	})
	e.byResource = make(map[string][]QuotaRule)
	e.spans = make(map[string]*atomic.Pointer[spansCache])
	for _, q := range e.quotas {
		e.byResource[q.Resource] = append(e.byResource[q.Resource], q)
		if e.spans[q.Resource] == nil {
			e.spans[q.Resource] = new(atomic.Pointer[spansCache])
		}
	}
	ownRate := map[string]bool{}
	for _, r := range t.Rates {
		e.rates = append(e.rates, r)
		ownRate[r.Resource] = true
	}
	for _, layer := range [][]RatePolicy{plan.Rates, m.cfg.RatePolicies} {
		for _, r := range layer {
			if !ownRate[r.Resource] {
				e.rates = append(e.rates, r)
				ownRate[r.Resource] = true
			}
		}
	}
	m.rules.tenants.Store(tenant, e)
	return e, nil
}

func periodRank(p Period) int {
	for i, q := range Periods {
		if q == p {
			return i
		}
	}
	return len(Periods)
}

// ratePolicies returns the rate policies that apply to tenant, one per resource: the tenant's
// overrides first, then its plan's, then Config.RatePolicies.
func (m *Meter) ratePolicies(ctx context.Context, tenant string) ([]RatePolicy, error) {
	e, err := m.effectiveRules(ctx, tenant)
	if err != nil {
		return nil, err
	}
	return e.rates, nil
}

// quotaRequest describes key's rules and their current buckets at now, for the Quota.
func (m *Meter) quotaRequest(key RateKey, e *effective, gen uint64, now time.Time) QuotaRequest {
	return m.quotaRequestFor(key, e.byResource[key.Resource], e, gen, now)
}

// quotaRequestFor is quotaRequest for rules, the rules of key's resource in e.
// The Buckets slice is shared between requests while it is current: Quota implementations only
// read it.
func (m *Meter) quotaRequestFor(key RateKey, rules []QuotaRule, e *effective, gen uint64, now time.Time) QuotaRequest {
	req := QuotaRequest{Key: key, Rules: rules, Now: now, gen: gen}
	slot := e.spans[key.Resource]
	if slot != nil {
		if c := slot.Load(); c != nil && !now.Before(c.from) && now.Before(c.until) {
			req.Buckets, req.cache = c.buckets, c
			return req
		}
	}
	c := &spansCache{buckets: make([]Span, len(rules)), until: time.Unix(1<<62, 0)}
	for i, q := range rules {
		b := e.bucket(m, q.Period, now)
		c.buckets[i] = b
		if q.Period != PeriodTotal {
			if b.End.Before(c.until) {
				c.until = b.End
			}
			if b.Start.After(c.from) {
				c.from = b.Start
			}
		}
	}
	if slot != nil {
		slot.Store(c)
	}
	req.Buckets, req.cache = c.buckets, c
	return req
}

// spansCache is the current bucket of each rule of one resource, valid for now in [from, until).
type spansCache struct {
	buckets     []Span
	from, until time.Time
	counter     atomic.Pointer[counter] // the built-in Quota's counter of this tenant and resource
}

// bucket returns the bucket of period p containing now, for this tenant (its anchor day),
// remembering the last one so that the hot path rarely does calendar arithmetic.
func (e *effective) bucket(m *Meter, p Period, now time.Time) Span {
	slot := &e.buckets[periodRank(p)%len(e.buckets)]
	if b := slot.Load(); b != nil && (p == PeriodTotal || b.Contains(now)) {
		return *b
	}
	b := m.bucketOf(p, e.anchorDay, now)
	slot.Store(&b)
	return b
}

// SetRatePolicy creates or replaces tenant's own rate policy for p.Resource; it overrides the
// plan's policy and Config.RatePolicies for that resource. The counter itself is kept: a lower
// limit applies to the units already taken.
func (m *Meter) SetRatePolicy(ctx context.Context, tenant string, p RatePolicy) error {
	if err := checkTenant(tenant); err != nil {
		return err
	}
	if err := p.Validate(); err != nil {
		return err
	}
	_, err := m.cfg.Store.UpdateTenant(ctx, tenant, func(t *Tenant) error {
		t.Rates = slices.DeleteFunc(t.Rates, func(r RatePolicy) bool { return r.Resource == p.Resource })
		t.Rates = append(t.Rates, p)
		t.Updated = m.cfg.Now()
		return nil
	})
	m.rules.invalidate(tenant)
	return err
}

// DeleteRatePolicy removes tenant's own rate policy for resource, so its plan's (or
// Config.RatePolicies') applies again. Deleting one that does not exist returns an error matching
// ErrNotFound.
func (m *Meter) DeleteRatePolicy(ctx context.Context, tenant, resource string) error {
	if err := checkTenant(tenant); err != nil {
		return err
	}
	_, err := m.cfg.Store.UpdateTenant(ctx, tenant, func(t *Tenant) error {
		n := len(t.Rates)
		t.Rates = slices.DeleteFunc(t.Rates, func(r RatePolicy) bool { return r.Resource == resource })
		if len(t.Rates) == n {
			return fmt.Errorf("%w: tenant %q has no own rate policy for %s", ErrNotFound, tenant, resource)
		}
		t.Updated = m.cfg.Now()
		return nil
	})
	m.rules.invalidate(tenant)
	return err
}
