package main

import (
	"time"
)

// timeLayouts are the forms a time flag accepts; the ones without a zone are read in --location.
var timeLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02", "2006-01"}

// parseTime parses a time flag: RFC 3339 (2026-11-01T00:00:00Z), a local date-time
// (2026-11-01T08:00), a date (2026-11-01) or a month (2026-11), the last three in loc.
func parseTime(flagName, s string, loc *time.Location) (time.Time, error) {
	if s == "" {
		return time.Time{}, usagef("--%s is required: give a date (2026-11-01), a month (2026-11) or an RFC 3339 time", flagName)
	}
	for _, l := range timeLayouts {
		if t, err := time.ParseInLocation(l, s, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, usagef("--%s %q is not a time: give a date (2026-11-01), a month (2026-11) or an RFC 3339 time (2026-11-01T00:00:00Z)", flagName, s)
}

// parseSpan parses --from and --to (exclusive) and checks their order.
func parseSpan(from, to string, loc *time.Location) (time.Time, time.Time, error) {
	f, err := parseTime("from", from, loc)
	if err != nil {
		return f, f, err
	}
	t, err := parseTime("to", to, loc)
	if err != nil {
		return f, t, err
	}
	if !f.Before(t) {
		return f, t, usagef("--to (%s) must be after --from (%s); --to is exclusive", t.Format(time.RFC3339), f.Format(time.RFC3339))
	}
	return f, t, nil
}

// parseMonth parses --period YYYY-MM into the first instant of that month in loc.
func parseMonth(s string, loc *time.Location) (time.Time, error) {
	if s == "" {
		return time.Time{}, usagef("--period is required: give a month as YYYY-MM, e.g. --period 2026-11")
	}
	t, err := time.ParseInLocation("2006-01", s, loc)
	if err != nil {
		return time.Time{}, usagef("--period %q is not a month: give YYYY-MM, e.g. --period 2026-11", s)
	}
	return t, nil
}
