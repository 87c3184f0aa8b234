package postgres

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/meterplane/billing"
)

// appendAttempts is how many times AppendEvents runs its transaction when it fails with a
// serialization failure or a deadlock, or meets a partition dropped by another process.
const appendAttempts = 5

// appendSQL records a batch in one statement. Its input is one row per distinct (tenant, id) of
// the batch ($1..$6), sorted by (tenant, id) so that concurrent writers lock event ids in one
// order, with the group and the hour, day and month bucket starts of each ($7..$10); and the
// rollup increments of all those rows ($11..$18, from a billing.RollupSet, sorted by primary
// key so that concurrent writers lock buckets in one order too):
//
//   - open is the input without the events whose time is in a span closed for their tenant;
//   - ids inserts their ids, skipping stored ones (ON CONFLICT waits for a concurrent writer of
//     the same id, then skips it if that writer committed);
//   - new is the rows whose id was inserted, inserted into events;
//   - when every input row is new ($19 of them, the common case), all_new adds the increments
//     computed by the store; otherwise some_new sums the increments of the new rows by bucket,
//     in primary key order (byte order, as the store sorts).
//
// It returns the ordinal (1-based) of every input row that was inserted (true) or left out as
// in a closed span (false); the rows it does not return were already stored.
const appendSQL = `WITH input AS (
	SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::timestamptz[], $6::text[],
		$7::text[], $8::timestamptz[], $9::timestamptz[], $10::timestamptz[])
		WITH ORDINALITY AS u(tenant, id, resource, quantity, ts, attrs, grp, hour, day, month, n)
), open AS (
	SELECT * FROM input i WHERE NOT EXISTS (SELECT 1 FROM closed_spans c
		WHERE c.tenant = i.tenant AND c.span_start <= i.ts AND i.ts < c.span_end)
), ids AS (
	INSERT INTO event_ids (tenant, id, ts) SELECT tenant, id, ts FROM open ORDER BY n
	ON CONFLICT DO NOTHING RETURNING tenant, id
), new AS (
	SELECT o.* FROM open o JOIN ids ON ids.tenant = o.tenant AND ids.id = o.id
), ev AS (
	INSERT INTO events (tenant, id, resource, quantity, ts, attrs)
	SELECT tenant, id, resource, quantity, ts, attrs FROM new
), all_new AS (
	INSERT INTO rollups AS r (tenant, resource, period, bucket_start, grp, sum, count, max, shard)
	SELECT tenant, resource, period, bucket_start, grp, sum, count, max, $20::int2
	FROM unnest($11::text[], $12::text[], $13::text[], $14::timestamptz[], $15::text[], $16::int8[], $17::int8[], $18::int8[])
		WITH ORDINALITY AS x(tenant, resource, period, bucket_start, grp, sum, count, max, k)
	WHERE (SELECT count(*) FROM new) = $19
	ORDER BY k
	ON CONFLICT (tenant, resource, period, bucket_start, grp, shard) DO UPDATE SET
		sum = r.sum + excluded.sum, count = r.count + excluded.count, max = greatest(r.max, excluded.max)
), some_new AS (
	INSERT INTO rollups AS r (tenant, resource, period, bucket_start, grp, sum, count, max, shard)
	SELECT e.tenant, e.resource, b.period, b.start, e.grp, sum(e.quantity), count(*), max(e.quantity), $20::int2
	FROM new e CROSS JOIN LATERAL (VALUES ('hour', e.hour), ('day', e.day), ('month', e.month)) AS b(period, start)
	WHERE (SELECT count(*) FROM new) <> $19
	GROUP BY 1, 2, 3, 4, 5
	ORDER BY e.tenant COLLATE "C", e.resource COLLATE "C", b.period COLLATE "C", b.start, e.grp COLLATE "C"
	ON CONFLICT (tenant, resource, period, bucket_start, grp, shard) DO UPDATE SET
		sum = r.sum + excluded.sum, count = r.count + excluded.count, max = greatest(r.max, excluded.max)
)
SELECT n, true FROM new
UNION ALL
SELECT i.n, false FROM input i WHERE NOT EXISTS (SELECT 1 FROM open o WHERE o.n = i.n)`

// storedSQL returns the stored content of the given (tenant, id) keys that are stored, by the
// ordinal of the key.
const storedSQL = `SELECT u.n, e.resource, e.quantity, e.attrs
	FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u(tenant, id, n)
	JOIN event_ids k ON k.tenant = u.tenant AND k.id = u.id
	JOIN events e ON e.tenant = k.tenant AND e.id = k.id AND e.ts = k.ts`

// upsertRollupsSQL adds increments ($1..$8, sorted by primary key) to the stored buckets,
// creating missing ones.
const upsertRollupsSQL = `INSERT INTO rollups AS r (tenant, resource, period, bucket_start, grp, sum, count, max)
	SELECT tenant, resource, period, bucket_start, grp, sum, count, max
	FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[], $6::int8[], $7::int8[], $8::int8[])
		WITH ORDINALITY AS x(tenant, resource, period, bucket_start, grp, sum, count, max, k)
	ORDER BY k
	ON CONFLICT (tenant, resource, period, bucket_start, grp, shard) DO UPDATE SET
		sum = r.sum + excluded.sum, count = r.count + excluded.count, max = greatest(r.max, excluded.max)`

type eventKey struct{ tenant, id string }

// appendInput is a batch prepared for appendSQL.
type appendInput struct {
	// One row per distinct (tenant, id), sorted by it: the first occurrence in the batch.
	tenant, id, resource, attrs, grp []string
	quantity                         []int64
	ts, hour, day, month             []time.Time
	index                            []int // position in the batch of each row
	// The increments of all rows, for the common case where all of them are new.
	all *rollupRows
}

// args returns the arguments of appendSQL, whose rollup rows go to shard.
func (in *appendInput) args(shard int16) []any {
	return append([]any{in.tenant, in.id, in.resource, in.quantity, in.ts, in.attrs, in.grp, in.hour, in.day, in.month},
		append(in.all.args(), len(in.index), shard)...)
}

// newAppendInput prepares the batch events (attrs holds their encoded Attrs). Times are
// truncated to PostgreSQL's microseconds: bucket starts are whole seconds, so truncating never
// moves an event to another bucket.
func newAppendInput(spec billing.RollupSpec, events []billing.Event, attrs []string) *appendInput {
	uniq := make([]int, 0, len(events))
	seen := make(map[eventKey]bool, len(events))
	for i := range events {
		k := eventKey{events[i].Tenant, events[i].ID}
		if !seen[k] {
			seen[k] = true
			uniq = append(uniq, i)
		}
	}
	slices.SortFunc(uniq, func(a, b int) int {
		return cmp.Or(cmp.Compare(events[a].Tenant, events[b].Tenant), cmp.Compare(events[a].ID, events[b].ID))
	})
	n := len(uniq)
	in := &appendInput{
		tenant: make([]string, n), id: make([]string, n), resource: make([]string, n),
		attrs: make([]string, n), grp: make([]string, n), quantity: make([]int64, n),
		ts: make([]time.Time, n), hour: make([]time.Time, n), day: make([]time.Time, n),
		month: make([]time.Time, n), index: uniq,
	}
	set := spec.NewRollupSet()
	for j, i := range uniq {
		e := &events[i]
		in.tenant[j], in.id[j], in.resource[j], in.attrs[j], in.quantity[j] = e.Tenant, e.ID, e.Resource, attrs[i], e.Quantity
		in.ts[j] = e.Time.Truncate(time.Microsecond)
		set.Add(e)
	}
	// Each row's buckets, as RollupSet.Add computes them, and its group, from a one-event set
	// (whose last bucket, the total, carries it) per distinct attributes.
	groups := make(map[string]string)
	for j, i := range uniq {
		e := &events[i]
		in.hour[j] = billing.PeriodHour.Start(e.Time, spec.Location)
		in.day[j] = billing.PeriodDay.Start(e.Time, spec.Location)
		in.month[j] = billing.PeriodMonth.Start(e.Time, spec.Location)
		g, ok := groups[attrs[i]]
		if !ok {
			one := spec.NewRollupSet()
			one.Add(e)
			rs := one.Rollups()
			g = rs[len(rs)-1].Group
			groups[attrs[i]] = g
		}
		in.grp[j] = g
	}
	// Totals are not stored: QueryRollups adds up the month buckets (one fewer hot row per
	// group for every append to update).
	in.all = newRollupRows(slices.DeleteFunc(set.Rollups(), func(r *billing.Rollup) bool { return r.Period == billing.PeriodTotal }))
	return in
}

// rollupRows are rollup increments as the columns of an upsert, sorted by primary key.
type rollupRows struct {
	tenant, resource, period, grp []string
	start                         []time.Time
	sum, count, max               []int64
}

// newRollupRows sorts the increments by the rollups primary key (byte order) and returns them as
// columns. The total buckets start at the zero time.
func newRollupRows(rollups []*billing.Rollup) *rollupRows {
	rs := slices.Clone(rollups)
	slices.SortFunc(rs, func(a, b *billing.Rollup) int {
		return cmp.Or(cmp.Compare(a.Tenant, b.Tenant), cmp.Compare(a.Resource, b.Resource),
			cmp.Compare(a.Period, b.Period), a.Start.Compare(b.Start), cmp.Compare(a.Group, b.Group))
	})
	n := len(rs)
	out := &rollupRows{
		tenant: make([]string, n), resource: make([]string, n), period: make([]string, n), grp: make([]string, n),
		start: make([]time.Time, n), sum: make([]int64, n), count: make([]int64, n), max: make([]int64, n),
	}
	for i, r := range rs {
		out.tenant[i], out.resource[i], out.period[i], out.grp[i] = r.Tenant, r.Resource, string(r.Period), r.Group
		out.start[i], out.sum[i], out.count[i], out.max[i] = r.Start, r.Sum, r.Count, r.Max
		if r.Period == billing.PeriodTotal {
			out.start[i] = time.Time{}
		}
	}
	return out
}

// args returns the columns as the arguments of upsertRollupsSQL.
func (r *rollupRows) args() []any {
	return []any{r.tenant, r.resource, r.period, r.start, r.grp, r.sum, r.count, r.max}
}

// AppendEvents implements billing.EventStore, in one transaction per batch that holds the
// append lock shared (CloseSpan and RebuildRollups take it exclusively, so no append slips past
// them) and runs appendSQL: it leaves out the events in closed spans and inserts the new ids,
// events and rollup increments.
//
// When no Quota lease waits for the batch's events (the common case), the lock and appendSQL go
// to the server in one pipeline, which PostgreSQL runs as one implicit transaction: the whole
// append costs one round trip. Otherwise it runs in an explicit transaction, so that the lease
// adjustments join it. When some events were not new, one more query reads the stored events to
// compare them. Serialization failures and deadlocks are retried a few times.
func (s *Store) AppendEvents(ctx context.Context, spec billing.RollupSpec, events []billing.Event) ([]billing.AppendStatus, error) {
	if len(events) == 0 {
		return []billing.AppendStatus{}, nil
	}
	attrs := make([]string, len(events))
	for i := range events {
		if y := events[i].Time.UTC().Year(); y < 1 || y > 9999 {
			return nil, fmt.Errorf("postgres: append: events[%d].time %s: must be in the years 1 to 9999", i, events[i].Time)
		}
		attrs[i] = billing.EncodeAttrs(events[i].Attrs)
	}
	in := newAppendInput(spec, events, attrs)
	var err error
	for attempt := 1; ; attempt++ {
		if err = s.ensureEventPartitions(ctx, events); err != nil {
			return nil, err
		}
		var statuses []billing.AppendStatus
		statuses, err = s.appendOnce(ctx, events, attrs, in)
		if err == nil {
			return statuses, nil
		}
		if attempt >= appendAttempts || ctx.Err() != nil {
			break
		}
		switch {
		case noPartition(err):
			s.parts.reset() // dropped by another process: check again
		case retryable(err):
			time.Sleep(time.Duration(attempt) * 5 * time.Millisecond)
		case pgconn.SafeToRetry(err):
			// Nothing reached the server (such as a pooled connection found broken).
		default:
			return nil, err
		}
	}
	return nil, err
}

// appendState is what appendSQL did with one input row.
type appendState uint8

const (
	rowStored   appendState = iota // not returned: already stored
	rowInserted                    // new: inserted
	rowOutside                     // not stored, and not inserted: in a closed span, unless stored
)

// appendOnce runs the append transaction once.
func (s *Store) appendOnce(ctx context.Context, events []billing.Event, attrs []string, in *appendInput) ([]billing.AppendStatus, error) {
	shard, err := s.takeShard(ctx)
	if err != nil {
		return nil, err
	}
	defer s.giveShard(shard)
	// Whether the batch would need lease adjustments if all its first occurrences were new: if
	// not, none for any subset, and the transaction need not stay open for them.
	firsts := make([]bool, len(events))
	for _, i := range in.index {
		firsts[i] = true
	}
	if s.leases.pending(events, firsts) {
		return s.appendTx(ctx, events, attrs, in, shard)
	}

	var b pgx.Batch
	b.Queue(`SELECT pg_advisory_xact_lock_shared($1)`, s.lockKey(lockAppend))
	b.Queue(appendSQL, in.args(shard)...)
	br := s.pool.SendBatch(ctx, &b) // one implicit transaction, committed at its end
	state, err := readAppend(br, len(in.index))
	if cerr := br.Close(); err == nil && cerr != nil {
		err = translate("commit append", cerr)
	}
	if err != nil {
		return nil, err
	}
	// Committed. The stored events that the duplicates are compared with never change.
	return s.statuses(ctx, s.pool, events, attrs, in, state)
}

// appendTx runs the append in an explicit transaction, with the lease adjustments of the new
// events.
func (s *Store) appendTx(ctx context.Context, events []billing.Event, attrs []string, in *appendInput, shard int16) ([]billing.AppendStatus, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, translate("begin append", err)
	}
	defer tx.Rollback(context.Background()) // a no-op after Commit

	var b pgx.Batch
	b.Queue(`SELECT pg_advisory_xact_lock_shared($1)`, s.lockKey(lockAppend))
	b.Queue(appendSQL, in.args(shard)...)
	br := tx.SendBatch(ctx, &b)
	state, err := readAppend(br, len(in.index))
	if cerr := br.Close(); err == nil && cerr != nil {
		err = translate("insert events", cerr)
	}
	if err != nil {
		return nil, err
	}
	statuses, err := s.statuses(ctx, tx, events, attrs, in, state)
	if err != nil {
		return nil, err
	}
	isNew := make([]bool, len(events)) // only first occurrences can be new
	for j, i := range in.index {
		isNew[i] = state[j] == rowInserted
	}
	claims := s.leases.claim(events, isNew)
	committed := false
	defer func() { claims.done(committed) }()
	if err := claims.apply(ctx, tx); err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, translate("commit append", err)
	}
	committed = true
	return statuses, nil
}

// readAppend reads the results of the lock and appendSQL from br: the state of each of the n
// input rows.
func readAppend(br pgx.BatchResults, n int) ([]appendState, error) {
	if _, err := br.Exec(); err != nil {
		return nil, translate("lock appends", err)
	}
	res, err := br.Query()
	if err != nil {
		return nil, translate("insert events", err)
	}
	state := make([]appendState, n)
	var (
		ord int64
		ins bool
	)
	_, err = pgx.ForEachRow(res, []any{&ord, &ins}, func() error {
		if ord < 1 || int(ord) > n {
			return fmt.Errorf("row ordinal %d out of range", ord)
		}
		if ins {
			state[ord-1] = rowInserted
		} else {
			state[ord-1] = rowOutside
		}
		return nil
	})
	if err != nil {
		return nil, translate("insert events", err)
	}
	return state, nil
}

// querier is a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// statuses returns the status of each event, reading the stored content of the input rows that
// were not inserted through q.
func (s *Store) statuses(ctx context.Context, q querier, events []billing.Event, attrs []string, in *appendInput, state []appendState) ([]billing.AppendStatus, error) {
	// The content each key must match: what was stored before, or the batch's first occurrence.
	type content struct {
		resource string
		quantity int64
		attrs    string
		closed   bool // refused: new, but in a closed span
	}
	ref := make(map[eventKey]content, len(in.index))
	var lookTenant, lookID []string
	var lookRow []int
	for j, i := range in.index {
		k := eventKey{in.tenant[j], in.id[j]}
		if state[j] == rowInserted {
			ref[k] = content{events[i].Resource, events[i].Quantity, attrs[i], false}
			continue
		}
		lookTenant, lookID, lookRow = append(lookTenant, k.tenant), append(lookID, k.id), append(lookRow, j)
	}
	if len(lookRow) > 0 {
		rows, err := q.Query(ctx, storedSQL, lookTenant, lookID)
		if err != nil {
			return nil, translate("read stored events", err)
		}
		found := make([]bool, len(lookRow))
		var (
			ord int64
			c   content
		)
		_, err = pgx.ForEachRow(rows, []any{&ord, &c.resource, &c.quantity, &c.attrs}, func() error {
			if ord < 1 || int(ord) > len(lookRow) {
				return fmt.Errorf("row ordinal %d out of range", ord)
			}
			found[ord-1] = true
			ref[eventKey{lookTenant[ord-1], lookID[ord-1]}] = c
			return nil
		})
		if err != nil {
			return nil, translate("read stored events", err)
		}
		for x, j := range lookRow {
			if found[x] {
				continue
			}
			if state[j] != rowOutside {
				// Its id was neither inserted nor found: its month was dropped meanwhile.
				return nil, fmt.Errorf("postgres: append: event %q of tenant %q is stored, but its month was dropped meanwhile; retry",
					in.id[j], in.tenant[j])
			}
			ref[eventKey{lookTenant[x], lookID[x]}] = content{closed: true}
		}
	}

	statuses := make([]billing.AppendStatus, len(events))
	isNew := make([]bool, len(events))
	for j, i := range in.index {
		isNew[i] = state[j] == rowInserted
	}
	for i := range events {
		e := &events[i]
		c := ref[eventKey{e.Tenant, e.ID}]
		switch {
		case c.closed:
			statuses[i] = billing.AppendClosed
		case isNew[i]:
			statuses[i] = billing.AppendInserted
		case c.resource == e.Resource && c.quantity == e.Quantity && c.attrs == attrs[i]:
			statuses[i] = billing.AppendDuplicate
		default:
			statuses[i] = billing.AppendConflict
		}
	}
	return statuses, nil
}

// AppendConcurrency is how many AppendEvents transactions a Meter should run at once on this
// store (the default of billing.Config.Writers): one commits while the next executes, and
// concurrent writers never deadlock, because every append locks event ids and buckets in
// primary-key order.
func (s *Store) AppendConcurrency() int { return appendWriters }

// appendWriters is how many appends of one Store run at once, each writing its own shard of the
// rollups; more wait for a shard.
const appendWriters = 2

// rollupShards is the number of shards of a rollup bucket (see migrations/0002_rollups.sql).
const rollupShards = 16

// takeShard waits for a rollup shard that no other append of this Store is writing.
func (s *Store) takeShard(ctx context.Context) (int16, error) {
	select {
	case sh := <-s.shards:
		return sh, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

func (s *Store) giveShard(sh int16) { s.shards <- sh }

// newShards returns the shards of one Store: appendWriters consecutive ones from a random start,
// so that the Stores of different replicas rarely write the same rows.
func newShards() chan int16 {
	ch := make(chan int16, appendWriters)
	start := rand.IntN(rollupShards)
	for i := range appendWriters {
		ch <- int16((start + i) % rollupShards)
	}
	return ch
}
