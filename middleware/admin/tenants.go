package admin

import (
	"strings"
	"time"

	"github.com/meterplane/billing"
)

// listTenants answers GET /v1/tenants?limit&cursor: a page of tenant records; next_cursor is
// the cursor of the next page, absent on the last.
func (h *handler) listTenants(c *call) error {
	limit, err := c.queryInt("limit", 100, 1000)
	if err != nil {
		return err
	}
	ts, err := h.m.Tenants(c.ctx(), c.r.URL.Query().Get("cursor"), limit+1)
	if err != nil {
		return err
	}
	out := page[billing.Tenant]{Data: ts}
	if len(ts) > limit {
		out.Data = ts[:limit]
		out.NextCursor = ts[limit-1].ID
	}
	return c.writeJSON(out)
}

// Summary is the body of GET /v1/tenants/{tenant}/summary.
type Summary struct {
	// Tenant is the stored record: plan, anchor day and own rules.
	Tenant billing.Tenant `json:"tenant"`
	// Quotas is the state of each rule in its current period: used, limit, percent, reset
	// (bucket.end), soft or hard.
	Quotas []billing.QuotaState `json:"quotas"`
	// RateLimits is the state of each rate policy.
	RateLimits []billing.RateLimitState `json:"rate_limits"`
	// Invoices are the most recent invoices, newest period first (at most 12).
	Invoices []*billing.Invoice `json:"invoices"`
}

// summary answers GET /v1/tenants/{tenant}/summary.
func (h *handler) summary(c *call) error {
	tenant := c.r.PathValue("tenant")
	info, err := h.m.TenantInfo(c.ctx(), tenant)
	if err != nil {
		return err
	}
	qs, err := h.m.QuotaStatus(c.ctx(), tenant)
	if err != nil {
		return err
	}
	rs, err := h.m.RateLimitStatus(c.ctx(), tenant)
	if err != nil {
		return err
	}
	invs, err := h.m.Invoices(c.ctx(), billing.InvoiceQuery{Tenant: tenant, Limit: 12})
	if err != nil {
		return err
	}
	return c.writeJSON(Summary{Tenant: info, Quotas: nonNil(qs), RateLimits: nonNil(rs), Invoices: nonNil(invs)})
}

// usage answers GET /v1/tenants/{tenant}/usage?resource&from&to&window&group_by: usage rows
// (see billing.Meter.Usage). window defaults to day; group_by is a comma-separated list.
func (h *handler) usage(c *call) error {
	q := c.r.URL.Query()
	uq := billing.UsageQuery{Tenant: c.r.PathValue("tenant"), Resource: q.Get("resource"),
		Window: billing.Period(q.Get("window"))}
	if uq.Window == "" {
		uq.Window = billing.PeriodDay
	}
	var err error
	if uq.From, err = c.queryTime("from"); err != nil {
		return err
	}
	if uq.To, err = c.queryTime("to"); err != nil {
		return err
	}
	if g := q.Get("group_by"); g != "" {
		uq.GroupBy = strings.Split(g, ",")
	}
	rows, err := h.m.Usage(c.ctx(), uq)
	if err != nil {
		return err
	}
	return c.writeJSON(page[billing.UsageRow]{Data: nonNil(rows)})
}

// AggregateRequest is the body of POST /v1/aggregate: rebuild the rollups of [from, to) (widened
// to whole months) from the stored events, for one tenant or, when it is empty, for all.
type AggregateRequest struct {
	Tenant string    `json:"tenant,omitempty"`
	From   time.Time `json:"from"`
	To     time.Time `json:"to"`
}

// aggregate answers POST /v1/aggregate.
func (h *handler) aggregate(c *call) error {
	var req AggregateRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	if req.From.IsZero() || req.To.IsZero() || !req.From.Before(req.To) {
		return badParam("from", "from and to are required, with from before to")
	}
	if err := h.m.RebuildRollups(c.ctx(), req.Tenant, billing.Span{Start: req.From, End: req.To}); err != nil {
		return err
	}
	if err := h.audit(c, "rollups.rebuild", req.Tenant, "rollups", nil, req); err != nil {
		return err
	}
	return c.writeJSON(map[string]any{"rebuilt": req})
}

// audit records a change made by c's principal.
func (h *handler) audit(c *call, action, tenant, target string, before, after any) error {
	_, err := h.m.Audit(c.ctx(), billing.AuditEntry{Principal: c.p.Name, Action: action, Tenant: tenant,
		Target: target, Before: marshal(before), After: marshal(after)})
	return err
}

// nonNil returns s, or an empty slice for nil, so JSON lists are [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
