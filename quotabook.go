package billing

import (
	"context"
	"hash/maphash"
	"sync"
	"time"
)

// quotaBook is the built-in Quota: in process memory, for each (tenant, resource) with rules,
// the usage of each rule's current bucket and the units held by open reservations. Usage is
// loaded from rollups on first use and on bucket rollover, and kept exact by the Meter's writer,
// which applies every committed event under commitMu; commits hold it shared (several batches may
// commit at once, and their increments commute) and loads hold it exclusively, so an event is
// counted either by the load's query or by the writer, never both, never neither.
type quotaBook struct {
	m        *Meter
	seed     maphash.Seed
	shards   [64]bookShard
	commitMu sync.RWMutex
}

var _ Quota = (*quotaBook)(nil)

type bookShard struct {
	mu   sync.Mutex
	keys map[RateKey]*counter
}

// counter is the state of one tenant and resource.
type counter struct {
	mu       sync.Mutex
	key      RateKey
	rules    []QuotaRule // the rules last asked about, for alerts
	rulesGen uint64      // the Meter's rule generation when rules were set
	rulesAt  time.Time
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

func (b *quotaBook) init(m *Meter) {
	b.m = m
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

// counterOf returns the counter of k, creating it.
func (b *quotaBook) counterOf(k RateKey) *counter {
	s := b.shard(k)
	s.mu.Lock()
	c := s.keys[k]
	if c == nil {
		c = &counter{key: k, buckets: make(map[Period]*bucketCount), open: make(map[string]*hold)}
		s.keys[k] = c
	}
	s.mu.Unlock()
	return c
}

// get returns the counter of req.Key with the rules of req and each rule's bucket loaded as
// req.Buckets says, loading usage from the Store when needed. The counter is returned locked.
func (b *quotaBook) get(ctx context.Context, req *QuotaRequest) (*counter, error) {
	var c *counter
	if req.cache != nil {
		c = req.cache.counter.Load()
	}
	if c == nil {
		c = b.counterOf(req.Key)
		if req.cache != nil {
			req.cache.counter.Store(c)
		}
	}
	for {
		c.mu.Lock()
		c.rules, c.rulesGen, c.rulesAt = req.Rules, req.gen, req.Now
		var stale []int
		for i, q := range req.Rules {
			if bc := c.buckets[q.Period]; bc == nil || !bc.span.Equal(req.Buckets[i]) {
				stale = append(stale, i)
			}
		}
		if len(stale) == 0 {
			c.expire(req.Now)
			return c, nil
		}
		c.mu.Unlock()
		if err := b.load(ctx, c, req, stale); err != nil {
			return nil, err
		}
	}
}

// load reads the usage of the listed rules' buckets from the rollups and installs it.
func (b *quotaBook) load(ctx context.Context, c *counter, req *QuotaRequest, which []int) error {
	b.commitMu.Lock()
	defer b.commitMu.Unlock()
	fresh := make([]*bucketCount, len(which))
	for j, i := range which {
		used, err := b.m.usedIn(ctx, req.Key, req.Rules[i].Period, req.Buckets[i])
		if err != nil {
			return err
		}
		fresh[j] = &bucketCount{span: req.Buckets[i], used: used}
	}
	c.mu.Lock()
	for j, i := range which {
		p := req.Rules[i].Period
		if old := c.buckets[p]; old != nil && old.span.Equal(fresh[j].span) {
			continue // loaded meanwhile, and kept exact since
		}
		c.buckets[p] = fresh[j]
	}
	c.mu.Unlock()
	return nil
}

// Reserve implements Quota.
func (b *quotaBook) Reserve(ctx context.Context, req QuotaRequest) error {
	c, err := b.get(ctx, &req)
	if err != nil {
		return err
	}
	defer c.mu.Unlock()
	if req.Enforce {
		for i, q := range req.Rules {
			if !q.Hard {
				continue
			}
			bc := c.buckets[q.Period]
			if bc.used+c.reserved+req.N > q.Limit {
				return &QuotaExceededError{Rule: q, Used: bc.used, Reserved: c.reserved, Requested: req.N,
					Limit: q.Limit, ResetAt: req.Buckets[i].End}
			}
		}
	}
	if _, dup := c.open[req.ID]; dup {
		return nil // a retried Reserve of the same id holds once
	}
	h := &hold{id: req.ID, n: req.N, expires: req.Expires}
	c.open[req.ID] = h
	c.fifo = append(c.fifo, h)
	c.reserved += req.N
	return nil
}

// Release implements Quota.
func (b *quotaBook) Release(ctx context.Context, key RateKey, id string) error {
	c := b.lookup(key)
	if c == nil {
		return nil
	}
	c.mu.Lock()
	c.release(id)
	c.mu.Unlock()
	return nil
}

// Counts implements Quota.
func (b *quotaBook) Counts(ctx context.Context, req QuotaRequest) ([]int64, int64, error) {
	c, err := b.get(ctx, &req)
	if err != nil {
		return nil, 0, err
	}
	defer c.mu.Unlock()
	used := make([]int64, len(req.Rules))
	for i, q := range req.Rules {
		used[i] = c.buckets[q.Period].used
	}
	return used, c.reserved, nil
}

// usedIn sums the usage of key in span from the rollups: the one bucket of period p in span, or,
// for an anchored month, the day buckets it covers.
func (m *Meter) usedIn(ctx context.Context, k RateKey, p Period, span Span) (int64, error) {
	q := RollupQuery{Tenant: k.Tenant, Resource: k.Resource, Period: p}
	if p != PeriodTotal {
		// [Start, End) holds exactly one bucket of period p (buckets of one period never
		// overlap). A bound of Start+1ns would be empty in stores that keep whole seconds.
		q.From, q.To = span.Start, span.End
		if p == PeriodMonth && !PeriodMonth.Start(span.Start, m.cfg.Location).Equal(span.Start) {
			q.Period = PeriodDay // an anchored cycle is a run of whole days
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
		if cur, ok := c.open[h.id]; ok && cur == h {
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
			if cur, ok := c.open[h.id]; ok && cur == h {
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
// reservations, atomically per counter. It runs in the writer's committers, under commitMu held shared. Thresholds
// reached for the first time are handed to the alerter; so are the (tenant, resource) pairs it
// knows no current rules for, so that the alerter can load their rules and check them.
func (b *quotaBook) apply(events []Event, statuses []AppendStatus, release string) {
	m := b.m
	now := m.cfg.Now()
	gen := m.rules.gen.Load()
	for i := range events {
		e := &events[i]
		inserted := statuses[i] == AppendInserted
		k := RateKey{Tenant: e.Tenant, Resource: e.Resource}
		c := b.lookup(k)
		if c == nil {
			if inserted {
				m.alerts.check(k)
			}
			continue
		}
		c.mu.Lock()
		if inserted {
			for p, bc := range c.buckets {
				if p == PeriodTotal || bc.span.Contains(e.Time) {
					bc.used += e.Quantity
				}
			}
			if c.rulesGen != gen || now.Sub(c.rulesAt) >= m.cfg.RuleCacheTTL || now.Before(c.rulesAt) {
				m.alerts.check(k) // rules changed or aged: the alerter reloads and checks them
			} else {
				for _, q := range c.rules {
					if bc := c.buckets[q.Period]; bc != nil {
						m.alerts.crossed(k, q, bc)
					}
				}
			}
		}
		if release != "" && e.ID == release {
			c.release(release)
		}
		c.mu.Unlock()
	}
}
