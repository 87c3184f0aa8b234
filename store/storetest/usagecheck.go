package storetest

import (
	"context"
	"testing"

	"github.com/meterplane/billing"
)

// StoredEvent is an event as a backend stores it: Attrs is its canonical JSON (see
// billing.EncodeAttrs).
type StoredEvent struct {
	Tenant, ID, Resource string
	Quantity             int64
	Attrs                string
}

// CheckUsageMatchesEvents checks that the usage of every window that a Meter on st reports
// (from the rollups) adds up, per tenant and resource, to the sums, counts and maxima of events:
// the events stored in st, read from the backend's own tables.
func CheckUsageMatchesEvents(t *testing.T, st billing.Store, events []StoredEvent, when string) {
	t.Helper()
	type key struct{ tenant, resource string }
	type agg struct{ sum, count, max int64 }
	want := make(map[key]agg)
	for _, e := range events {
		k := key{e.Tenant, e.Resource}
		a := want[k]
		a.sum += e.Quantity
		a.count++
		a.max = max(a.max, e.Quantity)
		want[k] = a
	}
	m, err := billing.New(billing.Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for _, window := range billing.Periods {
		rows, err := m.Usage(context.Background(), billing.UsageQuery{Window: window})
		if err != nil {
			t.Fatalf("%s: Usage(window %s): %v", when, window, err)
		}
		got := make(map[key]agg)
		for _, r := range rows {
			a := got[key{r.Tenant, r.Resource}]
			a.sum += r.Sum
			a.count += r.Count
			a.max = max(a.max, r.Max)
			got[key{r.Tenant, r.Resource}] = a
		}
		for k, w := range want {
			if got[k] != w {
				t.Errorf("%s: window %s: %s/%s usage is %+v, events say %+v", when, window, k.tenant, k.resource, got[k], w)
			}
		}
		for k, g := range got {
			if _, ok := want[k]; !ok {
				t.Errorf("%s: window %s: usage %+v for %s/%s, which has no events", when, window, g, k.tenant, k.resource)
			}
		}
	}
}
