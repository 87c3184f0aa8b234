package admin

import (
	"bytes"
	"fmt"
	"mime"
	"strings"
	"time"

	"github.com/meterplane/billing"
	"github.com/meterplane/billing/middleware"
)

// listInvoices answers GET /v1/tenants/{tenant}/invoices?status&limit.
func (h *handler) listInvoices(c *call) error {
	limit, err := c.queryInt("limit", 100, 1000)
	if err != nil {
		return err
	}
	status := billing.InvoiceStatus(c.r.URL.Query().Get("status"))
	switch status {
	case "", billing.InvoiceDraft, billing.InvoiceFinalized, billing.InvoicePaid, billing.InvoiceVoid:
	default:
		return badParam("status", "must be draft, finalized, paid or void (got %q)", status)
	}
	invs, err := h.m.Invoices(c.ctx(), billing.InvoiceQuery{Tenant: c.r.PathValue("tenant"), Status: status, Limit: limit})
	if err != nil {
		return err
	}
	return c.writeJSON(page[*billing.Invoice]{Data: nonNil(invs)})
}

// InvoiceRequest is the body of POST /v1/tenants/{tenant}/invoices: the period to invoice.
// Both bounds zero means the tenant's billing cycle containing At, or now when At is zero too.
type InvoiceRequest struct {
	Start time.Time `json:"start,omitzero"`
	End   time.Time `json:"end,omitzero"`
	At    time.Time `json:"at,omitzero"`
}

// generateInvoice answers POST /v1/tenants/{tenant}/invoices with the draft.
func (h *handler) generateInvoice(c *call) error {
	var req InvoiceRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	tenant := c.r.PathValue("tenant")
	span := billing.Span{Start: req.Start, End: req.End}
	if span.Start.IsZero() && span.End.IsZero() {
		at := req.At
		if at.IsZero() {
			at = h.opts.Now()
		}
		var err error
		if span, err = h.m.BillingCycle(c.ctx(), tenant, at); err != nil {
			return err
		}
	}
	inv, err := h.m.GenerateInvoice(c.ctx(), tenant, span)
	if err != nil {
		return err
	}
	if err := h.audit(c, "invoice.generate", tenant, "invoices/"+inv.ID, nil, inv); err != nil {
		return err
	}
	return c.writeJSON(inv)
}

// invoiceFor returns the invoice of the path's {id}, hiding other tenants' invoices from a
// tenant principal.
func (h *handler) invoiceFor(c *call) (*billing.Invoice, error) {
	inv, err := h.m.Invoice(c.ctx(), c.r.PathValue("id"))
	if err != nil {
		return nil, fmt.Errorf("%w: no such invoice", errNotFound)
	}
	if c.p.Role == RoleTenant && inv.Tenant != c.p.Tenant {
		return nil, errHidden
	}
	return inv, nil
}

// invoiceFormats are the renderings of an invoice, by ?format= name.
var invoiceFormats = map[string]struct {
	contentType string
	write       func(inv *billing.Invoice, b *bytes.Buffer) error
}{
	"json": {"application/json", func(i *billing.Invoice, b *bytes.Buffer) error { return i.WriteJSON(b) }},
	"csv":  {"text/csv; charset=utf-8", func(i *billing.Invoice, b *bytes.Buffer) error { return i.WriteCSV(b) }},
	"html": {"text/html; charset=utf-8", func(i *billing.Invoice, b *bytes.Buffer) error { return i.WriteHTML(b) }},
	"pdf":  {"application/pdf", func(i *billing.Invoice, b *bytes.Buffer) error { return i.WritePDF(b) }},
}

// formatOf picks the rendering: ?format= first, else the first Accept type we serve, else JSON.
func formatOf(query, accept string) (string, error) {
	if query != "" {
		if _, ok := invoiceFormats[query]; !ok {
			return "", badParam("format", "must be json, csv, html or pdf (got %q)", query)
		}
		return query, nil
	}
	for _, part := range strings.Split(accept, ",") {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch mt {
		case "application/json", "*/*", "application/*":
			return "json", nil
		case "text/csv":
			return "csv", nil
		case "text/html":
			return "html", nil
		case "application/pdf":
			return "pdf", nil
		}
	}
	return "json", nil
}

// getInvoice answers GET /v1/invoices/{id}?format=json|csv|html|pdf (or by Accept).
func (h *handler) getInvoice(c *call) error {
	inv, err := h.invoiceFor(c)
	if err != nil {
		return err
	}
	name, err := formatOf(c.r.URL.Query().Get("format"), c.r.Header.Get("Accept"))
	if err != nil {
		return err
	}
	f := invoiceFormats[name]
	var b bytes.Buffer
	if err := f.write(inv, &b); err != nil {
		return err
	}
	c.w.Header().Set("Content-Type", f.contentType)
	c.w.Header().Set("Vary", "Accept")
	if name != "json" && name != "html" {
		file := inv.Number
		if file == "" {
			file = inv.ID
		}
		c.w.Header().Set("Content-Disposition", fmt.Sprintf("inline; filename=%q", file+"."+name))
	}
	_, _ = c.w.Write(b.Bytes())
	return nil
}

// transition runs one invoice status change, refusing with 409 an invoice not in a status it
// applies to, and audits it.
func (h *handler) transition(c *call, action string, from []billing.InvoiceStatus,
	do func(id string) (*billing.Invoice, error)) error {
	before, err := h.invoiceFor(c)
	if err != nil {
		return err
	}
	ok := false
	for _, s := range from {
		ok = ok || before.Status == s
	}
	if !ok {
		return fmt.Errorf("%w: invoice %s is %s; %s applies to %v invoices", middleware.ErrConflict, before.ID,
			before.Status, action, from)
	}
	after, err := do(before.ID)
	if err != nil {
		return err
	}
	if err := h.audit(c, "invoice."+action, before.Tenant, "invoices/"+before.ID, before, after); err != nil {
		return err
	}
	return c.writeJSON(after)
}

// finalizeInvoice answers POST /v1/invoices/{id}/finalize.
func (h *handler) finalizeInvoice(c *call) error {
	return h.transition(c, "finalize", []billing.InvoiceStatus{billing.InvoiceDraft, billing.InvoiceFinalized},
		func(id string) (*billing.Invoice, error) { return h.m.FinalizeInvoice(c.ctx(), id) })
}

// voidInvoice answers POST /v1/invoices/{id}/void.
func (h *handler) voidInvoice(c *call) error {
	return h.transition(c, "void", []billing.InvoiceStatus{billing.InvoiceFinalized},
		func(id string) (*billing.Invoice, error) { return h.m.VoidInvoice(c.ctx(), id) })
}

// payInvoice answers POST /v1/invoices/{id}/pay.
func (h *handler) payInvoice(c *call) error {
	return h.transition(c, "pay", []billing.InvoiceStatus{billing.InvoiceFinalized},
		func(id string) (*billing.Invoice, error) { return h.m.MarkPaid(c.ctx(), id) })
}
