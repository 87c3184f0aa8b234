package billing_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/meterplane/billing"
)

func TestUsageQueryErrors(t *testing.T) {
	t0 := fixedNow.Add(-time.Hour)
	cases := []struct {
		name  string
		dims  []string
		q     billing.UsageQuery
		field string
		rule  []string
	}{
		{"unknown window", nil, billing.UsageQuery{Window: "week"}, "window", []string{"hour, day, month, total", `"week"`}},
		{"window is case sensitive", nil, billing.UsageQuery{Window: "Day"}, "window", []string{"hour, day, month, total"}},
		{"to before from", nil, billing.UsageQuery{From: t0, To: t0.Add(-time.Second)}, "to", []string{"must be after from"}},
		{"to equal to from", nil, billing.UsageQuery{Window: billing.PeriodDay, From: t0, To: t0}, "to", []string{"must be after from"}},
		{"tenant with control char", nil, billing.UsageQuery{Tenant: "acme\x00"}, "tenant", []string{"control characters"}},
		{"tenant invalid UTF-8", nil, billing.UsageQuery{Tenant: "\xff"}, "tenant", []string{"valid UTF-8"}},
		{"resource with space", nil, billing.UsageQuery{Resource: "tokens output"}, "resource", []string{"ASCII letters"}},
		{"resource too long", nil, billing.UsageQuery{Resource: strings.Repeat("r", 129)}, "resource", []string{"at most 128 bytes"}},
		{"group_by empty key", nil, billing.UsageQuery{GroupBy: []string{""}}, "group_by[0]", []string{"must not be empty"}},
		{"group_by bad key", nil, billing.UsageQuery{GroupBy: []string{"model", "the region"}}, "group_by[1]", []string{"ASCII letters"}},
		{"group_by duplicate", nil, billing.UsageQuery{GroupBy: []string{"model", "region", "model"}}, "group_by[2]", []string{`"model" is listed twice`}},
		{"group_by not a dimension", []string{"model"}, billing.UsageQuery{GroupBy: []string{"model", "request_id"}}, "group_by[1]",
			[]string{`"request_id" is not one of Config.Dimensions`}},
		{"group_by with no dimensions", []string{}, billing.UsageQuery{GroupBy: []string{"model"}}, "group_by[0]", []string{"Config.Dimensions"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := newMeter(t, billing.Config{Dimensions: tc.dims})
			rows, err := m.Usage(context.Background(), tc.q)
			if rows != nil {
				t.Errorf("rows %v returned with the error", rows)
			}
			requireFieldError(t, err, billing.ErrInvalidQuery, tc.field, tc.rule...)
		})
	}
	// Accepted counterparts.
	m := newMeter(t, billing.Config{Dimensions: []string{"model", "region"}})
	for _, q := range []billing.UsageQuery{
		{},
		{Window: billing.PeriodHour, From: t0, To: t0.Add(time.Nanosecond)},
		{Tenant: "Ünïcode tenant", Resource: strings.Repeat("r", 128), GroupBy: []string{"region", "model"}},
		{Window: billing.PeriodMonth, From: t0},
		{Window: billing.PeriodDay, To: t0},
	} {
		if _, err := m.Usage(context.Background(), q); err != nil {
			t.Errorf("Usage(%+v) = %v, want nil", q, err)
		}
	}
}

func TestRebuildRollupsInputErrors(t *testing.T) {
	m := newMeter(t, billing.Config{})
	ctx := context.Background()
	t0 := fixedNow
	cases := []struct {
		name   string
		tenant string
		span   billing.Span
		field  string
		rule   string
	}{
		{"zero span", "", billing.Span{}, "span", "start and end are required"},
		{"no end", "", billing.Span{Start: t0}, "span", "start and end are required"},
		{"no start", "acme", billing.Span{End: t0}, "span", "start and end are required"},
		{"end before start", "", billing.Span{Start: t0, End: t0.Add(-time.Hour)}, "span.end", "must be after span.start"},
		{"empty span", "", billing.Span{Start: t0, End: t0}, "span.end", "must be after span.start"},
		{"bad tenant", "ac\nme", billing.Span{Start: t0, End: t0.Add(time.Hour)}, "tenant", "control characters"},
	}
	for _, tc := range cases {
		requireFieldError(t, m.RebuildRollups(ctx, tc.tenant, tc.span), billing.ErrInvalidQuery, tc.field, tc.rule)
	}
}

// randomEvents returns n seeded random events of two tenants, two resources and a few models
// and regions (or none), at times in [from, to).
func randomEvents(r *rand.Rand, n int, from, to time.Time) []billing.Event {
	tenants := []string{"acme", "globex"}
	resources := []string{"requests", "tokens.output"}
	models := []string{"", "gpt-4o", "gpt-4o-mini", "o3"}
	regions := []string{"", "eu", "us"}
	events := make([]billing.Event, n)
	for i := range events {
		attrs := map[string]string{}
		if m := models[r.IntN(len(models))]; m != "" {
			attrs["model"] = m
		}
		if g := regions[r.IntN(len(regions))]; g != "" {
			attrs["region"] = g
		}
		events[i] = billing.Event{
			ID:       fmt.Sprintf("ev-%d", i),
			Tenant:   tenants[r.IntN(len(tenants))],
			Resource: resources[r.IntN(len(resources))],
			Quantity: 1 + r.Int64N(1000),
			Time:     from.Add(time.Duration(r.Int64N(int64(to.Sub(from))))),
			Attrs:    attrs,
		}
	}
	return events
}

// bruteUsage answers q by scanning the raw events.
func bruteUsage(events []billing.Event, q billing.UsageQuery, loc *time.Location) []billing.UsageRow {
	window := q.Window
	if window == "" {
		window = billing.PeriodTotal
	}
	var spanStart, spanEnd time.Time // bounded total: the span rounded outwards to hours
	if window == billing.PeriodTotal {
		if !q.From.IsZero() {
			spanStart = billing.PeriodHour.Start(q.From, loc)
		}
		if !q.To.IsZero() {
			spanEnd = billing.PeriodHour.Start(q.To, loc)
			if spanEnd.Before(q.To) {
				spanEnd = spanEnd.Add(time.Hour)
			}
		}
	}
	type key struct {
		tenant, resource, group string
		start                   int64
	}
	rows := map[key]*billing.UsageRow{}
	for _, e := range events {
		if q.Tenant != "" && e.Tenant != q.Tenant || q.Resource != "" && e.Resource != q.Resource {
			continue
		}
		var start, end time.Time
		if window == billing.PeriodTotal {
			if !spanStart.IsZero() && e.Time.Before(spanStart) || !spanEnd.IsZero() && !e.Time.Before(spanEnd) {
				continue
			}
			start, end = spanStart, spanEnd
		} else {
			start = window.Start(e.Time, loc)
			end = window.Next(start, loc)
			if !q.To.IsZero() && !start.Before(q.To) || !q.From.IsZero() && !end.After(q.From) {
				continue
			}
		}
		var group map[string]string
		var gk strings.Builder
		if len(q.GroupBy) > 0 {
			group = map[string]string{}
			for _, k := range q.GroupBy {
				group[k] = e.Attrs[k]
				fmt.Fprintf(&gk, "%q,", e.Attrs[k])
			}
		}
		k := key{e.Tenant, e.Resource, gk.String(), start.Unix()}
		row := rows[k]
		if row == nil {
			row = &billing.UsageRow{Tenant: e.Tenant, Resource: e.Resource, Start: start, End: end, Group: group}
			rows[k] = row
		}
		row.Sum += e.Quantity
		row.Count++
		row.Max = max(row.Max, e.Quantity)
	}
	out := make([]billing.UsageRow, 0, len(rows))
	for _, r := range rows {
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Tenant != b.Tenant {
			return a.Tenant < b.Tenant
		}
		if a.Resource != b.Resource {
			return a.Resource < b.Resource
		}
		if !a.Start.Equal(b.Start) {
			return a.Start.Before(b.Start)
		}
		for _, k := range q.GroupBy {
			if a.Group[k] != b.Group[k] {
				return a.Group[k] < b.Group[k]
			}
		}
		return false
	})
	if len(out) == 0 {
		return nil
	}
	return out
}

// rowsEqual is a fast cmp.Equal for usage rows (cmp.Diff explains a difference).
func rowsEqual(a, b []billing.UsageRow) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.Tenant != y.Tenant || x.Resource != y.Resource || !x.Start.Equal(y.Start) || !x.End.Equal(y.End) ||
			x.Sum != y.Sum || x.Count != y.Count || x.Max != y.Max || len(x.Group) != len(y.Group) || (x.Group == nil) != (y.Group == nil) {
			return false
		}
		for k, v := range x.Group {
			if w, ok := y.Group[k]; !ok || w != v {
				return false
			}
		}
	}
	return true
}

// Every kind of usage question, answered from the rollups, equals a scan of the raw events: in
// zones with DST and odd offsets, with bounds that cut buckets, and after a rebuild.
func TestUsageMatchesEvents(t *testing.T) {
	ctx := context.Background()
	for _, zone := range []string{"America/New_York", "Asia/Kathmandu"} {
		t.Run(zone, func(t *testing.T) {
			loc := mustLoad(t, zone)
			// From late February across the month end and New York's DST change (March 8).
			from := time.Date(2026, 2, 20, 0, 0, 0, 0, loc)
			m := newMeter(t, billing.Config{Location: loc, LateWindow: 60 * 24 * time.Hour})
			events := randomEvents(rand.New(rand.NewPCG(1, uint64(len(zone)))), 500, from, fixedNow)
			for lo := 0; lo < len(events); lo += 50 {
				if err := m.Track(ctx, events[lo:lo+50]...); err != nil {
					t.Fatal(err)
				}
			}
			local := func(s string) time.Time {
				ts, err := time.ParseInLocation("2006-01-02 15:04", s, loc)
				if err != nil {
					t.Fatal(err)
				}
				return ts
			}
			bounds := []struct{ from, to time.Time }{
				{},
				{local("2026-03-07 22:17"), local("2026-03-09 01:43")},
				{local("2026-02-28 00:00"), local("2026-03-01 00:00")},
				{local("2026-03-01 00:00"), time.Time{}},
				{time.Time{}, local("2026-03-08 03:30")},
				{local("2026-03-08 01:59"), local("2026-03-08 03:01")},
			}
			var queries []billing.UsageQuery
			for _, w := range billing.Periods {
				for _, b := range bounds {
					for _, g := range [][]string{nil, {"model"}, {"region", "model"}} {
						queries = append(queries, billing.UsageQuery{Window: w, From: b.from, To: b.to, GroupBy: g})
					}
				}
			}
			queries = append(queries,
				billing.UsageQuery{Tenant: "acme", Window: billing.PeriodDay, GroupBy: []string{"model"}},
				billing.UsageQuery{Tenant: "globex", Resource: "requests", Window: billing.PeriodHour, From: bounds[1].from, To: bounds[1].to},
				billing.UsageQuery{Resource: "tokens.output"},
				billing.UsageQuery{Tenant: "nobody"},
			)
			check := func(stage string) {
				t.Helper()
				for _, q := range queries {
					got, err := m.Usage(ctx, q)
					if err != nil {
						t.Fatalf("%s: Usage(%+v): %v", stage, q, err)
					}
					want := bruteUsage(events, q, loc)
					if rowsEqual(want, got) {
						continue
					}
					if d := cmp.Diff(want, got, cmpopts.EquateEmpty()); d != "" {
						t.Fatalf("%s: Usage(window %s, from %v, to %v, group %v) (-events +rollups):\n%s",
							stage, q.Window, q.From, q.To, q.GroupBy, d)
					}
				}
			}
			check("tracked")
			if err := m.RebuildRollups(ctx, "", billing.Span{Start: from, End: fixedNow}); err != nil {
				t.Fatal(err)
			}
			check("rebuilt")
			if err := m.RebuildRollups(ctx, "acme", billing.Span{Start: local("2026-03-08 00:00"), End: local("2026-03-08 00:01")}); err != nil {
				t.Fatal(err)
			}
			check("rebuilt one tenant's month")
		})
	}
}

// A bounded total says exactly which span it summed: the bounds rounded outwards to whole hours.
func TestUsageBoundedTotalSpan(t *testing.T) {
	loc := mustLoad(t, "Asia/Kolkata")
	m := newMeter(t, billing.Config{Location: loc})
	ctx := context.Background()
	at := func(s string) time.Time { return mustTime(t, s) }
	// 10:00, 10:29 and 13:59:59 IST are inside 10:00-14:00 IST; 09:59 and 14:00 are not.
	for i, s := range []string{"2026-03-15T04:30:00Z", "2026-03-15T04:59:00Z", "2026-03-15T08:29:59Z", "2026-03-15T04:29:00Z", "2026-03-15T08:30:00Z"} {
		if err := m.Track(ctx, billing.Event{ID: fmt.Sprint(i), Tenant: "acme", Resource: "requests", Quantity: int64(1 << i), Time: at(s)}); err != nil {
			t.Fatal(err)
		}
	}
	rows, err := m.Usage(ctx, billing.UsageQuery{From: at("2026-03-15T05:00:00Z"), To: at("2026-03-15T07:45:00Z")}) // 10:30 to 13:15 IST
	if err != nil {
		t.Fatal(err)
	}
	want := []billing.UsageRow{{Tenant: "acme", Resource: "requests",
		Start: at("2026-03-15T10:00:00+05:30"), End: at("2026-03-15T14:00:00+05:30"), Sum: 1 + 2 + 4, Count: 3, Max: 4}}
	if d := cmp.Diff(want, rows); d != "" {
		t.Errorf("bounded total (-want +got):\n%s", d)
	}
}

// With Config.Dimensions, only those keys split usage; a rebuild after changing them regroups the
// stored events.
func TestUsageDimensionsAndRebuild(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	all := newMeter(t, billing.Config{Store: st})
	for i, model := range []string{"gpt-4o", "gpt-4o", "o3"} {
		if err := all.Track(ctx, billing.Event{ID: fmt.Sprint(i), Tenant: "acme", Resource: "tokens.output", Quantity: int64(10 * (i + 1)),
			Time: fixedNow.Add(-time.Hour), Attrs: map[string]string{"model": model, "request_id": fmt.Sprint("r", i)}}); err != nil {
			t.Fatal(err)
		}
	}
	if rows := totals(t, all); len(rows) != 1 || rows[0].Sum != 60 {
		t.Fatalf("totals = %+v", rows)
	}
	all.Close()

	byModel := newMeter(t, billing.Config{Store: st, Dimensions: []string{"model"}})
	if err := byModel.RebuildRollups(ctx, "", billing.Span{Start: fixedNow.Add(-time.Hour), End: fixedNow}); err != nil {
		t.Fatal(err)
	}
	rows, err := byModel.Usage(ctx, billing.UsageQuery{GroupBy: []string{"model"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []billing.UsageRow{
		{Tenant: "acme", Resource: "tokens.output", Group: map[string]string{"model": "gpt-4o"}, Sum: 30, Count: 2, Max: 20},
		{Tenant: "acme", Resource: "tokens.output", Group: map[string]string{"model": "o3"}, Sum: 30, Count: 1, Max: 30},
	}
	if d := cmp.Diff(want, rows); d != "" {
		t.Errorf("usage by model after regrouping (-want +got):\n%s", d)
	}
	// New events follow the dimensions too: request_id no longer splits buckets.
	if err := byModel.Track(ctx, billing.Event{ID: "3", Tenant: "acme", Resource: "tokens.output", Quantity: 5, Time: fixedNow,
		Attrs: map[string]string{"model": "o3", "request_id": "r3"}}); err != nil {
		t.Fatal(err)
	}
	rows, err = byModel.Usage(ctx, billing.UsageQuery{Window: billing.PeriodHour, From: fixedNow.Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].Sum != 60 || rows[1].Sum != 5 {
		t.Errorf("hourly usage = %+v, want 60 then 5", rows)
	}
}
