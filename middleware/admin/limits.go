package admin

import (
	"fmt"

	"github.com/meterplane/billing"
)

// rateLimits answers GET /v1/tenants/{tenant}/rate-limits.
func (h *handler) rateLimits(c *call) error {
	rs, err := h.m.RateLimitStatus(c.ctx(), c.r.PathValue("tenant"))
	if err != nil {
		return err
	}
	return c.writeJSON(page[billing.RateLimitState]{Data: nonNil(rs)})
}

// clearRateLimits answers DELETE /v1/tenants/{tenant}/rate-limits[/{resource}]: a full burst
// again, for one resource or all.
func (h *handler) clearRateLimits(c *call) error {
	tenant, resource := c.r.PathValue("tenant"), c.r.PathValue("resource")
	before, err := h.m.RateLimitStatus(c.ctx(), tenant)
	if err != nil {
		return err
	}
	if err := h.m.ClearRateLimit(c.ctx(), tenant, resource); err != nil {
		return err
	}
	after, err := h.m.RateLimitStatus(c.ctx(), tenant)
	if err != nil {
		return err
	}
	target := "rate-limits"
	if resource != "" {
		target += "/" + resource
	}
	if err := h.audit(c, "rate_limit.clear", tenant, target, before, after); err != nil {
		return err
	}
	return c.writeJSON(page[billing.RateLimitState]{Data: nonNil(after)})
}

// Quotas is the body of GET /v1/tenants/{tenant}/quotas.
type Quotas struct {
	// Rules are the rules that apply: the tenant's own and its plan's, merged.
	Rules []billing.QuotaRule `json:"rules"`
	// Own are the tenant's own rules, which override the plan's.
	Own []billing.QuotaRule `json:"own"`
}

// listQuotas answers GET /v1/tenants/{tenant}/quotas.
func (h *handler) listQuotas(c *call) error {
	tenant := c.r.PathValue("tenant")
	rules, err := h.m.Quotas(c.ctx(), tenant)
	if err != nil {
		return err
	}
	info, err := h.m.TenantInfo(c.ctx(), tenant)
	if err != nil {
		return err
	}
	return c.writeJSON(Quotas{Rules: nonNil(rules), Own: nonNil(info.Quotas)})
}

// getQuota answers GET /v1/tenants/{tenant}/quotas/{resource}/{period}: the rule that applies.
func (h *handler) getQuota(c *call) error {
	tenant, resource, period := c.r.PathValue("tenant"), c.r.PathValue("resource"), billing.Period(c.r.PathValue("period"))
	rules, err := h.m.Quotas(c.ctx(), tenant)
	if err != nil {
		return err
	}
	for _, q := range rules {
		if q.Resource == resource && q.Period == period {
			return c.writeJSON(q)
		}
	}
	return fmt.Errorf("%w: no quota rule for %s per %s", errNotFound, resource, period)
}

// ownQuota returns the tenant's own rule for resource and period, or nil.
func (h *handler) ownQuota(c *call, tenant, resource string, period billing.Period) (*billing.QuotaRule, error) {
	info, err := h.m.TenantInfo(c.ctx(), tenant)
	if err != nil {
		return nil, err
	}
	for _, q := range info.Quotas {
		if q.Resource == resource && q.Period == period {
			q.Tenant = tenant
			return &q, nil
		}
	}
	return nil, nil
}

// QuotaBody is the body of PUT /v1/tenants/{tenant}/quotas/{resource}/{period}; the tenant,
// resource and period come from the path.
type QuotaBody struct {
	Limit    *int64 `json:"limit"` // required
	Hard     bool   `json:"hard"`
	NotifyAt []int  `json:"notify_at"`
}

// putQuota answers PUT /v1/tenants/{tenant}/quotas/{resource}/{period}.
func (h *handler) putQuota(c *call) error {
	var body QuotaBody
	if err := c.decode(&body); err != nil {
		return err
	}
	if body.Limit == nil {
		return badParam("limit", "is required: the most units per period")
	}
	tenant, resource, period := c.r.PathValue("tenant"), c.r.PathValue("resource"), billing.Period(c.r.PathValue("period"))
	before, err := h.ownQuota(c, tenant, resource, period)
	if err != nil {
		return err
	}
	rule := billing.QuotaRule{Tenant: tenant, Resource: resource, Period: period, Limit: *body.Limit, Hard: body.Hard,
		NotifyAt: body.NotifyAt}
	if err := h.m.SetQuota(c.ctx(), rule); err != nil {
		return err
	}
	after, err := h.ownQuota(c, tenant, resource, period)
	if err != nil {
		return err
	}
	if err := h.audit(c, "quota.put", tenant, "quotas/"+resource+"/"+string(period), before, after); err != nil {
		return err
	}
	return c.writeJSON(after)
}

// deleteQuota answers DELETE /v1/tenants/{tenant}/quotas/{resource}/{period}.
func (h *handler) deleteQuota(c *call) error {
	tenant, resource, period := c.r.PathValue("tenant"), c.r.PathValue("resource"), billing.Period(c.r.PathValue("period"))
	before, err := h.ownQuota(c, tenant, resource, period)
	if err != nil {
		return err
	}
	if err := h.m.DeleteQuota(c.ctx(), tenant, resource, period); err != nil {
		return err
	}
	if err := h.audit(c, "quota.delete", tenant, "quotas/"+resource+"/"+string(period), before, nil); err != nil {
		return err
	}
	c.w.WriteHeader(204)
	return nil
}

// listPlans answers GET /v1/plans.
func (h *handler) listPlans(c *call) error {
	ps, err := h.m.Plans(c.ctx())
	if err != nil {
		return err
	}
	return c.writeJSON(page[billing.Plan]{Data: nonNil(ps)})
}

// getPlan answers GET /v1/plans/{id}.
func (h *handler) getPlan(c *call) error {
	p, err := h.m.Plan(c.ctx(), c.r.PathValue("id"))
	if err != nil {
		return err
	}
	return c.writeJSON(p)
}

// putPlan answers PUT /v1/plans/{id}: the body is the plan; its id may be omitted and must
// otherwise equal the path's.
func (h *handler) putPlan(c *call) error {
	var p billing.Plan
	if err := c.decode(&p); err != nil {
		return err
	}
	id := c.r.PathValue("id")
	if p.ID != "" && p.ID != id {
		return badParam("id", "the body's id %q differs from the path's %q", p.ID, id)
	}
	p.ID = id
	var before any
	if old, err := h.m.Plan(c.ctx(), id); err == nil {
		before = old
	}
	if err := h.m.SetPlan(c.ctx(), p); err != nil {
		return err
	}
	after, err := h.m.Plan(c.ctx(), id)
	if err != nil {
		return err
	}
	if err := h.audit(c, "plan.put", "", "plans/"+id, before, after); err != nil {
		return err
	}
	return c.writeJSON(after)
}

// PlanAssignment is the body of PUT /v1/tenants/{tenant}/plan.
type PlanAssignment struct {
	PlanID string `json:"plan_id"`
}

// assignPlan answers PUT /v1/tenants/{tenant}/plan.
func (h *handler) assignPlan(c *call) error {
	var body PlanAssignment
	if err := c.decode(&body); err != nil {
		return err
	}
	if body.PlanID == "" {
		return badParam("plan_id", "is required")
	}
	if _, err := h.m.Plan(c.ctx(), body.PlanID); err != nil {
		return err
	}
	tenant := c.r.PathValue("tenant")
	before, err := h.m.TenantInfo(c.ctx(), tenant)
	if err != nil {
		return err
	}
	if err := h.m.AssignPlan(c.ctx(), tenant, body.PlanID); err != nil {
		return err
	}
	after, err := h.m.TenantInfo(c.ctx(), tenant)
	if err != nil {
		return err
	}
	if err := h.audit(c, "plan.assign", tenant, "plan", before, after); err != nil {
		return err
	}
	return c.writeJSON(after)
}
