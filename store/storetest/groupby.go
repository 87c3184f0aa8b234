package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/meterplane/billing"
)

// group is an expected grouped total.
type group struct {
	Group map[string]string
	Sum   int64
}

func groups(rows []billing.UsageRow) []group {
	out := make([]group, len(rows))
	for i, r := range rows {
		out[i] = group{r.Group, r.Sum}
	}
	return out
}

// testGroupBy checks grouping by one key, by two, by a key some events lack (grouped under ""),
// and Config.Dimensions restricting which attributes form groups.
func testGroupBy(t *testing.T, newStore func(t *testing.T) billing.Store) {
	ctx := context.Background()
	at := utc(2025, time.October, 20, 9, 0)
	attrs := []map[string]string{
		{"model": "a", "region": "eu"}, // 1
		{"model": "a", "region": "us"}, // 2
		{"model": "b", "region": "eu"}, // 4
		{"model": "b"},                 // 8
		nil,                            // 16
		{"model": "a", "region": "eu", "tier": "x"}, // 32
		{"model": `q"uote`, "region": `b\s`},        // 64
	}
	track := func(t *testing.T, m *billing.Meter, o *oracle, extra func(i int) map[string]string) {
		t.Helper()
		var events []billing.Event
		for i, a := range attrs {
			e := billing.Event{ID: fmt.Sprint("g", i), Tenant: "acme", Resource: "tokens.output", Quantity: 1 << i,
				Time: at.Add(time.Duration(i) * 30 * time.Minute), Attrs: map[string]string{}}
			for k, v := range a {
				e.Attrs[k] = v
			}
			for k, v := range extra(i) {
				e.Attrs[k] = v
			}
			events = append(events, e)
			o.add(e)
		}
		if err := m.Track(ctx, events...); err != nil {
			t.Fatalf("Track: %v", err)
		}
	}
	g := func(kv ...string) map[string]string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	cases := []struct {
		name string
		by   []string
		want []group
	}{
		{"one key", []string{"model"}, []group{
			{g("model", ""), 16}, {g("model", "a"), 35}, {g("model", "b"), 12}, {g("model", `q"uote`), 64}}},
		{"two keys", []string{"model", "region"}, []group{
			{g("model", "", "region", ""), 16},
			{g("model", "a", "region", "eu"), 33}, {g("model", "a", "region", "us"), 2},
			{g("model", "b", "region", ""), 8}, {g("model", "b", "region", "eu"), 4},
			{g("model", `q"uote`, "region", `b\s`), 64}}},
		{"two keys reversed", []string{"region", "model"}, []group{
			{g("model", "", "region", ""), 16}, {g("model", "b", "region", ""), 8},
			{g("model", `q"uote`, "region", `b\s`), 64},
			{g("model", "a", "region", "eu"), 33}, {g("model", "b", "region", "eu"), 4},
			{g("model", "a", "region", "us"), 2}}},
		{"a key some events lack", []string{"tier"}, []group{{g("tier", ""), 95}, {g("tier", "x"), 32}}},
		{"a key no event has", []string{"color"}, []group{{g("color", ""), 127}}},
	}

	t.Run("AllDimensions", func(t *testing.T) {
		berlin := loc(t, "Europe/Berlin")
		m := newMeter(t, billing.Config{Store: newStore(t), Location: berlin, Now: fixed(at.Add(24 * time.Hour))})
		o := newOracle(berlin)
		track(t, m, o, func(int) map[string]string { return nil })
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				q := billing.UsageQuery{GroupBy: c.by}
				if diff := cmp.Diff(c.want, groups(usage(t, m, q))); diff != "" {
					t.Errorf("(-want +got):\n%s", diff)
				}
				for _, w := range billing.Periods {
					checkUsage(t, m, o, billing.UsageQuery{Window: w, GroupBy: c.by})
				}
			})
		}
	})

	t.Run("Dimensions", func(t *testing.T) {
		// Events carry a per-request id that must be stored with the event but form no group.
		st := newStore(t)
		dims := []string{"model", "region"}
		m := newMeter(t, billing.Config{Store: st, Dimensions: dims, Now: fixed(at.Add(24 * time.Hour))})
		o := newOracle(time.UTC)
		track(t, m, o, func(i int) map[string]string { return map[string]string{"request": fmt.Sprint("req-", i)} })
		for _, c := range cases[:3] {
			t.Run(c.name, func(t *testing.T) {
				q := billing.UsageQuery{GroupBy: c.by}
				if diff := cmp.Diff(c.want, groups(usage(t, m, q))); diff != "" {
					t.Errorf("(-want +got):\n%s", diff)
				}
				for _, w := range billing.Periods {
					checkUsage(t, m, o, billing.UsageQuery{Window: w, GroupBy: c.by})
				}
			})
		}
		t.Run("buckets hold only the dimensions", func(t *testing.T) {
			checkBuckets(t, st, o, billing.RollupSpec{Dimensions: dims})
			rs, err := st.QueryRollups(ctx, billing.RollupQuery{Period: billing.PeriodTotal})
			if err != nil {
				t.Fatal(err)
			}
			if len(rs) != 6 { // the distinct (model, region) pairs of the events
				t.Errorf("%d total buckets, want 6 (one per model and region): %v", len(rs), rs)
			}
		})
		t.Run("grouping by another key is refused", func(t *testing.T) {
			for _, by := range [][]string{{"request"}, {"tier"}, {"model", "request"}} {
				if _, err := m.Usage(ctx, billing.UsageQuery{GroupBy: by}); !errors.Is(err, billing.ErrInvalidQuery) {
					t.Errorf("Usage(group_by %q) = %v, want ErrInvalidQuery", by, err)
				}
			}
		})
		t.Run("rows are not split by other keys", func(t *testing.T) {
			rows := usage(t, m, billing.UsageQuery{Window: billing.PeriodDay})
			if diff := cmp.Diff([]span{{utc(2025, time.October, 20, 0, 0), utc(2025, time.October, 21, 0, 0), 127}}, spans(rows)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	})
}
