package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/meterplane/billing"
)

// testBadInput tracks calls with one invalid event among valid ones: each is refused with a
// *billing.FieldError naming the field, and nothing of it reaches the store.
func testBadInput(t *testing.T, newStore func(t *testing.T) billing.Store) {
	ctx := context.Background()
	st := newStore(t)
	now := utc(2025, time.October, 27, 12, 0)
	m := newMeter(t, billing.Config{Store: st, Now: fixed(now)})
	o := newOracle(time.UTC)
	n := 0
	valid := func() billing.Event {
		n++
		return billing.Event{ID: fmt.Sprint("valid-", n), Tenant: "acme", Resource: "requests", Quantity: int64(n),
			Time: now.Add(-time.Duration(n) * time.Hour), Attrs: map[string]string{"model": "m"}}
	}
	stored := []billing.Event{valid(), valid()}
	o.addAll(stored)
	if err := m.Track(ctx, stored...); err != nil {
		t.Fatalf("Track: %v", err)
	}
	before := storedBuckets(t, st)

	manyAttrs := map[string]string{}
	for i := range billing.MaxAttrs + 1 {
		manyAttrs[fmt.Sprint("k", i)] = "v"
	}
	cases := []struct {
		field  string
		change func(*billing.Event)
	}{
		{"id", func(e *billing.Event) { e.ID = strings.Repeat("i", billing.MaxIDLen+1) }},
		{"id", func(e *billing.Event) { e.ID = "a\x00b" }},
		{"id", func(e *billing.Event) { e.ID = "bad\xffutf8" }},
		{"tenant", func(e *billing.Event) { e.Tenant = "" }},
		{"tenant", func(e *billing.Event) { e.Tenant = strings.Repeat("t", billing.MaxNameLen+1) }},
		{"tenant", func(e *billing.Event) { e.Tenant = "ac\nme" }},
		{"resource", func(e *billing.Event) { e.Resource = "" }},
		{"resource", func(e *billing.Event) { e.Resource = "tokens output" }},
		{"resource", func(e *billing.Event) { e.Resource = strings.Repeat("r", billing.MaxNameLen+1) }},
		{"quantity", func(e *billing.Event) { e.Quantity = 0 }},
		{"quantity", func(e *billing.Event) { e.Quantity = -5 }},
		{"quantity", func(e *billing.Event) { e.Quantity = billing.MaxQuantity + 1 }},
		{"attrs", func(e *billing.Event) { e.Attrs = manyAttrs }},
		{"attrs", func(e *billing.Event) { e.Attrs = map[string]string{"mo del": "x"} }},
		{"attrs", func(e *billing.Event) { e.Attrs = map[string]string{"": "x"} }},
		{"attrs[model]", func(e *billing.Event) {
			e.Attrs = map[string]string{"model": strings.Repeat("v", billing.MaxAttrValueLen+1)}
		}},
		{"attrs[model]", func(e *billing.Event) { e.Attrs = map[string]string{"model": "a\tb"} }},
		{"time", func(e *billing.Event) { e.Time = now.Add(-billing.DefaultLateWindow - time.Second) }},
		{"time", func(e *billing.Event) { e.Time = now.Add(billing.DefaultMaxFuture + time.Second) }},
	}
	for i, c := range cases {
		t.Run(fmt.Sprintf("%02d_%s", i, c.field), func(t *testing.T) {
			bad := valid()
			c.change(&bad)
			for _, call := range []struct {
				events []billing.Event
				field  string
			}{
				{[]billing.Event{valid(), bad, valid()}, "events[1]." + c.field},
				{[]billing.Event{bad}, c.field},
			} {
				err := m.Track(ctx, call.events...)
				if !errors.Is(err, billing.ErrInvalidEvent) {
					t.Fatalf("Track = %v, want an error matching ErrInvalidEvent", err)
				}
				var fe *billing.FieldError
				if !errors.As(err, &fe) {
					t.Fatalf("Track = %v, want a *billing.FieldError", err)
				}
				if fe.Field != call.field {
					t.Errorf("Track error names field %q, want %q (%v)", fe.Field, call.field, err)
				}
			}
			if diff := cmp.Diff(before, storedBuckets(t, st), cmpOpts); diff != "" {
				t.Errorf("a refused call changed the store (-before +after):\n%s", diff)
			}
		})
	}
	t.Run("store still usable", func(t *testing.T) {
		e := valid()
		o.add(e)
		if err := m.Track(ctx, e); err != nil {
			t.Fatalf("Track: %v", err)
		}
		checkBuckets(t, st, o, billing.RollupSpec{})
		checkUsage(t, m, o, billing.UsageQuery{Window: billing.PeriodHour})
	})
}
