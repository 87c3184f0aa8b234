package billing

import (
	"context"
	"hash/maphash"
	"sync"
	"time"
)

// quotaBook is the in-memory hot path of quotas: for each (tenant, resource) with rules, the
// usage of each rule's current bucket and the units held by open reservations. Usage is loaded
// from rollups on first use and on bucket rollover, and kept exact by the writer, which applies
// every committed event under commitMu; loads take commitMu for reading, so an event is counted
// either by the load's query or by the writer, never both, never neither.
type quotaBook struct {
	seed     maphash.Seed
	shards   [64]bookShard
	commitMu sync.RWMutex
}

type bookShard struct {
	mu   sync.Mutex
	keys map[RateKey]*counter
}

// counter is the state of one tenant and resource.
type counter struct {
	mu       sync.Mutex
	key      RateKey
	eff      *effective  // the rules below come from this
	rules    []QuotaRule // this resource's rules, one per period
	anchor   int
	buckets  map[Period]*bucketCount
	reserved int64
	open     map[string]*hold
	fifo     []*hold // open holds in expiry order (one TTL, so creation order)
}

// bucketCount is the usage of one period's current bucket.
type bucketCount struct {
	span    Span // zero for total
	used    int64
	alerted map[int]bool // thresholds known to be recorded in the Store
}

// hold is the reserved part of a Reservation.
type hold struct {
	id      string
	n       int64
	expires time.Time
}

func (b *quotaBook) init() {
	b.seed = maphash.MakeSeed()
	for i := range b.shards {
		b.shards[i].keys = make(map[RateKey]*counter)
	}
}

func (b *quotaBook) shard(k RateKey) *bookShard {
	var h maphash.Hash
	h.SetSeed(b.seed)
	h.WriteString(k.Tenant)
	h.WriteByte(0)
	h.WriteString(k.Resource)
	return &b.shards[h.Sum64()%uint64(len(b.shards))]
}

// lookup returns the counter of k, or nil.
func (b *quotaBook) lookup(k RateKey) *counter {
	s := b.shard(k)
	s.mu.Lock()
	c := s.keys[k]
	s.mu.Unlock()
	return c
}

// get returns the counter of k with rules e and every rule's bucket current at now, loading
// usage from the Store when needed. The counter is returned locked.
func (b *quotaBook) get(ctx context.Context, m *Meter, k RateKey, e *effective, now time.Time) (*counter, error) {
	s := b.shard(k)
	s.mu.Lock()
	c := s.keys[k]
	if c == nil {
		c = &counter{key: k, buckets: make(map[Period]*bucketCount), open: make(map[string]*hold)}
		s.keys[k] = c
	}
	s.mu.Unlock()
	rules := e.byResource[k.Resource]
	for {
		c.mu.Lock()
		if c.eff != e {
			c.rules, c.anchor, c.eff = rules, e.anchorDay, e
		}
		stale := c.stalePeriods(m, now)
		if len(stale) == 0 {
			return c, nil
		}
		c.mu.Unlock()
		if err := b.load(ctx, m, c, stale, now); err != nil {
			return nil, err
		}
	}
}

// stalePeriods lists the rule periods whose bucket is missing or not the one containing now.
func (c *counter) stalePeriods(m *Meter, now time.Time) []Period {
	var stale []Period
	for _, q := range c.rules {
		bc := c.buckets[q.Period]
		if bc == nil {
			stale = append(stale, q.Period)
			continue
		}
		if q.Period == PeriodTotal {
			continue
		}
		if now.Before(bc.span.Start) || !now.Before(bc.span.End) ||
			(q.Period == PeriodMonth && !bc.span.Equal(m.bucketOf(PeriodMonth, c.anchor, now))) {
			stale = append(stale, q.Period)
		}
	}
	return stale
}

// Equal reports whether two spans have equal bounds.
func (s Span) Equal(o Span) bool { return s.Start.Equal(o.Start) && s.End.Equal(o.End) }

// load reads the usage of the current bucket of each period from the rollups and installs it.
func (b *quotaBook) load(ctx context.Context, m *Meter, c *counter, periods []Period, now time.Time) error {
	b.commitMu.RLock()
	defer b.commitMu.RUnlock()
	c.mu.Lock()
	anchor := c.anchor
	c.mu.Unlock()
	fresh := make(map[Period]*bucketCount, len(periods))
	for _, p := range periods {
		span := m.bucketOf(p, anchor, now)
		used, err := m.usedIn(ctx, c.key, p, span)
		if err != nil {
			return err
		}
		fresh[p] = &bucketCount{span: span, used: used}
	}
	c.mu.Lock()
	for p, bc := range fresh {
		if old := c.buckets[p]; old != nil && old.span.Equal(bc.span) {
			bc.alerted = old.alerted
		}
		c.buckets[p] = bc
	}
	c.mu.Unlock()
	return nil
}

// usedIn sums the usage of key in span from the rollups: one bucket of period p, or, for an
// anchored month, the day buckets it covers.
func (m *Meter) usedIn(ctx context.Context, k RateKey, p Period, span Span) (int64, error) {
	q := RollupQuery{Tenant: k.Tenant, Resource: k.Resource, Period: p}
	if p != PeriodTotal {
		q.From, q.To = span.Start, span.End
		if p == PeriodMonth && !PeriodMonth.Start(span.Start, m.cfg.Location).Equal(span.Start) {
			q.Period = PeriodDay // an anchored cycle is a run of whole days
		} else {
			q.To = span.Start.Add(time.Nanosecond)
			q.Period = p
		}
	}
	rows, err := m.cfg.Store.QueryRollups(ctx, q)
	if err != nil {
		return 0, err
	}
	var sum int64
	for _, r := range rows {
		sum += r.Sum
	}
	return sum, nil
}

// expire releases the holds whose TTL has passed. c.mu must be held.
func (c *counter) expire(now time.Time) {
	i := 0
	for ; i < len(c.fifo) && !now.Before(c.fifo[i].expires); i++ {
		h := c.fifo[i]
		if _, ok := c.open[h.id]; ok {
			delete(c.open, h.id)
			c.reserved -= h.n
		}
		c.fifo[i] = nil
	}
	if i > 0 {
		c.fifo = c.fifo[i:]
	}
	// Holds released early leave entries behind; compact when they dominate.
	if len(c.fifo) > 64 && len(c.fifo) > 4*len(c.open) {
		kept := make([]*hold, 0, len(c.open))
		for _, h := range c.fifo {
			if _, ok := c.open[h.id]; ok {
				kept = append(kept, h)
			}
		}
		c.fifo = kept
	}
}

// release returns the units of hold id, if it is still open. c.mu must be held.
func (c *counter) release(id string) {
	if h, ok := c.open[id]; ok {
		delete(c.open, id)
		c.reserved -= h.n
	}
}

// apply counts committed events in the loaded buckets and releases the holds of committed
// reservations, atomically per counter. It runs in the writer, under commitMu. Thresholds
// reached for the first time are handed to the alerter; events of (tenant, resource) pairs that
// have no counter yet are handed to it too, so that it can load their rules and check them.
func (b *quotaBook) apply(m *Meter, events []Event, statuses []AppendStatus, release string) {
	now := m.cfg.Now()
	for i := range events {
		e := &events[i]
		inserted := statuses[i] == AppendInserted
		c := b.lookup(RateKey{Tenant: e.Tenant, Resource: e.Resource})
		if c == nil {
			if inserted {
				m.alerts.check(RateKey{Tenant: e.Tenant, Resource: e.Resource})
			}
			continue
		}
		c.mu.Lock()
		if inserted && m.rules.current(e.Tenant, now, m.cfg.RuleCacheTTL) != c.eff {
			// The rules changed or aged: let the alerter refresh them and check again.
			m.alerts.check(c.key)
		}
		if inserted {
			for _, q := range c.rules {
				bc := c.buckets[q.Period]
				if bc == nil || (q.Period != PeriodTotal && !bc.span.Contains(e.Time)) {
					continue
				}
				bc.used += e.Quantity
				m.alerts.crossed(c, q, bc)
			}
		}
		if release != "" && e.ID == release {
			c.release(release)
		}
		c.mu.Unlock()
	}
}

// counts returns used and reserved for one rule period of key, loading when needed.
func (b *quotaBook) counts(ctx context.Context, m *Meter, tenant, resource string, p Period, bucket Span, now time.Time) (int64, int64, error) {
	e, err := m.effectiveRules(ctx, tenant)
	if err != nil {
		return 0, 0, err
	}
	c, err := b.get(ctx, m, RateKey{Tenant: tenant, Resource: resource}, e, now)
	if err != nil {
		return 0, 0, err
	}
	defer c.mu.Unlock()
	c.expire(now)
	bc := c.buckets[p]
	if bc == nil {
		return 0, c.reserved, nil
	}
	return bc.used, c.reserved, nil
}

// remember installs a counter for k with rules e (which has none for k's resource), so that the
// writer knows the pair has no rules until they change.
func (b *quotaBook) remember(k RateKey, e *effective) {
	s := b.shard(k)
	s.mu.Lock()
	c := s.keys[k]
	if c == nil {
		c = &counter{key: k, buckets: make(map[Period]*bucketCount), open: make(map[string]*hold)}
		s.keys[k] = c
	}
	s.mu.Unlock()
	c.mu.Lock()
	c.rules, c.anchor, c.eff = e.byResource[k.Resource], e.anchorDay, e
	c.mu.Unlock()
}
