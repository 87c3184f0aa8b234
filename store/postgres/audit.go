package postgres

import (
	"context"
	"encoding/json"
	"strconv"

	"github.com/meterplane/billing"
)

// AppendAudit implements billing.AuditStore. IDs come from an identity column: an entry appended
// after another's AppendAudit returned gets a larger ID, in any process. Before and After are
// stored as given, byte for byte.
func (s *Store) AppendAudit(ctx context.Context, e billing.AuditEntry) (int64, error) {
	var id int64
	err := s.pool.QueryRow(ctx, `INSERT INTO audit (at, tenant, principal, action, target, before, after)
		VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`, e.At, e.Tenant, e.Principal, e.Action, e.Target,
		auditJSON(e.Before), auditJSON(e.After)).Scan(&id)
	if err != nil {
		return 0, translate("append audit", err)
	}
	return id, nil
}

// ListAudit implements billing.AuditStore.
func (s *Store) ListAudit(ctx context.Context, q billing.AuditQuery) ([]billing.AuditEntry, error) {
	query, args := `SELECT id, at, tenant, principal, action, target, before, after FROM audit WHERE true`,
		[]any{recordsLimit(q.Limit)}
	if q.Tenant != "" {
		args = append(args, q.Tenant)
		query += ` AND tenant = $` + strconv.Itoa(len(args))
	}
	if q.Before > 0 {
		args = append(args, q.Before)
		query += ` AND id < $` + strconv.Itoa(len(args))
	}
	rows, err := s.pool.Query(ctx, query+` ORDER BY id DESC LIMIT $1`, args...)
	if err != nil {
		return nil, translate("list audit", err)
	}
	defer rows.Close()
	var out []billing.AuditEntry
	for rows.Next() {
		var (
			e             billing.AuditEntry
			before, after *string
		)
		if err := rows.Scan(&e.ID, &e.At, &e.Tenant, &e.Principal, &e.Action, &e.Target, &before, &after); err != nil {
			return nil, translate("list audit", err)
		}
		e.At = e.At.UTC()
		if before != nil {
			e.Before = json.RawMessage(*before)
		}
		if after != nil {
			e.After = json.RawMessage(*after)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, translate("list audit", err)
	}
	return out, nil
}

// auditJSON is the value stored for a Before or After: the JSON text, or NULL when empty.
func auditJSON(raw json.RawMessage) any {
	if len(raw) == 0 {
		return nil
	}
	return string(raw)
}
