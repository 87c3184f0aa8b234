package storetest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/meterplane/billing"
)

// testAudit checks the AuditStore part: IDs increase, entries come back exactly as appended
// (JSON before and after, absent ones absent), newest first, filtered by tenant, paged by cursor.
func testAudit(t *testing.T, newStore func(t *testing.T) billing.Store) {
	st := newStore(t)
	ctx := context.Background()
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	entries := []billing.AuditEntry{
		{At: at, Principal: "admin", Action: "quota.put", Tenant: "acme", Target: "quota/requests/day",
			Before: json.RawMessage(`{"limit":10}`), After: json.RawMessage(`{"limit":20}`)},
		{At: at.Add(time.Second), Principal: "ops", Action: "plan.put", Target: "plan/pro",
			After: json.RawMessage(`{"id":"pro"}`)},
		{At: at.Add(2 * time.Second), Principal: "admin", Action: "quota.delete", Tenant: "acme",
			Target: "quota/requests/day", Before: json.RawMessage(`{"limit":20}`)},
		{At: at.Add(3 * time.Second), Principal: "admin", Action: "rate_limit.clear", Tenant: "globex"},
	}
	var last int64
	for i := range entries {
		id, err := st.AppendAudit(ctx, entries[i])
		if err != nil {
			t.Fatalf("AppendAudit(%d): %v", i, err)
		}
		if id <= last {
			t.Fatalf("AppendAudit(%d) = id %d, want > %d", i, id, last)
		}
		last, entries[i].ID = id, id
	}
	same := func(t *testing.T, got []billing.AuditEntry, want ...billing.AuditEntry) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("got %d entries, want %d: %+v", len(got), len(want), got)
		}
		for i := range want {
			g, w := got[i], want[i]
			if g.ID != w.ID || !g.At.Equal(w.At) || g.Principal != w.Principal || g.Action != w.Action ||
				g.Tenant != w.Tenant || g.Target != w.Target || string(g.Before) != string(w.Before) ||
				string(g.After) != string(w.After) {
				t.Errorf("entry %d = %+v, want %+v", i, g, w)
			}
		}
	}
	all, err := st.ListAudit(ctx, billing.AuditQuery{})
	if err != nil {
		t.Fatal(err)
	}
	same(t, all, entries[3], entries[2], entries[1], entries[0])

	acme, err := st.ListAudit(ctx, billing.AuditQuery{Tenant: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	same(t, acme, entries[2], entries[0])

	page1, err := st.ListAudit(ctx, billing.AuditQuery{Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	same(t, page1, entries[3], entries[2])
	page2, err := st.ListAudit(ctx, billing.AuditQuery{Limit: 2, Before: page1[1].ID})
	if err != nil {
		t.Fatal(err)
	}
	same(t, page2, entries[1], entries[0])
	page3, err := st.ListAudit(ctx, billing.AuditQuery{Limit: 2, Before: page2[1].ID})
	if err != nil {
		t.Fatal(err)
	}
	same(t, page3)
}
