package billing

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
)

// UsageQuery asks for usage sums. The zero value asks for every tenant's all-time usage of every
// resource.
type UsageQuery struct {
	// Tenant selects one tenant; empty means every tenant.
	Tenant string `json:"tenant,omitempty"`
	// Resource selects one resource; empty means every resource.
	Resource string `json:"resource,omitempty"`
	// From and To bound the query to [From, To); a zero bound is open. For an hour, day or month
	// Window, every bucket that starts before To and ends after From is returned whole. For
	// PeriodTotal with bounds, one row covers the span rounded outwards to whole hours; its Start
	// and End say exactly what was summed.
	From time.Time `json:"from,omitempty"`
	To   time.Time `json:"to,omitempty"`
	// Window is the bucket size of the rows: hour, day, month, or total (one row per group over
	// the whole range). Empty means PeriodTotal.
	Window Period `json:"window,omitempty"`
	// GroupBy splits rows by these attribute keys, such as "model". Events without a key are
	// grouped under "" for it.
	GroupBy []string `json:"group_by,omitempty"`
}

// UsageRow is the usage of one tenant and resource in one bucket, for one group.
type UsageRow struct {
	Tenant   string `json:"tenant"`
	Resource string `json:"resource"`
	// Start and End delimit the bucket; both are zero for all-time totals.
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// Group holds the value of every GroupBy key for this row; nil without GroupBy.
	Group map[string]string `json:"group,omitempty"`
	Sum   int64             `json:"sum"`   // sum of quantities
	Count int64             `json:"count"` // number of events
	Max   int64             `json:"max"`   // largest single quantity
}

// Usage answers q from the usage buckets (rollups), so its cost depends on the number of buckets
// and groups it returns, not on the number of events. Rows come sorted by tenant, resource,
// start and group; empty buckets are omitted. Errors in q match ErrInvalidQuery and name the
// field. Safe for concurrent use.
func (m *Meter) Usage(ctx context.Context, q UsageQuery) ([]UsageRow, error) {
	if err := m.checkQuery(&q); err != nil {
		return nil, err
	}
	loc := m.cfg.Location
	rq := RollupQuery{Tenant: q.Tenant, Resource: q.Resource, Period: q.Window}
	var span Span // the span summed by a bounded total
	if q.Window == PeriodTotal && (!q.From.IsZero() || !q.To.IsZero()) {
		span = Span{Start: q.From, End: q.To}
		if !span.Start.IsZero() {
			span.Start = PeriodHour.Start(span.Start, loc)
		}
		if !span.End.IsZero() {
			if end := PeriodHour.Start(span.End, loc); end.Before(span.End) {
				span.End = PeriodHour.Next(end, loc)
			}
		}
		rq.Period = finestAligned(span, loc)
		rq.From, rq.To = span.Start, span.End
	} else if q.Window != PeriodTotal {
		if !q.From.IsZero() {
			rq.From = q.Window.Start(q.From, loc)
		}
		rq.To = q.To
	}
	rollups, err := m.cfg.Store.QueryRollups(ctx, rq)
	if err != nil {
		return nil, err
	}
	return groupRollups(rollups, q, span, loc)
}

// finestAligned returns the coarsest period whose buckets tile span exactly.
func finestAligned(span Span, loc *time.Location) Period {
	for _, p := range []Period{PeriodMonth, PeriodDay} {
		if (span.Start.IsZero() || p.Start(span.Start, loc).Equal(span.Start)) &&
			(span.End.IsZero() || p.Start(span.End, loc).Equal(span.End)) {
			return p
		}
	}
	return PeriodHour
}

func (m *Meter) checkQuery(q *UsageQuery) error {
	if q.Window == "" {
		q.Window = PeriodTotal
	}
	if !q.Window.Valid() {
		return fieldErr(ErrInvalidQuery, "window", "must be one of hour, day, month, total (got %q)", q.Window)
	}
	if q.Tenant != "" {
		if r := checkText(q.Tenant); r != "" {
			return fieldErr(ErrInvalidQuery, "tenant", "%s", r)
		}
	}
	if q.Resource != "" {
		if r := checkName(q.Resource); r != "" {
			return fieldErr(ErrInvalidQuery, "resource", "%s", r)
		}
	}
	if !q.From.IsZero() && !q.To.IsZero() && !q.From.Before(q.To) {
		return fieldErr(ErrInvalidQuery, "to", "must be after from (from %s, to %s)",
			q.From.Format(time.RFC3339), q.To.Format(time.RFC3339))
	}
	seen := make(map[string]bool, len(q.GroupBy))
	for i, k := range q.GroupBy {
		field := fmt.Sprintf("group_by[%d]", i)
		if r := checkKey(k); r != "" {
			return fieldErr(ErrInvalidQuery, field, "%s", r)
		}
		if seen[k] {
			return fieldErr(ErrInvalidQuery, field, "%q is listed twice", k)
		}
		seen[k] = true
		if m.cfg.Dimensions != nil && !contains(m.cfg.Dimensions, k) {
			return fieldErr(ErrInvalidQuery, field, "%q is not one of Config.Dimensions %v", k, m.cfg.Dimensions)
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// groupRollups merges stored buckets into rows: one per tenant, resource, bucket (or the whole
// span for totals) and GroupBy values.
func groupRollups(rollups []Rollup, q UsageQuery, span Span, loc *time.Location) ([]UsageRow, error) {
	type key struct {
		tenant, resource, group string
		start                   int64
	}
	rows := make(map[key]*UsageRow)
	// Each stored group is decoded once: the values of q.GroupBy, and a key made of them.
	type grouping struct {
		values []string
		key    string
	}
	decoded := make(map[string]grouping)
	var out []*UsageRow
	for i := range rollups {
		r := &rollups[i]
		g, ok := decoded[r.Group]
		if !ok && len(q.GroupBy) > 0 {
			attrs, err := DecodeAttrs(r.Group)
			if err != nil {
				return nil, fmt.Errorf("billing: stored usage group %q is not valid: %w", r.Group, err)
			}
			g.values = make([]string, len(q.GroupBy))
			var sb strings.Builder
			for j, k := range q.GroupBy {
				g.values[j] = attrs[k]
				b, _ := json.Marshal(attrs[k])
				sb.Write(b)
				sb.WriteByte(',')
			}
			g.key = sb.String()
			decoded[r.Group] = g
		}
		values := g.values
		k := key{tenant: r.Tenant, resource: r.Resource, group: g.key}
		if q.Window != PeriodTotal {
			k.start = r.Start.Unix()
		}
		row := rows[k]
		if row == nil {
			row = &UsageRow{Tenant: r.Tenant, Resource: r.Resource}
			switch {
			case q.Window != PeriodTotal:
				row.Start = r.Start.In(loc)
				row.End = q.Window.Next(r.Start, loc)
			case !span.Start.IsZero() || !span.End.IsZero():
				row.Start, row.End = span.Start, span.End
			}
			if len(q.GroupBy) > 0 {
				row.Group = make(map[string]string, len(q.GroupBy))
				for j, k := range q.GroupBy {
					row.Group[k] = values[j]
				}
			}
			rows[k] = row
			out = append(out, row)
		}
		row.Sum += r.Sum
		row.Count += r.Count
		if r.Max > row.Max {
			row.Max = r.Max
		}
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
	result := make([]UsageRow, len(out))
	for i, r := range out {
		result[i] = *r
	}
	return result, nil
}

// RebuildRollups recomputes the usage buckets of span (widened to whole calendar months in
// Config.Location) from the stored events, for tenant or, when tenant is empty, every tenant.
// Rollups are kept exact on every write, so a rebuild normally changes nothing; use it after
// changing Config.Location or Config.Dimensions, or after repairing events by hand. Safe to run
// while events are tracked.
func (m *Meter) RebuildRollups(ctx context.Context, tenant string, span Span) error {
	if span.Start.IsZero() || span.End.IsZero() {
		return fieldErr(ErrInvalidQuery, "span", "start and end are required")
	}
	if !span.Start.Before(span.End) {
		return fieldErr(ErrInvalidQuery, "span.end", "must be after span.start (start %s, end %s)",
			span.Start.Format(time.RFC3339), span.End.Format(time.RFC3339))
	}
	if tenant != "" {
		if r := checkText(tenant); r != "" {
			return fieldErr(ErrInvalidQuery, "tenant", "%s", r)
		}
	}
	return m.cfg.Store.RebuildRollups(ctx, m.spec, tenant, span)
}
