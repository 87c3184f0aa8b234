package postgres

import (
	"context"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/meterplane/billing"
)

// leaseHook connects AppendEvents to the Quotas built on the store: an event that commits a
// reservation held under a quota lease lowers that lease in the same transaction that counts
// the event, so the pair is never counted twice or not at all.
type leaseHook struct {
	mu     sync.RWMutex
	quotas []*Quota
}

func (h *leaseHook) add(q *Quota) {
	h.mu.Lock()
	h.quotas = append(h.quotas, q)
	h.mu.Unlock()
}

func (h *leaseHook) remove(q *Quota) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, x := range h.quotas {
		if x == q {
			h.quotas = append(h.quotas[:i:i], h.quotas[i+1:]...)
			return
		}
	}
}

// leaseClaims are the lease adjustments of one append transaction. A nil *leaseClaims is valid
// and does nothing.
type leaseClaims struct {
	items []leaseClaim
}

// leaseClaim is one committed reservation's hold, settling in an append transaction.
type leaseClaim struct {
	q *Quota
	k *qkey
	h *qhold
}

// claim is called by AppendEvents inside its transaction once it knows which events are
// inserted (inserted[i] for events[i]). The result must be applied in the transaction (apply)
// and then told the outcome (done) exactly once, whether the transaction committed or not.
func (h *leaseHook) claim(events []billing.Event, inserted []bool) *leaseClaims {
	h.mu.RLock()
	qs := h.quotas
	h.mu.RUnlock()
	if len(qs) == 0 {
		return nil
	}
	var c *leaseClaims
	for i := range events {
		if !inserted[i] {
			continue
		}
		key := billing.RateKey{Tenant: events[i].Tenant, Resource: events[i].Resource}
		for _, q := range qs {
			if k, hd := q.claimLeased(key, events[i].ID); hd != nil {
				if c == nil {
					c = &leaseClaims{}
				}
				c.items = append(c.items, leaseClaim{q: q, k: k, h: hd})
				break
			}
		}
	}
	return c
}

// pending reports whether claim would claim a hold for any of events (candidates[i] for
// events[i]), without claiming it.
func (h *leaseHook) pending(events []billing.Event, candidates []bool) bool {
	h.mu.RLock()
	qs := h.quotas
	h.mu.RUnlock()
	if len(qs) == 0 {
		return false
	}
	for i := range events {
		if !candidates[i] {
			continue
		}
		key := billing.RateKey{Tenant: events[i].Tenant, Resource: events[i].Resource}
		for _, q := range qs {
			if q.holdsLeased(key, events[i].ID) {
				return true
			}
		}
	}
	return false
}

// apply runs the lease adjustments in tx.
func (c *leaseClaims) apply(ctx context.Context, tx pgx.Tx) error {
	if c == nil || len(c.items) == 0 {
		return nil
	}
	return applyClaims(ctx, tx, c.items)
}

// done reports whether the transaction committed.
func (c *leaseClaims) done(committed bool) {
	if c == nil {
		return
	}
	for _, it := range c.items {
		it.k.settled(it.h, committed)
	}
}
