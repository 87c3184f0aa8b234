package storetest

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/meterplane/billing"
)

// The write benchmarks every backend runs beside its own raw-insert baseline: the same events,
// the same callers, the same batch sizes.

// BenchWriters is how many goroutines call durable Track at once in TrackDurableParallel.
//
// A backend's baseline commits as many rows per transaction as Track does on average
// (MeasureTrackBatch): each commit costs a disk sync or WAL flush, so events per commit decide
// the throughput of both, and a fair floor must commit as often as Track. With N closed-loop
// callers one writer's batches settle near N/2, not N: while one batch commits, only the callers
// answered by the batch before it are queued.
const BenchWriters = 64

var benchModels = []string{"gpt-4o", "gpt-4o-mini", "o3"}

// BenchEvent is event i of the write benchmarks: a few tenants, one resource, one model
// attribute and a fresh UUIDv7 id, the shape of an LLM API's token usage.
func BenchEvent(i int) billing.Event {
	return billing.Event{
		ID:       billing.NewEventID(),
		Tenant:   fmt.Sprintf("tenant-%d", i%8),
		Resource: "tokens.output",
		Quantity: int64(1 + i%1000),
		Attrs:    map[string]string{"model": benchModels[i%len(benchModels)]},
	}
}

// ReportEventsPerSecond reports events/s for events over the benchmark's elapsed time.
func ReportEventsPerSecond(b *testing.B, events int) {
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
}

// CountingStore counts the batches a Meter's writer commits, and their events.
type CountingStore struct {
	billing.Store
	Commits, Events atomic.Int64
}

// AppendEvents implements billing.EventStore, counting successful commits.
func (s *CountingStore) AppendEvents(ctx context.Context, spec billing.RollupSpec, events []billing.Event) ([]billing.AppendStatus, error) {
	statuses, err := s.Store.AppendEvents(ctx, spec, events)
	if err == nil {
		s.Commits.Add(1)
		s.Events.Add(int64(len(events)))
	}
	return statuses, err
}

// AppendConcurrency passes on the wrapped Store's wish (see billing.Config.Writers), so that a
// Meter on the CountingStore writes as it would on the Store.
func (s *CountingStore) AppendConcurrency() int {
	if c, ok := s.Store.(interface{ AppendConcurrency() int }); ok {
		return c.AppendConcurrency()
	}
	return 1
}

// PerCommit returns the mean events per commit so far, at least 1.
func (s *CountingStore) PerCommit() int {
	c := s.Commits.Load()
	if c == 0 {
		return 1
	}
	return max(1, int(math.Round(float64(s.Events.Load())/float64(c))))
}

// MeasureTrackBatch returns how many events per commit durable Track achieves on st with
// BenchWriters goroutines calling it: the batch size a fair raw-insert baseline commits.
func MeasureTrackBatch(st billing.Store) (int, error) {
	cs := &CountingStore{Store: st}
	m, err := billing.New(billing.Config{Store: cs})
	if err != nil {
		return 0, err
	}
	const perWriter = 50
	errs := make(chan error, BenchWriters)
	for g := range BenchWriters {
		go func() {
			for i := range perWriter {
				if err := m.Track(context.Background(), BenchEvent(g*perWriter+i)); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	var first error
	for range BenchWriters {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	if err := m.Close(); err != nil && first == nil {
		first = err
	}
	return cs.PerCommit(), first
}

// TrackDurableParallel measures durable Track on st (it returns once the event is committed:
// insert with idempotency check and the rollups, in one transaction) called by about
// BenchWriters goroutines at once, one event per call. One op is one event.
func TrackDurableParallel(b *testing.B, st billing.Store) {
	cs := &CountingStore{Store: st}
	m, err := billing.New(billing.Config{Store: cs})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	ctx := context.Background()
	var next atomic.Int64
	b.SetParallelism((BenchWriters + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := m.Track(ctx, BenchEvent(int(next.Add(1)))); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	ReportEventsPerSecond(b, b.N)
	if cs.Commits.Load() > 0 {
		b.ReportMetric(float64(cs.Events.Load())/float64(cs.Commits.Load()), "events/commit")
	}
}
