package sqlite

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/meterplane/billing"
)

// QueryRollups implements billing.EventStore. It reads through the reader pool and uses the
// rollups primary key (tenant, period, start, ...).
func (s *Store) QueryRollups(ctx context.Context, q billing.RollupQuery) ([]billing.Rollup, error) {
	var (
		where = []string{"period = ?"}
		args  = []any{string(q.Period)}
	)
	if q.Tenant != "" {
		where = append(where, "tenant = ?")
		args = append(args, q.Tenant)
	}
	if q.Resource != "" {
		where = append(where, "resource = ?")
		args = append(args, q.Resource)
	}
	if q.Period != billing.PeriodTotal {
		// Starts are whole seconds: start >= From and start < To hold exactly when start is at
		// least From, and below To, rounded up to a whole second.
		if !q.From.IsZero() {
			where = append(where, "start >= ?")
			args = append(args, ceilUnix(q.From))
		}
		if !q.To.IsZero() {
			where = append(where, "start < ?")
			args = append(args, ceilUnix(q.To))
		}
	}
	rows, err := s.r.QueryContext(ctx, `SELECT tenant, resource, start, grp, qty_sum, qty_count, qty_max
		FROM rollups WHERE `+strings.Join(where, " AND "), args...)
	if err != nil {
		return nil, translate("query rollups", err)
	}
	defer rows.Close()
	var out []billing.Rollup
	for rows.Next() {
		r := billing.Rollup{Period: q.Period}
		var start int64
		if err := rows.Scan(&r.Tenant, &r.Resource, &start, &r.Group, &r.Sum, &r.Count, &r.Max); err != nil {
			return nil, translate("query rollups", err)
		}
		if q.Period != billing.PeriodTotal {
			r.Start = time.Unix(start, 0)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, translate("query rollups", err)
	}
	return out, nil
}

// ceilUnix returns t in Unix seconds, rounded up.
func ceilUnix(t time.Time) int64 {
	if t.Nanosecond() > 0 {
		return t.Unix() + 1
	}
	return t.Unix()
}

// RebuildRollups implements billing.EventStore in one IMMEDIATE transaction: it deletes the
// hour, day and month buckets of the span (widened to months), recomputes them from the events,
// then recomputes the total buckets from the month buckets.
func (s *Store) RebuildRollups(ctx context.Context, spec billing.RollupSpec, tenant string, span billing.Span) error {
	span = spec.Months(span)
	tx, err := s.w.BeginTxx(ctx, nil)
	if err != nil {
		return translate("begin rebuild", err)
	}
	defer tx.Rollback()

	tenantCond, targs := "", []any{}
	if tenant != "" {
		tenantCond, targs = " AND tenant = ?", []any{tenant}
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM rollups WHERE period IN ('hour', 'day', 'month')
		AND start >= ? AND start < ?`+tenantCond, append([]any{span.Start.Unix(), span.End.Unix()}, targs...)...); err != nil {
		return translate("rebuild: delete buckets", err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT tenant, id, resource, quantity, ts, attrs FROM events
		WHERE ts >= ? AND ts < ?`+tenantCond, append([]any{span.Start.UnixNano(), span.End.UnixNano()}, targs...)...)
	if err != nil {
		return translate("rebuild: read events", err)
	}
	set := spec.NewRollupSet()
	for rows.Next() {
		var (
			e     billing.Event
			ts    int64
			attrs string
		)
		if err := rows.Scan(&e.Tenant, &e.ID, &e.Resource, &e.Quantity, &ts, &attrs); err != nil {
			rows.Close()
			return translate("rebuild: read events", err)
		}
		e.Time = time.Unix(0, ts)
		if e.Attrs, err = billing.DecodeAttrs(attrs); err != nil {
			rows.Close()
			return fmt.Errorf("sqlite: rebuild: event %q of tenant %q has invalid attrs: %w", e.ID, e.Tenant, err)
		}
		set.Add(&e)
	}
	if err := rows.Close(); err != nil {
		return translate("rebuild: read events", err)
	}
	if err := rows.Err(); err != nil {
		return translate("rebuild: read events", err)
	}
	var buckets []*billing.Rollup
	for _, r := range set.Rollups() {
		if r.Period != billing.PeriodTotal {
			buckets = append(buckets, r)
		}
	}
	if err := addRollups(ctx, tx, buckets); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM rollups WHERE period = 'total'`+tenantCond, targs...); err != nil {
		return translate("rebuild: delete totals", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO rollups (tenant, period, start, resource, grp, qty_sum, qty_count, qty_max)
		SELECT tenant, 'total', 0, resource, grp, SUM(qty_sum), SUM(qty_count), MAX(qty_max)
		FROM rollups WHERE period = 'month'`+tenantCond+` GROUP BY tenant, resource, grp`, targs...); err != nil {
		return translate("rebuild: totals", err)
	}
	return translate("commit rebuild", tx.Commit())
}
