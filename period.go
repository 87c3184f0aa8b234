package billing

import (
	"fmt"
	"time"
)

// Period is the size of a usage bucket and of a quota's reset cycle. Calendar periods (day,
// month) follow a time zone: Config.Location for the Meter.
type Period string

// The periods. Hours are clock hours in the location; days run from local midnight to local
// midnight (23 or 25 hours across a daylight-saving change); months are calendar months; total
// is all time.
const (
	PeriodHour  Period = "hour"
	PeriodDay   Period = "day"
	PeriodMonth Period = "month"
	PeriodTotal Period = "total"
)

// Periods lists every Period, finest first.
var Periods = []Period{PeriodHour, PeriodDay, PeriodMonth, PeriodTotal}

// Valid reports whether p is one of the four periods.
func (p Period) Valid() bool {
	switch p {
	case PeriodHour, PeriodDay, PeriodMonth, PeriodTotal:
		return true
	}
	return false
}

// ParsePeriod parses "hour", "day", "month" or "total".
func ParsePeriod(s string) (Period, error) {
	p := Period(s)
	if !p.Valid() {
		return "", fmt.Errorf("billing: period %q: must be one of hour, day, month, total", s)
	}
	return p, nil
}

// Start returns the start of the bucket of period p that contains t, in loc (nil means UTC). The
// total bucket starts at the zero time.
func (p Period) Start(t time.Time, loc *time.Location) time.Time {
	if loc == nil {
		loc = time.UTC
	}
	lt := t.In(loc)
	switch p {
	case PeriodHour:
		// Subtract the local minutes and seconds rather than rebuilding the wall clock with
		// time.Date: in the hour that repeats when clocks fall back, both occurrences keep
		// their own absolute start.
		return lt.Add(-time.Duration(lt.Minute())*time.Minute - time.Duration(lt.Second())*time.Second -
			time.Duration(lt.Nanosecond()))
	case PeriodDay:
		y, m, d := lt.Date()
		return midnight(y, m, d, loc)
	case PeriodMonth:
		y, m, _ := lt.Date()
		return midnight(y, m, 1, loc)
	}
	return time.Time{}
}

// Next returns the start of the bucket after the one that starts at start. For PeriodTotal it
// returns the zero time (the total bucket never ends).
func (p Period) Next(start time.Time, loc *time.Location) time.Time {
	if loc == nil {
		loc = time.UTC
	}
	ls := start.In(loc)
	switch p {
	case PeriodHour:
		return start.Add(time.Hour)
	case PeriodDay:
		y, m, d := ls.Date()
		return midnight(y, m, d+1, loc)
	case PeriodMonth:
		y, m, _ := ls.Date()
		return midnight(y, m+1, 1, loc)
	}
	return time.Time{}
}

// midnight returns the first instant of the date y-m-d (normalized like time.Date) in loc. Where
// clocks jump over midnight (America/Santiago, America/Havana, Atlantic/Azores in spring),
// 00:00 does not exist and time.Date may pick an instant of the previous day; the day then
// starts when the previous day's zone offset ends.
func midnight(y int, m time.Month, d int, loc *time.Location) time.Time {
	t := time.Date(y, m, d, 0, 0, 0, 0, loc)
	// On an ordinary day t is 00:00 of the asked date, and on a day whose midnight was skipped
	// it may be 01:00 of it. But time.Date may also answer with an instant of the day before (as
	// for Pacific/Apia, whose 2011-12-30 was skipped whole): the day then starts where that zone
	// period ends.
	want := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	ty, tm, td := t.Date()
	if time.Date(ty, tm, td, 0, 0, 0, 0, time.UTC).Before(want) {
		if _, end := t.ZoneBounds(); !end.IsZero() && end.After(t) {
			return end.In(loc)
		}
	}
	return t
}

// Span is the half-open time interval [Start, End).
type Span struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// Equal reports whether two spans have equal bounds.
func (s Span) Equal(o Span) bool { return s.Start.Equal(o.Start) && s.End.Equal(o.End) }

// Contains reports whether t is in [Start, End).
func (s Span) Contains(t time.Time) bool { return !t.Before(s.Start) && t.Before(s.End) }

// String formats the span as RFC 3339 "start/end".
func (s Span) String() string {
	return s.Start.Format(time.RFC3339) + "/" + s.End.Format(time.RFC3339)
}

// MonthOf returns the calendar month in loc (nil means UTC) that contains t.
func MonthOf(t time.Time, loc *time.Location) Span {
	start := PeriodMonth.Start(t, loc)
	return Span{Start: start, End: PeriodMonth.Next(start, loc)}
}
