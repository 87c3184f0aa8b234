package billing

import (
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

// Defaults applied by New.
const (
	DefaultMaxBatch      = 1000
	DefaultFlushInterval = 2 * time.Millisecond
	DefaultQueueSize     = 4096
	DefaultLateWindow    = 35 * 24 * time.Hour
	DefaultMaxFuture     = 5 * time.Minute
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
		{"MaxBatch", &cfg.MaxBatch, DefaultMaxBatch},
		{"QueueSize", &cfg.QueueSize, DefaultQueueSize},
	} {
		if *f.v < 0 {
			return nil, fieldErr(ErrInvalidConfig, f.name, "must not be negative (got %d); use 0 for the default %d", *f.v, f.def)
		}
		if *f.v == 0 {
			*f.v = f.def
		}
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
	m := &Meter{
		cfg:   cfg,
		spec:  RollupSpec{Location: cfg.Location, Dimensions: cfg.Dimensions},
		queue: make(chan *request, cfg.QueueSize),
		done:  make(chan struct{}),
	}
	go m.writer()
	return m, nil
}

// Close stops accepting events, waits until every queued event is committed (or reported to
// OnError), and stops the writer. Track after Close returns ErrClosed. Close is idempotent and
// does not close the Store.
func (m *Meter) Close() error {
	m.mu.Lock()
	if !m.closed {
		m.closed = true
		close(m.queue)
	}
	m.mu.Unlock()
	<-m.done
	return nil
}

// Location returns the time zone of the Meter's calendar periods.
func (m *Meter) Location() *time.Location { return m.cfg.Location }

// Now returns the Meter's current time (Config.Now).
func (m *Meter) Now() time.Time { return m.cfg.Now() }
