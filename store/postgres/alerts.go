package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/meterplane/billing"
)

// RecordAlert implements billing.AlertStore: the alert and its pending delivery are inserted by
// one statement, unless the alert id exists. Of concurrent callers with one id, in any number of
// processes, exactly one is told the alert is new: the others wait on the key until its
// transaction commits, and then find it.
func (s *Store) RecordAlert(ctx context.Context, a billing.Alert) (bool, error) {
	body, err := json.Marshal(a)
	if err != nil {
		return false, fmt.Errorf("postgres: encode alert: %w", err)
	}
	tag, err := s.pool.Exec(ctx, `WITH a AS (
			INSERT INTO alerts (id, tenant, at, body) VALUES ($1, $2, $3, $4)
			ON CONFLICT (id) DO NOTHING
			RETURNING id, tenant, at)
		INSERT INTO deliveries (alert_id, tenant, status, attempts, next_attempt, updated)
		SELECT id, tenant, 'pending', 0, at, at FROM a`, a.ID, a.Tenant, a.At, string(body))
	if err != nil {
		return false, translate("record alert", err)
	}
	return tag.RowsAffected() == 1, nil
}

// deliveryColumns are the columns scanDelivery reads, from deliveries d joined with alerts a.
const deliveryColumns = `a.body, d.status, d.attempts, d.next_attempt, d.last_error, d.updated`

// scanDelivery reads one row of deliveryColumns.
func scanDelivery(rows pgx.Rows) (billing.Delivery, error) {
	var (
		d      billing.Delivery
		body   []byte
		status string
	)
	if err := rows.Scan(&body, &status, &d.Attempts, &d.NextAttempt, &d.LastError, &d.Updated); err != nil {
		return d, err
	}
	d.Status = billing.DeliveryStatus(status)
	d.NextAttempt, d.Updated = d.NextAttempt.UTC(), d.Updated.UTC()
	if err := json.Unmarshal(body, &d.Alert); err != nil {
		return d, fmt.Errorf("postgres: stored alert is not valid JSON: %w", err)
	}
	return d, nil
}

// scanDeliveries reads every row of deliveryColumns, and closes rows.
func scanDeliveries(rows pgx.Rows, op string) ([]billing.Delivery, error) {
	defer rows.Close()
	var out []billing.Delivery
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, translate(op, err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, translate(op, err)
	}
	return out, nil
}

// ClaimDeliveries implements billing.AlertStore in one statement: the due pending deliveries
// are locked with FOR UPDATE SKIP LOCKED and leased (next_attempt = now+lease), so claimers
// running at once, in any number of processes, never claim one delivery twice: each skips the
// rows another is claiming, and then finds them leased. The deliveries are returned as they were
// before the lease (NextAttempt is the time they were due), the earliest due first.
func (s *Store) ClaimDeliveries(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]billing.Delivery, error) {
	var lim any // NULL: no limit
	if limit >= 0 {
		lim = limit
	}
	rows, err := s.pool.Query(ctx, `WITH due AS (
			SELECT alert_id, next_attempt FROM deliveries
			WHERE status = 'pending' AND next_attempt <= $1
			ORDER BY next_attempt LIMIT $3
			FOR UPDATE SKIP LOCKED),
		leased AS (
			UPDATE deliveries d SET next_attempt = $2 FROM due
			WHERE d.alert_id = due.alert_id
			RETURNING d.alert_id, d.status, d.attempts, due.next_attempt, d.last_error, d.updated)
		SELECT a.body, l.status, l.attempts, l.next_attempt, l.last_error, l.updated
		FROM leased l JOIN alerts a ON a.id = l.alert_id`,
		now, now.Add(lease), lim)
	if err != nil {
		return nil, translate("claim deliveries", err)
	}
	out, err := scanDeliveries(rows, "claim deliveries")
	if err != nil {
		return nil, err
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].NextAttempt.Equal(out[j].NextAttempt) {
			return out[i].NextAttempt.Before(out[j].NextAttempt)
		}
		return out[i].Alert.ID < out[j].Alert.ID
	})
	return out, nil
}

// FinishDelivery implements billing.AlertStore.
func (s *Store) FinishDelivery(ctx context.Context, d billing.Delivery) error {
	_, err := s.pool.Exec(ctx, `UPDATE deliveries SET status = $2, attempts = $3, next_attempt = $4, last_error = $5, updated = $6
		WHERE alert_id = $1`, d.Alert.ID, string(d.Status), d.Attempts, d.NextAttempt, d.LastError, d.Updated)
	return translate("finish delivery", err)
}

// ListAlerts implements billing.AlertStore.
func (s *Store) ListAlerts(ctx context.Context, q billing.AlertQuery) ([]billing.Alert, error) {
	where, args := "", []any{recordsLimit(q.Limit)}
	if q.Tenant != "" {
		where, args = " WHERE tenant = $2", append(args, q.Tenant)
	}
	rows, err := s.pool.Query(ctx, `SELECT body FROM alerts`+where+` ORDER BY at DESC, id COLLATE "C" LIMIT $1`, args...)
	if err != nil {
		return nil, translate("list alerts", err)
	}
	return scanJSONRows[billing.Alert](rows, "list alerts", "alert")
}

// ListDeliveries implements billing.AlertStore.
func (s *Store) ListDeliveries(ctx context.Context, q billing.DeliveryQuery) ([]billing.Delivery, error) {
	var where []string
	args := []any{recordsLimit(q.Limit)}
	if q.Status != "" {
		args = append(args, string(q.Status))
		where = append(where, "d.status = $"+strconv.Itoa(len(args)))
	}
	if q.Tenant != "" {
		args = append(args, q.Tenant)
		where = append(where, "d.tenant = $"+strconv.Itoa(len(args)))
	}
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	rows, err := s.pool.Query(ctx, `SELECT `+deliveryColumns+`
		FROM deliveries d JOIN alerts a ON a.id = d.alert_id`+cond+`
		ORDER BY d.updated DESC, d.alert_id COLLATE "C" LIMIT $1`, args...)
	if err != nil {
		return nil, translate("list deliveries", err)
	}
	return scanDeliveries(rows, "list deliveries")
}

// recordsLimit is the limit of a list query: n, or 100 when n is not positive.
func recordsLimit(n int) int {
	if n <= 0 {
		return 100
	}
	return n
}
