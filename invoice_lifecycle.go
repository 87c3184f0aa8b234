package billing

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// GenerateInvoice computes tenant's invoice for span (whole hours; usually MonthOf or
// AnchoredMonth) and stores it as a draft. It is idempotent: generating again replaces the draft
// (same ID) with one that includes usage recorded since. It fails with ErrPeriodClosed once the
// span's invoice is finalized.
func (m *Meter) GenerateInvoice(ctx context.Context, tenant string, span Span) (*Invoice, error) {
	if err := checkTenant(tenant); err != nil {
		return nil, err
	}
	inv, err := m.invoicer.Draft(ctx, tenant, span)
	if err != nil {
		return nil, err
	}
	inv.Created = m.cfg.Now()
	errs, err := m.cfg.Store.PutDrafts(ctx, []*Invoice{inv})
	if err != nil {
		return nil, err
	}
	return inv, errs[0]
}

// GenerateInvoices stores a draft for span for every tenant on a plan (assigned, or
// Config.DefaultPlan for tenants with usage in span) whose span is not finalized yet, and returns
// them. It reads the usage of all tenants in one query and writes drafts in batches.
func (m *Meter) GenerateInvoices(ctx context.Context, span Span) ([]*Invoice, error) {
	return m.generateInvoices(ctx, span, nil)
}

// generateInvoices is GenerateInvoices for every tenant but those in skip.
func (m *Meter) generateInvoices(ctx context.Context, span Span, skip map[string]bool) ([]*Invoice, error) {
	if _, ok := m.invoicer.(rollupInvoicer); !ok {
		return m.generateEach(ctx, span, skip)
	}
	if err := m.checkInvoiceSpan(span); err != nil {
		return nil, err
	}
	rows, err := m.cfg.Store.QueryRollups(ctx, RollupQuery{Period: finestAligned(span, m.cfg.Location), From: span.Start, To: span.End})
	if err != nil {
		return nil, err
	}
	byTenant := map[string][]Rollup{}
	for _, r := range rows {
		byTenant[r.Tenant] = append(byTenant[r.Tenant], r)
	}
	planOf := map[string]string{}
	if m.cfg.DefaultPlan != "" {
		for t := range byTenant {
			planOf[t] = m.cfg.DefaultPlan
		}
	}
	if err := m.eachTenant(ctx, func(t Tenant) {
		if t.PlanID != "" {
			planOf[t.ID] = t.PlanID
		} else if m.cfg.DefaultPlan != "" {
			planOf[t.ID] = m.cfg.DefaultPlan
		}
	}); err != nil {
		return nil, err
	}
	plans := map[string]*Plan{}
	now := m.cfg.Now()
	var drafts []*Invoice
	for tenant, planID := range planOf {
		if skip[tenant] {
			continue
		}
		p, ok := plans[planID]
		if !ok {
			pl, err := m.cfg.Store.GetPlan(ctx, planID)
			if err != nil && !errors.Is(err, ErrNotFound) {
				return nil, err
			}
			if err == nil {
				p = &pl
			}
			plans[planID] = p
		}
		if p == nil {
			m.cfg.Logger.Warn("billing: tenant's plan does not exist; no invoice", "tenant", tenant, "plan", planID)
			continue
		}
		inv, err := draftFrom(tenant, *p, span, byTenant[tenant])
		if err != nil {
			return nil, fmt.Errorf("billing: invoice of tenant %q: %w", tenant, err)
		}
		inv.Created = now
		drafts = append(drafts, inv)
	}
	var out []*Invoice
	for lo := 0; lo < len(drafts); lo += 500 {
		part := drafts[lo:min(lo+500, len(drafts))]
		errs, err := m.cfg.Store.PutDrafts(ctx, part)
		if err != nil {
			return out, err
		}
		for i, e := range errs {
			if e == nil {
				out = append(out, part[i])
			} else if !errors.Is(e, ErrPeriodClosed) {
				return out, e
			}
		}
	}
	return out, nil
}

// generateEach is GenerateInvoices for a custom Invoicer: one tenant at a time.
func (m *Meter) generateEach(ctx context.Context, span Span, skip map[string]bool) ([]*Invoice, error) {
	var tenants []string
	if err := m.eachTenant(ctx, func(t Tenant) {
		if (t.PlanID != "" || m.cfg.DefaultPlan != "") && !skip[t.ID] {
			tenants = append(tenants, t.ID)
		}
	}); err != nil {
		return nil, err
	}
	var out []*Invoice
	for _, t := range tenants {
		inv, err := m.GenerateInvoice(ctx, t, span)
		if errors.Is(err, ErrPeriodClosed) {
			continue
		}
		if err != nil {
			return out, err
		}
		out = append(out, inv)
	}
	return out, nil
}

// eachTenant calls fn for every stored tenant record.
func (m *Meter) eachTenant(ctx context.Context, fn func(Tenant)) error {
	for after := ""; ; {
		page, err := m.cfg.Store.ListTenants(ctx, after, 500)
		if err != nil {
			return err
		}
		for _, t := range page {
			fn(t)
		}
		if len(page) < 500 {
			return nil
		}
		after = page[len(page)-1].ID
	}
}

// FinalizeInvoice makes the draft id final: it closes the invoice's span to late events (they
// are refused with ErrPeriodClosed from then on), recomputes the lines from the usage recorded
// until then, and gives the invoice the next number of the year's gap-free sequence, such as
// INV-2026-000042 (Config.InvoicePrefix). A finalized invoice never changes; finalizing it again
// returns it unchanged. Safe to call from several processes at once.
func (m *Meter) FinalizeInvoice(ctx context.Context, id string) (*Invoice, error) {
	inv, err := m.cfg.Store.GetInvoice(ctx, id)
	if err != nil {
		return nil, err
	}
	switch inv.Status {
	case InvoiceFinalized, InvoicePaid:
		return inv, nil
	case InvoiceVoid:
		return nil, fmt.Errorf("billing: invoice %s is void; generate a new draft for its period", id)
	}
	span := Span{Start: inv.Start, End: inv.End}
	if err := m.cfg.Store.CloseSpan(ctx, inv.Tenant, span); err != nil {
		return nil, err
	}
	final, err := m.invoicer.Draft(ctx, inv.Tenant, span)
	if err != nil {
		return nil, err
	}
	now := m.cfg.Now()
	final.ID, final.Created, final.FinalizedAt = inv.ID, inv.Created, now
	year := now.In(m.cfg.Location).Year()
	seq := fmt.Sprintf("%s%d", m.cfg.InvoicePrefix, year)
	return m.cfg.Store.FinalizeInvoice(ctx, final, seq, func(n int64) string {
		return fmt.Sprintf("%s%d-%06d", m.cfg.InvoicePrefix, year, n)
	})
}

// MarkPaid records that the finalized invoice id was paid.
func (m *Meter) MarkPaid(ctx context.Context, id string) (*Invoice, error) {
	return m.cfg.Store.SetInvoiceStatus(ctx, id, InvoiceFinalized, InvoicePaid, m.cfg.Now())
}

// VoidInvoice cancels the finalized invoice id. It is kept, with its number, as void; its period
// stays closed to late events, and a new draft can be generated for it.
func (m *Meter) VoidInvoice(ctx context.Context, id string) (*Invoice, error) {
	return m.cfg.Store.SetInvoiceStatus(ctx, id, InvoiceFinalized, InvoiceVoid, m.cfg.Now())
}

// Invoice returns the invoice with id, or an error matching ErrNotFound.
func (m *Meter) Invoice(ctx context.Context, id string) (*Invoice, error) {
	return m.cfg.Store.GetInvoice(ctx, id)
}

// Invoices returns the invoices matching q, newest period first.
func (m *Meter) Invoices(ctx context.Context, q InvoiceQuery) ([]*Invoice, error) {
	return m.cfg.Store.ListInvoices(ctx, q)
}

// BillingCycle returns tenant's invoice period that contains t: its anchored month when it has
// an anchor day, the calendar month otherwise.
func (m *Meter) BillingCycle(ctx context.Context, tenant string, t time.Time) (Span, error) {
	rec, err := m.cfg.Store.GetTenant(ctx, tenant)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return Span{}, err
	}
	return m.bucketOf(PeriodMonth, rec.AnchorDay, t), nil
}

// invoiceJobs is Run's monthly job. While the previous month is within Config.InvoiceGrace of
// its end, it keeps the drafts up to date with late usage; after the grace it drafts whatever is
// still missing (a process may have been down during the grace) and finalizes, once per month
// and process. Tenants with an anchor day are handled on their own cycle, and a tenant whose plan
// was assigned after a period ended is not invoiced for it.
func (m *Meter) invoiceJobs(ctx context.Context) error {
	now := m.cfg.Now()
	cur := MonthOf(now, m.cfg.Location)
	prev := MonthOf(cur.Start.Add(-time.Nanosecond), m.cfg.Location)
	var anchored []Tenant
	skip := map[string]bool{} // invoiced on their own cycle, or not on a plan during prev
	if err := m.eachTenant(ctx, func(t Tenant) {
		if t.PlanID == "" && m.cfg.DefaultPlan == "" {
			return
		}
		if t.AnchorDay > 1 {
			anchored = append(anchored, t)
			skip[t.ID] = true
		} else if !t.PlanSince.IsZero() && !t.PlanSince.Before(prev.End) {
			skip[t.ID] = true
		}
	}); err != nil {
		return err
	}
	if err := m.invoicePeriod(ctx, "", prev, now, skip); err != nil {
		return err
	}
	for _, t := range anchored {
		cycle := AnchoredMonth(now, t.AnchorDay, m.cfg.Location)
		last := AnchoredMonth(cycle.Start.Add(-time.Nanosecond), t.AnchorDay, m.cfg.Location)
		if !t.PlanSince.IsZero() && !t.PlanSince.Before(last.End) {
			continue
		}
		if err := m.invoicePeriod(ctx, t.ID, last, now, nil); err != nil {
			return err
		}
	}
	return nil
}

// invoicePeriod drafts span (for tenant, or every tenant not in skip) and, after the grace,
// finalizes it, remembering that it did so.
func (m *Meter) invoicePeriod(ctx context.Context, tenant string, span Span, now time.Time, skip map[string]bool) error {
	key := tenant + "\x00" + span.Start.UTC().Format(time.RFC3339)
	m.jobsMu.Lock()
	done := m.invoiced[key]
	m.jobsMu.Unlock()
	if done {
		return nil
	}
	var err error
	if tenant == "" {
		_, err = m.generateInvoices(ctx, span, skip)
	} else if _, err = m.GenerateInvoice(ctx, tenant, span); errors.Is(err, ErrPeriodClosed) {
		err = nil
	}
	if err != nil || now.Before(span.End.Add(m.cfg.InvoiceGrace)) {
		return err
	}
	if err := m.finalizeDrafts(ctx, span.Start, tenant); err != nil {
		return err
	}
	m.jobsMu.Lock()
	if m.invoiced == nil || len(m.invoiced) > 100_000 {
		m.invoiced = map[string]bool{}
	}
	m.invoiced[key] = true
	m.jobsMu.Unlock()
	return nil
}

// finalizeDrafts finalizes the drafts whose period starts at start (of tenant, or of all).
func (m *Meter) finalizeDrafts(ctx context.Context, start time.Time, tenant string) error {
	for {
		drafts, err := m.cfg.Store.ListInvoices(ctx, InvoiceQuery{Tenant: tenant, Status: InvoiceDraft, Start: start, Limit: 500})
		if err != nil {
			return err
		}
		for _, d := range drafts {
			if _, err := m.FinalizeInvoice(ctx, d.ID); err != nil {
				return fmt.Errorf("billing: finalize invoice %s of tenant %q: %w", d.ID, d.Tenant, err)
			}
		}
		if len(drafts) < 500 {
			return nil
		}
	}
}
