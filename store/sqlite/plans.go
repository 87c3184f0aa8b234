package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/meterplane/billing"
)

// PutPlan implements billing.PlanStore.
func (s *Store) PutPlan(ctx context.Context, p billing.Plan) error {
	body, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("sqlite: encode plan %q: %w", p.ID, err)
	}
	_, err = s.w.ExecContext(ctx, `INSERT INTO plans (id, body, updated) VALUES (?, ?, strftime('%s','now') * 1000000000)
		ON CONFLICT (id) DO UPDATE SET body = excluded.body, updated = excluded.updated`, p.ID, string(body))
	return translate("put plan", err)
}

// GetPlan implements billing.PlanStore.
func (s *Store) GetPlan(ctx context.Context, id string) (billing.Plan, error) {
	var body string
	err := s.r.GetContext(ctx, &body, `SELECT body FROM plans WHERE id = ?`, id)
	if errors.Is(err, sql.ErrNoRows) {
		return billing.Plan{}, fmt.Errorf("%w: plan %q", billing.ErrNotFound, id)
	}
	if err != nil {
		return billing.Plan{}, translate("get plan", err)
	}
	var p billing.Plan
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		return billing.Plan{}, fmt.Errorf("sqlite: stored plan %q is not valid JSON: %w", id, err)
	}
	return p, nil
}

// ListPlans implements billing.PlanStore.
func (s *Store) ListPlans(ctx context.Context) ([]billing.Plan, error) {
	var bodies []string
	if err := s.r.SelectContext(ctx, &bodies, `SELECT body FROM plans ORDER BY id`); err != nil {
		return nil, translate("list plans", err)
	}
	out := make([]billing.Plan, len(bodies))
	for i, b := range bodies {
		if err := json.Unmarshal([]byte(b), &out[i]); err != nil {
			return nil, fmt.Errorf("sqlite: stored plan is not valid JSON: %w", err)
		}
	}
	return out, nil
}

// GetTenant implements billing.PlanStore.
func (s *Store) GetTenant(ctx context.Context, id string) (billing.Tenant, error) {
	var body string
	err := s.r.GetContext(ctx, &body, `SELECT body FROM tenants WHERE id = ?`, id)
	if errors.Is(err, sql.ErrNoRows) {
		return billing.Tenant{}, fmt.Errorf("%w: tenant %q", billing.ErrNotFound, id)
	}
	if err != nil {
		return billing.Tenant{}, translate("get tenant", err)
	}
	var t billing.Tenant
	if err := json.Unmarshal([]byte(body), &t); err != nil {
		return billing.Tenant{}, fmt.Errorf("sqlite: stored tenant %q is not valid JSON: %w", id, err)
	}
	return t, nil
}

// UpdateTenant implements billing.PlanStore in one IMMEDIATE transaction.
func (s *Store) UpdateTenant(ctx context.Context, id string, fn func(t *billing.Tenant) error) (billing.Tenant, error) {
	tx, err := s.w.BeginTxx(ctx, nil)
	if err != nil {
		return billing.Tenant{}, translate("begin tenant update", err)
	}
	defer tx.Rollback()
	t := billing.Tenant{ID: id}
	var body string
	switch err := tx.GetContext(ctx, &body, `SELECT body FROM tenants WHERE id = ?`, id); {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return billing.Tenant{}, translate("read tenant", err)
	default:
		if err := json.Unmarshal([]byte(body), &t); err != nil {
			return billing.Tenant{}, fmt.Errorf("sqlite: stored tenant %q is not valid JSON: %w", id, err)
		}
	}
	if err := fn(&t); err != nil {
		return billing.Tenant{}, err
	}
	t.ID = id
	b, err := json.Marshal(t)
	if err != nil {
		return billing.Tenant{}, fmt.Errorf("sqlite: encode tenant %q: %w", id, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO tenants (id, plan_id, body, updated) VALUES (?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET plan_id = excluded.plan_id, body = excluded.body, updated = excluded.updated`,
		id, t.PlanID, string(b), t.Updated.UnixNano()); err != nil {
		return billing.Tenant{}, translate("write tenant", err)
	}
	if err := tx.Commit(); err != nil {
		return billing.Tenant{}, translate("commit tenant update", err)
	}
	return t, nil
}

// ListTenants implements billing.PlanStore.
func (s *Store) ListTenants(ctx context.Context, after string, limit int) ([]billing.Tenant, error) {
	if limit <= 0 {
		limit = -1
	}
	var bodies []string
	if err := s.r.SelectContext(ctx, &bodies, `SELECT body FROM tenants WHERE id > ? ORDER BY id LIMIT ?`, after, limit); err != nil {
		return nil, translate("list tenants", err)
	}
	out := make([]billing.Tenant, len(bodies))
	for i, b := range bodies {
		if err := json.Unmarshal([]byte(b), &out[i]); err != nil {
			return nil, fmt.Errorf("sqlite: stored tenant is not valid JSON: %w", err)
		}
	}
	return out, nil
}
