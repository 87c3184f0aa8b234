package billing

import (
	"slices"
	"sync/atomic"
	"time"
)

// BatchSizeBounds are the upper bounds (inclusive) of the buckets of Stats.BatchSize, in events
// per committed transaction.
var BatchSizeBounds = []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000}

// CommitSecondsBounds are the upper bounds (inclusive) of the buckets of Stats.CommitSeconds, in
// seconds per store transaction.
var CommitSecondsBounds = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}

// Stats is a snapshot of a Meter's counters since New, returned by Meter.Stats. Counters only
// grow; QueueDepth is the state at the time of the snapshot. The zero value is a Meter that did
// nothing. It is a plain value: copy and compare it freely. Exporters (the metrics subpackage for
// Prometheus) turn it into their own format, so the root package depends on none.
type Stats struct {
	// EventsInserted counts events recorded and counted.
	EventsInserted uint64
	// EventsDuplicate counts events ignored because the same id and content were already
	// recorded (retries).
	EventsDuplicate uint64
	// EventsConflict counts events refused because their id was recorded with other content.
	EventsConflict uint64
	// EventsClosed counts events refused because their time is in a finalized (closed) period.
	EventsClosed uint64
	// EventsFailed counts events not recorded because their commit failed (a store error): the
	// durable caller got the error, or OnError did for async events.
	EventsFailed uint64

	// BatchesCommitted counts store transactions that committed events (group commits).
	BatchesCommitted uint64
	// CommitErrors counts store transactions of events that failed (each is retried alone or
	// reported).
	CommitErrors uint64
	// BatchSize is the distribution of events per committed transaction, in BatchSizeBounds.
	BatchSize Histogram
	// CommitSeconds is the distribution of the duration of committed transactions, in
	// CommitSecondsBounds.
	CommitSeconds Histogram

	// QueueDepth is how many Track calls wait for the writer now; QueueCapacity is
	// Config.QueueSize.
	QueueDepth    int
	QueueCapacity int

	// QuotaRefusals counts reservations refused by a hard quota (ErrQuotaExceeded).
	QuotaRefusals uint64
	// RateRefusals counts Allow calls refused by a rate limit, including requests above the
	// burst (ErrExceedsBurst).
	RateRefusals uint64

	// AlertsRecorded counts quota alerts this Meter recorded (each alert once, whichever path
	// found it: the writer or CheckQuotas).
	AlertsRecorded uint64
	// DeliveriesOK counts alert deliveries the Notifier accepted.
	DeliveriesOK uint64
	// DeliveriesFailed counts failed delivery attempts that will be retried.
	DeliveriesFailed uint64
	// DeliveriesDead counts deliveries given up after Config.AlertMaxAttempts attempts.
	DeliveriesDead uint64
}

// Histogram is a snapshot of a fixed-bucket histogram. The zero value is empty.
type Histogram struct {
	// Bounds are the upper bounds (inclusive) of the buckets, ascending.
	Bounds []float64
	// Counts has len(Bounds)+1 entries: Counts[i] is the number of observations in
	// (Bounds[i-1], Bounds[i]], and the last one those above every bound. Not cumulative.
	Counts []uint64
	// Count is the number of observations: the sum of Counts.
	Count uint64
	// Sum is the sum of the observed values.
	Sum float64
}

// Stats returns a snapshot of the Meter's counters. It takes no lock and costs a few atomic
// loads; safe for concurrent use, also after Close.
func (m *Meter) Stats() Stats {
	s := &m.stats
	return Stats{
		EventsInserted:   s.inserted.Load(),
		EventsDuplicate:  s.duplicate.Load(),
		EventsConflict:   s.conflict.Load(),
		EventsClosed:     s.closed.Load(),
		EventsFailed:     s.failed.Load(),
		BatchesCommitted: s.batches.Load(),
		CommitErrors:     s.commitErrors.Load(),
		BatchSize:        s.batchSize.snapshot(1),
		CommitSeconds:    s.commitNanos.snapshot(1e-9),
		QueueDepth:       len(m.queue),
		QueueCapacity:    cap(m.queue),
		QuotaRefusals:    s.quotaRefusals.Load(),
		RateRefusals:     s.rateRefusals.Load(),
		AlertsRecorded:   s.alerts.Load(),
		DeliveriesOK:     s.deliveriesOK.Load(),
		DeliveriesFailed: s.deliveriesFailed.Load(),
		DeliveriesDead:   s.deliveriesDead.Load(),
	}
}

// meterStats holds a Meter's live counters: atomics only, so the hot path never locks for them.
type meterStats struct {
	inserted, duplicate, conflict, closed, failed atomic.Uint64
	batches, commitErrors                         atomic.Uint64
	batchSize                                     histogram
	commitNanos                                   histogram
	quotaRefusals, rateRefusals                   atomic.Uint64
	alerts                                        atomic.Uint64
	deliveriesOK, deliveriesFailed                atomic.Uint64
	deliveriesDead                                atomic.Uint64
}

func (s *meterStats) init() {
	s.batchSize.init(BatchSizeBounds, 1)
	s.commitNanos.init(CommitSecondsBounds, 1e9)
}

// committed records one successful store transaction of n events that took d.
func (s *meterStats) committed(n int, d time.Duration) {
	s.batches.Add(1)
	s.batchSize.observe(uint64(n))
	s.commitNanos.observe(uint64(max(d, 0)))
}

// answered counts the outcome of a request's events.
func (s *meterStats) answered(statuses []AppendStatus, n int, err error) {
	if err != nil && statuses == nil {
		s.failed.Add(uint64(n))
		return
	}
	var ins, dup, con, clo uint64
	for _, st := range statuses {
		switch st {
		case AppendInserted:
			ins++
		case AppendDuplicate:
			dup++
		case AppendConflict:
			con++
		case AppendClosed:
			clo++
		}
	}
	for _, p := range []struct {
		c *atomic.Uint64
		n uint64
	}{{&s.inserted, ins}, {&s.duplicate, dup}, {&s.conflict, con}, {&s.closed, clo}} {
		if p.n > 0 {
			p.c.Add(p.n)
		}
	}
}

// histogram is a fixed-bucket histogram of integer observations, updated with atomic adds.
type histogram struct {
	bounds []float64       // in snapshot units
	limits []uint64        // the bounds in observation units
	counts []atomic.Uint64 // len(limits)+1
	sum    atomic.Uint64
}

// init sets the bounds; scale converts a bound to observation units (1e9 for seconds observed
// in nanoseconds).
func (h *histogram) init(bounds []float64, scale float64) {
	h.bounds = slices.Clone(bounds)
	h.limits = make([]uint64, len(bounds))
	for i, b := range bounds {
		h.limits[i] = uint64(b * scale)
	}
	h.counts = make([]atomic.Uint64, len(bounds)+1)
}

func (h *histogram) observe(v uint64) {
	i := 0
	for i < len(h.limits) && v > h.limits[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sum.Add(v)
}

// snapshot copies the histogram; unit converts the sum to snapshot units.
func (h *histogram) snapshot(unit float64) Histogram {
	out := Histogram{Bounds: slices.Clone(h.bounds), Counts: make([]uint64, len(h.counts))}
	for i := range h.counts {
		out.Counts[i] = h.counts[i].Load()
		out.Count += out.Counts[i]
	}
	out.Sum = float64(h.sum.Load()) * unit
	return out
}
