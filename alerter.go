package billing

import (
	"context"
	"math/bits"
	"sync"
	"time"
)

// alerter turns threshold crossings into recorded alerts, off the writer's path: the writer only
// appends to its queue, which never blocks. It also checks (tenant, resource) pairs the writer
// had no rules for.
type alerter struct {
	m      *Meter
	mu     sync.Mutex
	keys   map[RateKey]bool
	alerts []Alert
	seen   map[string]bool // alert ids recorded (or found recorded) by this process
	wake   chan struct{}
	stop   chan struct{}
	done   chan struct{}
}

func newAlerter(m *Meter) *alerter {
	return &alerter{m: m, keys: make(map[RateKey]bool), seen: make(map[string]bool), wake: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{})}
}

func (a *alerter) signal() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// check queues k for a rule check by the alerter goroutine.
func (a *alerter) check(k RateKey) {
	a.mu.Lock()
	a.keys[k] = true
	a.mu.Unlock()
	a.signal()
}

// crossed queues an alert for every threshold of q that bc's usage has reached and that was not
// alerted yet in this bucket. The counter's lock must be held.
func (a *alerter) crossed(k RateKey, q QuotaRule, bc *bucketCount) {
	for _, t := range q.NotifyAt {
		if !reached(bc.used, q.Limit, t) || bc.alerted[t] {
			continue
		}
		if bc.alerted == nil {
			bc.alerted = make(map[int]bool)
		}
		bc.alerted[t] = true
		al := newAlert(k, q, bc.span, t, bc.used, a.m.cfg.Now())
		a.mu.Lock()
		a.alerts = append(a.alerts, al)
		a.mu.Unlock()
		a.signal()
	}
}

func newAlert(k RateKey, q QuotaRule, bucket Span, threshold int, used int64, now time.Time) Alert {
	return Alert{ID: AlertID(k.Tenant, k.Resource, q.Period, bucket.Start, threshold), Tenant: k.Tenant,
		Resource: k.Resource, Period: q.Period, Bucket: bucket, Threshold: threshold, Used: used,
		Limit: q.Limit, Hard: q.Hard, At: now}
}

// reached reports whether used is at least threshold percent of limit, exactly (128-bit
// products). Nothing used never reaches a threshold, even of a zero limit.
func reached(used, limit int64, threshold int) bool {
	if used <= 0 {
		return false
	}
	uh, ul := bits.Mul64(uint64(used), 100)
	lh, ll := bits.Mul64(uint64(limit), uint64(threshold))
	return uh > lh || (uh == lh && ul >= ll)
}

// run processes the queue until stop is closed, then drains it.
func (a *alerter) run() {
	defer close(a.done)
	for {
		select {
		case <-a.wake:
			a.process()
		case <-a.stop:
			a.process()
			return
		}
	}
}

func (a *alerter) process() {
	ctx := context.Background()
	for {
		a.mu.Lock()
		keys, alerts := a.keys, a.alerts
		a.keys, a.alerts = make(map[RateKey]bool), nil
		a.mu.Unlock()
		if len(keys) == 0 && len(alerts) == 0 {
			return
		}
		m := a.m
		for k := range keys {
			alerts = append(alerts, a.checkKey(ctx, k)...)
		}
		a.mu.Lock()
		alerts = append(alerts, a.alerts...)
		a.alerts = nil
		a.mu.Unlock()
		recorded := false
		for _, al := range alerts {
			if a.seen[al.ID] {
				continue
			}
			isNew, err := m.cfg.Store.RecordAlert(ctx, al)
			if err != nil {
				m.cfg.Logger.Error("billing: cannot record alert; CheckQuotas will retry", "alert", al.ID, "err", err)
				continue
			}
			if len(a.seen) >= 100_000 {
				clear(a.seen) // only an optimisation: the Store dedupes
			}
			a.seen[al.ID] = true
			if isNew {
				m.stats.alerts.Add(1)
			}
			recorded = recorded || isNew
		}
		if recorded {
			m.outbox.signal()
		}
	}
}

// checkKey loads k's current rules and usage and returns an alert for every threshold reached.
// For the built-in Quota this also refreshes the rules the writer checks crossings with.
func (a *alerter) checkKey(ctx context.Context, k RateKey) []Alert {
	m := a.m
	gen := m.rules.gen.Load()
	e, err := m.effectiveRules(ctx, k.Tenant)
	if err != nil {
		m.cfg.Logger.Error("billing: cannot load quota rules for alerts", "tenant", k.Tenant, "err", err)
		return nil
	}
	now := m.cfg.Now()
	req := m.quotaRequest(k, e, gen, now)
	if len(req.Rules) == 0 {
		if m.localQuota {
			// Remember that the pair has no rules, so the writer stops asking until they change.
			c := m.book.counterOf(k)
			c.mu.Lock()
			c.rules, c.rulesGen, c.rulesAt = nil, gen, now
			c.mu.Unlock()
		}
		return nil
	}
	used, _, err := m.quota.Counts(ctx, req)
	if err != nil {
		m.cfg.Logger.Error("billing: cannot load usage for alerts", "tenant", k.Tenant, "resource", k.Resource, "err", err)
		return nil
	}
	var out []Alert
	for i, q := range req.Rules {
		for _, t := range q.NotifyAt {
			if reached(used[i], q.Limit, t) {
				out = append(out, newAlert(k, q, req.Buckets[i], t, used[i], now))
			}
		}
	}
	return out
}

// CheckQuotas compares every tenant's usage in the current period with its rules and records an
// alert for each threshold reached that was not alerted yet, such as after a rule was lowered
// below usage, or when a process stopped between recording usage and its alert. It returns the
// alerts it recorded. Meter.Run calls it every Config.CheckInterval. Safe to run on several
// processes at once: the Store records each alert once.
func (m *Meter) CheckQuotas(ctx context.Context) ([]Alert, error) {
	tenants := map[string]bool{}
	if err := m.eachTenant(ctx, func(t Tenant) { tenants[t.ID] = true }); err != nil {
		return nil, err
	}
	if m.cfg.DefaultPlan != "" {
		// Tenants without a record are on the default plan: find them by their usage.
		rows, err := m.cfg.Store.QueryRollups(ctx, RollupQuery{Period: PeriodTotal})
		if err != nil {
			return nil, err
		}
		for _, r := range rows {
			tenants[r.Tenant] = true
		}
	}
	now := m.cfg.Now()
	var out []Alert
	for tenant := range tenants {
		m.rules.invalidate(tenant)
		e, err := m.effectiveRules(ctx, tenant)
		if err != nil {
			return out, err
		}
		for _, q := range e.quotas {
			bucket := m.bucketOf(q.Period, e.anchorDay, now)
			used, err := m.usedIn(ctx, RateKey{Tenant: tenant, Resource: q.Resource}, q.Period, bucket)
			if err != nil {
				return out, err
			}
			for _, t := range q.NotifyAt {
				if !reached(used, q.Limit, t) {
					continue
				}
				al := newAlert(RateKey{Tenant: tenant, Resource: q.Resource}, q, bucket, t, used, now)
				isNew, err := m.cfg.Store.RecordAlert(ctx, al)
				if err != nil {
					return out, err
				}
				if isNew {
					m.stats.alerts.Add(1)
					out = append(out, al)
				}
			}
		}
	}
	if len(out) > 0 {
		m.outbox.signal()
	}
	return out, nil
}

// Alerts returns recorded alerts matching q, newest first.
func (m *Meter) Alerts(ctx context.Context, q AlertQuery) ([]Alert, error) {
	return m.cfg.Store.ListAlerts(ctx, q)
}
