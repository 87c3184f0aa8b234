package billing

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// Invoicer computes draft invoices. The built-in one (used when Config.Invoicer is nil) reads the
// usage buckets of the span and prices them with the tenant's plan, so its cost does not depend
// on the number of events. Implementations must be safe for concurrent use.
type Invoicer interface {
	// Draft computes the invoice of tenant for span, with status draft and no ID or number.
	Draft(ctx context.Context, tenant string, span Span) (*Invoice, error)
}

// rollupInvoicer is the built-in Invoicer.
type rollupInvoicer struct{ m *Meter }

// Draft implements Invoicer.
func (iv rollupInvoicer) Draft(ctx context.Context, tenant string, span Span) (*Invoice, error) {
	m := iv.m
	if err := m.checkInvoiceSpan(span); err != nil {
		return nil, err
	}
	plan, err := m.planOf(ctx, tenant)
	if err != nil {
		return nil, err
	}
	rows, err := m.cfg.Store.QueryRollups(ctx, RollupQuery{Tenant: tenant, Period: finestAligned(span, m.cfg.Location),
		From: span.Start, To: span.End})
	if err != nil {
		return nil, err
	}
	return draftFrom(tenant, plan, span, rows)
}

// planOf returns tenant's plan (its own, or Config.DefaultPlan), or an error matching ErrNotFound.
func (m *Meter) planOf(ctx context.Context, tenant string) (Plan, error) {
	t, err := m.cfg.Store.GetTenant(ctx, tenant)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return Plan{}, err
	}
	id := t.PlanID
	if id == "" {
		id = m.cfg.DefaultPlan
	}
	if id == "" {
		return Plan{}, fmt.Errorf("%w: tenant %q has no plan to invoice with: AssignPlan, or set Config.DefaultPlan", ErrNotFound, tenant)
	}
	return m.cfg.Store.GetPlan(ctx, id)
}

// checkInvoiceSpan requires a non-empty span on whole hours, the finest usage buckets.
func (m *Meter) checkInvoiceSpan(span Span) error {
	if span.Start.IsZero() || span.End.IsZero() || !span.Start.Before(span.End) {
		return fieldErr(ErrInvalidQuery, "span", "needs a start before its end (got %s)", span)
	}
	for _, b := range []struct {
		name string
		t    time.Time
	}{{"span.start", span.Start}, {"span.end", span.End}} {
		if !PeriodHour.Start(b.t, m.cfg.Location).Equal(b.t) {
			return fieldErr(ErrInvalidQuery, b.name, "must be on a whole hour (usage is kept per hour); got %s", b.t.Format(time.RFC3339Nano))
		}
	}
	return nil
}

// draftFrom prices the usage buckets rows of tenant over span with plan. Each group of usage goes
// to the first price (in plan order) that matches its resource and attributes; usage no price
// matches is free and not listed.
func draftFrom(tenant string, plan Plan, span Span, rows []Rollup) (*Invoice, error) {
	inv := &Invoice{Tenant: tenant, PlanID: plan.ID, Start: span.Start, End: span.End, Currency: plan.Currency,
		Status: InvoiceDraft, Lines: []InvoiceLine{}}
	priced := len(plan.Prices) > 0 || plan.BaseFee.IsPositive() || plan.Minimum.IsPositive()
	if priced && plan.Currency == "" {
		return nil, fieldErr(ErrInvalidConfig, "plan.currency", "plan %q has prices but no currency", plan.ID)
	}
	// Usage per resource and group.
	type key struct{ resource, group string }
	usage := map[key]int64{}
	for _, r := range rows {
		usage[key{r.Resource, r.Group}] += r.Sum
	}
	keys := make([]key, 0, len(usage))
	for k := range usage {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].resource != keys[j].resource {
			return keys[i].resource < keys[j].resource
		}
		return keys[i].group < keys[j].group
	})
	quantity := make([]int64, len(plan.Prices))
	for _, k := range keys {
		attrs, err := DecodeAttrs(k.group)
		if err != nil {
			return nil, fmt.Errorf("billing: stored usage group %q is not valid: %w", k.group, err)
		}
		for i, p := range plan.Prices {
			if p.Resource == k.resource && p.Matches(attrs) {
				quantity[i] += usage[k]
				break
			}
		}
	}
	usageTotal := decimal.Zero
	for i, p := range plan.Prices {
		billable, tiers, exact, err := p.Explain(quantity[i])
		if err != nil {
			return nil, fmt.Errorf("billing: plan %q, prices[%d] (%s): %w", plan.ID, i, p.Resource, err)
		}
		amount, err := RoundMoney(exact, plan.Currency)
		if err != nil {
			return nil, err
		}
		inv.Lines = append(inv.Lines, InvoiceLine{Kind: LineUsage, Description: priceDescription(p), Resource: p.Resource,
			Match: p.Match, Model: p.Model, Quantity: quantity[i], Included: min(p.Included, quantity[i]), Billable: billable,
			Tiers: tiers, Exact: exact, Amount: amount})
		usageTotal = usageTotal.Add(amount)
	}
	if plan.BaseFee.IsPositive() {
		amount, err := RoundMoney(plan.BaseFee, plan.Currency)
		if err != nil {
			return nil, err
		}
		inv.Lines = append(inv.Lines, InvoiceLine{Kind: LineBaseFee, Description: "Base fee (" + plan.nameOrID() + ")",
			Exact: plan.BaseFee, Amount: amount})
	}
	if plan.Minimum.GreaterThan(usageTotal) {
		exact := plan.Minimum.Sub(usageTotal)
		amount, err := RoundMoney(exact, plan.Currency)
		if err != nil {
			return nil, err
		}
		inv.Lines = append(inv.Lines, InvoiceLine{Kind: LineMinimum, Description: "Minimum commitment true-up (minimum " +
			plan.Minimum.String() + " " + plan.Currency + ", usage " + usageTotal.String() + ")", Exact: exact, Amount: amount})
	}
	inv.Subtotal = decimal.Zero
	for _, l := range inv.Lines {
		inv.Subtotal = inv.Subtotal.Add(l.Amount)
	}
	inv.Total = inv.Subtotal
	return inv, nil
}

func (p Plan) nameOrID() string {
	if p.Name != "" {
		return p.Name
	}
	return p.ID
}

// priceDescription names a price's line: its Description, or its resource and match.
func priceDescription(p Price) string {
	if p.Description != "" {
		return p.Description
	}
	if len(p.Match) == 0 {
		return p.Resource
	}
	keys := make([]string, 0, len(p.Match))
	for k := range p.Match {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + p.Match[k]
	}
	return p.Resource + " (" + strings.Join(parts, ", ") + ")"
}
