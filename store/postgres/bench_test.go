package postgres_test

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meterplane/billing"
	"github.com/meterplane/billing/store/postgres"
)

// Run with:
//
//	BILLING_TEST_POSTGRES=postgres://... go test ./store/postgres -run '^$' -bench . -benchtime 2s -count 2
//
// BenchmarkRawBatchInsert is the floor on this machine and server, and
// BenchmarkTrackDurableParallel is ours, on the same rows and the same server: compare their
// events/s in one run.

// benchWriters is how many goroutines call durable Track at once in
// BenchmarkTrackDurableParallel.
//
// The baseline commits as many rows per transaction as Track does on average with benchWriters
// callers, measured first in a scratch schema (trackBatchSize): each commit costs round trips
// and a WAL flush, so events per commit decide the throughput of both, and a fair floor must
// commit as often as Track. BenchmarkRawBatchInsert/batch=64 shows the floor if every commit
// carried all 64.
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

func reportEventsPerSecond(b *testing.B, events int) {
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkRawBatchInsert is the baseline: the same rows as BenchmarkTrackDurableParallel
// inserted with plain multi-row INSERTs into a plain table with a primary key (tenant, id), in
// the same database, one transaction per batch, without idempotency checks, partitions or
// rollups. One op is one event. batch=track commits as many events per transaction as durable
// Track achieves with benchWriters callers (measured first, in a scratch schema); batch=64
// commits 64.
func BenchmarkRawBatchInsert(b *testing.B) {
	b.Run("batch=track", func(b *testing.B) { benchRawInsert(b, trackBatchSize(b)) })
	b.Run("batch=64", func(b *testing.B) { benchRawInsert(b, 64) })
}

func benchRawInsert(b *testing.B, batch int) {
	ctx := context.Background()
	st := openTest(b)
	pool := st.Pool()
	if _, err := pool.Exec(ctx, `CREATE TABLE raw_events (
		tenant text NOT NULL, id text NOT NULL, resource text NOT NULL, quantity bigint NOT NULL,
		ts timestamptz NOT NULL, attrs text NOT NULL, PRIMARY KEY (tenant, id))`); err != nil {
		b.Fatal(err)
	}
	insertSQL := func(rows int) string {
		var sb strings.Builder
		sb.WriteString("INSERT INTO raw_events (tenant, id, resource, quantity, ts, attrs) VALUES ")
		for r := range rows {
			if r > 0 {
				sb.WriteByte(',')
			}
			n := r * 6
			fmt.Fprintf(&sb, "($%d,$%d,$%d,$%d,$%d,$%d)", n+1, n+2, n+3, n+4, n+5, n+6)
		}
		return sb.String()
	}
	full := insertSQL(batch)
	args := make([]any, 0, 6*batch)
	b.ResetTimer()
	for i := 0; i < b.N; i += batch {
		n := min(batch, b.N-i)
		args = args[:0]
		for j := range n {
			e := benchEvent(i + j)
			args = append(args, e.Tenant, e.ID, e.Resource, e.Quantity, time.Now(), billing.EncodeAttrs(e.Attrs))
		}
		q := full
		if n != batch {
			q = insertSQL(n)
		}
		tx, err := pool.Begin(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := tx.Exec(ctx, q, args...); err != nil {
			b.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
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
// with benchWriters goroutines calling it, in a scratch schema.
func trackBatchSize(b *testing.B) int {
	trackBatch.once.Do(func() {
		st := openTest(b) // closed and dropped when the first benchmark that asks ends
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
	*postgres.Store
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
	cs := &countingStore{Store: openTest(b)}
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
