package postgres

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/meterplane/billing"
)

// lockPartitions is the advisory lock key (lockBase plus it) that serialises partition DDL
// between the processes sharing a schema. It is above the range of the lock* constants of
// postgres.go (lockQuota spans lockQuota..lockQuota+0xfff).
const lockPartitions = 0x8000

// month is a UTC calendar month counted from year 0: year*12 + month-1.
type month int

// monthOf returns the UTC month of t.
func monthOf(t time.Time) month {
	t = t.UTC()
	return month(t.Year()*12 + int(t.Month()) - 1)
}

// start returns the first instant of m.
func (m month) start() time.Time {
	return time.Date(int(m)/12, time.Month(int(m)%12+1), 1, 0, 0, 0, 0, time.UTC)
}

// table returns the name of m's partition, events_YYYYMM.
func (m month) table() string {
	return fmt.Sprintf("events_%04d%02d", int(m)/12, int(m)%12+1)
}

// parseMonth is the inverse of month.table; ok is false for other names.
func parseMonth(name string) (month, bool) {
	digits, ok := strings.CutPrefix(name, "events_")
	if !ok || len(digits) != 6 {
		return 0, false
	}
	n, err := strconv.Atoi(digits)
	if err != nil || n < 0 || n%100 < 1 || n%100 > 12 {
		return 0, false
	}
	return month(n/100*12 + n%100 - 1), true
}

// partitions remembers the monthly partitions of events known to exist, so that appends do no
// DDL once their months are known. It is safe for concurrent use; its zero value knows none.
type partitions struct {
	mu    sync.Mutex
	known map[month]bool
}

// missing returns the months among ms that are not known to exist, without repeats.
func (p *partitions) missing(ms []month) []month {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []month
	for _, m := range ms {
		if !p.known[m] && !containsMonth(out, m) {
			out = append(out, m)
		}
	}
	return out
}

func containsMonth(ms []month, m month) bool {
	for _, x := range ms {
		if x == m {
			return true
		}
	}
	return false
}

// add marks ms as existing.
func (p *partitions) add(ms ...month) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.known == nil {
		p.known = make(map[month]bool)
	}
	for _, m := range ms {
		p.known[m] = true
	}
}

// forget marks ms as unknown, so that the next append that needs one checks it again.
func (p *partitions) forget(ms ...month) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range ms {
		delete(p.known, m)
	}
}

// reset forgets every month.
func (p *partitions) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.known = nil
}

// ensurePartitionsAhead creates the partitions of the current UTC month (by cfg.Now) and of the
// cfg.PartitionsAhead months after it, when missing.
func (s *Store) ensurePartitionsAhead(ctx context.Context) error {
	now := monthOf(s.cfg.Now())
	ms := make([]month, 0, s.cfg.PartitionsAhead+1)
	for i := 0; i <= s.cfg.PartitionsAhead; i++ {
		ms = append(ms, now+month(i))
	}
	return s.ensurePartitions(ctx, ms)
}

// ensureEventPartitions makes sure every month the events fall in has a partition. When all of
// them are known it costs no round trip.
func (s *Store) ensureEventPartitions(ctx context.Context, events []billing.Event) error {
	var ms []month
	var last month = -1
	for i := range events {
		m := monthOf(events[i].Time)
		if m != last {
			ms = append(ms, m)
			last = m
		}
	}
	return s.ensurePartitions(ctx, ms)
}

// ensurePartitions creates the partitions of the months ms that are not known to exist. Other
// processes may create the same partitions at the same time: creators of one schema take an
// advisory lock, and an error saying the table exists is ignored (the catalog is then checked).
func (s *Store) ensurePartitions(ctx context.Context, ms []month) error {
	todo := s.parts.missing(ms)
	if len(todo) == 0 {
		return nil
	}
	sort.Slice(todo, func(i, j int) bool { return todo[i] < todo[j] })
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if err = s.createPartitions(ctx, todo); err == nil {
			s.parts.add(todo...)
			return nil
		}
		if ctx.Err() != nil {
			break
		}
		if !retryable(err) && !duplicateObject(err) {
			break
		}
		time.Sleep(time.Duration(attempt+1) * 10 * time.Millisecond)
	}
	return err
}

// createPartitions creates the partitions of ms in one transaction, under the partition lock.
func (s *Store) createPartitions(ctx context.Context, ms []month) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return translate("begin create partitions", err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, s.lockKey(lockPartitions)); err != nil {
		return translate("lock partitions", err)
	}
	names := make([]string, len(ms))
	for i, m := range ms {
		names[i] = m.table()
	}
	// Create only the missing ones: IF NOT EXISTS still takes a strong lock on events.
	rows, err := tx.Query(ctx, `SELECT c.relname FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = current_schema() AND c.relname = ANY($1)`, names)
	if err != nil {
		return translate("list partitions", err)
	}
	exists, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return translate("list partitions", err)
	}
	for _, m := range ms {
		if containsString(exists, m.table()) {
			continue
		}
		q := fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s PARTITION OF events FOR VALUES FROM ('%s') TO ('%s')`,
			pgx.Identifier{m.table()}.Sanitize(), pgTime(m.start()), pgTime((m + 1).start()))
		if _, err := tx.Exec(ctx, q); err != nil {
			return translate("create partition "+m.table(), err)
		}
	}
	return translate("commit create partitions", tx.Commit(ctx))
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// pgTime formats t as a timestamptz literal.
func pgTime(t time.Time) string {
	return t.UTC().Format("2006-01-02 15:04:05") + "+00"
}

// duplicateObject reports whether err says that a table being created exists already, or that
// a partition overlaps one created meanwhile.
func duplicateObject(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	switch pe.Code {
	case "42P07", "23505", "42710": // duplicate_table, unique_violation (pg_type), duplicate_object
		return true
	case "42P17": // invalid_object_definition: "partition ... would overlap partition ..."
		return strings.Contains(pe.Message, "overlap")
	}
	return false
}

// noPartition reports whether err says that a row has no partition to go to: one was dropped
// (DropEventsBefore, maybe in another process) after this process saw it.
func noPartition(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23514" && strings.Contains(pe.Message, "no partition")
}

// DropEventsBefore drops the monthly event partitions that end at or before t (whole UTC months
// only: the month that contains t is kept), with the event ids they hold, and returns the names
// of the dropped partitions, oldest first. Rollups are kept, so usage queries and quotas still
// see the dropped months; but a RebuildRollups of a dropped month recomputes it from no events,
// and an event id of a dropped month is no longer known, so a late retry of it would be counted
// again. Drop only months that no client retries and no invoice will be regenerated for.
//
// It takes the append lock exclusively, so concurrent appends wait for it. Safe for concurrent
// use by many processes.
func (s *Store) DropEventsBefore(ctx context.Context, t time.Time) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT c.relname FROM pg_inherits i
		JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'events'::regclass`)
	if err != nil {
		return nil, translate("list partitions", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, translate("list partitions", err)
	}
	var old []month
	for _, n := range names {
		if m, ok := parseMonth(n); ok && !(m + 1).start().After(t) {
			old = append(old, m)
		}
	}
	sort.Slice(old, func(i, j int) bool { return old[i] < old[j] })
	var dropped []string
	for _, m := range old {
		ok, err := s.dropPartition(ctx, m)
		if err != nil {
			return dropped, err
		}
		if ok {
			dropped = append(dropped, m.table())
		}
	}
	return dropped, nil
}

// dropPartition drops the partition of m and the ids of its events in one transaction; it
// reports false when the partition was dropped meanwhile.
func (s *Store) dropPartition(ctx context.Context, m month) (bool, error) {
	s.parts.forget(m)
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return false, translate("begin drop partition", err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, s.lockKey(lockAppend)); err != nil {
		return false, translate("lock appends", err)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, s.lockKey(lockPartitions)); err != nil {
		return false, translate("lock partitions", err)
	}
	var exists bool
	if err := tx.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, m.table()).Scan(&exists); err != nil {
		return false, translate("find partition", err)
	}
	if !exists {
		return false, nil
	}
	// The ids of the partition's events: their event_ids.ts is in the month.
	if _, err := tx.Exec(ctx, `DELETE FROM event_ids k USING `+pgx.Identifier{m.table()}.Sanitize()+` e
		WHERE k.tenant = e.tenant AND k.id = e.id`); err != nil {
		return false, translate("delete event ids of "+m.table(), err)
	}
	if _, err := tx.Exec(ctx, `DROP TABLE `+pgx.Identifier{m.table()}.Sanitize()); err != nil {
		return false, translate("drop partition "+m.table(), err)
	}
	if err := tx.Commit(ctx); err != nil {
		return false, translate("commit drop partition", err)
	}
	s.parts.forget(m)
	return true, nil
}
