package billing_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/meterplane/billing"
)

// The quota hot path beside its baseline, golang.org/x/time/rate, in one run:
//
//	go test -run '^$' -bench 'ReserveCommit|QuotaXTimeRate' -benchtime 2s .
//
// Goal (issue 3): Reserve+Commit within 10x of x/time/rate's AllowN.

// qBenchLimit is a hard limit no benchmark reaches, so every Reserve is admitted and the full
// admission check runs on every call.
const qBenchLimit = 1e15

// qBenchMeter returns a Meter whose default plan puts a hard daily rule on "requests".
//
// Config.Async is true: Commit returns once its event is queued for the group-commit writer,
// which commits batches to SQLite on its own goroutine. So what the per-request figures measure
// is the cost a request pays on the hot path (rule lookup, admission against the in-memory
// counter, the hold, the event's validation and queueing), not the disk: durable mode adds a
// wait for the batch's transaction.
func qBenchMeter(b *testing.B) *billing.Meter {
	b.Helper()
	m := qNewMeter(b, billing.Config{Async: true, DefaultPlan: "bench"})
	err := m.SetPlan(context.Background(), billing.Plan{ID: "bench", Quotas: []billing.QuotaRule{
		{Resource: "requests", Period: billing.PeriodDay, Limit: qBenchLimit, Hard: true},
	}})
	if err != nil {
		b.Fatal(err)
	}
	return m
}

// qBenchPace is how many Reserve+Commit calls the paced benchmarks make before they stop the
// timer and let the writer empty its queue; it is well below Config.QueueSize (4096), so Commit
// never waits for room in the queue while the timer runs.
const qBenchPace = 1024

// qDrain waits, with the timer stopped, until the writer has taken every queued event.
func qDrain(b *testing.B, m *billing.Meter) {
	b.StopTimer()
	for billing.QueueLen(m) > 0 {
		time.Sleep(20 * time.Microsecond)
	}
	b.StartTimer()
}

// BenchmarkReserveCommit measures Reserve(1) followed by Commit(1), the quota hot path:
//
//   - hot-tenant: one tenant, calls paced (see qBenchPace) so that the figure is the request's
//     own cost, not the SQLite writer's throughput;
//   - hot-tenant-sustained: the same without pacing: once the bounded queue is full, Commit
//     waits for the writer (Overflow defaults to OverflowBlock), so this is the sustained rate
//     of the whole pipeline, bound by the writer's SQLite transactions;
//   - 10k-tenants-parallel: 10,000 tenants from every P with b.RunParallel (which cannot pause
//     the timer, so it is sustained and writer-bound like the above: every event then touches
//     its own four rollup rows);
//   - reserve-cancel and 10k-tenants-parallel-reserve-cancel: Reserve then Cancel, no event
//     written: admission alone, on one tenant and on 10,000 from every P.
func BenchmarkReserveCommit(b *testing.B) {
	ctx := context.Background()
	reserveCommit := func(b *testing.B, m *billing.Meter, tenant string) {
		r, err := m.Reserve(ctx, tenant, "requests", 1)
		if err != nil {
			b.Fatal(err)
		}
		if err := r.Commit(ctx, 1); err != nil {
			b.Fatal(err)
		}
	}
	reserveCancel := func(b *testing.B, m *billing.Meter, tenant string) {
		r, err := m.Reserve(ctx, tenant, "requests", 1)
		if err != nil {
			b.Fatal(err)
		}
		if err := r.Cancel(ctx); err != nil {
			b.Fatal(err)
		}
	}
	hot := func(op func(*testing.B, *billing.Meter, string), paced bool) func(b *testing.B) {
		return func(b *testing.B) {
			m := qBenchMeter(b)
			if _, err := m.QuotaStatus(ctx, "acme"); err != nil { // load the rules and the counter
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 1; i <= b.N; i++ {
				op(b, m, "acme")
				if paced && i%qBenchPace == 0 {
					qDrain(b, m)
				}
			}
			b.StopTimer()
			m.Close() // drain the writer outside the measurement
		}
	}
	parallel := func(op func(*testing.B, *billing.Meter, string)) func(b *testing.B) {
		return func(b *testing.B) {
			m := qBenchMeter(b)
			tenants := make([]string, 10_000)
			for i := range tenants {
				tenants[i] = "tenant-" + strconv.Itoa(i)
				if _, err := m.QuotaStatus(ctx, tenants[i]); err != nil { // warm every counter
					b.Fatal(err)
				}
			}
			var next atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := int(next.Add(7919)) % len(tenants)
				for pb.Next() {
					if i++; i == len(tenants) {
						i = 0
					}
					op(b, m, tenants[i])
				}
			})
			b.StopTimer()
			m.Close()
		}
	}
	b.Run("hot-tenant", hot(reserveCommit, true))
	b.Run("hot-tenant-sustained", hot(reserveCommit, false))
	b.Run("10k-tenants-parallel", parallel(reserveCommit))
	b.Run("reserve-cancel", hot(reserveCancel, false))
	b.Run("10k-tenants-parallel-reserve-cancel", parallel(reserveCancel))
}

// BenchmarkQuotaXTimeRateAllow is the baseline of BenchmarkReserveCommit: golang.org/x/time/rate
// AllowN(time.Now(), 1) on one limiter that admits every call. It is the same baseline as
// BenchmarkXTimeRateAllow in ratelimit_bench_test.go, under its own name so that this file's
// claim and its baseline always run together (-bench 'ReserveCommit|QuotaXTimeRate').
// "10k-limiters-parallel" is the baseline of "10k-tenants-parallel": 10,000 limiters in a slice,
// no lookup by key, called from every P.
func BenchmarkQuotaXTimeRateAllow(b *testing.B) {
	b.Run("one-limiter", func(b *testing.B) {
		l := rate.NewLimiter(rate.Limit(1e9), 1e9)
		b.ReportAllocs()
		for b.Loop() {
			if !l.AllowN(time.Now(), 1) {
				b.Fatal("refused")
			}
		}
	})
	b.Run("10k-limiters-parallel", func(b *testing.B) {
		ls := make([]*rate.Limiter, 10_000)
		for i := range ls {
			ls[i] = rate.NewLimiter(rate.Limit(1e9), 1e9)
		}
		var next atomic.Int64
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			i := int(next.Add(7919)) % len(ls)
			for pb.Next() {
				if i++; i == len(ls) {
					i = 0
				}
				if !ls[i].AllowN(time.Now(), 1) {
					b.Error("refused")
					return
				}
			}
		})
	})
}
