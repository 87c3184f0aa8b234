package billing

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Config configures a Meter. The zero value works once Store is set: every other field documents
// its default, and New fills the defaults before it validates.
type Config struct {
	// Store keeps events, rollups and everything else. Required: open one with store/sqlite
	// (sqlite.Open("billing.db"), or ":memory:") or store/postgres.
	Store Store

	// Location is the time zone of calendar periods: hour, day and month buckets, and quota and
	// invoice months. Defaults to UTC. Changing it for an existing store needs a rollup rebuild.
	Location *time.Location

	// Now returns the current time. Defaults to time.Now. Tests set it to fixed instants.
	Now func() time.Time

	// Async makes Track return as soon as its events are queued, instead of when they are
	// durable. Close drains the queue. Commit failures of queued events are retried and then
	// reported to OnError, never dropped silently. Defaults to false: Track returns only after
	// its events are committed.
	Async bool

	// Writers is how many batches may commit at once. Zero means what the Store asks for (a
	// Store with a method AppendConcurrency() int, such as store/postgres, whose transactions
	// overlap on separate connections), or 1 (SQLite has one writer connection). More than one
	// lets a batch of durable Track calls commit while the next one runs; a batch holding an
	// async call commits alone, after the batches queued before it, so the queue's order decides
	// between two events with one id. Events of one Track call always commit together.
	Writers int

	// MaxBatch is the largest number of events the writer commits in one transaction (the events
	// of a single Track call are never split, so a larger call commits alone). Defaults to 1000.
	MaxBatch int

	// FlushInterval bounds how long an async event may wait in the writer's queue for others to
	// share its transaction. Defaults to 2ms. Durable Track calls never wait for company: their
	// batch commits as soon as the writer is free, and calls that arrive meanwhile form the next.
	FlushInterval time.Duration

	// QueueSize is how many Track calls may wait for the writer. Defaults to 4096.
	QueueSize int

	// Overflow says what Track does when the queue is full: OverflowBlock (the default) waits for
	// room or for its context; OverflowReject returns ErrBackpressure at once.
	Overflow Overflow

	// LateWindow is how old an event's Time may be when it is tracked. Defaults to 35 days, so
	// last month's stragglers are still accepted at the start of a month.
	LateWindow time.Duration

	// MaxFuture is how far ahead of Now an event's Time may be (clock skew between hosts).
	// Defaults to 5 minutes.
	MaxFuture time.Duration

	// Dimensions lists the attribute keys that split usage into groups (usage can be grouped by
	// them, and prices can match them). Defaults to nil: every attribute is a dimension. Set it
	// when events carry high-cardinality attributes (a request id) that should be stored with the
	// event but not multiply its usage buckets.
	Dimensions []string

	// Limiter keeps rate-limit counters. Defaults to the built-in in-process limiter, which is
	// exact for one process; give every replica the same shared limiter (store/redis) when the
	// service runs on several.
	Limiter Limiter

	// RatePolicies are the rate limits of every tenant whose plan and overrides set none for a
	// resource. Defaults to none: resources without a policy are not rate limited.
	RatePolicies []RatePolicy

	// Quota keeps reservations and the usage that quota rules are checked against. Defaults to
	// the built-in in-process Quota, exact for one process; give every replica the same shared
	// Quota when the service runs on several.
	Quota Quota

	// DefaultPlan is the plan of tenants that were not assigned one. Defaults to none: such a
	// tenant is unlimited unless it has rules of its own.
	DefaultPlan string

	// Enforce says whether hard quota rules refuse reservations. Defaults to EnforceOn;
	// EnforceOff tracks and alerts only (a dry run, or a switch for incidents).
	Enforce Enforcement

	// FailOpen makes Reserve admit requests when the Store cannot tell the rules or usage (the
	// failure is logged). Defaults to false: Reserve fails closed and returns the error, so a hard
	// limit holds even when the database is in trouble.
	FailOpen bool

	// ReservationTTL is how long an uncommitted reservation holds its units before they return.
	// Defaults to 5 minutes.
	ReservationTTL time.Duration

	// RuleCacheTTL is how long a process keeps a tenant's rules (plan and overrides) in memory.
	// Changes made through this Meter apply at once; changes made by another process apply
	// within this time. Defaults to 10 seconds.
	RuleCacheTTL time.Duration

	// Notifier delivers quota alerts. Defaults to a SlogNotifier on Logger. Deliveries go through
	// an outbox in the Store and are retried on error.
	Notifier Notifier

	// NoDelivery makes this Meter record alerts in the Store's outbox without ever delivering
	// them: another process (the service, with its Notifier) does. Defaults to false. Tools that
	// open the service's Store for a moment, such as cmd/billingctl, set it, so that they neither
	// claim the service's pending deliveries nor send them to the wrong Notifier.
	NoDelivery bool

	// AlertMaxAttempts is how many times a delivery is tried before it is marked dead. Defaults
	// to 10.
	AlertMaxAttempts int

	// AlertRetryBackoff is the wait after a first failed delivery; it doubles after each failure
	// (with ±25% jitter), up to an hour. Defaults to 5 seconds.
	AlertRetryBackoff time.Duration

	// AlertPollInterval is how often the outbox looks for deliveries due for a retry. Defaults to
	// 1 second.
	AlertPollInterval time.Duration

	// NotifyTimeout bounds one delivery attempt. Defaults to 10 seconds.
	NotifyTimeout time.Duration

	// CheckInterval is how often Run calls CheckQuotas and the invoice job. Defaults to 1 minute.
	// With many replicas running Run, each job still runs once per interval across them (see
	// JobStore).
	CheckInterval time.Duration

	// JobLease is how long a replica's claim on a running background job of Run holds without
	// being renewed (Run renews it while the job runs): a replica that dies mid-job leaves the
	// job to another one after at most this long. Defaults to the longer of CheckInterval and
	// DefaultJobLease (1 minute).
	JobLease time.Duration

	// Invoicer computes draft invoices. Defaults to the built-in one, which prices the usage
	// buckets of the period with the tenant's plan.
	Invoicer Invoicer

	// InvoiceGrace is how long after a period ends late events are still accepted (and update
	// its draft) before Run finalizes the period's invoices. Defaults to 1 hour.
	InvoiceGrace time.Duration

	// InvoicePrefix starts every invoice number; the year and a gap-free sequence per year
	// follow: INV-2026-000042. Defaults to "INV-".
	InvoicePrefix string

	// Logger receives operational messages. Defaults to slog.Default().
	Logger *slog.Logger

	// OnError is called with errors that no caller can receive: an async batch that could not be
	// committed after retries, or async events that conflict with stored ones. Defaults to
	// logging them at error level with Logger.
	OnError func(error)
}

// Overflow is what Track does when the writer's queue is full.
type Overflow uint8

const (
	// OverflowBlock makes Track wait for room in the queue, or for its context to end.
	OverflowBlock Overflow = iota
	// OverflowReject makes Track return ErrBackpressure at once; nothing of the call is queued.
	OverflowReject
)

// Enforcement says whether hard quota rules refuse reservations.
type Enforcement uint8

const (
	// EnforceOn refuses reservations that would cross a hard limit. The default.
	EnforceOn Enforcement = iota
	// EnforceOff never refuses: usage is tracked, reserved and alerted only.
	EnforceOff
)

// Defaults applied by New.
const (
	DefaultReservationTTL    = 5 * time.Minute
	DefaultRuleCacheTTL      = 10 * time.Second
	DefaultAlertMaxAttempts  = 10
	DefaultAlertRetryBackoff = 5 * time.Second
	DefaultAlertPollInterval = time.Second
	DefaultNotifyTimeout     = 10 * time.Second
	DefaultCheckInterval     = time.Minute
	DefaultInvoiceGrace      = time.Hour
	DefaultInvoicePrefix     = "INV-"
	DefaultMaxBatch          = 1000
	DefaultFlushInterval     = 2 * time.Millisecond
	DefaultQueueSize         = 4096
	DefaultLateWindow        = 35 * 24 * time.Hour
	DefaultMaxFuture         = 5 * time.Minute
)

// Meter meters usage: it validates and records events, keeps usage buckets exact, and answers
// usage queries. Create one with New and share it: every method is safe for concurrent use.
// Close it before closing its Store.
type Meter struct {
	cfg  Config
	spec RollupSpec

	mu     sync.RWMutex // guards closed against sends on queue
	closed bool
	queue  chan *request
	done   chan struct{} // closed when the writer has drained and exited

	rules      ruleCache
	book       quotaBook // the built-in Quota
	quota      Quota     // Config.Quota, or &book
	localQuota bool      // quota is the built-in one
	invoicer   Invoicer

	jobsMu   sync.Mutex
	invoiced map[string]bool // periods Run has finalized, by tenant ("" for all) and start
	alerts   *alerter
	outbox   *outbox

	stats meterStats // counters for Stats, updated with atomic adds

	runner jobRunner // Run's instance id and job counters (jobs.go)
}

// New checks cfg, fills its defaults and starts the Meter's writer.
func New(cfg Config) (*Meter, error) {
	if cfg.Store == nil {
		return nil, fmt.Errorf("%w: Store is nil: open one, for example sqlite.Open(\"billing.db\") from "+
			"github.com/meterplane/billing/store/sqlite", ErrInvalidConfig)
	}
	if cfg.Location == nil {
		cfg.Location = time.UTC
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.OnError == nil {
		logger := cfg.Logger
		cfg.OnError = func(err error) { logger.Error("billing: async tracking failed", "err", err) }
	}
	for _, f := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"FlushInterval", &cfg.FlushInterval, DefaultFlushInterval},
		{"LateWindow", &cfg.LateWindow, DefaultLateWindow},
		{"MaxFuture", &cfg.MaxFuture, DefaultMaxFuture},
		{"ReservationTTL", &cfg.ReservationTTL, DefaultReservationTTL},
		{"RuleCacheTTL", &cfg.RuleCacheTTL, DefaultRuleCacheTTL},
		{"AlertRetryBackoff", &cfg.AlertRetryBackoff, DefaultAlertRetryBackoff},
		{"AlertPollInterval", &cfg.AlertPollInterval, DefaultAlertPollInterval},
		{"NotifyTimeout", &cfg.NotifyTimeout, DefaultNotifyTimeout},
		{"CheckInterval", &cfg.CheckInterval, DefaultCheckInterval},
		{"InvoiceGrace", &cfg.InvoiceGrace, DefaultInvoiceGrace},
		{"JobLease", &cfg.JobLease, max(cfg.CheckInterval, DefaultJobLease)},
	} {
		if *f.v < 0 {
			return nil, fieldErr(ErrInvalidConfig, f.name, "must not be negative (got %v); use 0 for the default %v", *f.v, f.def)
		}
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	for _, f := range []struct {
		name string
		v    *int
		def  int
	}{
		{"Writers", &cfg.Writers, storeWriters(cfg.Store)},
		{"MaxBatch", &cfg.MaxBatch, DefaultMaxBatch},
		{"QueueSize", &cfg.QueueSize, DefaultQueueSize},
		{"AlertMaxAttempts", &cfg.AlertMaxAttempts, DefaultAlertMaxAttempts},
	} {
		if *f.v < 0 {
			return nil, fieldErr(ErrInvalidConfig, f.name, "must not be negative (got %d); use 0 for the default %d", *f.v, f.def)
		}
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	if cfg.Enforce > EnforceOff {
		return nil, fieldErr(ErrInvalidConfig, "Enforce", "must be EnforceOn or EnforceOff (got %d)", cfg.Enforce)
	}
	if cfg.DefaultPlan != "" {
		if r := checkName(cfg.DefaultPlan); r != "" {
			return nil, fieldErr(ErrInvalidConfig, "DefaultPlan", "%s", r)
		}
	}
	if cfg.InvoicePrefix == "" {
		cfg.InvoicePrefix = DefaultInvoicePrefix
	}
	if r := checkText(cfg.InvoicePrefix); r != "" || len(cfg.InvoicePrefix) > 32 {
		if r == "" {
			r = "must be at most 32 bytes"
		}
		return nil, fieldErr(ErrInvalidConfig, "InvoicePrefix", "%s", r)
	}
	if cfg.Notifier == nil {
		cfg.Notifier = SlogNotifier{Logger: cfg.Logger}
	}
	if cfg.Overflow > OverflowReject {
		return nil, fieldErr(ErrInvalidConfig, "Overflow", "must be OverflowBlock or OverflowReject (got %d)", cfg.Overflow)
	}
	if cfg.Dimensions != nil {
		dims := make([]string, 0, len(cfg.Dimensions))
		for i, d := range cfg.Dimensions {
			if r := checkKey(d); r != "" {
				return nil, fieldErr(ErrInvalidConfig, fmt.Sprintf("Dimensions[%d]", i), "%s", r)
			}
			dims = append(dims, d)
		}
		cfg.Dimensions = dims
	}
	if err := validateRatePolicies(cfg.RatePolicies); err != nil {
		return nil, err
	}
	if cfg.Limiter == nil {
		cfg.Limiter = NewLocalLimiter(LocalLimiterConfig{Now: cfg.Now})
	}
	m := &Meter{
		cfg:   cfg,
		spec:  RollupSpec{Location: cfg.Location, Dimensions: cfg.Dimensions},
		queue: make(chan *request, cfg.QueueSize),
		done:  make(chan struct{}),
	}
	m.stats.init()
	m.invoicer = cfg.Invoicer
	if m.invoicer == nil {
		m.invoicer = rollupInvoicer{m}
	}
	m.book.init(m)
	m.quota, m.localQuota = cfg.Quota, false
	if m.quota == nil {
		m.quota, m.localQuota = &m.book, true
	}
	m.alerts = newAlerter(m)
	m.outbox = newOutbox(m)
	go m.writer()
	go m.alerts.run()
	go m.outbox.run()
	return m, nil
}

// Close stops accepting events, waits until every queued event is committed (or reported to
// OnError), records the alerts they raised, and stops the writer and the alert outbox (pending
// deliveries stay in the Store for the next Meter). Track after Close returns ErrClosed. Close is idempotent and
// does not close the Store.
func (m *Meter) Close() error {
	m.mu.Lock()
	first := !m.closed
	if first {
		m.closed = true
		close(m.queue)
	}
	m.mu.Unlock()
	<-m.done
	if first {
		close(m.alerts.stop)
	}
	<-m.alerts.done
	if first {
		close(m.outbox.stop)
	}
	<-m.outbox.done
	return nil
}

// Run runs the Meter's background jobs until ctx ends: JobCheckQuotas (CheckQuotas) and
// JobInvoices (keep last month's drafts current during Config.InvoiceGrace, then finalize them),
// each once per Config.CheckInterval, and JobMaintain (the Store's Maintainer, when it has one)
// once per the longer of Config.CheckInterval and DefaultMaintainInterval. Alerts are delivered
// and events written whether or not Run is called. It returns nil when ctx ends.
//
// Run is safe to run in every process of a service: each job runs once per interval (a slot:
// Config.Now truncated to the interval) across every Meter sharing the Store, by the Meter that
// claims it (JobStore.ClaimJob, owned by Meter.InstanceID). The claim is renewed while the job
// runs and expires Config.JobLease after its last renewal, so a job whose Meter died runs
// elsewhere after at most that long. A job that fails is released, and runs again at the next
// tick of any Meter; Meter.JobRuns counts the runs and failures of this Meter.
func (m *Meter) Run(ctx context.Context) error {
	m.runJobs(ctx, m.jobList(), m.cfg.JobLease) // New filled and checked it
	return nil
}

// Location returns the time zone of the Meter's calendar periods.
func (m *Meter) Location() *time.Location { return m.cfg.Location }

// Now returns the Meter's current time (Config.Now).
func (m *Meter) Now() time.Time { return m.cfg.Now() }

// storeWriters is the default of Config.Writers for st: what it asks for, or 1.
func storeWriters(st Store) int {
	if c, ok := st.(interface{ AppendConcurrency() int }); ok {
		return max(c.AppendConcurrency(), 1)
	}
	return 1
}
