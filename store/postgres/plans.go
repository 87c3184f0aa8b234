package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/meterplane/billing"
)

// PutPlan implements billing.PlanStore.
func (s *Store) PutPlan(ctx context.Context, p billing.Plan) error {
	body, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("postgres: encode plan %q: %w", p.ID, err)
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO plans (id, body, updated) VALUES ($1, $2, now())
		ON CONFLICT (id) DO UPDATE SET body = excluded.body, updated = excluded.updated`, p.ID, string(body))
	return translate("put plan", err)
}

// GetPlan implements billing.PlanStore.
func (s *Store) GetPlan(ctx context.Context, id string) (billing.Plan, error) {
	var body []byte
	err := s.pool.QueryRow(ctx, `SELECT body FROM plans WHERE id = $1`, id).Scan(&body)
	if errors.Is(err, pgx.ErrNoRows) {
		return billing.Plan{}, fmt.Errorf("%w: plan %q", billing.ErrNotFound, id)
	}
	if err != nil {
		return billing.Plan{}, translate("get plan", err)
	}
	var p billing.Plan
	if err := json.Unmarshal(body, &p); err != nil {
		return billing.Plan{}, fmt.Errorf("postgres: stored plan %q is not valid JSON: %w", id, err)
	}
	return p, nil
}

// ListPlans implements billing.PlanStore. Plans are ordered by ID byte-wise, like Go strings.
func (s *Store) ListPlans(ctx context.Context) ([]billing.Plan, error) {
	rows, err := s.pool.Query(ctx, `SELECT body FROM plans ORDER BY id COLLATE "C"`)
	if err != nil {
		return nil, translate("list plans", err)
	}
	return scanJSONRows[billing.Plan](rows, "list plans", "plan")
}

// GetTenant implements billing.PlanStore.
func (s *Store) GetTenant(ctx context.Context, id string) (billing.Tenant, error) {
	var body []byte
	err := s.pool.QueryRow(ctx, `SELECT body FROM tenants WHERE id = $1`, id).Scan(&body)
	if errors.Is(err, pgx.ErrNoRows) {
		return billing.Tenant{}, fmt.Errorf("%w: tenant %q", billing.ErrNotFound, id)
	}
	if err != nil {
		return billing.Tenant{}, translate("get tenant", err)
	}
	var t billing.Tenant
	if err := json.Unmarshal(body, &t); err != nil {
		return billing.Tenant{}, fmt.Errorf("postgres: stored tenant %q is not valid JSON: %w", id, err)
	}
	return t, nil
}

// UpdateTenant implements billing.PlanStore. The record's row is created if missing and locked
// (SELECT ... FOR UPDATE) for the transaction that calls fn and stores the result, so concurrent
// updates of one tenant, from any number of processes, run one after the other. fn may be called
// again when the transaction must be retried after a deadlock or serialization failure; it should
// only change t.
func (s *Store) UpdateTenant(ctx context.Context, id string, fn func(t *billing.Tenant) error) (billing.Tenant, error) {
	var out billing.Tenant
	err := s.recordsTx(ctx, "update tenant", false, func(tx pgx.Tx) error {
		// A missing record is inserted first, as a placeholder the transaction then locks: a
		// concurrent creator waits on the unique key until this transaction ends, and then sees
		// the stored record. A rollback (fn failed) removes the placeholder.
		if _, err := tx.Exec(ctx, `INSERT INTO tenants (id, plan_id, body, updated) VALUES ($1, '', 'null', now())
			ON CONFLICT (id) DO NOTHING`, id); err != nil {
			return translate("create tenant", err)
		}
		var body []byte
		if err := tx.QueryRow(ctx, `SELECT body FROM tenants WHERE id = $1 FOR UPDATE`, id).Scan(&body); err != nil {
			return translate("lock tenant", err)
		}
		t := billing.Tenant{ID: id}
		if string(body) != "null" {
			if err := json.Unmarshal(body, &t); err != nil {
				return fmt.Errorf("postgres: stored tenant %q is not valid JSON: %w", id, err)
			}
		}
		if err := fn(&t); err != nil {
			return userError{err}
		}
		t.ID = id
		b, err := json.Marshal(t)
		if err != nil {
			return fmt.Errorf("postgres: encode tenant %q: %w", id, err)
		}
		if _, err := tx.Exec(ctx, `UPDATE tenants SET plan_id = $2, body = $3, updated = $4 WHERE id = $1`,
			id, t.PlanID, string(b), t.Updated); err != nil {
			return translate("write tenant", err)
		}
		out = t
		return nil
	})
	if err != nil {
		return billing.Tenant{}, err
	}
	return out, nil
}

// ListTenants implements billing.PlanStore. IDs are ordered and compared byte-wise, like Go
// strings, whatever the database's collation.
func (s *Store) ListTenants(ctx context.Context, after string, limit int) ([]billing.Tenant, error) {
	var lim any // NULL: no limit
	if limit > 0 {
		lim = limit
	}
	rows, err := s.pool.Query(ctx, `SELECT body FROM tenants WHERE (id COLLATE "C") > $1
		ORDER BY (id COLLATE "C") LIMIT $2`, after, lim)
	if err != nil {
		return nil, translate("list tenants", err)
	}
	return scanJSONRows[billing.Tenant](rows, "list tenants", "tenant")
}

// scanJSONRows decodes rows of one JSON column into values of T, and closes rows.
func scanJSONRows[T any](rows pgx.Rows, op, what string) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		var body []byte
		if err := rows.Scan(&body); err != nil {
			return nil, translate(op, err)
		}
		var v T
		if err := json.Unmarshal(body, &v); err != nil {
			return nil, fmt.Errorf("postgres: stored %s is not valid JSON: %w", what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, translate(op, err)
	}
	return out, nil
}

// userError carries an error of the caller's (UpdateTenant's fn) out of recordsTx unchanged.
type userError struct{ err error }

func (e userError) Error() string { return e.err.Error() }

// recordsTxAttempts bounds how many times recordsTx runs a transaction that keeps failing with
// a deadlock, a serialization failure or a unique violation of a concurrent insert.
const recordsTxAttempts = 8

// recordsTx runs fn in a transaction and commits it, running it again (in a new transaction)
// when it failed with a deadlock or a serialization failure, or, when retryUnique is set, with a
// unique violation (a concurrent transaction inserted the same key first: the next run sees its
// row). An error fn wrapped in userError is returned unwrapped, as is.
func (s *Store) recordsTx(ctx context.Context, op string, retryUnique bool, fn func(tx pgx.Tx) error) error {
	var err error
	for attempt := 0; attempt < recordsTxAttempts; attempt++ {
		err = s.recordsTxOnce(ctx, op, fn)
		var ue userError
		if errors.As(err, &ue) {
			return ue.err
		}
		if err == nil || ctx.Err() != nil || !(retryable(err) || retryUnique && uniqueViolation(err)) {
			return err
		}
	}
	return fmt.Errorf("postgres: %s: gave up after %d attempts that conflicted with concurrent writers: %w", op, recordsTxAttempts, err)
}

func (s *Store) recordsTxOnce(ctx context.Context, op string, fn func(tx pgx.Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return translate("begin "+op, err)
	}
	defer tx.Rollback(context.Background())
	if err := fn(tx); err != nil {
		return err
	}
	return translate("commit "+op, tx.Commit(ctx))
}

// uniqueViolation reports whether err is a unique violation: a concurrent transaction inserted
// the same key first.
func uniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}
