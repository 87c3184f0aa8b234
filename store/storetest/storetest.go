// Package storetest is the conformance suite of billing.Store. Every backend runs it from its own
// tests, and a backend is done when it passes:
//
//	func TestStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) billing.Store {
//			st, err := sqlite.Open(":memory:")
//			if err != nil {
//				t.Fatal(err)
//			}
//			t.Cleanup(func() { st.Close() })
//			return st
//		})
//	}
//
// The suite checks the events-and-rollups part of a Store both directly, through its interface
// (AppendEvents statuses, QueryRollups, RebuildRollups), and through a billing.Meter built on it:
// exactly-once recording (duplicates in a batch, across batches, across Meter restarts and under
// concurrency), conflicting duplicates, rollups equal to the raw events they summarise (compared
// with a brute-force model, before and after rebuilds), hour, day and month buckets in UTC and in
// zones with daylight-saving changes, grouping by attributes, reads during writes, and bad input
// leaving the store unchanged.
//
// The suite embeds the time zone database (time/tzdata), so its results do not depend on the
// machine's. It runs at fixed instants and with fixed random seeds, so it is deterministic; set
// STORETEST_SEED to an integer to run the randomized tests with another seed.
package storetest

import (
	"context"
	"errors"
	"maps"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"
	_ "time/tzdata" // the suite's time zones must not depend on the machine

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/meterplane/billing"
)

// Run runs the conformance suite as subtests of t. newStore must return a new, empty Store each
// time it is called, and register with t.Cleanup whatever closes it; the suite closes the Meters
// it builds on a Store before that cleanup runs. Restarts are tested by closing a Meter and
// building a new one on the same Store.
//
// Besides the documented contract of billing.EventStore, the suite expects a Store to keep an
// event's Time exactly (to the nanosecond, as Event.Time carries it), so that rebuilding the
// buckets of an event just before a bucket boundary puts it back where it was counted.
func Run(t *testing.T, newStore func(t *testing.T) billing.Store) {
	t.Run("EventStore", func(t *testing.T) { testEventStore(t, newStore) })
	t.Run("ExactlyOnce", func(t *testing.T) { testExactlyOnce(t, newStore) })
	t.Run("ExactlyOnceConcurrent", func(t *testing.T) { testExactlyOnceConcurrent(t, newStore) })
	t.Run("RollupsEqualEvents", func(t *testing.T) { testRollupsEqualEvents(t, newStore) })
	t.Run("Windows", func(t *testing.T) { testWindows(t, newStore) })
	t.Run("Bounds", func(t *testing.T) { testBounds(t, newStore) })
	t.Run("GroupBy", func(t *testing.T) { testGroupBy(t, newStore) })
	t.Run("ReadsDuringWrites", func(t *testing.T) { testReadsDuringWrites(t, newStore) })
	t.Run("BadInput", func(t *testing.T) { testBadInput(t, newStore) })
	t.Run("Invoices", func(t *testing.T) { testInvoices(t, newStore) })
	t.Run("Audit", func(t *testing.T) { testAudit(t, newStore) })
	t.Run("Plans", func(t *testing.T) { testPlans(t, newStore) })
	t.Run("Alerts", func(t *testing.T) { testAlerts(t, newStore) })
	t.Run("Jobs", func(t *testing.T) { testJobs(t, newStore) })
}

// cmpOpts compare usage rows and buckets: times by instant (cmp uses Time.Equal), and empty
// slices and maps equal to nil ones.
var cmpOpts = cmp.Options{cmpopts.EquateEmpty()}

// loc loads a time zone from the embedded database.
func loc(t *testing.T, name string) *time.Location {
	t.Helper()
	l, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("load time zone %s: %v", name, err)
	}
	return l
}

// utc is a literal instant in UTC.
func utc(y int, m time.Month, d, h, min int) time.Time {
	return time.Date(y, m, d, h, min, 0, 0, time.UTC)
}

// newMeter builds a Meter on cfg.Store with cfg; Now defaults to a fixed instant, and the Meter is
// closed when the test ends (before the Store, whose cleanup was registered first).
func newMeter(t *testing.T, cfg billing.Config) *billing.Meter {
	t.Helper()
	if cfg.Now == nil {
		now := utc(2025, time.November, 5, 12, 0)
		cfg.Now = func() time.Time { return now }
	}
	m, err := billing.New(cfg)
	if err != nil {
		t.Fatalf("billing.New: %v", err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("Meter.Close: %v", err)
		}
	})
	return m
}

// fixed returns a clock stopped at now.
func fixed(now time.Time) func() time.Time { return func() time.Time { return now } }

// usage runs q and fails the test on error.
func usage(t *testing.T, m *billing.Meter, q billing.UsageQuery) []billing.UsageRow {
	t.Helper()
	rows, err := m.Usage(context.Background(), q)
	if err != nil {
		t.Fatalf("Usage(%+v): %v", q, err)
	}
	return rows
}

// checkUsage compares the Meter's answer to q with the oracle's.
func checkUsage(t *testing.T, m *billing.Meter, o *oracle, q billing.UsageQuery) {
	t.Helper()
	got, want := usage(t, m, q), o.usage(q)
	if slices.EqualFunc(want, got, rowEqual) {
		return // cmp.Diff costs far more than the rest of the check; use it to explain a difference
	}
	t.Errorf("Usage(%s) differs from the raw events (-events +usage):\n%s", fmtQuery(q), cmp.Diff(want, got, cmpOpts))
}

// rowEqual is what cmp.Diff with cmpOpts reports as equal, for usage rows.
func rowEqual(a, b billing.UsageRow) bool {
	return a.Tenant == b.Tenant && a.Resource == b.Resource && a.Start.Equal(b.Start) && a.End.Equal(b.End) &&
		maps.Equal(a.Group, b.Group) && a.Sum == b.Sum && a.Count == b.Count && a.Max == b.Max
}

// bucketEqual is what cmp.Diff with cmpOpts reports as equal, for buckets.
func bucketEqual(a, b bucketRow) bool {
	return a.Tenant == b.Tenant && a.Resource == b.Resource && a.Period == b.Period && a.Start.Equal(b.Start) &&
		maps.Equal(a.Group, b.Group) && a.Sum == b.Sum && a.Count == b.Count && a.Max == b.Max
}

// fmtQuery prints a query compactly for failure messages.
func fmtQuery(q billing.UsageQuery) string {
	s := "window=" + string(q.Window)
	if q.Tenant != "" {
		s += " tenant=" + strconv.Quote(q.Tenant)
	}
	if q.Resource != "" {
		s += " resource=" + q.Resource
	}
	if !q.From.IsZero() {
		s += " from=" + q.From.UTC().Format(time.RFC3339Nano)
	}
	if !q.To.IsZero() {
		s += " to=" + q.To.UTC().Format(time.RFC3339Nano)
	}
	if len(q.GroupBy) > 0 {
		s += " group_by=" + strconv.Quote(q.GroupBy[0])
		for _, g := range q.GroupBy[1:] {
			s += "," + strconv.Quote(g)
		}
	}
	return s
}

// totals returns the all-time count and sum of q's tenant and resource.
func totals(t *testing.T, m *billing.Meter, q billing.UsageQuery) (count, sum int64) {
	t.Helper()
	q.Window = billing.PeriodTotal
	for _, r := range usage(t, m, q) {
		count += r.Count
		sum += r.Sum
	}
	return count, sum
}

// storedBuckets returns every bucket the store holds, of every period, decoded and sorted.
func storedBuckets(t *testing.T, st billing.Store) []bucketRow {
	t.Helper()
	var all []billing.Rollup
	for _, p := range billing.Periods {
		rs, err := st.QueryRollups(context.Background(), billing.RollupQuery{Period: p})
		if err != nil {
			t.Fatalf("QueryRollups(%s): %v", p, err)
		}
		for _, r := range rs {
			if r.Period != p {
				t.Errorf("QueryRollups(%s) returned a bucket of period %q", p, r.Period)
			}
		}
		all = append(all, rs...)
	}
	return decodeRollups(t, all)
}

// checkBuckets compares the store's buckets with the oracle's under spec.
func checkBuckets(t *testing.T, st billing.Store, o *oracle, spec billing.RollupSpec) {
	t.Helper()
	want, got := o.rollups(spec), storedBuckets(t, st)
	if !slices.EqualFunc(want, got, bucketEqual) {
		t.Errorf("stored buckets differ from the raw events (-events +stored):\n%s", cmp.Diff(want, got, cmpOpts))
	}
}

// seed returns the seed of a randomized test: def, or STORETEST_SEED when it is set. It logs the
// seed so that a failure can be replayed.
func seed(t *testing.T, def uint64) uint64 {
	t.Helper()
	s := def
	if env := os.Getenv("STORETEST_SEED"); env != "" {
		v, err := strconv.ParseUint(env, 10, 64)
		if err != nil {
			t.Fatalf("STORETEST_SEED=%q: %v", env, err)
		}
		s = v
	}
	t.Logf("seed %d (replay with STORETEST_SEED=%d)", s, s)
	return s
}

// conflictIDs returns the (tenant, id) pairs of the events err reports as conflicting, or fails
// the test if err is not a conflict.
func conflictIDs(t *testing.T, err error) []eventKey {
	t.Helper()
	if !errors.Is(err, billing.ErrEventConflict) {
		t.Fatalf("Track error %v does not match billing.ErrEventConflict", err)
	}
	var ce *billing.EventConflictError
	if !errors.As(err, &ce) {
		t.Fatalf("Track error %v is not a *billing.EventConflictError", err)
	}
	var out []eventKey
	for _, e := range ce.Events {
		out = append(out, eventKey{e.Tenant, e.ID})
	}
	return out
}
