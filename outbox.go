package billing

import (
	"context"
	"math/rand/v2"
	"time"
)

// DeliveryStatus is the state of an alert's delivery in the outbox.
type DeliveryStatus string

// Delivery states: pending until the Notifier accepts it (delivered) or it has failed
// Config.AlertMaxAttempts times (dead).
const (
	DeliveryPending   DeliveryStatus = "pending"
	DeliveryDelivered DeliveryStatus = "delivered"
	DeliveryDead      DeliveryStatus = "dead"
)

// Delivery is an alert in the outbox, with its delivery state.
type Delivery struct {
	Alert       Alert          `json:"alert"`
	Status      DeliveryStatus `json:"status"`
	Attempts    int            `json:"attempts"`
	NextAttempt time.Time      `json:"next_attempt"`
	LastError   string         `json:"last_error,omitempty"`
	Updated     time.Time      `json:"updated"`
}

// AlertQuery selects alerts. The zero value selects the newest 100 of every tenant.
type AlertQuery struct {
	Tenant string // empty: every tenant
	Limit  int    // 0: 100
}

// DeliveryQuery selects deliveries. The zero value selects the newest 100 in any state.
type DeliveryQuery struct {
	Status DeliveryStatus // empty: any
	Tenant string         // empty: every tenant
	Limit  int            // 0: 100
}

// outbox delivers recorded alerts through Config.Notifier, with retries: exponential backoff
// from Config.AlertRetryBackoff with ±25% jitter, capped at an hour, then dead after
// Config.AlertMaxAttempts. Claims are leased in the Store, so several processes can share it.
type outbox struct {
	m    *Meter
	wake chan struct{}
	stop chan struct{}
	done chan struct{}
}

func newOutbox(m *Meter) *outbox {
	return &outbox{m: m, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
}

func (o *outbox) signal() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

func (o *outbox) run() {
	defer close(o.done)
	if o.m.cfg.NoDelivery {
		<-o.stop
		return
	}
	tick := time.NewTicker(o.m.cfg.AlertPollInterval)
	defer tick.Stop()
	ctx := context.Background()
	for {
		select {
		case <-o.stop:
			// A last pass for what the final batches raised, bounded by NotifyTimeout; whatever
			// is left stays pending in the Store for the next Meter.
			final, cancel := context.WithTimeout(ctx, o.m.cfg.NotifyTimeout)
			for o.deliverDue(final) {
			}
			cancel()
			return
		case <-o.wake:
		case <-tick.C:
		}
		for o.deliverDue(ctx) {
		}
	}
}

// deliverDue sends one claimed page of due deliveries; it reports whether there may be more.
func (o *outbox) deliverDue(ctx context.Context) bool {
	m := o.m
	const page = 16
	lease := m.cfg.NotifyTimeout + time.Minute
	due, err := m.cfg.Store.ClaimDeliveries(ctx, m.cfg.Now(), lease, page)
	if err != nil {
		if ctx.Err() == nil {
			m.cfg.Logger.Error("billing: cannot read the alert outbox", "err", err)
		}
		return false
	}
	for _, d := range due {
		if ctx.Err() != nil {
			return false
		}
		nctx, cancel := context.WithTimeout(ctx, m.cfg.NotifyTimeout)
		err := m.cfg.Notifier.Notify(nctx, d.Alert)
		cancel()
		if ctx.Err() != nil {
			return false // stopping: the lease expires and the delivery is retried later
		}
		now := m.cfg.Now()
		d.Attempts++
		d.Updated = now
		switch {
		case err == nil:
			m.stats.deliveriesOK.Add(1)
			d.Status, d.LastError = DeliveryDelivered, ""
		case d.Attempts >= m.cfg.AlertMaxAttempts:
			m.stats.deliveriesDead.Add(1)
			d.Status, d.LastError = DeliveryDead, err.Error()
			m.cfg.Logger.Error("billing: alert delivery failed for good", "alert", d.Alert.ID, "attempts", d.Attempts, "err", err)
		default:
			m.stats.deliveriesFailed.Add(1)
			d.Status, d.LastError = DeliveryPending, err.Error()
			d.NextAttempt = now.Add(backoff(m.cfg.AlertRetryBackoff, d.Attempts))
		}
		if err := m.cfg.Store.FinishDelivery(ctx, d); err != nil {
			m.cfg.Logger.Error("billing: cannot record alert delivery", "alert", d.Alert.ID, "err", err)
		}
	}
	return len(due) == page
}

// backoff returns the wait after the attempt-th failure: base x 2^(attempt-1), at most an hour,
// with ±25% jitter so that retries of many alerts spread out.
func backoff(base time.Duration, attempt int) time.Duration {
	d := base
	for i := 1; i < attempt && d < time.Hour; i++ {
		d *= 2
	}
	d = min(d, time.Hour)
	jitter := time.Duration(rand.Int64N(int64(d)/2+1)) - d/4
	return d + jitter
}

// Deliveries returns the outbox entries matching q, newest first: what was delivered, what is
// pending and when it is retried, and what is dead.
func (m *Meter) Deliveries(ctx context.Context, q DeliveryQuery) ([]Delivery, error) {
	return m.cfg.Store.ListDeliveries(ctx, q)
}
