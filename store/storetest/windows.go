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

// span is an expected bucket (or bounded total): its start and end, and the sum of the events in
// it. Test events have quantities 1, 2, 4, 8..., so a sum says exactly which events were counted.
type span struct {
	Start, End time.Time
	Sum        int64
}

// spans projects usage rows onto their spans.
func spans(rows []billing.UsageRow) []span {
	out := make([]span, len(rows))
	for i, r := range rows {
		out[i] = span{r.Start, r.End, r.Sum}
	}
	return out
}

// trackPowers tracks one event per instant, with quantities 1, 2, 4, ..., on a new store, and
// returns the Meter and the model.
func trackPowers(t *testing.T, st billing.Store, zone *time.Location, at []time.Time) (*billing.Meter, *oracle) {
	t.Helper()
	latest := at[0]
	for _, a := range at {
		if a.After(latest) {
			latest = a
		}
	}
	m := newMeter(t, billing.Config{Store: st, Location: zone, Now: fixed(latest.Add(time.Hour))})
	o := newOracle(zone)
	var events []billing.Event
	for i, a := range at {
		e := billing.Event{ID: fmt.Sprintf("e%d", i), Tenant: "acme", Resource: "requests", Quantity: 1 << i, Time: a}
		events = append(events, e)
		o.add(e)
	}
	if err := m.Track(context.Background(), events...); err != nil {
		t.Fatalf("Track: %v", err)
	}
	return m, o
}

// testWindows checks hour, day and month buckets at fixed instants: in UTC, across both
// daylight-saving changes of Europe/Berlin and America/New_York (23- and 25-hour days, and the
// hour that repeats when clocks fall back, which must be two buckets), at month starts, in zones
// with half- and quarter-hour offsets, and in zones whose clocks skip or repeat midnight.
func testWindows(t *testing.T, newStore func(t *testing.T) billing.Store) {
	type W = map[billing.Period][]span
	d := func(y int, m time.Month, d, h, min, s, ns int) time.Time {
		return time.Date(y, m, d, h, min, s, ns, time.UTC)
	}
	const (
		hour, day, month = billing.PeriodHour, billing.PeriodDay, billing.PeriodMonth
		Mar, Apr, May    = time.March, time.April, time.May
		Jun, Sep, Oct    = time.June, time.September, time.October
		Nov, Dec, Feb    = time.November, time.December, time.February
	)
	cases := []struct {
		name string
		zone string
		at   []time.Time // event i has quantity 1<<i
		want W
	}{
		{
			name: "UTC",
			zone: "UTC",
			at: []time.Time{
				d(2025, Mar, 15, 13, 45, 10, 500), d(2025, Mar, 15, 13, 0, 0, 0), d(2025, Mar, 15, 23, 59, 59, 999999999),
				d(2025, Mar, 31, 23, 59, 59, 0), d(2025, Apr, 1, 0, 0, 0, 0),
			},
			want: W{
				hour: {
					{utc(2025, Mar, 15, 13, 0), utc(2025, Mar, 15, 14, 0), 3},
					{utc(2025, Mar, 15, 23, 0), utc(2025, Mar, 16, 0, 0), 4},
					{utc(2025, Mar, 31, 23, 0), utc(2025, Apr, 1, 0, 0), 8},
					{utc(2025, Apr, 1, 0, 0), utc(2025, Apr, 1, 1, 0), 16},
				},
				day: {
					{utc(2025, Mar, 15, 0, 0), utc(2025, Mar, 16, 0, 0), 7},
					{utc(2025, Mar, 31, 0, 0), utc(2025, Apr, 1, 0, 0), 8},
					{utc(2025, Apr, 1, 0, 0), utc(2025, Apr, 2, 0, 0), 16},
				},
				month: {
					{utc(2025, Mar, 1, 0, 0), utc(2025, Apr, 1, 0, 0), 15},
					{utc(2025, Apr, 1, 0, 0), utc(2025, May, 1, 0, 0), 16},
				},
			},
		},
		{
			name: "Berlin spring forward: a 23-hour day",
			zone: "Europe/Berlin",
			at: []time.Time{
				d(2025, Mar, 29, 22, 59, 59, 999999999), // Mar 29 23:59:59.999999999 CET
				d(2025, Mar, 29, 23, 0, 0, 0),           // Mar 30 00:00 CET
				d(2025, Mar, 30, 0, 59, 59, 0),          // 01:59:59 CET; 02:00 does not exist
				d(2025, Mar, 30, 1, 0, 0, 0),            // 03:00 CEST
				d(2025, Mar, 30, 21, 59, 59, 0),         // 23:59:59 CEST
				d(2025, Mar, 30, 22, 0, 0, 0),           // Mar 31 00:00 CEST
				d(2025, Mar, 31, 22, 0, 0, 0),           // Apr 1 00:00 CEST
			},
			want: W{
				hour: {
					{utc(2025, Mar, 29, 22, 0), utc(2025, Mar, 29, 23, 0), 1},
					{utc(2025, Mar, 29, 23, 0), utc(2025, Mar, 30, 0, 0), 2},
					{utc(2025, Mar, 30, 0, 0), utc(2025, Mar, 30, 1, 0), 4},
					{utc(2025, Mar, 30, 1, 0), utc(2025, Mar, 30, 2, 0), 8},
					{utc(2025, Mar, 30, 21, 0), utc(2025, Mar, 30, 22, 0), 16},
					{utc(2025, Mar, 30, 22, 0), utc(2025, Mar, 30, 23, 0), 32},
					{utc(2025, Mar, 31, 22, 0), utc(2025, Mar, 31, 23, 0), 64},
				},
				day: {
					{utc(2025, Mar, 28, 23, 0), utc(2025, Mar, 29, 23, 0), 1},
					{utc(2025, Mar, 29, 23, 0), utc(2025, Mar, 30, 22, 0), 30}, // 23 hours
					{utc(2025, Mar, 30, 22, 0), utc(2025, Mar, 31, 22, 0), 32},
					{utc(2025, Mar, 31, 22, 0), utc(2025, Apr, 1, 22, 0), 64},
				},
				month: {
					{utc(2025, Feb, 28, 23, 0), utc(2025, Mar, 31, 22, 0), 63},
					{utc(2025, Mar, 31, 22, 0), utc(2025, Apr, 30, 22, 0), 64},
				},
			},
		},
		{
			name: "Berlin fall back: a 25-hour day and a repeated hour",
			zone: "Europe/Berlin",
			at: []time.Time{
				d(2025, Oct, 25, 21, 59, 59, 0),         // Oct 25 23:59:59 CEST
				d(2025, Oct, 25, 22, 0, 0, 0),           // Oct 26 00:00 CEST
				d(2025, Oct, 26, 0, 30, 0, 0),           // 02:30 CEST
				d(2025, Oct, 26, 1, 30, 0, 0),           // 02:30 CET, the same wall clock an hour later
				d(2025, Oct, 26, 22, 59, 59, 999999999), // 23:59:59.999999999 CET
				d(2025, Oct, 26, 23, 0, 0, 0),           // Oct 27 00:00 CET
			},
			want: W{
				hour: {
					{utc(2025, Oct, 25, 21, 0), utc(2025, Oct, 25, 22, 0), 1},
					{utc(2025, Oct, 25, 22, 0), utc(2025, Oct, 25, 23, 0), 2},
					{utc(2025, Oct, 26, 0, 0), utc(2025, Oct, 26, 1, 0), 4}, // 02:00 CEST
					{utc(2025, Oct, 26, 1, 0), utc(2025, Oct, 26, 2, 0), 8}, // 02:00 CET
					{utc(2025, Oct, 26, 22, 0), utc(2025, Oct, 26, 23, 0), 16},
					{utc(2025, Oct, 26, 23, 0), utc(2025, Oct, 27, 0, 0), 32},
				},
				day: {
					{utc(2025, Oct, 24, 22, 0), utc(2025, Oct, 25, 22, 0), 1},
					{utc(2025, Oct, 25, 22, 0), utc(2025, Oct, 26, 23, 0), 30}, // 25 hours
					{utc(2025, Oct, 26, 23, 0), utc(2025, Oct, 27, 23, 0), 32},
				},
				month: {{utc(2025, Sep, 30, 22, 0), utc(2025, Oct, 31, 23, 0), 63}},
			},
		},
		{
			name: "Berlin month starts",
			zone: "Europe/Berlin",
			at: []time.Time{
				d(2025, Oct, 31, 22, 59, 59, 0), // Oct 31 23:59:59 CET
				d(2025, Oct, 31, 23, 0, 0, 0),   // Nov 1 00:00 CET
				d(2025, Nov, 1, 0, 0, 0, 0),     // Nov 1 01:00 CET, the UTC month start
			},
			want: W{
				day: {
					{utc(2025, Oct, 30, 23, 0), utc(2025, Oct, 31, 23, 0), 1},
					{utc(2025, Oct, 31, 23, 0), utc(2025, Nov, 1, 23, 0), 6},
				},
				month: {
					{utc(2025, Sep, 30, 22, 0), utc(2025, Oct, 31, 23, 0), 1}, // 31 days and an hour
					{utc(2025, Oct, 31, 23, 0), utc(2025, Nov, 30, 23, 0), 6},
				},
			},
		},
		{
			name: "UTC month starts",
			zone: "UTC",
			at:   []time.Time{d(2025, Oct, 31, 22, 59, 59, 0), d(2025, Oct, 31, 23, 0, 0, 0), d(2025, Nov, 1, 0, 0, 0, 0)},
			want: W{
				month: {
					{utc(2025, Oct, 1, 0, 0), utc(2025, Nov, 1, 0, 0), 3},
					{utc(2025, Nov, 1, 0, 0), utc(2025, Dec, 1, 0, 0), 4},
				},
			},
		},
		{
			name: "New York spring forward: a 23-hour day",
			zone: "America/New_York",
			at: []time.Time{
				d(2025, Mar, 9, 5, 0, 0, 0),    // Mar 9 00:00 EST
				d(2025, Mar, 9, 6, 59, 59, 0),  // 01:59:59 EST
				d(2025, Mar, 9, 7, 0, 0, 0),    // 03:00 EDT
				d(2025, Mar, 10, 3, 59, 59, 0), // 23:59:59 EDT
				d(2025, Mar, 10, 4, 0, 0, 0),   // Mar 10 00:00 EDT
			},
			want: W{
				hour: {
					{utc(2025, Mar, 9, 5, 0), utc(2025, Mar, 9, 6, 0), 1},
					{utc(2025, Mar, 9, 6, 0), utc(2025, Mar, 9, 7, 0), 2},
					{utc(2025, Mar, 9, 7, 0), utc(2025, Mar, 9, 8, 0), 4},
					{utc(2025, Mar, 10, 3, 0), utc(2025, Mar, 10, 4, 0), 8},
					{utc(2025, Mar, 10, 4, 0), utc(2025, Mar, 10, 5, 0), 16},
				},
				day: {
					{utc(2025, Mar, 9, 5, 0), utc(2025, Mar, 10, 4, 0), 15}, // 23 hours
					{utc(2025, Mar, 10, 4, 0), utc(2025, Mar, 11, 4, 0), 16},
				},
				month: {{utc(2025, Mar, 1, 5, 0), utc(2025, Apr, 1, 4, 0), 31}},
			},
		},
		{
			name: "New York fall back: a 25-hour day and a repeated hour",
			zone: "America/New_York",
			at: []time.Time{
				d(2025, Nov, 2, 5, 15, 0, 0),  // 01:15 EDT
				d(2025, Nov, 2, 6, 15, 0, 0),  // 01:15 EST
				d(2025, Nov, 2, 4, 0, 0, 0),   // Nov 2 00:00 EDT
				d(2025, Nov, 3, 4, 59, 59, 0), // 23:59:59 EST
				d(2025, Nov, 3, 5, 0, 0, 0),   // Nov 3 00:00 EST
			},
			want: W{
				hour: {
					{utc(2025, Nov, 2, 4, 0), utc(2025, Nov, 2, 5, 0), 4},
					{utc(2025, Nov, 2, 5, 0), utc(2025, Nov, 2, 6, 0), 1}, // 01:00 EDT
					{utc(2025, Nov, 2, 6, 0), utc(2025, Nov, 2, 7, 0), 2}, // 01:00 EST
					{utc(2025, Nov, 3, 4, 0), utc(2025, Nov, 3, 5, 0), 8},
					{utc(2025, Nov, 3, 5, 0), utc(2025, Nov, 3, 6, 0), 16},
				},
				day: {
					{utc(2025, Nov, 2, 4, 0), utc(2025, Nov, 3, 5, 0), 15}, // 25 hours
					{utc(2025, Nov, 3, 5, 0), utc(2025, Nov, 4, 5, 0), 16},
				},
				month: {{utc(2025, Nov, 1, 4, 0), utc(2025, Dec, 1, 5, 0), 31}},
			},
		},
		{
			name: "Kolkata: a half-hour offset",
			zone: "Asia/Kolkata",
			at: []time.Time{
				d(2025, Jun, 10, 10, 10, 0, 0),  // 15:40 IST
				d(2025, Jun, 10, 18, 29, 59, 0), // 23:59:59 IST
				d(2025, Jun, 10, 18, 30, 0, 0),  // Jun 11 00:00 IST
			},
			want: W{
				hour: {
					{utc(2025, Jun, 10, 9, 30), utc(2025, Jun, 10, 10, 30), 1},
					{utc(2025, Jun, 10, 17, 30), utc(2025, Jun, 10, 18, 30), 2},
					{utc(2025, Jun, 10, 18, 30), utc(2025, Jun, 10, 19, 30), 4},
				},
				day: {
					{utc(2025, Jun, 9, 18, 30), utc(2025, Jun, 10, 18, 30), 3},
					{utc(2025, Jun, 10, 18, 30), utc(2025, Jun, 11, 18, 30), 4},
				},
				month: {{utc(2025, May, 31, 18, 30), utc(2025, Jun, 30, 18, 30), 7}},
			},
		},
		{
			name: "Kathmandu: a quarter-hour offset",
			zone: "Asia/Kathmandu",
			at:   []time.Time{d(2025, Jun, 10, 10, 10, 0, 0)}, // 15:55 NPT
			want: W{
				hour: {{utc(2025, Jun, 10, 9, 15), utc(2025, Jun, 10, 10, 15), 1}},
				day:  {{utc(2025, Jun, 9, 18, 15), utc(2025, Jun, 10, 18, 15), 1}},
			},
		},
		{
			name: "Santiago: clocks skip midnight",
			zone: "America/Santiago",
			at: []time.Time{
				d(2025, Sep, 7, 3, 30, 0, 0),  // Sep 6 23:30 -04
				d(2025, Sep, 7, 4, 0, 0, 0),   // Sep 7 01:00 -03, the first instant of the day
				d(2025, Sep, 8, 2, 59, 59, 0), // Sep 7 23:59:59 -03
				d(2025, Sep, 8, 3, 0, 0, 0),   // Sep 8 00:00 -03
			},
			want: W{
				hour: {
					{utc(2025, Sep, 7, 3, 0), utc(2025, Sep, 7, 4, 0), 1},
					{utc(2025, Sep, 7, 4, 0), utc(2025, Sep, 7, 5, 0), 2},
					{utc(2025, Sep, 8, 2, 0), utc(2025, Sep, 8, 3, 0), 4},
					{utc(2025, Sep, 8, 3, 0), utc(2025, Sep, 8, 4, 0), 8},
				},
				day: {
					{utc(2025, Sep, 6, 4, 0), utc(2025, Sep, 7, 4, 0), 1},
					{utc(2025, Sep, 7, 4, 0), utc(2025, Sep, 8, 3, 0), 6}, // 23 hours
					{utc(2025, Sep, 8, 3, 0), utc(2025, Sep, 9, 3, 0), 8},
				},
				month: {{utc(2025, Sep, 1, 4, 0), utc(2025, Oct, 1, 3, 0), 15}},
			},
		},
		{
			name: "Santiago: clocks repeat the hour before midnight",
			zone: "America/Santiago",
			at: []time.Time{
				d(2025, Apr, 6, 2, 30, 0, 0), // Apr 5 23:30 -03
				d(2025, Apr, 6, 3, 30, 0, 0), // Apr 5 23:30 -04
				d(2025, Apr, 6, 4, 0, 0, 0),  // Apr 6 00:00 -04
			},
			want: W{
				hour: {
					{utc(2025, Apr, 6, 2, 0), utc(2025, Apr, 6, 3, 0), 1},
					{utc(2025, Apr, 6, 3, 0), utc(2025, Apr, 6, 4, 0), 2},
					{utc(2025, Apr, 6, 4, 0), utc(2025, Apr, 6, 5, 0), 4},
				},
				day: {
					{utc(2025, Apr, 5, 3, 0), utc(2025, Apr, 6, 4, 0), 3}, // 25 hours
					{utc(2025, Apr, 6, 4, 0), utc(2025, Apr, 7, 4, 0), 4},
				},
			},
		},
		{
			name: "Azores: clocks skip midnight",
			zone: "Atlantic/Azores",
			at: []time.Time{
				d(2025, Mar, 30, 0, 30, 0, 0), // Mar 29 23:30 -01
				d(2025, Mar, 30, 1, 0, 0, 0),  // Mar 30 01:00 +00, the first instant of the day
			},
			want: W{
				day: {
					{utc(2025, Mar, 29, 1, 0), utc(2025, Mar, 30, 1, 0), 1},
					{utc(2025, Mar, 30, 1, 0), utc(2025, Mar, 31, 0, 0), 2}, // 23 hours
				},
			},
		},
		{
			name: "Azores: clocks repeat midnight",
			zone: "Atlantic/Azores",
			at: []time.Time{
				d(2025, Oct, 25, 23, 59, 59, 0), // Oct 25 23:59:59 +00
				d(2025, Oct, 26, 0, 30, 0, 0),   // Oct 26 00:30 +00
				d(2025, Oct, 26, 1, 30, 0, 0),   // Oct 26 00:30 -01
			},
			want: W{
				hour: {
					{utc(2025, Oct, 25, 23, 0), utc(2025, Oct, 26, 0, 0), 1},
					{utc(2025, Oct, 26, 0, 0), utc(2025, Oct, 26, 1, 0), 2},
					{utc(2025, Oct, 26, 1, 0), utc(2025, Oct, 26, 2, 0), 4},
				},
				day: {
					{utc(2025, Oct, 25, 0, 0), utc(2025, Oct, 26, 0, 0), 1},
					{utc(2025, Oct, 26, 0, 0), utc(2025, Oct, 27, 1, 0), 6}, // 25 hours
				},
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			zone := loc(t, c.zone)
			m, o := trackPowers(t, newStore(t), zone, c.at)
			for _, w := range []billing.Period{hour, day, month} {
				want, ok := c.want[w]
				if !ok {
					continue
				}
				q := billing.UsageQuery{Window: w}
				if diff := cmp.Diff(want, spans(usage(t, m, q))); diff != "" {
					t.Errorf("%s buckets (-want +got):\n%s", w, diff)
				}
				checkUsage(t, m, o, q)
			}
			var all int64 = 1<<len(c.at) - 1
			if diff := cmp.Diff([]span{{Sum: all}}, spans(usage(t, m, billing.UsageQuery{}))); diff != "" {
				t.Errorf("total (-want +got):\n%s", diff)
			}
		})
	}
}

// testBounds checks From and To as UsageQuery documents them: an hour, day or month bucket is
// returned whole when it starts before To and ends after From; a bounded total covers [From, To)
// rounded outwards to whole hours, and says so in its Start and End.
func testBounds(t *testing.T, newStore func(t *testing.T) billing.Store) {
	const (
		hour, day, month, total = billing.PeriodHour, billing.PeriodDay, billing.PeriodMonth, billing.PeriodTotal
		Sep, Oct, Nov           = time.September, time.October, time.November
	)
	berlin := loc(t, "Europe/Berlin")
	m, o := trackPowers(t, newStore(t), berlin, []time.Time{
		utc(2025, Oct, 25, 21, 30), // 1: Oct 25 23:30 CEST
		utc(2025, Oct, 25, 22, 10), // 2: Oct 26 00:10 CEST
		utc(2025, Oct, 26, 0, 30),  // 4: 02:30 CEST
		utc(2025, Oct, 26, 1, 30),  // 8: 02:30 CET
		utc(2025, Oct, 26, 12, 0),  // 16: 13:00 CET
		utc(2025, Oct, 26, 23, 20), // 32: Oct 27 00:20 CET
		utc(2025, Oct, 31, 23, 0),  // 64: Nov 1 00:00 CET
	})
	var zero time.Time
	cases := []struct {
		name     string
		window   billing.Period
		from, to time.Time
		want     []span
	}{
		{"hour: buckets containing From and To are whole", hour, utc(2025, Oct, 26, 0, 45), utc(2025, Oct, 26, 1, 30),
			[]span{{utc(2025, Oct, 26, 0, 0), utc(2025, Oct, 26, 1, 0), 4}, {utc(2025, Oct, 26, 1, 0), utc(2025, Oct, 26, 2, 0), 8}}},
		{"hour: buckets ending at From or starting at To are out", hour, utc(2025, Oct, 26, 1, 0), utc(2025, Oct, 26, 12, 0),
			[]span{{utc(2025, Oct, 26, 1, 0), utc(2025, Oct, 26, 2, 0), 8}}},
		{"hour: To a moment after a bucket start", hour, utc(2025, Oct, 26, 0, 45), utc(2025, Oct, 26, 12, 0).Add(500 * time.Millisecond),
			[]span{
				{utc(2025, Oct, 26, 0, 0), utc(2025, Oct, 26, 1, 0), 4}, {utc(2025, Oct, 26, 1, 0), utc(2025, Oct, 26, 2, 0), 8},
				{utc(2025, Oct, 26, 12, 0), utc(2025, Oct, 26, 13, 0), 16},
			}},
		{"hour: nothing in range", hour, utc(2025, Oct, 28, 0, 0), utc(2025, Oct, 29, 0, 0), nil},
		{"day: From inside a 25-hour day", day, utc(2025, Oct, 26, 12, 0), zero, []span{
			{utc(2025, Oct, 25, 22, 0), utc(2025, Oct, 26, 23, 0), 30},
			{utc(2025, Oct, 26, 23, 0), utc(2025, Oct, 27, 23, 0), 32},
			{utc(2025, Oct, 31, 23, 0), utc(2025, Nov, 1, 23, 0), 64},
		}},
		{"day: To at a day start", day, zero, utc(2025, Oct, 26, 23, 0), []span{
			{utc(2025, Oct, 24, 22, 0), utc(2025, Oct, 25, 22, 0), 1},
			{utc(2025, Oct, 25, 22, 0), utc(2025, Oct, 26, 23, 0), 30},
		}},
		{"day: To a nanosecond after a day start", day, zero, utc(2025, Oct, 26, 23, 0).Add(time.Nanosecond), []span{
			{utc(2025, Oct, 24, 22, 0), utc(2025, Oct, 25, 22, 0), 1},
			{utc(2025, Oct, 25, 22, 0), utc(2025, Oct, 26, 23, 0), 30},
			{utc(2025, Oct, 26, 23, 0), utc(2025, Oct, 27, 23, 0), 32},
		}},
		{"month: From at a month start", month, utc(2025, Oct, 31, 23, 0), zero,
			[]span{{utc(2025, Oct, 31, 23, 0), utc(2025, Nov, 30, 23, 0), 64}}},
		{"month: From a minute before a month start", month, utc(2025, Oct, 31, 22, 59), zero, []span{
			{utc(2025, Sep, 30, 22, 0), utc(2025, Oct, 31, 23, 0), 63},
			{utc(2025, Oct, 31, 23, 0), utc(2025, Nov, 30, 23, 0), 64},
		}},
		{"total: bounds inside hours round out", total, utc(2025, Oct, 26, 0, 45), utc(2025, Oct, 26, 12, 0).Add(time.Second),
			[]span{{utc(2025, Oct, 26, 0, 0), utc(2025, Oct, 26, 13, 0), 28}}},
		{"total: inside one hour", total, utc(2025, Oct, 26, 0, 10), utc(2025, Oct, 26, 0, 20),
			[]span{{utc(2025, Oct, 26, 0, 0), utc(2025, Oct, 26, 1, 0), 4}}},
		{"total: a 25-hour day", total, utc(2025, Oct, 25, 22, 0), utc(2025, Oct, 26, 23, 0),
			[]span{{utc(2025, Oct, 25, 22, 0), utc(2025, Oct, 26, 23, 0), 30}}},
		{"total: a month", total, utc(2025, Sep, 30, 22, 0), utc(2025, Oct, 31, 23, 0),
			[]span{{utc(2025, Sep, 30, 22, 0), utc(2025, Oct, 31, 23, 0), 63}}},
		{"total: a day start to a month start", total, utc(2025, Oct, 25, 22, 0), utc(2025, Oct, 31, 23, 0),
			[]span{{utc(2025, Oct, 25, 22, 0), utc(2025, Oct, 31, 23, 0), 62}}},
		{"total: a month start to the middle of a day", total, utc(2025, Sep, 30, 22, 0), utc(2025, Oct, 26, 12, 30),
			[]span{{utc(2025, Sep, 30, 22, 0), utc(2025, Oct, 26, 13, 0), 31}}},
		{"total: From only", total, utc(2025, Oct, 26, 12, 0), zero, []span{{utc(2025, Oct, 26, 12, 0), zero, 112}}},
		{"total: To only", total, zero, utc(2025, Oct, 26, 0, 0).Add(time.Second), []span{{zero, utc(2025, Oct, 26, 1, 0), 7}}},
		{"total: nothing in range", total, utc(2025, Oct, 28, 0, 0), utc(2025, Oct, 29, 0, 0), nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			q := billing.UsageQuery{Window: c.window, From: c.from, To: c.to}
			if diff := cmp.Diff(c.want, spans(usage(t, m, q)), cmpOpts); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			checkUsage(t, m, o, q)
		})
	}
	t.Run("invalid", func(t *testing.T) {
		at := utc(2025, Oct, 26, 0, 0)
		for _, q := range []billing.UsageQuery{
			{From: at, To: at},
			{Window: hour, From: at, To: at.Add(-time.Hour)},
			{Window: "week"},
		} {
			if _, err := m.Usage(context.Background(), q); !errors.Is(err, billing.ErrInvalidQuery) {
				t.Errorf("Usage(%s) = %v, want ErrInvalidQuery", fmtQuery(q), err)
			}
		}
	})
}
