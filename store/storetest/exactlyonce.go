package storetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/meterplane/billing"
)

// testExactlyOnce checks, through a Meter, that an event id is counted once whatever the retries,
// and that a reused id with other content is refused without harming the rest of its call.
func testExactlyOnce(t *testing.T, newStore func(t *testing.T) billing.Store) {
	ctx := context.Background()
	outer := t
	st := newStore(t)
	berlin := loc(t, "Europe/Berlin")
	now := utc(2025, time.October, 27, 12, 0)
	cfg := billing.Config{Store: st, Location: berlin, Now: fixed(now)}
	m := newMeter(t, cfg)
	o := newOracle(berlin)
	spec := billing.RollupSpec{Location: berlin}

	at := utc(2025, time.October, 26, 0, 30)
	a := billing.Event{ID: "a", Tenant: "acme", Resource: "requests", Quantity: 3, Time: at, Attrs: map[string]string{"model": "m1"}}
	b := billing.Event{ID: "b", Tenant: "acme", Resource: "requests", Quantity: 5, Time: at.Add(time.Hour)}
	c := billing.Event{ID: "c", Tenant: "acme", Resource: "tokens.input", Quantity: 7, Time: at.Add(2 * time.Hour),
		Attrs: map[string]string{"model": "m2"}}

	// track tracks events, expecting success, and applies them to the model.
	track := func(t *testing.T, m *billing.Meter, events ...billing.Event) {
		t.Helper()
		for _, s := range o.addAll(events) {
			if s == billing.AppendConflict {
				t.Fatal("the test tracks a conflict where it expects success")
			}
		}
		if err := m.Track(ctx, events...); err != nil {
			t.Fatalf("Track: %v", err)
		}
	}
	// check compares the store and the Meter's totals with the model.
	check := func(t *testing.T, m *billing.Meter) {
		t.Helper()
		checkBuckets(t, st, o, spec)
		for _, q := range []billing.UsageQuery{{}, {Tenant: "acme"}, {Window: billing.PeriodHour}, {Window: billing.PeriodDay, GroupBy: []string{"model"}}} {
			checkUsage(t, m, o, q)
		}
	}

	t.Run("SameBatch", func(t *testing.T) {
		track(t, m, a, a, b, a)
		if n, _ := totals(t, m, billing.UsageQuery{}); n != 2 {
			t.Errorf("after tracking a, a, b, a: %d events counted, want 2", n)
		}
		check(t, m)
	})
	t.Run("AcrossBatches", func(t *testing.T) {
		track(t, m, a)
		track(t, m, b, c)
		track(t, m, c)
		if n, _ := totals(t, m, billing.UsageQuery{}); n != 3 {
			t.Errorf("after tracking a, b, c again: %d events counted, want 3", n)
		}
		check(t, m)
	})
	t.Run("RetryAtAnotherTime", func(t *testing.T) {
		// A retry whose Time differs (say, left to the clock) is the same event: it stays in the
		// bucket of the first recording.
		a2 := a
		a2.Time = at.Add(24 * time.Hour)
		track(t, m, a2)
		check(t, m)
	})
	t.Run("NilAndEmptyAttrs", func(t *testing.T) {
		b2 := b
		b2.Attrs = map[string]string{}
		track(t, m, b2)
		check(t, m)
	})
	t.Run("AfterMeterRestart", func(t *testing.T) {
		if err := m.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := m.Track(ctx, a); !errors.Is(err, billing.ErrClosed) {
			t.Errorf("Track after Close = %v, want ErrClosed", err)
		}
		m = newMeter(outer, cfg) // lives on for the next subtests
		track(t, m, c, b, a)
		if n, _ := totals(t, m, billing.UsageQuery{}); n != 3 {
			t.Errorf("after tracking a, b, c on a new Meter: %d events counted, want 3", n)
		}
		check(t, m)
	})
	t.Run("SameIDOtherTenant", func(t *testing.T) {
		a2 := a
		a2.Tenant = "globex"
		a2.Quantity = 1000
		track(t, m, a2)
		check(t, m)
		if n, sum := totals(t, m, billing.UsageQuery{Tenant: "globex"}); n != 1 || sum != 1000 {
			t.Errorf("tenant globex: count %d, sum %d; want 1, 1000", n, sum)
		}
	})

	conflicts := []struct {
		name   string
		change func(*billing.Event)
	}{
		{"Quantity", func(e *billing.Event) { e.Quantity++ }},
		{"Resource", func(e *billing.Event) { e.Resource = "tokens.output" }},
		{"AttrValue", func(e *billing.Event) { e.Attrs = map[string]string{"model": "m9"} }},
		{"AttrAdded", func(e *billing.Event) { e.Attrs = map[string]string{"model": "m1", "region": "eu"} }},
		{"AttrsRemoved", func(e *billing.Event) { e.Attrs = nil }},
	}
	for i, cc := range conflicts {
		t.Run("Conflict"+cc.name, func(t *testing.T) {
			bad := a
			cc.change(&bad)
			fresh := billing.Event{ID: fmt.Sprintf("fresh-%d", i), Tenant: "acme", Resource: "requests", Quantity: 100,
				Time: at.Add(time.Duration(i) * time.Minute)}
			if got := o.add(bad); got != billing.AppendConflict {
				t.Fatalf("model says %v, the test expects a conflict", got)
			}
			o.add(fresh)
			err := m.Track(ctx, fresh, bad, b)
			if diff := cmp.Diff([]eventKey{{bad.Tenant, bad.ID}}, conflictIDs(t, err), cmp.AllowUnexported(eventKey{})); diff != "" {
				t.Errorf("conflicting events reported (-want +got):\n%s", diff)
			}
			check(t, m) // fresh is recorded; a is as it was
		})
	}
	t.Run("ConflictInSameBatch", func(t *testing.T) {
		first := billing.Event{ID: "twice", Tenant: "acme", Resource: "requests", Quantity: 1, Time: at}
		second := first
		second.Quantity = 2
		o.add(first)
		o.add(second)
		err := m.Track(ctx, first, second)
		if diff := cmp.Diff([]eventKey{{"acme", "twice"}}, conflictIDs(t, err), cmp.AllowUnexported(eventKey{})); diff != "" {
			t.Errorf("conflicting events reported (-want +got):\n%s", diff)
		}
		check(t, m)
	})
}

// testExactlyOnceConcurrent has 16 goroutines track overlapping sets of ids, each id several
// times, in Track calls of varying sizes; every id must be counted exactly once.
func testExactlyOnceConcurrent(t *testing.T, newStore func(t *testing.T) billing.Store) {
	variants := []struct {
		name string
		cfg  billing.Config
	}{
		{"Durable", billing.Config{}},
		{"DurableSmallBatches", billing.Config{MaxBatch: 7}},
		{"Async", billing.Config{Async: true, QueueSize: 64}},
	}
	t.Run("Conflicts", func(t *testing.T) { testConflictsConcurrent(t, newStore, false) })
	t.Run("ConflictsAsync", func(t *testing.T) { testConflictsConcurrent(t, newStore, true) })
	for vi, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			st := newStore(t)
			berlin := loc(t, "Europe/Berlin")
			base := utc(2025, time.October, 25, 20, 0)
			cfg := v.cfg
			cfg.Store, cfg.Location, cfg.Now = st, berlin, fixed(base.Add(72*time.Hour))
			var (
				errMu   sync.Mutex
				asyncEr []error
			)
			cfg.OnError = func(err error) {
				errMu.Lock()
				asyncEr = append(asyncEr, err)
				errMu.Unlock()
			}
			m := newMeter(t, cfg)

			// The pool: 3 tenants x 120 ids, each with fixed content, spread over a day where
			// clocks fall back.
			o := newOracle(berlin)
			var pool []billing.Event
			for i := range 360 {
				e := billing.Event{
					ID:       fmt.Sprintf("id-%03d", i/3),
					Tenant:   []string{"acme", "globex", "initech"}[i%3],
					Resource: []string{"requests", "tokens.output"}[i%2],
					Quantity: int64(1 + (i*7919)%1000),
					Time:     base.Add(time.Duration(i) * 7 * time.Minute),
					Attrs:    map[string]string{"model": models[i%3]},
				}
				pool = append(pool, e)
				o.add(e)
			}

			const workers = 16
			s := seed(t, 100+uint64(vi))
			var wg sync.WaitGroup
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rng := rand.New(rand.NewPCG(s, uint64(w)))
					var sends []billing.Event
					for i, e := range pool {
						// Every id is sent by at least one worker, most by about half of them,
						// each one to three times.
						if i%workers == w || rng.IntN(2) == 0 {
							for range 1 + rng.IntN(3) {
								sends = append(sends, e)
							}
						}
					}
					rng.Shuffle(len(sends), func(i, j int) { sends[i], sends[j] = sends[j], sends[i] })
					for len(sends) > 0 {
						n := min(len(sends), 1+rng.IntN(24))
						if err := m.Track(context.Background(), sends[:n]...); err != nil {
							t.Errorf("worker %d: Track: %v", w, err)
							return
						}
						sends = sends[n:]
					}
				}()
			}
			wg.Wait()
			if err := m.Close(); err != nil { // drains async events
				t.Fatalf("Close: %v", err)
			}
			if len(asyncEr) > 0 {
				t.Fatalf("async errors: %v", asyncEr)
			}
			m = newMeter(t, cfg)

			n, sum := totals(t, m, billing.UsageQuery{})
			var wantSum int64
			for _, e := range pool {
				wantSum += e.Quantity
			}
			if n != int64(len(pool)) || sum != wantSum {
				t.Errorf("stored count %d, sum %d; want %d distinct events summing to %d", n, sum, len(pool), wantSum)
			}
			for _, q := range []billing.UsageQuery{
				{}, {Tenant: "globex"}, {Window: billing.PeriodHour}, {Window: billing.PeriodDay, GroupBy: []string{"model"}},
			} {
				checkUsage(t, m, o, q)
			}
			checkBuckets(t, st, o, billing.RollupSpec{Location: berlin})
		})
	}
}

// testConflictsConcurrent has 16 goroutines track calls that mix new events, retries of stored
// events and conflicting reuses of stored ids, so that the Meter commits several calls in one
// batch: each call must be told exactly its own conflicts (async: OnError hears each once), and
// its other events must be recorded.
func testConflictsConcurrent(t *testing.T, newStore func(t *testing.T) billing.Store, async bool) {
	ctx := context.Background()
	st := newStore(t)
	at := utc(2025, time.October, 20, 9, 0)
	var (
		mu       sync.Mutex
		reported = map[eventKey]int{}
	)
	cfg := billing.Config{Store: st, Now: fixed(at.Add(24 * time.Hour)), Async: async, OnError: func(err error) {
		var ce *billing.EventConflictError
		if !errors.As(err, &ce) {
			t.Errorf("OnError(%v): want only conflicts", err)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for _, e := range ce.Events {
			reported[eventKey{e.Tenant, e.ID}]++
		}
	}}
	m := newMeter(t, cfg)
	o := newOracle(time.UTC)
	var stored []billing.Event
	for i := range 64 {
		e := billing.Event{ID: fmt.Sprint("stored-", i), Tenant: []string{"acme", "globex"}[i%2], Resource: "requests",
			Quantity: int64(1 + i), Time: at.Add(time.Duration(i) * time.Minute), Attrs: map[string]string{"model": models[i%3]}}
		stored = append(stored, e)
		o.add(e)
	}
	if err := m.Track(ctx, stored...); err != nil {
		t.Fatalf("Track: %v", err)
	}

	type call struct {
		events    []billing.Event
		conflicts []eventKey
	}
	const workers, calls = 16, 20
	s := seed(t, 77)
	work := make([][]call, workers)
	want := map[eventKey]int{}
	for w := range work {
		g := newGen(s+uint64(w), fmt.Sprint("w", w), []billing.Span{{Start: at, End: at.Add(12 * time.Hour)}}, nil)
		for range calls {
			var c call
			for range 1 + g.rng.IntN(8) {
				switch r := g.rng.IntN(3); r {
				case 0:
					e := g.event()
					o.add(e)
					c.events = append(c.events, e)
				case 1:
					c.events = append(c.events, g.retry(stored[g.rng.IntN(len(stored))]))
				default:
					e := g.variant(stored[g.rng.IntN(len(stored))])
					c.events = append(c.events, e)
					c.conflicts = append(c.conflicts, eventKey{e.Tenant, e.ID})
					want[eventKey{e.Tenant, e.ID}]++
				}
			}
			work[w] = append(work[w], c)
		}
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i, c := range work[w] {
				err := m.Track(ctx, c.events...)
				switch {
				case async || c.conflicts == nil:
					if err != nil {
						t.Errorf("worker %d, call %d: Track: %v", w, i, err)
					}
				case !errors.Is(err, billing.ErrEventConflict):
					t.Errorf("worker %d, call %d: Track = %v, want a conflict", w, i, err)
				default:
					var ce *billing.EventConflictError
					if !errors.As(err, &ce) {
						t.Errorf("worker %d, call %d: Track = %v, want a *billing.EventConflictError", w, i, err)
						continue
					}
					var got []eventKey
					for _, e := range ce.Events {
						got = append(got, eventKey{e.Tenant, e.ID})
					}
					if diff := cmp.Diff(c.conflicts, got, cmp.AllowUnexported(eventKey{})); diff != "" {
						t.Errorf("worker %d, call %d: conflicts reported (-want +got):\n%s", w, i, diff)
					}
				}
			}
		}()
	}
	wg.Wait()
	if err := m.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if async {
		mu.Lock()
		if diff := cmp.Diff(want, reported, cmp.AllowUnexported(eventKey{})); diff != "" {
			t.Errorf("conflicts reported to OnError (-want +got):\n%s", diff)
		}
		mu.Unlock()
	}
	checkBuckets(t, st, o, billing.RollupSpec{})
}
