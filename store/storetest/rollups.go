package storetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/meterplane/billing"
)

// randomCase is one randomized comparison of usage answers with the raw events: a zone, the
// stretches of time its events fall in (each containing a daylight-saving change and a month
// start), and the instants where buckets change.
type randomCase struct {
	zone  string
	seed  uint64
	spans []billing.Span
	hot   []time.Time // daylight-saving changes and month starts, in UTC
}

// testRollupsEqualEvents tracks random events (with retries and conflicts) through a Meter and
// compares every usage answer with a brute-force sum over the distinct events, then rebuilds the
// rollups and compares again.
func testRollupsEqualEvents(t *testing.T, newStore func(t *testing.T) billing.Store) {
	cases := []randomCase{
		{
			zone: "Europe/Berlin", seed: 20251026,
			spans: []billing.Span{
				{Start: utc(2025, time.March, 27, 0, 0), End: utc(2025, time.April, 3, 0, 0)},
				{Start: utc(2025, time.October, 23, 0, 0), End: utc(2025, time.November, 3, 0, 0)},
			},
			hot: []time.Time{
				utc(2025, time.March, 30, 1, 0), utc(2025, time.March, 31, 22, 0), // spring forward; April
				utc(2025, time.October, 26, 1, 0), utc(2025, time.October, 31, 23, 0), // fall back; November
				utc(2025, time.October, 26, 0, 0), utc(2025, time.October, 25, 22, 0), // repeated hour; 25-hour day
			},
		},
		{
			zone: "America/New_York", seed: 20251102,
			spans: []billing.Span{
				{Start: utc(2025, time.February, 26, 0, 0), End: utc(2025, time.March, 12, 0, 0)},
				{Start: utc(2025, time.October, 29, 0, 0), End: utc(2025, time.November, 5, 0, 0)},
			},
			hot: []time.Time{
				utc(2025, time.March, 9, 7, 0), utc(2025, time.March, 1, 5, 0), // spring forward; March
				utc(2025, time.November, 2, 6, 0), utc(2025, time.November, 1, 4, 0), // fall back; November
				utc(2025, time.November, 2, 5, 0), utc(2025, time.November, 3, 5, 0), // repeated hour; day after
			},
		},
	}
	for _, rc := range cases {
		t.Run(rc.zone, func(t *testing.T) { testRandomCase(t, newStore(t), rc) })
	}
}

func testRandomCase(t *testing.T, st billing.Store, rc randomCase) {
	ctx := context.Background()
	zone := loc(t, rc.zone)
	for _, s := range rc.spans {
		_, before := s.Start.In(zone).Zone()
		_, after := s.End.In(zone).Zone()
		if before == after {
			t.Fatalf("the test data span %v has no daylight-saving change in %s", s, rc.zone)
		}
		if s.Start.In(zone).Month() == s.End.In(zone).Month() {
			t.Fatalf("the test data span %v has no month start in %s", s, rc.zone)
		}
	}
	g := newGen(seed(t, rc.seed), "ev", rc.spans, rc.hot)
	first, last := rc.spans[0].Start, rc.spans[len(rc.spans)-1].End
	now := last.Add(time.Minute)
	m := newMeter(t, billing.Config{Store: st, Location: zone, Now: fixed(now), LateWindow: now.Sub(first) + time.Hour})
	o := newOracle(zone)

	// Track about 800 events in calls of 1 to 40, with retries (in the same call or later),
	// conflicting reuses of ids, and events whose id the Meter generates.
	var sent []billing.Event
	for len(sent) < 800 {
		batch := make([]billing.Event, 1+g.rng.IntN(40))
		for i := range batch {
			switch r := g.rng.IntN(100); {
			case r < 12 && len(sent) > 0:
				batch[i] = g.retry(sent[g.rng.IntN(len(sent))])
			case r < 15 && len(sent) > 0:
				batch[i] = g.variant(sent[g.rng.IntN(len(sent))])
			case r < 18:
				batch[i] = g.event()
				batch[i].ID = ""
			default:
				batch[i] = g.event()
			}
			sent = append(sent, batch[i])
		}
		var want []eventKey
		for i, s := range o.addAll(batch) {
			if s == billing.AppendConflict {
				want = append(want, eventKey{batch[i].Tenant, batch[i].ID})
			}
		}
		err := m.Track(ctx, batch...)
		if want == nil {
			if err != nil {
				t.Fatalf("Track: %v", err)
			}
			continue
		}
		if diff := cmp.Diff(want, conflictIDs(t, err), cmp.AllowUnexported(eventKey{})); diff != "" {
			t.Fatalf("Track reported other conflicts than expected (-want +got):\n%s", diff)
		}
	}
	checkCoverage(t, o)

	queries := randomQueries(g, o, rc)
	t.Logf("%d distinct events of %d sent; %d queries", len(o.events), len(sent), len(queries))
	compare := func(t *testing.T) {
		for _, q := range queries {
			checkUsage(t, m, o, q)
			if t.Failed() {
				t.FailNow() // one diff is enough to read
			}
		}
	}
	spec := billing.RollupSpec{Location: zone}
	t.Run("Tracked", func(t *testing.T) {
		checkBuckets(t, st, o, spec)
		compare(t)
	})

	// Usage answers are a function of the stored buckets: checking every bucket after each
	// rebuild, then every answer after both, shows that no answer changed.
	all := billing.Span{Start: first, End: last}
	if err := m.RebuildRollups(ctx, "", all); err != nil {
		t.Fatalf("RebuildRollups: %v", err)
	}
	t.Run("RebuiltAll", func(t *testing.T) { checkBuckets(t, st, o, spec) })
	one := billing.Span{Start: rc.hot[2].Add(-time.Hour), End: rc.hot[2].Add(time.Hour)}
	if err := m.RebuildRollups(ctx, g.tenants[1], one); err != nil {
		t.Fatalf("RebuildRollups(%s): %v", g.tenants[1], err)
	}
	t.Run("RebuiltOneTenant", func(t *testing.T) { checkBuckets(t, st, o, spec) })
	t.Run("Rebuilt", compare)
}

// checkCoverage makes sure the random data reaches what the test is about: 23- and 25-hour days
// and both occurrences of a repeated hour.
func checkCoverage(t *testing.T, o *oracle) {
	t.Helper()
	var short, long, repeated bool
	hours := map[string][]time.Time{} // wall clock -> bucket starts
	for _, e := range o.events {
		d := o.bucket(billing.PeriodDay, e.Time)
		short = short || d.end.Sub(d.start) == 23*time.Hour
		long = long || d.end.Sub(d.start) == 25*time.Hour
		h := o.bucket(billing.PeriodHour, e.Time).start
		wall := h.In(o.loc).Format("2006-01-02 15")
		if !slices.ContainsFunc(hours[wall], h.Equal) {
			hours[wall] = append(hours[wall], h)
		}
		repeated = repeated || len(hours[wall]) > 1
	}
	if !short || !long || !repeated {
		t.Fatalf("the random events miss a case: 23-hour day %v, 25-hour day %v, repeated hour %v", short, long, repeated)
	}
}

// randomQueries returns the usage queries the test asks: every window, with and without bounds
// (on bucket boundaries and between them), grouped and not, for all tenants and resources and
// for each of them.
func randomQueries(g *gen, o *oracle, rc randomCase) []billing.UsageQuery {
	randomInstant := func() time.Time {
		s := rc.spans[g.rng.IntN(len(rc.spans))]
		return s.Start.Add(time.Duration(g.rng.Int64N(int64(s.End.Sub(s.Start)))))
	}
	type bounds struct{ from, to time.Time }
	day := o.bucket(billing.PeriodDay, rc.hot[2])     // the day clocks fall back
	month := o.bucket(billing.PeriodMonth, rc.hot[3]) // the month after it
	ordered := func(a, b time.Time) bounds {
		if b.Before(a) {
			a, b = b, a
		}
		return bounds{from: a, to: b}
	}
	allBounds := []bounds{
		{},
		{from: randomInstant()},
		{to: randomInstant()},
		ordered(randomInstant(), randomInstant()),
		ordered(day.start, month.start),                                       // on boundaries
		{from: rc.hot[0].Add(-time.Nanosecond), to: rc.hot[0].Add(time.Hour)}, // just before one
		{from: rc.spans[0].Start, to: month.end},                              // months apart
	}
	groupBys := [][]string{nil, {"model"}, {"model", "region"}, {"tier"}}
	var qs []billing.UsageQuery
	for _, w := range billing.Periods {
		for bi, bd := range allBounds {
			for gi, gb := range groupBys {
				base := billing.UsageQuery{Window: w, From: bd.from, To: bd.to, GroupBy: gb}
				qs = append(qs, base)
				if gi > 1 || bi != 0 && bi != 3 {
					continue // per tenant and per resource: fewer bounds and groupings
				}
				for _, tenant := range g.tenants {
					q := base
					q.Tenant = tenant
					qs = append(qs, q)
				}
				for _, resource := range g.resources {
					q := base
					q.Resource = resource
					qs = append(qs, q)
				}
				q := base
				q.Tenant, q.Resource = g.tenants[(bi+gi)%len(g.tenants)], g.resources[(bi+gi)%len(g.resources)]
				qs = append(qs, q)
			}
		}
	}
	return qs
}
