package admin

// routes is the API: every endpoint, who may call it, and its documentation. Handler registers
// exactly these (plus the dashboard and the OpenAPI document), and openapi.go describes exactly
// these, so the two cannot drift apart.
func (h *handler) routes() []route {
	return []route{
		{Method: "GET", Path: "/v1/tenants", Access: readAll, Summary: "List tenants, ordered by id",
			Query: []string{"limit", "cursor"}, Fn: (*handler).listTenants},
		{Method: "GET", Path: "/v1/tenants/{tenant}/summary", Access: readTenant,
			Summary: "A tenant's plan, quota state per rule, rate-limit state and recent invoices", Fn: (*handler).summary},
		{Method: "GET", Path: "/v1/tenants/{tenant}/usage", Access: readTenant, Summary: "A tenant's usage over time",
			Query: []string{"resource", "from", "to", "window", "group_by"}, Fn: (*handler).usage},
		{Method: "POST", Path: "/v1/aggregate", Access: write, Summary: "Rebuild the usage rollups of a span from the events",
			Body: "AggregateRequest", Fn: (*handler).aggregate},

		{Method: "GET", Path: "/v1/tenants/{tenant}/rate-limits", Access: readAll, Summary: "A tenant's rate-limit state",
			Fn: (*handler).rateLimits},
		{Method: "DELETE", Path: "/v1/tenants/{tenant}/rate-limits", Access: write,
			Summary: "Reset every rate-limit counter of a tenant", Fn: (*handler).clearRateLimits},
		{Method: "DELETE", Path: "/v1/tenants/{tenant}/rate-limits/{resource}", Access: write,
			Summary: "Reset a tenant's rate-limit counter of one resource", Fn: (*handler).clearRateLimits},

		{Method: "GET", Path: "/v1/tenants/{tenant}/quotas", Access: readAll,
			Summary: "A tenant's effective quota rules and its own overrides", Fn: (*handler).listQuotas},
		{Method: "GET", Path: "/v1/tenants/{tenant}/quotas/{resource}/{period}", Access: readAll,
			Summary: "A tenant's effective quota rule for a resource and period", Fn: (*handler).getQuota},
		{Method: "PUT", Path: "/v1/tenants/{tenant}/quotas/{resource}/{period}", Access: write,
			Summary: "Set a tenant's own quota rule", Body: "QuotaBody", Fn: (*handler).putQuota},
		{Method: "DELETE", Path: "/v1/tenants/{tenant}/quotas/{resource}/{period}", Access: write,
			Summary: "Delete a tenant's own quota rule (the plan's applies again)", Fn: (*handler).deleteQuota},

		{Method: "GET", Path: "/v1/plans", Access: readAll, Summary: "List plans", Fn: (*handler).listPlans},
		{Method: "GET", Path: "/v1/plans/{id}", Access: readAll, Summary: "Get a plan", Fn: (*handler).getPlan},
		{Method: "PUT", Path: "/v1/plans/{id}", Access: write, Summary: "Create or replace a plan", Body: "Plan",
			Fn: (*handler).putPlan},
		{Method: "PUT", Path: "/v1/tenants/{tenant}/plan", Access: write, Summary: "Assign a plan to a tenant",
			Body: "PlanAssignment", Fn: (*handler).assignPlan},

		{Method: "GET", Path: "/v1/tenants/{tenant}/invoices", Access: readTenant, Summary: "List a tenant's invoices, newest period first",
			Query: []string{"status", "limit"}, Fn: (*handler).listInvoices},
		{Method: "POST", Path: "/v1/tenants/{tenant}/invoices", Access: write,
			Summary: "Generate (or regenerate) the draft invoice of a period", Body: "InvoiceRequest", Fn: (*handler).generateInvoice},
		{Method: "GET", Path: "/v1/invoices/{id}", Access: readTenant,
			Summary: "Get an invoice as json, csv, html or pdf (Accept header or ?format=)", Query: []string{"format"},
			Fn: (*handler).getInvoice},
		{Method: "POST", Path: "/v1/invoices/{id}/finalize", Access: write, Summary: "Finalize a draft invoice",
			Fn: (*handler).finalizeInvoice},
		{Method: "POST", Path: "/v1/invoices/{id}/void", Access: write, Summary: "Void a finalized invoice",
			Fn: (*handler).voidInvoice},
		{Method: "POST", Path: "/v1/invoices/{id}/pay", Access: write, Summary: "Mark a finalized invoice paid",
			Fn: (*handler).payInvoice},

		{Method: "GET", Path: "/v1/alerts", Access: readAll, Summary: "List quota alerts, newest first",
			Query: []string{"tenant", "limit"}, Fn: (*handler).listAlerts},
		{Method: "GET", Path: "/v1/webhooks/deliveries", Access: readAll, Summary: "List alert deliveries (the outbox), newest first",
			Query: []string{"tenant", "status", "limit"}, Fn: (*handler).listDeliveries},
		{Method: "GET", Path: "/v1/audit", Access: readAll, Summary: "List audit log entries, newest first",
			Query: []string{"tenant", "limit", "cursor"}, Fn: (*handler).listAudit},
	}
}
