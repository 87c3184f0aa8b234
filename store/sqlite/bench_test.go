package sqlite_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meterplane/billing"
	"github.com/meterplane/billing/store/sqlite"
)

// Run with:
//
//	go test ./store/sqlite -run '^$' -bench . -benchtime 3s
//
// BenchmarkRawBatchInsert is the floor on this machine and BenchmarkTrackDurableParallel is ours,
// on the same rows and the same disk: compare their events/s in one run.

// benchWriters is how many goroutines call durable Track at once in
// BenchmarkTrackDurableParallel.
//
// The baseline commits as many rows per transaction as Track does on average, measured on this
// machine (trackBatchSize): each commit costs a disk sync, so events per commit decide the
// throughput of both, and a fair floor must sync as often as Track. With N closed-loop callers
// the writer's batches settle near N/2, not N: while one batch syncs, only the callers answered
// by the batch before it are queued, and the callers it answers queue up for the batch after
// next. BenchmarkRawBatchInsert/batch=64 shows the floor if every commit carried all 64.
const benchWriters = 64

var benchModels = []string{"gpt-4o", "gpt-4o-mini", "o3"}

// benchEvent is event i of the write benchmarks: a few tenants, one resource, one model
// attribute and a fresh UUIDv7 id, the shape of an LLM API's token usage.
func benchEvent(i int) billing.Event {
	return billing.Event{
		ID:       billing.NewEventID(),
		Tenant:   fmt.Sprintf("tenant-%d", i%8),
		Resource: "tokens.output",
		Quantity: int64(1 + i%1000),
		Attrs:    map[string]string{"model": benchModels[i%len(benchModels)]},
	}
}

func benchOpen(b *testing.B) *sqlite.Store {
	b.Helper()
	st, err := sqlite.Open(filepath.Join(b.TempDir(), "bench.db")) // WAL, synchronous FULL
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st
}

func reportEventsPerSecond(b *testing.B, events int) {
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkRawBatchInsert is the baseline: the same rows as BenchmarkTrackDurableParallel
// inserted with plain multi-row INSERTs (a prepared statement), into the same events table of a
// Store opened the same way (so with the same pragmas: WAL, synchronous FULL), without
// idempotency checks or rollups. One op is one event. batch=track commits as many events per
// transaction as durable Track achieves with benchWriters callers (measured first, on a scratch
// file); batch=64 commits 64.
func BenchmarkRawBatchInsert(b *testing.B) {
	b.Run("batch=track", func(b *testing.B) { benchRawInsert(b, trackBatchSize(b)) })
	b.Run("batch=64", func(b *testing.B) { benchRawInsert(b, 64) })
}

func benchRawInsert(b *testing.B, batch int) {
	st := benchOpen(b)
	db := st.DB()
	insertSQL := func(rows int) string {
		return "INSERT INTO events (tenant, id, resource, quantity, ts, attrs) VALUES " +
			strings.Repeat("(?,?,?,?,?,?),", rows-1) + "(?,?,?,?,?,?)"
	}
	full, err := db.Prepare(insertSQL(batch))
	if err != nil {
		b.Fatal(err)
	}
	defer full.Close()
	args := make([]any, 0, 6*batch)
	b.ResetTimer()
	for i := 0; i < b.N; i += batch {
		n := min(batch, b.N-i)
		args = args[:0]
		for j := range n {
			e := benchEvent(i + j)
			args = append(args, e.Tenant, e.ID, e.Resource, e.Quantity, time.Now().UnixNano(), billing.EncodeAttrs(e.Attrs))
		}
		tx, err := db.Begin()
		if err != nil {
			b.Fatal(err)
		}
		if n == batch {
			_, err = tx.Stmt(full).Exec(args...)
		} else {
			_, err = tx.Exec(insertSQL(n), args...)
		}
		if err != nil {
			b.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportEventsPerSecond(b, b.N)
	b.ReportMetric(float64(batch), "events/commit")
}

var trackBatch struct {
	once sync.Once
	size int
	err  error
}

// trackBatchSize measures, once per process, how many events per commit durable Track achieves
// with benchWriters goroutines calling it, on a scratch file.
func trackBatchSize(b *testing.B) int {
	trackBatch.once.Do(func() {
		dir, err := os.MkdirTemp("", "billing-bench-")
		if err != nil {
			trackBatch.err = err
			return
		}
		defer os.RemoveAll(dir)
		st, err := sqlite.Open(filepath.Join(dir, "calibrate.db"))
		if err != nil {
			trackBatch.err = err
			return
		}
		defer st.Close()
		cs := &countingStore{Store: st}
		m, err := billing.New(billing.Config{Store: cs})
		if err != nil {
			trackBatch.err = err
			return
		}
		const perWriter = 50
		errs := make(chan error, benchWriters)
		for g := range benchWriters {
			go func() {
				for i := range perWriter {
					if err := m.Track(context.Background(), benchEvent(g*perWriter+i)); err != nil {
						errs <- err
						return
					}
				}
				errs <- nil
			}()
		}
		for range benchWriters {
			if err := <-errs; err != nil && trackBatch.err == nil {
				trackBatch.err = err
			}
		}
		m.Close()
		trackBatch.size = max(1, int(math.Round(float64(cs.events.Load())/float64(cs.commits.Load()))))
	})
	if trackBatch.err != nil {
		b.Fatalf("measuring Track's batch size: %v", trackBatch.err)
	}
	return trackBatch.size
}

// countingStore counts the batches the Meter's writer commits, and their events.
type countingStore struct {
	billing.Store
	commits, events atomic.Int64
}

func (s *countingStore) AppendEvents(ctx context.Context, spec billing.RollupSpec, events []billing.Event) ([]billing.AppendStatus, error) {
	statuses, err := s.Store.AppendEvents(ctx, spec, events)
	if err == nil {
		s.commits.Add(1)
		s.events.Add(int64(len(events)))
	}
	return statuses, err
}

// BenchmarkTrackDurableParallel measures durable Track (it returns once the event is committed:
// insert with idempotency check and the hour, day, month and total rollups, in one transaction)
// called by about benchWriters goroutines at once, one event per call. One op is one event.
func BenchmarkTrackDurableParallel(b *testing.B) {
	cs := &countingStore{Store: benchOpen(b)}
	m, err := billing.New(billing.Config{Store: cs})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	ctx := context.Background()
	var next atomic.Int64
	b.SetParallelism((benchWriters + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := m.Track(ctx, benchEvent(int(next.Add(1)))); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	reportEventsPerSecond(b, b.N)
	if c := cs.commits.Load(); c > 0 {
		b.ReportMetric(float64(cs.events.Load())/float64(c), "events/commit")
	}
}

// BenchmarkTrackAsync measures async Track (Config.Async: it returns once the event is queued),
// one event per call from one goroutine. One op is one call.
//
// caller is what a call costs its caller while the queue has room: validation, the event id, the
// copy of the attributes and the hand-off to the writer (the writer commits concurrently; the
// benchmark pauses its timer to let it drain the queue after every Config.QueueSize calls).
// sustained calls back to back: once the queue is full, Track waits for room, so the time per op
// is the writer's cost per event in batches of Config.MaxBatch; sustained-events/s includes the
// final drain (Close).
func BenchmarkTrackAsync(b *testing.B) {
	b.Run("caller", func(b *testing.B) {
		const queue = billing.DefaultQueueSize
		cs := &countingStore{Store: benchOpen(b)}
		m, err := billing.New(billing.Config{Store: cs, Async: true, QueueSize: queue})
		if err != nil {
			b.Fatal(err)
		}
		defer m.Close()
		ctx := context.Background()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if i > 0 && i%queue == 0 {
				b.StopTimer()
				for cs.events.Load() < int64(i) {
					time.Sleep(100 * time.Microsecond)
				}
				b.StartTimer()
			}
			if err := m.Track(ctx, benchEvent(i)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("sustained", func(b *testing.B) {
		cs := &countingStore{Store: benchOpen(b)}
		m, err := billing.New(billing.Config{Store: cs, Async: true})
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		start := time.Now()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if err := m.Track(ctx, benchEvent(i)); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		if err := m.Close(); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "sustained-events/s")
		if c := cs.commits.Load(); c > 0 {
			b.ReportMetric(float64(cs.events.Load())/float64(c), "events/commit")
		}
		if got := cs.events.Load(); got != int64(b.N) {
			b.Fatalf("the writer committed %d events, Track was called %d times", got, b.N)
		}
	})
}

// BenchmarkUsageMonth measures one tenant's usage of one month by day after 10k, 100k and 1M
// events: Usage reads rollups, so its time must not grow with the number of events. Every size
// has the same buckets (2 tenants x 2 models x 30 days x 4 hours: 480 hour, 120 day and 4 month
// buckets); only their sums grow. Loading is not timed.
func BenchmarkUsageMonth(b *testing.B) {
	ctx := context.Background()
	month := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	now := time.Date(2026, 3, 31, 23, 0, 0, 0, time.UTC)
	st := benchOpen(b)
	m, err := billing.New(billing.Config{Store: st, Now: func() time.Time { return now }})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	const tenant = "tenant-0"
	query := billing.UsageQuery{Tenant: tenant, Window: billing.PeriodDay, From: month, To: month.AddDate(0, 1, 0)}

	loaded, ofTenant := 0, int64(0)
	load := func(n int) {
		const batch = 10000 // one Track call commits alone in one transaction
		events := make([]billing.Event, 0, batch)
		for loaded < n {
			events = events[:0]
			for ; loaded < n && len(events) < batch; loaded++ {
				i := loaded
				e := billing.Event{
					ID:       fmt.Sprintf("load-%08d", i),
					Tenant:   fmt.Sprintf("tenant-%d", (i/120)%2),
					Resource: "tokens.output",
					Quantity: int64(1 + i%1000),
					Time:     month.Add(time.Duration(i%30)*24*time.Hour + time.Duration((i/30)%4*6)*time.Hour + time.Duration(i%60)*time.Minute),
					Attrs:    map[string]string{"model": benchModels[(i/240)%2]},
				}
				if e.Tenant == tenant {
					ofTenant++
				}
				events = append(events, e)
			}
			if err := m.Track(ctx, events...); err != nil {
				b.Fatal(err)
			}
		}
	}

	for _, size := range []struct {
		name string
		n    int
	}{{"events=10k", 10_000}, {"events=100k", 100_000}, {"events=1M", 1_000_000}} {
		if !b.Run(size.name, func(b *testing.B) {
			load(size.n) // continues the previous size's load; a no-op when b.N grows
			rows, err := m.Usage(ctx, query)
			if err != nil {
				b.Fatal(err)
			}
			var count int64
			for _, r := range rows {
				count += r.Count
			}
			if len(rows) != 30 || count != ofTenant {
				b.Fatalf("after %d events: %d rows counting %d events, want 30 days counting %d", size.n, len(rows), count, ofTenant)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := m.Usage(ctx, query); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(len(rows)), "rows")
		}) {
			return
		}
	}
}
