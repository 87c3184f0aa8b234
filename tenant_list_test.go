package billing_test

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/meterplane/billing"
)

// Tenants lists tenants with a record and tenants that only have usage, in ID order, with paging.
func TestTenantsIncludesUsageOnly(t *testing.T) {
	ctx := context.Background()
	m := newMeter(t, billing.Config{Now: fixedClock})
	if err := m.SetAnchorDay(ctx, "b-record", 15); err != nil {
		t.Fatal(err)
	}
	for _, tenant := range []string{"c-usage", "a-usage", "b-record"} {
		if err := m.Track(ctx, billing.Event{Tenant: tenant, Resource: "requests", Quantity: 1}); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(after string, limit int) []string {
		t.Helper()
		ts, err := m.Tenants(ctx, after, limit)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, x := range ts {
			out = append(out, x.ID)
		}
		return out
	}
	if d := cmp.Diff([]string{"a-usage", "b-record", "c-usage"}, ids("", 0)); d != "" {
		t.Errorf("all tenants (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"b-record"}, ids("a-usage", 1)); d != "" {
		t.Errorf("second page (-want +got):\n%s", d)
	}
	ts, _ := m.Tenants(ctx, "a-usage", 1)
	if len(ts) != 1 || ts[0].AnchorDay != 15 {
		t.Errorf("record of b-record = %+v, want its anchor day 15", ts)
	}
	if _, err := m.Tenants(ctx, "", -1); err == nil {
		t.Error("negative limit accepted")
	}
}
