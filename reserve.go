package billing

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// Reservation holds units of a tenant's quotas for a request in flight: Reserve admits them
// against every rule at once, and Commit records what was actually used and returns the rest.
// An uncommitted reservation expires after Config.ReservationTTL and its units return, so a
// crashed request never leaks quota. Commit and Cancel are idempotent and safe for concurrent use.
type Reservation struct {
	// ID is the reservation's id, and the ID of the event Commit records: a retried Commit is
	// counted once.
	ID       string
	Tenant   string
	Resource string
	// Quantity is the number of units held.
	Quantity int64
	// Expires is when the held units return if the reservation is neither committed nor
	// cancelled.
	Expires time.Time
	// Attrs are recorded on the event Commit tracks, such as {"model": "gpt-4o"}. Set them
	// before Commit.
	Attrs map[string]string

	m     *Meter
	held  bool         // units are held in the Quota (some rule applies)
	state atomic.Int32 // resOpen, resBusy, resCommitted, resCancelled
}

const (
	resOpen int32 = iota
	resBusy
	resCommitted
	resCancelled
)

// QuotaExceededError is the refusal of a Reserve by a hard rule. It matches ErrQuotaExceeded.
type QuotaExceededError struct {
	Rule QuotaRule
	// Used and Reserved are the rule's current usage and held units; Requested is what was asked.
	Used      int64
	Reserved  int64
	Requested int64
	// Limit is Rule.Limit; ResetAt is when the rule's period ends (zero for total).
	Limit   int64
	ResetAt time.Time
}

// Error implements error.
func (e *QuotaExceededError) Error() string {
	msg := fmt.Sprintf("%v: tenant %q, %s per %s: %d used + %d reserved + %d requested > limit %d",
		ErrQuotaExceeded, e.Rule.Tenant, e.Rule.Resource, e.Rule.Period, e.Used, e.Reserved, e.Requested, e.Limit)
	if !e.ResetAt.IsZero() {
		msg += ", resets at " + e.ResetAt.UTC().Format(time.RFC3339)
	}
	return msg
}

// Unwrap lets errors.Is match ErrQuotaExceeded.
func (e *QuotaExceededError) Unwrap() error { return ErrQuotaExceeded }

// Reserve admits n units of resource for tenant against every rule that applies (its own and its
// plan's), atomically, or refuses with a *QuotaExceededError naming the first hard rule that
// would be crossed. Soft rules never refuse. With no rule for the resource the reservation is
// free and Commit only tracks. With Config.Enforce set to EnforceOff nothing is refused, but units
// are still held so QuotaStatus shows them.
//
// If the rules or usage cannot be read from the Store, Reserve returns the error (fail closed),
// unless Config.FailOpen is set: then it admits n without holding anything and logs the failure.
func (m *Meter) Reserve(ctx context.Context, tenant, resource string, n int64) (*Reservation, error) {
	now := m.cfg.Now()
	gen := m.rules.gen.Load()
	// A tenant with cached rules passed the tenant check when they were loaded.
	e := m.rules.current(tenant, now, m.cfg.RuleCacheTTL)
	if e == nil {
		if err := checkTenant(tenant); err != nil {
			return nil, err
		}
	}
	if r := checkName(resource); r != "" {
		return nil, fieldErr(ErrInvalidConfig, "resource", "%s", r)
	}
	if n <= 0 {
		return nil, fieldErr(ErrInvalidConfig, "n", "must be > 0 (got %d)", n)
	}
	if n > MaxQuantity {
		return nil, fieldErr(ErrInvalidConfig, "n", "must be at most %d (got %d)", int64(MaxQuantity), n)
	}
	r := &Reservation{ID: NewEventID(), Tenant: tenant, Resource: resource, Quantity: n,
		Expires: now.Add(m.cfg.ReservationTTL), m: m}
	if e == nil {
		var err error
		if e, err = m.effectiveRulesAt(ctx, tenant, now); err != nil {
			return m.failOpen(r, err)
		}
	}
	rules := e.byResource[resource]
	if len(rules) == 0 {
		return r, nil
	}
	req := m.quotaRequestFor(RateKey{Tenant: tenant, Resource: resource}, rules, e, gen, now)
	req.ID, req.N, req.Expires, req.Enforce = r.ID, n, r.Expires, m.cfg.Enforce != EnforceOff
	if err := m.quota.Reserve(ctx, req); err != nil {
		var qe *QuotaExceededError
		if errors.As(err, &qe) {
			m.stats.quotaRefusals.Add(1)
			return nil, err
		}
		return m.failOpen(r, err)
	}
	r.held = true
	return r, nil
}

func (m *Meter) failOpen(r *Reservation, err error) (*Reservation, error) {
	if m.cfg.FailOpen {
		m.cfg.Logger.Warn("billing: quota check failed; admitting (Config.FailOpen)", "tenant", r.Tenant,
			"resource", r.Resource, "err", err)
		return r, nil
	}
	return nil, fmt.Errorf("billing: quota check for tenant %q, %s failed, refusing (fail closed; Config.FailOpen "+
		"admits instead): %w", r.Tenant, r.Resource, err)
}

// Commit records actual units of use as an event (ID: the reservation's ID, Time: now, Attrs:
// r.Attrs) and returns the held units; the event and the release are applied together, so the
// tenant's usage plus reservations never double counts. actual may be below the reservation
// (the rest returns), zero (nothing is recorded), or above it: the excess is recorded and
// counted, and QuotaStatus shows it. Commit after Commit returns nil; Commit after Cancel
// returns an error. Commit after expiry still records the usage (it happened).
//
// In durable mode Commit returns once the event is durable; if recording fails the reservation
// stays open and Commit may be retried.
func (r *Reservation) Commit(ctx context.Context, actual int64) error {
	if actual < 0 {
		return fieldErr(ErrInvalidEvent, "actual", "must be >= 0 (got %d)", actual)
	}
	for {
		switch r.state.Load() {
		case resCommitted:
			return nil
		case resCancelled:
			return fmt.Errorf("billing: reservation %s was cancelled; it cannot be committed", r.ID)
		case resBusy:
			time.Sleep(50 * time.Microsecond) // another Commit is recording; wait for its outcome
			continue
		}
		if r.state.CompareAndSwap(resOpen, resBusy) {
			break
		}
	}
	if actual == 0 {
		r.releaseHold()
		r.state.Store(resCommitted)
		return nil
	}
	ev := Event{ID: r.ID, Tenant: r.Tenant, Resource: r.Resource, Quantity: actual, Attrs: r.Attrs}
	err := r.m.trackCommit(ctx, ev)
	if err != nil && !errors.Is(err, ErrEventConflict) && !errors.Is(err, ErrPeriodClosed) {
		r.state.Store(resOpen)
		return err
	}
	// The writer returns the hold once the event is recorded (the built-in Quota in the same
	// step that counts it). A conflict or a closed period recorded nothing: the hold returns here.
	if err != nil {
		r.releaseHold()
	}
	r.state.Store(resCommitted)
	return err
}

// Cancel returns every held unit without recording usage. Cancel after Cancel returns nil;
// Cancel after Commit returns an error.
func (r *Reservation) Cancel(ctx context.Context) error {
	for {
		switch r.state.Load() {
		case resCancelled:
			return nil
		case resCommitted:
			return fmt.Errorf("billing: reservation %s was committed; it cannot be cancelled", r.ID)
		case resBusy:
			time.Sleep(50 * time.Microsecond)
			continue
		}
		if r.state.CompareAndSwap(resOpen, resCancelled) {
			r.releaseHold()
			return nil
		}
	}
}

func (r *Reservation) releaseHold() {
	if !r.held {
		return
	}
	key := RateKey{Tenant: r.Tenant, Resource: r.Resource}
	if err := r.m.quota.Release(context.Background(), key, r.ID); err != nil {
		r.m.cfg.Logger.Warn("billing: cannot release reservation; it expires at its TTL", "id", r.ID, "err", err)
	}
}
