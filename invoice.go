package billing

import (
	"fmt"
	"time"

	"github.com/shopspring/decimal"
)

// PricingModel says how a Price turns a quantity into money.
type PricingModel string

// The pricing models.
const (
	// PerUnit charges UnitPrice for every billable unit.
	PerUnit PricingModel = "per_unit"
	// Graduated charges each slice of units at its own tier's UnitPrice, plus the FlatPrice of
	// every tier reached.
	Graduated PricingModel = "graduated"
	// Volume charges every unit at the UnitPrice of the tier the total lands in, plus that tier's
	// FlatPrice.
	Volume PricingModel = "volume"
	// Package charges UnitPrice for every started package of PackageSize units.
	Package PricingModel = "package"
)

// Tier is one step of a Graduated or Volume price.
type Tier struct {
	// UpTo is the last unit (inclusive) of the tier; 0 means no end, allowed on the last tier only.
	UpTo int64 `json:"up_to"`
	// UnitPrice is the price of one unit in this tier, at full precision (0.000002 is fine).
	UnitPrice decimal.Decimal `json:"unit_price"`
	// FlatPrice is charged once when usage reaches the tier.
	FlatPrice decimal.Decimal `json:"flat_price"`
}

// Price is how a plan charges for a resource over an invoice period.
type Price struct {
	// Resource is what is priced, such as "tokens.output".
	Resource string `json:"resource"`
	// Match restricts the price to usage whose attributes have these values, such as
	// {"model": "gpt-4o"}: a price per model. Empty matches all usage of Resource. Usage is
	// charged by the first price of the plan (in order) that matches it.
	Match map[string]string `json:"match,omitempty"`
	// Description names the line on invoices; empty means the resource and match.
	Description string `json:"description,omitempty"`
	// Model is the pricing model.
	Model PricingModel `json:"model"`
	// UnitPrice is the price of a unit (PerUnit) or of a package (Package).
	UnitPrice decimal.Decimal `json:"unit_price"`
	// Tiers are the steps of a Graduated or Volume price, in increasing UpTo order.
	Tiers []Tier `json:"tiers,omitempty"`
	// PackageSize is the number of units in a package (Package only).
	PackageSize int64 `json:"package_size,omitempty"`
	// Included are free units per period, taken off before pricing.
	Included int64 `json:"included,omitempty"`
}

// TierCharge explains one tier's part of a line: Units units at UnitPrice, plus FlatPrice.
type TierCharge struct {
	// Tier is the tier's index in Price.Tiers (0 for PerUnit and Package).
	Tier int `json:"tier"`
	// First and Last are the billable units this tier covers (1-based, inclusive).
	First int64 `json:"first"`
	Last  int64 `json:"last"`
	// Units is how many units (or, for Package, packages) are charged at UnitPrice.
	Units     int64           `json:"units"`
	UnitPrice decimal.Decimal `json:"unit_price"`
	FlatPrice decimal.Decimal `json:"flat_price"`
	// Amount is Units x UnitPrice + FlatPrice, exact (not rounded).
	Amount decimal.Decimal `json:"amount"`
}

// InvoiceStatus is where an invoice is in its life: draft, then finalized, then paid or void.
type InvoiceStatus string

// The invoice states.
const (
	InvoiceDraft     InvoiceStatus = "draft"
	InvoiceFinalized InvoiceStatus = "finalized"
	InvoicePaid      InvoiceStatus = "paid"
	InvoiceVoid      InvoiceStatus = "void"
)

// Move changes inv's status from from to to and records at in the matching time field
// (FinalizedAt, PaidAt or VoidedAt). An invoice in another status than from is left unchanged
// and refused with an error that says which. Stores use it in InvoiceStore.SetInvoiceStatus.
func (inv *Invoice) Move(from, to InvoiceStatus, at time.Time) error {
	if inv.Status != from {
		return fmt.Errorf("invoice %s is %s, not %s: it cannot become %s", inv.ID, inv.Status, from, to)
	}
	inv.Status = to
	switch to {
	case InvoicePaid:
		inv.PaidAt = at
	case InvoiceVoid:
		inv.VoidedAt = at
	case InvoiceFinalized:
		inv.FinalizedAt = at
	}
	return nil
}

// LineKind says what an invoice line charges for.
type LineKind string

// The kinds of invoice lines.
const (
	LineUsage   LineKind = "usage"    // a priced resource
	LineBaseFee LineKind = "base_fee" // the plan's fee per period
	LineMinimum LineKind = "minimum"  // the true-up to the plan's minimum commitment
)

// InvoiceLine is one charge of an invoice, with what explains it.
type InvoiceLine struct {
	Kind        LineKind          `json:"kind"`
	Description string            `json:"description"`
	Resource    string            `json:"resource,omitempty"`
	Match       map[string]string `json:"match,omitempty"`
	Model       PricingModel      `json:"model,omitempty"`
	// Quantity is the usage in the period; Included the free units taken off; Billable the rest.
	Quantity int64 `json:"quantity"`
	Included int64 `json:"included"`
	Billable int64 `json:"billable"`
	// Tiers is the tier-by-tier breakdown of the amount.
	Tiers []TierCharge `json:"tiers,omitempty"`
	// Exact is the amount before rounding; Amount is Exact rounded half up to the currency's
	// minor unit, the only rounding an invoice does.
	Exact  decimal.Decimal `json:"exact"`
	Amount decimal.Decimal `json:"amount"`
}

// Invoice is what a tenant owes for a period: lines computed from its usage and its plan's prices.
type Invoice struct {
	ID string `json:"id"`
	// Number is the gap-free sequence number, assigned at finalization (empty on a draft).
	Number   string        `json:"number,omitempty"`
	Tenant   string        `json:"tenant"`
	PlanID   string        `json:"plan_id,omitempty"`
	Start    time.Time     `json:"start"`
	End      time.Time     `json:"end"`
	Currency string        `json:"currency"`
	Status   InvoiceStatus `json:"status"`
	Lines    []InvoiceLine `json:"lines"`
	// Subtotal is the sum of the rounded line amounts; Total equals it (taxes are the gateway's).
	Subtotal decimal.Decimal `json:"subtotal"`
	Total    decimal.Decimal `json:"total"`
	// Created is when the draft was (re)computed; the others are set by their transitions.
	Created     time.Time `json:"created"`
	FinalizedAt time.Time `json:"finalized_at,omitzero"`
	PaidAt      time.Time `json:"paid_at,omitzero"`
	VoidedAt    time.Time `json:"voided_at,omitzero"`
}
