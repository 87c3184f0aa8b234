package sqlite

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/meterplane/billing"
)

// migrationRow is one row of billing_migrations.
type migrationRow struct {
	Version   int    `db:"version"`
	Name      string `db:"name"`
	AppliedAt string `db:"applied_at"`
}

func readMigrations(t *testing.T, db *sqlx.DB) []migrationRow {
	t.Helper()
	var rows []migrationRow
	if err := db.Select(&rows, `SELECT version, name, applied_at FROM billing_migrations ORDER BY version`); err != nil {
		t.Fatalf("read billing_migrations: %v", err)
	}
	return rows
}

func openMigrateTest(t *testing.T, cfg Config) *Store {
	t.Helper()
	st, err := OpenConfig(cfg)
	if err != nil {
		t.Fatalf("OpenConfig(%+v): %v", cfg, err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestSchemaVersionMatchesEmbeddedMigrations(t *testing.T) {
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) < 2 {
		t.Fatalf("found %d embedded migrations, want at least 2 (events, rollups)", len(ms))
	}
	if got := SchemaVersion(); got != len(ms) {
		t.Fatalf("SchemaVersion() = %d, want %d (the number of embedded migrations)", got, len(ms))
	}
}

func TestOpenFreshFileCreatesLatestSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fresh.db")
	st := openMigrateTest(t, Config{Path: path})
	rows := readMigrations(t, st.DB())
	if len(rows) != SchemaVersion() {
		t.Fatalf("billing_migrations has %d rows, want %d: %+v", len(rows), SchemaVersion(), rows)
	}
	for i, r := range rows {
		if r.Version != i+1 || r.Name == "" {
			t.Errorf("billing_migrations row %d = %+v, want version %d with a name", i, r, i+1)
		}
		if _, err := time.Parse(time.RFC3339, r.AppliedAt); err != nil {
			t.Errorf("billing_migrations row %d: applied_at %q is not RFC 3339: %v", i, r.AppliedAt, err)
		}
	}
	for _, table := range []string{"events", "rollups"} {
		var n int
		if err := st.DB().Get(&n, `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?`, table); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Errorf("table %s missing after Open of a fresh file", table)
		}
	}
}

// openAtVersion creates a database file migrated only up to version, the way an older build of
// the library would have left it.
func openAtVersion(t *testing.T, path string, version int) *Store {
	t.Helper()
	w, err := sqlx.Open("sqlite3", path+"?_txlock=immediate&_journal_mode=WAL&_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	w.SetMaxOpenConns(1)
	s := &Store{cfg: Config{Path: path}, w: w, r: w}
	if err := s.migrateTo(context.Background(), version); err != nil {
		w.Close()
		t.Fatalf("migrateTo(%d): %v", version, err)
	}
	return s
}

func TestOpenMigratesOlderFileAndKeepsData(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	old := openAtVersion(t, path, 1)
	if rows := readMigrations(t, old.DB()); len(rows) != 1 || rows[0].Version != 1 {
		t.Fatalf("version-1 file has migrations %+v, want only version 1", rows)
	}
	var rollupTables int
	if err := old.DB().Get(&rollupTables, `SELECT COUNT(*) FROM sqlite_master WHERE name = 'rollups'`); err != nil {
		t.Fatal(err)
	}
	if rollupTables != 0 {
		t.Fatal("a version-1 file already has the rollups table; the test no longer builds an old file")
	}
	ts := time.Date(2026, 3, 10, 12, 30, 0, 0, time.UTC)
	if _, err := old.DB().Exec(`INSERT INTO events (tenant, id, resource, quantity, ts, attrs) VALUES (?, ?, ?, ?, ?, ?)`,
		"acme", "old-1", "requests", 7, ts.UnixNano(), `{"model":"m1"}`); err != nil {
		t.Fatal(err)
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	st := openMigrateTest(t, Config{Path: path})
	rows := readMigrations(t, st.DB())
	if len(rows) != SchemaVersion() || rows[len(rows)-1].Version != SchemaVersion() {
		t.Fatalf("after Open, migrations are %+v, want versions 1..%d", rows, SchemaVersion())
	}
	var e struct {
		Tenant   string `db:"tenant"`
		ID       string `db:"id"`
		Resource string `db:"resource"`
		Quantity int64  `db:"quantity"`
		TS       int64  `db:"ts"`
		Attrs    string `db:"attrs"`
	}
	if err := st.DB().Get(&e, `SELECT tenant, id, resource, quantity, ts, attrs FROM events`); err != nil {
		t.Fatalf("the old event is gone after migration: %v", err)
	}
	if e.Tenant != "acme" || e.ID != "old-1" || e.Resource != "requests" || e.Quantity != 7 ||
		e.TS != ts.UnixNano() || e.Attrs != `{"model":"m1"}` {
		t.Fatalf("old event changed by migration: %+v", e)
	}

	// The old event is an ordinary event of the new schema: a retry of it is a duplicate, a
	// rebuild rolls it up, and usage then counts it once.
	m, err := billing.New(billing.Config{Store: st, Now: func() time.Time { return ts.Add(time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Track(ctx, billing.Event{ID: "old-1", Tenant: "acme", Resource: "requests", Quantity: 7, Time: ts,
		Attrs: map[string]string{"model": "m1"}}); err != nil {
		t.Fatalf("retrying the migrated event: %v", err)
	}
	if err := m.RebuildRollups(ctx, "", billing.MonthOf(ts, nil)); err != nil {
		t.Fatal(err)
	}
	usage, err := m.Usage(ctx, billing.UsageQuery{Tenant: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	if len(usage) != 1 || usage[0].Sum != 7 || usage[0].Count != 1 {
		t.Fatalf("usage after migration and rebuild = %+v, want one row with sum 7, count 1", usage)
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "newer.db")
	st, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	future := SchemaVersion() + 1
	if _, err := st.DB().Exec(`INSERT INTO billing_migrations (version, name, applied_at) VALUES (?, 'from_the_future', ?)`,
		future, time.Now().UTC().Format(time.RFC3339)); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st2, err := Open(path)
	if err == nil {
		st2.Close()
		t.Fatalf("Open of a file at schema version %d succeeded; this build knows up to %d", future, SchemaVersion())
	}
	if !errors.Is(err, billing.ErrSchemaTooNew) {
		t.Fatalf("Open error %q does not match billing.ErrSchemaTooNew", err)
	}
	msg := err.Error()
	for _, want := range []string{path, fmt.Sprint(future), fmt.Sprint(SchemaVersion()), "upgrade"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q: it should say which file, which versions and what to do", msg, want)
		}
	}

	// The refused file is left as it was.
	db, err := sqlx.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows := readMigrations(t, db)
	if len(rows) != future || rows[len(rows)-1].Name != "from_the_future" {
		t.Fatalf("refused file's migrations changed: %+v", rows)
	}
}

func TestOpenTwiceIsNoOp(t *testing.T) {
	path := filepath.Join(t.TempDir(), "twice.db")
	first, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	before := readMigrations(t, first.DB())
	if _, err := first.DB().Exec(`INSERT INTO events (tenant, id, resource, quantity, ts, attrs) VALUES ('acme', 'e1', 'requests', 1, 0, '{}')`); err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	second := openMigrateTest(t, Config{Path: path})
	// A second Store on the same file while the first is open is also fine.
	third := openMigrateTest(t, Config{Path: path})
	for _, st := range []*Store{second, third} {
		after := readMigrations(t, st.DB())
		if fmt.Sprint(after) != fmt.Sprint(before) {
			t.Fatalf("reopening changed billing_migrations:\nbefore %+v\nafter  %+v", before, after)
		}
		var n int
		if err := st.DB().Get(&n, `SELECT COUNT(*) FROM events`); err != nil || n != 1 {
			t.Fatalf("reopened file has %d events (%v), want 1", n, err)
		}
	}
}

// Several processes (here: Stores) may open a new file at the same moment, such as a service and
// billingctl started together: each must end up with the same, fully migrated schema.
func TestConcurrentOpenOfFreshFile(t *testing.T) {
	for round := 0; round < 5; round++ {
		path := filepath.Join(t.TempDir(), fmt.Sprintf("race-%d.db", round))
		const n = 4
		var wg sync.WaitGroup
		stores := make([]*Store, n)
		errs := make([]error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				stores[i], errs[i] = Open(path)
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("round %d: concurrent Open %d: %v", round, i, err)
				continue
			}
			rows := readMigrations(t, stores[i].DB())
			if len(rows) != SchemaVersion() {
				t.Errorf("round %d: Store %d sees migrations %+v, want %d", round, i, rows, SchemaVersion())
			}
			stores[i].Close()
		}
	}
}

func TestSynchronousSetting(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		in   string
		want int // PRAGMA synchronous: 1 NORMAL, 2 FULL
	}{
		{"", 2},
		{"FULL", 2},
		{"NORMAL", 1},
		{"normal", 1},
	} {
		st := openMigrateTest(t, Config{Path: filepath.Join(dir, "sync-"+tc.in+".db"), Synchronous: tc.in})
		var got int
		if err := st.DB().Get(&got, `PRAGMA synchronous`); err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("Synchronous %q: PRAGMA synchronous = %d, want %d", tc.in, got, tc.want)
		}
	}

	path := filepath.Join(dir, "bogus.db")
	st, err := OpenConfig(Config{Path: path, Synchronous: "bogus"})
	if err == nil {
		st.Close()
		t.Fatal(`Synchronous "bogus" was accepted`)
	}
	for _, want := range []string{"Synchronous", "FULL", "NORMAL", "bogus"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if matches, _ := filepath.Glob(path + "*"); len(matches) != 0 {
		t.Errorf("a refused Config created files: %v", matches)
	}
}

func TestFileUsesWAL(t *testing.T) {
	st := openMigrateTest(t, Config{Path: filepath.Join(t.TempDir(), "wal.db")})
	for name, db := range map[string]*sqlx.DB{"writer": st.w, "reader": st.r} {
		var mode string
		if err := db.Get(&mode, `PRAGMA journal_mode`); err != nil {
			t.Fatal(err)
		}
		if mode != "wal" {
			t.Errorf("%s connection: journal_mode = %q, want wal", name, mode)
		}
	}
	if st.r == st.w {
		t.Fatal("a file Store has no separate reader pool")
	}
	if _, err := st.r.Exec(`DELETE FROM events`); err == nil {
		t.Error("the reader pool accepted a write; it should be query-only")
	}
	var mode string
	if err := st.DB().Get(&mode, `PRAGMA journal_mode`); err != nil || mode != "wal" {
		t.Errorf("DB(): journal_mode = %q, %v; want wal", mode, err)
	}
}

func TestMemoryStore(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	var stores [2]*Store
	for i := range stores {
		stores[i] = openMigrateTest(t, Config{Path: ":memory:"})
		if rows := readMigrations(t, stores[i].DB()); len(rows) != SchemaVersion() {
			t.Fatalf(":memory: store has migrations %+v, want %d", rows, SchemaVersion())
		}
	}
	m, err := billing.New(billing.Config{Store: stores[0], Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for i := range 3 {
		if err := m.Track(ctx, billing.Event{ID: fmt.Sprint("e", i), Tenant: "acme", Resource: "requests", Quantity: 2}); err != nil {
			t.Fatal(err)
		}
	}
	// Reads go through the same (single) connection, so they see the writes.
	rows, err := m.Usage(ctx, billing.UsageQuery{Tenant: "acme", Window: billing.PeriodDay})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Sum != 6 || rows[0].Count != 3 {
		t.Fatalf("usage in :memory: = %+v, want one day with sum 6, count 3", rows)
	}
	// Each in-memory Store is private.
	var n int
	if err := stores[1].DB().Get(&n, `SELECT COUNT(*) FROM events`); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("a second :memory: Store sees %d events of the first", n)
	}
	// The empty path is memory too.
	empty := openMigrateTest(t, Config{})
	var mode string
	if err := empty.DB().Get(&mode, `PRAGMA journal_mode`); err != nil {
		t.Fatal(err)
	}
	if mode != "memory" {
		t.Fatalf("empty Path: journal_mode = %q, want memory", mode)
	}
}
