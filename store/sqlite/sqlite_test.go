package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/meterplane/billing"
	"github.com/meterplane/billing/store/sqlite"
	"github.com/meterplane/billing/store/storetest"
)

// open opens a Store at path and closes it when the test ends.
func open(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(path)
	if err != nil {
		t.Fatalf("sqlite.Open(%q): %v", path, err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return st
}

func TestStore(t *testing.T) {
	t.Run("Memory", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) billing.Store { return open(t, ":memory:") })
	})
	t.Run("File", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) billing.Store {
			return open(t, filepath.Join(t.TempDir(), "billing.db"))
		})
	})
}

// TestReopenFile checks exactly-once across a restart of the whole process: events tracked before
// the file is closed are duplicates after it is reopened.
func TestReopenFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "billing.db")
	now := time.Date(2025, time.October, 27, 12, 0, 0, 0, time.UTC)
	events := []billing.Event{
		{ID: "a", Tenant: "acme", Resource: "requests", Quantity: 3, Time: now.Add(-time.Hour)},
		{ID: "b", Tenant: "acme", Resource: "requests", Quantity: 5, Time: now.Add(-26 * time.Hour),
			Attrs: map[string]string{"model": "m"}},
	}
	track := func(events ...billing.Event) []billing.UsageRow {
		st, err := sqlite.Open(path)
		if err != nil {
			t.Fatalf("sqlite.Open: %v", err)
		}
		defer st.Close()
		m, err := billing.New(billing.Config{Store: st, Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		if err := m.Track(ctx, events...); err != nil {
			t.Fatalf("Track: %v", err)
		}
		rows, err := m.Usage(ctx, billing.UsageQuery{Window: billing.PeriodDay})
		if err != nil {
			t.Fatalf("Usage: %v", err)
		}
		return rows
	}
	first := track(events...)
	for i := range 3 {
		again := track(events[1], events[0], events[1])
		if len(again) != 2 || len(first) != 2 {
			t.Fatalf("reopen %d: %d and %d day rows, want 2", i, len(first), len(again))
		}
		for j := range again {
			if again[j].Count != 1 || again[j].Sum != first[j].Sum || !again[j].Start.Equal(first[j].Start) {
				t.Errorf("reopen %d: row %d = %+v, want %+v with count 1", i, j, again[j], first[j])
			}
		}
	}
	conflict := events[0]
	conflict.Quantity = 4
	st, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	statuses, err := st.AppendEvents(ctx, billing.RollupSpec{}, []billing.Event{events[0], conflict})
	if err != nil {
		t.Fatal(err)
	}
	if statuses[0] != billing.AppendDuplicate || statuses[1] != billing.AppendConflict {
		t.Errorf("after reopening: statuses %v, want [duplicate conflict]", statuses)
	}
}
