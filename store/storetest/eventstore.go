package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/meterplane/billing"
)

// testEventStore checks the EventStore interface directly, without a Meter.
func testEventStore(t *testing.T, newStore func(t *testing.T) billing.Store) {
	t.Run("AppendStatuses", func(t *testing.T) { testAppendStatuses(t, newStore(t)) })
	t.Run("AppendEmpty", func(t *testing.T) { testAppendEmpty(t, newStore(t)) })
	t.Run("AppendLargeBatch", func(t *testing.T) { testAppendLargeBatch(t, newStore(t)) })
	t.Run("AppendCanceledContext", func(t *testing.T) { testAppendCanceled(t, newStore(t)) })
	t.Run("QueryRollupsFilters", func(t *testing.T) { testQueryRollupsFilters(t, newStore(t)) })
	t.Run("RebuildRecomputes", func(t *testing.T) { testRebuildRecomputes(t, newStore(t)) })
}

// appendBatch appends events under spec and checks the statuses against want (and the oracle's).
func appendBatch(t *testing.T, st billing.Store, spec billing.RollupSpec, o *oracle, events []billing.Event, want []billing.AppendStatus) {
	t.Helper()
	if model := o.addAll(events); want == nil {
		want = model
	} else if diff := cmp.Diff(want, model); diff != "" {
		t.Fatalf("the test's expected statuses disagree with its model (-test +model):\n%s", diff)
	}
	got, err := st.AppendEvents(context.Background(), spec, events)
	if err != nil {
		t.Fatalf("AppendEvents: %v", err)
	}
	if diff := cmp.Diff(statusNames(want), statusNames(got)); diff != "" {
		t.Errorf("AppendEvents statuses (-want +got):\n%s", diff)
	}
}

func statusNames(s []billing.AppendStatus) []string {
	out := make([]string, len(s))
	for i, x := range s {
		out[i] = x.String()
	}
	return out
}

func testAppendStatuses(t *testing.T, st billing.Store) {
	berlin := loc(t, "Europe/Berlin")
	spec := billing.RollupSpec{Location: berlin}
	o := newOracle(berlin)
	ev := func(tenant, id, resource string, q int64, at time.Time, attrs map[string]string) billing.Event {
		return billing.Event{ID: id, Tenant: tenant, Resource: resource, Quantity: q, Time: at, Attrs: attrs}
	}
	// 00:30Z and 01:30Z are both 02:30 in Berlin on the day clocks fall back.
	t0 := utc(2025, time.October, 26, 0, 30)
	a := ev("acme", "a", "requests", 3, t0, map[string]string{"model": "m1"})
	b := ev("acme", "b", "tokens.input", 5, t0.Add(time.Hour), map[string]string{"model": "m1", "region": "eu"})
	c := ev("acme", "c", "requests", 7, utc(2025, time.October, 31, 23, 0), nil) // November 1 in Berlin
	other := ev("globex", "a", "requests", 11, t0, nil)                          // same id, another tenant

	aLater := a
	aLater.Time = t0.Add(48 * time.Hour) // a retry at another time is still a duplicate
	aQty, aRes, aAttrs, aNoAttrs := a, a, a, a
	aQty.Quantity = 4
	aRes.Resource = "tokens.input"
	aAttrs.Attrs = map[string]string{"model": "m2"}
	aNoAttrs.Attrs = nil
	cEmpty := c
	cEmpty.Attrs = map[string]string{} // no attributes, spelled differently: the same content

	ins, dup, conf := billing.AppendInserted, billing.AppendDuplicate, billing.AppendConflict
	t.Run("FirstBatch", func(t *testing.T) {
		appendBatch(t, st, spec, o,
			[]billing.Event{a, b, aLater, aQty, aRes, aAttrs, aNoAttrs, c, cEmpty, other},
			[]billing.AppendStatus{ins, ins, dup, conf, conf, conf, conf, ins, dup, ins})
		checkBuckets(t, st, o, spec)
	})
	t.Run("SecondBatch", func(t *testing.T) {
		bQty := b
		bQty.Quantity = 6
		cAttrs := c
		cAttrs.Attrs = map[string]string{"model": "m1"}
		d := ev("acme", "d", "requests", 13, t0.Add(-time.Hour), map[string]string{"model": "m1"})
		appendBatch(t, st, spec, o,
			[]billing.Event{a, bQty, bQty, d, other, cAttrs, d},
			[]billing.AppendStatus{dup, conf, conf, ins, dup, conf, dup})
		checkBuckets(t, st, o, spec)
	})
	t.Run("OnlyDuplicatesAndConflicts", func(t *testing.T) {
		before := storedBuckets(t, st)
		appendBatch(t, st, spec, o, []billing.Event{a, aQty, other, c}, []billing.AppendStatus{dup, conf, dup, dup})
		if diff := cmp.Diff(before, storedBuckets(t, st), cmpOpts); diff != "" {
			t.Errorf("a batch without new events changed the buckets (-before +after):\n%s", diff)
		}
	})
}

func testAppendEmpty(t *testing.T, st billing.Store) {
	for _, events := range [][]billing.Event{nil, {}} {
		got, err := st.AppendEvents(context.Background(), billing.RollupSpec{}, events)
		if err != nil {
			t.Fatalf("AppendEvents(%#v): %v", events, err)
		}
		if len(got) != 0 {
			t.Errorf("AppendEvents(%#v) = %v statuses, want none", events, got)
		}
	}
	if b := storedBuckets(t, st); len(b) != 0 {
		t.Errorf("empty appends stored buckets: %v", b)
	}
}

// testAppendLargeBatch appends batches larger than a backend's statement limits are likely to
// be, with duplicates and conflicts far apart in the same batch.
func testAppendLargeBatch(t *testing.T, st billing.Store) {
	ny := loc(t, "America/New_York")
	spec := billing.RollupSpec{Location: ny}
	o := newOracle(ny)
	g := newGen(seed(t, 7), "big", []billing.Span{{Start: utc(2025, time.October, 1, 0, 0), End: utc(2025, time.November, 30, 0, 0)}},
		[]time.Time{utc(2025, time.November, 2, 6, 0), utc(2025, time.November, 1, 4, 0)})
	var events []billing.Event
	for len(events) < 1500 {
		switch r := g.rng.IntN(10); {
		case r < 8 || len(events) == 0:
			events = append(events, g.event())
		case r < 9:
			events = append(events, g.retry(events[g.rng.IntN(len(events))]))
		default:
			events = append(events, g.variant(events[g.rng.IntN(len(events))]))
		}
	}
	appendBatch(t, st, spec, o, events, nil)
	// The same batch again: nothing new; then half of it mixed with new events.
	appendBatch(t, st, spec, o, events, nil)
	more := append([]billing.Event(nil), events[:750]...)
	for range 750 {
		more = append(more, g.event())
	}
	g.rng.Shuffle(len(more), func(i, j int) { more[i], more[j] = more[j], more[i] })
	appendBatch(t, st, spec, o, more, nil)
	checkBuckets(t, st, o, spec)
}

// testAppendCanceledContext checks that an append whose context is already canceled either
// records the whole batch or nothing, and that the store stays usable.
func testAppendCanceled(t *testing.T, st billing.Store) {
	spec := billing.RollupSpec{}
	o := newOracle(time.UTC)
	at := utc(2025, time.October, 20, 10, 0)
	events := []billing.Event{
		{ID: "x1", Tenant: "acme", Resource: "requests", Quantity: 1, Time: at},
		{ID: "x2", Tenant: "acme", Resource: "requests", Quantity: 2, Time: at.Add(time.Hour)},
		{ID: "x3", Tenant: "globex", Resource: "requests", Quantity: 4, Time: at.Add(24 * time.Hour)},
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := st.AppendEvents(ctx, spec, events); err == nil {
		t.Log("AppendEvents with a canceled context succeeded; checking it recorded everything")
		o.addAll(events)
	} else {
		t.Logf("AppendEvents with a canceled context failed (%v); checking it recorded nothing", err)
	}
	checkBuckets(t, st, o, spec)
	appendBatch(t, st, spec, o, events, nil)
	checkBuckets(t, st, o, spec)
}

// testQueryRollupsFilters compares every combination of QueryRollups filters with the model.
func testQueryRollupsFilters(t *testing.T, st billing.Store) {
	berlin := loc(t, "Europe/Berlin")
	spec := billing.RollupSpec{Location: berlin}
	o := newOracle(berlin)
	var events []billing.Event
	start := utc(2025, time.October, 24, 0, 17)
	for i := range 60 {
		events = append(events, billing.Event{
			ID:       "q" + string(rune('A'+i%26)) + string(rune('a'+i/26)),
			Tenant:   []string{"acme", "globex"}[i%2],
			Resource: []string{"requests", "tokens.input", "tokens.output"}[i%3],
			Quantity: int64(i + 1),
			Time:     start.Add(time.Duration(i) * 5 * time.Hour),
			Attrs:    map[string]string{"model": models[i%len(models)]},
		})
	}
	appendBatch(t, st, spec, o, events, nil)
	all := o.rollups(spec)

	type bounds struct {
		name     string
		from, to time.Time
	}
	boundsFor := func(p billing.Period) []bounds {
		bp := p
		if p == billing.PeriodTotal {
			bp = billing.PeriodHour // bounds are ignored for totals; give some anyway
		}
		at := func(i int) time.Time { return o.bucket(bp, events[i].Time).start }
		return []bounds{
			{name: "unbounded"},
			{name: "from bucket start", from: at(10)},
			{name: "to bucket start", to: at(40)},
			{name: "from and to bucket starts", from: at(10), to: at(40)},
			{name: "from just after a bucket start", from: at(10).Add(time.Nanosecond), to: at(59).Add(time.Nanosecond)},
			{name: "empty range", from: at(59).Add(time.Hour * 24 * 62), to: at(59).Add(time.Hour * 24 * 90)},
		}
	}
	for _, p := range billing.Periods {
		for _, b := range boundsFor(p) {
			for _, tenant := range []string{"", "acme", "globex", "nobody"} {
				for _, resource := range []string{"", "requests", "tokens.output"} {
					q := billing.RollupQuery{Tenant: tenant, Resource: resource, Period: p, From: b.from, To: b.to}
					got, err := st.QueryRollups(context.Background(), q)
					if err != nil {
						t.Fatalf("QueryRollups(%+v): %v", q, err)
					}
					want := filterBuckets(all, func(r *bucketRow) bool {
						return r.Period == p && (tenant == "" || r.Tenant == tenant) &&
							(resource == "" || r.Resource == resource) &&
							(p == billing.PeriodTotal || (b.from.IsZero() || !r.Start.Before(b.from)) &&
								(b.to.IsZero() || r.Start.Before(b.to)))
					})
					if diff := cmp.Diff(want, decodeRollups(t, got), cmpOpts); diff != "" {
						t.Errorf("QueryRollups(period %s, %s, tenant %q, resource %q) (-want +got):\n%s",
							p, b.name, tenant, resource, diff)
					}
				}
			}
		}
	}
}

// testRebuildRecomputes records events under one spec, then rebuilds under another (as after a
// change of Config.Location and Config.Dimensions) and checks that the buckets are those of the
// new spec; then rebuilds one tenant back and checks the others are untouched.
func testRebuildRecomputes(t *testing.T, st billing.Store) {
	berlin := loc(t, "Europe/Berlin")
	specA := billing.RollupSpec{Location: time.UTC}
	specB := billing.RollupSpec{Location: berlin, Dimensions: []string{"model"}}
	oA, oB := newOracle(time.UTC), newOracle(berlin)
	g := newGen(seed(t, 11), "rb",
		[]billing.Span{{Start: utc(2025, time.October, 20, 0, 0), End: utc(2025, time.November, 3, 0, 0)}},
		[]time.Time{utc(2025, time.October, 26, 1, 0), utc(2025, time.October, 31, 23, 0), utc(2025, time.November, 1, 0, 0)})
	var events []billing.Event
	for range 400 {
		events = append(events, g.event())
	}
	oB.addAll(events)
	for i := 0; i < len(events); i += 100 {
		appendBatch(t, st, specA, oA, events[i:i+100], nil)
	}
	checkBuckets(t, st, oA, specA)
	ctx := context.Background()
	// Generous: it must cover every bucket of the data under both specs.
	span := billing.Span{Start: utc(2025, time.September, 1, 0, 0), End: utc(2025, time.December, 31, 0, 0)}

	if err := st.RebuildRollups(ctx, specB, "", span); err != nil {
		t.Fatalf("RebuildRollups: %v", err)
	}
	t.Run("AllTenants", func(t *testing.T) { checkBuckets(t, st, oB, specB) })
	if err := st.RebuildRollups(ctx, specB, "", span); err != nil {
		t.Fatalf("RebuildRollups: %v", err)
	}
	t.Run("Again", func(t *testing.T) { checkBuckets(t, st, oB, specB) })
	empty := billing.Span{Start: utc(2025, time.January, 10, 0, 0), End: utc(2025, time.February, 3, 0, 0)}
	if err := st.RebuildRollups(ctx, specB, "", empty); err != nil {
		t.Fatalf("RebuildRollups: %v", err)
	}
	t.Run("SpanWithoutEvents", func(t *testing.T) { checkBuckets(t, st, oB, specB) })

	if err := st.RebuildRollups(ctx, specA, "acme", span); err != nil {
		t.Fatalf("RebuildRollups(acme): %v", err)
	}
	t.Run("OneTenant", func(t *testing.T) {
		want := append(
			filterBuckets(oA.rollups(specA), func(r *bucketRow) bool { return r.Tenant == "acme" }),
			filterBuckets(oB.rollups(specB), func(r *bucketRow) bool { return r.Tenant != "acme" })...)
		sortBuckets(want)
		if diff := cmp.Diff(want, storedBuckets(t, st), cmpOpts); diff != "" {
			t.Errorf("after rebuilding tenant acme under another spec (-want +stored):\n%s", diff)
		}
	})
}
