package storetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/meterplane/billing"
)

// testReadsDuringWrites runs usage queries and rollup rebuilds while events are tracked: no call
// may fail, a reader's all-time count may only grow (a rebuild is never seen half done), and the
// answers at the end equal the raw events.
func testReadsDuringWrites(t *testing.T, newStore func(t *testing.T) billing.Store) {
	ctx := context.Background()
	st := newStore(t)
	berlin := loc(t, "Europe/Berlin")
	base := utc(2025, time.October, 25, 12, 0)
	m := newMeter(t, billing.Config{Store: st, Location: berlin, Now: fixed(base.Add(48 * time.Hour))})
	o := newOracle(berlin)

	const writers, batches = 4, 30
	s := seed(t, 42)
	work := make([][][]billing.Event, writers)
	for w := range work {
		rng := rand.New(rand.NewPCG(s, uint64(w)))
		for b := range batches {
			var batch []billing.Event
			for i := range 1 + rng.IntN(10) {
				e := billing.Event{
					ID:       fmt.Sprintf("w%d-b%d-%d", w, b, i),
					Tenant:   []string{"acme", "globex"}[rng.IntN(2)],
					Resource: "tokens.output",
					Quantity: 1 + rng.Int64N(100),
					Time:     base.Add(time.Duration(rng.Int64N(int64(30 * time.Hour)))),
					Attrs:    map[string]string{"model": models[rng.IntN(3)]},
				}
				batch = append(batch, e)
				o.add(e)
			}
			work[w] = append(work[w], batch)
		}
	}
	total := int64(len(o.events))

	var (
		writersWG, othersWG sync.WaitGroup
		stop                = make(chan struct{})
	)
	for w := range writers {
		writersWG.Add(1)
		go func() {
			defer writersWG.Done()
			for _, batch := range work[w] {
				if err := m.Track(ctx, batch...); err != nil {
					t.Errorf("writer %d: Track: %v", w, err)
					return
				}
			}
		}()
	}
	queries := []billing.UsageQuery{
		{},
		{Window: billing.PeriodHour, Tenant: "acme"},
		{Window: billing.PeriodDay, GroupBy: []string{"model"}},
		{From: base.Add(3 * time.Hour), To: base.Add(20 * time.Hour)},
	}
	reads := make([]int, 3)
	for r := range reads {
		othersWG.Add(1)
		go func() {
			defer othersWG.Done()
			var last int64
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-time.After(time.Millisecond): // read often, but leave the writers some CPU
				}
				q := queries[(r+i)%len(queries)]
				rows, err := m.Usage(ctx, q)
				if err != nil {
					t.Errorf("reader %d: Usage(%s): %v", r, fmtQuery(q), err)
					return
				}
				reads[r]++
				if q.Window != "" || !q.From.IsZero() {
					continue
				}
				var n int64
				for _, row := range rows {
					n += row.Count
				}
				if n < last || n > total {
					t.Errorf("reader %d: all-time count went from %d to %d (at most %d events are tracked)", r, last, n, total)
					return
				}
				last = n
			}
		}()
	}
	rebuilds := 0
	othersWG.Add(1)
	go func() {
		defer othersWG.Done()
		span := billing.Span{Start: base.Add(-time.Hour), End: base.Add(31 * time.Hour)}
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			tenant := []string{"", "acme"}[i%2]
			if err := m.RebuildRollups(ctx, tenant, span); err != nil {
				t.Errorf("RebuildRollups(%q): %v", tenant, err)
				return
			}
			rebuilds++
		}
	}()
	writersWG.Wait()
	close(stop)
	othersWG.Wait()
	t.Logf("%d events tracked during %v reads and %d rebuilds", total, reads, rebuilds)

	for _, q := range append(queries, billing.UsageQuery{Window: billing.PeriodHour, GroupBy: []string{"model"}}) {
		checkUsage(t, m, o, q)
	}
	checkBuckets(t, st, o, billing.RollupSpec{Location: berlin})
}
