package billing_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/meterplane/billing"
)

// Quota periods at fixed instants: the buckets QuotaStatus reports (Bucket.End is the reset
// time), calendar boundaries, month ends, daylight-saving changes and anchored monthly cycles.

func qLoc(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("time.LoadLocation(%q): %v", name, err)
	}
	return loc
}

// qAt parses an RFC 3339 instant (with its offset, so the tables say exactly which instant is
// meant, also in hours that a DST change repeats).
func qAt(t testing.TB, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("time.Parse(%q): %v", s, err)
	}
	return v
}

func qSpanEqual(a, b billing.Span) bool { return a.Start.Equal(b.Start) && a.End.Equal(b.End) }

func qFmtSpan(s billing.Span, loc *time.Location) string {
	if s.Start.IsZero() && s.End.IsZero() {
		return "{total}"
	}
	return "[" + s.Start.In(loc).Format(time.RFC3339) + ", " + s.End.In(loc).Format(time.RFC3339) + ")"
}

// TestQuotaPeriodBuckets checks the bucket of each rule period reported by QuotaStatus at fixed
// instants, in UTC, Europe/Berlin and America/Sao_Paulo.
func TestQuotaPeriodBuckets(t *testing.T) {
	type tc struct {
		at         string
		period     billing.Period
		start, end string // "" for total
	}
	zones := []struct {
		name  string
		cases []tc
	}{
		{"UTC", []tc{
			{"2026-03-11T12:34:56Z", billing.PeriodHour, "2026-03-11T12:00:00Z", "2026-03-11T13:00:00Z"},
			{"2026-03-11T12:59:59.999999999Z", billing.PeriodHour, "2026-03-11T12:00:00Z", "2026-03-11T13:00:00Z"},
			{"2026-03-11T13:00:00Z", billing.PeriodHour, "2026-03-11T13:00:00Z", "2026-03-11T14:00:00Z"},
			{"2026-03-11T23:59:59.999999999Z", billing.PeriodDay, "2026-03-11T00:00:00Z", "2026-03-12T00:00:00Z"},
			{"2026-03-12T00:00:00Z", billing.PeriodDay, "2026-03-12T00:00:00Z", "2026-03-13T00:00:00Z"},
			{"2026-03-11T12:00:00Z", billing.PeriodTotal, "", ""},
			// Month ends: Jan 31, Feb 28 of a common year, Feb 28 and 29 of a leap year, Dec 31.
			{"2026-01-31T12:00:00Z", billing.PeriodDay, "2026-01-31T00:00:00Z", "2026-02-01T00:00:00Z"},
			{"2026-01-31T23:59:59.999999999Z", billing.PeriodMonth, "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z"},
			{"2026-02-01T00:00:00Z", billing.PeriodMonth, "2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z"},
			{"2027-02-28T23:00:00Z", billing.PeriodDay, "2027-02-28T00:00:00Z", "2027-03-01T00:00:00Z"},
			{"2027-02-28T23:59:59.999999999Z", billing.PeriodMonth, "2027-02-01T00:00:00Z", "2027-03-01T00:00:00Z"},
			{"2027-03-01T00:00:00Z", billing.PeriodMonth, "2027-03-01T00:00:00Z", "2027-04-01T00:00:00Z"},
			{"2028-02-28T23:59:59Z", billing.PeriodDay, "2028-02-28T00:00:00Z", "2028-02-29T00:00:00Z"},
			{"2028-02-28T23:59:59Z", billing.PeriodMonth, "2028-02-01T00:00:00Z", "2028-03-01T00:00:00Z"},
			{"2028-02-29T00:00:00Z", billing.PeriodDay, "2028-02-29T00:00:00Z", "2028-03-01T00:00:00Z"},
			{"2028-02-29T23:59:59.999999999Z", billing.PeriodMonth, "2028-02-01T00:00:00Z", "2028-03-01T00:00:00Z"},
			{"2026-12-31T23:59:59Z", billing.PeriodMonth, "2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z"},
			{"2026-12-31T23:59:59Z", billing.PeriodHour, "2026-12-31T23:00:00Z", "2027-01-01T00:00:00Z"},
		}},
		{"Europe/Berlin", []tc{
			// 2026-03-29: clocks go from 02:00 CET to 03:00 CEST; the day has 23 hours.
			{"2026-03-29T12:00:00+02:00", billing.PeriodDay, "2026-03-29T00:00:00+01:00", "2026-03-30T00:00:00+02:00"},
			{"2026-03-29T01:59:59+01:00", billing.PeriodHour, "2026-03-29T01:00:00+01:00", "2026-03-29T03:00:00+02:00"},
			{"2026-03-29T03:00:00+02:00", billing.PeriodHour, "2026-03-29T03:00:00+02:00", "2026-03-29T04:00:00+02:00"},
			{"2026-03-28T23:30:00+01:00", billing.PeriodDay, "2026-03-28T00:00:00+01:00", "2026-03-29T00:00:00+01:00"},
			{"2026-03-31T23:59:59+02:00", billing.PeriodMonth, "2026-03-01T00:00:00+01:00", "2026-04-01T00:00:00+02:00"},
			// 2026-10-25: clocks go from 03:00 CEST back to 02:00 CET; 02:xx happens twice and
			// the day has 25 hours.
			{"2026-10-25T12:00:00+01:00", billing.PeriodDay, "2026-10-25T00:00:00+02:00", "2026-10-26T00:00:00+01:00"},
			{"2026-10-25T02:30:00+02:00", billing.PeriodHour, "2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00+01:00"},
			{"2026-10-25T02:30:00+01:00", billing.PeriodHour, "2026-10-25T02:00:00+01:00", "2026-10-25T03:00:00+01:00"},
			{"2026-10-25T23:59:59+01:00", billing.PeriodDay, "2026-10-25T00:00:00+02:00", "2026-10-26T00:00:00+01:00"},
			{"2026-10-31T23:59:59+01:00", billing.PeriodMonth, "2026-10-01T00:00:00+02:00", "2026-11-01T00:00:00+01:00"},
			{"2026-03-01T00:00:00+01:00", billing.PeriodMonth, "2026-03-01T00:00:00+01:00", "2026-04-01T00:00:00+02:00"},
			{"2026-02-28T23:30:00+01:00", billing.PeriodMonth, "2026-02-01T00:00:00+01:00", "2026-03-01T00:00:00+01:00"},
		}},
		{"America/Sao_Paulo", []tc{
			// Brazil has had no DST since 2019. On 2018-11-04 clocks went from 00:00 -03 to
			// 01:00 -02: that day starts at 01:00 and has 23 hours; Nov 3 has 24.
			{"2018-11-04T12:00:00-02:00", billing.PeriodDay, "2018-11-04T01:00:00-02:00", "2018-11-05T00:00:00-02:00"},
			{"2018-11-04T01:00:00-02:00", billing.PeriodDay, "2018-11-04T01:00:00-02:00", "2018-11-05T00:00:00-02:00"},
			{"2018-11-03T23:30:00-03:00", billing.PeriodDay, "2018-11-03T00:00:00-03:00", "2018-11-04T01:00:00-02:00"},
			{"2018-11-03T23:59:59.999999999-03:00", billing.PeriodDay, "2018-11-03T00:00:00-03:00", "2018-11-04T01:00:00-02:00"},
			{"2018-11-03T23:30:00-03:00", billing.PeriodHour, "2018-11-03T23:00:00-03:00", "2018-11-04T01:00:00-02:00"},
			{"2018-11-04T01:30:00-02:00", billing.PeriodHour, "2018-11-04T01:00:00-02:00", "2018-11-04T02:00:00-02:00"},
			{"2018-11-15T12:00:00-02:00", billing.PeriodMonth, "2018-11-01T00:00:00-03:00", "2018-12-01T00:00:00-02:00"},
			// On 2019-02-17 clocks went from 00:00 -02 back to 23:00 -03: Feb 16 has 25 hours.
			{"2019-02-16T23:30:00-02:00", billing.PeriodDay, "2019-02-16T00:00:00-02:00", "2019-02-17T00:00:00-03:00"},
			{"2019-02-16T23:30:00-03:00", billing.PeriodDay, "2019-02-16T00:00:00-02:00", "2019-02-17T00:00:00-03:00"},
			{"2019-02-17T00:00:00-03:00", billing.PeriodDay, "2019-02-17T00:00:00-03:00", "2019-02-18T00:00:00-03:00"},
			{"2019-02-28T23:59:59-03:00", billing.PeriodMonth, "2019-02-01T00:00:00-02:00", "2019-03-01T00:00:00-03:00"},
		}},
	}
	for _, z := range zones {
		t.Run(z.name, func(t *testing.T) {
			loc := qLoc(t, z.name)
			clock := qNewClock(qAt(t, z.cases[0].at))
			m := qNewMeter(t, billing.Config{Now: clock.Now, Location: loc})
			for _, p := range billing.Periods {
				qSetQuota(t, m, billing.QuotaRule{Tenant: "acme", Resource: "requests", Period: p, Limit: 1000, Hard: true})
			}
			for _, c := range z.cases {
				clock.Set(qAt(t, c.at))
				var want billing.Span
				if c.start != "" {
					want = billing.Span{Start: qAt(t, c.start), End: qAt(t, c.end)}
				}
				got := qState(t, m, "acme", "requests", c.period).Bucket
				if !qSpanEqual(got, want) {
					t.Errorf("at %s, %s bucket = %s, want %s", c.at, c.period, qFmtSpan(got, loc), qFmtSpan(want, loc))
				}
				// The same bucket comes from Period.Start and Period.Next.
				if c.period != billing.PeriodTotal {
					start := c.period.Start(qAt(t, c.at), loc)
					if next := c.period.Next(start, loc); !start.Equal(want.Start) || !next.Equal(want.End) {
						t.Errorf("at %s, Period(%s).Start/Next = %s, want %s", c.at, c.period,
							qFmtSpan(billing.Span{Start: start, End: next}, loc), qFmtSpan(want, loc))
					}
				}
			}
		})
	}
}

// TestQuotaPeriodBucketsTile walks instants every 7.5 minutes through DST changes and checks
// that each instant's day, month and hour bucket contains it, starts on its local date (day and
// month), and that consecutive buckets tile time without gaps or overlaps.
func TestQuotaPeriodBucketsTile(t *testing.T) {
	walks := []struct {
		zone     string
		from, to string
	}{
		{"America/Sao_Paulo", "2018-10-30T00:00:00Z", "2018-11-08T00:00:00Z"},
		{"America/Sao_Paulo", "2019-02-14T00:00:00Z", "2019-02-20T00:00:00Z"},
		{"Europe/Berlin", "2026-03-27T00:00:00Z", "2026-04-02T00:00:00Z"},
		{"Europe/Berlin", "2026-10-23T00:00:00Z", "2026-11-02T00:00:00Z"},
	}
	for _, w := range walks {
		loc := qLoc(t, w.zone)
		end := qAt(t, w.to)
		for at := qAt(t, w.from); at.Before(end); at = at.Add(7*time.Minute + 30*time.Second) {
			for _, p := range []billing.Period{billing.PeriodHour, billing.PeriodDay, billing.PeriodMonth} {
				start := p.Start(at, loc)
				next := p.Next(start, loc)
				if at.Before(start) || !at.Before(next) {
					t.Fatalf("%s %s: the %s bucket of %s is %s, which does not contain it", w.zone, at.In(loc), p,
						at.In(loc), qFmtSpan(billing.Span{Start: start, End: next}, loc))
				}
				if p != billing.PeriodHour {
					ly, lm, ld := at.In(loc).Date()
					sy, sm, sd := start.In(loc).Date()
					if ly != sy || lm != sm || (p == billing.PeriodDay && ld != sd) {
						t.Fatalf("%s: the %s bucket of %s starts at %s, on another local date", w.zone, p, at.In(loc), start.In(loc))
					}
				}
				// The next bucket starts where this one ends.
				if again := p.Start(next, loc); !again.Equal(next) {
					t.Fatalf("%s: the %s bucket after %s starts at %s, not at %s", w.zone, p, at.In(loc), again.In(loc), next.In(loc))
				}
			}
		}
	}
}

// TestAnchorMonthCycles checks billing.AnchoredMonth, and that QuotaStatus reports the same
// cycle for a tenant anchored with SetAnchorDay.
func TestAnchorMonthCycles(t *testing.T) {
	cases := []struct {
		zone       string
		anchor     int
		at         string
		start, end string
	}{
		{"UTC", 15, "2026-03-14T23:59:59.999999999Z", "2026-02-15T00:00:00Z", "2026-03-15T00:00:00Z"},
		{"UTC", 15, "2026-03-15T00:00:00Z", "2026-03-15T00:00:00Z", "2026-04-15T00:00:00Z"},
		{"UTC", 15, "2026-01-10T08:00:00Z", "2025-12-15T00:00:00Z", "2026-01-15T00:00:00Z"},
		{"UTC", 15, "2026-12-20T08:00:00Z", "2026-12-15T00:00:00Z", "2027-01-15T00:00:00Z"},
		{"UTC", 1, "2026-03-11T12:00:00Z", "2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z"},
		// Anchor 31: Jan 31 -> Feb 28 -> Mar 31 -> Apr 30 -> May 31.
		{"UTC", 31, "2026-01-30T23:59:59Z", "2025-12-31T00:00:00Z", "2026-01-31T00:00:00Z"},
		{"UTC", 31, "2026-01-31T00:00:00Z", "2026-01-31T00:00:00Z", "2026-02-28T00:00:00Z"},
		{"UTC", 31, "2026-02-27T23:59:59.999999999Z", "2026-01-31T00:00:00Z", "2026-02-28T00:00:00Z"},
		{"UTC", 31, "2026-02-28T00:00:00Z", "2026-02-28T00:00:00Z", "2026-03-31T00:00:00Z"},
		{"UTC", 31, "2026-03-30T23:59:59Z", "2026-02-28T00:00:00Z", "2026-03-31T00:00:00Z"},
		{"UTC", 31, "2026-03-31T00:00:00Z", "2026-03-31T00:00:00Z", "2026-04-30T00:00:00Z"},
		{"UTC", 31, "2026-04-30T12:00:00Z", "2026-04-30T00:00:00Z", "2026-05-31T00:00:00Z"},
		{"UTC", 31, "2028-02-28T12:00:00Z", "2028-01-31T00:00:00Z", "2028-02-29T00:00:00Z"},
		{"UTC", 31, "2028-02-29T00:00:00Z", "2028-02-29T00:00:00Z", "2028-03-31T00:00:00Z"},
		// Anchors 29 and 30 in common and leap Februaries.
		{"UTC", 30, "2027-02-27T12:00:00Z", "2027-01-30T00:00:00Z", "2027-02-28T00:00:00Z"},
		{"UTC", 30, "2027-02-28T00:00:00Z", "2027-02-28T00:00:00Z", "2027-03-30T00:00:00Z"},
		{"UTC", 30, "2028-02-28T23:59:59Z", "2028-01-30T00:00:00Z", "2028-02-29T00:00:00Z"},
		{"UTC", 30, "2028-02-29T00:00:00Z", "2028-02-29T00:00:00Z", "2028-03-30T00:00:00Z"},
		{"UTC", 29, "2027-01-29T00:00:00Z", "2027-01-29T00:00:00Z", "2027-02-28T00:00:00Z"},
		{"UTC", 29, "2027-02-28T00:00:00Z", "2027-02-28T00:00:00Z", "2027-03-29T00:00:00Z"},
		{"UTC", 29, "2028-02-28T23:59:59Z", "2028-01-29T00:00:00Z", "2028-02-29T00:00:00Z"},
		{"UTC", 29, "2028-02-29T00:00:00Z", "2028-02-29T00:00:00Z", "2028-03-29T00:00:00Z"},
		{"UTC", 28, "2027-02-28T00:00:00Z", "2027-02-28T00:00:00Z", "2027-03-28T00:00:00Z"},
		// Anchored cycles in zones with DST.
		{"Europe/Berlin", 29, "2026-03-29T12:00:00+02:00", "2026-03-29T00:00:00+01:00", "2026-04-29T00:00:00+02:00"},
		{"Europe/Berlin", 25, "2026-10-25T01:00:00+02:00", "2026-10-25T00:00:00+02:00", "2026-11-25T00:00:00+01:00"},
		{"Europe/Berlin", 25, "2026-10-24T23:59:59+02:00", "2026-09-25T00:00:00+02:00", "2026-10-25T00:00:00+02:00"},
		{"America/Sao_Paulo", 4, "2018-11-10T12:00:00-02:00", "2018-11-04T01:00:00-02:00", "2018-12-04T00:00:00-02:00"},
		{"America/Sao_Paulo", 4, "2018-11-03T23:30:00-03:00", "2018-10-04T00:00:00-03:00", "2018-11-04T01:00:00-02:00"},
		{"America/Sao_Paulo", 4, "2018-11-04T01:00:00-02:00", "2018-11-04T01:00:00-02:00", "2018-12-04T00:00:00-02:00"},
	}
	meters := map[string]*billing.Meter{}
	clocks := map[string]*qClock{}
	ctx := context.Background()
	for _, c := range cases {
		loc := qLoc(t, c.zone)
		at := qAt(t, c.at)
		want := billing.Span{Start: qAt(t, c.start), End: qAt(t, c.end)}
		if got := billing.AnchoredMonth(at, c.anchor, loc); !qSpanEqual(got, want) {
			t.Errorf("AnchoredMonth(%s, %d, %s) = %s, want %s", c.at, c.anchor, c.zone, qFmtSpan(got, loc), qFmtSpan(want, loc))
		}
		m := meters[c.zone]
		if m == nil {
			clocks[c.zone] = qNewClock(at)
			m = qNewMeter(t, billing.Config{Now: clocks[c.zone].Now, Location: loc})
			meters[c.zone] = m
		}
		clocks[c.zone].Set(at)
		if err := m.SetAnchorDay(ctx, "acme", c.anchor); err != nil {
			t.Fatal(err)
		}
		qSetQuota(t, m, billing.QuotaRule{Tenant: "acme", Resource: "requests", Period: billing.PeriodMonth, Limit: 10, Hard: true})
		if got := qState(t, m, "acme", "requests", billing.PeriodMonth).Bucket; !qSpanEqual(got, want) {
			t.Errorf("QuotaStatus at %s with anchor %d in %s: bucket %s, want %s", c.at, c.anchor, c.zone, qFmtSpan(got, loc), qFmtSpan(want, loc))
		}
	}
	// Anchor 0 returns to calendar months.
	m, clock := meters["UTC"], clocks["UTC"]
	clock.Set(qT0)
	if err := m.SetAnchorDay(ctx, "acme", 0); err != nil {
		t.Fatal(err)
	}
	want := billing.Span{Start: qAt(t, "2026-03-01T00:00:00Z"), End: qAt(t, "2026-04-01T00:00:00Z")}
	if got := qState(t, m, "acme", "requests", billing.PeriodMonth).Bucket; !qSpanEqual(got, want) {
		t.Errorf("anchor 0: bucket %s, want the calendar month %s", qFmtSpan(got, time.UTC), qFmtSpan(want, time.UTC))
	}
}

// TestAnchorNoEarlyOrLateReset: usage tracked at the very start of a cycle still counts one
// nanosecond before the reset, and not at all at the reset; the refusal's ResetAt is the reset.
func TestAnchorNoEarlyOrLateReset(t *testing.T) {
	cases := []struct {
		name, zone   string
		period       billing.Period
		anchor       int
		first, reset string
	}{
		{"hour", "UTC", billing.PeriodHour, 0, "2026-03-11T12:00:00Z", "2026-03-11T13:00:00Z"},
		{"day", "UTC", billing.PeriodDay, 0, "2026-03-11T00:00:00Z", "2026-03-12T00:00:00Z"},
		{"month ending Jan 31", "UTC", billing.PeriodMonth, 0, "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z"},
		{"month leap Feb", "UTC", billing.PeriodMonth, 0, "2028-02-01T00:00:00Z", "2028-03-01T00:00:00Z"},
		{"month common Feb", "UTC", billing.PeriodMonth, 0, "2027-02-01T00:00:00Z", "2027-03-01T00:00:00Z"},
		{"anchor 15", "UTC", billing.PeriodMonth, 15, "2026-02-15T00:00:00Z", "2026-03-15T00:00:00Z"},
		{"anchor 31 into Feb", "UTC", billing.PeriodMonth, 31, "2026-01-31T00:00:00Z", "2026-02-28T00:00:00Z"},
		{"anchor 31 back to the 31st", "UTC", billing.PeriodMonth, 31, "2026-02-28T00:00:00Z", "2026-03-31T00:00:00Z"},
		{"anchor 30 leap Feb", "UTC", billing.PeriodMonth, 30, "2028-02-29T00:00:00Z", "2028-03-30T00:00:00Z"},
		{"anchor 29 common Feb", "UTC", billing.PeriodMonth, 29, "2027-01-29T00:00:00Z", "2027-02-28T00:00:00Z"},
		{"Berlin 23h day", "Europe/Berlin", billing.PeriodDay, 0, "2026-03-29T00:00:00+01:00", "2026-03-30T00:00:00+02:00"},
		{"Berlin 25h day", "Europe/Berlin", billing.PeriodDay, 0, "2026-10-25T00:00:00+02:00", "2026-10-26T00:00:00+01:00"},
		{"Berlin repeated hour", "Europe/Berlin", billing.PeriodHour, 0, "2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00+01:00"},
		{"Berlin month", "Europe/Berlin", billing.PeriodMonth, 0, "2026-03-01T00:00:00+01:00", "2026-04-01T00:00:00+02:00"},
		{"Sao Paulo day before the gap", "America/Sao_Paulo", billing.PeriodDay, 0, "2018-11-03T00:00:00-03:00", "2018-11-04T01:00:00-02:00"},
		{"Sao Paulo day after the gap", "America/Sao_Paulo", billing.PeriodDay, 0, "2018-11-04T01:00:00-02:00", "2018-11-05T00:00:00-02:00"},
		{"Sao Paulo 25h day", "America/Sao_Paulo", billing.PeriodDay, 0, "2019-02-16T00:00:00-02:00", "2019-02-17T00:00:00-03:00"},
		{"Sao Paulo anchor 4", "America/Sao_Paulo", billing.PeriodMonth, 4, "2018-10-04T00:00:00-03:00", "2018-11-04T01:00:00-02:00"},
	}
	ctx := context.Background()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			loc := qLoc(t, c.zone)
			first, reset := qAt(t, c.first), qAt(t, c.reset)
			clock := qNewClock(first)
			st := qOpenStore(t, ":memory:")
			m := qNewMeter(t, billing.Config{Store: st, Now: clock.Now, Location: loc})
			rule := billing.QuotaRule{Tenant: "acme", Resource: "requests", Period: c.period, Limit: 10, Hard: true}
			qSetQuota(t, m, rule)
			if c.anchor != 0 {
				if err := m.SetAnchorDay(ctx, "acme", c.anchor); err != nil {
					t.Fatal(err)
				}
			}
			if s := qState(t, m, "acme", "requests", c.period); !s.Bucket.Start.Equal(first) {
				t.Fatalf("test setup: the bucket at %s starts at %s", c.first, s.Bucket.Start.In(loc))
			}
			// The first instant of the cycle uses it all up.
			r, err := m.Reserve(ctx, "acme", "requests", 10)
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Commit(ctx, 10); err != nil {
				t.Fatal(err)
			}
			// Not early: the last nanosecond of the cycle still counts it.
			clock.Set(reset.Add(-time.Nanosecond))
			s := qState(t, m, "acme", "requests", c.period)
			if s.Used != 10 || !s.Bucket.End.Equal(reset) {
				t.Errorf("one ns before the reset: used %d, bucket %s; want 10, ending at %s", s.Used, qFmtSpan(s.Bucket, loc), reset.In(loc))
			}
			_, err = m.Reserve(ctx, "acme", "requests", 1)
			var qe *billing.QuotaExceededError
			if !errors.As(err, &qe) {
				t.Errorf("Reserve one ns before the reset: %v, want a refusal", err)
			} else if !qe.ResetAt.Equal(reset) {
				t.Errorf("refusal ResetAt = %s, want %s", qe.ResetAt.In(loc), reset.In(loc))
			}
			// Not late: at the reset the previous cycle's usage is gone.
			clock.Set(reset)
			s = qState(t, m, "acme", "requests", c.period)
			if s.Used != 0 || !s.Bucket.Start.Equal(reset) {
				t.Errorf("at the reset: used %d, bucket %s; want 0, starting at %s", s.Used, qFmtSpan(s.Bucket, loc), reset.In(loc))
			}
			r, err = m.Reserve(ctx, "acme", "requests", 10)
			if err != nil {
				t.Fatalf("Reserve of a whole new cycle: %v", err)
			}
			if err := r.Commit(ctx, 10); err != nil {
				t.Fatal(err)
			}
			// A second Meter, which loads usage from the stored rollups, sees both cycles the same.
			clock2 := qNewClock(reset.Add(-time.Nanosecond))
			m2 := qNewMeter(t, billing.Config{Store: st, Now: clock2.Now, Location: loc})
			for _, at := range []time.Time{reset.Add(-time.Nanosecond), reset} {
				clock2.Set(at)
				if s := qState(t, m2, "acme", "requests", c.period); s.Used != 10 {
					t.Errorf("a new Meter at %s: used %d, want 10", at.In(loc), s.Used)
				}
			}
		})
	}
}
