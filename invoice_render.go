package billing

// This file holds what the invoice renderings share: money and quantity formatting, dates and
// periods, and the view of an invoice that the HTML and PDF renderings lay out. Each rendering
// (invoice_json.go, invoice_csv.go, invoice_html.go, invoice_pdf.go) is a pure function of the
// Invoice value: no clock, no environment, no network, so the same invoice always renders to the
// same bytes.

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// errNilInvoice is returned by the renderings when called on a nil *Invoice.
var errNilInvoice = errors.New("billing: cannot render a nil invoice")

// renderDigits returns the minor unit of the invoice's currency, which every rendering formats
// amounts with. An unknown currency is an error (see CurrencyDigits), and nothing is written.
func (inv *Invoice) renderDigits() (int32, error) {
	if inv == nil {
		return 0, errNilInvoice
	}
	d, err := CurrencyDigits(inv.Currency)
	if err != nil {
		return 0, fmt.Errorf("billing: render invoice %q: %w", inv.ID, err)
	}
	return d, nil
}

// formatMoney prints d with at least digits decimal places and never fewer than d needs: amounts
// rounded to the currency's minor unit print with exactly that many ("79.50", "1000", "1.235"),
// while unit prices and exact tier amounts keep their full precision ("0.000002", "0.469134").
// It never rounds, so parsing the result gives back a value equal to d.
func formatMoney(d decimal.Decimal, digits int32) string {
	if d.Equal(d.Round(digits)) {
		return d.StringFixed(digits)
	}
	return d.String()
}

// formatMoneyGrouped is formatMoney with the integer part grouped by thousands with commas
// ("1,234.50"), for the human renderings (HTML and PDF).
func formatMoneyGrouped(d decimal.Decimal, digits int32) string {
	s := formatMoney(d, digits)
	sign := ""
	if strings.HasPrefix(s, "-") {
		sign, s = "-", s[1:]
	}
	intPart, frac, hasFrac := strings.Cut(s, ".")
	out := sign + groupDigits(intPart)
	if hasFrac {
		out += "." + frac
	}
	return out
}

// formatQuantity prints n grouped by thousands with commas ("1,234,567").
func formatQuantity(n int64) string {
	s := strconv.FormatInt(n, 10)
	if n < 0 {
		return "-" + groupDigits(s[1:])
	}
	return groupDigits(s)
}

// groupDigits inserts a comma every three digits from the right of a run of decimal digits.
func groupDigits(s string) string {
	if len(s) <= 3 {
		return s
	}
	var b strings.Builder
	head := len(s) % 3
	if head > 0 {
		b.WriteString(s[:head])
	}
	for i := head; i < len(s); i += 3 {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s[i : i+3])
	}
	return b.String()
}

// formatMatch prints attribute matches as "k=v;k=v" with keys sorted, "" when there are none.
func formatMatch(m map[string]string) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, ";")
}

// zoneLabel names t's offset from UTC: "UTC" or "UTC+01:00". It uses the offset, not the zone
// name, so an invoice read back from JSON (which keeps offsets only) renders the same.
func zoneLabel(t time.Time) string {
	_, off := t.Zone()
	if off == 0 {
		return "UTC"
	}
	return "UTC" + t.Format("-07:00")
}

// formatDateTime prints an instant in its own offset, to the minute: "2026-02-01 09:30 UTC".
// The zero time prints as "".
func formatDateTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format("2006-01-02 15:04") + " " + zoneLabel(t)
}

// formatPeriod prints the half-open span [start, end) for people. When both ends fall on
// midnight (a day, month or year span), it prints whole days with the last day inclusive:
// "2026-01-01 to 2026-01-31 (UTC)". Otherwise it prints both instants and marks the end as
// exclusive.
func formatPeriod(start, end time.Time) string {
	midnight := func(t time.Time) bool {
		return t.Hour() == 0 && t.Minute() == 0 && t.Second() == 0 && t.Nanosecond() == 0
	}
	if midnight(start) && midnight(end) && end.After(start) {
		last := end.Add(-time.Nanosecond)
		from, to := start.Format("2006-01-02"), last.Format("2006-01-02")
		if from == to {
			return from + " (" + zoneLabel(start) + ")"
		}
		return from + " to " + to + " (" + zoneLabel(start) + ")"
	}
	return formatDateTime(start) + " to " + formatDateTime(end) + " (end exclusive)"
}

// invoiceView is an invoice prepared for people: every value formatted, nothing left to compute.
// The HTML template and the PDF layout both read it, so they always agree.
type invoiceView struct {
	ID          string
	Number      string // the invoice number, or "DRAFT" before finalization
	Draft       bool
	Title       string // "Invoice INV-2026-000042" or "Draft invoice"
	Tenant      string
	PlanID      string
	Period      string
	Status      string // "Draft", "Finalized", "Paid", "Void"
	StatusClass string // the raw status, for styling
	Currency    string
	Dates       []viewPair // Created, Finalized, Paid, Voided, whichever are set
	Lines       []lineView
	Subtotal    string
	Total       string
}

// viewPair is a label and its value.
type viewPair struct {
	Label, Value string
}

// lineView is an invoice line prepared for people.
type lineView struct {
	Kind        string // "Usage", "Base fee", "Minimum commitment"
	Description string
	Detail      string // resource, match and pricing model: "tokens.output · model=gpt-4o · graduated"
	Quantity    string
	Included    string
	Billable    string
	Amount      string
	Usage       bool       // a usage line, which shows quantities
	Tiers       []tierView // the tier-by-tier breakdown
	Note        string     // included units and rounding, when there is something to say
}

// tierView is one tier of a line's breakdown: what it charged, and how.
type tierView struct {
	Label   string // "Tier 2, units 6–10"
	Formula string // "5 × 6.50 + 2.00 flat"
	Amount  string // exact, at least the currency's digits
}

// statusLabel names a status for people.
func statusLabel(s InvoiceStatus) string {
	switch s {
	case InvoiceDraft:
		return "Draft"
	case InvoiceFinalized:
		return "Finalized"
	case InvoicePaid:
		return "Paid"
	case InvoiceVoid:
		return "Void"
	case "":
		return "Draft"
	}
	return string(s)
}

// kindLabel names a line kind for people.
func kindLabel(k LineKind) string {
	switch k {
	case LineUsage:
		return "Usage"
	case LineBaseFee:
		return "Base fee"
	case LineMinimum:
		return "Minimum commitment"
	}
	return string(k)
}

// modelLabel names a pricing model for people.
func modelLabel(m PricingModel) string {
	switch m {
	case PerUnit:
		return "per unit"
	case Graduated:
		return "graduated"
	case Volume:
		return "volume"
	case Package:
		return "package"
	}
	return string(m)
}

// newInvoiceView formats inv for the HTML and PDF renderings, amounts with digits decimals.
func newInvoiceView(inv *Invoice, digits int32) invoiceView {
	v := invoiceView{
		ID:          inv.ID,
		Number:      inv.Number,
		Tenant:      inv.Tenant,
		PlanID:      inv.PlanID,
		Period:      formatPeriod(inv.Start, inv.End),
		Status:      statusLabel(inv.Status),
		StatusClass: string(inv.Status),
		Currency:    inv.Currency,
		Subtotal:    formatMoneyGrouped(inv.Subtotal, digits),
		Total:       formatMoneyGrouped(inv.Total, digits),
	}
	if v.StatusClass == "" {
		v.StatusClass = string(InvoiceDraft)
	}
	if v.Number == "" {
		v.Number, v.Draft, v.Title = "DRAFT", true, "Draft invoice"
	} else {
		v.Title = "Invoice " + inv.Number
	}
	for _, d := range []struct {
		label string
		t     time.Time
	}{{"Created", inv.Created}, {"Finalized", inv.FinalizedAt}, {"Paid", inv.PaidAt}, {"Voided", inv.VoidedAt}} {
		if !d.t.IsZero() {
			v.Dates = append(v.Dates, viewPair{d.label, formatDateTime(d.t)})
		}
	}
	v.Lines = make([]lineView, len(inv.Lines))
	for i := range inv.Lines {
		v.Lines[i] = newLineView(&inv.Lines[i], digits)
	}
	return v
}

// newLineView formats one invoice line.
func newLineView(l *InvoiceLine, digits int32) lineView {
	lv := lineView{
		Kind:        kindLabel(l.Kind),
		Description: l.Description,
		Quantity:    formatQuantity(l.Quantity),
		Included:    formatQuantity(l.Included),
		Billable:    formatQuantity(l.Billable),
		Amount:      formatMoneyGrouped(l.Amount, digits),
		Usage:       l.Kind == LineUsage || l.Resource != "" || len(l.Tiers) > 0,
	}
	var detail []string
	if l.Resource != "" {
		detail = append(detail, l.Resource)
	}
	if m := formatMatch(l.Match); m != "" {
		detail = append(detail, m)
	}
	if l.Model != "" {
		detail = append(detail, modelLabel(l.Model)+" pricing")
	}
	lv.Detail = strings.Join(detail, " · ")
	if lv.Description == "" {
		lv.Description = lv.Kind
	}
	for _, tc := range l.Tiers {
		lv.Tiers = append(lv.Tiers, newTierView(l.Model, tc, digits))
	}
	var notes []string
	if l.Included > 0 {
		notes = append(notes, formatQuantity(l.Included)+" units included free of charge")
	}
	if !l.Exact.Equal(l.Amount) {
		notes = append(notes, "exact "+formatMoneyGrouped(l.Exact, digits)+", rounded half up to "+
			lv.Amount)
	}
	lv.Note = strings.Join(notes, "; ")
	return lv
}

// newTierView formats one tier's charge as "units x unit price + flat = amount".
func newTierView(model PricingModel, tc TierCharge, digits int32) tierView {
	var label string
	switch model {
	case Graduated, Volume:
		label = "Tier " + strconv.Itoa(tc.Tier+1) + ", "
	}
	if tc.First == tc.Last {
		label += "unit " + formatQuantity(tc.First)
	} else {
		label += "units " + formatQuantity(tc.First) + "–" + formatQuantity(tc.Last)
	}
	unit := ""
	if model == Package {
		unit = " packages"
		if tc.Units == 1 {
			unit = " package"
		}
	}
	formula := formatQuantity(tc.Units) + unit + " × " + formatMoneyGrouped(tc.UnitPrice, digits)
	if !tc.FlatPrice.IsZero() {
		formula += " + " + formatMoneyGrouped(tc.FlatPrice, digits) + " flat"
	}
	return tierView{Label: label, Formula: formula, Amount: formatMoneyGrouped(tc.Amount, digits)}
}
