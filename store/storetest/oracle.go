package storetest

import (
	"maps"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/meterplane/billing"
)

// oracle is the brute-force model the suite compares stores with: the list of distinct events a
// store must hold, and answers computed straight from them. Its calendar arithmetic is its own
// (time.Date and Time.In, stepping by minutes), so it never relies on billing.Period.
type oracle struct {
	loc    *time.Location
	events []billing.Event
	index  map[eventKey]int
	cache  map[bucketKey]bucket
}

type eventKey struct{ tenant, id string }

type bucketKey struct {
	window billing.Period
	unix   int64 // nanoseconds
}

type bucket struct{ start, end time.Time }

func newOracle(loc *time.Location) *oracle {
	return &oracle{loc: loc, index: make(map[eventKey]int), cache: make(map[bucketKey]bucket)}
}

// add records e as a store must, and returns what the store must report for it. An empty ID
// stands for an ID the Meter generates: always new.
func (o *oracle) add(e billing.Event) billing.AppendStatus {
	if e.ID != "" {
		k := eventKey{e.Tenant, e.ID}
		if i, ok := o.index[k]; ok {
			if sameContent(o.events[i], e) {
				return billing.AppendDuplicate
			}
			return billing.AppendConflict
		}
		o.index[k] = len(o.events)
	}
	e.Attrs = maps.Clone(e.Attrs)
	o.events = append(o.events, e)
	return billing.AppendInserted
}

// addAll adds events in order and returns their statuses.
func (o *oracle) addAll(events []billing.Event) []billing.AppendStatus {
	out := make([]billing.AppendStatus, len(events))
	for i, e := range events {
		out[i] = o.add(e)
	}
	return out
}

// sameContent reports whether a and b have the same resource, quantity and attributes: what
// makes a second event with the same (tenant, id) a harmless duplicate. Time is not compared:
// a retry may carry a later time.
func sameContent(a, b billing.Event) bool {
	return a.Resource == b.Resource && a.Quantity == b.Quantity && maps.Equal(a.Attrs, b.Attrs)
}

// hourStart returns the latest instant not after t at which the wall clock in loc shows a whole
// hour. Offsets of the zones used are whole minutes, so stepping back by minutes finds it.
func hourStart(t time.Time, loc *time.Location) time.Time {
	b := t.Truncate(time.Minute)
	for b.In(loc).Minute() != 0 {
		b = b.Add(-time.Minute)
	}
	return b
}

// hourEnd returns the first instant after start at which the wall clock shows a whole hour.
func hourEnd(start time.Time, loc *time.Location) time.Time {
	b := start.Add(time.Minute)
	for b.In(loc).Minute() != 0 {
		b = b.Add(time.Minute)
	}
	return b
}

// dayStart returns the first instant of the local date y-m-d (normalized like time.Date) in loc.
// time.Date alone may miss it where clocks skip or repeat midnight, so the candidate is moved by
// minutes until the minute before it belongs to another date and it belongs to this one.
func dayStart(y int, m time.Month, d int, loc *time.Location) time.Time {
	wy, wm, wd := time.Date(y, m, d, 12, 0, 0, 0, time.UTC).Date()
	on := func(t time.Time) bool {
		ty, tm, td := t.In(loc).Date()
		return ty == wy && tm == wm && td == wd
	}
	t := time.Date(y, m, d, 0, 0, 0, 0, loc)
	for i := 0; !on(t); i++ {
		if i > 24*60 {
			panic("storetest: cannot find the start of " + time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Format(time.DateOnly))
		}
		t = t.Add(time.Minute)
	}
	for on(t.Add(-time.Minute)) {
		t = t.Add(-time.Minute)
	}
	return t
}

// bucket returns the bucket of window w that contains t.
func (o *oracle) bucket(w billing.Period, t time.Time) bucket {
	k := bucketKey{w, t.UnixNano()}
	if b, ok := o.cache[k]; ok {
		return b
	}
	var b bucket
	lt := t.In(o.loc)
	y, m, d := lt.Date()
	switch w {
	case billing.PeriodHour:
		b.start = hourStart(t, o.loc)
		b.end = hourEnd(b.start, o.loc)
	case billing.PeriodDay:
		b.start, b.end = dayStart(y, m, d, o.loc), dayStart(y, m, d+1, o.loc)
	case billing.PeriodMonth:
		b.start, b.end = dayStart(y, m, 1, o.loc), dayStart(y, m+1, 1, o.loc)
	default:
		panic("storetest: no bucket for window " + string(w))
	}
	if t.Before(b.start) || !t.Before(b.end) {
		panic("storetest: oracle bucket does not contain its time")
	}
	o.cache[k] = b
	return b
}

// totalSpan is the span a bounded PeriodTotal query sums: [From, To) rounded outwards to whole
// hours, with zero bounds left open.
func (o *oracle) totalSpan(from, to time.Time) (start, end time.Time) {
	if !from.IsZero() {
		start = hourStart(from, o.loc)
	}
	if !to.IsZero() {
		end = to
		if s := hourStart(to, o.loc); !s.Equal(to) {
			end = hourEnd(s, o.loc)
		}
	}
	return start, end
}

// usage answers q from the raw events, as UsageQuery documents it.
func (o *oracle) usage(q billing.UsageQuery) []billing.UsageRow {
	w := q.Window
	if w == "" {
		w = billing.PeriodTotal
	}
	var spanStart, spanEnd time.Time
	if w == billing.PeriodTotal {
		spanStart, spanEnd = o.totalSpan(q.From, q.To)
	}
	type key struct {
		tenant, resource, group string
		start                   int64
	}
	rows := map[key]*billing.UsageRow{}
	for _, e := range o.events {
		if q.Tenant != "" && e.Tenant != q.Tenant || q.Resource != "" && e.Resource != q.Resource {
			continue
		}
		row := billing.UsageRow{Tenant: e.Tenant, Resource: e.Resource}
		if w == billing.PeriodTotal {
			if !spanStart.IsZero() && e.Time.Before(spanStart) || !spanEnd.IsZero() && !e.Time.Before(spanEnd) {
				continue
			}
			row.Start, row.End = spanStart, spanEnd
		} else {
			b := o.bucket(w, e.Time)
			if !q.To.IsZero() && !b.start.Before(q.To) || !q.From.IsZero() && !b.end.After(q.From) {
				continue
			}
			row.Start, row.End = b.start, b.end
		}
		var gk strings.Builder
		if len(q.GroupBy) > 0 {
			row.Group = make(map[string]string, len(q.GroupBy))
			for _, k := range q.GroupBy {
				row.Group[k] = e.Attrs[k]
				gk.WriteString(e.Attrs[k])
				gk.WriteByte(0)
			}
		}
		k := key{e.Tenant, e.Resource, gk.String(), row.Start.UnixNano()}
		r := rows[k]
		if r == nil {
			r = &row
			rows[k] = r
		}
		r.Sum += e.Quantity
		r.Count++
		r.Max = max(r.Max, e.Quantity)
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
	return out
}

// bucketRow is a stored rollup with its group decoded, so that stores may spell the canonical
// JSON of a group in any equivalent way.
type bucketRow struct {
	Tenant   string
	Resource string
	Period   billing.Period
	Start    time.Time
	Group    map[string]string
	Sum      int64
	Count    int64
	Max      int64
}

// rollups returns the buckets a store must hold for the oracle's events under spec (whose
// Location must be the oracle's).
func (o *oracle) rollups(spec billing.RollupSpec) []bucketRow {
	type key struct {
		tenant, resource, group string
		period                  billing.Period
		start                   int64
	}
	rows := map[key]*bucketRow{}
	for _, e := range o.events {
		group := map[string]string{}
		for k, v := range e.Attrs {
			if spec.Dimensions == nil || slices.Contains(spec.Dimensions, k) {
				group[k] = v
			}
		}
		for _, p := range billing.Periods {
			var start time.Time
			if p != billing.PeriodTotal {
				start = o.bucket(p, e.Time).start
			}
			k := key{e.Tenant, e.Resource, billing.EncodeAttrs(group), p, start.UnixNano()}
			r := rows[k]
			if r == nil {
				r = &bucketRow{Tenant: e.Tenant, Resource: e.Resource, Period: p, Start: start, Group: group}
				rows[k] = r
			}
			r.Sum += e.Quantity
			r.Count++
			r.Max = max(r.Max, e.Quantity)
		}
	}
	out := make([]bucketRow, 0, len(rows))
	for _, r := range rows {
		out = append(out, *r)
	}
	sortBuckets(out)
	return out
}

// decodeRollups turns stored rollups into sorted bucketRows.
func decodeRollups(t *testing.T, rollups []billing.Rollup) []bucketRow {
	t.Helper()
	out := make([]bucketRow, 0, len(rollups))
	for _, r := range rollups {
		g, err := billing.DecodeAttrs(r.Group)
		if err != nil {
			t.Fatalf("stored rollup group %q does not decode: %v", r.Group, err)
		}
		if g == nil {
			g = map[string]string{}
		}
		out = append(out, bucketRow{Tenant: r.Tenant, Resource: r.Resource, Period: r.Period,
			Start: r.Start, Group: g, Sum: r.Sum, Count: r.Count, Max: r.Max})
	}
	sortBuckets(out)
	return out
}

func sortBuckets(rows []bucketRow) {
	sort.Slice(rows, func(i, j int) bool {
		a, b := &rows[i], &rows[j]
		if a.Tenant != b.Tenant {
			return a.Tenant < b.Tenant
		}
		if a.Resource != b.Resource {
			return a.Resource < b.Resource
		}
		if a.Period != b.Period {
			return a.Period < b.Period
		}
		if !a.Start.Equal(b.Start) {
			return a.Start.Before(b.Start)
		}
		return billing.EncodeAttrs(a.Group) < billing.EncodeAttrs(b.Group)
	})
}

// filterBuckets keeps the rows for which keep is true.
func filterBuckets(rows []bucketRow, keep func(*bucketRow) bool) []bucketRow {
	var out []bucketRow
	for i := range rows {
		if keep(&rows[i]) {
			out = append(out, rows[i])
		}
	}
	return out
}
