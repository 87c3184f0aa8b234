package billing

import "context"

// Tenants returns the stored tenant records (those given a plan, an anchor day or their own
// rules), ordered by ID, starting after the ID after (empty: from the first), at most limit of
// them (0: all). To page, pass the last ID of a page as the next call's after. Safe for
// concurrent use.
func (m *Meter) Tenants(ctx context.Context, after string, limit int) ([]Tenant, error) {
	if limit < 0 {
		return nil, fieldErr(ErrInvalidQuery, "limit", "must be >= 0 (got %d)", limit)
	}
	return m.cfg.Store.ListTenants(ctx, after, limit)
}
