package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/meterplane/billing"
	"github.com/meterplane/billing/store/postgres"
	"github.com/meterplane/billing/store/storetest"
)

// testURL returns BILLING_TEST_POSTGRES, or skips the test without it.
func testURL(t testing.TB) string {
	t.Helper()
	url := os.Getenv("BILLING_TEST_POSTGRES")
	if url == "" {
		t.Skip("set BILLING_TEST_POSTGRES (such as postgres://postgres@127.0.0.1:5432/test?sslmode=disable) to run PostgreSQL tests")
	}
	return url
}

// testSchema returns a fresh schema name and drops that schema when the test ends (after the
// cleanups registered later, such as closing the stores that use it).
func testSchema(t testing.TB) string {
	t.Helper()
	url := testURL(t)
	var b [8]byte
	rand.Read(b[:])
	schema := "t_" + hex.EncodeToString(b[:])
	t.Cleanup(func() { dropSchema(t, url, schema) })
	return schema
}

// dropSchema drops schema through a short-lived connection of its own.
func dropSchema(t testing.TB, url, schema string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Errorf("drop schema %s: %v", schema, err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{schema}.Sanitize()+` CASCADE`); err != nil {
		t.Errorf("drop schema %s: %v", schema, err)
	}
}

// openTest opens a Store in a fresh schema of the database at BILLING_TEST_POSTGRES (skipping
// the test without it), closes it and drops the schema when the test ends.
func openTest(t testing.TB) *postgres.Store {
	t.Helper()
	return openTestConfig(t, postgres.Config{})
}

// openTestConfig is openTest with cfg (its URL and Schema are filled in).
func openTestConfig(t testing.TB, cfg postgres.Config) *postgres.Store {
	t.Helper()
	cfg.URL = testURL(t)
	cfg.Schema = testSchema(t)
	return openCleanup(t, cfg)
}

// openCleanup opens a Store with cfg and closes it when the test ends.
func openCleanup(t testing.TB, cfg postgres.Config) *postgres.Store {
	t.Helper()
	st, err := postgres.OpenConfig(context.Background(), cfg)
	if err != nil {
		t.Fatalf("postgres.OpenConfig(schema %s): %v", cfg.Schema, err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return st
}

func TestStore(t *testing.T) {
	testURL(t)
	storetest.Run(t, func(t *testing.T) billing.Store { return openTest(t) })
}

// partitionNames returns the names of the partitions of events in st's schema, sorted.
func partitionNames(t *testing.T, st *postgres.Store) []string {
	t.Helper()
	rows, err := st.Pool().Query(context.Background(), `SELECT c.relname::text FROM pg_inherits i
		JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'events'::regclass ORDER BY 1`)
	if err != nil {
		t.Fatalf("list partitions: %v", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("list partitions: %v", err)
	}
	return names
}

// count returns the result of a SELECT count(*) query.
func count(t *testing.T, st *postgres.Store, query string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := st.Pool().QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func fixedNow(t time.Time) func() time.Time { return func() time.Time { return t } }

func mustAppend(t *testing.T, st billing.EventStore, events ...billing.Event) []billing.AppendStatus {
	t.Helper()
	statuses, err := st.AppendEvents(context.Background(), billing.RollupSpec{}, events)
	if err != nil {
		t.Fatalf("AppendEvents: %v", err)
	}
	return statuses
}

func TestPartitionsAhead(t *testing.T) {
	now := time.Date(2030, time.November, 15, 10, 0, 0, 0, time.UTC)
	st := openTestConfig(t, postgres.Config{Now: fixedNow(now), PartitionsAhead: 3})
	want := []string{"events_203011", "events_203012", "events_203101", "events_203102"}
	if diff := cmp.Diff(want, partitionNames(t, st)); diff != "" {
		t.Errorf("partitions after Open (-want +got):\n%s", diff)
	}
	// Reopening the schema (a replica starting later) creates only the missing ones.
	later := openCleanup(t, postgres.Config{URL: testURL(t), Schema: st.Schema(),
		Now: fixedNow(now.AddDate(0, 1, 0)), PartitionsAhead: 3})
	want = append(want, "events_203103")
	if diff := cmp.Diff(want, partitionNames(t, later)); diff != "" {
		t.Errorf("partitions after a later Open (-want +got):\n%s", diff)
	}
}

func TestPartitionOnDemand(t *testing.T) {
	now := time.Date(2026, time.March, 3, 0, 0, 0, 0, time.UTC)
	st := openTestConfig(t, postgres.Config{Now: fixedNow(now), PartitionsAhead: 1})
	far := []billing.Event{
		{ID: "old", Tenant: "acme", Resource: "requests", Quantity: 2, Time: time.Date(1999, time.December, 31, 23, 59, 59, 999999999, time.UTC)},
		{ID: "new", Tenant: "acme", Resource: "requests", Quantity: 3, Time: time.Date(2031, time.July, 1, 0, 0, 0, 0, time.UTC)},
	}
	got := mustAppend(t, st, far...)
	if diff := cmp.Diff([]billing.AppendStatus{billing.AppendInserted, billing.AppendInserted}, got); diff != "" {
		t.Errorf("statuses (-want +got):\n%s", diff)
	}
	want := []string{"events_199912", "events_202603", "events_202604", "events_203107"}
	if diff := cmp.Diff(want, partitionNames(t, st)); diff != "" {
		t.Errorf("partitions (-want +got):\n%s", diff)
	}
	if n := count(t, st, `SELECT count(*) FROM events_199912 WHERE id = 'old'`); n != 1 {
		t.Errorf("events_199912 holds %d rows of event old, want 1", n)
	}
	rows, err := st.QueryRollups(context.Background(), billing.RollupQuery{Period: billing.PeriodHour})
	if err != nil {
		t.Fatal(err)
	}
	starts := []time.Time{}
	for _, r := range rows {
		starts = append(starts, r.Start)
	}
	slices.SortFunc(starts, time.Time.Compare)
	wantStarts := []time.Time{time.Date(1999, time.December, 31, 23, 0, 0, 0, time.UTC), time.Date(2031, time.July, 1, 0, 0, 0, 0, time.UTC)}
	if diff := cmp.Diff(wantStarts, starts); diff != "" {
		t.Errorf("hour buckets (-want +got):\n%s", diff)
	}
}

// TestPartitionsConcurrentCreators appends, from several stores on one schema (as replicas
// would), events of months that have no partition yet, all at once.
func TestPartitionsConcurrentCreators(t *testing.T) {
	first := openTest(t)
	const stores, months = 6, 8
	sts := []*postgres.Store{first}
	for len(sts) < stores {
		sts = append(sts, openCleanup(t, postgres.Config{URL: testURL(t), Schema: first.Schema()}))
	}
	var wg sync.WaitGroup
	errs := make(chan error, stores)
	for i, st := range sts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var events []billing.Event
			for m := range months {
				at := time.Date(2011, time.Month(1+m), 10, 0, 0, 0, 0, time.UTC)
				events = append(events, billing.Event{ID: fmt.Sprintf("s%d-m%d", i, m), Tenant: "acme",
					Resource: "requests", Quantity: 1, Time: at})
			}
			if _, err := st.AppendEvents(context.Background(), billing.RollupSpec{}, events); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("AppendEvents: %v", err)
	}
	if n := count(t, first, `SELECT count(*) FROM events`); n != stores*months {
		t.Errorf("%d events stored, want %d", n, stores*months)
	}
	var old []string
	for _, name := range partitionNames(t, first) {
		if strings.HasPrefix(name, "events_2011") {
			old = append(old, name)
		}
	}
	if len(old) != months {
		t.Errorf("partitions of 2011: %v, want %d", old, months)
	}
}

func TestDropEventsBefore(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2020, time.March, 10, 0, 0, 0, 0, time.UTC)
	st := openTestConfig(t, postgres.Config{Now: fixedNow(now), PartitionsAhead: 1})
	// Another replica, which has seen February's partition before it is dropped.
	other := openCleanup(t, postgres.Config{URL: testURL(t), Schema: st.Schema(), Now: fixedNow(now), PartitionsAhead: 1})
	ev := func(id string, at time.Time) billing.Event {
		return billing.Event{ID: id, Tenant: "acme", Resource: "requests", Quantity: 5, Time: at}
	}
	jan := time.Date(2020, time.January, 31, 23, 0, 0, 0, time.UTC)
	feb := time.Date(2020, time.February, 29, 23, 59, 59, 0, time.UTC)
	mar := time.Date(2020, time.March, 1, 0, 0, 0, 0, time.UTC)
	mustAppend(t, st, ev("j", jan), ev("f", feb), ev("m", mar))
	mustAppend(t, other, ev("f2", feb))
	monthsBefore, err := st.QueryRollups(ctx, billing.RollupQuery{Period: billing.PeriodMonth})
	if err != nil {
		t.Fatal(err)
	}

	dropped, err := st.DropEventsBefore(ctx, time.Date(2020, time.March, 15, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatalf("DropEventsBefore: %v", err)
	}
	if diff := cmp.Diff([]string{"events_202001", "events_202002"}, dropped); diff != "" {
		t.Errorf("dropped (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"events_202003", "events_202004"}, partitionNames(t, st)); diff != "" {
		t.Errorf("partitions left (-want +got):\n%s", diff)
	}
	if n := count(t, st, `SELECT count(*) FROM event_ids`); n != 1 {
		t.Errorf("%d event ids left, want 1 (March's)", n)
	}
	if n := count(t, st, `SELECT count(*) FROM events`); n != 1 {
		t.Errorf("%d events left, want 1 (March's)", n)
	}
	monthsAfter, err := st.QueryRollups(ctx, billing.RollupQuery{Period: billing.PeriodMonth})
	if err != nil {
		t.Fatal(err)
	}
	byStart := func(a, b billing.Rollup) int { return a.Start.Compare(b.Start) }
	slices.SortFunc(monthsBefore, byStart)
	slices.SortFunc(monthsAfter, byStart)
	if diff := cmp.Diff(monthsBefore, monthsAfter); diff != "" {
		t.Errorf("month rollups changed by the drop (-before +after):\n%s", diff)
	}
	if len(monthsAfter) != 3 {
		t.Errorf("%d month rollups, want 3", len(monthsAfter))
	}

	// A replica whose cache still knows February finds its partition gone and creates it again.
	if got := mustAppend(t, other, ev("f3", feb)); got[0] != billing.AppendInserted {
		t.Errorf("late February event: %v, want inserted", got[0])
	}
	if diff := cmp.Diff([]string{"events_202002", "events_202003", "events_202004"}, partitionNames(t, st)); diff != "" {
		t.Errorf("partitions after a late event (-want +got):\n%s", diff)
	}

	// Nothing to drop; then March, which ends exactly at t.
	if dropped, err := st.DropEventsBefore(ctx, time.Date(2020, time.February, 1, 0, 0, 0, 0, time.UTC)); err != nil || len(dropped) != 0 {
		t.Errorf("DropEventsBefore(February 1) = %v, %v; want nothing dropped", dropped, err)
	}
	dropped, err = st.DropEventsBefore(ctx, time.Date(2020, time.April, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatalf("DropEventsBefore: %v", err)
	}
	if diff := cmp.Diff([]string{"events_202002", "events_202003"}, dropped); diff != "" {
		t.Errorf("dropped (-want +got):\n%s", diff)
	}
}

func TestMigrations(t *testing.T) {
	ctx := context.Background()
	st := openTest(t)
	v, err := st.Version(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v != postgres.SchemaVersion() || v < 2 {
		t.Fatalf("fresh schema at version %d, want SchemaVersion() = %d", v, postgres.SchemaVersion())
	}
	cfg := postgres.Config{URL: testURL(t), Schema: st.Schema()}
	applied := func() []string {
		rows, err := st.Pool().Query(ctx, `SELECT version || ' ' || name || ' ' || applied_at FROM billing_migrations ORDER BY version`)
		if err != nil {
			t.Fatal(err)
		}
		out, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	before := applied()
	again := openCleanup(t, cfg)
	if v2, err := again.Version(ctx); err != nil || v2 != v {
		t.Errorf("reopened: Version = %d, %v; want %d", v2, err, v)
	}
	if diff := cmp.Diff(before, applied()); diff != "" {
		t.Errorf("reopening changed billing_migrations (-before +after):\n%s", diff)
	}

	if _, err := st.Pool().Exec(ctx, `INSERT INTO billing_migrations (version, name) VALUES ($1, 'from_the_future')`, v+1); err != nil {
		t.Fatal(err)
	}
	if newer, err := postgres.OpenConfig(ctx, cfg); !errors.Is(err, billing.ErrSchemaTooNew) {
		if err == nil {
			newer.Close()
		}
		t.Errorf("OpenConfig of a schema at version %d = %v, want an error matching ErrSchemaTooNew", v+1, err)
	}
}

// TestMigrationsConcurrent opens one new schema from several stores at once, as replicas
// starting together would: they migrate it once, and all open.
func TestMigrationsConcurrent(t *testing.T) {
	cfg := postgres.Config{URL: testURL(t), Schema: testSchema(t)}
	const n = 4
	sts := make([]*postgres.Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sts[i], errs[i] = postgres.OpenConfig(context.Background(), cfg)
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Errorf("store %d: OpenConfig: %v", i, errs[i])
			continue
		}
		defer sts[i].Close()
	}
	if t.Failed() {
		return
	}
	if got := count(t, sts[0], `SELECT count(*) FROM billing_migrations`); got != int64(postgres.SchemaVersion()) {
		t.Errorf("%d migrations recorded, want %d", got, postgres.SchemaVersion())
	}
}
