package billing

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// QuotaRule caps a tenant's use of a resource per period. A hard rule refuses reservations that
// would take usage past Limit; a soft rule only alerts. Rules live in plans (Tenant empty) or on
// a tenant (overriding its plan's rule of the same resource and period).
type QuotaRule struct {
	// Tenant is the tenant the rule belongs to; empty in a plan.
	Tenant string `json:"tenant,omitempty"`
	// Resource is what the rule caps, such as "tokens.output".
	Resource string `json:"resource"`
	// Period is the cycle after which usage starts again from zero: hour, day, month (the
	// tenant's anchored cycle when it has an AnchorDay) or total (never).
	Period Period `json:"period"`
	// Limit is the most units per period. Must be >= 0 (0 with Hard refuses everything).
	Limit int64 `json:"limit"`
	// Hard refuses reservations beyond Limit; otherwise the rule is soft: usage is allowed and
	// alerts fire.
	Hard bool `json:"hard"`
	// NotifyAt are the percentages of Limit (1 to 1000) at which an alert fires, once per
	// period bucket. Nil means DefaultNotifyAt; an empty, non-nil list disables alerts.
	NotifyAt []int `json:"notify_at"`
}

// Quota holds reservations against quota rules and knows each rule's usage in its current bucket:
// the state Reserve decides on. The built-in one (used when Config.Quota is nil) keeps it in
// process memory, exact for one process because the Meter's writer feeds it every committed event.
// A shared implementation (on PostgreSQL or Redis) keeps it where every replica sees it, and then
// makes Reserve atomic across replicas. Implementations must be safe for concurrent use.
type Quota interface {
	// Reserve holds req.N units for req.Key under req.ID until req.Expires, if for every hard rule
	// of req.Rules the usage of its bucket (req.Buckets, same index) plus the units held plus
	// req.N stays within the rule's Limit; otherwise it holds nothing and returns a
	// *QuotaExceededError for the first such rule. With req.Enforce false it never refuses.
	// Checking and holding are one atomic step. Reserving an ID that is already held is a no-op.
	Reserve(ctx context.Context, req QuotaRequest) error
	// Release returns the units held under id for key; an unknown, released or expired id is a
	// no-op. The Meter releases a committed reservation only once its event is recorded; a shared
	// Quota should make the two one step (the event's ID is the reservation's), or the pair is
	// briefly counted twice, which can only refuse, never over-admit.
	Release(ctx context.Context, key RateKey, id string) error
	// Counts returns the usage of each rule's bucket (same index as req.Rules) and the units
	// held for req.Key at req.Now. req.ID, N and Expires are ignored.
	Counts(ctx context.Context, req QuotaRequest) (used []int64, reserved int64, err error)
}

// QuotaRequest is what a Quota decides on: one tenant's resource, its rules, and the current
// bucket of each rule (monthly cycles already anchored).
type QuotaRequest struct {
	Key     RateKey
	ID      string // the reservation's id
	N       int64  // units to hold
	Rules   []QuotaRule
	Buckets []Span // Buckets[i] is the current bucket of Rules[i]; zero for total
	Expires time.Time
	Enforce bool
	Now     time.Time

	gen   uint64      // the Meter's rule generation, for the built-in Quota
	cache *spansCache // where the built-in Quota remembers the counter of Key
}

// DefaultNotifyAt are the alert thresholds of a rule whose NotifyAt is nil.
var DefaultNotifyAt = []int{80, 100}

// Validate checks the rule; errors match ErrInvalidConfig and name the field.
func (q QuotaRule) Validate() error { return q.validate("", true) }

func (q QuotaRule) validate(prefix string, needTenant bool) error {
	if prefix != "" {
		prefix += "."
	}
	if needTenant {
		if err := checkTenant(q.Tenant); err != nil {
			fe := err.(*FieldError)
			fe.Field = prefix + fe.Field
			return fe
		}
	}
	if r := checkName(q.Resource); r != "" {
		return fieldErr(ErrInvalidConfig, prefix+"resource", "%s", r)
	}
	if !q.Period.Valid() {
		return fieldErr(ErrInvalidConfig, prefix+"period", "must be one of hour, day, month, total (got %q)", q.Period)
	}
	if q.Limit < 0 {
		return fieldErr(ErrInvalidConfig, prefix+"limit", "must be >= 0 (got %d)", q.Limit)
	}
	seen := map[int]bool{}
	for i, t := range q.NotifyAt {
		if t < 1 || t > 1000 {
			return fieldErr(ErrInvalidConfig, fmt.Sprintf("%snotify_at[%d]", prefix, i), "must be a percentage from 1 to 1000 (got %d)", t)
		}
		if seen[t] {
			return fieldErr(ErrInvalidConfig, fmt.Sprintf("%snotify_at[%d]", prefix, i), "%d is listed twice", t)
		}
		seen[t] = true
	}
	return nil
}

// withDefaults returns q with NotifyAt filled and sorted.
func (q QuotaRule) withDefaults() QuotaRule {
	if q.NotifyAt == nil {
		q.NotifyAt = DefaultNotifyAt
	}
	q.NotifyAt = slices.Clone(q.NotifyAt)
	slices.Sort(q.NotifyAt)
	return q
}

// SetQuota creates or replaces the tenant's own rule for rule.Resource and rule.Period; it
// overrides the plan's rule for the same resource and period. Usage already recorded in the
// current period counts against the new limit at once; a lowered limit that is already crossed
// alerts at the next CheckQuotas.
func (m *Meter) SetQuota(ctx context.Context, rule QuotaRule) error {
	if err := rule.Validate(); err != nil {
		return err
	}
	_, err := m.cfg.Store.UpdateTenant(ctx, rule.Tenant, func(t *Tenant) error {
		t.Quotas = slices.DeleteFunc(t.Quotas, func(q QuotaRule) bool {
			return q.Resource == rule.Resource && q.Period == rule.Period
		})
		r := rule
		r.Tenant = ""
		t.Quotas = append(t.Quotas, r)
		t.Updated = m.cfg.Now()
		return nil
	})
	m.rules.invalidate(rule.Tenant)
	return err
}

// DeleteQuota removes the tenant's own rule for resource and period, so the plan's applies
// again. Deleting a rule that does not exist returns an error matching ErrNotFound.
func (m *Meter) DeleteQuota(ctx context.Context, tenant, resource string, period Period) error {
	if err := checkTenant(tenant); err != nil {
		return err
	}
	_, err := m.cfg.Store.UpdateTenant(ctx, tenant, func(t *Tenant) error {
		n := len(t.Quotas)
		t.Quotas = slices.DeleteFunc(t.Quotas, func(q QuotaRule) bool {
			return q.Resource == resource && q.Period == period
		})
		if len(t.Quotas) == n {
			return fmt.Errorf("%w: tenant %q has no own %s rule per %s", ErrNotFound, tenant, resource, period)
		}
		t.Updated = m.cfg.Now()
		return nil
	})
	m.rules.invalidate(tenant)
	return err
}

// Quotas returns the rules that apply to tenant: its own and its plan's, merged, with Tenant
// set and NotifyAt defaulted.
func (m *Meter) Quotas(ctx context.Context, tenant string) ([]QuotaRule, error) {
	if err := checkTenant(tenant); err != nil {
		return nil, err
	}
	e, err := m.effectiveRules(ctx, tenant)
	if err != nil {
		return nil, err
	}
	return slices.Clone(e.quotas), nil
}

// QuotaState is where a tenant stands against one rule in the current period.
type QuotaState struct {
	Rule QuotaRule `json:"rule"`
	// Bucket is the current period; Bucket.End is when usage resets (zero for total).
	Bucket Span `json:"bucket"`
	// Used is the usage recorded in the bucket; Reserved is held by open reservations.
	Used     int64 `json:"used"`
	Reserved int64 `json:"reserved"`
	// Remaining is Limit - Used - Reserved, never below zero.
	Remaining int64 `json:"remaining"`
	// Percent is Used as a percentage of Limit (0 when Limit is 0 and nothing was used).
	Percent float64 `json:"percent"`
	// Exceeded says Used is above Limit; for a hard rule that is usage tracked past the limit
	// (by Track, or a Commit larger than its reservation).
	Exceeded bool `json:"exceeded"`
	// SoftExceeded and HardExceeded say Used has reached Limit on a soft or a hard rule.
	SoftExceeded bool `json:"soft_exceeded"`
	HardExceeded bool `json:"hard_exceeded"`
}

// QuotaStatus reports, for each rule of tenant, the current period's usage, reservations and
// remaining units. Safe for concurrent use.
func (m *Meter) QuotaStatus(ctx context.Context, tenant string) ([]QuotaState, error) {
	if err := checkTenant(tenant); err != nil {
		return nil, err
	}
	e, err := m.effectiveRules(ctx, tenant)
	if err != nil {
		return nil, err
	}
	now := m.cfg.Now()
	gen := m.rules.gen.Load()
	out := make([]QuotaState, 0, len(e.quotas))
	for i := 0; i < len(e.quotas); {
		resource := e.quotas[i].Resource // quotas are sorted by resource
		req := m.quotaRequest(RateKey{Tenant: tenant, Resource: resource}, e, gen, now)
		used, reserved, err := m.quota.Counts(ctx, req)
		if err != nil {
			return nil, err
		}
		for j, q := range req.Rules {
			out = append(out, stateOf(q, req.Buckets[j], used[j], reserved))
		}
		i += len(req.Rules)
	}
	return out, nil
}

func stateOf(q QuotaRule, bucket Span, used, reserved int64) QuotaState {
	s := QuotaState{Rule: q, Bucket: bucket, Used: used, Reserved: reserved}
	s.Remaining = max(q.Limit-used-reserved, 0)
	if q.Limit > 0 {
		s.Percent = float64(used) * 100 / float64(q.Limit)
	} else if used > 0 {
		s.Percent = 100
	}
	s.Exceeded = used > q.Limit
	reached := used >= q.Limit && (q.Limit > 0 || used > 0)
	s.HardExceeded = q.Hard && reached
	s.SoftExceeded = !q.Hard && reached
	return s
}

// bucketOf returns the bucket of period p that contains t, for a tenant whose monthly cycle is
// anchored on anchorDay (0: calendar months). The total bucket is the zero Span.
func (m *Meter) bucketOf(p Period, anchorDay int, t time.Time) Span {
	loc := m.cfg.Location
	if p == PeriodMonth && anchorDay > 0 {
		return AnchoredMonth(t, anchorDay, loc)
	}
	if p == PeriodTotal {
		return Span{}
	}
	start := p.Start(t, loc)
	return Span{Start: start, End: p.Next(start, loc)}
}

// AnchoredMonth returns the monthly cycle that contains t when cycles start on day anchor (1-31)
// at midnight in loc (nil: UTC). In a month with fewer days than anchor the cycle starts on its
// last day; the next cycle starts on anchor again (a Jan 31 anchor gives Jan 31, Feb 28, Mar 31).
func AnchoredMonth(t time.Time, anchor int, loc *time.Location) Span {
	if loc == nil {
		loc = time.UTC
	}
	lt := t.In(loc)
	y, mo, _ := lt.Date()
	start := anchorIn(y, mo, anchor, loc)
	if lt.Before(start) {
		y, mo = addMonths(y, mo, -1)
		start = anchorIn(y, mo, anchor, loc)
	}
	ny, nmo := addMonths(y, mo, 1)
	return Span{Start: start, End: anchorIn(ny, nmo, anchor, loc)}
}

func anchorIn(y int, mo time.Month, anchor int, loc *time.Location) time.Time {
	// Count the month's days in UTC, and start the day with midnight: in loc, 00:00 may not
	// exist (a DST change at midnight), and time.Date would then pick 23:00 of the day before.
	last := time.Date(y, mo+1, 0, 0, 0, 0, 0, time.UTC).Day()
	return midnight(y, mo, min(anchor, last), loc)
}

func addMonths(y int, mo time.Month, n int) (int, time.Month) {
	t := time.Date(y, mo, 1, 12, 0, 0, 0, time.UTC).AddDate(0, n, 0)
	return t.Year(), t.Month()
}
