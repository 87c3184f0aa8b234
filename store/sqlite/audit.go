package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"time"

	"github.com/meterplane/billing"
)

// AppendAudit implements billing.AuditStore.
func (s *Store) AppendAudit(ctx context.Context, e billing.AuditEntry) (int64, error) {
	res, err := s.w.ExecContext(ctx, `INSERT INTO audit (at, tenant, principal, action, target, before, after)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, e.At.UnixNano(), e.Tenant, e.Principal, e.Action, e.Target,
		rawOrNull(e.Before), rawOrNull(e.After))
	if err != nil {
		return 0, translate("append audit", err)
	}
	id, err := res.LastInsertId()
	return id, translate("append audit", err)
}

type auditRow struct {
	ID        int64          `db:"id"`
	At        int64          `db:"at"`
	Tenant    string         `db:"tenant"`
	Principal string         `db:"principal"`
	Action    string         `db:"action"`
	Target    string         `db:"target"`
	Before    sql.NullString `db:"before"`
	After     sql.NullString `db:"after"`
}

// ListAudit implements billing.AuditStore.
func (s *Store) ListAudit(ctx context.Context, q billing.AuditQuery) ([]billing.AuditEntry, error) {
	query, args := `SELECT id, at, tenant, principal, action, target, before, after FROM audit WHERE 1=1`, []any{}
	if q.Tenant != "" {
		query, args = query+` AND tenant = ?`, append(args, q.Tenant)
	}
	if q.Before > 0 {
		query, args = query+` AND id < ?`, append(args, q.Before)
	}
	var rows []auditRow
	if err := s.r.SelectContext(ctx, &rows, query+` ORDER BY id DESC LIMIT ?`, append(args, limitOr100(q.Limit))...); err != nil {
		return nil, translate("list audit", err)
	}
	out := make([]billing.AuditEntry, len(rows))
	for i, r := range rows {
		out[i] = billing.AuditEntry{ID: r.ID, At: time.Unix(0, r.At).UTC(), Tenant: r.Tenant, Principal: r.Principal,
			Action: r.Action, Target: r.Target}
		if r.Before.Valid {
			out[i].Before = json.RawMessage(r.Before.String)
		}
		if r.After.Valid {
			out[i].After = json.RawMessage(r.After.String)
		}
	}
	return out, nil
}

func rawOrNull(raw json.RawMessage) any {
	if len(raw) == 0 {
		return nil
	}
	return string(raw)
}
