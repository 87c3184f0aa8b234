package billing

import (
	"context"
	"sort"
)

// Tenants returns the tenants the Meter knows, ordered by ID: those with a stored record (a plan,
// an anchor day or rules of their own) and those that only have usage (Tenant{ID: id}). It starts
// after the ID after (empty: from the first) and returns at most limit of them (0: all); to page,
// pass the last ID of a page as the next call's after. It reads every record and the all-time
// usage buckets, so its cost grows with the number of tenants. Safe for concurrent use.
func (m *Meter) Tenants(ctx context.Context, after string, limit int) ([]Tenant, error) {
	if limit < 0 {
		return nil, fieldErr(ErrInvalidQuery, "limit", "must be >= 0 (got %d)", limit)
	}
	byID := map[string]Tenant{}
	if err := m.eachTenant(ctx, func(t Tenant) { byID[t.ID] = t }); err != nil {
		return nil, err
	}
	rows, err := m.cfg.Store.QueryRollups(ctx, RollupQuery{Period: PeriodTotal})
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		if _, ok := byID[r.Tenant]; !ok {
			byID[r.Tenant] = Tenant{ID: r.Tenant}
		}
	}
	ids := make([]string, 0, len(byID))
	for id := range byID {
		if id > after {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	if limit > 0 && len(ids) > limit {
		ids = ids[:limit]
	}
	out := make([]Tenant, len(ids))
	for i, id := range ids {
		out[i] = byID[id]
	}
	return out, nil
}
