package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meterplane/billing"
	"github.com/meterplane/billing/store/storetest"
)

// Run with:
//
//	BILLING_TEST_POSTGRES=postgres://... go test ./store/postgres -run '^$' -bench . -benchtime 2s -count 2
//
// BenchmarkRawBatchInsert is the floor on this machine and server, and
// BenchmarkTrackDurableParallel is ours, on the same rows and the same server: compare their
// events/s in one run.

// BenchmarkRawBatchInsert is the baseline: the same rows as BenchmarkTrackDurableParallel
// inserted with plain multi-row INSERTs into a plain table with a primary key (tenant, id), in
// the same database, one transaction per batch, without idempotency checks, partitions or
// rollups. One op is one event. batch=track commits as many events per transaction as durable
// Track achieves with storetest.BenchWriters callers (measured first, in a scratch schema); batch=64
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
			e := storetest.BenchEvent(i + j)
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
	storetest.ReportEventsPerSecond(b, b.N)
	b.ReportMetric(float64(batch), "events/commit")
}

var trackBatch struct {
	once sync.Once
	size int
	err  error
}

// trackBatchSize measures, once per process, how many events per commit durable Track achieves
// with storetest.BenchWriters goroutines calling it, in a scratch schema.
func trackBatchSize(b *testing.B) int {
	trackBatch.once.Do(func() {
		st := openTest(b) // closed and dropped when the first benchmark that asks ends
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
	storetest.TrackDurableParallel(b, openTest(b))
}
