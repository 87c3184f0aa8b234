package billing

import (
	"context"
	"time"
)

// Store is where a Meter keeps everything it knows. It is composed of narrow parts so that each
// component depends only on the part it needs; a backend implements all of them and proves it with
// the conformance suite in store/storetest. Backends: store/sqlite (embedded, the default) and,
// for many replicas, store/postgres.
//
// Implementations must be safe for concurrent use. The Meter does not close its Store: whoever
// opened it closes it, after Meter.Close.
type Store interface {
	EventStore
	PlanStore
	AlertStore
	InvoiceStore
	AuditStore
	JobStore
}

// EventStore is the events-and-rollups part of a Store: the durable record of usage and the
// pre-aggregated buckets that answer usage queries.
type EventStore interface {
	// AppendEvents records a batch atomically: every event that is new is inserted and its rollup
	// increments (see RollupSpec.Add) are applied in the same transaction, or nothing is. Events
	// arrive validated, with ID and Time set. The result has one status per event, in order: an
	// event whose (Tenant, ID) is already stored, or appears earlier in the batch, is
	// AppendDuplicate when its Resource, Quantity and Attrs equal the recorded ones and
	// AppendConflict when they differ; an event whose Time falls in a span closed for its tenant
	// (see InvoiceStore.CloseSpan) is AppendClosed. None of those changes anything.
	AppendEvents(ctx context.Context, spec RollupSpec, events []Event) ([]AppendStatus, error)

	// QueryRollups returns the stored buckets of q.Period whose start is in [q.From, q.To) (a zero
	// bound is open; both are ignored for PeriodTotal), for q.Tenant and q.Resource when they are
	// not empty, in any order.
	QueryRollups(ctx context.Context, q RollupQuery) ([]Rollup, error)

	// RebuildRollups recomputes, in one transaction, the hour, day and month buckets of span from
	// the stored events (for tenant, or every tenant when it is empty), and the total buckets from
	// the month buckets. The span is first widened to whole months with spec.Months. Concurrent
	// appends either happen before or after the rebuild, never partly.
	RebuildRollups(ctx context.Context, spec RollupSpec, tenant string, span Span) error
}

// PlanStore is the plans-and-tenants part of a Store: the rules a Meter enforces.
type PlanStore interface {
	// PutPlan creates or replaces the plan with p.ID.
	PutPlan(ctx context.Context, p Plan) error
	// GetPlan returns the plan with id, or an error matching ErrNotFound.
	GetPlan(ctx context.Context, id string) (Plan, error)
	// ListPlans returns every plan, ordered by ID.
	ListPlans(ctx context.Context) ([]Plan, error)
	// GetTenant returns the tenant record with id, or an error matching ErrNotFound.
	GetTenant(ctx context.Context, id string) (Tenant, error)
	// UpdateTenant reads the tenant record with id (a new Tenant{ID: id} when there is none),
	// calls fn on it and stores the result, atomically: concurrent updates of one tenant never
	// lose each other's changes. An error from fn aborts the update and is returned as is.
	UpdateTenant(ctx context.Context, id string, fn func(t *Tenant) error) (Tenant, error)
	// ListTenants returns the tenant records, ordered by ID, starting after the ID after (empty:
	// from the first), at most limit of them (0: all).
	ListTenants(ctx context.Context, after string, limit int) ([]Tenant, error)
}

// AlertStore is the alerts-and-outbox part of a Store: which threshold crossings were alerted,
// and the durable queue of their deliveries.
type AlertStore interface {
	// RecordAlert stores a and queues its delivery, atomically, unless an alert with a.ID was
	// recorded before; it reports whether a was new. This is what makes alerts fire once.
	RecordAlert(ctx context.Context, a Alert) (bool, error)
	// ClaimDeliveries returns up to limit pending deliveries due at now (NextAttempt <= now),
	// and pushes each one's NextAttempt to now+lease, so that another process does not claim
	// it while it is being sent.
	ClaimDeliveries(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]Delivery, error)
	// FinishDelivery records the outcome of an attempt: d.Status, d.Attempts, d.NextAttempt and
	// d.LastError as set by the caller.
	FinishDelivery(ctx context.Context, d Delivery) error
	// ListAlerts returns alerts matching q, newest first.
	ListAlerts(ctx context.Context, q AlertQuery) ([]Alert, error)
	// ListDeliveries returns deliveries matching q, newest first.
	ListDeliveries(ctx context.Context, q DeliveryQuery) ([]Delivery, error)
}

// InvoiceStore is the invoices part of a Store: drafts, the gap-free numbering of finalized
// invoices, and the spans that finalized invoices close to late events.
type InvoiceStore interface {
	// PutDrafts stores draft invoices. A draft replaces the draft of the same tenant and span
	// (keeping its ID); a draft that replaces nothing keeps its ID, or gets a new one when its ID
	// is empty or already names another invoice (which is never overwritten). The result has one
	// error per invoice: nil, or an error matching ErrPeriodClosed when a finalized or paid
	// invoice exists for that tenant and span. The IDs are set in invs.
	PutDrafts(ctx context.Context, invs []*Invoice) ([]error, error)
	// GetInvoice returns the invoice with id, or an error matching ErrNotFound.
	GetInvoice(ctx context.Context, id string) (*Invoice, error)
	// ListInvoices returns the invoices matching q, newest period first.
	ListInvoices(ctx context.Context, q InvoiceQuery) ([]*Invoice, error)
	// CloseSpan refuses, from now on, events of tenant whose time is in span (AppendEvents
	// answers AppendClosed). Closing a closed span is a no-op.
	CloseSpan(ctx context.Context, tenant string, span Span) error
	// FinalizeInvoice replaces the draft inv.ID with inv (its lines recomputed after CloseSpan),
	// gives it the next number of sequence (number formats it), and sets it finalized at
	// inv.FinalizedAt, in one transaction: numbers of one sequence are consecutive, with no gap
	// and no repeat. An invoice that is already finalized (or later) is returned unchanged.
	FinalizeInvoice(ctx context.Context, inv *Invoice, sequence string, number func(seq int64) string) (*Invoice, error)
	// SetInvoiceStatus moves the invoice id from status from to status to, recording at in the
	// matching time field; an invoice in another status is refused with an error that says which.
	SetInvoiceStatus(ctx context.Context, id string, from, to InvoiceStatus, at time.Time) (*Invoice, error)
}

// JobStore is the background-jobs part of a Store: it lets the Meter.Run of many replicas agree
// on which one runs each job in each interval, so that a job runs once per interval however
// many replicas run, and runs again elsewhere when the replica that claimed it dies.
type JobStore interface {
	// ClaimJob claims the run of job c.Name for the interval that starts at c.Slot for c.Owner,
	// until c.Until. It reports true, and records the claim, when the run for c.Slot has not
	// finished, no run for a later slot was claimed, and no other owner holds an unexpired claim
	// (Until after c.Now) on a run of that job for any slot, so that runs of one job never
	// overlap; a claim by the same owner is renewed (same slot) or replaces its own earlier one.
	// A renewal with Until at or before c.Now releases the claim. Claims of different jobs are
	// independent. Check and record are one atomic step across every process using the Store.
	ClaimJob(ctx context.Context, c JobClaim) (bool, error)
	// FinishJob records that c.Owner finished the run of c.Name for c.Slot, so that the slot is
	// never claimed again. It returns an error matching ErrNotFound when c.Owner does not hold
	// the claim (it expired and another owner took it).
	FinishJob(ctx context.Context, c JobClaim) error
}

// JobClaim names one run of a background job; see JobStore.
type JobClaim struct {
	Name  string    // the job, such as "check-quotas"
	Slot  time.Time // the start of the interval the run is for
	Owner string    // the claiming Meter's instance id
	Now   time.Time // the claimer's clock
	Until time.Time // the claim's expiry, when another owner may take it over
}

// InvoiceQuery selects invoices. The zero value selects the 100 most recent of every tenant.
type InvoiceQuery struct {
	Tenant string        // empty: every tenant
	Status InvoiceStatus // empty: any
	// Start selects invoices whose period starts at Start (zero: any).
	Start time.Time
	Limit int // 0: 100
}

// AppendStatus is what AppendEvents did with one event.
type AppendStatus uint8

// The outcomes of appending one event.
const (
	AppendInserted  AppendStatus = iota // new: recorded and counted
	AppendDuplicate                     // same id and same content already recorded: ignored
	AppendConflict                      // same id, different content already recorded: refused
	AppendClosed                        // time in a span closed by a finalized invoice: refused
)

// String returns "inserted", "duplicate" or "conflict".
func (s AppendStatus) String() string {
	switch s {
	case AppendInserted:
		return "inserted"
	case AppendDuplicate:
		return "duplicate"
	case AppendConflict:
		return "conflict"
	case AppendClosed:
		return "closed"
	}
	return "unknown"
}

// RollupQuery selects stored buckets; see EventStore.QueryRollups.
type RollupQuery struct {
	Tenant   string // empty: every tenant
	Resource string // empty: every resource
	Period   Period
	From, To time.Time // bucket starts in [From, To); zero is unbounded
}

// Rollup is one stored usage bucket: the usage of one tenant and resource in one bucket of one
// period, for one attribute group.
type Rollup struct {
	Tenant   string
	Resource string
	Period   Period
	// Start is the bucket's start; the zero time for PeriodTotal.
	Start time.Time
	// Group is the canonical JSON object of the event's dimension attributes (see EncodeAttrs).
	Group string
	Sum   int64 // sum of quantities
	Count int64 // number of events
	Max   int64 // largest single quantity
}

// RollupSpec says how events become buckets: the time zone of the calendar periods and which
// attributes form groups. A Meter builds it from its Config; stores apply it. The zero value
// buckets in UTC and groups by every attribute.
type RollupSpec struct {
	// Location is the time zone of hour, day and month buckets; nil means UTC.
	Location *time.Location
	// Dimensions are the attribute keys that form groups; nil means every key.
	Dimensions []string
}

// Months widens span to whole calendar months in the spec's location.
func (s RollupSpec) Months(span Span) Span {
	start := PeriodMonth.Start(span.Start, s.Location)
	end := PeriodMonth.Start(span.End, s.Location)
	if end.Before(span.End) {
		end = PeriodMonth.Next(end, s.Location)
	}
	return Span{Start: start, End: end}
}

// NewRollupSet returns an empty accumulator of bucket increments under this spec. Stores use it
// to turn the events they insert (or rebuild) into rows to add.
func (s RollupSpec) NewRollupSet() *RollupSet {
	rs := &RollupSet{spec: s, rows: make(map[rollupKey]*Rollup)}
	if s.Dimensions != nil {
		rs.dims = make(map[string]bool, len(s.Dimensions))
		for _, d := range s.Dimensions {
			rs.dims[d] = true
		}
	}
	return rs
}

// RollupSet accumulates the bucket increments of many events: one Rollup per tenant, resource,
// period, bucket and group. It is not safe for concurrent use.
type RollupSet struct {
	spec  RollupSpec
	dims  map[string]bool
	rows  map[rollupKey]*Rollup
	order []*Rollup
	buf   []byte
	last  struct {
		lo    time.Time // the cached buckets hold for event times in [lo, end)
		hour  time.Time
		day   time.Time
		month time.Time
		end   time.Time
	}
}

type rollupKey struct {
	tenant, resource, group string
	period                  Period
	start                   int64
}

// Add counts e in its hour, day, month and total buckets.
func (rs *RollupSet) Add(e *Event) {
	rs.buf = encodeAttrs(rs.buf[:0], e.Attrs, rs.dims)
	group := string(rs.buf)
	// Events of one batch usually share an hour: reuse the last computed buckets.
	if e.Time.Before(rs.last.lo) || !e.Time.Before(rs.last.end) {
		loc := rs.spec.Location
		rs.last.hour = PeriodHour.Start(e.Time, loc)
		rs.last.lo, rs.last.end = rs.last.hour, rs.last.hour.Add(time.Hour)
		rs.last.day = PeriodDay.Start(e.Time, loc)
		rs.last.month = PeriodMonth.Start(e.Time, loc)
		// A day may begin or end inside a clock hour only in zones with odd offsets; keep the
		// cache within the day.
		if next := PeriodDay.Next(rs.last.day, loc); next.Before(rs.last.end) {
			rs.last.end = next
		}
		// A clock change inside the hour (Australia/Lord_Howe moves by 30 minutes) changes
		// the hour start of the times after it: keep the cache within the zone period.
		zs, ze := e.Time.In(rs.last.hour.Location()).ZoneBounds() // zero when unbounded
		if zs.After(rs.last.lo) {
			rs.last.lo = zs
		}
		if !ze.IsZero() && ze.Before(rs.last.end) {
			rs.last.end = ze
		}
	}
	rs.add(e, PeriodHour, rs.last.hour, group)
	rs.add(e, PeriodDay, rs.last.day, group)
	rs.add(e, PeriodMonth, rs.last.month, group)
	rs.add(e, PeriodTotal, time.Time{}, group)
}

func (rs *RollupSet) add(e *Event, p Period, start time.Time, group string) {
	var unix int64
	if p != PeriodTotal {
		unix = start.Unix()
	}
	k := rollupKey{tenant: e.Tenant, resource: e.Resource, group: group, period: p, start: unix}
	r := rs.rows[k]
	if r == nil {
		r = &Rollup{Tenant: e.Tenant, Resource: e.Resource, Period: p, Start: start, Group: group}
		rs.rows[k] = r
		rs.order = append(rs.order, r)
	}
	r.Sum += e.Quantity
	r.Count++
	if e.Quantity > r.Max {
		r.Max = e.Quantity
	}
}

// Len returns the number of distinct buckets.
func (rs *RollupSet) Len() int { return len(rs.order) }

// Rollups returns the accumulated increments, in the order their buckets were first touched.
func (rs *RollupSet) Rollups() []*Rollup { return rs.order }
