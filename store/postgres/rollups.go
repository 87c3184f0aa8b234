package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/meterplane/billing"
)

// QueryRollups implements billing.EventStore, adding up the shards of each bucket. Queries of one
// tenant use the rollups primary key (tenant, resource, period, bucket_start, grp, shard);
// queries of every tenant the (period, bucket_start) index.
func (s *Store) QueryRollups(ctx context.Context, q billing.RollupQuery) ([]billing.Rollup, error) {
	var (
		where = []string{"period = $1"}
		args  = []any{string(q.Period)}
	)
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, strings.ReplaceAll(cond, "?", "$"+strconv.Itoa(len(args))))
	}
	if q.Tenant != "" {
		add("tenant = ?", q.Tenant)
	}
	if q.Resource != "" {
		add("resource = ?", q.Resource)
	}
	if q.Period != billing.PeriodTotal {
		// Bucket starts are whole seconds: start >= From and start < To hold exactly when start
		// is at least From, and below To, rounded up to a whole second (PostgreSQL keeps
		// microseconds, and the driver would truncate nanoseconds).
		if !q.From.IsZero() {
			add("bucket_start >= ?", ceilSecond(q.From))
		}
		if !q.To.IsZero() {
			add("bucket_start < ?", ceilSecond(q.To))
		}
	}
	query := `SELECT tenant, resource, bucket_start, grp, sum(sum)::bigint, sum(count)::bigint, max(max)
		FROM rollups WHERE ` + strings.Join(where, " AND ") + ` GROUP BY tenant, resource, bucket_start, grp`
	if q.Period == billing.PeriodTotal {
		// The total bucket is the sum of the month buckets (totals are not stored).
		args[0] = string(billing.PeriodMonth)
		query = `SELECT tenant, resource, '0001-01-01 00:00:00+00'::timestamptz, grp, sum(sum)::bigint, sum(count)::bigint, max(max)
		FROM rollups WHERE ` + strings.Join(where, " AND ") + ` GROUP BY tenant, resource, grp`
	}
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, translate("query rollups", err)
	}
	var out []billing.Rollup
	var r billing.Rollup
	_, err = pgx.ForEachRow(rows, []any{&r.Tenant, &r.Resource, &r.Start, &r.Group, &r.Sum, &r.Count, &r.Max}, func() error {
		r.Period = q.Period
		if q.Period == billing.PeriodTotal {
			r.Start = time.Time{}
		} else {
			r.Start = r.Start.UTC()
		}
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, translate("query rollups", err)
	}
	return out, nil
}

// ceilSecond returns t rounded up to a whole second.
func ceilSecond(t time.Time) time.Time {
	if t.Nanosecond() > 0 {
		return t.Truncate(time.Second).Add(time.Second)
	}
	return t
}

// RebuildRollups implements billing.EventStore in one transaction that holds the append lock
// exclusively (appends wait, and happen before or after it): it deletes the hour, day and month
// buckets of the span (widened to months) and recomputes them from the events (the totals are
// the month buckets added up when read). Serialization failures and deadlocks are retried.
func (s *Store) RebuildRollups(ctx context.Context, spec billing.RollupSpec, tenant string, span billing.Span) error {
	span = spec.Months(span)
	var err error
	for attempt := 1; ; attempt++ {
		err = s.rebuildOnce(ctx, spec, tenant, span)
		if err == nil || !retryable(err) || attempt >= appendAttempts || ctx.Err() != nil {
			return err
		}
		time.Sleep(time.Duration(attempt) * 5 * time.Millisecond)
	}
}

func (s *Store) rebuildOnce(ctx context.Context, spec billing.RollupSpec, tenant string, span billing.Span) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return translate("begin rebuild", err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, s.lockKey(lockAppend)); err != nil {
		return translate("rebuild: lock appends", err)
	}
	tenantCond, targs := "", []any{}
	if tenant != "" {
		tenantCond, targs = " AND tenant = $3", []any{tenant}
	}
	if _, err := tx.Exec(ctx, `DELETE FROM rollups WHERE period IN ('hour', 'day', 'month')
		AND bucket_start >= $1 AND bucket_start < $2`+tenantCond, append([]any{span.Start, span.End}, targs...)...); err != nil {
		return translate("rebuild: delete buckets", err)
	}
	rows, err := tx.Query(ctx, `SELECT tenant, id, resource, quantity, ts, attrs FROM events
		WHERE ts >= $1 AND ts < $2`+tenantCond, append([]any{span.Start, span.End}, targs...)...)
	if err != nil {
		return translate("rebuild: read events", err)
	}
	set := spec.NewRollupSet()
	var (
		e     billing.Event
		attrs string
	)
	_, err = pgx.ForEachRow(rows, []any{&e.Tenant, &e.ID, &e.Resource, &e.Quantity, &e.Time, &attrs}, func() error {
		var err error
		if e.Attrs, err = billing.DecodeAttrs(attrs); err != nil {
			return fmt.Errorf("event %q of tenant %q has invalid attrs: %w", e.ID, e.Tenant, err)
		}
		ev := e
		set.Add(&ev)
		return nil
	})
	if err != nil {
		return translate("rebuild: read events", err)
	}
	var buckets []*billing.Rollup
	for _, r := range set.Rollups() { // every bucket but the totals, which are not stored
		if r.Period != billing.PeriodTotal {
			buckets = append(buckets, r)
		}
	}
	if err := upsertRollups(ctx, tx, buckets); err != nil {
		return err
	}
	// Totals are the sum of the month buckets, computed when read.
	return translate("commit rebuild", tx.Commit(ctx))
}

// upsertRollups adds increments to the stored buckets, creating missing ones, in one statement
// that locks the buckets in primary key order.
func upsertRollups(ctx context.Context, tx pgx.Tx, rollups []*billing.Rollup) error {
	if len(rollups) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, upsertRollupsSQL, newRollupRows(rollups).args()...); err != nil {
		return translate("update rollups", err)
	}
	return nil
}
