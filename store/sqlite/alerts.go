package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/meterplane/billing"
)

// RecordAlert implements billing.AlertStore: the alert and its pending delivery are inserted in
// one transaction, unless the alert id exists.
func (s *Store) RecordAlert(ctx context.Context, a billing.Alert) (bool, error) {
	body, err := json.Marshal(a)
	if err != nil {
		return false, fmt.Errorf("sqlite: encode alert: %w", err)
	}
	tx, err := s.w.BeginTxx(ctx, nil)
	if err != nil {
		return false, translate("begin alert", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `INSERT INTO alerts (id, tenant, at, body) VALUES (?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
		a.ID, a.Tenant, a.At.UnixNano(), string(body))
	if err != nil {
		return false, translate("record alert", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return false, nil
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO deliveries (alert_id, tenant, status, attempts, next_attempt, updated)
		VALUES (?, ?, 'pending', 0, ?, ?)`, a.ID, a.Tenant, a.At.UnixNano(), a.At.UnixNano()); err != nil {
		return false, translate("queue alert delivery", err)
	}
	if err := tx.Commit(); err != nil {
		return false, translate("commit alert", err)
	}
	return true, nil
}

type deliveryRow struct {
	Body        string `db:"body"`
	Status      string `db:"status"`
	Attempts    int    `db:"attempts"`
	NextAttempt int64  `db:"next_attempt"`
	LastError   string `db:"last_error"`
	Updated     int64  `db:"updated"`
}

func (r deliveryRow) delivery() (billing.Delivery, error) {
	d := billing.Delivery{Status: billing.DeliveryStatus(r.Status), Attempts: r.Attempts,
		NextAttempt: time.Unix(0, r.NextAttempt), LastError: r.LastError, Updated: time.Unix(0, r.Updated)}
	if err := json.Unmarshal([]byte(r.Body), &d.Alert); err != nil {
		return d, fmt.Errorf("sqlite: stored alert is not valid JSON: %w", err)
	}
	return d, nil
}

// ClaimDeliveries implements billing.AlertStore.
func (s *Store) ClaimDeliveries(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]billing.Delivery, error) {
	tx, err := s.w.BeginTxx(ctx, nil)
	if err != nil {
		return nil, translate("begin claim", err)
	}
	defer tx.Rollback()
	var rows []deliveryRow
	if err := tx.SelectContext(ctx, &rows, `SELECT a.body, d.status, d.attempts, d.next_attempt, d.last_error, d.updated
		FROM deliveries d JOIN alerts a ON a.id = d.alert_id
		WHERE d.status = 'pending' AND d.next_attempt <= ? ORDER BY d.next_attempt LIMIT ?`, now.UnixNano(), limit); err != nil {
		return nil, translate("claim deliveries", err)
	}
	out := make([]billing.Delivery, 0, len(rows))
	for _, r := range rows {
		d, err := r.delivery()
		if err != nil {
			return nil, err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE deliveries SET next_attempt = ? WHERE alert_id = ?`,
			now.Add(lease).UnixNano(), d.Alert.ID); err != nil {
			return nil, translate("lease delivery", err)
		}
		out = append(out, d)
	}
	if err := tx.Commit(); err != nil {
		return nil, translate("commit claim", err)
	}
	return out, nil
}

// FinishDelivery implements billing.AlertStore.
func (s *Store) FinishDelivery(ctx context.Context, d billing.Delivery) error {
	_, err := s.w.ExecContext(ctx, `UPDATE deliveries SET status = ?, attempts = ?, next_attempt = ?, last_error = ?, updated = ?
		WHERE alert_id = ?`, string(d.Status), d.Attempts, d.NextAttempt.UnixNano(), d.LastError, d.Updated.UnixNano(), d.Alert.ID)
	return translate("finish delivery", err)
}

// ListAlerts implements billing.AlertStore.
func (s *Store) ListAlerts(ctx context.Context, q billing.AlertQuery) ([]billing.Alert, error) {
	where, args := "", []any{}
	if q.Tenant != "" {
		where, args = " WHERE tenant = ?", append(args, q.Tenant)
	}
	var bodies []string
	if err := s.r.SelectContext(ctx, &bodies, `SELECT body FROM alerts`+where+` ORDER BY at DESC, id LIMIT ?`,
		append(args, limitOr100(q.Limit))...); err != nil {
		return nil, translate("list alerts", err)
	}
	out := make([]billing.Alert, len(bodies))
	for i, b := range bodies {
		if err := json.Unmarshal([]byte(b), &out[i]); err != nil {
			return nil, fmt.Errorf("sqlite: stored alert is not valid JSON: %w", err)
		}
	}
	return out, nil
}

// ListDeliveries implements billing.AlertStore.
func (s *Store) ListDeliveries(ctx context.Context, q billing.DeliveryQuery) ([]billing.Delivery, error) {
	var where []string
	var args []any
	if q.Status != "" {
		where, args = append(where, "d.status = ?"), append(args, string(q.Status))
	}
	if q.Tenant != "" {
		where, args = append(where, "d.tenant = ?"), append(args, q.Tenant)
	}
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	var rows []deliveryRow
	if err := s.r.SelectContext(ctx, &rows, `SELECT a.body, d.status, d.attempts, d.next_attempt, d.last_error, d.updated
		FROM deliveries d JOIN alerts a ON a.id = d.alert_id`+cond+` ORDER BY d.updated DESC, d.alert_id LIMIT ?`,
		append(args, limitOr100(q.Limit))...); err != nil {
		return nil, translate("list deliveries", err)
	}
	out := make([]billing.Delivery, 0, len(rows))
	for _, r := range rows {
		d, err := r.delivery()
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

func limitOr100(n int) int {
	if n <= 0 {
		return 100
	}
	return n
}
