package sqlite

import (
	"context"
	"strings"
	"sync"

	"github.com/jmoiron/sqlx"

	"github.com/meterplane/billing"
)

// Rows per multi-row statement: 6 event columns x 500 and 8 rollup columns x 500 stay well under
// SQLite's limit of 32766 bound parameters.
const chunkRows = 500

// chunkLen returns how many of n remaining rows the next multi-row statement takes: chunkRows, or
// else the largest power of two. Statements then come in a few sizes only, which the writer
// connection keeps compiled (its statement cache, see OpenConfig), instead of compiling one for
// every batch size: compiling a multi-row statement costs more than running it.
func chunkLen(n int) int {
	if n >= chunkRows {
		return chunkRows
	}
	c := 1
	for c*2 <= n {
		c *= 2
	}
	return c
}

type eventKey struct{ tenant, id string }

// AppendEvents implements billing.EventStore: one IMMEDIATE transaction inserts the new events
// (INSERT ... ON CONFLICT DO NOTHING RETURNING tells which were new) and adds their rollup
// increments; duplicates are compared with what is stored.
func (s *Store) AppendEvents(ctx context.Context, spec billing.RollupSpec, events []billing.Event) ([]billing.AppendStatus, error) {
	statuses := make([]billing.AppendStatus, len(events))
	if len(events) == 0 {
		return statuses, nil
	}
	attrs := make([]string, len(events))
	first := make(map[eventKey]int, len(events)) // first position of each key in the batch
	var uniq []int
	for i := range events {
		attrs[i] = billing.EncodeAttrs(events[i].Attrs)
		k := eventKey{events[i].Tenant, events[i].ID}
		if _, ok := first[k]; !ok {
			first[k] = i
			uniq = append(uniq, i)
		}
	}

	tx, err := s.w.BeginTxx(ctx, nil)
	if err != nil {
		return nil, translate("begin append", err)
	}
	defer tx.Rollback()

	inserted := make(map[eventKey]bool, len(uniq))
	args := make([]any, 0, chunkRows*6)
	for lo := 0; lo < len(uniq); {
		part := uniq[lo : lo+chunkLen(len(uniq)-lo)]
		lo += len(part)
		args = args[:0]
		for _, i := range part {
			e := &events[i]
			args = append(args, e.Tenant, e.ID, e.Resource, e.Quantity, e.Time.UnixNano(), attrs[i])
		}
		rows, err := tx.QueryContext(ctx, insertEventsSQL(len(part)), args...)
		if err != nil {
			return nil, translate("insert events", err)
		}
		for rows.Next() {
			var k eventKey
			if err := rows.Scan(&k.tenant, &k.id); err != nil {
				rows.Close()
				return nil, translate("insert events", err)
			}
			inserted[k] = true
		}
		if err := rows.Close(); err != nil {
			return nil, translate("insert events", err)
		}
		if err := rows.Err(); err != nil {
			return nil, translate("insert events", err)
		}
	}

	// New events in a span closed by a finalized invoice are taken out again, in this same
	// transaction, and refused with their repeats; repeats of events stored before the span was
	// closed stay duplicates (or conflicts).
	closed, err := closedEvents(ctx, tx, events, uniq, inserted)
	if err != nil {
		return nil, err
	}

	// The content each key must match: what was stored before, or the batch's first occurrence.
	type content struct {
		resource string
		quantity int64
		attrs    string
	}
	ref := make(map[eventKey]content)
	for _, i := range uniq {
		e := &events[i]
		k := eventKey{e.Tenant, e.ID}
		if closed[k] {
			continue
		}
		if inserted[k] {
			ref[k] = content{e.Resource, e.Quantity, attrs[i]}
			continue
		}
		var c struct {
			Resource string `db:"resource"`
			Quantity int64  `db:"quantity"`
			Attrs    string `db:"attrs"`
		}
		if err := tx.GetContext(ctx, &c, `SELECT resource, quantity, attrs FROM events WHERE tenant = ? AND id = ?`,
			e.Tenant, e.ID); err != nil {
			return nil, translate("read duplicate event", err)
		}
		ref[k] = content{c.Resource, c.Quantity, c.Attrs}
	}

	set := spec.NewRollupSet()
	for i := range events {
		e := &events[i]
		k := eventKey{e.Tenant, e.ID}
		if closed[k] {
			statuses[i] = billing.AppendClosed
			continue
		}
		if inserted[k] && first[k] == i {
			statuses[i] = billing.AppendInserted
			set.Add(e)
			continue
		}
		if c := ref[k]; c.resource == e.Resource && c.quantity == e.Quantity && c.attrs == attrs[i] {
			statuses[i] = billing.AppendDuplicate
		} else {
			statuses[i] = billing.AppendConflict
		}
	}
	if err := addRollups(ctx, tx, set.Rollups()); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, translate("commit append", err)
	}
	return statuses, nil
}

// addRollups adds increments to the stored buckets, creating missing ones.
func addRollups(ctx context.Context, tx *sqlx.Tx, rollups []*billing.Rollup) error {
	if len(rollups) == 0 {
		return nil
	}
	args := make([]any, 0, chunkRows*8)
	for lo := 0; lo < len(rollups); {
		part := rollups[lo : lo+chunkLen(len(rollups)-lo)]
		lo += len(part)
		args = args[:0]
		for _, r := range part {
			var start int64
			if r.Period != billing.PeriodTotal {
				start = r.Start.Unix()
			}
			args = append(args, r.Tenant, string(r.Period), start, r.Resource, r.Group, r.Sum, r.Count, r.Max)
		}
		if _, err := tx.ExecContext(ctx, upsertRollupsSQL(len(part)), args...); err != nil {
			return translate("update rollups", err)
		}
	}
	return nil
}

// Multi-row statements, built once per row count.
var sqlCache sync.Map // sqlKey -> string

type sqlKey struct {
	kind string
	rows int
}

func insertEventsSQL(n int) string {
	return cachedSQL("ev", n, `INSERT INTO events (tenant, id, resource, quantity, ts, attrs) VALUES `,
		"(?,?,?,?,?,?)", ` ON CONFLICT (tenant, id) DO NOTHING RETURNING tenant, id`)
}

func upsertRollupsSQL(n int) string {
	return cachedSQL("ru", n, `INSERT INTO rollups (tenant, period, start, resource, grp, qty_sum, qty_count, qty_max) VALUES `,
		"(?,?,?,?,?,?,?,?)", ` ON CONFLICT (tenant, period, start, resource, grp) DO UPDATE SET
			qty_sum = qty_sum + excluded.qty_sum,
			qty_count = qty_count + excluded.qty_count,
			qty_max = MAX(qty_max, excluded.qty_max)`)
}

func cachedSQL(kind string, n int, head, row, tail string) string {
	key := sqlKey{kind, n}
	if q, ok := sqlCache.Load(key); ok {
		return q.(string)
	}
	var b strings.Builder
	b.WriteString(head)
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(row)
	}
	b.WriteString(tail)
	q := b.String()
	sqlCache.Store(key, q)
	return q
}
