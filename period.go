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
		return time.Date(y, m, d, 0, 0, 0, 0, loc)
	case PeriodMonth:
		y, m, _ := lt.Date()
		return time.Date(y, m, 1, 0, 0, 0, 0, loc)
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
		return time.Date(y, m, d+1, 0, 0, 0, 0, loc)
	case PeriodMonth:
		y, m, _ := ls.Date()
		return time.Date(y, m+1, 1, 0, 0, 0, 0, loc)
	}
	return time.Time{}
}

// Span is the half-open time interval [Start, End).
type Span struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

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
