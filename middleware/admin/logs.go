package admin

import (
	"strconv"

	"github.com/meterplane/billing"
)

// listAlerts answers GET /v1/alerts?tenant&limit.
func (h *handler) listAlerts(c *call) error {
	limit, err := c.queryInt("limit", 100, 1000)
	if err != nil {
		return err
	}
	as, err := h.m.Alerts(c.ctx(), billing.AlertQuery{Tenant: c.r.URL.Query().Get("tenant"), Limit: limit})
	if err != nil {
		return err
	}
	return c.writeJSON(page[billing.Alert]{Data: nonNil(as)})
}

// listDeliveries answers GET /v1/webhooks/deliveries?tenant&status&limit.
func (h *handler) listDeliveries(c *call) error {
	limit, err := c.queryInt("limit", 100, 1000)
	if err != nil {
		return err
	}
	q := c.r.URL.Query()
	status := billing.DeliveryStatus(q.Get("status"))
	switch status {
	case "", billing.DeliveryPending, billing.DeliveryDelivered, billing.DeliveryDead:
	default:
		return badParam("status", "must be pending, delivered or dead (got %q)", status)
	}
	ds, err := h.m.Deliveries(c.ctx(), billing.DeliveryQuery{Tenant: q.Get("tenant"), Status: status, Limit: limit})
	if err != nil {
		return err
	}
	return c.writeJSON(page[billing.Delivery]{Data: nonNil(ds)})
}

// listAudit answers GET /v1/audit?tenant&limit&cursor: entries newest first; next_cursor pages on.
func (h *handler) listAudit(c *call) error {
	limit, err := c.queryInt("limit", 100, 1000)
	if err != nil {
		return err
	}
	q := billing.AuditQuery{Tenant: c.r.URL.Query().Get("tenant"), Limit: limit + 1}
	if cur := c.r.URL.Query().Get("cursor"); cur != "" {
		if q.Before, err = strconv.ParseInt(cur, 10, 64); err != nil || q.Before < 1 {
			return badParam("cursor", "must be a next_cursor from a previous page (got %q)", cur)
		}
	}
	es, err := h.m.AuditLog(c.ctx(), q)
	if err != nil {
		return err
	}
	out := page[billing.AuditEntry]{Data: nonNil(es)}
	if len(es) > limit {
		out.Data = es[:limit]
		out.NextCursor = strconv.FormatInt(es[limit-1].ID, 10)
	}
	return c.writeJSON(out)
}
