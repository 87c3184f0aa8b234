package sqlite_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meterplane/billing"
	"github.com/meterplane/billing/store/sqlite"
	"github.com/meterplane/billing/store/storetest"
)

// Run with:
//
//	go test ./store/sqlite -run '^$' -bench . -benchtime 3s
//
// BenchmarkRawBatchInsert is the floor on this machine and BenchmarkTrackDurableParallel is ours,
// on the same rows and the same disk: compare their events/s in one run.

func benchOpen(b *testing.B) *sqlite.Store {
	b.Helper()
	st, err := sqlite.Open(filepath.Join(b.TempDir(), "bench.db")) // WAL, synchronous FULL
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st
}

// BenchmarkRawBatchInsert is the baseline: the same rows as BenchmarkTrackDurableParallel
// inserted with plain multi-row INSERTs (a prepared statement), into the same events table of a
// Store opened the same way (so with the same pragmas: WAL, synchronous FULL), without
// idempotency checks or rollups. One op is one event. batch=track commits as many events per
// transaction as durable Track achieves with storetest.BenchWriters callers (measured first, on a scratch
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
			e := storetest.BenchEvent(i + j)
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
	storetest.ReportEventsPerSecond(b, b.N)
	b.ReportMetric(float64(batch), "events/commit")
}

var trackBatch struct {
	once sync.Once
	size int
	err  error
}

// trackBatchSize measures, once per process, how many events per commit durable Track achieves
// with storetest.BenchWriters goroutines calling it, on a scratch file.
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
		trackBatch.size, trackBatch.err = storetest.MeasureTrackBatch(st)
	})
	if trackBatch.err != nil {
		b.Fatalf("measuring Track's batch size: %v", trackBatch.err)
	}
	return trackBatch.size
}

// BenchmarkTrackDurableParallel measures durable Track (it returns once the event is committed:
// insert with idempotency check and the hour, day, month and total rollups, in one transaction)
// called by about storetest.BenchWriters goroutines at once, one event per call. One op is one event.
func BenchmarkTrackDurableParallel(b *testing.B) {
	storetest.TrackDurableParallel(b, benchOpen(b))
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
		cs := &storetest.CountingStore{Store: benchOpen(b)}
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
				for cs.Events.Load() < int64(i) {
					time.Sleep(100 * time.Microsecond)
				}
				b.StartTimer()
			}
			if err := m.Track(ctx, storetest.BenchEvent(i)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("sustained", func(b *testing.B) {
		cs := &storetest.CountingStore{Store: benchOpen(b)}
		m, err := billing.New(billing.Config{Store: cs, Async: true})
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		start := time.Now()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if err := m.Track(ctx, storetest.BenchEvent(i)); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		if err := m.Close(); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "sustained-events/s")
		if c := cs.Commits.Load(); c > 0 {
			b.ReportMetric(float64(cs.Events.Load())/float64(c), "events/commit")
		}
		if got := cs.Events.Load(); got != int64(b.N) {
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
					Attrs:    map[string]string{"model": []string{"gpt-4o", "gpt-4o-mini"}[(i/240)%2]},
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
